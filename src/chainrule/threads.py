"""How many threads chainrule uses: the one module that owns every thread setting.

Two kinds of threads do the work of a training step:
- BLAS's threads run the matrix products (the GEMMs of Dense and Conv2D). Their count is
  set per run (`threads_for`, `blas_limit`) or for the whole process (`limit_process`);
  threadpoolctl talks to whichever BLAS NumPy was built with.
- chainrule's own worker threads split big elementwise work (ReLU, pooling, the im2col
  copies) along the batch (`set_num_threads` / `get_num_threads`, like torch's). The workers
  themselves, and the one function that splits work onto them, live in `_threads`.

The policy for BLAS, measured with `bench/bench_gemm.py` and `bench/bench_cnn.py` on 2-core
machines: products below PARALLEL_MIN_MACS multiply-adds (every MLP the CLI builds) keep ONE
thread: a second one made the MLP's 64×784 by 784×128 epoch slower (1.0 s against 0.58 s),
and a product split between threads may round differently, so the same seed gives the same
weights. Bigger ones (the CNN's convolutions, 462 M multiply-adds) take every core the
process may run on: on an idle machine 2 threads made the CNN epoch ~1.3–1.9× faster.

The count is fixed when a run starts and does not follow the machine's load: an estimate of
idle cores lags (a process that just ended still counts as busy, and chainrule's own spinning
BLAS threads count against it), which used to halve the CNN's speed after any other job.
A user who shares the machine picks the count: `chainrule train --threads N` or the
environment variable CHAINRULE_NUM_THREADS=N (N ≥ 1; BLAS gets N threads, chainrule's own
work at most N).

The elementwise default: after each GEMM OpenBLAS keeps its threads spinning, by default for
2**28 cycles (~0.1 s), longer than the gap before the next GEMM: a BLAS thread then always
holds a core, and work split onto that core waits for it. Measured on 2 cores, a CNN epoch
took 3.0 s on 2 elementwise threads against 2.45 s on 1 with OpenBLAS's default, and 2.1 s on
2 with `OPENBLAS_THREAD_TIMEOUT=4` (its threads sleep at once). So the default is
min(2, CPUs) when the environment sets OPENBLAS_THREAD_TIMEOUT below 20, else 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .module import Module

# The largest GEMM (multiply-adds m·k·n) a run needs before it may use more threads.
PARALLEL_MIN_MACS = 50_000_000

ENV_VAR = "CHAINRULE_NUM_THREADS"


# ---- chainrule's own (elementwise) threads ----------------------------------------------------
def default_num_threads() -> int:
    """min(2, CPUs) when OpenBLAS's threads sleep soon after a GEMM, 1 otherwise (above)."""
    try:
        quiet_blas = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")) < 20
    except ValueError:
        quiet_blas = False
    return max(1, min(2, os.cpu_count() or 1)) if quiet_blas else 1


_num_threads = default_num_threads()


def set_num_threads(n: int) -> None:
    """Use up to `n` threads for chainrule's elementwise and copying work (1: none at all).

    The default is `default_num_threads()`: 2 (on 2+ CPUs) when OpenBLAS's threads do not
    spin between GEMMs, else 1. Under MPI each rank uses 1. BLAS's own threads are set
    apart (`blas_limit`, `limit_process`).
    """
    global _num_threads
    _num_threads = _check_count(n, "set_num_threads: n")


def get_num_threads() -> int:
    """The number of threads chainrule's own array work may use (see `set_num_threads`)."""
    return _num_threads


# ---- BLAS threads -----------------------------------------------------------------------------
def _check_count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be an int ≥ 1, got {n!r}")
    return int(n)


def available_cores() -> int:
    """The CPUs this process may run on (its affinity on Linux), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_threads(environ=None) -> int | None:
    """The thread count CHAINRULE_NUM_THREADS asks for, or None when it is unset or empty.
    Raises a one-line ValueError naming the variable for anything but a whole number ≥ 1."""
    text = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{ENV_VAR} must be a whole number ≥ 1 (e.g. {ENV_VAR}=2), got {text!r}")
    return int(text)


@contextmanager
def blas_limit(n: int | None) -> Iterator[None]:
    """Limit BLAS to `n` threads inside the block (None, or no threadpoolctl: unchanged)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency of chainrule, but BLAS works without the limit
        threadpool_limits = None
    if n is None or threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=_check_count(n, "BLAS threads"), user_api="blas"):
        yield


def limit_process(n: int) -> None:
    """From now on, for the whole process: BLAS and chainrule's own work on at most `n`
    threads each (an MPI rank: N ranks on N cores fill the machine, more would spin)."""
    n = _check_count(n, "threads")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")  # not as a context: for the whole process
    set_num_threads(min(n, get_num_threads()))


def threads_for_macs(macs: int, max_threads: int) -> int:
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
    model: Module,
    input_shape: tuple[int, ...],
    batch_size: int,
    max_threads: int | None = None,
    threads: int | None = None,
) -> int:
    """A run's BLAS thread count. `threads` (a user's --threads), else CHAINRULE_NUM_THREADS,
    decides when given. Otherwise 1 when the model's largest GEMM at this batch size is
    below PARALLEL_MIN_MACS, else `max_threads` (default: every core, `available_cores`)."""
    chosen = threads if threads is not None else env_threads()
    if chosen is not None:
        return _check_count(chosen, "threads")
    macs = max(layer_macs(model, input_shape, batch_size), default=0)
    return threads_for_macs(macs, available_cores() if max_threads is None else max_threads)
