"""Optimizers, gradient clipping and learning-rate schedules (`chainrule.optim.lr_scheduler`).

Plain gradient descent is θ ← θ − lr·∇L(θ); every optimizer here refines that step. The
classes take the same argument names and follow the same update rules as PyTorch's.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..module import Parameter
from . import lr_scheduler
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .bb import BarzilaiBorwein
from .clip import clip_grad_norm
from .optimizer import Optimizer
from .sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "bb": BarzilaiBorwein,
}


def make_optimizer(name: str, params: Iterable[Parameter], **kwargs) -> Optimizer:
    """An optimizer by name (`sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`, `bb`), e.g. for
    the CLI's `--optimizer`. Class names (`Adam`, `BarzilaiBorwein`) are accepted too."""
    key = str(name).lower()
    by_class = {cls.__name__.lower(): cls for cls in OPTIMIZERS.values()}
    cls = OPTIMIZERS.get(key) or by_class.get(key)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return cls(params, **kwargs)


__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "BarzilaiBorwein",
    "Optimizer",
    "RMSprop",
    "clip_grad_norm",
    "lr_scheduler",
    "make_optimizer",
]
