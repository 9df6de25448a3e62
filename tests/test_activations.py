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


# ---- erf, dtypes, integer inputs ----------------------------------------------------------------
def test_erf_rational_matches_libm_to_round_off():
    """Cody's approximation (used without SciPy) against math.erf, tails included."""
    import math

    x = np.concatenate([
        np.linspace(-30, 30, 120_001), np.linspace(-5, 5, 40_001),
        np.geomspace(1e-300, 1e-3, 200), -np.geomspace(1e-300, 1e-3, 200),
        [0.0, -0.0, 0.46875, np.nextafter(0.46875, 1), 4.0, np.nextafter(4.0, 5), 26.6, 27.0],
    ])  # fmt: skip
    expected = np.array([math.erf(v) for v in x])
    got = A.erf_rational(x)
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(float).eps, atol=1e-14)
    assert np.abs(got - expected).max() < 1e-14
    np.testing.assert_array_equal(A.erf_rational(np.array([np.inf, -np.inf])), [1.0, -1.0])
    assert np.isnan(A.erf_rational(np.array([np.nan]))[0])
    assert A.erf(np.float32([0.5])).dtype == np.float32


def test_gelu_is_vectorised_without_scipy(monkeypatch, rng):
    x = away_from_kinks(rng.normal(scale=2.0, size=(4, 6)))
    with_scipy = cr.GELU()(x)
    monkeypatch.setattr(A, "_scipy_erf", None)
    np.testing.assert_allclose(cr.GELU()(x), with_scipy, rtol=1e-14, atol=1e-15)
    assert cr.gradcheck(cr.GELU(), x) < 1e-6


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_computes_in_the_forward_dtype(name, rng):
    layer = LAYERS[name]()
    y = layer(away_from_kinks(rng.normal(size=(3, 5))).astype(np.float32))
    dx = layer.backward(rng.normal(size=y.shape))  # float64 gradient
    assert y.dtype == dx.dtype == np.float32


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_integer_inputs_are_floats(name):
    x = np.array([[-3, -1, 0, 1, 3]])
    y = LAYERS[name]()(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, LAYERS[name]()(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    assert A.sigmoid(np.array([2]))[0] == pytest.approx(0.8807970779778823)
    assert A.smelu(np.array([1]))[0] == pytest.approx(9 / 8)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_eval_forward_keeps_nothing_and_backward_says_why(name, rng):
    layer = LAYERS[name]().eval()
    layer(rng.normal(size=(3, 5)))
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="train mode"):
        layer.backward(np.ones((3, 5)))
