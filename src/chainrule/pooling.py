"""Pooling on (N, C, H, W) image batches: MaxPool2D and AvgPool2D.

Each window is reduced separably: first along the rows' width (kw offsets), then along the
columns' height (kh offsets), every offset one strided view of the (padded) input.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._threads import outer_axis, parts, run
from ._windows import along as _along
from ._windows import compact as _compact
from ._windows import like as _like
from ._windows import output_size
from ._windows import pair as _pair
from .module import DEFAULT_DTYPE, Module, keeps_cache, no_cache_error, shape_str


def _max_along(a: np.ndarray, axis: int, k: int, s: int, n: int):
    """Max over windows of k along one axis, and the winning offset (the first on ties).

    Offset t takes over only when strictly greater than the running max, so the winner is
    the largest t that beat it: arg = max_t t·[a_t > running max]. Results follow a's
    memory layout (ufuncs allocate in order "K"), which may be channel-major.
    """
    if k == 1:
        return _along(a, axis, 0, s, n), None

    def offset(t: int) -> np.ndarray:
        v = _along(a, axis, t, s, n)
        # np.maximum is not vectorised on strided rows (3× slower than on contiguous ones),
        # but a copy is: gather the offset's columns first when they are not contiguous
        return v.copy(order="K") if axis == a.ndim - 1 and s > 1 else v

    first, second = offset(0), offset(1)
    arg = np.greater(second, first).view(np.uint8)
    y = np.maximum(first, second, out=first if first.base is None else None)
    for t in range(2, k):
        v = offset(t)
        arg = np.maximum(arg, (v > y) * np.uint8(t))
        np.maximum(y, v, out=y)
    return y, arg


def _block_order(a: np.ndarray) -> tuple[int, ...] | None:
    """The axis order in which `a` fills one block of memory contiguously (largest stride
    first), or None when it does not (a strided view)."""
    order = tuple(int(i) for i in np.argsort([-abs(s) for s in a.strides], kind="stable"))
    return order if a.transpose(order).flags.c_contiguous else None


def _max_of_row_pairs(rows: np.ndarray, ho: int):
    """The pass along H of a 2×2, stride-2 max pool, for `rows` that fill one block of
    memory in any axis order (NCHW, channel-major, channels-last): `_max_along(rows, 2, 2,
    2, ho)` computed faster.

    In that memory the row below value p is `r` values later (r: the H axis's stride), so
    for every p at once
        pairs[p] = max(rows[p], rows[p + r])    and    below[p] = rows[p + r] > rows[p]
    are two whole-array operations; the results are their views at even rows. Pairs of
    odd rows are computed too and wasted, but one long contiguous loop runs several times
    faster than many short ones (rows of 14 or 7 values in the default CNN).
    Returns None when `rows` is not laid out that way.
    """
    n, c, h, wo = rows.shape
    order = _block_order(rows)
    if order is None or rows.strides[2] <= 0:
        return None
    flat = rows.transpose(order).reshape(-1)
    item = rows.itemsize
    r = rows.strides[2] // item
    pairs = np.maximum(flat[:-r], flat[r:])
    below = np.greater(flat[r:], flat[:-r]).view(np.uint8)
    s0, s1, s2, s3 = (s // item for s in rows.strides)

    def even_rows(a: np.ndarray) -> np.ndarray:
        step = a.itemsize
        strides = (s0 * step, s1 * step, 2 * s2 * step, s3 * step)
        return as_strided(a, shape=(n, c, ho, wo), strides=strides)  # no overlaps

    return even_rows(pairs), even_rows(below).copy(order="K")  # backward reads it fast


def _route_along(g: np.ndarray, arg, like: np.ndarray, axis: int, k: int, s: int, out=None):
    """The adjoint of `_max_along`: each gradient entry goes back to its winning offset.

    `like` gives the input's shape and memory layout; the result goes to `out` if given.
    Non-overlapping windows that tile the axis (k == s) are assigned without zero-filling;
    overlapping ones accumulate.
    """
    n, tiles = g.shape[axis], k == s and like.shape[axis] == k * g.shape[axis]
    if k == 1 and tiles:
        if out is None:
            return g
        out[...] = g
        return out
    if out is None:
        d = (np.empty_like if tiles else np.zeros_like)(like, dtype=g.dtype)
    else:
        d = out
        if not tiles:
            d[...] = 0
    if k == 1:
        _along(d, axis, 0, s, n)[...] = g
    elif k == 2 and tiles:  # arg ∈ {0, 1}: g·arg to the second, the rest to the first
        second = np.multiply(g, arg, out=_along(d, axis, 1, s, n))
        np.subtract(g, second, out=_along(d, axis, 0, s, n))
    else:
        for t in range(k):
            win = _along(d, axis, t, s, n)
            if tiles:
                np.multiply(g, arg == t, out=win)
            else:
                win += g * (arg == t)
    return d


class _Pool2D(Module):
    """Shared shape logic of MaxPool2D and AvgPool2D (no padding; stride defaults to kernel).

    Output size as PyTorch: Ho = ⌊(H − kh)/stride⌋ + 1, or rounded up with `ceil_mode=True`
    (a last, partial window covers the leftover rows; it must start inside the input).
    Integer images are converted to float32 on entry.

    Both are separable: a window's max (or sum) over kh×kw is the max (sum) over kh rows
    of the max (sum) over kw columns. So each runs one pass along W, then one along H, each
    a loop over the kernel offsets of elementwise ops on strided views (no loop over
    pixels). For the usual 2×2 pool that is 2 ufunc calls per pass.
    """

    def __init__(self, kernel_size, stride=None, ceil_mode: bool = False) -> None:
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name)
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    @property
    def _name(self) -> str:
        k, s = _compact(self.kernel_size), _compact(self.stride)
        ceil = ", ceil_mode=True" if self.ceil_mode else ""
        return f"{type(self).__name__}({k}, stride={s}{ceil})"

    def _check(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """x as floats (integers become float32) and the output size (Ho, Wo)."""
        if x.ndim != 4:
            raise ValueError(
                f"{self._name}: expected input of shape (N, C, H, W), got {shape_str(x.shape)}"
            )
        if x.dtype.kind != "f":
            x = x.astype(DEFAULT_DTYPE)
        out = output_size(
            self._name, x.shape, self.kernel_size, self.stride, ceil_mode=self.ceil_mode
        )
        return x, out

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._cache = self.forward_with_cache(x)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return self.backward_from_cache(self._cache, grad_out, input_grad)

    def _pad_to_windows(self, x: np.ndarray, out: tuple[int, int], fill: float) -> np.ndarray:
        """x extended at the bottom and right with `fill` so that ceil_mode's partial last
        windows are whole ones (x itself when every window fits)."""
        need = [(o - 1) * s + k for o, s, k in zip(out, self.stride, self.kernel_size)]
        extra_h, extra_w = max(0, need[0] - x.shape[2]), max(0, need[1] - x.shape[3])
        if not (extra_h or extra_w):
            return x
        return np.pad(x, ((0, 0), (0, 0), (0, extra_h), (0, extra_w)), constant_values=fill)

    def _grad(self, grad_out: np.ndarray, expected: tuple, dtype) -> np.ndarray:
        """grad_out checked against the output shape and cast to the forward's dtype."""
        if grad_out.shape != expected:
            raise ValueError(
                f"{self._name}.backward: expected grad of shape {shape_str(expected)}, "
                f"got {shape_str(grad_out.shape)}"
            )
        return grad_out.astype(dtype, copy=False)

    def config(self) -> dict:
        config = {"kernel_size": _compact(self.kernel_size), "stride": _compact(self.stride)}
        if self.ceil_mode:
            config["ceil_mode"] = True
        return config


class MaxPool2D(_Pool2D):
    """Max over each kh×kw window: (N, C, H, W) → (N, C, Ho, Wo), Ho = ⌊(H − kh)/stride⌋ + 1.

    Backward routes each output's gradient to the input that was the maximum (the first one
    in row-major window order on ties, as PyTorch does); every other input gets 0.
    The forward keeps the winning offset of each pass (uint8), not a mask of the input.
    """

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        """y and what backward needs (None in eval mode): the input and each pass's winners."""
        x, (ho, wo) = self._check(x)
        in_shape = x.shape
        x = self._pad_to_windows(x, (ho, wo), -np.inf)
        # images (or channels) are pooled independently: one block of them per thread
        pieces = _image_parts(x)
        if len(pieces) == 1:
            y, winners = self._pool(x, ho, wo)
            y = y.copy() if winners[1] is None and winners[2] is None else y  # 1×1: a view
            winners = [winners]
        else:
            y = np.empty_like(x, shape=(*x.shape[:2], ho, wo))

            def pool_piece(p: tuple):
                y[p], piece_winners = self._pool(x[p], ho, wo)
                return piece_winners

            winners = run(pool_piece, pieces)
        keep = keeps_cache(self)
        return y, ((x, pieces, winners, in_shape, (ho, wo)) if keep else None)

    def _pool(self, x: np.ndarray, ho: int, wo: int):
        """y (N, C, Ho, Wo) and what backward needs: (rows, col_arg, row_arg)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        rows, col_arg = _max_along(x, 3, kw, sw, wo)  # (N, C, H, Wo): max within each row
        fast = (kh, sh) == (2, 2) and _max_of_row_pairs(rows, ho)
        # (N, C, Ho, Wo): max of the row maxima
        y, row_arg = fast or _max_along(rows, 2, kh, sh, ho)
        # the first maximum in row-major order: the top row holding the window's max, and the
        # leftmost maximum of that row, which is exactly what strict > picks in each pass
        return y, (rows, col_arg, row_arg)

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        """dL/dx from dL/dy and a cache of `forward_with_cache` (None unless input_grad)."""
        if cache is None:
            raise no_cache_error(self._name)
        x, pieces, winners, in_shape, out = cache
        grad_out = self._grad(grad_out, (*in_shape[:2], *out), x.dtype)
        if not input_grad:
            return None
        if len(pieces) == 1:
            dx = self._unpool(grad_out, x, *winners[0])
        else:
            dx = np.empty_like(x, dtype=grad_out.dtype)

            def unpool_piece(k: int) -> None:
                p = pieces[k]
                self._unpool(grad_out[p], x[p], *winners[k], out=dx[p])

            run(unpool_piece, range(len(pieces)))
        return dx if dx.shape == in_shape else dx[:, :, : in_shape[2], : in_shape[3]]

    def _unpool(self, g: np.ndarray, x: np.ndarray, rows, col_arg, row_arg, out=None):
        """dL/dx (into `out` if given) from dL/dy (N, C, Ho, Wo): each pass of `_pool`
        undone, the one along H first."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        g = g if row_arg is None else _like(g, row_arg)
        g_rows = _route_along(g, row_arg, rows, 2, kh, sh)
        return _route_along(g_rows, col_arg, x, 3, kw, sw, out=out)


def _image_parts(x: np.ndarray) -> list[tuple]:
    """Pieces of (N, C, H, W) images for the threads: blocks of whole images, or of whole
    channels when the batch is channel-major (then each block is one stretch of memory)."""
    return parts(x, axis=1 if outer_axis(x) == 1 else 0)


class AvgPool2D(_Pool2D):
    """Mean over each kh×kw window: (N, C, H, W) → (N, C, Ho, Wo).

    Backward spreads each output's gradient evenly, g / (kh·kw), over its window. With
    `ceil_mode` a partial last window averages the inputs it covers (as PyTorch does without
    padding). Backward needs only shapes, so it also works after an eval-mode forward.
    """

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """y and its shapes (all backward needs, so kept in eval mode too)."""
        x, (ho, wo) = self._check(x)
        (kh, kw), (sh, sw), in_shape = self.kernel_size, self.stride, x.shape
        x = self._pad_to_windows(x, (ho, wo), 0.0)
        rows = _along(x, 3, 0, sw, wo).copy(order="K")
        for t in range(1, kw):
            rows += _along(x, 3, t, sw, wo)
        y = _along(rows, 2, 0, sh, ho).copy(order="K")
        for t in range(1, kh):
            y += _along(rows, 2, t, sh, ho)
        y *= self._inverse_counts(in_shape, (ho, wo), y.dtype)
        return y, (in_shape, x.shape, rows.shape, (ho, wo), x.dtype)  # shapes only

    def _inverse_counts(self, in_shape: tuple, out: tuple, dtype) -> np.ndarray:
        """1/(inputs in each window): 1/(kh·kw), or per window (Ho, Wo) with ceil_mode."""
        counts = []
        for axis in (0, 1):
            k, s, n = self.kernel_size[axis], self.stride[axis], in_shape[2 + axis]
            start = np.arange(out[axis]) * s
            counts.append(np.minimum(start + k, n) - start)
        return (1.0 / np.multiply.outer(counts[0], counts[1])).astype(dtype)

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        """dL/dx from dL/dy and the shapes `forward_with_cache` kept."""
        if cache is None:
            raise no_cache_error(self._name)
        in_shape, padded_shape, rows_shape, out, dtype = cache
        grad_out = self._grad(grad_out, (*in_shape[:2], *out), dtype)
        if not input_grad:
            return None
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        g = grad_out * self._inverse_counts(in_shape, out, dtype)
        g_rows = np.zeros(rows_shape, dtype)
        for t in range(kh):
            _along(g_rows, 2, t, sh, out[0])[...] += g
        dx = np.zeros(padded_shape, dtype)
        for t in range(kw):
            _along(dx, 3, t, sw, out[1])[...] += g_rows
        return dx if dx.shape == in_shape else dx[:, :, : in_shape[2], : in_shape[3]]
