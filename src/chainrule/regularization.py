"""Regularization layers: Dropout (inverted) and BatchNorm1d.

Both behave differently in training and evaluation: `model.train()` / `model.eval()`
switch them (`fit` and `predict` do it for you).
"""

from __future__ import annotations

import numpy as np

from .module import DEFAULT_DTYPE, Module, Parameter, keeps_cache, no_cache_error, resolve_rng


class Dropout(Module):
    """Inverted dropout: in training, zero each unit with probability p, scale the rest.

    y = x ⊙ m / (1 − p),  m_i ~ Bernoulli(1 − p);   dL/dx = dL/dy ⊙ m / (1 − p).
    Scaling at training time keeps E[y] = x, so evaluation is the identity (no rescaling).
    A fixed mask (for tests and gradient checks): `forward(x, mask=m)`, or set the `mask`
    attribute to use it on every call; m is boolean (True = keep) or 0/1, broadcastable to x.
    Shapes: any; y has the shape of x.
    """

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
        self._scale: np.ndarray | None = None
        self._dtype: np.dtype | None = None  # the forward input's: backward computes in it

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        mask = self.mask if mask is None else mask
        self._dtype = x.dtype
        if not self.training or (self.p == 0 and mask is None):
            self._scale = None  # the identity: backward needs nothing
            return x
        if mask is None:
            mask = self.rng.random(x.shape, dtype=np.float32) >= self.p
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
        self._scale = np.multiply(mask, keep, dtype=x.dtype if x.dtype.kind == "f" else None)
        return x * self._scale

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        if self._dtype is not None and self._dtype.kind == "f":
            grad_out = grad_out.astype(self._dtype, copy=False)
        return grad_out if self._scale is None else grad_out * self._scale

    def config(self) -> dict:
        return {"p": self.p} if self.seed is None else {"p": self.p, "seed": self.seed}


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
    In eval mode the forward keeps nothing for backward unless `grad_in_eval` is set (see
    `chainrule.module.set_grad_in_eval`); then backward differentiates the fixed affine map.
    """

    _buffer_names = ("running_mean", "running_var")

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
        self._cache = None

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

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes, view = self._axes_and_view(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        n = x.size // self.num_features
        if self.training:
            if n < 2:
                raise ValueError(
                    f"{type(self).__name__}: training needs more than one value per channel "
                    f"(got input {tuple(x.shape)}); use a batch of ≥ 2 or call eval()"
                )
            mean = x.mean(axis=axes)
            xhat = x - mean.reshape(view)
            var = np.mean(np.square(xhat), axis=axes)
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
        self._cache = (xhat, inv_std, axes, view, self.training) if keep else None
        if not self.affine:
            return xhat
        y = xhat * self.weight.data.reshape(view)
        y += self.bias.data.reshape(view)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise no_cache_error(f"{type(self).__name__}({self.num_features})")
        xhat, inv_std, axes, view, training = self._cache
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
        n = xhat.size // self.num_features
        # dx = γ/(n·σ) · (n·g − Σg − x̂·Σ(g·x̂))
        dx = grad_out * n
        dx -= dbias.reshape(view)
        dx -= xhat * dweight.reshape(view)
        dx *= (scale / n).reshape(view)
        return dx

    def config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }
