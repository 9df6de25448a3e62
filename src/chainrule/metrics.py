"""Classification metrics: accuracy, the confusion matrix, per-class precision and recall.

One implementation for the CLI's `evaluate`, the training run's summary, the web page and the
plots. Core: imports only NumPy.
"""

from __future__ import annotations

import numpy as np


def accuracy(logits_or_pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of examples whose prediction is the true label.

    logits_or_pred: (N, K) scores (the row's argmax is the prediction) or (N,) predicted
    classes; labels: (N,) class indices or (N, K) one-hot rows.
    """
    pred = np.asarray(logits_or_pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    return float(np.mean(pred == labels))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """C[i, j] = how many examples of true class i were predicted as class j; (k, k) int64.

    Pairs with a class outside 0..k-1 are left out (a dataset with more classes than the model).
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    inside = (y_true >= 0) & (y_true < k) & (y_pred >= 0) & (y_pred < k)
    idx = y_true[inside] * k + y_pred[inside]
    return np.bincount(idx, minlength=k * k).reshape(k, k).astype(np.int64)


def precision_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (precision, recall) from a confusion matrix: TP / column sum, TP / row sum.

    A class never predicted (or never present) gets NaN rather than a made-up 0.
    """
    cm = np.asarray(cm)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / cm.sum(axis=0), tp / cm.sum(axis=1)
