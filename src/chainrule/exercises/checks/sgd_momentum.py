"""Checks of the `sgd-momentum` exercise: SGD with momentum as PyTorch defines it, step by
step against the library's `chainrule.optim.SGD` (which follows `torch.optim.SGD`)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ...module import Parameter
from ...optim import SGD as LibrarySGD
from ..checking import Checklist, Fail, expect_close, need
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
RULE = "b ← μ·b + g (b = g on the first step), then θ ← θ − lr·b"
SHAPES = [(3, 4), (4,)]


class Param:
    """What the learner's optimizer updates: .data and .grad, NumPy arrays of one shape."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad = np.zeros_like(data)


def _grads(seed: int, steps: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _run(m: ModuleType, lr: float, momentum: float, grads, lr_at=None) -> list[np.ndarray]:
    """The learner's parameters after one step per entry of grads (lr_at[k]: lr for step k)."""
    rng = np.random.default_rng(99)
    params = [Param(rng.standard_normal(s)) for s in SHAPES]
    opt = need(m, "SGD")(params, lr=lr, momentum=momentum)
    for k, step_grads in enumerate(grads):
        if lr_at and k in lr_at:
            opt.lr = lr_at[k]
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()
    return [p.data for p in params]


def _library(lr: float, momentum: float, grads, lr_at=None) -> list[np.ndarray]:
    rng = np.random.default_rng(99)
    params = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    opt = LibrarySGD(params, lr=lr, momentum=momentum)
    for k, step_grads in enumerate(grads):
        if lr_at and k in lr_at:
            opt.param_groups[0]["lr"] = lr_at[k]
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()
    return [p.data for p in params]


def _compare(got, want, what: str, hint: str) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        expect_close(g, w, f"parameter {i} {what}", hint, tol=1e-10)


@CHECKS.add("plain-step", "momentum 0: one step θ ← θ − lr·g")
def plain_step(m: ModuleType) -> str:
    grads = _grads(0, 1)
    _compare(_run(m, 0.1, 0.0, grads), _library(0.1, 0.0, grads), "after one step",
             "with momentum 0 a step is θ ← θ − lr·g: subtract, and scale by lr")
    return "θ − lr·g"


@CHECKS.add("first-step", "momentum 0.9: the first step is θ − lr·g (the buffer starts as g)")
def first_step(m: ModuleType) -> str:
    grads = _grads(1, 1)
    got, want = _run(m, 0.1, 0.9, grads), _library(0.1, 0.9, grads)
    damped = _library(0.1, 0.0, [[0.1 * g for g in grads[0]]])  # θ − lr·(1 − μ)·g
    if all(np.allclose(g, d, rtol=1e-10) for g, d in zip(got, damped)):
        raise Fail("the first step moved θ by lr·(1 − μ)·g",
                   "PyTorch's buffer adds g in full (b ← μ·b + g), not (1 − μ)·g: "
                   "that is an average, which makes the steps 10× smaller at μ = 0.9")
    _compare(got, want, "after the first step", "on the first step the buffer b is g "
             "itself, so θ ← θ − lr·g; " + RULE)
    return "b = g on the first step"


@CHECKS.add("momentum-steps", "momentum 0.9: five steps on two parameters vs chainrule SGD")
def momentum_steps(m: ModuleType) -> str:
    grads = _grads(2, 5)
    _compare(_run(m, 0.05, 0.9, grads), _library(0.05, 0.9, grads), "after five steps",
             RULE + "; one buffer b per parameter, kept between steps")
    return "five steps match"


@CHECKS.add("lr-change", "changing opt.lr between steps (a schedule) acts as in PyTorch")
def lr_change(m: ModuleType) -> str:
    grads, lr_at = _grads(3, 6), {3: 0.01}
    got, want = _run(m, 0.1, 0.9, grads, lr_at), _library(0.1, 0.9, grads, lr_at)
    _compare(got, want, "after the learning rate changed", "the buffer holds gradients, not "
             "steps: b ← μ·b + g, θ ← θ − lr·b with the current lr. (The form v ← μ·v − lr·g, "
             "θ ← θ + v is the same only while lr is constant.)")
    return "lr applies to the whole buffer at once"


@CHECKS.add("in-place", "step changes each p.data in place and leaves p.grad alone")
def in_place(m: ModuleType) -> str:
    p = Param(np.ones((2, 3)))
    array = p.data
    p.grad[...] = 0.5
    need(m, "SGD")([p], lr=0.1, momentum=0.9).step()
    if p.data is not array:
        raise Fail("step gave p.data a new array",
                   "update in place (p.data -= lr * b): a model holds references to its "
                   "arrays, and a new array would leave the model's copy unchanged")
    expect_close(p.data, np.full((2, 3), 0.95), "p.data after one step", RULE, tol=1e-12)
    if not np.all(p.grad == 0.5):
        raise Fail("step changed p.grad", "the gradient is the loss's; keep the velocity in "
                   "its own buffer (e.g. a copy of g on the first step)")
    return "p.data updated in place"


@CHECKS.add("zero-grad", "zero_grad sets every p.grad to 0, in place")
def zero_grad(m: ModuleType) -> str:
    params = [Param(np.ones(s)) for s in SHAPES]
    arrays = [p.grad for p in params]
    for p in params:
        p.grad[...] = 3.0
    need(m, "SGD")(params, lr=0.1).zero_grad()
    for p, a in zip(params, arrays):
        if not (isinstance(p.grad, np.ndarray) and p.grad.shape == a.shape and not p.grad.any()):
            raise Fail("after zero_grad a p.grad is not an array of zeros",
                       "set each gradient to 0 in place: p.grad[...] = 0 (or p.grad.fill(0))")
    return "gradients zeroed"
