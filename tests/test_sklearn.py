"""chainrule.sklearn.MLPClassifier: a well-behaved scikit-learn estimator."""

import importlib
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from chainrule.interop import MissingDependencyError  # noqa: E402
from chainrule.sklearn import MLPClassifier  # noqa: E402


@parametrize_with_checks([MLPClassifier(epochs=20, random_state=0)])
def test_passes_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


def test_scores_like_scikit_learns_own_mlp_on_digits(digits):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    x_train, x_test, y_train, y_test = digits
    ours = make_pipeline(StandardScaler(), MLPClassifier(hidden=(64,), epochs=40, random_state=0))
    theirs = make_pipeline(
        StandardScaler(), SklearnMLP(hidden_layer_sizes=(64,), max_iter=40, random_state=0)
    )
    with pytest.warns(ConvergenceWarning):  # scikit-learn would like more epochs
        theirs.fit(x_train, y_train)
    ours_score = ours.fit(x_train, y_train).score(x_test, y_test)
    theirs_score = theirs.score(x_test, y_test)
    assert ours_score > 0.93
    assert ours_score > theirs_score - 0.03, (ours_score, theirs_score)


def test_grid_search_in_a_pipeline(digits):
    x_train, x_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(epochs=20, lr=0.01, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden": [(16,), (32,)]}, cv=2)
    x, y = x_train[:600], y_train[:600]
    grid.fit(x, y)
    # the search as a user would do it by hand: the same folds, fits and scores, exactly
    by_hand = {hidden: cross_val_score(clone(pipe).set_params(mlpclassifier__hidden=hidden),
                                       x, y, cv=2).mean()
               for hidden in [(16,), (32,)]}
    best = max(by_hand, key=by_hand.get)
    assert grid.best_params_ == {"mlpclassifier__hidden": best}
    assert grid.best_score_ == by_hand[best]
    refit = clone(pipe).set_params(mlpclassifier__hidden=best).fit(x, y)
    np.testing.assert_array_equal(grid.predict_proba(x_test), refit.predict_proba(x_test))
    assert grid.score(x_test, y_test) > 0.85


def test_fresh_weights_on_every_fit_and_string_labels(digits):
    x_train, _, y_train, _ = digits
    x, y = x_train[:300] / 16, np.array(["even", "odd"])[y_train[:300] % 2]
    clf = MLPClassifier(hidden=(8,), epochs=5, random_state=3)
    first = clf.fit(x, y).predict_proba(x)
    clf.fit(x[:50], y[:50])  # refit: a new network, not a continuation
    again = clf.fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(again, first)  # the same seed, data and kernels
    assert list(clf.classes_) == ["even", "odd"] and set(clf.predict(x)) <= {"even", "odd"}
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5 and clf.n_features_in_ == 64
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(x)), again, rtol=1e-10)
    other = clone(clf).set_params(random_state=4).fit(x, y).predict_proba(x)
    assert not np.allclose(other, first)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden": (0,)}, "hidden"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"activation": "nope"}, "activation"),
        ({"optimizer": "nope"}, "optimizer"),
    ],
)
def test_bad_parameters_are_named_at_fit(params, message):
    x, y = np.random.default_rng(0).random((10, 3)), np.arange(10) % 2
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**params).fit(x, y)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.delitem(sys.modules, "chainrule.sklearn")
    with pytest.raises(MissingDependencyError, match=r"pip install chainrule\[sklearn\]"):
        importlib.import_module("chainrule.sklearn")
