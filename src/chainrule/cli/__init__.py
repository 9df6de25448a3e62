"""The `chainrule` command: train, evaluate, predict, demo, data, export, serve.

    chainrule train                        # MLP 784-128-10 on the bundled mnist-10k, ~96.5%
    chainrule evaluate runs/<stamp>        # accuracy, per-class precision/recall, confusion
    chainrule predict runs/<stamp> my7.png # your own digit, any size, either polarity
    chainrule demo backprop                # the seeds' worked examples

Exit codes: 0 success, 2 a usage or input problem (one line on stderr naming it and the fix;
`--debug` adds the traceback), 1 an internal failure, 130 interrupted by Ctrl-C.

The package: `parser` builds the argument parser from each command module's `add_parser`
(`argtypes` holds the flags' value types);
`errors` holds the exit codes and one-line error formatting; `train` (train, evaluate,
predict), `demo`, `data`, `export` and `serve` hold the commands; `run` the training run.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from ..distributed import launched_rank
from .data import cmd_data
from .demo import DEMOS, cmd_demo
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    Parser,
    one_line,
    user_errors,
)
from .export import cmd_export
from .parser import build_parser
from .serve import cmd_serve
from .train import cmd_evaluate, cmd_predict, cmd_train

__all__ = ["DEMOS", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CLIError",
           "Parser", "build_parser", "cmd_data", "cmd_demo", "cmd_evaluate", "cmd_export",
           "cmd_predict", "cmd_serve", "cmd_train", "main", "one_line"]


def main(argv: list[str] | None = None) -> int:
    """Run `chainrule ARGV` (default: sys.argv[1:]); returns the exit code.

    Under `mpiexec` every rank meets the same error and rank 0 alone says it; the launcher ends
    the job when the first rank exits non-zero, so a quiet rank lingers a moment first, letting
    rank 0 print its line (rank 0 exiting ends the quiet ones at once)."""
    try:
        code = _run(argv)
    except SystemExit as exc:  # argparse: --help, or a usage error already said
        _linger_if_quiet(exc.code)
        raise
    _linger_if_quiet(code)
    return code


def _linger_if_quiet(code) -> None:
    if code and launched_rank() != 0:
        time.sleep(QUIET_RANK_LINGER)


QUIET_RANK_LINGER = 10.0  # seconds; the job ends sooner, as soon as rank 0 has said why


def _run(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # name the subcommand whose options were wrong
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `chainrule demo backprop | head`: the reader left early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit flush from failing
        return 0
    except user_errors() as exc:
        if debug:
            traceback.print_exc()
        if launched_rank() == 0:  # under mpiexec every rank meets the same error: one says it
            print(f"chainrule: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"chainrule: internal error: {type(exc).__name__}: {one_line(exc)} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
