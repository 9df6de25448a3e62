"""The Playground tab's engine and JSON API (`chainrule.web.playground`), through Starlette's
TestClient: data sets, training steps that lower the loss, bad settings answered 400 while the
visitor's network stays, the caps, NaN handling, bounded sessions, and the backprop view's
numbers checked against finite differences of the loss. Playground II: regression, 3 and 4
classes, dropout, a visitor's own points and CSV (with hostile inputs), the exported script and
the safetensors download."""

import base64
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

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
    CLASSIFICATION_SETS,
    REGRESSION_SETS,
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


def visitor(app) -> TestClient:
    """A browser-like client: the page gives the visitor its signed cookie first."""
    client = TestClient(app)
    client.get("/")
    return client


@pytest.fixture
def client(app):
    return visitor(app)


def new(client, **settings):
    return client.post("/api/playground/new", json={"settings": settings})


def decode(packed: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed), dtype=np.uint8)


# ---- data sets and the network ------------------------------------------------------------------
CLASSES_OF = {"spiral3": {0, 1, 2}, "blobs4": {0, 1, 2, 3}}


@pytest.mark.parametrize("name", [d for d in CLASSIFICATION_SETS if d != "custom"])
def test_every_classification_set_has_its_classes_inside_its_square(name):
    pg = Playground(Settings(dataset=name, noise=20))
    points = np.vstack([pg.train_points, pg.test_points])
    labels = np.concatenate([pg.train_t, pg.test_t])
    lo, hi = pgm.domain(name)
    assert points.min() >= lo and points.max() <= hi
    assert set(np.unique(labels).tolist()) == CLASSES_OF.get(name, {0, 1})
    if name == "xnor":  # seed 001's truth table, trained and tested on all four rows
        np.testing.assert_array_equal(pg.train_points, [[0, 0], [0, 1], [1, 0], [1, 1]])
        np.testing.assert_array_equal(pg.train_t, [1, 0, 0, 1])
    else:
        assert abs(len(pg.train_points) - len(pg.test_points)) <= 1
        assert len(points) >= pgm.POINTS - 2


@pytest.mark.parametrize("name", [d for d in REGRESSION_SETS if d != "custom"])
def test_regression_sets_have_real_targets_in_the_square(name):
    pg = Playground(Settings(problem="regression", dataset=name))
    points = np.vstack([pg.train_points, pg.test_points])
    targets = np.concatenate([pg.train_t, pg.test_t])
    assert points.min() >= -1 and points.max() <= 1
    assert targets.min() >= -1 and targets.max() <= 1 and len(np.unique(targets)) > 100
    if name == "plane":
        np.testing.assert_allclose(targets, points.sum(axis=1) / 2)
    assert pg.kind == "regression" and pg.describe()["sizes"][-1] == 1


def test_the_settings_know_every_feature_and_the_script_computes_each_as_the_server():
    from chainrule.web.playground_settings import FEATURE_NAMES

    assert tuple(pgm.FEATURES) == FEATURE_NAMES
    points = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    x1, x2 = points[:, 0], points[:, 1]  # the names the exported script's expressions use
    for name, (_, function, source) in pgm.FEATURES.items():
        expected = function(x1, x2)
        computed = {"x1": x1, "x2": x2, "x1 * x1": x1 * x1, "x2 * x2": x2 * x2,
                    "x1 * x2": x1 * x2, "np.sin(np.pi * x1)": np.sin(np.pi * x1),
                    "np.sin(np.pi * x2)": np.sin(np.pi * x2)}[source]
        np.testing.assert_array_equal(computed, expected, err_msg=name)


def test_custom_starts_empty_and_trains_on_nothing():
    pg = Playground(Settings(dataset="custom"))
    assert len(pg.data) == 0 and pg.describe()["points"] == 0
    pg.step(5)
    frame = pg.frame()
    assert pg.steps == 0 and frame["test_loss"] is None and frame["train_loss"] is None


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
    assert body["datasets"]["classification"] == ["xor", "circle", "gauss", "spiral", "xnor",
                                                  "spiral3", "blobs4", "custom"]
    assert body["datasets"]["regression"] == ["plane", "multigauss", "custom"]
    assert body["dropouts"] == [0, 0.1, 0.25, 0.5] and body["caps"]["points"] == 2000
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


