"""The one exception the data package raises for bad files, bad downloads and bad names."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file or download is missing, corrupt or not what was expected.

    The message always names the file (or URL, or dataset name) and the problem, in one line
    a command-line tool can print as it is: ``train-images-idx3-ubyte.gz: truncated gzip stream``.
    It subclasses `ValueError`, so ``except ValueError`` catches it too.
    """
