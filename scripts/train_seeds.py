"""Run the default `chainrule train` for several seeds and OpenBLAS kernels; print the table
that docs/results.md quotes.

    python scripts/train_seeds.py                      # seeds 0-4, the kernel OpenBLAS picks
    python scripts/train_seeds.py --kernels Haswell SkylakeX --seeds 0 1 2 3 4

Each run is a fresh process (`chainrule train --json --quiet --no-plots`), so the kernel can be
forced with OPENBLAS_CORETYPE, which OpenBLAS reads once at start-up. Extra arguments after
`--` go to `chainrule train` (e.g. `-- --epochs 10`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(seed: int, kernel: str | None, extra: list[str]) -> dict:
    env = dict(os.environ)
    if kernel:
        env["OPENBLAS_CORETYPE"] = kernel
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "chainrule", "train", "--seed", str(seed), "--json",
               "--quiet", "--no-plots", "--out", out, *extra]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--kernels", nargs="+", default=[None],
                        help="OPENBLAS_CORETYPE values, e.g. Haswell SkylakeX")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    print("| kernel | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean ± sd | time |")
    print("|---" * (len(args.seeds) + 3) + "|")
    for kernel in args.kernels:
        results = [run(s, kernel, extra) for s in args.seeds]
        acc = [100 * r["test_accuracy"] for r in results]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        times = [r["seconds"] for r in results]
        print(f"| {kernel or 'default'} | " + " | ".join(f"{a:.2f}%" for a in acc)
              + f" | {statistics.mean(acc):.2f} ± {spread:.2f}%"
              + f" | {min(times):.1f}–{max(times):.1f} s |")


if __name__ == "__main__":
    main()
