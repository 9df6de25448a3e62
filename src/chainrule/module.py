"""Parameters and the Module base class: the bookkeeping every layer shares.

A `Module` computes `forward(x)` and, later, `backward(grad_out)`: given dL/d(output) it
returns dL/d(input) and *adds* dL/d(parameter) into each parameter's `.grad`.
Parameters are found by walking the module's attributes, so a layer only has to store them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_DTYPE = np.float32

# Every Module subclass registers itself here by class name so saved models can be rebuilt
# from their JSON description without pickle.
MODULE_REGISTRY: dict[str, type[Module]] = {}


class Parameter:
    """A trainable array and the gradient of the loss with respect to it (same shape).

    `zero_grad()` only marks the gradient as zero; the array is cleared when next read, or
    simply overwritten by the first `add_matmul`/`add_sum` of the next backward pass. That
    saves a clear and an add over every weight on every training step (like PyTorch's
    `set_to_none`), while `p.grad` still always reads as the true accumulated gradient.
    """

    __slots__ = ("data", "_grad", "_grad_is_zero", "name")

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = data
        self._grad = np.zeros_like(data)
        self._grad_is_zero = False
        self.name = name

    @property
    def grad(self) -> np.ndarray:
        if self._grad_is_zero:
            self._grad.fill(0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self._grad = value
        self._grad_is_zero = False

    def zero_grad(self) -> None:
        self._grad_is_zero = True

    def add_matmul(self, a: np.ndarray, b: np.ndarray) -> None:
        """grad += a @ b (written straight into grad when it is zero)."""
        if self._grad_is_zero:
            np.matmul(a, b, out=self._grad)
            self._grad_is_zero = False
        else:
            self._grad += a @ b

    def add_sum(self, g: np.ndarray, axis: int | tuple[int, ...] = 0) -> None:
        """grad += g summed over `axis` (written straight into grad when it is zero)."""
        if self._grad_is_zero:
            np.sum(g, axis=axis, out=self._grad)
            self._grad_is_zero = False
        else:
            self._grad += g.sum(axis=axis)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


def resolve_rng(rng: np.random.Generator | None = None, seed: int | None = None):
    """The generator to draw from: `rng` if given, else a new one from `seed`."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng= or seed=, not both")
    return rng if rng is not None else np.random.default_rng(seed)


def keeps_cache(module: Module) -> bool:
    """Whether `module`'s forward keeps what its backward needs: always in training mode; in
    eval mode (inference) only when `module.grad_in_eval` is set, e.g. to differentiate
    BatchNorm's fixed affine map in a gradient check or the web lab's teaching step."""
    return module.training or getattr(module, "grad_in_eval", False)


def set_grad_in_eval(module: Module, enabled: bool = True) -> Module:
    """Let `module` and every module inside it keep what backward needs in eval mode too, so
    the eval-mode function (BatchNorm's running statistics, Dropout off) can be
    differentiated, as gradient checks and the web lab's teaching step do."""
    stack = [module]
    while stack:
        current = stack.pop()
        current.grad_in_eval = enabled
        stack.extend(child for _, child in current.named_children())
    return module


def no_cache_error(name: str) -> RuntimeError:
    """The one-line error of a backward with nothing kept from the forward."""
    return RuntimeError(
        f"{name}.backward() needs a forward pass in train mode (eval mode keeps nothing for "
        "backward); call model.train() before the forward"
    )


class Module:
    """Base class of layers and models: parameters, buffers, modes and state dicts."""

    training: bool = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        MODULE_REGISTRY[cls.__name__] = cls

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dL/d(input) from dL/d(output); adds parameter gradients into `p.grad`.

        With `input_grad=False` a layer may skip computing dL/d(input) and return None.
        """
        raise NotImplementedError

    # ---- the tree of modules -------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Non-trainable state saved with the model (e.g. BatchNorm running statistics)."""
        for name in getattr(self, "_buffer_names", ()):
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ---- saving and loading --------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer under dotted names (`0.weight`, ...)."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers; names and shapes must match."""
        targets: dict[str, np.ndarray] = {n: p.data for n, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if strict and (missing or unexpected):
            raise ValueError(
                f"state dict does not match the model: missing {missing}, unexpected {unexpected}"
            )
        for name, array in state.items():
            if name not in targets:
                continue
            array = np.asarray(array)
            if array.shape != targets[name].shape:
                raise ValueError(
                    f"state dict entry {name!r} has shape {array.shape}, "
                    f"the model expects {targets[name].shape}"
                )
            targets[name][...] = array

    def astype(self, dtype) -> Module:
        """Convert every parameter and buffer to `dtype` in place (e.g. float64 for checks)."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        self._set_dtype(dtype)
        return self

    def _set_dtype(self, dtype: np.dtype) -> None:
        if hasattr(self, "dtype"):
            self.dtype = dtype
        for name in getattr(self, "_buffer_names", ()):
            setattr(self, name, getattr(self, name).astype(dtype))
        for _, child in self.named_children():
            child._set_dtype(dtype)

    def config(self) -> dict:
        """The constructor arguments that rebuild this module (JSON-able)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def module_from_config(spec: dict) -> Module:
    """Rebuild a module from `{"type": name, **config}` (the inverse of `describe`)."""
    spec = dict(spec)
    type_name = spec.pop("type", None)
    cls = MODULE_REGISTRY.get(type_name)
    if cls is None:
        raise ValueError(f"unknown layer type {type_name!r}; known: {sorted(MODULE_REGISTRY)}")
    if hasattr(cls, "from_config"):
        return cls.from_config(spec)
    return cls(**spec)


def describe(module: Module) -> dict:
    """`{"type": name, **config}`: a JSON-able description that `module_from_config` rebuilds."""
    return {"type": type(module).__name__, **module.config()}
