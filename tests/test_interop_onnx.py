"""ONNX export: onnxruntime computes chainrule's eval-mode logits, for every layer type."""

import inspect
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.interop import ExportError, MissingDependencyError, export_onnx, load_weights
from chainrule.serialize import ModelFileError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: x})[0]


def warm_up(model, rng, shape=(28, 28), steps=3):
    """A few SGD steps in training mode: weights and running statistics move off defaults."""
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = cr.SoftmaxCrossEntropy()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(rng.random((8, *shape), dtype=np.float32)), rng.integers(0, 10, 8))
        model.backward(loss_fn.backward())
        opt.step()
    return model.eval()


@pytest.mark.parametrize(
    "build",
    [
        lambda: cr.models.mlp(hidden=(32, 16), seed=0, dropout=0.2),
        lambda: cr.models.cnn(seed=0, channels=(4, 8), hidden=16, batchnorm=True),
    ],
    ids=["mlp", "cnn-batchnorm"],
)
def test_onnxruntime_gives_chainrules_logits(build, tmp_path, rng):
    model = warm_up(build(), rng)
    model.train()  # export must use evaluation mode whatever mode the model is in
    path = export_onnx(model, tmp_path / "m.onnx")
    assert model.training  # and leave the mode as it was
    model.eval()
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 28, 28] and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for n in (1, 7):  # the batch axis is dynamic
        x = rng.random((n, 28, 28), dtype=np.float32)
        np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-5, atol=2e-5)


def _accepts(cls, name):
    return name in inspect.signature(cls).parameters


# (layer, per-sample input shape, input scale): each exported alone and compared
LAYERS = {
    "Dense": (lambda: cr.Dense(6, 4, seed=0), (6,)),
    "Dense-nobias": (lambda: cr.Dense(6, 4, bias=False, seed=0), (6,)),
    "ReLU": (cr.ReLU, (9,)),
    "Sigmoid": (cr.Sigmoid, (9,)),
    "Tanh": (cr.Tanh, (9,)),
    "LeakyReLU": (lambda: cr.LeakyReLU(0.2), (9,)),
    "Softmax": (cr.Softmax, (9,)),
    "GELU": (cr.GELU, (9,)),
    "GELU-tanh": (lambda: cr.GELU("tanh"), (9,)),
    "SmeLU": (lambda: cr.SmeLU(1.5), (40,)),
    "Conv2D": (lambda: cr.Conv2D(2, 3, 3, stride=2, padding=1, seed=0), (2, 9, 9)),
    "Conv2D-nobias": (lambda: cr.Conv2D(2, 3, (3, 2), bias=False, seed=0), (2, 6, 7)),
    "MaxPool2D": (lambda: cr.MaxPool2D(2), (3, 8, 8)),
    "MaxPool2D-3s2": (lambda: cr.MaxPool2D(3, stride=2), (3, 9, 9)),
    "AvgPool2D": (lambda: cr.AvgPool2D(2), (3, 8, 8)),
    "AvgPool2D-3s2": (lambda: cr.AvgPool2D(3, stride=2), (3, 9, 9)),
    "BatchNorm1d": (lambda: cr.BatchNorm1d(5, momentum=0.3), (5,)),
    "BatchNorm1d-3d": (lambda: cr.BatchNorm1d(5), (5, 4)),
    "BatchNorm1d-noaffine": (lambda: cr.BatchNorm1d(5, affine=False), (5,)),
    "BatchNorm2d": (lambda: cr.BatchNorm2d(3, eps=1e-3), (3, 4, 4)),
    "Dropout": (lambda: cr.Dropout(0.5), (9,)),
    "Flatten": (cr.Flatten, (2, 3, 4)),
    "Reshape": (lambda: cr.Reshape((2, 12)), (4, 6)),
}
LAYERS["MaxPool2D-ceil"] = (lambda: cr.MaxPool2D(2, ceil_mode=True), (3, 7, 7))
LAYERS["AvgPool2D-ceil"] = (lambda: cr.AvgPool2D(2, ceil_mode=True), (3, 7, 7))
# ceil_mode windows ONNX's own ceil_mode gets wrong: its last window would start past the input
CEIL_WINDOWS = {
    "MaxPool2D(2, stride=3) on 6x6": (lambda: cr.MaxPool2D(2, stride=3, ceil_mode=True), (6, 6)),
    "MaxPool2D(3, stride=3) on 7x7": (lambda: cr.MaxPool2D(3, stride=3, ceil_mode=True), (7, 7)),
    "MaxPool2D(2, stride=4) on 9x5": (lambda: cr.MaxPool2D(2, stride=4, ceil_mode=True), (9, 5)),
    "MaxPool2D((3, 1), stride=(2, 3)) on 8x7": (
        lambda: cr.MaxPool2D((3, 1), stride=(2, 3), ceil_mode=True), (8, 7)),
    "AvgPool2D(2, stride=3) on 6x6": (lambda: cr.AvgPool2D(2, stride=3, ceil_mode=True), (6, 6)),
    "AvgPool2D(3, stride=2) on 8x8": (lambda: cr.AvgPool2D(3, stride=2, ceil_mode=True), (8, 8)),
}


