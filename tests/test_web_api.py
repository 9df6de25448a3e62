"""The web server's JSON API (`chainrule serve`), through Starlette's TestClient: no browser,
no sockets. The numbers must be the library's own: predict = softmax(model(preprocess(png))),
teach = one SoftmaxCrossEntropy + backward + SGD step, as a hand-written step computes it."""

import base64
import copy
import io
import json
import tracemalloc
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette ≥ 1.x prefers httpx2 but works with httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from PIL import Image, ImageDraw  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import serialize  # noqa: E402
from chainrule.preprocess import load_digit_image  # noqa: E402
from chainrule.web import server  # noqa: E402
from chainrule.web.app import MAX_BODY, create_app  # noqa: E402
from chainrule.web.lab import check_label, rounded  # noqa: E402

HIDDEN = 32


@pytest.fixture(scope="module")
def model():
    """A small MLP, briefly trained (well under a second) so its answers mean something."""
    (x, y), _ = cr.data.load("mnist-10k")
    net = cr.Sequential(cr.Flatten(), cr.Dense(784, HIDDEN, seed=0), cr.ReLU(),
                        cr.Dense(HIDDEN, 10, seed=1))
    opt = cr.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    cr.fit(net, cr.SoftmaxCrossEntropy(), opt, x[:3000], y[:3000], epochs=1, progress=False)
    net.eval()
    return net


@pytest.fixture
def app(model):
    metadata = {"history": {"loss": [1.0, 0.5], "accuracy": [0.7, float("nan")]},
                "metrics": {"test_accuracy": 0.9}, "data": {"name": "mnist-10k"}}
    return create_app(copy.deepcopy(model), metadata, source="model.npz", capacity=3)


@pytest.fixture
def client(app):
    return TestClient(app)


def drawing(points, size=280, width=18, ink="white", paper="black", fmt="PNG") -> bytes:
    """A canvas-like picture: a stroke through `points` (fractions of the side)."""
    img = Image.new("RGB", (size, size), paper)
    ImageDraw.Draw(img).line([(x * size, y * size) for x, y in points], fill=ink, width=width,
                             joint="curve")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


ONE = [(0.5, 0.15), (0.48, 0.85)]
SEVEN = [(0.28, 0.2), (0.72, 0.2), (0.42, 0.85)]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def library_probabilities(model, png: bytes) -> np.ndarray:
    logits = cr.predict(model, load_digit_image(png)[None]).astype(np.float64)
    return cr.activations.softmax(logits)[0]


# ---- the page ---------------------------------------------------------------------------------
def test_page_and_assets_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="pad"' in page.text and "/static/main.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere (no CDN)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.cookies.get("chainrule_session")
    for name in ("main", "api", "dom", "draw", "network", "teach", "charts", "playground"):
        js = client.get(f"/static/{name}.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"], name
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    for path in ("/static/../lab.py", "/static/lab.py", "/static/%2e%2e%2fapp.py", "/nope"):
        r = client.get(path)
        assert r.status_code == 404 and "error" in r.json(), path


