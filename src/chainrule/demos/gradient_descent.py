"""Seed 003's gradient-descent animations, drawn as GIFs.

Each animation runs plain gradient descent θ ← θ − α∇f(θ) and shows the point moving:
1. f(x) = x²,  f'(x) = 2x — every step multiplies x by (1 − 2α), straight to the minimum 0;
2. f(x) = sin x,  f'(x) = cos x — it slides into the nearest valley, x = −π/2 from x₀ = 1;
3. f(x, y) = sin(u)·cos(v) with u = ½x² − ¼y² + 3 and v = 2x + 1 − eʸ, on a contour plot.
   By the product and chain rules (∂u/∂x = x, ∂u/∂y = −½y, ∂v/∂x = 2, ∂v/∂y = −eʸ):
       ∂f/∂x = x·cos(u)·cos(v) − 2·sin(u)·sin(v)
       ∂f/∂y = −½y·cos(u)·cos(v) + eʸ·sin(u)·sin(v)

Run it: ``chainrule demo gradient-descent [--out runs/demos/]``; it writes
`gd_x_squared.gif`, `gd_sin.gif` and `gd_surface.gif` and prints where each descent ended.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from chainrule._io import atomic_path

__all__ = [
    "square",
    "d_square",
    "sine",
    "d_sine",
    "surface",
    "surface_grad",
    "descend_1d",
    "descend_2d",
    "animate_1d",
    "animate_2d",
    "run",
    "main",
]

FPS = 10
DPI = 72


# ---- the functions and their derivatives ----------------------------------------------------
def square(x):
    return x * x


def d_square(x):
    return 2 * x


def sine(x):
    return np.sin(x)


def d_sine(x):
    return np.cos(x)


def surface(x, y):
    """f(x, y) = sin(½x² − ¼y² + 3)·cos(2x + 1 − eʸ)."""
    return np.sin(0.5 * x**2 - 0.25 * y**2 + 3) * np.cos(2 * x + 1 - np.exp(y))


def surface_grad(x, y) -> np.ndarray:
    """(∂f/∂x, ∂f/∂y) of `surface`, written out by hand (see the module docstring)."""
    u = 0.5 * x**2 - 0.25 * y**2 + 3
    v = 2 * x + 1 - np.exp(y)
    dfdx = x * np.cos(u) * np.cos(v) - 2 * np.sin(u) * np.sin(v)
    dfdy = -0.5 * y * np.cos(u) * np.cos(v) + np.exp(y) * np.sin(u) * np.sin(v)
    return np.array([dfdx, dfdy])


# ---- gradient descent -----------------------------------------------------------------------
def descend_1d(df: Callable, x0: float, lr: float, steps: int) -> np.ndarray:
    """The path x₀, x₁, …, x_steps of x ← x − lr·f'(x) (steps + 1 points)."""
    path = [float(x0)]
    for _ in range(steps):
        path.append(path[-1] - lr * float(df(path[-1])))
    return np.array(path)


def descend_2d(grad: Callable, p0: Sequence[float], lr: float, steps: int) -> np.ndarray:
    """The path (steps + 1, 2) of p ← p − lr·∇f(p)."""
    path = [np.asarray(p0, dtype=np.float64)]
    for _ in range(steps):
        path.append(path[-1] - lr * grad(*path[-1]))
    return np.array(path)


# ---- drawing --------------------------------------------------------------------------------
def _freeze(fig, ax):
    """Draw the figure once and replace it by a picture of itself, keeping an empty overlay
    axes at `ax`'s place and limits for the moving parts. The static drawing (curve,
    contours, ticks, labels) then costs one render, not one per frame."""
    fig.canvas.draw()
    background = np.asarray(fig.canvas.buffer_rgba()).copy()
    position, xlim, ylim = ax.get_position(), ax.get_xlim(), ax.get_ylim()
    fig.clear()
    fig.figimage(background, 0, 0, origin="upper", zorder=-1)  # 1:1 pixels
    overlay = fig.add_axes(position)
    overlay.set(xlim=xlim, ylim=ylim)
    overlay.set_axis_off()
    return overlay


def _save(anim, path: Path) -> Path:
    from matplotlib.animation import PillowWriter

    with atomic_path(path) as tmp:
        anim.save(tmp, writer=PillowWriter(fps=FPS), dpi=DPI)
    return path


