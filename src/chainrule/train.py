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
from dataclasses import dataclass, field, fields

import numpy as np

from .batching import batches
from .distributed import Communicator, Shard, end_job, set_shard
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
        # a copy of each list (floats are immutable): `asdict` would deep-copy every float,
        # which cost more than the model itself in a per-epoch checkpoint
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

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
    comm: Communicator | None = None,
) -> History:
    """Train `model` on (x, y) with mini-batch gradient descent; returns a `History`.

    - `batch_size`: 1 = stochastic, None/0 = full batch, else mini-batches (shuffled each
      epoch with `rng`, or a generator seeded by `seed`).
    - `max_batches`: stop after this many batches in total (the seed's "100 batches").
    - `augment(xb, yb, rng) -> xb`: transforms each training batch (e.g. random shifts).
    - `scheduler`: an object with `step()` (per epoch) or `step(val_loss)` (plateau).
    - `on_epoch_end(epoch, history)`: return True to stop early.
    - `comm`: a `chainrule.distributed` communicator to train data-parallel on N ranks. Every
      rank passes the same data, seed and `batch_size` (the global batch); each computes on
      its slice of every batch and the gradients are summed over the ranks, so the weights
      come out as one process would make them, for a loss with `reduction` "mean" or "sum"
      (any other loss is refused: how to split it over the ranks is not known). Only rank 0
      shows progress. The ranks check their data and loss together before the first
      exchange: a problem on any rank raises `RankFailed` on every rank.
    Raises `TrainingDiverged` at the first NaN/inf loss.
    """
    comm = comm if comm is not None else Communicator()
    with comm.phase():  # every rank checks its inputs before the first collective
        n = _check_data(x, y)
        if comm.size > 1:
            _share_of_batch(loss_fn, 0, 1)  # refuses a loss it cannot split over the ranks
    rng = rng if rng is not None else np.random.default_rng(seed)
    history = history if history is not None else History()
    size = n if not batch_size else min(int(batch_size), n)
    per_epoch = math.ceil(n / size)
    budget = _Budget(max_batches)
    first, last = history.epochs + 1, history.epochs + epochs
    shard = _start_parallel(model, comm)
    try:
        for epoch in range(first, last + 1):
            model.train()
            start = time.perf_counter()
            bar = _progress(progress and comm.is_root, per_epoch, epoch, last)
            loop = _EpochLoop(model, loss_fn, opt, classification, bar, per_epoch, start, shard)
            batch_iter = _rank_batches(x, y, size, rng, augment, comm)
            totals = loop.run(batch_iter, epoch, history, budget)
            _record_epoch(history, totals, opt, classification, start, validation, model, loss_fn)
            _close_progress(bar, history, validation is not None)
            if scheduler is not None:
                _step_scheduler(scheduler, history)
            stop = on_epoch_end(epoch, history) if on_epoch_end is not None else False
            if stop or budget.spent():
                break
    except Exception as exc:
        if shard is not None and not isinstance(exc, TrainingDiverged):
            end_job(comm, exc)
        raise
    finally:
        if shard is not None:
            set_shard(model, None)
    return history


def _start_parallel(model: Module, comm: Communicator) -> Shard | None:
    """On N > 1 ranks: give every rank rank 0's weights, and the layers that need to know
    where this rank's rows sit in the global batch (Dropout, BatchNorm) a `Shard`."""
    if comm.size == 1:
        return None
    comm.broadcast_parameters(model)
    shard = Shard(0, 0, 0, comm)
    set_shard(model, shard)
    return shard


def _rank_batches(x, y, size: int, rng: np.random.Generator, augment, comm: Communicator):
    """Yield (xb, yb, global rows): one epoch of augmented mini-batches, this rank's rows.

    On one rank these are `batches(x, y, size, rng)`, each passed through `augment`. On N
    ranks every rank draws the same permutation and the same augmentation for the whole
    global batch from the same generator, then keeps its slice `comm.part(rows)`: the random
    numbers do not depend on N.
    """
    if comm.size == 1:
        for xb, yb in batches(x, y, size, rng):
            yield (xb if augment is None else augment(xb, yb, rng)), yb, len(xb)
        return
    order = rng.permutation(len(x))  # the draw `batches` makes
    for begin in range(0, len(x), size):
        idx = order[begin : begin + size]
        mine = idx[comm.part(len(idx))]
        if augment is None:
            yield x[mine], y[mine], len(idx)
        else:
            yield augment(x[idx], y[idx], rng)[comm.part(len(idx))], y[mine], len(idx)


@dataclass
class _Budget:
    """The `max_batches` limit over the whole run (None: no limit)."""

    limit: int | None
    seen: int = 0

    def spent(self) -> bool:
        return self.limit is not None and self.seen >= self.limit


@dataclass
class _Totals:
    """Running sums over one epoch's batches: Σ loss·batch size, correct predictions, rows."""

    loss: float = 0.0
    correct: int = 0
    count: int = 0

    def add(self, loss: float, rows: int, correct: int) -> None:
        self.loss += loss * rows
        self.count += rows
        self.correct += correct


