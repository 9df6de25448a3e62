"""Bridges to the rest of the field: safetensors (PyTorch's weights), ONNX, scikit-learn.

    chainrule.save(model, "m.safetensors")     # PyTorch state-dict names + architecture
    chainrule.load("m.safetensors")            # rebuilds the model
    chainrule.load_weights(model, "torch.safetensors")   # strict, like load_state_dict
    chainrule.export_onnx(model, "m.onnx")     # opset 17, dynamic batch, eval-mode logits
    chainrule export RUN --format onnx -o m.onnx

The optional packages (`safetensors`, `onnx`, `onnxruntime`, `scikit-learn`) are imported only
when a bridge is used; a missing one is a one-line error naming `pip install chainrule[...]`.
The scikit-learn estimator lives in `chainrule.sklearn`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import ExportError, MissingDependencyError
from .onnx_export import export_onnx, onnx_bytes
from .safetensors import safetensors_bytes, save_safetensors
from .weights import load_weights

# file suffixes whose reading and writing `chainrule.save` / `chainrule.load` hand over here
SUFFIXES = (".safetensors", ".onnx")
FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors"}


def save_as(model, path: str | os.PathLike, metadata: dict | None = None, optimizer=None) -> Path:
    """`chainrule.save` for a `.safetensors` or `.onnx` path."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if optimizer is not None:
            raise ValueError(f"{path}: an ONNX file holds no optimizer state; use a .npz")
        return export_onnx(model, path)
    return save_safetensors(model, path, metadata, optimizer)


def load_checkpoint_from(path: str | os.PathLike):
    """`chainrule.load_checkpoint` for a `.safetensors` or `.onnx` file. A missing optional
    package is a `ModelFileError` too (so the CLI answers it in one line, exit code 2)."""
    from ..serialize import ModelFileError
    from .onnx_export import load_onnx_checkpoint
    from .safetensors import load_safetensors_checkpoint

    path = Path(path)
    is_onnx = path.suffix.lower() == ".onnx"
    try:
        return load_onnx_checkpoint(path) if is_onnx else load_safetensors_checkpoint(path)
    except MissingDependencyError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc


def export_command(source: str | os.PathLike, fmt: str | None, out: str | os.PathLike) -> Path:
    """`chainrule export SOURCE --format FMT -o OUT`: read a run folder or model file (any
    format chainrule loads) and write it as `fmt` ("onnx" or "safetensors"; None: from OUT's
    suffix). An existing folder OUT gets `model.onnx` / `model.safetensors`. Returns the file.
    """
    from ..serialize import load_checkpoint

    out = Path(out)
    if fmt is None:
        by_suffix = {suffix: name for name, suffix in FORMATS.items()}
        fmt = by_suffix.get(out.suffix.lower())
        if fmt is None:
            raise ExportError(
                f"cannot tell the format from {out.name!r}; pass --format onnx or "
                "--format safetensors (or name the file .onnx / .safetensors)"
            )
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    ckpt = load_checkpoint(source)
    if out.is_dir():
        out = out / f"model{FORMATS[fmt]}"
    if fmt == "onnx":
        return export_onnx(ckpt.model, out)
    return save_safetensors(ckpt.model, out, ckpt.metadata)


__all__ = [
    "ExportError",
    "MissingDependencyError",
    "export_command",
    "export_onnx",
    "load_weights",
    "onnx_bytes",
    "safetensors_bytes",
    "save_safetensors",
]
