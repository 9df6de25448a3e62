"""Saving and loading models: `save` writes a file, `load` is the one loader of every format.

    cr.save(model, "m.npz")            chainrule's own format (optimizer state and metadata too)
    cr.save(model, "m.safetensors")    PyTorch's weights format (chainrule.interop.safetensors)
    cr.save(model, "m.onnx")           an ONNX graph (chainrule.interop.onnx_export)
    cr.load(path)                      any of the three, chosen by the suffix

Loading never trusts the file. Every format goes through the same four steps:
1. read the header: the format's reader (`chainrule.formats`) lists the architecture JSON and
   every stored array's name, shape and dtype, reading no array;
2. check it (`chainrule.model_file_checks`): bounds on what the file may ask for, every size
   in the architecture against the stored arrays, dtypes, ties, metadata;
3. build the model from the architecture (only registered, public layer types);
4. fill it: read each array, check it is finite, tie the parameters that were shared.
So a tiny file cannot make `load` allocate a huge layer, whatever its format. Anything it
cannot vouch for raises `ModelFileError`, one line naming the file, the problem and the fix.
Writes go to a temporary file in the same folder, then `os.replace`, so a crash mid-write
never leaves a half-written model behind. The `.npz` layout is described in
`chainrule.formats.npz`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_open
from ._version import __version__
from .formats import read_model_file
from .formats.npz import npz_meta, write_npz
from .interop import SUFFIXES as INTEROP_SUFFIXES
from .interop import save_as
from .model_file_checks import (
    FORMAT,
    META_KEY,
    MODEL_FILENAME,
    OPTIM_PREFIX,
    CheckedModelFile,
    ModelFileError,
    _error,
    _short,
    check_model_file,
)
from .module import Module, describe, module_from_config

__all__ = [
    "FORMAT", "INTEROP_SUFFIXES", "META_KEY", "MODEL_FILENAME", "OPTIM_PREFIX", "Checkpoint",
    "ModelFileError", "load", "load_checkpoint", "resolve_model_path", "save",
]  # fmt: skip


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: the rebuilt model and everything saved with it."""

    model: Module
    metadata: dict = field(default_factory=dict)
    optimizer: dict | None = None  # {"type", "param_groups", "state"}: for opt.load_state_dict
    path: Path | None = None
    chainrule_version: str = ""
    ignored: list[str] = field(default_factory=list)  # metadata fields dropped (wrong type)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A run folder means its `model.npz`; any other path is taken as the file itself."""
    path = Path(path)
    if path.is_dir():
        return path / MODEL_FILENAME
    return path


def save(
    model: Module,
    path: str | os.PathLike,
    metadata: dict | None = None,
    optimizer=None,
) -> Path:
    """Write `model` (and optionally an optimizer's state) to `path` atomically; returns it.

    The suffix chooses the format: `.safetensors` and `.onnx` go to `chainrule.interop`
    (neither holds optimizer state), anything else is chainrule's `.npz`. `metadata` must be
    JSON-able (NumPy scalars/arrays are converted). A folder `path` gets a `model.npz` inside.
    """
    if Path(path).suffix.lower() in INTEROP_SUFFIXES:
        return save_as(model, path, metadata, optimizer)
    path = resolve_model_path(path)
    # np.asarray, not np.ascontiguousarray: the latter turns 0-d step counters into shape (1,)
    arrays: dict[str, np.ndarray] = {
        name: np.asarray(a, order="C") for name, a in model.state_dict().items()
    }
    optim_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        slots = []
        for i, slot_arrays in enumerate(state["state"]):
            slots.append(sorted(slot_arrays))
            for slot, a in slot_arrays.items():
                arrays[f"{OPTIM_PREFIX}{i}.{slot}"] = np.asarray(a, order="C")
        optim_meta = {
            "type": type(optimizer).__name__,
            "param_groups": state["param_groups"],
            "slots": slots,
        }
    text = npz_meta(describe(model), model_dtype(model), arrays, model.tied_parameters(),
                    optim_meta, metadata, __version__)
    with atomic_open(path) as f:
        write_npz(f, arrays, text)
    return path


def model_dtype(model: Module) -> str:
    """The dtype of the model's first parameter, as a string ("float32" without parameters)."""
    first = next(iter(model.named_parameters()), None)
    return str(first[1].data.dtype) if first is not None else "float32"


# ---- 3. building the model --------------------------------------------------------------------
def _module_at(model: Module, prefix: str) -> Module:
    for part in prefix.split(".") if prefix else ():
        model = dict(model.named_children())[part]
    return model


def _set_layer_dtypes(checked: CheckedModelFile, model: Module, names: list[str]) -> None:
    """Each layer takes the dtype its arrays have in the file (a model may mix them)."""
    path, arrays = checked.source.path, checked.source.arrays
    owners: dict[str, dict[str, np.dtype]] = {}
    for name in names:
        stored = checked.tied.get(name, name) if name not in arrays else name
        owners.setdefault(name.rpartition(".")[0], {})[name] = arrays[stored].dtype
    for prefix, held in owners.items():
        dtypes = set(held.values())
        if len(dtypes) > 1:
            listing = ", ".join(f"{n} is {d}" for n, d in held.items())
            raise _error(path, f"layer {prefix} mixes dtypes ({listing})")
        dtype = dtypes.pop()
        if dtype.kind != "f":
            raise _error(path, f"layer {prefix} has dtype {dtype}, not a float type")
        layer = _module_at(model, prefix)
        if any(a.dtype != dtype for a in layer.state_dict().values()):
            layer.astype(dtype)


