"""The `chainrule` command: train, evaluate, predict, demo, data, export, serve.

    chainrule train                        # MLP 784-128-10 on the bundled mnist-10k, ~96.5%
    chainrule evaluate runs/<stamp>        # accuracy, per-class precision/recall, confusion
    chainrule predict runs/<stamp> my7.png # your own digit, any size, either polarity
    chainrule demo backprop                # the seeds' worked examples

Exit codes: 0 success, 2 a usage or input problem (one line on stderr naming it and the fix;
`--debug` adds the traceback), 1 an internal failure, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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


class CLIError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .data import DataError
    from .preprocess import ImageError
    from .run import RunError
    from .serialize import ModelFileError

    return CLIError, DataError, ModelFileError, ImageError, RunError


# ---- argument parsing ---------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number ≥ {minimum}, got {text}")
    return value


def _real(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else "≥ 0"
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def nonneg_int(text: str) -> int:
    return _whole(text, 0)


def positive_float(text: str) -> float:
    return _real(text, positive=True)


def nonneg_float(text: str) -> float:
    return _real(text, positive=False)


def hidden_sizes(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes like 128 or 128,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes ≥ 1 like 128,64, got {text!r}")
    return sizes


def batch_size(text: str) -> int:
    if text.strip().lower() in ("full", "0"):
        return 0
    return positive_int(text)


def build_parser() -> Parser:
    from .activations import ACTIVATION_LAYERS
    from .optim import OPTIMIZERS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = Parser(prog="chainrule", parents=[common],
                    description="Neural networks from scratch in NumPy: train and use an MNIST "
                    "digit recogniser, and run the worked examples.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    t = sub.add_parser("train", parents=[common], help="train a digit classifier",
                       description="Train a network on MNIST-style digits. With no options: "
                       "MLP 784-128-10 (ReLU) on the bundled mnist-10k, SGD with momentum, "
                       "cosine schedule, ±2 px shift augmentation, 30 epochs.")
    t.add_argument("--data", metavar="NAME|DIR", help="mnist-10k (bundled, default), mnist, "
                   "fashion-mnist, or a folder of the four IDX files")
    t.add_argument("--model", choices=["mlp", "cnn"], help="network family (default mlp)")
    t.add_argument("--hidden", type=hidden_sizes, metavar="N[,N...]",
                   help="hidden layer sizes of the MLP (default 128)")
    t.add_argument("--activation", type=str.lower, choices=sorted(ACTIVATION_LAYERS),
                   metavar="NAME", help="hidden activation: " + ", ".join(sorted(ACTIVATION_LAYERS))
                   + " (default relu)")
    t.add_argument("--epochs", type=positive_int, help="passes over the training data "
                   "(default 30 for mlp, 12 for cnn; with --resume: the new total, and the "
                   "remaining epochs take the cosine rates of a fresh run of that length)")
    t.add_argument("--batch-size", type=batch_size, metavar="N|full",
                   help="examples per step: 1 = stochastic, 0 or full = full batch (default 64)")
    t.add_argument("--batches", type=positive_int, metavar="N",
                   help="stop after N mini-batches in total (seed 000: --batches 100 --epochs 1)")
    t.add_argument("--lr", type=positive_float,
                   help="learning rate (default for sgd: 0.1 at batch 64, scaled down for "
                   "smaller batches; otherwise the optimizer's default)")
    t.add_argument("--optimizer", type=str.lower, choices=sorted(OPTIMIZERS), metavar="NAME",
                   help="one of " + ", ".join(sorted(OPTIMIZERS)) + " (default sgd)")
    t.add_argument("--momentum", type=nonneg_float, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=nonneg_float, help="L2 weight decay (default 0)")
    t.add_argument("--schedule", choices=["cosine", "constant"],
                   help="learning-rate schedule over the epochs (default cosine)")
    t.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="train on the digits as they are (default: random shifts)")
    t.add_argument("--shift", type=nonneg_int, metavar="PX",
                   help="augmentation: shift digits by up to PX pixels (default 2)")
    t.add_argument("--rotate", type=nonneg_float, metavar="DEG",
                   help="augmentation: rotate digits by up to DEG degrees (default 0)")
    t.add_argument("--val-size", type=nonneg_int, metavar="N",
                   help="training digits held out for validation each epoch (default 500)")
    t.add_argument("--seed", type=nonneg_int, help="random seed (default 0): same seed, "
                   "same data → bit-identical weights")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/<timestamp>/)")
    t.add_argument("--resume", metavar="RUN_DIR_OR_MODEL",
                   help="continue an interrupted run from its checkpoint; without --epochs "
                   "the result equals the uninterrupted run exactly")
    t.add_argument("--no-plots", dest="plots", action="store_false",
                   help="skip the PNG figures (model.npz and history.json only)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    t.add_argument("--json", action="store_true",
                   help="print a JSON summary as the last line")
    t.set_defaults(func=cmd_train, parser=t)

    e = sub.add_parser("evaluate", parents=[common], help="test a trained model",
                       description="Accuracy, per-class precision/recall and the confusion "
                       "matrix of a model on a dataset's test split.")
    e.add_argument("model", metavar="MODEL", help="a run folder or a model .npz file")
    e.add_argument("--data", metavar="NAME|DIR",
                   help="dataset (default: the one the model was trained on)")
    e.add_argument("--json", action="store_true", help="print the results as one JSON line")
    e.set_defaults(func=cmd_evaluate, parser=e)

    p = sub.add_parser("predict", parents=[common], help="recognise digits in image files",
                       description="Read PNG/JPEG images of handwritten digits (any size, dark "
                       "on light or light on dark), prepare them like MNIST and classify them.")
    p.add_argument("model", metavar="MODEL", help="a run folder or a model .npz file")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="one JSON line per image")
    p.add_argument("--show-input", metavar="PATH",
                   help="save the 28×28 input the network saw as PNG (a folder when several "
                   "images are given)")
    p.set_defaults(func=cmd_predict, parser=p)

    d = sub.add_parser("demo", parents=[common], help="run a worked example from the seeds",
                       description="Worked examples: " + "; ".join(
                           f"{k}: {v}" for k, v in DEMOS.items()))
    d.add_argument("name", metavar="NAME", nargs="?", help=", ".join(DEMOS))
    d.add_argument("args", nargs=argparse.REMAINDER, help="options for the demo")
    d.set_defaults(func=cmd_demo, parser=d)

    data = sub.add_parser("data", parents=[common], help="list, download and describe datasets")
    dsub = data.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dsub.add_parser("list", parents=[common], help="datasets and where they are")
    di = dsub.add_parser("info", parents=[common], help="describe a dataset")
    di.add_argument("name", metavar="NAME|DIR")
    di.add_argument("--json", action="store_true")
    dd = dsub.add_parser("download", parents=[common], help="download and verify a dataset")
    dd.add_argument("name", metavar="NAME")
    dd.add_argument("--cache-dir", metavar="DIR", help="where to keep it")
    data.set_defaults(func=cmd_data, parser=data)

    x = sub.add_parser("export", parents=[common], help="write a model as ONNX or safetensors",
                       description="Write a trained model for other tools: ONNX (onnxruntime, "
                       "opset 17) or safetensors (PyTorch's state-dict names).")
    x.add_argument("source", metavar="RUN_OR_MODEL", help="a run folder or a model file")
    x.add_argument("--format", choices=["onnx", "safetensors"],
                   help="output format (default: from the suffix of -o)")
    x.add_argument("-o", "--out", required=True, metavar="FILE", help="the file to write")
    x.set_defaults(func=cmd_export, parser=x)

    from .web import server

    s = sub.add_parser("serve", parents=[common], help="web page to draw digits and watch the "
                       "network (MODEL --port N)", description=server.DESCRIPTION)
    server.add_arguments(s, debug=False)
    s.set_defaults(func=cmd_serve, parser=s)
    return parser


# ---- entry point --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # name the subcommand whose options were wrong
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `chainrule demo backprop | head`: the reader left early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit flush from failing
        return 0
    except _user_errors() as exc:
        if debug:
            traceback.print_exc()
        print(f"chainrule: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"chainrule: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _say(args, *lines: str) -> None:
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        print("\n".join(lines), flush=True)


# ---- train --------------------------------------------------------------------------------
TRAIN_FLAGS = ("data", "model", "hidden", "activation", "batch_size", "batches", "lr",
               "optimizer", "momentum", "weight_decay", "schedule", "augment", "shift",
               "rotate", "val_size", "seed")


CNN_EPOCHS = 12  # a CNN epoch costs ~30 MLP epochs of arithmetic


def train_config(args):
    from .run import TrainConfig

    given = {k: getattr(args, k) for k in (*TRAIN_FLAGS, "epochs") if getattr(args, k) is not None}
    cfg = TrainConfig(**given)
    cfg.lr = cfg.resolved_lr()
    if cfg.model == "cnn":
        for flag in ("hidden", "activation"):
            if getattr(args, flag) is not None:
                raise CLIError(f"--{flag} applies to --model mlp only")
        if args.epochs is None:
            cfg.epochs = CNN_EPOCHS
    return cfg


def default_out() -> Path:
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def cmd_train(args) -> int:
    from .run import Run
    from .train import TrainingDiverged

    t0 = time.perf_counter()
    if args.resume:
        clash = [f"--{k.replace('_', '-')}" for k in TRAIN_FLAGS if getattr(args, k) is not None]
        if clash:
            raise CLIError(f"{', '.join(clash)} cannot change when resuming (the run keeps its "
                           "settings); only --epochs, --out, --no-plots, --quiet, --json apply")
        run = Run.resume(args.resume, epochs=args.epochs, out=args.out)
        if run.remaining_epochs == 0:
            _say(args, f"{run.model_path}: training already finished "
                 f"({run.epochs_done} epochs); re-evaluating. Pass --epochs N to train longer.")
    else:
        cfg = train_config(args)
        out = Path(args.out) if args.out else default_out()
        if (out / "model.npz").exists():
            raise CLIError(f"{out} already holds a run; pass another --out, or continue it "
                           f"with `chainrule train --resume {out}`")
        run = Run.start(cfg, out)  # loads the data and builds the model: nothing written yet
        _make_folder(out)
        run.checkpoint()  # epoch 0: there is always a state to go back to
    _say(args, _header(run))
    try:
        run.train(progress=not args.quiet, threads=1 if run.cfg.model == "mlp" else None)
    except TrainingDiverged as exc:
        good = run.saved_epochs
        where = (f"the last good checkpoint (epoch {good}) is in {run.model_path}" if good
                 else f"{run.model_path} holds the untrained starting point")
        print(f"chainrule: error: training diverged: {_one_line(exc)}; {where}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nchainrule: interrupted; the checkpoint of epoch {run.saved_epochs} is in "
              f"{run.model_path}\nresume with: chainrule train --resume {run.out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    result = run.finish(plots=args.plots)
    seconds = time.perf_counter() - t0
    summary = {
        "test_accuracy": result["test_accuracy"], "test_loss": result["test_loss"],
        "val_accuracy": result["val_accuracy"], "epochs": run.epochs_done,
        "batches": run.batches_done, "seconds": round(seconds, 3),
        "train_seconds": round(run.train_seconds, 3), "out": str(run.out),
        "model": str(run.model_path), "data": run.cfg.data, "seed": run.cfg.seed,
        "files": result["files"],
    }
    _say(args, _summary(run, result, seconds))
    if args.json:
        print(json.dumps(summary))
    return EXIT_OK


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create the run folder {out} ({exc.strerror}); "
                       "pass a writable --out DIR") from exc


def _header(run) -> str:
    from .run import describe_model

    c = run.cfg
    (x, _), val, (xt, _) = run.data
    n_val = 0 if val is None else len(val[0])
    aug = "off"
    if c.augment:
        aug = f"shifts ±{c.shift} px" + (f", rotations ±{c.rotate:g}°" if c.rotate else "")
    opt = c.optimizer + (f" (momentum {c.momentum:g})" if c.optimizer == "sgd" else "")
    stop = f", stop after {c.batches} batches" if c.batches else ""
    return (f"{describe_model(run.model)}, {run.model.num_parameters():,} parameters\n"
            f"data {c.data}: {len(x):,} train / {n_val:,} validation / {len(xt):,} test\n"
            f"{opt} lr {c.lr:g}, {c.schedule} schedule, batch {c.batch_size or 'full'}, "
            f"{c.epochs} epochs{stop}, augmentation {aug}, seed {c.seed}\n"
            f"run folder {run.out}")


def _summary(run, result: dict, seconds: float) -> str:
    cm = np.asarray(result["confusion"])
    per_class = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    worst = np.argsort(per_class)[:3]
    lines = [
        "",
        f"test accuracy  {result['test_accuracy']:.2%}   (loss {result['test_loss']:.4f}, "
        f"{int(cm.sum()):,} test digits)",
        f"time           {seconds:.1f} s ({run.train_seconds:.1f} s training, "
        f"{run.epochs_done} epochs, {run.batches_done:,} batches)",
        "hardest        " + ", ".join(f"{run.classes[i]}: {per_class[i]:.1%}" for i in worst),
        f"files in {run.out}/: " + " ".join(result["files"]),
        f"next           chainrule evaluate {run.out}   ·   "
        f"chainrule predict {run.out} my_digit.png",
    ]
    return "\n".join(lines)


# ---- evaluate -----------------------------------------------------------------------------
def _load_model(path: str):
    from .serialize import load_checkpoint

    ckpt = load_checkpoint(path)
    ckpt.model.eval()
    return ckpt


def cmd_evaluate(args) -> int:
    from . import data as datasets
    from .losses import SoftmaxCrossEntropy
    from .train import predict
    from .viz import confusion_matrix

    ckpt = _load_model(args.model)
    name = args.data or ckpt.metadata.get("data", {}).get("name") or "mnist-10k"
    _, (x, y) = datasets.load(name, progress=not args.json)
    try:
        logits = predict(ckpt.model, x, batch_size=256)
    except ValueError as exc:
        raise CLIError(f"{ckpt.path} does not fit {name}'s images {x.shape[1:]}: "
                       f"{_one_line(exc)}") from exc
    k = logits.shape[1]
    loss_fn = SoftmaxCrossEntropy()
    loss = float(loss_fn(logits, y))
    pred = logits.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / cm.sum(axis=0)
        recall = tp / cm.sum(axis=1)
    names = ckpt.metadata.get("class_names") or [str(i) for i in range(k)]
    accuracy = float(tp.sum() / max(cm.sum(), 1))
    if args.json:
        def nan_none(a):
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]
        print(json.dumps({"accuracy": accuracy, "loss": loss, "confusion": cm.tolist(),
                          "precision": nan_none(precision), "recall": nan_none(recall),
                          "support": cm.sum(axis=1).tolist(), "classes": names,
                          "n": int(len(y)), "data": name, "model": str(ckpt.path)}))
        return EXIT_OK
    print(f"{ckpt.path} on the {name} test split ({len(y):,} examples)")
    print(f"accuracy {accuracy:.2%}   loss {loss:.4f}\n")
    width = max(5, *(len(n) for n in names))
    print(f"{'class':<{width}}  precision  recall  support")
    for i, n in enumerate(names):
        p = f"{precision[i]:.2%}" if np.isfinite(precision[i]) else "-"
        r = f"{recall[i]:.2%}" if np.isfinite(recall[i]) else "-"
        print(f"{n:<{width}}  {p:>9}  {r:>6}  {int(cm[i].sum()):>7}")
    print("\nconfusion matrix (rows: true class, columns: predicted)")
    cw = max(4, len(str(cm.max())) + 1, *(len(n) + 1 for n in names))
    print(" " * width + "".join(f"{n:>{cw}}" for n in names))
    for i, n in enumerate(names):
        print(f"{n:<{width}}" + "".join(f"{v:>{cw}}" for v in cm[i]))
    return EXIT_OK


# ---- predict ------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    from .activations import softmax
    from .preprocess import ImageError, load_digit_image, save_input_image
    from .train import predict

    ckpt = _load_model(args.model)
    names = ckpt.metadata.get("class_names") or [str(i) for i in range(10)]
    several = len(args.images) > 1
    show = Path(args.show_input) if args.show_input else None
    if show is not None and (several or show.is_dir() or args.show_input.endswith(("/", "\\"))):
        try:
            show.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot create {show} for --show-input ({exc.strerror})") from exc
    failed = 0
    for image_path in args.images:
        try:
            image = load_digit_image(image_path)
        except ImageError as exc:
            print(f"chainrule: error: {_one_line(exc)}", file=sys.stderr)
            failed += 1
            continue
        try:
            logits = predict(ckpt.model, image[None])
        except ValueError as exc:
            raise CLIError(f"{ckpt.path} does not take 28×28 digits: {_one_line(exc)}") from exc
        probs = softmax(logits.astype(np.float64))[0]
        digit = int(probs.argmax())
        if show is not None:
            target = show / f"{Path(image_path).stem}-input.png" if show.is_dir() else show
            save_input_image(image, target)
        if args.json:
            print(json.dumps({"image": image_path, "digit": digit,
                              "label": names[digit] if digit < len(names) else str(digit),
                              "probabilities": [float(p) for p in probs]}))
        else:
            runners = [int(i) for i in np.argsort(probs)[::-1][1:3]]
            rest = ", ".join(f"{names[i]} {probs[i]:.1%}" for i in runners)
            print(f"{image_path}: {names[digit]}  ({probs[digit]:.1%}; next {rest})")
    if failed:
        return EXIT_USAGE
    return EXIT_OK


# ---- demo, data, serve --------------------------------------------------------------------
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


def cmd_data(args) -> int:
    from . import data as datasets

    if args.action == "list":
        print(datasets.cli_list())
    elif args.action == "info":
        about = datasets.info(args.name)
        if args.json:
            print(json.dumps(about, default=str))
        else:
            for key, value in about.items():
                if key == "files":
                    value = ", ".join(f["name"] for f in value if isinstance(f, dict)) or value
                print(f"{key:<15} {value}")
    elif args.action == "download":
        folder = datasets.download(args.name, cache_dir=args.cache_dir)
        print(f"{args.name}: verified files in {folder}")
    return EXIT_OK


def cmd_export(args) -> int:
    from .interop import ExportError, MissingDependencyError, export_command

    try:
        out = export_command(args.source, args.format, args.out)
    except (ExportError, MissingDependencyError) as exc:
        raise CLIError(str(exc)) from exc
    print(f"wrote {out}")
    return EXIT_OK


def cmd_serve(args) -> int:
    from .web import server

    return int(server.run(args) or 0)
