"""Gradient checking: compare backward() with central finite differences in float64.

For a scalar objective f and a tiny step h, the central difference
    (f(θ + h·e_i) − f(θ − h·e_i)) / 2h = ∂f/∂θ_i + O(h²)
(here its five-point refinement, O(h⁴)) needs nothing but forward passes, so it is an
independent witness of the chain rule.
A layer's output is a tensor, not a scalar, so we check the scalar f(x) = Σ R ⊙ layer(x) for
a fixed random R: its gradient is exactly what `backward(R)` must return.

The verdict is PyTorch's (`torch.autograd.gradcheck`): analytic a and numeric n agree when,
entry by entry,
    |a − n| ≤ atol + rtol·|n|.
A pure relative error |a − n| / |n| cannot be used alone: where the true gradient is 0, the
numeric one is round-off (≈ 1e-12) and any ratio of two such numbers is meaningless.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from .losses import Loss
from .module import Module, set_grad_in_eval
from .tensor import Function, Tensor, no_grad

# Five-point differences with h = 1e-4 in float64 carry round-off ≈ 1.5·ε·|f|/h ≈ 3e-12·|f|
# (ε = 2.2e-16) and truncation ≈ h⁴·|f⁽⁵⁾|/30 ≈ 3e-18·|f⁽⁵⁾|. So a correct backward agrees
# to ~1e-10 relative; rtol = 1e-6 leaves four orders of margin and still catches any bug that
# changes a gradient by a millionth. atol = 1e-8 is the same margin over the round-off of
# objectives up to |f| ≈ 100: gradients below atol/rtol = 0.01 are judged by absolute error.
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8


class GradcheckResult(float):
    """The largest scaled error max |a − n| / (atol/rtol + |n|), as a float, plus a report.

    The float is chosen so that comparing it with rtol is the whole test:
        err ≤ rtol  ⇔  |a − n| ≤ atol + rtol·|n| for every entry  ⇔  `err.passed`,
    so `assert cr.gradcheck(model, x) < 1e-6` is PyTorch's criterion at the defaults.
    For entries much larger than atol/rtol the float reads as a relative error.

    Attributes: `passed`, `max_abs_error` (max |a − n|), `max_rel_error` (max |a − n| / |n|
    over entries with n ≠ 0: for information only, it is large where n is round-off),
    `worst` (the parameter or input and index with the largest scaled error) and its
    `analytic` and `numeric` values, and the `rtol`, `atol` used.
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst: str
    analytic: float
    numeric: float
    rtol: float
    atol: float

    def __new__(
        cls,
        error: float,
        worst: str = "",
        analytic: float = 0.0,
        numeric: float = 0.0,
        *,
        max_abs_error: float = 0.0,
        max_rel_error: float = 0.0,
        rtol: float = DEFAULT_RTOL,
        atol: float = DEFAULT_ATOL,
    ):
        obj = super().__new__(cls, error)
        obj.worst, obj.analytic, obj.numeric = worst, float(analytic), float(numeric)
        obj.max_abs_error, obj.max_rel_error = float(max_abs_error), float(max_rel_error)
        obj.rtol, obj.atol = rtol, atol
        obj.passed = bool(error <= rtol)
        return obj

    def __repr__(self) -> str:
        return (
            f"GradcheckResult(passed={self.passed}, error={float(self):.3e} (pass if ≤ rtol="
            f"{self.rtol:g}, atol={self.atol:g}), max_abs_error={self.max_abs_error:.3e}, "
            f"max_rel_error={self.max_rel_error:.3e}, worst={self.worst}, "
            f"analytic={self.analytic:.10g}, numeric={self.numeric:.10g})"
        )


