"""Mini-batches and one-hot labels: the glue between a dataset and a training step."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .module import resolve_rng


def batches(
    x: np.ndarray,
    y: np.ndarray | None = None,
    batch_size: int | None = 64,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield `(xb, yb)` mini-batches covering the data once (one epoch).

    `batch_size=1` gives stochastic gradient descent, `None` or 0 the full batch, anything
    in between mini-batches; the last batch may be smaller. With `shuffle` the order is a
    fresh permutation from `rng` (a `numpy.random.Generator`) each call: sampling without
    replacement, so every example is seen exactly once per epoch.
    """
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(f"batches: {n} inputs but {len(y)} labels")
    size = n if not batch_size else int(batch_size)
    if size < 1:
        raise ValueError(f"batches: batch_size must be ≥ 1 (or 0 for full batch), got {size}")
    order = resolve_rng(rng).permutation(n) if shuffle else None
    for start in range(0, n, size):
        if order is None:
            sl = slice(start, start + size)
            yield x[sl], (None if y is None else y[sl])
        else:
            idx = order[start : start + size]
            yield _rows(x, idx), (None if y is None else _rows(y, idx))


def _rows(a, idx: np.ndarray):
    """a[idx]: the rows `idx` of `a`. For a C-contiguous array `take` makes the same copy,
    in the same layout, ~25% faster than fancy indexing (20 against 26 µs for 64 shuffled
    MNIST rows); other layouts keep fancy indexing, which preserves their inner order."""
    if isinstance(a, np.ndarray) and a.flags.c_contiguous:
        return a.take(idx, axis=0)
    return a[idx]


def one_hot(labels: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """(n,) integer labels → (n, num_classes) rows with a single 1 at each label."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"one_hot: expected labels of shape (n,), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in 0..{num_classes - 1}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out
