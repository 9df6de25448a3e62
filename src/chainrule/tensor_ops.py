"""The primitive operations on Tensors: small Functions, each derivative one line beside its
forward. Inputs are plain ndarrays (or numbers); a gradient may come back shaped like the
broadcast output, because the engine (`tensor.unbroadcast`) sums it back to each input.

The elementwise nonlinearities reuse the activation tables, so σ, tanh and ReLU and their
derivatives are written once in the package (`activations.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import ACTIVATIONS, DERIVATIVES
from .tensor import OPS, Context, Function, Tensor


def _op(name: str):
    """Register a Function class as the Tensor operation `name`."""

    def register(cls: type[Function]) -> type[Function]:
        OPS[name] = cls
        return cls

    return register


@_op("add")
class Add(Function):
    """a + b;  d/da = 1, d/db = 1."""

    @staticmethod
    def forward(ctx: Context, a, b):
        return np.add(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        return g, g


@_op("sub")
class Sub(Function):
    """a − b;  d/da = 1, d/db = −1."""

    @staticmethod
    def forward(ctx: Context, a, b):
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        return g, -g


@_op("mul")
class Mul(Function):
    """a·b;  d/da = b, d/db = a."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved_tensors
        return g * b, g * a


@_op("div")
class Div(Function):
    """a / b;  d/da = 1/b, d/db = −a/b²."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return np.divide(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved_tensors
        return g / b, -g * a / (b * b)


@_op("pow")
class Pow(Function):
    """a^b;  d/da = b·a^(b−1), d/db = a^b·log a (asked for only when b is a Tensor)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        a, b, y = ctx.saved_tensors
        da = g * b * np.power(a, b - 1) if ctx.needs_input_grad[0] else None
        db = g * y * np.log(a) if ctx.needs_input_grad[1] else None
        return da, db


@_op("matmul")
class MatMul(Function):
    """A @ B with NumPy's rules (batched, 1-D operands promoted);
    d/dA = G Bᵀ, d/dB = Aᵀ G on the promoted (≥ 2-D) shapes, batch axes summed by the engine."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved_tensors
        a2 = a[None, :] if a.ndim == 1 else a  # (k,) is the row (1, k)
        b2 = b[:, None] if b.ndim == 1 else b  # (k,) is the column (k, 1)
        g2 = g[..., None] if b.ndim == 1 else g  # the column axis first, then the row axis
        g2 = g2[..., None, :] if a.ndim == 1 else g2
        da = g2 @ np.swapaxes(b2, -1, -2) if ctx.needs_input_grad[0] else None
        db = np.swapaxes(a2, -1, -2) @ g2 if ctx.needs_input_grad[1] else None
        if da is not None and a.ndim == 1:
            da = da[..., 0, :]
        if db is not None and b.ndim == 1:
            db = db[..., 0]
        return da, db


@_op("neg")
class Neg(Function):
    """−a;  d/da = −1."""

    @staticmethod
    def forward(ctx: Context, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx: Context, g):
        return -g


@_op("exp")
class Exp(Function):
    """e^a;  d/da = e^a (the output itself)."""

    @staticmethod
    def forward(ctx: Context, a):
        y = np.exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        return g * ctx.saved_tensors[0]


@_op("log")
class Log(Function):
    """log a;  d/da = 1/a."""

    @staticmethod
    def forward(ctx: Context, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: Context, g):
        return g / ctx.saved_tensors[0]


@_op("sqrt")
class Sqrt(Function):
    """√a;  d/da = 1/(2√a)."""

    @staticmethod
    def forward(ctx: Context, a):
        y = np.sqrt(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        return g / (2 * ctx.saved_tensors[0])


@_op("abs")
class Abs(Function):
    """|a|;  d/da = sign(a) (0 at the kink, as PyTorch)."""

    @staticmethod
    def forward(ctx: Context, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx: Context, g):
        return g * np.sign(ctx.saved_tensors[0])


class _Activation(Function):
    """y = f(a) with f and f' from the activation tables: d/da = DERIVATIVES[name](g, a, y)."""

    name = ""

    @classmethod
    def apply(cls, *inputs) -> Tensor:  # the subclass's name reaches forward through ctx
        return super().apply(*inputs, cls.name)

    @staticmethod
    def forward(ctx: Context, a, name):
        y = ACTIVATIONS[name](a)
        ctx.save_for_backward(a, y)
        ctx.name = name
        return y

    @staticmethod
    def backward(ctx: Context, g):
        a, y = ctx.saved_tensors
        return DERIVATIVES[ctx.name](g, a, y), None


@_op("tanh")
class Tanh(_Activation):
    name = "tanh"


