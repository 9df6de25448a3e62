"""What a model file may ask for, checked before anything is built: every format passes here.

A model file may come from anywhere, so nothing in it is believed until checked. Each format's
reader (`chainrule.formats.npz`, `.safetensors`, `.onnx`) reads only the file's header and
returns a `ModelFile`: the architecture JSON, the name,
shape and dtype of every stored array (nothing read yet), a function that reads one array,
and the free-form metadata. `check_model_file` then checks, in this order,
- bounds: nesting of the JSON, depth and number of layers, the windows of convolutions and
  pools (kernel, stride, padding), the total number of parameters;
- sizes: every size in the architecture (Dense, Conv2D, BatchNorm widths) must match the
  shape of an array stored in the file, so a tiny file cannot ask for a huge layer;
- dtypes: stored arrays are numbers, the model's dtype string is a float type;
- the list of tied parameters and the optimizer's description are well-formed;
- the metadata: fields chainrule itself reads (`class_names`, `data`, `history`, `metrics`,
  `training`, ...) of the wrong JSON type are dropped, one by one, so a file cannot break a
  program that trusts them (they are listed in `CheckedModelFile.ignored`).
Only then does `chainrule.serialize` build the model and read the arrays into it. Anything
else raises `ModelFileError`: one line naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .layers import Sequential
from .module import layer_type

FORMAT = "chainrule/1"
META_KEY = "__meta__"
MODEL_FILENAME = "model.npz"
OPTIM_PREFIX = "optim."
_FIX = "re-create it with `chainrule train` or pass the model.npz a training run wrote"

# ---- bounds on what a file may ask for ----------------------------------------------------------
MAX_JSON_DEPTH = 64  # nesting of any JSON document in a model file
MAX_MODEL_DEPTH = 16  # Sequentials inside Sequentials
MAX_LAYERS = 10_000
MAX_PARAMETERS = 2**28  # numbers in all stored arrays together (1 GiB of float32)
MAX_WINDOW = 256  # a pool's kernel, any stride
MAX_DILATION = 64
FLOAT_DTYPES = ("float16", "float32", "float64")


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a chainrule model; the message names the
    file, the problem and the fix in one line."""


def _error(path: Path, problem: str, fix: str = _FIX) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}; {fix}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def jsonable(value):
    """`json.dumps(default=...)`: NumPy scalars and arrays become plain numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ---- what a reader returns --------------------------------------------------------------------
@dataclass(frozen=True)
class ArraySpec:
    """One stored array as the file's header describes it (no data read)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class ModelFile:
    """A model file's header, as a format reader found it; no array has been read.

    `arrays` maps every stored array's name (state-dict names, plus `optim.<i>.<slot>`) to its
    shape and dtype; `read(name)` reads one of them (only `chainrule.serialize` calls it, after
    `check_model_file`). `architecture` is `describe(model)`'s JSON; `dtype` the model's dtype
    string; `tied` {name: first name} of shared parameters; `optimizer` the optimizer's JSON
    (`.npz` only); `metadata` free-form JSON."""

    path: Path
    architecture: object
    arrays: dict[str, ArraySpec]
    read: Callable[[str], np.ndarray]
    dtype: object = None
    tied: object = None
    optimizer: object = None
    metadata: object = None
    version: str = ""
    unused_ok: frozenset[str] = frozenset()  # arrays the model may leave unused (graph constants)
    no_architecture_fix: str = _FIX  # what to tell the user when the file has no architecture


@dataclass
class CheckedModelFile:
    """A `ModelFile` that passed `check_model_file`: the model's dtype, its tied parameters
    and cleaned metadata, and `expected`: the shape of every array the architecture holds."""

    source: ModelFile
    dtype: np.dtype
    tied: dict[str, str]
    metadata: dict
    expected: dict[str, tuple[int, ...]]
    ignored: list[str] = field(default_factory=list)


