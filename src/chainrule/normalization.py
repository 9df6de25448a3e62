"""Batch normalisation: BatchNorm1d on (N, C) or (N, C, L), BatchNorm2d on (N, C, H, W).

Both behave differently in training and evaluation: `model.train()` / `model.eval()`
switch them (`fit` and `predict` do it for you).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .module import DEFAULT_DTYPE, Module, Parameter, keeps_cache, no_cache_error, shape_str

if TYPE_CHECKING:
    from .distributed import Communicator, Shard


class BatchNorm1d(Module):
    """Normalize each feature over the batch, then scale and shift: y = γ·x̂ + β.

    Shapes: x (N, C) or (N, C, L); statistics per channel C (over N, or over N and L).
    Training: x̂ = (x − μ_B)/√(σ²_B + ε) with the batch mean and biased variance, and
        running_mean ← (1 − momentum)·running_mean + momentum·μ_B
        running_var  ← (1 − momentum)·running_var  + momentum·σ²_B·n/(n − 1)  (unbiased)
    Evaluation: x̂ = (x − running_mean)/√(running_var + ε), a fixed affine map.
    Backward (training), n values per channel, g = dL/dy:
        dβ = Σg,   dγ = Σ g·x̂,   dx = γ/(n·√(σ²_B + ε)) · (n·g − dβ − x̂·dγ)
    (the batch statistics depend on x, hence the two correction terms).
    Data-parallel training (`fit(..., comm=...)` sets `shard`): μ_B, σ²_B, Σg and Σg·x̂ are
    sums over the whole global batch (three small allreduces of C numbers per step), so N
    ranks compute exactly what one process would, and the running statistics stay equal.
    In eval mode the forward keeps nothing for backward unless `grad_in_eval` is set (see
    `chainrule.module.set_grad_in_eval`); then backward differentiates the fixed affine map.
    """

    _buffer_names = ("running_mean", "running_var")
    shard: Shard | None = None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype=DEFAULT_DTYPE,
    ) -> None:
        if int(num_features) != num_features or num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be ≥ 1, got {num_features}")
        if not float(eps) > 0:
            raise ValueError(f"{type(self).__name__}: eps must be > 0, got {eps}")
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.affine, self.dtype = bool(affine), np.dtype(dtype)
        c = self.num_features
        self.weight = Parameter(np.ones(c, self.dtype)) if affine else None
        self.bias = Parameter(np.zeros(c, self.dtype)) if affine else None
        self.running_mean = np.zeros(c, self.dtype)
        self.running_var = np.ones(c, self.dtype)

    def _axes_and_view(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Reduction axes and the shape that broadcasts a (C,) vector against x."""
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d({self.num_features}): expected input (N, {self.num_features}) "
                f"or (N, {self.num_features}, L), got {tuple(x.shape)}"
            )
        if x.ndim == 2:
            return (0,), (1, -1)
        return (0, 2), (1, -1, 1)

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        axes, view = self._axes_and_view(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        comm = self._comm()
        n = self._values_per_channel(x)
        if self.training:
            if n < 2:
                raise ValueError(
                    f"{type(self).__name__}: training needs more than one value per channel "
                    f"(got input {tuple(x.shape)}); use a batch of ≥ 2 or call eval()"
                )
            mean = _sum(x, axes, comm) / n
            xhat = x - mean.reshape(view)
            var = _sum(np.square(xhat), axes, comm) / n
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += (m * n / (n - 1)) * var
        else:
            xhat = x - self.running_mean.reshape(view)
            var = self.running_var
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype, copy=False)
        xhat *= inv_std.reshape(view)
        # x̂ is what backward needs; eval mode keeps it only when asked (`grad_in_eval`)
        keep = keeps_cache(self)
        cache = (xhat, inv_std, axes, view, self.training, n, comm) if keep else None
        if not self.affine:
            return xhat, cache
        y = xhat * self.weight.data.reshape(view)
        y += self.bias.data.reshape(view)
        return y, cache

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        if cache is None:
            raise no_cache_error(f"{type(self).__name__}({self.num_features})")
        xhat, inv_std, axes, view, training, n, comm = cache
        if grad_out.shape != xhat.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected grad of shape {xhat.shape}, "
                f"got {tuple(grad_out.shape)}"
            )
        grad_out = grad_out.astype(self.dtype, copy=False)
        dbias = grad_out.sum(axis=axes)
        dweight = np.sum(grad_out * xhat, axis=axes)
        if self.affine:
            self.weight.grad += dweight
            self.bias.grad += dbias
        if not input_grad:
            return None
        scale = inv_std if not self.affine else self.weight.data * inv_std
        if not training:  # a fixed affine map: dx = g·γ/√(running_var + ε)
            return grad_out * scale.reshape(view)
        if comm is not None:  # the sums over the global batch (the parameter gradients
            # above stay this rank's part: allreduce_gradients adds the parts up later)
            dbias, dweight = comm.allreduce(np.stack([dbias, dweight]))
        # dx = γ/(n·σ) · (n·g − Σg − x̂·Σ(g·x̂))
        dx = grad_out * n
        dx -= dbias.reshape(view)
        dx -= xhat * dweight.reshape(view)
        dx *= (scale / n).reshape(view)
        return dx

    def _comm(self) -> Communicator | None:
        """The communicator to sum batch statistics over, when training data-parallel."""
        shard = self.shard
        return shard.comm if self.training and shard is not None and shard.comm.size > 1 else None

    def _values_per_channel(self, x: np.ndarray) -> int:
        """n: how many values each channel's statistics average (over the global batch)."""
        rows = x.shape[0] if self._comm() is None else self.shard.total
        return rows * math.prod(x.shape[2:])

    def config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }


def _sum(values: np.ndarray, axes: tuple[int, ...], comm: Communicator | None) -> np.ndarray:
    """Per-channel sums over `axes`, and over every rank's rows when `comm` is given."""
    total = values.sum(axis=axes)
    return total if comm is None else comm.allreduce(total)


class BatchNorm2d(BatchNorm1d):
    """Normalize each channel over the batch and the image: y = γ·x̂ + β, per channel.

    Shapes: x (N, C, H, W) → y (N, C, H, W); weight γ and bias β (C,); statistics over
    n = N·H·W values per channel. Training uses the batch mean and biased variance, and
        running_mean ← (1 − momentum)·running_mean + momentum·μ_B
        running_var  ← (1 − momentum)·running_var  + momentum·σ²_B·n/(n − 1)   (unbiased)
    as PyTorch does; evaluation uses the running statistics (a fixed affine map).
    Backward (training), g = dL/dy:
        dβ = Σg,   dγ = Σ g·x̂,   dx = γ/(n·√(σ²_B + ε)) · (n·g − dβ − x̂·dγ)
    """

    def _axes_and_view(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        c = self.num_features
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(
                f"BatchNorm2d({c}): expected input of shape (N, {c}, H, W), "
                f"got {shape_str(x.shape)}"
            )
        return (0, 2, 3), (1, -1, 1, 1)
