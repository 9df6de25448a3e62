"""Ready-made models for 28×28 digits: `mlp(...)` and `cnn(...)`, by name in `MODELS`.

Both take (N, 28, 28) images (or anything with 784 values per row) and return (N, 10)
logits for `SoftmaxCrossEntropy`. They are plain `Sequential`s, so `cr.save` / `cr.load`
rebuild them from their layer list; these builders only choose the layers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .activations import activation_layer
from .conv import Conv2D
from .layers import Dense, Flatten, Reshape, Sequential
from .module import Module, resolve_rng
from .normalization import BatchNorm2d
from .pooling import MaxPool2D
from .regularization import Dropout


def mlp(
    hidden: Iterable[int] | int = (128,),
    activation: str = "relu",
    in_features: int = 784,
    num_classes: int = 10,
    dropout: float = 0.0,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
) -> Sequential:
    """Flatten → [Dense → activation (→ Dropout)] per hidden width → Dense(num_classes).

    `mlp()` is Sequential(Flatten(), Dense(784, 128), ReLU(), Dense(128, 10)). Weights are
    drawn from `rng`, or from a generator seeded with `seed`.
    """
    hidden = [hidden] if isinstance(hidden, int) else [int(h) for h in hidden]
    rng = resolve_rng(rng, seed)
    layers: list[Module] = [Flatten()]
    width = int(in_features)
    for h in hidden:
        layers += [Dense(width, h, rng=rng), activation_layer(activation)]
        if dropout:
            layers.append(Dropout(dropout, rng=rng))
        width = h
    layers.append(Dense(width, num_classes, rng=rng))
    return Sequential(layers)


def cnn(
    seed: int | None = None,
    channels: Iterable[int] = (32, 64),
    hidden: int = 128,
    dropout: float = 0.25,
    num_classes: int = 10,
    batchnorm: bool = False,
    activation: str = "relu",
    image_shape: Iterable[int] = (1, 28, 28),
    rng: np.random.Generator | None = None,
) -> Sequential:
    """The small CNN: per entry of `channels`, a 3×3 'same' Conv2D → MaxPool2D(2) → ReLU,
    then Flatten → Dense(hidden) → ReLU → Dropout → Dense(num_classes).

    Default (with (N, 28, 28) or (N, 784) input reshaped to (N, 1, 28, 28)):
        conv 1→32 (28×28) → pool (14×14) → conv 32→64 → pool (7×7) → 3136 → 128 → 10.
    Pooling before the activation is the same function as after it for every activation
    that never decreases (max(f(a), f(b)) = f(max(a, b)): ReLU, LeakyReLU, sigmoid, tanh,
    SmeLU), and the activation then touches 4× fewer values. GELU and softmax are not
    monotone: for them the order is Conv2D → activation → MaxPool2D.
    `batchnorm=True` puts a BatchNorm2d after each convolution (whose bias is then dropped).
    Weights are drawn from `rng`, or from a generator seeded with `seed`.
    """
    channels = [int(c) for c in channels]
    c, h, w = (int(s) for s in image_shape)
    rng = resolve_rng(rng, seed)
    layers: list[Module] = [Reshape((c, h, w))]
    for out in channels:
        if h % 2 or w % 2:
            raise ValueError(
                f"cnn: {len(channels)} poolings need an image size divisible by "
                f"{2 ** len(channels)}, got {tuple(image_shape)}"
            )
        layers.append(Conv2D(c, out, 3, padding=1, bias=not batchnorm, rng=rng))
        if batchnorm:
            layers.append(BatchNorm2d(out))
        act = activation_layer(activation)
        layers += [MaxPool2D(2), act] if act.monotone else [act, MaxPool2D(2)]
        c, h, w = out, h // 2, w // 2
    layers += [Flatten(), Dense(c * h * w, hidden, rng=rng), activation_layer(activation)]
    if dropout:
        layers.append(Dropout(dropout, rng=rng))
    layers.append(Dense(hidden, num_classes, rng=rng))
    return Sequential(layers)


MODELS = {"mlp": mlp, "cnn": cnn}
