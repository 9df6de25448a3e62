"""Bridges to the rest of the field: safetensors (PyTorch's weights), ONNX, scikit-learn.

    chainrule.save(model, "m.safetensors")     # PyTorch state-dict names + architecture
    chainrule.load("m.safetensors")            # rebuilds the model
    chainrule.load_weights(model, "torch.safetensors")   # strict, like load_state_dict
    chainrule.export_onnx(model, "m.onnx")     # opset 17, dynamic batch, eval-mode logits
    chainrule export RUN --format onnx -o m.onnx

This package writes the formats; reading them is `chainrule.formats`, under the one loader
`chainrule.load` (`chainrule.serialize`), which calls `save_as` here for these suffixes. The
optional packages (`safetensors`, `onnx`, `onnxruntime`, `scikit-learn`) are imported only
when a bridge is used; a missing one is a one-line error naming `pip install chainrule[...]`.
The scikit-learn estimator lives in `chainrule.sklearn`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._optional import MissingDependencyError
from ._common import ExportError
from .onnx_export import export_onnx, onnx_bytes
from .safetensors import safetensors_bytes, save_safetensors
from .weights import load_weights

# file suffixes whose writing `chainrule.save` hands over here, and the format names
FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors"}
SUFFIXES = tuple(FORMATS.values())


def save_as(model, path: str | os.PathLike, metadata: dict | None = None, optimizer=None) -> Path:
    """`chainrule.save` for a `.safetensors` or `.onnx` path."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if optimizer is not None:
            raise ValueError(f"{path}: an ONNX file holds no optimizer state; use a .npz")
        return export_onnx(model, path, metadata=metadata)
    return save_safetensors(model, path, metadata, optimizer)


def format_for(fmt: str | None, out: Path) -> str:
    """The export format for writing `out`: `fmt`, which must agree with the file's suffix,
    or (None) the one the suffix names. Raises ExportError when they disagree or neither says."""
    by_suffix = {suffix: name for name, suffix in FORMATS.items()}
    named = by_suffix.get(out.suffix.lower())
    if fmt is None:
        if named is None:
            raise ExportError(
                f"cannot tell the format from {out.name!r}; pass --format onnx or "
                "--format safetensors (or name the file .onnx / .safetensors)"
            )
        return named
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    if out.suffix and named != fmt:
        raise ExportError(
            f"--format {fmt} would write {fmt} bytes under the name {out.name!r}; name the "
            f"file {out.stem}{FORMATS[fmt]} or drop --format"
        )
    return fmt


__all__ = [
    "ExportError",
    "MissingDependencyError",
    "export_onnx",
    "format_for",
    "load_weights",
    "onnx_bytes",
    "safetensors_bytes",
    "save_safetensors",
]
