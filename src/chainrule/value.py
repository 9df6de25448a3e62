"""Scalar reverse-mode automatic differentiation: the `Value` class.

A `Value` is one number that remembers how it was made. It holds

- ``data``: the number itself (a Python float),
- ``grad``: the "global" gradient dL/d(this value) of the final output L it feeds into,
- ``_prev``: the values it was computed from (its children, in operand order),
- ``_op``: the name of the operation that made it, for display,
- ``_backward``: a function ``f(out)`` applying the chain rule for that operation,
- ``label``: an optional name, for display,
- ``_seq``: a serial number, larger than its children's (it orders the backward pass).

Every operation computes its result (the forward pass) and names a backward function
defined right beside it. The backward function receives the output node ``out`` and adds
``local derivative * out.grad`` into each child's ``grad`` (the chain rule):

    dL/d(child) += d(out)/d(child) * dL/d(out)

``+=`` rather than ``=`` is what makes a value used twice collect both contributions.

`Value.backward()` sets dL/dL = 1 and visits the graph in reverse topological order (every
node before the nodes it was computed from). Every node gets a serial number ``_seq`` when it
is made, always after its children, so sorting the nodes found by a (loop, not recursive)
graph search by that number gives the order, even for a graph a million operations deep.

Gradient bookkeeping (like PyTorch):

- ``backward()`` first resets ``grad`` to 0 on every *interior* node of the graph (the nodes
  made by an operation), so calling it twice does not double interior gradients.
- *Leaves* (values you created yourself: weights, inputs) accumulate: a second
  ``backward()`` adds to their ``grad``. Call ``zero_grad()`` (or ``MLP.zero_grad()``) between
  training steps.

Example (seed 000)::

    >>> x, w, b, y = Value(2.0), Value(0.5), Value(0.23), Value(2.5)
    >>> L = (y - (x * w + b)) ** 2
    >>> L.backward()
    >>> round(w.grad, 12)
    -5.08
"""

# Longer than the package's ~400-line guide on purpose: the scalar engine is one class read top
# to bottom, each operation's local derivative right beside its forward, and it imports nothing
# else from chainrule; splitting it would break the page a reader learns backprop from.

from __future__ import annotations

import itertools
import math
import numbers
import operator
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

__all__ = ["Value", "GraphvizNotFoundError"]

#: Gives each new Value the next serial number (its ``_seq``), so parents outnumber children.
_serial_numbers = itertools.count()
#: The sort key of `Value._interior_order`: a node's serial number.
_seq_of = operator.attrgetter("_seq")


class GraphvizNotFoundError(RuntimeError):
    """Raised by `Value.draw` when the graphviz package or the ``dot`` program is missing."""


def _to_float(x: object) -> float:
    """Convert a real number to float; anything else is a TypeError naming its type."""
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"Value needs a real number, got {type(x).__name__}: {x!r}")


def _as_value(x: object) -> Value | None:
    """Return ``x`` as a Value (wrapping a real number as a constant leaf), or None."""
    if isinstance(x, Value):
        return x
    if isinstance(x, numbers.Real):
        return Value(float(x))
    return None


