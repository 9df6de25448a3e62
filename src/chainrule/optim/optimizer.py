"""The Optimizer base class: parameters, hyperparameters and per-parameter state.

An optimizer turns each parameter's gradient into an update of its data. Plain gradient
descent is θ ← θ − lr·∇L(θ); every subclass refines that step with some memory (momentum,
running averages of squared gradients, the previous iterate, ...), kept in `self.state`.

State format (what `state_dict()` returns and the CLI saves as `optim.<i>.<slot>` arrays):
    {"param_groups": [{hyperparameter: value}], "state": [{slot: ndarray}, ...]}
with one state dict per parameter, in `params` order; step counters are 0-d int64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..module import Module, Parameter


def check_lr(owner: str, lr: float) -> float:
    """`lr` as a float, or a ValueError if it is negative, NaN or infinite."""
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: learning rate must be a number, got {lr!r}") from None
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"{owner}: learning rate must be a finite number ≥ 0, got {lr}")
    return lr


def check_nonneg(owner: str, name: str, value: float) -> float:
    """`value` as a float, or a ValueError if it is negative, NaN or infinite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}: {name} must be a finite number ≥ 0, got {value}")
    return value


def check_unit(owner: str, name: str, value: float, closed: bool = False) -> float:
    """`value` in [0, 1) (or [0, 1] when `closed`), else a ValueError."""
    value = check_nonneg(owner, name, value)
    if value > 1 or (value == 1 and not closed):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value}")
    return value


def _plain(value):
    """JSON/npz round trips hand back lists and numpy scalars; the hot path wants floats."""
    if isinstance(value, np.ndarray) and value.ndim == 0 or isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


class Optimizer:
    """Holds the parameters (one group) and per-parameter state such as momentum.

    Subclasses list their state slot names in `slots` (those holding 0-d counters in
    `scalar_slots`) so a saved state can be checked against the model before loading.
    """

    slots: frozenset[str] = frozenset()
    scalar_slots: frozenset[str] = frozenset({"step"})

    def __init__(self, params: Iterable[Parameter], defaults: dict) -> None:
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, Module):
            params = params.parameters()
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
        # Scratch arrays for the in-place updates; never saved.
        self._scratch: dict[tuple[int, int], np.ndarray] = {}

    @property
    def params(self) -> list[Parameter]:
        return self.param_groups[0]["params"]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = check_lr(type(self).__name__, value)

    def zero_grad(self) -> None:
        for p in self.param_groups[0]["params"]:
            p.zero_grad()

    def step(self) -> None:
        raise NotImplementedError

    def scratch(self, i: int, k: int = 0) -> np.ndarray:
        """Reusable work array number `k`, shaped and typed like parameter `i`."""
        buf, data = self._scratch.get((i, k)), self.params[i].data
        if buf is None or buf.shape != data.shape or buf.dtype != data.dtype:
            buf = self._scratch[(i, k)] = np.empty_like(data)
        return buf

    def hyperparameters(self) -> dict:
        return {k: v for k, v in self.param_groups[0].items() if k != "params"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # ---- saving and loading --------------------------------------------------------------
    def state_dict(self) -> dict:
        """`{"param_groups": [hyperparameters], "state": [{slot: array}, ...]}` (copies)."""
        return {
            "param_groups": [self.hyperparameters()],
            "state": [{k: np.array(v, copy=True) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore hyperparameters and per-parameter state; raises ValueError on a mismatch."""
        name = type(self).__name__
        if not isinstance(state, dict) or "state" not in state or "param_groups" not in state:
            raise ValueError(f"{name}: expected a dict with 'param_groups' and 'state'")
        slots, groups = list(state["state"]), list(state["param_groups"])
        if len(groups) != 1:
            raise ValueError(f"{name}: expected one parameter group, got {len(groups)}")
        group = {k: _plain(v) for k, v in dict(groups[0]).items() if k != "params"}
        unknown = sorted(set(group) - set(self.hyperparameters()))
        if unknown:
            raise ValueError(
                f"{name}: the saved state has hyperparameters {unknown} that {name} does not "
                f"have; was it saved from a different optimizer?"
            )
        if len(slots) != len(self.params):
            raise ValueError(
                f"{name}: the saved state has {len(slots)} parameters, "
                f"this model has {len(self.params)}"
            )
        for i, (p, s) in enumerate(zip(self.params, slots)):
            for k, v in s.items():
                if k not in self.slots:
                    raise ValueError(
                        f"{name}: saved slot {k!r} of parameter {i} is not one of "
                        f"{sorted(self.slots)}; was it saved from a different optimizer?"
                    )
                shape = np.shape(v)
                expected = () if k in self.scalar_slots else p.data.shape
                if shape != expected:
                    raise ValueError(
                        f"{name}: saved {k!r} of parameter {i} has shape {shape}, "
                        f"expected {expected} (parameter shape {p.data.shape})"
                    )
        self._validate_group(group)
        self._check_slots_present([set(s) for s in slots], {**self.hyperparameters(), **group})
        self.state = [
            {
                k: np.array(v, dtype=np.int64 if k in self.scalar_slots else p.data.dtype)
                for k, v in s.items()
            }
            for p, s in zip(self.params, slots)
        ]
        self.param_groups[0].update(group)

    def required_slots(self, group: dict) -> frozenset[str]:
        """The slots `step()` reads once a parameter has state, for these hyperparameters.

        Subclasses override this (e.g. SGD needs `momentum_buffer` only when momentum > 0).
        """
        return frozenset()

    def _check_slots_present(self, saved: list[set[str]], group: dict) -> None:
        """A saved state is either empty (no step taken yet) or complete for every parameter;
        anything in between would load, then fail (or silently restart) inside `step()`."""
        if not any(saved):
            return
        required = self.required_slots(group)
        for i, names in enumerate(saved):
            missing = sorted(required - names)
            if missing:
                raise ValueError(
                    f"{type(self).__name__}: the saved state of parameter {i} lacks slot "
                    f"{missing[0]!r} (it has {sorted(names)}); the state is incomplete, "
                    f"so start this optimizer afresh instead of loading it"
                )

    def _validate_group(self, group: dict) -> None:
        """Subclasses re-check loaded hyperparameters here."""
        if "lr" in group:
            group["lr"] = check_lr(type(self).__name__, group["lr"])


def axpy(y: np.ndarray, alpha: float, x: np.ndarray, tmp: np.ndarray) -> None:
    """y += alpha·x in place, using `tmp` as the work array (tmp may be x itself)."""
    np.multiply(x, alpha, out=tmp)
    y += tmp
