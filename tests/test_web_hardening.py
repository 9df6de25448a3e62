"""`chainrule serve` against hostile or heavy input: huge images, a model file whose metadata
names arbitrary folders, and a slow evaluation that must not hold up predictions."""

import io
import struct
import threading
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from PIL import Image, ImageDraw  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import serialize  # noqa: E402
from chainrule.preprocess import load_digit_image  # noqa: E402
from chainrule.web import decode as web_decode  # noqa: E402
from chainrule.web import server  # noqa: E402
from chainrule.web.app import ApiError, create_app, digit_from_bytes  # noqa: E402


def stroke_png(side: int, mode: str = "L") -> bytes:
    """A "7" drawn across a side×side canvas, black on white, as PNG bytes."""
    img = Image.new(mode, (side, side), "white")
    points = [(0.28, 0.2), (0.72, 0.2), (0.42, 0.85)]
    ImageDraw.Draw(img).line([(x * side, y * side) for x, y in points], fill="black",
                             width=side // 16, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height but holds (almost) no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def model():
    return cr.Sequential(cr.Flatten(), cr.Dense(784, 16, seed=0), cr.ReLU(),
                         cr.Dense(16, 10, seed=1)).eval()


# ---- images: bounded memory, bounded concurrency ----------------------------------------------
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_4096px_png_decodes_in_bounded_memory_to_the_right_digit(mode):
    png = stroke_png(4096, mode)
    assert len(png) < 200_000  # a small upload...
    tracemalloc.start()
    try:
        digit = digit_from_bytes(png)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB"  # ...that used to cost > 256 MB
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    full = load_digit_image(png)  # the same image prepared at full size
    np.testing.assert_allclose(digit, full, atol=0.15)
    assert abs(float(digit.sum()) - float(full.sum())) < 0.05 * float(full.sum())


@pytest.mark.parametrize("mode,fmt", [("RGB", "JPEG"), ("CMYK", "JPEG"), ("P", "PNG"),
                                      ("1", "PNG"), ("I;16", "PNG")])
def test_shrunk_images_of_every_mode_match_the_full_size_ones(mode, fmt):
    img = Image.open(io.BytesIO(stroke_png(3000))).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    digit = digit_from_bytes(buf.getvalue())
    np.testing.assert_allclose(digit, load_digit_image(buf.getvalue()), atol=0.15)


@pytest.mark.parametrize("size", [(4097, 16), (100_000, 100_000), (65_535, 3)])
def test_declared_sizes_beyond_the_limit_are_refused_before_decoding(size):
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ApiError) as info:
        digit_from_bytes(png_header_only(*size))
    assert info.value.status == 400 and "too large" in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == limit_before  # the guard is local, not Pillow's global


def test_decoding_holds_one_of_the_decode_slots(monkeypatch):
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(web_decode, "decode_slots", slots)
    held = []
    real = web_decode.shrunk_png

    def spy(*args, **kwargs):
        held.append(not slots.acquire(blocking=False))  # busy: this decode holds the slot
        return real(*args, **kwargs)

    monkeypatch.setattr(web_decode, "shrunk_png", spy)
    digit_from_bytes(stroke_png(600))
    assert held == [True]
    assert slots.acquire(blocking=False)  # and gives it back
    digit_from_bytes(stroke_png(280))  # a canvas-sized drawing needs no slot
    assert held == [True]


def test_at_most_decode_slots_images_are_decoded_at_once(monkeypatch):
    active, most, lock = [0], [0], threading.Lock()
    everyone_waiting = threading.Event()
    real = web_decode.shrunk_png

    def slow(*args, **kwargs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        everyone_waiting.wait(timeout=0.2)  # let the other threads pile up at the gate
        with lock:
            active[0] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(web_decode, "shrunk_png", slow)
    png = stroke_png(600)
    results = []
    threads = [threading.Thread(target=lambda: results.append(digit_from_bytes(png)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everyone_waiting.set()
    assert len(results) == 6
    assert 1 <= most[0] <= web_decode.DECODE_SLOTS


def test_a_huge_png_through_the_api_is_answered(model):
    client = TestClient(create_app(model, evaluate=False))
    body = client.post("/api/predict", content=stroke_png(4096)).json()
    assert len(body["input"]) == 28 and 0 <= body["digit"] <= 9


# ---- a model file names its dataset: only known names or the data cache ------------------------
def page_for(path):
    """The app `chainrule serve PATH` builds (any Host header accepted, for TestClient)."""
    return server.build_app(str(path), host="0.0.0.0")


@pytest.mark.parametrize("name", ["/etc", "../../..", "~", "/", "../../etc/passwd", 42])
def test_a_model_file_cannot_make_the_page_read_arbitrary_folders(name, model, tmp_path,
                                                                   monkeypatch, caplog):
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "cache"))
    path = serialize.save(model, tmp_path / "m.npz", metadata={"data": {"name": name}})
    loads = []
    monkeypatch.setattr(cr.data, "load", lambda *a, **k: loads.append(a) or (_ for _ in ()))
    app = page_for(path)
    with caplog.at_level("WARNING", logger="chainrule.web"):
        body = TestClient(app).get("/api/model").json()
    assert loads == []
    assert "skipped" in body["evaluation"] and "confusion" not in body["evaluation"]
    assert any("not" in r.getMessage() for r in caplog.records)


def test_known_names_and_cache_folders_are_evaluated(model, tmp_path, monkeypatch):
    from chainrule.data import write_idx

    cache = tmp_path / "cache"
    monkeypatch.setenv("CHAINRULE_DATA", str(cache))
    folder = cache / "mine"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(folder / f"{split}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    for name, n in ((str(folder), 4), ("mnist-10k", 2000)):
        path = serialize.save(model, tmp_path / "m.npz", metadata={"data": {"name": name}})
        evaluation = TestClient(page_for(path)).get("/api/model").json()["evaluation"]
        assert evaluation["n"] == n and len(evaluation["confusion"]) == 10


# ---- the evaluation does not hold the model lock ------------------------------------------------
def test_predict_is_not_blocked_while_the_test_split_is_evaluated(model, monkeypatch):
    import chainrule.train

    started, release = threading.Event(), threading.Event()
    released = []
    real_predict = chainrule.train.predict

    def slow_predict(net, x, *args, **kwargs):
        started.set()
        released.append(release.wait(timeout=30))  # False: nobody could predict meanwhile
        return real_predict(net, x, *args, **kwargs)

    monkeypatch.setattr(chainrule.train, "predict", slow_predict)
    app = create_app(model, {"data": {"name": "mnist-10k"}})
    evaluation = threading.Thread(target=app.state.info.evaluation)
    evaluation.start()
    assert started.wait(timeout=60)
    answer = TestClient(app).post("/api/predict", content=stroke_png(280))
    release.set()
    evaluation.join(timeout=60)
    assert answer.status_code == 200
    assert released == [True]
    assert app.state.info.evaluation()["n"] == 2000


def test_the_server_returns_freed_image_memory_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_MMAP_THRESHOLD) is glibc's")
    assert server.return_freed_memory() is True
