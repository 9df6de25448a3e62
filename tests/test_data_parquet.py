"""Parquet reader (Hugging Face `image.bytes` PNG + `label` layout) and its error messages."""

import io
import sys

import numpy as np
import pytest

from chainrule.data import DataError, MissingDependencyError, load, read_parquet

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
Image = pytest.importorskip("PIL.Image")


def png(array, mode="L"):
    buf = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(path, images, labels, **extra_columns):
    column = [{"bytes": png(img), "path": None} for img in images]
    pq.write_table(pa.table({"image": column, "label": pa.array(labels), **extra_columns}), path)
    return path


def test_read_parquet_round_trip(tmp_path, rng):
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2])
    x, y = read_parquet(write_parquet(tmp_path / "train-00000-of-00001.parquet", images, labels))
    assert x.dtype == np.uint8 and x.shape == (7, 28, 28)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_load_folder_of_parquet_shards(tmp_path, rng):
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    sub = tmp_path / "mnist"
    sub.mkdir()
    write_parquet(sub / "train-00000-of-00002.parquet", images[:5], labels[:5])
    write_parquet(sub / "train-00001-of-00002.parquet", images[5:9], labels[5:9])
    write_parquet(sub / "test-00000-of-00001.parquet", images[9:], labels[9:])
    (x, y), (xt, yt) = load(tmp_path)
    assert x.shape == (9, 28, 28) and xt.shape == (3, 28, 28)
    np.testing.assert_array_equal(np.rint(x * 255).astype(np.uint8), images[:9])
    np.testing.assert_array_equal(yt, labels[9:])


def test_missing_columns_name_the_file(tmp_path):
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"pixels": [b"x"], "target": [1]}), path)
    with pytest.raises(DataError, match="expected 'image'") as info:
        read_parquet(path)
    assert str(path) in str(info.value) and "pixels" in str(info.value)


def test_image_column_without_bytes_field(tmp_path):
    path = tmp_path / "nobytes.parquet"
    pq.write_table(pa.table({"image": [{"path": "a.png"}], "label": [1]}), path)
    with pytest.raises(DataError, match="expected 'image'"):
        read_parquet(path)


def test_wrong_image_size(tmp_path, rng):
    path = tmp_path / "big.parquet"
    write_parquet(path, [rng.integers(0, 256, (32, 32), dtype=np.uint8)], [1])
    with pytest.raises(DataError, match=r"row 0: image is 32x32, expected 28x28") as info:
        read_parquet(path)
    assert str(path) in str(info.value)


def test_colour_image_is_rejected(tmp_path, rng):
    path = tmp_path / "rgb.parquet"
    column = [{"bytes": png(rng.integers(0, 256, (28, 28), dtype=np.uint8), "RGB"), "path": None}]
    pq.write_table(pa.table({"image": column, "label": [1]}), path)
    with pytest.raises(DataError, match="mode 'RGB'"):
        read_parquet(path)


def test_undecodable_png_and_non_integer_labels(tmp_path):
    path = tmp_path / "junk.parquet"
    pq.write_table(pa.table({"image": [{"bytes": b"not a png", "path": None}], "label": [1]}),
                   path)
    with pytest.raises(DataError, match="row 0: image is not a readable PNG"):
        read_parquet(path)
    path = tmp_path / "strlabels.parquet"
    pq.write_table(pa.table({"image": [{"bytes": b"", "path": None}], "label": ["7"]}), path)
    with pytest.raises(DataError, match="labels are string"):
        read_parquet(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_parquet(path)
    with pytest.raises(DataError, match="no such file"):
        read_parquet(tmp_path / "absent.parquet")


def test_clear_message_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # makes `import` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'chainrule\[parquet\]'"):
        read_parquet(tmp_path / "x.parquet")
    with pytest.raises(ImportError):  # also catchable as an ImportError
        read_parquet(tmp_path / "x.parquet")