# ---- predict ----------------------------------------------------------------------------------
def test_predict_png_bytes_answers_the_api_shape(client, model):
    png = drawing(ONE)
    r = client.post("/api/predict", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    probs = np.array(body["probabilities"])
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-6
    assert body["digit"] == int(probs.argmax())
    assert np.array(body["input"]).shape == (28, 28)
    assert len(body["hidden"]) == HIDDEN and all(v >= 0 for v in body["hidden"])  # ReLU
    assert [layer["size"] for layer in body["layers"]] == [HIDDEN, 10]
    np.testing.assert_allclose(probs, library_probabilities(model, png), atol=1e-6)
    np.testing.assert_allclose(body["input"], load_digit_image(png), atol=1e-3)


def test_predict_accepts_data_urls_jpeg_and_either_polarity(client, model):
    png = drawing(SEVEN)
    expected = library_probabilities(model, png)
    as_json = client.post("/api/predict", json={"image": data_url(png)}).json()
    np.testing.assert_allclose(as_json["probabilities"], expected, atol=1e-6)
    dark_on_light = drawing(SEVEN, ink="black", paper="white")
    inverted = client.post("/api/predict", content=dark_on_light).json()
    np.testing.assert_allclose(inverted["probabilities"], expected, atol=1e-6)
    jpeg = client.post("/api/predict", content=drawing(SEVEN, fmt="JPEG"))
    assert jpeg.status_code == 200 and jpeg.json()["digit"] == as_json["digit"]


# ---- teach ------------------------------------------------------------------------------------
def test_teach_is_one_library_sgd_step(client, model):
    png, label, lr = drawing(SEVEN), 3, 0.01
    r = client.post("/api/teach", json={"image": data_url(png), "label": label, "lr": lr})
    assert r.status_code == 200, r.text
    body = r.json()

    # the same step by hand, with the library's own pieces
    net = copy.deepcopy(model).train()  # eval mode keeps nothing for backward
    net.zero_grad()
    x = load_digit_image(png)[None]
    loss_fn = cr.SoftmaxCrossEntropy()
    loss_before = loss_fn(net(x), np.array([label]))
    p_before = loss_fn.probabilities[0]
    grad = loss_fn.backward()
    net.backward(grad)
    grads = {name: p.grad.copy() for name, p in net.named_parameters()}
    cr.optim.SGD(net.parameters(), lr=lr).step()
    loss_after = loss_fn(net(x), np.array([label]))

    assert body["loss_before"] == pytest.approx(loss_before, rel=1e-5)
    assert body["loss_after"] == pytest.approx(loss_after, rel=1e-4)
    assert body["loss_after"] < body["loss_before"]
    onehot = np.eye(10)[label]
    np.testing.assert_allclose(body["output_grad"], p_before - onehot, atol=1e-6)
    np.testing.assert_allclose(body["probabilities_before"], p_before, atol=1e-6)
    assert body["probabilities_after"][label] > body["probabilities_before"][label]

    first, second = body["weight_grads"]
    assert first["name"] == "1.weight" and first["kind"] == "tiles"
    assert first["shape"] == [HIDDEN, 784] and len(first["tiles"]) >= 10
    for tile in first["tiles"]:
        row = grads["1.weight"][tile["unit"]].reshape(28, 28)
        np.testing.assert_allclose(tile["grad"], row, atol=1e-3 * np.abs(row).max() + 1e-9)
        assert np.array(tile["weight_after"]).shape == (28, 28)
    assert second["name"] == "3.weight" and second["kind"] == "matrix"
    g2 = grads["3.weight"]
    np.testing.assert_allclose(second["grad"], g2, atol=1e-3 * np.abs(g2).max())
    assert second["norm"] == pytest.approx(np.linalg.norm(g2), rel=1e-4)


def test_teaching_changes_only_this_visitors_copy_and_reset_restores(app, model):
    png = drawing(SEVEN)
    alice, bob = TestClient(app), TestClient(app)
    original = alice.post("/api/predict", content=png).json()["probabilities"]
    taught = alice.post("/api/teach", json={"image": data_url(png), "label": 2}).json()
    after = alice.post("/api/predict", content=png).json()
    assert after["taught"] is True
    np.testing.assert_allclose(after["probabilities"], taught["probabilities_after"], atol=1e-6)
    # a second step starts where the first ended
    again = alice.post("/api/teach", json={"image": data_url(png), "label": 2}).json()
    assert again["loss_before"] == pytest.approx(taught["loss_after"], rel=1e-5)
    # another visitor and the shared model are untouched
    other = bob.post("/api/predict", content=png).json()
    assert other["taught"] is False
    np.testing.assert_allclose(other["probabilities"], original, atol=1e-7)
    np.testing.assert_allclose(original, library_probabilities(model, png), atol=1e-6)
    assert alice.post("/api/reset").json() == {"reset": True, "had_copy": True}
    np.testing.assert_allclose(alice.post("/api/predict", content=png).json()["probabilities"],
                               original, atol=1e-7)


def test_teach_works_for_a_cnn_with_batchnorm_and_dropout():
    """Teaching runs the layers in training mode (MaxPool keeps its argmax) but leaves
    Dropout off and BatchNorm on its running statistics, so it matches what predict shows."""
    from chainrule import conv, regularization

    net = cr.Sequential(cr.Reshape((1, 28, 28)), conv.Conv2D(1, 4, 3, seed=0),
                        conv.BatchNorm2d(4), cr.ReLU(), conv.MaxPool2D(2), cr.Flatten(),
                        regularization.Dropout(0.5), cr.Dense(4 * 13 * 13, 10, seed=1))
    client = TestClient(create_app(net.eval(), evaluate=False))
    png = drawing(ONE)
    shown = client.post("/api/predict", content=png).json()
    body = client.post("/api/teach", json={"image": data_url(png), "label": 3}).json()
    np.testing.assert_allclose(body["probabilities_before"], shown["probabilities"], atol=1e-6)
    assert body["loss_after"] < body["loss_before"]
    kinds = [(w["name"], w["kind"]) for w in body["weight_grads"]]
    assert kinds == [("1.weight", "kernels"), ("7.weight", "matrix")]
    again = client.post("/api/predict", content=png).json()["probabilities"]
    np.testing.assert_allclose(again, body["probabilities_after"], atol=1e-6)


def test_sessions_are_bounded_least_recently_used_first(app):
    png = data_url(drawing(ONE))
    visitors = [TestClient(app) for _ in range(5)]
    for v in visitors:
        v.get("/")  # as a browser does: the page gives the visitor its cookie
        assert v.post("/api/teach", json={"image": png, "label": 4}).status_code == 200
    assert len(app.state.sessions) == 3  # capacity
    assert visitors[0].post("/api/predict", json={"image": png}).json()["taught"] is False
    assert visitors[-1].post("/api/predict", json={"image": png}).json()["taught"] is True


def test_cookieless_teaching_never_evicts_a_visitor(app):
    png = data_url(drawing(ONE))
    alice = TestClient(app)
    alice.get("/")
    taught = alice.post("/api/teach", json={"image": png, "label": 4}).json()
    first = None
    for _ in range(2 * app.state.sessions.capacity):
        body = TestClient(app).post("/api/teach", json={"image": png, "label": 4}).json()
        first = first or body
        # each one-off step starts from the loaded model, not from the previous one-off step
        assert body["loss_before"] == pytest.approx(first["loss_before"], rel=1e-6)
    assert len(app.state.sessions) == 1
    assert alice.post("/api/predict", json={"image": png}).json()["taught"] is True
    assert first["loss_before"] == pytest.approx(taught["loss_before"], rel=1e-6)


def forged_ids() -> list[str]:
    """Ids a script could make up: today's shape with a wrong signature, the old unsigned shape."""
    import secrets

    from chainrule.web.session import new_session_id

    real = new_session_id()
    token, signature = real.split(".")
    return [f"{secrets.token_urlsafe(24)}.{signature}", f"{token}.{signature[::-1]}",
            secrets.token_urlsafe(24), "A" * 32 + "." + "B" * 43]


def test_forged_cookies_take_no_place_in_the_store(app):
    from chainrule.web.session import COOKIE

    png = data_url(drawing(ONE))
    alice = TestClient(app)
    alice.get("/")
    alice.post("/api/teach", json={"image": png, "label": 4})
    for forged in forged_ids() * app.state.sessions.capacity:
        forger = TestClient(app, cookies={COOKIE: forged})
        assert forger.post("/api/teach", json={"image": png, "label": 4}).status_code == 200
    assert len(app.state.sessions) == 1  # only Alice's, issued by the server
    assert alice.post("/api/predict", json={"image": png}).json()["taught"] is True


def test_only_ids_this_server_signed_are_valid():
    from chainrule.web.session import new_session_id, valid_session_id

    issued = new_session_id()
    assert valid_session_id(issued) and issued != new_session_id()
    assert not any(valid_session_id(f) for f in forged_ids())
    assert not valid_session_id(None) and not valid_session_id("")


def test_a_visitors_copy_is_built_from_the_state_dict_without_caches(model):
    from chainrule.web.lab import DigitLab

    base = DigitLab(copy.deepcopy(model))
    dense = base.model.layers[1]
    dense._x = np.ones((4096, 784), np.float32)  # a 12.8 MB cache left by an earlier forward
    tracemalloc.start()
    try:
        own = base.copy()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense._x.nbytes / 4  # the cache was not copied
    assert type(own.model) is type(base.model) and own.model is not base.model
    for (name, mine), (_, theirs) in zip(own.model.named_parameters(),
                                         base.model.named_parameters(), strict=True):
        assert mine.data is not theirs.data, name
        np.testing.assert_array_equal(mine.data, theirs.data)
        assert mine.data.dtype == theirs.data.dtype


# ---- bad input: a clear JSON error, and the server keeps serving ---------------------------------
def too_big_stream():
    chunk = b"\0" * 65536
    for _ in range(MAX_BODY // len(chunk) + 2):
        yield chunk


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (280, 280), 0).save(buf, format="PNG")
    return buf.getvalue()


def huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (6000, 8), 0).save(buf, format="PNG")
    return buf.getvalue()


