"""A foreign digit set: handwritten digits that are not MNIST's, as image files on disk.

The source is the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin and
C. Kaynak, 1998; CC BY 4.0, notice in LICENSES/uci-digits-CC-BY-4.0.txt), which scikit-learn
ships as `sklearn.datasets.load_digits`: 1,797 digits by 13 writers who are not MNIST's, each
an 8×8 grid of ink counts 0–16 (a 32×32 bitmap counted in 4×4 blocks). Each digit becomes a
picture of dark ink on white paper, as a user would photograph or scan it, in one of the ways
people's own digits differ from MNIST's:

    upscaled       the 8×8 "scan" enlarged to a 56 px digit (bicubic), saved as JPEG
    small          a 16–24 px digit anywhere off-centre on a 128 px sheet
    thick          strokes about half again as wide (a low ink threshold, then dilated)
    thin           strokes about half as wide (a high ink threshold), some of them broken
    rotated        turned by 8–15 degrees, either way

    from foreign_digits import build_foreign_set, load_uci_digits
    counts, labels = load_uci_digits()
    items = build_foreign_set("foreign/", counts, labels, per_class=40, seed=0)
    # [ForeignImage(path=..., label=3, presentation="upscaled"), ...]

Every random choice comes from `seed`, so the same call writes the same files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

PRESENTATIONS = ("upscaled", "small", "thick", "thin", "rotated")
MAX_COUNT = 16  # an 8×8 cell counts the ink pixels of a 4×4 block


@dataclass(frozen=True)
class ForeignImage:
    path: Path
    label: int
    presentation: str


def load_uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """(counts (1797, 8, 8) int in 0..16, labels (1797,)) from scikit-learn's bundled copy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.int64), digits.target.astype(np.int64)


def ink_at(counts: np.ndarray, side: int, low: float = 0.25, high: float = 0.6) -> np.ndarray:
    """The 8×8 ink counts as a side×side ink map in [0, 1]: bicubic enlargement of counts/16,
    then a smooth step from `low` to `high` that gives the blur a pen's edge. A low step
    draws thick strokes, a high one thin strokes."""
    counts = np.asarray(counts, dtype=np.float32)
    if counts.shape != (8, 8) or counts.min() < 0 or counts.max() > MAX_COUNT:
        raise ValueError(f"expected 8×8 ink counts in 0..{MAX_COUNT}, got shape {counts.shape}")
    big = Image.fromarray(counts / MAX_COUNT, mode="F").resize((side, side), Image.BICUBIC)
    t = np.clip((np.asarray(big) - low) / (high - low), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep


def on_paper(ink: np.ndarray, canvas: int, top: int, left: int, rng) -> Image.Image:
    """Dark ink on off-white paper: a canvas×canvas grayscale picture with `ink` pasted at
    (top, left), paper 225–250, ink 10–70, and a little sensor noise."""
    sheet = np.zeros((canvas, canvas), np.float32)
    h, w = ink.shape
    sheet[top : top + h, left : left + w] = ink
    paper, dark = rng.uniform(225, 250), rng.uniform(10, 70)
    pixels = paper - sheet * (paper - dark) + rng.normal(0.0, 3.0, sheet.shape)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), mode="L")


def render(counts: np.ndarray, presentation: str, rng: np.random.Generator) -> Image.Image:
    """One digit as a picture of dark ink on white paper, presented as `presentation`."""
    if presentation == "upscaled":
        return on_paper(ink_at(counts, 56), 80, 12, 12, rng)
    if presentation == "small":
        side = int(rng.integers(16, 25))
        top, left = (int(v) for v in rng.integers(4, 128 - side - 4, size=2))
        return on_paper(ink_at(counts, side), 128, top, left, rng)
    if presentation == "thick":
        ink = np.asarray(Image.fromarray(ink_at(counts, 56, 0.15, 0.4), mode="F")
                         .filter(ImageFilter.MaxFilter(3)))
        return on_paper(ink, 80, 12, 12, rng)
    if presentation == "thin":
        return on_paper(ink_at(counts, 64, 0.45, 0.6), 88, 12, 12, rng)
    if presentation == "rotated":
        angle = float(rng.uniform(8, 15) * rng.choice([-1, 1]))
        ink = Image.fromarray(ink_at(counts, 56), mode="F").rotate(
            angle, Image.BILINEAR, expand=True)
        ink = np.asarray(ink)
        return on_paper(ink, max(ink.shape) + 24, 12, 12, rng)
    raise ValueError(f"unknown presentation {presentation!r}; choose one of {PRESENTATIONS}")


def pick_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` examples of each class (all of a class if it has fewer), sorted."""
    chosen = [rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def build_foreign_set(
    out: str | Path,
    counts: np.ndarray,
    labels: np.ndarray,
    presentations: tuple[str, ...] = PRESENTATIONS,
    per_class: int = 40,
    seed: int = 0,
) -> list[ForeignImage]:
    """Write `per_class` digits of each class in each presentation into `out/<presentation>/`
    (PNG; JPEG for "upscaled", as a scanner would save it) and `out/labels.csv`."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    items = []
    for presentation in presentations:
        folder = out / presentation
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jpg" if presentation == "upscaled" else ".png"
        for i in pick_per_class(labels, per_class, rng):
            path = folder / f"{i:04d}-{int(labels[i])}{suffix}"
            picture = render(counts[i], presentation, rng)
            picture.save(path, **({"quality": 85} if suffix == ".jpg" else {}))
            items.append(ForeignImage(path, int(labels[i]), presentation))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "presentation"])
        writer.writerows([str(it.path), it.label, it.presentation] for it in items)
    return items