def _tie(checked: CheckedModelFile, model: Module) -> None:
    """Re-share the parameters the saved model shared (`d2.weight = d1.weight`)."""
    for name, first in checked.tied.items():
        try:
            model.tie(name, first)
        except (KeyError, ValueError, TypeError) as exc:
            raise _error(checked.source.path, f"cannot tie {name!r} to {first!r} "
                         f"({_short(exc)})") from exc


def build(checked: CheckedModelFile) -> Module:
    """The model the checked architecture describes, in the file's dtypes, parameters tied,
    weights not yet filled in."""
    found, path = checked.source, checked.source.path
    try:
        model = module_from_config(found.architecture)
    except Exception as exc:  # bad arguments in the JSON (the sizes were checked already)
        raise _error(path, f"cannot rebuild the architecture ({_short(exc)})",
                     "it may need a newer chainrule; or re-create it with `chainrule train`") \
            from exc
    names = list(model.state_dict())
    stored = {n for n in found.arrays if not n.startswith(OPTIM_PREFIX)}
    missing = sorted(n for n in names if n not in stored and checked.tied.get(n) not in stored)
    extra = sorted(stored - set(names) - found.unused_ok)
    if missing or extra:
        raise _error(path, f"weights do not fit the architecture: missing {missing}, "
                     f"unexpected {extra}")
    _set_layer_dtypes(checked, model, names)
    _tie(checked, model)
    return model


# ---- 4. filling it ----------------------------------------------------------------------------
def _stored(checked: CheckedModelFile, name: str) -> np.ndarray:
    """One array as the file holds it, after checking it is what its header promised."""
    found = checked.source
    a = np.asarray(found.read(name))
    spec = found.arrays[name]
    if a.shape != spec.shape or a.dtype != spec.dtype:
        raise _error(found.path, f"array {name!r} is not what its header says")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _error(found.path, f"weight {name!r} contains NaN or inf")
    return a


def fill(checked: CheckedModelFile, model: Module) -> None:
    """Read every weight into the model (shapes and dtypes checked against the built model)."""
    path, arrays = checked.source.path, checked.source.arrays
    targets = model.state_dict()
    state = {}
    for name, target in targets.items():
        first = checked.tied.get(name)
        a = _stored(checked, name if name in arrays else first)
        if a.shape != target.shape:
            raise _error(path, f"weight {name!r} has shape {a.shape}, the architecture needs "
                         f"{target.shape}")
        if a.dtype != target.dtype:
            raise _error(path, f"weight {name!r} is {a.dtype}, the model is {target.dtype}")
        if first is not None and name in arrays and not np.array_equal(a, state.get(first)):
            raise _error(path, f"tied parameters {name!r} and {first!r} hold different values")
        state[name] = a
    model.load_state_dict(state)


def _optimizer_state(checked: CheckedModelFile, model: Module) -> dict | None:
    found, path = checked.source, checked.source.path
    optim_names = {n for n in found.arrays if n.startswith(OPTIM_PREFIX)}
    spec = found.optimizer
    if spec is None:
        if optim_names:
            raise _error(path, f"optimizer arrays {sorted(optim_names)} but no optimizer JSON")
        return None
    slots = spec.get("slots")
    params = [p for _, p in model.named_parameters()]
    if not isinstance(slots, list) or len(slots) != len(params):
        raise _error(path, "optimizer state does not match the model's parameters")
    state, used = [], set()
    for i, (names, p) in enumerate(zip(slots, params)):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _error(path, f"optimizer slots of parameter {i} are not a list of names")
        entry = {}
        for slot in names:
            key = f"{OPTIM_PREFIX}{i}.{slot}"
            if key not in optim_names:
                raise _error(path, f"optimizer array {key!r} is missing")
            shape = found.arrays[key].shape
            if shape and shape != tuple(p.shape):
                raise _error(path, f"optimizer array {key!r} has shape {shape}, "
                             f"its parameter has {tuple(p.shape)}")
            entry[slot] = _stored(checked, key)
            used.add(key)
        state.append(entry)
    if optim_names - used:
        raise _error(path, f"unexpected optimizer arrays {sorted(optim_names - used)}")
    return {"type": spec.get("type"), "param_groups": spec.get("param_groups"), "state": state}


# ---- the loader -------------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a model file of any format (or a run folder's `model.npz`): model, metadata and
    optimizer state, through the four steps of the module docstring.

    This is for resuming training, so the model comes back in train mode (as a freshly built
    model is); `load` is for inference and returns it in eval mode. Metadata fields chainrule
    reads that have the wrong JSON type are dropped and listed in `Checkpoint.ignored`.
    Raises `ModelFileError` (a `ValueError`) naming the file for anything it cannot vouch for.
    """
    path = resolve_model_path(path)
    checked = check_model_file(read_model_file(path))  # 1. read the header, 2. check it
    model = build(checked)  # 3.
    fill(checked, model)  # 4.
    optimizer = _optimizer_state(checked, model)
    model.train()
    return Checkpoint(model, checked.metadata, optimizer, path, checked.source.version,
                      checked.ignored)


def load(path: str | os.PathLike) -> Module:
    """Rebuild the model saved at `path` (`.npz`, `.safetensors`, `.onnx` or a run folder),
    ready to predict: in eval mode (Dropout off, BatchNorm on its running statistics), like
    inference in PyTorch after `model.eval()`. Use `load_checkpoint` to continue training."""
    model = load_checkpoint(path).model
    model.eval()
    return model
