"""Make the figures the docs embed, from real runs (nothing is drawn by hand).

    python scripts/make_doc_figures.py                 # all of them, into docs/img/
    python scripts/make_doc_figures.py mnist xnor      # only some (names: see FIGURES)

Each figure repeats, at full length, a computation the tutorial pages run in short: the
seed 000 graph after `backward()`, the gradient-descent GIFs of `chainrule demo
gradient-descent`, learning rates on Ax = b, batch sizes, XNOR decision regions, and a real
MNIST training run (loss curve, confusion matrix) and a small CNN's feature maps. PNGs are
re-encoded with an adaptive palette so that docs/img stays well under 1.5 MB.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import viz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DPI = 90


# ---- helpers --------------------------------------------------------------------------------
def save_png(fig: Figure, path: Path, colors: int = 64) -> Path:
    """Render `fig` and write it as a small palette PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return shrink_png(buf.getvalue(), path, colors)


def shrink_png(data: bytes, path: Path, colors: int = 64) -> Path:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    return path


def viz_png(draw: Callable[[Path], Path], path: Path, colors: int = 64) -> Path:
    """Let a `chainrule.viz` function draw into a temporary file, then shrink it into `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = draw(Path(tmp) / path.name)
        return shrink_png(raw.read_bytes(), path, colors)


# ---- chapter 2: the graph -------------------------------------------------------------------
def backprop_graph(out: Path) -> list[Path]:
    from chainrule.demos import backprop

    v = backprop.build()
    v["L"].backward()
    dot = v["L"].to_dot(rankdir="TB")
    target = out / "backprop-graph.svg"
    exe = shutil.which("dot")
    if exe is None:
        print("  skipped: Graphviz 'dot' is not installed (apt-get install graphviz)")
        return []
    svg = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True)
    target.write_bytes(svg.stdout)
    return [target]


# ---- chapter 5: gradient descent ------------------------------------------------------------
A = np.array([[1, 3, 2, -1], [5, 2, 1, -2], [0, 1, 2, 4], [1, 1, -1, -3]], dtype=np.float64)
B = np.array([9, 4, 24, -12], dtype=np.float64)
X0 = np.random.default_rng(0).random(4)


def _F(x: np.ndarray) -> float:
    r = A @ x - B
    return float(r @ r)


def _descent_curve(make_opt, steps: int) -> list[float]:
    x = cr.Parameter(X0.copy())
    opt = make_opt([x])
    values = [_F(x.data)]
    for _ in range(steps):
        x.grad[...] = 2 * A.T @ (A @ x.data - B)
        opt.step()
        values.append(_F(x.data))
        if not np.isfinite(values[-1]) or values[-1] > 1e8:
            break
    return values


def gd_gifs(out: Path) -> list[Path]:
    """The three GIFs of `chainrule demo gradient-descent`, copied under their own names."""
    from chainrule.demos import gradient_descent

    with tempfile.TemporaryDirectory() as tmp:
        results = gradient_descent.run(tmp)
        written = []
        for name, result in results.items():
            target = out / name
            shutil.copyfile(result["written"], target)
            written.append(target)
    return written


def learning_rates(out: Path) -> list[Path]:
    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    for lr in (0.005, 0.01, 0.02, 0.025):
        values = _descent_curve(lambda p, lr=lr: cr.optim.SGD(p, lr=lr), 400)
        ax.plot(values, label=f"fixed lr = {lr}", lw=1.4)
    bb = _descent_curve(lambda p: cr.optim.BarzilaiBorwein(p, lr=0.01), 60)
    ax.plot(bb, "k.-", label="Barzilai–Borwein", lw=1.2, ms=3)
    ax.set_yscale("log")
    ax.set_ylim(1e-14, 1e8)
    ax.set_xlim(0, 400)
    ax.set_xlabel("step")
    ax.set_ylabel("F(x) = ‖Ax − b‖²")
    ax.set_title("Gradient descent on Ax = b (seed 001)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return [save_png(fig, out / "learning-rates.png")]


def batch_sizes(out: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 3)).astype(np.float32)
    Y = (X @ np.array([[2.0], [-1.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(256, 1))).astype(
        np.float32
    )
    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    for name, batch_size, lr, style in [
        ("stochastic (batch 1, lr 0.01)", 1, 0.01, dict(lw=0.4, alpha=0.6)),
        ("mini-batch (32, lr 0.1)", 32, 0.1, dict(lw=1.0)),
        ("batch (all 256, lr 0.1)", None, 0.1, dict(lw=2.0, marker="o", ms=3)),
    ]:
        model = cr.Dense(3, 1, seed=0)
        opt = cr.optim.SGD(model.parameters(), lr=lr)
        history = cr.fit(model, cr.MSE(), opt, X, Y, epochs=20, batch_size=batch_size,
                         progress=False, classification=False)
        losses = np.asarray(history.batch_loss)
        epochs = np.arange(1, len(losses) + 1) / (len(losses) / 20)
        ax.plot(epochs, losses, label=f"{name}: {len(losses)} steps", **style)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (passes over the 256 examples)")
    ax.set_ylabel("loss of the step's batch (MSE)")
    ax.set_title("Same data, same 20 epochs, three batch sizes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [save_png(fig, out / "batch-sizes.png")]


# ---- chapter 6: XNOR ------------------------------------------------------------------------
def xnor(out: Path) -> list[Path]:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    Y = np.array([[1], [0], [0], [1]], dtype=np.float64)

    def train(model, epochs, lr):
        loss_fn = cr.MSE()
        opt = cr.optim.SGD(model.parameters(), lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            loss_fn(model(X), Y)
            model.backward(loss_fn.backward())
            opt.step()
        return model

    one = train(cr.Sequential(cr.Dense(2, 1, seed=0, dtype=np.float64), cr.Sigmoid()), 2000, 2.0)
    net = train(cr.Sequential(cr.Dense(2, 3, seed=0, dtype=np.float64), cr.Sigmoid(),
                              cr.Dense(3, 1, seed=100, dtype=np.float64), cr.Sigmoid()),
                10_000, 1.0)
    gx, gy = np.meshgrid(np.linspace(-0.5, 1.5, 161), np.linspace(-0.5, 1.5, 161))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    fig = Figure(figsize=(8, 3.6))
    for k, (model, title) in enumerate([(one, "one neuron: a straight cut"),
                                        (net, "2 → 3 → 1: the cut bends")]):
        ax = fig.add_subplot(1, 2, k + 1)
        z = model(grid).reshape(gx.shape)
        im = ax.contourf(gx, gy, z, levels=np.linspace(0, 1, 11), cmap="RdBu_r", vmin=0, vmax=1)
        ax.contour(gx, gy, z, levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(X[:, 0], X[:, 1], c=Y.ravel(), cmap="RdBu_r", vmin=0, vmax=1, s=120,
                   edgecolors="k", linewidths=1.5, zorder=3)
        for (a, b), t in zip(X, Y.ravel()):
            ax.annotate(f"{int(t)}", (a, b), xytext=(8, 8), textcoords="offset points",
                        fontsize=10, weight="bold")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_aspect("equal")
    fig.colorbar(im, ax=fig.axes, fraction=0.03, label="network output")
    return [save_png(fig, out / "xnor.png")]


# ---- chapter 7: MNIST -----------------------------------------------------------------------
def mnist(out: Path) -> list[Path]:
    (x_train, y_train), (x_test, y_test) = cr.data.load("mnist-10k")

    fig = Figure(figsize=(8, 4.4))
    for i in range(40):
        ax = fig.add_subplot(4, 10, i + 1)
        ax.imshow(x_train[i], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(str(y_train[i]), fontsize=9)
        ax.set_axis_off()
    written = [save_png(fig, out / "mnist-digits.png", colors=32)]

    model = cr.models.mlp(seed=0)
    loss_fn = cr.SoftmaxCrossEntropy()
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = cr.fit(model, loss_fn, opt, x_train, y_train, epochs=10, batch_size=64,
                     validation=(x_test, y_test), progress=False)
    print(f"  MLP, 10 epochs: test accuracy {history.val_accuracy[-1]:.2%}")
    pred = cr.predict(model, x_test).argmax(axis=1)
    confusion = viz.confusion_matrix(y_test, pred, 10)
    per_epoch = int(np.ceil(len(x_train) / 64))
    written.append(viz_png(lambda p: viz.plot_loss(history, p, per_epoch), out / "mnist-loss.png"))
    written.append(viz_png(lambda p: viz.plot_confusion(confusion, p), out / "mnist-confusion.png",
                          colors=128))
    return written


# ---- chapter 8: convolutions ----------------------------------------------------------------
def cnn(out: Path) -> list[Path]:
    (x_train, y_train), (x_test, y_test) = cr.data.load("mnist-10k")
    model = cr.models.cnn(channels=(8, 16), hidden=64, dropout=0.0, seed=0)
    loss_fn = cr.SoftmaxCrossEntropy()
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = cr.fit(model, loss_fn, opt, x_train, y_train, epochs=2, batch_size=32,
                     validation=(x_test, y_test), progress=False)
    print(f"  small CNN, 2 epochs: test accuracy {history.val_accuracy[-1]:.2%}")
    return [viz_png(lambda p: viz.plot_feature_maps(model, x_test[0], p),
                    out / "cnn-feature-maps.png")]


FIGURES: dict[str, Callable[[Path], list[Path]]] = {
    "graph": backprop_graph,
    "gifs": gd_gifs,
    "learning-rates": learning_rates,
    "batch-sizes": batch_sizes,
    "xnor": xnor,
    "mnist": mnist,
    "cnn": cnn,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"figures to make (default: all): {', '.join(FIGURES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img",
                        help="folder to write into (default docs/img)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(FIGURES):
        start = time.perf_counter()
        print(f"{name}:")
        for path in FIGURES[name](args.out):
            print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  "
                  f"{path.stat().st_size / 1024:.0f} KB")
        print(f"  ({time.perf_counter() - start:.1f} s)")
    total = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(f"{args.out}: {total / 2**20:.2f} MB in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
