"""One training epoch of the default MLP and CNN on mnist-10k: one process vs 2 MPI ranks.

    python bench/bench_mpi.py                 # both models, the full 7,500 training digits
    python bench/bench_mpi.py --images 2000   # quicker

Each measurement is a fresh launch: `python bench_mpi.py --worker MODEL` for one process (with
the CLI's thread choice for that model: 1 BLAS thread for the MLP, the BLAS default of 2 for
the CNN) and `mpiexec -n 2 --oversubscribe python bench_mpi.py --worker MODEL` for two ranks
(1 BLAS thread each). A worker trains one warm-up epoch, then times `--rounds` epochs of
`fit(..., comm=communicator())` without validation, and rank 0 prints a JSON line with the
best epoch time and the seconds spent in the gradient Allreduce during it. The last lines are

    ratio mpi_mlp_epoch_2ranks <2-rank epoch / 1-process epoch>
    ratio mpi_cnn_epoch_2ranks <2-rank epoch / 1-process epoch>   (target: ≤ 1.0)

`--scaling` checks instead which global batch sizes keep the MLP's accuracy on 2 ranks:
30 epochs at global batch 64, 256 and 1024 with the learning rate scaled linearly
(0.1·B/64), with and without a 5-epoch linear warm-up, against B = 256 without scaling.

`--cost-model` prints instead the paper model of docs/distributed.md: predicted speed-ups for
N = 2..64 ranks over a 10 Gb/s network, from the per-step compute times measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import ratio_line, reexec_without_openblas_overrides, table  # noqa: E402

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def worker(model_name: str, images: int, rounds: int) -> None:
    """Train MODEL for 1 + rounds epochs; rank 0 prints {"epoch": s, "allreduce": s, ...}."""
    import numpy as np

    from chainrule.cli.config import TrainConfig, build_model, load_data, optimizer_for
    from chainrule.cli.run import blas_threads
    from chainrule.distributed import communicator
    from chainrule.losses import SoftmaxCrossEntropy
    from chainrule.train import fit

    comm = communicator()
    cfg = TrainConfig(model=model_name, val_size=0)
    cfg.lr = cfg.resolved_lr()
    (x, y), _, _ = load_data(cfg)
    x, y = x[:images], y[:images]
    model, rng = build_model(cfg), np.random.default_rng(0)
    opt = optimizer_for(cfg, model)
    threads = 1 if (comm.size > 1 or model_name == "mlp") else None
    epochs, reduce_seconds = [], []
    with blas_threads(threads):
        fit(model, SoftmaxCrossEntropy(), opt, x, y, batch_size=cfg.batch_size, rng=rng,
            progress=False, comm=comm)  # warm-up: workspaces, caches, first-touch pages
        for _ in range(rounds):
            before = getattr(comm, "allreduce_seconds", 0.0)
            comm.barrier()
            start = time.perf_counter()
            fit(model, SoftmaxCrossEntropy(), opt, x, y, batch_size=cfg.batch_size, rng=rng,
                progress=False, comm=comm)
            epochs.append(time.perf_counter() - start)
            reduce_seconds.append(getattr(comm, "allreduce_seconds", 0.0) - before)
    best = int(np.argmin(epochs))
    if comm.is_root:
        print(json.dumps({"epoch": epochs[best], "allreduce": reduce_seconds[best],
                          "ranks": comm.size, "threads": threads or "default",
                          "images": len(x), "steps": -(-len(x) // cfg.batch_size),
                          "parameters": model.num_parameters()}), flush=True)


# ---- batch size and learning rate on 2 ranks -------------------------------------------------
class WarmupCosine:
    """lr(e) = base · min(1, (e + 1)/warmup) · ½(1 + cos(π·e/epochs)), stepped per epoch."""

    def __init__(self, opt, epochs: int, warmup: int) -> None:
        self.opt, self.base, self.epochs, self.warmup, self.epoch = opt, opt.lr, epochs, warmup, 0
        self._apply()

    def step(self) -> None:
        self.epoch += 1
        self._apply()

    def _apply(self) -> None:
        import math

        ramp = min(1.0, (self.epoch + 1) / self.warmup) if self.warmup else 1.0
        self.opt.lr = self.base * ramp * 0.5 * (1 + math.cos(math.pi * self.epoch / self.epochs))


def scaling_worker(epochs: int) -> None:
    import numpy as np

    from chainrule.augment import RandomShift
    from chainrule.cli.config import TrainConfig, load_data
    from chainrule.distributed import communicator
    from chainrule.losses import SoftmaxCrossEntropy
    from chainrule.metrics import accuracy
    from chainrule.models import mlp
    from chainrule.optim import SGD
    from chainrule.train import fit, predict

    comm = communicator()
    (x, y), _, (xt, yt) = load_data(TrainConfig(val_size=0))
    for batch, lr, warmup in ((64, 0.1, 0), (256, 0.1, 0), (256, 0.4, 0), (256, 0.4, 5),
                              (1024, 1.6, 0), (1024, 1.6, 5)):
        model = mlp(seed=0)
        opt = SGD(model.parameters(), lr=lr, momentum=0.9)
        start = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                fit(model, SoftmaxCrossEntropy(), opt, x, y, epochs=epochs, batch_size=batch,
                    seed=0, augment=RandomShift(2), scheduler=WarmupCosine(opt, epochs, warmup),
                    progress=False, comm=comm)
                acc = f"{accuracy(predict(model, xt), yt):.2%}"
            except FloatingPointError:
                acc = "diverged"
        if comm.is_root:
            print(json.dumps({"batch": batch, "lr": lr, "warmup": warmup, "test": acc,
                              "seconds": round(time.perf_counter() - start, 1),
                              "ranks": comm.size}), flush=True)


def scaling(args) -> None:
    me = [sys.executable, str(Path(__file__).resolve()), "--scaling-worker",
          "--epochs", str(args.epochs)]
    runner = [mpiexec(), "-n", "2", "--oversubscribe"] if mpiexec() else []
    proc = subprocess.run([*runner, *me], capture_output=True, text=True,
                          env={**os.environ, **MPI_ENV})
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    print(table([(r["batch"], r["lr"], r["warmup"] or "-", r["test"], r["seconds"], r["ranks"])
                 for r in rows], ("global batch", "lr", "warm-up epochs", "test accuracy",
                                   "seconds", "ranks")))
    if proc.returncode:
        print(proc.stderr[-1500:], file=sys.stderr)


# ---- the paper model (docs/distributed.md) ------------------------------------------------
# One step on one core, batch 64, 1 BLAS thread, measured on this machine (2026-12-03).
STEP_SECONDS = {"mlp": 0.39e-3, "cnn": 32.5e-3}
PARAMETERS = {"mlp": 101_770, "cnn": 421_642}  # float32: 4 bytes each
BANDWIDTH = 10e9 / 8  # bytes/s: 10 Gb/s
LATENCY = 10e-6  # s per message (TCP over 10 GbE)


def ring_allreduce_seconds(nbytes: float, ranks: int) -> float:
    """A ring allreduce: 2(N−1) messages of P/N bytes each way, i.e. 2·P·(N−1)/N bytes."""
    return 2 * (ranks - 1) * LATENCY + 2 * nbytes * (ranks - 1) / ranks / BANDWIDTH


def predicted_speedup(model: str, ranks: int, per_rank_batch: bool) -> float:
    """Throughput on N ranks / throughput on one. `per_rank_batch`: each rank keeps 64 rows
    (global batch 64·N, weak scaling); else the global batch stays 64 (strong scaling)."""
    step, comm = STEP_SECONDS[model], ring_allreduce_seconds(4 * PARAMETERS[model], ranks)
    if per_rank_batch:
        return ranks * step / (step + comm)
    return step / (step / ranks + comm)


def cost_model() -> None:
    rows = []
    for model in ("mlp", "cnn"):
        nbytes = 4 * PARAMETERS[model]
        for ranks in (2, 4, 8, 16, 32, 64):
            rows.append((model, ranks, f"{ring_allreduce_seconds(nbytes, ranks) * 1e3:.2f}",
                         f"{STEP_SECONDS[model] * 1e3 / ranks:.2f}",
                         f"{predicted_speedup(model, ranks, False):.2f}",
                         f"{predicted_speedup(model, ranks, True):.1f}"))
    print(table(rows, ("model", "N", "allreduce ms", "compute ms (B=64)", "speed-up B=64",
                       "speed-up B=64·N")))


def mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def launch(ranks: int, model: str, args) -> dict | None:
    me = [sys.executable, str(Path(__file__).resolve()), "--worker", model,
          "--images", str(args.images), "--rounds", str(args.rounds)]
    if ranks > 1:
        if mpiexec() is None:
            return None
        me = [mpiexec(), "-n", str(ranks), "--oversubscribe", *me]
    proc = subprocess.run(me, capture_output=True, text=True, env={**os.environ, **MPI_ENV})
    if proc.returncode != 0:
        print(f"[{' '.join(me[:4])} … failed]\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    reexec_without_openblas_overrides()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=7500, help="training digits per epoch")
    p.add_argument("--rounds", type=int, default=2, help="timed epochs per launch (best counts)")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--cost-model", action="store_true", help="print the paper model and stop")
    p.add_argument("--scaling", action="store_true",
                   help="accuracy vs global batch and learning rate on 2 ranks, then stop")
    p.add_argument("--epochs", type=int, default=30, help="epochs for --scaling")
    p.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    p.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cost_model:
        cost_model()
        return
    if args.scaling_worker:
        scaling_worker(args.epochs)
        return
    if args.scaling:
        scaling(args)
        return
    if args.worker:
        worker(args.worker, args.images, args.rounds)
        return
    rows, ratios = [], []
    for model in args.models.split(","):
        one, two = launch(1, model, args), launch(2, model, args)
        for r in (one, two):
            if r is not None:
                share = r["allreduce"] / r["epoch"]
                rows.append((model, r["ranks"], r["threads"], r["steps"], f"{r['epoch']:.3f}",
                             f"{r['allreduce']:.3f} ({share:.0%})"))
        ratios.append(ratio_line(f"mpi_{model}_epoch_2ranks", two and two["epoch"],
                                 one and one["epoch"]))
    print(f"epoch of mnist-10k ({args.images} images, batch 64), best of {args.rounds}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(table(rows, ("model", "ranks", "BLAS threads/rank", "steps", "epoch s",
                       "in Allreduce s")))
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
