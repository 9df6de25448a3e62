"""The Playground tab end to end: the real server (uvicorn, a free loopback port) driven by
Debian's headless Chromium through Playwright for Python. Plays xor and watches the test loss
fall and the boundary change, pauses, steps once and reads the backprop numbers, refuses bad
settings while keeping the network, and restores settings from a copied URL.

Skips like tests/test_web_browser.py: only when Playwright is not importable or no Chromium
executable exists. On failure a screenshot lands in tests/artifacts/. Set
CHAINRULE_PLAYGROUND_SCREENSHOT=docs/img/playground.png to save the page for the docs.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

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
        target = os.environ.get("CHAINRULE_PLAYGROUND_SCREENSHOT")
        if target:
            save_small_png(pg.screenshot(full_page=True), target)
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
