"""Parameters and the Module base class: the bookkeeping every layer shares.

A `Module` computes `forward(x)` and, later, `backward(grad_out)`: given dL/d(output) it
returns dL/d(input) and *adds* dL/d(parameter) into each parameter's `.grad`.
Parameters are found by walking the module's attributes, so a layer only has to store them.

A layer writes its maths once, as a stateless pair: `forward_with_cache(x)` → (y, cache) and
`backward_from_cache(cache, grad_out, input_grad)`. Two drivers call it: the explicit one
(`forward` keeps the cache on the layer, `backward` uses it) and the graph one (`layer(t)` on
a Tensor records one node that keeps that call's cache), so both give the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .tensor import Function, Tensor

DEFAULT_DTYPE = np.float32

# Every Module subclass registers itself here under a qualified type name, so saved models
# can be rebuilt from their JSON description without pickle: chainrule's own layers as
# "chainrule.Dense", anyone else's as "their_module.TheirClass" (or `type_name=`).
MODULE_REGISTRY: dict[str, type[Module]] = {}
BUILTIN_PREFIX = "chainrule."


class Parameter(Tensor):
    """A trainable array and the gradient of the loss with respect to it (same shape): a leaf
    Tensor with `requires_grad=True`, so it can also enter a graph directly (`x @ W.T`).

    `zero_grad()` only marks the gradient as zero; the array is cleared when next read, or
    simply overwritten by the first `add_matmul`/`add_sum` of the next backward pass. That
    saves a clear and an add over every weight on every training step (like PyTorch's
    `set_to_none`), while `p.grad` still always reads as the true accumulated gradient.
    Every backward, explicit or through a graph, adds into that one array in place, so a
    view of it (the MPI flat gradient buffer) sees every gradient.
    """

    __slots__ = ("_grad", "_grad_is_zero", "name")

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = data
        self._grad = np.zeros_like(data)
        self._grad_is_zero = False
        self.name = name
        self.requires_grad = True
        self._ctx = None

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

    def _accumulate(self, grad: np.ndarray) -> None:
        """grad += g from a graph's backward, in place (written straight in when zero)."""
        if self._grad_is_zero:
            np.copyto(self._grad, grad)
            self._grad_is_zero = False
        else:
            self._grad += grad

    def add_matmul(self, a: np.ndarray, b: np.ndarray) -> None:
        """grad += a @ b (written straight into grad when it is zero)."""
        if self._grad_is_zero:
            np.matmul(a, b, out=self._grad)
            self._grad_is_zero = False
        else:
            self._grad += a @ b

    def add_sum(self, g: np.ndarray, axis: int | tuple[int, ...] = 0) -> None:
        """grad += g summed over `axis` (written straight into grad when it is zero).

        np.add.reduce is `g.sum` without its Python wrapper: the same sum, ~0.5 µs sooner."""
        if self._grad_is_zero:
            np.add.reduce(g, axis=axis, out=self._grad)
            self._grad_is_zero = False
        else:
            self._grad += np.add.reduce(g, axis=axis)

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


