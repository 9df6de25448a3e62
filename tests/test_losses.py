import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.activations import softmax


def test_seed_003_cross_entropy_worked_example_exact():
    y_hat = np.array([[0.1, 0.5, 0.2, 0.2], [0.3, 0.4, 0.2, 0.1], [0.2, 0.3, 0.4, 0.1]])
    y = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    expected = -(1 / 3) * (math.log(0.5) + math.log(0.3) + math.log(0.4))
    assert cr.CrossEntropy()(y_hat, y) == pytest.approx(expected, rel=1e-15)
    assert cr.CrossEntropy()(y_hat, np.array([1, 0, 2])) == pytest.approx(expected, rel=1e-15)


def test_softmax_cross_entropy_gradient_is_p_minus_y_over_n(rng):
    z = rng.normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    loss_fn = cr.SoftmaxCrossEntropy()
    loss = loss_fn(z, labels)
    p = softmax(z)
    y = np.eye(4)[labels]
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), labels])), rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), (p - y) / 5, rtol=1e-12)
    # one-hot targets give the same loss and gradient as integer labels
    assert loss_fn(z, y) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), (p - y) / 5, rtol=1e-12)


def test_fused_equals_softmax_then_cross_entropy(rng):
    z = rng.normal(size=(6, 3))
    labels = rng.integers(0, 3, 6)
    fused = cr.SoftmaxCrossEntropy()(z, labels)
    two_step = cr.CrossEntropy()(softmax(z), labels)
    assert fused == pytest.approx(two_step, rel=1e-12)


def test_softmax_cross_entropy_survives_huge_logits():
    z = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    loss = cr.SoftmaxCrossEntropy()(z, np.array([1, 1]))
    assert math.isfinite(loss) and loss == pytest.approx(1000.0, rel=1e-9)


def test_bce_with_logits_stable_and_equal_to_bce(rng):
    z = rng.normal(size=(4, 3))
    t = rng.uniform(size=(4, 3))
    assert cr.BCEWithLogits()(z, t) == pytest.approx(cr.BCE()(cr.activations.sigmoid(z), t))
    big = cr.BCEWithLogits()(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]))
    assert big == pytest.approx(800.0)


def test_mse_value_and_sum_reduction():
    pred, target = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 2.0], [1.0, 4.0]])
    assert cr.MSE()(pred, target) == pytest.approx(5 / 4)
    loss = cr.MSE(reduction="sum")
    assert loss(pred, target) == pytest.approx(5)
    np.testing.assert_allclose(loss.backward(), 2 * (pred - target))


