"""The Playground tab: a small network learns 2-D points while you watch (see docs/web.md).

Everything numeric here is chainrule's own matrix path: `Dense` layers and an activation,
`BCEWithLogits` on one output logit (p = σ(z) is the probability of class 1), an optimizer
from `chainrule.optim`, `model.backward` for the gradients. The page asks for K steps per
frame; each answer carries the losses, the decision boundary on a coarse grid and every
hidden neuron's picture of the plane, as compact base64 byte arrays.

    GET  /api/playground/options   datasets, activations, optimizers, features, caps, defaults
    POST /api/playground/new       {settings} → a new network and data set for this visitor
    POST /api/playground/step      {"steps": K, "explain": i (optional)} → one frame
    POST /api/playground/explain   {"point": i} → the backprop view of training point i

Bad settings are answered 400 {"error": "..."} and leave the visitor's network as it was.
Visitors are told apart by the same cookie as the teach view; at most `capacity` networks
are kept (least recently used dropped), each at most a few hundred kB (see `CAPS`).
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..activations import activation_layer, sigmoid
from ..layers import Dense, Sequential
from ..losses import BCEWithLogits, NonFiniteError
from ..optim import make_optimizer
from .session import COOKIE, new_session_id, same_origin, valid_session_id

DATASETS = ("xor", "circle", "gauss", "spiral", "xnor")
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "gelu")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
FEATURES = {  # name → (label, function of the two coordinates)
    "x1": ("x₁", lambda u, v: u),
    "x2": ("x₂", lambda u, v: v),
    "x1sq": ("x₁²", lambda u, v: u * u),
    "x2sq": ("x₂²", lambda u, v: v * v),
    "x1x2": ("x₁x₂", lambda u, v: u * v),
    "sin1": ("sin πx₁", lambda u, v: np.sin(np.pi * u)),
    "sin2": ("sin πx₂", lambda u, v: np.sin(np.pi * v)),
}
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
}
POINTS = 400  # points per data set (xnor: its 4 rows)
GRID = 40  # the decision boundary is evaluated on GRID × GRID points
NEURON_GRID = 20  # each neuron's map: every other grid point
DEFAULT_CAPACITY = 32
NAN_HINT = ("the loss is not a number: the learning rate is too large; lower it and press "
            "Reset")


class PlaygroundError(ValueError):
    """A bad setting or request, answered with `status` (400) and this one-line message."""

    status = 400


class NoNetworkError(PlaygroundError):
    status = 404


class CrossOriginError(PlaygroundError):
    status = 403


class BodyTooLargeError(PlaygroundError):
    status = 413


# ---- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything that defines a playground run; what the page keeps in its URL."""

    dataset: str = "xor"
    noise: int = 0  # percent: how far points are jittered from their clean position
    train: int = 50  # percent of the points used for training (the rest: test)
    hidden: tuple[int, ...] = (4, 4)
    activation: str = "tanh"
    lr: float = 0.05
    batch: int = 30
    optimizer: str = "adam"
    l2: float = 0.0
    features: tuple[str, ...] = ("x1", "x2")
    seed: int = 1

    def to_json(self) -> dict:
        out = asdict(self)
        out["hidden"] = ",".join(map(str, self.hidden))
        out["features"] = list(self.features)
        return out


# Seed 001's net for the truth table: 2→3→1, sigmoid, plain SGD at lr 2 on all four rows.
XNOR_SETTINGS = replace(Settings(), dataset="xnor", hidden=(3,), activation="sigmoid",
                        optimizer="sgd", lr=2.0, batch=4)


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


