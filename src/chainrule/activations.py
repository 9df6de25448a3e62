"""Activation functions and their derivatives, as small tables and as layers.

Each activation is a pair: the forward f(x), and the backward that turns dL/dy into
dL/dx = dL/dy ⊙ f'(x). The backward receives both x and y = f(x) because many derivatives
are cheapest written in terms of the output (σ' = y(1 − y), tanh' = 1 − y²).
"""

from __future__ import annotations

import math

import numpy as np

from ._threads import elementwise
from .module import DEFAULT_DTYPE, Module, keeps_cache, no_cache_error

_UNRESOLVED = object()
_scipy_erf = _UNRESOLVED  # SciPy's erf, looked up on first use (None: not installed)


def _find_scipy_erf():
    """SciPy's erf when it is installed; imported on first use so that `import chainrule`
    stays light (chainrule does not depend on SciPy)."""
    global _scipy_erf
    if _scipy_erf is _UNRESOLVED:
        try:
            from scipy.special import erf as found
        except ImportError:  # pragma: no cover - exercised by testing erf_rational directly
            found = None
        _scipy_erf = found
    return _scipy_erf


SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715


def as_float(x) -> np.ndarray:
    """x as a floating array: integers (and bools) become float32, floats stay as they are."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(DEFAULT_DTYPE)


# W. J. Cody's rational Chebyshev approximations of erf and erfc (Math. Comp. 23, 1969; the
# CALERF routine of SPECFUN), max relative error ~1e-16 in float64, in three ranges of |x|.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)  # fmt: skip
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)  # fmt: skip
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)  # fmt: skip
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1


def _polynomial_ratio(t: np.ndarray, num: tuple, den: tuple) -> np.ndarray:
    """Cody's nested form: (((n_k·t + n_0)·t + n_1)·t ... + n_{k−1}) / ((((t + d_0)·t + d_1)...)
    with `num` (k + 1 values, the leading one last) and `den` (k values)."""
    top, bottom = num[-1] * t, t.copy()
    for n, d in zip(num[:-2], den[:-1]):
        top += n
        top *= t
        bottom += d
        bottom *= t
    return (top + num[-2]) / (bottom + den[-1])


def _erfc_scale(y: np.ndarray) -> np.ndarray:
    """e^(−y²), as e^(−t²)·e^(−(y−t)(y+t)) with t = y rounded down to 1/16, so the rounding
    of y² is not amplified (Cody's trick)."""
    t = np.trunc(y * 16.0) / 16.0
    return np.exp(-t * t) * np.exp(-(y - t) * (y + t))


def erf_rational(x: np.ndarray) -> np.ndarray:
    """erf(x) in float64 by Cody's approximations, accurate to a few ulp, vectorised:
        |x| ≤ 0.46875:       erf(x) = x·R₁(x²)
        0.46875 < |x| ≤ 4:   erfc(|x|) = e^(−x²)·R₂(|x|)
        |x| > 4:             erfc(|x|) = e^(−x²)/|x|·(1/√π − R₃(1/x²)/x²)
    and erf(x) = sign(x)·(1 − erfc(|x|)) in the last two ranges."""
    x = np.asarray(x, dtype=np.float64)
    shape, x = x.shape, x.reshape(-1)
    y = np.abs(x)
    result = np.empty_like(x)
    small = ~(y > 0.46875)  # NaN goes here and stays NaN
    xs = x[small]
    result[small] = xs * _polynomial_ratio(xs * xs, _ERF_A, _ERF_B)
    mid = np.flatnonzero((y > 0.46875) & (y <= 4.0))
    ym = y[mid]
    erfc = _erfc_scale(ym) * _polynomial_ratio(ym, _ERF_C, _ERF_D)
    result[mid] = np.copysign((0.5 - erfc) + 0.5, x[mid])
    far = np.flatnonzero(y > 4.0)
    yf = np.minimum(y[far], 30.0)  # erfc underflows to 0 long before: ±inf gives ±1
    z = 1.0 / (yf * yf)
    erfc = _erfc_scale(yf) * (_ONE_OVER_SQRT_PI - z * _polynomial_ratio(z, _ERF_P, _ERF_Q)) / yf
    result[far] = np.copysign((0.5 - erfc) + 0.5, x[far])
    return result.reshape(shape)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in x's dtype: SciPy's when installed, else
    `erf_rational` (both accurate to float64 round-off)."""
    x = as_float(x)
    scipy_erf = _find_scipy_erf()
    values = scipy_erf(x) if scipy_erf is not None else erf_rational(x)
    return values.astype(x.dtype, copy=False)


# ---- forward functions ------------------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)), computed without overflow for large |x|.

    For x ≥ 0 use 1/(1 + e^(−x)); for x < 0 the equal form e^x/(1 + e^x). Both only ever
    exponentiate −|x| ≤ 0, so e^(...) ≤ 1 never overflows. Integers are taken as float32.
    """
    x = as_float(x)
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
    return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x)))


