"""chainrule's own `.npz` model files: the reader (and the pieces `chainrule.save` writes).

A chainrule model file is an ordinary NumPy `.npz` (a zip of `.npy` arrays) holding

    0.weight, 0.bias, ...      the model's `state_dict()` (parameters and buffers)
    optim.<i>.<slot>           optional optimizer state, e.g. `optim.0.momentum_buffer`
    __meta__                   a 0-d unicode array: one JSON document (see below)

The JSON holds the format tag, the chainrule version, the architecture (`describe(model)`),
the name/shape/dtype of every array (each layer loads in its own dtype), which parameters are
shared (`tied`: {"2.weight": "0.weight"}), the optimizer's hyperparameters and slot names, and
free-form `metadata` (class names, preprocessing, training history, epoch and RNG state for
`chainrule train --resume`).

`read_model_file` reads only the `.npy` headers and the JSON: it refuses pickled objects,
sizes that disagree with the zip directory, entries claiming far more bytes than the file
holds, and arrays that disagree with the JSON's listing; the arrays themselves are read later,
one by one, by `chainrule.serialize` after `chainrule.model_file_checks` has checked the lot.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ..model_file_checks import (
    FORMAT,
    META_KEY,
    MODEL_FILENAME,
    ArraySpec,
    ModelFile,
    ModelFileError,
    _error,
    _short,
    jsonable,
    parse_json,
)

MAX_HEADER_SIZE = 10_000  # bytes of one .npy header (NumPy's own default limit)
MAX_INFLATION = 50  # chainrule writes uncompressed entries; weights never deflate 50:1


# ---- writing ----------------------------------------------------------------------------------
def npz_meta(model_json: dict, dtype: str, arrays: dict[str, np.ndarray], tied: dict,
             optimizer: dict | None, metadata: dict | None, version: str) -> str:
    """The `__meta__` JSON document of a file holding `arrays`."""
    meta = {
        "format": FORMAT,
        "chainrule_version": version,
        "model": model_json,
        "dtype": dtype,
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()},
        "tied": tied,
        "optimizer": optimizer,
        "metadata": metadata or {},
    }
    return json.dumps(meta, default=jsonable, allow_nan=True)


def write_npz(f, arrays: dict[str, np.ndarray], meta_text: str) -> None:
    """The arrays and the JSON document into the open binary file `f` (no pickles)."""
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"save: array {name!r} holds Python objects; only numbers are saved")
    np.savez(f, **arrays, **{META_KEY: np.array(meta_text)})


# ---- reading the headers ----------------------------------------------------------------------
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
        raise _error(path, f"cannot read it ({exc.strerror})", "check the file's permissions") \
            from exc
    if magic.startswith(b"\x93NUMPY"):
        raise _error(path, "a single .npy array, not a chainrule model file (.npz)")
    if not magic.startswith(b"PK"):
        raise _error(path, "not a chainrule model file (not an .npz archive)")


def _read_entries(path: Path, zf: zipfile.ZipFile) -> dict[str, tuple[zipfile.ZipInfo, ArraySpec]]:
    """Every member's name, shape and dtype from its .npy header; sizes checked against the
    zip directory so no later read can allocate more than the file can hold."""
    entries: dict[str, tuple[zipfile.ZipInfo, ArraySpec]] = {}
    for info in zf.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename or name in entries:
            raise _error(path, f"unexpected or repeated entry {info.filename!r} in the archive")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _error(path, f"entry {name!r} uses an unsupported zip compression")
        with zf.open(info) as f:
            shape, _, dtype = _read_header(f, name, path)
            header_bytes = f.tell()
        if dtype.hasobject:
            raise _error(path, f"entry {name!r} holds pickled Python objects, which chainrule "
                         "never loads (they can run code)")
        if info.file_size != header_bytes + math.prod(shape) * dtype.itemsize:
            raise _error(path, f"entry {name!r} is truncated or padded (its size does not "
                         f"match its header {dtype.str}{list(shape)})")
        entries[name] = (info, ArraySpec(tuple(shape), dtype))
    total = sum(info.file_size for info, _ in entries.values())
    if total > MAX_INFLATION * path.stat().st_size + (1 << 20):
        raise _error(path, f"its entries claim {total:,} bytes, far more than a "
                     f"{path.stat().st_size:,}-byte file can hold (a zip bomb?)")
    return entries


def _read_header(f, name: str, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_SIZE)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_SIZE)
    raise _error(path, f"entry {name!r} has unsupported .npy version {version}")


def _read_array(path: Path, info: zipfile.ZipInfo, spec: ArraySpec) -> np.ndarray:
    """One array's data: exactly the bytes its checked header promised (the file is opened
    again, so its header is compared once more before anything is read)."""
    name = info.filename.removesuffix(".npy")
    try:
        with zipfile.ZipFile(path) as zf, zf.open(info.filename) as f:
            shape, fortran, dtype = _read_header(f, name, path)
            if (tuple(shape), dtype) != (spec.shape, spec.dtype) or dtype.hasobject:
                raise _error(path, f"entry {name!r} changed while it was read")
            data = f.read(spec.size * dtype.itemsize)
    except ModelFileError:
        raise
    except Exception as exc:  # zip, zlib and I/O failures: the bytes are not sound
        raise _error(path, f"corrupt or truncated .npz file ({_short(exc)})") from exc
    if len(data) != spec.size * dtype.itemsize:
        raise _error(path, f"entry {name!r} is truncated")
    return np.frombuffer(bytearray(data), dtype).reshape(shape, order="F" if fortran else "C")


def _read_meta(path: Path, zf: zipfile.ZipFile, entries: dict) -> dict:
    if META_KEY not in entries:
        raise _error(path, f"not a chainrule model file (no {META_KEY} entry)")
    info, spec = entries[META_KEY]
    if spec.shape != () or spec.dtype.kind != "U":
        raise _error(path, f"{META_KEY} is not a JSON string")
    with zf.open(info) as f:
        raw = np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER_SIZE)
    meta = parse_json(path, str(raw), META_KEY)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise _error(path, f"unsupported model format {str(found)[:40]!r} "
                     f"(this chainrule reads {FORMAT})")
    return meta


def _check_listing(path: Path, meta: dict, arrays: dict[str, ArraySpec]) -> None:
    """Names, shapes and dtypes in the archive must match the JSON's listing exactly."""
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        raise _error(path, "its JSON lacks the list of arrays")
    missing = sorted(set(listed) - set(arrays))
    extra = sorted(set(arrays) - set(listed))
    if missing or extra:
        raise _error(path, f"arrays do not match its JSON: missing {missing}, unexpected {extra}")
    for name, spec in listed.items():
        held = arrays[name]
        spec = spec if isinstance(spec, dict) else {}
        if list(held.shape) != spec.get("shape") or held.dtype.str != spec.get("dtype"):
            raise _error(path, f"array {name!r} is {held.dtype.str}{list(held.shape)}, its JSON "
                         f"says {str(spec.get('dtype'))[:20]}{str(spec.get('shape'))[:40]}")


def read_model_file(path: Path) -> ModelFile:
    """The `ModelFile` of a chainrule `.npz`: its JSON and array headers, no array data."""
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            entries = _read_entries(path, zf)
            meta = _read_meta(path, zf, entries)
    except ModelFileError:
        raise
    except Exception as exc:  # zip, zlib, header and I/O failures: the bytes are not sound
        raise _error(path, f"corrupt or truncated .npz file ({_short(exc)})") from exc
    arrays = {name: spec for name, (_, spec) in entries.items() if name != META_KEY}
    _check_listing(path, meta, arrays)
    return ModelFile(
        path=path,
        architecture=meta.get("model"),
        arrays=arrays,
        read=lambda name: _read_array(path, *entries[name]),
        dtype=meta.get("dtype"),
        tied=meta.get("tied"),
        optimizer=meta.get("optimizer"),
        metadata=meta.get("metadata"),
        version=str(meta.get("chainrule_version", ""))[:40],
    )
