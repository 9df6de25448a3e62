"""Training-time augmentation for digit images: shifts, rotations and hand-like distortions,
batched.

Moving a handwritten 3 two pixels to the left is still a 3. Showing the network slightly
moved (and slightly turned) copies of the training digits each epoch teaches it that, and
is worth about a point of test accuracy for an MLP on a few thousand MNIST digits. Scaling,
shearing, elastic bending and thicker or thinner strokes imitate how other people's digits
differ from MNIST's (`chainrule train --model cnn` uses them all; docs/results.md says what
each bought).

Every transform is a whole-batch NumPy operation (no Python loop over images) drawn from the
`numpy.random.Generator` that `fit` passes in, so a seed fixes every epoch's digits.

    aug = RandomShift(max_shift=2, max_rotation=10, elastic=1.0, max_thickness=0.5)
    fit(model, loss_fn, opt, x, y, augment=aug, seed=0)   # aug(xb, yb, rng) each batch
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class RandomShift:
    """Shift each image by whole pixels in [−max_shift, max_shift] (both axes, independently)
    and, if asked, distort it as hands do: rotate by up to `max_rotation` degrees, scale by a
    factor in [1 − max_scale, 1 + max_scale] (each axis a little differently), shear by up to
    `max_shear` (x += k·y), bend it with a smooth random displacement of about `elastic`
    pixels, and thicken or thin its strokes by up to `max_thickness` of a pixel-wide
    dilation/erosion. Pixels moved in from outside are 0 (MNIST's black background).

    Accepts a batch shaped (N, H, W), (N, 1, H, W) or flat (N, H·W) (square images, or give
    `image_shape`) and returns the same shape and dtype (float32 for integer images). Shifts
    alone are an exact gather; otherwise every output pixel samples the input bilinearly at
    its source position (`warp_batch`). Only the distortions asked for draw random numbers,
    so shifts and rotations alone give the same digits as before the others existed.
    """

    def __init__(
        self,
        max_shift: int = 2,
        max_rotation: float = 0.0,
        image_shape: tuple[int, int] | None = None,
        seed: int | None = None,
        *,
        max_scale: float = 0.0,
        max_shear: float = 0.0,
        elastic: float = 0.0,
        max_thickness: float = 0.0,
    ) -> None:
        if int(max_shift) != max_shift or max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be a whole number ≥ 0, got {max_shift}")
        if not (math.isfinite(max_rotation) and 0 <= max_rotation <= 180):
            raise ValueError(
                f"RandomShift: max_rotation must be between 0 and 180 degrees, got {max_rotation}"
            )
        for name, value, top in (("max_scale", max_scale, 0.9), ("max_shear", max_shear, 2.0),
                                 ("elastic", elastic, 10.0), ("max_thickness", max_thickness, 1.0)):
            if not (math.isfinite(value) and 0 <= value <= top):
                raise ValueError(f"RandomShift: {name} must be between 0 and {top:g}, got {value}")
        self.max_shift = int(max_shift)
        self.max_rotation = float(max_rotation)
        self.max_scale = float(max_scale)
        self.max_shear = float(max_shear)
        self.elastic = float(elastic)
        self.max_thickness = float(max_thickness)
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.rng = np.random.default_rng(seed)

    def __call__(
        self,
        x: np.ndarray,
        y: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Augmented copy of the batch `x` (labels `y` are unchanged and ignored).

        Integer images (e.g. uint8 pixels) are converted to float32 first: bilinear sampling
        makes fractions, which an integer array would truncate."""
        rng = rng if rng is not None else self.rng
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        images = self._as_images(x)
        n = images.shape[0]
        s = self.max_shift
        shifts = rng.integers(-s, s + 1, size=(n, 2)) if s else np.zeros((n, 2), np.int64)
        if self.max_rotation > 0:
            angles = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation, size=n))
        else:
            angles = np.zeros(n)
        warped = self.max_scale > 0 or self.max_shear > 0 or self.elastic > 0
        if warped:
            out = warp_batch(images, self._matrices(angles, rng), shifts,
                             self._displacement(n, images.shape[1:], rng))
        elif self.max_rotation > 0:
            out = affine_batch(images, angles, shifts)
        else:
            out = shift_batch(images, shifts)
        if self.max_thickness > 0:
            out = stroke_batch(out, rng.uniform(-self.max_thickness, self.max_thickness, n))
        return out.reshape(x.shape)

    def _matrices(self, angles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, 2, 2) forward maps in (down, right) coordinates: rotate · scale · shear."""
        n = len(angles)
        scale = np.ones((n, 2))
        if self.max_scale > 0:
            scale = 1 + rng.uniform(-self.max_scale, self.max_scale, size=(n, 2))
        shear = rng.uniform(-self.max_shear, self.max_shear, n) if self.max_shear > 0 else 0
        cos, sin = np.cos(angles), np.sin(angles)
        rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        shear_scale = np.zeros((n, 2, 2))
        shear_scale[:, 0, 0] = scale[:, 0]
        shear_scale[:, 1, 0] = shear * scale[:, 1]  # x' = sx·(x + k·y)
        shear_scale[:, 1, 1] = scale[:, 1]
        return rotate @ shear_scale

    def _displacement(self, n: int, shape, rng: np.random.Generator) -> np.ndarray | None:
        if self.elastic <= 0:
            return None
        return smooth_displacement(n, shape, self.elastic, rng)

    def _as_images(self, x: np.ndarray) -> np.ndarray:
        if self.image_shape is not None:
            h, w = self.image_shape
        elif x.ndim >= 3:
            h, w = x.shape[-2:]
        else:
            side = math.isqrt(x.shape[1])
            if side * side != x.shape[1]:
                raise ValueError(
                    f"RandomShift: cannot tell the image shape of rows of {x.shape[1]} values; "
                    "pass image_shape=(H, W)"
                )
            h = w = side
        if x.size != x.shape[0] * h * w:
            raise ValueError(
                f"RandomShift: expected single-channel images of {h}×{w}, got {x.shape}"
            )
        return x.reshape(x.shape[0], h, w)

    def config(self) -> dict:
        return {"max_shift": self.max_shift, "max_rotation": self.max_rotation,
                "max_scale": self.max_scale, "max_shear": self.max_shear,
                "elastic": self.elastic, "max_thickness": self.max_thickness}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v:g}" for k, v in self.config().items()
                        if k not in ("max_shift", "max_rotation") and v)
        return (f"RandomShift(max_shift={self.max_shift}, max_rotation={self.max_rotation:g}"
                f"{extra})")


def shift_batch(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move image i by `shifts[i] = (dy, dx)` whole pixels (down, right), filling with 0.

    One zero-padded copy of the batch; every H×W window of it is a shifted image (a strided
    view, nothing copied), and one gather picks image i's window at offset (p − dy, p − dx),
    p = max |shift|: output pixel (r, c) reads padded[i, r − dy + p, c − dx + p].
    """
    n, h, w = images.shape
    shifts = np.asarray(shifts, dtype=np.int64)
    p = int(np.abs(shifts).max()) if shifts.size else 0
    if p == 0:
        return images.copy()
    padded = np.zeros((n, h + 2 * p, w + 2 * p), images.dtype)
    padded[:, p : p + h, p : p + w] = images
    windows = sliding_window_view(padded, (h, w), axis=(1, 2))  # (n, 2p+1, 2p+1, h, w)
    return windows[np.arange(n), p - shifts[:, 0], p - shifts[:, 1]]