def resolve_rng(rng: np.random.Generator | None = None, seed: int | None = None):
    """The generator to draw from: `rng` if given, else a new one from `seed`."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng= or seed=, not both")
    return rng if rng is not None else np.random.default_rng(seed)


def shape_str(shape: tuple, batch: str | None = None) -> str:
    """A shape as error-message text: (64, 1, 28, 28), or (N, 784) with batch="N"."""
    dims = [str(s) for s in shape]
    if batch is not None and dims:
        dims[0] = batch
    return "(" + ", ".join(dims) + ")"


def keeps_cache(module: Module) -> bool:
    """Whether `module`'s forward keeps what its backward needs: always in training mode; in
    eval mode (inference) only when `module.grad_in_eval` is set, e.g. to differentiate
    BatchNorm's fixed affine map in a gradient check or the web lab's teaching step."""
    return module.training or module.grad_in_eval


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
    grad_in_eval: bool = False  # keep what backward needs in eval mode too (set_grad_in_eval)

    def __init_subclass__(cls, type_name: str | None = None, loadable: bool = True, **kwargs):
        """Register the class for `module_from_config` under its qualified type name.

        `type_name` overrides the name; `loadable=False` keeps a base class out of model files.
        A name already taken by another class raises TypeError here, at definition time.
        """
        super().__init_subclass__(**kwargs)
        cls._loadable = bool(loadable)
        name = type_name or _default_type_name(cls)
        cls._type_name = name
        existing = MODULE_REGISTRY.get(name)
        if existing is not None and _origin(existing) != _origin(cls):  # a reload may re-register
            raise TypeError(
                f"layer type name {name!r} is already taken by {_origin(existing)}; give "
                f"{cls.__qualname__} another name: class {cls.__name__}(..., type_name='...')"
            )
        MODULE_REGISTRY[name] = cls

    def __call__(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """`forward(x)` on an array; on a Tensor, the layer as one node of a graph (or, for a
        module built from Tensor operations and other layers, the nodes its forward makes)."""
        if isinstance(x, Tensor):
            return self._graph_call(x)
        return self.forward(x)

    # ---- one formula per layer: a stateless kernel pair, and two drivers of it -------------
    # A layer defines forward_with_cache / backward_from_cache. The explicit driver keeps the
    # cache of the last call on self (forward, then backward); the graph driver keeps each
    # call's cache in its own graph node, so one layer may appear many times in one graph.
    _cache = None

    def forward_with_cache(self, x: np.ndarray) -> tuple[np.ndarray, object]:
        """(y, cache): the output, and what backward_from_cache needs (None when nothing is
        kept, as in eval mode). Updates running statistics / draws randomness as forward."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward_with_cache")

    def backward_from_cache(
        self, cache, grad_out: np.ndarray, input_grad: bool = True
    ) -> np.ndarray | None:
        """dL/d(input) from dL/d(output) and one call's cache; adds into each `p.grad`."""
        raise NotImplementedError(f"{type(self).__name__} defines no backward_from_cache")

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._cache = self.forward_with_cache(x)
        return y

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dL/d(input) from dL/d(output); adds parameter gradients into `p.grad`.

        With `input_grad=False` a layer may skip computing dL/d(input) and return None.
        """
        return self.backward_from_cache(self._cache, grad_out, input_grad)

    # whether `forward` on a Tensor builds the graph itself from its children (Sequential)
    composes_in_graph = False

    def _graph_call(self, x: Tensor) -> Tensor:
        cls = type(self)
        if cls.forward_with_cache is not Module.forward_with_cache:
            params = [v for v in vars(self).values() if isinstance(v, Parameter)]
            return LayerCall.apply(x, self, *params)
        if not self.composes_in_graph and cls.backward is not Module.backward:
            # a layer written the old way (forward/backward with state on self): one node,
            # correct as long as it appears once per graph
            return LegacyLayerCall.apply(x, self, *self.parameters())
        return self.forward(x)  # built from Tensor operations and other layers

    # ---- the tree of modules -------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in a fixed order.

        A parameter shared by two layers (weight tying: `d2.weight = d1.weight`) is listed
        once, under the first name met, as in PyTorch, so an optimizer steps it once; with
        `remove_duplicate=False` every name is listed (what `state_dict` saves).
        """
        seen: set[int] = set()
        for name, p in self._all_named_parameters(prefix):
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield name, p

    def _all_named_parameters(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._all_named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """Every trainable parameter once (shared ones are not repeated), in a fixed order."""
        return [p for _, p in self.named_parameters()]

    def tied_parameters(self) -> dict[str, str]:
        """{later name: first name} for every parameter shared under two names (weight tying)."""
        first: dict[int, str] = {}
        tied = {}
        for name, p in self.named_parameters(remove_duplicate=False):
            if id(p) in first:
                tied[name] = first[id(p)]
            else:
                first[id(p)] = name
        return tied

    def tie(self, name: str, to: str) -> None:
        """Make parameter `name` the very object at `to`: `model.tie("2.weight", "0.weight")`."""
        params = dict(self.named_parameters(remove_duplicate=False))
        for key in (name, to):
            if key not in params:
                raise KeyError(f"tie: no parameter {key!r}; known: {sorted(params)}")
        if params[name].shape != params[to].shape:
            raise ValueError(
                f"tie: {name!r} has shape {params[name].shape}, {to!r} has {params[to].shape}"
            )
        owner_path, _, attr = name.rpartition(".")
        owner: Module = self
        for part in owner_path.split(".") if owner_path else ():
            owner = dict(owner.named_children())[part]
        setattr(owner, attr, params[to])

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
        """Copies of every parameter and buffer under dotted names (`0.weight`, ...).

        Like PyTorch's, a parameter shared by two layers appears under both names.
        """
        state = {name: p.data.copy() for name, p in self.named_parameters(remove_duplicate=False)}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers; names and shapes must match."""
        params = self.named_parameters(remove_duplicate=False)
        targets: dict[str, np.ndarray] = {n: p.data for n, p in params}
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


class LayerCall(Function):
    """A layer call as one graph node: forward_with_cache now, backward_from_cache with the
    same call's cache later. Inputs: x, the layer, its parameters (so the output requires
    grad when they do); the parameters' gradients are added by the layer's own backward."""

    @staticmethod
    def forward(ctx, x, module, *params):
        y, ctx.cache = module.forward_with_cache(x)
        ctx.module = module
        return y

    @staticmethod
    def backward(ctx, grad):
        dx = ctx.module.backward_from_cache(ctx.cache, grad, ctx.needs_input_grad[0])
        return (dx,) + (None,) * (len(ctx.inputs) - 1)  # nothing for the layer, its parameters


class LegacyLayerCall(Function):
    """A layer with only forward/backward (its cache on self) as one graph node."""

    @staticmethod
    def forward(ctx, x, module, *params):
        ctx.module = module
        return module.forward(x)

    @staticmethod
    def backward(ctx, grad):
        dx = ctx.module.backward(grad, input_grad=ctx.needs_input_grad[0])
        return (dx,) + (None,) * (len(ctx.inputs) - 1)


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _default_type_name(cls: type) -> str:
    if cls.__module__ == "chainrule" or cls.__module__.startswith(BUILTIN_PREFIX):
        return BUILTIN_PREFIX + cls.__qualname__
    return _origin(cls)


def _is_loadable(cls: type[Module]) -> bool:
    """Classes not marked `loadable=False`; of chainrule's own, only the public layers, never
    a private one (_Pool2D) nor a base marked `loadable=False` (Activation)."""
    if not cls.__dict__.get("_loadable", True):
        return False
    return not (cls._type_name.startswith(BUILTIN_PREFIX) and cls.__name__.startswith("_"))


def layer_type(type_name) -> type[Module]:
    """The registered, loadable layer class for a type name from a model file.

    Old files name chainrule's layers bare ("Dense"); those map to the built-ins only, so a
    class of yours that happens to be called Dense never replaces the real one.
    """
    if not isinstance(type_name, str):
        raise ValueError(f"layer type must be a string, got {type_name!r}")
    cls = MODULE_REGISTRY.get(type_name)
    if cls is None and "." not in type_name:
        cls = MODULE_REGISTRY.get(BUILTIN_PREFIX + type_name)
    if cls is None or not _is_loadable(cls):
        known = sorted(n for n, c in MODULE_REGISTRY.items() if _is_loadable(c))
        raise ValueError(f"unknown layer type {type_name!r}; known: {known}")
    return cls


def module_from_config(spec: dict) -> Module:
    """Rebuild a module from `{"type": name, **config}` (the inverse of `describe`)."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer description must be a JSON object, got {spec!r}")
    spec = dict(spec)
    cls = layer_type(spec.pop("type", None))
    if hasattr(cls, "from_config"):
        return cls.from_config(spec)
    return cls(**spec)


def describe(module: Module) -> dict:
    """`{"type": name, **config}`: a JSON-able description that `module_from_config` rebuilds.

    The type is the registered qualified name: "chainrule.Dense", "your_module.YourLayer".
    """
    return {"type": type(module)._type_name, **module.config()}
