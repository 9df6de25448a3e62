"""Exit codes, the CLI's user-facing error, and the one-line error formatting.

Used by the `chainrule` command and by `chainrule.web.server` alike: a usage or input problem
is one line on stderr naming it and the fix (exit code 2).
"""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2), said by rank 0
    alone under `mpiexec` (every rank parses the same flags)."""

    def error(self, message: str):
        from ..distributed import launched_rank

        line = f"{self.prog}: error: {message} (see `{self.prog} --help`)\n"
        self.exit(EXIT_USAGE, line if launched_rank() == 0 else None)


def one_line(exc: BaseException) -> str:
    """The exception's message with all whitespace runs collapsed (its type name if empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the user asked for something that cannot be done"."""
    from ..data.errors import DataError
    from ..distributed import DistributedError
    from ..preprocess import ImageError
    from ..serialize import ModelFileError
    from .config import RunError

    return CLIError, DataError, ModelFileError, ImageError, RunError, DistributedError


def failure(exc: BaseException) -> tuple[str, int]:
    """(one line, exit code) for `exc` as the command reports it: a user error is its message
    and code 2, anything else an internal error (code 1). What a rank that failed sends to
    the others under MPI (`Communicator.phase`)."""
    if isinstance(exc, user_errors()):
        return one_line(exc), EXIT_USAGE
    return f"internal error: {type(exc).__name__}: {one_line(exc)}", EXIT_INTERNAL
