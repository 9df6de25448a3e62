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
    with pytest.raises(TypeError, match="Module, Loss, Function or function of Tensors"):
        cr.gradcheck("a model", np.zeros(2))
    with pytest.raises(TypeError, match="returned ndarray, not a Tensor"):
        cr.gradcheck(lambda x: x.data, np.zeros(2))  # a function must stay on Tensors


# ---- the verdict: |a − n| ≤ atol + rtol·|n| (issue 14) -----------------------------------
class ScaledWeight(cr.Module):
    """y = c·w·x plus a term whose w-derivative is exactly 0 but whose numeric one is round-off.

    (x + 10w) − 10w equals x up to rounding, so finite differences in w see ≈ 1e-12 of noise
    while backward rightly reports 0 for it. `slip` scales the w-gradient to plant a bug.
    """

    def __init__(self, c: float, slip: float = 1.0) -> None:
        self.w = cr.module.Parameter(np.full(3, 0.7))
        self.c, self.slip = c, slip

    def forward(self, x):
        self._x = x
        return self.c * self.w.data * x + ((x + 10 * self.w.data) - 10 * self.w.data)

    def backward(self, grad_out, input_grad=True):
        self.w.grad += self.slip * self.c * np.sum(grad_out * self._x, axis=0)
        return grad_out * (self.c * self.w.data + 1)


def test_exactly_zero_gradient_against_round_off_passes():
    # the failure seen on another CPU: analytic 0, numeric 2.96e-12
    from chainrule.gradcheck import compare

    err = compare([("4.weight", np.array([[0.0, 1.0]]), np.array([[2.96e-12, 1.0]]))])
    assert err.passed and err < 1e-6
    assert err.max_abs_error == pytest.approx(2.96e-12)
    assert err.max_rel_error == pytest.approx(1.0)  # pure relative error: meaningless here
    # and end to end: a gradient that is exactly 0 while finite differences see round-off
    err = cr.gradcheck(ScaledWeight(c=0.0), np.random.default_rng(0).normal(size=(4, 3)))
    assert err.max_abs_error < 1e-9  # here ≈ 1e-11: above the old metric's 1e-12 floor
    assert err.passed and err < 1e-6, repr(err)


def test_wrong_gradient_still_fails_and_is_reported(rng):
    err = cr.gradcheck(ScaledWeight(c=2.0, slip=1.5), rng.normal(size=(4, 3)))
    assert not err.passed and err > 0.1
    assert err.worst.startswith("w[")
    assert err.analytic == pytest.approx(1.5 * err.numeric)
    text = repr(err)
    assert "passed=False" in text and "max_abs_error" in text and "max_rel_error" in text


def test_wrong_tiny_gradient_fails():
    # gradients of size ~1e-3, off by 10%: small in absolute terms, still a bug
    x = np.random.default_rng(1).uniform(0.5, 1.0, size=(4, 3))
    err = cr.gradcheck(ScaledWeight(c=1e-3, slip=1.1), x)
    assert 1e-4 < abs(err.numeric) < 1e-2
    assert not err.passed and err > 1e-3, repr(err)
    assert cr.gradcheck(ScaledWeight(c=1e-3), x).passed


def test_rtol_atol_are_the_criterion():
    from chainrule.gradcheck import compare

    a, n = np.array([1.0 + 2e-6, 1e-9]), np.array([1.0, 0.0])
    assert not compare([("p", a, n)]).passed  # 2e-6 > 1e-8 + 1e-6·1
    assert compare([("p", a, n)], rtol=1e-5).passed
    assert not compare([("p", np.array([1e-9]), np.array([0.0]))], atol=1e-10).passed
    with pytest.raises(ValueError, match="rtol"):
        compare([("p", a, n)], rtol=0.0)


# ---- the caller's model is untouched (issue 14) ------------------------------------------
def _snapshot(model):
    return (
        model.state_dict(),
        {name: (p.data.dtype, p.grad.copy()) for name, p in model.named_parameters()},
        [layer.rng.bit_generator.state for layer in model.layers if isinstance(layer, cr.Dropout)],
        [layer.training for layer in model.layers],
    )


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_leaves_the_model_untouched(training):
    rng = np.random.default_rng(3)
    model = cr.Sequential(
        cr.Conv2D(1, 2, 3, padding=1, seed=0), cr.Tanh(), cr.Flatten(),
        cr.Dense(2 * 4 * 4, 5, seed=1), cr.BatchNorm1d(5), cr.Tanh(),
        cr.Dropout(0.5, seed=2), cr.Dense(5, 3, seed=3),
    )  # fmt: skip
    x = rng.normal(size=(4, 1, 4, 4)).astype(np.float32)
    model.train()
    model.backward(np.ones_like(model(x)))  # some grads and moved running statistics
    model.train(training)
    before = _snapshot(model)
    params = model.parameters()

    cr.gradcheck(model, x)

    after = _snapshot(model)
    assert after[0].keys() == before[0].keys()
    for name in before[0]:
        assert after[0][name].dtype == before[0][name].dtype == np.float32, name
        np.testing.assert_array_equal(after[0][name], before[0][name], err_msg=name)
    for name, (dtype, grad) in before[1].items():
        assert after[1][name][0] == dtype
        np.testing.assert_array_equal(after[1][name][1], grad, err_msg=name)
    assert after[2] == before[2]  # Dropout's generator did not advance
    assert after[3] == before[3]
    assert all(p is q for p, q in zip(model.parameters(), params, strict=True))
    assert model(x).dtype == np.float32


def test_gradcheck_on_a_loss_leaves_it_untouched(rng):
    loss_fn = cr.SoftmaxCrossEntropy()
    pred, labels = rng.normal(size=(3, 4)).astype(np.float32), np.array([0, 3, 1])
    loss_fn(pred, labels)
    grad = loss_fn.backward().copy()
    assert cr.gradcheck(loss_fn, rng.normal(size=(5, 4)), np.arange(5) % 4).passed
    np.testing.assert_array_equal(loss_fn.backward(), grad)


def test_numerical_gradient_perturbs_a_strided_input_itself():
    """A transposed (non-contiguous) input has no flat view: the check must still move it."""
    from chainrule.gradcheck import numerical_gradient

    base = np.arange(12.0).reshape(3, 4)
    x = base.T  # (4, 3), not C-contiguous
    w = np.linspace(-1, 1, 12).reshape(4, 3)
    numeric = numerical_gradient(lambda: float(np.sum(x * w) + np.sum(x**2)), x)
    np.testing.assert_allclose(numeric, w + 2 * x, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(base, np.arange(12.0).reshape(3, 4))  # put back exactly
