"""Tensor autograd: the chain rule of `value.py`, now on whole arrays.

A `Tensor` holds an ndarray `data` and, after `backward()`, the gradient `grad` of the output
with respect to it (same shape). Every operation on Tensors is a `Function`: its `forward`
computes on plain arrays and saves what its `backward` needs on a context `ctx`; the output
Tensor keeps that context, and the context keeps the inputs — one graph node per operation.

`backward()` visits the nodes in reverse topological order (a heap ordered by creation, no
recursion, so a 100 000-operation chain works) and hands each node dL/d(output). Two rules
live here, in the engine, rather than in every operation:

- Broadcasting is undone centrally: if an input of shape (3,) was broadcast against (4, 3),
  its gradient arrives shaped (4, 3) and is summed back over the broadcast axes (each copy of
  an element contributed to the output, so their gradients add). The result must have the
  input's shape exactly; any other shape is an error naming the operation.
- Gradients add where a tensor feeds several operations (fan-in: `b = a + a` gives 2).

The operations themselves (add, matmul, exp, sum, indexing, ...) are in `tensor_ops.py`,
which registers them in `OPS`; Tensor's operators look them up there, so this file needs no
import of that one.
"""

from __future__ import annotations

import itertools
from heapq import heappop, heappush
from typing import Any

import numpy as np

# name → Function class, filled in by tensor_ops.py (imported with the package)
OPS: dict[str, Any] = {}

_FREED = object()  # marks a node whose graph was already used by a backward pass
_sequence = itertools.count()  # creation order of operation results (see _run_backward)


class _GradMode:
    enabled = True


class no_grad:  # noqa: N801 - named like PyTorch's context manager
    """`with cr.no_grad():` — operations inside record nothing (no graph, no saved arrays).

    Use it for evaluation and for updates to parameters that must not become graph nodes.
    """

    def __enter__(self) -> no_grad:
        self._previous = _GradMode.enabled
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc) -> None:
        _GradMode.enabled = self._previous


def is_grad_enabled() -> bool:
    """False inside `with no_grad():`."""
    return _GradMode.enabled


