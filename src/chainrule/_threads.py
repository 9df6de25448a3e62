"""chainrule's own worker threads, and the one place that splits work onto them.

The GEMMs run on BLAS's threads. Everything else, ReLU, pooling, the im2col copies, is
NumPy ufuncs and copies on one thread, and those release the GIL on large arrays. So a big
operation on an image batch can be cut along its outermost axis in memory (the batch N, or
the channels C of a channel-major batch) into one piece per thread, the pieces computed at
once on a few persistent worker threads:

    y = elementwise(np.maximum, x, 0)      # ReLU: the same numbers as np.maximum(x, 0)

Each piece is computed by exactly the operations the whole would be, in the same order, so
the result is bit-for-bit the serial one. Small arrays stay on the calling thread: waking
the workers costs ~50 µs, which `np.maximum` on 256K floats (~85 µs) barely repays.

How many threads (`set_num_threads`, the default, BLAS's count) is decided in
`chainrule.threads`, which owns every thread setting; this module only reads it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .threads import get_num_threads

# Elements of the largest array an operation touches below which it stays serial. Measured
# on 2 cores (np.maximum, float32): 128K elements 0.04 ms serial, 0.06 ms on 2 threads;
# 512K: 0.17 against 0.11; the break-even lies near 256K.
MIN_PARALLEL_SIZE = 2**18


_workers: list[ThreadPoolExecutor] = []
_local = threading.local()  # .inside: this thread is a worker (nested work runs serially)
_lock = threading.Lock()


def _shutdown_workers() -> None:
    global _workers
    for w in _workers:
        w.shutdown(wait=False)
    _workers = []


def _forget_workers_after_fork() -> None:
    global _workers, _lock
    _workers, _lock = [], threading.Lock()  # the parent's threads do not exist in a child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def _pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})  # 0: the calling thread
    _local.inside = True


def _mark_inside() -> None:
    _local.inside = True


def _get_workers() -> list[ThreadPoolExecutor]:
    """One single-thread executor per thread, created on first use.

    Where the threads use every CPU the process may run on, worker k is pinned to the k-th
    CPU: Linux wakes a thread on the CPU of the thread that woke it, and an unpinned worker
    was measured waiting there behind the caller, turning 2 threads into 1 ~half the time.
    """
    global _workers
    count = get_num_threads()
    with _lock:
        if len(_workers) != count:
            _shutdown_workers()
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            pin = 0 < len(cpus) <= count
            for k in range(count):
                init, args = (_pin, (cpus[k % len(cpus)],)) if pin else (_mark_inside, ())
                _workers.append(ThreadPoolExecutor(1, "chainrule", initializer=init, initargs=args))
        return _workers


def outer_axis(a: np.ndarray) -> int:
    """The axis whose step in memory is the largest: slices along it are whole blocks."""
    return int(np.argmax(np.abs(a.strides))) if a.ndim else 0


def slices(n: int, size: int) -> list[slice]:
    """Consecutive slices that cut range(n) into get_num_threads() pieces, one per thread;
    [slice(0, n)] (serial) when the work, `size` elements, is under MIN_PARALLEL_SIZE, when
    threads are off, or on a worker thread."""
    count = min(get_num_threads(), n)
    if count < 2 or size < MIN_PARALLEL_SIZE or inside_worker():
        return [slice(0, n)]
    bounds = [n * k // count for k in range(count + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def parts(a: np.ndarray, axis: int | None = None) -> list[tuple]:
    """Index tuples cutting `a` along `axis` (default: its outermost axis in memory) into
    `slices` of it: the whole of `a` when it is small."""
    if a.ndim == 0:
        return [()]
    axis = outer_axis(a) if axis is None else axis
    return [(*(slice(None),) * axis, s) for s in slices(a.shape[axis], a.size)]


def inside_worker() -> bool:
    """True on one of the workers (work started there runs serially: no nested waits)."""
    return getattr(_local, "inside", False)


def run(work: Callable, items: Sequence) -> list:
    """[work(item) for item in items], each item on its own worker thread, the caller
    waiting for all; on the calling thread when there is only one item."""
    if len(items) < 2:
        return [work(item) for item in items]
    workers = _get_workers()
    futures = [workers[k % len(workers)].submit(work, item) for k, item in enumerate(items)]
    return [f.result() for f in futures]


def elementwise(f: Callable, *args, out: np.ndarray | None = None) -> np.ndarray:
    """f(*args, out=out) computed piece by piece on the threads, for an elementwise `f` (a
    ufunc, or a function of ufuncs taking `out=`, None by default). Array arguments have
    out's shape; the rest (scalars) are passed as they are. out defaults to an array laid
    out like the first argument, of the result type of the arguments."""
    if out is None and (args[0].size < MIN_PARALLEL_SIZE or get_num_threads() == 1):
        return f(*args)  # the serial path, without the bookkeeping below (nor an out=None)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    if out is None:
        out = np.empty_like(arrays[0], dtype=np.result_type(*args))
    if any(a.shape != out.shape for a in arrays):
        raise ValueError(
            f"elementwise: arguments of shapes {[a.shape for a in arrays]}, out {out.shape}"
        )

    pieces = parts(out)
    if len(pieces) == 1:
        f(*args, out=out)
        return out

    def piece(index: tuple) -> None:
        f(*(a[index] if isinstance(a, np.ndarray) else a for a in args), out=out[index])

    run(piece, pieces)
    return out