BAD_REQUESTS = [
    ("post", "/api/predict", {"content": b"hello, not an image"}, 400, "not an image"),
    ("post", "/api/predict", {"content": b""}, 400, "empty"),
    ("post", "/api/predict", {"content": b"\x89PNG\r\n\x1a\n" + b"\0" * 40}, 400, "image"),
    ("post", "/api/predict", {"content": blank_png()}, 400, "no ink"),
    ("post", "/api/predict", {"content": huge_png()}, 400, "too large"),
    ("post", "/api/predict", {"content": b"{not json", "headers": {"content-type":
                                                                   "application/json"}}, 400,
     "bad JSON"),
    ("post", "/api/predict", {"json": [1, 2]}, 400, "expected an object"),
    ("post", "/api/predict", {"json": {"image": "data:image/png;base64,@@@"}}, 400, "base64"),
    ("post", "/api/predict", {"json": {"image": "data:text/html;base64,PGI+"}}, 400, "data URL"),
    ("post", "/api/predict", {"json": {"image": "/etc/passwd"}}, 400, ""),
    ("post", "/api/predict", {"json": {"picture": "x"}}, 400, "missing"),
    ("post", "/api/predict", {"content": b"\0" * (MAX_BODY + 1)}, 413, "2 MB"),
    ("post", "/api/predict", {"content": too_big_stream()}, 413, "2 MB"),
    ("post", "/api/teach", {"json": {"label": 3}}, 400, "image"),
    ("post", "/api/teach", {"content": b"\0" * (MAX_BODY + 10)}, 413, "2 MB"),
    ("post", "/api/teach", {"content": too_big_stream()}, 413, "2 MB"),
    ("get", "/api/predict", {}, 405, ""),
    ("get", "/api/nothing", {}, 404, ""),
]
BAD_LABELS = [None, 10, -1, 3.5, True, "seven", [3], {"d": 3}]


