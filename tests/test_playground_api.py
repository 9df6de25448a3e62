"""The Playground tab's engine and JSON API (`chainrule.web.playground`), through Starlette's
TestClient: data sets, training steps that lower the loss, bad settings answered 400 while the
visitor's network stays, the caps, NaN handling, bounded sessions, and the backprop view's
numbers checked against finite differences of the loss."""

import base64
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette ≥ 1.x prefers httpx2 but works with httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import chainrule as cr  # noqa: E402
from chainrule.web import playground as pgm  # noqa: E402
from chainrule.web.app import create_app  # noqa: E402
from chainrule.web.playground import (  # noqa: E402
    CAPS,
    DATASETS,
    XNOR_SETTINGS,
    Playground,
    PlaygroundError,
    PlaygroundStore,
    Settings,
    parse_settings,
)


@pytest.fixture(scope="module")
def app():
    """The real app; the digit model is an untrained stand-in: the playground needs none."""
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0))
    return create_app(model, {}, evaluate=False, capacity=3)


@pytest.fixture
def client(app):
    return TestClient(app)


def new(client, **settings):
    return client.post("/api/playground/new", json={"settings": settings})


def decode(packed: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed), dtype=np.uint8)


# ---- data sets and the network ------------------------------------------------------------------
@pytest.mark.parametrize("name", DATASETS)
def test_every_data_set_has_two_classes_inside_its_square(name):
    pg = Playground(Settings(dataset=name, noise=20))
    points = np.vstack([pg.train_points, pg.test_points])
    labels = np.concatenate([pg.train_y, pg.test_y]).ravel()
    lo, hi = pgm.domain(name)
    assert points.min() >= lo and points.max() <= hi
    assert set(np.unique(labels)) == {0.0, 1.0}
    if name == "xnor":  # seed 001's truth table, trained and tested on all four rows
        np.testing.assert_array_equal(pg.train_points, [[0, 0], [0, 1], [1, 0], [1, 1]])
        np.testing.assert_array_equal(pg.train_y.ravel(), [1, 0, 0, 1])
    else:
        assert len(pg.train_points) == len(pg.test_points) == pgm.POINTS // 2


def test_the_network_is_chainrules_dense_and_activation_layers():
    pg = Playground(Settings(hidden=(5, 3), activation="relu", features=("x1", "x2", "x1x2")))
    kinds = [type(m).__name__ for m in pg.model]
    assert kinds == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]
    assert [d.weight.shape for d in pg.dense_layers()] == [(5, 3), (3, 5), (1, 3)]
    np.testing.assert_allclose(pg.train_x[:, 2], pg.train_points[:, 0] * pg.train_points[:, 1])


def test_same_settings_same_data_and_weights():
    a, b = Playground(Settings(seed=7)), Playground(Settings(seed=7))
    np.testing.assert_array_equal(a.train_points, b.train_points)
    a.step(5)
    b.step(5)
    np.testing.assert_array_equal(a.dense_layers()[0].weight.data, b.dense_layers()[0].weight.data)


@pytest.mark.parametrize("name", ["xor", "circle", "gauss", "spiral"])
def test_training_lowers_the_test_loss(name):
    hidden = (16, 16) if name == "spiral" else (4, 4)
    pg = Playground(Settings(dataset=name, hidden=hidden))
    before = pg.frame()["test_loss"]
    pg.step(150)
    after = pg.frame()["test_loss"]
    assert pg.steps == 150
    assert after < before


def test_xnor_with_the_seeds_net_learns_the_truth_table():
    pg = Playground(XNOR_SETTINGS)
    assert [d.weight.shape for d in pg.dense_layers()] == [(3, 2), (1, 3)]
    pg.step(2000)
    assert pg.frame()["test_loss"] < 0.1


# ---- settings -------------------------------------------------------------------------------
def test_settings_from_text_as_in_a_url():
    s = parse_settings({"dataset": "spiral", "hidden": "16, 16", "lr": "0.01", "batch": "8",
                        "noise": "10", "features": "x1,x2,sin1", "seed": "3"})
    assert s.hidden == (16, 16) and s.lr == 0.01 and s.batch == 8 and s.seed == 3
    assert s.features == ("x1", "x2", "sin1")
    assert parse_settings(s.to_json()) == s  # what the page puts in its URL comes back
    assert parse_settings({"hidden": ""}).hidden == ()  # no hidden layer: logistic regression


