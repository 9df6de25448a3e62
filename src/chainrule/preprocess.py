"""Turn any picture of a handwritten digit into the 28×28 input an MNIST network expects.

MNIST digits were made like this (LeCun et al.): white ink on black, the digit's bounding
box scaled to fit 20×20 pixels keeping its aspect ratio (with anti-aliasing, hence the grey
edges), then placed in a 28×28 field so that its centre of mass sits at the centre. A network
trained on MNIST only works on your own digit if it is prepared the same way:

    1. grayscale (alpha composited onto white)
    2. invert when the background is light (judged from the border pixels)
    3. crop to the ink's bounding box
    4. scale the longer side to 20 px, keeping the aspect ratio (Pillow, antialiased)
    5. paste into 28×28 with the centre of mass at the centre (pixel 14, 14)

and, when the model was trained so (`chainrule train` does by default; its model file says so
under metadata["preprocessing"]), two classic steps that make digits from other hands look
more alike, applied to the training digits and to yours the same way (`standardise`):

    6. deskewed: the slant measured by the second moments is sheared away
    7. stroke width normalised to MNIST's median, 2 px (partial grey erosion or dilation)

`load_digit_image(path, preprocessing)` does them all, for `chainrule predict` and the web
page alike; `preprocess_array(gray, preprocessing)` does 2–7 on an array. Both return float32
(28, 28) in [0, 1]. A picture that is not a digit on a plain background (blank, mostly ink,
shadowed) is refused with an `ImageError` saying what was seen and what to try.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = 28  # the network's input is SIZE × SIZE
BOX = 20  # the digit's longer side after scaling, as in MNIST
INK_THRESHOLD = 0.25  # of the ink's range: what counts as ink for the bounding box
MIN_CONTRAST = 0.08  # ink must differ from the background by this much (of full scale)
MAX_BORDER_SPREAD = 0.3  # of the ink's contrast: a plain background's edge varies less
MAX_INK_SHARE = 0.5  # of the picture: more "ink" than background is not a digit on paper
STROKE_WIDTH = 2.0  # px: the median stroke width of MNIST's digits (see `stroke_width`)
MAX_PIXELS = 50_000_000  # refuse absurdly large images (decompression bombs)


class ImageError(ValueError):
    """An image file cannot be read, or holds no digit; the message names the file and a fix.

    `seen` is the 28×28 input the picture would have made despite the problem (None when
    there is nothing to show), so `chainrule predict --show-input` can show what went wrong.
    """

    def __init__(self, message: str, seen: np.ndarray | None = None) -> None:
        super().__init__(message)
        self.seen = seen


def load_digit_image(
    source: str | os.PathLike | bytes, preprocessing: dict | None = None
) -> np.ndarray:
    """(28, 28) float32 in [0, 1], white digit on black, from an image file or its bytes,
    prepared as a model with metadata["preprocessing"] == `preprocessing` was trained.

    Any size, PNG/JPEG/anything Pillow reads, dark-on-light or light-on-dark. Raises
    `ImageError` for a missing, non-image, corrupt or blank file, or one that is not a digit
    on a plain background. The one path from a picture to the network's input: `chainrule
    predict` and the web page both call it.
    """
    name = "<image bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    gray = read_grayscale(source)
    try:
        return preprocess_array(gray, preprocessing)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}", exc.seen) from None


def read_grayscale(source: str | os.PathLike | bytes) -> np.ndarray:
    """The image as a 2-D uint8 array, 0 black … 255 white; transparency composited onto white."""
    if isinstance(source, (bytes, bytearray)):
        name, stream = "<image bytes>", io.BytesIO(source)
    else:
        name, stream = str(source), None
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{name}: no such file; check the path")
        if path.is_dir():
            raise ImageError(f"{name}: is a folder; pass an image file (PNG or JPEG)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89 and 179 Mpx: an image that large is refused here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(stream if stream is not None else source)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{name}: image too large ({img.width}×{img.height})")
            img.load()
            return _to_gray(ImageOps.exif_transpose(img))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{name}: image too large (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read; pass a PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(
            f"{name}: corrupt or truncated image ({exc}); re-save it as PNG or JPEG"
        ) from None


def _to_gray(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        gray = np.asarray(rgba.convert("L"), dtype=np.float32)
        on_white = gray * alpha + 255.0 * (1 - alpha)
        # A drawing in light ink on a transparent canvas vanishes on white; then the alpha
        # channel itself is the drawing (ink where opaque).
        if np.ptp(on_white) < MIN_CONTRAST * 255 and np.ptp(alpha) >= MIN_CONTRAST:
            return np.round(255 * (1 - alpha)).astype(np.uint8)
        return np.round(on_white).astype(np.uint8)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return np.round((a - lo) * scale).astype(np.uint8)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def preprocess_array(gray: np.ndarray, preprocessing: dict | None = None) -> np.ndarray:
    """Steps 2–7 on a 2-D grayscale array (uint8 0–255, or float in [0, 1]): (28, 28) float32.

    Steps 6–7 as `preprocessing` (a model's metadata["preprocessing"]) asks; none if None.
    Raises `ImageError` when the array is empty, has no ink (a blank image), or is not a
    digit on a plain background.
    """
    ink = ink_map(as_unit_gray(gray))
    problem = background_problem(ink)
    if problem:
        raise ImageError(problem, _seen(ink, preprocessing))
    return standardise(mnist_box(ink), preprocessing)


def _seen(ink: np.ndarray, preprocessing: dict | None) -> np.ndarray | None:
    try:
        return standardise(mnist_box(ink), preprocessing)
    except ImageError:
        return None


def as_unit_gray(gray: np.ndarray) -> np.ndarray:
    """A 2-D float32 array in [0, 1] from uint8 (0–255), float [0, 1], or RGB(A) pixels."""
    a = np.asarray(gray)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].mean(axis=-1)
    if a.ndim != 2 or a.size == 0:
        raise ImageError(f"expected a 2-D grayscale image, got an array of shape {a.shape}")
    a = a.astype(np.float32)
    if np.issubdtype(np.asarray(gray).dtype, np.integer) or a.max() > 1.0:
        a /= 255.0
    if not np.all(np.isfinite(a)):
        raise ImageError("the image contains NaN or inf values")
    return a


def ink_map(a: np.ndarray) -> np.ndarray:
    """Step 2: ink bright on a dark background (inverted when the border, nearly all
    background, is light), the background's level subtracted, peak 1, faint noise 0."""
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    background = float(np.median(border))
    if background > 0.5:
        a = 1.0 - a
        background = 1.0 - background
    ink = np.clip(a - background, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("no ink found (the picture is blank or too faint); write the digit "
                         "in dark ink on white paper, filling most of the picture")
    ink /= peak
    ink[ink < INK_THRESHOLD / 2] = 0.0  # paper grain and JPEG noise are not ink
    return ink


def background_problem(ink: np.ndarray) -> str:
    """Why the ink map `ink` (from `ink_map`) is not a digit on a plain background, or "".

    Shadows and uneven light: the picture's edge, nearly all background, varies by more than
    MAX_BORDER_SPREAD of the ink's contrast (between its 25th and 75th percentiles, so a
    stroke touching the edge does not count). Inverted or paper not filling the frame: more
    than MAX_INK_SHARE of the picture is "ink".
    """
    border = np.concatenate([ink[0], ink[-1], ink[1:-1, 0], ink[1:-1, -1]])
    low, high = np.percentile(border, [25, 75])
    if high - low > MAX_BORDER_SPREAD:
        return (f"the background is not plain (its edge varies by {high - low:.0%} of the ink's "
                "contrast: shadows or uneven light?); photograph the digit on plain paper in "
                "even light, or crop to the paper around it")
    share = float((ink >= INK_THRESHOLD).mean())
    if share > MAX_INK_SHARE:
        return (f"{share:.0%} of the picture looks like ink, so it is not a digit on a plain "
                "background (inverted, or the paper does not fill the frame?); crop to the "
                "paper, leaving a margin of it around the digit")
    return ""


def mnist_box(ink: np.ndarray) -> np.ndarray:
    """Steps 3–5 on an ink map: crop to the ink, scale the longer side to 20 px keeping the
    aspect ratio, paste with the centre of mass at (14, 14) of the 28×28 field."""
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    # longer side → 20 px, keeping the aspect ratio (antialiased: Lanczos on floats)
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if digit.sum() <= 0:
        raise ImageError("no ink left after scaling to 20 px; draw the digit bigger")
    return center_of_mass_paste(digit)


# ---- steps 6–7: what a model trained on standardised digits expects ---------------------------
def preprocessing_steps(preprocessing: dict | None) -> tuple[float, bool]:
    """(stroke width to normalise to, 0 for none; deskew?) from a model's
    metadata["preprocessing"]. Older models, and None, have neither. A model file is data:
    anything but a bool and a width between 0.5 and 8 px is refused."""
    if preprocessing is None:
        return 0.0, False
    if not isinstance(preprocessing, dict):
        raise ImageError("the model's metadata 'preprocessing' is not a mapping; re-save it "
                         "with chainrule")
    width = preprocessing.get("stroke_width") or 0.0
    skew = preprocessing.get("deskew", False)
    width_ok = isinstance(width, (int, float)) and not isinstance(width, bool) and (
        width == 0 or 0.5 <= width <= 8)
    if not width_ok or not isinstance(skew, bool):
        raise ImageError(f"the model's preprocessing metadata is invalid (stroke_width "
                         f"{width!r}, deskew {skew!r}); re-save it with chainrule")
    return float(width), skew


def standardise(images: np.ndarray, preprocessing: dict | None = None) -> np.ndarray:
    """Steps 6–7 on one 28×28 input or a batch (n, 28, 28), as `preprocessing` (a model's
    metadata["preprocessing"]) asks: deskewing, then stroke width normalisation. The same
    function prepares the training digits (`chainrule train`) and yours (`predict`, web)."""
    width, skew = preprocessing_steps(preprocessing)
    out = np.asarray(images, np.float32)
    if skew:  # first: stroke widths are measured and changed on the upright digit
        out = deskew(out)
    if width:
        out = normalise_strokes(out, width)
    return out


def center_of_mass_paste(digit: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Place `digit` (h, w ≤ size) in a size×size zero field with its centre of mass at pixel
    (size/2, size/2), shifted by whole pixels and kept wholly inside the field.

    (14, 14) rather than the geometric 13.5: MNIST's own digits have their centres of mass
    at 14.00 ± 0.29 in both axes, exactly what rounding a whole-pixel shift towards 14 gives.
    """
    h, w = digit.shape
    total = float(digit.sum())
    cy = float((digit.sum(axis=1) * np.arange(h)).sum()) / total
    cx = float((digit.sum(axis=0) * np.arange(w)).sum()) / total
    centre = size / 2.0
    top = int(np.clip(round(centre - cy), 0, size - h))
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return out


def moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cy, cx, var_y, cov_yx) of each image of a batch (n, h, w), the pixels as masses:
    cy = Σ y·I / Σ I, var_y = Σ (y − cy)²·I / Σ I, cov_yx = Σ (y − cy)(x − cx)·I / Σ I."""
    images = np.asarray(images, np.float64)
    n, h, w = images.shape
    mass = np.maximum(images.sum(axis=(1, 2)), 1e-12)
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    cy = (images * ys).sum(axis=(1, 2)) / mass
    cx = (images * xs).sum(axis=(1, 2)) / mass
    dy = ys - cy[:, None, None]
    dx = xs - cx[:, None, None]
    var_y = (images * dy * dy).sum(axis=(1, 2)) / mass
    cov_yx = (images * dy * dx).sum(axis=(1, 2)) / mass
    return cy, cx, var_y, cov_yx


def deskew(images: np.ndarray, max_skew: float = 1.0) -> np.ndarray:
    """Straighten slanted digits by their second moments (the classic MNIST deskew).

    A digit slanted by k (x grows by k per row down, through its centre of mass) has
    cov(y, x) = k·var(y); the shear x ← x + k·(y − cy) undoes it: output pixel (y, x) reads
    the input at (y, x + k·(y − cy)), bilinearly. The centre of mass stays put. `images` is
    (n, h, w) or one (h, w) image; k is clipped to ±max_skew.
    """
    from .augment import sample_bilinear

    a = np.asarray(images, np.float32)
    batch = a if a.ndim == 3 else a[None]
    cy, _, var_y, cov_yx = moments(batch)
    k = np.clip(cov_yx / np.maximum(var_y, 1e-12), -max_skew, max_skew)
    n, h, w = batch.shape
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    src_x = xs + k[:, None, None] * (ys - cy[:, None, None])
    out = sample_bilinear(batch, np.broadcast_to(ys, (n, h, w)), src_x)
    return out if a.ndim == 3 else out[0]


def stroke_width(images: np.ndarray) -> np.ndarray:
    """Mean stroke width in pixels of each image (n, h, w): a stroke of length L and width
    w has area A = L·w and outline ≈ 2L, so w ≈ 2A / outline, with the area Σ I and the
    outline the total variation Σ |∂I/∂y| + |∂I/∂x|. Exact for sharp strokes along the axes;
    a diagonal stroke reads up to √2 thinner. MNIST's digits and yours are measured alike, so
    normalising to MNIST's median in these units is consistent."""
    images = np.asarray(images, np.float32)
    outline = (np.abs(np.diff(images, axis=1)).sum(axis=(1, 2), dtype=np.float64)
               + np.abs(np.diff(images, axis=2)).sum(axis=(1, 2), dtype=np.float64))
    return 2 * images.sum(axis=(1, 2), dtype=np.float64) / np.maximum(outline, 1e-12)


def normalise_strokes(images: np.ndarray, target: float = STROKE_WIDTH, steps: int = 3
                      ) -> np.ndarray:
    """Thin wide strokes and thicken narrow ones towards `target` pixels: up to `steps`
    rounds of a partial grey erosion or dilation (each round changes the width by up to two
    pixels, one on each side), then each image rescaled to peak 1. (n, h, w) or (h, w)."""
    from .augment import stroke_batch

    a = np.asarray(images, np.float32)
    batch = (a if a.ndim == 3 else a[None]).copy()
    todo = np.arange(len(batch))
    for _ in range(steps):
        change = np.clip((stroke_width(batch[todo]) - target) / 2, -1.0, 1.0)
        keep = np.abs(change) >= 0.05  # within a tenth of a pixel: done
        todo, change = todo[keep], change[keep]
        if not len(todo):
            break
        batch[todo] = stroke_batch(batch[todo], -change)
    peak = batch.reshape(len(batch), -1).max(axis=1)
    batch /= np.maximum(peak, 1e-6)[:, None, None]
    return batch if a.ndim == 3 else batch[0]


def save_input_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a (28, 28) [0, 1] array as an 8-bit grayscale PNG (atomically)."""
    from ._io import atomic_open

    path = Path(path)
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    with atomic_open(path) as f:
        Image.fromarray(pixels).save(f, format="PNG")
    return path
