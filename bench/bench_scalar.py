"""Benchmark the scalar engine `chainrule.Value` against karpathy's micrograd, in one run.

Two workloads:

1. One training step of a 2 -> 16 -> 16 -> 1 MLP (ReLU hidden, linear output) on 100 samples:
   forward over every sample, mean squared error, zero_grad, backward, SGD update.
   Both libraries get the same weights, so their losses must agree (checked).
2. A chain of 1,000,000 additions (x = x + one), then backward. micrograd's recursive
   topological sort raises RecursionError here; that is caught and reported.

Usage: ``python bench/bench_scalar.py [--repeats 5] [--chain-n 1000000] [--no-micrograd]``
(``pip install micrograd==0.1.0`` for the comparison; without it micrograd's side is skipped).

The last lines are machine-readable:
    ratio scalar_step <chainrule_time / micrograd_time>   (below 1: chainrule is faster)
    ratio scalar_chain <chainrule_time / micrograd_time or n/a>
Python's cyclic garbage collector stays on during each timed run, as in real use; a full
``gc.collect()`` before each run (untimed) keeps one library's garbage from being collected
on the other's clock (micrograd's graphs are reference cycles, chainrule's are not).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from chainrule.scalar import MLP
from chainrule.value import Value

N_SAMPLES, SIZES, LR = 100, [16, 16, 1], 0.05


def load_micrograd():
    """micrograd's (engine, nn) modules, or None when it is not installed."""
    try:
        from micrograd import engine, nn
    except ImportError:
        return None
    return engine, nn


def make_data(seed: int = 0) -> tuple[list[list[float]], list[float]]:
    """100 points in [-1, 1]^2 labelled +-1 by the sign of x0 * x1 (an XOR-like target)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(N_SAMPLES, 2))
    y = np.where(x[:, 0] * x[:, 1] > 0, 1.0, -1.0)
    return x.tolist(), y.tolist()


def copy_weights_to_micrograd(model: MLP, mg_model) -> None:
    """Give micrograd's MLP exactly the weights of the chainrule MLP."""
    for (w, b), layer in zip(model.weights(), mg_model.layers):
        for j, neuron in enumerate(layer.neurons):
            for k, wk in enumerate(neuron.w):
                wk.data = float(w[j, k])
            neuron.b.data = float(b[j])


def chainrule_step(model: MLP, xs, ys) -> tuple[float, dict[str, float]]:
    """One training step; returns (loss, seconds per phase)."""
    t0 = time.perf_counter()
    loss = Value.sum([(model(x) - y) ** 2 for x, y in zip(xs, ys)]) / len(xs)
    t1 = time.perf_counter()
    model.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    for p in model.parameters():
        p.data -= LR * p.grad
    t3 = time.perf_counter()
    return loss.data, {"forward": t1 - t0, "backward": t2 - t1, "update": t3 - t2}


def micrograd_step(model, xs, ys) -> tuple[float, dict[str, float]]:
    """The same step written the way micrograd's README does it."""
    t0 = time.perf_counter()
    loss = sum((model(x) - y) ** 2 for x, y in zip(xs, ys)) * (1.0 / len(xs))
    t1 = time.perf_counter()
    model.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    for p in model.parameters():
        p.data -= LR * p.grad
    t3 = time.perf_counter()
    return loss.data, {"forward": t1 - t0, "backward": t2 - t1, "update": t3 - t2}


def time_chain(value_cls, n: int) -> dict[str, float | str]:
    """Build x = x + one n times, then backward; seconds per phase or the error's name."""
    gc.collect()
    t0 = time.perf_counter()
    one, x = value_cls(1.0), value_cls(0.0)
    for _ in range(n):
        x = x + one
    t1 = time.perf_counter()
    try:
        x.backward()
    except RecursionError:
        return {"build": t1 - t0, "backward": "RecursionError"}
    t2 = time.perf_counter()
    if one.grad != n:
        raise AssertionError(f"wrong gradient on the chain: {one.grad} != {n}")
    return {"build": t1 - t0, "backward": t2 - t1, "total": t2 - t0}


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    phases = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    phases["step"] = statistics.median(sum(r.values()) for r in runs)
    return phases


def timed(step: Callable[[], tuple[float, dict[str, float]]], gc_on: bool) -> dict[str, float]:
    """Run one step after a full collection, with the cyclic GC on or off; its phase times."""
    gc.collect()
    if not gc_on:
        gc.disable()
    try:
        return step()[1]
    finally:
        gc.enable()


