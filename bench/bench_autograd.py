"""One MLP epoch (784→128→10, batch 64, softmax-CE, plain SGD, one BLAS thread) through the
Tensor graph and through the explicit `model.backward(...)` path, side by side.

    python bench/bench_autograd.py [--samples 60000] [--repeat 5]

Both paths run the same layer kernels (forward_with_cache / backward_from_cache); the graph
adds one node per layer and the loss, the topological sort and the bookkeeping. Ends with
`ratio autograd_mlp_epoch_b64 graph/explicit` (best wall-clock times; 1.00 = no overhead)
and the same ratio of best CPU times (`_cpu`), which a busy shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import blas_info, limit_threads, reexec_without_openblas_overrides, table  # noqa: E402

import chainrule as cr  # noqa: E402

IN, HIDDEN, OUT, LR, BATCH = 784, 128, 10, 0.01, 64


def make_data(n: int):
    rng = np.random.default_rng(0)
    return rng.random((n, IN), dtype=np.float32), rng.integers(0, OUT, n)


def make_model():
    model = cr.Sequential(cr.Dense(IN, HIDDEN, seed=0), cr.ReLU(), cr.Dense(HIDDEN, OUT, seed=1))
    return model, cr.optim.SGD(model.parameters(), lr=LR), cr.SoftmaxCrossEntropy()


def explicit_epoch(x, y):
    model, opt, loss_fn = make_model()
    rng = np.random.default_rng(0)

    def run():
        perm = rng.permutation(len(x))
        for s in range(0, len(x), BATCH):
            idx = perm[s : s + BATCH]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx])
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()

    return run


def graph_epoch(x, y):
    model, opt, loss_fn = make_model()
    rng = np.random.default_rng(0)

    def run():
        perm = rng.permutation(len(x))
        for s in range(0, len(x), BATCH):
            idx = perm[s : s + BATCH]
            opt.zero_grad()
            loss_fn(model(cr.Tensor(x[idx])), y[idx]).backward()
            opt.step()

    return run


def interleaved(runs: dict, repeat: int) -> dict[str, tuple[float, float, float]]:
    """{name: (best wall s, median wall s, best CPU s)}, the two taking turns so machine noise
    hits both. CPU time (this process's, one thread) does not count the time a busy neighbour
    on a shared machine takes the core away, so it is the steadier of the two."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {name: (min(wall[name]), statistics.median(wall[name]), min(cpu[name])) for name in runs}


def main(argv=None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    x, y = make_data(args.samples)
    cr.set_num_threads(1)  # chainrule's own elementwise threads too: one core, both paths
    with limit_threads(1):
        print(f"BLAS: {blas_info()}; samples: {args.samples}; batch {BATCH}")
        runs = {"explicit": explicit_epoch(x, y), "graph": graph_epoch(x, y)}
        for run in runs.values():
            run()  # warm-up
        times = interleaved(runs, args.repeat)
    steps = -(-args.samples // BATCH)
    rows = [
        (name, f"{best:.3f}", f"{median:.3f}", f"{cpu:.3f}", f"{cpu / steps * 1e6:.0f}")
        for name, (best, median, cpu) in times.items()
    ]
    print(table(rows, ("path", "best wall s", "median wall s", "best CPU s", "CPU µs/step")))
    (explicit, _, explicit_cpu), (graph, _, graph_cpu) = times["explicit"], times["graph"]
    print(f"figure autograd_overhead_us_per_step {(graph_cpu - explicit_cpu) / steps * 1e6:.1f}")
    print(f"ratio autograd_mlp_epoch_b64 {graph / explicit:.3f}")
    print(f"ratio autograd_mlp_epoch_b64_cpu {graph_cpu / explicit_cpu:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
