"""Gradient checking: compare backward() with central finite differences in float64.

For a scalar objective f and a tiny step h, the central difference
    (f(θ + h·e_i) − f(θ − h·e_i)) / 2h = ∂f/∂θ_i + O(h²)
(here its five-point refinement, O(h⁴)) needs nothing but forward passes, so it is an
independent witness of the chain rule.
A layer's output is a tensor, not a scalar, so we check the scalar f(x) = Σ R ⊙ layer(x) for
a fixed random R: its gradient is exactly what `backward(R)` must return.
"""

from __future__ import annotations

import numpy as np

from .losses import Loss
from .module import Module, set_grad_in_eval


class GradcheckResult(float):
    """The maximum relative error (a float), plus where it occurred in `.worst`."""

    worst: str
    analytic: float
    numeric: float

    def __new__(cls, error: float, worst: str = "", analytic: float = 0.0, numeric: float = 0.0):
        obj = super().__new__(cls, error)
        obj.worst, obj.analytic, obj.numeric = worst, analytic, numeric
        return obj

    def __repr__(self) -> str:
        return (
            f"GradcheckResult(max_rel_error={float(self):.3e}, worst={self.worst}, "
            f"analytic={self.analytic:.10g}, numeric={self.numeric:.10g})"
        )


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """|a − n| / max(|a| + |n|, floor), elementwise.

    The floor keeps an exactly-zero gradient (numerically ~1e-13 of round-off) from
    counting as a 100% error; it makes entries below ~1e-6 judged by absolute error.
    """
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def numerical_gradient(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """∂f/∂x by five-point central differences, perturbing `x` in place one entry at a time.

    (−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h has error O(h⁴), so a larger step can be
    used and float64 round-off (≈ 1e-16·|f|/h) stays far below the 1e-6 we ask of a check.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        values = []
        for step in (2 * h, h, -h, -2 * h):
            flat[i] = saved + step
            values.append(f())
        flat[i] = saved
        f2, f1, fm1, fm2 = values
        gflat[i] = (-f2 + 8 * f1 - 8 * fm1 + fm2) / (12 * h)
    return grad


def _worst(best: GradcheckResult, name: str, a: np.ndarray, n: np.ndarray, floor: float):
    if a.size == 0:
        return best
    err = relative_error(a, n, floor)
    i = int(np.argmax(err))
    if err.flat[i] > float(best) or not best.worst:
        index = [int(k) for k in np.unravel_index(i, a.shape)]
        return GradcheckResult(float(err.flat[i]), f"{name}{index}", a.flat[i], n.flat[i])
    return best


def gradcheck(
    target: Module | Loss,
    *inputs: np.ndarray,
    h: float = 1e-4,
    floor: float = 1e-6,
    seed: int = 0,
    check_inputs: bool = True,
) -> GradcheckResult:
    """Max relative error between analytic and numerical gradients, in float64.

    - `gradcheck(layer_or_model, x)`: checks dL/dθ for every parameter and dL/dx, where
      L = Σ R ⊙ model(x) with a fixed random R. The model is converted to float64 in place.
    - `gradcheck(loss_fn, pred, target)`: checks dL/dpred.

    The result is a float; its `.worst` names the parameter (or input) and entry with the
    largest error. Keep inputs away from kinks (e.g. ReLU at 0) where no derivative exists.
    """
    if isinstance(target, Loss):
        return _check_loss(target, *inputs, h=h, floor=floor)
    if not isinstance(target, Module):
        raise TypeError(f"gradcheck: expected a Module or Loss, got {type(target).__name__}")
    if len(inputs) != 1:
        raise TypeError("gradcheck(module, x): give exactly one input array")
    model = set_grad_in_eval(target.astype(np.float64))  # eval mode too: keep caches
    x = np.array(inputs[0], dtype=np.float64)
    R = np.random.default_rng(seed).standard_normal(model.forward(x.copy()).shape)

    def objective() -> float:
        return float(np.sum(R * model.forward(x)))

    # analytic: one forward, one backward with dL/dy = R
    model.zero_grad()
    model.forward(x)
    dx = model.backward(R.copy())
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}

    result = GradcheckResult(0.0)
    for name, p in model.named_parameters():
        numeric = numerical_gradient(objective, p.data, h)
        result = _worst(result, name, analytic[name], numeric, floor)
    if check_inputs:
        result = _worst(result, "input", dx, numerical_gradient(objective, x, h), floor)
    return result


def _check_loss(loss_fn: Loss, pred, target, h: float, floor: float) -> GradcheckResult:
    pred = np.array(pred, dtype=np.float64)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.floating):
        target = target.astype(np.float64)
    loss_fn(pred, target)
    analytic = loss_fn.backward().copy()
    numeric = numerical_gradient(lambda: loss_fn(pred, target), pred, h)
    return _worst(GradcheckResult(0.0), "pred", analytic, numeric, floor)
