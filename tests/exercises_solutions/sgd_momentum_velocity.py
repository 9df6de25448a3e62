"""A wrong `sgd-momentum` solution: the cs231n velocity form v ← μv − lr·g, θ ← θ + v.

The same as PyTorch's rule while lr is constant; different once lr changes.
"""

from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, params: list, lr: float = 0.01, momentum: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.velocity = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        for p, v in zip(self.params, self.velocity):
            v *= self.momentum
            v -= self.lr * p.grad
            p.data += v