def test_cookieless_and_forged_requests_evict_no_visitor(app):
    from chainrule.web.session import COOKIE

    alice = visitor(app)
    assert new(alice, hidden="3").status_code == 200
    alice.post("/api/playground/step", json={"steps": 2})
    forged = ["A" * 32, "A" * 32 + "." + "B" * 43]
    strangers = [TestClient(app) for _ in range(4)]
    strangers += [TestClient(app, cookies={COOKIE: f}) for f in forged * 2]
    for stranger in strangers:
        assert new(stranger, hidden="2").status_code == 200  # answered, but not kept
        r = stranger.post("/api/playground/step", json={"steps": 1})
        assert r.status_code == 404 and "Reset" in r.json()["error"]
    for stranger in [TestClient(app) for _ in range(4)]:  # nor is a cookieless CSV
        assert stranger.post("/api/playground/csv", json={"csv": "0,0,1"}).status_code == 200
        r = stranger.post("/api/playground/points", json={"add": [0, 0, 1]})
        assert r.status_code == 404
    frame = alice.post("/api/playground/step", json={"steps": 0}).json()["frame"]
    assert (frame["step"], len(frame["neurons"][0])) == (2, 3)


def test_visitors_have_their_own_networks_and_the_store_is_bounded(app):
    a, b = visitor(app), visitor(app)
    assert new(a, hidden="2").status_code == 200
    assert new(b, hidden="5").status_code == 200
    a.post("/api/playground/step", json={"steps": 3})
    fa = a.post("/api/playground/step", json={"steps": 0}).json()["frame"]
    fb = b.post("/api/playground/step", json={"steps": 0}).json()["frame"]
    assert (fa["step"], len(fa["neurons"][0])) == (3, 2)
    assert (fb["step"], len(fb["neurons"][0])) == (0, 5)

    store = PlaygroundStore(capacity=2)
    for sid in ("a", "b", "c"):
        store.visitor(sid).playground = Playground(Settings())
    assert len(store) == 2 and store.get("a") is None and store.get("c") is not None
    biggest = Playground(Settings(hidden=(32,) * 6, features=tuple(pgm.FEATURES),
                                  batch=CAPS["batch"]))
    biggest.step(2)
    biggest.frame()  # a forward pass over the whole grid, then the caches shrink again
    assert biggest.nbytes() < 512 * 1024  # the bound docs/web.md states


# ---- the backprop view --------------------------------------------------------------------------
def point_loss(pg: Playground, index: int) -> float:
    """Training point `index`'s loss from the network in eval mode (no dropout)."""
    x, y = pg.train_x[index:index + 1], pg.train_y[index:index + 1]
    loss = {"binary": cr.BCEWithLogits, "softmax": cr.SoftmaxCrossEntropy, "regression": cr.MSE}
    return loss[pg.kind]()(pg.model.eval()(x), y)


@pytest.mark.parametrize("activation, problem, dataset", [
    ("tanh", "classification", "circle"), ("relu", "classification", "circle"),
    ("sigmoid", "classification", "circle"), ("tanh", "classification", "spiral3"),
    ("relu", "classification", "blobs4"), ("tanh", "regression", "multigauss"),
])
def test_backprop_numbers_match_finite_differences(activation, problem, dataset):
    pg = Playground(Settings(problem=problem, dataset=dataset, hidden=(3, 2),
                             activation=activation, seed=4, dropout=0.25))
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
        if layer["dL_da"] is None:  # the softmax output: no elementwise σ′
            continue
        np.testing.assert_allclose(dz, np.array(layer["dL_da"]) * np.array(layer["sigma_prime"]),
                                   rtol=1e-4, atol=1e-9)
    for k, layer in enumerate(view["layers"]):
        below = np.array(view["x"] if k == 0 else view["layers"][k - 1]["a"])
        np.testing.assert_allclose(layer["dL_dW"], np.outer(layer["dL_dz"], below),
                                   rtol=1e-4, atol=1e-9)
    assert view["loss"] == pytest.approx(point_loss(pg, 5), rel=1e-9)
    out = view["layers"][-1]
    if pg.kind == "binary":
        assert out["dL_dz"][0] == pytest.approx(view["p"] - view["y"], abs=1e-6)  # ŷ − y
    elif pg.kind == "softmax":  # p − y, y one-hot
        one_hot = np.eye(len(view["p"]))[view["y"]]
        np.testing.assert_allclose(out["dL_dz"], np.array(view["p"]) - one_hot, atol=1e-6)
        assert sum(view["p"]) == pytest.approx(1, abs=1e-5)
        assert out["dL_da"] is None and out["sigma_prime"] is None
    else:  # squared error: 2(ŷ − y)
        assert out["dL_dz"][0] == pytest.approx(2 * (view["p"] - view["y"]), rel=1e-5)


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


