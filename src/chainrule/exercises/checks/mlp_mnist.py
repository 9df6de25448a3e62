"""Checks of the `mlp-mnist` exercise: the learner's own training loop, trained on
mnist-10k's 8,000 training digits, must reach ACCURACY on its 2,000 test digits within the
exercise's time limit."""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from ..checking import Checklist, Fail, need
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
ACCURACY = 0.92
_trained: dict[str, object] = {}  # the predictor `train` returned, for the later checks


def _split(which: str) -> tuple[np.ndarray, np.ndarray]:
    from ...data import load

    (x_train, y_train), (x_test, y_test) = load("mnist-10k")
    x, y = (x_train, y_train) if which == "train" else (x_test, y_test)
    return x.reshape(len(x), -1).copy(), y.copy()


def _predictor():
    if "predict" not in _trained:
        raise Fail("there is no trained model to test", "make the `train` check pass first")
    return _trained["predict"]


@CHECKS.add("train", "train(x_train (8000, 784), y_train (8000,)) returns a predict function")
def train(m: ModuleType) -> str:
    _trained.clear()  # nothing from an earlier file
    fn = need(m, "train", "function")
    x, y = _split("train")
    start = time.perf_counter()
    result = fn(x, y)
    seconds = time.perf_counter() - start
    predict = getattr(result, "predict", result)
    if not callable(predict):
        raise Fail(f"train returned {type(result).__name__}, not a function",
                   "return predict, a function from images (M, 784) to digits (M,) (or an "
                   "object with a .predict method)")
    _trained["predict"] = predict
    return f"trained in {seconds:.1f} s"


@CHECKS.add("predictions", "predict(x_test (2000, 784)) gives 2000 digits 0–9")
def predictions(m: ModuleType) -> str:
    x, _ = _split("test")
    digits = np.asarray(_predictor()(x.copy()))
    if digits.shape != (len(x),):
        raise Fail(f"predict gave shape {digits.shape} for {len(x)} images, expected "
                   f"({len(x)},)", "return one digit per image: the argmax of each row of "
                   "logits (np.argmax(logits, axis=1)), not the logits themselves")
    if not np.issubdtype(digits.dtype, np.integer) or digits.min() < 0 or digits.max() > 9:
        raise Fail(f"predict gave values from {digits.min()} to {digits.max()} "
                   f"({digits.dtype})", "return integer class indices 0–9 (np.argmax gives "
                   "them)")
    _trained["digits"] = digits
    return "one digit per image"


@CHECKS.add("accuracy", f"at least {ACCURACY:.0%} of the 2,000 test digits right")
def accuracy(m: ModuleType) -> str:
    if "digits" not in _trained:
        raise Fail("there are no predictions to score", "make `predictions` pass first")
    _, y = _split("test")
    acc = float(np.mean(_trained["digits"] == y))
    if acc < ACCURACY:
        if acc < 0.2:
            hint = ("that is chance level: check that the loss goes down during training "
                    "(print it each epoch) and that predict uses the trained weights")
        else:
            hint = ("train longer or with a better recipe: a 784-128-10 MLP with ReLU, He "
                    "initialisation, SGD with momentum 0.9, lr 0.1, batch 64, shuffled "
                    "each epoch, reaches about 96% in 10 epochs")
        raise Fail(f"accuracy {acc:.2%} on the test digits, below {ACCURACY:.0%}", hint)
    return f"accuracy {acc:.2%} on the 2,000 test digits (needed {ACCURACY:.0%})"
