"""The IDX file format of MNIST: read and write n-dimensional arrays, raw or gzipped.

An IDX file is a tiny header followed by the array's bytes, big-endian, in C order::

    bytes 0-1   0x00 0x00                 (the magic number starts with two zero bytes)
    byte  2     type code                 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                          0x0D float32, 0x0E float64
    byte  3     ndim                      1 for labels, 3 for images
    then        ndim sizes                each a big-endian uint32
    then        prod(sizes) items         of the given type

So MNIST's ``train-images-idx3-ubyte`` starts
``00 00 08 03  00 00 ea 60  00 00 00 1c  00 00 00 1c``: uint8, 3 dimensions, shape
(60000, 28, 28). Files may be gzipped (``.gz``); readers here look at the first two bytes
(``1f 8b`` means gzip), not at the name. Every problem raises `DataError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._io import atomic_open
from .errors import DataError

#: IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # read and hash in 1 MiB pieces
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
# Deflate expands at most 1032:1 (a 258-byte match in about 2 bits), so a gzip file of n bytes
# cannot hold more than 1032·n bytes of data: a larger header claim is refused before reading.
_MAX_GZIP_RATIO = 1032
_MAX_NDIM = 64
_MAX_BYTES = np.iinfo(np.intp).max


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes ``1f 8b``."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


@contextmanager
def open_decompressed(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open `path` for binary reading, transparently gunzipping it if it is gzip data.

    Gzip and I/O failures inside the block become `DataError` naming the file (a missing file
    included), so callers need to handle one exception type.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            if raw.read(2) == GZIP_MAGIC:
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    yield f
            else:
                raw.seek(0)
                yield raw
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except _GZIP_ERRORS as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, expected a file") from exc


def _read_header(f: BinaryIO, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse the magic number and the dimension sizes; returns (big-endian dtype, shape)."""
    magic = f.read(4)
    if len(magic) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(magic)} bytes)")
    if magic[:2] != b"\x00\x00":
        raise DataError(
            f"{name}: not an IDX file (magic number 0x{magic.hex()} does not start with 0000)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {dt.name}" for c, dt in IDX_DTYPES.items())
        raise DataError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{name}: truncated IDX header ({ndim} dimension sizes promised)")
    dtype, shape = IDX_DTYPES[code], struct.unpack(f">{ndim}I", sizes)
    # NumPy holds at most 64 dimensions and sizes whose nonzero product fits in an intp
    if ndim > _MAX_NDIM or math.prod(n for n in shape if n) * dtype.itemsize > _MAX_BYTES:
        raise DataError(f"{name}: IDX header declares shape {shape}, more than NumPy can hold")
    return dtype, shape


def _read_exactly(f: BinaryIO, n: int) -> bytearray:
    """Read up to `n` bytes in chunks (never allocating more than the file really holds)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(n - len(buf), _CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf


def _read_array(f: BinaryIO, name: str, stored: int, gzipped: bool) -> np.ndarray:
    """The array after the header; `stored` is the size in bytes of the file as stored.

    The header's claim is checked against what a file of that size can hold before anything
    is read, so a tiny file declaring a huge shape costs nothing.
    """
    dtype, shape = _read_header(f, name)
    nbytes = math.prod(shape) * dtype.itemsize
    room = stored * _MAX_GZIP_RATIO if gzipped else stored - 4 - 4 * len(shape)
    if nbytes > room:
        raise DataError(
            f"{name}: truncated IDX data: header {shape} promises {nbytes} bytes, a "
            f"{'gzip ' if gzipped else ''}file of {stored} bytes cannot hold them"
        )
    payload = _read_exactly(f, nbytes)
    if len(payload) < nbytes:
        raise DataError(
            f"{name}: truncated IDX data: header {shape} promises {nbytes} bytes, "
            f"found {len(payload)}"
        )
    if f.read(1):
        raise DataError(f"{name}: {nbytes} bytes of IDX data {shape} are followed by extra bytes")
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a native-byte-order array of the stored shape.

    MNIST images come back as uint8 ``(n, 28, 28)``, labels as uint8 ``(n,)``. Raises
    `DataError` naming the file on a missing file, bad magic, unknown type code, truncated
    header or data, extra trailing bytes, or corrupt/truncated gzip.
    """
    path = Path(path)
    with open_decompressed(path) as f:
        stored = os.fstat((f.fileobj if isinstance(f, gzip.GzipFile) else f).fileno()).st_size
        return _read_array(f, str(path), stored, isinstance(f, gzip.GzipFile))


def read_idx_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """Read only the header: ``(dtype, shape)``, e.g. ``(dtype('uint8'), (60000, 28, 28))``."""
    path = Path(path)
    with open_decompressed(path) as f:
        dtype, shape = _read_header(f, str(path))
    return dtype.newbyteorder("="), shape


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """`read_idx` for bytes in memory (raw or gzipped); `name` is used in error messages."""
    raw = io.BytesIO(data)
    try:
        if data[:2] != GZIP_MAGIC:
            return _read_array(raw, name, len(data), gzipped=False)
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:  # streamed: no gzip bomb in memory
            return _read_array(f, name, len(data), gzipped=True)
    except _GZIP_ERRORS as exc:
        raise DataError(f"{name}: corrupt or truncated gzip data ({exc})") from exc


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (header + big-endian data, uncompressed) of an array.

    Supported dtypes: uint8, int8, int16, int32, float32, float64; 1 to 255 dimensions,
    each below 2**32.
    """
    array = np.asarray(array)
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind not in "uif":
        names = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise DataError(f"IDX cannot store dtype {array.dtype} (supported: {names})")
    if not 1 <= array.ndim <= 255 or any(n >= 2**32 for n in array.shape):
        raise DataError(f"IDX cannot store an array of shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip `data` deterministically: level 9, mtime 0, no file name in the header.

    The same input gives the same bytes on every run (with the same zlib), which is what
    makes the bundled dataset reproducible byte for byte.
    """
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzipped (deterministically) when `path` ends in ``.gz``.

    The write is atomic: the bytes go to a temporary file in the same folder that is then
    renamed over `path`, so an interrupted write never leaves a half-written file.
    Returns the path.
    """
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        data = gzip_bytes(data)
    with atomic_open(path) as f:
        f.write(data)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes as stored (the .gz itself for a gzipped file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's decompressed bytes (the IDX bytes, whatever the gzip container).

    Two gzip files made by different tools from the same data differ as files but agree here;
    this is the identity `chainrule` uses to accept re-compressed copies of a dataset.
    """
    digest = hashlib.sha256()
    with open_decompressed(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
