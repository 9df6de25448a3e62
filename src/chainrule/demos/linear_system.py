"""Seed 001's first example: solve the linear system Ax = b by gradient descent.

    F(x) = ‖Ax − b‖²          (linear least squares, zero exactly at the solution)
    ∇F(x) = 2Aᵀ(Ax − b)
    x ← x − γ∇F(x)            γ = 0.01, 5000 steps, from a random start

The demo then follows the seed's two asides: stop when F(x) < 0.01 instead of after a fixed
count (and see how close that really is), and pick the step size per step with the
Barzilai–Borwein rule (`chainrule.optim.BarzilaiBorwein`). It ends with a step size that is
too large: gradient descent on this F only converges for γ < 2/λ_max(2AᵀA) ≈ 0.0205.

Run it: ``chainrule demo linear-system [--seed 0] [--lr 0.01] [--steps 5000]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from chainrule.module import Parameter
from chainrule.optim import BarzilaiBorwein

__all__ = [
    "A",
    "B",
    "X_TRUE",
    "objective",
    "gradient",
    "initial_x",
    "descend",
    "steps_until",
    "barzilai_borwein",
    "error_bound",
    "largest_stable_lr",
    "diverge",
    "main",
]

A = np.array([[1, 3, 2, -1], [5, 2, 1, -2], [0, 1, 2, 4], [1, 1, -1, -3]], dtype=np.float64)
B = np.array([[9], [4], [24], [-12]], dtype=np.float64)
X_TRUE = np.array([[1], [2], [3], [4]], dtype=np.float64)  # np.linalg.solve(A, B)


def objective(x: np.ndarray) -> float:
    """F(x) = ‖Ax − b‖²₂."""
    r = A @ x - B
    return float((r * r).sum())


def gradient(x: np.ndarray) -> np.ndarray:
    """∇F(x) = 2Aᵀ(Ax − b), shape (4, 1) like x."""
    return 2.0 * A.T @ (A @ x - B)


def initial_x(seed: int = 0) -> np.ndarray:
    """The seed's `np.random.rand(4, 1)`, drawn from a seeded generator: uniform in [0, 1)."""
    return np.random.default_rng(seed).random((4, 1))


def descend(x0: np.ndarray, lr: float = 0.01, steps: int = 5000) -> np.ndarray:
    """`steps` plain gradient-descent steps x ← x − lr·∇F(x); returns the last x."""
    x = x0.copy()
    for _ in range(steps):
        x -= lr * gradient(x)
    return x


def steps_until(
    x0: np.ndarray, tol: float = 0.01, lr: float = 0.01, max_steps: int = 100_000
) -> tuple[int, np.ndarray]:
    """Plain gradient descent until F(x) < tol: (steps taken, x). Raises if it never gets there."""
    x = x0.copy()
    for step in range(max_steps + 1):
        if objective(x) < tol:
            return step, x
        x -= lr * gradient(x)
    raise RuntimeError(f"F(x) did not fall below {tol:g} in {max_steps} steps at lr {lr:g}")


def barzilai_borwein(
    x0: np.ndarray, tol: float = 1e-10, lr: float = 0.01, max_steps: int = 10_000
) -> tuple[int, np.ndarray]:
    """Gradient descent with Barzilai–Borwein step sizes until F(x) < tol: (steps, x).

    The first step uses `lr`; after that α = s·s / s·y with s = xₖ − xₖ₋₁ and
    y = ∇F(xₖ) − ∇F(xₖ₋₁) (BB1), chosen by `chainrule.optim.BarzilaiBorwein`.
    """
    x = Parameter(x0.copy(), name="x")
    opt = BarzilaiBorwein([x], lr=lr)
    for step in range(max_steps + 1):
        if objective(x.data) < tol:
            return step, x.data
        opt.zero_grad()
        x.grad += gradient(x.data)
        opt.step()
    raise RuntimeError(f"Barzilai–Borwein did not reach F(x) < {tol:g} in {max_steps} steps")


def largest_stable_lr() -> float:
    """Gradient descent on a quadratic converges iff lr < 2/λ_max(Hessian), Hessian = 2AᵀA."""
    return float(2.0 / np.linalg.eigvalsh(2.0 * A.T @ A).max())


def error_bound(f_value: float) -> float:
    """Largest ‖x − x*‖ with F(x) = f_value: F = eᵀAᵀAe ≥ λ_min(AᵀA)‖e‖², e = x − x*."""
    return float(np.sqrt(f_value / np.linalg.eigvalsh(A.T @ A).min()))


def diverge(x0: np.ndarray, lr: float = 0.05, steps: int = 100) -> float:
    """F(x) after `steps` steps at a too-large `lr` (it grows geometrically)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return objective(descend(x0, lr, steps))


def _row(x: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6f}" for v in x.ravel()) + "]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chainrule demo linear-system",
        description="Seed 001: solve Ax = b by gradient descent on F(x) = ‖Ax − b‖².",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random start x0")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate γ (0.01)")
    parser.add_argument("--steps", type=int, default=5000, help="fixed step count (5000)")
    args = parser.parse_args(argv)
    if args.steps < 0 or not args.lr > 0:
        parser.error("--steps must be ≥ 0 and --lr > 0")

    x0 = initial_x(args.seed)
    limit = largest_stable_lr()
    print(">>> A\n" + repr(A))
    print(">>> b\n" + repr(B))
    print("F(x) = ||Ax - b||^2,   grad F(x) = 2 A^T (Ax - b),   x <- x - lr * grad F(x)")
    print(f">>> x = np.random.default_rng({args.seed}).random((4, 1))\n" + repr(x0))
    if args.lr >= limit:
        print(
            f"lr {args.lr:g} is too large: gradient descent on this F converges only for "
            f"lr < {limit:.4f}; after {args.steps} steps F(x) = "
            f"{diverge(x0, args.lr, args.steps):.3e}"
        )
        return 0
    x = descend(x0, args.lr, args.steps)
    print(f">>> for i in range({args.steps}): x -= {args.lr:g} * objective_function_derivative(x)")
    print(">>> x\n" + repr(x))
    print(f"F(x) = {objective(x):.3e},  max |x - [1,2,3,4]| = {np.abs(x - X_TRUE).max():.3e}")
    print(f"check, A @ x = {_row(A @ x)}  (b = [9, 4, 24, -12])")
    print()

    steps, x_stop = steps_until(x0, 0.01, args.lr)
    print(f"stop condition F(x) < 0.01: reached after {steps} steps at lr {args.lr:g}")
    print(f"  x = {_row(x_stop)},  max |x - [1,2,3,4]| = {np.abs(x_stop - X_TRUE).max():.4f}")
    print(
        f"  (a small F does not pin x down: ‖x − x*‖ ≤ √(F/λ_min(AᵀA)) = "
        f"{error_bound(0.01):.3f} when F = 0.01)"
    )
    print()

    bb_steps, x_bb = barzilai_borwein(x0, 1e-10, args.lr)
    gd_steps, _ = steps_until(x0, 1e-10, args.lr)
    print(
        f"Barzilai–Borwein step sizes: F(x) < 1e-10 after {bb_steps} steps\n"
        f"  (plain gradient descent at lr {args.lr:g} needs {gd_steps} steps)"
    )
    print(f"  x = {_row(x_bb)}")
    print()

    big = diverge(x0, 0.05, 100)
    print(f"learning rate too large: at lr 0.05, F(x) = {big:.3e} after 100 steps")
    print(f"  (on this F gradient descent converges only for lr < 2/λ_max(2AᵀA) = {limit:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