def affine_batch(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Rotate image i by `angles[i]` radians (anticlockwise on screen) about its centre, then
    move it by `shifts[i] = (dy, dx)`; bilinear sampling, 0 outside the image.

    Each output pixel q takes the input at R(−θ)(q − t − c) + c: the inverse map, so every
    output pixel gets exactly one value and no holes appear.
    """
    if images.dtype.kind != "f":
        images = images.astype(np.float32)  # fractions of pixels: integers would truncate
    n, h, w = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # float32 coordinates: exact enough for 28 px images (errors ~1e-5 px), and half the work
    r = np.arange(h, dtype=np.float32)[None, :, None]
    c = np.arange(w, dtype=np.float32)[None, None, :]
    dy = r - np.asarray(shifts, np.float32)[:, 0, None, None] - np.float32(cy)  # (n, h, 1)
    dx = c - np.asarray(shifts, np.float32)[:, 1, None, None] - np.float32(cx)  # (n, 1, w)
    cos = np.cos(angles).astype(np.float32)[:, None, None]
    sin = np.sin(angles).astype(np.float32)[:, None, None]
    # rows grow downwards, so an on-screen anticlockwise turn by θ maps source → output as
    # (y, x) ↦ (y cosθ − x sinθ, x cosθ + y sinθ) in (down, right) coordinates; invert it:
    src_y = cos * dy + sin * dx
    src_y += np.float32(cy)
    src_x = cos * dx - sin * dy
    src_x += np.float32(cx)
    return sample_bilinear(images, src_y, src_x)


def warp_batch(
    images: np.ndarray,
    matrices: np.ndarray,
    shifts: np.ndarray,
    displacement: np.ndarray | None = None,
) -> np.ndarray:
    """Map image i by the linear map `matrices[i]` (2×2, acting on (down, right) offsets from
    the centre c), move it by `shifts[i] = (dy, dx)`, and add `displacement[i]` (2, H, W) to
    every output pixel's source position; bilinear sampling, 0 outside.

    Output pixel q takes the input at  A⁻¹(q − t − c) + c + d(q)  (the inverse map, so no
    holes). With A a rotation and no displacement this is `affine_batch`.
    """
    if images.dtype.kind != "f":
        images = images.astype(np.float32)
    n, h, w = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    inv = np.linalg.inv(np.asarray(matrices, np.float64)).astype(np.float32)  # (n, 2, 2)
    t = np.asarray(shifts, np.float32)
    dy = np.arange(h, dtype=np.float32)[None, :, None] - t[:, 0, None, None] - np.float32(cy)
    dx = np.arange(w, dtype=np.float32)[None, None, :] - t[:, 1, None, None] - np.float32(cx)
    src_y = inv[:, 0, 0, None, None] * dy + inv[:, 0, 1, None, None] * dx
    src_y += np.float32(cy)
    src_x = inv[:, 1, 0, None, None] * dy + inv[:, 1, 1, None, None] * dx
    src_x += np.float32(cx)
    if displacement is not None:
        src_y += displacement[:, 0]
        src_x += displacement[:, 1]
    return sample_bilinear(images, src_y, src_x)


def smooth_displacement(n: int, shape: tuple[int, int], size: float,
                        rng: np.random.Generator, knots: int = 4) -> np.ndarray:
    """(n, 2, H, W) smooth random displacement fields of RMS about `size` pixels per axis.

    The cheap form of Simard et al.'s elastic distortion (2003): instead of Gaussian-blurring
    a per-pixel random field, draw N(0, size²) values on a knots×knots grid and interpolate
    them bilinearly over the image: d = U G Vᵀ, one small matrix product per image.
    """
    h, w = shape
    grid = rng.normal(0.0, size, size=(n, 2, knots, knots)).astype(np.float32)
    return _interpolation_matrix(h, knots) @ grid @ _interpolation_matrix(w, knots).T


@functools.lru_cache(maxsize=16)
def _interpolation_matrix(length: int, knots: int) -> np.ndarray:
    """(length, knots): row i holds the linear-interpolation weights of pixel i between the
    knots spread evenly from the first pixel to the last."""
    pos = np.linspace(0, knots - 1, length)
    lo = np.minimum(np.floor(pos).astype(int), knots - 2)
    frac = pos - lo
    m = np.zeros((length, knots))
    m[np.arange(length), lo] = 1 - frac
    m[np.arange(length), lo + 1] = frac
    m = m.astype(np.float32)
    m.flags.writeable = False  # cached: shared by every call
    return m


def sample_bilinear(images: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """out[i, r, c] = images[i] read bilinearly at (src_y[i, r, c], src_x[i, r, c]), 0 outside.
    `src_y`, `src_x` broadcast to (n, h, w). Computed in float32, in
    place where possible: this runs on every training batch."""
    n, h, w = images.shape
    shape = np.broadcast_shapes(np.shape(src_y), np.shape(src_x))
    # Clamping to [−1, h] (resp. [−1, w]) keeps far-away points on the zero border; with one
    # row/column of zeros before and two after, all four neighbours are then in the array.
    fy = np.clip(np.broadcast_to(src_y, shape), -1, h, dtype=np.float32)
    fx = np.clip(np.broadcast_to(src_x, shape), -1, w, dtype=np.float32)
    y0, x0 = np.floor(fy), np.floor(fx)
    fy -= y0  # the fractions
    fx -= x0
    stride = w + 3
    base = (y0.astype(np.intp) + 1) * stride
    base += x0.astype(np.intp) + 1
    base += (np.arange(n, dtype=np.intp) * ((h + 3) * stride))[:, None, None]
    base = base.ravel()
    padded = np.zeros((n, h + 3, stride), images.dtype)
    padded[:, 1 : h + 1, 1 : w + 1] = images
    flat = padded.ravel()
    fy, fx = fy.ravel().astype(images.dtype, copy=False), fx.ravel().astype(images.dtype,
                                                                             copy=False)
    # the four neighbours: `base` into the array shifted by 0, 1, stride, stride + 1
    top = flat.take(base)
    top += fx * (flat[1:].take(base) - top)
    bottom = flat[stride:].take(base)
    bottom += fx * (flat[stride + 1 :].take(base) - bottom)
    top += fy * (bottom - top)
    return top.reshape(n, h, w)


def stroke_batch(images: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Thicken image i's strokes (amounts[i] > 0) or thin them (< 0) by |amounts[i]| of a
    one-pixel grey dilation (erosion) with a plus-shaped neighbourhood:
    out = x + a·(max₊(x) − x) for a > 0, x + |a|·(min₊(x) − x) for a < 0."""
    images = np.asarray(images)
    a = np.asarray(amounts, images.dtype)
    out = images.copy()
    for rows, extreme in ((a > 0, np.maximum), (a < 0, np.minimum)):
        if rows.any():
            x = images[rows]
            target = _plus_filter(x, extreme)
            out[rows] = x + np.abs(a[rows])[:, None, None] * (target - x)
    return out


def thick_pen(images: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Image i (n, h, w) redrawn with a pen `widths[i]` ≥ 0 pixels wider: widths[i]/2 of a
    one-pixel grey dilation on each side (`stroke_batch`), in rounds of at most one pixel.
    A dilation of a whole pixel widens a stroke by about 1.3 in `preprocess.stroke_width`'s
    measure (diagonals grow less than the axes)."""
    out = np.asarray(images)
    grow = np.asarray(widths, np.float64) / 2
    if grow.shape != out.shape[:1] or not np.all(np.isfinite(grow)) or np.any(grow < 0):
        raise ValueError(f"thick_pen: expected {out.shape[0]} widths ≥ 0, got {np.shape(widths)}")
    while np.any(grow > 0):
        step = np.minimum(grow, 1.0)
        out = stroke_batch(out, step.astype(out.dtype))
        grow = grow - step
    return out


def _plus_filter(x: np.ndarray, extreme) -> np.ndarray:
    """extreme (np.maximum or np.minimum) of each pixel and its 4 neighbours; outside is 0."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = extreme(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1])
    extreme(out, padded[:, 1:-1, :-2], out=out)
    extreme(out, padded[:, 1:-1, 2:], out=out)
    return extreme(out, x, out=out)
