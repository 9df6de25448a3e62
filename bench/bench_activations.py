"""Activation layers, forward + backward on a (256, 3136) float32 batch, timed against ReLU.

    python bench/bench_activations.py [--rows 256] [--repeat 5]

Prints one `ratio` line per activation: its time divided by ReLU's, measured in the same run
(GELU used np.vectorize(math.erf) until issue 14, about 240× ReLU; a vectorised erf brings it
near the other smooth activations). With `--no-scipy`, GELU uses chainrule's own rational erf.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, ratio_line, reexec_without_openblas_overrides  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import activations  # noqa: E402


def step(layer, x: np.ndarray, g: np.ndarray) -> None:
    layer(x)
    layer.backward(g)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cols", type=int, default=3136)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-scipy", action="store_true", help="time the NumPy erf fallback")
    args = parser.parse_args(argv)
    if args.no_scipy:
        activations._scipy_erf = None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.cols)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    relu, _ = best_of(lambda: step(cr.ReLU(), x, g), args.repeat)
    erf = "numpy rational" if activations._scipy_erf is None else "scipy"
    print(f"forward+backward on {x.shape} float32, erf from {erf}; ReLU {relu * 1e3:.2f} ms")
    for name, layer in [("gelu", cr.GELU()), ("gelu_tanh", cr.GELU("tanh")),
                        ("sigmoid", cr.Sigmoid()), ("tanh", cr.Tanh())]:  # fmt: skip
        t, _ = best_of(lambda layer=layer: step(layer, x, g), args.repeat)
        print(ratio_line(f"{name} / relu", t, relu))


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    main()
