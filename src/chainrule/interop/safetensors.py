"""`.safetensors` files: the weights under PyTorch's names, the architecture in the header.

A safetensors file is

    8 bytes      N, the header's length (unsigned little-endian)
    N bytes      a JSON header: {"<name>": {"dtype": "F32", "shape": [...],
                 "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    the rest     the tensors' raw little-endian bytes, back to back

so reading it can never run code. chainrule writes `model.state_dict()` under its own names,
which for a `Sequential` are already `torch.nn.Sequential`'s (`1.weight`, `4.running_mean`),
plus an int64 scalar `num_batches_tracked` for each batch norm (PyTorch keeps that counter),
so `torch_model.load_state_dict(tensors, strict=True)` accepts the file. The `__metadata__`
holds chainrule's architecture JSON, so `chainrule.load` rebuilds the model from the file.

Before the `safetensors` package parses a file, `read_header` checks the header against the
file (length, JSON, dtypes, shapes, offsets) so a truncated or hand-edited file gives a
one-line `ModelFileError` naming what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from .._io import atomic_open
from .._version import __version__
from ..module import Module, describe, module_from_config
from ..serialize import FORMAT, Checkpoint
from ._common import check_readable, file_error, is_batchnorm, named_modules, require

SUFFIX = ".safetensors"
MAX_HEADER = 100 * 2**20  # bytes; the format's own readers refuse larger headers too
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
_FIX = "write it again with `chainrule.save(model, 'model.safetensors')` or safetensors' save_file"


def _require_numpy_backend():
    return require("safetensors.numpy", "reading and writing .safetensors files")


# ---- writing ----------------------------------------------------------------------------------
def torch_state_dict(model: Module) -> dict[str, np.ndarray]:
    """`model.state_dict()` as PyTorch names it: every parameter and buffer, plus an int64
    scalar `<bn>.num_batches_tracked` for each batch norm."""
    state = {name: np.ascontiguousarray(a) for name, a in model.state_dict().items()}
    for name, module in named_modules(model):
        if is_batchnorm(module):
            key = f"{name}.num_batches_tracked" if name else "num_batches_tracked"
            state[key] = np.array(int(getattr(module, "num_batches_tracked", 0)), np.int64)
    return state


def header_metadata(model: Module, metadata: dict | None = None) -> dict[str, str]:
    """The `__metadata__` strings: format tag, version, architecture and dtype as JSON."""
    from ..serialize import _jsonable

    params = model.parameters()
    return {
        "format": FORMAT,
        "chainrule_version": __version__,
        "model": json.dumps(describe(model)),
        "dtype": str(params[0].data.dtype) if params else "float32",
        "metadata": json.dumps(metadata or {}, default=_jsonable),
    }


def safetensors_bytes(model: Module, metadata: dict | None = None) -> bytes:
    """The whole `.safetensors` file for `model`, as bytes (for a download, say)."""
    st = _require_numpy_backend()
    return st.save(torch_state_dict(model), metadata=header_metadata(model, metadata))


def save_safetensors(
    model: Module, path: str | os.PathLike, metadata: dict | None = None, optimizer=None
) -> Path:
    """Write `model` to `path` as safetensors, atomically (temp file, then rename)."""
    path = Path(path)
    if optimizer is not None:
        raise ValueError(
            f"{path}: a .safetensors file holds weights only; save the optimizer's state "
            "in a chainrule .npz file instead"
        )
    data = safetensors_bytes(model, metadata)
    with atomic_open(path) as f:
        f.write(data)
    return path


# ---- reading ----------------------------------------------------------------------------------
def read_header(path: Path) -> tuple[dict, dict[str, str]]:
    """(tensor entries, `__metadata__`) from the file's header, checked against the file."""
    check_readable(path, "safetensors")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise file_error(path, f"truncated: {size} bytes, too short for a header", _FIX)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER:
            raise file_error(
                path,
                f"truncated or corrupt: its header claims {n} bytes but the file has "
                f"{size - 8} after the length",
                _FIX,
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise file_error(
            path, f"not a safetensors file (its header is not JSON: {exc})", _FIX
        ) from exc
    if not isinstance(header, dict):
        raise file_error(path, "not a safetensors file (its header is not a JSON object)", _FIX)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise file_error(path, "its __metadata__ is not a map of strings", _FIX)
    _check_entries(path, header, size - 8 - n)
    return header, meta


def _check_entries(path: Path, header: dict, data_bytes: int) -> None:
    """Every entry: a known dtype, a shape of whole numbers, offsets inside the data whose
    length is exactly shape × item size."""
    for name, spec in header.items():
        if not isinstance(spec, dict):
            raise file_error(path, f"tensor {name!r} has no description", _FIX)
        dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if dtype not in DTYPES:
            raise file_error(
                path,
                f"tensor {name!r} has dtype {dtype!r}, which chainrule cannot read "
                f"(it reads {', '.join(DTYPES)})",
                "convert it first, e.g. in PyTorch `model.float()` before saving",
            )
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise file_error(path, f"tensor {name!r} has a bad shape {shape!r}", _FIX)
        if not (
            isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
        ):
            raise file_error(path, f"tensor {name!r} has bad data_offsets {offsets!r}", _FIX)
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise file_error(
                path,
                f"tensor {name!r} lies at bytes {begin}..{end}, outside the "
                f"{data_bytes} data bytes the file holds (truncated or edited)",
                _FIX,
            )
        expected = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if end - begin != expected:
            raise file_error(
                path,
                f"tensor {name!r} of {dtype}{shape} needs {expected} bytes, "
                f"its offsets span {end - begin}",
                _FIX,
            )


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(name → array, `__metadata__`) of any safetensors file, checked first (`read_header`)."""
    path = Path(path)
    _, meta = read_header(path)
    st = _require_numpy_backend()
    try:
        tensors = st.load(path.read_bytes())
    except Exception as exc:  # the package's own checks (e.g. overlapping tensors)
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise file_error(path, f"corrupt safetensors file ({problem})", _FIX) from exc
    return {name: np.asarray(a) for name, a in tensors.items()}, meta


def _json_field(path: Path, meta: dict[str, str], key: str):
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise file_error(path, f"its __metadata__ {key!r} is not JSON ({exc})", _FIX) from exc


def load_safetensors_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Rebuild the model a chainrule `.safetensors` file describes, with its weights."""
    from .weights import load_state

    path = Path(path)
    tensors, meta = read_tensors(path)
    if "model" not in meta:
        raise file_error(
            path,
            "it holds weights but no chainrule architecture (written by another tool?)",
            "build the same model in chainrule and call `chainrule.load_weights(model, path)`",
        )
    spec = _json_field(path, meta, "model")
    try:
        model = module_from_config(spec)
    except Exception as exc:
        raise file_error(
            path,
            f"cannot rebuild the architecture ({type(exc).__name__}: {exc})",
            "it may need a newer chainrule",
        ) from exc
    dtype = np.dtype(meta.get("dtype", "float32"))
    if dtype.kind != "f":
        raise file_error(path, f"model dtype {dtype} is not a float type", _FIX)
    model.astype(dtype)
    load_state(model, tensors, path)
    metadata = _json_field(path, meta, "metadata") if "metadata" in meta else {}
    if not isinstance(metadata, dict):
        raise file_error(path, "its metadata is not a JSON object", _FIX)
    model.eval()
    return Checkpoint(model, metadata, None, path, meta.get("chainrule_version", ""))
