"""A training run as `chainrule train` does it: configuration, model, checkpoints, outputs.

A run lives in one folder. `model.npz` in it is rewritten (atomically) after every epoch with
everything needed to continue exactly where it stopped: weights, optimizer slots, the
learning-rate schedule, the shuffling/augmentation RNG state and the history so far. When
training ends it gets the test results too, and the folder gets `history.json` and the plots.

    run = Run.begin(TrainConfig(epochs=5), "runs/demo")  # or Run.resume("runs/demo")
    print(run.header())                         # model, data, optimizer, run folder
    run.train()                                 # fit() with a checkpoint per epoch
    result = run.finish()                       # test metrics, history.json, plots
    print(run.summary_text(result, seconds))    # or run.summary(...): the JSON summary dict

`Run.begin` = `Run.start` (data and model, nothing written) + the folder + the epoch-0
checkpoint, so there is always a state to go back to.

Under `mpiexec -n N` (a `comm` with N > 1 ranks) every rank builds the same run and trains on
its slice of each batch; rank 0 alone writes the folder, the checkpoints and the plots.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import optim
from .._io import atomic_open
from ..augment import RandomShift
from ..distributed import Communicator
from ..losses import SoftmaxCrossEntropy
from ..metrics import accuracy, confusion_matrix
from ..module import Module
from ..serialize import Checkpoint, load_checkpoint, save
from ..train import History, fit, predict
from .config import (
    CNN_LR,
    DEFAULT_BATCH,
    DEFAULT_LR,
    NUM_CLASSES,
    RunError,
    TrainConfig,
    batches_per_epoch,
    build_model,
    class_names,
    describe_model,
    load_data,
    optimizer_for,
    replay_schedule,
    schedule_epochs,
    schedule_for,
    split_validation,
)
from .errors import failure

__all__ = ["CNN_LR", "DEFAULT_BATCH", "DEFAULT_LR", "IMAGE_SHAPE", "NUM_CLASSES", "PLOTS",
           "PREPROCESSING", "Run", "RunError", "TrainConfig", "batches_per_epoch",
           "blas_threads", "build_model", "class_names", "describe_model", "load_data",
           "module_rngs", "optimizer_for", "replay_schedule", "schedule_epochs", "schedule_for",
           "split_validation", "write_json"]

IMAGE_SHAPE = (28, 28)
PREPROCESSING = {
    "input": "28x28 grayscale, white digit on black, pixel / 255 in [0, 1]",
    "digit_box": 20,
    "centering": "centre of mass at the centre of the 28x28 field",
    "invert_light_background": True,
}
PLOTS = ("loss.png", "accuracy.png", "confusion.png", "weights.png", "mistakes.png")


def module_rngs(model: Module, prefix: str = "") -> dict[str, np.random.Generator]:
    """Random generators held by layers (e.g. Dropout's), by dotted path, so a checkpoint can
    save their state and a resumed run draws the same masks."""
    found = {f"{prefix}{k}": v for k, v in vars(model).items()
             if isinstance(v, np.random.Generator)}
    for name, child in model.named_children():
        found.update(module_rngs(child, f"{prefix}{name}."))
    return found


@contextmanager
def blas_threads(n: int | None):
    """Limit BLAS to `n` threads while training. These matrices (64×784 by 784×128) are too
    small to gain from threads, and on a busy machine extra threads make each step several
    times slower. A no-op without threadpoolctl, or when n is None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if n is None or threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


# ---- the run --------------------------------------------------------------------------------
@dataclass
class Run:
    cfg: TrainConfig
    out: Path
    model: Module
    opt: object
    scheduler: object
    rng: np.random.Generator
    history: History = field(default_factory=History)
    train_seconds: float = 0.0
    data: tuple | None = None
    classes: list[str] = field(default_factory=list)
    saved_epochs: int | None = None  # the epoch count of the checkpoint on disk
    comm: Communicator = field(default_factory=Communicator)  # the ranks training together

    # -- creation
    # Under MPI every rank does the same steps, each in a `comm.phase`: a failure on any rank
    # (a corrupt data folder, a failed download, an unreadable checkpoint) stops all of them
    # together with one message, instead of leaving the others waiting for it.
    @classmethod
    def start(cls, cfg: TrainConfig, out: str | Path, comm: Communicator | None = None) -> Run:
        comm = comm or Communicator()
        with comm.phase(failure):
            if cfg.optimizer not in optim.OPTIMIZERS:
                raise RunError(f"unknown optimizer {cfg.optimizer!r}; choose one of "
                               f"{sorted(optim.OPTIMIZERS)}")
        data = load_data_once(cfg, comm)
        with comm.phase(failure):
            model = build_model(cfg)
            opt = optimizer_for(cfg, model)
            scheduler = schedule_for(cfg, opt, len(data[0][0]))
        return cls(cfg, Path(out), model, opt, scheduler, np.random.default_rng([cfg.seed, 2]),
                   data=data, classes=class_names(cfg.data), comm=comm)

    @classmethod
    def begin(cls, cfg: TrainConfig, out: str | Path, comm: Communicator | None = None) -> Run:
        """A fresh run in folder `out` (refused if it already holds one), checkpointed at
        epoch 0. `cfg.lr` None becomes the resolved default rate."""
        out, comm = Path(out), comm or Communicator()
        with comm.phase(failure):  # every rank has looked before rank 0 writes
            if (out / "model.npz").exists():
                raise RunError(f"{out} already holds a run; pass another --out, or continue it "
                               f"with `chainrule train --resume {out}`")
            cfg.lr = cfg.resolved_lr()
        run = cls.start(cfg, out, comm)  # loads the data and builds the model: nothing written
        with comm.phase(failure):
            if comm.is_root:
                try:
                    out.mkdir(parents=True, exist_ok=True)
                    run.checkpoint()
                except OSError as exc:
                    raise RunError(f"cannot create the run folder {out} ({exc.strerror}); "
                                   "pass a writable --out DIR") from exc
        return run

    @classmethod
    def resume(cls, path: str | Path, epochs: int | None = None, out: str | Path | None = None,
               comm: Communicator | None = None):
        comm = comm or Communicator()
        with comm.phase(failure):
            ckpt: Checkpoint = load_checkpoint(path)
            training = ckpt.metadata.get("training")
            if not isinstance(training, dict) or ckpt.optimizer is None:
                raise RunError(f"{ckpt.path}: has no training state to resume (it was saved "
                               "without an optimizer); start a new run with `chainrule train`")
            cfg = TrainConfig.from_dict(training["config"])
            new_length = epochs is not None and epochs != cfg.epochs
            if epochs is not None:
                cfg.epochs = epochs
        data = load_data_once(cfg, comm)
        with comm.phase(failure):
            run = cls._restore(ckpt, cfg, data, new_length, out, comm)
        return run

    @classmethod
    def _restore(cls, ckpt: Checkpoint, cfg: TrainConfig, data: tuple, new_length: bool,
                 out: str | Path | None, comm: Communicator) -> Run:
        """The run saved in `ckpt`, with its optimizer, schedule and random state restored
        (the schedule replayed for the new length when `--epochs` changed it)."""
        training = ckpt.metadata["training"]
        model = ckpt.model
        opt = optimizer_for(cfg, model)
        scheduler = schedule_for(cfg, opt, len(data[0][0]))
        try:
            opt.load_state_dict({"param_groups": ckpt.optimizer["param_groups"],
                                 "state": ckpt.optimizer["state"]})
            if new_length:
                scheduler = replay_schedule(cfg, opt, len(data[0][0]),
                                            len(ckpt.metadata.get("history", {}).get("loss", [])))
            elif scheduler is not None and training.get("scheduler"):
                scheduler.load_state_dict(dict(training["scheduler"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RunError(f"{ckpt.path}: cannot restore the optimizer ({exc})") from exc
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = training["rng_state"]
            for name, gen in module_rngs(model).items():
                gen.bit_generator.state = training["module_rng_states"][name]
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{ckpt.path}: its saved random state is incomplete ({exc}); "
                           "start a new run") from exc
        history = History.from_dict(ckpt.metadata.get("history", {}))
        run = cls(cfg, Path(out) if out else ckpt.path.parent, model, opt, scheduler, rng,
                  history, float(training.get("train_seconds", 0.0)), data,
                  classes=ckpt.metadata.get("class_names") or class_names(cfg.data),
                  comm=comm)
        run.saved_epochs = run.epochs_done
        return run

    # -- state
    @property
    def model_path(self) -> Path:
        return self.out / "model.npz"

    @property
    def epochs_done(self) -> int:
        return self.history.epochs

    @property
    def batches_done(self) -> int:
        return len(self.history.batch_loss)

    @property
    def remaining_epochs(self) -> int:
        if self.cfg.batches is not None and self.batches_done >= self.cfg.batches:
            return 0
        return max(0, self.cfg.epochs - self.epochs_done)

    def metadata(self, metrics: dict | None = None) -> dict:
        (x_train, _), val, (x_test, _) = self.data
        return {
            "class_names": self.classes,
            "input_shape": list(IMAGE_SHAPE),
            "preprocessing": {**PREPROCESSING, **self.cfg.preprocessing()},
            "data": {"name": self.cfg.data, "n_train": len(x_train),
                     "n_val": 0 if val is None else len(val[0]), "n_test": len(x_test)},
            "training": {
                "config": asdict(self.cfg),
                "epochs_done": self.epochs_done,
                "batches_done": self.batches_done,
                "complete": self.remaining_epochs == 0,
                "rng_state": self.rng.bit_generator.state,
                "module_rng_states": {k: g.bit_generator.state
                                      for k, g in module_rngs(self.model).items()},
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "train_seconds": self.train_seconds,
            },
            "history": self.history.to_dict(),
            "metrics": metrics or {},
        }

    def checkpoint(self, metrics: dict | None = None) -> Path:
        """Write model.npz (rank 0 only: the other ranks hold the same state)."""
        if not self.comm.is_root:
            return self.model_path
        path = save(self.model, self.model_path, self.metadata(metrics), optimizer=self.opt)
        self.saved_epochs = self.epochs_done
        return path

    # -- what the command prints
    def header(self) -> str:
        """Four lines: the model, the data split, the optimizer settings, the run folder."""
        c = self.cfg
        (x, _), val, (xt, _) = self.data
        n_val = 0 if val is None else len(val[0])
        aug = "off"
        if c.augment:
            aug = f"shifts ±{c.shift} px" + (f", rotations ±{c.rotate:g}°" if c.rotate else "")
            more = {"scale ±": c.scale, "shear ±": c.shear, "elastic ": c.elastic,
                    "stroke ±": c.thickness, "thick pen +": c.thick_pen}
            aug += "".join(f", {k}{v:g}" for k, v in more.items() if v)
        steps = ([", deskewed"] if c.deskew else []) + (
            [f", strokes → {c.stroke_width:g} px"] if c.stroke_width else [])
        opt = c.optimizer + (f" (momentum {c.momentum:g})" if c.optimizer == "sgd" else "")
        stop = f", stop after {c.batches} batches" if c.batches else ""
        return (f"{describe_model(self.model)}, {self.model.num_parameters():,} parameters\n"
                f"data {c.data}: {len(x):,} train / {n_val:,} validation / {len(xt):,} test"
                f"{''.join(steps)}\n"
                f"{opt} lr {c.lr:g}, {c.schedule} schedule, batch {c.batch_size or 'full'}, "
                f"{c.epochs} epochs{stop}, augmentation {aug}, seed {c.seed}\n"
                f"run folder {self.out}" + self._ranks_line())

    def _ranks_line(self) -> str:
        if self.comm.size == 1:
            return ""
        per_rank = (self.cfg.batch_size or len(self.data[0][0])) / self.comm.size
        return (f"\ndata-parallel on {self.comm.size} MPI ranks, ~{per_rank:.0f} examples per "
                "rank per step (1 BLAS thread each); rank 0 writes the run")

    def summary(self, result: dict, seconds: float) -> dict:
        """The JSON summary (`chainrule train --json`) of `finish()`'s result."""
        return {
            "test_accuracy": result["test_accuracy"], "test_loss": result["test_loss"],
            "val_accuracy": result["val_accuracy"], "epochs": self.epochs_done,
            "batches": self.batches_done, "seconds": round(seconds, 3),
            "train_seconds": round(self.train_seconds, 3), "out": str(self.out),
            "model": str(self.model_path), "data": self.cfg.data, "seed": self.cfg.seed,
            "files": result["files"],
        }

    def summary_text(self, result: dict, seconds: float) -> str:
        """The closing lines: test accuracy, time, the hardest classes, files, what next."""
        cm = np.asarray(result["confusion"])
        per_class = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
        worst = np.argsort(per_class)[:3]
        return "\n".join([
            "",
            f"test accuracy  {result['test_accuracy']:.2%}   (loss {result['test_loss']:.4f}, "
            f"{int(cm.sum()):,} test digits)",
            f"time           {seconds:.1f} s ({self.train_seconds:.1f} s training, "
            f"{self.epochs_done} epochs, {self.batches_done:,} batches)",
            "hardest        " + ", ".join(f"{self.classes[i]}: {per_class[i]:.1%}"
                                          for i in worst),
            f"files in {self.out}/: " + " ".join(result["files"]),
            f"next           chainrule evaluate {self.out}   ·   "
            f"chainrule predict {self.out} my_digit.png",
        ])

    # -- training
    def train(self, progress: bool = True, threads: int | None = 1) -> History:
        """Train the remaining epochs, saving a checkpoint after each; returns the History.

        Raises `TrainingDiverged` (the checkpoint of the last good epoch stays on disk) and
        lets KeyboardInterrupt through (ditto). On N > 1 ranks each uses one BLAS thread
        (N ranks on N cores; more would oversubscribe them).
        """
        if self.remaining_epochs == 0:
            return self.history
        (x, y), val, _ = self.data
        augment = RandomShift(**self.cfg.augmentation()) if self.cfg.augment else None
        max_batches = None if self.cfg.batches is None else self.cfg.batches - self.batches_done
        start = time.perf_counter()
        base_seconds = self.train_seconds

        def on_epoch_end(epoch: int, history: History) -> bool:
            self.train_seconds = base_seconds + time.perf_counter() - start
            self.checkpoint()
            return False

        if self.comm.size > 1:
            threads = 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), blas_threads(threads):
            fit(self.model, SoftmaxCrossEntropy(), self.opt, x, y,
                epochs=self.remaining_epochs, batch_size=self.cfg.batch_size or None,
                validation=val, rng=self.rng, max_batches=max_batches, augment=augment,
                scheduler=self.scheduler, progress=progress, history=self.history,
                on_epoch_end=on_epoch_end, comm=self.comm)
        return self.history

    # -- results
    def finish(self, plots: bool = True) -> dict:
        """Test-set metrics into the final checkpoint, plus history.json and the plots."""
        _, _, (x_test, y_test) = self.data
        logits = predict(self.model, x_test, batch_size=256)  # bounds a CNN's im2col memory
        loss_fn = SoftmaxCrossEntropy()
        test_loss = float(loss_fn(logits, y_test))
        probs = loss_fn.probabilities
        pred = probs.argmax(axis=1)
        confusion = confusion_matrix(y_test, pred, len(self.classes))
        metrics = {
            "test_accuracy": accuracy(pred, y_test),
            "test_loss": test_loss,
            "val_accuracy": self.history.val_accuracy[-1] if self.history.val_accuracy else None,
            "train_seconds": self.train_seconds,
        }
        self.checkpoint(metrics)
        if not self.comm.is_root:  # rank 0 writes the files; the numbers are the same here
            return {**metrics, "confusion": confusion.tolist(), "files": []}
        write_json(self.out / "history.json", {
            **self.history.to_dict(), "epochs": self.epochs_done,
            "batches_per_epoch": batches_per_epoch(self.cfg, len(self.data[0][0])),
            "test_accuracy": metrics["test_accuracy"], "test_loss": test_loss,
            "train_seconds": self.train_seconds})
        files = ["model.npz", "history.json"]
        if plots:
            files += self.plot(x_test, y_test, probs, confusion, metrics["test_accuracy"])
        return {**metrics, "confusion": confusion.tolist(), "files": files}

    def plot(self, x_test, y_test, probs, confusion, test_accuracy) -> list[str]:
        from .. import viz  # matplotlib: imported only when there is something to draw

        per_epoch = batches_per_epoch(self.cfg, len(self.data[0][0]))
        viz.plot_loss(self.history, self.out / "loss.png", per_epoch)
        viz.plot_accuracy(self.history, self.out / "accuracy.png", test_accuracy)
        viz.plot_confusion(confusion, self.out / "confusion.png", self.classes)
        viz.plot_weights(self.model, self.out / "weights.png")
        viz.plot_mistakes(x_test, y_test, probs, self.out / "mistakes.png",
                          class_names=self.classes)
        files = list(PLOTS)
        if viz.has_conv(self.model):
            viz.plot_feature_maps(self.model, x_test[0], self.out / "feature-maps.png")
            files.append("feature-maps.png")
        return files


def load_data_once(cfg: TrainConfig, comm: Communicator) -> tuple:
    """`load_data(cfg)` on every rank, rank 0 first: a dataset that must be downloaded is
    fetched once (into a cache the ranks on its machine share) and the others then read it.
    A rank on a machine without that cache downloads its own copy. Each step is a phase: a
    failure on any rank stops all of them."""
    data = None
    with comm.phase(failure):
        if comm.is_root:
            data = load_data(cfg)
    with comm.phase(failure):
        if not comm.is_root:
            data = load_data(cfg)
    return data


def write_json(path: Path, obj) -> Path:
    text = json.dumps(obj, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    with atomic_open(path) as f:
        f.write(text.encode("utf-8") + b"\n")
    return path