def scaled_error(
    analytic: np.ndarray,
    numeric: np.ndarray,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> np.ndarray:
    """|a − n| / (atol/rtol + |n|), elementwise: an entry passes iff its value is ≤ rtol.

    With atol = 0 an entry where a = n = 0 scores 0 and one where only n = 0 scores inf.
    """
    diff = np.abs(analytic - numeric)
    scale = atol / rtol + np.abs(numeric)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = diff / scale
    return np.where(diff == 0, 0.0, err)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """∂f/∂x by five-point central differences, perturbing `x` in place one entry at a time.

    (−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h has error O(h⁴), so a larger step can be
    used and float64 round-off (≈ 1e-16·|f|/h) stays far below the 1e-6 we ask of a check.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):  # index x itself: a strided view has no flat view to poke
        saved = x[i]
        values = []
        for step in (2 * h, h, -h, -2 * h):
            x[i] = saved + step
            values.append(f())
        x[i] = saved
        f2, f1, fm1, fm2 = values
        grad[i] = (-f2 + 8 * f1 - 8 * fm1 + fm2) / (12 * h)
    return grad


def compare(
    pairs: list[tuple[str, np.ndarray, np.ndarray]],
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> GradcheckResult:
    """The verdict over named (name, analytic, numeric) gradient pairs."""
    if not rtol > 0 or not atol >= 0:
        raise ValueError(f"gradcheck: need rtol > 0 and atol ≥ 0, got rtol={rtol}, atol={atol}")
    worst = (-1.0, "", 0.0, 0.0)
    max_abs = max_rel = 0.0
    for name, a, n in pairs:
        if a.size == 0:
            continue
        diff = np.abs(a - n)
        max_abs = max(max_abs, float(diff.max()))
        nonzero = n != 0
        if nonzero.any():
            max_rel = max(max_rel, float((diff[nonzero] / np.abs(n[nonzero])).max()))
        err = scaled_error(a, n, rtol, atol)
        i = int(np.argmax(err))
        if err.flat[i] > worst[0]:
            index = [int(k) for k in np.unravel_index(i, a.shape)]
            worst = (float(err.flat[i]), f"{name}{index}", a.flat[i], n.flat[i])
    error, where, analytic, numeric = worst
    return GradcheckResult(
        max(error, 0.0),
        where,
        analytic,
        numeric,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        rtol=rtol,
        atol=atol,
    )


def gradcheck(
    target: Module | Loss,
    *inputs: np.ndarray,
    h: float = 1e-4,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    seed: int = 0,
    check_inputs: bool = True,
) -> GradcheckResult:
    """Check analytic gradients against numeric ones in float64; `.passed` is the verdict.

    - `gradcheck(layer_or_model, x)`: checks dL/dθ for every parameter and dL/dx, where
      L = Σ R ⊙ model(x) with a fixed random R (from `seed`).
    - `gradcheck(loss_fn, pred, target)`: checks dL/dpred.
    - `gradcheck(MyFunction, a, b)` (a `cr.Function` subclass) or `gradcheck(f, a, b)` (any
      function of Tensors returning a Tensor): checks dL/d(each input) through the graph,
      L = Σ R ⊙ f(a, b).

    An entry passes when |analytic − numeric| ≤ atol + rtol·|numeric| (PyTorch's rule; the
    defaults are explained at the top of the module). The result is a float, the largest
    |a − n| / (atol/rtol + |n|), so `err < rtol` is the same test; its `.worst` names the
    parameter (or input) and entry that came closest to failing. See `GradcheckResult`.

    The check runs on a float64 deep copy: the caller's model (weights, dtype, grads, buffers
    such as BatchNorm statistics, training mode, Dropout's random generator) is untouched.
    Keep inputs away from kinks (e.g. ReLU at 0) where no derivative exists, and fix Dropout's
    mask (`layer.mask = ...`) or use `eval()` mode: a fresh mask per forward is no function.
    """
    if isinstance(target, Loss):
        return _check_loss(target, *inputs, h=h, rtol=rtol, atol=atol)
    if isinstance(target, type) and issubclass(target, Function):
        return _check_tensor_function(target.apply, inputs, h, rtol, atol, seed)
    if callable(target) and not isinstance(target, Module):
        return _check_tensor_function(target, inputs, h, rtol, atol, seed)
    if not isinstance(target, Module):
        raise TypeError(
            f"gradcheck: expected a Module, Loss, Function or function of Tensors, got "
            f"{type(target).__name__}"
        )
    if len(inputs) != 1:
        raise TypeError("gradcheck(module, x): give exactly one input array")
    # eval mode too keeps its caches here: the check needs backward
    model = set_grad_in_eval(copy.deepcopy(target).astype(np.float64))
    x = np.array(inputs[0], dtype=np.float64)
    R = np.random.default_rng(seed).standard_normal(model.forward(x.copy()).shape)

    def objective() -> float:
        return float(np.sum(R * model.forward(x)))

    # analytic: one forward, one backward with dL/dy = R
    model.zero_grad()
    model.forward(x)
    dx = model.backward(R.copy())
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}

    pairs = [
        (name, analytic[name], numerical_gradient(objective, p.data, h))
        for name, p in model.named_parameters()
    ]
    if check_inputs:
        pairs.append(("input", dx, numerical_gradient(objective, x, h)))
    return compare(pairs, rtol, atol)


def _check_loss(loss_fn: Loss, pred, target, h: float, rtol: float, atol: float):
    loss_fn = copy.deepcopy(loss_fn)  # its forward cache is the caller's business
    pred = np.array(pred, dtype=np.float64)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.floating):
        target = target.astype(np.float64)
    loss_fn(pred, target)
    analytic = loss_fn.backward().copy()
    numeric = numerical_gradient(lambda: loss_fn(pred, target), pred, h)
    return compare([("pred", analytic, numeric)], rtol, atol)


def _check_tensor_function(fn, inputs, h: float, rtol: float, atol: float, seed: int):
    """dL/d(each input) of L = Σ R ⊙ fn(*Tensors), from the graph's backward, against
    differences of forward passes run under no_grad."""
    if not inputs:
        raise TypeError("gradcheck(f, *arrays): give at least one input array")
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    with no_grad():
        R = np.random.default_rng(seed).standard_normal(fn(*map(Tensor, xs)).shape)

    def objective() -> float:
        with no_grad():
            return float(np.sum(R * fn(*map(Tensor, xs)).data))

    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: the function returned {type(out).__name__}, not a Tensor")
    out.backward(R)
    pairs = []
    for i, (leaf, x) in enumerate(zip(leaves, xs)):
        analytic = leaf.grad if leaf.grad is not None else np.zeros_like(x)
        pairs.append((f"input {i}", analytic, numerical_gradient(objective, x, h)))
    return compare(pairs, rtol, atol)
