"""Dense layers, shape layers and the Sequential container.

Convention (as in PyTorch): a batch is rows, `Dense(in, out)` holds weight W of shape
(out, in) and bias b of shape (out,), and computes Y = X Wᵀ + b.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable

import numpy as np

from .init import initialize
from .module import (
    DEFAULT_DTYPE,
    Module,
    Parameter,
    describe,
    module_from_config,
    no_cache_error,
    resolve_rng,
    shape_str,
)
from .tensor import Tensor


class Dense(Module):
    """Fully connected layer: Y = X Wᵀ + b.

    Shapes: X (N, in) → Y (N, out); W (out, in); b (out,).
    Backward, with G = dL/dY (N, out):
        dL/dW = Gᵀ X   (out, in)     — each weight sees its input times the output's gradient
        dL/db = Σ_rows G   (out,)
        dL/dX = G W    (N, in)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "he_uniform",
        rng: np.random.Generator | None = None,
        seed: int | None = None,
        dtype=DEFAULT_DTYPE,
    ) -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Dense: in_features and out_features must be ≥ 1, got {in_features}, "
                f"{out_features}"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.init, self.dtype = init, np.dtype(dtype)
        rng = resolve_rng(rng, seed)
        self.weight = Parameter(initialize(init, (out_features, in_features), rng, self.dtype))
        self.bias = Parameter(np.zeros(out_features, self.dtype)) if bias else None

    @property
    def _name(self) -> str:
        return f"Dense({self.in_features}, {self.out_features})"

    @property
    def _x(self) -> np.ndarray | None:
        """The input kept by the last explicit forward (its cache), None in eval mode."""
        return self._cache

    @_x.setter
    def _x(self, x: np.ndarray | None) -> None:
        self._cache = x

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Dense({self.in_features}, {self.out_features}): expected input of shape "
                f"(N, {self.in_features}), got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        y = x @ self.weight.data.T
        bias = self.bias
        if bias is not None:
            y += bias.data
        # keeps_cache(self), inlined on this every-step path; eval mode keeps nothing
        return y, (x if self.training or self.grad_in_eval else None)

    def backward_from_cache(
        self, x: np.ndarray | None, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        if x is None:
            raise no_cache_error(self._name)
        if grad_out.shape != (x.shape[0], self.out_features):
            raise ValueError(
                f"Dense({self.in_features}, {self.out_features}).backward: expected grad of "
                f"shape ({x.shape[0]}, {self.out_features}), got {tuple(grad_out.shape)}"
            )
        if grad_out.dtype != self.dtype:
            grad_out = grad_out.astype(self.dtype)  # compute in the layer's dtype
        weight, bias = self.weight, self.bias
        weight.add_matmul(grad_out.T, x)
        if bias is not None:
            bias.add_sum(grad_out, axis=0)
        return grad_out @ weight.data if input_grad else None

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }


