"""The machine's float32 GEMM speed at 1 and 2 BLAS threads: the peak, and the GEMMs of
chainrule's MLP and CNN training steps, so each workload's GFLOP/s can be read against the
physical limit and the thread policy (`chainrule.threads`) checked against measurements.

    python bench/bench_gemm.py [--repeat 7] [--size 2048]

For every GEMM C (m×n) = A (m×k) · B (k×n) it prints GFLOP/s (2·m·n·k flops per product) at
one and at two threads and the speed-up; per workload, the speed-up of all its GEMMs
together and the thread count the policy picks for the run (from its largest GEMM). Last
lines, machine-readable:
    figure gemm_peak_gflops_1t <GFLOP/s>     figure gemm_peak_gflops_2t <GFLOP/s>
    figure gemm_step_ms_<workload>_<t>t <milliseconds of all the GEMMs of one training step>
    ratio thread_policy_vs_1t <Σ time at the policy's threads / Σ time at one thread>
    ratio thread_policy_vs_best <Σ time at the policy's threads / Σ time at the faster of 1, 2>
The first ratio is the promise "never slower than one thread" (at most 1); the second how
close one thread count per run comes to the best choice for every single GEMM.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import blas_info, ratio_line, reexec_without_openblas_overrides, table  # noqa: E402

from chainrule.threads import PARALLEL_MIN_MACS, free_cores, threads_for_macs  # noqa: E402


def workload_gemms() -> dict[str, list[tuple[str, int, int, int]]]:
    """{workload: [(GEMM, m, k, n), ...]}: every GEMM of one training step, in the layout the
    layers use.

    MLP 784→128→10 at batch b: forward X·Wᵀ (b×784 · 784×128), dW = Gᵀ·X, dX = G·W.
    CNN at batch 128 (conv 3×3 'same' 1→32 on 28×28, pool, 32→64 on 14×14, pool, dense
    3136→128→10): a convolution is one GEMM W (O × C·9) · cols (C·9 × N·H·W); its dW is
    cols · Gᵀ and its dX is Wᵀ · G (the first convolution needs no dX).
    """
    work = {}
    for b in (64, 128):
        work[f"mlp b{b}"] = [
            ("dense1 forward", b, 784, 128),
            ("dense1 dW", 128, b, 784),
            ("dense2 forward", b, 128, 10),
            ("dense2 dW", 10, b, 128),
            ("dense2 dX", b, 10, 128),
        ]
    n, cnn = 128, []
    for name, c, o, hw in (("conv1", 1, 32, 28 * 28), ("conv2", 32, 64, 14 * 14)):
        k, cols = c * 9, n * hw
        cnn += [(f"{name} forward", o, k, cols), (f"{name} dW", k, cols, o)]
        if name != "conv1":
            cnn.append((f"{name} dX", k, o, cols))
    cnn += [
        ("dense1 forward", n, 3136, 128),
        ("dense1 dW", 128, n, 3136),
        ("dense1 dX", n, 128, 3136),
    ]
    work["cnn b128"] = cnn
    return work


def time_gemm(m: int, k: int, n: int, threads: int, repeat: int, budget: float = 0.02) -> float:
    """Best seconds of one (m×k)·(k×n) float32 product into a preallocated result; each of
    the `repeat` timings runs products for about `budget` seconds (so a pathological thread
    setting on a busy machine costs little time)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=out)
        for _ in range(repeat):
            count, start = 0, time.perf_counter()
            while True:
                np.matmul(a, b, out=out)
                count += 1
                elapsed = time.perf_counter() - start
                if elapsed >= budget:
                    break
            best = min(best, elapsed / count)
    return best


def measure(m: int, k: int, n: int, repeat: int) -> dict[int, float]:
    """Seconds per product at 1 and 2 threads, measured alternately so both see the same
    neighbours on a shared machine."""
    times = {1: float("inf"), 2: float("inf")}
    for _ in range(2):
        for threads in (1, 2):
            times[threads] = min(times[threads], time_gemm(m, k, n, threads, repeat))
    return times


