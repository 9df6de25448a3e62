"""Layers and losses as graph nodes: the graph's gradients are bit-identical to the explicit
path's (the same kernel pair, forward_with_cache / backward_from_cache, in the same order),
BatchNorm's running statistics move once per forward, Dropout draws the same masks; models
that need a graph (a residual MLP, one layer applied several times) match a PyTorch twin; and
training through the graph gives the very weights of explicit training."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.layers import Reshape

F32 = np.float32

LAYERS = {
    "Dense": (lambda: cr.Dense(5, 4, seed=0), (6, 5)),
    "Dense-no-bias": (lambda: cr.Dense(5, 4, bias=False, seed=1), (6, 5)),
    "Flatten": (lambda: cr.Flatten(), (3, 2, 4)),
    "Reshape": (lambda: Reshape((2, 3)), (4, 6)),
    "Sigmoid": (lambda: cr.Sigmoid(), (4, 5)),
    "Tanh": (lambda: cr.Tanh(), (4, 5)),
    "ReLU": (lambda: cr.ReLU(), (4, 5)),
    "LeakyReLU": (lambda: cr.LeakyReLU(0.1), (4, 5)),
    "GELU": (lambda: cr.GELU(), (4, 5)),
    "GELU-tanh": (lambda: cr.GELU("tanh"), (4, 5)),
    "SmeLU": (lambda: cr.SmeLU(1.5), (4, 5)),
    "Softmax": (lambda: cr.Softmax(), (4, 5)),
    "Conv2D": (lambda: cr.Conv2D(2, 3, 3, padding=1, seed=0), (2, 2, 5, 5)),
    "Conv2D-stride": (lambda: cr.Conv2D(2, 3, 2, stride=2, seed=1), (2, 2, 6, 6)),
    "MaxPool2D": (lambda: cr.MaxPool2D(2), (2, 3, 4, 6)),
    "AvgPool2D": (lambda: cr.AvgPool2D(2, stride=1), (2, 3, 4, 5)),
    "BatchNorm1d": (lambda: cr.BatchNorm1d(5), (6, 5)),
    "BatchNorm1d-3d": (lambda: cr.BatchNorm1d(3), (4, 3, 5)),
    "BatchNorm2d": (lambda: cr.BatchNorm2d(3), (4, 3, 2, 2)),
    "Dropout": (lambda: cr.Dropout(0.4, seed=3), (6, 5)),
    "Sequential": (
        lambda: cr.Sequential(cr.Flatten(), cr.Dense(12, 6, seed=2), cr.BatchNorm1d(6),
                              cr.ReLU(), cr.Dropout(0.3, seed=4), cr.Dense(6, 3, seed=5)),
        (5, 3, 4),
    ),  # fmt: skip
}


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(F32)


def _explicit(layer, x, dout, input_grad):
    layer.zero_grad()
    y = layer(x)
    dx = layer.backward(dout.copy(), input_grad=input_grad)
    return y, dx, [p.grad.copy() for p in layer.parameters()]


def _graph(layer, x, dout, input_grad):
    layer.zero_grad()
    xt = cr.Tensor(x, requires_grad=input_grad)
    y = layer(xt)
    assert isinstance(y, cr.Tensor)
    y.backward(dout.copy())
    return y.data, xt.grad, [p.grad.copy() for p in layer.parameters()]


def _buffers(layer):
    return {name: b.copy() for name, b in layer.named_buffers()}


def _assert_bit_identical(a, b):
    ya, dxa, ga = a
    yb, dxb, gb = b
    np.testing.assert_array_equal(ya, yb, strict=True)
    if dxa is None:
        assert dxb is None
    else:
        np.testing.assert_array_equal(dxa, dxb, strict=True)
    assert len(ga) == len(gb)
    for p, q in zip(ga, gb):
        np.testing.assert_array_equal(p, q, strict=True)


# without parameters, a layer whose input needs no gradient has no graph to build
CASES = [(name, True) for name in sorted(LAYERS)] + [
    (name, False) for name in sorted(LAYERS) if LAYERS[name][0]().parameters()
]


@pytest.mark.parametrize("name, input_grad", CASES, ids=[f"{n}-{g}" for n, g in CASES])
def test_graph_gradients_are_bit_identical_to_the_explicit_path(name, input_grad):
    make, shape = LAYERS[name]
    explicit_layer, graph_layer = make(), make()
    x = _data(shape, 1)
    out_shape = make()(x).shape
    for step in range(2):  # twice: running statistics and Dropout's generator move on
        dout = _data(out_shape, 10 + step)
        y0 = explicit_layer.state_dict()
        ours = _explicit(explicit_layer, x, dout, input_grad)
        graph = _graph(graph_layer, x, dout, input_grad)
        if not input_grad:
            graph = (graph[0], None, graph[2])
            if ours[1] is not None:  # a layer may return dx anyway; the graph asks for none
                ours = (ours[0], None, ours[2])
        _assert_bit_identical(ours, graph)
        for key, value in _buffers(explicit_layer).items():  # once per forward, both paths
            np.testing.assert_array_equal(value, _buffers(graph_layer)[key], strict=True)
        assert set(y0) == set(explicit_layer.state_dict())


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm2d", "Dropout", "Sequential"])
def test_eval_mode_graph_matches_explicit_eval(name):
    make, shape = LAYERS[name]
    explicit_layer, graph_layer = make(), make()
    x = _data(shape, 2)
    explicit_layer(x), graph_layer(cr.Tensor(x))  # one training step of statistics
    explicit_layer.eval(), graph_layer.eval()
    cr.module.set_grad_in_eval(explicit_layer), cr.module.set_grad_in_eval(graph_layer)
    dout = _data(explicit_layer(x).shape, 3)
    _assert_bit_identical(
        _explicit(explicit_layer, x, dout, True), _graph(graph_layer, x, dout, True)
    )


def test_batchnorm_statistics_move_once_per_graph_forward():
    layer = cr.BatchNorm1d(3)
    x = _data((8, 3), 4)
    layer(cr.Tensor(x, requires_grad=True)).sum().backward()
    reference = cr.BatchNorm1d(3)
    reference(x)
    np.testing.assert_array_equal(layer.running_mean, reference.running_mean)
    np.testing.assert_array_equal(layer.running_var, reference.running_var)
    assert not np.array_equal(layer.running_mean, np.zeros(3))


def test_dropout_graph_masks_come_from_the_same_stream():
    a, b = cr.Dropout(0.5, seed=9), cr.Dropout(0.5, seed=9)
    x = np.ones((4, 6), F32)
    for _ in range(3):
        np.testing.assert_array_equal(a(x), b(cr.Tensor(x)).data)


LOSSES = {
    "MSE": (lambda: cr.MSE(), lambda rng: rng.standard_normal((4, 3))),
    "MSE-sum": (lambda: cr.MSE(reduction="sum"), lambda rng: rng.standard_normal((4, 3))),
    "BCE": (lambda: cr.BCE(), lambda rng: rng.random((4, 3)).round()),
    "BCEWithLogits": (lambda: cr.BCEWithLogits(), lambda rng: rng.random((4, 3)).round()),
    "CrossEntropy": (lambda: cr.CrossEntropy(), lambda rng: rng.integers(0, 3, 4)),
    "SoftmaxCrossEntropy": (lambda: cr.SoftmaxCrossEntropy(), lambda rng: rng.integers(0, 3, 4)),
    "SoftmaxCrossEntropy-onehot": (
        lambda: cr.SoftmaxCrossEntropy(),
        lambda rng: np.eye(3)[rng.integers(0, 3, 4)],
    ),
    "SoftmaxCrossEntropy-sum": (
        lambda: cr.SoftmaxCrossEntropy(reduction="sum"),
        lambda rng: rng.integers(0, 3, 4),
    ),
}


def _prediction(name, rng):
    z = rng.standard_normal((4, 3)).astype(F32)
    if name == "BCE":
        return cr.activations.sigmoid(z)
    if name == "CrossEntropy":
        return cr.activations.softmax(z)
    return z


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_graph_gradient_is_bit_identical(name):
    make, target = LOSSES[name]
    rng = np.random.default_rng(0)
    pred, y = _prediction(name, rng), target(rng)
    loss_fn = make()
    value = loss_fn(pred, y)
    expected = loss_fn.backward()
    p = cr.Tensor(pred, requires_grad=True)
    loss = make()(p, cr.Tensor(y) if name == "MSE" else y)
    assert loss.shape == () and loss.item() == value
    loss.backward()
    np.testing.assert_array_equal(p.grad, expected, strict=True)


def test_loss_scaled_upstream_matches_the_scaled_explicit_gradient():
    rng = np.random.default_rng(1)
    pred, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    p = cr.Tensor(pred, requires_grad=True)
    (cr.SoftmaxCrossEntropy()(p, y) * 3.0).backward()
    loss_fn = cr.SoftmaxCrossEntropy()
    loss_fn(pred, y)
    np.testing.assert_allclose(p.grad, 3.0 * loss_fn.backward(), rtol=1e-15)


def test_graph_backward_adds_into_the_parameter_gradient_arrays_in_place():
    """distributed.py gives each p.grad as a view of one flat buffer: the graph keeps it."""
    model = cr.Sequential(cr.Dense(3, 4, seed=0), cr.Tanh(), cr.Dense(4, 2, seed=1))
    params = model.parameters()
    flat = np.zeros(sum(p.data.size for p in params), F32)
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.data.size].reshape(p.data.shape)
        offset += p.data.size
    views = [p.grad for p in params]
    x = _data((5, 3), 0)
    model.zero_grad()
    out = model(cr.Tensor(x))
    decay = (model[0].weight * model[0].weight).sum() * 0.5  # a parameter used directly too
    (cr.MSE()(out, np.zeros((5, 2))) + decay).backward()
    assert all(p.grad is v for p, v in zip(params, views))
    explicit = cr.Sequential(cr.Dense(3, 4, seed=0), cr.Tanh(), cr.Dense(4, 2, seed=1))
    loss_fn = cr.MSE()
    loss_fn(explicit(x), np.zeros((5, 2)))
    explicit.backward(loss_fn.backward())
    expected = [p.grad.copy() for p in explicit.parameters()]
    expected[0] += explicit[0].weight.data
    np.testing.assert_allclose(flat, np.concatenate([g.ravel() for g in expected]), rtol=1e-6)


class ResidualMLP(cr.Module):
    """x → x + W₂ relu(W₁ x), then a linear readout: a composite module of Tensor ops."""

    def __init__(self, width, classes, seed=0):
        self.inner = cr.Dense(width, width, seed=seed, dtype=np.float64)
        self.outer = cr.Dense(width, width, seed=seed + 1, dtype=np.float64)
        self.head = cr.Dense(width, classes, seed=seed + 2, dtype=np.float64)

    def forward(self, x):
        h = x + self.outer(self.inner(x).relu())
        return self.head(h)


def _torch_linear(torch, dense):
    lin = torch.nn.Linear(dense.in_features, dense.out_features, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense.weight.data))
        lin.bias.copy_(torch.from_numpy(dense.bias.data))
    return lin


def _assert_grads_match(dense, lin):
    np.testing.assert_allclose(dense.weight.grad, lin.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dense.bias.grad, lin.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_residual_mlp_matches_a_pytorch_twin():
    torch = pytest.importorskip("torch")
    model = ResidualMLP(6, 3)
    inner, outer, head = (_torch_linear(torch, d) for d in (model.inner, model.outer, model.head))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    loss = cr.SoftmaxCrossEntropy()(model(cr.Tensor(x)), y)
    loss.backward()
    xt = torch.from_numpy(x)
    ref = torch.nn.functional.cross_entropy(head(xt + outer(torch.relu(inner(xt)))),
                                            torch.from_numpy(y))  # fmt: skip
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    for dense, lin in zip((model.inner, model.outer, model.head), (inner, outer, head)):
        _assert_grads_match(dense, lin)


def test_a_layer_reused_several_times_matches_a_pytorch_twin():
    """One Dense cell applied to every row of the input in turn (a small recurrent net):
    each call keeps its own cache in its own node, and the weight gradients add up."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    steps, n, d, hidden = 5, 4, 3, 6
    cell = cr.Dense(d + hidden, hidden, seed=0, dtype=np.float64)
    head = cr.Dense(hidden, 2, seed=1, dtype=np.float64)
    x, y = rng.standard_normal((n, steps, d)), rng.integers(0, 2, n)
    xt = cr.Tensor(x, requires_grad=True)
    h = cr.Tensor(np.zeros((n, hidden)))
    for t in range(steps):
        h = cell(cr.concat([xt[:, t], h], axis=1)).tanh()
    loss = cr.SoftmaxCrossEntropy()(head(h), y)
    loss.backward()
    tcell, thead = _torch_linear(torch, cell), _torch_linear(torch, head)
    tx = torch.tensor(x, requires_grad=True)
    th = torch.zeros((n, hidden), dtype=torch.float64)
    for t in range(steps):
        th = torch.tanh(tcell(torch.cat([tx[:, t], th], dim=1)))
    ref = torch.nn.functional.cross_entropy(thead(th), torch.from_numpy(y))
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    _assert_grads_match(cell, tcell)
    _assert_grads_match(head, thead)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-13)


