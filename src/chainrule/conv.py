"""Convolution, pooling and 2-D batch normalisation on (N, C, H, W) image batches.

A convolution is a matrix product in disguise (im2col): copy every kh×kw patch of the
(padded) input into a column of a matrix `cols` of shape (C·kh·kw, N·Ho·Wo), and then
    Y = W₂ · cols        with W₂ = weight reshaped to (O, C·kh·kw),   Y: (O, N·Ho·Wo)
is one big GEMM that BLAS runs at full speed. The backward pass is two more GEMMs,
    dW₂ = dY · colsᵀ     and     dcols = W₂ᵀ · dY,
then col2im adds each column of dcols back onto the input pixels it was copied from.
Both copies loop over the kh·kw kernel offsets (9 for a 3×3 kernel), never over pixels or
images: offset (i, j) of every patch is one strided slice of the input.
See docs/conv.md for the shapes drawn out.
"""

from __future__ import annotations

import numpy as np

from .init import initialize
from .module import DEFAULT_DTYPE, Module, Parameter, resolve_rng

# In eval mode a forward pass needs no columns afterwards, so a big batch is convolved in
# chunks whose column matrix stays under this many bytes (memory, not speed, is the limit).
EVAL_COLS_BYTES = 64 * 2**20


def _pair(value, what: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints → (a, b), each ≥ minimum."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ValueError(f"{layer}: {what} must be an int ≥ {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _compact(pair: tuple[int, int]) -> int | list[int]:
    """(3, 3) → 3 and (3, 5) → [3, 5]: what config() stores (JSON has no tuples)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def _shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def output_size(
    layer: str, shape: tuple, kernel: tuple, stride: tuple, padding: tuple = (0, 0)
) -> tuple[int, int]:
    """(Ho, Wo) = ((H + 2p − k)/s + 1, ...) for an input of `shape` (N, C, H, W).

    Raises a ValueError naming `layer` when the kernel does not fit the padded input or when
    the stride does not divide H + 2p − k exactly (a strided window would hang off the edge).
    """
    sizes = []
    for axis, name in ((2, "height"), (3, "width")):
        n, k, s, p = shape[axis], kernel[axis - 2], stride[axis - 2], padding[axis - 2]
        if n + 2 * p < k:
            raise ValueError(
                f"{layer}: kernel {kernel[0]}×{kernel[1]} is larger than the padded input "
                f"{shape[2] + 2 * padding[0]}×{shape[3] + 2 * padding[1]} "
                f"(input {_shape_str(shape)}, padding {_compact(padding)})"
            )
        if (n + 2 * p - k) % s:
            raise ValueError(
                f"{layer}: input {_shape_str(shape)} gives a non-integer output {name}: "
                f"({n} + 2·{p} − {k})/{s} + 1 = {(n + 2 * p - k) / s + 1:g}; change the "
                f"padding, kernel size or stride, or crop the input"
            )
        sizes.append((n + 2 * p - k) // s + 1)
    return sizes[0], sizes[1]


def _window(x: np.ndarray, i: int, j: int, stride: tuple, out: tuple) -> np.ndarray:
    """x[:, :, i + s·a, j + s·b] for a < Ho, b < Wo: kernel offset (i, j) of every window."""
    (sh, sw), (ho, wo) = stride, out
    return x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]


class Conv2D(Module):
    """2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) batches.

    Shapes: x (N, C_in, H, W) → y (N, C_out, Ho, Wo), Ho = (H + 2·padding − kh)/stride + 1;
    weight (C_out, C_in, kh, kw), bias (C_out,).
        y[n, o, a, b] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]
    Computed as one GEMM on im2col columns (see the module docstring); backward is
        dL/dW = dY · colsᵀ,  dL/db = Σ dY,  dL/dx = col2im(Wᵀ · dY).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        init: str = "he_uniform",
        rng: np.random.Generator | None = None,
        seed: int | None = None,
        dtype=DEFAULT_DTYPE,
    ) -> None:
        if int(in_channels) != in_channels or int(out_channels) != out_channels or min(
            in_channels, out_channels
        ) < 1:
            raise ValueError(
                f"Conv2D: in_channels and out_channels must be ints ≥ 1, got {in_channels}, "
                f"{out_channels}"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        self.padding = _pair(padding, "padding", "Conv2D", minimum=0)
        self.init, self.dtype = init, np.dtype(dtype)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(initialize(init, shape, resolve_rng(rng, seed), self.dtype))
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype)) if bias else None
        self._pad_buffer: np.ndarray | None = None  # reused between calls
        self._cols_buffer: np.ndarray | None = None

    @property
    def _name(self) -> str:
        return f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={_compact(self.kernel_size)})"

    # ---- im2col / col2im ------------------------------------------------------------------
    def _padded(self, x: np.ndarray) -> np.ndarray:
        """x with `padding` zeros around H and W, written into a buffer kept between calls
        (its border is zero once and stays zero: only the interior is ever written)."""
        ph, pw = self.padding
        if ph == pw == 0:
            return x
        n, c, h, w = x.shape
        shape = (n, c, h + 2 * ph, w + 2 * pw)
        buf = self._pad_buffer
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            buf = self._pad_buffer = np.zeros(shape, x.dtype)
        buf[:, :, ph : ph + h, pw : pw + w] = x
        return buf

    def _im2col(self, xp: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        """Columns (C·kh·kw, N·Ho·Wo): row (c, i, j) holds kernel offset (i, j) of channel c
        for every output pixel (n, a, b). One strided copy per kernel offset."""
        n, c = xp.shape[:2]
        (kh, kw), (ho, wo) = self.kernel_size, out
        shape = (c, kh, kw, n, ho, wo)
        buf = self._cols_buffer
        if buf is None or buf.shape != shape or buf.dtype != xp.dtype:
            buf = self._cols_buffer = np.empty(shape, xp.dtype)
        xt = xp.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp): the copy below then runs in order
        for i in range(kh):
            for j in range(kw):
                buf[:, i, j] = _window(xt, i, j, self.stride, out)
        return buf.reshape(c * kh * kw, n * ho * wo)

    def _col2im(self, dcols: np.ndarray, x_shape: tuple, out: tuple[int, int]) -> np.ndarray:
        """The adjoint of im2col: add each column entry back onto the pixel it came from."""
        n, c, h, w = x_shape
        (kh, kw), (ph, pw), (ho, wo) = self.kernel_size, self.padding, out
        dxp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dcols.dtype)  # channel-major, as cols
        d = dcols.reshape(c, kh, kw, n, ho, wo)
        for i in range(kh):
            for j in range(kw):
                _window(dxp, i, j, self.stride, out)[...] += d[:, i, j]
        return dxp[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)

    # ---- forward / backward ---------------------------------------------------------------
    def _check(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._name}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {_shape_str(x.shape)}"
            )
        return output_size(self._name, x.shape, self.kernel_size, self.stride, self.padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._check(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        n = x.shape[0]
        w2 = self.weight.data.reshape(self.out_channels, -1)
        per_image = w2.shape[1] * out[0] * out[1] * x.itemsize
        if not self.training and n > 1 and n * per_image > EVAL_COLS_BYTES:
            step = max(1, EVAL_COLS_BYTES // per_image)  # bound memory for big eval batches
            return np.concatenate([self._forward(x[i : i + step], out, w2) for i in range(0, n, step)])
        y = self._forward(x, out, w2)
        self._cache = (x.shape, out)
        return y

    def _forward(self, x: np.ndarray, out: tuple[int, int], w2: np.ndarray) -> np.ndarray:
        self._cols = cols = self._im2col(self._padded(x), out)
        y = w2 @ cols  # (O, N·Ho·Wo): one GEMM for the whole batch
        if self.bias is not None:
            y += self.bias.data[:, None]
        # (O, N, Ho, Wo) → (N, O, Ho, Wo) as a view: the next layer reads it in any order
        return y.reshape(self.out_channels, x.shape[0], *out).transpose(1, 0, 2, 3)

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        x_shape, out = self._cache
        expected = (x_shape[0], self.out_channels, *out)
        if grad_out.shape != expected:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {_shape_str(expected)}, "
                f"got {_shape_str(grad_out.shape)}"
            )
        # dY as (O, N·Ho·Wo), the layout of the forward GEMM's output (free if already so)
        g = np.ascontiguousarray(grad_out.transpose(1, 0, 2, 3), dtype=self.dtype)
        g = g.reshape(self.out_channels, -1)
        cols = self._cols
        # dW₂ = dY · colsᵀ, computed as (cols · dYᵀ)ᵀ: BLAS splits the long N·Ho·Wo sum better
        self.weight.grad += (cols @ g.T).T.reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=1)
        if not input_grad:
            return None
        dcols = self.weight.data.reshape(self.out_channels, -1).T @ g  # (C·kh·kw, N·Ho·Wo)
        return self._col2im(dcols, x_shape, out)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": _compact(self.kernel_size),
            "stride": _compact(self.stride),
            "padding": _compact(self.padding),
            "bias": self.bias is not None,
        }