@pytest.mark.parametrize("method,path,kwargs,status,words", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1]} {r[3]} {r[4]}" for r in BAD_REQUESTS])
def test_bad_request_gets_a_json_error_and_the_server_keeps_serving(
        client, method, path, kwargs, status, words):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert isinstance(error, str) and words.lower() in error.lower()
    assert "Traceback" not in error and "/work" not in error
    good = client.post("/api/predict", content=drawing(ONE))
    assert good.status_code == 200 and len(good.json()["probabilities"]) == 10


@pytest.mark.parametrize("label", BAD_LABELS, ids=repr)
def test_bad_label_or_step_size_is_400(client, label):
    image = data_url(drawing(ONE))
    r = client.post("/api/teach", json={"image": image, "label": label})
    assert r.status_code == 400 and "label" in r.json()["error"]
    for lr in (0, -1, 1e9, "big", None):
        r = client.post("/api/teach", json={"image": image, "label": 1, "lr": lr})
        assert r.status_code == 400 and "lr" in r.json()["error"]
    assert client.post("/api/teach", json={"image": image, "label": 1}).status_code == 200


def test_check_label_and_rounding():
    assert check_label(7) == 7 and check_label("7") == 7 and check_label(np.int64(2)) == 2
    assert rounded([1.23456789, 0.000012]) == [1.235, 0.0]
    assert rounded([[0.0, 0.0]]) == [[0.0, 0.0]]
    assert rounded([1e-7, -3.3333e-7]) == [1e-7, -3.333e-7]


