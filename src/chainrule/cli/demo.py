"""`chainrule demo [NAME]`: the seeds' worked examples (each a module in `chainrule.demos`)."""

from __future__ import annotations

import argparse
import importlib

from .errors import EXIT_OK, CLIError

DEMOS = {
    "backprop": "seed 000: the scalar chain rule on L = (y − (x·w + b))², w.grad = −5.08",
    "linear-system": "seed 001: gradient descent on ‖Ax − b‖² → x = [1, 2, 3, 4]; "
    "Barzilai–Borwein",
    "xnor": "seed 001: a 2→3→1 sigmoid net learns XNOR",
    "gradient-descent": "seed 003: gradient descent animations (GIFs) on x², sin x and a "
    "2-D surface",
    "activations": "each activation function and its derivative, plotted",
    "cross-entropy": "seed 003: the worked 3×4 cross-entropy example",
}


def add_parser(sub, common) -> None:
    d = sub.add_parser("demo", parents=[common], help="run a worked example from the seeds",
                       description="Worked examples: " + "; ".join(
                           f"{k}: {v}" for k, v in DEMOS.items()))
    d.add_argument("name", metavar="NAME", nargs="?", help=", ".join(DEMOS))
    d.add_argument("args", nargs=argparse.REMAINDER, help="options for the demo")
    d.set_defaults(func=cmd_demo, parser=d)


def cmd_demo(args) -> int:
    if args.name is None:
        width = max(map(len, DEMOS))
        print("demos (run one with `chainrule demo NAME`):")
        for name, about in DEMOS.items():
            print(f"  {name:<{width}}  {about}")
        return EXIT_OK
    name = args.name.lower().replace("_", "-")
    if name not in DEMOS:
        raise CLIError(f"unknown demo {args.name!r}; choose one of {', '.join(DEMOS)}")
    module_name = f"chainrule.demos.{name.replace('-', '_')}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CLIError(f"demo {name!r} is not available in this installation "
                           f"({module_name} is missing)") from exc
        raise
    return int(module.main(list(args.args)) or 0)
