"""Loss functions: `loss = loss_fn(pred, target)` returns a float, `loss_fn.backward()` dL/dpred.

Every loss averages over the batch by default (`reduction="mean"`), like PyTorch, so the
gradient carries a 1/n; `reduction="sum"` drops it.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid
from .tensor import Function, Tensor

REDUCTIONS = ("mean", "sum")


def clamped(p: np.ndarray) -> np.ndarray:
    """max(p, tiny), tiny the smallest normal number of p's dtype (≈2.2e−308 in float64,
    1.2e−38 in float32): the one clamp that both the forward −log(max(p, tiny)) and the
    backward −1/max(p, tiny) use, so the gradient is the derivative of the loss computed.
    A confidently wrong p (even 1e−300) keeps a finite, nonzero gradient and still learns;
    only p below tiny (e.g. exactly 0) is clamped, giving loss −log(tiny) ≈ 708 (float64) or
    87 (float32). PyTorch instead clamps log p at −100 in forward (p < e^−100 ≈ 3.7e−44)
    but not its gradient; the two agree for every p above e^−100."""
    return np.maximum(p, np.finfo(p.dtype).tiny)


class NonFiniteError(ValueError):
    """A loss was given NaN or infinite values."""


def _check_finite(name: str, what: str, array: np.ndarray) -> None:
    # one reduction on the usual, finite path: a NaN or inf makes the sum NaN or inf (so
    # does an overflow of huge finite values, which the exact test below then clears);
    # np.add.reduce is np.sum without its Python wrapper (~1 µs a call on a training step)
    if np.isfinite(np.add.reduce(array, axis=None)):
        return
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise NonFiniteError(
            f"{name}: {what} contains {bad} NaN/inf value(s); check the data or lower the "
            f"learning rate"
        )


# each signed integer dtype's unsigned twin of the same size and byte order
_UNSIGNED = {
    np.dtype(t).newbyteorder(order): np.dtype(t).newbyteorder(order).str.replace("i", "u")
    for t in (np.int8, np.int16, np.int32, np.int64)
    for order in "<>"
}


def check_labels(name: str, labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Validate integer class labels (n,) against n predictions and C classes."""
    if labels.shape != (n,):
        raise ValueError(f"{name}: got {n} predictions but labels of shape {labels.shape}")
    if labels.dtype.kind not in "iu":  # signed or unsigned integers
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError(f"{name}: labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    # one reduction: seen as unsigned, a negative label is huge, so max ≥ C catches both ends
    unsigned = labels.view(_UNSIGNED[labels.dtype]) if labels.dtype.kind == "i" else labels
    if n and np.maximum.reduce(unsigned, axis=None) >= num_classes:
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{name}: label {bad} is outside the class range 0..{num_classes - 1}")
    return labels


def class_targets(name: str, target, n: int, num_classes: int, dtype) -> np.ndarray:
    """Turn integer labels (n,) or one-hot / soft labels (n, C) into an (n, C) float array."""
    target = np.asarray(target)
    if target.ndim == 1:
        labels = check_labels(name, target, n, num_classes)
        onehot = np.zeros((n, num_classes), dtype=dtype)
        onehot[np.arange(n), labels] = 1
        return onehot
    if target.shape != (n, num_classes):
        raise ValueError(
            f"{name}: expected labels of shape ({n},) or ({n}, {num_classes}), got {target.shape}"
        )
    _check_finite(name, "target", target)
    return target.astype(dtype, copy=False)


class Loss:
    """Base class: holds the reduction and, for the explicit `backward()`, the last call's
    cache. Each loss is one kernel pair, `forward_with_cache(pred, target)` → (loss, cache)
    and `backward_from_cache(cache, grad=1.0)` → dL/dpred; on a Tensor prediction
    `loss_fn(out, y)` returns a scalar Tensor whose graph node calls the same pair."""

    _cache = None

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}")
        self.reduction = reduction

    def __call__(self, pred, target):
        if isinstance(pred, Tensor):
            return LossCall.apply(pred, self, target.data if isinstance(target, Tensor) else target)
        return self.forward(pred, target)

    def forward(self, pred, target) -> float:
        loss, self._cache = self.forward_with_cache(pred, target)
        return loss

    def backward(self) -> np.ndarray:
        """dL/dpred of the last call."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward call first")
        return self.backward_from_cache(self._cache)

    def forward_with_cache(self, pred, target) -> tuple[float, object]:
        raise NotImplementedError

    def backward_from_cache(self, cache, grad: float = 1.0) -> np.ndarray:
        raise NotImplementedError

    def _reduce(self, per_item: np.ndarray, count: int) -> float:
        return self._reduce_total(float(per_item.sum()), count)

    def _reduce_total(self, total: float, count: int) -> float:
        return total / count if self.reduction == "mean" else total

    def _scale(self, count: int) -> float:
        return 1.0 / count if self.reduction == "mean" else 1.0

    def _check_pred(self, pred: np.ndarray) -> np.ndarray:
        pred = np.asarray(pred)
        if pred.dtype.kind != "f":
            pred = pred.astype(np.float64)
        _check_finite(type(self).__name__, "the prediction", pred)
        return pred

    def _check_same_shape(self, pred: np.ndarray, target) -> np.ndarray:
        target = np.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction shape {pred.shape} and target shape "
                f"{target.shape} differ"
            )
        _check_finite(type(self).__name__, "target", target)
        return target


class MSE(Loss):
    """Mean squared error L = (1/m) Σ (ŷ − y)² over all m elements; dL/dŷ = 2(ŷ − y)/m."""

    def forward_with_cache(self, pred, target):
        pred = self._check_pred(pred)
        target = self._check_same_shape(pred, target)
        diff = pred - target
        return self._reduce(diff**2, diff.size), diff

    def backward_from_cache(self, diff, grad: float = 1.0) -> np.ndarray:
        return 2.0 * (self._scale(diff.size) * grad) * diff


class BCE(Loss):
    """Binary cross-entropy on probabilities p ∈ [0, 1]:
    L = −(1/m) Σ [y log p + (1 − y) log(1 − p)];  dL/dp = (−y/p + (1 − y)/(1 − p)) / m.
    p and 1 − p are clamped below at the dtype's tiny in both forward and backward (see
    `clamped`), so p = 0 or 1 gives a finite loss whose gradient is its derivative."""

    def forward_with_cache(self, pred, target):
        pred = self._check_pred(pred)
        target = self._check_same_shape(pred, target)
        if pred.size and (pred.min() < 0 or pred.max() > 1):
            raise ValueError(
                "BCE: predictions must be probabilities in [0, 1]; for raw scores use BCEWithLogits"
            )
        log_tiny = np.log(np.finfo(pred.dtype).tiny)
        with np.errstate(divide="ignore"):
            log_p = np.log(clamped(pred))
            log_1mp = np.maximum(np.log1p(-pred), log_tiny)  # = log(max(1 − p, tiny))
        loss = self._reduce(-(target * log_p + (1 - target) * log_1mp), pred.size)
        return loss, (pred, target)

    def backward_from_cache(self, cache, grad: float = 1.0) -> np.ndarray:
        p, y = cache
        return (self._scale(p.size) * grad) * (-y / clamped(p) + (1 - y) / clamped(1 - p))


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits z, with p = σ(z), written so no exp overflows:
    L = (1/m) Σ [max(z, 0) − z·y + log(1 + e^(−|z|))];  dL/dz = (σ(z) − y) / m."""

    def forward_with_cache(self, pred, target):
        z = self._check_pred(pred)
        y = self._check_same_shape(z, target)
        per_item = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return self._reduce(per_item, z.size), (z, y)

    def backward_from_cache(self, cache, grad: float = 1.0) -> np.ndarray:
        z, y = cache
        return (self._scale(z.size) * grad) * (sigmoid(z) - y)


