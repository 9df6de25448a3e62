"""The distortions beyond shifts and rotations: scale, shear, elastic, stroke thickness."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.augment import (
    RandomShift,
    affine_batch,
    smooth_displacement,
    stroke_batch,
    thick_pen,
    warp_batch,
)


def bar(width=2, length=16, size=28):
    """A vertical bar `width` px wide (columns 13..), `length` px tall, centred."""
    img = np.zeros((size, size), np.float32)
    top = (size - length) // 2
    img[top : top + length, 13 : 13 + width] = 1.0
    return img


def moments(img):
    ys, xs = np.indices(img.shape)
    m = img.sum()
    cy, cx = (img * ys).sum() / m, (img * xs).sum() / m
    var_y = (img * (ys - cy) ** 2).sum() / m
    cov = (img * (ys - cy) * (xs - cx)).sum() / m
    return cy, cx, var_y, cov


def test_identity_warp_is_exact(rng):
    x = rng.random((5, 28, 28)).astype(np.float32)
    out = warp_batch(x, np.repeat(np.eye(2)[None], 5, 0), np.zeros((5, 2)))
    assert out.dtype == np.float32 and np.array_equal(out, x)


def test_warp_by_a_rotation_matrix_is_affine_batch(rng):
    x = rng.random((6, 28, 28)).astype(np.float32)
    angles = rng.uniform(-0.3, 0.3, 6)
    shifts = rng.integers(-2, 3, (6, 2))
    c, s = np.cos(angles), np.sin(angles)
    forward = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    np.testing.assert_allclose(warp_batch(x, forward, shifts), affine_batch(x, angles, shifts),
                               atol=1e-4)


def test_scale_two_doubles_the_digit():
    out = warp_batch(bar(2, 8)[None], 2 * np.eye(2)[None], np.zeros((1, 2)))[0]
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    assert rows[-1] - rows[0] + 1 == pytest.approx(16, abs=1)
    assert out.sum() == pytest.approx(4 * bar(2, 8).sum(), rel=0.05)  # area × 4


def test_shear_slants_a_vertical_bar():
    shear = np.array([[[1.0, 0.0], [0.5, 1.0]]])  # x' = x + 0.5·y
    out = warp_batch(bar(2, 16)[None], shear, np.zeros((1, 2)))[0]
    _, _, var_y, cov = moments(out)
    assert cov / var_y == pytest.approx(0.5, abs=0.05)  # x grows half a pixel per row


def test_smooth_displacement_size_smoothness_and_seed():
    d = smooth_displacement(200, (28, 28), 1.5, np.random.default_rng(0))
    assert d.shape == (200, 2, 28, 28) and d.dtype == np.float32
    # bilinear interpolation between N(0, 1.5²) knots: RMS a little below 1.5
    assert 0.8 < np.sqrt((d**2).mean()) < 1.5
    # neighbouring pixels move nearly together: knots 9 px apart, ~4σ = 6 px between them
    assert np.abs(np.diff(d, axis=-1)).max() < 1.5
    again = smooth_displacement(200, (28, 28), 1.5, np.random.default_rng(0))
    assert np.array_equal(d, again)


def test_stroke_batch_thickens_and_thins():
    dot = np.zeros((1, 9, 9), np.float32)
    dot[0, 4, 4] = 1.0
    grown = stroke_batch(dot, np.array([1.0]))[0]
    plus = np.zeros((9, 9), np.float32)
    plus[4, 3:6] = plus[3:6, 4] = 1.0
    assert np.array_equal(grown, plus)
    thin_line = bar(1, 16)[None]
    assert stroke_batch(thin_line, np.array([-1.0])).max() == 0.0  # eroded away
    half = stroke_batch(bar(4, 16)[None], np.array([0.5]))[0]
    assert bar(4, 16).sum() < half.sum() < stroke_batch(bar(4, 16)[None], np.array([1.0])).sum()
    x = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    assert np.array_equal(stroke_batch(x, np.zeros(3)), x)


def test_zero_distortions_draw_nothing_extra(rng):
    """Scale, shear, elastic and thickness at 0 leave shifts and rotations as they were."""
    x = rng.random((16, 28, 28)).astype(np.float32)
    plain = RandomShift(2, 10)(x, None, np.random.default_rng(3))
    same = RandomShift(2, 10, max_scale=0, max_shear=0, elastic=0, max_thickness=0)(
        x, None, np.random.default_rng(3))
    assert np.array_equal(plain, same)


@pytest.mark.parametrize("shape", [(32, 28, 28), (32, 1, 28, 28), (32, 784)])
def test_every_distortion_keeps_shape_dtype_and_range(rng, shape):
    x = rng.random(shape).astype(np.float32)
    aug = RandomShift(2, 15, max_scale=0.15, max_shear=0.3, elastic=1.5, max_thickness=0.7)
    out = aug(x, None, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert np.array_equal(out, aug(x, None, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(out, aug(x, None, np.random.default_rng(1)))


def test_distortions_keep_a_digit_recognisably_in_place():
    from chainrule.data import load

    (x, _), _ = load("mnist-10k")
    aug = RandomShift(0, 10, max_scale=0.1, max_shear=0.2, elastic=1.0, max_thickness=0.5)
    out = aug(x[:200], None, np.random.default_rng(0))
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(out, x[:200])]
    assert np.median(corr) > 0.6  # distorted, not destroyed
    assert np.mean(corr) < 0.99  # and really distorted


@pytest.mark.parametrize("kwargs", [
    {"max_scale": -0.1}, {"max_scale": 1.0}, {"max_shear": float("nan")},
    {"elastic": float("inf")}, {"elastic": 11}, {"max_thickness": 1.5},
])
def test_bad_distortions_are_refused(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"RandomShift: {name}"):
        RandomShift(2, **kwargs)


def test_config_and_repr_name_the_distortions():
    aug = RandomShift(2, 10, elastic=1.5)
    assert aug.config()["elastic"] == 1.5 and aug.config()["max_scale"] == 0.0
    assert "elastic=1.5" in repr(aug) and "max_scale" not in repr(aug)


def test_usable_as_fit_augment_with_every_distortion(rng):
    x = rng.random((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = cr.models.mlp(hidden=(16,), seed=0)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    aug = RandomShift(2, 10, max_scale=0.1, max_shear=0.2, elastic=1.0, max_thickness=0.5)
    history = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=2, batch_size=16,
                     augment=aug, seed=0, progress=False)
    assert len(history.loss) == 2 and np.isfinite(history.loss).all()


def test_thick_pen_widens_strokes_by_the_width_asked():
    """A vertical bar 2 px wide redrawn 2 px wider is 4 px wide; 3 px wider takes a whole
    and a half-pixel dilation each side; width 0 leaves the image as it was."""
    from chainrule.preprocess import stroke_width

    bars = np.stack([bar(2), bar(2), bar(2)])
    out = thick_pen(bars, np.array([0.0, 2.0, 3.0]))
    assert np.array_equal(out[0], bars[0])
    assert np.array_equal(out[1], stroke_batch(bars[1:2], np.array([1.0]))[0])
    assert np.array_equal(out[1][8, 11:17] > 0, [False, True, True, True, True, False])
    twice = stroke_batch(stroke_batch(bars[2:3], np.array([1.0])), np.array([0.5]))[0]
    assert np.array_equal(out[2], twice)
    w = stroke_width(out)
    assert w[0] < w[1] < w[2]


@pytest.mark.parametrize("widths", [np.array([1.0, -1.0]), np.array([np.nan, 1.0]),
                                    np.array([1.0])])
def test_thick_pen_refuses_bad_widths(widths):
    with pytest.raises(ValueError, match="thick_pen: expected 2 widths"):
        thick_pen(np.zeros((2, 28, 28), np.float32), widths)
