"""Same inputs and weights, same outputs and gradients as PyTorch (float64, 1e-10)."""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL = 1e-10


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=RTOL, atol=1e-14)


def test_dense_matches_linear(rng):
    layer = cr.Dense(5, 3, seed=0, dtype=np.float64)
    x, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    linear = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        linear.weight.copy_(t(layer.weight.data))
        linear.bias.copy_(t(layer.bias.data + 0.3))
    layer.bias.data += 0.3
    xt = t(x, grad=True)
    yt = linear(xt)
    yt.backward(t(g))
    close(layer(x), yt)
    dx = layer.backward(g)
    close(dx, xt.grad)
    close(layer.weight.grad, linear.weight.grad)
    close(layer.bias.grad, linear.bias.grad)


ACTIVATIONS = [
    (cr.Sigmoid, torch.sigmoid),
    (cr.Tanh, torch.tanh),
    (cr.ReLU, F.relu),
    (lambda: cr.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
    (cr.GELU, F.gelu),
    (lambda: cr.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
    (cr.Softmax, lambda x: F.softmax(x, dim=-1)),
]


@pytest.mark.parametrize("make,torch_fn", ACTIVATIONS)
def test_activations_match_torch(make, torch_fn, rng):
    x = rng.normal(scale=3, size=(6, 5))
    x[np.abs(x) < 1e-3] = 0.5
    g = rng.normal(size=(6, 5))
    layer = make()
    xt = t(x, grad=True)
    yt = torch_fn(xt)
    yt.backward(t(g))
    close(layer(x), yt)
    close(layer.backward(g), xt.grad)


def smelu_torch(x, beta):
    return torch.where(x <= -beta, 0.0, torch.where(x >= beta, x, (x + beta) ** 2 / (4 * beta)))


def test_smelu_matches_torch_autograd(rng):
    x, g = rng.normal(scale=3, size=(6, 5)), rng.normal(size=(6, 5))
    xt = t(x, grad=True)
    yt = smelu_torch(xt, 1.5)
    yt.backward(t(g))
    layer = cr.SmeLU(1.5)
    close(layer(x), yt)
    close(layer.backward(g), xt.grad)


def run_loss(ours, theirs, pred, target, target_t=None):
    pt = t(pred, grad=True)
    lt = theirs(pt, t(target) if target_t is None else target_t)
    lt.backward()
    assert ours(pred, target) == pytest.approx(lt.item(), rel=RTOL)
    close(ours.backward(), pt.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_match_torch(reduction, rng):
    r = reduction
    run_loss(
        cr.MSE(r),
        lambda p, y: F.mse_loss(p, y, reduction=r),
        rng.normal(size=(4, 3)),
        rng.normal(size=(4, 3)),
    )
    run_loss(
        cr.BCE(r),
        lambda p, y: F.binary_cross_entropy(p, y, reduction=r),
        rng.uniform(0.05, 0.95, (4, 3)),
        rng.uniform(size=(4, 3)),
    )
    run_loss(
        cr.BCEWithLogits(r),
        lambda p, y: F.binary_cross_entropy_with_logits(p, y, reduction=r),
        rng.normal(scale=4, size=(4, 3)),
        rng.uniform(size=(4, 3)),
    )
    labels = rng.integers(0, 5, 6)
    run_loss(
        cr.SoftmaxCrossEntropy(r),
        lambda p, y: F.cross_entropy(p, y, reduction=r),
        rng.normal(size=(6, 5)),
        labels,
        torch.tensor(labels),
    )
    soft = cr.activations.softmax(rng.normal(size=(6, 5)))
    run_loss(
        cr.SoftmaxCrossEntropy(r),
        lambda p, y: F.cross_entropy(p, y, reduction=r),
        rng.normal(size=(6, 5)),
        soft,
    )
    probs = cr.activations.softmax(rng.normal(size=(6, 5)))
    run_loss(
        cr.CrossEntropy(r),
        lambda p, y: F.nll_loss(torch.log(p), y, reduction=r),
        probs,
        labels,
        torch.tensor(labels),
    )


def test_small_network_matches_torch_end_to_end(rng):
    model = cr.Sequential(cr.Dense(4, 8, seed=0), cr.GELU(), cr.Dense(8, 3, seed=1)).astype(
        np.float64
    )
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 3)
    ).double()
    with torch.no_grad():
        for (_name, p), q in zip(model.named_parameters(), net.parameters()):
            q.copy_(t(p.data))
    x, labels = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    loss_fn = cr.SoftmaxCrossEntropy()
    loss = loss_fn(model(x), labels)
    model.backward(loss_fn.backward())
    lt = F.cross_entropy(net(t(x)), torch.tensor(labels))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=RTOL)
    for p, q in zip(model.parameters(), net.parameters()):
        close(p.grad, q.grad)
