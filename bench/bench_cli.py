"""Speed promises kept out of the test suite: `chainrule train` and the augmentation.

    python bench/bench_cli.py [--repeat 3] [--epochs N] [--images 8000]

1. `chainrule train` with its defaults (the MLP on mnist-10k, plots on) is promised to reach
   ≥ 97% test accuracy within 8 s of wall time on a quiet 2-core machine, from process start
   to the summary. Timed as a fresh process (best of `--repeat`), then once more phase by
   phase in this process: start-up and imports, data loading, building the run (model,
   optimizer, the epoch-0 checkpoint), training, evaluation (test metrics, final
   checkpoint, history.json) and the plots. `--epochs` shortens the run for a quick check
   (the ratio against 8 s then says little).
2. `RandomShift(2, max_rotation=10)` augments an epoch of 8,000 digits batch by batch (500 at a
   time, as `fit` does). Its peer, measured in the same run: the same augmentation applied one
   image at a time, the per-image loop that vectorising replaced.

The last lines are machine-readable:
    ratio cli_train_vs_8s <wall seconds / 8 s>   (target below 1, with accuracy ≥ 0.97)
    ratio augment_vs_per_image_loop <batched time / per-image time>   (below 1: faster)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    best_of,
    ratio_line,
    reexec_without_openblas_overrides,
    table,
)

TARGET_SECONDS, TARGET_ACCURACY = 8.0, 0.97


def time_cli_train(epochs: int | None) -> tuple[float, dict]:
    """(wall seconds from process start to exit, JSON summary) of `chainrule train`."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "chainrule", "train", "--json", "--quiet"]
        if epochs is not None:
            cmd += ["--epochs", str(epochs)]
        start = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "--out", str(Path(tmp) / "run")], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"chainrule train failed:\n{proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def time_startup() -> float:
    """Wall seconds of a process that only starts Python and imports the CLI."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import chainrule.cli.run"], check=True)
    return time.perf_counter() - start


def time_phases(epochs: int | None) -> list[tuple[str, float]]:
    """Seconds of each phase of `chainrule train` (defaults), run here step by step as
    `cmd_train` does (after the imports, which `time_startup` measures)."""
    from chainrule.cli.config import load_data
    from chainrule.cli.parser import build_parser
    from chainrule.cli.run import Run
    from chainrule.cli.train import run_threads, train_config
    from chainrule.losses import SoftmaxCrossEntropy
    from chainrule.train import predict

    argv = ["train"] + (["--epochs", str(epochs)] if epochs is not None else [])
    phases = []
    with tempfile.TemporaryDirectory() as tmp:
        args = build_parser().parse_args([*argv, "--out", str(Path(tmp) / "run")])
        cfg = train_config(args)
        load_data(cfg)  # once untimed: its lazy imports (gzip, ...) belong to start-up
        start = time.perf_counter()
        load_data(cfg)
        loaded = time.perf_counter() - start
        phases.append(("load mnist-10k", loaded))
        start = time.perf_counter()
        run = Run.begin(cfg, Path(args.out))  # loads the data again, timed above
        built = time.perf_counter() - start - loaded
        phases.append(("model, optimizer, epoch-0 checkpoint", built))
        start = time.perf_counter()
        run.train(progress=False, threads=run_threads(run))
        phases.append((f"train ({run.epochs_done} epochs)", time.perf_counter() - start))
        start = time.perf_counter()
        result = run.finish(plots=False)
        phases.append(("test metrics, final checkpoint, history.json", time.perf_counter() - start))
        x_test, y_test = run.data[2]
        loss_fn = SoftmaxCrossEntropy()
        loss_fn(predict(run.model, x_test, batch_size=256), y_test)
        confusion = np.asarray(result["confusion"])
        start = time.perf_counter()
        run.plot(x_test, y_test, loss_fn.probabilities, confusion, result["test_accuracy"])
        phases.append(("plots (first one imports matplotlib)", time.perf_counter() - start))
    return phases


def time_augment(images: int, repeat: int) -> tuple[float, float]:
    """(batched, per-image) best times to augment `images` random digits."""
    from chainrule.augment import RandomShift

    x = np.random.default_rng(0).random((images, 28, 28), dtype=np.float32)
    aug = RandomShift(2, max_rotation=10)

    def batched() -> None:
        rng = np.random.default_rng(1)
        for i in range(0, images, 500):
            aug(x[i : i + 500], None, rng)

    def per_image() -> None:
        rng = np.random.default_rng(1)
        for i in range(images):
            aug(x[i : i + 1], None, rng)

    return best_of(batched, repeat)[0], best_of(per_image, repeat)[0]


def main(argv: list[str] | None = None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at start: {load:.2f} on {os.cpu_count()} cores")

    batched, per_image = time_augment(args.images, args.repeat)
    print(
        f"augment {args.images:,} digits (shift ±2 px, rotate ±10°): batched {batched:.3f} s, "
        f"one image at a time {per_image:.3f} s"
    )
    runs = [time_cli_train(args.epochs) for _ in range(args.repeat)]
    wall, summary = min(runs, key=lambda r: r[0])
    accuracies = ", ".join(f"{s['test_accuracy']:.4f}" for _, s in runs)
    startup = min(time_startup() for _ in range(args.repeat))
    phases = [("start Python + import chainrule.cli", startup), *time_phases(args.epochs)]
    print(table([(name, f"{s:.2f}") for name, s in phases], ("phase", "seconds")))
    print(
        f"chainrule train ({summary['epochs']} epochs, plots on): {wall:.2f} s wall from "
        f"process start (best of {len(runs)}; {summary['train_seconds']:.2f} s of it training); "
        f"test accuracy {summary['test_accuracy']:.4f} (runs: {accuracies}); target ≤ "
        f"{TARGET_SECONDS:g} s and ≥ {TARGET_ACCURACY:.0%}"
    )
    print(ratio_line("cli_train_vs_8s", wall, TARGET_SECONDS))
    print(ratio_line("augment_vs_per_image_loop", batched, per_image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
