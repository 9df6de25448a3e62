"""Time to target of the Playground tab with the page's defaults, measured through the real
server as the page drives it: POST /api/playground/new, then POST /api/playground/step with
K steps per frame, waiting one animation frame (~16 ms) between frames as the page does.

    python bench/playground_time.py [--frame-ms 16] [--limit 120]

Targets (docs/web.md): xor test loss < 0.25 within ~20 s of play; spiral with hidden 16,16
< 0.3 within ~45 s; Playground II: spiral3 (three classes, softmax + cross-entropy) with hidden
16,16, relu, η = 0.03 < 0.5, and plane (regression, squared error) with the defaults < 0.001.
Prints one `time_to_target` line per case (seconds, steps, frames).
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx
import uvicorn

import chainrule as cr
from chainrule.web import server
from chainrule.web.app import create_app
from chainrule.web.playground import Settings

STEPS_PER_FRAME = 20  # the page's default (#pg-speed)
CASES = [  # (name, settings different from the page's defaults, test-loss target)
    ("xor", {"dataset": "xor"}, 0.25),
    ("spiral", {"dataset": "spiral", "hidden": "16,16"}, 0.3),
    ("spiral3", {"dataset": "spiral3", "hidden": "16,16", "activation": "relu", "lr": 0.03}, 0.5),
    ("plane", {"problem": "regression", "dataset": "plane"}, 0.001),
]


def start_server() -> tuple[str, uvicorn.Server, threading.Thread]:
    app = create_app(cr.Sequential(cr.Flatten(), cr.Dense(784, 10, seed=0)), {}, evaluate=False)
    sock = server.listen("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", srv, thread


def time_to_target(base: str, changes: dict, target: float, frame_ms: float,
                   limit: float) -> tuple[float, int, int, float]:
    """(seconds of play, steps, frames, last test loss) until the test loss < target."""
    settings = {**Settings().to_json(), **changes}
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/").raise_for_status()  # the page: the visitor's session cookie
        client.post("/api/playground/new", json={"settings": settings}).raise_for_status()
        start, frames, frame = time.perf_counter(), 0, {}
        while time.perf_counter() - start < limit:
            r = client.post("/api/playground/step", json={"steps": STEPS_PER_FRAME})
            r.raise_for_status()
            frame, frames = r.json()["frame"], frames + 1
            if frame["test_loss"] is not None and frame["test_loss"] < target:
                break
            time.sleep(frame_ms / 1000)
        return time.perf_counter() - start, frame["step"], frames, frame["test_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-ms", type=float, default=16.0)
    parser.add_argument("--limit", type=float, default=120.0, help="give up after (s)")
    args = parser.parse_args()
    base, srv, thread = start_server()
    try:
        for name, changes, target in CASES:
            seconds, steps, frames, loss = time_to_target(base, changes, target,
                                                          args.frame_ms, args.limit)
            shown = " ".join(f"{k}={v}" for k, v in changes.items() if k != "dataset")
            print(f"time_to_target {name} {shown} loss<{target}: {seconds:.1f} s, "
                  f"{steps} steps, {frames} frames, test loss {loss:.4f}", flush=True)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