class _Pool2D(Module):
    """Shared shape logic of MaxPool2D and AvgPool2D (no padding; stride defaults to kernel)."""

    def __init__(self, kernel_size, stride=None) -> None:
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name)

    @property
    def _name(self) -> str:
        return f"{type(self).__name__}({_compact(self.kernel_size)}, stride={_compact(self.stride)})"

    @property
    def _tiles(self) -> bool:
        """Non-overlapping windows (kernel == stride): the fast reshape path applies."""
        return self.kernel_size == self.stride

    def _check(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 4:
            raise ValueError(
                f"{self._name}: expected input of shape (N, C, H, W), got {_shape_str(x.shape)}"
            )
        return output_size(self._name, x.shape, self.kernel_size, self.stride)

    def _offsets(self):
        kh, kw = self.kernel_size
        return [(i, j) for i in range(kh) for j in range(kw)]

    def _blocks(self, a: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        """Tiles as a view (N, C, Ho, kh, Wo, kw) of a (N, C, H, W) array (kernel == stride)."""
        (kh, kw), (ho, wo) = self.kernel_size, out
        return a.reshape(a.shape[0], a.shape[1], ho, kh, wo, kw)

    def config(self) -> dict:
        return {"kernel_size": _compact(self.kernel_size), "stride": _compact(self.stride)}


class MaxPool2D(_Pool2D):
    """Max over each kh×kw window: (N, C, H, W) → (N, C, Ho, Wo), Ho = (H − kh)/stride + 1.

    Backward routes each output's gradient to the input that was the maximum (the first one
    in row-major window order on ties, as PyTorch does); every other input gets 0.
    The forward keeps, per output, the index of the winning kernel offset (int8/int16).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._check(x)
        offsets = self._offsets()
        if not self.training and self._tiles:  # no backward: a plain reduction over tiles
            self._cache = None
            return self._blocks(x, out).max(axis=(3, 5))
        # running max over the kh·kw offsets; `arg` remembers which offset won (strict >,
        # so the first maximum wins ties)
        y = _window(x, *offsets[0], self.stride, out).copy()
        arg = np.zeros(y.shape, np.int8 if len(offsets) < 128 else np.int16)
        for k, (i, j) in enumerate(offsets[1:], start=1):
            v = _window(x, i, j, self.stride, out)
            np.copyto(arg, k, where=v > y)
            np.maximum(y, v, out=y)
        self._cache = (x.shape, out, arg)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self._name}.backward: call forward in training mode first")
        x_shape, out, arg = self._cache
        if grad_out.shape != arg.shape:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {_shape_str(arg.shape)}, "
                f"got {_shape_str(grad_out.shape)}"
            )
        if not input_grad:
            return None
        tiles_all = self._tiles and x_shape[2:] == (out[0] * self.kernel_size[0], out[1] * self.kernel_size[1])
        dx = (np.empty if tiles_all else np.zeros)(x_shape, grad_out.dtype)
        for k, (i, j) in enumerate(self._offsets()):
            win = _window(dx, i, j, self.stride, out)
            if tiles_all:  # each input pixel is in exactly one window: assign, no zero-fill
                np.multiply(grad_out, arg == k, out=win)
            else:
                win += grad_out * (arg == k)
        return dx


class AvgPool2D(_Pool2D):
    """Mean over each kh×kw window: (N, C, H, W) → (N, C, Ho, Wo).

    Backward spreads each output's gradient evenly, g / (kh·kw), over its window.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._check(x)
        self._cache = (x.shape, out)
        kh, kw = self.kernel_size
        scale = 1.0 / (kh * kw)
        if self._tiles and x.shape[2:] == (out[0] * kh, out[1] * kw):
            return self._blocks(x, out).sum(axis=(3, 5)) * np.asarray(scale, x.dtype)
        offsets = self._offsets()
        y = _window(x, *offsets[0], self.stride, out).copy()
        for i, j in offsets[1:]:
            y += _window(x, i, j, self.stride, out)
        y *= np.asarray(scale, x.dtype)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        x_shape, out = self._cache
        expected = (x_shape[0], x_shape[1], *out)
        if grad_out.shape != expected:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {_shape_str(expected)}, "
                f"got {_shape_str(grad_out.shape)}"
            )
        if not input_grad:
            return None
        kh, kw = self.kernel_size
        g = grad_out * np.asarray(1.0 / (kh * kw), grad_out.dtype)
        if self._tiles and x_shape[2:] == (out[0] * kh, out[1] * kw):
            dx = np.empty(x_shape, g.dtype)
            self._blocks(dx, out)[...] = g[:, :, :, None, :, None]
            return dx
        dx = np.zeros(x_shape, g.dtype)
        for i, j in self._offsets():
            _window(dx, i, j, self.stride, out)[...] += g
        return dx


class BatchNorm2d(Module):
    """Normalize each channel over the batch and the image: y = γ·x̂ + β, per channel.

    Shapes: x (N, C, H, W) → y (N, C, H, W); weight γ and bias β (C,); statistics over
    n = N·H·W values per channel. Training uses the batch mean and biased variance, and
        running_mean ← (1 − momentum)·running_mean + momentum·μ_B
        running_var  ← (1 − momentum)·running_var  + momentum·σ²_B·n/(n − 1)   (unbiased)
    as PyTorch does; evaluation uses the running statistics (a fixed affine map).
    Backward (training), g = dL/dy:
        dβ = Σg,   dγ = Σ g·x̂,   dx = γ/(n·√(σ²_B + ε)) · (n·g − dβ − x̂·dγ)
    """

    _buffer_names = ("running_mean", "running_var")
    _axes, _view = (0, 2, 3), (1, -1, 1, 1)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype=DEFAULT_DTYPE,
    ) -> None:
        if int(num_features) != num_features or num_features < 1:
            raise ValueError(f"BatchNorm2d: num_features must be an int ≥ 1, got {num_features}")
        if not float(eps) > 0:
            raise ValueError(f"BatchNorm2d: eps must be > 0, got {eps}")
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.affine, self.dtype = bool(affine), np.dtype(dtype)
        c = self.num_features
        self.weight = Parameter(np.ones(c, self.dtype)) if affine else None
        self.bias = Parameter(np.zeros(c, self.dtype)) if affine else None
        self.running_mean = np.zeros(c, self.dtype)
        self.running_var = np.ones(c, self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        c, axes, view = self.num_features, self._axes, self._view
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(
                f"BatchNorm2d({c}): expected input of shape (N, {c}, H, W), "
                f"got {_shape_str(x.shape)}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        n = x.size // c
        if self.training:
            if n < 2:
                raise ValueError(
                    f"BatchNorm2d({c}): training needs more than one value per channel "
                    f"(got input {_shape_str(x.shape)}); use a bigger batch or call eval()"
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
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype)
        xhat *= inv_std.reshape(view)
        self._cache = (xhat, inv_std, self.training)
        if not self.affine:
            return xhat
        y = xhat * self.weight.data.reshape(view)
        y += self.bias.data.reshape(view)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        xhat, inv_std, training = self._cache
        axes, view = self._axes, self._view
        if grad_out.shape != xhat.shape:
            raise ValueError(
                f"BatchNorm2d({self.num_features}).backward: expected grad of shape "
                f"{_shape_str(xhat.shape)}, got {_shape_str(grad_out.shape)}"
            )
        dbias = grad_out.sum(axis=axes)
        dweight = np.sum(grad_out * xhat, axis=axes)
        if self.affine:
            self.weight.grad += dweight
            self.bias.grad += dbias
        if not input_grad:
            return None
        scale = inv_std if not self.affine else self.weight.data * inv_std
        if not training:  # running statistics are constants: dx = g·γ/√(running_var + ε)
            return grad_out * scale.reshape(view)
        n = xhat.size // self.num_features
        # dx = γ/(n·σ) · (n·g − Σg − x̂·Σ(g·x̂)): the batch mean and variance depend on x too
        dx = grad_out * np.asarray(n, grad_out.dtype)
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
