"""Safe model files: arrays in an `.npz`, everything else in a JSON document beside them.

A chainrule model file is an ordinary NumPy `.npz` (a zip of `.npy` arrays) holding

    0.weight, 0.bias, ...      the model's `state_dict()` (parameters and buffers)
    optim.<i>.<slot>           optional optimizer state, e.g. `optim.0.momentum_buffer`
    __meta__                   a 0-d unicode array: one JSON document (see below)

The JSON holds the format tag, the chainrule version, the architecture (`describe(model)`,
rebuilt by `module_from_config`), the dtype, the name/shape/dtype of every array, the
optimizer's hyperparameters and slot names, and free-form `metadata` (class names,
preprocessing, training history, epoch and RNG state for `chainrule train --resume`).

Reading uses `np.load(..., allow_pickle=False)` only, so a file can never run code, and every
array is checked against the JSON and against the rebuilt model before it is used. Anything
else (a truncated or corrupt file, a missing or extra array, a wrong shape or dtype, a file
chainrule did not write) raises `ModelFileError` naming the file and what to do.
Writes go to a temporary file in the same folder, then `os.replace`, so a crash mid-write
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data._atomic import atomic_open
from .module import Module, describe, module_from_config

FORMAT = "chainrule/1"
META_KEY = "__meta__"
OPTIM_PREFIX = "optim."
MODEL_FILENAME = "model.npz"
INTEROP_SUFFIXES = (".safetensors", ".onnx")  # read and written by chainrule.interop
_FIX = "re-create it with `chainrule train` or pass the model.npz a training run wrote"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a chainrule model; the message names the
    file, the problem and the fix in one line."""


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
    from . import __version__

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


def _error(path: Path, problem: str, fix: str = _FIX) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}; {fix}")


def _read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta document, arrays) from the file, with every low-level failure as ModelFileError."""
    if not path.exists():
        hint = "check the path, or train a model first with `chainrule train`"
        raise _error(path, "no such model file", hint)
    if path.is_dir():
        raise _error(path, f"folder without a {MODEL_FILENAME}", "pass a training run folder")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        fix = "check the file's permissions"
        raise _error(path, f"cannot read it ({exc.strerror})", fix) from exc
    if magic.startswith(b"\x93NUMPY"):
        raise _error(path, "a single .npy array, not a chainrule model file (.npz)")
    if not magic.startswith(b"PK"):
        raise _error(path, "not a chainrule model file (not an .npz archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _error(path, f"corrupt or truncated .npz file ({_short(exc)})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - magic checked above
        raise _error(path, "not a chainrule model file (not an .npz archive)")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        if META_KEY not in npz.files:
            raise _error(path, f"not a chainrule model file (no {META_KEY} entry)")
        for name in npz.files:
            try:
                arrays[name] = npz[name]
            except ValueError as exc:
                if "pickle" in str(exc).lower():
                    raise _error(
                        path,
                        f"entry {name!r} holds pickled Python objects, which chainrule never "
                        "loads (they can run code)",
                    ) from exc
                raise _error(path, f"entry {name!r} is corrupt ({_short(exc)})") from exc
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                raise _error(path, f"corrupt or truncated ({_short(exc)})") from exc
    raw = arrays.pop(META_KEY)
    if raw.shape != () or raw.dtype.kind != "U":
        raise _error(path, f"{META_KEY} is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise _error(path, f"its {META_KEY} JSON is corrupt ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise _error(path, f"unsupported model format {found!r} (this chainrule reads {FORMAT})")
    return meta, arrays


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_arrays(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Names, shapes and dtypes in the file must match the JSON's listing exactly."""
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        raise _error(path, "its JSON lacks the list of arrays")
    missing = sorted(set(listed) - set(arrays))
    extra = sorted(set(arrays) - set(listed))
    if missing or extra:
        raise _error(path, f"arrays do not match its JSON: missing {missing}, unexpected {extra}")
    for name, spec in listed.items():
        a = arrays[name]
        if list(a.shape) != list(spec.get("shape", [])) or a.dtype.str != spec.get("dtype"):
            raise _error(
                path,
                f"array {name!r} is {a.dtype.str}{list(a.shape)}, its JSON says "
                f"{spec.get('dtype')}{spec.get('shape')}",
            )
        if a.dtype.kind not in "fiub":
            raise _error(path, f"array {name!r} has unsupported dtype {a.dtype}")


def _build_model(path: Path, meta: dict, state: dict[str, np.ndarray]) -> Module:
    try:
        model = module_from_config(meta["model"])
    except Exception as exc:  # an unknown layer type or bad arguments in the JSON
        raise _error(
            path,
            f"cannot rebuild the architecture ({_short(exc)})",
            "it may need a newer chainrule; or re-create it with `chainrule train`",
        ) from exc
    dtype = np.dtype(meta.get("dtype", "float32"))
    if dtype.kind != "f":
        raise _error(path, f"model dtype {dtype} is not a float type")
    if any(p.data.dtype != dtype for p in model.parameters()):
        model.astype(dtype)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise _error(
            path, f"weights do not fit the architecture: missing {missing}, unexpected {extra}"
        )
    for name, target in expected.items():
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
    slots = spec.get("slots")
    params = model.parameters()
    if not isinstance(slots, list) or len(slots) != len(params):
        raise _error(path, "optimizer state does not match the model's parameters")
    state, used = [], set()
    for i, (names, p) in enumerate(zip(slots, params)):
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

    Raises `ModelFileError` (a `ValueError`) naming the file for anything it cannot vouch for.
    """
    if Path(path).suffix.lower() in INTEROP_SUFFIXES:
        from .interop import load_checkpoint_from

        return load_checkpoint_from(path)
    path = resolve_model_path(path)
    meta, arrays = _read_npz(path)
    _check_arrays(path, meta, arrays)
    optim_arrays = {k: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}
    state = {k: v for k, v in arrays.items() if not k.startswith(OPTIM_PREFIX)}
    if not isinstance(meta.get("model"), dict):
        raise _error(path, "its JSON lacks the model architecture")
    model = _build_model(path, meta, state)
    optimizer = _optimizer_state(path, meta, optim_arrays, model)
    metadata = meta.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _error(path, "its metadata is not a JSON object")
    return Checkpoint(model, metadata, optimizer, path, str(meta.get("chainrule_version", "")))


def load(path: str | os.PathLike) -> Module:
    """Rebuild the model saved at `path` (a `.npz` file or a run folder), ready to predict."""
    model = load_checkpoint(path).model
    model.eval()
    return model
