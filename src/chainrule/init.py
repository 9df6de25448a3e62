"""Weight initialisers: draw a `(fan_out, fan_in, ...)` array so activations keep their scale.

Xavier/Glorot (for tanh/sigmoid) keeps Var(out) ≈ Var(in) averaged over both directions:
Var(w) = 2 / (fan_in + fan_out). He/Kaiming (for ReLU, which zeroes half its inputs) uses
Var(w) = 2 / fan_in. A uniform U(-a, a) has variance a²/3, hence the √3 in the bounds.
"""

from __future__ import annotations

import math

import numpy as np


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in) or (out, in, kh, kw)."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def xavier_uniform(shape, rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = fans(shape)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape)


def xavier_normal(shape, rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(shape, rng: np.random.Generator) -> np.ndarray:
    fan_in, _ = fans(shape)
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape)


def he_normal(shape, rng: np.random.Generator) -> np.ndarray:
    fan_in, _ = fans(shape)
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def lecun_uniform(shape, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's default for Linear/Conv: U(-1/√fan_in, 1/√fan_in), a third of LeCun's 1/fan_in."""
    fan_in, _ = fans(shape)
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


INITIALIZERS = {
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
}


def initialize(name: str, shape, rng: np.random.Generator, dtype) -> np.ndarray:
    """Draw a weight of `shape` with the initialiser called `name`, cast to `dtype`."""
    try:
        init = INITIALIZERS[name]
    except KeyError:
        known = sorted(INITIALIZERS)
        raise ValueError(f"unknown initializer {name!r}; choose one of {known}") from None
    return init(tuple(shape), rng).astype(dtype)
