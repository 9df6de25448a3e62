"""Checks of the `softmax-ce` exercise: softmax and cross-entropy fused, from logits,
against the library's `chainrule.SoftmaxCrossEntropy` and against finite differences."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from ...losses import SoftmaxCrossEntropy
from ..checking import Checklist, Fail, as_array, expect_close, need, numerical_gradient
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
GRAD_HINT = "dL/dz = (p − y)/N: softmax p of each row, minus 1 at the true class, over N"


def _setup(seed: int, n: int = 6, classes: int = 5, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, classes)) * scale, rng.integers(0, classes, n)


def _call(m: ModuleType, z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    fn = need(m, "softmax_cross_entropy", "function")
    out = fn(z.copy(), labels.copy())
    if not isinstance(out, tuple) or len(out) != 2:
        raise Fail(f"softmax_cross_entropy returned {type(out).__name__}, not (loss, grad)",
                   "return a pair: the loss (a float) and dL/dz (an array shaped like z)")
    loss, grad = out
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise Fail(f"the loss is {type(loss).__name__}, not a number",
                   "the loss is one number: the mean over the N rows") from None
    return loss, as_array(grad, "dL/dz", z.shape)


def _library(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    loss_fn = SoftmaxCrossEntropy()
    return loss_fn(z, labels), loss_fn.backward()


@CHECKS.add("uniform-logits", "equal logits over 10 classes give loss ln 10 ≈ 2.3026")
def uniform_logits(m: ModuleType) -> str:
    loss, _ = _call(m, np.zeros((4, 10)), np.array([0, 3, 9, 5]))
    if not math.isclose(loss, math.log(10), rel_tol=1e-9):
        raise Fail(f"loss = {loss!r} for all-zero logits, expected ln 10 = {math.log(10):.6f}",
                   "with equal logits every p = 1/10, so −log p = ln 10 for every row; "
                   "the loss is the mean over the rows, not the sum")
    return "ln 10, the loss of a network that knows nothing"


@CHECKS.add("loss", "the loss L = −(1/N) Σ log p[y] against chainrule.SoftmaxCrossEntropy")
def loss(m: ModuleType) -> str:
    z, labels = _setup(0)
    got, _ = _call(m, z, labels)
    want, _ = _library(z, labels)
    if not math.isclose(got, want, rel_tol=1e-9):
        hint = ("that is the sum over the rows: divide by N" if math.isclose(
            got, want * len(z), rel_tol=1e-9) else "p = e^z / Σ e^z per row; L = mean over "
                "the rows of −log p[true class]")
        raise Fail(f"loss = {got!r}, expected {want!r}", hint)
    return f"L = {want:.6f}"


@CHECKS.add("gradient", "dL/dz = (p − y)/N against the library's backward")
def gradient(m: ModuleType) -> str:
    z, labels = _setup(1)
    _, got = _call(m, z, labels)
    _, want = _library(z, labels)
    if np.allclose(got, want * len(z), rtol=1e-9):
        raise Fail("dL/dz is N times too large", "the loss is a mean over N rows, so each "
                   "row's gradient p − y is divided by N")
    p = want * len(z)
    p[np.arange(len(z)), labels] += 1
    if np.allclose(got, p / len(z), rtol=1e-9) or np.allclose(got, p, rtol=1e-9):
        raise Fail("dL/dz is p, without the − y", "subtract 1 at each row's true class: "
                   "dL/dz = (p − y)/N with y the one-hot label")
    expect_close(got, want, "dL/dz", GRAD_HINT, tol=1e-9)
    return "(p − y)/N matches"


@CHECKS.add("finite-differences", "the gradient against float64 central differences")
def finite_differences(m: ModuleType) -> str:
    z, labels = _setup(2, n=3, classes=4)
    _, got = _call(m, z, labels)
    zs = z.copy()
    want = numerical_gradient(lambda: _call(m, zs, labels)[0], zs)
    expect_close(got, want, "dL/dz", "your gradient disagrees with finite differences of your "
                 "own loss: " + GRAD_HINT, tol=1e-6)
    return "relative error < 1e-6"


@CHECKS.add("large-logits", "logits of ±1000 give a finite loss and gradient, no overflow")
def large_logits(m: ModuleType) -> str:
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0]])
    labels = np.array([2, 1])
    stable = ("e^1000 overflows: subtract each row's max from z first (softmax does not "
              "change), and compute log p = (z − max) − log Σ e^(z − max), never log(p)")
    try:
        got_loss, got = _call(m, z, labels)
    except (RuntimeWarning, FloatingPointError) as warning:
        raise Fail(f"NumPy warned {str(warning)!r} with logits of ±1000", stable) from None
    want_loss, want = _library(z, labels)
    if math.isclose(got_loss, want_loss * len(z), rel_tol=1e-9):
        raise Fail("the loss is the sum over the rows", "divide by N: the loss is the mean")
    if not math.isfinite(got_loss) or not np.all(np.isfinite(got)):
        raise Fail(f"loss = {got_loss!r} with logits of ±1000", stable)
    if not math.isclose(got_loss, want_loss, rel_tol=1e-9):
        raise Fail(f"loss = {got_loss!r} with logits of ±1000, expected {want_loss!r}",
                   "p can round to 0: take log p = (z − max) − log Σ e^(z − max), not log(p)")
    expect_close(got, want, "dL/dz with logits of ±1000", GRAD_HINT, tol=1e-9)
    return "stable: the row max is subtracted"


@CHECKS.add("leaves-inputs", "the logits and labels given are not changed")
def leaves_inputs(m: ModuleType) -> str:
    z, labels = _setup(3)
    zs, ls = z.copy(), labels.copy()
    need(m, "softmax_cross_entropy", "function")(zs, ls)
    if not (np.array_equal(zs, z) and np.array_equal(ls, labels)):
        raise Fail("softmax_cross_entropy changed the logits or labels it was given",
                   "compute into new arrays (z - z.max(...), not z -= ...): the caller "
                   "still needs z")
    return "z and y untouched"
