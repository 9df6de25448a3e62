"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..module import Parameter
from .optimizer import Optimizer, axpy, check_lr, check_nonneg


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
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            g = p.grad
            tmp = self.scratch(i)
            if wd:  # g = ∇L + λθ, built in the work array so p.grad stays untouched
                np.multiply(p.data, wd, out=tmp)
                tmp += g
                g = tmp
            if mu:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= mu
                    if damp:
                        axpy(buf, 1 - damp, g, tmp)  # g is no longer needed (no Nesterov)
                    else:
                        buf += g
                if nesterov:  # θ ← θ − lr·g − lr·μ·b
                    axpy(p.data, -lr, g, tmp)
                    axpy(p.data, -lr * mu, buf, tmp)
                    continue
                g = buf
            axpy(p.data, -lr, g, tmp)
