"""Training callbacks for `fit(..., on_epoch_end=callback)`: called as callback(epoch,
history) after every epoch; returning True stops training."""

from __future__ import annotations

import math

import numpy as np

from .module import Module


class EarlyStopping:
    """Stop when the validation loss has not improved for `patience` epochs.

    An epoch improves when its loss < best − min_delta. With `restore_best` (and a `model`),
    a copy of the best epoch's `model.state_dict()` is kept and loaded back into the model
    when training stops. If fit() runs out of epochs first, call `restore()` yourself.

        stopper = EarlyStopping(patience=3, model=model)
        fit(model, loss_fn, opt, x, y, epochs=50, validation=(xv, yv), on_epoch_end=stopper)

    `monitor` names the History list to watch: "val_loss" (the default; falls back to "loss"
    when there is no validation set), "loss", "val_accuracy" or "accuracy" (accuracies must
    grow, losses shrink). Any other name raises ValueError. `best`, `best_epoch` and
    `stopped_epoch` record what happened (`best` is the watched value itself).
    """

    MONITORS = ("val_loss", "loss", "val_accuracy", "accuracy")

    def __init__(
        self,
        patience: int,
        min_delta: float = 0.0,
        restore_best: bool = True,
        model: Module | None = None,
        monitor: str = "val_loss",
    ) -> None:
        if int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer ≥ 0, got {patience}")
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"EarlyStopping: min_delta must be ≥ 0, got {min_delta}")
        if monitor not in self.MONITORS:
            raise ValueError(
                f"EarlyStopping: unknown monitor {monitor!r}; choose one of {list(self.MONITORS)}"
            )
        self._sign = -1.0 if monitor.endswith("accuracy") else 1.0  # watch −accuracy
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.restore_best, self.model, self.monitor = bool(restore_best), model, monitor
        self.reset()

    def reset(self) -> None:
        self._best = math.inf  # the watched value, negated for accuracies
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_epoch = 0
        self.best_state: dict[str, np.ndarray] | None = None

    def __call__(self, epoch: int, history) -> bool:
        values = getattr(history, self.monitor)
        if not values and self.monitor.startswith("val_"):  # no validation set: the training curve
            values = getattr(history, self.monitor.removeprefix("val_"))
        current = self._sign * float(values[-1])
        if current < self._best - self.min_delta:  # NaN never improves
            self._best, self.best_epoch, self.bad_epochs = current, epoch, 0
            if self.restore_best and self.model is not None:
                self.best_state = self.model.state_dict()
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_epoch = epoch
            if self.restore_best:
                self.restore()
            return True
        return False

    @property
    def best(self) -> float:
        """The best value of the watched curve so far (inf/−inf before the first epoch)."""
        return self._sign * self._best

    def restore(self, model: Module | None = None) -> bool:
        """Load the best weights seen into `model` (default: the one given at construction).

        Returns False when there is nothing to restore (no model, or no epoch improved).
        """
        model = model if model is not None else self.model
        if model is None or self.best_state is None:
            return False
        model.load_state_dict(self.best_state)
        return True
