"""Benchmark the scalar engine `chainrule.Value` against karpathy's micrograd, in one run.

Two workloads:

1. One training step of a 2 -> 16 -> 16 -> 1 MLP (ReLU hidden, linear output) on 100 samples:
   forward over every sample, mean squared error, zero_grad, backward, SGD update.
   Both libraries get the same weights, so their losses must agree (checked).
2. A chain of 1,000,000 additions (x = x + one), then backward. micrograd's recursive
   topological sort raises RecursionError here; that is caught and reported.

Every measurement runs in a FRESH Python process (one per engine, per workload, per garbage
collector mode), so neither engine inherits the other's heap or garbage. In each process both
libraries are imported (the same starting heap), one untimed warm-up step runs, then
``--repeats`` timed steps; the best (fastest) step counts. Before each timed step an untimed
``gc.collect()`` clears the previous step's garbage (micrograd's graphs are reference cycles,
chainrule's are not). Two modes:

- GC on: Python's cyclic garbage collector runs during the step, as in real use;
- GC off: ``gc.disable()`` during the step, which times the engine itself.

Usage: ``python bench/bench_scalar.py [--repeats 5] [--rounds 1] [--chain-n 1000000]
[--no-micrograd]`` (``pip install micrograd==0.1.0`` for the comparison; without it
micrograd's side is skipped). ``--rounds N`` runs the whole set of processes N times,
interleaved, and keeps each one's best: steadier figures on a busy machine.

The last lines are machine-readable (chainrule time / micrograd time, below 1: faster):
    ratio scalar_step <GC on>
    ratio scalar_step_gc_off <GC off>
    ratio scalar_chain <chain of additions, or n/a>
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from chainrule.scalar import MLP
from chainrule.value import Value

N_SAMPLES, SIZES, LR = 100, [16, 16, 1], 0.05
ENGINES = ("chainrule", "micrograd")
PHASES = ("forward", "backward", "update", "step")


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


# ------------------------------------------------------------------ inside a fresh process


def child_step(engine: str, gc_on: bool, repeats: int) -> dict:
    """Time `repeats` training steps of one engine; the fastest step's phases, first loss."""
    mg = load_micrograd()  # imported by both engines' processes: the same starting heap
    xs, ys = make_data()
    model = MLP(2, SIZES, seed=0)
    step: Callable = chainrule_step
    if engine == "micrograd":
        mg_model = mg[1].MLP(2, list(SIZES))
        copy_weights_to_micrograd(model, mg_model)
        model, step = mg_model, micrograd_step
    first_loss, _ = step(model, xs, ys)  # warm-up, and the loss both engines must agree on
    best: dict[str, float] | None = None
    for _ in range(repeats):
        gc.collect()  # untimed: the previous step's garbage is not this step's cost
        if not gc_on:
            gc.disable()
        try:
            _, phases = step(model, xs, ys)
        finally:
            gc.enable()
        phases["step"] = sum(phases.values())
        if best is None or phases["step"] < best["step"]:
            best = phases
    return {"loss": first_loss, **(best or {})}


def child_chain(engine: str, n: int) -> dict[str, float | str]:
    """Build x = x + one n times, then backward; seconds per phase or the error's name."""
    mg = load_micrograd()
    value_cls = mg[0].Value if engine == "micrograd" else Value
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


def run_child(args: list[str]) -> dict:
    """Run this script in a fresh Python process with ``--child ...``; its JSON result."""
    cmd = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- reporting


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


def _speedup(cr: float, mg: float | None) -> str:
    return f"{mg / cr:9.1f}x" if mg else "       n/a"


def measure_steps(engines: list[str], repeats: int, rounds: int) -> dict[tuple[str, str], dict]:
    """{(engine, "on"|"off"): fastest phases over all rounds}, one process per measurement."""
    results: dict[tuple[str, str], dict] = {}
    for _ in range(rounds):
        for mode in ("on", "off"):
            for engine in engines:
                r = run_child(["step", engine, mode, str(repeats)])
                old = results.get((engine, mode))
                if old is None or r["step"] < old["step"]:
                    results[(engine, mode)] = r
    return results


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per process (best)")
    parser.add_argument("--rounds", type=int, default=1, help="processes per measurement (best)")
    parser.add_argument("--chain-n", type=int, default=1_000_000, help="length of the chain")
    parser.add_argument("--no-micrograd", action="store_true", help="time chainrule only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:  # one measurement, in this fresh process: print it as JSON
        kind, engine, *rest = args.child
        if kind == "step":
            result = child_step(engine, rest[0] == "on", int(rest[1]))
        else:
            result = child_chain(engine, int(rest[0]))
        out(json.dumps(result))
        return 0

    mg = None if args.no_micrograd else load_micrograd()
    out(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    if args.no_micrograd:
        out("micrograd: skipped (--no-micrograd)")
    else:
        out("micrograd: " + ("found" if mg else "not available (pip install micrograd==0.1.0)"))
    out("")

    engines = ["chainrule", "micrograd"] if mg else ["chainrule"]
    steps = measure_steps(engines, args.repeats, args.rounds)
    cr_on, cr_off = steps[("chainrule", "on")], steps[("chainrule", "off")]
    mg_on, mg_off = steps.get(("micrograd", "on")), steps.get(("micrograd", "off"))
    if mg_on is not None and abs(cr_on["loss"] - mg_on["loss"]) > 1e-9 * abs(cr_on["loss"]):
        raise AssertionError(f"losses differ: chainrule {cr_on['loss']}, micrograd {mg_on['loss']}")

    out(
        f"training step: MLP 2->16->16->1, {N_SAMPLES} samples, best of {args.repeats} "
        f"(x {args.rounds} rounds), each engine in a fresh process"
    )
    for label, cr, mgr in (("GC on", cr_on, mg_on), ("GC off", cr_off, mg_off)):
        out(f"{label + ': phase':<16}{'chainrule':>16}{'micrograd':>16}{'speedup':>10}")
        for phase in PHASES:
            mg_t = mgr[phase] if mgr else None
            out(f"{phase:<16}{_fmt(cr[phase]):>16}{_fmt(mg_t):>16}{_speedup(cr[phase], mg_t)}")
        out("")
    if mg_on is not None:
        out(f"loss of the first step: {cr_on['loss']:.12g} (both engines)")
        out(
            f"speedup vs micrograd: GC on {mg_on['step'] / cr_on['step']:.1f}x, "
            f"GC off {mg_off['step'] / cr_off['step']:.1f}x"
        )
        out("(micrograd's graphs are reference cycles, so the cyclic GC costs it much more)")
    out("")

    cr_chain = run_child(["chain", "chainrule", str(args.chain_n)])
    mg_chain = run_child(["chain", "micrograd", str(args.chain_n)]) if mg else None
    out(f"chain of {args.chain_n:,} additions, then backward (GC on, fresh processes)")
    out(f"{'phase':<16}{'chainrule':>16}{'micrograd':>16}")
    for phase in ("build", "backward", "total"):
        mg_t = mg_chain.get(phase, "-") if mg_chain else None
        out(f"{phase:<16}{_fmt(cr_chain[phase]):>16}{_fmt(mg_t):>16}")
    out("")

    out(f"ratio scalar_step {_ratio(cr_on['step'], mg_on['step'] if mg_on else None)}")
    out(f"ratio scalar_step_gc_off {_ratio(cr_off['step'], mg_off['step'] if mg_off else None)}")
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
