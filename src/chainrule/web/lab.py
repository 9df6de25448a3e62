"""The numbers behind the page: a prediction with every layer's activations, and one visible
gradient-descent step on a single drawn digit.

Nothing here is special to the web: `DigitLab.teach` is the training step of `chainrule.fit`
on a batch of one — `SoftmaxCrossEntropy` forward, `loss_fn.backward()` (p − y),
`model.backward`, `SGD.step` — so what the page shows is what training does.
"""

from __future__ import annotations

import copy
import math
import threading

import numpy as np

from ..activations import softmax
from ..layers import Sequential
from ..losses import SoftmaxCrossEntropy
from ..module import Module, describe, module_from_config
from ..optim import SGD
from ..optim.optimizer import check_lr as optim_check_lr

SIDE = 28  # the network sees SIDE × SIDE images
# The shapes a digit may need to take on its way in, tried in this order: flat rows for an
# MLP, an image batch for a model that starts with Flatten, NCHW for a convolutional net.
INPUT_SHAPES = ((SIDE * SIDE,), (SIDE, SIDE), (1, SIDE, SIDE))
FIRST_LAYER_TILES = 16  # 28×28 gradient tiles shown for the first weight matrix
MAX_MATRIX = 40_000  # larger weight matrices are sent as their most-changed rows only
TOP_CONTRIBUTIONS = 12  # hidden units drawn as connections into the predicted class
DEFAULT_LR = 0.01
MAX_LR = 10.0


class LabError(ValueError):
    """A request the lab cannot serve (bad label or step size); the message says why."""


def rounded(a, digits: int = 4) -> list:
    """`a` as nested lists rounded to `digits` significant digits of its largest entry
    (compact JSON; entries far below the largest become 0, which a heat map cannot show)."""
    a = np.asarray(a, dtype=np.float64)
    top = float(np.max(np.abs(a))) if a.size else 0.0
    if not math.isfinite(top) or top == 0.0:
        return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0).tolist()
    decimals = max(0, digits - 1 - math.floor(math.log10(top)))
    return np.round(a, decimals).tolist()


def find_input_shape(model: Module) -> tuple[int, ...]:
    """The per-sample input shape the model accepts (see INPUT_SHAPES); raises ValueError."""
    was_training = model.training
    model.eval()
    try:
        for shape in INPUT_SHAPES:
            try:
                out = model(np.zeros((1, *shape), dtype=np.float32))
            except (ValueError, IndexError):
                continue
            if out.ndim == 2 and out.shape[0] == 1 and out.shape[1] >= 2:
                return shape
    finally:
        model.train(was_training)
    raise ValueError(
        "this model does not take 28×28 digit images (it accepts none of the shapes "
        f"{[(None, *s) for s in INPUT_SHAPES]}) or does not output class scores"
    )


