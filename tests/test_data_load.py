"""`load(folder)` and friends: standard file names, validation of each split, names, info."""

import gzip

import numpy as np
import pytest

import chainrule.data as data
from chainrule.data import DataError, encode_idx, info, load, load_uint8, write_idx
from chainrule.data.catalog import IDX_NAMES


def make_folder(folder, rng, n_train=20, n_test=5, gz=True, **override):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays.update(override)
    for role, array in arrays.items():
        write_idx(folder / (IDX_NAMES[role] + (".gz" if gz else "")), array)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_load_folder(tmp_path, rng, gz):
    arrays = make_folder(tmp_path, rng, gz=gz)
    (x, y), (xt, yt) = load(tmp_path)
    assert x.shape == (20, 28, 28) and x.dtype == np.float32
    assert y.shape == (20,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, arrays["train_images"] / np.float32(255))
    (xu, _), (xtu, _) = load_uint8(str(tmp_path))
    assert xu.dtype == np.uint8
    np.testing.assert_array_equal(xtu, arrays["test_images"])


def test_count_mismatch_names_the_file(tmp_path, rng):
    make_folder(tmp_path, rng, train_labels=np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="19 labels for 20 images") as err:
        load(tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)


def test_wrong_image_size_names_the_file(tmp_path, rng):
    make_folder(tmp_path, rng, test_images=np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"\(5, 32, 32\), expected \(n, 28, 28\)") as err:
        load(tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)


def test_float_images_and_bad_labels_are_rejected(tmp_path, rng):
    make_folder(tmp_path / "f", rng, train_images=np.zeros((20, 28, 28), np.float32))
    with pytest.raises(DataError, match="expected uint8"):
        load(tmp_path / "f")
    make_folder(tmp_path / "l", rng, test_labels=np.full(5, 10, np.uint8))
    with pytest.raises(DataError, match=r"labels outside 0\.\.9"):
        load(tmp_path / "l")


def test_corrupt_file_in_folder(tmp_path, rng):
    make_folder(tmp_path, rng)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as err:
        load(tmp_path)
    assert str(path) in str(err.value)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x08\x08" + encode_idx(np.zeros(20, np.uint8))[2:]))
    with pytest.raises(DataError, match="not an IDX file"):
        load(tmp_path)


def test_missing_files_are_listed(tmp_path, rng):
    make_folder(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load(tmp_path)


def test_unknown_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'emnist'.*mnist-10k"):
        load("emnist")
    with pytest.raises(ValueError):  # DataError is a ValueError
        load(tmp_path / "does-not-exist")


def test_info_of_folder_reads_headers_only(tmp_path, rng):
    make_folder(tmp_path, rng)
    about = info(tmp_path)
    assert about["source"] == "folder" and about["n_train"] == 20 and about["n_test"] == 5
    assert about["files"][0]["shape"] == [20, 28, 28]


def test_catalogue_info_without_download(tmp_path):
    about = info("mnist", cache_dir=tmp_path)
    assert about["available"] is False and about["path"] is None
    assert [f["bytes"] for f in about["files"]] == [9_912_422, 28_881, 1_648_877, 4_542]
    assert about["files"][0]["sha256"].startswith("440fcabf73cc546f")
    assert about["mirrors"][0].startswith("https://")
    fashion = info("fashion-mnist", cache_dir=tmp_path)
    assert fashion["classes"][9] == "Ankle boot" and fashion["n_train"] == 60_000
    assert info("mnist-hf", cache_dir=tmp_path)["target"] == "mnist"


def test_listing(tmp_path):
    assert data.list_datasets() == ["mnist-10k", "mnist", "fashion-mnist", "mnist-hf"]
    text = data.cli_list(cache_dir=tmp_path)
    assert all(name in text for name in data.list_datasets())
    assert "bundled" in text


def test_public_names():
    for name in ("load", "load_uint8", "read_idx", "write_idx", "DataError", "download", "info",
                 "list_datasets", "cli_list", "read_parquet", "batches", "one_hot"):
        assert hasattr(data, name), name
    assert issubclass(data.DataError, ValueError)
