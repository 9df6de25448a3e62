"""Adaptive-rate optimizers: RMSprop, Adagrad, Adam and AdamW.

Each keeps a running measure of every coordinate's squared gradient and divides the step
by its square root, so steep directions take small steps and flat ones large steps.
All follow the single-tensor update rules of `torch.optim` exactly (same defaults, same
state slot names), and update in place with one reusable work array per parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..module import Parameter
from .optimizer import Optimizer, axpy, check_lr, check_nonneg, check_unit


def _weight_decayed(p: Parameter, wd: float, tmp: np.ndarray) -> np.ndarray:
    """∇L + λθ (in the given work array), or ∇L itself when λ = 0."""
    if not wd:
        return p.grad
    np.multiply(p.data, wd, out=tmp)
    tmp += p.grad
    return tmp


def _bump(state: dict) -> int:
    """Increment the 0-d step counter, creating it on the first step; returns the new step."""
    step = state.get("step")
    if step is None:
        step = state["step"] = np.zeros((), dtype=np.int64)
    step += 1
    return int(step)


class RMSprop(Optimizer):
    """Divide each step by a running root-mean-square of recent gradients.

    v ← αv + (1 − α)g²;  (centered: ḡ ← αḡ + (1 − α)g, v̂ = v − ḡ²);  d = √v̂ + ε;
    momentum: b ← μb + g/d, θ ← θ − lr·b;   else θ ← θ − lr·g/d.
    """

    slots = frozenset({"step", "square_avg", "momentum_buffer", "grad_avg"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        name = "RMSprop"
        super().__init__(
            params,
            dict(
                lr=check_lr(name, lr),
                alpha=check_unit(name, "alpha", alpha, closed=True),
                eps=check_nonneg(name, "eps", eps),
                weight_decay=check_nonneg(name, "weight_decay", weight_decay),
                momentum=check_nonneg(name, "momentum", momentum),
                centered=bool(centered),
            ),
        )

    def required_slots(self, group: dict) -> frozenset[str]:
        slots = {"step", "square_avg"}
        slots |= {"momentum_buffer"} if group["momentum"] > 0 else set()
        slots |= {"grad_avg"} if group["centered"] else set()
        return frozenset(slots)

    def step(self) -> None:
        group = self.param_groups[0]
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        wd, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            tmp = self.scratch(i)
            if "square_avg" not in state:
                state["square_avg"] = np.zeros_like(p.data)
                if mu > 0:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                if centered:
                    state["grad_avg"] = np.zeros_like(p.data)
            _bump(state)
            g = _weight_decayed(p, wd, self.scratch(i, 1) if wd else tmp)
            sq = state["square_avg"]
            sq *= alpha
            np.multiply(g, g, out=tmp)
            axpy(sq, 1 - alpha, tmp, tmp)
            if centered:  # v̂ = v − ḡ², the variance rather than the raw second moment
                ga = state["grad_avg"]
                ga *= alpha
                axpy(ga, 1 - alpha, g, tmp)
                np.multiply(ga, ga, out=tmp)
                np.subtract(sq, tmp, out=tmp)
                np.sqrt(tmp, out=tmp)
            else:
                np.sqrt(sq, out=tmp)
            tmp += eps
            np.divide(g, tmp, out=tmp)  # g / d
            if mu > 0:
                buf = state["momentum_buffer"]
                buf *= mu
                buf += tmp
                axpy(p.data, -lr, buf, tmp)
            else:
                axpy(p.data, -lr, tmp, tmp)


class Adagrad(Optimizer):
    """Divide each step by the root of the sum of all past squared gradients.

    s ← s + g²;   θ ← θ − lr_t·g/(√s + ε),   lr_t = lr / (1 + (t − 1)·lr_decay).
    """

    slots = frozenset({"step", "sum"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        name = "Adagrad"
        super().__init__(
            params,
            dict(
                lr=check_lr(name, lr),
                lr_decay=check_nonneg(name, "lr_decay", lr_decay),
                weight_decay=check_nonneg(name, "weight_decay", weight_decay),
                initial_accumulator_value=check_nonneg(
                    name, "initial_accumulator_value", initial_accumulator_value
                ),
                eps=check_nonneg(name, "eps", eps),
            ),
        )
        init = self.param_groups[0]["initial_accumulator_value"]
        for p, state in zip(self.params, self.state):  # torch creates the state eagerly
            state["step"] = np.zeros((), dtype=np.int64)
            state["sum"] = np.full_like(p.data, init)

    def required_slots(self, group: dict) -> frozenset[str]:
        return frozenset({"step", "sum"})

    def step(self) -> None:
        group = self.param_groups[0]
        lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            tmp = self.scratch(i)
            if "sum" not in state:
                state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
            t = _bump(state)
            g = _weight_decayed(p, wd, self.scratch(i, 1) if wd else tmp)
            clr = lr / (1 + (t - 1) * lr_decay)
            acc = state["sum"]
            np.multiply(g, g, out=tmp)
            acc += tmp
            np.sqrt(acc, out=tmp)
            tmp += eps
            np.divide(g, tmp, out=tmp)
            axpy(p.data, -clr, tmp, tmp)


class Adam(Optimizer):
    """Momentum on the gradient, divided by the RMS of recent gradients, bias-corrected.

    m ← β₁m + (1 − β₁)g;   v ← β₂v + (1 − β₂)g²   (amsgrad: v̂ ← max(v̂, v), used for v);
    θ ← θ − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε).
    Weight decay adds λθ to g (L2, as torch.optim.Adam); AdamW decouples it instead.
    """

    slots = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
    decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        name = type(self).__name__
        super().__init__(
            params,
            dict(
                lr=check_lr(name, lr),
                betas=self._check_betas(betas),
                eps=check_nonneg(name, "eps", eps),
                weight_decay=check_nonneg(name, "weight_decay", weight_decay),
                amsgrad=bool(amsgrad),
                decoupled_weight_decay=self.decoupled,
            ),
        )

    def _check_betas(self, betas) -> tuple[float, float]:
        name = type(self).__name__
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{name}: betas must be a pair (β₁, β₂), got {betas!r}") from None
        return (check_unit(name, "betas[0]", b1), check_unit(name, "betas[1]", b2))

    def _validate_group(self, group: dict) -> None:
        super()._validate_group(group)
        if "betas" in group:
            group["betas"] = self._check_betas(group["betas"])
        if group.get("decoupled_weight_decay", self.decoupled) != self.decoupled:
            other = "AdamW" if not self.decoupled else "Adam"
            raise ValueError(
                f"{type(self).__name__}: the saved state is from {other} "
                f"(decoupled_weight_decay={not self.decoupled})"
            )

    def required_slots(self, group: dict) -> frozenset[str]:
        slots = {"step", "exp_avg", "exp_avg_sq"}
        return frozenset(slots | {"max_exp_avg_sq"} if group["amsgrad"] else slots)

    def step(self) -> None:
        group = self.param_groups[0]
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad = group["weight_decay"], group["amsgrad"]
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            tmp = self.scratch(i)
            if "exp_avg" not in state:
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            t = _bump(state)
            if wd and self.decoupled:  # AdamW: shrink θ directly, outside the moments
                p.data *= 1 - lr * wd
                g = p.grad
            else:
                g = _weight_decayed(p, wd, self.scratch(i, 1) if wd else tmp)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= b1
            axpy(m, 1 - b1, g, tmp)
            v *= b2
            np.multiply(g, g, out=tmp)
            axpy(v, 1 - b2, tmp, tmp)
            if amsgrad:
                vmax = state["max_exp_avg_sq"]
                np.maximum(vmax, v, out=vmax)
                v = vmax
            step_size = lr / (1 - b1**t)
            np.sqrt(v, out=tmp)
            tmp /= math.sqrt(1 - b2**t)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            axpy(p.data, -step_size, tmp, tmp)


class AdamW(Adam):
    """Adam with decoupled weight decay: θ ← θ(1 − lr·λ) before the Adam step.

    The decay no longer passes through m and v, so it shrinks every weight at the same rate
    regardless of its gradient history (Loshchilov & Hutter).
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
