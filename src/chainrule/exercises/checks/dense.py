"""Checks of the `dense` exercise: Y = X Wᵀ + b and its backward, in float64, against the
library's `chainrule.Dense` and against finite differences."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ...layers import Dense as LibraryDense
from ..checking import Checklist, expect_close, need
from . import layer as lc
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
HINTS = {
    "dL/dx": "dL/dX = G W: (N, out) @ (out, in) → (N, in)",
    "dL/dW": "dL/dW = Gᵀ X: (out, N) @ (N, in) → (out, in); it sums over the batch rows",
    "dL/db": "dL/db = Σ over the batch rows of G: shape (out,)",
}


def _setup(seed: int = 0, n: int = 5, fan_in: int = 4, fan_out: int = 3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, fan_in)), rng.standard_normal((fan_out, fan_in)),
            rng.standard_normal(fan_out), rng.standard_normal((n, fan_out)))


def _library(weight, bias) -> LibraryDense:
    layer = LibraryDense(weight.shape[1], weight.shape[0], dtype=np.float64)
    layer.weight.data[...] = weight
    layer.bias.data[...] = bias
    return layer


@CHECKS.add("forward", "Y = X Wᵀ + b on a batch of 5 rows, against chainrule.Dense")
def forward(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, _ = _setup()
    got = Dense(W.copy(), b.copy()).forward(x.copy())
    expect_close(got, _library(W, b).forward(x), "forward's output Y",
                 "Y = X Wᵀ + b: X is (N, in), W is (out, in), so X @ W.T is (N, out); b (out,) "
                 "is added to every row")
    return "Y (5, 3) matches"


@CHECKS.add("backward", "dL/dX, dL/dW, dL/db against chainrule.Dense")
def backward(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, G = _setup(1)
    lc.compare_backward(lc.layer_backward(Dense(W.copy(), b.copy()), x, G),
                        lc.library_backward(_library(W, b), x, G), HINTS)
    return "all three gradients match"


@CHECKS.add("finite-differences", "the gradients against float64 central differences")
def finite_differences(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, G = _setup(2, n=3)
    lc.finite_differences(Dense, x, G, W, b)
    return "relative error < 1e-6"


@CHECKS.add("batch-of-one", "a batch of a single row (N = 1) keeps its shapes")
def batch_of_one(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, G = _setup(3, n=1)
    learner = lc.layer_backward(Dense(W.copy(), b.copy()), x, G)
    lc.compare_backward(learner, lc.library_backward(_library(W, b), x, G), HINTS)
    return "N = 1 works"


@CHECKS.add("accumulates", "two backward passes add up their gradients (+=)")
def accumulates(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, G = _setup(4)
    lc.accumulates(Dense(W.copy(), b.copy()), x, G)
    return "gradients add up"


@CHECKS.add("leaves-inputs", "forward and backward do not change the arrays they are given")
def leaves_inputs(m: ModuleType) -> str:
    Dense = need(m, "Dense")
    x, W, b, G = _setup(5)
    lc.leaves_input(Dense(W.copy(), b.copy()), x, G)
    return "x and grad_out untouched"
