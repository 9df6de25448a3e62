"""Exercise `conv2d`: a 2-D convolution layer with stride and padding, forward and backward.

As in PyTorch (and chainrule.Conv2D) it is a cross-correlation: the kernel is not flipped.
Shapes: x (N, C, H, W) → y (N, F, Ho, Wo);  weight W (F, C, kh, kw);  bias (F,).
    xpad = x with `padding` zeros added on every side of H and W
    Ho = (H + 2·padding − kh) // stride + 1,   Wo = (W + 2·padding − kw) // stride + 1
    y[n, f, a, b] = bias[f] + Σ_{c,i,j} W[f, c, i, j] · xpad[n, c, s·a + i, s·b + j]
Backward, with G = dL/dy (N, F, Ho, Wo) — every product above sends G back to both factors:
    dL/dW[f, c, i, j] = Σ_{n,a,b} G[n, f, a, b] · xpad[n, c, s·a + i, s·b + j]
    dL/dbias[f]       = Σ_{n,a,b} G[n, f, a, b]
    dL/dxpad[n, c, s·a + i, s·b + j] += W[f, c, i, j] · G[n, f, a, b]   (then drop the padding)

Loops over the output positions (a, b) with NumPy inside are fast enough for the checks.
Check it with:  chainrule exercises check conv2d conv2d.py
Fill in every TODO (each raises NotImplementedError until you do). Use NumPy only.
"""

from __future__ import annotations

import numpy as np


class Conv2D:
    """y = W ⋆ x + b, with W and b given (the checker chooses them; no initialisation here).

    weight_grad and bias_grad hold dL/dW and dL/dbias, and backward ADDS into them (two
    backward passes sum their gradients, as in chainrule and PyTorch).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int = 1,
                 padding: int = 0) -> None:
        self.weight = weight  # (F, C, kh, kw)
        self.bias = bias  # (F,)
        self.stride = stride
        self.padding = padding
        self.weight_grad = np.zeros_like(weight)
        self.bias_grad = np.zeros_like(bias)
        self.x: np.ndarray | None = None  # the input of the last forward, for backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) → y (N, F, Ho, Wo). Keep what backward needs on self."""
        # TODO
        raise NotImplementedError("TODO: forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """G = dL/dy (N, F, Ho, Wo) → dL/dx (N, C, H, W); adds dL/dW into weight_grad and
        dL/dbias into bias_grad. Do not change x or G."""
        # TODO
        raise NotImplementedError("TODO: backward")