# ---- parsing JSON and dtype strings from a file ---------------------------------------------
def _depth(value) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_json(path: Path, text, what: str):
    """The JSON value of `text` (a str or bytes), nested at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError, TypeError) as exc:  # also too long an integer
        raise _error(path, f"its {what} JSON is corrupt ({_short(exc)})") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise _error(path, f"its {what} JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def parse_dtype(path: Path, text, what: str = "model dtype") -> np.dtype:
    """A float dtype from its name ("float32"); anything else is a ModelFileError."""
    if text not in FLOAT_DTYPES:
        raise _error(path, f"its {what} {str(text)[:40]!r} is not one of {', '.join(FLOAT_DTYPES)}")
    return np.dtype(text)


# ---- the architecture: bounds, and sizes against the stored arrays ---------------------------
def _size(value, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer ≥ {minimum}, got {str(value)[:40]}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{what} must be at most {maximum}, got {value}")
    return value


def _pair(value, what: str, minimum: int = 1, maximum: int | None = None) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        return (_size(value[0], what, minimum, maximum), _size(value[1], what, minimum, maximum))
    return (_size(value, what, minimum, maximum),) * 2


def _dense_shapes(spec: dict) -> dict[str, tuple]:
    n_in = _size(spec.get("in_features"), "in_features")
    n_out = _size(spec.get("out_features"), "out_features")
    return {"weight": (n_out, n_in), **({"bias": (n_out,)} if spec.get("bias", True) else {})}


def _conv_shapes(spec: dict) -> dict[str, tuple]:
    """Conv2D's arrays; its padding may not exceed the kernel (beyond, the output only grows by
    rings of bias values: a tiny file could ask for any output size), strides are bounded."""
    c_in = _size(spec.get("in_channels"), "in_channels")
    c_out = _size(spec.get("out_channels"), "out_channels")
    groups = _size(spec.get("groups", 1), "groups")
    kh, kw = _pair(spec.get("kernel_size"), "kernel_size")
    ph, pw = _pair(spec.get("padding", 0), "padding", minimum=0)
    _pair(spec.get("stride", 1), "stride", maximum=MAX_WINDOW)
    _pair(spec.get("dilation", 1), "dilation", maximum=MAX_DILATION)
    if ph > kh or pw > kw:
        raise ValueError(f"padding {[ph, pw]} is larger than the kernel {[kh, kw]}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} does not divide the channels {c_in}, {c_out}")
    bias = {"bias": (c_out,)} if spec.get("bias", True) else {}
    return {"weight": (c_out, c_in // groups, kh, kw), **bias}


def _batchnorm_shapes(spec: dict) -> dict[str, tuple]:
    c = (_size(spec.get("num_features"), "num_features"),)
    affine = {"weight": c, "bias": c} if spec.get("affine", True) else {}
    return {**affine, "running_mean": c, "running_var": c}


def _pool_shapes(spec: dict) -> dict[str, tuple]:
    """Pools hold no arrays; their windows are bounded and padding is at most half the
    kernel (PyTorch's rule: a window is never all padding)."""
    kh, kw = _pair(spec.get("kernel_size"), "kernel_size", maximum=MAX_WINDOW)
    if spec.get("stride") is not None:
        _pair(spec.get("stride"), "stride", maximum=MAX_WINDOW)
    ph, pw = _pair(spec.get("padding", 0), "padding", minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {[ph, pw]} is more than half the kernel {[kh, kw]}")
    return {}


# The layers whose constructors allocate (or whose forward pass sizes) arrays from their config.
_SHAPES = {
    "chainrule.Dense": _dense_shapes,
    "chainrule.Conv2D": _conv_shapes,
    "chainrule.BatchNorm1d": _batchnorm_shapes,
    "chainrule.BatchNorm2d": _batchnorm_shapes,
    "chainrule.MaxPool2D": _pool_shapes,
    "chainrule.AvgPool2D": _pool_shapes,
}


def _layer_class(path: Path, spec, where: str):
    if not isinstance(spec, dict):
        raise _error(path, f"{where} is not described by a JSON object")
    try:
        return layer_type(spec.get("type"))
    except ValueError as exc:
        raise _error(path, f"cannot rebuild the architecture ({_short(exc)})",
                     "it may need a newer chainrule, or the module that defines the layer "
                     "imported first; or re-create it with `chainrule train`") from exc


def architecture_shapes(path: Path, spec) -> dict[str, tuple[int, ...]]:
    """{state-dict name: shape} of every array the layers with a size rule will hold, checking
    each layer's bounds on the way (iteratively: the depth of the walk is bounded)."""
    expected: dict[str, tuple[int, ...]] = {}
    stack, count = [(spec, "", 0)], 0
    while stack:
        layer, prefix, depth = stack.pop()
        where = f"layer {prefix[:-1]}" if prefix else "the model"
        count += 1
        if count > MAX_LAYERS:
            raise _error(path, f"its architecture has more than {MAX_LAYERS} layers")
        cls = _layer_class(path, layer, where)
        if issubclass(cls, Sequential):
            layers = layer.get("layers")
            if not isinstance(layers, list):
                raise _error(path, f"{where} (Sequential) has no list of layers")
            if depth >= MAX_MODEL_DEPTH:
                raise _error(path, f"its architecture nests more than {MAX_MODEL_DEPTH} levels")
            stack.extend((child, f"{prefix}{i}.", depth + 1) for i, child in enumerate(layers))
            continue
        shape_of = _SHAPES.get(cls._type_name)
        if shape_of is None:
            continue
        try:
            shapes = shape_of(layer)
        except ValueError as exc:
            raise _error(path, f"{where} ({cls.__name__}) is misconfigured ({exc})") from exc
        expected.update({prefix + name: shape for name, shape in shapes.items()})
    return expected


def _check_sizes(path: Path, expected: dict[str, tuple], arrays: dict[str, ArraySpec]) -> None:
    """Every size the architecture asks for must be an array the file holds."""
    for name, shape in expected.items():
        held = arrays.get(name)
        if held is None or held.shape != shape:
            found = "no such array" if held is None else f"{list(held.shape)}"
            layer = name.rpartition(".")[0]
            where = f"layer {layer}" if layer else "the model"
            raise _error(path, f"{where} needs {name!r} of shape {list(shape)}, "
                         f"the file holds {found}")


def _check_arrays(path: Path, arrays: dict[str, ArraySpec]) -> None:
    total = 0
    for name, spec in arrays.items():
        if spec.dtype.kind not in "fiub":
            raise _error(path, f"array {name!r} has unsupported dtype {spec.dtype}")
        if any(type(s) is not int or s < 0 for s in spec.shape):
            raise _error(path, f"array {name!r} has a bad shape {list(spec.shape)}")
        total += spec.size
    if total > MAX_PARAMETERS:
        raise _error(path, f"its arrays hold {total:,} numbers, more than chainrule loads "
                     f"({MAX_PARAMETERS:,})")


def _check_tied(path: Path, tied) -> dict[str, str]:
    tied = tied or {}
    if not isinstance(tied, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tied.items()
    ):
        raise _error(path, "its list of tied parameters is not a JSON object of names")
    return tied


# ---- metadata: what chainrule reads from it must have the right JSON type --------------------
def _list_of(kind):
    return lambda v: isinstance(v, list) and all(isinstance(x, kind) for x in v)


def _is_dict(v) -> bool:
    return isinstance(v, dict)


METADATA_FIELDS: dict[str, Callable[[object], bool]] = {
    "class_names": _list_of(str),
    "input_shape": lambda v: _list_of(int)(v) and all(not isinstance(x, bool) for x in v),
    "data": _is_dict,
    "history": lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()),
    "metrics": _is_dict,
    "training": lambda v: isinstance(v, dict) and isinstance(v.get("config", {}), dict),
}


def clean_metadata(path: Path, metadata) -> tuple[dict, list[str]]:
    """(metadata, names of the fields dropped): a known field of the wrong JSON type is dropped;
    everything else is kept as it is. Not a JSON object at all is a ModelFileError."""
    if metadata is None:
        return {}, []
    if not isinstance(metadata, dict):
        raise _error(path, "its metadata is not a JSON object")
    ignored = [k for k, ok in METADATA_FIELDS.items() if k in metadata and not ok(metadata[k])]
    return {k: v for k, v in metadata.items() if k not in ignored}, ignored


# ---- the one check every format goes through -------------------------------------------------
def check_model_file(found: ModelFile) -> CheckedModelFile:
    """Check a reader's `ModelFile` before anything is built or any array read (see the module
    docstring); returns what the builder needs."""
    path = found.path
    if found.architecture is None:
        raise _error(path, "it holds weights but no chainrule architecture (written by another "
                     "tool?)", found.no_architecture_fix)
    if not isinstance(found.architecture, dict):
        raise _error(path, "its JSON lacks the model architecture")
    if _depth(found.architecture) > MAX_JSON_DEPTH:
        raise _error(path, f"its architecture is nested more than {MAX_JSON_DEPTH} levels deep")
    _check_arrays(path, found.arrays)
    tied = _check_tied(path, found.tied)
    expected = architecture_shapes(path, found.architecture)
    # a tied parameter may be stored once, under the name it is tied to (ONNX)
    held = {n: found.arrays[t] for n, t in tied.items() if t in found.arrays} | found.arrays
    _check_sizes(path, expected, held)
    dtype = parse_dtype(path, "float32" if found.dtype is None else found.dtype)
    if found.optimizer is not None and not isinstance(found.optimizer, dict):
        raise _error(path, "its optimizer JSON is not an object")
    metadata, ignored = clean_metadata(path, found.metadata)
    return CheckedModelFile(found, dtype, tied, metadata, expected, ignored)