@pytest.mark.parametrize("bad, words", [
    ({"hidden": "0"}, "1 to 32"),
    ({"hidden": "-3"}, "whole numbers"),
    ({"hidden": "4,,4"}, "whole numbers"),
    ({"hidden": "9999"}, "1 to 32"),
    ({"hidden": ",".join(["4"] * 50)}, "at most 6 hidden layers"),
    ({"lr": "abc"}, "learning rate must be a number"),
    ({"lr": "1e9"}, "at most 10"),
    ({"lr": "0"}, "more than 0"),
    ({"lr": "nan"}, "finite"),
    ({"batch": "0"}, "batch size"),
    ({"batch": "2.5"}, "whole number"),
    ({"dataset": "moons"}, "unknown dataset"),
    ({"activation": "swish"}, "unknown activation"),
    ({"features": []}, "at least one"),
    ({"wings": 2}, "unknown setting"),
])
def test_bad_settings_name_the_problem(bad, words):
    with pytest.raises(PlaygroundError, match=words):
        parse_settings(bad)


# ---- the HTTP API -------------------------------------------------------------------------------
def test_options_state_the_caps_and_defaults(client):
    r = client.get("/api/playground/options")
    assert r.status_code == 200
    body = r.json()
    assert body["datasets"] == ["xor", "circle", "gauss", "spiral", "xnor"]
    assert body["caps"]["width"] == CAPS["width"] and body["caps"]["layers"] == CAPS["layers"]
    assert body["defaults"]["hidden"] == "4,4"


def test_new_then_steps_lower_the_loss_and_send_compact_pictures(client):
    r = new(client, dataset="xor", hidden="4,4")
    assert r.status_code == 200
    body = r.json()
    assert body["sizes"] == [2, 4, 4, 1]
    assert len(body["train"]) == len(body["test"]) == 200
    first = body["frame"]
    assert first["step"] == 0 and len(decode(first["boundary"])) == pgm.GRID**2
    assert [len(layer) for layer in first["neurons"]] == [4, 4]
    assert len(decode(first["neurons"][0][0])) == pgm.NEURON_GRID**2
    frame = first
    for _ in range(5):
        r = client.post("/api/playground/step", json={"steps": 40})
        assert r.status_code == 200
        frame = r.json()["frame"]
    assert frame["step"] == 200
    assert frame["test_loss"] < first["test_loss"]
    assert not np.array_equal(decode(frame["boundary"]), decode(first["boundary"]))


@pytest.mark.parametrize("bad", ["0", "-3", "4,,4", "9999", ",".join(["4"] * 50)])
def test_bad_hidden_sizes_are_400_and_keep_the_last_good_network(client, bad):
    assert new(client, hidden="3").status_code == 200
    client.post("/api/playground/step", json={"steps": 7})
    r = new(client, hidden=bad)
    assert r.status_code == 400
    assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]
    r = client.post("/api/playground/step", json={"steps": 1})
    assert r.status_code == 200
    assert r.json()["frame"]["step"] == 8  # the same network, one step further
    assert len(r.json()["frame"]["neurons"][0]) == 3


@pytest.mark.parametrize("lr", ["abc", "1e9", 1e9, -1, None])
def test_bad_learning_rates_are_400(client, lr):
    r = new(client, lr=lr)
    assert r.status_code == 400 and "learning rate" in r.json()["error"]


@pytest.mark.parametrize("body", [{"steps": CAPS["steps"] + 1}, {"steps": -1}, {"steps": "x"},
                                  {"steps": 1, "explain": 10_000}, {"steps": 1, "explain": "a"}])
def test_step_requests_are_capped(client, body):
    assert new(client).status_code == 200
    r = client.post("/api/playground/step", json=body)
    assert r.status_code == 400 and "error" in r.json()


