"""Where the default CNN's training step spends its time: forward and backward per layer.

    python bench/bench_cnn_layers.py                # batch 128, 1 BLAS thread, best of 20
    python bench/bench_cnn_layers.py --threads 2

Runs the default `cr.models.cnn` on a batch of mnist-10k digits (synthetic if unavailable)
and times each layer's forward and backward separately (input_grad as `fit` asks: none for
the first layer with parameters), best of `--repeats`, in milliseconds per batch. The
per-layer table of docs/benchmarks.md comes from this script. Prints
`figure cnn_step_layers_sum <sum / whole>`: the layers' best times add up to about one step
(~1 when nothing is missed). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset first, as in the
other benches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import reexec_without_openblas_overrides  # noqa: E402

reexec_without_openblas_overrides()

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import chainrule as cr  # noqa: E402


def batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        (x, y), _ = cr.data.load("mnist-10k")
        return x[:n], y[:n]
    except Exception:  # noqa: BLE001 - offline without the bundled set: synthetic digits
        rng = np.random.default_rng(0)
        return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def best(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--elementwise-threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    cr.set_num_threads(args.elementwise_threads)
    model = cr.models.cnn(seed=0)
    model.train()
    loss_fn = cr.SoftmaxCrossEntropy()
    x, y = batch(args.batch_size)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        rows, total = [], 0.0
        inputs, a = [], x
        for layer in model.layers:  # one pass to get every layer's input
            inputs.append(a)
            a = layer(a)
        loss_fn(a, y)
        g = loss_fn.backward()
        grads = [None] * len(model.layers)
        first = model._first_trainable()  # as `fit`: no input gradient from here down
        for k in reversed(range(first, len(model.layers))):
            grads[k] = g
            g = model.layers[k].backward(g, input_grad=k > first)
        for k, layer in enumerate(model.layers[first:], first):
            fwd = best(lambda layer=layer, a=inputs[k]: layer(a), args.repeats)
            bwd = best(lambda layer=layer, g=grads[k], k=k: layer.backward(g, input_grad=k > first),
                       args.repeats)  # fmt: skip
            rows.append((type(layer).__name__, fwd, bwd))
            total += fwd + bwd

        def step() -> None:
            model.zero_grad()
            loss_fn(model(x), y)
            model.backward(loss_fn.backward(), input_grad=False)

        whole = best(step, args.repeats)
    print(f"batch {args.batch_size}, {args.threads} BLAS thread(s), "
          f"{cr.get_num_threads()} elementwise, best of {args.repeats}, ms per batch")
    print(f"{'layer':<12} {'forward':>8} {'backward':>9} {'sum':>7}")
    for name, fwd, bwd in rows:
        print(f"{name:<12} {fwd:8.2f} {bwd:9.2f} {fwd + bwd:7.2f}")
    print(f"{'layers':<12} {'':8} {'':9} {total:7.2f}")
    print(f"{'whole step':<12} {'':8} {'':9} {whole:7.2f}  (forward + loss + backward)")
    print(f"figure cnn_step_ms_{args.threads}t {whole:.2f}")
    print(f"figure cnn_step_layers_sum {total / whole:.2f}")


if __name__ == "__main__":
    main()
