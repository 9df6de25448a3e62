"""What the bridges share: the export error and the module tree."""

from __future__ import annotations

from collections.abc import Iterator

from ..module import Module
from ..normalization import BatchNorm1d


class ExportError(ValueError):
    """A model chainrule cannot write in the asked-for format (e.g. a layer with no ONNX
    form); the message names the layer and what to do."""


def named_modules(module: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """(dotted name, module) for `module` and everything below it; the root's name is ""."""
    yield prefix.rstrip("."), module
    for name, child in module.named_children():
        yield from named_modules(child, f"{prefix}{name}.")


def is_batchnorm(module: Module) -> bool:
    return isinstance(module, BatchNorm1d)  # BatchNorm2d is a subclass
