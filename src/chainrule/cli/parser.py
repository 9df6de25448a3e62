"""The `chainrule` argument parser, built from each command module's `add_parser(sub, common)`.

Every command is a real subparser (`serve` and `export` included), so any flag order works,
e.g. `chainrule --debug serve m.npz`.
"""

from __future__ import annotations

import argparse
import math

from .._version import __version__
from .errors import Parser


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


def build_parser() -> Parser:
    """`chainrule` and its subcommands; each command module adds its own subparser."""
    from . import data, demo, exercises, export, serve, train

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = Parser(prog="chainrule", parents=[common],
                    description="Neural networks from scratch in NumPy: train and use an MNIST "
                    "digit recogniser, and run the worked examples.")
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in (train, demo, data, export, serve, exercises):
        command.add_parser(sub, common)
    return parser
