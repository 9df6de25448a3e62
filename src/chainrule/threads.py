"""How many BLAS threads a training run should use.

Measured with `bench/bench_gemm.py` on a quiet 2-core machine, a second OpenBLAS thread makes
big products up to 1.9× faster (the CNN's convolutions, 462 M multiply-adds) and the MLP's
64×784 by 784×128 product (6.4 M) 1.7× faster; products below about 1 M multiply-adds stay on
one thread inside OpenBLAS anyway. But OpenBLAS threads spin while they wait for each other,
so when another program keeps the second core busy, two threads make every product 2–100×
slower than one (measured on this shared machine, every shape). And a product split between
two threads may round differently (64×784 by 784×128 does), so a thread count that followed
the machine's load would make `chainrule train`'s weights depend on it.

Hence the policy, decided once per run: products below PARALLEL_MIN_MACS (every MLP the CLI
builds) keep one thread: never slower than one thread, and the same seed gives the same
weights. Bigger ones (the CNN) take the cores that are idle when training starts.

    with threadpool_limits(threads_for(model, (28, 28), batch_size), user_api="blas"):
        fit(...)
"""

from __future__ import annotations

import os
import time

import numpy as np

from .module import Module

# The largest GEMM (multiply-adds m·k·n) a run needs before it may use more threads.
PARALLEL_MIN_MACS = 50_000_000


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs since boot, from /proc/stat (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait; user … steal


def free_cores(sample: float = 0.1) -> int:
    """How many of this process's cores are idle now, at least 1: measured from /proc/stat
    over `sample` seconds on Linux, else from the 1-minute load average (which lags), else
    all of them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(sample)
        after = _cpu_times()
        busy = 1 - (after[0] - before[0]) / max(after[1] - before[1], 1)
        return max(1, min(cores, round(cores - busy * (os.cpu_count() or cores))))
    try:
        return max(1, min(cores, round(cores - os.getloadavg()[0])))
    except (AttributeError, OSError):  # Windows
        return cores


def threads_for_macs(macs: int, max_threads: int = 2) -> int:
    """BLAS threads for products of `macs` multiply-adds: 1 below PARALLEL_MIN_MACS."""
    return max(1, max_threads) if macs >= PARALLEL_MIN_MACS else 1


def layer_macs(model: Module, input_shape: tuple[int, ...], batch_size: int) -> list[int]:
    """Multiply-adds of each weighted layer's forward GEMM at `batch_size`.

    A layer with weight W maps each output position through W once: Dense has one position
    per example, a convolution one per output pixel, so its GEMM costs
    batch · |W| · (output size / output channels). Found by running one zero example
    through the model in eval mode (nothing is kept, nothing changes).
    """
    was_training = model.training
    model.eval()
    macs = []
    try:
        x = np.zeros((1, *input_shape), np.float32)
        for layer in getattr(model, "layers", [model]):
            x = layer(x)
            weight = getattr(layer, "weight", None)
            if weight is not None and x.ndim >= 2:
                positions = x[0].size // x.shape[1]
                macs.append(batch_size * weight.data.size * positions)
    finally:
        model.train(was_training)
    return macs


def threads_for(
    model: Module, input_shape: tuple[int, ...], batch_size: int, max_threads: int | None = None
) -> int:
    """A run's BLAS thread count: 1 when the model's largest GEMM at this batch size is below
    PARALLEL_MIN_MACS, else `max_threads` (default: the cores idle now, see `free_cores`)."""
    macs = max(layer_macs(model, input_shape, batch_size), default=0)
    if macs < PARALLEL_MIN_MACS:
        return 1
    return threads_for_macs(macs, free_cores() if max_threads is None else max_threads)