def randomize(layer, rng):
    """Weights, and batch-norm statistics, that are not the defaults."""
    for p in layer.parameters():
        p.data[...] = rng.normal(size=p.data.shape)
    if isinstance(layer, cr.BatchNorm1d):
        layer.running_mean[...] = rng.normal(size=layer.num_features)
        layer.running_var[...] = rng.uniform(0.5, 2.0, size=layer.num_features)
    return layer


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layer_matches_onnxruntime(name, tmp_path, rng):
    build, shape = LAYERS[name]
    model = cr.Sequential(randomize(build(), rng)).eval()
    path = export_onnx(model, tmp_path / "layer.onnx", input_shape=shape)
    x = (rng.normal(size=(5, *shape)) * 3).astype(np.float32)  # across every kink
    np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CEIL_WINDOWS))
def test_ceil_mode_windows_export_as_explicit_end_padding(name, tmp_path, rng):
    build, hw = CEIL_WINDOWS[name]
    model = cr.Sequential(build()).eval()
    path = export_onnx(model, tmp_path / "pool.onnx", input_shape=(2, *hw))
    x = rng.normal(size=(3, 2, *hw)).astype(np.float32)
    expected = model(x)
    got = run_onnx(path, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    (node,) = [n for n in onnx.load(path).graph.node if n.op_type.endswith("Pool")]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs.get("ceil_mode", 0) == 0  # the windows are all in `pads`


def test_onnx_ceil_mode_rule_differs_from_chainrule_and_pytorch(tmp_path, rng):
    """Why ceil_mode is written as padding: for MaxPool2D(2, stride=3) on 6×6 the onnx
    package's shape rule gives 3×3, chainrule and PyTorch 2×2 (docs/interop.md)."""
    torch = pytest.importorskip("torch")
    h = onnx.helper
    node = h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[3, 3], ceil_mode=1)
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", 1, [1, 1, 6, 6])],
                         [h.make_tensor_value_info("y", 1, None)])
    inferred = onnx.shape_inference.infer_shapes(
        h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8))
    assert [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim] == \
        [1, 1, 3, 3]
    x = rng.normal(size=(1, 1, 6, 6)).astype(np.float32)
    ours = cr.MaxPool2D(2, stride=3, ceil_mode=True)(x)
    theirs = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 3, ceil_mode=True).numpy()
    assert ours.shape == theirs.shape == (1, 1, 2, 2) and np.array_equal(ours, theirs)


def test_a_graph_onnx_rejects_is_an_export_error_naming_it(tmp_path, monkeypatch):
    """Whatever onnx's checker finds wrong is an ExportError (one line), never onnx's own
    exception, and nothing is written."""
    from chainrule.interop import onnx_export

    real = onnx_export._pool_pads
    monkeypatch.setattr(onnx_export, "_pool_pads", lambda g, layer: [0, 0, 0, -1])
    with pytest.raises(ExportError, match="onnx rejects the graph") as info:
        export_onnx(cr.Sequential(cr.MaxPool2D(2)), tmp_path / "m.onnx", input_shape=(1, 6, 6))
    assert "\n" not in str(info.value) and not list(tmp_path.iterdir())
    assert real is not onnx_export._pool_pads


def test_batchnorm_momentum_uses_onnx_convention(tmp_path):
    path = export_onnx(
        cr.Sequential(cr.BatchNorm1d(3, momentum=0.1)), tmp_path / "bn.onnx", input_shape=(3,)
    )
    (node,) = [n for n in onnx.load(path).graph.node if n.op_type == "BatchNormalization"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["momentum"] == pytest.approx(0.9) and attrs["epsilon"] == pytest.approx(1e-5)


def test_float64_model_exports_double(tmp_path, rng):
    # (not GELU: onnxruntime has no float64 Erf kernel, though the ONNX standard allows it)
    model = cr.Sequential(cr.Dense(4, 3, seed=0), cr.Tanh(), cr.Dense(3, 2, seed=1))
    model.astype(np.float64)
    path = export_onnx(model, tmp_path / "m.onnx")
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-12, atol=1e-12)