def animate_1d(
    f: Callable, path: np.ndarray, lo: float, hi: float, title: str, out: str | os.PathLike
) -> Path:
    """A GIF of the curve y = f(x) on [lo, hi] with the descent point moving along `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    xs = np.linspace(lo, hi, 400)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=DPI)
    ax.plot(xs, f(xs), color="tab:blue", lw=2)
    ax.set(title=title, xlabel="x", ylabel="f(x)")
    fig.tight_layout()
    ax = _freeze(fig, ax)
    (trail,) = ax.plot([], [], "o--", color="tab:orange", ms=3, lw=1, alpha=0.6)
    (point,) = ax.plot([], [], "o", color="tab:red", ms=9)
    label = ax.text(0.02, 0.95, "", transform=ax.transAxes, va="top", family="monospace")

    def frame(i: int):
        trail.set_data(path[: i + 1], f(path[: i + 1]))
        point.set_data([path[i]], [f(path[i])])
        label.set_text(f"step {i:2d}  x = {path[i]: .4f}")
        return trail, point, label

    anim = FuncAnimation(fig, frame, frames=len(path), blit=False)
    try:
        return _save(anim, Path(out))
    finally:
        plt.close(fig)


def animate_2d(
    f: Callable,
    path: np.ndarray,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    title: str,
    out: str | os.PathLike,
) -> Path:
    """A GIF of the contour plot of f(x, y) with the descent path drawn step by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    xs, ys = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=DPI)
    filled = ax.contourf(xs, ys, f(xs, ys), levels=30, cmap="viridis")
    ax.contour(xs, ys, f(xs, ys), levels=15, colors="white", linewidths=0.4, alpha=0.5)
    fig.colorbar(filled, ax=ax, label="f(x, y)")
    ax.set(title=title, xlabel="x", ylabel="y")
    fig.tight_layout()
    ax = _freeze(fig, ax)
    ax.plot(*path[0], "x", color="white", ms=8, mew=2)  # the start
    (trail,) = ax.plot([], [], "o-", color="tab:red", ms=3, lw=1.5)
    (point,) = ax.plot([], [], "o", color="tab:red", ms=8, mec="white")
    label = ax.text(
        0.02, 0.97, "", transform=ax.transAxes, va="top", color="white", family="monospace"
    )

    def frame(i: int):
        trail.set_data(path[: i + 1, 0], path[: i + 1, 1])
        x, y = path[i]
        point.set_data([x], [y])
        label.set_text(f"step {i:2d}  f = {f(x, y): .4f}")
        return trail, point, label

    anim = FuncAnimation(fig, frame, frames=len(path), blit=False)
    try:
        return _save(anim, Path(out))
    finally:
        plt.close(fig)


# ---- the demo -------------------------------------------------------------------------------
# (name, file, f, f', start, learning rate, steps, plot range)
ONE_D = [
    ("f(x) = x²", "gd_x_squared.gif", square, d_square, -4.0, 0.1, 30, (-5.0, 5.0)),
    ("f(x) = sin x", "gd_sin.gif", sine, d_sine, 1.0, 0.3, 30, (-2 * np.pi, 2 * np.pi)),
]
SURFACE = dict(start=(-1.5, 0.5), lr=0.05, steps=40, xlim=(-3.0, 3.0), ylim=(-2.0, 2.0))


def run(out: str | os.PathLike, draw: bool = True) -> dict[str, dict]:
    """Run the three descents (and draw them unless `draw=False`).

    Returns {file name: {"start", "end", "value", "path", "written"}} per animation.
    """
    results = {}
    for title, name, f, df, x0, lr, steps, (lo, hi) in ONE_D:
        path = descend_1d(df, x0, lr, steps)
        written = (
            animate_1d(f, path, lo, hi, f"{title}, α = {lr}", Path(out) / name) if draw else None
        )
        results[name] = dict(
            title=title,
            lr=lr,
            start=path[0],
            end=path[-1],
            value=float(f(path[-1])),
            path=path,
            written=written,
        )
    s = SURFACE
    path = descend_2d(surface_grad, s["start"], s["lr"], s["steps"])
    title = "sin(½x² − ¼y² + 3)·cos(2x + 1 − eʸ)"
    written = (
        animate_2d(
            surface,
            path,
            s["xlim"],
            s["ylim"],
            f"{title}, α = {s['lr']}",
            Path(out) / "gd_surface.gif",
        )
        if draw
        else None
    )
    results["gd_surface.gif"] = dict(
        title="f(x, y) = " + title,
        lr=s["lr"],
        start=path[0],
        end=path[-1],
        value=float(surface(*path[-1])),
        path=path,
        written=written,
    )
    return results


def _fmt(p) -> str:
    p = np.atleast_1d(p)
    return "(" + ", ".join(f"{v:.4f}" for v in p) + ")" if p.size > 1 else f"{p[0]:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chainrule demo gradient-descent",
        description="Seed 003: gradient descent animations (GIFs) on x², sin x and a surface.",
    )
    parser.add_argument("--out", default="runs/demos", help="folder for the GIFs (runs/demos/)")
    args = parser.parse_args(argv)

    results = run(args.out)
    for r in results.values():
        steps = len(r["path"]) - 1
        print(
            f"{r['title']}: {steps} steps at α = {r['lr']} from {_fmt(r['start'])} "
            f"→ {_fmt(r['end'])}, f = {r['value']:.6f}"
        )
        print(f"  wrote {r['written']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
