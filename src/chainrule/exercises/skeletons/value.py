"""Exercise `value`: a number that remembers how it was made, and backpropagates.

Build a scalar autograd engine (as in micrograd). Each operation makes a new Value `out`
and gives it a `_backward` function that passes `out.grad` back to the inputs, times the
local derivative (the chain rule):  input.grad += (d out / d input) · out.grad.

    x, w, b, y = Value(2.0), Value(0.5), Value(0.23), Value(2.5)
    L = (y - (x * w + b)) ** 2      # seed 000's example: L = 1.27² = 1.6129
    L.backward()
    w.grad                          # -5.08

Check it with:  chainrule exercises check value value.py
Fill in every TODO (each raises NotImplementedError until you do). The methods without a
TODO are built from the others, and are done.
"""

from __future__ import annotations

import math


class Value:
    """A scalar in a computation graph.

    data: the number (a float). grad: dL/d(this value) after L.backward(), 0.0 before.
    _prev: the Values this one was computed from; _backward: passes self.grad to them.
    """

    def __init__(self, data: float, _children: tuple = (), _op: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None  # a leaf has no inputs to pass a gradient to
        self._prev = tuple(_children)
        self._op = _op

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- the operations: each computes out and defines how the gradient flows back ----

    def __add__(self, other: Value | float) -> Value:
        """out = self + other;  d out/d self = 1,  d out/d other = 1."""
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            # TODO: pass out.grad to self.grad and other.grad (times the local derivative 1)
            raise NotImplementedError("TODO: the _backward of __add__")

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        """out = self · other;  d out/d self = other,  d out/d other = self."""
        other = other if isinstance(other, Value) else Value(other)
        # TODO: compute out, as __add__ does, and give it a _backward
        raise NotImplementedError("TODO: __mul__")

    def __pow__(self, n: float) -> Value:
        """out = self ** n for a plain number n;  d out/d self = n · self^(n−1)."""
        if not isinstance(n, (int, float)):
            raise TypeError("Value ** n takes a plain number n")
        # TODO
        raise NotImplementedError("TODO: __pow__")

    def tanh(self) -> Value:
        """out = tanh(self);  d out/d self = 1 − tanh² = 1 − out²."""
        # TODO
        raise NotImplementedError("TODO: tanh")

    def relu(self) -> Value:
        """out = max(0, self);  d out/d self = 1 where self > 0, else 0."""
        # TODO
        raise NotImplementedError("TODO: relu")

    def exp(self) -> Value:
        """out = e^self;  d out/d self = e^self = out."""
        # TODO
        raise NotImplementedError("TODO: exp")

    # ---- backpropagation ----

    def backward(self) -> None:
        """Fill in .grad of every Value this one depends on: d self / d that value.

        1. Order the graph so that every node comes after the nodes it was made from
           (a topological order). Graphs can be thousands of nodes deep: a recursive
           function hits Python's recursion limit (about 1000), so use an explicit stack.
        2. Set self.grad = 1.0 (d self/d self), then call each node's _backward in the
           reverse of that order, so a node passes its gradient on only once it is complete.
        """
        # TODO
        raise NotImplementedError("TODO: backward")

    # ---- built from the operations above: nothing to do here ----

    def __neg__(self) -> Value:  # -self
        return self * -1

    def __sub__(self, other: Value | float) -> Value:  # self - other
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:  # self / other
        return self * other**-1

    def __radd__(self, other: float) -> Value:  # other + self
        return self + other

    def __rsub__(self, other: float) -> Value:  # other - self
        return other + (-self)

    def __rmul__(self, other: float) -> Value:  # other * self
        return self * other

    def __rtruediv__(self, other: float) -> Value:  # other / self
        return other * self**-1

    def __rpow__(self, base: float) -> Value:  # base ** self = e^(self · ln base), base > 0
        return (self * math.log(base)).exp()
