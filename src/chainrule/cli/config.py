"""A training run's configuration and the pieces built from it: model, optimizer, schedule, data.

    cfg = TrainConfig(epochs=5)
    model = build_model(cfg)
    opt = optimizer_for(cfg, model)
    scheduler = schedule_for(cfg, opt, n_train)
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields

import numpy as np

from .. import data as datasets
from .. import models, optim
from ..layers import Dense
from ..module import Module

NUM_CLASSES = 10


class RunError(ValueError):
    """A run cannot start or resume as asked (bad option combination, finished run, ...)."""


# settings added after runs were first saved, as those runs had them
BEFORE_DEFAULTS = {"scale": 0.0, "shear": 0.0, "elastic": 0.0, "thickness": 0.0, "thick_pen": 0.0,
                   "deskew": False, "stroke_width": 0.0}


@dataclass
class TrainConfig:
    """Everything that decides what a run computes; saved in the checkpoint for --resume."""

    data: str = "mnist-10k"
    model: str = "mlp"
    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    epochs: int = 30
    batch_size: int = 64  # 1 = stochastic, 0 = full batch
    batches: int | None = None  # stop after this many mini-batches in total
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR scaled for sgd)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # or "constant"
    augment: bool = True
    shift: int = 2
    rotate: float = 0.0  # augmentation: degrees, either way (the CNN's recipe: see below)
    scale: float = 0.0  # augmentation: each axis scaled by up to ±scale
    shear: float = 0.0  # augmentation: x += k·y, |k| ≤ shear
    elastic: float = 0.0  # augmentation: smooth random displacement, RMS px
    thickness: float = 0.0  # augmentation: strokes thickened/thinned by up to this much
    thick_pen: float = 0.0  # augmentation: PEN_SHARE of the digits redrawn up to this much wider
    deskew: bool = True  # digits straightened by their moments (train and predict alike)
    stroke_width: float = 2.0  # strokes normalised to this width in px (0: off)
    val_size: int = 500  # training digits held out for per-epoch validation
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        # a run saved before a setting existed ran without it
        cfg = cls(**{**BEFORE_DEFAULTS, **{k: v for k, v in d.items() if k in known}})
        cfg.hidden = tuple(cfg.hidden)
        return cfg

    def preprocessing(self) -> dict:
        """The steps after MNIST's own that this run's digits get (`chainrule.preprocess.
        standardise`), saved in the model file so `predict` prepares pictures the same way."""
        return {"deskew": self.deskew, "stroke_width": self.stroke_width or None}

    def augmentation(self) -> dict:
        """`RandomShift`'s keyword arguments for this run's augmentation."""
        return {"max_shift": self.shift, "max_rotation": self.rotate, "max_scale": self.scale,
                "max_shear": self.shear, "elastic": self.elastic,
                "max_thickness": self.thickness}


    def resolved_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        if self.optimizer == "sgd":  # linear scaling below 64 examples per step
            size = self.batch_size or DEFAULT_BATCH
            base = CNN_LR if self.model == "cnn" else DEFAULT_LR
            return base * min(size, DEFAULT_BATCH) / DEFAULT_BATCH
        cls = optim.OPTIMIZERS[self.optimizer]
        default = inspect.signature(cls).parameters.get("lr")
        if default is None or default.default is inspect.Parameter.empty:
            return 0.01
        return float(default.default)


DEFAULT_LR = 0.1  # for SGD at batch 64: tuned on mnist-10k (see docs/cli.md)
CNN_LR = 0.05  # the CNN's recipe: 12 epochs at 0.05 reach 98.4–98.6% on mnist-10k
# The CNN's default distortions. Measured on foreign digits (bench/bench_foreign.py) they
# lift the CNN from 88% to 92–93%; the MLP gains MNIST accuracy from them but no foreign
# digits (88% either way, more spread), so its default stays shifts only (docs/results.md).
CNN_DISTORTIONS = {"rotate": 10.0, "scale": 0.1, "shear": 0.2, "elastic": 1.0,
                   "thickness": 0.5, "thick_pen": 5.0}
# A thick pen's digit reaches the network after `normalise_strokes` has thinned it, which
# leaves its mark (rounder corners, smaller holes); MNIST's pens are thin (about 2 px), so
# half of the training digits are redrawn 1 to `thick_pen` px wider *before* the same
# standardisation, to learn what that path does to a digit (docs/results.md).
PEN_SHARE = 0.5
DEFAULT_BATCH = 64
CNN_HIDDEN = (256,)  # the CNN's dense layer: 3136 → 256 → 10 (128 before; docs/results.md)


# ---- pieces -------------------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> Module:
    """The network `cfg` describes (from `models.MODELS`), its weights drawn from cfg.seed."""
    if cfg.model not in models.MODELS:
        raise RunError(f"unknown model {cfg.model!r}; choose one of {sorted(models.MODELS)}")
    if cfg.model == "mlp":
        return models.mlp(hidden=cfg.hidden, activation=cfg.activation, seed=cfg.seed)
    if cfg.model == "cnn":  # its dense layer's width; runs saved before CNN_HIDDEN kept 128
        return models.cnn(hidden=cfg.hidden[0], seed=cfg.seed)
    return models.MODELS[cfg.model](seed=cfg.seed)


def optimizer_for(cfg: TrainConfig, model: Module):
    """The optimizer `cfg` names, passing momentum/weight decay only where it takes them."""
    cls = optim.OPTIMIZERS[cfg.optimizer]
    accepted = inspect.signature(cls).parameters
    kwargs = {"lr": cfg.resolved_lr()}
    if "momentum" in accepted and cfg.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = cfg.momentum if cfg.optimizer == "sgd" else 0.0
    if "weight_decay" in accepted and cfg.weight_decay:
        kwargs["weight_decay"] = cfg.weight_decay
    return cls(model.parameters(), **kwargs)


def schedule_epochs(cfg: TrainConfig, n_train: int) -> int:
    """How many epochs the run will really have (fewer than cfg.epochs when --batches cuts it)."""
    if cfg.batches is None:
        return cfg.epochs
    per_epoch = batches_per_epoch(cfg, n_train)
    return max(1, min(cfg.epochs, math.ceil(cfg.batches / per_epoch)))


def batches_per_epoch(cfg: TrainConfig, n_train: int) -> int:
    size = n_train if not cfg.batch_size else min(cfg.batch_size, n_train)
    return math.ceil(n_train / size)


def schedule_for(cfg: TrainConfig, opt, n_train: int):
    if cfg.schedule == "constant":
        return None
    return optim.lr_scheduler.CosineAnnealingLR(opt, T_max=schedule_epochs(cfg, n_train))


def replay_schedule(cfg: TrainConfig, opt, n_train: int, epochs_done: int):
    """The schedule of a fresh run of `cfg.epochs`, stepped to `epochs_done`: resuming with a
    new --epochs continues on the rates a run of that length would use from that epoch on
    (the epochs already trained keep the rates they had)."""
    opt.lr = cfg.resolved_lr()
    scheduler = schedule_for(cfg, opt, n_train)
    for _ in range(epochs_done if scheduler is not None else 0):
        scheduler.step()
    return scheduler


def split_validation(x, y, size: int, seed: int):
    """Hold out `size` training examples (a seeded random choice) for validation."""
    if size <= 0:
        return (x, y), None
    if size >= len(x):
        raise RunError(f"--val-size {size} leaves no training data ({len(x)} examples)")
    order = np.random.default_rng([seed, 1]).permutation(len(x))
    val, train = np.sort(order[:size]), np.sort(order[size:])
    return (x[train], y[train]), (x[val], y[val])


def class_names(name: str) -> list[str]:
    try:
        names = datasets.info(name).get("classes")
    except Exception:  # a folder of IDX files has no class list
        names = None
    return [str(c) for c in names] if names else [str(i) for i in range(NUM_CLASSES)]


def describe_model(model: Module) -> str:
    """'784-128-10 relu'-style one-liner for MLPs, the class sequence otherwise."""
    layers = list(getattr(model, "layers", []))
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    if dense and len(dense) == sum(bool(layer.parameters()) for layer in layers):
        sizes = [dense[0].in_features] + [d.out_features for d in dense]
        acts = {type(layer).__name__ for layer in layers if not layer.parameters()} - {"Flatten"}
        kinds = f" ({', '.join(sorted(acts))})" if acts else ""
        return "MLP " + "-".join(map(str, sizes)) + kinds
    return " → ".join(type(layer).__name__ for layer in layers) or type(model).__name__


def load_data(cfg: TrainConfig):
    """(train, validation or None, test) for `cfg`, the validation split drawn by seed, every
    image standardised as `cfg.preprocessing()` says (as `predict` will prepare pictures)."""
    from ..preprocess import standardise

    (x_train, y_train), (x_test, y_test) = datasets.load(cfg.data)
    if cfg.augment and cfg.thick_pen:
        x_train = redraw_thick(x_train, cfg.thick_pen, np.random.default_rng(cfg.seed))
    steps = cfg.preprocessing()
    x_train, x_test = standardise(x_train, steps), standardise(x_test, steps)
    train, val = split_validation(x_train, y_train, cfg.val_size, cfg.seed)
    return train, val, (x_test, y_test)


def redraw_thick(images: np.ndarray, widest: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of `images` (n, 28, 28) or (n, 784) with a random PEN_SHARE of them redrawn
    with a pen 1 to `widest` px wider (uniform; `augment.thick_pen`)."""
    from ..augment import thick_pen

    x = np.array(images, dtype=np.float32)
    side = math.isqrt(x[0].size)
    flat = x.reshape(len(x), side, side)  # a view: writing it writes x
    pick = np.flatnonzero(rng.random(len(x)) < PEN_SHARE)
    widths = rng.uniform(min(1.0, widest), widest, len(pick))
    flat[pick] = thick_pen(flat[pick], widths)
    return x


