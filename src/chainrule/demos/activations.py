"""Every activation function in chainrule next to its derivative, plotted and tabulated.

The curves come from the library's own tables: `ACTIVATIONS[name](x)` for f(x) and
`DERIVATIVES[name](1, x, f(x))` for f'(x) — the backward functions turn dL/dy into
dL/dx = dL/dy ⊙ f'(x), so feeding them dL/dy = 1 returns f'(x) itself. The demo also checks
each derivative against a central difference (f(x + h) − f(x − h)) / 2h, away from the kinks.

Run it: ``chainrule demo activations [--out runs/demos/]``; it writes `activations.png`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from chainrule._io import atomic_path
from chainrule.activations import ACTIVATIONS, DERIVATIVES

__all__ = ["NAMES", "TABLE_X", "evaluate", "derivative_error", "table", "plot", "main"]

# (table key, label in the plot)
NAMES = [
    ("sigmoid", "sigmoid"),
    ("tanh", "tanh"),
    ("relu", "ReLU"),
    ("leaky_relu", "LeakyReLU (0.01)"),
    ("gelu", "GELU"),
    ("gelu_tanh", "GELU (tanh approx.)"),
    ("smelu", "SmeLU (β = 2)"),
]
TABLE_X = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])


def evaluate(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f(x), f'(x)) from the library's ACTIVATIONS and DERIVATIVES tables."""
    x = np.asarray(x, dtype=np.float64)
    y = ACTIVATIONS[name](x)
    return y, DERIVATIVES[name](np.ones_like(x), x, y)


def derivative_error(name: str, h: float = 1e-6) -> float:
    """max |f'(x) − (f(x + h) − f(x − h)) / 2h| over 800 points of [−4, 4] (none at 0)."""
    x = np.linspace(-4.0, 4.0, 800)
    f = ACTIVATIONS[name]
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    return float(np.abs(evaluate(name, x)[1] - numeric).max())


def table(xs: np.ndarray = TABLE_X) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (f(xs), f'(xs))} for every activation in NAMES."""
    return {name: evaluate(name, xs) for name, _ in NAMES}


def plot(out: str | Path) -> Path:
    """A 2×4 grid: each activation with its derivative, and all of them together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(-4, 4, 801)
    fig, axes = plt.subplots(2, 4, figsize=(14, 6.5), sharex=True)
    for ax, (name, label) in zip(axes.flat, NAMES):
        y, dy = evaluate(name, x)
        ax.plot(x, y, lw=2, label="f(x)")
        ax.plot(x, dy, lw=1.5, ls="--", label="f'(x)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(label)
        ax.set_ylim(-1.5, 4.1)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="upper left")
    last = axes.flat[-1]
    for name, label in NAMES:
        last.plot(x, evaluate(name, x)[0], lw=1.3, label=label)
    last.set(title="all of them", ylim=(-1.5, 4.1))
    last.grid(alpha=0.3)
    last.legend(fontsize=7, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    fig.suptitle("chainrule activations (solid) and their derivatives (dashed)")
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chainrule demo activations",
        description="Plot each activation and its derivative; print a table of values.",
    )
    parser.add_argument("--out", default="runs/demos", help="folder for activations.png")
    args = parser.parse_args(argv)

    width = max(len(label) for _, label in NAMES)
    head = " ".join(f"{x:>7g}" for x in TABLE_X)
    print(f"{'x':<{width}}     {head}")
    values = table()
    for name, label in NAMES:
        y, dy = values[name]
        print(f"{label:<{width}}  f  " + " ".join(f"{v:7.4f}" for v in y))
        print(f"{'':<{width}}  f' " + " ".join(f"{v:7.4f}" for v in dy))
    print()
    worst = max(derivative_error(name) for name, _ in NAMES)
    print(f"every f' agrees with a central difference to {worst:.1e} on [−4, 4]")
    print(f"wrote {plot(Path(args.out) / 'activations.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
