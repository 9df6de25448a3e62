"""One training epoch of the default CNN in chainrule and in PyTorch (CPU).

    python bench/bench_cnn.py                  # 8,000 mnist-10k training images, batch 128
    python bench/bench_cnn.py --profile        # plus a cProfile of one chainrule epoch

The first figure is the one a user sees: each framework ALONE in its own fresh process
(`--worker NAME`, started by this script), with its own default threading (chainrule: the
BLAS and elementwise threads `chainrule train` picks, `chainrule.threads.threads_for`;
torch: its default), a 2-batch warm-up, then one timed epoch. `--alone-rounds` (default 3) rounds
alternate chainrule, torch, chainrule, ...; the best of each counts:
    ratio cnn_epoch_alone <chainrule seconds / torch seconds>

The second, labelled figure, times both in ONE process, interleaved (below); it flatters
whichever framework's turn follows a quiet one and is kept only for comparison.

Both frameworks train the same network (conv 1→32 3×3 → maxpool 2 → ReLU → conv 32→64 →
maxpool 2 → ReLU → dense 3136→128 → ReLU → dropout 0.25 → dense 128→10; pooling before ReLU
is the same function, as max and ReLU commute) with SGD + momentum on the same images, the
same batch size and the same number of threads (`threadpoolctl.threadpool_limits` for
NumPy's BLAS, `torch.set_num_threads` for torch). chainrule's own elementwise work (ReLU,
pooling, im2col) uses `chainrule.get_num_threads()`: 1 with OpenBLAS's default spin-waiting
threads, 2 when they sleep after each GEMM (`OPENBLAS_THREAD_TIMEOUT=4 python bench/...`;
see src/chainrule/_threads.py); `--elementwise-threads` overrides it.

The machine may be shared, and a busy neighbour slows whichever framework runs at that
moment. So the two run *interleaved*: `--block` batches of chainrule, the same batches in
torch, the next block, and so on through the epoch; each framework's epoch time is the sum
of its own batches (`--pause` seconds of rest after each turn let the other's spinning
threads go to sleep first: OpenBLAS's spin ~0.1 s after each GEMM and slow torch's turn).
`--rounds` such epochs are run and the best counts:
    ratio cnn_epoch_interleaved <chainrule seconds / torch seconds>

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, pick a slower OpenBLAS kernel than the one it
detects; the bench re-executes itself once without them (before NumPy is imported) and prints
the kernel that actually runs.
"""

from __future__ import annotations

import os
import sys

_BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(k in os.environ for k in _BLAS_OVERRIDES) and "--keep-blas-env" not in sys.argv:
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_OVERRIDES}
    env["CHAINRULE_BENCH_UNSET"] = ",".join(k for k in _BLAS_OVERRIDES if k in os.environ)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

import chainrule as cr  # noqa: E402


