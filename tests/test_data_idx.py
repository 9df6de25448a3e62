"""IDX reader/writer: round trips, deterministic gzip, atomic writes, and every kind of bad file."""

import gzip
import struct

import numpy as np
import pytest

from chainrule.data import DataError, content_sha256, decode_idx, encode_idx, read_idx, write_idx
from chainrule.data.idx import file_sha256, gzip_bytes, read_idx_header


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype(tmp_path, rng, dtype, suffix):
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)
    assert read_idx_header(path) == (np.dtype(dtype), (3, 4, 5))


def test_mnist_style_header_bytes(tmp_path):
    images = np.zeros((2, 28, 28), np.uint8)
    data = encode_idx(images)
    assert data[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")
    assert len(data) == 16 + 2 * 784
    assert encode_idx(np.arange(3, dtype=np.uint8))[:8] == bytes.fromhex("00000801 00000003")


def test_gzip_is_detected_by_magic_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    (tmp_path / "gz-without-suffix").write_bytes(gzip.compress(encode_idx(array)))
    (tmp_path / "raw.gz").write_bytes(encode_idx(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "gz-without-suffix"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(1000, dtype=np.uint8) % 7
    first = write_idx(tmp_path / "a.gz", array).read_bytes()
    second = write_idx(tmp_path / "b.gz", array).read_bytes()
    assert first == second
    assert first[3] == 0, "no FNAME (or other) flag: the file name is not stored"
    assert struct.unpack("<I", first[4:8])[0] == 0, "mtime is 0"
    assert gzip_bytes(encode_idx(array)) == first


def test_content_hash_ignores_the_container(tmp_path):
    array = np.arange(500, dtype=np.uint8)
    raw = write_idx(tmp_path / "x", array)
    ours = write_idx(tmp_path / "x.gz", array)
    other = tmp_path / "other.gz"
    other.write_bytes(gzip.compress(encode_idx(array), compresslevel=1, mtime=12345))
    assert file_sha256(ours) != file_sha256(other)
    assert content_sha256(raw) == content_sha256(ours) == content_sha256(other)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = write_idx(tmp_path / "keep.gz", np.arange(4, dtype=np.uint8))
    before = path.read_bytes()
    with pytest.raises(DataError, match="int64"):
        write_idx(path, np.arange(4, dtype=np.int64))  # unsupported: fails before any write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gz"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_write_rejects_what_idx_cannot_store(tmp_path):
    for bad in (np.zeros(3, bool), np.zeros(3, np.complex64), np.float32(1.0)):
        with pytest.raises(DataError):
            write_idx(tmp_path / "bad", bad)


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


GOOD = encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))

BAD_FILES = {
    "empty": (b"", "too short"),
    "wrong magic": (b"\x01\x02" + GOOD[2:], "not an IDX file"),
    "unknown dtype code": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
    "zero dimensions": (GOOD[:3] + b"\x00", "0 dimensions"),
    "truncated header": (GOOD[:10], "truncated IDX header"),
    "truncated data": (GOOD[:-5], "truncated IDX data"),
    "extra bytes": (GOOD + b"\x00", "extra bytes"),
    "truncated gzip": (gzip.compress(GOOD)[:-12], "corrupt or truncated gzip"),
    "gzip with bad crc": (gzip.compress(GOOD)[:-8] + b"\0\0\0\0" + gzip.compress(GOOD)[-4:],
                          "corrupt or truncated gzip"),
    "gzip garbage": (b"\x1f\x8b" + b"garbage" * 10, "corrupt or truncated gzip"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_dataerror_naming_the_file(tmp_path, case):
    data, message = BAD_FILES[case]
    path = _write(tmp_path, "broken-idx3-ubyte.gz", data)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(DataError, match=message):
        decode_idx(data, name="in-memory")


def test_missing_file_is_a_dataerror(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope.gz")


def test_huge_header_claim_does_not_allocate(tmp_path):
    # header claims 4 billion items; the reader must fail on the short payload, not on memory
    path = _write(tmp_path, "liar", bytes.fromhex("00000801 ffffffff") + b"\x00" * 10)
    with pytest.raises(DataError, match="truncated IDX data"):
        read_idx(path)
