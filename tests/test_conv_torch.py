"""Conv2D, pooling and BatchNorm2d against PyTorch in float64: forward and backward agree to
1e-10 (relative), over stride and padding combinations. Skipped when torch is absent."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.conv import AvgPool2D, BatchNorm2d, Conv2D, MaxPool2D

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-10


def close(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    assert ours.shape == theirs.shape
    scale = max(np.abs(theirs).max(), 1e-12)
    assert np.abs(ours - theirs).max() / scale < RTOL


def t(a, grad=False):
    return torch.tensor(np.array(a), dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize(
    "c_in, c_out, size, kernel, stride, padding",
    [
        (3, 4, (8, 8), 3, 1, 1),
        (1, 6, (28, 28), 3, 1, 1),
        (2, 5, (9, 7), 3, 2, 1),
        (3, 2, (7, 9), (2, 3), (1, 2), (0, 1)),
        (4, 3, (6, 6), 1, 1, 0),
        (2, 3, (10, 9), 5, (1, 2), 2),
        (2, 2, (5, 5), 5, 1, 0),
        (3, 4, (11, 11), 3, 2, 0),
    ],
)
def test_conv2d_matches_torch(c_in, c_out, size, kernel, stride, padding, rng):
    layer = Conv2D(c_in, c_out, kernel, stride=stride, padding=padding, rng=rng, dtype=np.float64)
    layer.bias.data[:] = rng.standard_normal(c_out)
    x = rng.standard_normal((3, c_in, *size))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)

    xt, wt, bt = t(x, True), t(layer.weight.data, True), t(layer.bias.data, True)
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    yt.backward(t(g))
    close(y, yt)
    close(dx, xt.grad)
    close(layer.weight.grad, wt.grad)
    close(layer.bias.grad, bt.grad)


@pytest.mark.parametrize(
    "kernel, stride, size",
    [(2, None, (8, 8)), (2, None, (6, 10)), (3, 1, (7, 6)), (3, 2, (9, 9))]
    + [((2, 3), (1, 2), (6, 9))],
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch(kind, kernel, stride, size, rng):
    layer = (MaxPool2D if kind == "max" else AvgPool2D)(kernel, stride)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    x = rng.standard_normal((3, 4, *size))
    if kind == "max":
        x = np.maximum(x, 0)  # many ties at 0: both send the gradient to the first maximum
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    xt = t(x, True)
    yt = fn(xt, kernel, stride)
    yt.backward(t(g))
    close(y, yt)
    close(dx, xt.grad)


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm2d_matches_torch(momentum, rng):
    c = 3
    layer = BatchNorm2d(c, eps=1e-5, momentum=momentum, dtype=np.float64)
    layer.weight.data[:] = rng.uniform(0.5, 1.5, c)
    layer.bias.data[:] = rng.standard_normal(c)
    ref = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.data))
        ref.bias.copy_(torch.from_numpy(layer.bias.data))
    for step in range(3):  # training: batch statistics, running averages updated
        x = rng.standard_normal((4, c, 5, 6)) * 2 + step
        g = rng.standard_normal(x.shape)
        layer.zero_grad()
        ref.zero_grad()
        y = layer(x)
        dx = layer.backward(g)
        xt = t(x, True)
        yt = ref(xt)
        yt.backward(t(g))
        close(y, yt)
        close(dx, xt.grad)
        close(layer.weight.grad, ref.weight.grad)
        close(layer.bias.grad, ref.bias.grad)
        close(layer.running_mean, ref.running_mean)
        close(layer.running_var, ref.running_var)
    layer.eval()
    layer.grad_in_eval = True  # eval mode keeps nothing for backward unless asked
    ref.eval()
    x = rng.standard_normal((2, c, 3, 3))
    g = rng.standard_normal(x.shape)
    y = layer(x)
    dx = layer.backward(g)  # eval: the running statistics are constants
    xt = t(x, True)
    yt = ref(xt)
    yt.backward(t(g))
    close(y, yt)
    close(dx, xt.grad)


def test_default_cnn_matches_torch(rng):
    """The whole default CNN (dropout off), weights copied across: logits and every grad."""
    model = cr.models.cnn(seed=3, channels=(4, 6), hidden=16, dropout=0.0).astype(np.float64)
    convs = [layer for layer in model if isinstance(layer, (Conv2D, cr.Dense))]
    nn = torch.nn
    ref = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 49, 16), nn.ReLU(), nn.Linear(16, 10),
    ).double()  # fmt: skip
    refs = [m for m in ref if isinstance(m, (nn.Conv2d, nn.Linear))]
    for ours, theirs in zip(convs, refs):
        ours.bias.data[:] = rng.standard_normal(ours.bias.data.shape) * 0.1
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    x = rng.random((5, 28, 28))
    labels = rng.integers(0, 10, 5)
    loss_fn = cr.SoftmaxCrossEntropy()
    loss = loss_fn(model(x), labels)
    model.backward(loss_fn.backward())
    loss_t = F.cross_entropy(ref(t(x[:, None])), torch.from_numpy(labels))
    loss_t.backward()
    assert abs(loss - loss_t.item()) < 1e-10 * abs(loss)
    for ours, theirs in zip(convs, refs):
        close(ours.weight.grad, theirs.weight.grad)
        close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize(
    "c_in, c_out, size, kernel, stride, padding",
    [(1, 2, (28, 28), 3, 2, 0), (2, 3, (8, 7), (3, 2), (2, 3), 1), (1, 2, (10, 9), 4, 3, 1)],
)
def test_conv2d_floors_odd_shapes_like_torch(c_in, c_out, size, kernel, stride, padding, rng):
    """Input rows and columns past the last whole window are unused (and get zero gradient)."""
    test_conv2d_matches_torch(c_in, c_out, size, kernel, stride, padding, rng)


@pytest.mark.parametrize(
    "kernel, stride, size, ceil_mode",
    [(2, None, (7, 7), False), (2, None, (7, 7), True), (3, 2, (8, 6), True),
     ((2, 3), (1, 2), (6, 8), True), (2, 3, (5, 5), True), (3, 2, (10, 9), False)],
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_odd_shapes_and_ceil_mode_match_torch(kind, kernel, stride, size, ceil_mode, rng):
    layer = (MaxPool2D if kind == "max" else AvgPool2D)(kernel, stride, ceil_mode=ceil_mode)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    x = rng.standard_normal((2, 3, *size))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    xt = t(x, True)
    yt = fn(xt, kernel, stride, ceil_mode=ceil_mode)
    yt.backward(t(g))
    close(y, yt)
    close(dx, xt.grad)
