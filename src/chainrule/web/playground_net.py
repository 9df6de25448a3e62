"""The Playground's engine: 2-D data sets, feature maps, the network and its training, the
frame pictures and the backprop view's numbers (the HTTP side is `chainrule.web.playground`).

Everything numeric here is chainrule's own matrix path: `Dense` layers and an activation,
`BCEWithLogits` on one output logit (p = σ(z) is the probability of class 1), an optimizer
from `chainrule.optim`, `model.backward` for the gradients.
"""

from __future__ import annotations

import base64
import math
import threading
from typing import TYPE_CHECKING

import numpy as np

from ..activations import activation_layer, sigmoid
from ..layers import Dense, Sequential
from ..losses import BCEWithLogits, NonFiniteError
from ..optim import make_optimizer

if TYPE_CHECKING:
    from .playground import Settings

FEATURES = {  # name → (label, function of the two coordinates)
    "x1": ("x₁", lambda u, v: u),
    "x2": ("x₂", lambda u, v: v),
    "x1sq": ("x₁²", lambda u, v: u * u),
    "x2sq": ("x₂²", lambda u, v: v * v),
    "x1x2": ("x₁x₂", lambda u, v: u * v),
    "sin1": ("sin πx₁", lambda u, v: np.sin(np.pi * u)),
    "sin2": ("sin πx₂", lambda u, v: np.sin(np.pi * v)),
}
POINTS = 400  # points per data set (xnor: its 4 rows)
GRID = 40  # the decision boundary is evaluated on GRID × GRID points
NEURON_GRID = 20  # each neuron's map: every other grid point
NAN_HINT = ("the loss is not a number: the learning rate is too large; lower it and press "
            "Reset")


class PlaygroundError(ValueError):
    """A bad setting or request, answered with `status` (400) and this one-line message."""

    status = 400


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
