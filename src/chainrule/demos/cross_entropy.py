"""Seed 003's worked cross-entropy example: 3 examples, 4 classes.

    L = −(1/n) Σᵢ Σⱼ yᵢⱼ log ŷᵢⱼ

With one-hot targets only the true class's term survives in each row, so row i costs
−log(ŷ of its true class): −log 0.5, −log 0.3, −log 0.4, and the mean is
−(1/3)(log 0.5 + log 0.3 + log 0.4) ≈ 0.9378. `cr.CrossEntropy()` computes the same number.

Run it: ``chainrule demo cross-entropy``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

import chainrule as cr

__all__ = ["Y_HAT", "LABELS", "one_hot", "row_losses", "formula", "library_loss", "main"]

# fmt: off
Y_HAT = np.array(
    [[0.1, 0.5, 0.2, 0.2],
     [0.3, 0.4, 0.2, 0.1],
     [0.2, 0.3, 0.4, 0.1]]
)
# fmt: on
LABELS = np.array([1, 0, 2])  # the true class of each row


def one_hot(labels: np.ndarray = LABELS, num_classes: int = 4) -> np.ndarray:
    """Y: one row per example, a single 1 at its true class."""
    y = np.zeros((len(labels), num_classes))
    y[np.arange(len(labels)), labels] = 1.0
    return y


def row_losses(y_hat: np.ndarray = Y_HAT, y: np.ndarray | None = None) -> np.ndarray:
    """Lossᵢ = −Σⱼ yᵢⱼ log ŷᵢⱼ for each row."""
    y = one_hot() if y is None else y
    return -(y * np.log(y_hat)).sum(axis=1)


def formula() -> float:
    """The seed's closed form −(1/3)(log 0.5 + log 0.3 + log 0.4)."""
    return -(math.log(0.5) + math.log(0.3) + math.log(0.4)) / 3


def library_loss(target: np.ndarray | None = None) -> float:
    """The same loss from `cr.CrossEntropy()` (one-hot Y by default; integer labels work too)."""
    return cr.CrossEntropy()(Y_HAT, one_hot() if target is None else target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chainrule demo cross-entropy",
        description="Seed 003: the worked 3×4 cross-entropy example.",
    )
    parser.parse_args(argv)

    y = one_hot()
    print("Ŷ (predicted probabilities):\n" + np.array2string(Y_HAT))
    print("Y (one-hot, labels [1, 0, 2]):\n" + np.array2string(y.astype(int)))
    print()
    for i, (loss, label) in enumerate(zip(row_losses(), LABELS), start=1):
        terms = " + ".join(f"{int(t)}·log({p:g})" for t, p in zip(y[i - 1], Y_HAT[i - 1]))
        print(f"Loss_{i} = −({terms}) = −log({Y_HAT[i - 1, label]:g}) = {loss:.6f}")
    print()
    fused = cr.SoftmaxCrossEntropy()(np.log(Y_HAT), LABELS)
    lines = [
        ("−(1/3)(log 0.5 + log 0.3 + log 0.4)", formula(), ""),
        ("cr.CrossEntropy()(Ŷ, Y)", library_loss(), ""),
        ("cr.CrossEntropy()(Ŷ, labels)", library_loss(LABELS), ""),
        ("cr.SoftmaxCrossEntropy()(log Ŷ, labels)", fused, "  (softmax(log Ŷ) = Ŷ)"),
    ]
    width = max(len(name) for name, _, _ in lines)
    for name, value, note in lines:
        print(f"{name:<{width}} = {value:.16f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
