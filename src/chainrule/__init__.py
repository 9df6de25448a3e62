"""chainrule: neural networks from scratch in NumPy, every gradient visible and checkable."""

from . import data, models, optim, scalar
from ._version import __version__
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, SmeLU, Softmax, Tanh
from .callbacks import EarlyStopping
from .conv import Conv2D
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
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AvgPool2D, MaxPool2D
from .regularization import Dropout
from .serialize import ModelFileError, load, load_checkpoint, save
from .tensor import Context, Function, Tensor, no_grad
from .tensor_ops import concat, stack, where
from .threads import get_num_threads, set_num_threads
from .train import History, TrainingDiverged, evaluate, fit, predict
from .value import Value


def __getattr__(name: str):
    # `cr.viz` and `cr.preprocess` pull in matplotlib / Pillow: import them on first use only.
    if name in ("load_weights", "export_onnx"):  # the interop bridges: optional packages
        from . import interop

        return getattr(interop, name)
    if name in ("viz", "preprocess"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