class DigitLab:
    """A model plus the bookkeeping to show it: `predict(image)` and `teach(image, label)`.

    `image` is a (28, 28) float array in [0, 1], white digit on black (as `chainrule.preprocess`
    makes it). Methods are serialised by a lock: layers cache their inputs during forward.
    """

    def __init__(self, model: Module, class_names: list[str] | None = None) -> None:
        self.model = model
        self.model.eval()
        self.input_shape = find_input_shape(model)
        self.num_classes = int(self.model(np.zeros((1, *self.input_shape), np.float32)).shape[1])
        names = [str(c) for c in class_names] if class_names else []
        self.class_names = names if len(names) == self.num_classes else [
            str(i) for i in range(self.num_classes)
        ]
        self.lock = threading.Lock()

    def copy(self) -> DigitLab:
        """An independent lab on a copy of the model (a visitor's own to teach).

        The copy is a fresh model of the same architecture loaded with `state_dict()`: only
        the weights and buffers are copied, never what the layers cached from earlier calls.
        """
        with self.lock:
            state = self.model.state_dict()
        return DigitLab(rebuild(self.model, state), self.class_names)

    def load_weights_of(self, other: DigitLab) -> None:
        """Make this lab's model equal to `other`'s again (same architecture): copy its
        parameters and buffers in place."""
        with other.lock:
            state = other.model.state_dict()
        with self.lock:
            self.model.load_state_dict(state)
            self.model.eval()

    # ---- forward, remembering each layer's output ----------------------------------------
    def _batch(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if image.shape != (SIDE, SIDE):
            raise LabError(f"expected a {SIDE}×{SIDE} image, got shape {image.shape}")
        return image.reshape(1, *self.input_shape)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (1, C) and each layer's output, by the same calls Sequential.forward makes."""
        if not isinstance(self.model, Sequential):
            return self.model(x), []
        outputs = []
        for layer in self.model.layers:
            x = layer.forward(x)
            outputs.append(x)
        return x, outputs

    def _blocks(self, outputs: list[np.ndarray], probs: np.ndarray) -> list[dict]:
        """The network as layers of neurons: one block per layer with parameters, holding
        the activation after its nonlinearity (the output block holds the probabilities)."""
        if not outputs:
            return [{"name": "output", "size": self.num_classes, "values": rounded(probs, 5)}]
        layers = self.model.layers
        starts = [i for i, layer in enumerate(layers) if layer.parameters()]
        blocks = []
        for k, start in enumerate(starts):
            end = starts[k + 1] - 1 if k + 1 < len(starts) else len(layers) - 1
            names = [type(layers[i]).__name__ for i in range(start, end + 1)]
            names = [n for n in names if n not in ("Flatten", "Reshape", "Dropout")]
            act = outputs[end][0]
            if act.ndim == 3:  # (C, H, W): one "neuron" per channel, its mean activation
                act = act.mean(axis=(1, 2))
            last = k == len(starts) - 1
            values = probs if last else act.ravel()
            blocks.append({
                "name": "output" if last else f"hidden {k + 1}",
                "layer": " + ".join(names) + (" + softmax" if last else ""),
                "size": int(values.size),
                "values": rounded(values, 5),
            })
        return blocks

    def _contributions(self, outputs: list[np.ndarray], digit: int) -> list[list]:
        """Largest terms W[digit, j]·h_j of the predicted class's logit (a Dense output layer)."""
        layers = getattr(self.model, "layers", [])
        trainable = [i for i, layer in enumerate(layers) if layer.parameters()]
        if len(trainable) < 2 or type(layers[trainable[-1]]).__name__ != "Dense":
            return []
        h = outputs[trainable[-1] - 1][0].ravel()
        terms = layers[trainable[-1]].weight.data[digit] * h
        top = np.argsort(-np.abs(terms))[:TOP_CONTRIBUTIONS]
        return [[int(j), float(np.round(terms[j], 5))] for j in top]

    def _predict_locked(self, image: np.ndarray) -> dict:
        logits, outputs = self._forward(self._batch(image))
        logits = logits.astype(np.float64)
        probs = softmax(logits)[0]
        digit = int(np.argmax(probs))
        blocks = self._blocks(outputs, probs)
        hidden = [v for block in blocks[:-1] for v in block["values"]]
        return {
            "digit": digit,
            "label": self.class_names[digit],
            "probabilities": [float(p) for p in probs],
            "hidden": hidden,
            "layers": blocks,
            "contributions": self._contributions(outputs, digit),
        }

    def predict(self, image: np.ndarray) -> dict:
        """{"digit", "probabilities", "input" (28×28), "hidden", "layers", ...} for one image."""
        with self.lock:
            result = self._predict_locked(image)
        result["input"] = np.round(np.asarray(image, dtype=np.float64), 3).tolist()
        return result

    # ---- one visible training step --------------------------------------------------------
    def teach(self, image: np.ndarray, label, lr: float = DEFAULT_LR) -> dict:
        """One SGD step on (image, label): the loss, p − y and each weight gradient, before
        and after. Changes this lab's model (use a visitor's copy, never the shared one)."""
        label = check_label(label, self.num_classes)
        lr = check_lr(lr)
        x = self._batch(image)
        loss_fn = SoftmaxCrossEntropy()
        target = np.array([label])
        with self.lock:
            model = self.model
            teaching_mode(model)
            model.zero_grad()
            logits, outputs = self._forward(x)
            loss_before = loss_fn(logits, target)
            probs_before = loss_fn.probabilities[0].astype(np.float64)
            output_grad = loss_fn.backward()  # dL/dz = (p − y) / 1
            model.backward(output_grad, input_grad=False)
            SGD(model.parameters(), lr=lr).step()  # θ ← θ − lr·∇θ
            grads = weight_grads(model, x)
            loss_after = loss_fn(model(x), target)
            probs_after = loss_fn.probabilities[0].astype(np.float64)
            model.zero_grad()
            model.eval()
            after = self._predict_locked(image)
        return {
            "label": label,
            "lr": lr,
            "loss_before": float(loss_before),
            "loss_after": float(loss_after),
            "probabilities_before": [float(p) for p in probs_before],
            "probabilities_after": [float(p) for p in probs_after],
            "output_grad": [float(g) for g in output_grad[0]],
            "weight_grads": grads,
            "prediction_after": after,
        }

    # ---- what the model is ------------------------------------------------------------------
    def architecture(self) -> list[dict]:
        """One row per layer: type, constructor arguments, output shape and parameter count."""
        layers = getattr(self.model, "layers", [self.model])
        rows = []
        with self.lock:
            x = np.zeros((1, *self.input_shape), dtype=np.float32)
            for i, layer in enumerate(layers):
                x = layer.forward(x)
                rows.append({
                    "index": i,
                    "type": type(layer).__name__,
                    "config": layer.config(),
                    "output_shape": [None, *x.shape[1:]],
                    "parameters": int(layer.num_parameters()),
                })
        return rows


def rebuild(model: Module, state: dict[str, np.ndarray]) -> Module:
    """A new model with `model`'s architecture (its `describe`) holding `state`, in eval mode.

    A module that cannot be rebuilt from its description (a custom class that is not
    registered) is deep-copied instead, caches and all.
    """
    try:
        fresh = module_from_config(describe(model))
    except (ValueError, TypeError, KeyError):
        fresh = copy.deepcopy(model)
    dtypes = {p.data.dtype for p in model.parameters()}
    if len(dtypes) == 1 and {p.data.dtype for p in fresh.parameters()} != dtypes:
        fresh.astype(dtypes.pop())
    fresh.load_state_dict(state)
    return fresh.eval()


def teaching_mode(model: Module) -> None:
    """Training mode (layers keep what backward needs), except for what would make one step
    on one digit noisy or ill-defined: Dropout stays off and BatchNorm keeps its running
    statistics (a batch of one has no variance)."""
    model.train()
    stack = [model]
    while stack:
        module = stack.pop()
        if type(module).__name__.startswith("Dropout") or getattr(module, "_buffer_names", ()):
            module.eval()
            module.grad_in_eval = True  # eval-mode layers keep nothing for backward otherwise
        stack.extend(child for _, child in module.named_children())


def check_label(label, num_classes: int = 10) -> int:
    """An integer class index in 0..num_classes−1 (JSON true/false and 3.5 are refused)."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        if isinstance(label, str) and label.strip().isdigit():
            label = int(label.strip())
        else:
            raise LabError(f"label must be an integer 0–{num_classes - 1}, got {label!r}")
    if not 0 <= int(label) < num_classes:
        raise LabError(f"label must be an integer 0–{num_classes - 1}, got {label}")
    return int(label)


def check_lr(lr) -> float:
    """A step size in (0, MAX_LR]: optim's rule (a finite number ≥ 0), then the lab's cap."""
    try:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise ValueError
        rate = optim_check_lr("lab", lr)
    except ValueError:
        raise LabError(f"lr must be a number in (0, {MAX_LR:g}], got {lr!r}") from None
    if not 0 < rate <= MAX_LR:
        raise LabError(f"lr must be a number in (0, {MAX_LR:g}], got {lr}")
    return rate


def weight_grads(model: Module, x: np.ndarray) -> list[dict]:
    """Each weight matrix's gradient as a heat map (after `backward`, with the model's weights
    already stepped): the first layer's as 28×28 tiles, one per hidden unit (its gradient row
    and its weights after the step), the others as matrices."""
    views = []
    for index, (name, p) in enumerate(
        (n, p) for n, p in model.named_parameters() if p.data.ndim >= 2
    ):
        g = p.grad
        entry = {
            "name": name,
            "shape": list(g.shape),
            "norm": float(np.linalg.norm(g)),
            "max_abs": float(np.max(np.abs(g))) if g.size else 0.0,
        }
        if g.ndim == 2 and g.shape[1] == SIDE * SIDE and index == 0:
            entry.update(kind="tiles", tiles=_input_tiles(g, p.data, x.reshape(-1)))
        elif g.ndim == 2:
            rows = np.arange(g.shape[0])
            if g.size > MAX_MATRIX:
                keep = max(1, MAX_MATRIX // g.shape[1])
                rows = np.sort(np.argsort(-np.linalg.norm(g, axis=1))[:keep])
            entry.update(kind="matrix", rows=rows.tolist(), grad=rounded(g[rows]))
        else:  # a conv kernel bank (out, in, kh, kw): one tile per (out, in) pair
            kernels = g.reshape(-1, *g.shape[-2:])[: 8 * FIRST_LAYER_TILES]
            entry.update(kind="kernels", kernels=rounded(kernels))
        views.append(entry)
    return views


def _input_tiles(g: np.ndarray, w_after: np.ndarray, x: np.ndarray) -> list[dict]:
    # With one sample, row j of dL/dW1 is δ_j·x (unit j's error dL/dz_j times the input), so
    # each tile is the digit itself scaled by δ_j; the units with the largest |δ_j| change most.
    norms = np.linalg.norm(g, axis=1)
    top = np.argsort(-norms)[:FIRST_LAYER_TILES]
    xx = float(x @ x)
    return [
        {
            "unit": int(j),
            "delta": float(g[j] @ x / xx) if xx > 0 else 0.0,
            "grad": rounded(g[j].reshape(SIDE, SIDE)),
            "weight_after": rounded(w_after[j].reshape(SIDE, SIDE), 3),
        }
        for j in top
    ]