def get_data(n: int, synthetic: bool) -> tuple[np.ndarray, np.ndarray, str]:
    if not synthetic:
        try:
            (x, y), _ = cr.data.load("mnist-10k")
            if n <= len(x):
                return x[:n], y[:n], f"mnist-10k training images ({n:,})"
        except Exception as exc:  # noqa: BLE001 - fall back to synthetic data
            print(f"(mnist-10k unavailable: {exc}; using synthetic images)")
    rng = np.random.default_rng(0)
    x = rng.random((n, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y, f"synthetic uniform images ({n:,})"


def chainrule_step(channels: tuple[int, int]):
    """A function training the chainrule CNN on one batch (what `cr.fit` does per batch)."""
    model = cr.models.cnn(seed=0, channels=channels)
    opt = cr.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn = cr.SoftmaxCrossEntropy()
    model.train()

    def step(xb: np.ndarray, yb: np.ndarray) -> None:
        opt.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()

    return step


def torch_step(channels: tuple[int, int]):
    """The same network and update in PyTorch."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    c1, c2 = channels
    model = nn.Sequential(
        nn.Unflatten(1, (1, 28)),
        nn.Conv2d(1, c1, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(c2 * 49, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()

    return step


def alone_epoch(name: str, images: int, batch_size: int, synthetic: bool) -> tuple[float, str]:
    """Seconds of one epoch of `name` in this (fresh) process, default threading, after a
    2-batch warm-up (buffers, thread pools, oneDNN's kernels), and the threads it used."""
    x, y, _ = get_data(images, synthetic)
    if name == "torch":
        import torch

        step, x, y = torch_step((32, 64)), torch.from_numpy(x), torch.from_numpy(y)
        blas = None
    else:
        from chainrule.threads import get_num_threads, set_num_threads, threads_for

        step = chainrule_step((32, 64))
        # what `chainrule train` picks: `threads_for`, chainrule's own threads capped by it
        blas = threads_for(cr.models.cnn(seed=0), (1, 28, 28), batch_size)
        set_num_threads(min(blas, get_num_threads()))
    from chainrule.threads import blas_limit

    with blas_limit(blas):
        for i in range(0, 2 * batch_size, batch_size):
            step(x[i : i + batch_size], y[i : i + batch_size])
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            step(x[i : i + batch_size], y[i : i + batch_size])
        return time.perf_counter() - t0, _threads_note(name)


def alone_rounds(args) -> dict[str, list[float]]:
    """Each framework's epoch, each in a fresh process, alternating, `args.alone_rounds` times."""
    times: dict[str, list[float]] = {"chainrule": [], "torch": []}
    for _ in range(args.alone_rounds):
        for name in times:
            cmd = [sys.executable, __file__, "--worker", name, "--images", str(args.images),
                   "--batch-size", str(args.batch_size)] + (["--synthetic"] * args.synthetic)
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = [ln for ln in out.splitlines() if ln.startswith("epoch ")][-1]
            times[name].append(float(line.split()[1]))
            print(f"  {name:<10} {times[name][-1]:.2f} s   ({line.split(None, 2)[2]})")
    return times


def interleaved_epoch(
    steps: dict, data: dict, batch_size: int, block: int, pause: float = 0.0
) -> dict[str, float]:
    """Seconds each framework spends on one epoch, run `block` batches at a time in turn,
    with `pause` seconds (not counted) after each turn."""
    n = len(next(iter(data.values()))[0])
    starts = list(range(0, n, batch_size))
    spent = dict.fromkeys(steps, 0.0)
    for b in range(0, len(starts), block):
        for name, step in steps.items():
            x, y = data[name]
            t0 = time.perf_counter()
            for i in starts[b : b + block]:
                step(x[i : i + batch_size], y[i : i + batch_size])
            spent[name] += time.perf_counter() - t0
            time.sleep(pause)
    return spent


def print_blas() -> None:
    unset = os.environ.get("CHAINRULE_BENCH_UNSET")
    if unset:
        print(f"unset for this run: {unset}")
    for info in threadpool_info():
        print(
            f"numpy {info['user_api']}: {info['internal_api']} {info.get('version')} "
            f"kernel={info.get('architecture', '?')} threads={info['num_threads']} "
            f"({os.path.basename(info['filepath'])})"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="epochs per framework (best counts)")
    ap.add_argument("--block", type=int, default=5, help="batches per turn when interleaving")
    ap.add_argument("--elementwise-threads", type=int, help="chainrule.set_num_threads(n)")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds between turns, so that one framework's spinning threads are "
                         "asleep before the other's turn (OpenBLAS spins ~0.1 s)")  # fmt: skip
    ap.add_argument("--channels", type=int, nargs=2, default=(32, 64))
    ap.add_argument("--synthetic", action="store_true", help="random images, not mnist-10k")
    ap.add_argument("--profile", action="store_true", help="cProfile one chainrule epoch")
    ap.add_argument("--keep-blas-env", action="store_true", help="do not unset OPENBLAS_*")
    ap.add_argument("--worker", choices=("chainrule", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--alone-rounds", type=int, default=3,
                    help="fresh-process epochs per framework, alternating (best counts)")
    ap.add_argument("--alone-only", action="store_true", help="skip the interleaved figure")
    args = ap.parse_args(argv)
    if args.worker:
        seconds, note = alone_epoch(args.worker, args.images, args.batch_size, args.synthetic)
        print(f"epoch {seconds:.4f} {note}")
        return

    print(f"CPU: {_cpu_model()}; 1-minute load before: {os.getloadavg()[0]:.2f}")
    print(f"each framework alone in a fresh process, {args.images:,} images, batch "
          f"{args.batch_size}, best of {args.alone_rounds}:")
    alone = alone_rounds(args)
    best_alone = {k: min(v) for k, v in alone.items()}
    ratio_alone = best_alone["chainrule"] / best_alone["torch"]
    print(f"alone: chainrule {best_alone['chainrule']:.2f} s, torch {best_alone['torch']:.2f} s; "
          f"1-minute load after: {os.getloadavg()[0]:.2f}")
    print(f"ratio cnn_epoch_alone {ratio_alone:.2f}")
    if args.alone_only:
        return
    print("\nsecond figure, both in one process, interleaved (flatters chainrule):")

    import torch

    torch.set_num_threads(args.threads)
    if args.elementwise_threads:
        cr.set_num_threads(args.elementwise_threads)
    x, y, what = get_data(args.images, args.synthetic)
    channels = tuple(args.channels)
    print(f"data: {what}, batch {args.batch_size}, {args.threads} threads, channels {channels}")
    print(f"chainrule {cr.__version__}: {cr.get_num_threads()} threads for elementwise work")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        print_blas()
    print(
        f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
        f"mkldnn={torch.backends.mkldnn.is_available()}"
    )

    load_before = os.getloadavg()[0]
    steps = {"chainrule": chainrule_step(channels), "torch": torch_step(channels)}
    data = {"chainrule": (x, y), "torch": (torch.from_numpy(x), torch.from_numpy(y))}
    rounds: list[dict[str, float]] = []
    with threadpool_limits(limits=args.threads, user_api="blas"):
        warm = 4 * args.batch_size  # buffers, BLAS and OpenMP thread pools
        interleaved_epoch(steps, {k: (a[:warm], b[:warm]) for k, (a, b) in data.items()},
                          args.batch_size, args.block)  # fmt: skip
        for _ in range(args.rounds):
            rounds.append(interleaved_epoch(steps, data, args.batch_size, args.block, args.pause))
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(interleaved_epoch, {"chainrule": steps["chainrule"]}, data,
                         args.batch_size, args.block)  # fmt: skip
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)

    # other processes busy on the same cores slow OpenBLAS's threads (which spin-wait for
    # each other) far more than torch's: the load before the run says whether that was so
    print(f"1-minute load average before the run: {load_before:.2f} on {os.cpu_count()} CPUs")
    best = {name: min(r[name] for r in rounds) for name in steps}
    print(f"\n{'framework':<10} {'epoch s':>8} {'images/s':>9}   every round (s)")
    for name in steps:
        every = " ".join(f"{r[name]:.2f}" for r in rounds)
        print(f"{name:<10} {best[name]:8.2f} {len(x) / best[name]:9,.0f}   {every}")
    print(f"ratio cnn_epoch_interleaved {best['chainrule'] / best['torch']:.2f}")
    print(f"ratio cnn_epoch_alone {ratio_alone:.2f}   (the headline figure, repeated)")


def _threads_note(name: str) -> str:
    if name == "torch":
        import torch

        return f"torch threads={torch.get_num_threads()}"
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return f"chainrule blas threads={blas} elementwise={cr.get_num_threads()}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        return f"{names[0]} ×{len(names)}"
    except (OSError, IndexError):
        return "unknown"


if __name__ == "__main__":
    main()