class Value:
    """A scalar that records the operations applied to it and can backpropagate through them.

    Args:
        data: the number (any real number; stored as a Python float).
        label: an optional name shown by ``repr``, ``to_dot`` and ``draw``.

    ``_children`` and ``_op`` are filled in by the operations; you rarely pass them.
    """

    __slots__ = ("data", "grad", "_prev", "_op", "_backward", "label", "_seq")

    data: float
    grad: float
    _prev: tuple[Value, ...]
    _op: str
    _backward: Callable[[Value], None] | None
    label: str
    _seq: int

    def __init__(
        self,
        data: float,
        _children: Iterable[Value] = (),
        _op: str = "",
        label: str = "",
    ) -> None:
        if type(data) is not float:
            data = _to_float(data)
        self.data = data
        self.grad = 0.0
        self._prev = _children if type(_children) is tuple else tuple(_children)
        self._op = _op
        self._backward = None
        self.label = label
        self._seq = next(_serial_numbers)  # larger than every child's: see backward()

    def __repr__(self) -> str:
        name = f", label={self.label!r}" if self.label else ""
        op = f", op={self._op!r}" if self._op else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{op}{name})"

    # ------------------------------------------------------------------ binary operations
    # Each forward returns NotImplemented for operands that are neither Values nor real
    # numbers, so Python raises its usual TypeError naming both operand types.

    def __add__(self, other: Value | float) -> Value:
        """out = a + b."""
        if type(other) is not Value:
            other = _as_value(other)
            if other is None:
                return NotImplemented
        out = Value(self.data + other.data, (self, other), "+")
        out._backward = Value._add_backward
        return out

    @staticmethod
    def _add_backward(out: Value) -> None:
        # d(a + b)/da = 1,  d(a + b)/db = 1
        a, b = out._prev
        g = out.grad
        a.grad += g
        b.grad += g

    def __sub__(self, other: Value | float) -> Value:
        """out = a - b."""
        if type(other) is not Value:
            other = _as_value(other)
            if other is None:
                return NotImplemented
        out = Value(self.data - other.data, (self, other), "-")
        out._backward = Value._sub_backward
        return out

    @staticmethod
    def _sub_backward(out: Value) -> None:
        # d(a - b)/da = 1,  d(a - b)/db = -1
        a, b = out._prev
        g = out.grad
        a.grad += g
        b.grad -= g

    def __mul__(self, other: Value | float) -> Value:
        """out = a * b."""
        if type(other) is not Value:
            other = _as_value(other)
            if other is None:
                return NotImplemented
        out = Value(self.data * other.data, (self, other), "*")
        out._backward = Value._mul_backward
        return out

    @staticmethod
    def _mul_backward(out: Value) -> None:
        # d(a * b)/da = b,  d(a * b)/db = a
        a, b = out._prev
        g = out.grad
        a.grad += b.data * g
        b.grad += a.data * g

    def __truediv__(self, other: Value | float) -> Value:
        """out = a / b (ZeroDivisionError when b == 0, as for floats)."""
        if type(other) is not Value:
            other = _as_value(other)
            if other is None:
                return NotImplemented
        out = Value(self.data / other.data, (self, other), "/")
        out._backward = Value._div_backward
        return out

    @staticmethod
    def _div_backward(out: Value) -> None:
        # d(a / b)/da = 1 / b,  d(a / b)/db = -a / b**2 = -out / b
        a, b = out._prev
        g = out.grad
        a.grad += g / b.data
        b.grad -= out.data / b.data * g

    def __pow__(self, other: Value | float) -> Value:
        """out = a ** n for a number n, or a ** b for a Value b (then a must be > 0)."""
        if isinstance(other, Value):
            return self._pow_value(other)
        if not isinstance(other, numbers.Real):
            return NotImplemented
        n = other if type(other) in (int, float) else float(other)
        result = self.data**n
        if isinstance(result, complex):
            raise ValueError(
                f"{self.data!r} ** {n!r} is not a real number "
                "(a negative base needs an integer exponent)"
            )

        def _pow_backward(out: Value) -> None:
            # d(a ** n)/da = n * a ** (n - 1)   (taken as 0 when n == 0)
            (a,) = out._prev
            if n == 0:
                return
            try:
                local = n * a.data ** (n - 1)
            except ZeroDivisionError:  # a == 0 and n < 1: the slope is infinite
                local = math.copysign(math.inf, n)
            a.grad += local * out.grad

        out = Value(float(result), (self,), f"**{n}")
        out._backward = _pow_backward
        return out

    def _pow_value(self, other: Value) -> Value:
        """out = a ** b with both a Value; needs a > 0 so that log(a) exists."""
        if not self.data > 0:
            raise ValueError(
                "a ** b with a Value exponent b needs a positive base a "
                f"(d/db a**b = a**b * log(a)), got a = {self.data!r}; "
                "for a constant exponent use a plain number: a ** 2"
            )
        out = Value(self.data**other.data, (self, other), "**")
        out._backward = Value._pow_value_backward
        return out

    @staticmethod
    def _pow_value_backward(out: Value) -> None:
        # d(a ** b)/da = b * a ** (b - 1),  d(a ** b)/db = a ** b * log(a)
        a, b = out._prev
        g = out.grad
        a.grad += b.data * a.data ** (b.data - 1.0) * g
        b.grad += out.data * math.log(a.data) * g

    # Reflected operations: the number is on the left (2 + v, 2 - v, 2 * v, 2 / v, 2 ** v).

    def __radd__(self, other: float) -> Value:
        """out = other + self (other a number); makes the builtin ``sum(values)`` work."""
        return self.__add__(other)

    def __rsub__(self, other: float) -> Value:
        """out = other - self."""
        lhs = _as_value(other)
        return NotImplemented if lhs is None else lhs - self

    def __rmul__(self, other: float) -> Value:
        """out = other * self."""
        return self.__mul__(other)

    def __rtruediv__(self, other: float) -> Value:
        """out = other / self."""
        lhs = _as_value(other)
        return NotImplemented if lhs is None else lhs / self

    def __rpow__(self, other: float) -> Value:
        """out = other ** self: a number base (> 0) raised to a Value exponent."""
        base = _as_value(other)
        return NotImplemented if base is None else base._pow_value(self)

    # ------------------------------------------------------------------- unary operations

    def __neg__(self) -> Value:
        """out = -a."""
        out = Value(-self.data, (self,), "neg")
        out._backward = Value._neg_backward
        return out

    @staticmethod
    def _neg_backward(out: Value) -> None:
        # d(-a)/da = -1
        out._prev[0].grad -= out.grad

    def exp(self) -> Value:
        """out = e ** a (OverflowError past a ~ 709, as math.exp)."""
        out = Value(math.exp(self.data), (self,), "exp")
        out._backward = Value._exp_backward
        return out

    @staticmethod
    def _exp_backward(out: Value) -> None:
        # d(e ** a)/da = e ** a = out
        out._prev[0].grad += out.data * out.grad

    def log(self) -> Value:
        """out = ln(a), defined for a > 0 (ValueError otherwise)."""
        if not self.data > 0:
            raise ValueError(f"log is defined only for positive numbers, got {self.data!r}")
        out = Value(math.log(self.data), (self,), "log")
        out._backward = Value._log_backward
        return out

    @staticmethod
    def _log_backward(out: Value) -> None:
        # d(ln a)/da = 1 / a
        a = out._prev[0]
        a.grad += out.grad / a.data

    def tanh(self) -> Value:
        """out = tanh(a) = (e**a - e**-a) / (e**a + e**-a)."""
        out = Value(math.tanh(self.data), (self,), "tanh")
        out._backward = Value._tanh_backward
        return out

    @staticmethod
    def _tanh_backward(out: Value) -> None:
        # d(tanh a)/da = 1 - tanh(a)**2 = 1 - out**2
        t = out.data
        out._prev[0].grad += (1.0 - t * t) * out.grad

    def sigmoid(self) -> Value:
        """out = 1 / (1 + e**-a), computed without overflow for any a."""
        x = self.data
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:  # e**-a would overflow for very negative a; use e**a / (1 + e**a)
            e = math.exp(x)
            s = e / (1.0 + e)
        out = Value(s, (self,), "sigmoid")
        out._backward = Value._sigmoid_backward
        return out

    @staticmethod
    def _sigmoid_backward(out: Value) -> None:
        # d(sigmoid a)/da = sigmoid(a) * (1 - sigmoid(a)) = out * (1 - out)
        s = out.data
        out._prev[0].grad += s * (1.0 - s) * out.grad

    def relu(self) -> Value:
        """out = max(0, a)."""
        x = self.data
        out = Value(x if x > 0 else 0.0, (self,), "relu")
        out._backward = Value._relu_backward
        return out

    @staticmethod
    def _relu_backward(out: Value) -> None:
        # d(max(0, a))/da = 1 if a > 0 else 0 (0 at a == 0, as PyTorch)
        if out.data > 0:
            out._prev[0].grad += out.grad

    @staticmethod
    def sum(values: Iterable[Value | float]) -> Value:
        """out = v1 + v2 + ... + vn as ONE node with n children (not a chain of n - 1 adds).

        Numbers are allowed and become constant leaves. The empty sum is ``Value(0.0)``.
        """
        children = tuple(v if type(v) is Value else _operand(v, "Value.sum()") for v in values)
        out = Value(float(sum([c.data for c in children])), children, "sum")
        if children:
            out._backward = Value._sum_backward
        return out

    @staticmethod
    def _sum_backward(out: Value) -> None:
        # d(v1 + ... + vn)/dvi = 1 for every i
        g = out.grad
        for child in out._prev:
            child.grad += g

    @staticmethod
    def dot(
        weights: Sequence[Value | float],
        inputs: Sequence[Value | float],
        bias: Value | float = 0.0,
    ) -> Value:
        """out = w1*x1 + ... + wn*xn + b as ONE node: a neuron's pre-activation.

        The same number as ``Value.sum([b, w1 * x1, ..., wn * xn])`` (added in that order)
        without the n product nodes: its children are ``(w1, ..., wn, x1, ..., xn, b)``, and
        its backward is the n products' and the sum's chain rules in one loop. Numbers are
        allowed and become constant leaves.
        """
        if len(weights) != len(inputs):
            raise ValueError(
                f"Value.dot() needs as many weights as inputs, got {len(weights)} and {len(inputs)}"
            )
        if type(bias) is not Value:
            bias = _operand(bias, "Value.dot()")
        total = bias.data
        try:
            for w, x in zip(weights, inputs):
                total += w.data * x.data
        except (AttributeError, TypeError):  # a number among them: wrap them all, add again
            weights = [w if type(w) is Value else _operand(w, "Value.dot()") for w in weights]
            inputs = [x if type(x) is Value else _operand(x, "Value.dot()") for x in inputs]
            total = bias.data
            for w, x in zip(weights, inputs):
                total += w.data * x.data
        out = Value(total, (*weights, *inputs, bias), "dot")
        out._backward = Value._dot_backward
        return out

    @staticmethod
    def _dot_backward(out: Value) -> None:
        # d(w.x + b)/dwi = xi,  d(w.x + b)/dxi = wi,  d(w.x + b)/db = 1
        children = out._prev
        n = len(children) // 2  # (w1..wn, x1..xn, b): 2n + 1 children
        g = out.grad
        for w, x in zip(children[:n], children[n:-1]):
            w.grad += x.data * g
            x.grad += w.data * g
        children[-1].grad += g

    # ---------------------------------------------------------------- the backward pass

    def backward(self, grad: float = 1.0) -> None:
        """Fill ``grad`` of every value this one depends on with d(self)/d(value).

        Seeds d(self)/d(self) = ``grad`` (1 by default), resets the grads of the interior
        nodes to 0, then applies each node's chain rule in reverse topological order.
        Leaves accumulate (+=) across calls; see the module docstring.
        """
        order = self._interior_order()
        for node in order:
            node.grad = 0.0
        self.grad += grad
        for node in reversed(order):
            if node._backward is not None:  # None: a node made by hand, without a rule
                node._backward(node)

    def _interior_order(self) -> list[Value]:
        """The interior (operation-made) nodes reachable from self, children before parents.

        Two steps. First *find* them: walk the graph from self, adding each interior child
        not seen before to ``found`` (the list grows while the loop walks it: a breadth-first
        search, no recursion). Then *order* them: every node is numbered when it is made
        (``_seq``), after its children, so sorting by that number puts children before
        parents. Leaves are never collected: they have no backward step.
        """
        if not self._prev:
            return []
        found: list[Value] = [self]
        seen: set[Value] = {self}
        for node in found:
            for child in node._prev:
                if child._prev and child not in seen:
                    seen.add(child)
                    found.append(child)
        found.sort(key=_seq_of)
        return found

    def topological_order(self) -> list[Value]:
        """Every node reachable from self (leaves included), children before parents."""
        leaves: list[Value] = []
        leaf_seen: set[Value] = set()
        order = self._interior_order()
        for node in order:
            for child in node._prev:
                if not child._prev and child not in leaf_seen:
                    leaf_seen.add(child)
                    leaves.append(child)
        return leaves + order if order else [self]

    def zero_grad(self) -> None:
        """Set ``grad = 0`` on every node reachable from self, leaves included."""
        for node in self.topological_order():
            node.grad = 0.0

    # ------------------------------------------------------------------------- pictures

    def to_dot(self, rankdir: str = "LR") -> str:
        """The graph as Graphviz DOT text.

        Each value is a record box ``label | data | grad``; each operation is a small oval
        between the children it takes and the value it makes.
        """
        nodes = self.topological_order()
        ids = {node: f"v{i}" for i, node in enumerate(nodes)}
        lines = [
            "digraph value {",
            f"  rankdir={rankdir};",
            '  node [fontname="Helvetica"];',
        ]
        for node in nodes:
            vid = ids[node]
            fields = [f"data {node.data:.6g}", f"grad {node.grad:.6g}"]
            if node.label:
                fields.insert(0, node.label)
            label = " | ".join(_dot_escape(f) for f in fields)
            lines.append(f'  {vid} [shape=record, label="{{ {label} }}"];')
            if node._op:
                lines.append(f'  {vid}_op [shape=ellipse, label="{_dot_escape(node._op)}"];')
                lines.append(f"  {vid}_op -> {vid};")
                lines.extend(f"  {ids[child]} -> {vid}_op;" for child in node._prev)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def draw(self, path: str | Path, format: str | None = None) -> Path:
        """Render the graph to ``path`` (SVG, PNG, PDF, ... from the suffix or ``format``).

        Needs the ``graphviz`` Python package and the Graphviz ``dot`` program; raises
        `GraphvizNotFoundError` saying how to install whichever is missing.
        """
        try:
            import graphviz
        except ImportError:
            raise GraphvizNotFoundError(
                "Value.draw() needs the 'graphviz' Python package: pip install graphviz "
                "(or pip install 'chainrule[graph]'). Value.to_dot() works without it."
            ) from None
        if shutil.which("dot") is None:
            raise GraphvizNotFoundError(
                "Value.draw() needs the Graphviz 'dot' program, which is not on PATH. "
                "Install it: apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
                "(macOS) or conda install graphviz. Value.to_dot() works without it."
            )
        path = Path(path)
        fmt = format or path.suffix.lstrip(".").lower() or "svg"
        path.write_bytes(graphviz.Source(self.to_dot()).pipe(format=fmt))
        return path


def _operand(v: object, where: str) -> Value:
    """``v`` as a Value (a number becomes a constant leaf); TypeError naming ``where``."""
    value = _as_value(v)
    if value is None:
        raise TypeError(f"{where} needs Values or real numbers, got {type(v).__name__}")
    return value


def _dot_escape(text: str) -> str:
    """Escape the characters that DOT record labels treat as syntax."""
    for ch in '\\{}|<>"':
        text = text.replace(ch, "\\" + ch)
    return text
