"""Tests for the scalar neural-network modules `chainrule.scalar` (Neuron, Layer, MLP)."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.scalar import MLP, Layer, Neuron
from chainrule.value import Value


def test_package_exports():
    assert cr.Value is Value
    assert cr.scalar.MLP is MLP and cr.scalar.Layer is Layer and cr.scalar.Neuron is Neuron


def test_neuron_computes_activation_of_weighted_sum():
    n = Neuron(3, "tanh", seed=0)
    x = [0.5, -1.0, 2.0]
    expected = math.tanh(sum(w.data * xi for w, xi in zip(n.w, x)) + n.b.data)
    assert n(x).data == pytest.approx(expected, rel=1e-12)
    assert len(n.parameters()) == 4 and n.parameters()[-1] is n.b


@pytest.mark.parametrize(
    "nonlin, fn",
    [
        ("relu", lambda z: max(z, 0.0)),
        ("tanh", math.tanh),
        ("sigmoid", lambda z: 1 / (1 + math.exp(-z))),
        ("linear", lambda z: z),
    ],
)
def test_neuron_activations(nonlin, fn):
    n = Neuron(2, nonlin, seed=1)
    for x in ([0.3, -0.7], [-2.0, 1.5], [1.0, 1.0]):
        z = n.w[0].data * x[0] + n.w[1].data * x[1] + n.b.data
        assert n(x).data == pytest.approx(fn(z), rel=1e-12, abs=1e-15)


def test_neuron_gradients():
    n = Neuron(2, "linear", seed=0)
    x = [Value(0.3), Value(-0.7)]
    out = n(x)
    out.backward()
    assert n.w[0].grad == pytest.approx(0.3) and n.w[1].grad == pytest.approx(-0.7)
    assert n.b.grad == 1.0
    assert x[0].grad == n.w[0].data and x[1].grad == n.w[1].data


def test_neuron_uses_one_dot_node():
    n = Neuron(4, "linear", seed=0)
    out = n([1.0, 2.0, 3.0, 4.0])
    assert out._op == "dot" and len(out._prev) == 9  # four weights, four inputs, the bias
    assert out._prev[:4] == tuple(n.w) and out._prev[-1] is n.b
    relu = Neuron(4, "relu", seed=0)([1.0, 2.0, 3.0, 4.0])
    assert relu._op == "relu" and relu._prev[0]._op == "dot"


def test_neuron_matches_the_unfused_products_and_sum():
    """The dot node gives the value and gradients of act(b + sum of w_i * x_i) node by node."""
    n = Neuron(3, "tanh", seed=4)
    x = [Value(0.3), Value(-1.2), Value(2.0)]
    out = n(x)
    out.backward()
    grads = [v.grad for v in [*n.parameters(), *x]]
    for v in [*n.parameters(), *x]:
        v.grad = 0.0
    ref = Value.sum([n.b, *[w * xi for w, xi in zip(n.w, x)]]).tanh()
    ref.backward()
    assert out.data == pytest.approx(ref.data, rel=1e-12)
    for got, want in zip(grads, [v.grad for v in [*n.parameters(), *x]]):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_unknown_activation_and_wrong_input_size():
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        Neuron(2, "softplus")
    with pytest.raises(ValueError, match="expects 2 inputs, got 3"):
        Neuron(2, seed=0)([1.0, 2.0, 3.0])


def test_seeding_is_reproducible_and_rng_is_shared():
    a, b = MLP(2, [4, 1], seed=7), MLP(2, [4, 1], seed=7)
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]
    c = MLP(2, [4, 1], rng=np.random.default_rng(7))
    assert [p.data for p in a.parameters()] == [p.data for p in c.parameters()]
    d = MLP(2, [4, 1], seed=8)
    assert [p.data for p in a.parameters()] != [p.data for p in d.parameters()]
    with pytest.raises(ValueError, match="either rng or seed"):
        MLP(2, [1], rng=np.random.default_rng(0), seed=1)


def test_init_bound_is_one_over_sqrt_fan_in():
    layer = Layer(16, 32, seed=0)
    w, b = layer.weights()
    bound = 1 / math.sqrt(16)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.8 * bound


def test_layer_shapes_and_parameters():
    layer = Layer(3, 4, "tanh", seed=0)
    out = layer([1.0, 2.0, 3.0])
    assert isinstance(out, list) and len(out) == 4
    assert len(layer.parameters()) == 4 * (3 + 1)
    w, b = layer.weights()
    assert w.shape == (4, 3) and b.shape == (4,) and w.dtype == np.float64


def test_mlp_structure_and_output():
    m = MLP(2, [16, 16, 1], seed=0)
    assert [layer.nonlin for layer in m.layers] == ["relu", "relu", "linear"]
    assert len(m.parameters()) == (2 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    assert isinstance(m([0.5, -0.5]), Value)
    m2 = MLP(2, [3, 2], ["tanh", "sigmoid"], seed=0)
    out = m2([0.5, -0.5])
    assert isinstance(out, list) and len(out) == 2
    assert all(0 < v.data < 1 for v in out)
    with pytest.raises(ValueError, match="need 2 activations"):
        MLP(2, [3, 2], ["tanh"])


def test_mlp_matches_numpy_forward():
    m = MLP(3, [5, 4, 2], "tanh", out_nonlin="sigmoid", seed=3)
    x = np.array([0.2, -1.1, 0.7])
    h = x
    for i, (w, b) in enumerate(m.weights()):
        h = h @ w.T + b
        h = 1 / (1 + np.exp(-h)) if i == 2 else np.tanh(h)
    out = m(x.tolist())
    np.testing.assert_allclose([v.data for v in out], h, rtol=1e-12)


def test_inputs_are_wrapped_once():
    m = MLP(2, [3, 1], seed=0)
    out = m([1.0, 2.0])
    leaves = [n for n in out.topological_order() if not n._prev]
    inputs = [n for n in leaves if n.data in (1.0, 2.0) and n not in m.parameters()]
    assert len(inputs) == 2  # one leaf per input, shared by the three neurons


def test_weights_round_trip_and_from_dense():
    rng = np.random.default_rng(0)
    dense = [
        (rng.normal(size=(4, 3)), rng.normal(size=4)),
        (rng.normal(size=(1, 4)), rng.normal(size=1)),
    ]
    m = MLP.from_dense_weights(dense, ["tanh", "linear"])
    assert [layer.nonlin for layer in m.layers] == ["tanh", "linear"]
    for (w, b), (w2, b2) in zip(dense, m.weights()):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    x = rng.normal(size=3)
    expected = np.tanh(x @ dense[0][0].T + dense[0][1]) @ dense[1][0].T + dense[1][1]
    assert m(x.tolist()).data == pytest.approx(expected[0], rel=1e-12)

    params_before = m.parameters()
    m.load_weights([(w * 2, b * 2) for w, b in dense])
    assert m.parameters() == params_before  # written in place, same Value objects
    np.testing.assert_array_equal(m.weights()[0][0], dense[0][0] * 2)
    with pytest.raises(ValueError, match="expected weight"):
        m.load_weights([(dense[0][0].T, dense[0][1]), dense[1]])
    with pytest.raises(ValueError, match="expected 2"):
        m.load_weights(dense[:1])


def test_grads_layout_and_zero_grad():
    m = MLP(2, [3, 1], "tanh", seed=0)
    loss = (m([0.5, -0.25]) - 1.0) ** 2
    loss.backward()
    (dw1, db1), (dw2, db2) = m.grads()
    assert dw1.shape == (3, 2) and db1.shape == (3,) and dw2.shape == (1, 3)
    assert dw1[1, 0] == m.layers[0].neurons[1].w[0].grad
    assert db2[0] == m.layers[1].neurons[0].b.grad != 0.0
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())


def test_mlp_learns_xor():
    """A tiny tanh MLP fits XOR with plain gradient descent on the MSE."""
    data = [([0.0, 0.0], -1.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([1.0, 1.0], -1.0)]
    m = MLP(2, [4, 1], "tanh", out_nonlin="tanh", seed=1)
    for _ in range(300):
        loss = Value.sum([(m(x) - y) ** 2 for x, y in data]) / len(data)
        m.zero_grad()
        loss.backward()
        for p in m.parameters():
            p.data -= 0.2 * p.grad
    assert loss.data < 0.05
    assert all((m(x).data > 0) == (y > 0) for x, y in data)


def test_reprs():
    assert repr(Neuron(2, "tanh", seed=0)) == "Neuron(2, nonlin='tanh')"
    assert repr(MLP(2, [3, 1], seed=0)) == (
        "MLP([Layer(2, 3, nonlin='relu'), Layer(3, 1, nonlin='linear')])"
    )


def test_a_training_step_leaves_no_reference_cycles():
    """The graph is freed by reference counting alone: the cyclic collector finds nothing."""
    m = MLP(2, [4, 4, 1], seed=0)
    xs, ys = [[0.5, -1.0], [1.5, 0.25], [-0.3, 0.8]], [1.0, -1.0, 0.5]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        loss = Value.sum([(m(x) - y) ** 2 for x, y in zip(xs, ys)]) / len(xs)
        m.zero_grad()
        loss.backward()
        for p in m.parameters():
            p.data -= 0.05 * p.grad
        del loss
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
