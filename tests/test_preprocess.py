"""MNIST-style preparation of a user's digit image: polarity, crop, 20 px box, centre of mass."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from chainrule.preprocess import (
    ImageError,
    center_of_mass_paste,
    load_digit_image,
    preprocess_array,
    save_input_image,
)


def draw_zero(size, ink, paper, width, box, mode="L"):
    """A '0' (an ellipse's outline) inside `box` (left, top, right, bottom) of a canvas."""
    img = Image.new(mode, size, paper)
    ImageDraw.Draw(img).ellipse(box, outline=ink, width=width)
    return img


def centre_of_mass(a):
    ys, xs = np.indices(a.shape)
    return (a * ys).sum() / a.sum(), (a * xs).sum() / a.sum()


def ink_box(a, level=0.3):
    ys, xs = np.nonzero(a > level)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def check_mnist_like(a):
    assert a.shape == (28, 28) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() == pytest.approx(1.0, abs=0.02)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    assert border.max() < 0.05  # black background, the ink inside the field
    cy, cx = centre_of_mass(a)
    assert abs(cy - 14) <= 0.5 + 1e-6 and abs(cx - 14) <= 0.5 + 1e-6  # as MNIST's own
    h, w = ink_box(a, 0.05)
    assert 19 <= max(h, w) <= 22  # the longer side scaled to 20 px (+ antialiased edge)


def test_big_dark_on_light_photo_like_image(tmp_path):
    img = draw_zero((600, 800), ink=30, paper=225, width=40, box=(150, 150, 450, 650))
    path = tmp_path / "zero.png"
    img.save(path)
    a = load_digit_image(path)
    check_mnist_like(a)
    h, w = ink_box(a)
    assert h > w  # a tall digit stays tall: aspect ratio kept


def test_small_light_on_dark_image(tmp_path):
    img = draw_zero((20, 24), ink=255, paper=0, width=2, box=(4, 3, 14, 20))
    path = tmp_path / "small.png"
    img.save(path)
    check_mnist_like(load_digit_image(path))


def test_both_polarities_give_the_same_input(tmp_path):
    dark = draw_zero((280, 280), ink=0, paper=255, width=24, box=(60, 50, 220, 230))
    light = draw_zero((280, 280), ink=255, paper=0, width=24, box=(60, 50, 220, 230))
    a = preprocess_array(np.asarray(dark))
    b = preprocess_array(np.asarray(light))
    assert np.abs(a - b).max() < 1e-5
    assert a[a > 0].mean() > 0.3  # ink is bright after inversion


def test_off_centre_digit_is_centred_on_its_mass(tmp_path):
    img = draw_zero((400, 300), ink=0, paper=255, width=18, box=(10, 10, 120, 150))
    check_mnist_like(preprocess_array(np.asarray(img)))


def test_jpeg_rgb_and_bytes(tmp_path):
    img = draw_zero((200, 260), ink=(20, 20, 90), paper=(240, 235, 230), width=18,
                     box=(40, 40, 160, 230), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    a = load_digit_image(buf.getvalue())
    check_mnist_like(a)
    path = tmp_path / "zero.jpg"
    path.write_bytes(buf.getvalue())
    assert np.array_equal(load_digit_image(path), a)


def test_transparent_canvas_drawings():
    black_on_clear = draw_zero((280, 280), ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), width=20,
                                box=(60, 50, 220, 230), mode="RGBA")
    white_on_clear = draw_zero((280, 280), ink=(255, 255, 255, 255), paper=(255, 255, 255, 0),
                                width=20, box=(60, 50, 220, 230), mode="RGBA")
    for img in (black_on_clear, white_on_clear):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        check_mnist_like(load_digit_image(buf.getvalue()))


def test_an_mnist_digit_survives_the_round_trip():
    """A real test digit, blown up 10× and printed dark on light, comes back close to itself."""
    from chainrule.data import load

    _, (x, _) = load("mnist-10k")
    corr = []
    for digit in x[:40]:
        big = Image.fromarray(np.uint8(255 - digit * 255)).resize((280, 280), Image.BILINEAR)
        back = preprocess_array(np.asarray(big))
        corr.append(np.corrcoef(back.ravel(), digit.ravel())[0, 1])
    assert np.median(corr) > 0.95 and min(corr) > 0.6  # a few land one pixel over


def test_float_array_input():
    img = draw_zero((100, 100), ink=255, paper=0, width=8, box=(20, 20, 80, 85))
    check_mnist_like(preprocess_array(np.asarray(img, np.float32) / 255))


@pytest.mark.parametrize("paper", [0, 128, 255])
def test_blank_image_is_refused(paper):
    with pytest.raises(ImageError, match="no ink"):
        preprocess_array(np.full((50, 50), paper, np.uint8))


def test_unreadable_files_are_refused(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        load_digit_image(text)
    img = draw_zero((200, 200), ink=0, paper=255, width=10, box=(50, 50, 150, 150))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[:300])
    with pytest.raises(ImageError, match="cut.png: corrupt or truncated"):
        load_digit_image(cut)
    with pytest.raises(ImageError, match="no such file"):
        load_digit_image(tmp_path / "missing.png")
    blank = tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(blank)
    with pytest.raises(ImageError, match="blank.png: no ink"):
        load_digit_image(blank)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_center_of_mass_paste_keeps_the_digit_inside():
    lopsided = np.zeros((20, 20), np.float32)
    lopsided[:, 0] = 1.0  # all mass at the left edge
    out = center_of_mass_paste(lopsided)
    assert out.sum() == pytest.approx(lopsided.sum())  # nothing cut off


def test_save_input_image(tmp_path):
    a = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    path = save_input_image(a, tmp_path / "in.png")
    back = np.asarray(Image.open(path))
    assert back.shape == (28, 28) and back.dtype == np.uint8
    assert np.abs(back / 255.0 - a).max() <= 0.5 / 255 + 1e-6
