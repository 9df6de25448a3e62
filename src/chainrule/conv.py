"""Convolution on (N, C, H, W) image batches: Conv2D, computed channels-last with im2col.

A convolution is a matrix product in disguise (im2col): copy every kh×kw patch of the
(padded) input into a row of a matrix `cols` of shape (N·Ho·Wo, kh·kw·C), and then
    Y = cols · W₂        with W₂ = weight laid out as (kh·kw·C, O),   Y: (N·Ho·Wo, O)
is one big GEMM for the whole batch, which BLAS runs at full speed (a column of ones appended
to `cols` adds the bias in the same product). The backward pass is two more GEMMs,
    dW₂ = colsᵀ · dY     and     dcols = dY · W₂ᵀ,
then col2im adds each entry of dcols back onto the input pixel it was copied from.

Memory is channels-last, (N, H, W, C): the C channels of one pixel are neighbours. So the
copies move runs of kw·C contiguous values, Y's rows are already the output's pixels (y is Y
viewed as (N, O, Ho, Wo), no copy), and a gradient laid out like y is dY without a copy.
im2col is one copy of a strided view of the padded input; col2im loops over the kh·kw
kernel offsets (9 for a 3×3 kernel), never over pixels or images: offset (i, j) of every
patch is one strided view.
docs/conv.md draws the shapes.
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._threads import run, slices
from ._windows import compact, output_size, pair
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

# Values per window row (kw·C) below which im2col copies offset by offset into a transposed
# matrix: measured for the default CNN's first layer (kw·C = 3) 0.16 ms against 0.98 ms.
MIN_RUN = 16


def channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → its (N, H, W, C) view: contiguous when x came from a Conv2D."""
    return x.transpose(0, 2, 3, 1)


def _free(buffers: list[np.ndarray], shape: tuple, dtype) -> np.ndarray | None:
    """A buffer of `buffers` of this shape and dtype that nothing else refers to any more
    (no cache, no view of it): the list's reference, the loop's and getrefcount's own."""
    for buf in buffers:
        if buf.shape == shape and buf.dtype == dtype and sys.getrefcount(buf) <= 3:
            return buf
    return None