# ---- Playground II: more classes, regression, dropout -------------------------------------------
def test_three_classes_train_a_softmax_whose_test_loss_is_the_mean_cross_entropy():
    pg = Playground(Settings(dataset="spiral3", hidden=(16, 16), lr=0.03))
    assert pg.kind == "softmax" and pg.describe()["sizes"] == [2, 16, 16, 3]
    before = pg.test_loss()
    pg.step(300)
    frame = pg.frame()
    z = pg.model(pg.test_x)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    mean_ce = -log_p[np.arange(len(z)), pg.test_t.astype(int)].mean()
    assert frame["test_loss"] == pytest.approx(mean_ce, rel=1e-12)
    assert frame["test_loss"] < before
    winners = np.frombuffer(base64.b64decode(frame["boundary_class"]), dtype=np.uint8)
    assert len(winners) == pgm.GRID**2 and set(np.unique(winners)) == {0, 1, 2}
    assert len(frame["outputs"]) == 3


@pytest.mark.parametrize("name", ["plane", "multigauss"])
def test_regression_trains_a_linear_output_on_squared_error(name):
    pg = Playground(Settings(problem="regression", dataset=name, hidden=(8, 8), lr=0.03))
    before = pg.test_loss()
    pg.step(300)
    after = pg.frame()["test_loss"]
    mse = np.mean((pg.model(pg.test_x)[:, 0] - pg.test_t) ** 2)
    assert after == pytest.approx(mse, rel=1e-12) and after < before / 2
    assert pg.describe()["output"] == "regression"


def test_dropout_sits_after_each_hidden_layer_and_only_acts_in_training():
    pg = Playground(Settings(hidden=(8, 8), dropout=0.5))
    assert [type(m).__name__ for m in pg.model] == ["Dense", "Tanh", "Dropout", "Dense",
                                                    "Tanh", "Dropout", "Dense"]
    assert pg.frame()["test_loss"] == pg.frame()["test_loss"]  # evaluation: no random mask
    plain = Playground(Settings(hidden=(8, 8)))
    np.testing.assert_array_equal(pg.dense_layers()[0].weight.data,
                                  plain.dense_layers()[0].weight.data)  # same start
    pg.step(20)
    plain.step(20)
    assert not np.allclose(pg.dense_layers()[0].weight.data, plain.dense_layers()[0].weight.data)


@pytest.mark.parametrize("bad, words", [
    ({"dropout": "0.3"}, "dropout must be one of 0, 0.1, 0.25, 0.5"),
    ({"dropout": "nan"}, "finite"),
    ({"problem": "ranking"}, "unknown problem"),
    ({"problem": "regression", "dataset": "xor"}, "not a regression data set"),
    ({"dataset": "plane"}, "not a classification data set"),
])
def test_bad_new_settings_name_the_problem(bad, words):
    with pytest.raises(PlaygroundError, match=words):
        parse_settings(bad)


def test_new_settings_round_trip_through_the_url_form():
    s = parse_settings({"problem": "regression", "dataset": "multigauss", "dropout": "0.25"})
    assert (s.problem, s.dataset, s.dropout) == ("regression", "multigauss", 0.25)
    assert parse_settings({k: str(v) for k, v in s.to_json().items()
                           if k != "features"}) == s


# ---- a visitor's own points ---------------------------------------------------------------------
def points(client, body):
    return client.post("/api/playground/points", json=body)


def test_clicked_points_make_the_custom_set_which_stays_with_the_visitor(app):
    a, b = visitor(app), visitor(app)
    body = new(a, dataset="custom").json()
    assert body["points"] == 0 and body["train"] == [] and body["frame"]["test_loss"] is None
    for x, label in ((-0.5, 0), (0.5, 1), (0.1, 1)):
        r = points(a, {"add": [x, 0.2, label]})
        assert r.status_code == 200
    body = r.json()
    assert body["points"] == 3 and not body["rebuilt"] and body["sizes"][-1] == 1
    assert body["frame"]["test_loss"] is not None  # a few points: train and test on all
    r = points(a, {"add": [0.0, -0.9, 2]})  # a third class: softmax over 3 outputs
    assert r.json()["rebuilt"] and r.json()["sizes"][-1] == 3 and r.json()["output"] == "softmax"
    r = points(a, {"remove": [0.45, 0.25]})  # the nearest is (0.5, 0.2)
    assert r.json()["points"] == 3
    assert sorted(p[0] for p in r.json()["train"]) == [-0.5, 0.0, 0.1]
    assert new(a, dataset="xor").json()["points"] == 400
    assert new(a, dataset="custom").json()["points"] == 3  # back: the visitor's own points
    assert new(b, dataset="custom").json()["points"] == 0  # another visitor has their own


