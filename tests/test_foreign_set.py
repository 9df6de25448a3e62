"""The foreign digit set of bench/bench_foreign.py: pictures built right, scored right.

Synthetic 8×8 ink counts stand in for the UCI digits, except in the one test that reads
scikit-learn's bundled copy (as the bench does).
"""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chainrule.preprocess import load_digit_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_foreign import accuracies  # noqa: E402
from foreign_digits import (  # noqa: E402
    PRESENTATIONS,
    ForeignImage,
    build_foreign_set,
    ink_at,
    pick_per_class,
    render,
)

STEPS = {"deskew": True, "stroke_width": 2.0}


def seven() -> np.ndarray:
    """A 7 as 8×8 ink counts 0..16, like the UCI digits."""
    c = np.zeros((8, 8), np.int64)
    c[1, 1:7] = 16
    for row, col in zip(range(2, 8), (6, 5, 5, 4, 4, 3)):
        c[row, col] = 16
        c[row, col - 1] = 6
    return c


def fake_digits(per_class=3):
    counts = np.stack([np.roll(seven(), k % 2, axis=1) for k in range(10 * per_class)])
    return counts, np.repeat(np.arange(10), per_class)


def ink_stats(picture: Image.Image):
    a = np.asarray(picture, np.float32)
    return float(np.median(a)), float(a.min()), a.shape


@pytest.mark.parametrize("presentation", PRESENTATIONS)
def test_each_presentation_is_dark_ink_on_white_paper(presentation):
    picture = render(seven(), presentation, np.random.default_rng(0))
    assert picture.mode == "L"
    paper, darkest, _ = ink_stats(picture)
    assert paper > 200 and darkest < 100
    a = load_digit_image(_png_bytes(picture), STEPS)  # predict's own path takes it
    assert a.shape == (28, 28) and a.max() > 0.9


def _png_bytes(picture):
    import io

    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def test_the_presentations_differ_as_described():
    rng = np.random.default_rng(0)
    c = seven()
    small = np.asarray(render(c, "small", rng)) < 128
    ys, xs = np.nonzero(small)
    assert small.shape == (128, 128) and np.ptp(ys) < 30  # a small digit on a big sheet
    thick = (ink_at(c, 56, 0.15, 0.4) > 0.5).sum()
    usual = (ink_at(c, 56) > 0.5).sum()
    thin = (ink_at(c, 56, 0.45, 0.6) > 0.5).sum()
    assert thin < usual < thick
    rotated = np.asarray(render(c, "rotated", rng))
    assert rotated.shape[0] > 80  # expanded to hold the turned digit


def test_bad_counts_and_presentations_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="8×8 ink counts"):
        render(np.zeros((8, 9)), "upscaled", rng)
    with pytest.raises(ValueError, match="8×8 ink counts"):
        render(np.full((8, 8), 17), "upscaled", rng)
    with pytest.raises(ValueError, match="unknown presentation"):
        render(seven(), "sideways", rng)


def test_pick_per_class_is_balanced():
    labels = np.repeat(np.arange(10), [5, 1, 5, 5, 5, 5, 5, 5, 5, 5])
    idx = pick_per_class(labels, 3, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [3, 1] + [3] * 8
    assert np.all(np.diff(idx) > 0)


def test_build_writes_images_and_labels_seeded(tmp_path):
    counts, labels = fake_digits()
    items = build_foreign_set(tmp_path / "a", counts, labels, per_class=2, seed=0)
    assert len(items) == 2 * 10 * len(PRESENTATIONS)
    assert {it.presentation for it in items} == set(PRESENTATIONS)
    for it in items:
        assert it.path.is_file() and it.path.parent.name == it.presentation
        assert it.path.suffix == (".jpg" if it.presentation == "upscaled" else ".png")
    with open(tmp_path / "a" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(Path(r["path"]), int(r["label"]), r["presentation"]) for r in rows] == [
        (it.path, it.label, it.presentation) for it in items]
    again = build_foreign_set(tmp_path / "b", counts, labels, per_class=2, seed=0)
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(items, again))


def test_accuracies_per_presentation_count_refusals_as_wrong():
    items = [ForeignImage(Path(f"{p}{i}.png"), i % 10, p)
             for p in ("thick", "thin") for i in range(4)]
    digits = {"thick0.png": 0, "thick1.png": 1, "thick2.png": 5, "thin0.png": 0,
              "thin1.png": 1, "thin2.png": 2, "thin3.png": 3}  # thick3 refused: missing
    result = accuracies(items, digits)
    assert result == {"thick": 0.5, "thin": 1.0, "overall": 0.75}


def test_the_uci_digits_from_scikit_learn():
    pytest.importorskip("sklearn")
    from foreign_digits import load_uci_digits

    counts, labels = load_uci_digits()
    assert counts.shape == (1797, 8, 8) and counts.min() == 0 and counts.max() == 16
    assert np.bincount(labels).min() >= 170  # about 180 of each digit
    notice = Path(__file__).resolve().parents[1] / "LICENSES" / "uci-digits-CC-BY-4.0.txt"
    assert "Alpaydin" in notice.read_text() and "CC BY 4.0" in notice.read_text()
