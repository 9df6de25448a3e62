"""Pictures of a training run: loss and accuracy curves, the confusion matrix, what the first
layer learned, the digits the model gets most wrong, and a CNN's feature maps.

Every function draws on its own `matplotlib.figure.Figure` (no pyplot, no global state, no
display needed: PNGs come from the Agg renderer) and writes the file atomically, via a
temporary file in the same folder renamed into place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._io import atomic_open
from .metrics import confusion_matrix as confusion_matrix  # re-exported: viz.confusion_matrix
from .module import Module

DPI = 110


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Render `fig` as PNG into `path`, atomically."""
    path = Path(path)
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def _get(history, key: str) -> list[float]:
    value = history.get(key, []) if isinstance(history, dict) else getattr(history, key, [])
    return list(value or [])


# ---- curves -------------------------------------------------------------------------------
def plot_loss(history, path: str | os.PathLike, batches_per_epoch: int | None = None) -> Path:
    """Training loss per batch (faint, with a moving average) and per epoch (train and
    validation), all against epochs: the seeds' loss-vs-epochs plot."""
    batch_loss = np.asarray(_get(history, "batch_loss"), dtype=np.float64)
    loss, val_loss = _get(history, "loss"), _get(history, "val_loss")
    epochs = len(loss)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    if batch_loss.size:
        per = batches_per_epoch or max(1, math.ceil(batch_loss.size / max(epochs, 1)))
        x = np.arange(1, batch_loss.size + 1) / per
        ax.plot(x, batch_loss, color="tab:blue", alpha=0.25, lw=0.7, label="loss per batch")
        k = max(1, min(per, batch_loss.size // 10 or 1))
        if k > 1:
            smooth = np.convolve(batch_loss, np.ones(k) / k, mode="valid")
            ax.plot(x[k - 1 :], smooth, color="tab:blue", lw=1.2,
                    label=f"moving average ({k} batches)")
    ex = np.arange(1, epochs + 1)
    if epochs:
        ax.plot(ex, loss, "o-", color="tab:orange", ms=3, label="train loss (epoch mean)")
    if val_loss:
        ax.plot(ex[: len(val_loss)], val_loss, "s-", color="tab:green", ms=3,
                label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    positive = batch_loss[batch_loss > 0] if batch_loss.size else np.array(loss)
    if positive.size and positive.max() / max(positive.min(), 1e-12) > 30:
        ax.set_yscale("log")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def plot_accuracy(history, path: str | os.PathLike, test_accuracy: float | None = None) -> Path:
    """Train and validation accuracy per epoch (and the final test accuracy as a line)."""
    acc, val_acc = _get(history, "accuracy"), _get(history, "val_accuracy")
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    ex = np.arange(1, len(acc) + 1)
    if acc:
        ax.plot(ex, np.asarray(acc) * 100, "o-", ms=3, label="train (augmented batches)")
    if val_acc:
        ax.plot(ex[: len(val_acc)], np.asarray(val_acc) * 100, "s-", ms=3, label="validation")
    if test_accuracy is not None:
        ax.axhline(test_accuracy * 100, color="tab:red", ls="--", lw=1,
                   label=f"test {test_accuracy:.2%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    values = [v * 100 for v in acc + val_acc] + ([test_accuracy * 100] if test_accuracy else [])
    if values:
        ax.set_ylim(max(0.0, min(values) - 2), 100.5)
    ax.set_title("Accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


# ---- classification results ---------------------------------------------------------------
def plot_confusion(
    confusion: np.ndarray, path: str | os.PathLike, class_names: Sequence[str] | None = None
) -> Path:
    """The confusion matrix as a heat map (colour = fraction of the true class), with counts."""
    cm = np.asarray(confusion)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    rows = cm.sum(axis=1, keepdims=True)
    frac = cm / np.maximum(rows, 1)
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = cm.sum()
    acc = np.trace(cm) / total if total else 0.0
    ax.set_title(f"Confusion matrix: {acc:.2%} of {total:,} correct")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    return save_figure(fig, path)


def _tile_grid(tiles: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(n, h, w) → one 2-D mosaic with NaN gaps (drawn blank), about as wide as it is tall."""
    n, h, w = tiles.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tiles[i]
    return grid


def first_layer_weights(model: Module) -> np.ndarray | None:
    """The first weight in the model: a Dense (out, in) or a Conv2D (out, in, kh, kw)."""
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.data.ndim in (2, 4):
            return p.data
    return None


def plot_weights(model: Module, path: str | os.PathLike, max_tiles: int = 128) -> Path:
    """First-layer weights as pictures: one 28×28 tile per hidden unit of a Dense layer on
    flat digits (what pattern excites that unit), or one tile per kernel of a Conv2D."""
    w = first_layer_weights(model)
    if w is None:
        raise ValueError("plot_weights: the model has no Dense or Conv2D weight")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 4:
        tiles = w[:, 0] if w.shape[1] == 1 else w.reshape(-1, *w.shape[2:])
        title = f"first-layer kernels {w.shape[2]}×{w.shape[3]} ({w.shape[0]} filters)"
    else:
        side = math.isqrt(w.shape[1])
        if side * side == w.shape[1]:
            tiles = w.reshape(w.shape[0], side, side)
            title = f"first-layer weights: {w.shape[0]} units, each a {side}×{side} picture"
        else:
            tiles = w[None]
            title = f"first-layer weight matrix {w.shape[0]}×{w.shape[1]}"
    tiles = tiles[:max_tiles]
    # each tile on its own symmetric scale: red positive, blue negative, white zero
    scale = np.abs(tiles).reshape(len(tiles), -1).max(axis=1)
    tiles = tiles / np.maximum(scale, 1e-12)[:, None, None]
    grid = _tile_grid(tiles, cols=16 if len(tiles) > 64 else None)
    inch = max(1 / 18, 0.5 / tiles.shape[1])  # a 3×3 kernel gets as much room as a digit
    fig = Figure(figsize=(min(12, 1 + grid.shape[1] * inch), min(10, 1 + grid.shape[0] * inch)))
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def worst_mistakes(probabilities: np.ndarray, labels: np.ndarray, n: int = 24) -> np.ndarray:
    """Indices of the misclassified examples, most confidently wrong first (lowest p(true))."""
    pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    p_true = probabilities[wrong, labels[wrong]]
    return wrong[np.argsort(p_true, kind="stable")][:n]


def plot_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: str | os.PathLike,
    n: int = 24,
    class_names: Sequence[str] | None = None,
) -> Path:
    """The test digits the model gets most confidently wrong, each titled
    'true → predicted (confidence)'."""
    labels = np.asarray(labels)
    idx = worst_mistakes(probabilities, labels, n)
    names = list(class_names) if class_names is not None else [str(i) for i in range(10)]
    cols = 8
    rows = max(1, math.ceil(len(idx) / cols))
    long_names = max(len(n) for n in names) > 3
    width, height = (1.35, 1.55) if long_names else (1.15, 1.35)
    fig = Figure(figsize=(cols * width, rows * height + 0.4))
    fig.suptitle(f"worst {len(idx)} mistakes (true → predicted, confidence)", fontsize=9)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.99 - 0.4 / (rows * height + 0.4)))
    ax.set_axis_off()
    if len(idx) == 0:
        ax.text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center")
        return save_figure(fig, path)
    # one picture of all the digits, each below a blank band for its caption: one Axes
    # draws far faster than a grid of 24 (the figure used to take most of a run's plotting)
    band = 17 if long_names else 10
    cell_h, cell_w = 28 + band, 28 + 6
    grid = np.full((rows * cell_h, cols * cell_w - 6), np.nan)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        top, left = r * cell_h + band, c * cell_w
        grid[top : top + 28, left : left + 28] = np.asarray(images[i]).reshape(28, 28)
        p = probabilities[i]
        sep = "\n" if long_names else " "
        ax.text(left + 13.5, top - 1.5, f"{names[labels[i]]}{sep}→ {names[p.argmax()]} "
                f"({p.max():.0%})", ha="center", va="bottom", fontsize=7)
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    return save_figure(fig, path)


# ---- convolutional networks ---------------------------------------------------------------
def has_conv(model: Module) -> bool:
    """True when some layer holds a 4-D (convolution) weight."""
    return any(p.data.ndim == 4 for p in model.parameters())


def feature_maps(model: Module, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer label, (C, H, W) activations) for one input digit, in eval mode: the image
    stack at each stage, taken after the last layer that keeps its shape (so after a conv's
    activation rather than before it)."""
    layers = list(getattr(model, "layers", [model]))
    x = np.asarray(image, dtype=np.float32)[None]
    outputs = []
    was_training = model.training
    model.eval()
    try:
        for layer in layers:
            x = layer.forward(x)
            outputs.append(x)
    finally:
        model.train(was_training)
    maps = []
    for i, (layer, out) in enumerate(zip(layers, outputs)):
        if out.ndim != 4 or i == 0 and not layer.parameters():
            continue
        last = i + 1 == len(layers)
        if last or outputs[i + 1].shape != out.shape or layers[i + 1].parameters():
            maps.append((f"{i}: {type(layer).__name__}", out[0]))
    return maps


def plot_feature_maps(
    model: Module, image: np.ndarray, path: str | os.PathLike, max_maps: int = 16
) -> Path:
    """One test digit and the feature maps each conv/pool layer makes of it (one row each)."""
    maps = feature_maps(model, image)
    if not maps:
        raise ValueError("plot_feature_maps: the model has no convolution layers")
    cols = min(max_maps, max(m.shape[0] for _, m in maps)) + 1
    fig = Figure(figsize=(cols * 0.95, len(maps) * 1.05 + 0.5))
    for r, (name, m) in enumerate(maps):
        ax = fig.add_subplot(len(maps), cols, r * cols + 1)
        ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r")
        ax.set_axis_off()
        ax.set_title(name, fontsize=6, loc="left")
        for c in range(min(max_maps, m.shape[0])):
            ax = fig.add_subplot(len(maps), cols, r * cols + c + 2)
            ax.imshow(m[c], cmap="viridis", interpolation="nearest")
            ax.set_axis_off()
    fig.suptitle("feature maps of one test digit", fontsize=9)
    return save_figure(fig, path)
