"""Checks of the `conv2d` exercise: a 2-D convolution (cross-correlation, as in PyTorch) with
stride and padding, forward and backward in float64, against the library's
`chainrule.Conv2D` and against finite differences."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ...conv import Conv2D as LibraryConv2D
from ..checking import Checklist, Fail, expect_close, need
from . import layer as lc
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
FORMULA = "y[n, f, a, b] = bias[f] + Σ_{c,i,j} W[f, c, i, j] · xpad[n, c, s·a + i, s·b + j]"
HINTS = {
    "dL/dx": "each x value fed every window it lies in: dxpad[n, c, s·a + i, s·b + j] += "
             "W[f, c, i, j] · G[n, f, a, b] over all f, a, b, i, j; then cut the padding off",
    "dL/dW": "dW[f, c, i, j] = Σ_{n,a,b} G[n, f, a, b] · xpad[n, c, s·a + i, s·b + j]",
    "dL/db": "db[f] = Σ_{n,a,b} G[n, f, a, b]: sum over the batch and every position",
}
# (N, C, H, W), (F, kh, kw), stride, padding: square and not, with and without stride/padding
CASES = [((2, 3, 6, 6), (4, 3, 3), 1, 0), ((2, 2, 7, 6), (3, 2, 3), 2, 1),
         ((1, 1, 5, 5), (2, 5, 5), 1, 2)]  # fmt: skip


def _setup(case, seed: int):
    (n, c, h, w), (f, kh, kw), stride, padding = case
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw))
    bias = rng.standard_normal(f)
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    return x, weight, bias, rng.standard_normal((n, f, ho, wo)), stride, padding


def _library(weight, bias, stride, padding) -> LibraryConv2D:
    f, c, kh, kw = weight.shape
    conv = LibraryConv2D(c, f, (kh, kw), stride=stride, padding=padding, dtype=np.float64)
    conv.weight.data[...] = weight
    conv.bias.data[...] = bias
    return conv


def _learner(m: ModuleType, stride: int, padding: int):
    Conv2D = need(m, "Conv2D")
    return lambda weight, bias: Conv2D(weight, bias, stride=stride, padding=padding)


def _where(case) -> str:
    (n, c, h, w), (f, kh, kw), stride, padding = case
    return f"x {(n, c, h, w)}, W {(f, c, kh, kw)}, stride {stride}, padding {padding}"


@CHECKS.add("output-shape", "Ho = ⌊(H + 2·padding − kh)/stride⌋ + 1, and the same for Wo")
def output_shape(m: ModuleType) -> str:
    for case in CASES:
        x, weight, bias, G, stride, padding = _setup(case, 0)
        y = np.asarray(_learner(m, stride, padding)(weight, bias).forward(x.copy()))
        if y.shape != G.shape:
            raise Fail(f"forward gives shape {y.shape} for {_where(case)}; expected {G.shape}",
                       "Ho = (H + 2·padding − kh) // stride + 1 (and Wo likewise): a window "
                       "must fit whole inside the padded image")
    return "three geometries"


@CHECKS.add("forward", "y vs chainrule.Conv2D: stride 1 and 2, padding 0–2, non-square kernels")
def forward(m: ModuleType) -> str:
    for k, case in enumerate(CASES):
        x, weight, bias, _, stride, padding = _setup(case, 10 + k)
        got = _learner(m, stride, padding)(weight.copy(), bias.copy()).forward(x.copy())
        want = _library(weight, bias, stride, padding).forward(x)
        expect_close(got, want, f"forward's output ({_where(case)})",
                     FORMULA + " (cross-correlation: the kernel is not flipped)")
    return "three geometries match"


@CHECKS.add("backward", "dL/dx, dL/dW, dL/db against chainrule.Conv2D")
def backward(m: ModuleType) -> str:
    for k, case in enumerate(CASES):
        x, weight, bias, G, stride, padding = _setup(case, 20 + k)
        learner = lc.layer_backward(_learner(m, stride, padding)(weight.copy(), bias.copy()),
                                    x, G)
        library = lc.library_backward(_library(weight, bias, stride, padding), x, G)
        try:
            lc.compare_backward(learner, library, HINTS)
        except Fail as fail:
            raise Fail(f"{fail.what} ({_where(case)})", fail.hint) from None
    return "three geometries match"


@CHECKS.add("finite-differences", "the gradients against float64 central differences")
def finite_differences(m: ModuleType) -> str:
    case = ((1, 2, 5, 4), (2, 3, 2), 2, 1)
    x, weight, bias, G, stride, padding = _setup(case, 30)
    lc.finite_differences(_learner(m, stride, padding), x, G, weight, bias)
    return "relative error < 1e-6"


@CHECKS.add("accumulates", "two backward passes add up their gradients (+=)")
def accumulates(m: ModuleType) -> str:
    x, weight, bias, G, stride, padding = _setup(CASES[1], 40)
    lc.accumulates(_learner(m, stride, padding)(weight, bias), x, G)
    return "gradients add up"


@CHECKS.add("leaves-inputs", "forward and backward do not change the arrays they are given")
def leaves_inputs(m: ModuleType) -> str:
    x, weight, bias, G, stride, padding = _setup(CASES[1], 50)
    lc.leaves_input(_learner(m, stride, padding)(weight, bias), x, G)
    return "x and grad_out untouched"
