"""chainrule.metrics: accuracy, the confusion matrix, precision/recall (one implementation)."""

import numpy as np

from chainrule import metrics, train, viz


def test_accuracy_takes_logits_or_predictions_and_one_hot_labels():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([1, 1, 1])
    assert metrics.accuracy(logits, labels) == metrics.accuracy(np.array([1, 0, 1]), labels)
    np.testing.assert_allclose(metrics.accuracy(logits, np.eye(2)[labels]), 2 / 3)


def test_confusion_matrix_counts_and_leaves_out_unknown_classes():
    cm = metrics.confusion_matrix([0, 1, 1, 2, 5], [0, 1, 0, 2, 1], 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_precision_recall_from_the_confusion_matrix():
    precision, recall = metrics.precision_recall(np.array([[3, 1, 0], [0, 2, 0], [1, 0, 0]]))
    np.testing.assert_allclose(precision[:2], [0.75, 2 / 3])
    np.testing.assert_allclose(recall, [0.75, 1.0, 0.0])
    assert np.isnan(precision[2])  # never predicted: no made-up 0


def test_old_import_paths_are_the_same_functions():
    assert viz.confusion_matrix is metrics.confusion_matrix
    assert train.accuracy is metrics.accuracy
