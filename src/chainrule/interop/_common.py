"""What the bridges share: optional imports, the module tree, errors and file checks."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from ..module import Module
from ..serialize import ModelFileError

# the extra of chainrule that installs each optional package
EXTRAS = {
    "safetensors": "safetensors",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "sklearn": "sklearn",
}


class MissingDependencyError(ImportError):
    """An optional package a bridge needs is not installed; the message names the fix."""


def require(package: str, purpose: str):
    """Import `package` (e.g. "onnx" or "safetensors.numpy") or fail with one line naming the
    `pip install` that fixes it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        top = package.split(".")[0]
        extra = EXTRAS.get(top, top)
        raise MissingDependencyError(
            f"{purpose} needs the {top!r} package, which is not installed; "
            f"install it with `pip install chainrule[{extra}]`"
        ) from exc


class ExportError(ValueError):
    """A model chainrule cannot write in the asked-for format (e.g. a layer with no ONNX
    form); the message names the layer and what to do."""


def named_modules(module: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """(dotted name, module) for `module` and everything below it; the root's name is ""."""
    yield prefix.rstrip("."), module
    for name, child in module.named_children():
        yield from named_modules(child, f"{prefix}{name}.")


def is_batchnorm(module: Module) -> bool:
    from ..regularization import BatchNorm1d

    return isinstance(module, BatchNorm1d)  # BatchNorm2d is a subclass


def file_error(path: Path, problem: str, fix: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}; {fix}")


def check_readable(path: Path, what: str) -> None:
    """A clear ModelFileError when `path` is missing or a folder."""
    if not path.exists():
        raise file_error(path, f"no such {what} file", "check the path")
    if path.is_dir():
        raise file_error(path, f"a folder, not a {what} file", "pass the file itself")
