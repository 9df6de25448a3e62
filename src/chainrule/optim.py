"""Optimizers: turn each parameter's gradient into an update of its data.

Plain gradient descent is θ ← θ − lr·∇L(θ). Everything else here refines that step.
The classes take the same argument names and follow the same update rules as PyTorch's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .module import Parameter


def _check_lr(name: str, lr: float) -> float:
    lr = float(lr)
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"{name}: learning rate must be a finite number ≥ 0, got {lr}")
    return lr


def _check_nonneg(owner: str, name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}: {name} must be a finite number ≥ 0, got {value}")
    return value


class Optimizer:
    """Holds the parameters (in one group) and per-parameter state such as momentum."""

    def __init__(self, params: Iterable[Parameter], defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: expected Parameters (model.parameters()), "
                    f"got {type(p).__name__}"
                )
        self.param_groups = [{"params": params, **defaults}]
        self.state: list[dict[str, np.ndarray]] = [{} for _ in params]

    @property
    def params(self) -> list[Parameter]:
        return self.param_groups[0]["params"]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = _check_lr(type(self).__name__, value)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0)

    def step(self) -> None:
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        return {k: v for k, v in self.param_groups[0].items() if k != "params"}

    def state_dict(self) -> dict:
        """`{"param_groups": [hyperparameters], "state": [{slot: array}, ...]}` (copies)."""
        return {
            "param_groups": [self.hyperparameters()],
            "state": [{k: np.array(v, copy=True) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state: dict) -> None:
        slots = state["state"]
        if len(slots) != len(self.params):
            raise ValueError(
                f"{type(self).__name__}: the saved state has {len(slots)} parameters, "
                f"this model has {len(self.params)}"
            )
        for i, (p, s) in enumerate(zip(self.params, slots)):
            for k, v in s.items():
                v = np.asarray(v)
                if v.ndim and v.shape != p.data.shape:
                    raise ValueError(
                        f"{type(self).__name__}: saved {k!r} of parameter {i} has shape "
                        f"{v.shape}, the parameter has {p.data.shape}"
                    )
        self.state = [
            {k: np.array(v, dtype=p.data.dtype if np.ndim(v) else None) for k, v in s.items()}
            for p, s in zip(self.params, slots)
        ]
        self.param_groups[0].update(state["param_groups"][0])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    g ← ∇L + λθ;   b ← μ·b + (1 − dampening)·g  (b = g on the first step);
    step = g + μ·b (Nesterov) or b (momentum) or g (plain);   θ ← θ − lr·step.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        lr = _check_lr("SGD", lr)
        momentum = _check_nonneg("SGD", "momentum", momentum)
        dampening = _check_nonneg("SGD", "dampening", dampening)
        weight_decay = _check_nonneg("SGD", "weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=bool(nesterov),
            ),
        )

    def step(self) -> None:
        group = self.param_groups[0]
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov = group["weight_decay"], group["nesterov"]
        for p, state in zip(self.params, self.state):
            g = p.grad
            if wd:
                g = g + wd * p.data
            if mu:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= mu
                    buf += (1 - damp) * g if damp else g
                g = g + mu * buf if nesterov else buf
            p.data -= lr * g


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD}


def make_optimizer(name: str, params: Iterable[Parameter], **kwargs) -> Optimizer:
    """An optimizer by name (`sgd`, `adam`, ...), e.g. for the CLI's `--optimizer`."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](params, **kwargs)