def test_bodies_that_are_not_json_objects_or_too_big_are_refused(client):
    r = client.post("/api/playground/new", content=b"{nope", headers={"content-type": "x"})
    assert r.status_code == 400 and "bad JSON" in r.json()["error"]
    r = client.post("/api/playground/new", json=[1, 2])
    assert r.status_code == 400
    r = client.post("/api/playground/new", json={"settings": {"seed": "1" * 20_000}})
    assert r.status_code == 413 and "kB" in r.json()["error"]
    r = client.post("/api/playground/new", json={}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403


def test_stepping_without_a_network_says_press_reset(app):
    fresh = TestClient(app)  # a new visitor: no cookie, no network
    r = fresh.post("/api/playground/step", json={"steps": 1})
    assert r.status_code == 404 and "Reset" in r.json()["error"]


def test_a_nan_loss_pauses_with_a_learning_rate_hint(client):
    r = new(client, dataset="spiral", hidden=",".join(["32"] * 6), activation="relu",
            optimizer="sgd", lr="10", features="x1,x2,x1sq,x2sq,x1x2")
    assert r.status_code == 200
    frame = None
    for _ in range(5):
        frame = client.post("/api/playground/step", json={"steps": 50}).json()["frame"]
        if frame["diverged"]:
            break
    assert frame["diverged"] and "learning rate is too large" in frame["message"]
    assert frame["test_loss"] is None  # JSON has no NaN
    steps = frame["step"]
    again = client.post("/api/playground/step", json={"steps": 50}).json()["frame"]
    assert again["step"] == steps  # paused: no more steps on a diverged network
    r = client.post("/api/playground/explain", json={"point": 0})
    assert r.status_code == 400 and "learning rate" in r.json()["error"]


def test_visitors_have_their_own_networks_and_the_store_is_bounded(app):
    a, b = TestClient(app), TestClient(app)
    assert new(a, hidden="2").status_code == 200
    assert new(b, hidden="5").status_code == 200
    a.post("/api/playground/step", json={"steps": 3})
    fa = a.post("/api/playground/step", json={"steps": 0}).json()["frame"]
    fb = b.post("/api/playground/step", json={"steps": 0}).json()["frame"]
    assert (fa["step"], len(fa["neurons"][0])) == (3, 2)
    assert (fb["step"], len(fb["neurons"][0])) == (0, 5)

    store = PlaygroundStore(capacity=2)
    for sid in ("a", "b", "c"):
        store.put(sid, Playground(Settings()))
    assert len(store) == 2 and store.get("a") is None and store.get("c") is not None
    biggest = Playground(Settings(hidden=(32,) * 6, features=tuple(pgm.FEATURES),
                                  batch=CAPS["batch"]))
    biggest.step(2)
    biggest.frame()  # a forward pass over the whole grid, then the caches shrink again
    assert biggest.nbytes() < 512 * 1024  # the bound docs/web.md states


# ---- the backprop view --------------------------------------------------------------------------
def point_loss(pg: Playground, index: int) -> float:
    x, y = pg.train_x[index:index + 1], pg.train_y[index:index + 1]
    return cr.BCEWithLogits()(pg.model(x), y)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_backprop_numbers_match_finite_differences(activation):
    pg = Playground(Settings(dataset="circle", hidden=(3, 2), activation=activation, seed=4))
    pg.step(20)
    view = pg.explain(5)
    dense = pg.dense_layers()
    assert [layer["layer"] for layer in view["layers"]] == [1, 2, 3]
    eps = 1e-6
    for layer, d in zip(view["layers"], dense):
        grad = np.array(layer["dL_dW"], dtype=float)
        assert grad.shape == d.weight.shape
        numeric = np.zeros_like(grad)
        for idx in np.ndindex(grad.shape):
            old = d.weight.data[idx]
            d.weight.data[idx] = old + eps
            up = point_loss(pg, 5)
            d.weight.data[idx] = old - eps
            down = point_loss(pg, 5)
            d.weight.data[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-8)
        # the shown pieces multiply out: ∂L/∂z = ∂L/∂a·σ′(z) and ∂L/∂W = ∂L/∂z·aᵀ
        dz = np.array(layer["dL_dz"])
        np.testing.assert_allclose(dz, np.array(layer["dL_da"]) * np.array(layer["sigma_prime"]),
                                   rtol=1e-4, atol=1e-9)
    for k, layer in enumerate(view["layers"]):
        below = np.array(view["x"] if k == 0 else view["layers"][k - 1]["a"])
        np.testing.assert_allclose(layer["dL_dW"], np.outer(layer["dL_dz"], below),
                                   rtol=1e-4, atol=1e-9)
    assert view["loss"] == pytest.approx(point_loss(pg, 5), rel=1e-9)
    out = view["layers"][-1]
    assert out["dL_dz"][0] == pytest.approx(view["p"] - view["y"], abs=1e-6)  # ŷ − y


def test_the_backprop_view_does_not_change_training():
    a, b = Playground(Settings(seed=2)), Playground(Settings(seed=2))
    a.step(3)
    b.step(3)
    a.explain(0)
    a.step(3)
    b.step(3)
    np.testing.assert_array_equal(a.dense_layers()[0].weight.data, b.dense_layers()[0].weight.data)


def test_step_with_explain_and_the_explain_endpoint(client):
    assert new(client, dataset="gauss", hidden="3").status_code == 200
    r = client.post("/api/playground/step", json={"steps": 1, "explain": 2})
    assert r.status_code == 200
    view = r.json()["explain"]
    assert view["point"] == 2 and len(view["layers"]) == 2
    assert len(view["layers"][0]["dL_dW"]) == 3
    r = client.post("/api/playground/explain", json={"point": 2})
    assert r.json()["explain"] == view  # no step in between: the same numbers
    r = client.post("/api/playground/explain", json={"point": -1})
    assert r.status_code == 400 and "training point" in r.json()["error"]