def test_dense_first_model_takes_flat_rows(tmp_path, rng):
    model = cr.Sequential(cr.Dense(784, 10, seed=0))
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx"))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 784]


def test_layer_without_onnx_form_is_named_and_nothing_is_written(tmp_path):
    class Mystery(cr.Module):
        def forward(self, x):
            return x

    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0), Mystery())
    with pytest.raises(ExportError, match="layer 2 Mystery has no ONNX form") as err:
        export_onnx(model, target)
    assert "\n" not in str(err.value)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_unknown_input_shape_asks_for_it(tmp_path):
    with pytest.raises(ExportError, match="input_shape"):
        export_onnx(cr.Sequential(cr.Conv2D(3, 4, 3, seed=0)), tmp_path / "m.onnx")


def test_chainrule_reads_back_its_onnx(tmp_path, rng):
    model = warm_up(cr.models.cnn(seed=0, channels=(4,), hidden=8, batchnorm=True), rng)
    path = cr.save(model, tmp_path / "m.onnx")  # the suffix chooses the format
    x = rng.random((3, 28, 28), dtype=np.float32)
    assert np.array_equal(cr.load(path)(x), model(x))
    fresh = cr.models.cnn(seed=5, channels=(4,), hidden=8, batchnorm=True).eval()
    assert np.array_equal(load_weights(fresh, path)(x), model(x))


def tied_model():
    model = cr.Sequential(cr.Dense(6, 6, seed=0), cr.Tanh(), cr.Dense(6, 6, seed=1), cr.Tanh(),
                          cr.Dense(6, 3, seed=2))
    model.tie("2.weight", "0.weight")
    return model


def test_what_onnx_keeps(tmp_path, rng):
    """docs/interop.md, "What an ONNX file keeps": the architecture, the weights (a shared one
    stored once), the dtype, which parameters are tied and the metadata; no optimizer state.
    The model reads back in eval mode, its outputs unchanged, in onnxruntime too."""
    model = tied_model()
    model.astype(np.float64)
    path = cr.save(model, tmp_path / "m.onnx", metadata={"class_names": list("abc")})
    names = [t.name for t in onnx.load(path).graph.initializer]
    assert "0.weight" in names and "2.weight" not in names  # a tied weight is stored once
    ckpt = cr.load_checkpoint(path)
    assert ckpt.model.tied_parameters() == {"2.weight": "0.weight"}
    assert len(ckpt.model.parameters()) == len(model.parameters()) == 5
    assert ckpt.metadata == {"class_names": ["a", "b", "c"]} and ckpt.optimizer is None
    assert ckpt.model.state_dict()["0.weight"].dtype == np.float64
    assert cr.load(path).training is False
    x = rng.normal(size=(4, 6))
    assert np.array_equal(cr.load(path)(x), model(x))
    np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-12, atol=1e-12)
    untied = load_weights(cr.Sequential(cr.Dense(6, 6), cr.Tanh(), cr.Dense(6, 6), cr.Tanh(),
                                        cr.Dense(6, 3)).astype(np.float64), path)
    assert np.array_equal(untied(x), model(x))
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no optimizer state"):
        cr.save(model, tmp_path / "o.onnx", optimizer=opt)


def test_broken_onnx_files_are_model_file_errors(tmp_path):
    path = cr.save(cr.models.mlp(hidden=(8,), seed=0), tmp_path / "m.onnx")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    for reader in (cr.load, lambda p: load_weights(cr.models.mlp(hidden=(8,)), p)):
        with pytest.raises(ModelFileError, match="m.onnx") as err:
            reader(path)
        assert "\n" not in str(err.value)
    path.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ModelFileError, match="not a readable ONNX file"):
        cr.load(path)


def test_foreign_onnx_file_is_refused(tmp_path):
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(h.make_model(graph), path)
    with pytest.raises(ModelFileError, match="chainrule did not export"):
        cr.load(path)


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"pip install chainrule\[onnx\]"):
        export_onnx(cr.models.mlp(hidden=(8,)), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_import_chainrule_does_not_import_the_optional_packages():
    import subprocess

    code = (
        "import sys, chainrule as cr; cr.Sequential(cr.Dense(2, 2)); import chainrule.interop; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'onnx', 'onnxruntime', 'safetensors', 'sklearn', 'torch'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
