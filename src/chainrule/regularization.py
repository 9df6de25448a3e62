"""Regularization: Dropout (inverted).

It behaves differently in training and evaluation: `model.train()` / `model.eval()`
switch them (`fit` and `predict` do it for you).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .module import Module, resolve_rng

# Old import path: BatchNorm1d moved to `chainrule.normalization`; re-exported here.
from .normalization import BatchNorm1d  # noqa: F401

if TYPE_CHECKING:
    from .distributed import Shard


class Dropout(Module):
    """Inverted dropout: in training, zero each unit with probability p, scale the rest.

    y = x ⊙ m / (1 − p),  m_i ~ Bernoulli(1 − p);   dL/dx = dL/dy ⊙ m / (1 − p).
    Scaling at training time keeps E[y] = x, so evaluation is the identity (no rescaling).
    A fixed mask (for tests and gradient checks): `forward(x, mask=m)`, or set the `mask`
    attribute to use it on every call; m is boolean (True = keep) or 0/1, broadcastable to x.
    Shapes: any; y has the shape of x.

    Data-parallel training (`fit(..., comm=...)` sets `shard`): the mask is drawn for the
    whole global batch and each rank keeps its rows, so N ranks drop the very units one
    process would.
    """

    shard: Shard | None = None

    def __init__(
        self,
        p: float = 0.5,
        rng: np.random.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        p = float(p)
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p, self.seed = p, seed
        self.rng = resolve_rng(rng, seed)
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        y, self._cache = self.forward_with_cache(x, mask)
        return y

    def forward_with_cache(self, x: np.ndarray, mask: np.ndarray | None = None):
        """(y, cache): cache is (m/(1 − p) or None for the identity, x's dtype)."""
        mask = self.mask if mask is None else mask
        if not self.training or (self.p == 0 and mask is None):
            return x, (None, x.dtype)  # the identity: backward needs nothing
        if mask is None:
            mask = self._draw_mask(x.shape)
        else:
            mask = np.asarray(mask)
            try:
                fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"Dropout: mask of shape {mask.shape} does not fit input {x.shape}"
                )
        keep = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0  # p = 1 drops everything
        # m/(1 − p) in x's dtype, kept for backward: the layer's only cache
        scale = np.multiply(mask, keep, dtype=x.dtype if x.dtype.kind == "f" else None)
        return x * scale, (scale, x.dtype)

    def _draw_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Keep-mask (True = keep) for an input of `shape`, drawn for the global batch."""
        if self.shard is None:
            return self.rng.random(shape, dtype=np.float32) >= self.p
        draws = self.rng.random((self.shard.total, *shape[1:]), dtype=np.float32)
        return draws[self.shard.rows] >= self.p

    def backward_from_cache(self, cache, grad_out: np.ndarray, input_grad: bool = True):
        if not input_grad:
            return None
        scale, dtype = cache if cache is not None else (None, None)
        if dtype is not None and dtype.kind == "f":
            grad_out = grad_out.astype(dtype, copy=False)
        return grad_out if scale is None else grad_out * scale

    def config(self) -> dict:
        return {"p": self.p} if self.seed is None else {"p": self.p, "seed": self.seed}