class Context:
    """What one graph node keeps: the Function's backward, its inputs, and whatever the
    forward saved (`ctx.save_for_backward(...)`, or any attribute set on ctx).

    `needs_input_grad[i]` says whether input i wants a gradient, so a backward may skip
    work (as PyTorch's)."""

    def __init__(self, function: type[Function], inputs: tuple, needs: tuple[bool, ...]):
        self.function = function
        self.inputs = inputs
        self.needs_input_grad = needs
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Function:
    """An operation with a hand-written derivative, PyTorch's shape:

        class Cube(cr.Function):
            @staticmethod
            def forward(ctx, x):           # plain ndarrays in, an ndarray out
                ctx.save_for_backward(x)
                return x ** 3
            @staticmethod
            def backward(ctx, grad):       # dL/d(output) → dL/d(input), one per input
                (x,) = ctx.saved_tensors
                return grad * 3 * x ** 2

        y = Cube.apply(t)                  # Tensors (or numbers) in, a Tensor out

    `backward` returns one gradient per input (a tuple when there are several; None for an
    input that needs none). Gradients may come back shaped like the broadcast output: the
    engine sums them back to each input's shape.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any) -> Tensor:
        arrays, needs = [], []
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                needs.append(x.requires_grad)
            else:
                arrays.append(x)
                needs.append(False)
        record = _GradMode.enabled and True in needs
        # without a graph the context lives only through forward (it saves for nobody)
        if record:
            ctx = Context(cls, inputs, tuple(needs))
        else:
            ctx = Context(cls, (), (False,) * len(needs))
        out = Tensor.__new__(Tensor)  # the result: no checks needed
        out.data = np.asarray(cls.forward(ctx, *arrays))
        out.grad = None
        out.requires_grad = record
        out._ctx = ctx if record else None
        out._seq = next(_sequence)
        return out


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...], op: str = "") -> np.ndarray:
    """dL/d(input) from a gradient shaped like the broadcast result: sum over the leading
    axes broadcasting added and over the axes where the input had size 1.

    Shapes: grad (..., *broadcast(shape)) → shape. Any other shape is an error naming `op`.
    """
    grad = np.asarray(grad)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra >= 0:
        if extra:
            grad = grad.sum(axis=tuple(range(extra)))
        ones = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if ones:
            grad = grad.sum(axis=ones, keepdims=True)
    if grad.shape != shape:
        raise RuntimeError(
            f"{op or 'a Function'}.backward returned a gradient of shape {grad.shape} for an "
            f"input of shape {shape}; return one gradient per input, shaped like that input "
            "or like the broadcast output"
        )
    return grad


class Tensor:
    """An ndarray that records the operations applied to it, for `backward()`.

    Shapes: any. `requires_grad=True` marks a leaf whose gradient you want (e.g. a weight);
    results of operations on such tensors require grad too and remember how they were made.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_seq", "__weakref__")
    __array_ufunc__ = None  # `ndarray + Tensor` defers to Tensor.__radd__ (no object arrays)

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        data = data.data if isinstance(data, Tensor) else np.asarray(data)
        if requires_grad and data.dtype.kind not in "fc":
            raise ValueError(
                f"Tensor: only floating arrays can require gradients, got dtype {data.dtype}; "
                "convert first, e.g. Tensor(x.astype(np.float64), requires_grad=True)"
            )
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None

    # ---- the array it holds --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """The same array, cut off from the graph (requires_grad False)."""
        return Tensor(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def node(self) -> Context | None:
        """The graph node that computed this tensor (its Function, inputs and saved arrays);
        None for a leaf, and once backward has freed the graph."""
        return None if self._ctx is _FREED else self._ctx

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        return f"Tensor({body}{', requires_grad=True' if self.requires_grad else ''})"

    # ---- backpropagation -----------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Fill `.grad` of every leaf this tensor depends on with dL/d(leaf), L this tensor.

        `grad` is dL/d(self), shaped like self; a single-element tensor defaults to 1.
        Leaf gradients add up over calls (zero them between steps); the graph is freed
        afterwards, so a second backward needs a new forward.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: a tensor of shape {self.shape} needs an explicit gradient, "
                    "e.g. t.backward(np.ones(t.shape)), or reduce it first: t.sum().backward()"
                )
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.shape:
            try:
                grad = np.broadcast_to(grad, self.shape).copy()
            except ValueError:
                raise ValueError(
                    f"backward: a gradient of shape {grad.shape} does not fit the tensor's "
                    f"shape {self.shape}"
                ) from None
        _run_backward(self, grad)

    def _accumulate(self, grad: np.ndarray) -> None:
        """grad += g for a leaf (a copy on first use: g may be shared with other inputs)."""
        if self.grad is None:
            self.grad = np.array(grad, dtype=self.data.dtype)
        else:
            self.grad += grad

    # ---- operators: the Functions in tensor_ops.py -----------------------------------------
    def __add__(self, other):
        return OPS["add"].apply(self, other)

    def __radd__(self, other):
        return OPS["add"].apply(other, self)

    def __sub__(self, other):
        return OPS["sub"].apply(self, other)

    def __rsub__(self, other):
        return OPS["sub"].apply(other, self)

    def __mul__(self, other):
        return OPS["mul"].apply(self, other)

    def __rmul__(self, other):
        return OPS["mul"].apply(other, self)

    def __truediv__(self, other):
        return OPS["div"].apply(self, other)

    def __rtruediv__(self, other):
        return OPS["div"].apply(other, self)

    def __pow__(self, other):
        return OPS["pow"].apply(self, other)

    def __rpow__(self, other):
        return OPS["pow"].apply(other, self)

    def __matmul__(self, other):
        return OPS["matmul"].apply(self, other)

    def __rmatmul__(self, other):
        return OPS["matmul"].apply(other, self)

    def __neg__(self):
        return OPS["neg"].apply(self)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        return OPS["getitem"].apply(self, index)

    def exp(self) -> Tensor:
        return OPS["exp"].apply(self)

    def log(self) -> Tensor:
        return OPS["log"].apply(self)

    def tanh(self) -> Tensor:
        return OPS["tanh"].apply(self)

    def sigmoid(self) -> Tensor:
        return OPS["sigmoid"].apply(self)

    def relu(self) -> Tensor:
        return OPS["relu"].apply(self)

    def abs(self) -> Tensor:
        return OPS["abs"].apply(self)

    def sqrt(self) -> Tensor:
        return OPS["sqrt"].apply(self)

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return OPS["sum"].apply(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        return OPS["mean"].apply(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return OPS["max"].apply(self, axis, keepdims)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return OPS["reshape"].apply(self, shape)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return OPS["transpose"].apply(self, axes or None)

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return self.transpose()


def _run_backward(root: Tensor, grad: np.ndarray) -> None:
    """Hand each node dL/d(output), in reverse order of creation, and add up what arrives.

    Every node is created after its inputs, so its sequence number is larger than theirs:
    taking the reachable nodes largest number first (a heap, no recursion) visits each one
    after every node that uses it, when its gradient is complete (PyTorch orders its engine
    the same way). Leaves take their gradient as it arrives.
    """
    ctx = root._ctx
    if ctx is None:
        root._accumulate(grad)
        return
    if ctx is _FREED:
        raise _freed_error()
    grads = {id(root): grad}
    heap = [(-root._seq, root)]
    while heap:
        t = heappop(heap)[1]
        g = grads.pop(id(t))
        ctx = t._ctx
        if ctx is _FREED:
            raise _freed_error()
        t._ctx = _FREED  # let go of the inputs and saved arrays as we go
        input_grads = ctx.function.backward(ctx, g)
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        if len(input_grads) != len(ctx.inputs):
            raise RuntimeError(
                f"{ctx.function.__name__}.backward returned {len(input_grads)} gradient(s) for "
                f"{len(ctx.inputs)} input(s); return one per input of apply (None for a number)"
            )
        for x, need, gx in zip(ctx.inputs, ctx.needs_input_grad, input_grads):
            if not need or gx is None:
                continue
            if type(gx) is not np.ndarray or gx.shape != x.data.shape:
                gx = unbroadcast(gx, x.data.shape, ctx.function.__name__)
            if x._ctx is None:
                x._accumulate(gx)  # a leaf: the gradient we were asked for
                continue
            key = id(x)
            if key in grads:
                grads[key] = grads[key] + gx  # fan-in adds
            else:
                grads[key] = gx
                heappush(heap, (-x._seq, x))


def _freed_error() -> RuntimeError:
    return RuntimeError(
        "backward: this graph was already used by a backward pass and freed; run the forward "
        "again to build a new one"
    )
