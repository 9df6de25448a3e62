"""Downloads end to end on loopback: a stdlib HTTP server on 127.0.0.1 serves small IDX files.

Covered: a good download, a checksum mismatch, a truncated transfer, a failing mirror followed
by a working one, a cache hit that makes no request, the mirror environment variable,
re-compressed cache files, and the Parquet (Hugging Face style) source. No internet needed.
"""

import gzip
import hashlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from chainrule.data import DataError, DatasetSpec, ParquetSpec, RemoteFile, download, load
from chainrule.data.catalog import IDX_NAMES
from chainrule.data.download import fetch_url, is_valid, resolve_mirrors
from chainrule.data.idx import content_sha256, encode_idx, gzip_bytes


# ---------------------------------------------------------------- a tiny dataset
def make_arrays(rng, n_train=30, n_test=10):
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def make_dataset(rng, name="tiny"):
    """(DatasetSpec, {file name: .gz bytes}, arrays) for a small MNIST-shaped dataset."""
    arrays = make_arrays(rng)
    files, served = {}, {}
    for role, array in arrays.items():
        raw = encode_idx(array)
        gz = gzip.compress(raw, mtime=1)  # a "mirror" gzip, unlike our deterministic one
        fname = f"{IDX_NAMES[role]}.gz"
        served[fname] = gz
        files[role] = RemoteFile(fname, len(gz), hashlib.sha256(gz).hexdigest(),
                                 hashlib.sha256(raw).hexdigest())
    spec = DatasetSpec(
        name=name, title="tiny test set", files=files, mirrors=("http://127.0.0.1:9/none",),
        mirrors_env="CHAINRULE_TEST_TINY_MIRRORS", classes=tuple("0123456789"),
        n_train=30, n_test=10, homepage="", licence="test data",
    )
    return spec, served, arrays


# ---------------------------------------------------------------- the loopback server
class Server:
    """Serves `routes[path] = (mode, body)`; counts requests per path.

    Modes: "ok"; "truncate" (announces the full length, sends half, closes); "404"; "500".
    """

    def __init__(self):
        self.routes, self.requests = {}, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                mode, body = owner.routes.get(self.path, ("404", b""))
                if mode in ("404", "500"):
                    self.send_error(int(mode))
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def serve(self, prefix, files, mode="ok"):
        for name, body in files.items():
            self.routes[f"{prefix}/{name}"] = (mode, body)
        return f"{self.base}{prefix}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def cache_listing(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


# ---------------------------------------------------------------- tests
def test_good_download_then_load(tmp_path, server, rng):
    spec, served, arrays = make_dataset(rng)
    mirror = server.serve("/good", served)
    folder = download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    assert folder == tmp_path / "tiny"
    assert cache_listing(tmp_path) == sorted(f"tiny/{n}" for n in served)
    for name, body in served.items():
        assert (folder / name).read_bytes() == body
    (x_train, y_train), (x_test, y_test) = load(folder)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_array_equal(np.rint(x_train * 255).astype(np.uint8), arrays["train_images"])
    np.testing.assert_array_equal(y_test, arrays["test_labels"])


def test_cache_hit_makes_no_request(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    mirror = server.serve("/m", served)
    download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    assert len(server.requests) == 4
    download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    download(spec, cache_dir=tmp_path, mirrors=["http://127.0.0.1:9/unreachable"])
    assert len(server.requests) == 4


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    tampered = {n: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:] for n, b in served.items()}  # same size
    mirror = server.serve("/bad", tampered)
    with pytest.raises(DataError, match="sha256 mismatch") as info:
        download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert cache_listing(tmp_path) == []  # no file, no .part leftovers


