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
    assert np.array_equal(ckpt.model(x), model(x))
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
