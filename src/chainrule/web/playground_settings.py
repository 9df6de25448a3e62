"""The Playground's settings: what defines a run (and what the page keeps in its URL), the caps
that bound a visitor's request, and their validation. Both the engine
(`chainrule.web.playground_net`) and the HTTP side (`chainrule.web.playground`) import this
module; it imports neither of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

PROBLEMS = ("classification", "regression")
CLASSIFICATION_SETS = ("xor", "circle", "gauss", "spiral", "xnor", "spiral3", "blobs4", "custom")
REGRESSION_SETS = ("plane", "multigauss", "custom")
DATASETS = tuple(dict.fromkeys(CLASSIFICATION_SETS + REGRESSION_SETS))
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "gelu")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
DROPOUTS = (0.0, 0.1, 0.25, 0.5)
FEATURE_NAMES = ("x1", "x2", "x1sq", "x2sq", "x1x2", "sin1", "sin2")  # see playground_data
CLASSES = 4  # class labels 0..3
CAPS = {
    "layers": 6,  # hidden layers
    "width": 32,  # neurons per hidden layer
    "lr": 10.0,  # largest learning rate
    "batch": 200,  # largest mini-batch
    "steps": 200,  # largest K (steps in one request)
    "noise": 50,  # percent
    "l2": 1.0,
    "seed": 2**31 - 1,
    "body": 16 * 1024,  # bytes of a request body
    "points": 2000,  # a visitor's own points (clicked or from a CSV)
    "csv_body": 160 * 1024,  # bytes of a CSV upload's body
    "value": 1e6,  # largest |coordinate| in a CSV, largest |regression target|
}


class PlaygroundError(ValueError):
    """A bad setting or request, answered with `status` (400) and this one-line message."""

    status = 400


@dataclass(frozen=True)
class Settings:
    """Everything that defines a playground run; what the page keeps in its URL."""

    problem: str = "classification"
    dataset: str = "xor"
    noise: int = 0  # percent: how far points are jittered from their clean position
    train: int = 50  # percent of the points used for training (the rest: test)
    hidden: tuple[int, ...] = (4, 4)
    activation: str = "tanh"
    lr: float = 0.05
    batch: int = 30
    optimizer: str = "adam"
    l2: float = 0.0
    dropout: float = 0.0  # on the hidden layers' outputs, in training only
    features: tuple[str, ...] = ("x1", "x2")
    seed: int = 1

    def to_json(self) -> dict:
        out = asdict(self)
        out["hidden"] = ",".join(map(str, self.hidden))
        out["features"] = list(self.features)
        return out

    def data_key(self) -> tuple:
        """The settings that decide the data set: when they stay, so do the points."""
        return (self.problem, self.dataset, self.noise, self.train, self.seed)


# Seed 001's net for the truth table: 2→3→1, sigmoid, plain SGD at lr 2 on all four rows.
XNOR_SETTINGS = replace(Settings(), dataset="xnor", hidden=(3,), activation="sigmoid",
                        optimizer="sgd", lr=2.0, batch=4)


def datasets_of(problem: str) -> tuple[str, ...]:
    return CLASSIFICATION_SETS if problem == "classification" else REGRESSION_SETS


def parse_hidden(value) -> tuple[int, ...]:
    """Hidden sizes from text like "4,4" (or a list); "" means no hidden layer."""
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        text = value.strip()
        parts = [p.strip() for p in text.split(",")] if text else []
    else:
        raise PlaygroundError('hidden sizes must be text like "4,4"')
    sizes = []
    for part in parts:
        if not re.fullmatch(r"\d{1,6}", part):
            raise PlaygroundError(f'hidden sizes must be whole numbers separated by commas, '
                                  f'like "4,4"; got {str(value)!r}')
        size = int(part)
        if not 1 <= size <= CAPS["width"]:
            raise PlaygroundError(f"a hidden layer has 1 to {CAPS['width']} neurons, got {size}")
        sizes.append(size)
    if len(sizes) > CAPS["layers"]:
        raise PlaygroundError(f"at most {CAPS['layers']} hidden layers, got {len(sizes)}")
    return tuple(sizes)


def number(name: str, value, low: float, high: float, integer: bool = False,
           low_open: bool = False) -> float:
    """`value` (a number, or text as in a URL) as a finite number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PlaygroundError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise PlaygroundError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or (integer and x != int(x)):
        kind = "a whole number" if integer else "a finite number"
        raise PlaygroundError(f"{name} must be {kind}, got {value!r}")
    if x < low or x > high or (low_open and x == low):
        lower = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise PlaygroundError(f"{name} must be {lower} and at most {high:g}, got {value!r}")
    return int(x) if integer else x


def choice(name: str, value, options) -> str:
    key = str(value).lower()
    if key not in options:
        raise PlaygroundError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")
    return key


def parse_dropout(value) -> float:
    rate = number("dropout", value, 0, 1)
    if rate not in DROPOUTS:
        raise PlaygroundError(f"dropout must be one of {', '.join(f'{d:g}' for d in DROPOUTS)}, "
                              f"got {value!r}")
    return rate


def parse_settings(payload: dict, base: Settings | None = None) -> Settings:
    """Validated `Settings` from a JSON object (numbers may arrive as text, as in a URL);
    missing keys keep `base`'s values. Raises `PlaygroundError` naming the bad setting."""
    if not isinstance(payload, dict):
        raise PlaygroundError("settings must be a JSON object")
    s = base or Settings()
    unknown = set(payload) - set(Settings.__dataclass_fields__)
    if unknown:
        raise PlaygroundError(f"unknown setting {sorted(unknown)[0]!r}")
    get = payload.get
    chosen = get("features", list(s.features))
    if isinstance(chosen, str):
        chosen = [f for f in chosen.split(",") if f]
    if not isinstance(chosen, list) or not chosen:
        raise PlaygroundError("choose at least one input feature")
    problem = choice("problem", get("problem", s.problem), PROBLEMS)
    dataset = choice("dataset", get("dataset", s.dataset), DATASETS)
    if dataset not in datasets_of(problem):
        raise PlaygroundError(f"{dataset} is not a {problem} data set; choose one of "
                              f"{', '.join(datasets_of(problem))}")
    return Settings(
        problem=problem,
        dataset=dataset,
        noise=number("noise", get("noise", s.noise), 0, CAPS["noise"], integer=True),
        train=number("train percentage", get("train", s.train), 10, 90, integer=True),
        hidden=parse_hidden(get("hidden", list(s.hidden))),
        activation=choice("activation", get("activation", s.activation), ACTIVATIONS),
        lr=number("learning rate", get("lr", s.lr), 0, CAPS["lr"], low_open=True),
        batch=number("batch size", get("batch", s.batch), 1, CAPS["batch"], integer=True),
        optimizer=choice("optimizer", get("optimizer", s.optimizer), OPTIMIZERS),
        l2=number("L2", get("l2", s.l2), 0, CAPS["l2"]),
        dropout=parse_dropout(get("dropout", s.dropout)),
        features=tuple(dict.fromkeys(choice("feature", f, FEATURE_NAMES) for f in chosen)),
        seed=number("seed", get("seed", s.seed), 0, CAPS["seed"], integer=True),
    )
