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

`load_digit_image(path)` does all five; `preprocess_array(gray)` does 2–5 on an array (the
web server uses it for canvas drawings). Both return float32 (28, 28) in [0, 1].
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
MAX_PIXELS = 50_000_000  # refuse absurdly large images (decompression bombs)


class ImageError(ValueError):
    """An image file cannot be read, or holds no digit; the message names the file and a fix."""


def load_digit_image(source: str | os.PathLike | bytes) -> np.ndarray:
    """(28, 28) float32 in [0, 1], white digit on black, from an image file or its bytes.

    Any size, PNG/JPEG/anything Pillow reads, dark-on-light or light-on-dark. Raises
    `ImageError` for a missing, non-image, corrupt or blank file.
    """
    name = "<image bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    gray = read_grayscale(source)
    try:
        return preprocess_array(gray)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None


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


def preprocess_array(gray: np.ndarray) -> np.ndarray:
    """Steps 2–5 on a 2-D grayscale array (uint8 0–255, or float in [0, 1]): (28, 28) float32.

    Raises `ImageError` when the array is empty or has no ink (a blank image).
    """
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

    # 2. ink bright on a dark background; the border is (nearly all) background
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    background = float(np.median(border))
    if background > 0.5:
        a = 1.0 - a
        background = 1.0 - background
    ink = np.clip(a - background, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("no ink found (the image is blank or has too little contrast)")
    ink /= peak
    ink[ink < INK_THRESHOLD / 2] = 0.0  # paper grain and JPEG noise are not ink

    # 3. crop to the bounding box of clear ink
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    # 4. longer side → 20 px, keeping the aspect ratio (antialiased: Lanczos on floats)
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if digit.sum() <= 0:
        raise ImageError("no ink left after scaling to 20 px")

    # 5. paste so the centre of mass lands on the centre of the 28×28 field
    return center_of_mass_paste(digit)


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


def save_input_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a (28, 28) [0, 1] array as an 8-bit grayscale PNG (atomically)."""
    from ._io import atomic_open

    path = Path(path)
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    with atomic_open(path) as f:
        Image.fromarray(pixels).save(f, format="PNG")
    return path
