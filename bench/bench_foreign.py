"""Accuracy on digits that are not MNIST's, read from image files by `chainrule predict`.

    python bench/bench_foreign.py                      # train the default MLP, then measure
    python bench/bench_foreign.py --model cnn          # ... `chainrule train --model cnn`
    python bench/bench_foreign.py --run runs/x         # measure a run folder already trained
    python bench/bench_foreign.py --train-args "--rotate 15 --shift 3"

The foreign set (bench/foreign_digits.py) is the UCI handwritten digits that scikit-learn
ships, drawn as dark ink on white paper in five ways: upscaled from the 8×8 scan, small and
off-centre, thick strokes, thin strokes, slightly rotated. The images are written to disk and
classified by `chainrule predict --json` in a subprocess, exactly as a user would run it.

Targets (issue 29): after the default `chainrule train` ≥ 85% overall; after
`chainrule train --model cnn` ≥ 93%. The last lines are machine-readable:
    foreign <presentation> <accuracy>    for each presentation, and `foreign overall ...`
    target <model> <accuracy> >= <bound> ok|MISSED
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402
from foreign_digits import PRESENTATIONS, build_foreign_set, load_uci_digits  # noqa: E402

TARGETS = {"mlp": 0.85, "cnn": 0.93}
CHUNK = 400  # image paths per `chainrule predict` call (keeps the command line short)


def train(out: Path, model: str, extra: list[str]) -> dict:
    """`chainrule train --model <model> <extra>` into `out`; its JSON summary."""
    cmd = [sys.executable, "-m", "chainrule", "train", "--model", model, "--quiet", "--json",
           "--no-plots", "--out", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"chainrule train failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["wall"] = time.perf_counter() - start
    return summary


def predict(run: Path, paths: list[Path]) -> dict[str, int]:
    """{image path: predicted digit} from `chainrule predict RUN IMAGE... --json`."""
    digits = {}
    for i in range(0, len(paths), CHUNK):
        cmd = [sys.executable, "-m", "chainrule", "predict", str(run),
               *map(str, paths[i : i + CHUNK]), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            digits[row["image"]] = row["digit"]
        if proc.returncode and proc.returncode != 2:  # 2: some image was refused, said why
            raise SystemExit(f"chainrule predict failed:\n{proc.stderr[-2000:]}")
    return digits


def accuracies(items, digits: dict[str, int]) -> dict[str, float]:
    """Accuracy per presentation and "overall"; an image predict refused counts as wrong."""
    right = {p: [] for p in dict.fromkeys(it.presentation for it in items)}
    for it in items:
        right[it.presentation].append(digits.get(str(it.path)) == it.label)
    result = {p: float(np.mean(r)) for p, r in right.items()}
    result["overall"] = float(np.mean([v for r in right.values() for v in r]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--run", type=Path, help="a trained run folder (skips training)")
    parser.add_argument("--train-args", default="", help="extra `chainrule train` options")
    parser.add_argument("--per-class", type=int, default=40,
                        help="digits of each class in each presentation (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="the foreign set's seed")
    parser.add_argument("--keep", type=Path, help="write the images here instead of a temp dir")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp) / "foreign"
        counts, labels = load_uci_digits()
        items = build_foreign_set(where, counts, labels, PRESENTATIONS, args.per_class, args.seed)
        print(f"foreign set: {len(items):,} images of UCI digits in {len(PRESENTATIONS)} "
              f"presentations ({args.per_class} per class each), in {where}")
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            s = train(run, args.model, shlex.split(args.train_args))
            print(f"chainrule train --model {args.model} {args.train_args}: MNIST test "
                  f"accuracy {s['test_accuracy']:.4f}, {s['wall']:.1f} s wall "
                  f"({s['train_seconds']:.1f} s training)")
        result = accuracies(items, predict(run, [it.path for it in items]))
    print(table([(p, f"{a:.1%}") for p, a in result.items()], ("presentation", "accuracy")))
    for p, a in result.items():
        print(f"foreign {p} {a:.4f}")
    if args.run is None and not args.train_args:
        bound = TARGETS[args.model]
        verdict = "ok" if result["overall"] >= bound else "MISSED"
        print(f"target {args.model} {result['overall']:.4f} >= {bound} {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
