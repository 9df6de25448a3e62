"""Activation functions and their derivatives, as small tables and as layers.

Each activation is a pair: the forward f(x), and the backward that turns dL/dy into
dL/dx = dL/dy ⊙ f'(x). The backward receives both x and y = f(x) because many derivatives
are cheapest written in terms of the output (σ' = y(1 − y), tanh' = 1 − y²).
"""

from __future__ import annotations

import math

import numpy as np

from .module import Module

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715

_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (libm's erf: exact to the last bit of float64)."""
    return _erf(x).astype(x.dtype, copy=False)


# ---- forward functions ------------------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)), computed without overflow for large |x|.

    For x ≥ 0 use 1/(1 + e^(−x)); for x < 0 the equal form e^x/(1 + e^x). Both only ever
    exponentiate −|x| ≤ 0, so e^(...) ≤ 1 never overflows.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    return np.where(x > 0, x, x * negative_slope)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), Φ the standard normal CDF."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """The tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x**3)))


def smelu(x: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """SmeLU: 0 for x ≤ −β, (x + β)²/(4β) for |x| ≤ β, x for x ≥ β (smooth ReLU)."""
    quad = (x + beta) ** 2 / (4.0 * beta)
    return np.where(x <= -beta, 0.0, np.where(x >= beta, x, quad)).astype(x.dtype, copy=False)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(x)_i = e^(x_i − max x) / Σ_j e^(x_j − max x): row-wise, and shifting by the max
    changes nothing mathematically but keeps e^(...) ≤ 1."""
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(x) = (x − max) − log Σ e^(x − max), stable for any logits."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ---- backward: dL/dx from dL/dy, given x and y = f(x) -----------------------------------
def sigmoid_backward(g, x, y):
    return g * y * (1 - y)  # σ'(x) = σ(x)(1 − σ(x))


def tanh_backward(g, x, y):
    return g * (1 - y * y)  # tanh'(x) = 1 − tanh²(x)


def relu_backward(g, x, y):
    return g * (x > 0)  # 1 where x > 0, else 0 (we take 0 at the kink)


def leaky_relu_backward(g, x, y, negative_slope=0.01):
    return g * np.where(x > 0, 1.0, negative_slope).astype(g.dtype, copy=False)


def gelu_backward(g, x, y):
    # d/dx xΦ(x) = Φ(x) + x·φ(x), φ the standard normal density
    cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return g * (cdf + x * pdf)


def gelu_tanh_backward(g, x, y):
    u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x**3)
    t = np.tanh(u)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * x * x)
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def smelu_backward(g, x, y, beta=2.0):
    slope = np.where(x <= -beta, 0.0, np.where(x >= beta, 1.0, (x + beta) / (2.0 * beta)))
    return g * slope.astype(g.dtype, copy=False)


def softmax_backward(g, x, y):
    # Jacobian of softmax is diag(y) − y yᵀ (per row), so gᵀJ = y ⊙ (g − ⟨g, y⟩).
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "smelu": smelu,
    "softmax": softmax,
}

DERIVATIVES = {
    "sigmoid": sigmoid_backward,
    "tanh": tanh_backward,
    "relu": relu_backward,
    "leaky_relu": leaky_relu_backward,
    "gelu": gelu_backward,
    "gelu_tanh": gelu_tanh_backward,
    "smelu": smelu_backward,
    "softmax": softmax_backward,
}


# ---- layers -----------------------------------------------------------------------------
class Activation(Module):
    """A parameter-free layer y = f(x) whose backward is dL/dx = dL/dy ⊙ f'(x)."""

    name = ""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self._f(x)
        self._cache = (x, y)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        x, y = self._cache
        if grad_out.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected grad of shape {y.shape}, "
                f"got {grad_out.shape}"
            )
        return self._df(grad_out, x, y)

    def _f(self, x):
        return ACTIVATIONS[self.name](x)

    def _df(self, g, x, y):
        return DERIVATIVES[self.name](g, x, y)


class Sigmoid(Activation):
    name = "sigmoid"


class Tanh(Activation):
    name = "tanh"


class ReLU(Activation):
    """y = max(x, 0). Caches only the mask x > 0, which is all its backward needs."""

    name = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0)
        self._cache = y
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        y = self._cache
        if grad_out.shape != y.shape:
            raise ValueError(
                f"ReLU.backward: expected grad of shape {y.shape}, got {grad_out.shape}"
            )
        # y > 0 exactly where x > 0
        return grad_out * (y > 0)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)

    def _f(self, x):
        return leaky_relu(x, self.negative_slope)

    def _df(self, g, x, y):
        return leaky_relu_backward(g, x, y, self.negative_slope)

    def config(self) -> dict:
        return {"negative_slope": self.negative_slope}


class GELU(Activation):
    """GELU; `approximate="tanh"` selects the tanh form (as in PyTorch)."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.name = "gelu" if approximate == "none" else "gelu_tanh"

    def config(self) -> dict:
        return {"approximate": self.approximate}


class SmeLU(Activation):
    name = "smelu"

    def __init__(self, beta: float = 2.0) -> None:
        if not beta > 0:
            raise ValueError(f"SmeLU: beta must be positive, got {beta}")
        self.beta = float(beta)

    def _f(self, x):
        return smelu(x, self.beta)

    def _df(self, g, x, y):
        return smelu_backward(g, x, y, self.beta)

    def config(self) -> dict:
        return {"beta": self.beta}


class Softmax(Activation):
    """Row-wise softmax over the last axis. For training a classifier prefer
    `SoftmaxCrossEntropy` on logits: same maths, simpler and stabler gradient."""

    name = "softmax"


ACTIVATION_LAYERS = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "gelu": GELU,
    "gelu_tanh": lambda: GELU("tanh"),
    "smelu": SmeLU,
    "softmax": Softmax,
}


def activation_layer(name: str) -> Module:
    """A fresh activation layer by name (`relu`, `tanh`, `gelu`, ...), e.g. for `--activation`."""
    key = name.lower().replace("-", "_")
    if key not in ACTIVATION_LAYERS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_LAYERS)}")
    return ACTIVATION_LAYERS[key]()