def _reshape_back(grad_out: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The gradient of a reshape: grad_out in the input's shape and (floating) dtype."""
    if dtype.kind == "f":
        grad_out = grad_out.astype(dtype, copy=False)
    return grad_out.reshape(shape)


class Flatten(Module):
    """(N, d1, d2, ...) → (N, d1·d2·...); backward reshapes the gradient back.

    It keeps only the input's shape and dtype, so backward works in eval mode too."""

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        return x.reshape(x.shape[0], math.prod(x.shape[1:])), (x.shape, x.dtype)  # 0 rows too

    def backward_from_cache(self, cache, grad_out: np.ndarray, input_grad: bool = True):
        return _reshape_back(grad_out, *cache)


class Reshape(Module):
    """(N, ...) → (N, *shape), e.g. Reshape((1, 28, 28)) turns flat digits into images."""

    def __init__(self, shape: Iterable[int]) -> None:
        self.shape = tuple(int(s) for s in shape)

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        if math.prod(x.shape[1:]) != math.prod(self.shape):
            raise ValueError(
                f"Reshape{self.shape}: cannot reshape input {shape_str(x.shape, batch='N')} "
                f"to {shape_str((x.shape[0], *self.shape), batch='N')}"
            )
        return x.reshape(x.shape[0], *self.shape), (x.shape, x.dtype)

    def backward_from_cache(self, cache, grad_out: np.ndarray, input_grad: bool = True):
        return _reshape_back(grad_out, *cache)

    def config(self) -> dict:
        return {"shape": list(self.shape)}


class Sequential(Module):
    """Layers applied in order: `model(x)` runs forward through each, `model.backward(g)`
    runs backward through them in reverse (the chain rule, one layer at a time).

    Each layer object may appear only once (nested containers included): a layer keeps one
    forward cache for its backward, so a second use would overwrite the first's. To share
    weights, use two layers and tie them: `d2.weight = d1.weight`. (On a Tensor, `model(t)`
    makes each layer its own graph node, and any layer may be called any number of times.)
    """

    def __init__(self, *layers: Module | Iterable[Module]) -> None:
        if len(layers) == 1 and not isinstance(layers[0], Module):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a layer")
        self.layers = list(layers)
        _refuse_reused_layers(self)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def append(self, layer: Module) -> Sequential:
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append: got {type(layer).__name__}, not a layer")
        self.layers.append(layer)
        try:
            _refuse_reused_layers(self)
        except ValueError:
            self.layers.pop()
            raise
        return self

    composes_in_graph = True

    def forward(self, x):
        """Each layer in turn; on a Tensor, each layer becomes its own graph node."""
        if isinstance(x, Tensor):
            for layer in self.layers:
                x = layer(x)
            return x
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate dL/d(output); returns dL/d(input), or None when `input_grad=False`.

        Without the input gradient, layers below the first one holding parameters have nothing
        to contribute, so backward stops there and that layer skips its own dL/dX product.
        """
        stop = 0 if input_grad else self._first_trainable()
        for i in range(len(self.layers) - 1, stop - 1, -1):
            grad_out = self.layers[i].backward(grad_out, input_grad=input_grad or i > stop)
        return grad_out if input_grad else None

    def _first_trainable(self) -> int:
        for i, layer in enumerate(self.layers):
            if _holds_parameters(layer):
                return i
        return len(self.layers)

    def config(self) -> dict:
        return {"layers": [describe(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, spec: dict) -> Sequential:
        return cls([module_from_config(layer) for layer in spec["layers"]])

    def __repr__(self) -> str:
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...] | None = None, file=None) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts.

        `input_shape` excludes the batch axis, e.g. (784,) or (1, 28, 28); when given, a
        zero batch of one is run through the model to find each layer's output shape.
        """
        rows = [("#", "layer", "output shape", "params")]
        x = None
        if input_shape is not None:
            x = np.zeros((1, *input_shape), dtype=DEFAULT_DTYPE)
            was_training = self.training
            self.eval()
        for i, layer in enumerate(self.layers):
            shape = ""
            if x is not None:
                x = layer.forward(x)
                shape = shape_str(x.shape, batch="N")
            rows.append((str(i), repr(layer), shape, f"{layer.num_parameters():,}"))
        if input_shape is not None:
            self.train(was_training)
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {self.num_parameters():,}")
        text = "\n".join(lines)
        print(text, file=file or sys.stdout)
        return text


def _holds_parameters(module: Module) -> bool:
    """Whether `module` or a module inside it holds a Parameter (stops at the first found)."""
    for value in vars(module).values():
        if isinstance(value, Parameter):
            return True
    return any(_holds_parameters(child) for _, child in module.named_children())


def _refuse_reused_layers(container: Module) -> None:
    """ValueError when one layer object sits twice in the tree under `container`."""
    seen: dict[int, str] = {}

    def walk(module: Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if child is container:
                raise ValueError(f"Sequential: layer {path} is the Sequential itself (a loop)")
            if id(child) in seen:
                raise ValueError(
                    f"layer {seen[id(child)]} ({type(child).__name__}) appears twice in "
                    f"Sequential; use a separate layer and tie weights: d2.weight = d1.weight"
                )
            seen[id(child)] = path
            walk(child, path + ".")

    walk(container, "")


def parameters_to_vector(model: Module) -> np.ndarray:
    """θ: every parameter flattened and concatenated, in `model.parameters()` order (seed 003)."""
    params = model.parameters()
    if not params:
        return np.zeros(0, DEFAULT_DTYPE)
    return np.concatenate([p.data.ravel() for p in params])


def grads_to_vector(model: Module) -> np.ndarray:
    """∇θ: every parameter's gradient flattened in the same order as `parameters_to_vector`."""
    return np.concatenate([p.grad.ravel() for p in model.parameters()])


def vector_to_parameters(theta: np.ndarray, model: Module) -> None:
    """Write the flat vector θ back into the model's parameters (in place)."""
    theta = np.asarray(theta)
    params = model.parameters()
    total = sum(p.data.size for p in params)
    if theta.ndim != 1 or theta.size != total:
        raise ValueError(
            f"vector_to_parameters: expected a 1-D vector of {total} values, got {theta.shape}"
        )
    offset = 0
    for p in params:
        p.data[...] = theta[offset : offset + p.data.size].reshape(p.data.shape)
        offset += p.data.size
