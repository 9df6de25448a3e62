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
    p.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = p.parse_args()
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
