"""`chainrule serve` end to end: the real server (uvicorn, a free loopback port) with a freshly
trained model, driven by Debian's headless Chromium through Playwright for Python. A digit is
drawn on the canvas with real mouse strokes, predicted, then taught one gradient step.

Skips only when Playwright is not importable or no Chromium executable exists (`.ci/run`
installs Debian's `chromium`; Playwright's own browser download is never used). On failure a
screenshot lands in tests/artifacts/. Set CHAINRULE_WEB_SCREENSHOT=docs/img/web.png to save
the page after the teach step (that is how docs/img/web.png is made).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from chainrule.web import server  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Strokes as fractions of the pad: a "1" (one vertical line) and a "7" (bar, then diagonal).
ONE = [(0.50, 0.14), (0.47, 0.86)]
SEVEN = [(0.27, 0.20), (0.73, 0.20), (0.44, 0.86)]
FOUR = [[(0.45, 0.12), (0.30, 0.52), (0.72, 0.52)], [(0.62, 0.12), (0.62, 0.88)]]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


# ---- the live server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """`chainrule serve`'s app on 127.0.0.1:<free port>, with the default MLP trained for 3
    epochs on mnist-10k exactly as `chainrule serve` does when given no model."""
    runs = tmp_path_factory.mktemp("serve") / "runs"
    model_path = server.train_default(epochs=3, runs=runs)
    app = server.build_app(str(model_path), host="127.0.0.1")
    with serving(app) as url:
        yield url


@contextlib.contextmanager
def serving(app):
    """Run `app` with uvicorn on 127.0.0.1:<a free port> in a thread; yields its URL."""
    sock = server.listen("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
def page(browser, live_server):
    """A fresh visitor (own cookie) on the page; any script error or CSP violation fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
          if m.type == "error" else None)
    pg.goto(live_server + "/")
    pg.locator("#teach-label option[value='9']").wait_for(state="attached", timeout=30_000)
    yield pg
    context.close()
    assert not problems, problems


@contextlib.contextmanager
def shot_on_failure(pg, name: str):
    """Screenshot the page to tests/artifacts/<name>.png if the block raises."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def save_small_png(png: bytes, path: str) -> None:
    """A 256-colour PNG (a third of the size, the same to the eye) for the docs."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


# ---- helpers: draw with the mouse, wait for the page ---------------------------------------------
def draw(pg, points, steps: int = 14) -> None:
    box = pg.locator("#pad").bounding_box()

    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    pg.mouse.move(*at(*points[0]))
    pg.mouse.down()
    for point in points[1:]:
        pg.mouse.move(*at(*point), steps=steps)
    pg.mouse.up()


def version(pg, selector: str) -> int:
    return int(pg.get_attribute(selector, "data-version"))


def wait_newer(pg, selector: str, old: int) -> None:
    from playwright.sync_api import expect

    expect(pg.locator(selector)).not_to_have_attribute("data-version", str(old), timeout=20_000)


def press_predict(pg) -> int:
    old = version(pg, "#digit")
    pg.click("#predict")
    wait_newer(pg, "#digit", old)
    return int(pg.get_attribute("#digit", "data-digit"))


def bar_p(pg, digit: int) -> float:
    return float(pg.get_attribute(f'#bars .bar-row[data-digit="{digit}"]', "data-p"))


# ---- the tests -------------------------------------------------------------------------------
def test_drawn_one_and_seven_are_recognised(page):
    with shot_on_failure(page, "drawn_one_and_seven"):
        page.uncheck("#live")  # the Predict button alone
        for strokes, digit in ((ONE, 1), (SEVEN, 7)):
            page.click("#clear")
            draw(page, strokes)
            assert press_predict(page) == digit
            assert page.inner_text("#digit") == str(digit)
            assert bar_p(page, digit) > 0.5
            assert sum(bar_p(page, d) for d in range(10)) == pytest.approx(1, abs=1e-4)


