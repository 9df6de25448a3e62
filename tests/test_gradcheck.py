import numpy as np
import pytest

import chainrule as cr


class WrongTanh(cr.Tanh):
    """A deliberately broken backward: forgets the square in 1 - tanh²."""

    def backward(self, grad_out, input_grad=True):
        x, y = self._cache
        return grad_out * (1 - y)


class WrongDenseBias(cr.Dense):
    def backward(self, grad_out, input_grad=True):
        dx = super().backward(grad_out, input_grad)
        self.bias.grad *= 2
        return dx


def test_gradcheck_catches_a_wrong_activation_derivative(rng):
    err = cr.gradcheck(WrongTanh(), rng.normal(size=(3, 4)))
    assert err > 1e-2
    assert err.worst.startswith("input[")


def test_gradcheck_names_the_wrong_parameter(rng):
    model = cr.Sequential(cr.Dense(3, 4, seed=0), cr.Tanh(), WrongDenseBias(4, 2, seed=1))
    err = cr.gradcheck(model, rng.normal(size=(5, 3)))
    assert err > 0.1
    assert err.worst.startswith("2.bias[")
    assert "2.bias" in repr(err)


def test_gradcheck_returns_float_and_passes_correct_code(rng):
    err = cr.gradcheck(cr.Dense(3, 2, seed=0), rng.normal(size=(2, 3)))
    assert isinstance(err, float) and err < 1e-8


def test_numerical_gradient_of_a_known_function():
    from chainrule.gradcheck import numerical_gradient

    x = np.array([1.0, 2.0, -0.5])
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * np.array([1.0, 2.0, -0.5]) ** 2, rtol=1e-10)


def test_gradcheck_rejects_other_objects():
    with pytest.raises(TypeError, match="Module or Loss"):
        cr.gradcheck(lambda x: x, np.zeros(2))
