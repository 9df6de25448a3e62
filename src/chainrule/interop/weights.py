"""`load_weights(model, path)`: weights from a file into a model you built, checked strictly.

The file may be a `.safetensors` written by PyTorch (`safetensors.torch.save_file(
torch_model.state_dict(), path)`) or by chainrule, a chainrule `.npz`, or an `.onnx` file
chainrule exported. Like PyTorch's `load_state_dict(strict=True)`, every name the model has
must be in the file and every name in the file must be in the model, with the same shape and
dtype; anything else is one `ModelFileError` listing the missing, unexpected and mismatched
names. A batch norm's `num_batches_tracked` counter (PyTorch's) is accepted and not needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..module import Module
from ._common import file_error, is_batchnorm, named_modules

TRACKED = "num_batches_tracked"


def _tracked_names(model: Module) -> set[str]:
    return {
        f"{name}.{TRACKED}" if name else TRACKED
        for name, module in named_modules(model)
        if is_batchnorm(module)
    }


def _describe(a: np.ndarray) -> str:
    return f"{a.dtype}{list(a.shape)}"


def state_mismatches(model: Module, state: dict[str, np.ndarray]) -> tuple[list, list, list]:
    """(missing, unexpected, mismatched) names of `state` against the model's state dict."""
    expected = model.state_dict()
    optional = _tracked_names(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - optional)
    mismatched = []
    for name in sorted(set(state) & set(expected)):
        a, want = np.asarray(state[name]), expected[name]
        if a.shape != want.shape or a.dtype != want.dtype:
            mismatched.append(f"{name} (file {_describe(a)}, model {_describe(want)})")
    for name in sorted(set(state) & optional):
        a = np.asarray(state[name])
        if a.shape not in ((), (1,)) or a.dtype.kind not in "iu":
            mismatched.append(f"{name} (file {_describe(a)}, model an integer scalar)")
    return missing, unexpected, mismatched


def load_state(model: Module, state: dict[str, np.ndarray], path: Path) -> Module:
    """Copy `state` into `model` after the strict check; raises ModelFileError naming `path`."""
    missing, unexpected, mismatched = state_mismatches(model, state)
    if missing or unexpected or mismatched:
        parts = [
            f"{label} {names}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mismatched", mismatched),
            )
            if names
        ]
        raise file_error(
            path,
            "its weights do not fit the model: " + ", ".join(parts),
            "build the model with the same layers, sizes and dtype as the one that wrote it",
        )
    for name, a in state.items():
        if not np.all(np.isfinite(a)) and a.dtype.kind == "f":
            raise file_error(path, f"weight {name!r} contains NaN or inf", "check its source")
    optional = _tracked_names(model)
    model.load_state_dict({k: v for k, v in state.items() if k not in optional})
    return model


def read_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """name → array from a `.safetensors`, chainrule `.npz` or chainrule `.onnx` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from .safetensors import read_tensors

        return read_tensors(path)[0]
    if suffix == ".onnx":
        from .onnx_export import read_onnx_initializers

        return read_onnx_initializers(path)
    if suffix == ".npz" or path.is_dir():
        from ..serialize import load_checkpoint

        return load_checkpoint(path).model.state_dict()
    raise file_error(
        path,
        f"load_weights reads .safetensors, .npz and .onnx files, not {suffix or 'this'}",
        "in PyTorch, write one with safetensors.torch.save_file(model.state_dict(), path)",
    )


def load_weights(model: Module, path: str | os.PathLike) -> Module:
    """Load the weights in `path` into `model` (strict, like PyTorch's); returns the model.

    The model's train/eval mode is left as it was.
    """
    return load_state(model, read_state(path), Path(path))