class _ClassLoss(Loss):
    def _check_classes(self, pred) -> np.ndarray:
        pred = self._check_pred(pred)
        if pred.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: expected predictions of shape (N, classes), "
                f"got {pred.shape}"
            )
        return pred


class CrossEntropy(_ClassLoss):
    """Cross-entropy on probabilities (e.g. after a Softmax layer), seed 003's formula:
    L = −(1/n) Σ_i Σ_j y_ij log ŷ_ij;  dL/dŷ = −y / ŷ / n.
    ŷ is clamped below at the dtype's tiny in both (see `clamped`): a confidently wrong
    example keeps a finite gradient that is the derivative of its loss.
    Targets: integer labels (n,) or one-hot (n, C)."""

    def forward_with_cache(self, pred, target):
        p = self._check_classes(pred)
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError(
                "CrossEntropy: predictions must be probabilities in [0, 1]; for logits use "
                "SoftmaxCrossEntropy"
            )
        y = class_targets("CrossEntropy", target, p.shape[0], p.shape[1], p.dtype)
        return self._reduce(-(y * np.log(clamped(p))), p.shape[0]), (p, y)

    def backward_from_cache(self, cache, grad: float = 1.0) -> np.ndarray:
        p, y = cache
        return -(self._scale(p.shape[0]) * grad) * y / clamped(p)


