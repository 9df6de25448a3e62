"""The web page offers the loaded model as .onnx and .safetensors downloads."""

import warnings

import numpy as np
import pytest

import chainrule as cr

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette ≥ 1.x prefers httpx2 but works with httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from chainrule.web.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return cr.models.cnn(seed=0, channels=(4,), hidden=8, batchnorm=True).eval()


@pytest.fixture(scope="module")
def client(model):
    app = create_app(model, {"class_names": list("0123456789")}, evaluate=False)
    with TestClient(app) as c:
        yield c


def test_page_links_the_downloads(client):
    html = client.get("/").text
    assert 'href="/api/model.onnx"' in html and 'href="/api/model.safetensors"' in html


def test_onnx_download_runs_in_onnxruntime(client, model, tmp_path, rng):
    ort = pytest.importorskip("onnxruntime")
    r = client.get("/api/model.onnx")
    assert r.status_code == 200, r.text
    assert 'filename="model.onnx"' in r.headers["content-disposition"]
    session = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    x = rng.random((2, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), atol=2e-5)


def test_safetensors_download_rebuilds_the_model(client, model, tmp_path, rng):
    pytest.importorskip("safetensors")
    r = client.get("/api/model.safetensors")
    assert r.status_code == 200, r.text
    path = tmp_path / "downloaded.safetensors"
    path.write_bytes(r.content)
    ckpt = cr.load_checkpoint(path)
    x = rng.random((2, 28, 28), dtype=np.float32)
    assert np.array_equal(ckpt.model.eval()(x), model(x))
    assert ckpt.metadata["class_names"] == list("0123456789")


def test_missing_package_is_a_json_error(model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    r = TestClient(create_app(model, {}, evaluate=False)).get("/api/model.onnx")
    assert r.status_code == 501 and "pip install chainrule[onnx]" in r.json()["error"]


def test_each_download_is_built_once_and_then_needs_no_model_lock(model, monkeypatch):
    """Building an export runs the model under its lock; later downloads are served from
    memory, so they never wait for (or hold up) a prediction."""
    import threading

    from chainrule import interop

    pytest.importorskip("onnx")
    builds = []
    real = interop.onnx_bytes
    monkeypatch.setattr(interop, "onnx_bytes", lambda m: builds.append(1) or real(m))
    app = create_app(model, {}, evaluate=False)
    first = TestClient(app).get("/api/model.onnx").content
    with app.state.lab.lock:  # a prediction in progress: a cached download does not wait
        answers = []
        worker = threading.Thread(
            target=lambda: answers.append(TestClient(app).get("/api/model.onnx").content))
        worker.start()
        worker.join(timeout=60)
    assert answers == [first] and len(builds) == 1
