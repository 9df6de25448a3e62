"""Reading requests: the body (with its size limit), JSON, and images (see docs/web.md).

The routes in `app.py` call these; every refusal is an `ApiError` (status, one-line message)
that the app answers as JSON {"error": ...}. Memory stays bounded whatever arrives: bodies over
MAX_BODY are cut off, images are judged by their header before decoding, and large ones are
shrunk while still 8-bit, at most DECODE_SLOTS at a time.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..preprocess import ImageError, load_digit_image

MAX_BODY = 2 * 1024 * 1024  # bytes
MAX_SIDE = 4096  # pixels: larger images are refused before they are decoded
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # declared width × height, also checked before decoding
WORK_SIDE = 512  # larger images are shrunk to this many px a side before float arithmetic
DECODE_SLOTS = 1  # large images decoded at the same time; other requests wait for a slot
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")

# Each decode of a large image briefly holds its full-size 8-bit pixels, and a copy while it
# is shrunk (~130 MB for 4096×4096 RGBA); the server's thread pool has 40 workers, so large
# decodes take turns.
decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)


class ApiError(Exception):
    """An HTTP error answered as JSON {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---- reading requests -----------------------------------------------------------------------
async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, "bad Content-Length header")
        if int(declared) > limit:
            raise ApiError(413, f"request body over {limit // (1024 * 1024)} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked uploads, or a Content-Length that lied
            raise ApiError(413, f"request body over {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"bad JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ApiError(400, 'bad JSON: expected an object like {"image": "data:image/png;..."}')
    return payload


def decode_image_field(value) -> bytes:
    """Bytes from a data URL (`data:image/png;base64,...`) or a bare base64 string."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, 'missing "image": send a data URL like "data:image/png;base64,..."')
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
            raise ApiError(400, '"image" must be a base64 data URL of an image '
                                '("data:image/png;base64,...")')
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, '"image" is not valid base64') from None


def digit_from_bytes(data: bytes, preprocessing: dict | None = None) -> np.ndarray:
    """The 28×28 network input for an encoded image, prepared by `chainrule.preprocess`
    exactly as `chainrule predict` prepares a file (`load_digit_image`), with the steps the
    model was trained with (its metadata["preprocessing"]).

    Memory stays bounded whatever arrives: the declared size is checked before decoding
    (at most MAX_SIDE px a side and MAX_PIXELS in all), at most DECODE_SLOTS large images
    are decoded at once, and each is shrunk to WORK_SIDE px a side while still 8-bit (JPEG
    is even decoded at a reduced scale) before any float arithmetic.
    """
    if not data:
        raise ApiError(400, "empty body: send a PNG or JPEG image")
    small = shrink_image(data)
    try:
        return load_digit_image(small, preprocessing)
    except ImageError as exc:
        message = str(exc).removeprefix("<image bytes>: ")
        raise ApiError(400, message) from None


def shrink_image(data: bytes, side: int = WORK_SIDE) -> bytes:
    """`data` itself if the image is at most `side` px a side, else a PNG of it shrunk to fit
    (aspect kept, EXIF orientation applied). Raises ApiError 400 for a non-image or one
    larger than MAX_SIDE / MAX_PIXELS, judged from its header before the pixels are decoded.
    Large images wait for one of the DECODE_SLOTS; small ones (a canvas drawing) never do."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
            width, height = img.size
            if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
                raise ApiError(400, f"image too large ({width}×{height}); at most "
                                    f"{MAX_SIDE} px a side")
            if max(width, height) <= side:
                return data
            with decode_slots:
                return shrunk_png(img, side)
    except Image.DecompressionBombError:  # Pillow's own (global) limit, far above ours
        raise ApiError(400, f"image too large; at most {MAX_SIDE} px a side") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(400, "not an image: send a PNG or JPEG (" + ", ".join(IMAGE_FORMATS)
                       + " are read)") from None


def shrunk_png(img: Image.Image, side: int) -> bytes:
    """Decode the opened `img` and shrink it to at most `side` px a side, still 8-bit."""
    img.draft("L", (side, side))  # JPEG: decode at 1/2 … 1/8 scale, in grey
    img.load()
    small = _resizable(img)
    # an integer reduce first; BOX for 32-bit grey, whose range is stretched next (Lanczos'
    # overshoot would widen it)
    box = small.mode == "I"
    small.thumbnail((side, side), Image.Resampling.BOX if box else Image.Resampling.LANCZOS)
    small = ImageOps.exif_transpose(small)
    if small.mode == "I":  # 16/32-bit grey: stretch to 8 bits as preprocess would (PNG can't
        a = np.asarray(small, dtype=np.float64)  # store mode I), now that it is small
        lo, hi = float(a.min()), float(a.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        small = Image.fromarray(np.round((a - lo) * scale).astype(np.uint8), mode="L")
    out = io.BytesIO()
    small.save(out, format="PNG")
    return out.getvalue()


def _resizable(img: Image.Image) -> Image.Image:
    """`img` in a mode that resizes with antialiasing (palette and 1-bit images would be
    resized by nearest neighbour, losing thin strokes) and that PNG can store."""
    if img.mode in ("P", "PA"):
        return img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I;16"):
        return img.convert("I")
    if img.mode not in ("L", "LA", "I", "RGB", "RGBA"):  # CMYK, YCbCr...: not PNG-writable
        return img.convert("RGB")
    return img


async def image_from_request(
    request: Request, body: bytes, preprocessing: dict | None = None
) -> tuple[np.ndarray, dict]:
    """(28×28 input, JSON payload or {}) from raw image bytes or a JSON body, prepared with
    the model's `preprocessing` steps."""
    content_type = request.headers.get("content-type", "").lower()
    payload: dict = {}
    if "json" in content_type or body.lstrip()[:1] == b"{":
        payload = parse_json(body)
        body = decode_image_field(payload.get("image"))
    return await run_in_threadpool(digit_from_bytes, body, preprocessing), payload
