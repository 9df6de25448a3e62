"""`chainrule train`, `chainrule evaluate` and `chainrule predict`: parse, call, print."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from .argtypes import (
    batch_size,
    hidden_sizes,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
)
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CLIError, failure, one_line

TRAIN_FLAGS = ("data", "model", "hidden", "activation", "batch_size", "batches", "lr",
               "optimizer", "momentum", "weight_decay", "schedule", "augment", "shift",
               "rotate", "val_size", "seed", "scale", "shear", "elastic", "thickness",
               "thick_pen", "deskew", "stroke_width")
CNN_EPOCHS = 12  # a CNN epoch costs ~30 MLP epochs of arithmetic


# ---- parsers ------------------------------------------------------------------------------
def add_parser(sub, common) -> None:
    """The `train`, `evaluate` and `predict` subcommands."""
    _add_train(sub, common)
    _add_evaluate(sub, common)
    _add_predict(sub, common)


def _add_train(sub, common) -> None:
    from ..activations import ACTIVATION_LAYERS
    from ..optim import OPTIMIZERS

    t = sub.add_parser("train", parents=[common], help="train a digit classifier",
                       description="Train a network on MNIST-style digits. With no options: "
                       "MLP 784-128-10 (ReLU) on the bundled mnist-10k, SGD with momentum, "
                       "cosine schedule, ±2 px shift augmentation, 30 epochs; digits "
                       "deskewed and their strokes normalised (in predict too). --model cnn "
                       "adds rotations, scale, shear, elastic distortion and stroke thickness.")
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
                   help="train on the digits as they are (default: random shifts; for the "
                   "cnn also the distortions below)")
    t.add_argument("--shift", type=nonneg_int, metavar="PX",
                   help="augmentation: shift digits by up to PX pixels (default 2)")
    t.add_argument("--rotate", type=nonneg_float, metavar="DEG",
                   help="augmentation: rotate digits by up to DEG degrees (default 0; cnn 10)")
    _add_distortions(t)
    t.add_argument("--val-size", type=nonneg_int, metavar="N",
                   help="training digits held out for validation each epoch (default 500)")
    _add_train_outputs(t)
    t.set_defaults(func=cmd_train, parser=t)


def _add_distortions(t) -> None:
    """The augmentations beyond shifts and rotations, and the digit standardisation."""
    t.add_argument("--scale", type=nonneg_float, metavar="FRAC",
                   help="augmentation: scale each axis by up to ±FRAC (default 0; cnn 0.1)")
    t.add_argument("--shear", type=nonneg_float, metavar="K",
                   help="augmentation: shear x by up to ±K·y (default 0; cnn 0.2)")
    t.add_argument("--elastic", type=nonneg_float, metavar="PX",
                   help="augmentation: smooth random distortion of about PX pixels "
                   "(default 0; cnn 1)")
    t.add_argument("--thickness", type=nonneg_float, metavar="FRAC",
                   help="augmentation: thicken or thin strokes by up to FRAC of a pixel "
                   "each side (default 0; cnn 0.5)")
    t.add_argument("--thick-pen", type=nonneg_float, metavar="PX",
                   help="augmentation: redraw half of the training digits with a pen 1 to PX "
                   "pixels wider, before the stroke width is normalised (default 0; cnn 5)")
    t.add_argument("--no-deskew", dest="deskew", action="store_false", default=None,
                   help="do not straighten slanted digits (default: deskew, in training and "
                   "in predict alike)")
    t.add_argument("--stroke-width", type=nonneg_float, metavar="PX",
                   help="normalise stroke widths to PX pixels, 0 = off (default 2, MNIST's "
                   "median; in training and in predict alike)")


def _add_train_outputs(t) -> None:
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
    t.add_argument("--threads", type=positive_int, metavar="N",
                   help="BLAS threads (chainrule's own work: at most N); default: 1 for an "
                        "MLP, every core for the CNN, or $CHAINRULE_NUM_THREADS")


def _add_evaluate(sub, common) -> None:
    e = sub.add_parser("evaluate", parents=[common], help="test a trained model",
                       description="Accuracy, per-class precision/recall and the confusion "
                       "matrix of a model on a dataset's test split.")
    e.add_argument("model", metavar="MODEL", help="a run folder or a model .npz file")
    e.add_argument("--data", metavar="NAME|DIR",
                   help="dataset (default: the one the model was trained on)")
    e.add_argument("--json", action="store_true", help="print the results as one JSON line")
    e.set_defaults(func=cmd_evaluate, parser=e)


def _add_predict(sub, common) -> None:
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


def _say(args, *lines: str) -> None:
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        print("\n".join(lines), flush=True)


# ---- train --------------------------------------------------------------------------------
def train_config(args):
    from .config import CNN_DISTORTIONS, CNN_HIDDEN, TrainConfig, check_recipe, is_digit_data

    given = {k: getattr(args, k) for k in (*TRAIN_FLAGS, "epochs") if getattr(args, k) is not None}
    cfg = TrainConfig(**given)
    cfg.lr = cfg.resolved_lr()
    if not is_digit_data(cfg.data):  # deskewing a shoe means nothing
        cfg.deskew = given.get("deskew", False)
        cfg.stroke_width = given.get("stroke_width", 0.0)
    check_recipe(cfg)
    if cfg.model == "cnn":
        for flag in ("hidden", "activation"):
            if getattr(args, flag) is not None:
                raise CLIError(f"--{flag} applies to --model mlp only")
        if args.epochs is None:
            cfg.epochs = CNN_EPOCHS
        cfg.hidden = CNN_HIDDEN
        for name, value in CNN_DISTORTIONS.items():  # its default recipe
            if getattr(args, name) is None:
                setattr(cfg, name, value)
    return cfg


def run_threads(run, requested: int | None = None) -> int:
    """BLAS threads for this run: `requested` (--threads), else $CHAINRULE_NUM_THREADS, else 1
    for an MLP's products and every core for the CNN's (`chainrule.threads` holds the rule
    and the measurements behind it). chainrule's own threads are capped at the same count."""
    from ..threads import get_num_threads, set_num_threads, threads_for
    from .run import IMAGE_SHAPE

    n_train = len(run.data[0][0])
    batch = min(run.cfg.batch_size or n_train, n_train)
    threads = threads_for(run.model, IMAGE_SHAPE, batch, threads=requested)
    set_num_threads(min(threads, get_num_threads()))
    return threads


