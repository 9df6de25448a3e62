"""The exercises: their names, summaries, skeleton files and time limits; `start` writes a
skeleton for the learner."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SKELETONS = Path(__file__).resolve().parent / "skeletons"


class ExerciseError(ValueError):
    """A usage problem: an unknown exercise, a missing file, a file that would be overwritten."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its name, a one-line summary, the checks' module and its time limit (s)."""

    name: str
    summary: str
    module: str
    timeout: float = 60.0

    @property
    def filename(self) -> str:
        """The file `start` writes: the name as a Python module (softmax-ce → softmax_ce.py)."""
        return f"{self.module}.py"

    @property
    def skeleton(self) -> Path:
        return SKELETONS / self.filename


EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise("value", "a scalar Value that backpropagates: + - * / **, tanh, relu, exp",
             "value"),
    Exercise("dense", "a Dense layer Y = X Wᵀ + b, forward and backward", "dense"),
    Exercise("softmax-ce", "softmax with cross-entropy, fused: the loss and dL/dz = (p − y)/N",
             "softmax_ce"),
    Exercise("sgd-momentum", "an SGD optimizer with momentum, PyTorch's update rule",
             "sgd_momentum"),
    Exercise("conv2d", "a 2-D convolution with stride and padding, forward and backward",
             "conv2d"),
    Exercise("mlp-mnist", "your own training loop: an MLP reaching 92% on mnist-10k",
             "mlp_mnist", timeout=300.0),
]}  # fmt: skip


def get(name: str) -> Exercise:
    """The exercise called `name`, or an ExerciseError listing the names."""
    try:
        return EXERCISES[name]
    except KeyError:
        raise ExerciseError(f"no exercise called {name!r}; choose one of "
                            f"{', '.join(EXERCISES)} (`chainrule exercises list`)") from None


def start(name: str, folder: str | Path = ".") -> Path:
    """Write the skeleton of exercise `name` into `folder` (made if missing); returns its path.

    Refuses to overwrite: an existing file is the learner's work.
    """
    exercise = get(name)
    folder = Path(folder)
    target = folder / exercise.filename
    if target.exists():
        raise ExerciseError(f"{target} already exists: keep working on it, or pass another "
                            "--dir (the checker never overwrites your work)")
    if folder.exists() and not folder.is_dir():
        raise ExerciseError(f"{folder} is a file, not a folder: pass a folder to --dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_new(target, exercise.skeleton.read_text(encoding="utf-8"))
    except FileExistsError:  # appeared between the check above and the link
        raise ExerciseError(f"{target} already exists: keep working on it, or pass another "
                            "--dir") from None
    except OSError as exc:
        raise ExerciseError(f"cannot write {target}: {exc.strerror or exc}; pass a folder "
                            "you can write to with --dir") from None
    return target


def _write_new(target: Path, text: str) -> None:
    """Write `text` to a temporary file beside `target`, then link it in: whole or not at all,
    and never over a file that appeared in the meantime (os.link refuses to replace)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes it 0600; a skeleton is an ordinary file
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.link(tmp, target)
    finally:
        os.unlink(tmp)
