"""`MLPClassifier`: a chainrule network as a scikit-learn estimator.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from chainrule.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden=(64,), epochs=30, random_state=0))
    clf.fit(X_train, y_train).score(X_test, y_test)

It follows scikit-learn's conventions, so `Pipeline`, `GridSearchCV`, `cross_val_score` and
`clone` work with it: `__init__` only stores its arguments; `fit` checks the data with
`validate_data`, encodes the labels (any hashable values) as 0..K−1 in `classes_`, builds a
fresh network from `random_state` on every call and trains it; `predict_proba` runs it in
evaluation mode and takes the softmax; `predict` is the most probable class. The network is
Dense → activation per hidden width → Dense(K), trained with `SoftmaxCrossEntropy` by a
chainrule optimizer, in float64 (as scikit-learn's own MLP computes). Needs scikit-learn
(`pip install chainrule[sklearn]`).
"""

from __future__ import annotations

import numpy as np

from ._optional import require

_sk = require("sklearn", "chainrule.sklearn")  # a one-line error naming the pip install

from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.utils.multiclass import check_classification_targets  # noqa: E402
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data  # noqa: E402

from .activations import activation_layer, log_softmax, softmax  # noqa: E402
from .batching import batches  # noqa: E402
from .layers import Dense, Sequential  # noqa: E402
from .losses import SoftmaxCrossEntropy  # noqa: E402
from .optim import make_optimizer  # noqa: E402

DTYPE = np.float64


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron classifier trained by chainrule.

    Args:
        hidden: widths of the hidden layers, e.g. (100,) or (64, 32).
        activation: hidden activation by name (relu, tanh, sigmoid, gelu, leaky_relu, ...).
        optimizer: chainrule optimizer by name (adam, sgd, adamw, rmsprop, adagrad).
        lr: learning rate.
        epochs: passes over the training data.
        batch_size: examples per step (clipped to the number of samples).
        weight_decay: the optimizer's L2 weight decay.
        random_state: seed (int), `numpy.random.RandomState` or None, as in scikit-learn; it
            draws the initial weights and the order of the mini-batches.

    Attributes after `fit`: `classes_`, `n_features_in_` (and `feature_names_in_`),
    `model_` (the chainrule `Sequential`), `loss_curve_` (mean training loss per epoch),
    `n_iter_` (epochs run).
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (100,),
        activation: str = "relu",
        optimizer: str = "adam",
        lr: float = 1e-3,
        epochs: int = 200,
        batch_size: int = 200,
        weight_decay: float = 0.0,
        random_state=None,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _check_params(self) -> tuple[int, ...]:
        hidden = (self.hidden,) if np.isscalar(self.hidden) else tuple(self.hidden)
        if not all(int(h) == h and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be positive layer widths, got {self.hidden!r}")
        if not (int(self.epochs) == self.epochs and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (int(self.batch_size) == self.batch_size and self.batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        return tuple(int(h) for h in hidden)

    def _build(self, n_features: int, n_classes: int, rng: np.random.Generator) -> Sequential:
        layers, width = [], n_features
        for h in self._check_params():
            layers += [Dense(width, h, rng=rng, dtype=DTYPE), activation_layer(self.activation)]
            width = h
        layers.append(Dense(width, n_classes, rng=rng, dtype=DTYPE))
        return Sequential(layers)

    def fit(self, X, y) -> MLPClassifier:
        """Train a fresh network on X (n_samples, n_features) and labels y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=DTYPE)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = np.random.default_rng(seed)
        self.model_ = self._build(X.shape[1], len(self.classes_), rng)
        opt_args = {"lr": self.lr}
        if self.weight_decay:
            opt_args["weight_decay"] = self.weight_decay
        opt = make_optimizer(self.optimizer, self.model_.parameters(), **opt_args)
        loss_fn = SoftmaxCrossEntropy()
        batch = min(int(self.batch_size), X.shape[0])
        self.model_.train()
        self.loss_curve_ = []
        for _ in range(int(self.epochs)):
            total = 0.0
            for xb, yb in batches(X, labels, batch_size=batch, rng=rng):
                opt.zero_grad()
                total += loss_fn(self.model_(xb), yb) * len(xb)
                self.model_.backward(loss_fn.backward(), input_grad=False)
                opt.step()
            self.loss_curve_.append(total / X.shape[0])
        self.model_.eval()
        self.n_iter_ = int(self.epochs)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of `classes_`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=DTYPE, reset=False)
        self.model_.eval()
        return softmax(self.model_(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """log `predict_proba`, computed stably from the logits (log-softmax)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=DTYPE, reset=False)
        self.model_.eval()
        return log_softmax(self.model_(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as values of `classes_`."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]
