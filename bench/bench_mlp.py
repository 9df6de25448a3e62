"""One epoch of MLP 784→128→10 (softmax-CE, plain SGD) in chainrule, PyTorch CPU,
scikit-learn and a hand-written NumPy loop, measured in the same run; then inference.

    python bench/bench_mlp.py [--samples 60000] [--threads 2] [--repeat 3]

Ends with `ratio mlp_epoch_b64_torch ...` lines (chainrule time / peer time: below 1 is
faster than the peer; for inference the ratio is of times too, so below 1 = more samples/s);
`mlp_epoch_b64_numpy_cpu` is the NumPy-loop ratio of best CPU times, which a busy shared
machine disturbs less than wall-clock time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    best_of,
    blas_info,
    limit_threads,
    ratio_line,
    reexec_without_openblas_overrides,
    table,
)

import chainrule as cr  # noqa: E402

IN, HIDDEN, OUT, LR = 784, 128, 10, 0.01


def make_data(n: int):
    rng = np.random.default_rng(0)
    return rng.random((n, IN), dtype=np.float32), rng.integers(0, OUT, n)


def chainrule_epoch(x, y, batch_size):
    model = cr.Sequential(cr.Dense(IN, HIDDEN, seed=0), cr.ReLU(), cr.Dense(HIDDEN, OUT, seed=1))
    opt = cr.optim.SGD(model.parameters(), lr=LR)
    loss_fn = cr.SoftmaxCrossEntropy()
    return lambda: cr.fit(
        model, loss_fn, opt, x, y, epochs=1, batch_size=batch_size, progress=False
    )


def numpy_epoch(x, y, batch_size, bare: bool = False):
    """The same maths written as one plain loop, with the care a library should take too:
    the same float32 data and shuffling (a fresh permutation per epoch, fancy-indexed
    batches), the softmax computed once, in-place where it changes nothing else. Like `fit`
    it sums each batch's loss and correct predictions (the epoch's History numbers) and
    leaves the gradients intact after the update.

    `bare=True` is the floor below that: nothing reported, and the update consumes the
    gradients in place (`g *= lr; W -= g`), which a library cannot do: its users read
    `p.grad` after `opt.step()` (PyTorch's contract too)."""
    rng = np.random.default_rng(0)
    W1 = (rng.standard_normal((HIDDEN, IN)) * 0.05).astype(np.float32)
    W2 = (rng.standard_normal((OUT, HIDDEN)) * 0.05).astype(np.float32)
    b1, b2 = np.zeros(HIDDEN, np.float32), np.zeros(OUT, np.float32)

    def run():
        perm = rng.permutation(len(x))
        total_loss, correct = 0.0, 0
        for s in range(0, len(x), batch_size):
            idx = perm[s : s + batch_size]
            xb, yb = x[idx], y[idx]
            n = len(yb)
            rows = np.arange(n)
            h = xb @ W1.T
            h += b1
            a = np.maximum(h, 0)
            z = a @ W2.T
            z += b2
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            total = p.sum(axis=1, keepdims=True)
            p /= total
            if not bare:  # mean loss −log p[y] = log Σ e^z − z[y]; accuracy
                total_loss += float(np.log(total).sum()) - float(z[rows, yb].sum())
                correct += int(np.count_nonzero(p.argmax(axis=1) == yb))
            p[rows, yb] -= 1
            p /= n
            gW2, gb2 = p.T @ a, p.sum(0)
            da = p @ W2
            da *= h > 0
            gW1, gb1 = da.T @ xb, da.sum(0)
            for param, grad in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
                if bare:
                    grad *= LR
                    param -= grad
                else:
                    param -= LR * grad
        return total_loss / len(x), correct / len(x)

    return run


def bare_numpy_epoch(x, y, batch_size):
    return numpy_epoch(x, y, batch_size, bare=True)


def torch_epoch(x, y, batch_size):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT)
    )
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        perm = torch.randperm(len(xt))
        for s in range(0, len(xt), batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    return run


def sklearn_epoch(x, y, batch_size):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def run():
        clf = MLPClassifier(
            hidden_layer_sizes=(HIDDEN,),
            solver="sgd",
            batch_size=batch_size,
            learning_rate_init=LR,
            momentum=0.0,
            max_iter=1,
            alpha=0.0,
            shuffle=True,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)

    return run


def inference(x, n=10_000):
    import torch

    model = cr.Sequential(cr.Dense(IN, HIDDEN, seed=0), cr.ReLU(), cr.Dense(HIDDEN, OUT, seed=1))
    net = torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT)
    ).eval()
    xs, xt = x[:n], torch.from_numpy(x[:n])

    def ours():
        cr.predict(model, xs, batch_size=n)

    def theirs():
        with torch.inference_mode():
            net(xt)

    return ours, theirs


