"""The scalar path (`Value` MLP) and the matrix path (`Dense` layers) agree to 1e-12.

The same network, with the same float64 weights, is built twice: from `chainrule.scalar.MLP`
(one `Value` per number) and from `cr.Sequential(cr.Dense, activation, ...)` (one array per
layer). Both compute the mean squared error over a batch; the losses, every weight and bias
gradient, and the gradient with respect to the inputs must match.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.scalar import MLP
from chainrule.value import Value

RTOL = 1e-12
ATOL = 1e-15  # for gradients that are (nearly) zero, where only absolute error is meaningful

MATRIX_ACTIVATIONS = {"tanh": cr.Tanh, "relu": cr.ReLU, "sigmoid": cr.Sigmoid}


def build_pair(sizes: list[int], activations: list[str], rng: np.random.Generator):
    """The same MLP as a Dense `Sequential` and as a scalar `MLP` (float64, random weights)."""
    layers = []
    for nin, nout, act in zip(sizes[:-1], sizes[1:], activations):
        dense = cr.Dense(nin, nout, dtype=np.float64)
        dense.weight.data[...] = rng.normal(size=(nout, nin))
        dense.bias.data[...] = rng.normal(size=nout)
        layers.append(dense)
        if act != "linear":
            layers.append(MATRIX_ACTIVATIONS[act]())
    model = cr.Sequential(*layers)
    dense_layers = [layer for layer in layers if isinstance(layer, cr.Dense)]
    weights = [(d.weight.data.copy(), d.bias.data.copy()) for d in dense_layers]
    return model, dense_layers, MLP.from_dense_weights(weights, activations)


def scalar_mse(mlp: MLP, x: np.ndarray, y: np.ndarray) -> tuple[Value, list[list[Value]]]:
    """Mean over all N * nout elements of (prediction - target)**2, from Values."""
    inputs = [[Value(float(v)) for v in row] for row in x]
    terms = []
    for row, target in zip(inputs, y):
        out = mlp(row)
        outs = out if isinstance(out, list) else [out]
        terms.extend((o - float(t)) ** 2 for o, t in zip(outs, target))
    return Value.sum(terms) / y.size, inputs


@pytest.mark.parametrize(
    "sizes, activations",
    [
        ([2, 3, 1], ["tanh", "linear"]),
        ([3, 5, 4, 2], ["relu", "sigmoid", "linear"]),
        ([4, 6, 3], ["tanh", "tanh"]),
    ],
)
def test_scalar_and_matrix_paths_agree(sizes, activations):
    rng = np.random.default_rng(sum(sizes))
    model, dense_layers, mlp = build_pair(sizes, activations, rng)
    x = rng.normal(size=(7, sizes[0]))
    y = rng.normal(size=(7, sizes[-1]))

    loss_fn = cr.MSE()
    loss = loss_fn(model(x), y)
    grad_x = model.backward(loss_fn.backward())

    scalar_loss, inputs = scalar_mse(mlp, x, y)
    mlp.zero_grad()
    scalar_loss.backward()

    assert scalar_loss.data == pytest.approx(float(loss), rel=RTOL)
    for dense, (dw, db) in zip(dense_layers, mlp.grads()):
        np.testing.assert_allclose(dw, dense.weight.grad, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(db, dense.bias.grad, rtol=RTOL, atol=ATOL)
    scalar_grad_x = np.array([[v.grad for v in row] for row in inputs])
    np.testing.assert_allclose(scalar_grad_x, grad_x, rtol=RTOL, atol=ATOL)


def test_weights_copy_back_to_dense():
    """Weights trained on the scalar side load into Dense layers and give the same outputs."""
    rng = np.random.default_rng(0)
    model, dense_layers, mlp = build_pair([2, 3, 1], ["tanh", "linear"], rng)
    x = rng.normal(size=(5, 2))
    y = rng.normal(size=(5, 1))
    for _ in range(3):  # three SGD steps on the scalar network
        loss, _ = scalar_mse(mlp, x, y)
        mlp.zero_grad()
        loss.backward()
        for p in mlp.parameters():
            p.data -= 0.1 * p.grad
    for dense, (w, b) in zip(dense_layers, mlp.weights()):
        dense.weight.data[...] = w
        dense.bias.data[...] = b
    expected = np.array([mlp(row.tolist()).data for row in x])
    np.testing.assert_allclose(model(x)[:, 0], expected, rtol=RTOL)
