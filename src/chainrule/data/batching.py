"""Old import path: `batches` and `one_hot` now live in `chainrule.batching`."""

from ..batching import batches, one_hot  # noqa: F401  (re-export)
