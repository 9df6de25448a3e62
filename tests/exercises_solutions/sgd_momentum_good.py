"""Reference solution of the `sgd-momentum` exercise: PyTorch's momentum rule."""

from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, params: list, lr: float = 0.01, momentum: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = g.copy()
                else:
                    self.buffers[i] = self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.data -= self.lr * g