def cnn_layer_times(threads: int, batch: int = 128, repeat: int = 5) -> list[tuple]:
    """(layer, forward ms, backward ms) of one training step of the default `cnn()` on a
    random batch, best of `repeat`: where a CNN step goes besides its GEMMs. As in `fit`,
    backward stops at the first convolution, which skips its input gradient."""
    from threadpoolctl import threadpool_limits

    import chainrule as cr

    model = cr.models.cnn(seed=0)
    x = np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)
    rows = []
    with threadpool_limits(limits=threads, user_api="blas"):
        outs = [x]
        for layer in model.layers:
            outs.append(layer(outs[-1]))
        first = next(i for i, layer in enumerate(model.layers) if layer.parameters())
        grads = {len(model.layers) - 1: np.ones_like(outs[-1])}  # dL/d(output of layer i)
        for i in range(len(model.layers) - 1, first, -1):
            grads[i - 1] = model.layers[i].backward(grads[i])
        for i, layer in enumerate(model.layers):
            fwd = bwd = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                layer(outs[i])
                mid = time.perf_counter()
                if i >= first:
                    layer.backward(grads[i], input_grad=i > first)
                fwd, bwd = min(fwd, mid - start), min(bwd, time.perf_counter() - mid)
            rows.append((f"{i}: {type(layer).__name__}", fwd * 1e3, bwd * 1e3))
    return rows


def main(argv: list[str] | None = None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=2048, help="square size for the peak")
    args = parser.parse_args(argv)
    print(f"BLAS: {blas_info()}")
    spare = free_cores()  # what `chainrule train` would give a big model now
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1-minute load average {load:.2f} on {os.cpu_count()} cores; free cores now: {spare}")

    s = args.size
    peak = measure(s, s, s, args.repeat)
    flops = 2.0 * s**3
    rows = [("peak", f"{s}×{s}×{s}", *(f"{flops / peak[t] / 1e9:.1f}" for t in (1, 2)),
             f"{peak[1] / peak[2]:.2f}", "")]
    spent = {"1t": 0.0, "policy": 0.0, "best": 0.0}
    figures = [f"figure gemm_peak_gflops_{t}t {flops / peak[t] / 1e9:.1f}" for t in (1, 2)]
    for workload, gemms in workload_gemms().items():
        chosen = min(2, threads_for_macs(max(m * k * n for _, m, k, n in gemms), spare))
        total = {1: 0.0, 2: 0.0}
        for name, m, k, n in gemms:
            times = measure(m, k, n, args.repeat)
            spent["best"] += min(times.values())
            for t in (1, 2):
                total[t] += times[t]
            gf = {t: 2.0 * m * k * n / times[t] / 1e9 for t in (1, 2)}
            rows.append((f"{workload} {name}", f"{m}×{k}×{n}", f"{gf[1]:.1f}", f"{gf[2]:.1f}",
                         f"{times[1] / times[2]:.2f}", ""))
        rows.append((f"{workload}: all its GEMMs", "", "", "", f"{total[1] / total[2]:.2f}",
                     f"{chosen} thread{'s' if chosen > 1 else ''}"))
        spent["1t"] += total[1]
        spent["policy"] += total[chosen]
        key = workload.replace(" ", "_")
        figures += [f"figure gemm_step_ms_{key}_{t}t {total[t] * 1e3:.3f}" for t in (1, 2)]
    print(table(rows, ("GEMM", "m×k×n", "GFLOP/s 1t", "GFLOP/s 2t", "speed-up 2t", "policy")))
    cnn_threads = threads_for_macs(PARALLEL_MIN_MACS, spare)
    layers = cnn_layer_times(cnn_threads)
    total = sum(f + b for _, f, b in layers)
    print(f"\nwhere a CNN training step goes (batch 128, {cnn_threads} thread(s), ms, best of 5;"
          " the GEMMs are inside Conv2D and Dense):")
    print(table([(name, f"{f:.2f}", f"{b:.2f}", f"{(f + b) / total:.0%}")
                 for name, f, b in layers] + [("total", "", f"{total:.2f}", "")],
                ("layer", "forward", "backward", "share")))  # fmt: skip
    print(f"figure cnn_step_ms_{cnn_threads}t {total:.2f}")
    print("\n".join(figures))
    print(ratio_line("thread_policy_vs_1t", spent["policy"], spent["1t"]))
    print(ratio_line("thread_policy_vs_best", spent["policy"], spent["best"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
