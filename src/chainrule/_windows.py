"""Sliding-window shapes shared by the convolution and pooling layers.

A window layer (Conv2D, MaxPool2D, AvgPool2D) slides a kh×kw window over (N, C, H, W) images
with a stride, maybe over a zero border: these helpers parse its sizes, compute its output
size (PyTorch's rule) and take strided views of its windows. They live here, below both
layers, so that neither layer module imports the other.
"""

from __future__ import annotations

import numpy as np

from .module import shape_str


def pair(value, what: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints → (a, b), each ≥ minimum."""
    both = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(both) != 2 or any(int(v) != v or v < minimum for v in both):
        raise ValueError(
            f"{layer}: {what} must be an int ≥ {minimum} or a pair of them, got {value!r}"
        )
    return int(both[0]), int(both[1])


def compact(both: tuple[int, int]) -> int | list[int]:
    """(3, 3) → 3 and (3, 5) → [3, 5]: what config() stores (JSON has no tuples)."""
    return both[0] if both[0] == both[1] else list(both)


def output_size(
    layer: str,
    shape: tuple,
    kernel: tuple,
    stride: tuple,
    padding: tuple = (0, 0),
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """(Ho, Wo) = (⌊(H + 2p − k)/s⌋ + 1, ...) for an input of `shape` (N, C, H, W), as PyTorch.

    Floor: rows or columns left over after the last whole window are not used. With
    `ceil_mode` (pooling) the division rounds up instead, so a last, partial window covers
    them, provided it starts inside the input or its left padding (PyTorch's rule).
    Raises a ValueError naming `layer` when the kernel does not fit the padded input.
    """
    sizes = []
    for axis in (2, 3):
        n, k, s, p = shape[axis], kernel[axis - 2], stride[axis - 2], padding[axis - 2]
        if n + 2 * p < k:
            raise ValueError(
                f"{layer}: kernel {kernel[0]}×{kernel[1]} is larger than the padded input "
                f"{shape[2] + 2 * padding[0]}×{shape[3] + 2 * padding[1]} "
                f"(input {shape_str(shape)}, padding {compact(padding)})"
            )
        size = (n + 2 * p - k) // s + 1
        if ceil_mode:
            size = -(-(n + 2 * p - k) // s) + 1
            if (size - 1) * s >= n + p:  # the last window would start in the right padding
                size -= 1
        sizes.append(size)
    return sizes[0], sizes[1]


def like(a: np.ndarray, template: np.ndarray) -> np.ndarray:
    """`a`, copied if needed so its memory runs in the same axis order as `template`'s
    (elementwise ops on arrays of mixed layouts iterate slowly)."""
    if np.array_equal(np.argsort(a.strides), np.argsort(template.strides)):
        return a
    out = np.empty_like(template, dtype=a.dtype)
    out[...] = a
    return out


def along(a: np.ndarray, axis: int, i: int, stride: int, n: int) -> np.ndarray:
    """Offset i of n windows along `axis`: a[..., i + stride·t, ...] for t < n (a view)."""
    index = [slice(None)] * a.ndim
    index[axis] = slice(i, i + stride * (n - 1) + 1, stride)
    return a[tuple(index)]
