"""How many BLAS threads a training run should use.

A second thread splits each matrix product in two, which pays only when the product is big
enough to outweigh the hand-over: measured with `bench/bench_gemm.py` on a 2-core machine,
the MLP's products (64×784 by 784×128: 6.4 M multiply-adds) run no faster on two threads,
while the CNN's largest convolution (64×288 by 288×25088: 462 M) runs about 1.9× faster.
OpenBLAS threads also spin while they wait for each other, so a second thread on a core that
another program keeps busy makes every product several times slower (up to 100× measured).
Hence the policy, decided once per run: one thread unless the model's largest product is
big *and* the machine has a second core to spare.

    with threadpool_limits(threads_for(model, (28, 28), batch_size), user_api="blas"):
        fit(...)
"""

from __future__ import annotations

import os

import numpy as np

from .module import Module

# The largest GEMM (multiply-adds m·k·n) a run must have before it uses more threads; from
# bench/bench_gemm.py (docs/benchmarks.md): below it a second thread gains nothing.
PARALLEL_MIN_MACS = 50_000_000


def free_cores() -> int:
    """The cores this process may use minus those busy with other work (the 1-minute load
    average, rounded), at least 1; all of them where the load average is unknown."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return cores
    return max(1, min(cores, round(cores - load)))


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
    """A run's BLAS thread count, from the model's largest GEMM at this batch size; at most
    `max_threads` (default: the cores not busy right now, see `free_cores`)."""
    if max_threads is None:
        max_threads = free_cores()
    return threads_for_macs(max(layer_macs(model, input_shape, batch_size), default=0),
                            max_threads)
