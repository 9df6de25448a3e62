"""Learning-rate schedules: change `opt.param_groups[0]["lr"]` as training goes on.

Each follows the class of the same name in `torch.optim.lr_scheduler`: construction applies
step 0, every `step()` moves one epoch (or batch) on, and the rate is updated by torch's own
chained (recursive) formula, so the sequence of rates matches torch's to the last bits.
`ReduceLROnPlateau` instead watches a metric: `step(val_loss)`; it sets `needs_metric`.
"""

from __future__ import annotations

import math
from typing import Any

from .optimizer import Optimizer, check_nonneg


class LRScheduler:
    """Base class: `step()`, `get_last_lr()`, `state_dict()` / `load_state_dict()`."""

    needs_metric = False

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def _lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        self._step_count += 1
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._lrs()

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the latest step (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (plain JSON-able numbers and lists)."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the schedule, and set the optimizer's rate to the saved current rate."""
        state = {k: v for k, v in state.items() if k != "optimizer"}
        unknown = sorted(set(state) - set(self.__dict__))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: the saved state has keys {unknown} that this "
                f"schedule does not; was it saved from a different schedule?"
            )
        self.__dict__.update({k: (list(v) if isinstance(v, (list, tuple)) else v)
                              for k, v in state.items()})
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class StepLR(LRScheduler):
    """lr ← lr·γ every `step_size` steps:  lr_t = lr₀·γ^⌊t/step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = check_nonneg("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class ExponentialLR(LRScheduler):
    """lr ← lr·γ every step:  lr_t = lr₀·γᵗ."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = check_nonneg("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class CosineAnnealingLR(LRScheduler):
    """lr_t = η_min + ½(lr₀ − η_min)(1 + cos(πt/T_max)), computed recursively as torch does.

    Past T_max the rate climbs back up (a cosine of period 2·T_max), exactly like torch's.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = check_nonneg("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._lrs()
        if (t - 1 - T) % (2 * T) == 0:  # the bottom of the cosine: the ratio below is 0/0
            return [lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._lrs())]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta) + eta for lr in self._lrs()]


class LinearWarmup(LRScheduler):
    """Scale lr₀ linearly from `start_factor` to `end_factor` over `total_iters` steps.

    lr_t = lr₀·(s + (e − s)·min(t, total_iters)/total_iters), computed recursively as
    `torch.optim.lr_scheduler.LinearLR` does (this class is also exported as `LinearLR`).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        name = type(self).__name__
        start_factor, end_factor = float(start_factor), float(end_factor)
        if not 0 < start_factor <= 1:
            raise ValueError(f"{name}: start_factor must be in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"{name}: end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _positive_int(name, "total_iters", total_iters)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t, s, e = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * s for lr in self._lrs()]
        if self._is_initial or t > self.total_iters:
            return self._lrs()
        factor = 1.0 + (e - s) / (self.total_iters * s + (t - 1) * (e - s))
        return [lr * factor for lr in self._lrs()]


LinearLR = LinearWarmup


class ReduceLROnPlateau:
    """Multiply lr by `factor` once the metric has not improved for `patience` steps.

    `step(metric)` each epoch (fit() passes the validation loss). "Improved" means below
    best·(1 − threshold) (mode "min", threshold_mode "rel"), or above best·(1 + threshold)
    (mode "max"), or beyond best ∓ threshold ("abs"). After a cut, `cooldown` steps pass
    before bad epochs count again; lr never goes below `min_lr`, and a change smaller than
    `eps` is skipped. Same rules as torch's class of the same name.
    """

    needs_metric = True

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        name = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        factor = check_nonneg(name, "factor", factor)
        if factor >= 1:
            raise ValueError(f"{name}: factor must be < 1, got {factor}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = factor
        self.patience = int(check_nonneg(name, "patience", patience))
        self.threshold = check_nonneg(name, "threshold", threshold)
        self.cooldown = int(check_nonneg(name, "cooldown", cooldown))
        self.min_lr = check_nonneg(name, "min_lr", min_lr)
        self.eps = check_nonneg(name, "eps", eps)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else a < best - self.threshold
        return a > best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else a > best + self.threshold

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metric: float) -> None:
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                old = float(group["lr"])
                new = max(old * self.factor, self.min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    get_last_lr = LRScheduler.get_last_lr
    state_dict = LRScheduler.state_dict
    load_state_dict = LRScheduler.load_state_dict

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(best={self.best}, bad_epochs={self.num_bad_epochs}, "
                f"lr={self._last_lr})")


SCHEDULERS: dict[str, type] = {
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "warmup": LinearWarmup,
    "linear": LinearWarmup,
    "plateau": ReduceLROnPlateau,
}


def make_scheduler(name: str, optimizer: Optimizer, **kwargs):
    """A schedule by name (`step`, `exponential`, `cosine`, `warmup`/`linear`, `plateau`)
    or by class name (`StepLR`, ...), e.g. for the CLI's `--schedule`."""
    classes = {cls.__name__.lower(): cls for cls in SCHEDULERS.values()}
    classes["linearlr"] = LinearWarmup
    key = name.lower()
    cls = SCHEDULERS.get(key) or classes.get(key)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULERS)}")
    return cls(optimizer, **kwargs)
