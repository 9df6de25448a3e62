"""Exercise `mlp-mnist`: your own training loop, a digit recogniser from scratch.

The checker calls `train(x_train, y_train)` with mnist-10k's 8,000 training digits, then
scores the `predict` function it returns on the 2,000 test digits: it needs 92%.
    x_train (8000, 784) float32 in [0, 1] (each 28×28 image flattened);  y_train (8000,) ints
A recipe that works (about 96% in 10 epochs, well inside the time limit):
    784 → Dense 128 → ReLU → Dense 10 (logits);  He initialisation W ~ N(0, 2/fan_in), b = 0
    loss: softmax cross-entropy (your `softmax-ce` exercise); dL/dlogits = (p − y)/N
    SGD with momentum 0.9 (your `sgd-momentum` exercise), lr 0.1, mini-batches of 64,
    shuffled every epoch with a seeded np.random.default_rng.
Backward through the layers (your `dense` exercise), with G = dL/d(output) of each layer:
    Dense:  dW = Gᵀ X,  db = Σ_rows G,  dX = G W;     ReLU:  dX = G · (X > 0)

Check it with:  chainrule exercises check mlp-mnist mlp_mnist.py
Fill in every TODO (each raises NotImplementedError until you do). Use NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def init_params(rng: np.random.Generator, sizes=(784, 128, 10)) -> dict[str, np.ndarray]:
    """{"W1": (128, 784), "b1": (128,), "W2": (10, 128), "b2": (10,)}, He-initialised."""
    # TODO
    raise NotImplementedError("TODO: init_params")


def forward(params: dict, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """x (N, 784) → logits (N, 10), and a cache of what backward needs (x, h, ...)."""
    # TODO
    raise NotImplementedError("TODO: forward")


def backward(params: dict, cache: dict, dlogits: np.ndarray) -> dict[str, np.ndarray]:
    """dL/dlogits (N, 10) → {"W1": dL/dW1, "b1": ..., "W2": ..., "b2": ...}."""
    # TODO
    raise NotImplementedError("TODO: backward")


def train(x_train: np.ndarray, y_train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Train on (x_train, y_train); return predict: images (M, 784) → digits (M,) ints."""
    rng = np.random.default_rng(0)
    params = init_params(rng)
    # TODO: epochs of shuffled mini-batches: forward, loss gradient, backward, SGD step

    def predict(x: np.ndarray) -> np.ndarray:
        logits, _ = forward(params, x)
        return np.argmax(logits, axis=1)

    return predict
