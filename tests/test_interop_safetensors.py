"""safetensors: PyTorch loads what chainrule writes (strict), chainrule loads what PyTorch
writes (`load_weights`), and broken files are one-line ModelFileErrors."""

import json
import struct
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.interop import MissingDependencyError, load_weights
from chainrule.serialize import ModelFileError, load_checkpoint

pytest.importorskip("safetensors")
from safetensors.numpy import save_file  # noqa: E402


def small_cnn(seed=0):
    return cr.models.cnn(seed=seed, channels=(4, 8), hidden=16, batchnorm=True, dropout=0.25)


def small_mlp(seed=0, hidden=(16,)):
    return cr.models.mlp(hidden=hidden, seed=seed)


def warm_up(model, rng, steps=3):
    """A few training steps, so weights and batch-norm running statistics are not defaults."""
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = cr.SoftmaxCrossEntropy()
    model.train()
    for _ in range(steps):
        x = rng.random((8, 28, 28), dtype=np.float32)
        opt.zero_grad()
        loss_fn(model(x), rng.integers(0, 10, 8))
        model.backward(loss_fn.backward())
        opt.step()
    model.eval()
    return model


def digits(rng, n=5):
    return rng.random((n, 28, 28), dtype=np.float32)


# ---- PyTorch as the oracle --------------------------------------------------------------------
def torch_twin(model):
    """The `torch.nn.Sequential` with the same layers in the same order (same indices)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class View(nn.Module):  # chainrule's Reshape: the one layer torch has no module for
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

    def twin(layer):
        if isinstance(layer, cr.Dense):
            return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        if isinstance(layer, cr.Conv2D):
            return nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                bias=layer.bias is not None,
            )
        if isinstance(layer, cr.BatchNorm2d):
            return nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum)
        if isinstance(layer, cr.BatchNorm1d):
            return nn.BatchNorm1d(layer.num_features, layer.eps, layer.momentum)
        if isinstance(layer, cr.MaxPool2D):
            return nn.MaxPool2d(layer.kernel_size, layer.stride)
        if isinstance(layer, cr.Reshape):
            return View(layer.shape)
        simple = {
            cr.Flatten: nn.Flatten,
            cr.ReLU: nn.ReLU,
            cr.Dropout: nn.Dropout,
            cr.Tanh: nn.Tanh,
            cr.Sigmoid: nn.Sigmoid,
        }
        return simple[type(layer)]()

    return nn.Sequential(*[twin(layer) for layer in model.layers])


def torch_logits(net, x):
    import torch

    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("build", [small_mlp, small_cnn], ids=["mlp", "cnn-batchnorm"])
def test_torch_loads_chainrule_file_strict_and_agrees(build, tmp_path, rng):
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    model = warm_up(build(), rng)
    path = cr.save(model, tmp_path / "m.safetensors")
    net = torch_twin(model)
    net.load_state_dict(load_file(path), strict=True)  # raises on any missing/extra name
    x = digits(rng)
    np.testing.assert_allclose(torch_logits(net, x), model(x), rtol=1e-4, atol=1e-5)


def test_round_trip_rebuilds_the_model_exactly(tmp_path, rng):
    model = warm_up(small_cnn(), rng)
    path = cr.save(model, tmp_path / "m.safetensors", metadata={"class_names": list("abcdefghij")})
    again = cr.load(path)
    x = digits(rng)
    assert not again.training
    assert np.array_equal(again(x), model(x))
    assert load_checkpoint(path).metadata == {"class_names": list("abcdefghij")}
    assert repr(again) == repr(model)


def test_batchnorm_counter_is_an_int64_scalar(tmp_path):
    from safetensors.numpy import load_file

    tensors = load_file(cr.save(small_cnn(), tmp_path / "m.safetensors"))
    counters = {k: v for k, v in tensors.items() if k.endswith("num_batches_tracked")}
    assert sorted(counters) == ["2.num_batches_tracked", "6.num_batches_tracked"]
    assert all(v.dtype == np.int64 and v.shape == () for v in counters.values())


def test_float64_model_round_trips(tmp_path, rng):
    model = small_mlp().astype(np.float64)
    again = cr.load(cr.save(model, tmp_path / "m.safetensors"))
    assert again[1].weight.data.dtype == np.float64
    x = digits(rng).astype(np.float64)
    assert np.array_equal(again(x), model(x))


def test_pytorch_weights_come_in(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as torch_save_file

    model = small_cnn(seed=1)
    net = torch_twin(model)
    torch.manual_seed(0)
    for p in net.parameters():  # not PyTorch's default init: every number differs from ours
        torch.nn.init.normal_(p, std=0.2)
    net.train()
    with torch.no_grad():  # move the running statistics and the batch counter
        for _ in range(3):
            net(torch.rand(8, 28, 28))
    torch_save_file(net.state_dict(), tmp_path / "torch.safetensors")
    assert load_weights(model, tmp_path / "torch.safetensors") is model
    model.eval()
    x = digits(rng)
    np.testing.assert_allclose(model(x), torch_logits(net, x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelFileError, match="no chainrule architecture.*load_weights"):
        cr.load(tmp_path / "torch.safetensors")


def test_load_weights_from_npz_and_own_safetensors(tmp_path, rng):
    model = warm_up(small_cnn(), rng)
    x = digits(rng)
    for name in ("m.npz", "m.safetensors"):
        fresh = small_cnn(seed=7).eval()
        load_weights(fresh, cr.save(model, tmp_path / name))
        assert np.array_equal(fresh(x), model(x)), name


def test_load_weights_is_strict_and_names_every_key(tmp_path):
    path = cr.save(small_mlp(hidden=(16,)), tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError) as err:
        load_weights(small_mlp(hidden=(12,)), path)
    message = str(err.value)
    assert "\n" not in message and "m.safetensors" in message
    assert (
        "mismatched" in message
        and "1.weight (file float32[16, 784], model float32[12, 784])" in message
    )
    with pytest.raises(
        ModelFileError, match=r"missing \['5.bias', '5.weight'\], mismatched \['3.bias"
    ):
        load_weights(small_mlp(hidden=(16, 16)), path)
    with pytest.raises(ModelFileError, match=r"unexpected \['1.bias', '1.weight'"):
        load_weights(cr.Sequential(cr.Flatten(), cr.ReLU(), cr.Flatten()), path)
    with pytest.raises(ModelFileError, match="float64"):
        load_weights(small_mlp().astype(np.float64), path)


def test_optimizer_state_is_refused(tmp_path):
    model = small_mlp()
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="weights only"):
        cr.save(model, tmp_path / "m.safetensors", optimizer=opt)
    assert not list(tmp_path.iterdir())


def test_tied_weights_survive_a_round_trip(tmp_path, rng):
    """Both names are in the file (PyTorch's state dict lists both), and the tie comes back:
    as many parameters loaded as saved, one object under two names."""
    model = cr.Sequential(cr.Dense(5, 5, seed=0), cr.ReLU(), cr.Dense(5, 5, seed=1))
    model.tie("2.weight", "0.weight")
    assert len(model.parameters()) == 3
    path = cr.save(model, tmp_path / "tied.safetensors")
    loaded = cr.load(path)
    assert len(loaded.parameters()) == 3
    assert loaded.tied_parameters() == {"2.weight": "0.weight"}
    assert loaded[0].weight is loaded[2].weight
    x = rng.normal(size=(3, 5)).astype(np.float32)
    assert np.array_equal(loaded(x), model(x))
    header = json.loads(path.read_bytes()[8 : 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    assert {"0.weight", "2.weight"} <= set(header)


def test_tied_arrays_that_differ_are_refused(tmp_path):
    model = cr.Sequential(cr.Dense(3, 3, seed=0), cr.Dense(3, 3, seed=1))
    path = cr.save(model, tmp_path / "m.safetensors")
    edit_header(path, lambda h: h["__metadata__"].update(tied=json.dumps({"1.weight":
                                                                          "0.weight"})))
    with pytest.raises(ModelFileError, match="tied parameters '1.weight' and '0.weight' hold "
                                             "different values"):
        cr.load(path)


def test_save_leaves_no_temporary_files(tmp_path):
    cr.save(small_mlp(), tmp_path / "m.safetensors")
    cr.save(small_mlp(seed=1), tmp_path / "m.safetensors")  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# ---- bad files ----------------------------------------------------------------------------------
def raw_file(path, header: dict, data: bytes = b"") -> None:
    """A safetensors file written by hand: length, JSON header, data."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def good_file(tmp_path):
    return cr.save(small_mlp(), tmp_path / "good.safetensors")


def edit_header(path, change):
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    change(header)
    raw_file(path, header, blob[8 + n :])


def _offset_out_of_range(header):
    header["1.bias"]["data_offsets"][1] += 10**6


def _wrong_span(header):
    header["1.bias"]["shape"] = [17]


def _unknown_dtype(header):
    header["1.bias"]["dtype"] = "BF16"


BAD_EDITS = {
    "offsets out of range": (_offset_out_of_range, "outside the"),
    "shape does not match the bytes": (_wrong_span, "needs 68 bytes"),
    "unknown dtype": (_unknown_dtype, "dtype 'BF16'"),
}


@pytest.mark.parametrize("edit", sorted(BAD_EDITS))
@pytest.mark.parametrize("reader", ["load", "load_weights"])
def test_hand_edited_files_are_refused_in_one_line(edit, reader, tmp_path):
    path = good_file(tmp_path)
    change, expected = BAD_EDITS[edit]
    edit_header(path, change)
    with pytest.raises(ModelFileError, match=expected) as err:
        cr.load(path) if reader == "load" else load_weights(small_mlp(), path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("cut", [4, 20, -10])
def test_truncated_files_are_refused(cut, tmp_path):
    path = good_file(tmp_path)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ModelFileError, match="truncated"):
        cr.load(path)
    with pytest.raises(ModelFileError, match="truncated"):
        load_weights(small_mlp(), path)


def test_header_longer_than_file_and_garbage(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ModelFileError, match="claims 1000000000 bytes"):
        cr.load(path)
    path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe[]")
    with pytest.raises(ModelFileError, match="not JSON"):
        cr.load(path)
    raw_file(path, {"__metadata__": {"model": "{not json"}})
    with pytest.raises(ModelFileError, match="'model' JSON is corrupt"):
        cr.load(path)
    with pytest.raises(ModelFileError, match="no such"):
        cr.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("offsets, problem", [([0, 8], "overlaps another"),
                                              ([12, 20], "leaves a gap"),
                                              ([8, 16], "4 bytes after the last tensor")])
def test_tensors_must_tile_the_data_exactly(offsets, problem, tmp_path):
    """As the format requires (and the safetensors package checks): no tensor shares bytes
    with another, no bytes lie between or after them."""
    path = tmp_path / "m.safetensors"
    spec = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    raw_file(path, {"a": spec, "b": {**spec, "data_offsets": offsets}}, bytes(20))
    with pytest.raises(ModelFileError, match=problem):
        load_weights(cr.Sequential(cr.ReLU()), path)


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(MissingDependencyError, match=r"pip install chainrule\[safetensors\]"):
        cr.save(small_mlp(), tmp_path / "m.safetensors")


def test_unrelated_safetensors_written_by_numpy_load_by_name(tmp_path):
    model = cr.Sequential(cr.Dense(3, 2, seed=0))
    save_file(
        {"0.weight": np.ones((2, 3), np.float32), "0.bias": np.zeros(2, np.float32)},
        str(tmp_path / "w.safetensors"),
    )
    load_weights(model, tmp_path / "w.safetensors")
    assert np.array_equal(model[0].weight.data, np.ones((2, 3)))
