"""The Playground tab end to end: the real server (uvicorn, a free loopback port) driven by
Debian's headless Chromium through Playwright for Python. Plays xor and watches the test loss
fall and the boundary change, pauses, steps once and reads the backprop numbers, refuses bad
settings while keeping the network, and restores settings from a copied URL. Playground II:
clicked points, a pasted CSV (a bad one keeps the data), three classes in three colours,
regression, the exported script's printed loss and the downloaded network.

Skips like tests/test_web_browser.py: only when Playwright is not importable or no Chromium
executable exists. On failure a screenshot lands in tests/artifacts/. Set
CHAINRULE_PLAYGROUND_SCREENSHOT=docs/img/playground.png to save the page (three classes, after
training) for the docs.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
Image = pytest.importorskip("PIL.Image")

import chainrule as cr  # noqa: E402
from chainrule.web.app import create_app  # noqa: E402
from test_web_browser import (  # noqa: E402
    CHROMIUM_ARGS,
    chromium_path,
    save_small_png,
    serving,
    shot_on_failure,
)

WAIT = 60_000  # ms: generous, the machine may be busy


@pytest.fixture(scope="module")
def live_server():
    """The app on 127.0.0.1:<free port>; the digit model is an untrained stand-in, since the
    playground needs no trained model."""
    model = cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0))
    with serving(create_app(model, {}, evaluate=False)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    if executable is None:
        pytest.skip("test extra: no Chromium executable (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield ctx
    ctx.close()


def open_page(context, url: str):
    """A page at `url` that records script errors and CSP violations into `problems`."""
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
          if m.type == "error" and "400" not in m.text else None)
    pg.goto(url)
    return pg, problems


def wait_until(pg, condition: str) -> None:
    """Poll a JavaScript condition (a function, not a string: the page's CSP forbids eval)."""
    pg.wait_for_function(f"() => {condition}", timeout=WAIT)


def wait_for_network(pg) -> None:
    wait_until(pg, "document.getElementById('pg-net').dataset.sizes !== undefined")


def loss(pg) -> float:
    return float(pg.inner_text("#pg-loss"))


def boundary_pixels(pg) -> str:
    return pg.evaluate("document.getElementById('pg-boundary').toDataURL()")


def test_play_xor_pause_step_and_read_the_backprop_numbers(context, live_server):
    pg, problems = open_page(context, live_server + "/")
    with shot_on_failure(pg, "playground_play"):
        pg.click("#tab-playground")
        assert pg.is_visible("#panel-playground") and not pg.is_visible("#panel-draw")
        wait_for_network(pg)
        assert pg.input_value("#pg-dataset") == "xor"
        assert pg.input_value("#pg-hidden") == "4,4"
        assert pg.inner_text("#pg-epoch") == "0"
        start_loss, start_pixels = loss(pg), boundary_pixels(pg)

        pg.click("#pg-play")
        half = start_loss / 2
        wait_until(pg, f"parseFloat(document.getElementById('pg-loss').textContent) < {half}")
        pg.click("#pg-play")  # pause
        wait_until(pg, "document.getElementById('pg-play').dataset.state === 'paused'")
        assert int(pg.inner_text("#pg-epoch")) > 0
        assert loss(pg) < start_loss
        assert boundary_pixels(pg) != start_pixels

        steps = int(pg.inner_text("#pg-epoch"))
        old = pg.get_attribute("#pg-math", "data-version")
        pg.click("#pg-step")
        wait_until(pg, f"document.getElementById('pg-epoch').textContent === '{steps + 1}'")
        wait_until(pg, f"document.getElementById('pg-math').dataset.version !== '{old}'")
        text = pg.inner_text("#pg-math")
        for symbol in ("z⁽¹⁾", "a⁽¹⁾", "∂L/∂a⁽¹⁾", "∂L/∂z⁽¹⁾", "σ′(z⁽¹⁾)", "∂L/∂W⁽³⁾", "ŷ − y"):
            assert symbol in text
        numbers = pg.eval_on_selector_all("#pg-math [data-value]",
                                          "els => els.map(e => parseFloat(e.dataset.value))")
        assert len(numbers) > 20 and any(v != 0 for v in numbers)
        assert "The dark edge" in pg.inner_text("#pg-edge")
    assert not problems, problems


def test_bad_hidden_sizes_show_a_message_and_keep_the_network(context, live_server):
    pg, problems = open_page(context, live_server + "/#playground?hidden=3")
    with shot_on_failure(pg, "playground_bad_input"):
        wait_for_network(pg)
        assert pg.get_attribute("#pg-net", "data-sizes") == "2,3,1"
        for bad, words in (("9999", "1 to 32"), ("4,,4", "whole numbers"), ("0", "1 to 32")):
            pg.fill("#pg-hidden", bad)
            pg.press("#pg-hidden", "Enter")  # a change event, as on leaving the field
            wait_until(pg, "document.getElementById('pg-message').textContent !== ''")
            assert words in pg.inner_text("#pg-message")
            assert "\n" not in pg.inner_text("#pg-message")
            assert pg.get_attribute("#pg-net", "data-sizes") == "2,3,1"
            pg.evaluate("document.getElementById('pg-message').textContent = ''")
        built = pg.get_attribute("#pg-net", "data-version")
        pg.fill("#pg-hidden", "3")  # fixed: a new network
        pg.press("#pg-hidden", "Enter")
        wait_until(pg, f"document.getElementById('pg-net').dataset.version !== '{built}'")
        pg.fill("#pg-lr", "abc")
        pg.dispatch_event("#pg-lr", "change")
        wait_until(pg, "document.getElementById('pg-message').textContent !== ''")
        assert "learning rate" in pg.inner_text("#pg-message")
        pg.click("#pg-step")  # the last good network still trains
        wait_until(pg, "document.getElementById('pg-epoch').textContent === '1'")
    assert not problems, problems


def test_settings_come_back_from_a_copied_url(context, live_server):
    pg, problems = open_page(context, live_server + "/")
    with shot_on_failure(pg, "playground_url"):
        pg.click("#tab-playground")
        wait_for_network(pg)
        pg.select_option("#pg-dataset", "spiral")
        wait_until(pg, "location.hash.includes('dataset=spiral')")
        pg.fill("#pg-hidden", "16,16")
        pg.dispatch_event("#pg-hidden", "change")
        wait_until(pg, "location.hash.includes('hidden=16,16')")
        pg.fill("#pg-lr", "0.02")
        pg.dispatch_event("#pg-lr", "change")
        pg.select_option("#pg-activation", "relu")
        wait_until(pg, "location.hash.includes('activation=relu') && "
                             "location.hash.includes('lr=0.02')")
        url = pg.url
    copy, more = open_page(context, url)  # a new tab opening the copied link
    with shot_on_failure(copy, "playground_url_restored"):
        wait_for_network(copy)
        assert copy.is_visible("#panel-playground")
        assert copy.input_value("#pg-dataset") == "spiral"
        assert copy.input_value("#pg-hidden") == "16,16"
        assert copy.input_value("#pg-activation") == "relu"
        assert copy.input_value("#pg-lr") == "0.02"
        assert copy.get_attribute("#pg-net", "data-sizes") == "2,16,16,1"
    assert not problems + more, problems + more


def test_a_nan_loss_pauses_with_a_learning_rate_hint(context, live_server):
    hidden = ",".join(["32"] * 6)
    url = (f"{live_server}/#playground?dataset=spiral&hidden={hidden}&activation=relu"
           "&optimizer=sgd&lr=10&features=x1,x2,x1sq,x2sq,x1x2")
    pg, problems = open_page(context, url)
    with shot_on_failure(pg, "playground_nan"):
        wait_for_network(pg)
        pg.click("#pg-play")
        wait_until(pg, "document.getElementById('pg-message').textContent.includes('too large')")
        assert pg.get_attribute("#pg-play", "aria-pressed") == "false"  # paused
        assert pg.inner_text("#pg-loss") == "NaN"
    assert not problems, problems


def test_xnor_switches_to_the_seeds_network(context, live_server):
    pg, problems = open_page(context, live_server + "/#playground")
    with shot_on_failure(pg, "playground_xnor"):
        wait_for_network(pg)
        pg.select_option("#pg-dataset", "xnor")
        wait_until(pg, "document.getElementById('pg-net').dataset.sizes === '2,3,1'")
        assert pg.input_value("#pg-activation") == "sigmoid"
        assert pg.input_value("#pg-optimizer") == "sgd"
        assert pg.input_value("#pg-batch") == "4"
        pg.select_option("#pg-dataset", "circle")  # back to the page's defaults
        wait_until(pg, "document.getElementById('pg-net').dataset.sizes === '2,4,4,1'")
        assert pg.input_value("#pg-activation") == "tanh"
        pg.select_option("#pg-dataset", "xnor")
        wait_until(pg, "document.getElementById('pg-net').dataset.sizes === '2,3,1'")
        pg.select_option("#pg-problem", "regression")  # from xnor straight to regression
        wait_until(pg, "location.hash.includes('problem=regression')")
        assert pg.input_value("#pg-problem") == "regression"
        assert pg.input_value("#pg-dataset") == "plane"
        assert pg.input_value("#pg-activation") == "tanh"
        values = pg.eval_on_selector_all("#pg-dataset option", "os => os.map(o => o.value)")
        assert values == ["plane", "multigauss", "custom"]
    assert not problems, problems


def test_phone_sized_screen_fits(browser, live_server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True, device_scale_factor=2)
    try:
        pg, problems = open_page(ctx, live_server + "/#playground?hidden=8,8")
        with shot_on_failure(pg, "playground_phone"):
            wait_for_network(pg)
            pg.click("#pg-step")
            wait_until(pg, "document.getElementById('pg-math').dataset.version !== '0'")
            assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        assert not problems, problems
    finally:
        ctx.close()


# ---- Playground II ----------------------------------------------------------------------------
def points_shown(pg) -> int:
    return int(pg.inner_text("#pg-points"))


def wait_points(pg, n: int) -> None:
    wait_until(pg, f"document.getElementById('pg-points').textContent === '{n}'")


def click_plane(pg, fx: float, fy: float, modifiers=None) -> None:
    """Click the output canvas at fractions (fx, fy) of its width and height."""
    box = pg.locator("#pg-boundary").bounding_box()
    pg.locator("#pg-boundary").click(position={"x": fx * box["width"], "y": fy * box["height"]},
                                     modifiers=modifiers or [])


CLASS_RGB = np.array([[8, 119, 189], [245, 147, 34], [44, 160, 44], [148, 83, 189]], float)


def class_shares(pg) -> np.ndarray:
    """The share of the output canvas's pixels tinted in each class colour (0..3)."""
    url = pg.evaluate("document.getElementById('pg-boundary').toDataURL()")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=float).reshape(-1, 3)
    tint = 255 - rgb
    strong = tint.sum(axis=1) > 30  # not (nearly) white
    direction = tint / np.maximum(np.linalg.norm(tint, axis=1, keepdims=True), 1e-9)
    ref = (255 - CLASS_RGB) / np.linalg.norm(255 - CLASS_RGB, axis=1, keepdims=True)
    nearest = np.argmax(direction @ ref.T, axis=1)
    return np.array([np.mean(strong & (nearest == k)) for k in range(4)])