def test_a_click_on_a_built_in_set_adds_to_it_and_a_rebuild_keeps_the_edit(client):
    assert new(client, dataset="gauss", seed=5).json()["points"] == 400
    assert points(client, {"add": [0.9, -0.9, 1]}).json()["points"] == 401
    assert new(client, dataset="gauss", seed=5, hidden="3").json()["points"] == 401
    assert new(client, dataset="gauss", seed=6).json()["points"] == 400  # new data: fresh


def test_regression_points_take_a_value(client):
    assert new(client, problem="regression", dataset="custom").status_code == 200
    r = points(client, {"add": [0.2, 0.3, -0.75]})
    assert r.status_code == 200 and r.json()["train"][0][2] == -0.75
    r = points(client, {"add": [0.2, 0.3, 1e7]})
    assert r.status_code == 400 and "value" in r.json()["error"]


@pytest.mark.parametrize("body, words", [
    ({"add": [0.1, 0.1, 4]}, "class must be 0, 1, 2 or 3"),
    ({"add": [0.1, 0.1, -1]}, "class must be 0, 1, 2 or 3"),
    ({"add": [0.1, 0.1, 1.5]}, "class must be 0, 1, 2 or 3"),
    ({"add": [0.1, 0.1, "one"]}, "class must be 0, 1, 2 or 3"),
    ({"add": [1.5, 0.1, 1]}, "x1 must be at least -1 and at most 1"),
    ({"add": [0.1, -7, 1]}, "x2 must be"),
    ({"add": [0.1, 0.1]}, "list [x1, x2, label]"),
    ({"add": "0.1,0.1,1"}, "list [x1, x2, label]"),
    ({"remove": [0.1]}, "list [x1, x2]"),
    ({"add": [0, 0, 1], "remove": [0, 0]}, "send"),
    ({}, "send"),
])
def test_bad_points_are_refused_and_change_nothing(client, body, words):
    assert new(client, dataset="custom").status_code == 200
    points(client, {"add": [0.0, 0.0, 1]})
    r = points(client, body)
    assert r.status_code == 400 and words in r.json()["error"], r.json()
    assert "\n" not in r.json()["error"]
    assert points(client, {"remove": [0.9, 0.9]}).json()["points"] == 0  # the one point was kept


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_coordinates_in_the_json_are_refused(client, literal):
    assert new(client, dataset="custom").status_code == 200
    for body in (f'{{"add": [{literal}, 0.1, 1]}}', f'{{"add": [0.1, 0.2, {literal}]}}'):
        r = client.post("/api/playground/points", content=body.encode(),
                        headers={"content-type": "application/json"})
        assert r.status_code == 400, body
    assert points(client, {"add": [0.1, 0.1, 0]}).json()["points"] == 1


def test_at_most_2000_points(client):
    rows = "\n".join(f"{i},{i % 7},{i % 2}" for i in range(CAPS["points"]))
    r = client.post("/api/playground/csv", json={"csv": rows})
    assert r.status_code == 200 and r.json()["points"] == 2000
    r = points(client, {"add": [0.1, 0.1, 1]})
    assert r.status_code == 400 and "at most 2000 points" in r.json()["error"]
    assert points(client, {"remove": [0, 0]}).json()["points"] == 1999


def test_points_need_a_network_first(app):
    r = TestClient(app).post("/api/playground/points", json={"add": [0, 0, 1]})
    assert r.status_code == 404 and "Reset" in r.json()["error"]


# ---- CSV ----------------------------------------------------------------------------------------
def csv(client, text, **extra):
    return client.post("/api/playground/csv", json={"csv": text, **extra})


