"""Reading back the `.onnx` files chainrule exports: architecture JSON and initializer headers.

chainrule's ONNX files (`chainrule.interop.onnx_export`) hold the weights as initializers under
the model's state-dict names, their bytes in `raw_data`, and chainrule's architecture, dtype,
tied parameters and metadata as JSON in the model's `metadata_props`. `read_model_file`
describes such a file as a `ModelFile`; a tensor's bytes become an array only when asked.

Anything chainrule never writes is refused before any tensor is read: initializers whose data
lives in another file (ONNX *external data*: `onnx.numpy_helper.to_array` would read any file
the `location` names), sparse initializers, tensors kept in typed fields instead of
`raw_data`, segments, and dtypes other than float16/32/64 and int64.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._optional import require
from ..model_file_checks import ArraySpec, ModelFile, _error, parse_json

SUFFIX = ".onnx"
FIX = "export it again with `chainrule export MODEL --format onnx -o FILE`"
PROPS = ("chainrule.model", "chainrule.dtype", "chainrule.tied", "chainrule.metadata")
# ONNX TensorProto.DataType codes chainrule writes → NumPy (little-endian, as raw_data is)
DTYPES = {1: "<f4", 10: "<f2", 11: "<f8", 7: "<i8"}
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
                 "uint64_data")


def _onnx():
    return require("onnx", "reading .onnx files")


def _tensors_in_nodes(graph):
    """Every tensor held in a node attribute, subgraphs included (iteratively)."""
    graphs = [graph]
    while graphs:
        g = graphs.pop()
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def _refuse_foreign_data(path: Path, proto) -> None:
    """External data anywhere, sparse initializers, and initializers not in raw_data."""
    graph = proto.graph
    for t in (*graph.initializer, *_tensors_in_nodes(graph)):
        if t.data_location == 1 or len(t.external_data):  # TensorProto.EXTERNAL
            location = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise _error(path, f"tensor {t.name[:60]!r} keeps its data in another file "
                         f"({location[:60]!r}: ONNX external data), which chainrule never "
                         "reads", FIX)
    if len(graph.sparse_initializer):
        raise _error(path, "it holds sparse initializers, which chainrule never writes", FIX)
    for t in graph.initializer:
        if t.data_type not in DTYPES:
            raise _error(path, f"initializer {t.name[:60]!r} has ONNX data type {t.data_type}, "
                         "which chainrule never writes", FIX)
        if t.HasField("segment") or any(len(getattr(t, f)) for f in _TYPED_FIELDS):
            raise _error(path, f"initializer {t.name[:60]!r} is not stored as raw bytes, as "
                         "chainrule writes it", FIX)
        if any(d < 0 for d in t.dims):
            raise _error(path, f"initializer {t.name[:60]!r} has a negative dimension", FIX)
        if len(t.raw_data) != math.prod(t.dims) * np.dtype(DTYPES[t.data_type]).itemsize:
            raise _error(path, f"initializer {t.name[:60]!r} of shape {list(t.dims)[:8]} holds "
                         f"{len(t.raw_data)} bytes, not what its shape needs", FIX)


def read_proto(path: Path):
    """The parsed ModelProto (no external data followed: it is parsed from the bytes)."""
    onnx = _onnx()
    if not path.exists():
        raise _error(path, "no such ONNX file", "check the path")
    if path.is_dir():
        raise _error(path, "a folder, not an ONNX file", "pass the file itself")
    try:
        proto = onnx.load_model_from_string(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise _error(path, f"not a readable ONNX file ({type(exc).__name__})", FIX) from exc
    if not proto.graph.node:
        raise _error(path, "not a readable ONNX file (it holds no graph)", FIX)
    return proto


def _array(t) -> np.ndarray:
    return np.frombuffer(bytearray(t.raw_data), DTYPES[t.data_type]).reshape(tuple(t.dims))


def read_model_file(path: Path) -> ModelFile:
    """The `ModelFile` of an ONNX file chainrule exported; every initializer is listed (graph
    constants too: the model may leave those unused)."""
    proto = read_proto(path)
    props = {p.key: p.value for p in proto.metadata_props if p.key in PROPS}
    if "chainrule.model" not in props:
        raise _error(path, "an ONNX file chainrule did not export",
                     "chainrule reads back only the ONNX files it wrote")
    _refuse_foreign_data(path, proto)
    tensors = {t.name: t for t in proto.graph.initializer}
    if len(tensors) != len(proto.graph.initializer):
        raise _error(path, "two initializers share a name", FIX)

    def field(key: str):
        return parse_json(path, props[key], key) if key in props else None

    return ModelFile(
        path=path,
        architecture=field("chainrule.model"),
        arrays={n: ArraySpec(tuple(t.dims), np.dtype(DTYPES[t.data_type]))
                for n, t in tensors.items()},
        read=lambda name: _array(tensors[name]),
        dtype=props.get("chainrule.dtype"),
        tied=field("chainrule.tied"),
        metadata=field("chainrule.metadata"),
        version=proto.producer_version[:40],
        unused_ok=frozenset(tensors),
    )