def test_cross_site_posts_and_foreign_hosts_are_refused(model):
    app = create_app(copy.deepcopy(model), allowed_hosts=["127.0.0.1", "localhost"])
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    png = drawing(ONE)
    assert local.post("/api/predict", content=png).status_code == 200
    same = local.post("/api/predict", content=png, headers={"origin": "http://127.0.0.1:8000"})
    assert same.status_code == 200
    cross = local.post("/api/predict", content=png, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
    rebound = TestClient(app, base_url="http://evil.example")
    assert rebound.get("/").status_code == 400
    assert local.get("/").status_code == 200


# ---- the model tab ------------------------------------------------------------------------------
def test_model_info_has_architecture_history_and_confusion(client):
    r = client.get("/api/model")
    assert r.status_code == 200
    info = r.json()
    assert [row["type"] for row in info["architecture"]] == ["Flatten", "Dense", "ReLU", "Dense"]
    assert info["parameters"] == 784 * HIDDEN + HIDDEN + HIDDEN * 10 + 10
    assert info["history"]["loss"] == [1.0, 0.5]
    assert info["history"]["accuracy"] == [0.7, None]  # NaN is not JSON
    assert info["metrics"]["test_accuracy"] == 0.9
    ev = info["evaluation"]
    cm = np.array(ev["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == ev["n"] == 2000
    assert ev["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert ev["accuracy"] > 0.5
    json.dumps(info, allow_nan=False)


# ---- `chainrule serve` ------------------------------------------------------------------------
def saved_model(model, tmp_path):
    return str(serialize.save(model, tmp_path / "model.npz",
                                 metadata={"class_names": [str(i) for i in range(10)]}))


@pytest.fixture
def no_run(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: calls.append(sockets))
    return calls


def test_serve_prints_the_address_and_runs_uvicorn(model, tmp_path, capsys, no_run):
    assert server.main([saved_model(model, tmp_path), "--port", "0"]) == 0
    out = capsys.readouterr()
    assert "http://127.0.0.1:" in out.out and "warning" not in out.err
    assert len(no_run) == 1 and no_run[0][0].fileno() == -1  # the socket was closed afterwards


def test_serve_warns_when_not_on_loopback(model, tmp_path, capsys, no_run):
    assert server.main([saved_model(model, tmp_path), "--host", "0.0.0.0", "--port", "0"]) == 0
    assert "warning" in capsys.readouterr().err


def test_serve_errors_are_one_line_exit_2(model, tmp_path, capsys, no_run, monkeypatch):
    assert server.main([str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.npz" in err
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    assert server.main([str(tmp_path / "fake.npz")]) == 2
    assert server.main(["--port", "http"]) == 2
    taken = server.listen("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        taken.listen()
        assert server.main([saved_model(model, tmp_path), "--port", port]) == 2
        assert "cannot listen" in capsys.readouterr().err
    finally:
        taken.close()
    assert not no_run


def test_serve_without_web_extra_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    assert server.main([]) == 2
    err = capsys.readouterr().err
    assert 'pip install "chainrule[web]"' in err and err.count("\n") == 1


def test_cli_serve_reaches_the_server(tmp_path, capsys):
    from chainrule.cli import main

    assert main(["serve", str(tmp_path / "nothing.npz")]) == 2
    assert "nothing.npz" in capsys.readouterr().err


def test_newest_run_is_used_when_no_model_is_given(model, tmp_path, monkeypatch, capsys):
    old = serialize.save(model, tmp_path / "runs" / "a" / "model.npz")
    new = serialize.save(model, tmp_path / "runs" / "b" / "model.npz")
    import os

    os.utime(old, (1, 1))
    monkeypatch.chdir(tmp_path)
    assert server.newest_run_model() == new.relative_to(tmp_path)
    server.build_app(None)
    assert "runs/b/model.npz" in capsys.readouterr().out


def test_default_model_is_trained_and_saved_as_a_run(tmp_path, capsys):
    path = server.train_default(epochs=1, runs=tmp_path / "runs")
    out = capsys.readouterr().out
    assert "training the default MLP" in out and "test accuracy" in out
    ckpt = serialize.load_checkpoint(path)
    assert ckpt.metadata["history"]["loss"] and ckpt.metadata["metrics"]["test_accuracy"] > 0.8


@pytest.mark.parametrize("training", ["x", 3, ["a"], {"config": "x"}, {"config": [1]}])
def test_model_info_ignores_a_malformed_training_field(model, training):
    metadata = {"training": training, "metrics": "x", "history": [1], "data": 7}
    app = create_app(copy.deepcopy(model), metadata, source="m.npz", evaluate=False)
    r = TestClient(app).get("/api/model")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["training"] == {} and body["metrics"] == {} and body["data"] == {}
