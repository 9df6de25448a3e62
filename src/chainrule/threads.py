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
weights. Bigger ones (the CNN's convolutions, 462 M multiply-adds) take every free core the
process may run on: on an idle machine 2 threads made the CNN epoch ~1.3–1.9× faster.

The count is decided once, when a run starts, from the CPUs this process may run on and how
busy THOSE CPUs are right now (`free_cores`: /proc/stat's per-CPU lines over a quarter of a
second). A CPU counts as taken only when other programs keep a whole core's worth of it busy:
on an idle machine (or one whose last job just ended: its CPUs are idle at once) the CNN gets
every core, and on a machine kept busy by others it gets one thread, because OpenBLAS's
threads spin-wait for each other and two of them on a busy machine made the CNN's epoch
17× slower than one (70 s against 4.3 s, measured at a load of 13 on 2 cores). The old
estimate mixed the whole machine's busy time with this process's CPU count and a one-minute
load average that lags. A user who knows better picks the count: `chainrule train --threads
N` or the environment variable CHAINRULE_NUM_THREADS=N (N ≥ 1; BLAS gets N threads,
chainrule's own work at most N).

The elementwise default: after each GEMM OpenBLAS keeps its threads spinning, by default for
2**28 cycles (~0.1 s), longer than the gap before the next GEMM: a BLAS thread then always
holds a core, and work split onto that core waits for it. Measured on 2 cores, a CNN epoch
took 3.0 s on 2 elementwise threads against 2.45 s on 1 with OpenBLAS's default, and 2.1 s on
2 with `OPENBLAS_THREAD_TIMEOUT=4` (its threads sleep at once). So the default is
min(2, CPUs) when the environment sets OPENBLAS_THREAD_TIMEOUT below 20, else 1.
"""

from __future__ import annotations

import os
import time
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


def _affinity() -> set[int] | None:
    """The ids of the CPUs this process may run on (Linux), else None."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def available_cores() -> int:
    """How many CPUs this process may run on, at least 1."""
    cpus = _affinity()
    return max(1, len(cpus) if cpus is not None else os.cpu_count() or 1)


def _cpu_times() -> dict[int, tuple[int, int]] | None:
    """{cpu: (idle, total)} clock ticks since boot from /proc/stat's cpuN lines, else None."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
        ticks = {int(v[0][3:]): [int(t) for t in v[1:9]] for v in lines}
    except (OSError, ValueError, IndexError):
        return None
    return {cpu: (t[3] + t[4], sum(t)) for cpu, t in ticks.items()}  # idle + iowait; all


def busy_cores(cpus: set[int], sample: float = 0.25) -> float | None:
    """How many of `cpus` other programs keep busy, averaged over `sample` seconds (this
    process sleeps meanwhile, so all of it is theirs), or None without /proc/stat."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample)
    after = _cpu_times()
    busy = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            idle, total = (a - b for a, b in zip(after[cpu], before[cpu]))
            busy += 1 - idle / total if total > 0 else 0.0
    return busy


def free_cores(sample: float = 0.25) -> int:
    """The cores of this process's CPUs that are free now, at least 1: its CPUs minus every
    whole core's worth of other programs' work on them (`busy_cores`). All of them where
    that cannot be measured (no /proc/stat)."""
    cpus = _affinity()
    if cpus is None:
        return available_cores()
    busy = busy_cores(cpus, sample)
    return max(1, len(cpus) - int(busy or 0.0))


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
    below PARALLEL_MIN_MACS, else `max_threads` (default: the free cores, `free_cores`)."""
    chosen = threads if threads is not None else env_threads()
    if chosen is not None:
        return _check_count(chosen, "threads")
    macs = max(layer_macs(model, input_shape, batch_size), default=0)
    if macs < PARALLEL_MIN_MACS:
        return 1
    return threads_for_macs(macs, free_cores() if max_threads is None else max_threads)
