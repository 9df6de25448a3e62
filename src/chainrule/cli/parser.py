"""The `chainrule` argument parser, built from each command module's `add_parser(sub, common)`.

Every command is a real subparser (`serve` and `export` included), so any flag order works,
e.g. `chainrule --debug serve m.npz`. The value types the commands' flags share
(`positive_int`, `hidden_sizes`, ...) live in `argtypes`, below both.
"""

from __future__ import annotations

import argparse

from .._version import __version__
from .errors import Parser


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