def test_truncated_transfer_leaves_nothing_in_the_cache(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    mirror = server.serve("/cut", served, mode="truncate")
    with pytest.raises(DataError, match="transfer failed|truncated"):
        download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    assert cache_listing(tmp_path) == []


def test_failing_mirror_then_working_one(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    broken = server.serve("/down", served, mode="500")
    cut = server.serve("/cut", served, mode="truncate")
    good = server.serve("/up", served)
    folder = download(spec, cache_dir=tmp_path, mirrors=[broken, cut, good], progress=False)
    assert all(is_valid(folder / n, r) for n, r in ((r.name, r) for r in spec.files.values()))
    assert [p.split("/")[1] for p in server.requests] == ["down", "cut", "up"] * 4


def test_all_mirrors_failing_names_each(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    missing = server.serve("/empty", {})
    with pytest.raises(DataError) as info:
        download(spec, cache_dir=tmp_path, mirrors=[missing, "http://127.0.0.1:9/x"],
                 progress=False, timeout=5)
    message = str(info.value)
    assert "HTTP 404" in message and "127.0.0.1:9" in message
    assert cache_listing(tmp_path) == []


def test_mirrors_from_environment(tmp_path, server, rng, monkeypatch):
    spec, served, _ = make_dataset(rng)
    mirror = server.serve("/env", served)
    monkeypatch.setenv("CHAINRULE_TEST_TINY_MIRRORS", f"http://127.0.0.1:9/dead, {mirror}")
    assert resolve_mirrors(spec, None) == ["http://127.0.0.1:9/dead", mirror]
    download(spec, cache_dir=tmp_path, progress=True)  # progress bar on: must not break
    assert len([p for p in server.requests if p.startswith("/env/")]) == 4


def test_cache_dir_from_environment(tmp_path, server, rng, monkeypatch):
    spec, served, _ = make_dataset(rng)
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "envcache"))
    folder = download(spec, mirrors=[server.serve("/c", served)], progress=False)
    assert folder == tmp_path / "envcache" / "tiny"


def test_invalid_cached_file_is_replaced(tmp_path, server, rng):
    spec, served, _ = make_dataset(rng)
    mirror = server.serve("/m", served)
    folder = download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    victim = folder / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-3])  # corrupt one cached file
    download(spec, cache_dir=tmp_path, mirrors=[mirror], progress=False)
    assert server.requests.count("/m/t10k-labels-idx1-ubyte.gz") == 2
    assert len(server.requests) == 5
    assert victim.read_bytes() == served[victim.name]


def test_recompressed_cache_files_are_accepted_by_content(tmp_path, server, rng):
    spec, served, arrays = make_dataset(rng)
    folder = tmp_path / "tiny"
    folder.mkdir()
    for role, array in arrays.items():  # e.g. rebuilt by a script: other gzip bytes
        (folder / f"{IDX_NAMES[role]}.gz").write_bytes(gzip_bytes(encode_idx(array)))
    assert download(spec, cache_dir=tmp_path, mirrors=[server.base]) == folder
    assert server.requests == []


def test_load_uses_cache_without_network(tmp_path, monkeypatch):
    # full "mnist" is not in this empty cache and downloads are not allowed
    with pytest.raises(DataError, match="not in the cache"):
        load("mnist", cache_dir=tmp_path, allow_download=False)


def test_fetch_url_rejects_wrong_content_length(tmp_path, server):
    url = server.serve("/f", {"x.bin": b"12345"}) + "/x.bin"
    with pytest.raises(DataError, match="announces 5 bytes, expected 4"):
        fetch_url(url, tmp_path / "x.bin", size=4, progress=False)
    fetch_url(url, tmp_path / "x.bin", size=5,
              sha256=hashlib.sha256(b"12345").hexdigest(), progress=False)
    assert (tmp_path / "x.bin").read_bytes() == b"12345"


