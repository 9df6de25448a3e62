"""The Playground's engine: the network and its training, the frame pictures and the backprop
view's numbers (data sets: `chainrule.web.playground_data`; HTTP: `chainrule.web.playground`).

Everything numeric here is chainrule's own matrix path: `Dense` layers, an activation and
optional `Dropout` after each hidden layer, an optimizer from `chainrule.optim`,
`model.backward` for the gradients. The output depends on the problem:

    binary classification   one logit z, p = σ(z),          BCEWithLogits
    3 or 4 classes          K logits z, p = softmax(z),     SoftmaxCrossEntropy (mean CE)
    regression              one linear output ŷ = z,        MSE (mean squared error)
"""

from __future__ import annotations

import base64
import math

import numpy as np

from ..activations import activation_layer, sigmoid, softmax
from ..layers import Dense, Sequential
from ..losses import MSE, BCEWithLogits, NonFiniteError, SoftmaxCrossEntropy
from ..optim import make_optimizer
from ..regularization import Dropout
from .playground_data import FEATURES, Data, domain, feature_matrix, make_data
from .playground_settings import PlaygroundError, Settings

GRID = 40  # the decision boundary is evaluated on GRID × GRID points
NEURON_GRID = 20  # each neuron's map: every other grid point
NAN_HINT = ("the loss is not a number: the learning rate is too large; lower it and press "
            "Reset")
LOSSES = {"binary": BCEWithLogits, "softmax": SoftmaxCrossEntropy, "regression": MSE}


# ---- pictures and numbers for JSON -----------------------------------------------------------
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


def significant(array, digits: int = 6):
    """A nested list of floats to `digits` significant digits; NaN and ±inf become None."""
    if array is None:
        return None
    flat = [float(f"{v:.{digits}g}") if math.isfinite(v) else None
            for v in np.asarray(array, dtype=np.float64).ravel().tolist()]
    return np.array(flat, dtype=object).reshape(np.shape(array)).tolist()


def output_kind(settings: Settings, data: Data) -> str:
    """"regression", "softmax" (3 or 4 classes) or "binary" (classes 0 and 1)."""
    if settings.problem == "regression":
        return "regression"
    return "softmax" if data.classes() > 2 else "binary"


def build_network(inputs: int, hidden: tuple[int, ...], activation: str, outputs: int,
                  rng: np.random.Generator, dropout: float = 0.0,
                  dropout_rng: np.random.Generator | None = None) -> Sequential:
    """inputs → Dense → activation [→ Dropout] → … → Dense(·, outputs) (float64, small
    weights). ReLU-like activations get He initialisation, the others Glorot (as the XNOR
    demo). Dropout (rate > 0) follows each hidden activation; it acts in training only."""
    init = "he_uniform" if "relu" in activation else "xavier_uniform"
    layers, width = [], inputs
    for size in hidden:
        layers += [Dense(width, size, init=init, rng=rng, dtype=np.float64),
                   activation_layer(activation)]
        if dropout > 0:
            layers.append(Dropout(dropout, rng=dropout_rng))
        width = size
    layers.append(Dense(width, outputs, init="xavier_uniform", rng=rng, dtype=np.float64))
    return Sequential(*layers)