def _training_run(graph: bool, steps: int = 6):
    model = cr.Sequential(
        cr.Flatten(), cr.Dense(12, 8, seed=0), cr.BatchNorm1d(8), cr.ReLU(),
        cr.Dropout(0.25, seed=1), cr.Dense(8, 3, seed=2),
    )  # fmt: skip
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = cr.SoftmaxCrossEntropy()
    rng = np.random.default_rng(5)
    for _ in range(steps):
        x, y = rng.standard_normal((16, 3, 4)).astype(F32), rng.integers(0, 3, 16)
        opt.zero_grad()
        if graph:
            loss_fn(model(cr.Tensor(x)), y).backward()
        else:
            loss_fn(model(x), y)
            model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return model.state_dict()


def test_graph_training_gives_the_weights_of_explicit_training():
    explicit, graph = _training_run(False), _training_run(True)
    assert explicit.keys() == graph.keys()
    for key in explicit:
        np.testing.assert_array_equal(explicit[key], graph[key], strict=True)


class OldStyleScale(cr.Module):
    """A layer written the old way: forward/backward with its cache on self."""

    def __init__(self):
        self.w = cr.Parameter(np.array([2.0]))

    def forward(self, x):
        self._x = x
        return x * self.w.data

    def backward(self, grad_out, input_grad=True):
        self.w.grad += np.sum(grad_out * self._x, keepdims=True).reshape(1)
        return grad_out * self.w.data if input_grad else None


