"""Training-time augmentation: exact shifts, correct rotations, seeded, batched, fast."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.augment import RandomShift, affine_batch, shift_batch


def digits(rng, n=16):
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 6:22, 9:19] = rng.random((n, 16, 10), dtype=np.float32)  # ink away from the edges
    return x


def shifted(image, dy, dx):
    """Reference: move by (dy, dx) pixels, zeros coming in (one image, plain slicing)."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        image[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def test_shift_batch_matches_reference(rng):
    x = rng.random((30, 28, 28), dtype=np.float32)
    shifts = rng.integers(-3, 4, size=(30, 2))
    out = shift_batch(x, shifts)
    for i, (dy, dx) in enumerate(shifts):
        assert np.array_equal(out[i], shifted(x[i], dy, dx))


@pytest.mark.parametrize("shape", [(12, 28, 28), (12, 784), (12, 1, 28, 28)])
def test_shapes_and_dtype_are_kept(rng, shape):
    x = rng.random(shape, dtype=np.float32)
    for aug in (RandomShift(2), RandomShift(2, max_rotation=10)):
        out = aug(x, None, rng)
        assert out.shape == x.shape and out.dtype == np.float32


def test_every_image_is_one_of_the_allowed_shifts(rng):
    x = digits(rng, 40)
    out = RandomShift(max_shift=2)(x, None, np.random.default_rng(0))
    for i in range(len(x)):
        candidates = [shifted(x[i], dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.array_equal(out[i], c) for c in candidates)
    assert not np.array_equal(out, x)  # 40 images: some moved
    assert np.allclose(out.sum(axis=(1, 2)), x.sum(axis=(1, 2)))  # ink kept (none at edges)


def test_seeded_and_input_untouched(rng):
    x = digits(rng)
    copy = x.copy()
    aug = RandomShift(2, max_rotation=10)
    a = aug(x, None, np.random.default_rng(5))
    b = aug(x, None, np.random.default_rng(5))
    c = aug(x, None, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(x, copy)
    own = RandomShift(2, seed=3)
    assert np.array_equal(own(x), RandomShift(2, seed=3)(x))  # its own generator


def test_zero_augmentation_is_identity(rng):
    x = digits(rng)
    assert np.array_equal(RandomShift(0)(x, None, rng), x)


def test_rotation_without_angle_equals_shift(rng):
    x = rng.random((20, 28, 28), dtype=np.float32)
    shifts = rng.integers(-2, 3, size=(20, 2))
    assert np.array_equal(affine_batch(x, np.zeros(20), shifts), shift_batch(x, shifts))


def test_rotation_turns_anticlockwise_about_the_centre():
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 4, 13:15] = 1.0  # a mark straight above the centre (13.5, 13.5)
    out = affine_batch(image, np.array([np.pi / 2]), np.zeros((1, 2)))[0]
    ys, xs = np.nonzero(out > 0.5)
    assert np.all(xs == 4) and set(ys) == {13, 14}  # now straight left of the centre
    half = affine_batch(image, np.array([np.pi]), np.zeros((1, 2)))[0]
    assert np.allclose(half[23, 13:15], 1.0)  # and below it after half a turn


def test_small_rotation_keeps_the_digit_mostly(rng):
    x = digits(rng, 8)
    out = affine_batch(x, np.deg2rad(np.full(8, 10.0)), np.zeros((8, 2)))
    assert np.allclose(out.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=0.05)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_far_shift_gives_an_empty_image():
    x = np.ones((2, 28, 28), np.float32)
    out = affine_batch(x, np.array([0.3, -0.3]), np.array([[40, 0], [0, -40]]))
    assert not out.any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_shift"):
        RandomShift(-1)
    with pytest.raises(ValueError, match="max_rotation"):
        RandomShift(2, max_rotation=500)
    with pytest.raises(ValueError, match="image_shape"):
        RandomShift(2)(np.zeros((3, 10), np.float32))


def test_usable_as_fit_augment(rng):
    x = digits(rng, 64)
    y = rng.integers(0, 10, 64)
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0))
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    history = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=2, batch_size=16,
                     augment=RandomShift(2, max_rotation=5), progress=False)
    assert len(history.loss) == 2


def test_a_big_batch_in_one_call(rng):
    """8,000 digits at once (the vectorised path; its speed: bench/bench_cli.py)."""
    x = rng.random((8000, 28, 28), dtype=np.float32)
    out = RandomShift(2, max_rotation=10)(x, None, rng)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not np.array_equal(out, x)