def test_clicks_add_points_and_shift_click_removes_the_nearest(context, live_server):
    pg, problems = open_page(context, live_server + "/#playground?dataset=custom")
    with shot_on_failure(pg, "playground_click"):
        wait_for_network(pg)
        assert points_shown(pg) == 0 and pg.inner_text("#pg-loss") == "–"
        pg.select_option("#pg-paint-class", "0")
        click_plane(pg, 0.25, 0.25)
        wait_points(pg, 1)
        pg.select_option("#pg-paint-class", "1")
        click_plane(pg, 0.75, 0.75)
        wait_points(pg, 2)
        click_plane(pg, 0.8, 0.2)
        wait_points(pg, 3)
        wait_until(pg, "document.getElementById('pg-loss').textContent !== '–'")
        pg.click("#pg-play")
        wait_until(pg, "parseInt(document.getElementById('pg-epoch').textContent) > 20")
        pg.click("#pg-play")
        click_plane(pg, 0.27, 0.24, modifiers=["Shift"])  # nearest: the class-0 point
        wait_points(pg, 2)
        assert "paint=1" in pg.url
        pg.select_option("#pg-paint-class", "2")  # a third class: softmax, rebuilt
        click_plane(pg, 0.5, 0.5)
        wait_points(pg, 3)
        wait_until(pg, "document.getElementById('pg-net').dataset.sizes === '2,4,4,3'")
        assert "rebuilt for 3 classes" in pg.inner_text("#pg-message")
        pg.select_option("#pg-dataset", "xor")  # a click adds to any data set
        wait_points(pg, 400)
        click_plane(pg, 0.1, 0.9)
        wait_points(pg, 401)
        pg.select_option("#pg-dataset", "custom")  # your own points are still there
        wait_points(pg, 3)
    assert not problems, problems