@dataclass
class _EpochLoop:
    """One epoch of training steps over the batches, with its progress bar."""

    model: Module
    loss_fn: Loss
    opt: Optimizer
    classification: bool
    bar: object
    per_epoch: int
    start: float
    shard: Shard | None = None  # set on N > 1 ranks

    def run(self, batch_iter, epoch: int, history: History, budget: _Budget) -> _Totals:
        totals = _Totals()
        model, loss_fn, opt = self.model, self.loss_fn, self.opt
        record = history.batch_loss.append  # looked up once: this loop runs every step
        for b, (xb, yb, total) in enumerate(batch_iter, start=1):
            if self.shard is None:
                loss, out = _train_step(model, loss_fn, opt, xb, yb, epoch, b)
                rows, correct = len(xb), _correct(out, yb, self.classification)
            else:
                loss, rows, correct = self._parallel_step(xb, yb, total, epoch, b)
            record(loss)
            totals.add(loss, rows, correct)
            budget.seen += 1
            if self.bar is not None:
                self._show(b, totals)
            if budget.spent():
                break
        return totals

    def _show(self, b: int, totals: _Totals) -> None:
        if b % 25 == 0 or b == self.per_epoch:  # formatting every batch would cost ~10%
            elapsed = time.perf_counter() - self.start
            self.bar.set_postfix(
                loss=f"{totals.loss / totals.count:.4f}",
                acc=f"{totals.correct / totals.count:.3f}" if self.classification else "-",
                rate=f"{totals.count / max(elapsed, 1e-9):,.0f}/s",
                refresh=False,
            )
        self.bar.update()


    def _parallel_step(self, xb: np.ndarray, yb, total: int, epoch: int, batch: int):
        """One synchronous data-parallel step on this rank's rows of a global batch of
        `total` rows; returns the global batch's (loss, rows, correct predictions).

        Each rank's loss and its gradient are scaled by the rank's share of the global
        batch's loss (`_share_of_batch`), so their sums over the ranks are the global batch's
        loss and gradient, as one process computes them. Every rank runs forward, backward
        and the Allreduce even with no rows or a NaN loss (a zero gradient then), so none is
        left waiting in a collective; the NaN reaches all ranks through the sum and every
        rank raises `TrainingDiverged` at the same step.
        """
        model, loss_fn, opt, comm = self.model, self.loss_fn, self.opt, self.shard.comm
        part = comm.part(total)
        self.shard.start, self.shard.stop, self.shard.total = part.start, part.stop, total
        rows = len(xb)
        opt.zero_grad()
        out = model(xb)
        loss_term, correct, grad = 0.0, 0, None
        if rows:
            try:
                loss = loss_fn(out, yb)
            except NonFiniteError:
                loss = float("nan")
            share = _share_of_batch(loss_fn, rows, total)
            loss_term = loss * share
            correct = _correct(out, yb, self.classification)
            if math.isfinite(loss):
                grad = loss_fn.backward() * share
        model.backward(np.zeros_like(out) if grad is None else grad, input_grad=False)
        loss, correct, count = comm.allreduce_gradients(model, loss_term, correct, rows)
        _check_finite_loss(float(loss), epoch, batch, opt.param_groups[0]["lr"])
        opt.step()
        return float(loss), int(count), int(correct)


def _share_of_batch(loss_fn: Loss, rows: int, total: int) -> float:
    """The factor that turns a rank's loss on its `rows` of a global batch of `total` rows
    (and that loss's gradient) into its term of the global batch's loss L = Σ_ranks factor·L_r:

        reduction "mean":  L = (1/total) Σ_i ℓ_i = Σ_r (rows_r/total) · L_r   → rows/total
        reduction "sum":   L = Σ_i ℓ_i = Σ_r L_r                               → 1

    (a mean over all m = rows·k elements, as MSE takes, splits the same way). Any other
    loss is refused: scaling it by a guess would train the wrong weights without a word."""
    reduction = getattr(loss_fn, "reduction", None)
    if reduction == "mean":
        return rows / total
    if reduction == "sum":
        return 1.0
    raise ValueError(
        f"fit(comm=...) cannot split {type(loss_fn).__name__} over the ranks: its reduction is "
        f"{reduction!r}; data-parallel training needs a loss with reduction 'mean' or 'sum' "
        "(a chainrule.losses.Loss)")


def _correct(out: np.ndarray, yb, classification: bool) -> int:
    """How many rows of `out` predict their label (0 when not a classification)."""
    return int(np.count_nonzero(out.argmax(axis=1) == _labels(yb))) if classification else 0


def _train_step(
    model: Module, loss_fn: Loss, opt: Optimizer, xb: np.ndarray, yb, epoch: int, batch: int
) -> tuple[float, np.ndarray]:
    """One step: zero the gradients, forward, loss, backward, update. Returns (loss, outputs).

    Raises `TrainingDiverged` (naming `epoch` and `batch`) if the loss is NaN or infinite.
    """
    opt.zero_grad()
    out = model(xb)
    try:
        loss = loss_fn(out, yb)
    except NonFiniteError:  # the model's outputs themselves overflowed
        loss = float("nan")
    if not math.isfinite(loss):
        _check_finite_loss(loss, epoch, batch, opt.param_groups[0]["lr"])
    model.backward(loss_fn.backward(), input_grad=False)
    opt.step()
    return loss, out


def _record_epoch(
    history: History,
    totals: _Totals,
    opt: Optimizer,
    classification: bool,
    start: float,
    validation: tuple[np.ndarray, np.ndarray] | None,
    model: Module,
    loss_fn: Loss,
) -> None:
    """Append one epoch's loss, accuracy, lr, validation scores and duration to `history`."""
    history.loss.append(totals.loss / totals.count)
    history.accuracy.append(totals.correct / totals.count if classification else float("nan"))
    history.lr.append(opt.param_groups[0]["lr"])
    if validation is not None:
        vl, va = evaluate(model, loss_fn, *validation)
        history.val_loss.append(vl)
        history.val_accuracy.append(va)
    history.time.append(time.perf_counter() - start)


def _close_progress(bar, history: History, validated: bool) -> None:
    if bar is None:
        return
    if validated:
        bar.set_postfix_str(
            f"loss={history.loss[-1]:.4f} val_loss={history.val_loss[-1]:.4f} "
            f"val_acc={history.val_accuracy[-1]:.4f}"
        )
    bar.close()


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