@_op("sigmoid")
class Sigmoid(_Activation):
    name = "sigmoid"


@_op("relu")
class ReLU(_Activation):
    name = "relu"


def _expand(g: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """A reduction's output gradient put back on the reduced axes (size 1 there)."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None and not keepdims:
        g = np.reshape(g, (1,) * len(shape))
    return g


@_op("sum")
class Sum(Function):
    """Σ a over `axis`;  d/da = 1 for every element summed, so g is copied back out."""

    @staticmethod
    def forward(ctx: Context, a, axis, keepdims):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, g):
        g = _expand(g, ctx.shape, ctx.axis, ctx.keepdims)
        return np.broadcast_to(g, ctx.shape).copy(), None, None


@_op("mean")
class Mean(Function):
    """(1/m) Σ a over `axis` (m values each);  d/da = 1/m."""

    @staticmethod
    def forward(ctx: Context, a, axis, keepdims):
        y = np.mean(a, axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        ctx.count = a.size // max(np.size(y), 1) if a.size else 1
        return y

    @staticmethod
    def backward(ctx: Context, g):
        g = _expand(g, ctx.shape, ctx.axis, ctx.keepdims) / ctx.count
        return np.broadcast_to(g, ctx.shape).copy(), None, None


@_op("max")
class Max(Function):
    """max a over `axis`;  d/da = 1 at the maximum, 0 elsewhere, shared evenly between
    ties (as torch.amax)."""

    @staticmethod
    def forward(ctx: Context, a, axis, keepdims):
        y = np.max(a, axis=axis, keepdims=True)
        ctx.save_for_backward(a == y)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return y if keepdims else np.squeeze(y, axis=axis)

    @staticmethod
    def backward(ctx: Context, g):
        (winners,) = ctx.saved_tensors
        share = winners / winners.sum(axis=ctx.axis, keepdims=True)
        return _expand(g, ctx.shape, ctx.axis, ctx.keepdims) * share, None, None


@_op("reshape")
class Reshape(Function):
    """a viewed in another shape;  the gradient is reshaped back."""

    @staticmethod
    def forward(ctx: Context, a, shape):
        ctx.shape = a.shape
        return np.reshape(a, shape)

    @staticmethod
    def backward(ctx: Context, g):
        return np.reshape(g, ctx.shape), None


@_op("transpose")
class Transpose(Function):
    """a with its axes permuted;  the gradient is permuted back by the inverse permutation."""

    @staticmethod
    def forward(ctx: Context, a, axes):
        ctx.axes = axes
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, g):
        axes = ctx.axes
        return np.transpose(g, None if axes is None else np.argsort(axes)), None


@_op("getitem")
class GetItem(Function):
    """a[index] (slices, integer arrays, masks);  each picked element's gradient is added back
    at its place (`np.add.at`, so an index picked twice gets both)."""

    @staticmethod
    def forward(ctx: Context, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx: Context, g):
        da = np.zeros(ctx.shape, np.result_type(ctx.dtype, g.dtype))
        np.add.at(da, ctx.index, g)
        return da, None


class Concat(Function):
    """Tensors joined along `axis`;  each input's gradient is its slice of g."""

    @staticmethod
    def forward(ctx: Context, axis, *arrays):
        ctx.axis = axis
        ctx.bounds = np.cumsum([np.shape(a)[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, g):
        return (None, *np.split(g, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """Tensors stacked along a new `axis`;  each input's gradient is its slice of g."""

    @staticmethod
    def forward(ctx: Context, axis, *arrays):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, g):
        return (None, *(np.take(g, i, axis=ctx.axis) for i in range(g.shape[ctx.axis])))


class Where(Function):
    """cond ? a : b elementwise;  d/da = [cond], d/db = [not cond]."""

    @staticmethod
    def forward(ctx: Context, cond, a, b):
        cond = np.asarray(cond, dtype=bool)
        ctx.save_for_backward(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, g):
        (cond,) = ctx.saved_tensors
        return None, np.where(cond, g, 0), np.where(cond, 0, g)


def _tensors(tensors: Sequence, what: str) -> list:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{what}: needs at least one tensor, got an empty sequence")
    return tensors


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (np.concatenate), e.g. [x_row, h] → one input."""
    return Concat.apply(axis, *_tensors(tensors, "concat"))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack equally shaped tensors along a new axis (np.stack)."""
    return Stack.apply(axis, *_tensors(tensors, "stack"))


def where(cond, a, b) -> Tensor:
    """Elementwise cond ? a : b with broadcasting; cond is a boolean array (or Tensor),
    and no gradient flows to it."""
    if isinstance(cond, Tensor):
        cond = cond.data
    return Where.apply(cond, a, b)
