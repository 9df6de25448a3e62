"""Integer images (uint8 pixels, int arrays) augment like the same images as floats."""

import numpy as np
import pytest

from chainrule.augment import RandomShift, affine_batch


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
@pytest.mark.parametrize("rotation", [0.0, 15.0])
def test_integer_images_augment_like_floats(dtype, rotation):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 28, 28)).astype(dtype)
    aug = RandomShift(max_shift=2, max_rotation=rotation)
    out = aug(images, rng=np.random.default_rng(1))
    expected = aug(images.astype(np.float32), rng=np.random.default_rng(1))
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    if rotation:
        assert not np.array_equal(out, np.round(out))  # fractions survive


def test_affine_batch_on_integers_interpolates():
    image = np.zeros((1, 3, 3), np.int64)
    image[0, 1, 1] = 100
    out = affine_batch(image, np.array([np.pi / 4]), np.zeros((1, 2)))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, affine_batch(image.astype(np.float32), np.array([np.pi / 4]),
                                                 np.zeros((1, 2))))
    assert 0 < out[0, 0, 1] < 100