# the largest value each augmentation/standardisation flag takes (`RandomShift` refuses more)
FLAG_LIMITS = {"rotate": 180.0, "scale": 0.9, "shear": 2.0, "elastic": 10.0, "thickness": 1.0,
               "thick_pen": 8.0, "stroke_width": 8.0}


def check_recipe(cfg: TrainConfig) -> None:
    """Refuse out-of-range distortion and stroke-width settings before anything is written."""
    for name, top in FLAG_LIMITS.items():
        value = getattr(cfg, name)
        if not (math.isfinite(value) and 0 <= value <= top):
            flag = "--" + name.replace("_", "-")
            raise RunError(f"{flag} must be between 0 and {top:g}, got {value:g}")
    if 0 < cfg.stroke_width < 0.5:
        raise RunError(f"--stroke-width must be 0 (off) or at least 0.5 px, got "
                       f"{cfg.stroke_width:g}")


def is_digit_data(name: str) -> bool:
    """Whether dataset `name` holds digits (deskewing and stroke widths mean something):
    its classes are 0–9, or it is a folder of IDX files (MNIST's format)."""
    try:
        names = datasets.info(name).get("classes")
    except Exception:  # a folder of IDX files
        return True
    return names is None or [str(c) for c in names] == [str(i) for i in range(NUM_CLASSES)]
