"""chainrule: neural networks from scratch in NumPy, every gradient visible and checkable."""

__version__ = "0.1.0"

from . import data, optim, scalar
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, SmeLU, Softmax, Tanh
from .callbacks import EarlyStopping
from .gradcheck import gradcheck
from .layers import (
    Dense,
    Flatten,
    Reshape,
    Sequential,
    grads_to_vector,
    parameters_to_vector,
    vector_to_parameters,
)
from .losses import BCE, MSE, BCEWithLogits, CrossEntropy, SoftmaxCrossEntropy
from .module import Module, Parameter
from .regularization import BatchNorm1d, Dropout
from .train import History, TrainingDiverged, evaluate, fit, predict
from .value import Value
