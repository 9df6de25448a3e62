"""Convolution on (N, C, H, W) image batches: Conv2D and its im2col/col2im copies.

A convolution is a matrix product in disguise (im2col): copy every kh×kw patch of the
(padded) input into a column of a matrix `cols` of shape (C·kh·kw, N·Ho·Wo), and then
    Y = W₂ · cols        with W₂ = weight reshaped to (O, C·kh·kw),   Y: (O, N·Ho·Wo)
is one big GEMM for the whole batch, which BLAS runs at full speed (a row of ones appended
to `cols` adds the bias in the same product). The backward pass is two more GEMMs,
    dW₂ = dY · colsᵀ     and     dcols = W₂ᵀ · dY,
then col2im adds each column of dcols back onto the input pixels it was copied from.
Both copies loop over the kh·kw kernel offsets (9 for a 3×3 kernel), never over pixels or
images: offset (i, j) of every patch is one strided view of the input.
docs/conv.md draws the shapes and explains the memory layout (channel-major) and the
"wide" columns that make those copies fast.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._threads import run, slices
from .init import initialize
from .module import (
    DEFAULT_DTYPE,
    Module,
    Parameter,
    keeps_cache,
    no_cache_error,
    resolve_rng,
    shape_str,
)
from .normalization import BatchNorm2d  # noqa: F401  (old import path: re-exported)

# In eval mode a forward pass keeps nothing for backward, so a big batch is convolved in
# chunks whose scratch (columns + GEMM output) stays under this many bytes.
EVAL_COLS_BYTES = 64 * 2**20


def _pair(value, what: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints → (a, b), each ≥ minimum."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ValueError(
            f"{layer}: {what} must be an int ≥ {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _compact(pair: tuple[int, int]) -> int | list[int]:
    """(3, 3) → 3 and (3, 5) → [3, 5]: what config() stores (JSON has no tuples)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def output_size(
    layer: str,
    shape: tuple,
    kernel: tuple,
    stride: tuple,
    padding: tuple = (0, 0),
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """(Ho, Wo) = (⌊(H + 2p − k)/s⌋ + 1, ...) for an input of `shape` (N, C, H, W), as PyTorch.

    Floor: rows or columns left over after the last whole window are not used. With
    `ceil_mode` (pooling) the division rounds up instead, so a last, partial window covers
    them, provided it starts inside the input or its left padding (PyTorch's rule).
    Raises a ValueError naming `layer` when the kernel does not fit the padded input.
    """
    sizes = []
    for axis in (2, 3):
        n, k, s, p = shape[axis], kernel[axis - 2], stride[axis - 2], padding[axis - 2]
        if n + 2 * p < k:
            raise ValueError(
                f"{layer}: kernel {kernel[0]}×{kernel[1]} is larger than the padded input "
                f"{shape[2] + 2 * padding[0]}×{shape[3] + 2 * padding[1]} "
                f"(input {shape_str(shape)}, padding {_compact(padding)})"
            )
        size = (n + 2 * p - k) // s + 1
        if ceil_mode:
            size = -(-(n + 2 * p - k) // s) + 1
            if (size - 1) * s >= n + p:  # the last window would start in the right padding
                size -= 1
        sizes.append(size)
    return sizes[0], sizes[1]


def _like(a: np.ndarray, template: np.ndarray) -> np.ndarray:
    """`a`, copied if needed so its memory runs in the same axis order as `template`'s
    (elementwise ops on arrays of mixed layouts iterate slowly)."""
    if np.array_equal(np.argsort(a.strides), np.argsort(template.strides)):
        return a
    out = np.empty_like(template, dtype=a.dtype)
    out[...] = a
    return out


def _window(x: np.ndarray, i: int, j: int, stride: tuple, out: tuple) -> np.ndarray:
    """x[:, :, i + s·a, j + s·b] for a < Ho, b < Wo: kernel offset (i, j) of every window."""
    (sh, sw), (ho, wo) = stride, out
    return x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]


class Conv2D(Module):
    """2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) batches.

    Shapes: x (N, C_in, H, W) → y (N, C_out, Ho, Wo), Ho = ⌊(H + 2·padding − kh)/stride⌋ + 1
    (as PyTorch: input rows and columns past the last whole window are not used);
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
        if (
            int(in_channels) != in_channels
            or int(out_channels) != out_channels
            or min(in_channels, out_channels) < 1
        ):
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
        self._pad_buffer: np.ndarray | None = None  # scratch kept between calls
        self._cols_buffer: np.ndarray | None = None
        self._grad_buffer: np.ndarray | None = None
        self._pad_key: tuple | None = None

    @property
    def _name(self) -> str:
        k = _compact(self.kernel_size)
        return f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={k})"

    # ---- im2col / col2im ------------------------------------------------------------------
    # Images are handled channel-major, (C, N, H, W), so that every copy below runs over
    # long contiguous stretches and the GEMM output (O, N·Ho·Wo) is already in that order.
    # With a horizontal stride of 1 the columns are "wide": each output row is computed for
    # all Wp padded positions, the last Wp − Wo of them garbage (discarded from y, given zero
    # gradient). Then kernel offset (i, j) of every window is ONE strided view of the flat
    # padded image, rows of Wp contiguous values, instead of short rows of Wo values.
    def _geometry(self, x_shape: tuple, out: tuple[int, int]) -> tuple[int, int, int, int]:
        """(Hp, Wp, Wc, L): padded size, computed columns per output row, flat image length."""
        (ph, pw), kw = self.padding, self.kernel_size[1]
        hp, wp = x_shape[2] + 2 * ph, x_shape[3] + 2 * pw
        wc = wp if self._wide(wp, out[1]) else out[1]
        return hp, wp, wc, hp * wp + kw - 1  # kw − 1 spare zeros: the last wide row overruns

    def _wide(self, wp: int, wo: int) -> bool:
        """Whether to use wide columns: they need stride 1 across, and they pay when the
        C·kh·kw rows of `cols` (copied faster) outnumber the O rows of the output (compacted
        and padded again for backward at a cost) and the Wp − Wo garbage columns add under
        10% to the GEMMs. Measured on the default CNN: compact columns are faster for both
        convs (1→32: 9 rows < 32; 32→64 on 14×14: 16/14 = 14% more GEMM work)."""
        rows = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return self.stride[1] == 1 and rows >= self.out_channels and 10 * (wp - wo) < wo

    def _offset_view(self, flat: np.ndarray, i: int, j: int, geo, out) -> np.ndarray:
        """(C, N, Ho, Wc) view of the padded images `flat` (C, N, L): pixel (s·a + i, s·b + j)
        for every output position (a, b), i.e. kernel offset (i, j) of every window."""
        hp, wp, wc, _ = geo
        if wc == wp:  # wide: stride 1 across, rows of wp values sh·wp apart
            c, n, _ = flat.shape
            s0, s1, item = flat.strides[0], flat.strides[1], flat.strides[2]
            return as_strided(
                flat[:, :, i * wp + j :],
                shape=(c, n, out[0], wp),
                strides=(s0, s1, self.stride[0] * wp * item, item),
                writeable=True,
            )
        img = flat[:, :, : hp * wp].reshape(flat.shape[0], flat.shape[1], hp, wp)
        return _window(img, i, j, self.stride, out)

    def _padded(self, x: np.ndarray, geo) -> np.ndarray:
        """The channel-major padded images as a flat (C, N, L) buffer kept between calls: its
        border is zeroed once and stays zero, as only the interior is ever written. It is
        reused only for the same geometry (N, C, H, W, dtype): a 6×4 image in the buffer of a
        4×6 one would leave old pixels where the new border should be."""
        n, c, h, w = x.shape
        (ph, pw), (hp, wp, _, length) = self.padding, geo
        key = (*x.shape, x.dtype)
        buf = self._pad_buffer
        if buf is None or self._pad_key != key:
            buf = self._pad_buffer = np.zeros((c, n, length), x.dtype)
            self._pad_key = key
        img = buf[:, :, : hp * wp].reshape(c, n, hp, wp)

        def copy_images(part: slice) -> None:
            img[:, part, ph : ph + h, pw : pw + w] = x[part].transpose(1, 0, 2, 3)

        run(copy_images, slices(n, x.size))  # blocks of images on the threads
        return buf

    def _im2col(self, flat: np.ndarray, geo, out) -> np.ndarray:
        """Columns (C·kh·kw [+ 1], N·Ho·Wc): row (c, i, j) holds kernel offset (i, j) of
        channel c for every output position (n, a, b); one strided copy per kernel offset.
        With a bias, a last row of ones folds it into the GEMM (y = [W | b]·[cols; 1])."""
        c, n, _ = flat.shape
        kh, kw = self.kernel_size
        shape = (c, kh, kw, n, out[0], geo[2])
        rows, m = c * kh * kw + (self.bias is not None), n * out[0] * geo[2]
        store = self._cols_buffer
        if store is None or store.shape != (rows, m) or store.dtype != flat.dtype:
            store = self._cols_buffer = np.empty((rows, m), flat.dtype)
            store[c * kh * kw :] = 1  # the bias row: written once, never overwritten
        cols = store[: c * kh * kw].reshape(shape)

        def copy_offsets(part: slice) -> None:  # blocks of images on the threads
            for i in range(kh):
                for j in range(kw):
                    cols[:, i, j, part] = self._offset_view(flat[:, part], i, j, geo, out)

        run(copy_offsets, slices(n, cols.size))
        return store

    def _col2im(self, dcols: np.ndarray, x_shape: tuple, geo, out) -> np.ndarray:
        """The adjoint of im2col: add every column entry back onto the pixel it came from."""
        n, c, h, w = x_shape
        (kh, kw), (ph, pw), (hp, wp, wc, length) = self.kernel_size, self.padding, geo
        dflat = np.zeros((c, n, length), dcols.dtype)  # fresh: dx is returned as its view
        d = dcols.reshape(c, kh, kw, n, out[0], wc)

        def add_offsets(part: slice) -> None:  # blocks of images on the threads
            for i in range(kh):
                for j in range(kw):
                    self._offset_view(dflat[:, part], i, j, geo, out)[...] += d[:, i, j, part]

        run(add_offsets, slices(n, d.size))
        dimg = dflat[:, :, : hp * wp].reshape(c, n, hp, wp)
        return dimg[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)

    # ---- forward / backward ---------------------------------------------------------------
    def _check(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._name}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {shape_str(x.shape)}"
            )
        return output_size(self._name, x.shape, self.kernel_size, self.stride, self.padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # the explicit driver keeps one cache at a time, so its columns may stay in the
        # reused scratch buffer
        y, self._cache = self._forward_with_scratch(x)
        return y

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        y, cache = self._forward_with_scratch(x)
        if cache is not None and cache[0] is self._cols_buffer:
            self._cols_buffer = None  # this call's cache owns the columns: the next allocates
        return y, cache

    def _forward_with_scratch(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        out = self._check(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        n, o = x.shape[0], self.out_channels
        # scratch per image: the columns and the GEMM's (wide) output
        per_image = (self.weight.data[0].size + 1 + o) * out[0] * self._geometry(x.shape, out)[2]
        per_image *= x.itemsize
        if keeps_cache(self):
            return self._forward(x, out)  # (y, cache)
        # eval: nothing is kept for a backward pass, so bound the scratch memory of a big
        # batch by convolving it in chunks, straight into the (channel-major) result, and
        # let go of the scratch afterwards (training reallocates it once)
        step = max(1, EVAL_COLS_BYTES // per_image)
        y = np.empty((o, n, *out), self.dtype)
        for i in range(0, n, step):
            y[:, i : i + step] = self._forward(x[i : i + step], out)[0].transpose(1, 0, 2, 3)
        # no backward after this call
        self._pad_buffer = self._cols_buffer = self._grad_buffer = self._pad_key = None
        return y.transpose(1, 0, 2, 3), None

    def _forward(self, x: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        geo = self._geometry(x.shape, out)
        cols = self._im2col(self._padded(x, geo), geo, out)
        cache = (cols, x.shape, geo, out)
        w = self.weight.data.reshape(self.out_channels, -1)
        if self.bias is not None:
            w = np.concatenate([w, self.bias.data[:, None]], axis=1)
        y = w @ cols  # one GEMM for the whole batch: (O, N·Ho·Wc)
        # (O, N, Ho, Wc) → drop garbage columns → (N, O, Ho, Wo), channel-major in memory
        y = y.reshape(self.out_channels, x.shape[0], out[0], geo[2])[:, :, :, : out[1]]
        if geo[2] != out[1]:
            y = y.copy()  # compact: the next layer's ufuncs run 2× faster on whole rows
        return y.transpose(1, 0, 2, 3), cache

    def _grad_columns(self, grad_out: np.ndarray, geo) -> np.ndarray:
        """dL/dY laid out like the forward GEMM's output, (O, N·Ho·Wc), zero on garbage."""
        g = grad_out.transpose(1, 0, 2, 3)  # (O, N, Ho, Wo); free if channel-major already
        n, ho, wo, wc = g.shape[1], g.shape[2], g.shape[3], geo[2]
        if wc == wo:
            return np.ascontiguousarray(g, dtype=self.dtype).reshape(self.out_channels, -1)
        shape = (self.out_channels, n, ho, wc)
        buf = self._grad_buffer
        if buf is None or buf.shape != shape or buf.dtype != self.dtype:
            buf = self._grad_buffer = np.zeros(shape, self.dtype)  # garbage columns stay 0
        buf[:, :, :, :wo] = g
        return buf.reshape(self.out_channels, -1)

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        if cache is None:
            raise no_cache_error(self._name)
        cols, x_shape, geo, out = cache
        expected = (x_shape[0], self.out_channels, *out)
        if grad_out.shape != expected:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {shape_str(expected)}, "
                f"got {shape_str(grad_out.shape)}"
            )
        g = self._grad_columns(grad_out, geo)
        # dW₂ = dY · colsᵀ, computed as (cols · dYᵀ)ᵀ, the orientation OpenBLAS runs fastest;
        # the bias row of ones makes its last row Σ dY = dL/db
        grads = cols @ g.T  # (C·kh·kw [+ 1], O)
        k = self.weight.data[0].size
        self.weight.grad += grads[:k].T.reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad += grads[k]
        if not input_grad:
            return None
        dcols = self.weight.data.reshape(self.out_channels, -1).T @ g  # (C·kh·kw, N·Ho·Wc)
        return self._col2im(dcols, x_shape, geo, out)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": _compact(self.kernel_size),
            "stride": _compact(self.stride),
            "padding": _compact(self.padding),
            "bias": self.bias is not None,
        }


def __getattr__(name: str):
    # Old import path: the pools moved to `chainrule.pooling`. Looked up lazily because
    # pooling imports this module's shape helpers (a top-level import would be a cycle).
    if name in ("MaxPool2D", "AvgPool2D", "_Pool2D"):
        from . import pooling

        return getattr(pooling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
