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

Reading never trusts the file: it reads the `.npy` headers first (refusing pickled objects,
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
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_open
from ._version import __version__
from .module import Module, Parameter, describe, layer_type, module_from_config

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


def _error(path: Path, problem: str, fix: str = _FIX) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}; {fix}")


# ---- reading: headers first, then sizes, then (only then) the arrays ------------------------
MAX_HEADER_SIZE = 10_000  # bytes of one .npy header (NumPy's own default limit)
MAX_INFLATION = 50  # chainrule writes uncompressed entries; weights never deflate 50:1


@dataclass
class _Entry:
    """One `.npy` member of the archive as its header describes it (no data read yet)."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _check_file(path: Path) -> None:
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


def _read_entries(path: Path, zf: zipfile.ZipFile) -> dict[str, _Entry]:
    """Every member's name, shape and dtype from its .npy header; sizes checked against the
    zip directory so no later read can allocate more than the file can hold."""
    entries: dict[str, _Entry] = {}
    for info in zf.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename or name in entries:
            raise _error(path, f"unexpected or repeated entry {info.filename!r} in the archive")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _error(path, f"entry {name!r} uses an unsupported zip compression")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_SIZE)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_SIZE)
            else:
                raise _error(path, f"entry {name!r} has unsupported .npy version {version}")
            header_bytes = f.tell()
        shape, fortran, dtype = header
        if dtype.hasobject:
            raise _error(
                path,
                f"entry {name!r} holds pickled Python objects, which chainrule never loads "
                "(they can run code)",
            )
        if info.file_size != header_bytes + math.prod(shape) * dtype.itemsize:
            raise _error(path, f"entry {name!r} is truncated or padded (its size does not "
                         f"match its header {dtype.str}{list(shape)})")
        entries[name] = _Entry(info, tuple(shape), dtype, fortran)
    total = sum(e.info.file_size for e in entries.values())
    if total > MAX_INFLATION * path.stat().st_size + (1 << 20):
        raise _error(path, f"its entries claim {total:,} bytes, far more than a "
                     f"{path.stat().st_size:,}-byte file can hold (a zip bomb?)")
    return entries


def _read_array(zf: zipfile.ZipFile, entry: _Entry) -> np.ndarray:
    with zf.open(entry.info) as f:
        return np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER_SIZE)


def _read_meta(path: Path, zf: zipfile.ZipFile, entries: dict[str, _Entry]) -> dict:
    entry = entries.get(META_KEY)
    if entry is None:
        raise _error(path, f"not a chainrule model file (no {META_KEY} entry)")
    if entry.shape != () or entry.dtype.kind != "U":
        raise _error(path, f"{META_KEY} is not a JSON string")
    raw = _read_array(zf, entry)
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:  # also too long an integer, too deep nesting
        raise _error(path, f"its {META_KEY} JSON is corrupt ({_short(exc)})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise _error(path, f"unsupported model format {found!r} (this chainrule reads {FORMAT})")
    return meta


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _check_listing(path: Path, meta: dict, entries: dict[str, _Entry]) -> dict[str, tuple]:
    """Names, shapes and dtypes in the archive must match the JSON's listing exactly;
    returns {name: shape} of the arrays (everything but the JSON itself)."""
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        raise _error(path, "its JSON lacks the list of arrays")
    arrays = {k: e for k, e in entries.items() if k != META_KEY}
    missing = sorted(set(listed) - set(arrays))
    extra = sorted(set(arrays) - set(listed))
    if missing or extra:
        raise _error(path, f"arrays do not match its JSON: missing {missing}, unexpected {extra}")
    for name, spec in listed.items():
        e = arrays[name]
        spec = spec if isinstance(spec, dict) else {}
        if list(e.shape) != spec.get("shape") or e.dtype.str != spec.get("dtype"):
            raise _error(
                path,
                f"array {name!r} is {e.dtype.str}{list(e.shape)}, its JSON says "
                f"{spec.get('dtype')}{spec.get('shape')}",
            )
        if e.dtype.kind not in "fiub":
            raise _error(path, f"array {name!r} has unsupported dtype {e.dtype}")
    return {name: e.shape for name, e in arrays.items()}


# ---- the architecture's sizes, checked against the arrays before anything is built ----------
def _size(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer ≥ {minimum}, got {value!r}")
    return value


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        return _size(value[0], what), _size(value[1], what)
    return _size(value, what), _size(value, what)


def _dense_shapes(spec: dict) -> dict[str, tuple]:
    n_in, n_out = _size(spec.get("in_features"), "in_features"), _size(
        spec.get("out_features"), "out_features")
    return {"weight": (n_out, n_in), **({"bias": (n_out,)} if spec.get("bias", True) else {})}


def _conv_shapes(spec: dict) -> dict[str, tuple]:
    c_in, c_out = _size(spec.get("in_channels"), "in_channels"), _size(
        spec.get("out_channels"), "out_channels")
    kh, kw = _pair(spec.get("kernel_size"), "kernel_size")
    bias = {"bias": (c_out,)} if spec.get("bias", True) else {}
    return {"weight": (c_out, c_in, kh, kw), **bias}


def _batchnorm_shapes(spec: dict) -> dict[str, tuple]:
    c = (_size(spec.get("num_features"), "num_features"),)
    affine = {"weight": c, "bias": c} if spec.get("affine", True) else {}
    return {**affine, "running_mean": c, "running_var": c}


# The layers whose constructors allocate arrays sized by their config: what they will hold.
_SHAPES = {
    "chainrule.Dense": _dense_shapes,
    "chainrule.Conv2D": _conv_shapes,
    "chainrule.BatchNorm1d": _batchnorm_shapes,
    "chainrule.BatchNorm2d": _batchnorm_shapes,
}


def _check_sizes(path: Path, spec, shapes: dict[str, tuple], prefix: str = "") -> None:
    """Every size in the architecture must match the arrays listed in the file, so a tiny file
    cannot make `load` allocate a huge layer. Runs before any layer is built."""
    where = f"layer {prefix[:-1]}" if prefix else "the model"
    if not isinstance(spec, dict):
        raise _error(path, f"{where} is not described by a JSON object")
    try:
        cls = layer_type(spec.get("type"))
    except ValueError as exc:
        raise _error(path, f"cannot rebuild the architecture ({_short(exc)})",
                     "it may need a newer chainrule, or the module that defines the layer "
                     "imported first; or re-create it with `chainrule train`") from exc
    from .layers import Sequential

    if issubclass(cls, Sequential):
        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise _error(path, f"{where} (Sequential) has no list of layers")
        for i, child in enumerate(layers):
            _check_sizes(path, child, shapes, f"{prefix}{i}.")
        return
    shape_of = _SHAPES.get(cls._type_name)
    if shape_of is None:
        return
    try:
        expected = shape_of(spec)
    except ValueError as exc:
        raise _error(path, f"{where} ({cls.__name__}) is misconfigured ({exc})") from exc
    for attr, shape in expected.items():
        held = shapes.get(prefix + attr)
        if held != shape:
            found = "no such array" if held is None else f"{list(held)}"
            raise _error(path, f"{where} ({cls.__name__}) needs {prefix + attr!r} of shape "
                         f"{list(shape)}, the file holds {found}")


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


def _read_checked(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays): headers and sizes are all checked before any array is read."""
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            entries = _read_entries(path, zf)
            meta = _read_meta(path, zf, entries)
            shapes = _check_listing(path, meta, entries)
            if not isinstance(meta.get("model"), dict):
                raise _error(path, "its JSON lacks the model architecture")
            _check_sizes(path, meta["model"], shapes)
            arrays = {name: _read_array(zf, entries[name]) for name in shapes}
    except ModelFileError:
        raise
    except Exception as exc:  # zip, zlib, header and I/O failures: the bytes are not sound
        raise _error(path, f"corrupt or truncated .npz file ({_short(exc)})") from exc
    return meta, arrays


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