class Conv2D(Module):
    """2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) batches.

    Shapes: x (N, C_in, H, W) → y (N, C_out, Ho, Wo), Ho = ⌊(H + 2·padding − kh)/stride⌋ + 1
    (as PyTorch: input rows and columns past the last whole window are not used);
    weight (C_out, C_in, kh, kw), bias (C_out,).
        y[n, o, a, b] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]
    Computed as one GEMM on im2col rows (see the module docstring); backward is
        dL/dW = colsᵀ · dY,  dL/db = Σ dY,  dL/dx = col2im(dY · W₂ᵀ).

    `forward_with_cache` / `backward_from_cache` are the stateless pair: the cache holds
    this call's own `cols`, so several forwards may run before their backwards.
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
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = pair(stride, "stride", "Conv2D")
        self.padding = pair(padding, "padding", "Conv2D", minimum=0)
        self.init, self.dtype = init, np.dtype(dtype)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(initialize(init, shape, resolve_rng(rng, seed), self.dtype))
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype)) if bias else None
        self._pad_buffer: np.ndarray | None = None  # scratch of one call, kept between calls
        self._spare_cols: list[np.ndarray] = []  # column buffers, reused once no cache holds them
        self._dcols_buffer: np.ndarray | None = None  # scratch of one backward call
        self._cache = None

    @property
    def _name(self) -> str:
        k = compact(self.kernel_size)
        return f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={k})"

    # ---- the layout of the weights ---------------------------------------------------------
    def _w2(self) -> np.ndarray:
        """The weight as the (O, kh·kw·C) matrix whose row o is filter o in (i, j, c) order."""
        return self.weight.data.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    # ---- im2col / col2im ------------------------------------------------------------------
    def _padded(self, x: np.ndarray) -> np.ndarray:
        """x channels-last inside a zero border: (N, Hp, Wp, C). The buffer is scratch (only
        im2col reads it) kept between calls; its border is zeroed once and stays zero, as
        only the interior is written, so it is reused only for the same (N, C, H, W, dtype):
        a 6×4 image in the buffer of a 4×6 one would leave old pixels in the border."""
        n, c, h, w = x.shape
        ph, pw = self.padding
        shape = (n, h + 2 * ph, w + 2 * pw, c)
        buf = self._pad_buffer
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            buf = self._pad_buffer = np.zeros(shape, x.dtype)
        xt = channels_last(x)

        def copy_images(part: slice) -> None:
            buf[part, ph : ph + h, pw : pw + w] = xt[part]

        run(copy_images, slices(n, x.size))  # blocks of images on the threads
        return buf

    def _offset(self, xpad: np.ndarray, i: int, j: int, out: tuple[int, int]) -> np.ndarray:
        """(N, Ho, Wo, C) view: xpad[n, s·a + i, s·b + j, c], kernel offset (i, j) of every
        window."""
        (sh, sw), (ho, wo) = self.stride, out
        return xpad[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]

    def _windows(self, xpad: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        """(N, Ho, Wo, kh, kw·C) read-only view: window (a, b) of image n, row i of it. In
        channels-last memory the kw pixels of a window row are kw·C contiguous values, so
        one copy of this view is the whole im2col, in runs of kw·C values."""
        n, _, _, c = xpad.shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        s_n, s_h, s_w, item = xpad.strides
        return as_strided(
            xpad,
            shape=(n, *out, kh, kw * c),
            strides=(s_n, sh * s_h, sw * s_w, s_h, item),
            writeable=False,
        )

    def _im2col(self, xpad: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        """Rows (N·Ho·Wo, kh·kw·C [+ 1]): row (n, a, b) holds window (a, b) of image n in
        (i, j, c) order. With a bias, a last column of ones folds it into the GEMM
        (y = [cols | 1]·[W₂; b]). The buffer is reused only when no cache (or anything
        else) refers to it any more.

        When a window row holds few values (kw·C < MIN_RUN, e.g. the first layer's 3 grey
        pixels) runs that short copy slowly, so the matrix is stored transposed instead,
        (kh·kw·C [+ 1], N·Ho·Wo), and built offset by offset along whole rows of the image
        (6× faster there); the returned `cols` is its transposed view, which BLAS reads as
        fast."""
        n, c = xpad.shape[0], xpad.shape[3]
        (kh, kw), k = self.kernel_size, xpad.shape[3] * self.kernel_size[0] * self.kernel_size[1]
        m, ones = n * out[0] * out[1], self.bias is not None
        transposed = kw * c < MIN_RUN
        shape = (k + ones, m) if transposed else (m, k + ones)
        store = _free(self._spare_cols, shape, xpad.dtype)
        if store is None:
            store = np.empty(shape, xpad.dtype)
            (store[k:] if transposed else store[:, k:])[...] = 1  # the bias: written once
            self._spare_cols = [*self._spare_cols[-1:], store]  # keep at most two
        if transposed:
            rows_t = store[:k].reshape(kh, kw, c, n, *out)

            def copy_images(part: slice) -> None:  # blocks of images on the threads
                for i in range(kh):
                    for j in range(kw):
                        view = self._offset(xpad[part], i, j, out)  # (n, Ho, Wo, C)
                        rows_t[i, j, :, part] = view.transpose(3, 0, 1, 2)

        else:
            cols = store[:, :k].reshape(n, out[0], out[1], kh, kw * c)
            windows = self._windows(xpad, out)

            def copy_images(part: slice) -> None:  # blocks of images on the threads
                cols[part] = windows[part]

        run(copy_images, slices(n, store.size))
        return store.T if transposed else store

    def _input_grad(self, g: np.ndarray, x_shape: tuple, out: tuple[int, int]) -> np.ndarray:
        """dL/dx (N, C, H, W), a view of a fresh channels-last array, from dY (N·Ho·Wo, O).

        col2im, offset by offset: dcols of kernel offset (i, j) is dY · W_ij, (N·Ho·Wo, C)
        with W_ij = weight[:, :, i, j] (O, C), added onto the pixels that offset read. The
        kh·kw products are one batched GEMM whose output keeps each offset contiguous, so
        each add runs along whole rows of Wo·C values (not the C of one pixel)."""
        n, c, h, w = x_shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        w_ij = self.weight.data.transpose(2, 3, 0, 1).reshape(kh * kw, self.out_channels, c)
        shape = (kh * kw, g.shape[0], c)
        scratch = self._dcols_buffer  # scratch of this call only: nothing returned views it
        if scratch is None or scratch.shape != shape or scratch.dtype != g.dtype:
            scratch = self._dcols_buffer = np.empty(shape, g.dtype)
        dcols = np.matmul(g, w_ij, out=scratch).reshape(kh * kw, n, *out, c)
        dpad = np.zeros((n, h + 2 * ph, w + 2 * pw, c), g.dtype)

        def add_offsets(part: slice) -> None:  # blocks of images on the threads
            for i in range(kh):
                for j in range(kw):
                    view = self._offset(dpad[part], i, j, out)
                    np.add(view, dcols[i * kw + j, part], out=view)

        run(add_offsets, slices(n, dcols.size))
        return dpad[:, ph : ph + h, pw : pw + w].transpose(0, 3, 1, 2)

    # ---- forward / backward ---------------------------------------------------------------
    def _check(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._name}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {shape_str(x.shape)}"
            )
        return output_size(self._name, x.shape, self.kernel_size, self.stride, self.padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = None  # the last call's columns may be reused now
        y, self._cache = self.forward_with_cache(x)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return self.backward_from_cache(self._cache, grad_out, input_grad)

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        """y (N, O, Ho, Wo), a view of channels-last memory, and what backward needs: this
        call's columns and shapes (None in eval mode, which keeps nothing)."""
        out = self._check(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if keeps_cache(self):
            y, cols = self._forward(x, out)
            return y, (cols, x.shape, out)
        # eval: nothing is kept for a backward pass, so bound the scratch memory of a big
        # batch by convolving it in chunks, and let go of the scratch afterwards
        per_image = (self.weight.data[0].size + 1 + self.out_channels) * out[0] * out[1]
        step = max(1, EVAL_COLS_BYTES // (per_image * x.itemsize))
        n = x.shape[0]
        y = np.empty((n, *out, self.out_channels), self.dtype)
        for i in range(0, n, step):
            y[i : i + step] = channels_last(self._forward(x[i : i + step], out)[0])
        self._pad_buffer, self._spare_cols, self._dcols_buffer = None, [], None
        return y.transpose(0, 3, 1, 2), None

    def _forward(self, x: np.ndarray, out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        cols = self._im2col(self._padded(x), out)
        w = self._w2()
        if self.bias is not None:
            w = np.concatenate([w, self.bias.data[:, None]], axis=1)
        y = cols @ w.T  # one GEMM for the whole batch: (N·Ho·Wo, O), channels-last
        return y.reshape(x.shape[0], *out, self.out_channels).transpose(0, 3, 1, 2), cols

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        """Adds dL/dW and dL/db into .grad (in place) and returns dL/dx (None unless
        `input_grad`), from dL/dy (N, O, Ho, Wo) and a cache of `forward_with_cache`."""
        if cache is None:
            raise no_cache_error(self._name)
        cols, x_shape, out = cache
        expected = (x_shape[0], self.out_channels, *out)
        if grad_out.shape != expected:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {shape_str(expected)}, "
                f"got {shape_str(grad_out.shape)}"
            )
        # dY (N·Ho·Wo, O): free when grad_out is laid out like y (channels-last)
        g = np.ascontiguousarray(channels_last(grad_out), dtype=self.dtype)
        g = g.reshape(-1, self.out_channels)
        # dW₂ᵀ = colsᵀ · dY (kh·kw·C [+ 1], O), the orientation OpenBLAS runs fastest when
        # kh·kw·C is small (2× for the first layer); the ones column gives Σ dY = dL/db
        grads = cols.T @ g
        k = self.weight.data[0].size
        kh, kw = self.kernel_size
        dw = grads[:k].reshape(kh, kw, self.in_channels, self.out_channels)
        self.weight.grad += dw.transpose(3, 2, 0, 1)
        if self.bias is not None:
            self.bias.grad += grads[k]
        if not input_grad:
            return None
        return self._input_grad(g, x_shape, out)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": compact(self.kernel_size),
            "stride": compact(self.stride),
            "padding": compact(self.padding),
            "bias": self.bias is not None,
        }


def __getattr__(name: str):
    # Old import path: the pools live in `chainrule.pooling` (which does not import this
    # module: both take their window helpers from `_windows`).
    if name in ("MaxPool2D", "AvgPool2D", "_Pool2D"):
        from . import pooling

        return getattr(pooling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
