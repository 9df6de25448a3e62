"""`load_weights(model, path)`: weights from a file into a model you built, checked strictly.

The file may be a `.safetensors` written by PyTorch (`safetensors.torch.save_file(
torch_model.state_dict(), path)`) or by chainrule, a chainrule `.npz`, or an `.onnx` file
chainrule exported. Like PyTorch's `load_state_dict(strict=True)`, every name the model has
must be in the file and every name in the file must be in the model, with the same shape and
dtype; anything else is one `ModelFileError` listing the missing, unexpected and mismatched
names. A batch norm's `num_batches_tracked` counter (PyTorch's) is accepted and not needed.
The file's header is read first (`chainrule.formats`) and compared with the model before any
array is read, so a file cannot make this allocate more than the model holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..formats import READERS, read_model_file
from ..model_file_checks import OPTIM_PREFIX, ArraySpec, ModelFile, ModelFileError
from ..module import Module
from ._common import is_batchnorm, named_modules

TRACKED = "num_batches_tracked"
_FIX = "build the model with the same layers, sizes and dtype as the one that wrote it"


def _tracked_names(model: Module) -> set[str]:
    return {
        f"{name}.{TRACKED}" if name else TRACKED
        for name, module in named_modules(model)
        if is_batchnorm(module)
    }


def _describe(dtype, shape) -> str:
    return f"{np.dtype(dtype)}{list(shape)}"


def state_mismatches(model: Module, state: dict[str, ArraySpec], optional=frozenset()):
    """(missing, unexpected, mismatched) names of `state` (name → shape and dtype) against the
    model's state dict; names in `optional` may be unused."""
    expected = model.state_dict()
    counters = _tracked_names(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - counters - set(optional))
    mismatched = []
    for name in sorted(set(state) & set(expected)):
        spec, want = state[name], expected[name]
        if spec.shape != want.shape or spec.dtype != want.dtype:
            mismatched.append(f"{name} (file {_describe(spec.dtype, spec.shape)}, model "
                              f"{_describe(want.dtype, want.shape)})")
    for name in sorted(set(state) & counters):
        spec = state[name]
        if spec.shape not in ((), (1,)) or spec.dtype.kind not in "iu":
            mismatched.append(f"{name} (file {_describe(spec.dtype, spec.shape)}, model an "
                              "integer scalar)")
    return missing, unexpected, mismatched


def _weights_file(path: Path) -> ModelFile:
    if path.is_dir() or path.suffix.lower() in READERS:
        return read_model_file(path / "model.npz" if path.is_dir() else path)
    raise ModelFileError(
        f"{path}: load_weights reads .safetensors, .npz and .onnx files, not "
        f"{path.suffix or 'this'}; in PyTorch, write one with "
        "safetensors.torch.save_file(model.state_dict(), path)"
    )


def load_weights(model: Module, path: str | os.PathLike) -> Module:
    """Load the weights in `path` into `model` (strict, like PyTorch's); returns the model.

    The model's train/eval mode is left as it was.
    """
    path = Path(path)
    found = _weights_file(path)
    specs = {n: s for n, s in found.arrays.items() if not n.startswith(OPTIM_PREFIX)}
    tied = found.tied if isinstance(found.tied, dict) else {}
    stored_as = {n: t for n, t in tied.items() if n not in specs and t in specs}  # ONNX
    specs.update({n: specs[t] for n, t in stored_as.items()})
    missing, unexpected, mismatched = state_mismatches(model, specs, found.unused_ok)
    if missing or unexpected or mismatched:
        parts = [f"{label} {names}" for label, names in (
            ("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)) if names]
        raise ModelFileError(f"{path}: its weights do not fit the model: {', '.join(parts)}; "
                             f"{_FIX}")
    state = {}
    for name in model.state_dict():
        a = np.asarray(found.read(stored_as.get(name, name)))
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: weight {name!r} contains NaN or inf; check its source")
        state[name] = a
    model.load_state_dict(state)
    return model