def _number(name: str, value, low: float, high: float, integer: bool = False,
            low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PlaygroundError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise PlaygroundError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (integer and number != int(number)):
        kind = "a whole number" if integer else "a finite number"
        raise PlaygroundError(f"{name} must be {kind}, got {value!r}")
    if number < low or number > high or (low_open and number == low):
        lower = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise PlaygroundError(f"{name} must be {lower} and at most {high:g}, got {value!r}")
    return int(number) if integer else number


def _choice(name: str, value, options) -> str:
    key = str(value).lower()
    if key not in options:
        raise PlaygroundError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")
    return key


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
    features = get("features", list(s.features))
    if isinstance(features, str):
        features = [f for f in features.split(",") if f]
    if not isinstance(features, list) or not features:
        raise PlaygroundError("choose at least one input feature")
    return Settings(
        dataset=_choice("dataset", get("dataset", s.dataset), DATASETS),
        noise=_number("noise", get("noise", s.noise), 0, CAPS["noise"], integer=True),
        train=_number("train percentage", get("train", s.train), 10, 90, integer=True),
        hidden=parse_hidden(get("hidden", list(s.hidden))),
        activation=_choice("activation", get("activation", s.activation), ACTIVATIONS),
        lr=_number("learning rate", get("lr", s.lr), 0, CAPS["lr"], low_open=True),
        batch=_number("batch size", get("batch", s.batch), 1, CAPS["batch"], integer=True),
        optimizer=_choice("optimizer", get("optimizer", s.optimizer), OPTIMIZERS),
        l2=_number("L2", get("l2", s.l2), 0, CAPS["l2"]),
        features=tuple(dict.fromkeys(_choice("feature", f, FEATURES) for f in features)),
        seed=_number("seed", get("seed", s.seed), 0, CAPS["seed"], integer=True),
    )


# ---- data ------------------------------------------------------------------------------------
def make_points(name: str, n: int, noise: float, rng: np.random.Generator):
    """(points (n, 2), labels (n,) in {0, 1}) of a 2-D data set in [−1, 1]² (xnor: {0, 1}²).
    `noise` in [0, 0.5] jitters the points (gauss: widens the blobs)."""
    if name == "xnor":
        return (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64),
                np.array([1, 0, 0, 1], dtype=np.float64))
    if name == "xor":
        p = rng.uniform(-0.95, 0.95, (n, 2))
        p += 0.05 * np.sign(p)  # a margin along the axes, where the label flips
        y = (p[:, 0] * p[:, 1] > 0).astype(np.float64)
    elif name == "circle":
        y = (np.arange(n) < n // 2).astype(np.float64)
        radius = np.where(y == 1, rng.uniform(0, 0.5, n), rng.uniform(0.7, 1.0, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        p = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    elif name == "gauss":
        y = (np.arange(n) < n // 2).astype(np.float64)
        centre = np.where(y[:, None] == 1, 0.45, -0.45)
        p = centre + rng.normal(0, 0.15 + 0.6 * noise, (n, 2))
        return np.clip(p, -1, 1), y
    else:  # spiral: two arms, half a turn apart
        half = n // 2
        t = np.arange(half) / half
        arms = []
        for delta in (0.0, np.pi):
            angle = 1.75 * 2 * np.pi * t + delta
            arms.append(np.stack([0.95 * t * np.sin(angle), 0.95 * t * np.cos(angle)], axis=1))
        p = np.concatenate(arms)
        y = np.concatenate([np.ones(half), np.zeros(half)])
    p = p + noise * rng.uniform(-1, 1, p.shape)
    return np.clip(p, -1, 1), y


def feature_matrix(points: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """The network input (n, len(features)) for points (n, 2)."""
    u, v = points[:, 0], points[:, 1]
    return np.stack([FEATURES[f][1](u, v) for f in features], axis=1)


def domain(dataset: str) -> tuple[float, float]:
    """The square shown on the page, [lo, hi]² (the same for both coordinates)."""
    return (-0.5, 1.5) if dataset == "xnor" else (-1.0, 1.0)


def grid_points(lo: float, hi: float, size: int = GRID) -> np.ndarray:
    """(size², 2) cell centres, row by row from the top (largest x₂) as on a canvas."""
    step = (hi - lo) / size
    centres = lo + step * (np.arange(size) + 0.5)
    u, v = np.meshgrid(centres, centres[::-1])
    return np.stack([u.ravel(), v.ravel()], axis=1)


def largest_finite(values: np.ndarray) -> float:
    """max |v| over the finite entries, or 1.0 if there are none (or it is 0)."""
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def pack(values: np.ndarray, scale: float, signed: bool) -> str:
    """Base64 bytes of values/scale: [0, 1] → 0..255, or [−1, 1] → 1..255 (128 is 0)."""
    t = np.nan_to_num(np.asarray(values, dtype=np.float64) / scale)
    q = 128 + 127 * np.clip(t, -1, 1) if signed else 255 * np.clip(t, 0, 1)
    return base64.b64encode(np.rint(q).astype(np.uint8).tobytes()).decode("ascii")


def rounded(array: np.ndarray, digits: int = 4):
    """A nested list of floats rounded for JSON; NaN and ±inf become None."""
    out = np.round(np.asarray(array, dtype=np.float64), digits).astype(object)
    out[~np.isfinite(np.asarray(array, dtype=np.float64))] = None
    return out.tolist()


def significant(array: np.ndarray, digits: int = 6):
    """A nested list of floats to `digits` significant digits; NaN and ±inf become None."""
    flat = [float(f"{v:.{digits}g}") if math.isfinite(v) else None
            for v in np.asarray(array, dtype=np.float64).ravel().tolist()]
    return np.array(flat, dtype=object).reshape(np.shape(array)).tolist()


# ---- one visitor's network -------------------------------------------------------------------
class Playground:
    """A network, its data and its optimizer, for one visitor. Not thread-safe by itself:
    callers hold `lock`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.lock = threading.Lock()
        rng = np.random.default_rng(s.seed)
        points, labels = make_points(s.dataset, POINTS, s.noise / 100, rng)
        if s.dataset == "xnor":  # four rows: train and test on the whole truth table
            train_idx = test_idx = np.arange(4)
        else:
            order = rng.permutation(len(points))
            cut = round(len(points) * s.train / 100)
            train_idx, test_idx = order[:cut], order[cut:]
        self.train_points, self.test_points = points[train_idx], points[test_idx]
        self.train_y, self.test_y = labels[train_idx, None], labels[test_idx, None]
        self.train_x = feature_matrix(self.train_points, s.features)
        self.test_x = feature_matrix(self.test_points, s.features)
        self.model = build_network(len(s.features), s.hidden, s.activation, rng)
        self.optimizer = make_optimizer(s.optimizer, self.model.parameters(), lr=s.lr,
                                        weight_decay=s.l2)
        self.loss_fn = BCEWithLogits()
        self.batch_rng = np.random.default_rng(s.seed + 1)
        self.order = np.empty(0, dtype=np.int64)
        self.steps, self.diverged = 0, False
        lo, hi = domain(s.dataset)
        self.grid = grid_points(lo, hi)
        self.grid_x = feature_matrix(self.grid, s.features)

    # -- training --
    def next_batch(self) -> np.ndarray:
        """Indices of the next mini-batch: the training rows in a fresh shuffled order each
        pass, without replacement."""
        size = min(self.settings.batch, len(self.train_x))
        if len(self.order) < size:
            self.order = np.concatenate([self.order,
                                         self.batch_rng.permutation(len(self.train_x))])
        batch, self.order = self.order[:size], self.order[size:]
        return batch

    def step(self, k: int = 1) -> None:
        """K steps of mini-batch training: forward, BCE on the logit, backward, update.
        Stops early (and sets `diverged`) when the loss is not a number."""
        for _ in range(k):
            if self.diverged:
                return
            rows = self.next_batch()
            self.optimizer.zero_grad()
            with np.errstate(over="ignore", invalid="ignore"):  # overflow ends as NaN: caught
                try:
                    self.loss_fn(self.model(self.train_x[rows]), self.train_y[rows])
                except NonFiniteError:
                    self.diverged = True
                    return
                self.model.backward(self.loss_fn.backward(), input_grad=False)
                self.optimizer.step()
            self.steps += 1

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean binary cross-entropy of the network on (x, y); NaN once it has diverged."""
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return float(self.loss_fn(self.model(x), y))
        except NonFiniteError:
            self.diverged = True
            return math.nan

    # -- what the page draws --
    def hidden_layers(self) -> list[tuple[Dense, object]]:
        layers = list(self.model)
        return [(layers[i], layers[i + 1]) for i in range(0, len(layers) - 1, 2)]

    def frame(self) -> dict:
        """Losses, the boundary (p = σ(z) on the grid) and each hidden neuron's map."""
        train_loss = self.loss(self.train_x, self.train_y)
        test_loss = self.loss(self.test_x, self.test_y)
        a, neurons, scales = self.grid_x, [], []
        for dense, act in self.hidden_layers():
            with np.errstate(over="ignore", invalid="ignore"):
                a = act(dense(a))
            maps = a.reshape(GRID, GRID, -1)[::2, ::2]
            scale = largest_finite(maps)
            neurons.append([pack(maps[:, :, j], scale, signed=True) for j in range(a.shape[1])])
            scales.append(scale)
        with np.errstate(over="ignore", invalid="ignore"):
            p = sigmoid(self.dense_layers()[-1](a))
        self.forget_caches()
        return {
            "step": self.steps,
            "train_loss": None if math.isnan(train_loss) else train_loss,
            "test_loss": None if math.isnan(test_loss) else test_loss,
            "diverged": self.diverged,
            "message": NAN_HINT if self.diverged else "",
            "boundary": pack(p, 1.0, signed=False),
            "neurons": neurons,
            "neuron_scales": scales,
            "weights": [rounded(d.weight.data) for d in self.dense_layers()],
            "biases": [rounded(d.bias.data) for d in self.dense_layers()],
        }

    def dense_layers(self) -> list[Dense]:
        return [m for m in self.model if isinstance(m, Dense)]

    def describe(self) -> dict:
        """What the page needs once per network: settings, sizes, points, input maps."""
        s = self.settings
        lo, hi = domain(s.dataset)
        inputs = self.grid_x.reshape(GRID, GRID, -1)[::2, ::2]
        scale = [float(np.abs(inputs[:, :, j]).max()) or 1.0 for j in range(inputs.shape[2])]
        return {
            "settings": s.to_json(),
            "sizes": [len(s.features), *s.hidden, 1],
            "features": [FEATURES[f][0] for f in s.features],
            "domain": [lo, hi],
            "grid": GRID,
            "neuron_grid": NEURON_GRID,
            "train": rounded(np.hstack([self.train_points, self.train_y])),
            "test": rounded(np.hstack([self.test_points, self.test_y])),
            "input_maps": [pack(inputs[:, :, j], scale[j], signed=True)
                           for j in range(inputs.shape[2])],
        }

    # -- the backprop view --
    def explain(self, index: int) -> dict:
        """Forward and backward pass of training point `index` alone, at the current weights,
        through the library's own layers (see docs/tutorial/04-matrix-backprop.md):

            z⁽ˡ⁾ = W⁽ˡ⁾a⁽ˡ⁻¹⁾ + b⁽ˡ⁾,  a⁽ˡ⁾ = σ(z⁽ˡ⁾),  a⁽⁰⁾ = x,  ŷ = sigmoid(z⁽ᴸ⁾)
            L = −[y log ŷ + (1 − y) log(1 − ŷ)]            (BCE of this one point)
            ∂L/∂z⁽ᴸ⁾ = ŷ − y                               (sigmoid + BCE, fused)
            ∂L/∂a⁽ˡ⁾ = W⁽ˡ⁺¹⁾ᵀ ∂L/∂z⁽ˡ⁺¹⁾,  ∂L/∂z⁽ˡ⁾ = ∂L/∂a⁽ˡ⁾ · σ′(z⁽ˡ⁾)
            ∂L/∂W⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾ a⁽ˡ⁻¹⁾ᵀ,  ∂L/∂b⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾

        Layer l = 1..L; vectors are lists, ∂L/∂W⁽ˡ⁾ has W⁽ˡ⁾'s shape (out, in)."""
        n = len(self.train_x)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise PlaygroundError(f"point must be a training point index 0..{n - 1}, "
                                  f"got {index!r}")
        x, y = self.train_x[index:index + 1], self.train_y[index:index + 1]
        pairs, last = self.hidden_layers(), self.dense_layers()[-1]
        a, zs, acts = x, [], [x]
        for dense, act in pairs:
            z = dense(a)
            a = act(z)
            zs.append(z)
            acts.append(a)
        z_out = last(a)
        self.model.zero_grad()
        loss_fn = BCEWithLogits()
        try:
            loss = loss_fn(z_out, y)
        except NonFiniteError:
            raise PlaygroundError(NAN_HINT) from None
        dz = loss_fn.backward()  # ∂L/∂z⁽ᴸ⁾ = ŷ − y
        p = sigmoid(z_out)
        with np.errstate(divide="ignore", invalid="ignore"):  # ŷ may round to 0 or 1
            dp = (p - y) / (p * (1 - p))  # ∂L/∂ŷ, shown; the fused ŷ − y is what is used
        layers = [None] * (len(pairs) + 1)
        da = last.backward(dz)  # ∂L/∂a⁽ᴸ⁻¹⁾, and ∂L/∂W⁽ᴸ⁾ into last.weight.grad
        layers[-1] = self._layer_numbers(len(pairs) + 1, z_out, p, dp, p * (1 - p), dz, last)
        for k in range(len(pairs), 0, -1):
            dense, act = pairs[k - 1]
            slope = act.backward(np.ones_like(zs[k - 1]))  # σ′(z⁽ᵏ⁾)
            dz_k = act.backward(da)  # ∂L/∂z⁽ᵏ⁾ = ∂L/∂a⁽ᵏ⁾ · σ′(z⁽ᵏ⁾)
            da_below = dense.backward(dz_k)
            layers[k - 1] = self._layer_numbers(k, zs[k - 1], acts[k], da, slope, dz_k, dense)
            da = da_below
        self.model.zero_grad()  # the view must not leak into the next training step
        return {
            "point": index,
            "xy": significant(self.train_points[index]),
            "x": significant(x[0]),
            "y": int(y[0, 0]),
            "p": float(p[0, 0]),
            "loss": float(loss),
            "lr": self.settings.lr,
            "activation": self.settings.activation,
            "layers": layers,
        }

    @staticmethod
    def _layer_numbers(k, z, a, da, slope, dz, dense: Dense) -> dict:
        """Layer k's numbers for one point (row 0), to 6 significant digits."""
        return {
            "layer": k,
            "z": significant(z[0]),
            "a": significant(a[0]),
            "dL_da": significant(da[0]),
            "sigma_prime": significant(slope[0]),
            "dL_dz": significant(dz[0]),
            "dL_dW": significant(dense.weight.grad),
            "dL_db": significant(dense.bias.grad),
            "W": significant(dense.weight.data),
        }

    def forget_caches(self) -> None:
        """Run one row through the network so the layers' caches of the last big forward pass
        (the 1600-point grid) shrink to one row: what keeps a session small."""
        with np.errstate(over="ignore", invalid="ignore"):
            self.model(self.train_x[:1])

    def nbytes(self) -> int:
        """Bytes held by this playground's arrays: data, grid, weights and gradients, the
        layers' caches, optimizer state (at most two slots per weight)."""
        held = [self.train_x, self.test_x, self.train_points, self.test_points, self.train_y,
                self.test_y, self.grid, self.grid_x, self.order]
        for module in self.model:
            for value in vars(module).values():
                parts = value if isinstance(value, tuple) else (value,)
                held += [v for v in parts if isinstance(v, np.ndarray)]
        params = sum(p.data.nbytes for p in self.model.parameters())
        return sum(a.nbytes for a in held) + 3 * params  # + gradients and 2 state slots


def build_network(inputs: int, hidden: tuple[int, ...], activation: str,
                  rng: np.random.Generator) -> Sequential:
    """inputs → Dense → activation → … → Dense(·, 1): one logit (float64, small weights).
    ReLU-like activations get He initialisation, the others Glorot (as the XNOR demo)."""
    init = "he_uniform" if "relu" in activation else "xavier_uniform"
    layers, width = [], inputs
    for size in hidden:
        layers += [Dense(width, size, init=init, rng=rng, dtype=np.float64),
                   activation_layer(activation)]
        width = size
    layers.append(Dense(width, 1, init="xavier_uniform", rng=rng, dtype=np.float64))
    return Sequential(*layers)


# ---- visitors --------------------------------------------------------------------------------
class PlaygroundStore:
    """An LRU map session id → `Playground`, at most `capacity` of them."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: OrderedDict[str, Playground] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sid: str | None) -> Playground | None:
        with self._lock:
            item = self._items.get(sid) if sid else None
            if item is not None:
                self._items.move_to_end(sid)
            return item

    def put(self, sid: str, playground: Playground) -> None:
        with self._lock:
            self._items[sid] = playground
            self._items.move_to_end(sid)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def options() -> dict:
    """What GET /api/playground/options answers."""
    return {
        "datasets": list(DATASETS),
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZERS),
        "features": {k: label for k, (label, _) in FEATURES.items()},
        "caps": {k: v for k, v in CAPS.items() if k != "body"},
        "defaults": Settings().to_json(),
        "xnor_defaults": XNOR_SETTINGS.to_json(),
    }


# ---- HTTP ------------------------------------------------------------------------------------
def playground_routes(capacity: int = DEFAULT_CAPACITY):
    """Starlette routes under /api/playground/ over a fresh `PlaygroundStore`."""
    from starlette.routing import Route

    api = PlaygroundApi(PlaygroundStore(capacity))
    return [
        Route("/api/playground/options", api.options, methods=["GET"]),
        Route("/api/playground/new", api.new, methods=["POST"]),
        Route("/api/playground/step", api.step, methods=["POST"]),
        Route("/api/playground/explain", api.explain, methods=["POST"]),
    ]


class PlaygroundApi:
    """The endpoints; each answers JSON, errors as {"error": ...} with 400/403/404/413."""

    def __init__(self, store: PlaygroundStore) -> None:
        self.store = store

    async def options(self, request):
        return _json(options())

    async def new(self, request):
        return await self._handle(request, self._new)

    async def step(self, request):
        return await self._handle(request, self._step)

    async def explain(self, request):
        return await self._handle(request, self._explain)

    # -- the work, in a worker thread --
    def _new(self, sid: str, payload: dict) -> dict:
        settings = parse_settings(payload.get("settings", payload))
        playground = Playground(settings)
        with playground.lock:
            answer = {**playground.describe(), "frame": playground.frame()}
        self.store.put(sid, playground)
        return answer

    def _step(self, sid: str, payload: dict) -> dict:
        k = _number("steps", payload.get("steps", 1), 0, CAPS["steps"], integer=True)
        playground = self._own(sid)
        with playground.lock:
            playground.step(k)
            answer = {"frame": playground.frame()}
            point = payload.get("explain")
            if point is not None and not playground.diverged:
                answer["explain"] = playground.explain(point)
        return answer

    def _explain(self, sid: str, payload: dict) -> dict:
        playground = self._own(sid)
        with playground.lock:
            return {"explain": playground.explain(payload.get("point"))}

    def _own(self, sid: str) -> Playground:
        playground = self.store.get(sid)
        if playground is None:
            raise NoNetworkError("no playground network for this visitor yet (or it was dropped "
                            "to make room); press Reset to build one")
        return playground

    # -- plumbing --
    async def _handle(self, request, work):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            check_same_origin(request)
            payload = await read_json(request)
            sid = _session_id(request) or new_session_id()
            answer = await run_in_threadpool(work, sid, payload)
        except PlaygroundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        response = _json(answer)
        if _session_id(request) is None:
            _set_cookie(response, sid)
        return response


def _json(answer: dict):
    from starlette.responses import JSONResponse

    return JSONResponse(answer)


def _session_id(request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if valid_session_id(value) else None


def _set_cookie(response, sid: str) -> None:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")


def check_same_origin(request) -> None:
    """Refuse a cross-site POST: a browser sends Origin, and it must name this server."""
    if not same_origin(request):
        raise CrossOriginError("cross-origin request refused")


async def read_json(request) -> dict:
    """The JSON object in the body ({} for an empty body), at most CAPS["body"] bytes."""
    limit, chunks, size = CAPS["body"], [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body over {limit // 1024} kB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        return {}
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlaygroundError(f"bad JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise PlaygroundError("bad JSON: expected an object")
    return payload
