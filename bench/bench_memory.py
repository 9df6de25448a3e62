"""Peak memory (RSS) of training the default MLP on full-MNIST-sized data for one epoch.

    python bench/bench_memory.py [--data mnist|DIR] [--samples 60000]

Uses the real full MNIST when `--data` finds it, else synthetic data of the same shape.
Prints `peak_rss_mb <value>` and `ratio memory_vs_500mb <peak / 500 MB>` (target below 1).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import reexec_without_openblas_overrides  # noqa: E402

import chainrule as cr  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load(name: str | None, samples: int):
    if name:
        try:
            (x, y), (xt, yt) = cr.data.load(name)
            return x, y, xt, yt, f"{name} (real)"
        except (ValueError, OSError) as err:
            print(f"could not load {name!r} ({err}); using synthetic data")
    rng = np.random.default_rng(0)
    x = rng.random((samples, 28, 28), dtype=np.float32)
    return x, rng.integers(0, 10, samples), x[:10_000], rng.integers(0, 10, 10_000), "synthetic"


def main(argv=None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist", help="dataset name or folder; '' = synthetic")
    parser.add_argument("--samples", type=int, default=60_000)
    args = parser.parse_args(argv)
    base = rss_mb()
    x, y, xt, yt, source = load(args.data, args.samples)
    loaded = rss_mb()
    model = cr.Sequential(
        cr.Flatten(), cr.Dense(784, 128, seed=0), cr.ReLU(), cr.Dense(128, 10, seed=1)
    )
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = time.perf_counter()
    cr.fit(
        model,
        cr.SoftmaxCrossEntropy(),
        opt,
        x,
        y,
        epochs=1,
        batch_size=64,
        validation=(xt, yt),
        progress=False,
    )
    seconds = time.perf_counter() - start
    peak = rss_mb()
    print(f"data: {source}, {len(x):,} training images ({x.nbytes / 2**20:.0f} MB as float32)")
    print(
        f"RSS after imports {base:.0f} MB, after loading {loaded:.0f} MB, "
        f"peak while training {peak:.0f} MB; one epoch {seconds:.2f} s"
    )
    print(f"peak_rss_mb {peak:.0f}")
    print(f"ratio memory_vs_500mb {peak / 500:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