def test_a_csv_becomes_the_custom_set_rescaled_to_the_plane(client):
    assert new(client, dataset="xor").status_code == 200
    text = "x1,x2,label\n" + "\n".join(f"{10 + i},{-300 + 5 * i},{i % 3}" for i in range(40))
    r = csv(client, text)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["settings"]["dataset"] == "custom" and body["points"] == 40
    assert body["sizes"][-1] == 3 and body["classes"] == 3
    xy = np.array([p[:2] for p in body["train"] + body["test"]])
    np.testing.assert_allclose(xy.min(axis=0), [-0.95, -0.95])
    np.testing.assert_allclose(xy.max(axis=0), [0.95, 0.95])
    assert len(body["train"]) == 20  # the 50 % split
    r = csv(client, "1,2,0\n3,4,1\r\n\n5,6,1\n")  # no header, CRLF and blank lines are fine
    assert r.status_code == 200 and r.json()["points"] == 3


def test_a_regression_csv_takes_real_values(client):
    assert new(client, problem="regression", dataset="plane").status_code == 200
    r = csv(client, "a,b,y\n0,0,-2.5\n1,1,0.25\n2,0,7")
    assert r.status_code == 200 and r.json()["output"] == "regression"
    assert sorted(p[2] for p in r.json()["train"]) == [-2.5, 0.25, 7]
    assert r.json()["value_scale"] == 7


@pytest.mark.parametrize("text, words", [
    ("0,0,1\n1,1,4", "CSV line 2: label 4 is not a class 0, 1, 2 or 3"),
    ("0,0,1\n1,1,-1", "CSV line 2: label -1"),
    ("0,0,1\n1,1,0.5", "CSV line 2: label 0.5"),
    ("0,0,1\n1,nan,0", "CSV line 2: x2 is 'nan'; only finite numbers"),
    ("0,0,1\ninf,1,0", "CSV line 2: x1 is 'inf'"),
    ("x1,x2,label\n0,0,1\n1e7,1,0", "CSV line 3: x1 = 1e7 is out of range"),
    ("0,0,1\n1,1", "CSV line 2: expected 3 values x1,x2,label, got 2"),
    ("0,0,1\n1,1,1,1", "got 4"),
    ("0,0,1\n1,one,1", "CSV line 2: x2 'one' is not a number"),
    ("0,0,1\nx1,x2,label", "CSV line 2: x1 'x1' is not a number"),  # a header only on line 1
    ("", "no rows"),
    ("x1,x2,label\n", "no rows"),
])
def test_a_bad_csv_is_400_naming_the_line_and_keeps_the_data(client, text, words):
    assert csv(client, "0,0,0\n1,1,1\n2,2,1\n3,3,0\n4,4,1").json()["points"] == 5
    r = csv(client, text)
    assert r.status_code == 400 and words in r.json()["error"], r.json()
    assert "\n" not in r.json()["error"]
    r = client.post("/api/playground/step", json={"steps": 0})
    assert r.status_code == 200
    assert new(client, dataset="custom").json()["points"] == 5


def test_more_than_2000_rows_are_refused_not_cut(client):
    rows = "\n".join(f"{i},0,1" for i in range(CAPS["points"] + 1))
    r = csv(client, rows)
    assert r.status_code == 400
    assert r.json()["error"] == "CSV line 2001: more than 2000 rows; paste at most 2000"


@pytest.mark.parametrize("body, status, words", [
    ({"csv": 5}, 400, "csv must be text"),
    ({"csv": ["0,0,1"]}, 400, "csv must be text"),
    ({"text": "0,0,1"}, 400, "send"),
    ({"csv": "0,0,1", "extra": 1}, 400, "send"),
    ({"csv": "0,0,1", "settings": {"hidden": "99"}}, 400, "1 to 32"),
    ({"csv": "0,0,1\n" * 40_000}, 413, "kB"),
])
def test_forged_and_oversized_csv_bodies_are_refused(client, body, status, words):
    r = client.post("/api/playground/csv", json=body)
    assert r.status_code == status and words in r.json()["error"]


