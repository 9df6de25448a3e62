"""A wrong `dense` solution: backward overwrites weight_grad (=) instead of adding (+=).

Shapes (a batch is rows, as in chainrule and PyTorch):
    X (N, in) → Y (N, out);   weight W (out, in);   bias b (out,).
Backward, with G = dL/dY of shape (N, out) (the chain rule in matrix form, chapter 4):
    dL/dX = G W      (N, in)
    dL/dW = Gᵀ X     (out, in)    — summed over the batch rows
    dL/db = Σ_rows G (out,)

Check it with:  chainrule exercises check dense dense.py
Fill in every TODO (each raises NotImplementedError until you do). Use NumPy only.
"""

from __future__ import annotations

import numpy as np


class Dense:
    """Y = X Wᵀ + b, with W and b given (the checker chooses them; no initialisation here).

    weight (out, in), bias (out,): float arrays. weight_grad and bias_grad hold dL/dW and
    dL/db, same shapes, and backward ADDS into them (two backward passes sum their gradients,
    as in chainrule and PyTorch; an optimizer zeroes them between steps).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight
        self.bias = bias
        self.weight_grad = np.zeros_like(weight)
        self.bias_grad = np.zeros_like(bias)
        self.x: np.ndarray | None = None  # the input of the last forward, for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        """X (N, in) → Y = X Wᵀ + b (N, out). Keep what backward needs (X) on self."""
        self.x = x
        return x @ self.weight.T + self.bias

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """G = dL/dY (N, out) → dL/dX (N, in); adds dL/dW into weight_grad, dL/db into
        bias_grad. Do not change X or G."""
        self.weight_grad = grad_out.T @ self.x
        self.bias_grad += grad_out.sum(axis=0)
        return grad_out @ self.weight
