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


# ---- steps 6–7: stroke width and deskewing -----------------------------------------------------
STEPS = {"deskew": True, "stroke_width": 2.0}


def slanted_bar(k, width=2, length=16):
    """A bar `width` px wide whose column moves k px per row down (a digit slanted by k)."""
    img = np.zeros((28, 28), np.float32)
    for i, y in enumerate(range(6, 6 + length)):
        x = 13 + k * (i - length / 2)
        x0 = int(np.floor(x))
        img[y, x0 : x0 + width] = 1.0
    return img


def test_deskew_straightens_a_slanted_bar():
    from chainrule.preprocess import deskew

    for k in (-0.4, 0.3):
        img = slanted_bar(k)
        out = deskew(img)
        cy, cx = centre_of_mass(img)
        ys, xs = np.indices(out.shape)
        oy, ox = centre_of_mass(out)
        cov = (out * (ys - oy) * (xs - ox)).sum() / out.sum()
        assert abs(cov) < 0.1 * abs((img * (ys - cy) * (xs - cx)).sum() / img.sum())
        assert (oy, ox) == pytest.approx((cy, cx), abs=0.3)  # the centre of mass stays put


def test_deskew_leaves_an_upright_digit_alone_and_batches_like_single_images():
    from chainrule.preprocess import deskew

    upright = slanted_bar(0.0)
    assert np.abs(deskew(upright) - upright).max() < 1e-6
    batch = np.stack([slanted_bar(k) for k in (-0.3, 0.0, 0.2)])
    out = deskew(batch)
    for one, img in zip(out, batch):
        np.testing.assert_allclose(one, deskew(img), atol=1e-6)


def test_stroke_width_measures_bars():
    from chainrule.preprocess import stroke_width

    bars = np.zeros((3, 28, 28), np.float32)
    for i, w in enumerate((1, 3, 5)):
        bars[i, 4:24, 12 : 12 + w] = 1.0
    # 2·area / outline: 2·20w / (2·20 + 2w) → w·20/(20 + w)
    np.testing.assert_allclose(stroke_width(bars), [w * 20 / (20 + w) for w in (1, 3, 5)],
                               rtol=1e-6)


def test_normalise_strokes_brings_thick_and_thin_towards_the_target():
    from chainrule.preprocess import normalise_strokes, stroke_width

    zeros = [draw_zero((280, 280), ink=0, paper=255, width=w, box=(60, 40, 220, 240))
             for w in (6, 20, 45)]
    images = np.stack([preprocess_array(np.asarray(z)) for z in zeros])
    before = stroke_width(images)
    after = stroke_width(normalise_strokes(images, 2.0))
    assert before[0] < 1.8 and before[2] > 3.0  # thin and thick to start with
    assert np.all(np.abs(after - 2.0) < np.abs(before - 2.0))
    assert np.all(np.abs(after - 2.0) < 0.6)
    assert normalise_strokes(images).max(axis=(1, 2)) == pytest.approx([1, 1, 1])


def test_standardise_follows_the_model_metadata():
    from chainrule.preprocess import deskew, normalise_strokes, standardise

    img = preprocess_array(np.asarray(draw_zero((100, 100), 0, 255, 8, (20, 15, 80, 85))))
    assert np.array_equal(standardise(img, None), img)  # older models: MNIST's steps only
    assert np.array_equal(standardise(img, {"deskew": False, "stroke_width": None}), img)
    np.testing.assert_allclose(standardise(img, STEPS), normalise_strokes(deskew(img), 2.0))
    np.testing.assert_allclose(standardise(img, {"deskew": True}), deskew(img))


@pytest.mark.parametrize("steps", [
    {"deskew": "yes"}, {"stroke_width": -1}, {"stroke_width": 0.1}, {"stroke_width": 100},
    {"stroke_width": float("nan")}, {"stroke_width": True}, {"stroke_width": "2"},
    {"stroke_width": [2]}, ["deskew"], "deskew",
])
def test_hostile_preprocessing_metadata_is_refused(steps):
    img = np.zeros((28, 28), np.float32)
    img[5:20, 13:15] = 1
    with pytest.raises(ImageError, match="preprocessing"):
        preprocess_array(img, steps)


def test_load_digit_image_applies_the_steps(tmp_path):
    img = draw_zero((200, 160), ink=20, paper=240, width=30, box=(30, 30, 130, 170))
    path = tmp_path / "thick-zero.png"
    img.save(path)
    from chainrule.preprocess import standardise

    a = load_digit_image(path, STEPS)
    np.testing.assert_allclose(a, standardise(load_digit_image(path), STEPS), atol=1e-6)
    assert a.shape == (28, 28) and a.dtype == np.float32


# ---- pictures that are not a digit on a plain background ---------------------------------------
def test_shadowed_photo_is_refused_with_what_was_seen():
    img = np.asarray(draw_zero((200, 200), ink=30, paper=235, width=14, box=(60, 50, 140, 150)),
                     np.float32)
    shadow = np.linspace(0.35, 1.0, 200)[None, :]  # light falling off to the left
    photo = np.uint8(img * shadow)
    with pytest.raises(ImageError, match="background is not plain.*shadows") as info:
        preprocess_array(photo, STEPS)
    assert info.value.seen is not None and info.value.seen.shape == (28, 28)


def test_mostly_ink_picture_is_refused():
    """A white sheet with a dark digit, photographed on a dark table: the border says
    "dark background", so the paper itself would be taken for ink."""
    photo = np.full((200, 200), 20, np.uint8)
    photo[20:180, 20:180] = 235
    photo[60:140, 90:105] = 25  # the digit: a 1
    with pytest.raises(ImageError, match="looks like ink.*inverted") as info:
        preprocess_array(photo)
    assert info.value.seen is not None


def test_messages_are_one_line_and_name_the_file(tmp_path):
    path = tmp_path / "table.png"
    photo = np.full((100, 100), 20, np.uint8)
    photo[10:90, 10:90] = 235
    Image.fromarray(photo).save(path)
    with pytest.raises(ImageError) as info:
        load_digit_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert info.value.seen is not None  # passed on with the file's name added


@pytest.mark.parametrize("case", ["vignette", "edge_stroke", "noisy_jpeg"])
def test_ordinary_pictures_are_not_refused(case):
    img = np.asarray(draw_zero((200, 200), ink=30, paper=235, width=14, box=(60, 50, 140, 150)),
                     np.float32)
    if case == "vignette":  # a phone photo's gentle fall-off of light
        ys, xs = np.indices(img.shape)
        img = img * (1 - 0.15 * ((ys - 100) ** 2 + (xs - 100) ** 2) / 100**2)
    elif case == "edge_stroke":  # a stroke running off the edge of the picture
        img[150:200, 95:110] = 30
    else:
        buf = io.BytesIO()
        noisy = img + np.random.default_rng(0).normal(0, 8, img.shape)
        Image.fromarray(np.uint8(np.clip(noisy, 0, 255))).save(buf, format="JPEG", quality=60)
        img = np.asarray(Image.open(buf), np.float32)
    out = preprocess_array(np.uint8(np.clip(img, 0, 255)), STEPS)
    assert out.shape == (28, 28) and out.max() == pytest.approx(1.0, abs=0.02)
