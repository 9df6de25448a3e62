"""Neurons, layers and multi-layer perceptrons built from scalar `Value`s.

A neuron computes ``act(w . x + b) = act(sum_i w_i x_i + b)``; a layer is a list of neurons
that all see the same input; an MLP is a list of layers, each feeding the next.

Weight layout matches the matrix path: layer ``k`` of an MLP corresponds to a
``Dense(nin, nout)`` whose weight ``W`` has shape ``(nout, nin)`` (row ``j`` holds neuron
``j``'s weights) and whose bias ``b`` has shape ``(nout,)``, so that ``y = x @ W.T + b``.
`MLP.weights()` returns those arrays, `MLP.load_weights()` writes them in, and
`MLP.from_dense_weights()` builds a network from them.

Initialisation (as PyTorch's ``nn.Linear``): weights and bias ~ U(-1/sqrt(nin), 1/sqrt(nin)),
drawn from ``rng`` (a ``numpy.random.Generator``) or from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .value import Value

__all__ = ["ACTIVATIONS", "Module", "Neuron", "Layer", "MLP"]

#: name -> function applied to a neuron's pre-activation (None: the identity).
ACTIVATIONS: dict[str, Callable[[Value], Value] | None] = {
    "relu": Value.relu,
    "tanh": Value.tanh,
    "sigmoid": Value.sigmoid,
    "linear": None,
}


def _activation(name: str) -> Callable[[Value], Value] | None:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        ) from None


def _generator(rng: np.random.Generator | int | None, seed: int | None) -> np.random.Generator:
    """The random generator to draw from: ``rng`` if given, else one seeded with ``seed``."""
    if rng is not None and seed is not None:
        raise ValueError("pass either rng or seed, not both")
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(seed if rng is None else rng)


def _as_values(x: Sequence[Value | float]) -> list[Value]:
    """Wrap plain numbers as Values once, so each is one leaf however many neurons read it."""
    return [xi if isinstance(xi, Value) else Value(xi) for xi in x]


class Module:
    """Base class: something with parameters (Values) whose gradients can be reset."""

    def parameters(self) -> list[Value]:
        """The trainable Values, in a fixed order."""
        return []

    def zero_grad(self) -> None:
        """Set ``grad = 0`` on every parameter."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """One neuron: ``act(sum_i w_i x_i + b)``.

    Args:
        nin: number of inputs.
        nonlin: ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``"linear"`` (no activation).
        rng: a ``numpy.random.Generator`` (or an int seed) for the initial weights.
        seed: a seed, when no ``rng`` is given.
    """

    def __init__(
        self,
        nin: int,
        nonlin: str = "relu",
        *,
        rng: np.random.Generator | int | None = None,
        seed: int | None = None,
    ) -> None:
        self._act = _activation(nonlin)
        self.nonlin = nonlin
        gen = _generator(rng, seed)
        bound = 1.0 / math.sqrt(nin)
        self.w = [Value(float(v)) for v in gen.uniform(-bound, bound, size=nin)]
        self.b = Value(float(gen.uniform(-bound, bound)))

    def __call__(self, x: Sequence[Value | float]) -> Value:
        """``act(b + sum_i w_i x_i)``: one ``dot`` node for the weighted sum, then ``act``."""
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}")
        pre = Value.dot(self.w, x, self.b)
        return pre if self._act is None else self._act(pre)

    def parameters(self) -> list[Value]:
        """``[w_0, ..., w_{n-1}, b]``."""
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, nonlin={self.nonlin!r})"


class Layer(Module):
    """``nout`` neurons reading the same ``nin`` inputs; returns a list of ``nout`` Values."""

    def __init__(
        self,
        nin: int,
        nout: int,
        nonlin: str = "relu",
        *,
        rng: np.random.Generator | int | None = None,
        seed: int | None = None,
    ) -> None:
        gen = _generator(rng, seed)
        self.neurons = [Neuron(nin, nonlin, rng=gen) for _ in range(nout)]
        self.nin, self.nout, self.nonlin = nin, nout, nonlin

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        x = _as_values(x)
        return [neuron(x) for neuron in self.neurons]

    def parameters(self) -> list[Value]:
        """Neuron by neuron: ``[w_00, ..., w_0n, b_0, w_10, ...]``."""
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` as float64 arrays of shapes ``(nout, nin)`` and ``(nout,)``."""
        w = np.array([[wi.data for wi in n.w] for n in self.neurons], dtype=np.float64)
        b = np.array([n.b.data for n in self.neurons], dtype=np.float64)
        return w.reshape(self.nout, self.nin), b

    def grads(self) -> tuple[np.ndarray, np.ndarray]:
        """``(dL/dW, dL/db)`` laid out like `weights`."""
        dw = np.array([[wi.grad for wi in n.w] for n in self.neurons], dtype=np.float64)
        db = np.array([n.b.grad for n in self.neurons], dtype=np.float64)
        return dw.reshape(self.nout, self.nin), db

    def load_weights(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Write ``W`` (nout, nin) and ``b`` (nout,) into the existing Values, in place."""
        weight, bias = np.asarray(weight), np.asarray(bias)
        if weight.shape != (self.nout, self.nin) or bias.shape != (self.nout,):
            raise ValueError(
                f"expected weight {(self.nout, self.nin)} and bias {(self.nout,)}, "
                f"got {weight.shape} and {bias.shape}"
            )
        for neuron, row, bj in zip(self.neurons, weight, bias):
            for wi, v in zip(neuron.w, row):
                wi.data = float(v)
            neuron.b.data = float(bj)

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, nonlin={self.nonlin!r})"


class MLP(Module):
    """A multi-layer perceptron ``nin -> nouts[0] -> ... -> nouts[-1]``.

    Args:
        nin: number of inputs.
        nouts: the width of each layer.
        nonlin: activation of the hidden layers, or a list with one name per layer.
        out_nonlin: activation of the last layer when ``nonlin`` is a single name.
        rng, seed: as for `Neuron`; all layers draw from the same generator in order.

    Calling it returns a single Value when the last layer has one output, else a list.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        nonlin: str | Sequence[str] = "relu",
        *,
        out_nonlin: str = "linear",
        rng: np.random.Generator | int | None = None,
        seed: int | None = None,
    ) -> None:
        nouts = list(nouts)
        if isinstance(nonlin, str):
            acts = [nonlin] * (len(nouts) - 1) + [out_nonlin]
        else:
            acts = list(nonlin)
            if len(acts) != len(nouts):
                raise ValueError(f"need {len(nouts)} activations (one per layer), got {len(acts)}")
        gen = _generator(rng, seed)
        sizes = [nin, *nouts]
        self.layers = [Layer(sizes[i], sizes[i + 1], acts[i], rng=gen) for i in range(len(nouts))]

    @classmethod
    def from_dense_weights(
        cls,
        weights: Sequence[tuple[np.ndarray, np.ndarray]],
        activations: Sequence[str],
    ) -> MLP:
        """Build an MLP from ``[(W, b), ...]`` in the Dense layout (W is (out, in)).

        ``activations`` names each layer's activation, e.g. ``["tanh", "linear"]``.
        """
        shapes = [np.shape(w) for w, _ in weights]
        nin = shapes[0][1]
        mlp = cls(nin, [s[0] for s in shapes], list(activations), seed=0)
        mlp.load_weights(weights)
        return mlp

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        out: list[Value] = _as_values(x)
        for layer in self.layers:
            out = layer(out)
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W, b), ...]`` per layer, in the Dense layout (float64 copies)."""
        return [layer.weights() for layer in self.layers]

    def grads(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(dL/dW, dL/db), ...]`` per layer, in the Dense layout."""
        return [layer.grads() for layer in self.layers]

    def load_weights(self, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Write ``[(W, b), ...]`` (Dense layout) into the parameters, in place."""
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (W, b) pairs, got {len(weights)}")
        for layer, (w, b) in zip(self.layers, weights):
            layer.load_weights(w, b)

    def __repr__(self) -> str:
        return f"MLP([{', '.join(repr(layer) for layer in self.layers)}])"
