"""Old import path: the atomic-write helpers now live in `chainrule._io`."""

from .._io import atomic_open, atomic_path  # noqa: F401  (re-export)
