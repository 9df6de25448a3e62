"""Safe model files: arrays in an `.npz`, everything else in a JSON document beside them.

A chainrule model file is an ordinary NumPy `.npz` (a zip of `.npy` arrays) holding

    0.weight, 0.bias, ...      the model's `state_dict()` (parameters and buffers)
    optim.<i>.<slot>           optional optimizer state, e.g. `optim.0.momentum_buffer`
    __meta__                   a 0-d unicode array: one JSON document (see below)

The JSON holds the format tag, the chainrule version, the architecture (`describe(model)`:
qualified layer types such as "chainrule.Dense", rebuilt by `module_from_config`), the
name/shape/dtype of every array (each layer loads in its own dtype), which parameters are
shared (`tied`: {"2.weight": "0.weight"}), the optimizer's hyperparameters and slot names, and
free-form `metadata` (class names, preprocessing, training history, epoch and RNG state for
`chainrule train --resume`).

Reading never trusts the file (`chainrule.model_file_checks` does the checking): it reads
the `.npy` headers first (refusing pickled objects,
sizes that disagree with the zip directory, and entries claiming far more bytes than the file
holds), then checks every size in the architecture against the listed arrays, so a tiny file
cannot make it allocate a huge layer; only then are the arrays read (`allow_pickle=False`) and
the model built. Only registered, public layer types load (old files' bare built-in names
such as "Dense" map to chainrule's own). Anything else (a truncated or corrupt file, a missing
or extra array, a wrong shape or dtype, a file chainrule did not write) raises
`ModelFileError` naming the file and what to do.
Writes go to a temporary file in the same folder, then `os.replace`, so a crash mid-write
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_open
from ._version import __version__
from .model_file_checks import (  # the checks of a file before it is trusted
    FORMAT,
    META_KEY,
    MODEL_FILENAME,
    ModelFileError,
    _error,
    _read_checked,
    _short,
)
from .module import Module, Parameter, describe, module_from_config

OPTIM_PREFIX = "optim."
INTEROP_SUFFIXES = (".safetensors", ".onnx")  # read and written by chainrule.interop

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


def _jsonable(value):
    """`json.dumps(default=...)`: NumPy scalars and arrays become plain numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


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

    `metadata` must be JSON-able (NumPy scalars/arrays are converted). A folder `path` gets
    a `model.npz` inside it.
    """

    if Path(path).suffix.lower() in INTEROP_SUFFIXES:  # chosen by suffix: chainrule.interop
        from .interop import save_as

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
    params = model.parameters()
    meta = {
        "format": FORMAT,
        "chainrule_version": __version__,
        "model": describe(model),
        "dtype": str(params[0].data.dtype) if params else "float32",
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()},
        "tied": model.tied_parameters(),
        "optimizer": optim_meta,
        "metadata": metadata or {},
    }
    text = json.dumps(meta, default=_jsonable, allow_nan=True)
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"save: array {name!r} holds Python objects; only numbers are saved")
    with atomic_open(path) as f:
        np.savez(f, **arrays, **{META_KEY: np.array(text)})
    return path

# ---- building the model -----------------------------------------------------------------------
def _owners(model: Module, prefix: str = ""):
    """(dotted prefix, module) for every module that directly holds parameters or buffers."""
    own = [n for n, v in vars(model).items() if isinstance(v, Parameter)]
    own += list(getattr(model, "_buffer_names", ()))
    if own:
        yield prefix, model, own
    for name, child in model.named_children():
        yield from _owners(child, f"{prefix}{name}.")


def _set_layer_dtypes(path: Path, model: Module, state: dict[str, np.ndarray]) -> None:
    """Each layer takes the dtype its arrays have in the file (a model may mix them)."""
    for prefix, layer, names in _owners(model):
        held = {prefix + n: state[prefix + n].dtype for n in names if prefix + n in state}
        dtypes = set(held.values())
        if not dtypes:
            continue
        if len(dtypes) > 1:
            listing = ", ".join(f"{n} is {d}" for n, d in held.items())
            raise _error(path, f"layer {prefix[:-1]} mixes dtypes ({listing})")
        dtype = dtypes.pop()
        if dtype.kind != "f":
            raise _error(path, f"layer {prefix[:-1]} has dtype {dtype}, not a float type")
        held = (getattr(layer, n) for n in names)
        if any(np.asarray(getattr(v, "data", v)).dtype != dtype for v in held):
            layer.astype(dtype)


def _tie(path: Path, meta: dict, model: Module, state: dict[str, np.ndarray]) -> None:
    """Re-share the parameters the saved model shared (`d2.weight = d1.weight`)."""
    tied = meta.get("tied") or {}
    if not isinstance(tied, dict):
        raise _error(path, "its list of tied parameters is not a JSON object")
    for name, first in tied.items():
        try:
            model.tie(name, first)
        except (KeyError, ValueError, TypeError) as exc:
            raise _error(path, f"cannot tie {name!r} to {first!r} ({_short(exc)})") from exc
        if name in state and first in state and not np.array_equal(state[name], state[first]):
            raise _error(path, f"tied parameters {name!r} and {first!r} hold different values")


def _build_model(path: Path, meta: dict, state: dict[str, np.ndarray]) -> Module:
    try:
        model = module_from_config(meta["model"])
    except Exception as exc:  # bad arguments in the JSON (the sizes were checked already)
        raise _error(
            path,
            f"cannot rebuild the architecture ({_short(exc)})",
            "it may need a newer chainrule; or re-create it with `chainrule train`",
        ) from exc
    expected_names = set(model.state_dict())
    missing = sorted(expected_names - set(state))
    extra = sorted(set(state) - expected_names)
    if missing or extra:
        raise _error(
            path, f"weights do not fit the architecture: missing {missing}, unexpected {extra}"
        )
    _set_layer_dtypes(path, model, state)
    _tie(path, meta, model, state)
    for name, target in model.state_dict().items():
        a = state[name]
        if a.shape != target.shape:
            raise _error(
                path, f"weight {name!r} has shape {a.shape}, the architecture needs {target.shape}"
            )
        if a.dtype != target.dtype:
            raise _error(path, f"weight {name!r} is {a.dtype}, the model is {target.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise _error(path, f"weight {name!r} contains NaN or inf")
    model.load_state_dict(state)
    return model


def _optimizer_state(path: Path, meta: dict, optim_arrays: dict, model: Module) -> dict | None:
    spec = meta.get("optimizer")
    if spec is None:
        if optim_arrays:
            raise _error(path, f"optimizer arrays {sorted(optim_arrays)} but no optimizer JSON")
        return None
    if not isinstance(spec, dict):
        raise _error(path, "its optimizer JSON is not an object")
    slots = spec.get("slots")
    params = model.parameters()
    if not isinstance(slots, list) or len(slots) != len(params):
        raise _error(path, "optimizer state does not match the model's parameters")
    state, used = [], set()
    for i, (names, p) in enumerate(zip(slots, params)):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _error(path, f"optimizer slots of parameter {i} are not a list of names")
        entry = {}
        for slot in names:
            key = f"{OPTIM_PREFIX}{i}.{slot}"
            if key not in optim_arrays:
                raise _error(path, f"optimizer array {key!r} is missing")
            a = optim_arrays[key]
            if a.ndim and a.shape != p.data.shape:
                raise _error(path, f"optimizer array {key!r} has shape {a.shape}, "
                             f"its parameter has {p.data.shape}")
            entry[slot] = a
            used.add(key)
        state.append(entry)
    if set(optim_arrays) - used:
        raise _error(path, f"unexpected optimizer arrays {sorted(set(optim_arrays) - used)}")
    return {"type": spec.get("type"), "param_groups": spec.get("param_groups"), "state": state}


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a model file (or a run folder's `model.npz`): model, metadata and optimizer state.

    This is for resuming training, so the model comes back in train mode (as a freshly built
    model is); `load` is for inference and returns it in eval mode.
    Raises `ModelFileError` (a `ValueError`) naming the file for anything it cannot vouch for.
    """
    if Path(path).suffix.lower() in INTEROP_SUFFIXES:
        from .interop import load_checkpoint_from

        return load_checkpoint_from(path)
    path = resolve_model_path(path)
    meta, arrays = _read_checked(path)
    optim_arrays = {k: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}
    state = {k: v for k, v in arrays.items() if not k.startswith(OPTIM_PREFIX)}
    model = _build_model(path, meta, state)
    optimizer = _optimizer_state(path, meta, optim_arrays, model)
    metadata = meta.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _error(path, "its metadata is not a JSON object")
    model.train()
    return Checkpoint(model, metadata, optimizer, path, str(meta.get("chainrule_version", "")))


def load(path: str | os.PathLike) -> Module:
    """Rebuild the model saved at `path` (a `.npz` file or a run folder), ready to predict:
    in eval mode (Dropout off, BatchNorm on its running statistics), like inference in
    PyTorch after `model.eval()`. Use `load_checkpoint` to continue training."""
    model = load_checkpoint(path).model
    model.eval()
    return model