def test_a_pasted_csv_loads_and_a_bad_one_keeps_the_data(context, live_server):
    pg, problems = open_page(context, live_server + "/#playground")
    with shot_on_failure(pg, "playground_csv"):
        wait_for_network(pg)
        rows = ["x1,x2,label"] + [f"{i % 10},{i // 10},{int(i % 10 >= 5)}" for i in range(60)]
        pg.fill("#pg-csv", "\n".join(rows))
        pg.click("#pg-load-csv")
        wait_points(pg, 60)
        assert pg.input_value("#pg-dataset") == "custom" and "dataset=custom" in pg.url
        assert "loaded 60 points" in pg.inner_text("#pg-message")
        for bad, words in (("0,0,1\n1,nan,0", "CSV line 2"), ("0,0,1\n0,0,7", "not a class"),
                           ("\n".join(["0,0,1"] * 2001), "more than 2000 rows")):
            pg.fill("#pg-csv", bad)
            pg.click("#pg-load-csv")
            wait_until(pg, "document.getElementById('pg-message').textContent.includes('CSV')")
            text = pg.inner_text("#pg-message")
            assert words in text and "\n" not in text
            assert points_shown(pg) == 60  # the data already loaded stays
            pg.evaluate("document.getElementById('pg-message').textContent = ''")
        pg.click("#pg-step")  # and it still trains
        wait_until(pg, "document.getElementById('pg-epoch').textContent === '1'")
    assert not problems, problems


