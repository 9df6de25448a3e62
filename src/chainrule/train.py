"""The training loop: batches → forward → loss → backward → step, with a History of it.

One training step, the whole idea of the library in five lines:
    opt.zero_grad()                       # forget the last batch's gradients
    logits = model(xb)                    # forward: each layer caches what backward needs
    loss = loss_fn(logits, yb)            # a number to make smaller
    model.backward(loss_fn.backward())    # chain rule, layer by layer, into every p.grad
    opt.step()                            # move every parameter against its gradient
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .data.batching import batches
from .losses import Loss, NonFiniteError
from .metrics import accuracy as accuracy  # one implementation: chainrule.metrics
from .module import Module
from .optim import Optimizer


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message says where and what to try."""


@dataclass
class History:
    """Per-epoch curves (lists of equal length) plus the loss of every batch."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**{k: list(v) for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def epochs(self) -> int:
        return len(self.loss)


def predict(model: Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Model outputs for `x` (N, ...) in eval mode, computed in chunks to bound memory.

    Returns what the model returns, stacked: (N, classes) logits for a classifier. With N = 0
    one zero row goes through the model to learn the output's shape, so the result is still
    (0, classes).
    """
    if int(batch_size) < 1:
        raise ValueError(f"predict: batch_size must be ≥ 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        if len(x) == 0:
            return model(np.zeros((1, *np.shape(x)[1:]), np.asarray(x).dtype))[:0]
        outs = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(outs)


def evaluate(
    model: Module, loss_fn: Loss, x: np.ndarray, y: np.ndarray, batch_size: int = 1024
) -> tuple[float, float]:
    """(mean loss, accuracy) over a dataset, in eval mode."""
    logits = predict(model, x, batch_size)
    return float(loss_fn(logits, y)), accuracy(logits, y)


def _check_finite_loss(loss: float, epoch: int, batch: int, lr: float) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at epoch {epoch}, batch {batch}: the step size is too large "
            f"for this model; try a smaller learning rate (now {lr:g}, e.g. --lr {lr / 10:g})"
        )


def fit(
    model: Module,
    loss_fn: Loss,
    opt: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 1,
    batch_size: int | None = 64,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
    seed: int | None = 0,
    max_batches: int | None = None,
    augment: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray] | None = None,
    scheduler=None,
    progress: bool = True,
    history: History | None = None,
    on_epoch_end: Callable[[int, History], bool | None] | None = None,
    classification: bool = True,
) -> History:
    """Train `model` on (x, y) with mini-batch gradient descent; returns a `History`.

    - `batch_size`: 1 = stochastic, None/0 = full batch, else mini-batches (shuffled each
      epoch with `rng`, or a generator seeded by `seed`).
    - `max_batches`: stop after this many batches in total (the seed's "100 batches").
    - `augment(xb, yb, rng) -> xb`: transforms each training batch (e.g. random shifts).
    - `scheduler`: an object with `step()` (per epoch) or `step(val_loss)` (plateau).
    - `on_epoch_end(epoch, history)`: return True to stop early.
    Raises `TrainingDiverged` at the first NaN/inf loss.
    """
    n = _check_data(x, y)
    rng = rng if rng is not None else np.random.default_rng(seed)
    history = history if history is not None else History()
    size = n if not batch_size else min(int(batch_size), n)
    per_epoch = math.ceil(n / size)
    seen = 0
    first, last = history.epochs + 1, history.epochs + epochs
    for epoch in range(first, last + 1):
        model.train()
        start = time.perf_counter()
        total_loss, correct, count = 0.0, 0, 0
        bar = _progress(progress, per_epoch, epoch, last)
        for b, (xb, yb) in enumerate(batches(x, y, size, rng), start=1):
            if augment is not None:
                xb = augment(xb, yb, rng)
            opt.zero_grad()
            out = model(xb)
            try:
                loss = loss_fn(out, yb)
            except NonFiniteError:  # the model's outputs themselves overflowed
                loss = float("nan")
            _check_finite_loss(loss, epoch, b, opt.param_groups[0]["lr"])
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
            history.batch_loss.append(loss)
            total_loss += loss * len(xb)
            count += len(xb)
            if classification:
                correct += int(np.sum(out.argmax(axis=1) == _labels(yb)))
            seen += 1
            if bar is not None:
                if b % 25 == 0 or b == per_epoch:  # formatting every batch would cost ~10%
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(
                        loss=f"{total_loss / count:.4f}",
                        acc=f"{correct / count:.3f}" if classification else "-",
                        rate=f"{count / max(elapsed, 1e-9):,.0f}/s",
                        refresh=False,
                    )
                bar.update()
            if max_batches is not None and seen >= max_batches:
                break
        history.loss.append(total_loss / count)
        history.accuracy.append(correct / count if classification else float("nan"))
        history.lr.append(opt.param_groups[0]["lr"])
        if validation is not None:
            vl, va = evaluate(model, loss_fn, *validation)
            history.val_loss.append(vl)
            history.val_accuracy.append(va)
        history.time.append(time.perf_counter() - start)
        if bar is not None:
            if validation is not None:
                bar.set_postfix_str(
                    f"loss={history.loss[-1]:.4f} val_loss={history.val_loss[-1]:.4f} "
                    f"val_acc={history.val_accuracy[-1]:.4f}"
                )
            bar.close()
        if scheduler is not None:
            _step_scheduler(scheduler, history)
        stop = on_epoch_end(epoch, history) if on_epoch_end is not None else False
        if stop or (max_batches is not None and seen >= max_batches):
            break
    return history


def _check_data(x: np.ndarray, y: np.ndarray) -> int:
    """The number of training examples, or a ValueError when there are none or x, y differ."""
    n = len(x)
    if n == 0:
        raise ValueError("fit: x has 0 examples; pass at least one row to train on")
    if len(y) != n:
        raise ValueError(f"fit: x has {n} examples but y has {len(y)}; give one target per row")
    return n


def _labels(yb: np.ndarray) -> np.ndarray:
    return yb.argmax(axis=1) if yb.ndim == 2 else yb


def _step_scheduler(scheduler, history: History) -> None:
    if getattr(scheduler, "needs_metric", False):
        metric = history.val_loss[-1] if history.val_loss else history.loss[-1]
        scheduler.step(metric)
    else:
        scheduler.step()


def _progress(enabled: bool, total: int, epoch: int, epochs: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True)
