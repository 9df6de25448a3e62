"""Writing `.safetensors` files: the weights under PyTorch's names, the architecture in the header.

chainrule writes `model.state_dict()` under its own names, which for a `Sequential` are already
`torch.nn.Sequential`'s (`1.weight`, `4.running_mean`), plus an int64 scalar
`num_batches_tracked` for each batch norm (PyTorch keeps that counter), so
`torch_model.load_state_dict(tensors, strict=True)` accepts the file. A parameter shared by two
layers is stored under both names (as PyTorch's state dict lists it). The `__metadata__` holds
chainrule's format tag, version, architecture, dtype, tied parameters and metadata as JSON
strings, so `chainrule.load` rebuilds the model, ties included. Reading is
`chainrule.formats.safetensors` (no optional package needed); writing needs `safetensors`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._io import atomic_open
from .._optional import require
from .._version import __version__
from ..model_file_checks import FORMAT, jsonable
from ..module import Module, describe
from ._common import is_batchnorm, named_modules

SUFFIX = ".safetensors"


def _require_numpy_backend():
    return require("safetensors.numpy", "writing .safetensors files")


def torch_state_dict(model: Module) -> dict[str, np.ndarray]:
    """`model.state_dict()` as PyTorch names it: every parameter and buffer, plus an int64
    scalar `<bn>.num_batches_tracked` for each batch norm."""
    state = {name: np.ascontiguousarray(a) for name, a in model.state_dict().items()}
    for name, module in named_modules(model):
        if is_batchnorm(module):
            key = f"{name}.num_batches_tracked" if name else "num_batches_tracked"
            state[key] = np.array(int(getattr(module, "num_batches_tracked", 0)), np.int64)
    return state


def header_metadata(model: Module, metadata: dict | None = None) -> dict[str, str]:
    """The `__metadata__` strings: format tag, version, architecture, dtype, ties, metadata."""
    params = [p for _, p in model.named_parameters()]
    return {
        "format": FORMAT,
        "chainrule_version": __version__,
        "model": json.dumps(describe(model)),
        "dtype": str(params[0].data.dtype) if params else "float32",
        "tied": json.dumps(model.tied_parameters()),
        "metadata": json.dumps(metadata or {}, default=jsonable),
    }


def safetensors_bytes(model: Module, metadata: dict | None = None) -> bytes:
    """The whole `.safetensors` file for `model`, as bytes (for a download, say)."""
    st = _require_numpy_backend()
    return st.save(torch_state_dict(model), metadata=header_metadata(model, metadata))


def save_safetensors(
    model: Module, path: str | os.PathLike, metadata: dict | None = None, optimizer=None
) -> Path:
    """Write `model` to `path` as safetensors, atomically (temp file, then rename)."""
    path = Path(path)
    if optimizer is not None:
        raise ValueError(
            f"{path}: a .safetensors file holds weights only; save the optimizer's state "
            "in a chainrule .npz file instead"
        )
    data = safetensors_bytes(model, metadata)
    with atomic_open(path) as f:
        f.write(data)
    return path
