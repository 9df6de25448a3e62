"""Predict latency through the real server while other visitors download the model.

    python bench/bench_web_downloads.py [--downloaders 2] [--predicts 60]

Starts `chainrule serve`'s app (the default CNN, untrained: latency does not depend on the
weights) on a loopback port, lets `--downloaders` clients fetch GET /api/model.onnx in a loop,
and times POST /api/predict from one more client. Prints the median predict latency alone and
with the downloads running, and their ratio. Each download is built once (web/app.py), so the
downloads should cost a prediction little.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time

import httpx
import numpy as np
import uvicorn
from PIL import Image

import chainrule as cr
from chainrule.web import server
from chainrule.web.app import create_app


def start_server(model) -> tuple[str, uvicorn.Server]:
    app = create_app(model, {}, evaluate=False)
    sock = server.listen("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", srv


def digit_png() -> bytes:
    pixels = np.zeros((280, 280), np.uint8)
    pixels[40:240, 130:150] = 255  # a "1"
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def predict_latencies(base: str, n: int) -> list[float]:
    png, times = digit_png(), []
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(n):
            start = time.perf_counter()
            client.post("/api/predict", content=png).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def download_loop(base: str, stop: threading.Event, counts: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            client.get("/api/model.onnx").raise_for_status()
            counts.append(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloaders", type=int, default=2)
    parser.add_argument("--predicts", type=int, default=60)
    args = parser.parse_args()
    base, srv = start_server(cr.models.cnn(seed=0).eval())
    predict_latencies(base, 5)  # warm up
    alone = statistics.median(predict_latencies(base, args.predicts))
    stop, counts = threading.Event(), []
    workers = [threading.Thread(target=download_loop, args=(base, stop, counts), daemon=True)
               for _ in range(args.downloaders)]
    for w in workers:
        w.start()
    busy = statistics.median(predict_latencies(base, args.predicts))
    stop.set()
    for w in workers:
        w.join()
    srv.should_exit = True
    print(f"predict median alone {alone * 1e3:.1f} ms; with {args.downloaders} clients "
          f"downloading the ONNX file ({len(counts)} downloads) {busy * 1e3:.1f} ms; "
          f"ratio {busy / alone:.2f}")


if __name__ == "__main__":
    main()