def test_three_classes_train_and_show_three_colours(context, live_server):
    url = (f"{live_server}/#playground?dataset=spiral3&hidden=16,16&activation=relu&lr=0.03"
           "&speed=50")
    pg, problems = open_page(context, url)
    with shot_on_failure(pg, "playground_three_classes"):
        wait_for_network(pg)
        assert pg.get_attribute("#pg-net", "data-sizes") == "2,16,16,3"
        start = loss(pg)
        pg.click("#pg-play")
        wait_until(pg, "parseFloat(document.getElementById('pg-loss').textContent) < 0.6")
        pg.click("#pg-play")
        wait_until(pg, "document.getElementById('pg-play').dataset.state === 'paused'")
        assert loss(pg) < start
        shares = class_shares(pg)
        assert (shares[:3] > 0.12).all() and shares[3] < 0.02, shares
        old = pg.get_attribute("#pg-math", "data-version")
        pg.click("#pg-step")
        wait_until(pg, f"document.getElementById('pg-math').dataset.version !== '{old}'")
        text = pg.inner_text("#pg-math")
        assert "p − y" in text and "softmax" in text and "cross-entropy" in text
        target = os.environ.get("CHAINRULE_PLAYGROUND_SCREENSHOT")
        if target:
            pg.click("#pg-export")
            wait_until(pg, "document.getElementById('pg-code').value !== ''")
            save_small_png(pg.screenshot(full_page=True), target)
    assert not problems, problems


def test_regression_trains_and_restores_from_the_url(context, live_server):
    url = (f"{live_server}/#playground?problem=regression&dataset=multigauss&hidden=8,8"
           "&dropout=0.1&paint=-0.5")
    pg, problems = open_page(context, url)
    with shot_on_failure(pg, "playground_regression"):
        wait_for_network(pg)
        assert pg.input_value("#pg-problem") == "regression"
        assert pg.input_value("#pg-dataset") == "multigauss"
        assert pg.input_value("#pg-dropout") == "0.1"
        assert pg.input_value("#pg-paint-class") == "-0.5"
        datasets = pg.eval_on_selector_all("#pg-dataset option", "os => os.map(o => o.value)")
        assert datasets == ["plane", "multigauss", "custom"]
        start = loss(pg)
        pg.click("#pg-play")
        wait_until(pg, f"parseFloat(document.getElementById('pg-loss').textContent) < {start / 3}")
        pg.click("#pg-play")
        pg.select_option("#pg-dropout", "0.25")
        wait_until(pg, "location.hash.includes('dropout=0.25')")
        pg.select_option("#pg-problem", "classification")
        wait_until(pg, "location.hash.includes('problem=classification')")
        assert pg.input_value("#pg-dataset") == "xor"
        wait_until(pg, "document.getElementById('pg-net').dataset.sizes === '2,8,8,1'")
    assert not problems, problems


def test_the_exported_script_prints_the_pages_loss_and_the_download_loads(
        context, live_server, tmp_path):
    pytest.importorskip("safetensors")
    pg, problems = open_page(context, live_server + "/#playground?dataset=blobs4&dropout=0.25")
    with shot_on_failure(pg, "playground_export"):
        wait_for_network(pg)
        pg.click("#pg-play")
        wait_until(pg, "parseInt(document.getElementById('pg-epoch').textContent) > 100")
        pg.click("#pg-play")
        wait_until(pg, "document.getElementById('pg-play').dataset.state === 'paused'")
        pg.click("#pg-export")
        wait_until(pg, "document.getElementById('pg-code').value.includes('test loss')")
        script = tmp_path / "net.py"
        script.write_text(pg.input_value("#pg-code"))
        src = str(Path(cr.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"test loss {pg.inner_text('#pg-loss')}\n"

        with pg.expect_download() as download:
            pg.click("#pg-download")
        path = tmp_path / "net.safetensors"
        download.value.save_as(path)
        model = cr.load(path)
        sizes = [model[0].weight.shape[1]] + [m.weight.shape[0] for m in model
                                               if type(m).__name__ == "Dense"]
        assert ",".join(map(str, sizes)) == pg.get_attribute("#pg-net", "data-sizes")
        assert "Dropout" in [type(m).__name__ for m in model]
    assert not problems, problems