def smelu(x: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """SmeLU: 0 for x ≤ −β, (x + β)²/(4β) for |x| ≤ β, x for x ≥ β (smooth ReLU)."""
    x = as_float(x)
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


def _pass_where_positive(
    g: np.ndarray, y: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """ReLU's backward, dL/dx = g ⊙ [x > 0], from y = max(x, 0): y > 0 exactly where x > 0."""
    return g * (y > 0) if out is None else np.multiply(g, y > 0, out=out)


def leaky_relu_backward(g, x, y, negative_slope=0.01):
    return g * np.where(x > 0, 1.0, negative_slope).astype(g.dtype, copy=False)


def gelu_backward(g, x, y):
    # d/dx xΦ(x) = Φ(x) + x·φ(x), φ the standard normal density
    cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return g * (cdf + x * pdf)


def gelu_tanh_backward(g, x, y):
    u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x)
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
class Activation(Module, loadable=False):
    """A parameter-free layer y = f(x) whose backward is dL/dx = dL/dy ⊙ f'(x).

    Integer inputs are taken as float32; backward computes in the forward input's dtype.
    In eval mode the forward keeps nothing, and backward raises.

    `monotone`: f never decreases (a ≤ b ⇒ f(a) ≤ f(b)), so f commutes with a max:
    max(f(a), f(b)) = f(max(a, b)), and a max pool may run before it, on 4× fewer values.
    """

    name = ""
    monotone = False

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        x = as_float(x)
        y = self._f(x)
        return y, ((x, y) if keeps_cache(self) else None)

    def backward_from_cache(self, cache, grad_out: np.ndarray, input_grad: bool = True):
        if cache is None:
            raise no_cache_error(type(self).__name__)
        x, y = cache
        if grad_out.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected grad of shape {y.shape}, "
                f"got {grad_out.shape}"
            )
        return self._df(grad_out.astype(y.dtype, copy=False), x, y)

    def _f(self, x):
        return ACTIVATIONS[self.name](x)

    def _df(self, g, x, y):
        return DERIVATIVES[self.name](g, x, y)


class Sigmoid(Activation):
    name = "sigmoid"
    monotone = True


class Tanh(Activation):
    name = "tanh"
    monotone = True


class ReLU(Activation):
    """y = max(x, 0). Caches only the mask x > 0, which is all its backward needs."""

    name = "relu"
    monotone = True

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        y = elementwise(np.maximum, as_float(x), 0)  # np.maximum(x, 0), on the threads
        return y, (y if self.training or self.grad_in_eval else None)  # keeps_cache, inlined

    def backward_from_cache(self, y, grad_out: np.ndarray, input_grad: bool = True):
        if y is None:
            raise no_cache_error("ReLU")
        if grad_out.shape != y.shape:
            raise ValueError(
                f"ReLU.backward: expected grad of shape {y.shape}, got {grad_out.shape}"
            )
        if grad_out.dtype != y.dtype:
            grad_out = grad_out.astype(y.dtype)
        return elementwise(_pass_where_positive, grad_out, y)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)
        self.monotone = self.negative_slope >= 0

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
    monotone = True

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
