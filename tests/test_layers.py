import numpy as np
import pytest

import chainrule as cr


def test_dense_shapes_follow_pytorch(rng):
    layer = cr.Dense(784, 128, seed=0)
    assert layer.weight.data.shape == (128, 784)
    assert layer.bias.data.shape == (128,)
    assert layer.weight.data.dtype == np.float32
    y = layer(rng.random((5, 784), dtype=np.float32))
    assert y.shape == (5, 128) and y.dtype == np.float32


def test_dense_computes_x_w_transpose_plus_b(rng):
    layer = cr.Dense(3, 2, dtype=np.float64)
    layer.weight.data[...] = [[1, 2, 3], [4, 5, 6]]
    layer.bias.data[...] = [0.5, -1]
    x = np.array([[1.0, 0, -1], [2, 1, 0]])
    np.testing.assert_allclose(layer(x), [[-1.5, -3], [4.5, 12]])


def test_dense_backward_formulas(rng):
    layer = cr.Dense(4, 3, dtype=np.float64, seed=1)
    x = rng.normal(size=(5, 4))
    g = rng.normal(size=(5, 3))
    layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, g.T @ x)
    np.testing.assert_allclose(layer.bias.grad, g.sum(0))
    np.testing.assert_allclose(dx, g @ layer.weight.data)


def test_backward_accumulates_until_zero_grad(rng):
    layer = cr.Dense(4, 3, dtype=np.float64, seed=1)
    x, g = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal"])
def test_initializers_have_the_right_variance(init):
    w = cr.Dense(400, 300, init=init, seed=0, dtype=np.float64).weight.data
    expected = 2 / 400 if init.startswith("he") else 2 / (400 + 300)
    assert w.var() == pytest.approx(expected, rel=0.05)
    assert abs(w.mean()) < 0.01


def test_initialization_is_reproducible_from_seed_or_rng():
    a = cr.Dense(5, 4, seed=7).weight.data
    b = cr.Dense(5, 4, rng=np.random.default_rng(7)).weight.data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cr.Dense(5, 4, seed=8).weight.data)


def test_dense_rejects_wrong_width_naming_layer_and_shapes():
    layer = cr.Dense(784, 128)
    with pytest.raises(ValueError, match=r"Dense\(784, 128\).*\(N, 784\).*\(2, 783\)"):
        layer(np.zeros((2, 783), np.float32))
    with pytest.raises(ValueError, match="expected input of shape"):
        layer(np.zeros(784, np.float32))  # a single digit must be a batch of one


def test_dense_rejects_bad_grad_shape(rng):
    layer = cr.Dense(3, 2)
    layer(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="expected grad of shape"):
        layer.backward(np.zeros((4, 3), np.float32))


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [cr.Dense(4, 5, seed=0), cr.Tanh(), cr.Dense(5, 3, seed=1)],
        lambda: [cr.Dense(4, 5, seed=0), cr.Sigmoid(), cr.Dense(5, 2, seed=1), cr.Softmax()],
        lambda: [cr.Flatten(), cr.Dense(6, 3, seed=0), cr.GELU()],
        lambda: [cr.Reshape((2, 2)), cr.Flatten(), cr.Dense(4, 2, seed=0, bias=False)],
    ],
)
def test_gradcheck_models(layers, rng):
    model = cr.Sequential(layers())
    x = (
        rng.normal(size=(3, 4))
        if not isinstance(model[0], cr.Flatten)
        else rng.normal(size=(3, 2, 3))
    )
    assert cr.gradcheck(model, x) < 1e-6


def test_input_grad_false_skips_input_gradient_but_not_parameters(rng):
    model = cr.Sequential(cr.Flatten(), cr.Dense(6, 4, seed=0), cr.ReLU(), cr.Dense(4, 2, seed=1))
    model.astype(np.float64)
    x, g = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2))
    model(x)
    dx = model.backward(g)
    assert dx.shape == x.shape
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model(x)
    assert model.backward(g, input_grad=False) is None
    for a, b in zip(full, (p.grad for p in model.parameters())):
        np.testing.assert_array_equal(a, b)


def test_named_parameters_state_dict_and_load(rng):
    model = cr.Sequential(cr.Dense(3, 4, seed=0), cr.ReLU(), cr.Dense(4, 2, seed=1))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    state = model.state_dict()
    other = cr.Sequential(cr.Dense(3, 4, seed=5), cr.ReLU(), cr.Dense(4, 2, seed=6))
    other.load_state_dict(state)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x), other(x))  # the same weights, the same kernels
    state["0.weight"] = state["0.weight"][:, :2]
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(4, 2\)"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"0.weight": np.zeros((4, 3))})


def test_flat_parameter_vector_round_trip():
    model = cr.Sequential(cr.Dense(2, 3, seed=0), cr.Sigmoid(), cr.Dense(3, 1, seed=1))
    theta = cr.parameters_to_vector(model)
    assert theta.shape == (2 * 3 + 3 + 3 * 1 + 1,)  # seed 003: weights then biases, layer by layer
    np.testing.assert_array_equal(theta[:6], model[0].weight.data.ravel())
    cr.vector_to_parameters(np.arange(theta.size, dtype=np.float32), model)
    np.testing.assert_array_equal(model[2].bias.data, [12.0])
    with pytest.raises(ValueError, match="13 values"):
        cr.vector_to_parameters(np.zeros(12), model)


def test_summary_lists_layers_shapes_and_counts(capsys):
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 128), cr.ReLU(), cr.Dense(128, 10))
    text = model.summary((28, 28))
    assert "(N, 128)" in text and "100,480" in text and "101,770" in text
    assert "total parameters: 101,770" in capsys.readouterr().out


def test_train_eval_modes_propagate():
    model = cr.Sequential(cr.Dense(2, 2), cr.ReLU())
    model.eval()
    assert not model.training and not model[0].training
    model.train()
    assert model[1].training


def test_astype_float64_converts_parameters_and_computation(rng):
    model = cr.Sequential(cr.Dense(3, 2)).astype(np.float64)
    assert model[0].weight.data.dtype == np.float64
    assert model(rng.normal(size=(1, 3)).astype(np.float32)).dtype == np.float64


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="item 1 is int"):
        cr.Sequential(cr.ReLU(), 3)


def test_reshape_checks_sizes():
    with pytest.raises(ValueError, match=r"Reshape\(1, 28, 28\)"):
        cr.Reshape((1, 28, 28))(np.zeros((2, 783)))


def test_dense_backward_in_its_dtype_and_after_eval(rng):
    layer = cr.Dense(4, 3)  # float32
    x = rng.normal(size=(5, 4))
    layer(x)
    dx = layer.backward(rng.normal(size=(5, 3)))  # float64 gradient
    assert dx.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32
    model = cr.Sequential(cr.Flatten(), cr.Dense(4, 3), cr.Reshape((3, 1)))
    g = model.backward(rng.normal(size=model(x.reshape(5, 2, 2).astype(np.float32)).shape))
    assert g.dtype == np.float32 and g.shape == (5, 2, 2)
    layer.eval()
    layer(x)
    assert layer._x is None
    with pytest.raises(RuntimeError, match=r"Dense\(4, 3\).*train mode.*model\.train\(\)"):
        layer.backward(np.ones((5, 3)))
