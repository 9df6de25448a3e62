"""Speed promises kept out of the test suite: `chainrule train` and the augmentation.

    python bench/bench_cli.py [--epochs 30] [--images 8000] [--repeat 3]

1. `chainrule train --json` (the default MLP on mnist-10k, 30 epochs) is promised to finish
   within 60 s; its test accuracy (≥ 96%) is asserted by tests/test_cli.py. With fewer
   `--epochs` the 60 s target is scaled down in proportion.
2. `RandomShift(2, max_rotation=10)` augments an epoch of 8,000 digits batch by batch (500 at a
   time, as `fit` does). Its peer, measured in the same run: the same augmentation applied one
   image at a time, the per-image loop that vectorising replaced.

The last lines are machine-readable:
    ratio cli_train_vs_60s <train seconds / (60 s · epochs/30)>   (target below 1)
    ratio augment_vs_per_image_loop <batched time / per-image time>   (below 1: faster)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, ratio_line, reexec_without_openblas_overrides  # noqa: E402

from chainrule.augment import RandomShift  # noqa: E402

DEFAULT_EPOCHS, TARGET_SECONDS = 30, 60.0


def time_cli_train(epochs: int) -> tuple[float, float, dict]:
    """(wall seconds, the run's own seconds, its JSON summary) of `chainrule train --json`."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "chainrule", "train", "--json", "--quiet", "--no-plots"]
        if epochs != DEFAULT_EPOCHS:
            cmd += ["--epochs", str(epochs)]
        start = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "--out", str(Path(tmp) / "run")], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"chainrule train failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, float(summary["seconds"]), summary


def time_augment(images: int, repeat: int) -> tuple[float, float]:
    """(batched, per-image) best times to augment `images` random digits."""
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
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    batched, per_image = time_augment(args.images, args.repeat)
    print(
        f"augment {args.images:,} digits (shift ±2 px, rotate ±10°): batched {batched:.3f} s, "
        f"one image at a time {per_image:.3f} s"
    )
    target = TARGET_SECONDS * args.epochs / DEFAULT_EPOCHS
    wall, seconds, summary = time_cli_train(args.epochs)
    print(
        f"chainrule train ({args.epochs} epochs): {seconds:.1f} s by its own clock, "
        f"{wall:.1f} s wall with start-up; test accuracy {summary['test_accuracy']:.4f}; "
        f"target {target:.0f} s"
    )
    print(ratio_line("cli_train_vs_60s", seconds, target))
    print(ratio_line("augment_vs_per_image_loop", batched, per_image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
