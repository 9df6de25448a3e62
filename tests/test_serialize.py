"""Model files: exact round trips, and refusal of anything chainrule did not write intact."""

import json
import zipfile

import numpy as np
import pytest

import chainrule as cr
from chainrule import serialize
from chainrule.serialize import ModelFileError, load, load_checkpoint, save


def small_model(dtype=np.float32):
    return cr.Sequential(cr.Flatten(), cr.Dense(16, 8, seed=0, dtype=dtype), cr.ReLU(),
                         cr.Dense(8, 3, seed=1, dtype=dtype))


def trained(rng, steps=3):
    model = small_model()
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = cr.SoftmaxCrossEntropy()
    x = rng.random((10, 4, 4), dtype=np.float32)
    y = rng.integers(0, 3, 10)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    return model, opt, x


def rewrite(path, arrays, meta):
    """Write an npz by hand (bypassing save's checks) with `meta` as its JSON."""
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)))


def contents(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    return arrays, meta


def test_round_trip_weights_outputs_metadata_and_optimizer(tmp_path, rng):
    model, opt, x = trained(rng)
    path = save(model, tmp_path / "m.npz", metadata={"class_names": ["a", "b", "c"],
                                                     "acc": np.float32(0.5)}, optimizer=opt)
    ckpt = load_checkpoint(path)
    for (name, a), (_, b) in zip(model.named_parameters(), ckpt.model.named_parameters()):
        assert np.array_equal(a.data, b.data) and a.data.dtype == b.data.dtype, name
    np.testing.assert_array_equal(ckpt.model(x), model(x))  # same weights, same kernels
    assert ckpt.metadata == {"class_names": ["a", "b", "c"], "acc": 0.5}
    assert ckpt.chainrule_version == cr.__version__
    fresh = cr.optim.SGD(ckpt.model.parameters(), lr=1.0)
    fresh.load_state_dict(ckpt.optimizer)
    assert fresh.param_groups[0]["momentum"] == 0.9
    for a, b in zip(opt.state, fresh.state):
        assert np.array_equal(a["momentum_buffer"], b["momentum_buffer"])
    assert not load(path).training  # ready to predict


def test_adam_state_with_its_0d_step_counter_round_trips(tmp_path, rng):
    model = small_model()
    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = cr.SoftmaxCrossEntropy()
    x, y = rng.random((6, 16), dtype=np.float32), rng.integers(0, 3, 6)
    for _ in range(2):
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    ckpt = load_checkpoint(save(model, tmp_path / "m.npz", optimizer=opt))
    assert ckpt.optimizer["state"][0]["step"].shape == ()
    fresh = cr.optim.Adam(ckpt.model.parameters())
    fresh.load_state_dict(ckpt.optimizer)
    assert int(fresh.state[0]["step"]) == 2 and fresh.param_groups[0]["betas"] == (0.9, 0.999)
    for a, b in zip(opt.state, fresh.state):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_file_holds_arrays_and_a_json_string_only(tmp_path, rng):
    model, opt, _ = trained(rng)
    path = save(model, tmp_path / "m.npz", optimizer=opt)
    arrays, meta = contents(path)
    assert set(arrays) == {"1.weight", "1.bias", "3.weight", "3.bias",
                           "optim.0.momentum_buffer", "optim.1.momentum_buffer",
                           "optim.2.momentum_buffer", "optim.3.momentum_buffer"}
    assert all(a.dtype.kind == "f" for a in arrays.values())
    assert meta["format"] == "chainrule/1"
    assert meta["model"]["type"] == "chainrule.Sequential"
    assert meta["arrays"]["1.weight"] == {"shape": [8, 16], "dtype": "<f4"}


def test_float64_model_round_trips(tmp_path):
    model = small_model(np.float64)
    out = load(save(model, tmp_path / "m.npz"))
    assert out.parameters()[0].data.dtype == np.float64


def test_folder_means_its_model_npz(tmp_path):
    save(small_model(), tmp_path)
    assert (tmp_path / "model.npz").is_file()
    assert isinstance(load(tmp_path), cr.Sequential)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = save(small_model(), tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(serialize.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(small_model(), path)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated_file_is_refused(tmp_path, cut):
    path = save(small_model(), tmp_path / "m.npz")
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="bad.npz.*(corrupt|truncated|not)"):
        load(bad)


def test_corrupted_bytes_are_refused(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("1.weight.npy")
    data[info.header_offset + 200] ^= 0xFF  # inside the array's bytes: CRC mismatch
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt"):
        load(path)


def test_wrong_shape_for_the_architecture_is_refused(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    arrays["1.weight"] = np.zeros((8, 15), np.float32)
    meta["arrays"]["1.weight"]["shape"] = [8, 15]  # consistent listing, wrong for Dense(16, 8)
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match=r"'1.weight' of shape \[8, 16\].*\[8, 15\]"):
        load(path)


def test_array_disagreeing_with_its_listing_is_refused(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    arrays["3.bias"] = np.zeros(4, np.float32)
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match="3.bias"):
        load(path)


def test_wrong_dtype_is_refused(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    arrays["3.bias"] = arrays["3.bias"].astype(np.float64)
    meta["arrays"]["3.bias"]["dtype"] = "<f8"
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match="3.bias.*float64"):
        load(path)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_missing_or_extra_arrays_are_refused(tmp_path, change):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    if change == "missing":
        del arrays["1.bias"]
        del meta["arrays"]["1.bias"]
    else:
        arrays["9.weight"] = np.zeros(3, np.float32)
        meta["arrays"]["9.weight"] = {"shape": [3], "dtype": "<f4"}
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match="1.bias" if change == "missing" else "9.weight"):
        load(path)


class Boom:
    """Unpickling this would create a file: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bearing_npz_is_refused_without_running_it(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    marker = tmp_path / "pwned"
    arrays["1.bias"] = np.array([Boom(str(marker))], dtype=object)
    meta["arrays"]["1.bias"] = {"shape": [1], "dtype": "|O"}
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)), allow_pickle=True)
    with pytest.raises(ModelFileError, match="pickled"):
        load(path)
    assert not marker.exists()


def test_pickled_meta_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, __meta__=np.array({"format": "chainrule/1"}, dtype=object))
    with pytest.raises(ModelFileError, match="pickled"):
        load(path)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "not an .npz"),
        ("npy", "single .npy"),
        ("plain_npz", "no __meta__"),
        ("bad_json", "JSON is corrupt"),
        ("other_format", "unsupported model format"),
        ("unknown_layer", "cannot rebuild"),
    ],
)
def test_non_chainrule_files_are_refused(tmp_path, kind, message):
    path = tmp_path / "x.npz"
    if kind == "text":
        path.write_text("hello")
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "plain_npz":
        np.savez(path, weight=np.zeros(3))
    elif kind == "bad_json":
        np.savez(path, __meta__=np.array("{not json"))
    elif kind == "other_format":
        np.savez(path, __meta__=np.array(json.dumps({"format": "keras/3"})))
    else:
        save(small_model(), path)
        arrays, meta = contents(path)
        meta["model"]["layers"][0]["type"] = "Teleporter"
        rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="no such model file"):
        load(tmp_path)  # a folder without model.npz


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_top_level_exports():
    assert cr.save is save and cr.load is load


# ---- issue 14: shared weights, reused layers, hostile sizes, layer names, dtypes, modes --------
def tied_model():
    d1, d2 = cr.Dense(4, 4, seed=0), cr.Dense(4, 4, seed=1)
    d2.weight = d1.weight
    return cr.Sequential(d1, cr.ReLU(), d2), d1, d2


def test_a_shared_parameter_is_listed_and_stepped_once(rng):
    model, d1, d2 = tied_model()
    assert len(model.parameters()) == 3  # weight once, two biases
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # like torch
    assert model.num_parameters() == 16 + 4 + 4
    x, y = rng.random((5, 4)).astype(np.float32), rng.integers(0, 4, 5)
    loss_fn = cr.SoftmaxCrossEntropy()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    before, grad = d1.weight.data.copy(), d1.weight.grad.copy()
    cr.optim.SGD(model.parameters(), lr=0.1).step()
    np.testing.assert_allclose(d1.weight.data, before - 0.1 * grad, rtol=1e-6)
    assert d2.weight is d1.weight


def test_tied_model_round_trips_still_tied(tmp_path):
    model, d1, _ = tied_model()
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    ckpt = load_checkpoint(save(model, tmp_path / "tied.npz", optimizer=opt))
    back = ckpt.model
    assert back[2].weight is back[0].weight
    np.testing.assert_array_equal(back[0].weight.data, d1.weight.data)
    fresh = cr.optim.SGD(back.parameters(), lr=0.1, momentum=0.9)
    fresh.load_state_dict(ckpt.optimizer)  # one momentum buffer per distinct parameter


def test_tied_arrays_that_differ_are_refused(tmp_path):
    path = save(tied_model()[0], tmp_path / "tied.npz")
    arrays, meta = contents(path)
    arrays["2.weight"] = arrays["2.weight"] + 1
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match="tied parameters '2.weight' and '0.weight'"):
        load(path)


@pytest.mark.parametrize(
    "build",
    [
        lambda d: cr.Sequential(d, cr.ReLU(), d),
        lambda d: cr.Sequential([d, d]),
        lambda d: cr.Sequential(cr.Sequential(d), cr.ReLU(), d),
        lambda d: cr.Sequential(d, cr.ReLU()).append(d),
    ],
    ids=["twice", "list", "nested", "append"],
)
def test_one_layer_used_twice_is_refused_with_a_pointer_to_tying(build):
    with pytest.raises(ValueError, match=r"layer 0(\.0)? \(Dense\) appears twice in Sequential; "
                       r"use a separate layer and tie weights: d2.weight = d1.weight"):
        build(cr.Dense(3, 3))


def test_failed_append_leaves_the_model_as_it_was():
    d = cr.Dense(3, 3)
    model = cr.Sequential(d)
    with pytest.raises(ValueError, match="appears twice"):
        model.append(d)
    assert len(model) == 1


def hostile_file(path, in_features=30000, out_features=30000):
    """A ~1 KB model file whose architecture asks for a Dense of 30000×30000 (3.6 GB)."""
    save(cr.Sequential(cr.Dense(2, 2)), path)
    arrays, meta = contents(path)
    meta["model"]["layers"][0].update(in_features=in_features, out_features=out_features)
    rewrite(path, arrays, meta)
    return path


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "chainrule.Dense", "in_features": 30000, "out_features": 30000},
        {"type": "Conv2D", "in_channels": 3000, "out_channels": 3000, "kernel_size": 99},
        {"type": "chainrule.BatchNorm1d", "num_features": 10**9},
        {"type": "chainrule.Dense", "in_features": 2, "out_features": -5},
    ],
    ids=["dense", "conv", "batchnorm", "negative"],
)
def test_a_tiny_file_cannot_ask_for_a_huge_layer(tmp_path, layer):
    import tracemalloc

    path = tmp_path / "hostile.npz"
    save(cr.Sequential(cr.Dense(2, 2)), path)
    arrays, meta = contents(path)
    meta["model"]["layers"][0] = layer
    rewrite(path, arrays, meta)
    assert path.stat().st_size < 4000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="layer 0") as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"refusing the file took {peak:,} bytes"
    assert "\n" not in str(info.value)


def test_a_zip_bomb_entry_is_refused_before_it_is_inflated(tmp_path):
    import tracemalloc

    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    arrays["1.weight"] = np.zeros((8, 16), np.float32)
    big = np.zeros((4096, 4096), np.float32)  # 64 MB of zeros: deflates to ~65 KB
    arrays["huge"] = big
    meta["arrays"]["huge"] = {"shape": [4096, 4096], "dtype": "<f4"}
    np.savez_compressed(path, **arrays, __meta__=np.array(json.dumps(meta)))
    del big, arrays
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="zip bomb"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_old_files_with_bare_built_in_names_still_load(tmp_path):
    model = small_model()
    path = save(model, tmp_path / "m.npz")
    arrays, meta = contents(path)

    def strip(spec):
        spec["type"] = spec["type"].removeprefix("chainrule.")
        for child in spec.get("layers", []):
            strip(child)

    strip(meta["model"])
    rewrite(path, arrays, meta)
    x = np.ones((2, 4, 4), np.float32)
    np.testing.assert_array_equal(load(path)(x), model.eval()(x))


def test_a_user_class_called_dense_does_not_replace_the_real_one(tmp_path):
    class Dense(cr.Module):  # noqa: F811 - the clash is the point
        def forward(self, x):
            return x

    from chainrule.module import MODULE_REGISTRY

    assert MODULE_REGISTRY["chainrule.Dense"] is cr.Dense
    path = save(small_model(), tmp_path / "m.npz")
    assert isinstance(load(path)[1], cr.Dense)
    spec = serialize.describe(Dense())
    assert spec["type"].endswith("test_a_user_class_called_dense_does_not_replace_the_real_one"
                                 ".<locals>.Dense")


def test_taking_a_registered_name_raises_at_definition_time():
    with pytest.raises(TypeError, match="'chainrule.Dense' is already taken"):

        class Impostor(cr.Module, type_name="chainrule.Dense"):
            pass


@pytest.mark.parametrize("name", ["Activation", "chainrule.Activation", "_Pool2D", "Module",
                                  "chainrule._Pool2D", "os.system"])
def test_base_classes_and_strangers_are_not_loadable(tmp_path, name):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    meta["model"]["layers"][2] = {"type": name}
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match="unknown layer type"):
        load(path)


def test_mixed_float32_float64_model_round_trips(tmp_path):
    model = cr.Sequential(cr.Dense(4, 3, seed=0, dtype=np.float64), cr.ReLU(),
                          cr.Dense(3, 2, seed=1, dtype=np.float32))
    back = load(save(model, tmp_path / "mixed.npz"))
    assert back[0].weight.data.dtype == np.float64 and back[0].dtype == np.float64
    assert back[2].weight.data.dtype == np.float32 and back[2].dtype == np.float32
    x = np.ones((2, 4))
    np.testing.assert_array_equal(back(x), model(x))


def test_an_array_whose_dtype_disagrees_with_its_record_is_refused(tmp_path):
    path = save(small_model(), tmp_path / "m.npz")
    arrays, meta = contents(path)
    arrays["3.bias"] = arrays["3.bias"].astype(np.float64)  # listing still says <f4
    rewrite(path, arrays, meta)
    with pytest.raises(ModelFileError, match=r"'3.bias' is <f8\[3\], its JSON says <f4\[3\]"):
        load(path)


def test_load_is_for_inference_and_load_checkpoint_for_training(tmp_path):
    path = save(small_model().eval(), tmp_path / "m.npz")
    assert load(path).training is False
    ckpt_model = load_checkpoint(path).model
    assert ckpt_model.training is True and all(layer.training for layer in ckpt_model)


# ---- the loader sits above the formats: no import cycle ------------------------------------------
def _import_graph() -> dict[str, set[str]]:
    """{module: chainrule modules it imports} over src/chainrule, function-level imports too.
    Importing a.b.c also runs the packages a.b and a (those that are not the importer's own)."""
    import ast
    from pathlib import Path

    root = Path(cr.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = ["chainrule", *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {}
    for name, (path, is_package) in files.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names
                               if f"{base}.{a.name}" in files)
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the package chainrule itself is left out
                if ".".join(parts[:i]) in files and ".".join(parts[:i]) not in own:
                    edges.add(".".join(parts[:i]))
        graph[name] = edges
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_loader_imports_the_formats_and_nothing_imports_it_back():
    """serialize (the one loader) → formats (readers) / interop (writers) → model_file_checks:
    no module on the loading path reaches back to one above it, function-level imports
    included."""
    graph = _import_graph()
    layers = ["chainrule.serialize",
              *sorted(m for m in graph if m.startswith(("chainrule.interop",
                                                        "chainrule.formats"))),
              "chainrule.model_file_checks"]
    assert "chainrule.formats.onnx" in layers and "chainrule.interop.weights" in layers
    for module in layers:
        assert module not in _reachable(graph, module), f"{module} imports itself back"
        if module != "chainrule.serialize":
            assert "chainrule.serialize" not in _reachable(graph, module), module
    assert "chainrule.interop.onnx_export" in _reachable(graph, "chainrule.serialize")
    assert "chainrule.formats" in _reachable(graph, "chainrule.serialize")


def test_an_array_is_read_only_as_its_checked_header_promised(tmp_path):
    """A file swapped between the header check and the read cannot make the reader allocate
    what the new file asks for: each array's header is compared again first."""
    from chainrule.formats import read_model_file

    path = save(cr.Sequential(cr.Dense(2, 2, seed=0)), tmp_path / "m.npz")
    found = read_model_file(path)
    save(cr.Sequential(cr.Dense(300, 300, seed=0)), path)
    with pytest.raises(ModelFileError, match="changed while it was read"):
        found.read("0.weight")
