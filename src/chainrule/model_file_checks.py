"""Checking a model file before trusting it: everything `chainrule.serialize` reads passes here.

A model file may come from anywhere, so nothing in it is believed until checked. This module
guards against
- pickled Python objects (they can run code when loaded): refused from the `.npy` header,
  before any data is read;
- zip bombs and lying sizes: every entry's size must match its header and the zip directory,
  and the entries together may not claim far more bytes than the file holds;
- a tiny file asking for a huge layer: every size in the architecture (Dense, Conv2D,
  BatchNorm widths) must match the shape of an array listed in the file, checked before any
  layer is built;
- wrong names, shapes or dtypes: the archive must match its JSON listing exactly, in numeric
  dtypes only;
- corrupt, truncated or foreign files: raised as `ModelFileError`, one line naming the file,
  the problem and the fix.
`_read_checked` runs these checks in order and only then reads the arrays (`allow_pickle=False`).
The file format itself (the constants below) is described in `chainrule.serialize`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .module import layer_type

FORMAT = "chainrule/1"
META_KEY = "__meta__"
MODEL_FILENAME = "model.npz"
_FIX = "re-create it with `chainrule train` or pass the model.npz a training run wrote"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a chainrule model; the message names the
    file, the problem and the fix in one line."""


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
