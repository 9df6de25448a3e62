"""Hostile model files in every format: one loader checks them all before anything is built.

Each format is only a reader of headers (`chainrule.formats`); `chainrule.load` checks the
architecture against the stored shapes and bounds (`chainrule.model_file_checks`) before it
builds a layer or reads an array, so what a tiny file may cost is bounded whatever its format.
"""

import builtins
import io
import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import model_file_checks, serialize
from chainrule.formats import READERS
from chainrule.model_file_checks import ArraySpec, ModelFile, ModelFileError, check_model_file

HUGE = {"type": "chainrule.Sequential",
        "layers": [{"type": "chainrule.Dense", "in_features": 12000, "out_features": 12000,
                    "bias": False}]}
PEAK_BOUND = 500_000  # bytes (docs/interop.md: "under half a megabyte")


def refused(path, match: str):
    """(peak bytes traced, seconds) of `cr.load(path)`, which must raise a one-line
    ModelFileError matching `match` and naming the file."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=match) as info:
            cr.load(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return peak, seconds


# ---- tiny files in each format ------------------------------------------------------------------
def safetensors_file(path: Path, model_json, metadata: dict | None = None, tensors=None) -> Path:
    """A safetensors file written by hand: tensors (name → float32 array) and __metadata__."""
    tensors = {"0.weight": np.zeros((1, 1), np.float32)} if tensors is None else tensors
    header, data = {}, b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
        code = {"f4": "F32", "f8": "F64", "i8": "I64"}[a.dtype.str[1:]]
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    meta = {"format": "chainrule/1", "model": json.dumps(model_json, separators=(",", ":"))}
    header["__metadata__"] = {**meta, **(metadata or {})}
    text = json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def onnx_file(path: Path, model_json, props: dict | None = None, initializers=None) -> Path:
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    inits = initializers if initializers is not None else [
        onnx.numpy_helper.from_array(np.zeros((1, 1), np.float32), "0.weight")]
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
                         initializer=inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    h.set_model_props(proto, {"chainrule.model": json.dumps(model_json, separators=(",", ":")),
                              **(props or {})})
    path.write_bytes(proto.SerializeToString())
    return path


def npz_file(path: Path, model: cr.Module, change) -> Path:
    """`model` saved as .npz, then its JSON edited by `change(meta)`."""
    cr.save(model, path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    change(meta)
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)))
    return path


# ---- 1. one pipeline: every format goes through the one check --------------------------------
def test_every_reader_is_checked_before_anything_is_built_or_read(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("safetensors")
    model = cr.Sequential(cr.Dense(3, 2, seed=0), cr.ReLU())
    events = []
    real_check, real_build = serialize.check_model_file, serialize.build

    def check(found):
        real_read = found.read
        found.read = lambda name: events.append("read") or real_read(name)
        events.append("check")
        return real_check(found)

    monkeypatch.setattr(serialize, "check_model_file", check)
    monkeypatch.setattr(serialize, "build", lambda c: events.append("build") or real_build(c))
    for suffix in READERS:
        events.clear()
        loaded = cr.load(cr.save(model, tmp_path / f"m{suffix}"))
        assert np.array_equal(loaded.state_dict()["0.weight"], model.state_dict()["0.weight"])
        assert events[:2] == ["check", "build"] and set(events[2:]) == {"read"}, suffix
    assert sorted(READERS) == [".npz", ".onnx", ".safetensors"]


@pytest.mark.parametrize("suffix", sorted(READERS))
def test_a_dense_12000_by_12000_is_refused_before_allocation_in_every_format(suffix, tmp_path):
    path = tmp_path / f"hostile{suffix}"
    if suffix == ".safetensors":
        safetensors_file(path, HUGE)
        assert path.stat().st_size == 265
    elif suffix == ".onnx":
        onnx_file(path, HUGE)
        assert path.stat().st_size < 400
    else:
        npz_file(path, cr.Sequential(cr.Dense(1, 1, bias=False)), lambda m: m.update(model=HUGE))
        assert path.stat().st_size < 4000
    peak, _ = refused(path, r"layer 0 needs '0.weight' of shape \[12000, 12000\]")
    assert peak < PEAK_BOUND, f"refusing a {path.stat().st_size}-byte file took {peak:,} bytes"


# ---- bounds on what a file may ask for ----------------------------------------------------------
def _conv_model():
    return cr.Sequential(cr.Reshape((1, 4, 4)), cr.Conv2D(1, 1, 3, seed=0), cr.Flatten())


def _set(layer: int, **values):
    return lambda meta: meta["model"]["layers"][layer].update(values)


@pytest.mark.parametrize("build, change, match", [
    (_conv_model, _set(1, padding=1000), r"layer 1 \(Conv2D\).*padding \[1000, 1000\] is "
                                         r"larger than the kernel"),
    (_conv_model, _set(1, stride=10**6), "stride must be at most 256"),
    (_conv_model, _set(1, kernel_size=[3, 3], padding=[0, -1]), "padding must be an integer ≥ 0"),
    (lambda: cr.Sequential(cr.MaxPool2D(2)), _set(0, kernel_size=10**5), "at most 256"),
    (lambda: cr.Sequential(cr.AvgPool2D(2)), _set(0, stride=0), "stride must be an integer ≥ 1"),
], ids=["conv-padding", "conv-stride", "conv-negative-padding", "pool-kernel", "pool-stride"])
def test_windows_out_of_bounds_are_refused(build, change, match, tmp_path):
    path = npz_file(tmp_path / "m.npz", build(), change)
    refused(path, match)


def test_a_small_npz_with_conv_padding_1000_is_refused(tmp_path):
    path = npz_file(tmp_path / "m.npz", _conv_model(), _set(1, padding=1000))
    assert path.stat().st_size < 3000
    peak, _ = refused(path, "padding")
    assert peak < PEAK_BOUND


def test_depth_and_layer_count_are_bounded(tmp_path):
    nested = {"type": "chainrule.ReLU"}
    for _ in range(model_file_checks.MAX_MODEL_DEPTH + 1):
        nested = {"type": "chainrule.Sequential", "layers": [nested]}
    refused(safetensors_file(tmp_path / "deep.safetensors", nested, tensors={}), "nests more")
    wide = {"type": "chainrule.Sequential",
            "layers": [{"type": "chainrule.ReLU"}] * (model_file_checks.MAX_LAYERS + 1)}
    refused(safetensors_file(tmp_path / "wide.safetensors", wide, tensors={}),
            "more than 10000 layers")


def test_total_parameter_count_is_bounded_before_reading(tmp_path):
    """Stored arrays are bounded by the file's bytes in every reader; the loader adds a cap on
    the total, checked from the headers (the array is never read here)."""
    big = ArraySpec((model_file_checks.MAX_PARAMETERS + 1,), np.dtype(np.float32))
    found = ModelFile(tmp_path / "x.npz", {"type": "chainrule.ReLU"}, {"w": big},
                      read=lambda name: pytest.fail("read before the check"))
    with pytest.raises(ModelFileError, match="more than chainrule loads"):
        check_model_file(found)


# ---- 2. ONNX external data and other things chainrule never writes ----------------------------
def _exported(tmp_path):
    pytest.importorskip("onnx")
    model = cr.Sequential(cr.Dense(4, 2, seed=0))
    return model, cr.save(model, tmp_path / "m.onnx")


def test_onnx_external_data_is_refused_and_the_named_file_never_opened(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    _, path = _exported(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype=np.float32).tobytes())  # exactly 0.weight's size
    proto = onnx.load_model_from_string(path.read_bytes())
    weight = next(t for t in proto.graph.initializer if t.name == "0.weight")
    onnx.external_data_helper.set_external_data(weight, location="secret.bin")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    path.write_bytes(proto.SerializeToString())
    monkeypatch.chdir(tmp_path)
    opened = []
    real_open, real_io_open = builtins.open, io.open

    def spy(real):
        def opener(file, *args, **kwargs):
            opened.append(Path(str(file)).name if not isinstance(file, int) else file)
            return real(file, *args, **kwargs)
        return opener

    monkeypatch.setattr(builtins, "open", spy(real_open))
    monkeypatch.setattr(io, "open", spy(real_io_open))
    with pytest.raises(ModelFileError, match=r"another file \('secret.bin'.*external data"):
        cr.load(path)
    with pytest.raises(ModelFileError, match="external data"):
        cr.load_weights(cr.Sequential(cr.Dense(4, 2)), path)
    assert "secret.bin" not in opened and "m.onnx" in opened


def _sparse(onnx, proto):
    values = onnx.numpy_helper.from_array(np.ones(1, np.float32), "s")
    indices = onnx.numpy_helper.from_array(np.zeros(1, np.int64), "i")
    proto.graph.sparse_initializer.append(onnx.helper.make_sparse_tensor(values, indices, [2]))


def _typed_field(onnx, proto):
    weight = next(t for t in proto.graph.initializer if t.name == "0.weight")
    weight.float_data.extend(np.frombuffer(weight.raw_data, np.float32).tolist())
    weight.ClearField("raw_data")


def _wrong_length(onnx, proto):
    weight = next(t for t in proto.graph.initializer if t.name == "0.weight")
    weight.dims[0] = 12000  # raw_data still holds 8 floats


def _external_constant(onnx, proto):
    t = onnx.numpy_helper.from_array(np.zeros(2, np.float32), "c")
    onnx.external_data_helper.set_external_data(t, location="/etc/passwd")
    t.data_location = onnx.TensorProto.EXTERNAL
    proto.graph.node.append(onnx.helper.make_node("Constant", [], ["c"], value=t))


def _string_tensor(onnx, proto):
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(["x"]), "s"))


@pytest.mark.parametrize("edit, match", [
    (_sparse, "sparse initializers"), (_typed_field, "not stored as raw bytes"),
    (_wrong_length, "not what its shape needs"), (_external_constant, "external data"),
    (_string_tensor, "ONNX data type 8"),
], ids=["sparse", "float_data", "wrong-length", "external-constant", "string"])
def test_onnx_content_chainrule_never_writes_is_refused(edit, match, tmp_path):
    onnx = pytest.importorskip("onnx")
    _, path = _exported(tmp_path)
    proto = onnx.load_model_from_string(path.read_bytes())
    edit(onnx, proto)
    path.write_bytes(proto.SerializeToString())
    refused(path, match)


# ---- 4. the one-line contract: bad dtype, deep JSON, metadata of the wrong type --------------
@pytest.mark.parametrize("suffix", [".safetensors", ".onnx"])
def test_a_bad_dtype_string_is_a_model_file_error(suffix, tmp_path):
    model = {"type": "chainrule.Sequential", "layers": [{"type": "chainrule.ReLU"}]}
    for dtype in ("nonsense", "int64", "object"):
        path = tmp_path / f"m{suffix}"
        if suffix == ".onnx":
            onnx_file(path, model, {"chainrule.dtype": dtype}, initializers=[])
        else:
            safetensors_file(path, model, {"dtype": dtype}, tensors={})
        refused(path, "model dtype")


@pytest.mark.parametrize("suffix", sorted(READERS))
@pytest.mark.parametrize("where", ["model", "metadata"])
def test_deeply_nested_json_is_a_model_file_error(suffix, where, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    relu = {"type": "chainrule.Sequential", "layers": [{"type": "chainrule.ReLU"}]}
    path = tmp_path / f"m{suffix}"
    if suffix == ".npz":
        model = cr.Sequential(cr.ReLU())
        cr.save(model, path)
        text = json.dumps({"format": "chainrule/1", "model": "@", "arrays": {}})
        text = text.replace('"@"', deep if where == "model" else json.dumps(relu))
        if where == "metadata":
            text = text[:-1] + ', "metadata": ' + deep + "}"
        np.savez(path, __meta__=np.array(text))
    elif suffix == ".safetensors":
        key = "model" if where == "model" else "metadata"
        header = {"__metadata__": {"format": "chainrule/1", "model": json.dumps(relu), key: deep}}
        text = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text)
    else:
        props = {"chainrule.metadata": deep} if where == "metadata" else {}
        onnx_file(path, relu, props, initializers=[])
        if where == "model":
            onnx = pytest.importorskip("onnx")
            proto = onnx.load_model_from_string(path.read_bytes())
            proto.metadata_props[0].value = deep
            path.write_bytes(proto.SerializeToString())
    refused(path, "JSON is corrupt|nested more than")


BAD_METADATA = {"training": "x", "history": "y", "data": 5, "class_names": "abc",
                "metrics": [1], "input_shape": {"a": 1}, "note": "kept"}


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_metadata_fields_of_the_wrong_type_are_dropped_one_by_one(suffix, tmp_path):
    pytest.importorskip("safetensors")
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0))
    path = cr.save(model, tmp_path / f"m{suffix}", metadata=BAD_METADATA)
    ckpt = cr.load_checkpoint(path)
    assert ckpt.metadata == {"note": "kept"}
    assert sorted(ckpt.ignored) == sorted(set(BAD_METADATA) - {"note"})
    good = {"training": {"config": {}}, "history": {"loss": [1.0]}, "class_names": ["a"]}
    assert cr.load_checkpoint(cr.save(model, tmp_path / f"g{suffix}", metadata=good)).metadata \
        == good


def test_web_model_page_answers_for_a_file_with_bad_metadata(tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    pytest.importorskip("safetensors")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from chainrule.web import server

    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0))
    for suffix in (".npz", ".safetensors"):
        path = cr.save(model, tmp_path / f"m{suffix}", metadata=BAD_METADATA)
        client = TestClient(server.build_app(str(path), host="0.0.0.0"))
        r = client.get("/api/model")
        assert r.status_code == 200, r.text
        assert r.json()["training"] == {} and r.json()["history"]["batch_loss"] == []
        assert client.get("/api/model.safetensors").status_code == 200