class SoftmaxCrossEntropy(_ClassLoss):
    """Softmax followed by cross-entropy, fused, on logits z (n, C):
    L = −(1/n) Σ_i log softmax(z_i)[y_i];  dL/dz = (softmax(z) − y) / n.

    The fused gradient is the seeds' "easy derivative": the softmax Jacobian and the
    −y/p of the log cancel to p − y. Computing log-softmax directly also never takes log(0).
    """

    def forward_with_cache(self, pred, target):
        z = self._check_classes(pred)
        n, num_classes = z.shape
        # softmax once, from the shifted logits s = z − max (no exp overflows); the loss reads
        # log p = s − log Σ e^s off the same sums, so it never takes log(0). The row max is
        # read off at the argmax: the same value (NaN too: argmax stops at the first NaN),
        # 5× faster than a max over rows of a few classes.
        rows = np.arange(n)
        row_max = z[rows, z.argmax(axis=1)][:, None]
        target = np.asarray(target)
        if target.ndim == 1:
            # integer labels: pick log p of the true class, no one-hot matrix needed; the
            # shifted logits become the probabilities in place once s[y] is picked
            target = check_labels("SoftmaxCrossEntropy", target, n, num_classes)
            p = z - row_max
            picked = p[rows, target]
            np.exp(p, out=p)
            total = np.add.reduce(p, axis=1, keepdims=True)  # p.sum(axis=1), unwrapped
            p /= total
            log_total = np.log(total)
            loss = float(np.add.reduce(log_total, axis=None)) - float(np.add.reduce(picked))
            return self._reduce_total(loss, n), (p, target, None, rows)
        y = class_targets("SoftmaxCrossEntropy", target, n, num_classes, z.dtype)
        shifted = z - row_max
        p = np.exp(shifted)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        return self._reduce(-(y * (shifted - np.log(total))), n), (p, None, y, rows)

    def backward_from_cache(self, cache, grad: float = 1.0) -> np.ndarray:
        p, labels, y, rows = cache
        scale = self._scale(p.shape[0]) * grad
        dz = p * scale  # (p − y)/n, built in one new array
        if labels is not None:
            dz[rows, labels] -= scale
        else:
            dz -= scale * y
        return dz

    @property
    def probabilities(self) -> np.ndarray:
        """softmax(z) from the last forward call (n, C)."""
        return self._cache[0]


class LossCall(Function):
    """A loss call as one graph node: a scalar Tensor now, backward_from_cache later with the
    upstream gradient (1 when the loss is the root of backward)."""

    @staticmethod
    def forward(ctx, pred, loss_fn, target):
        loss, ctx.cache = loss_fn.forward_with_cache(pred, target)
        ctx.loss_fn = loss_fn
        return np.asarray(loss)

    @staticmethod
    def backward(ctx, grad):
        return ctx.loss_fn.backward_from_cache(ctx.cache, float(grad)), None, None


LOSSES = {
    "mse": MSE,
    "bce": BCE,
    "bce_with_logits": BCEWithLogits,
    "cross_entropy": CrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
}
