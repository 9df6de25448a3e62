"""Fuzzing the readers with hypothesis: IDX files (raw and gzipped) and digit images.

Whatever the bytes, a reader returns a correct result or raises its documented error
(`DataError` for IDX, `ImageError` for images): never another exception, a hang, or memory
beyond a bound. Runs are derandomized (the same examples every time) and modest in size, so
they are deterministic in CI.
"""

import gzip
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from chainrule.data import DataError, decode_idx, encode_idx, read_idx  # noqa: E402
from chainrule.data.idx import IDX_DTYPES, read_idx_header  # noqa: E402

FUZZ = settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MEMORY_BOUND = 8 * 2**20  # bytes a reader may allocate (tracemalloc) for these small inputs


# ---- IDX ----------------------------------------------------------------------------------
@st.composite
def idx_arrays(draw):
    code = draw(st.sampled_from(sorted(IDX_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
    dtype = IDX_DTYPES[code].newbyteorder("=")
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


@st.composite
def mutations(draw, data: bytes) -> bytes:
    """`data` with a few bytes flipped, cut, inserted or appended."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "append"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "truncate":
            del data[at:]
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def read_both_ways(tmp_path, data: bytes):
    """decode_idx(data) and read_idx(file of data): the same array, or DataError from both."""
    path = tmp_path / "fuzz-idx"
    path.write_bytes(data)
    results = []
    for read in (lambda: decode_idx(data, "fuzz"), lambda: read_idx(path)):
        tracemalloc.start()
        try:
            results.append(read())
        except DataError as exc:
            assert "\n" not in str(exc)
            results.append(None)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < MEMORY_BOUND + 4 * len(data), peak
    a, b = results
    assert (a is None) == (b is None)
    if a is not None:
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    return a


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(tmp_path, data):
    array = read_both_ways(tmp_path, data)
    if array is not None:
        assert encode_idx(array) == data  # anything accepted is exactly what was stored


@FUZZ
@given(data=st.binary(max_size=60).map(lambda b: b"\x00\x00" + b))
def test_random_bytes_behind_the_magic(tmp_path, data):
    array = read_both_ways(tmp_path, data)
    if array is not None:
        assert encode_idx(array) == data


@FUZZ
@given(array=idx_arrays(), compress=st.booleans())
def test_valid_files_round_trip(tmp_path, array, compress):
    data = encode_idx(array)
    data = gzip.compress(data, mtime=0) if compress else data
    back = read_both_ways(tmp_path, data)
    assert back is not None and back.dtype == array.dtype
    np.testing.assert_array_equal(back.view(np.uint8), array.view(np.uint8))  # NaN-safe


@FUZZ
@given(st.data(), idx_arrays(), st.booleans())
def test_mutated_files(tmp_path, data, array, compress):
    good = encode_idx(array)
    good = gzip.compress(good, mtime=0) if compress else good
    mutated = data.draw(mutations(good))
    back = read_both_ways(tmp_path, mutated)
    if back is not None and not compress:
        assert encode_idx(back) == mutated


@FUZZ
@given(
    code=st.sampled_from(sorted(IDX_DTYPES)),
    shape=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=80),
    tail=st.binary(max_size=64),
    compress=st.booleans(),
)
def test_huge_declared_shapes_are_refused_before_allocating(tmp_path, code, shape, tail,
                                                            compress):
    header = bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    data = gzip.compress(header + tail, mtime=0) if compress else header + tail
    read_both_ways(tmp_path, data)  # the memory bound is the point


def test_a_tiny_file_claiming_gigabytes_is_refused_by_its_size(tmp_path):
    header = bytes.fromhex("00000803") + struct.pack(">3I", 60000, 280, 280)  # 4.7 GB
    for data in (header + bytes(1000), gzip.compress(header + bytes(100_000))):
        with pytest.raises(DataError, match="cannot hold them"):
            decode_idx(data, "liar")
        path = tmp_path / "liar"
        path.write_bytes(data)
        with pytest.raises(DataError, match="cannot hold them"):
            read_idx(path)


def test_shapes_numpy_cannot_hold_are_a_dataerror(tmp_path):
    too_many_dims = bytes([0, 0, 8, 70]) + struct.pack(">70I", 0, *[1] * 69)
    too_big_empty = bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 2**32 - 1, 2**32 - 1)
    for data in (too_many_dims, too_big_empty):
        with pytest.raises(DataError, match="more than NumPy can hold"):
            decode_idx(data)
        (tmp_path / "x").write_bytes(data)
        with pytest.raises(DataError, match="more than NumPy can hold"):
            read_idx_header(tmp_path / "x")


def test_a_gzip_bomb_is_not_inflated_in_memory():
    # 16 MB of zeros gzip to ~16 KB; the header claims 4 bytes: refuse after reading 5
    bomb = gzip.compress(bytes.fromhex("00000801 00000004") + bytes(16 * 2**20), mtime=0)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="extra bytes"):
            decode_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


# ---- images -------------------------------------------------------------------------------
def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR's declared width/height replaced (and its CRC fixed)."""
    ihdr = bytearray(png[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    return png[:8] + png[8:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def load_or_imageerror(data: bytes):
    from chainrule.preprocess import ImageError, load_digit_image

    try:
        out = load_digit_image(data)
    except ImageError as exc:
        assert "\n" not in str(exc)
        return None
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    return out


DIGIT = np.full((40, 32), 255, np.uint8)
DIGIT[8:32, 12:18] = 0  # a dark "1" on white


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_as_an_image(data):
    pytest.importorskip("PIL")
    load_or_imageerror(data)


@FUZZ
@given(st.data())
def test_mutated_pngs(data):
    pytest.importorskip("PIL")
    load_or_imageerror(data.draw(mutations(png_bytes(DIGIT))))


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
def test_png_declaring_any_size(width, height):
    pytest.importorskip("PIL")
    load_or_imageerror(with_ihdr_size(png_bytes(DIGIT), width, height))


def test_png_declaring_huge_size_is_refused():
    pytest.importorskip("PIL")
    from chainrule.preprocess import ImageError, load_digit_image

    for width, height in ((100_000, 100_000), (10_000, 10_000), (2**31 - 1, 1)):
        with pytest.raises(ImageError, match="too large|corrupt"):
            load_digit_image(with_ihdr_size(png_bytes(DIGIT), width, height))
    assert load_or_imageerror(png_bytes(DIGIT)) is not None