def bench_step(
    repeats: int, mg, gc_on: bool = True
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Median phase times for both libraries, steps interleaved so load noise hits both."""
    xs, ys = make_data()
    model = MLP(2, SIZES, seed=0)
    mg_model = None
    if mg is not None:
        mg_model = mg[1].MLP(2, list(SIZES))
        copy_weights_to_micrograd(model, mg_model)
        loss_cr, _ = chainrule_step(MLP.from_dense_weights(model.weights(), _acts()), xs, ys)
        loss_mg, _ = micrograd_step(mg_model, xs, ys)
        copy_weights_to_micrograd(model, mg_model)  # undo micrograd's check step
        if abs(loss_cr - loss_mg) > 1e-9 * abs(loss_cr):
            raise AssertionError(f"losses differ: chainrule {loss_cr}, micrograd {loss_mg}")
    cr_runs, mg_runs = [], []
    chainrule_step(model, xs, ys)  # warm-up
    for _ in range(repeats):
        cr_runs.append(timed(lambda: chainrule_step(model, xs, ys), gc_on))
        if mg_model is not None:
            mg_runs.append(timed(lambda: micrograd_step(mg_model, xs, ys), gc_on))
    return median_phases(cr_runs), (median_phases(mg_runs) if mg_runs else None)


def _acts() -> list[str]:
    return ["relu"] * (len(SIZES) - 1) + ["linear"]


def _fmt(seconds: float | str | None) -> str:
    if seconds is None:
        return "skipped"
    if isinstance(seconds, str):
        return seconds
    return f"{seconds * 1000:10.1f} ms"


def _ratio(a: float | str | None, b: float | str | None) -> str:
    if isinstance(a, float) and isinstance(b, float) and b > 0:
        return f"{a / b:.4f}"
    return "n/a"


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (median)")
    parser.add_argument("--chain-n", type=int, default=1_000_000, help="length of the chain")
    parser.add_argument("--no-micrograd", action="store_true", help="time chainrule only")
    args = parser.parse_args(argv)

    mg = None if args.no_micrograd else load_micrograd()
    out(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    if args.no_micrograd:
        out("micrograd: skipped (--no-micrograd)")
    else:
        out("micrograd: " + ("found" if mg else "not available (pip install micrograd==0.1.0)"))
    out("")

    cr_step, mg_step = bench_step(args.repeats, mg)
    out(f"training step: MLP 2->16->16->1, {N_SAMPLES} samples, median of {args.repeats}")
    out(f"{'phase':<14}{'chainrule':>16}{'micrograd':>16}{'speedup':>10}")
    for phase in ("forward", "backward", "update", "step"):
        mg_t = mg_step[phase] if mg_step else None
        speed = f"{mg_t / cr_step[phase]:9.1f}x" if mg_t else "       n/a"
        out(f"{phase:<14}{_fmt(cr_step[phase]):>16}{_fmt(mg_t):>16}{speed:>10}")
    cr_nogc, mg_nogc = bench_step(args.repeats, mg, gc_on=False)
    mg_t = mg_nogc["step"] if mg_nogc else None
    speed = f"{mg_t / cr_nogc['step']:9.1f}x" if mg_t else "       n/a"
    out(f"{'step, gc off':<14}{_fmt(cr_nogc['step']):>16}{_fmt(mg_t):>16}{speed:>10}")
    if mg_nogc:
        out("(micrograd's graphs are reference cycles, so the cyclic GC costs it much more)")
    out("")

    cr_chain = time_chain(Value, args.chain_n)
    mg_chain = time_chain(mg[0].Value, args.chain_n) if mg else None
    out(f"chain of {args.chain_n:,} additions, then backward")
    out(f"{'phase':<14}{'chainrule':>16}{'micrograd':>16}")
    for phase in ("build", "backward", "total"):
        mg_t = mg_chain.get(phase, "-") if mg_chain else None
        out(f"{phase:<14}{_fmt(cr_chain[phase]):>16}{_fmt(mg_t):>16}")
    out("")

    out(f"ratio scalar_step {_ratio(cr_step['step'], mg_step['step'] if mg_step else None)}")
    nogc = _ratio(cr_nogc["step"], mg_nogc["step"] if mg_nogc else None)
    out(f"ratio scalar_step_gc_off {nogc}")
    chain_ratio = _ratio(cr_chain["total"], mg_chain.get("total") if mg_chain else None)
    reason = ""
    if mg_chain is None:
        reason = "  (micrograd not available)"
    elif chain_ratio == "n/a":
        reason = f"  (micrograd: {mg_chain['backward']})"
    out(f"ratio scalar_chain {chain_ratio}{reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
