import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import activations as A

LAYERS = {
    "sigmoid": cr.Sigmoid,
    "tanh": cr.Tanh,
    "relu": cr.ReLU,
    "leaky_relu": lambda: cr.LeakyReLU(0.1),
    "gelu": cr.GELU,
    "gelu_tanh": lambda: cr.GELU("tanh"),
    "smelu": lambda: cr.SmeLU(beta=1.5),
    "softmax": cr.Softmax,
}


def away_from_kinks(x, kinks=(0.0, -1.5, 1.5), margin=1e-2):
    for k in kinks:
        x = np.where(np.abs(x - k) < margin, k + 2 * margin, x)
    return x


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck_every_activation(name, rng):
    x = away_from_kinks(rng.normal(scale=2.0, size=(4, 6)))
    assert cr.gradcheck(LAYERS[name](), x) < 1e-6


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = A.sigmoid(x)
        y32 = A.sigmoid(x.astype(np.float32))
    np.testing.assert_allclose(y, [0, 1.9287498479639178e-22, 0.5, 1, 1], rtol=1e-12)
    assert y32.dtype == np.float32


def test_softmax_rows_sum_to_one_even_for_huge_logits():
    z = np.array([[1000.0, 1001.0, 1002.0], [-5.0, 0.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = A.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], A.softmax(np.array([[0.0, 1.0, 2.0]]))[0])
    np.testing.assert_allclose(np.exp(A.log_softmax(z)), p)


def test_activation_values_at_known_points():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(A.relu(x), [0, 0, 0, 1, 3])
    np.testing.assert_allclose(A.leaky_relu(x, 0.1), [-0.3, -0.1, 0, 1, 3])
    # SmeLU, beta = 2: 0 below -2, quadratic (x+2)^2/8 between, identity above 2
    np.testing.assert_allclose(A.smelu(x, 2.0), [0, 1 / 8, 0.5, 9 / 8, 3])
    np.testing.assert_allclose(A.gelu(np.array([1.0])), [0.8413447460685429])
    np.testing.assert_allclose(A.gelu_tanh(np.array([1.0])), [0.8411919906082768])


def test_derivative_tables_cover_every_activation():
    assert set(A.ACTIVATIONS) == set(A.DERIVATIVES)
    assert A.activation_layer("relu").__class__ is cr.ReLU
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        A.activation_layer("swish")


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="beta must be positive"):
        cr.SmeLU(0)
    with pytest.raises(ValueError, match="approximate"):
        cr.GELU("fast")
