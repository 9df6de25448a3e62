"""The value types of the commands' flags: each turns the text after a flag into a checked value
or raises `argparse.ArgumentTypeError` with a message naming what was expected.

    t.add_argument("--epochs", type=positive_int)       # "0" → error: expected a number ≥ 1
    t.add_argument("--hidden", type=hidden_sizes)       # "128,64" → (128, 64)
"""

from __future__ import annotations

import argparse
import math


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number ≥ {minimum}, got {text}")
    return value


def _real(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else "≥ 0"
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def nonneg_int(text: str) -> int:
    return _whole(text, 0)


def positive_float(text: str) -> float:
    return _real(text, positive=True)


def nonneg_float(text: str) -> float:
    return _real(text, positive=False)


def hidden_sizes(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes like 128 or 128,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes ≥ 1 like 128,64, got {text!r}")
    return sizes


def batch_size(text: str) -> int:
    if text.strip().lower() in ("full", "0"):
        return 0
    return positive_int(text)