def test_teach_it_raises_the_taught_label_and_reset_undoes_it(page):
    with shot_on_failure(page, "teach"):
        old = version(page, "#digit")
        draw(page, SEVEN)
        wait_newer(page, "#digit", old)  # live prediction after the stroke
        predicted = press_predict(page)
        assert predicted == 7
        label = 2  # "no, this is a 2": another label than the network's answer
        p_before = bar_p(page, label)
        page.select_option("#teach-label", str(label))
        page.click("#teach")
        wait_newer(page, "#teach-out", 0)
        row = page.locator(f'#teach-table tr[data-digit="{label}"]')
        before = float(row.get_attribute("data-before"))
        after = float(row.get_attribute("data-after"))
        assert before == pytest.approx(p_before, abs=1e-6)
        assert after > before
        assert float(page.inner_text("#loss-after")) < float(page.inner_text("#loss-before"))
        assert float(row.get_attribute("data-grad")) == pytest.approx(before - 1, abs=1e-6)
        assert page.locator("#tiles .tile canvas").count() >= 20  # ≥ 10 units, 2 canvases each
        assert page.locator("#matrices canvas").count() >= 1
        # the prediction panel now shows the visitor's taught copy
        assert bar_p(page, label) == pytest.approx(after, abs=1e-6)
        assert "taught" in page.inner_text("#model-badge")
        old = version(page, "#digit")
        page.click("#reset")
        wait_newer(page, "#digit", old)
        assert bar_p(page, label) == pytest.approx(p_before, abs=1e-6)
        assert "loaded model" in page.inner_text("#model-badge")


def test_teaching_the_right_answer_makes_it_surer(page):
    """A 4 that could be a 9; "this is a 4" makes the network surer. This page, after the
    step, is the README's picture (CHAINRULE_WEB_SCREENSHOT=docs/img/web.png)."""
    with shot_on_failure(page, "teach_right_answer"):
        for stroke in FOUR:
            draw(page, stroke)
        press_predict(page)
        before = bar_p(page, 4)
        page.select_option("#teach-label", "4")
        page.select_option("#teach-lr", "0.03")
        page.click("#teach")
        wait_newer(page, "#teach-out", 0)
        assert bar_p(page, 4) > before
        assert "lower by" in page.inner_text("#loss-note")
        assert "η = 0.03" in page.inner_text("#loss-note")
        target = os.environ.get("CHAINRULE_WEB_SCREENSHOT")
        if target:
            save_small_png(page.screenshot(full_page=True), target)


def test_training_tab_shows_history_and_confusion(page):
    with shot_on_failure(page, "training_tab"):
        page.click("#tab-model")
        assert page.is_visible("#panel-model") and not page.is_visible("#panel-draw")
        assert page.locator("#confusion table tr").count() == 11
        assert "Dense" in page.inner_text("#arch")
        assert "2,000" in page.inner_text("#confusion-caption")
        box = page.locator("#plot-loss").bounding_box()
        assert box["width"] > 200 and box["height"] > 100


def test_phone_sized_screen_can_draw_with_touch(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    pg = context.new_page()
    try:
        with shot_on_failure(pg, "phone"):
            pg.goto(live_server + "/")
            pad = pg.locator("#pad").bounding_box()
            assert pad["width"] <= 390 and pad["x"] >= 0
            assert pg.evaluate("document.documentElement.scrollWidth") <= 390
            draw(pg, ONE)  # mouse events become pointer events here as on a laptop
            assert press_predict(pg) == 1
    finally:
        context.close()


# ---- the real socket: limits hold over HTTP too -----------------------------------------------
def raw_post(base: str, path: str, body_chunks, headers: dict) -> tuple[int, str]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in body_chunks:
                conn.send(chunk)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_real_server_refuses_big_bodies_and_keeps_serving(live_server):
    three_mb = 3 * 1024 * 1024
    status, text = raw_post(live_server, "/api/predict", [],
                            {"Content-Length": str(three_mb), "Content-Type": "image/png"})
    assert status == 413 and "2 MB" in text  # refused from the header, before any body
    chunk = b"\0" * 65536
    body = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 40 + [b"0\r\n\r\n"]
    status, text = raw_post(live_server, "/api/predict", body,
                            {"Transfer-Encoding": "chunked", "Content-Type": "image/png"})
    assert status == 413 and "error" in text  # counted as it streamed in
    status, text = raw_post(live_server, "/api/predict", [b"GIF89a nope"],
                            {"Content-Length": "11", "Content-Type": "image/png"})
    assert status == 400 and "not an image" in text
    conn = http.client.HTTPConnection(*live_server.removeprefix("http://").split(":"))
    conn.request("GET", "/api/model")
    assert conn.getresponse().status == 200
    conn.close()
