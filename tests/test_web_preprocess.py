"""The web page's drawing path prepares a drawing exactly as `chainrule predict` prepares a
file: one function (`chainrule.preprocess.load_digit_image`) with the model's own steps."""

import base64
import copy
import io
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette ≥ 1.x prefers httpx2 but works with httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from PIL import Image, ImageDraw  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.preprocess import ImageError, load_digit_image  # noqa: E402
from chainrule.web.app import create_app  # noqa: E402
from chainrule.web.decode import digit_from_bytes  # noqa: E402

STEPS = {"deskew": True, "stroke_width": 2.0}


def slanted_seven(width=30) -> bytes:
    """A thick, leaning 7 in black on a white canvas, as the page sends it (PNG)."""
    img = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(img).line([(90, 50), (210, 50), (100, 240)], fill="black", width=width)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    return cr.Sequential(cr.Flatten(), cr.Dense(784, 16, seed=0), cr.ReLU(),
                         cr.Dense(16, 10, seed=1)).eval()


def client_for(model, steps):
    metadata = {"data": {"name": "mnist-10k"}, "preprocessing": steps}
    return TestClient(create_app(copy.deepcopy(model), metadata, evaluate=False))


@pytest.mark.parametrize("steps", [None, {"digit_box": 20}, STEPS])
def test_decode_is_predicts_function(steps):
    png = slanted_seven()
    assert np.array_equal(digit_from_bytes(png, steps), load_digit_image(png, steps))


@pytest.mark.parametrize("steps", [None, STEPS])
def test_predict_and_teach_prepare_drawings_with_the_models_steps(model, steps):
    png = slanted_seven()
    client = client_for(model, steps)
    expected = load_digit_image(png, steps)
    predicted = client.post("/api/predict", content=png, headers={"content-type": "image/png"})
    assert predicted.status_code == 200, predicted.text
    np.testing.assert_allclose(predicted.json()["input"], expected, atol=1e-3)
    taught = client.post("/api/teach", json={
        "image": "data:image/png;base64," + base64.b64encode(png).decode(),
        "label": 7})
    assert taught.status_code == 200, taught.text
    np.testing.assert_allclose(taught.json()["input"], expected, atol=1e-3)


def test_the_steps_change_the_input(model):
    png = slanted_seven(width=40)
    plain, steps = load_digit_image(png), load_digit_image(png, STEPS)
    assert np.abs(plain - steps).max() > 0.3  # so the tests above tell the paths apart


def test_a_model_with_unusable_steps_is_refused_at_start(model):
    with pytest.raises(ImageError, match="preprocessing"):
        create_app(copy.deepcopy(model), {"preprocessing": {"stroke_width": "wide"}},
                   evaluate=False)


def test_a_shadowed_photo_is_a_400_with_the_message(model):
    a = np.asarray(Image.open(io.BytesIO(slanted_seven())).convert("L"), np.float32)
    a *= np.linspace(0.3, 1.0, a.shape[1])[None, :]
    buf = io.BytesIO()
    Image.fromarray(np.uint8(a)).save(buf, format="PNG")
    r = client_for(model, STEPS).post("/api/predict", content=buf.getvalue())
    assert r.status_code == 400 and "not plain" in r.json()["error"]