def test_an_old_style_layer_becomes_one_node():
    layer = OldStyleScale()
    x = cr.Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    out = layer(x)
    assert isinstance(out, cr.Tensor)
    (out * out).sum().backward()  # d/dx (wx)² = 2w²x, d/dw = 2w Σx²
    np.testing.assert_allclose(x.grad, [[8.0, 16.0]])
    np.testing.assert_allclose(layer.w.grad, [20.0])


def test_a_layer_in_eval_mode_refuses_a_graph_backward():
    layer = cr.Dense(3, 2, seed=0).eval()
    out = layer(cr.Tensor(np.ones((1, 3), F32), requires_grad=True))
    with pytest.raises(RuntimeError, match="train mode"):
        out.sum().backward()


def test_parameters_are_tensors():
    layer = cr.Dense(3, 2, seed=0)
    w = layer.weight
    assert isinstance(w, cr.Tensor) and w.requires_grad and w.is_leaf
    assert w.grad.shape == w.shape and w.name == ""


def test_a_conv_layer_applied_twice_in_one_graph_keeps_both_caches():
    torch = pytest.importorskip("torch")
    conv = cr.Conv2D(2, 2, 3, padding=1, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    xt = cr.Tensor(x, requires_grad=True)
    out = conv(conv(xt).tanh())
    R = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(R)
    w = torch.tensor(conv.weight.data, requires_grad=True)
    b = torch.tensor(conv.bias.data, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)

    def tconv(v):
        return torch.nn.functional.conv2d(v, w, b, padding=1)

    tconv(torch.tanh(tconv(tx))).backward(torch.tensor(R))
    np.testing.assert_allclose(conv.weight.grad, w.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
