"""The model-file formats chainrule reads, each a reader of headers under one loader.

    .npz            chainrule's own (`chainrule.formats.npz`)
    .safetensors    PyTorch's weights format (`chainrule.formats.safetensors`)
    .onnx           the ONNX files chainrule exports (`chainrule.formats.onnx`)

A reader turns a file into a `ModelFile` (architecture JSON, every array's shape and dtype,
a function that reads one array, metadata) without reading any array. `chainrule.serialize`
is the one loader: it reads the header here, checks it (`chainrule.model_file_checks`), builds
the model and only then reads the arrays into it. A new format is one more entry in `READERS`,
and so goes through the same checks. The writers are `chainrule.save` (`.npz`) and the bridges
in `chainrule.interop`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._optional import MissingDependencyError
from ..model_file_checks import ModelFile, ModelFileError
from . import npz, onnx, safetensors

READERS: dict[str, Callable[[Path], ModelFile]] = {
    ".npz": npz.read_model_file,
    safetensors.SUFFIX: safetensors.read_model_file,
    onnx.SUFFIX: onnx.read_model_file,
}


def read_model_file(path: Path) -> ModelFile:
    """The header of the model file at `path`, by its suffix (any other suffix: `.npz`).
    A missing optional package is a ModelFileError too (one line, CLI exit code 2)."""
    reader = READERS.get(path.suffix.lower(), npz.read_model_file)
    try:
        return reader(path)
    except MissingDependencyError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