def check_thread_env() -> None:
    """A bad $CHAINRULE_NUM_THREADS is a usage error before any work starts."""
    from ..threads import env_threads

    try:
        env_threads()
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def default_out() -> Path:
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def open_run(args, comm=None):
    """The run `args` asks for: resumed from --resume, or started fresh in its folder.
    On N MPI ranks (`comm`) all open the same run, in the folder rank 0 names; every step
    is a phase (`Communicator.phase`), so a failure on any rank stops them all together."""
    from ..distributed import Communicator
    from .run import Run

    comm = comm or Communicator()
    if not args.resume:
        out = args.out or comm.broadcast_text(str(default_out()) if comm.is_root else "")
        with comm.phase(failure):
            cfg = train_config(args)
        return Run.begin(cfg, Path(out), comm)
    with comm.phase(failure):
        clash = [f"--{k.replace('_', '-')}" for k in TRAIN_FLAGS if getattr(args, k) is not None]
        if clash:
            raise CLIError(f"{', '.join(clash)} cannot change when resuming (the run keeps its "
                           "settings); only --epochs, --out, --no-plots, --quiet, --json apply")
    run = Run.resume(args.resume, epochs=args.epochs, out=args.out, comm=comm)
    if run.remaining_epochs == 0:
        _say(args, f"{run.model_path}: training already finished "
             f"({run.epochs_done} epochs); re-evaluating. Pass --epochs N to train longer.")
    return run


