"""The seeds' hand-derived matrix backprop, checked against the library's backward."""

import numpy as np

import chainrule as cr
from chainrule.activations import sigmoid, softmax


def test_seed_002_two_three_one_sigmoid_network(rng):
    """Seed 002: z1 = W1 x + b1, a1 = σ(z1), z2 = W2 a1 + b2, a2 = σ(z2), L = ½(a2 − y)²
    (one sample, as column vectors), then da2, dz2, dw2, db2, da1, dz1, dw1, db1 by hand."""
    x = np.array([[0.35], [0.9]])
    y = np.array([[0.5]])
    model = cr.Sequential(
        cr.Dense(2, 3, seed=1, dtype=np.float64),
        cr.Sigmoid(),
        cr.Dense(3, 1, seed=2, dtype=np.float64),
        cr.Sigmoid(),
    )
    W1, b1 = model[0].weight.data, model[0].bias.data[:, None]
    W2, b2 = model[2].weight.data, model[2].bias.data[:, None]

    z1 = W1 @ x + b1
    a1 = sigmoid(z1)
    z2 = W2 @ a1 + b2
    a2 = sigmoid(z2)
    da2 = a2 - y  # dL/da2 for L = ½(a2 − y)²
    dz2 = da2 * a2 * (1 - a2)  # σ'(z2) = a2(1 − a2)
    dw2 = dz2 @ a1.T
    db2 = dz2
    da1 = W2.T @ dz2
    dz1 = da1 * a1 * (1 - a1)
    dw1 = dz1 @ x.T
    db1 = dz1

    out = model(x.T)  # the library takes a batch of rows
    np.testing.assert_allclose(out, a2.T, rtol=1e-14)
    model.backward(out - y.T)  # dL/da2 of the same ½(a2 − y)²
    np.testing.assert_allclose(model[2].weight.grad, dw2, rtol=1e-13)
    np.testing.assert_allclose(model[2].bias.grad, db2[:, 0], rtol=1e-13)
    np.testing.assert_allclose(model[0].weight.grad, dw1, rtol=1e-13)
    np.testing.assert_allclose(model[0].bias.grad, db1[:, 0], rtol=1e-13)


def test_seed_003_delta_formulas_match_library_backward(rng):
    """Seed 003 (columns are samples): δ2 = A2 − Y, ∇W2 = (1/n) δ2 A1ᵀ, ∇b2 = (1/n) Σ δ2,
    δ1 = W2ᵀ δ2 ⊙ σ'(Z1), ∇W1 = (1/n) δ1 Xᵀ — for a sigmoid hidden layer, softmax output and
    cross-entropy loss."""
    n, d, h, c = 7, 5, 4, 3
    X = rng.normal(size=(d, n))
    labels = rng.integers(0, c, n)
    Y = np.eye(c)[labels].T
    model = cr.Sequential(
        cr.Dense(d, h, seed=3, dtype=np.float64),
        cr.Sigmoid(),
        cr.Dense(h, c, seed=4, dtype=np.float64),
    )
    W1, b1 = model[0].weight.data, model[0].bias.data[:, None]
    W2, b2 = model[2].weight.data, model[2].bias.data[:, None]

    Z1 = W1 @ X + b1
    A1 = sigmoid(Z1)
    A2 = softmax((W2 @ A1 + b2).T).T
    delta2 = A2 - Y
    grad_W2 = delta2 @ A1.T / n
    grad_b2 = delta2.sum(axis=1) / n
    delta1 = (W2.T @ delta2) * A1 * (1 - A1)
    grad_W1 = delta1 @ X.T / n
    grad_b1 = delta1.sum(axis=1) / n

    loss_fn = cr.SoftmaxCrossEntropy()
    loss = loss_fn(model(X.T), labels)
    assert np.isclose(loss, -np.sum(Y * np.log(A2)) / n, rtol=1e-13)
    model.backward(loss_fn.backward())
    np.testing.assert_allclose(model[2].weight.grad, grad_W2, rtol=1e-12)
    np.testing.assert_allclose(model[2].bias.grad, grad_b2, rtol=1e-12)
    np.testing.assert_allclose(model[0].weight.grad, grad_W1, rtol=1e-12)
    np.testing.assert_allclose(model[0].bias.grad, grad_b1, rtol=1e-12)
