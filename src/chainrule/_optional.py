"""Optional packages (safetensors, onnx, onnxruntime, scikit-learn): imported on first use, a
missing one is one line naming the `pip install chainrule[...]` that fixes it."""

from __future__ import annotations

import importlib

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
