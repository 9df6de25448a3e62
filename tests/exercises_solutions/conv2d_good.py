"""Reference solution of the `conv2d` exercise: loops over the output positions."""

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
        p, s = self.padding, self.stride
        self.x = x
        xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        f, _, kh, kw = self.weight.shape
        ho, wo = (xpad.shape[2] - kh) // s + 1, (xpad.shape[3] - kw) // s + 1
        y = np.empty((x.shape[0], f, ho, wo))
        for a in range(ho):
            for b in range(wo):
                window = xpad[:, :, s * a:s * a + kh, s * b:s * b + kw]  # (N, C, kh, kw)
                y[:, :, a, b] = np.tensordot(window, self.weight, axes=([1, 2, 3], [1, 2, 3]))
        return y + self.bias[:, None, None]

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """G = dL/dy (N, F, Ho, Wo) → dL/dx (N, C, H, W); adds dL/dW into weight_grad and
        dL/dbias into bias_grad. Do not change x or G."""
        p, s = self.padding, self.stride
        xpad = np.pad(self.x, ((0, 0), (0, 0), (p, p), (p, p)))
        dxpad = np.zeros_like(xpad)
        _, _, kh, kw = self.weight.shape
        for a in range(grad_out.shape[2]):
            for b in range(grad_out.shape[3]):
                g = grad_out[:, :, a, b]  # (N, F)
                window = xpad[:, :, s * a:s * a + kh, s * b:s * b + kw]
                self.weight_grad += np.tensordot(g, window, axes=([0], [0]))
                dxpad[:, :, s * a:s * a + kh, s * b:s * b + kw] += np.tensordot(
                    g, self.weight, axes=([1], [0]))
        self.bias_grad += grad_out.sum(axis=(0, 2, 3))
        h, w = self.x.shape[2:]
        return dxpad[:, :, p:p + h, p:p + w]
