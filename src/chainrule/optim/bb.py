"""Barzilai–Borwein gradient descent: a step size read off the last two iterates.

With s = θₖ − θₖ₋₁ and y = ∇L(θₖ) − ∇L(θₖ₋₁), the secant condition α⁻¹s ≈ y gives
    BB1 (long):  α = s·s / s·y        BB2 (short):  α = s·y / y·y
and then θₖ₊₁ = θₖ − α∇L(θₖ). On a quadratic, 1/α is a Rayleigh quotient of the Hessian,
so the step adapts to the curvature along the last move without any line search.
It is meant for full-batch, deterministic problems (e.g. least squares for Ax = b):
with mini-batch noise y stops measuring curvature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..module import Parameter
from .optimizer import Optimizer, axpy, check_lr, check_nonneg

_VARIANTS = {1: 1, 2: 2, "bb1": 1, "bb2": 2, "long": 1, "short": 2}


class BarzilaiBorwein(Optimizer):
    """Gradient descent with the Barzilai–Borwein step size (one α for all parameters).

    - `lr`: the step of the first iteration, and the fallback whenever s·y ≤ 0 (the last
      move saw no positive curvature) or the ratio is not finite.
    - `variant`: 1 (BB1, s·s/s·y, the default) or 2 (BB2, s·y/y·y); "bb1"/"bb2" also work.
    - `weight_decay`: adds λθ to the gradient (an L2 term in the objective).
    The dot products run over every parameter, as if θ were one flat vector.
    `last_step_size` is the α used by the latest `step()`.
    """

    slots = frozenset({"step", "prev_param", "prev_grad"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        variant: int | str = 1,
        weight_decay: float = 0.0,
    ) -> None:
        key = variant.lower() if isinstance(variant, str) else variant
        if key not in _VARIANTS:
            raise ValueError(
                f"BarzilaiBorwein: variant must be 1 or 2 ('bb1'/'bb2'), got {variant!r}"
            )
        super().__init__(
            params,
            dict(
                lr=check_lr("BarzilaiBorwein", lr),
                variant=_VARIANTS[key],
                weight_decay=check_nonneg("BarzilaiBorwein", "weight_decay", weight_decay),
            ),
        )
        self.last_step_size = float("nan")

    def _validate_group(self, group: dict) -> None:
        super()._validate_group(group)
        if "variant" in group and group["variant"] not in _VARIANTS:
            raise ValueError(f"BarzilaiBorwein: bad saved variant {group['variant']!r}")
        if "variant" in group:
            group["variant"] = _VARIANTS[group["variant"]]

    def required_slots(self, group: dict) -> frozenset[str]:
        return frozenset({"step", "prev_param", "prev_grad"})

    def step(self) -> None:
        group = self.param_groups[0]
        lr, variant, wd = group["lr"], group["variant"], group["weight_decay"]
        grads = []
        for i, p in enumerate(self.params):
            if wd:
                g = self.scratch(i, 1)
                np.multiply(p.data, wd, out=g)
                g += p.grad
            else:
                g = p.grad
            grads.append(g)
        started = all("prev_param" in s for s in self.state)
        alpha = lr
        if started:
            ss = sy = yy = 0.0
            for i, (p, g, state) in enumerate(zip(self.params, grads, self.state)):
                s, y = self.scratch(i), state["prev_grad"]
                np.subtract(p.data, state["prev_param"], out=s)
                np.subtract(g, y, out=y)  # prev_grad now holds y; refilled below
                s_flat, y_flat = s.reshape(-1), y.reshape(-1)
                ss += float(np.dot(s_flat, s_flat))
                sy += float(np.dot(s_flat, y_flat))
                yy += float(np.dot(y_flat, y_flat))
            ratio = (ss / sy if variant == 1 else sy / yy) if sy > 0 else math.nan
            if math.isfinite(ratio) and ratio > 0:
                alpha = ratio
        self.last_step_size = alpha
        for i, (p, g, state) in enumerate(zip(self.params, grads, self.state)):
            if started:
                state["prev_param"][...] = p.data
                state["prev_grad"][...] = g
            else:
                state["prev_param"] = p.data.copy()
                state["prev_grad"] = np.array(g, copy=True)
                state["step"] = np.zeros((), dtype=np.int64)
            state["step"] += 1
            axpy(p.data, -alpha, g, self.scratch(i))
