"""`chainrule predict` on pictures as people make them: the model's own preprocessing steps,
and a one-line message (exit code 2) for a picture that is not a digit on a plain background.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import chainrule as cr
from chainrule.cli.config import BEFORE_DEFAULTS, TrainConfig, is_digit_data
from chainrule.preprocess import load_digit_image
from cli_assertions import assert_one_line_error as one_line_error

QUICK = ["--epochs", "1", "--batches", "20", "--quiet", "--no-plots"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "chainrule", *map(str, args)],
                          capture_output=True, text=True, timeout=300)




def seven(path, size=(160, 200), ink=20, paper=240):
    img = Image.new("L", size, paper)
    ImageDraw.Draw(img).line([(30, 30), (130, 30), (60, 180)], fill=ink, width=14)
    img.save(path)
    return path


def shadowed(path):
    a = np.asarray(Image.open(seven(path)), np.float32)
    a *= np.linspace(0.3, 1.0, a.shape[1])[None, :]  # the light falls off to the left
    Image.fromarray(np.uint8(a)).save(path)
    return path


def on_a_dark_table(path):
    a = np.full((200, 200), 25, np.uint8)
    a[15:185, 15:185] = 235
    a[50:150, 95:108] = 30
    Image.fromarray(a).save(path)
    return path


def saved_input(path):
    return np.asarray(Image.open(path), np.float32) / 255


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "quick"
    result = run("train", *QUICK, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_the_model_file_records_the_steps_and_predict_applies_them(model, tmp_path):
    steps = cr.load_checkpoint(model).metadata["preprocessing"]
    assert steps["deskew"] is True and steps["stroke_width"] == 2.0
    image = seven(tmp_path / "seven.png")
    result = run("predict", model, image, "--show-input", tmp_path / "seen.png")
    assert result.returncode == 0, result.stderr
    expected = load_digit_image(image, steps)
    assert np.abs(saved_input(tmp_path / "seen.png") - expected).max() <= 0.5 / 255 + 1e-6


def test_a_model_without_the_steps_gets_mnist_preparation_only(model, tmp_path):
    ckpt = cr.load_checkpoint(model)
    meta = {**ckpt.metadata, "preprocessing": {"digit_box": 20}}  # saved before the steps
    old = cr.save(ckpt.model, tmp_path / "old.npz", meta)
    image = seven(tmp_path / "seven.png")
    result = run("predict", old, image, "--show-input", tmp_path / "seen.png")
    assert result.returncode == 0, result.stderr
    expected = load_digit_image(image)
    assert np.abs(saved_input(tmp_path / "seen.png") - expected).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("steps", [{"stroke_width": "thick"}, {"deskew": 1}, [1, 2]])
def test_hostile_steps_in_a_model_file_are_one_error(model, tmp_path, steps):
    ckpt = cr.load_checkpoint(model)
    bad = cr.save(ckpt.model, tmp_path / "bad.npz", {**ckpt.metadata, "preprocessing": steps})
    images = [seven(tmp_path / "a.png"), seven(tmp_path / "b.png")]
    one_line_error(run("predict", bad, *images), "preprocessing", "re-save")


def test_shadows_say_what_was_seen_and_what_to_try(model, tmp_path):
    photo = shadowed(tmp_path / "photo.png")
    line = one_line_error(run("predict", model, photo), "photo.png", "not plain", "shadows",
                          "--show-input")
    assert "even light" in line
    shown = run("predict", model, photo, "--show-input", tmp_path / "seen.png")
    one_line_error(shown, "not plain", f"is in {tmp_path / 'seen.png'}")
    assert saved_input(tmp_path / "seen.png").shape == (28, 28)


def test_paper_on_a_dark_table_is_not_taken_for_ink(model, tmp_path):
    photo = on_a_dark_table(tmp_path / "table.jpg")
    one_line_error(run("predict", model, photo), "table.jpg", "looks like ink", "crop")


def test_a_blank_page_has_nothing_to_show(model, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (80, 80), 250).save(blank)
    line = one_line_error(run("predict", model, blank, "--show-input", tmp_path / "seen.png"),
                          "no ink", "dark ink on white paper")
    assert "--show-input" not in line and not (tmp_path / "seen.png").exists()


def test_good_pictures_are_answered_and_bad_ones_reported(model, tmp_path):
    good = seven(tmp_path / "good.png")
    bad = shadowed(tmp_path / "bad.png")
    result = run("predict", model, good, bad, "--json", "--show-input", tmp_path / "seen")
    assert result.returncode == 2
    assert [json.loads(line)["image"] for line in result.stdout.splitlines()] == [str(good)]
    assert "bad.png" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "seen" / "good-input.png").is_file()
    assert (tmp_path / "seen" / "bad-input.png").is_file()  # what the refused one would give


def test_evaluate_prepares_the_test_digits_as_training_did(model):
    result = run("evaluate", model, "--json")
    assert result.returncode == 0, result.stderr
    stored = cr.load_checkpoint(model).metadata["metrics"]["test_accuracy"]
    assert json.loads(result.stdout.splitlines()[-1])["accuracy"] == stored


def test_train_flags_for_the_steps_and_distortions(tmp_path):
    out = tmp_path / "plain"
    result = run("train", *QUICK, "--out", out, "--no-deskew", "--stroke-width", "0",
                 "--elastic", "1.5", "--scale", "0.1", "--shear", "0.2", "--thickness", "0.5")
    assert result.returncode == 0, result.stderr
    meta = cr.load_checkpoint(out).metadata
    assert meta["preprocessing"]["deskew"] is False
    assert meta["preprocessing"]["stroke_width"] is None
    config = meta["training"]["config"]
    assert (config["elastic"], config["scale"], config["shear"], config["thickness"]) == (
        1.5, 0.1, 0.2, 0.5)
    one_line_error(run("train", *QUICK, "--elastic", "-1"), "--elastic")
    one_line_error(run("train", *QUICK, "--out", tmp_path / "x", "--elastic", "50"), "--elastic")
    one_line_error(run("train", *QUICK, "--out", tmp_path / "x", "--stroke-width", "0.1"),
                   "--stroke-width")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_thick_pen_redraws_half_the_training_digits_wider(tmp_path):
    from chainrule.cli.config import PEN_SHARE, redraw_thick
    from chainrule.preprocess import stroke_width

    x = np.zeros((400, 784), np.float32)
    x.reshape(-1, 28, 28)[:, 6:22, 13:15] = 1.0  # 2-px bars
    out = redraw_thick(x, 5.0, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32 and x.max() == 1.0  # a copy
    changed = (out != x).any(axis=1)
    assert abs(changed.mean() - PEN_SHARE) < 0.1
    before = stroke_width(x.reshape(-1, 28, 28))[0]
    widths = stroke_width(out.reshape(-1, 28, 28))
    assert np.all(widths[~changed] == before)
    assert widths[changed].min() > before + 0.5 and widths[changed].max() > before + 2.5
    assert np.array_equal(out, redraw_thick(x, 5.0, np.random.default_rng(0)))  # by seed


def test_thick_pen_flag(tmp_path):
    out = tmp_path / "pen"
    result = run("train", *QUICK, "--out", out, "--thick-pen", "3")
    assert result.returncode == 0, result.stderr
    assert cr.load_checkpoint(out).metadata["training"]["config"]["thick_pen"] == 3.0
    one_line_error(run("train", *QUICK, "--out", tmp_path / "x", "--thick-pen", "9"),
                   "--thick-pen")
    assert not (tmp_path / "x").exists()
    from chainrule.cli.config import CNN_DISTORTIONS

    assert CNN_DISTORTIONS["thick_pen"] > 0  # the CNN's recipe; the MLP's default has none
    assert TrainConfig().thick_pen == 0.0


def test_runs_saved_before_the_steps_resume_without_them():
    old = {k: v for k, v in vars(TrainConfig()).items() if k not in BEFORE_DEFAULTS}
    cfg = TrainConfig.from_dict(old)
    assert cfg.deskew is False and cfg.stroke_width == 0.0 and cfg.elastic == 0.0
    assert TrainConfig.from_dict(vars(TrainConfig())) == TrainConfig()


def test_only_digit_datasets_are_deskewed(tmp_path):
    assert is_digit_data("mnist-10k") and is_digit_data("mnist")
    assert not is_digit_data("fashion-mnist")
    assert is_digit_data(str(tmp_path))  # a folder of IDX files: MNIST's format