def cmd_train(args) -> int:
    from ..distributed import RankFailed, communicator, end_job
    from ..train import TrainingDiverged

    t0 = time.perf_counter()
    check_thread_env()
    comm = communicator()  # N ranks under `mpiexec -n N`: rank 0 speaks and writes
    if not comm.is_root:
        args.quiet, args.json = True, False
    if comm.size > 1:
        _interrupt_on_sigterm()
    try:
        run = open_run(args, comm)
        _say(args, run.header())
        threads = 1 if comm.size > 1 else run_threads(run, args.threads)
        run.train(progress=not args.quiet, threads=threads)
    except RankFailed as exc:  # every rank raised it together: rank 0 says it, all end
        if comm.is_root:
            print(f"chainrule: error: {one_line(exc)}", file=sys.stderr)
        return exc.code
    except TrainingDiverged as exc:  # every rank sees the same loss: all stop here
        good = run.saved_epochs
        where = (f"the last good checkpoint (epoch {good}) is in {run.model_path}" if good
                 else f"{run.model_path} holds the untrained starting point")
        if comm.is_root:
            print(f"chainrule: error: training diverged: {one_line(exc)}; {where}",
                  file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if comm.is_root:
            print(f"\nchainrule: interrupted; the checkpoint of epoch {run.saved_epochs} is in "
                  f"{run.model_path}\nresume with: chainrule train --resume {run.out}",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if comm.size == 1:
            raise
        end_job(comm, exc)  # an error on this rank alone, outside a phase: end every rank
    if not comm.is_root:
        return EXIT_OK
    result = run.finish(plots=args.plots)
    seconds = time.perf_counter() - t0
    _say(args, run.summary_text(result, seconds))
    if args.json:
        print(json.dumps(run.summary(result, seconds)))
    return EXIT_OK


def _interrupt_on_sigterm() -> None:
    """Ctrl-C on `mpiexec` reaches the ranks as SIGTERM (Open MPI cannot forward SIGINT):
    make it the same clean interrupt as Ctrl-C on one process, so a checkpoint being
    written is discarded and the last good one stays."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


# ---- evaluate -----------------------------------------------------------------------------
def _load_model(path: str):
    from ..serialize import load_checkpoint

    ckpt = load_checkpoint(path)
    ckpt.model.eval()
    return ckpt


def cmd_evaluate(args) -> int:
    from .. import data as datasets
    from ..losses import SoftmaxCrossEntropy
    from ..metrics import accuracy, confusion_matrix, precision_recall
    from ..preprocess import standardise
    from ..train import predict

    ckpt = _load_model(args.model)
    name = args.data or ckpt.metadata.get("data", {}).get("name") or "mnist-10k"
    _, (x, y) = datasets.load(name, progress=not args.json)
    x = standardise(x, ckpt.metadata.get("preprocessing"))  # as the model was trained
    try:
        logits = predict(ckpt.model, x, batch_size=256)
    except ValueError as exc:
        raise CLIError(f"{ckpt.path} does not fit {name}'s images {x.shape[1:]}: "
                       f"{one_line(exc)}") from exc
    k = logits.shape[1]
    loss = float(SoftmaxCrossEntropy()(logits, y))
    cm = confusion_matrix(y, logits.argmax(axis=1), k)
    precision, recall = precision_recall(cm)
    names = ckpt.metadata.get("class_names") or [str(i) for i in range(k)]
    acc = accuracy(logits, y) if len(y) else 0.0
    if args.json:
        def nan_none(a):
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]
        print(json.dumps({"accuracy": acc, "loss": loss, "confusion": cm.tolist(),
                          "precision": nan_none(precision), "recall": nan_none(recall),
                          "support": cm.sum(axis=1).tolist(), "classes": names,
                          "n": int(len(y)), "data": name, "model": str(ckpt.path)}))
        return EXIT_OK
    print(f"{ckpt.path} on the {name} test split ({len(y):,} examples)")
    print(f"accuracy {acc:.2%}   loss {loss:.4f}\n")
    _print_table(names, cm, precision, recall)
    return EXIT_OK


def _print_table(names: list[str], cm: np.ndarray, precision, recall) -> None:
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


# ---- predict ------------------------------------------------------------------------------
def _show_folder(args) -> Path | None:
    show = Path(args.show_input) if args.show_input else None
    several = len(args.images) > 1
    if show is not None and (several or show.is_dir() or args.show_input.endswith(("/", "\\"))):
        try:
            show.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot create {show} for --show-input ({exc.strerror})") from exc
    return show


def cmd_predict(args) -> int:
    from ..activations import softmax
    from ..preprocess import ImageError, load_digit_image, preprocessing_steps, save_input_image
    from ..train import predict

    ckpt = _load_model(args.model)
    names = ckpt.metadata.get("class_names") or [str(i) for i in range(10)]
    steps = ckpt.metadata.get("preprocessing")  # as the model's training digits were prepared
    preprocessing_steps(steps)  # a model file with unusable steps: one error, not one per image
    show = _show_folder(args)
    failed = 0
    for image_path in args.images:
        try:
            image = load_digit_image(image_path, steps)
        except ImageError as exc:
            print(f"chainrule: error: {one_line(exc)}{_what_was_seen(exc, show, image_path)}",
                  file=sys.stderr)
            failed += 1
            continue
        try:
            logits = predict(ckpt.model, image[None])
        except ValueError as exc:
            raise CLIError(f"{ckpt.path} does not take 28×28 digits: {one_line(exc)}") from exc
        probs = softmax(logits.astype(np.float64))[0]
        digit = int(probs.argmax())
        if show is not None:
            target = show / f"{Path(image_path).stem}-input.png" if show.is_dir() else show
            save_input_image(image, target)
        _print_prediction(args, image_path, names, probs, digit)
    return EXIT_USAGE if failed else EXIT_OK


def _what_was_seen(exc, show: Path | None, image_path: str) -> str:
    """The end of a refused picture's message: where the input it would have made was
    saved (with --show-input), or how to see it."""
    from ..preprocess import save_input_image

    if exc.seen is None:
        return ""
    if show is None:
        return "; see what the network would get with --show-input PATH.png"
    target = show / f"{Path(image_path).stem}-input.png" if show.is_dir() else show
    save_input_image(exc.seen, target)
    return f"; what the network would get is in {target}"


def _print_prediction(args, image_path: str, names: list[str], probs, digit: int) -> None:
    if args.json:
        print(json.dumps({"image": image_path, "digit": digit,
                          "label": names[digit] if digit < len(names) else str(digit),
                          "probabilities": [float(p) for p in probs]}))
    else:
        runners = [int(i) for i in np.argsort(probs)[::-1][1:3]]
        rest = ", ".join(f"{names[i]} {probs[i]:.1%}" for i in runners)
        print(f"{image_path}: {names[digit]}  ({probs[digit]:.1%}; next {rest})")
