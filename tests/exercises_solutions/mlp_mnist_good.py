"""Reference solution of the `mlp-mnist` exercise: 784-128-10, ReLU, SGD with momentum."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def init_params(rng: np.random.Generator, sizes=(784, 128, 10)) -> dict[str, np.ndarray]:
    n_in, n_hidden, n_out = sizes
    return {"W1": rng.standard_normal((n_hidden, n_in)) * np.sqrt(2 / n_in),
            "b1": np.zeros(n_hidden),
            "W2": rng.standard_normal((n_out, n_hidden)) * np.sqrt(2 / n_hidden),
            "b2": np.zeros(n_out)}


def forward(params: dict, x: np.ndarray) -> tuple[np.ndarray, dict]:
    z1 = x @ params["W1"].T + params["b1"]
    h = np.maximum(z1, 0)
    return h @ params["W2"].T + params["b2"], {"x": x, "z1": z1, "h": h}


def backward(params: dict, cache: dict, dlogits: np.ndarray) -> dict[str, np.ndarray]:
    dh = dlogits @ params["W2"]
    dz1 = dh * (cache["z1"] > 0)
    return {"W2": dlogits.T @ cache["h"], "b2": dlogits.sum(0),
            "W1": dz1.T @ cache["x"], "b1": dz1.sum(0)}


def softmax_ce_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def train(x_train: np.ndarray, y_train: np.ndarray, epochs: int = 8,
          ) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    params = init_params(rng)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            logits, cache = forward(params, x_train[batch])
            grads = backward(params, cache, softmax_ce_grad(logits, y_train[batch]))
            for k in params:
                velocity[k] = 0.9 * velocity[k] + grads[k]
                params[k] -= 0.1 * velocity[k]

    def predict(x: np.ndarray) -> np.ndarray:
        return np.argmax(forward(params, x)[0], axis=1)

    return predict
