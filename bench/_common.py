"""Shared helpers for the benchmark scripts: a quiet BLAS, thread limits, timers, reporting.

This machine may set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (needed by old OpenBLAS builds)
which slow a current NumPy. A benchmark re-executes itself once without them, for its own
process only, and prints which BLAS kernel actually runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

SLOW_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reexec_without_openblas_overrides() -> None:
    """Restart this script once with the OpenBLAS overrides removed from its environment."""
    if any(k in os.environ for k in SLOW_ENV) and not os.environ.get("CHAINRULE_BENCH_CHILD"):
        env = {k: v for k, v in os.environ.items() if k not in SLOW_ENV}
        env["CHAINRULE_BENCH_CHILD"] = "1"
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def blas_info() -> str:
    """'openblas 0.3.x SkylakeX, 2 threads' — what threadpoolctl sees for NumPy's BLAS."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl)"
    rows = [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}, "
        f"{i.get('num_threads')} threads"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "; ".join(rows) or "none found"


def limit_threads(n: int):
    """Context manager pinning NumPy's BLAS (and torch, if loaded) to n threads."""
    from threadpoolctl import threadpool_limits

    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return threadpool_limits(limits=n, user_api="blas")


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, float]:
    """(min, median) wall time of `fn()` over `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def table(rows: list[tuple], header: tuple) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio_line(name: str, ours: float | None, peer: float | None) -> str:
    """The line run_all.py collects: `ratio <name> <ours/peer>` (n/a when a side is missing)."""
    if ours is None or peer is None or peer == 0:
        return f"ratio {name} n/a"
    return f"ratio {name} {ours / peer:.3f}"