def test_fetch_url_without_known_size_still_detects_truncation(tmp_path, server):
    url = server.serve("/t", {"y.bin": b"0123456789"}, mode="truncate") + "/y.bin"
    with pytest.raises(DataError, match="truncated transfer, 5 of 10 bytes"):
        fetch_url(url, tmp_path / "y.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_local_folder_as_mirror(tmp_path, rng):
    spec, served, _ = make_dataset(rng)
    source = tmp_path / "usb-stick"
    source.mkdir()
    for name, body in served.items():
        (source / name).write_bytes(body)
    folder = download(spec, cache_dir=tmp_path / "cache", mirrors=[str(source)], progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(served)


# ---------------------------------------------------------------- Parquet source
def parquet_bytes(images, labels):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from PIL import Image

    pngs = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    table = pa.table({"image": pngs, "label": pa.array(labels.astype(np.int64))})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_parquet_source_is_verified_and_cached_as_idx(tmp_path, server, rng):
    spec, _, arrays = make_dataset(rng)
    served = {
        "train-00000-of-00001.parquet": parquet_bytes(arrays["train_images"],
                                                      arrays["train_labels"]),
        "test-00000-of-00001.parquet": parquet_bytes(arrays["test_images"],
                                                     arrays["test_labels"]),
    }
    mirror = server.serve("/hf/tiny", served)
    hf = ParquetSpec(name="tiny-hf", title="tiny as parquet", target=spec,
                     files={"train": "tiny/train-00000-of-00001.parquet",
                            "test": "tiny/test-00000-of-00001.parquet"})
    folder = download(hf, cache_dir=tmp_path, mirrors=[server.base + "/hf"], progress=False)
    assert folder == tmp_path / "tiny"
    assert cache_listing(tmp_path) == sorted(f"tiny/{r.name}" for r in spec.files.values())
    (x, y), (xt, yt) = load(folder)
    np.testing.assert_array_equal(np.rint(xt * 255).astype(np.uint8), arrays["test_images"])
    np.testing.assert_array_equal(y, arrays["train_labels"])
    n = len(server.requests)
    download(hf, cache_dir=tmp_path, mirrors=[mirror], progress=False)  # cache hit
    assert len(server.requests) == n


def test_parquet_source_with_wrong_content_is_rejected(tmp_path, server, rng):
    spec, _, arrays = make_dataset(rng)
    wrong_labels = (arrays["train_labels"] + 1) % 10
    server.serve("/hf/tiny", {
        "train-00000-of-00001.parquet": parquet_bytes(arrays["train_images"], wrong_labels),
        "test-00000-of-00001.parquet": parquet_bytes(arrays["test_images"],
                                                     arrays["test_labels"]),
    })
    hf = ParquetSpec(name="tiny-hf", title="", target=spec,
                     files={"train": "tiny/train-00000-of-00001.parquet",
                            "test": "tiny/test-00000-of-00001.parquet"})
    with pytest.raises(DataError, match="train_labels.*content sha256 mismatch"):
        download(hf, cache_dir=tmp_path, mirrors=[server.base + "/hf"], progress=False)
    assert cache_listing(tmp_path) == []


# ---------------------------------------------------------------- system folders, real data
def test_system_folder_is_used_without_request(tmp_path, server, rng):
    spec, served, arrays = make_dataset(rng)
    system = tmp_path / "usr-share"
    system.mkdir()
    for role, array in arrays.items():  # re-compressed, as a distribution package might
        (system / f"{IDX_NAMES[role]}.gz").write_bytes(gzip_bytes(encode_idx(array)))
    spec = DatasetSpec(**{**spec.__dict__, "system_dirs": (str(system),)})
    assert download(spec, cache_dir=tmp_path / "cache", mirrors=[server.base]) == system
    assert server.requests == []


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_matches_the_catalogue(tmp_path):
    from chainrule.data.catalog import FASHION_MNIST

    assert download("fashion-mnist", cache_dir=tmp_path) == Path(
        "/usr/share/datasets/fashion-mnist")
    (x, y), (xt, yt) = load("fashion-mnist", cache_dir=tmp_path, allow_download=False)
    assert x.shape == (60_000, 28, 28) and xt.shape == (10_000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert FASHION_MNIST.n_train == len(y)


@pytest.mark.skipif(not os.environ.get("CHAINRULE_MNIST_FULL"),
                    reason="set CHAINRULE_MNIST_FULL to a folder with full MNIST IDX files")
def test_full_mnist_matches_the_catalogue_content_hashes():
    from chainrule.data.catalog import MNIST
    from chainrule.data.datasets import idx_files

    files = idx_files(os.environ["CHAINRULE_MNIST_FULL"])
    for role, remote in MNIST.files.items():
        assert content_sha256(files[role]) == remote.content_sha256, role
