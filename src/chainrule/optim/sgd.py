"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..module import Parameter
from .optimizer import Optimizer, check_lr, check_nonneg


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    g ← ∇L + λθ;   b ← μ·b + (1 − dampening)·g  (b = g on the first step);
    step = g + μ·b (Nesterov) or b (momentum) or g (plain);   θ ← θ − lr·step.
    Same update as `torch.optim.SGD`.
    """

    slots = frozenset({"momentum_buffer"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        lr = check_lr("SGD", lr)
        momentum = check_nonneg("SGD", "momentum", momentum)
        dampening = check_nonneg("SGD", "dampening", dampening)
        weight_decay = check_nonneg("SGD", "weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(
            params,
            dict(lr=lr, momentum=momentum, dampening=dampening,
                 weight_decay=weight_decay, nesterov=bool(nesterov)),
        )

    def required_slots(self, group: dict) -> frozenset[str]:
        return frozenset({"momentum_buffer"}) if group["momentum"] else frozenset()

    def step(self) -> None:
        group = self.param_groups[0]
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov = group["weight_decay"], group["nesterov"]
        if not (wd or mu):
            self._plain_step(lr)
            return
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            g = p.grad
            if wd:  # g = ∇L + λθ, built in a work array so p.grad stays untouched
                g = np.multiply(p.data, wd, out=self.scratch(i))
                g += p.grad
            if mu:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= mu
                    buf += (1 - damp) * g if damp else g
                g = g + mu * buf if nesterov else buf
            # one temporary lr·g: measured faster than a kept work array, which costs a
            # third weight-sized array's worth of cache traffic on every step
            p.data -= lr * g

    def _plain_step(self, lr: float) -> None:
        """θ ← θ − lr·∇L for every parameter. A gradient still marked zero (the parameter
        took no part in this backward) changes nothing, θ − lr·0 = θ, so it is skipped."""
        for p in self.params:
            if not p._grad_is_zero:
                p.data -= lr * p._grad
