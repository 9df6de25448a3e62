"""The data scripts' building blocks: the restricted unpickler and the stratified split."""

import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hub():
    return load_script("mnist_from_mnisthub")


@pytest.fixture(scope="module")
def build():
    return load_script("build_mnist10k")


def test_unpickler_rebuilds_numpy_arrays(hub):
    data = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),)
    blob = pickle.dumps(data, protocol=4)  # (protocol 2 from Python 3 would need _codecs)
    (x, y), = hub.NumpyOnlyUnpickler(io.BytesIO(blob), encoding="latin1").load()
    np.testing.assert_array_equal(x, data[0][0])
    np.testing.assert_array_equal(y, data[0][1])


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_refuses_everything_else(hub):
    for payload in (Exploit(), np.float64(1.5), [Path(".")], print):
        blob = pickle.dumps(payload, protocol=4)
        with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
            hub.NumpyOnlyUnpickler(io.BytesIO(blob), encoding="latin1").load()


def test_to_bytes_checks_k_over_256(hub):
    k = np.arange(784, dtype=np.float32) % 256
    out = hub.to_bytes((k / 256).reshape(1, 784))
    assert out.dtype == np.uint8 and out.shape == (1, 28, 28)
    np.testing.assert_array_equal(out.ravel(), k)
    with pytest.raises(SystemExit):
        hub.to_bytes(np.full((1, 784), 0.3, np.float32))


def test_test_counts_are_proportional_and_exact(build):
    sizes = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    counts = build.test_counts(sizes, 2000)
    assert sum(counts) == 2000
    assert all(abs(c - 2000 * n / 10000) < 1 for c, n in zip(counts, sizes, strict=True))
    assert sum(build.test_counts([1, 1, 1], 2)) == 2


def test_split_is_stratified_deterministic_and_disjoint(build, rng, monkeypatch):
    monkeypatch.setattr(build, "N_TEST", 20)
    digits = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in
              (10, 12, 9, 11, 10, 8, 10, 11, 9, 10)]
    first, second = build.split(digits), build.split(digits)
    for name in ("train", "test"):
        np.testing.assert_array_equal(first[name][0], second[name][0])
        np.testing.assert_array_equal(first[name][1], second[name][1])
    (x, y), (xt, yt) = first["train"], first["test"]
    assert len(yt) == 20 and len(y) == 80
    assert np.bincount(yt, minlength=10).tolist() == build.test_counts(
        [len(d) for d in digits], 20)
    seen = {img.tobytes() for img in x} | {img.tobytes() for img in xt}
    assert len(seen) == 100  # every image used once
