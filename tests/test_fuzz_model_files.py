"""Fuzzing the model readers (.npz, .safetensors, .onnx): whatever the bytes, `load` either
returns a model or raises `ModelFileError` (one line), never another exception, a hang or a
large allocation. Derandomized and bounded, so the run is the same, and short, every time."""

import io
import json
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.serialize import ModelFileError

FUZZ = settings(derandomize=True, deadline=None, max_examples=150, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MEMORY_BOUND = 8_000_000  # bytes: the files here are < 10 KB; a reader stays well under this


def reference_model():
    return cr.Sequential(cr.Reshape((1, 4, 4)), cr.Conv2D(1, 2, 3, seed=0),
                         cr.BatchNorm2d(2), cr.ReLU(), cr.Flatten(), cr.Dense(8, 3, seed=1),
                         cr.Dropout(0.1, seed=3))


def reference_bytes() -> bytes:
    model = reference_model()
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    with tempfile.TemporaryDirectory() as folder:
        path = cr.save(model, Path(folder) / "m.npz", metadata={"note": "fuzz"}, optimizer=opt)
        return path.read_bytes()


VALID = reference_bytes()


def parts(data: bytes) -> tuple[dict, dict]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def pack(meta, arrays: dict) -> bytes:
    buffer = io.BytesIO()
    text = meta if isinstance(meta, str) else json.dumps(meta)
    np.savez(buffer, **arrays, __meta__=np.array(text))
    return buffer.getvalue()


def assert_safe(data: bytes, suffix: str = ".npz") -> None:
    """`load` on these bytes returns a model or raises a one-line ModelFileError, in bounded
    memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            try:
                model = cr.load(path)
            except ModelFileError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)
            else:
                assert isinstance(model, cr.Module)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"reading a {len(data)}-byte file took {peak:,} bytes"


def test_the_reference_file_loads():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.npz"
        path.write_bytes(VALID)
        assert isinstance(cr.load(path), cr.Sequential)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    assert_safe(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_behind_a_zip_signature(data):
    assert_safe(b"PK\x03\x04" + data)


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1))
def test_truncated_files(cut):
    assert_safe(VALID[:cut])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                min_size=1, max_size=8))
def test_flipped_bytes(changes):
    data = bytearray(VALID)
    for offset, value in changes:
        data[offset] = value
    assert_safe(bytes(data))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)


def paths_of(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*prefix, i))


META, ARRAYS = parts(VALID)
META_PATHS = list(paths_of(META))


def replaced(value, path, new):
    if not path:
        return new
    value = json.loads(json.dumps(value))
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(META_PATHS), JSON), min_size=1, max_size=3))
def test_mutated_json_metadata(mutations):
    meta = META
    for path, new in mutations:
        try:
            meta = replaced(meta, path, new)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
            pass
    assert_safe(pack(meta, ARRAYS))


@FUZZ
@given(st.sampled_from(META_PATHS), st.integers(-3, 100_000) | st.sampled_from(
    [10**9, 2**31, 2**63, -1, 0, 1.5, "3", [3, 3], [10**6, 10**6], None, True]))
def test_sizes_in_the_json(path, new):
    assert_safe(pack(replaced(META, path, new), ARRAYS))


ARRAY_CHANGES = st.sampled_from(["shape", "dtype", "nan", "drop", "extra", "empty", "big"])


@FUZZ
@given(st.sampled_from(sorted(ARRAYS)), ARRAY_CHANGES, st.booleans())
def test_mutated_arrays(name, change, relist):
    arrays = dict(ARRAYS)
    meta = json.loads(json.dumps(META))
    a = arrays[name]
    if change == "shape":
        arrays[name] = np.zeros((*a.shape, 2), a.dtype)
    elif change == "dtype":
        arrays[name] = a.astype(np.float64 if a.dtype != np.float64 else np.int16)
    elif change == "nan":
        arrays[name] = np.full(a.shape, np.nan, np.float32)
    elif change == "drop":
        del arrays[name]
    elif change == "extra":
        arrays["extra." + name] = a
    elif change == "empty":
        arrays[name] = np.zeros((0,) + a.shape[1:], a.dtype)
    else:
        arrays[name] = np.zeros((300, 300), np.float32)  # 360 KB: fine to read, wrong to use
    if relist:  # make the JSON listing agree with the new arrays, so deeper checks run
        meta["arrays"] = {k: {"shape": list(v.shape), "dtype": v.dtype.str}
                          for k, v in arrays.items()}
    assert_safe(pack(meta, arrays))


@pytest.mark.parametrize("text", ["", "null", "[]", "{}", '{"format": "chainrule/1"}',
                                  "1" * 5000, "[" * 100_000, '{"format": "chainrule/1", '
                                  '"arrays": {}, "model": {"type": "Sequential", "layers": ' +
                                  "[" * 5000 + "]" * 5000 + "}}"])
def test_hostile_json_text(text):
    assert_safe(pack(text, {}))


# ---- .safetensors -------------------------------------------------------------------------------
FEW = settings(FUZZ, max_examples=60)


def reference_safetensors() -> bytes:
    pytest.importorskip("safetensors")
    model = reference_model()
    with tempfile.TemporaryDirectory() as folder:
        path = cr.save(model, Path(folder) / "m.safetensors", metadata={"note": "fuzz",
                                                                       "class_names": ["a"]})
        return path.read_bytes()


def st_parts(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def st_pack(header, body: bytes) -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(text)) + text + body


@pytest.fixture(scope="module")
def st_valid():
    return reference_safetensors()


def test_the_reference_safetensors_loads(st_valid):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.safetensors"
        path.write_bytes(st_valid)
        assert isinstance(cr.load(path), cr.Sequential)


@FEW
@given(data=st.data())
def test_safetensors_truncated_and_flipped(st_valid, data):
    blob = bytearray(st_valid[: data.draw(st.integers(0, len(st_valid)))])
    for _ in range(data.draw(st.integers(0, 6))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    assert_safe(bytes(blob), ".safetensors")


@FEW
@given(st.binary(max_size=600), st.integers(0, 2**64 - 1) | st.integers(0, 700))
def test_safetensors_random_headers(body, length):
    assert_safe(struct.pack("<Q", length) + body, ".safetensors")


def _inner_paths(header: dict):
    """Paths into the header, and into each JSON document inside __metadata__."""
    for path in paths_of(header):
        yield ("header", path)
    for key, text in header["__metadata__"].items():
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        for path in paths_of(doc):
            yield (key, path)


@FEW
@given(data=st.data())
def test_safetensors_mutated_headers_shapes_dtypes_and_metadata(st_valid, data):
    header, body = st_parts(st_valid)
    where, path = data.draw(st.sampled_from(list(_inner_paths(header))))
    new = data.draw(JSON | st.sampled_from(["F16", "BF16", "I64", "nonsense", [12000, 12000],
                                            [0, 10**9], 10**9, -1, "x"]))
    if where == "header":
        header = replaced(header, path, new)
    else:
        inner = replaced(json.loads(header["__metadata__"][where]), path, new)
        header["__metadata__"][where] = json.dumps(inner)
    assert_safe(st_pack(header, body), ".safetensors")


# ---- .onnx --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_valid():
    pytest.importorskip("onnx")
    model = cr.Sequential(cr.Conv2D(1, 2, 3, seed=0), cr.BatchNorm2d(2), cr.ReLU(),
                          cr.MaxPool2D(2, ceil_mode=True), cr.Flatten(), cr.Dense(18, 3, seed=1))
    with tempfile.TemporaryDirectory() as folder:
        path = cr.export_onnx(model, Path(folder) / "m.onnx", input_shape=(1, 8, 8))
        return path.read_bytes()


def test_the_reference_onnx_loads(onnx_valid):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        path.write_bytes(onnx_valid)
        assert isinstance(cr.load(path), cr.Sequential)


@FEW
@given(data=st.data())
def test_onnx_truncated_and_flipped(onnx_valid, data):
    blob = bytearray(onnx_valid[: data.draw(st.integers(0, len(onnx_valid)))])
    for _ in range(data.draw(st.integers(0, 6))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    assert_safe(bytes(blob), ".onnx")


TENSOR_EDITS = st.sampled_from(["dims-big", "dims-negative", "dims-drop", "type-string",
                                "type-int32", "raw-short", "external", "typed-field", "rename"])


def _edit_tensor(onnx, t, edit: str) -> None:
    if edit == "dims-big":
        t.dims[0] = 12000
    elif edit == "dims-negative":
        t.dims[0] = -3
    elif edit == "dims-drop":
        t.dims.pop()
    elif edit == "type-string":
        t.data_type = onnx.TensorProto.STRING
    elif edit == "type-int32":
        t.data_type = onnx.TensorProto.INT32
    elif edit == "raw-short":
        t.raw_data = t.raw_data[:-4]
    elif edit == "external":
        onnx.external_data_helper.set_external_data(t, location="model.npz")
        t.data_location = onnx.TensorProto.EXTERNAL
    elif edit == "typed-field":
        t.float_data.append(1.0)
    else:
        t.name = "0.bias"


@FEW
@given(data=st.data())
def test_onnx_mutated_tensors_and_metadata(onnx_valid, data):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load_model_from_string(onnx_valid)
    if data.draw(st.booleans()):
        t = data.draw(st.sampled_from(list(proto.graph.initializer)))
        _edit_tensor(onnx, t, data.draw(TENSOR_EDITS))
    else:
        prop = data.draw(st.sampled_from([p for p in proto.metadata_props
                                          if p.key.startswith("chainrule.")]))
        if prop.key == "chainrule.dtype":
            prop.value = data.draw(st.sampled_from(["float64", "int8", "float128", "", "?"]))
        else:
            doc = json.loads(prop.value)
            path = data.draw(st.sampled_from(list(paths_of(doc))))
            new = data.draw(JSON | st.sampled_from([10**6, 0, -1, [10**4, 10**4], "x"]))
            prop.value = json.dumps(replaced(doc, path, new))
    assert_safe(proto.SerializeToString(), ".onnx")