# ---- one visitor's network -------------------------------------------------------------------
class Playground:
    """A network, its data and its optimizer, for one visitor. Not thread-safe: the HTTP side
    holds the visitor's lock. `data` (if given) replaces the built-in data set of `settings`."""

    def __init__(self, settings: Settings, data: Data | None = None) -> None:
        self.settings = s = settings
        rng = np.random.default_rng(s.seed)
        built_in = make_data(s, rng)  # always drawn, so the weights never depend on `data`
        self.data = data if data is not None else built_in
        self._use_data()
        self._build(rng)
        lo, hi = domain(s.dataset)
        self.grid = grid_points(lo, hi)
        self.grid_x = feature_matrix(self.grid, s.features)

    def _use_data(self) -> None:
        """Train/test arrays from `self.data`, targets shaped for the loss."""
        train_idx, test_idx = self.data.split()
        points, targets = self.data.points, self.data.targets
        self.kind = output_kind(self.settings, self.data)
        self.train_points, self.test_points = points[train_idx], points[test_idx]
        self.train_t, self.test_t = targets[train_idx], targets[test_idx]
        shaped = (lambda t: t.astype(np.int64)) if self.kind == "softmax" else (
            lambda t: t[:, None])
        self.train_y, self.test_y = shaped(self.train_t), shaped(self.test_t)
        self.train_x = feature_matrix(self.train_points, self.settings.features)
        self.test_x = feature_matrix(self.test_points, self.settings.features)
        self.order = np.empty(0, dtype=np.int64)

    def outputs(self) -> int:
        return self.data.classes() if self.kind == "softmax" else 1

    def _build(self, rng: np.random.Generator) -> None:
        s = self.settings
        self.model = build_network(len(s.features), s.hidden, s.activation, self.outputs(), rng,
                                   s.dropout, np.random.default_rng(s.seed + 2)).eval()
        self.built_for = (self.kind, self.outputs())
        self.optimizer = make_optimizer(s.optimizer, self.model.parameters(), lr=s.lr,
                                        weight_decay=s.l2)
        self.loss_fn = LOSSES[self.kind]()
        self.batch_rng = np.random.default_rng(s.seed + 1)
        self.steps, self.diverged = 0, False

    def set_data(self, data: Data) -> bool:
        """Train on `data` from now on; True if the network had to be rebuilt (fresh weights)
        because the number of classes changed."""
        self.data = data
        self._use_data()
        if (self.kind, self.outputs()) == self.built_for:
            return False
        self._build(np.random.default_rng([self.settings.seed, self.outputs()]))
        return True

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
        """K steps of mini-batch training: forward (dropout on), loss, backward, update.
        Stops early (and sets `diverged`) when the loss is not a number; does nothing while
        there are no training points."""
        if not len(self.train_x):
            return
        self.model.train()
        try:
            for _ in range(k):
                if self.diverged:
                    return
                rows = self.next_batch()
                self.optimizer.zero_grad()
                with np.errstate(over="ignore", invalid="ignore"):  # overflow ends as NaN
                    try:
                        self.loss_fn(self.model(self.train_x[rows]), self.train_y[rows])
                    except NonFiniteError:
                        self.diverged = True
                        return
                    self.model.backward(self.loss_fn.backward(), input_grad=False)
                    self.optimizer.step()
                self.steps += 1
        finally:
            self.model.eval()

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The mean loss of the network (eval mode: no dropout) on (x, y); NaN once it has
        diverged or when there are no points."""
        if not len(x):
            return math.nan
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return float(LOSSES[self.kind]()(self.model(x), y))
        except NonFiniteError:
            self.diverged = True
            return math.nan

    def test_loss(self) -> float:
        return self.loss(self.test_x, self.test_y)

    # -- the layers --
    def dense_layers(self) -> list[Dense]:
        return [m for m in self.model if isinstance(m, Dense)]

    def hidden_layers(self) -> list[tuple[Dense, object]]:
        """(Dense, activation) of each hidden layer; dropout is left out (eval mode)."""
        acts = [m for m in self.model if not isinstance(m, (Dense, Dropout))]
        return list(zip(self.dense_layers()[:-1], acts))

    # -- what the page draws --
    def value_scale(self) -> float:
        """Regression: the |value| drawn at full colour (the largest |target|, at least 1)."""
        return max(1.0, largest_finite(self.data.targets)) if len(self.data) else 1.0

    def frame(self) -> dict:
        """Losses, the output over the grid and each neuron's map (see `_output_pictures`)."""
        train_loss = self.loss(self.train_x, self.train_y)
        test_loss = self.test_loss()
        a, neurons, scales = self.grid_x, [], []
        for dense, act in self.hidden_layers():
            with np.errstate(over="ignore", invalid="ignore"):
                a = act(dense(a))
            maps = a.reshape(GRID, GRID, -1)[::2, ::2]
            scale = largest_finite(maps)
            neurons.append([pack(maps[:, :, j], scale, signed=True) for j in range(a.shape[1])])
            scales.append(scale)
        with np.errstate(over="ignore", invalid="ignore"):
            z = self.dense_layers()[-1](a)
        return {
            "step": self.steps,
            "train_loss": None if math.isnan(train_loss) else train_loss,
            "test_loss": None if math.isnan(test_loss) else test_loss,
            "diverged": self.diverged,
            "message": NAN_HINT if self.diverged else "",
            **self._output_pictures(z),
            "neurons": neurons,
            "neuron_scales": scales,
            "weights": [rounded(d.weight.data) for d in self.dense_layers()],
            "biases": [rounded(d.bias.data) for d in self.dense_layers()],
        }

    def _output_pictures(self, z: np.ndarray) -> dict:
        """The output on the GRID² grid, packed: `boundary` is p = σ(z) (binary), the winning
        class's probability with `boundary_class` its index (softmax), or ŷ/value_scale
        (regression, signed); `outputs` holds each output unit's map on the neuron grid."""
        small = lambda m: m.reshape(GRID, GRID)[::2, ::2]  # noqa: E731
        with np.errstate(over="ignore", invalid="ignore"):
            if self.kind == "binary":
                p = sigmoid(z)[:, 0]
                return {"boundary": pack(p, 1.0, signed=False),
                        "outputs": [pack(small(p), 1.0, signed=False)]}
            if self.kind == "softmax":
                probs = softmax(np.nan_to_num(z), axis=1)
                winner = np.argmax(probs, axis=1).astype(np.uint8)
                return {"boundary": pack(probs.max(axis=1), 1.0, signed=False),
                        "boundary_class": base64.b64encode(winner.tobytes()).decode("ascii"),
                        "outputs": [pack(small(probs[:, k]), 1.0, signed=False)
                                    for k in range(probs.shape[1])]}
        scale = self.value_scale()
        return {"boundary": pack(z[:, 0], scale, signed=True), "value_scale": scale,
                "outputs": [pack(small(z[:, 0]), scale, signed=True)]}

    def describe(self) -> dict:
        """What the page needs once per network or data change: settings, sizes, points."""
        s = self.settings
        lo, hi = domain(s.dataset)
        inputs = self.grid_x.reshape(GRID, GRID, -1)[::2, ::2]
        scale = [float(np.abs(inputs[:, :, j]).max()) or 1.0 for j in range(inputs.shape[2])]
        return {
            "settings": s.to_json(),
            "sizes": [len(s.features), *s.hidden, self.outputs()],
            "features": [FEATURES[f][0] for f in s.features],
            "output": self.kind,
            "classes": self.data.classes() if s.problem == "classification" else 0,
            "points": len(self.data),
            "value_scale": self.value_scale(),
            "domain": [lo, hi],
            "grid": GRID,
            "neuron_grid": NEURON_GRID,
            "train": rounded(np.column_stack([self.train_points, self.train_t])),
            "test": rounded(np.column_stack([self.test_points, self.test_t])),
            "input_maps": [pack(inputs[:, :, j], scale[j], signed=True)
                           for j in range(inputs.shape[2])],
        }

    # -- the backprop view --
    def explain(self, index: int) -> dict:
        """Forward and backward pass of training point `index` alone, at the current weights,
        through the library's own layers (see docs/tutorial/04-matrix-backprop.md), without
        dropout:

            z⁽ˡ⁾ = W⁽ˡ⁾a⁽ˡ⁻¹⁾ + b⁽ˡ⁾,  a⁽ˡ⁾ = σ(z⁽ˡ⁾),  a⁽⁰⁾ = x
            output a⁽ᴸ⁾: sigmoid(z⁽ᴸ⁾) | softmax(z⁽ᴸ⁾) | z⁽ᴸ⁾ (regression)
            ∂L/∂z⁽ᴸ⁾ = ŷ − y (BCE), p − y (softmax + CE, y one-hot), 2(ŷ − y) (squared error)
            ∂L/∂a⁽ˡ⁾ = W⁽ˡ⁺¹⁾ᵀ ∂L/∂z⁽ˡ⁺¹⁾,  ∂L/∂z⁽ˡ⁾ = ∂L/∂a⁽ˡ⁾ · σ′(z⁽ˡ⁾)
            ∂L/∂W⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾ a⁽ˡ⁻¹⁾ᵀ,  ∂L/∂b⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾

        Layer l = 1..L; vectors are lists, ∂L/∂W⁽ˡ⁾ has W⁽ˡ⁾'s shape (out, in)."""
        n = len(self.train_x)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            if not n:
                raise PlaygroundError("there are no training points to explain; add some")
            raise PlaygroundError(f"point must be a training point index 0..{n - 1}, "
                                  f"got {index!r}")
        self.model.train()  # the layers keep what backward needs; dropout is not called
        try:
            return self._explain(index)
        finally:
            self.model.zero_grad()  # the view must not leak into the next training step
            self.model.eval()

    def _explain(self, index: int) -> dict:
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
        loss_fn = LOSSES[self.kind]()
        try:
            loss = loss_fn(z_out, y)
        except NonFiniteError:
            raise PlaygroundError(NAN_HINT) from None
        dz = loss_fn.backward()  # ∂L/∂z⁽ᴸ⁾: ŷ − y, p − y or 2(ŷ − y)
        out, dout, slope = self._output_numbers(z_out, y)
        layers = [None] * (len(pairs) + 1)
        da = last.backward(dz)  # ∂L/∂a⁽ᴸ⁻¹⁾, and ∂L/∂W⁽ᴸ⁾ into last.weight.grad
        layers[-1] = self._layer_numbers(len(pairs) + 1, z_out, out, dout, slope, dz, last)
        for k in range(len(pairs), 0, -1):
            dense, act = pairs[k - 1]
            slope_k = act.backward(np.ones_like(zs[k - 1]))  # σ′(z⁽ᵏ⁾)
            dz_k = act.backward(da)  # ∂L/∂z⁽ᵏ⁾ = ∂L/∂a⁽ᵏ⁾ · σ′(z⁽ᵏ⁾)
            da_below = dense.backward(dz_k)
            layers[k - 1] = self._layer_numbers(k, zs[k - 1], acts[k], da, slope_k, dz_k, dense)
            da = da_below
        target = self.train_t[index]
        return {
            "point": index,
            "output": self.kind,
            "xy": significant(self.train_points[index]),
            "x": significant(x[0]),
            "y": float(target) if self.kind == "regression" else int(target),
            "p": significant(out[0]) if self.kind == "softmax" else float(out[0, 0]),
            "loss": float(loss),
            "lr": self.settings.lr,
            "activation": self.settings.activation,
            "layers": layers,
        }

    def _output_numbers(self, z: np.ndarray, y: np.ndarray):
        """(a⁽ᴸ⁾, ∂L/∂a⁽ᴸ⁾, σ′(z⁽ᴸ⁾)) of the output for one point; the softmax has no
        elementwise σ′ (its Jacobian and the log cancel to p − y), so those two are None."""
        if self.kind == "softmax":
            return softmax(z, axis=1), None, None
        if self.kind == "regression":
            return z, 2 * (z - y), np.ones_like(z)
        p = sigmoid(z)
        with np.errstate(divide="ignore", invalid="ignore"):  # ŷ may round to 0 or 1
            dp = (p - y) / (p * (1 - p))  # ∂L/∂ŷ, shown; the fused ŷ − y is what is used
        return p, dp, p * (1 - p)

    @staticmethod
    def _layer_numbers(k, z, a, da, slope, dz, dense: Dense) -> dict:
        """Layer k's numbers for one point (row 0), to 6 significant digits."""
        return {
            "layer": k,
            "z": significant(z[0]),
            "a": significant(a[0]),
            "dL_da": None if da is None else significant(da[0]),
            "sigma_prime": None if slope is None else significant(slope[0]),
            "dL_dz": significant(dz[0]),
            "dL_dW": significant(dense.weight.grad),
            "dL_db": significant(dense.bias.grad),
            "W": significant(dense.weight.data),
        }

    def forget_caches(self) -> None:
        """Run one row through the network in training mode so the layers' caches of the
        last training batch shrink to one row: what keeps a session small."""
        if not len(self.train_x):
            return
        self.model.train()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                self.model(self.train_x[:1])
        finally:
            self.model.eval()

    def nbytes(self) -> int:
        """Bytes held by this playground's arrays: data, grid, weights and gradients, the
        layers' caches, optimizer state (at most two slots per weight)."""
        held = [self.train_x, self.test_x, self.train_points, self.test_points, self.train_y,
                self.test_y, self.train_t, self.test_t, self.grid, self.grid_x, self.order,
                self.data.points, self.data.targets, self.data.train]
        for module in self.model:
            for value in vars(module).values():
                parts = value if isinstance(value, tuple) else (value,)
                held += [v for v in parts if isinstance(v, np.ndarray)]
        params = sum(p.data.nbytes for p in self.model.parameters())
        return sum(a.nbytes for a in held) + 3 * params  # + gradients and 2 state slots