def test_forged_bodies_are_refused(client):
    deep = b"[" * 8_000 + b"]" * 8_000  # under the body cap, deeper than any parser stack
    r = client.post("/api/playground/new", content=deep, headers={"content-type": "x"})
    assert r.status_code == 400 and "bad JSON" in r.json()["error"]
    r = client.post("/api/playground/csv", content=b"\xff\xfe{", headers={"content-type": "x"})
    assert r.status_code == 400
    r = client.post("/api/playground/csv", json={"csv": "0,0,1"},
                    headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    huge = json.dumps({"add": [0, 0, 1], "pad": "x" * (CAPS["body"] + 1)})
    r = client.post("/api/playground/points", content=huge.encode())
    assert r.status_code == 413


def test_a_visitor_with_2000_points_stays_small(client):
    pg = Playground(Settings(hidden=(32,) * 6, features=tuple(pgm.FEATURES),
                             batch=CAPS["batch"], dropout=0.5),
                    pgm.from_csv("\n".join(f"{i},{i % 13},{i % 4}" for i in range(2000)),
                                 Settings()))
    pg.step(2)
    pg.frame()
    assert pg.nbytes() < 512 * 1024  # the bound docs/web.md states


# ---- taking the network out ----------------------------------------------------------------------
def run_script(code: str, tmp_path: Path) -> str:
    script = tmp_path / "playground_net.py"
    script.write_text(code)
    src = str(Path(cr.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("settings", [
    {"dataset": "xor", "features": "x1,x2,x1x2,sin1", "hidden": "5"},
    {"dataset": "spiral3", "hidden": "8,8", "dropout": "0.25", "activation": "relu"},
    {"dataset": "blobs4", "hidden": "", "activation": "gelu"},
    {"problem": "regression", "dataset": "multigauss", "hidden": "6,6",
     "activation": "leaky_relu", "features": "x1,x2,x1sq,x2sq,sin2"},
])
def test_the_exported_script_prints_the_pages_test_loss(client, tmp_path, settings):
    assert new(client, **settings).status_code == 200
    frame = client.post("/api/playground/step", json={"steps": 60}).json()["frame"]
    r = client.post("/api/playground/export", json={})
    assert r.status_code == 200
    assert r.json()["test_loss"] == frame["test_loss"]
    printed = run_script(r.json()["code"], tmp_path)
    assert printed == f"test loss {frame['test_loss']:.4f}\n"


def test_export_without_test_points_or_a_network_says_why(app, client):
    assert new(client, dataset="custom").status_code == 200
    r = client.post("/api/playground/export", json={})
    assert r.status_code == 400 and "no test points" in r.json()["error"]
    assert TestClient(app).post("/api/playground/export", json={}).status_code == 404


def test_the_download_is_the_visitors_network_for_cr_load(app, client, tmp_path):
    pytest.importorskip("safetensors")
    assert new(client, dataset="spiral3", hidden="6", dropout="0.1").status_code == 200
    client.post("/api/playground/step", json={"steps": 30})
    r = client.get("/api/playground/model.safetensors")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    path = tmp_path / "net.safetensors"
    path.write_bytes(r.content)
    model = cr.load(path)
    assert [type(m).__name__ for m in model] == ["Dense", "Tanh", "Dropout", "Dense"]
    pg = app_store(app).get(client.cookies.get(pgm.COOKIE)).playground
    assert pg.steps == 30
    np.testing.assert_array_equal(model.eval()(pg.test_x), pg.model(pg.test_x))
    assert TestClient(app).get("/api/playground/model.safetensors").status_code == 404


def app_store(app) -> PlaygroundStore:
    """The app's playground store (the routes' bound API object)."""
    for route in app.routes:
        if getattr(route, "path", "") == "/api/playground/step":
            return route.endpoint.__self__.store
    raise AssertionError("no playground routes")


def test_no_two_playground_modules_import_each_other():
    from test_layering import PACKAGE, _imports_of

    web = sorted((PACKAGE / "web").glob("*.py"))
    names = {p.stem: {m.rpartition(".")[2] for m in _imports_of(p)
                      if m.startswith("chainrule.web.")} for p in web}
    for a, imported in names.items():
        for b in imported:
            assert a not in names.get(b, set()), f"web/{a}.py and web/{b}.py import each other"


def test_clicked_points_train_or_test_in_the_train_share():
    s = Settings(dataset="custom", train=70)
    data = pgm.empty_data()
    rng = np.random.default_rng(0)
    for _ in range(200):
        data = data.with_point(rng.uniform(-1, 1, 2).tolist(), int(rng.integers(0, 2)), s)
    assert 0.65 < data.train.mean() < 0.75
    assert len(data.split()[0]) + len(data.split()[1]) == 200
    few = pgm.empty_data().with_point([0, 0], 1, s).with_point([0.5, 0], 0, s)
    assert [len(part) for part in few.split()] == [2, 2]  # under 10 points: all of them twice
