"""Reference solution of the `value` exercise, micrograd-style (iterative topo sort).

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
    """A scalar in a computation graph (the reference solution of the `value` exercise)."""

    def __init__(self, data: float, _children: tuple = (), _op: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, n: float) -> Value:
        out = Value(self.data**n, (self,), f"**{n}")

        def _backward() -> None:
            self.grad += n * self.data ** (n - 1) * out.grad

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward() -> None:
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def backward(self) -> None:
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # iterative depth-first search: a node goes in after its inputs
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

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
