"""ONNX export: the eval-mode forward pass of a chainrule model as an ONNX graph.

ONNX is a graph of standard operators that runtimes (onnxruntime, TensorRT, browsers, phones)
execute. Each chainrule layer becomes one operator, or a few where opset 17 has no single one:

    Dense            Gemm(x, W, b, transB=1)              y = x Wᵀ + b
    ReLU, Sigmoid, Tanh, LeakyReLU, Softmax(axis=-1)      the operators of the same name
    GELU             0.5·x·(1 + Erf(x/√2))                (opset 17 has no Gelu; 20 has)
    GELU("tanh")     0.5·x·(1 + Tanh(√(2/π)(x + 0.044715x³)))
    SmeLU(β)         Where(x ≥ β, x, (Clip(x, −β, β) + β)²/(4β))
    Conv2D           Conv(x, W, b, pads, strides)
    MaxPool2D        MaxPool;   AvgPool2D  AveragePool   (kernel, stride, padding); ceil_mode
                     as explicit end padding (ONNX's own ceil_mode keeps a last window that
                     starts in the padding, which PyTorch and chainrule drop)
    BatchNorm1d/2d   BatchNormalization with the running statistics; ONNX's momentum is
                     1 − chainrule's (it weights the old running value), and only matters
                     for training, which the graph does not do
    Dropout          Identity (evaluation mode)
    Flatten          Flatten(axis=1);   Reshape(s)  Reshape(x, [0, *s]) (0 keeps the batch)

The graph's input is what `model(x)` takes (for the digit models float32 (N, 28, 28)) with a
symbolic batch axis N; its output is the logits. Weights are stored as initializers under the
model's state-dict names (a parameter shared by two layers is stored once, under its first
name), and chainrule's architecture, dtype, tied parameters and metadata go in the model's
`metadata_props` as JSON, so `chainrule.load("m.onnx")` rebuilds a model chainrule exported
(reading is `chainrule.formats.onnx`). An ONNX file holds no optimizer state.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .._io import atomic_open
from .._optional import require
from .._version import __version__
from ..activations import GELU, LeakyReLU, ReLU, Sigmoid, SmeLU, Softmax, Tanh
from ..conv import Conv2D
from ..layers import Dense, Flatten, Reshape, Sequential
from ..model_file_checks import jsonable
from ..module import Module, describe
from ..normalization import BatchNorm1d
from ..pooling import AvgPool2D, MaxPool2D
from ..regularization import Dropout
from ._common import ExportError

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "input", "logits"
# per-sample input shapes tried, in order, when the caller gives none (digit models first)
DIGIT_SHAPES = ((28, 28), (784,), (1, 28, 28))


def _onnx():
    return require("onnx", "ONNX export")


class GraphBuilder:
    """Collects nodes and initializers; `emit` adds a node and returns its output's name.

    `tied` ({name: first name}) makes a shared parameter one initializer; `in_shape` and
    `out_shape` are the current layer's input and output shapes (batch of 1), for the
    converters that need them."""

    def __init__(self, dtype: np.dtype, tied: dict[str, str] | None = None) -> None:
        self.onnx = _onnx()
        self.dtype = np.dtype(dtype)
        self.tied = dict(tied or {})
        self.nodes: list = []
        self.initializers: list = []
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, name: str | None = None, dtype=None) -> str:
        """An initializer holding `value` (in the model's dtype unless `dtype` is given)."""
        if name in self.tied:  # stored once, under the name it is tied to
            return self.tied[name]
        array = np.asarray(value, dtype=dtype or self.dtype)
        name = name or self.name("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def emit(self, op: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


# ---- one function per layer: (builder, layer, its state-dict prefix, input name) → output -----
def _dense(g: GraphBuilder, layer: Dense, prefix: str, x: str) -> str:
    inputs = [x, g.const(layer.weight.data, f"{prefix}weight")]
    if layer.bias is not None:
        inputs.append(g.const(layer.bias.data, f"{prefix}bias"))
    return g.emit("Gemm", inputs, f"{prefix}gemm", transB=1)


def _gelu(g: GraphBuilder, layer: GELU, prefix: str, x: str) -> str:
    if layer.approximate == "tanh":  # 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
        x3 = g.emit("Mul", [x, g.emit("Mul", [x, x], "x2")], "x3")
        inner = g.emit("Add", [x, g.emit("Mul", [x3, g.const(0.044715)], "cx3")], "inner")
        scaled = g.emit("Mul", [inner, g.const(math.sqrt(2.0 / math.pi))], "u")
        phi = g.emit("Tanh", [scaled], "tanh")
    else:  # 0.5x(1 + erf(x/√2))
        phi = g.emit("Erf", [g.emit("Mul", [x, g.const(1 / math.sqrt(2.0))], "z")], "erf")
    half_x = g.emit("Mul", [x, g.const(0.5)], "half_x")
    return g.emit("Mul", [half_x, g.emit("Add", [phi, g.const(1.0)], "one_plus")], "gelu")


def _smelu(g: GraphBuilder, layer: SmeLU, prefix: str, x: str) -> str:
    # (clip(x, −β, β) + β)²/(4β) is 0 for x ≤ −β and the quadratic inside; x itself for x ≥ β
    beta = layer.beta
    clipped = g.emit("Clip", [x, g.const(-beta), g.const(beta)], "clip")
    shifted = g.emit("Add", [clipped, g.const(beta)], "shift")
    quad = g.emit("Div", [g.emit("Mul", [shifted, shifted], "sq"), g.const(4 * beta)], "quad")
    above = g.emit("GreaterOrEqual", [x, g.const(beta)], "above")
    return g.emit("Where", [above, x, quad], "smelu")


def _conv(g: GraphBuilder, layer: Conv2D, prefix: str, x: str) -> str:
    inputs = [x, g.const(layer.weight.data, f"{prefix}weight")]
    if layer.bias is not None:
        inputs.append(g.const(layer.bias.data, f"{prefix}bias"))
    ph, pw = layer.padding
    attrs = {
        "kernel_shape": list(layer.kernel_size),
        "strides": list(layer.stride),
        "pads": [ph, pw, ph, pw],
    }
    dilation = tuple(getattr(layer, "dilation", (1, 1)))
    if dilation != (1, 1):
        attrs["dilations"] = list(dilation)
    groups = int(getattr(layer, "groups", 1))
    if groups != 1:
        attrs["group"] = groups
    return g.emit("Conv", inputs, f"{prefix}conv", **attrs)


def _pair(value) -> list[int]:
    return [int(value)] * 2 if np.ndim(value) == 0 else [int(v) for v in value]


def _pool_pads(g: GraphBuilder, layer) -> list[int]:
    """ONNX pads [top, left, bottom, right] that give chainrule's output size with ONNX's
    floor rule: the layer's padding before, and after just what the last window needs.

    With ceil_mode a last window may overhang the input (and its padding); PyTorch and
    chainrule keep it only if it starts inside, while ONNX's ceil_mode keeps one starting
    in the padding too (6 rows, kernel 2, stride 3: 2 windows here, 3 in ONNX). Explicit end
    padding reproduces the windows chainrule takes, whatever ceil_mode says."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    ph, pw = _pair(getattr(layer, "padding", 0))
    (h, w), (ho, wo) = g.in_shape[-2:], g.out_shape[-2:]
    end_h = max(0, (ho - 1) * sh + kh - h - ph)
    end_w = max(0, (wo - 1) * sw + kw - w - pw)
    return [ph, pw, end_h, end_w]


def _pool(g: GraphBuilder, layer, prefix: str, x: str) -> str:
    pads = _pool_pads(g, layer)
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
             "pads": pads}
    if isinstance(layer, MaxPool2D):
        return g.emit("MaxPool", [x], f"{prefix}maxpool", **attrs)
    # PyTorch's default counts padded zeros in the mean, but never a window's overhang past
    # the padding (ceil_mode); without padding, "include pad" could only count that overhang
    ph, pw = pads[:2]
    include_pad = bool(getattr(layer, "count_include_pad", True)) and (ph > 0 or pw > 0)
    if include_pad and (pads[2] > ph or pads[3] > pw):
        raise ExportError(
            f"export_onnx: layer {prefix.rstrip('.') or '(the model)'} "
            f"({type(layer).__name__}) averages padded zeros but not the ceil_mode overhang, "
            "which ONNX's AveragePool cannot express; use count_include_pad=False or no "
            "ceil_mode"
        )
    attrs["count_include_pad"] = int(include_pad)
    return g.emit("AveragePool", [x], f"{prefix}avgpool", **attrs)


def _batchnorm(g: GraphBuilder, layer: BatchNorm1d, prefix: str, x: str) -> str:
    c = layer.num_features
    scale = layer.weight.data if layer.affine else np.ones(c, g.dtype)
    shift = layer.bias.data if layer.affine else np.zeros(c, g.dtype)
    names = ("weight", "bias") if layer.affine else ("scale_ones", "shift_zeros")
    inputs = [
        x,
        g.const(scale, prefix + names[0]),
        g.const(shift, prefix + names[1]),
        g.const(layer.running_mean, f"{prefix}running_mean"),
        g.const(layer.running_var, f"{prefix}running_var"),
    ]
    return g.emit(
        "BatchNormalization",
        inputs,
        f"{prefix}batchnorm",
        epsilon=layer.eps,
        momentum=1.0 - layer.momentum,
    )


def _reshape(g: GraphBuilder, layer: Reshape, prefix: str, x: str) -> str:
    shape = g.const([0, *layer.shape], f"{prefix}shape", dtype=np.int64)
    return g.emit("Reshape", [x, shape], f"{prefix}reshape")


def _simple(op: str, **attrs):
    def convert(g: GraphBuilder, layer: Module, prefix: str, x: str) -> str:
        extra = {k: (v(layer) if callable(v) else v) for k, v in attrs.items()}
        return g.emit(op, [x], f"{prefix}{op.lower()}", **extra)

    return convert


# exact classes first; a subclass of one of these is looked up through its MRO
CONVERTERS = {
    Dense: _dense,
    ReLU: _simple("Relu"),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    LeakyReLU: _simple("LeakyRelu", alpha=lambda layer: layer.negative_slope),
    Softmax: _simple("Softmax", axis=-1),
    GELU: _gelu,
    SmeLU: _smelu,
    Conv2D: _conv,
    MaxPool2D: _pool,
    AvgPool2D: _pool,
    BatchNorm1d: _batchnorm,  # BatchNorm2d too: the operator takes (N, C, ...)
    Dropout: _simple("Identity"),
    Flatten: _simple("Flatten", axis=1),
    Reshape: _reshape,
}


def _converter(layer: Module):
    for cls in type(layer).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
    return None


def _convert(g: GraphBuilder, module: Module, prefix: str, x: str, sample: np.ndarray):
    """(output name, module(sample)): the nodes of `module` applied to the tensor named `x`;
    `sample` (one input, eval mode) gives the converters the shapes they need."""
    if isinstance(module, Sequential):
        for i, layer in enumerate(module.layers):
            x, sample = _convert(g, layer, f"{prefix}{i}.", x, sample)
        return x, sample
    convert = _converter(module)
    if convert is None:
        where = f"layer {prefix.rstrip('.')} " if prefix else ""
        known = ", ".join(sorted({c.__name__ for c in CONVERTERS} | {"BatchNorm2d"}))
        raise ExportError(
            f"export_onnx: {where}{type(module).__name__} has no ONNX form; "
            f"the exporter knows {known}"
        )
    out = module(sample)
    g.in_shape, g.out_shape = sample.shape, out.shape
    return convert(g, module, prefix, x), out


# ---- the whole model --------------------------------------------------------------------------
def _first_layer(model: Module) -> Module:
    while isinstance(model, Sequential) and len(model):
        model = model[0]
    return model


def infer_input_shape(model: Module) -> tuple[int, ...]:
    """The per-sample input shape: a Dense first layer's width, else a digit shape the model
    accepts ((28, 28), (784,), (1, 28, 28)); raises ExportError when none fits."""
    first = _first_layer(model)
    candidates = [(first.in_features,)] if isinstance(first, Dense) else []
    candidates += DIGIT_SHAPES
    for shape in candidates:
        try:
            _run(model, np.zeros((1, *shape), np.float32))
            return tuple(shape)
        except (ValueError, IndexError):
            continue
    raise ExportError(
        "export_onnx: cannot tell what input the model takes; pass input_shape=(...) "
        "without the batch axis, e.g. (1, 28, 28)"
    )


def _run(model: Module, x: np.ndarray) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        return model(x)
    finally:
        model.train(was_training)


def _model_dtype(model: Module) -> np.dtype:
    params = model.parameters()
    return np.dtype(params[0].data.dtype) if params else np.dtype(np.float32)


def onnx_model(model: Module, input_shape: tuple[int, ...] | None = None,
               metadata: dict | None = None):
    """The `onnx.ModelProto` of `model`'s eval-mode forward, checked by
    `onnx.checker.check_model(full_check=True)`; `metadata` (JSON-able) rides along in the
    model's `metadata_props`."""
    onnx = _onnx()

    shape = tuple(input_shape) if input_shape is not None else infer_input_shape(model)
    dtype = _model_dtype(model)
    was_training = model.training
    model.eval()
    try:
        sample = np.zeros((1, *shape), dtype)
        try:
            out_shape = model(sample).shape[1:]
        except (ValueError, IndexError) as exc:
            raise ExportError(f"export_onnx: the model does not take input "
                              f"(N, {', '.join(map(str, shape))}): {exc}") from exc
        tied = model.tied_parameters()
        g = GraphBuilder(dtype, tied)
        y, _ = _convert(g, model, "", INPUT, sample)
    finally:
        model.train(was_training)
    g.nodes.append(onnx.helper.make_node("Identity", [y], [OUTPUT], name=OUTPUT))
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    graph = onnx.helper.make_graph(
        g.nodes,
        "chainrule",
        [onnx.helper.make_tensor_value_info(INPUT, elem, ["N", *shape])],
        [onnx.helper.make_tensor_value_info(OUTPUT, elem, ["N", *out_shape])],
        initializer=g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="chainrule",
        producer_version=__version__,
        doc_string="eval-mode logits of a chainrule model",
    )
    onnx.helper.set_model_props(proto, {
        "chainrule.model": json.dumps(describe(model)),
        "chainrule.dtype": str(dtype),
        "chainrule.tied": json.dumps(tied),
        "chainrule.metadata": json.dumps(metadata or {}, default=jsonable),
    })
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError: a graph chainrule got wrong
        problem = " ".join(str(exc).split())[:300]
        raise ExportError(f"export_onnx: onnx rejects the graph ({type(exc).__name__}: "
                          f"{problem}); please report it with the model's layers") from exc
    return proto


def onnx_bytes(model: Module, input_shape: tuple[int, ...] | None = None,
               metadata: dict | None = None) -> bytes:
    """The `.onnx` file for `model`, as bytes."""
    return onnx_model(model, input_shape, metadata).SerializeToString()


def export_onnx(
    model: Module, path: str | os.PathLike, input_shape: tuple[int, ...] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write `model` as an ONNX file (opset 17, IR 8), atomically; returns the path.

    `input_shape` is one sample's shape (no batch axis); by default it is found from the
    model (digit models: (28, 28)). The graph's output is `model(x)` in evaluation mode.
    `metadata` (JSON-able, e.g. class names) is kept for `chainrule.load_checkpoint`.
    """
    data = onnx_bytes(model, input_shape, metadata)
    path = Path(path)
    with atomic_open(path) as f:
        f.write(data)
    return path