def gemm_gflops(size: int = 2048, repeat: int = 5) -> float:
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    best, _ = best_of(lambda: a @ a, repeat)
    return 2 * size**3 / best / 1e9


def mlp_epoch_flops(n: int) -> float:
    """Multiply-adds ×2 of one training epoch: forward, dW for both layers, dX of layer 2."""
    forward = IN * HIDDEN + HIDDEN * OUT
    backward = IN * HIDDEN + 2 * HIDDEN * OUT
    return 2.0 * n * (forward + backward)


def interleaved(runs: dict, repeat: int) -> dict[str, tuple[float, float, float]]:
    """{name: (best, median, best CPU) seconds}, the implementations taking turns run by run,
    so a busy neighbour on a shared machine slows all of them alike rather than whichever ran
    then. The turn order rotates each round, so no implementation always runs first, on the
    caches the last one (scikit-learn) left cold. CPU time (this process's) leaves out the
    time a neighbour takes the core away."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runs[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name].append(time.process_time() - start_cpu)
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t), min(cpu[name])) for name, t in times.items()}


def step_phases(x, y, batch_size: int, repeat: int = 3) -> list[tuple[str, float]]:
    """Where one chainrule training step goes: µs per step of each phase of `fit`'s step
    (best epoch of `repeat`), and of the step's GEMMs alone on the same shapes."""
    from chainrule.batching import batches

    model = cr.Sequential(cr.Dense(IN, HIDDEN, seed=0), cr.ReLU(), cr.Dense(HIDDEN, OUT, seed=1))
    opt = cr.optim.SGD(model.parameters(), lr=LR)
    loss_fn = cr.SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    names = ["gather the batch", "forward", "loss (softmax, CE)", "loss backward",
             "backward", "SGD update", "accuracy, history"]  # fmt: skip
    best = dict.fromkeys(names, float("inf"))
    clock = time.perf_counter
    for _ in range(repeat):
        spent = dict.fromkeys(names, 0.0)
        t0 = clock()
        for xb, yb in batches(x, y, batch_size, rng):
            t1 = clock()
            opt.zero_grad()
            out = model(xb)
            t2 = clock()
            loss = loss_fn(out, yb)
            t3 = clock()
            g = loss_fn.backward()
            t4 = clock()
            model.backward(g, input_grad=False)
            t5 = clock()
            opt.step()
            t6 = clock()
            int(np.count_nonzero(out.argmax(axis=1) == yb)) + float(loss)
            t7 = clock()
            for name, dt in zip(names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                        t6 - t5, t7 - t6)):  # fmt: skip
                spent[name] += dt
            t0 = clock()
        for name in names:
            best[name] = min(best[name], spent[name])
    steps = -(-len(x) // batch_size)
    rows = [(name, best[name] / steps * 1e6) for name in names]
    return rows + [("(all GEMMs alone, same shapes)", gemm_step_seconds(batch_size) * 1e6)]


def gemm_step_seconds(b: int, repeat: int = 200) -> float:
    """Seconds of one step's five GEMMs alone: X·W1ᵀ, A·W2ᵀ, dW2 = Gᵀ·A, dA = G·W2, dW1."""
    rng = np.random.default_rng(0)
    x, a = rng.random((b, IN), dtype=np.float32), rng.random((b, HIDDEN), dtype=np.float32)
    g, w1 = rng.random((b, OUT), dtype=np.float32), rng.random((HIDDEN, IN), dtype=np.float32)
    w2, da = rng.random((OUT, HIDDEN), dtype=np.float32), rng.random((b, HIDDEN), dtype=np.float32)

    def step():
        x @ w1.T, a @ w2.T, g.T @ a, g @ w2, da.T @ x

    step()
    return best_of(lambda: [step() for _ in range(repeat)], 3)[0] / repeat


def optional(make, *args):
    try:
        return make(*args)
    except ImportError as err:
        print(f"  (skipped {make.__name__}: {err})")
        return None


def main(argv=None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", default="64,128")
    args = parser.parse_args(argv)
    x, y = make_data(args.samples)
    ratios, rows = [], []
    with limit_threads(args.threads):
        print(f"BLAS: {blas_info()}; threads: {args.threads}; samples: {args.samples}")
        peak = gemm_gflops()
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            runs = {}
            for name, make in [
                ("chainrule", chainrule_epoch),
                ("numpy loop", numpy_epoch),
                ("numpy bare", bare_numpy_epoch),
                ("pytorch", torch_epoch),
                ("scikit-learn", sklearn_epoch),
            ]:
                run = optional(make, x, y, bs)
                if run is not None:
                    run()  # warm-up: allocations, thread pools, first-touch pages
                    runs[name] = run
            times = interleaved(runs, args.repeat)
            ours = times["chainrule"][0]
            steps = -(-args.samples // bs)
            print(f"figure mlp_b{bs}_epoch_s {ours:.4f}")
            print(f"figure mlp_b{bs}_steps {steps}")
            print(f"figure mlp_b{bs}_gflops {mlp_epoch_flops(args.samples) / ours / 1e9:.2f}")
            for name, (best, median, _) in times.items():
                gflops = mlp_epoch_flops(args.samples) / best / 1e9
                rows.append(
                    (
                        f"epoch b{bs}",
                        name,
                        f"{best:.3f}",
                        f"{median:.3f}",
                        f"{gflops:.1f}",
                        f"{ours / best:.2f}",
                    )
                )
            for peer, key in [
                ("pytorch", "torch"),
                ("numpy loop", "numpy"),
                ("numpy bare", "numpy_bare"),
                ("scikit-learn", "sklearn"),
            ]:
                ratios.append(
                    ratio_line(f"mlp_epoch_b{bs}_{key}", ours, times.get(peer, (None,))[0])
                )
            ratios.append(  # the same target in CPU time, steadier on a busy machine
                ratio_line(f"mlp_epoch_b{bs}_numpy_cpu", times["chainrule"][2],
                           times["numpy loop"][2])
            )  # fmt: skip
        phases = step_phases(x, y, 64)
        pair = optional(inference, x)
        if pair is not None:
            ours_fn, theirs_fn = pair
            ours_fn(), theirs_fn()
            t_ours, t_theirs = best_of(ours_fn, 5)[0], best_of(theirs_fn, 5)[0]
            rows.append(
                (
                    "inference 10k",
                    "chainrule",
                    f"{t_ours:.4f}",
                    "",
                    f"{10_000 / t_ours:,.0f}/s",
                    f"{t_ours / t_theirs:.2f}",
                )
            )
            rows.append(
                (
                    "inference 10k",
                    "pytorch",
                    f"{t_theirs:.4f}",
                    "",
                    f"{10_000 / t_theirs:,.0f}/s",
                    "1.00",
                )
            )
            ratios.append(ratio_line("mlp_inference_torch", t_ours, t_theirs))
    print(
        table(
            rows,
            (
                "workload",
                "implementation",
                "best s",
                "median s",
                "GFLOP/s or rate",
                "chainrule/this",
            ),
        )
    )
    mlp = (
        mlp_epoch_flops(args.samples)
        / min(float(r[2]) for r in rows if r[1] == "chainrule" and r[0].startswith("epoch"))
        / 1e9
    )
    print(
        f"GEMM peak (float32 2048²): {peak:.1f} GFLOP/s; chainrule MLP epoch reaches "
        f"{mlp:.1f} GFLOP/s = {mlp / peak:.0%} of it"
    )
    print(f"gemm_peak_gflops {peak:.1f}")
    total = sum(us for name, us in phases if not name.startswith("("))
    print("\nwhere a chainrule step goes (batch 64, µs per step, best epoch of 3):")
    print(table([(name, f"{us:.1f}", f"{us / total:.0%}") for name, us in phases],
                ("phase", "µs/step", "share")))  # fmt: skip
    print(f"figure mlp_b64_step_us {total:.1f}")
    print("\n".join(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
