"""Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_ semantics)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..module import Module, Parameter


def clip_grad_norm(
    params: Iterable[Parameter] | Parameter | Module,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients in place so their global norm is at most `max_norm`.

    total = ‖(‖g₁‖, ‖g₂‖, ...)‖ (the norm of all gradients as one flat vector; `norm_type`
    2 or inf or any p ≥ 1); every gradient is multiplied by min(1, max_norm/(total + 1e-6)).
    Returns the total norm *before* clipping. Caps the step of an exploding batch without
    changing its direction.
    """
    if isinstance(params, Module):
        params = params.parameters()
    elif isinstance(params, Parameter):
        params = [params]
    grads = [p.grad for p in params]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not (max_norm >= 0):
        raise ValueError(f"clip_grad_norm: max_norm must be ≥ 0, got {max_norm}")
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        if not norm_type > 0:
            raise ValueError(f"clip_grad_norm: norm_type must be > 0, got {norm_type}")
        norms = np.array([np.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads])
        total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise FloatingPointError(
            f"clip_grad_norm: the total gradient norm is {total}; set error_if_nonfinite=False "
            "to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total
