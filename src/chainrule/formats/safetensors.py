"""Reading `.safetensors` files: the header checked against the file, each tensor read on demand.

A safetensors file is

    8 bytes      N, the header's length (unsigned little-endian)
    N bytes      a JSON header: {"<name>": {"dtype": "F32", "shape": [...],
                 "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    the rest     the tensors' raw little-endian bytes, back to back

so reading it can never run code. `read_header` checks the header against the file (length,
JSON, dtypes, shapes, offsets that tile the data exactly, as the format requires) and
`read_model_file` describes the file as a `ModelFile` without reading any tensor; a tensor is
read (`read_tensor`) only when asked. No optional package is needed to read. The writer (and
what chainrule puts in `__metadata__`) is `chainrule.interop.safetensors`.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from ..model_file_checks import FORMAT, ArraySpec, ModelFile, _error, parse_json

SUFFIX = ".safetensors"
MAX_DIMS = 32
MAX_HEADER = 100 * 2**20  # bytes; the format's own readers refuse larger headers too
TRACKED = "num_batches_tracked"  # PyTorch's batch-norm counter: stored, never needed
# safetensors dtype codes that NumPy can hold (BF16 and the 8-bit floats it cannot)
DTYPES = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
}
FIX = "write it again with `chainrule.save(model, 'model.safetensors')` or safetensors' save_file"
FOREIGN_FIX = "build the same model in chainrule and call `chainrule.load_weights(model, path)`"


def _dtype(code: str) -> np.dtype:
    return np.dtype(DTYPES[code]).newbyteorder("<")


def read_header(path: Path) -> tuple[dict, dict[str, str], int]:
    """(tensor entries, `__metadata__`, where the data starts), checked against the file."""
    if not path.exists():
        raise _error(path, "no such safetensors file", "check the path")
    if path.is_dir():
        raise _error(path, "a folder, not a safetensors file", "pass the file itself")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _error(path, f"truncated: {size} bytes, too short for a header", FIX)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER:
            raise _error(path, f"truncated or corrupt: its header claims {n} bytes but the "
                         f"file has {size - 8} after the length", FIX)
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = "not a safetensors file (its header is not JSON: not UTF-8)"
        raise _error(path, problem, FIX) from exc
    header = parse_json(path, text, "safetensors header")
    if not isinstance(header, dict):
        raise _error(path, "not a safetensors file (its header is not a JSON object)", FIX)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _error(path, "its __metadata__ is not a map of strings", FIX)
    _check_entries(path, header, size - 8 - n)
    return header, meta, 8 + n


def _check_entries(path: Path, header: dict, data_bytes: int) -> None:
    """Every entry: a known dtype, a shape of whole numbers, offsets inside the data whose
    length is exactly shape × item size; together the entries tile the data, no overlaps."""
    spans = []
    for name, spec in header.items():
        if not isinstance(spec, dict):
            raise _error(path, f"tensor {name!r} has no description", FIX)
        dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _error(path, f"tensor {name!r} has dtype {str(dtype)[:20]!r}, which chainrule "
                         f"cannot read (it reads {', '.join(DTYPES)})",
                         "convert it first, e.g. in PyTorch `model.float()` before saving")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS
                and all(type(s) is int and s >= 0 for s in shape)):
            raise _error(path, f"tensor {name!r} has a bad shape {str(shape)[:60]}", FIX)
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(type(o) is int for o in offsets)):
            raise _error(path, f"tensor {name!r} has bad data_offsets {str(offsets)[:60]}", FIX)
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise _error(path, f"tensor {name!r} lies at bytes {begin}..{end}, outside the "
                         f"{data_bytes} data bytes the file holds (truncated or edited)", FIX)
        expected = math.prod(shape) * _dtype(dtype).itemsize
        if end - begin != expected:
            raise _error(path, f"tensor {name!r} of {dtype}{str(shape)[:60]} needs "
                         f"{str(expected)[:30]} bytes, its offsets span {end - begin}", FIX)
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            problem = "overlaps another" if begin < position else "leaves a gap before it"
            raise _error(path, f"tensor {name!r} {problem} (offset {begin}, expected "
                         f"{position})", FIX)
        position = end
    if position != data_bytes:
        raise _error(path, f"{data_bytes - position} bytes after the last tensor", FIX)


def read_tensor(path: Path, start: int, spec: dict) -> np.ndarray:
    """One tensor of a checked header (`start`: where the data begins)."""
    begin, end = spec["data_offsets"]
    buffer = bytearray(end - begin)
    with open(path, "rb") as f:
        f.seek(start + begin)
        if f.readinto(buffer) != len(buffer):
            raise _error(path, "truncated while reading (the file changed?)", FIX)
    return np.frombuffer(buffer, _dtype(spec["dtype"])).reshape(spec["shape"])


def _json_field(path: Path, meta: dict[str, str], key: str):
    return parse_json(path, meta[key], f"__metadata__ {key!r}") if key in meta else None


def _is_counter(name: str, spec: ArraySpec) -> bool:
    return name.rpartition(".")[2] == TRACKED and spec.dtype.kind in "iu" and spec.size == 1


def read_model_file(path: Path) -> ModelFile:
    """The `ModelFile` of any safetensors file: the chainrule architecture, dtype, tied
    parameters and metadata from `__metadata__` (absent in files other tools write)."""
    header, meta, start = read_header(path)
    if meta.get("format", FORMAT) != FORMAT:
        raise _error(path, f"unsupported model format {meta['format'][:40]!r} (this chainrule "
                     f"reads {FORMAT})", FIX)
    arrays = {name: ArraySpec(tuple(s["shape"]), _dtype(s["dtype"])) for name, s in header.items()}
    return ModelFile(
        path=path,
        architecture=_json_field(path, meta, "model"),
        arrays=arrays,
        read=lambda name: read_tensor(path, start, header[name]),
        dtype=meta.get("dtype"),
        tied=_json_field(path, meta, "tied"),
        metadata=_json_field(path, meta, "metadata"),
        version=meta.get("chainrule_version", "")[:40],
        unused_ok=frozenset(n for n, spec in arrays.items() if _is_counter(n, spec)),
        no_architecture_fix=FOREIGN_FIX,
    )