CASES = {
    "mse": (cr.MSE, lambda r: (r.normal(size=(4, 3)), r.normal(size=(4, 3)))),
    "mse_sum": (lambda: cr.MSE("sum"), lambda r: (r.normal(size=(4, 3)), r.normal(size=(4, 3)))),
    "bce": (cr.BCE, lambda r: (r.uniform(0.05, 0.95, (4, 3)), r.uniform(size=(4, 3)))),
    "bce_logits": (cr.BCEWithLogits, lambda r: (r.normal(size=(4, 3)), r.uniform(size=(4, 3)))),
    "ce": (cr.CrossEntropy, lambda r: (softmax(r.normal(size=(4, 5))), r.integers(0, 5, 4))),
    "ce_onehot": (
        cr.CrossEntropy,
        lambda r: (softmax(r.normal(size=(4, 5))), np.eye(5)[[0, 2, 4, 1]]),
    ),
    "softmax_ce": (cr.SoftmaxCrossEntropy, lambda r: (r.normal(size=(4, 5)), r.integers(0, 5, 4))),
    "softmax_ce_soft": (
        lambda: cr.SoftmaxCrossEntropy("sum"),
        lambda r: (r.normal(size=(4, 5)), softmax(r.normal(size=(4, 5)))),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_every_loss(name, rng):
    make, data = CASES[name]
    pred, target = data(rng)
    assert cr.gradcheck(make(), pred, target) < 1e-6


@pytest.mark.parametrize("loss", [cr.MSE(), cr.BCEWithLogits(), cr.SoftmaxCrossEntropy()])
def test_nan_or_inf_predictions_are_rejected(loss):
    pred = np.array([[0.2, np.nan], [0.1, 0.3]])
    target = np.array([0, 1]) if isinstance(loss, cr.SoftmaxCrossEntropy) else np.zeros((2, 2))
    with pytest.raises(ValueError, match="NaN/inf"):
        loss(pred, target)
    pred[0, 1] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        loss(pred, target)


def test_softmax_ce_rejects_minus_inf_and_nan_anywhere_in_a_row():
    """The row max is read off at the argmax; a NaN or ±inf anywhere (not just at the max)
    is still refused."""
    for bad in (np.nan, np.inf, -np.inf):
        for col in range(3):
            pred = np.array([[0.5, 2.0, -1.0], [0.1, 0.2, 0.3]], np.float32)
            pred[0, col] = bad
            with pytest.raises(ValueError, match="NaN/inf"):
                cr.SoftmaxCrossEntropy()(pred, np.array([1, 0]))


def test_softmax_ce_equals_the_shift_by_the_row_max_bit_for_bit(rng):
    """Loss, probabilities and gradient are those of the textbook shift z − max(z, axis=1)."""
    z = (rng.standard_normal((37, 10)) * 5).astype(np.float32)
    z[3] = z[3, 0]  # a row of ties
    y = rng.integers(0, 10, 37)
    loss_fn = cr.SoftmaxCrossEntropy()
    loss = loss_fn(z, y)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=1, keepdims=True)
    p /= total
    expected = (float(np.log(total).sum()) - float(shifted[np.arange(37), y].sum())) / 37
    assert loss == expected
    assert loss_fn.probabilities.tobytes() == p.tobytes()
    grad = p * (1.0 / 37)
    grad[np.arange(37), y] -= 1.0 / 37
    assert loss_fn.backward().tobytes() == grad.tobytes()


def test_labels_outside_class_range_are_rejected():
    with pytest.raises(ValueError, match=r"label 10 is outside the class range 0..9"):
        cr.SoftmaxCrossEntropy()(np.zeros((2, 10)), np.array([3, 10]))
    with pytest.raises(ValueError, match=r"label -1 is outside"):
        cr.CrossEntropy()(np.full((2, 3), 1 / 3), np.array([-1, 0]))


def test_shape_mismatches_are_rejected():
    with pytest.raises(ValueError, match=r"2 predictions but labels of shape \(3,\)"):
        cr.SoftmaxCrossEntropy()(np.zeros((2, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="prediction shape"):
        cr.MSE()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="probabilities in"):
        cr.BCE()(np.array([[1.5]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="reduction"):
        cr.MSE(reduction="avg")


# ---- one clamp for forward and backward -------------------------------------------------------
def _central_difference(loss_fn, pred, target, i, h):
    up, down = pred.copy(), pred.copy()
    up.flat[i] += h
    down.flat[i] -= h
    return (loss_fn(up, target) - loss_fn(down, target)) / (2 * h)


def test_cross_entropy_confidently_wrong_still_learns():
    p = np.array([[1e-50, 1.0 - 1e-50], [0.3, 0.7]])
    loss_fn = cr.CrossEntropy()
    loss = loss_fn(p, np.array([0, 1]))
    assert math.isfinite(loss) and loss > 50  # (−log 1e−50 ≈ 115, beyond PyTorch's clamp)/2
    grad = loss_fn.backward()
    assert np.isfinite(grad).all() and grad[0, 0] < 0
    numeric = _central_difference(loss_fn, p, np.array([0, 1]), 0, 1e-56)
    assert grad[0, 0] == pytest.approx(numeric, rel=1e-6)
    assert math.isfinite(loss_fn(np.array([[0.0, 1.0]]), np.array([0])))  # clamped at tiny
    assert np.isfinite(loss_fn.backward()).all()


def test_bce_confidently_wrong_still_learns():
    p, y = np.array([1e-50, 1.0 - 1e-12, 0.5]), np.array([1.0, 0.0, 1.0])
    loss_fn = cr.BCE()
    assert math.isfinite(loss_fn(p, y))
    grad = loss_fn.backward()
    assert np.isfinite(grad).all() and grad[0] < 0 and grad[1] > 0
    assert grad[0] == pytest.approx(_central_difference(loss_fn, p, y, 0, 1e-56), rel=1e-6)
    assert grad[1] == pytest.approx(1 / (1 - p[1]) / 3, rel=1e-12)
    loss_fn(np.array([0.0, 1.0]), np.array([1.0, 0.0]))  # both clamped: finite either way
    assert np.isfinite(loss_fn.backward()).all()
