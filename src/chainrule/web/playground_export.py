"""Take a Playground network out: a self-contained Python script that rebuilds it with
chainrule (architecture, trained weights, the data set's test points) and prints its test loss
as the page shows it, and the network as a `.safetensors` file that `chainrule.load` reads.

Floats are written with `repr`, which round-trips exactly, so the script computes the very
loss the server computed (same layers, same weights, same inputs)."""

from __future__ import annotations

from ..layers import Dense
from ..regularization import Dropout
from .playground_data import FEATURES
from .playground_net import NAN_HINT, Playground
from .playground_settings import PlaygroundError

ACTIVATION_CLASSES = {"tanh": "cr.Tanh()", "relu": "cr.ReLU()", "leaky_relu": "cr.LeakyReLU()",
                      "sigmoid": "cr.Sigmoid()", "gelu": "cr.GELU()"}
LOSS_CODE = {
    "binary": ("cr.BCEWithLogits()", "y[:, None]", "mean binary cross-entropy"),
    "softmax": ("cr.SoftmaxCrossEntropy()", "y.astype(np.int64)", "mean cross-entropy"),
    "regression": ("cr.MSE()", "y[:, None]", "mean squared error"),
}


def _floats(values) -> str:
    """A Python list literal of floats (nested like `values`), each exact."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, list):
        return "[" + ", ".join(_floats(v) for v in values) + "]"
    return repr(float(values))


def _layer_code(module, activation: str) -> str:
    if isinstance(module, Dense):
        out, inp = module.weight.shape
        return f"cr.Dense({inp}, {out}, dtype=np.float64)"
    if isinstance(module, Dropout):
        return f"cr.Dropout({module.p!r})"  # identity in eval mode; kept for the architecture
    return ACTIVATION_CLASSES[activation]


def python_script(playground: Playground) -> str:
    """The script's text. Running it prints `test loss X` with X to 4 decimals, as the page.
    Raises `PlaygroundError` when there is no test loss to reproduce."""
    if playground.diverged:
        raise PlaygroundError(NAN_HINT)
    if not len(playground.test_x):
        raise PlaygroundError("there are no test points yet, so no test loss to export; "
                              "add points first")
    s, kind = playground.settings, playground.kind
    loss_ctor, target, loss_name = LOSS_CODE[kind]
    layers = ",\n    ".join(_layer_code(m, s.activation) for m in playground.model)
    state = "\n".join(f"    {name!r}: np.array({_floats(a)}),"
                      for name, a in playground.model.state_dict().items())
    features = ", ".join(FEATURES[f][2] for f in s.features)
    points = _floats(playground.test_points) if len(playground.test_points) else "[]"
    targets = _floats(playground.test_t)
    hidden = ",".join(map(str, s.hidden)) or "none"
    return f'''"""A chainrule Playground network: {s.dataset} ({s.problem}), hidden {hidden},
{s.activation}, trained {playground.steps} steps. It is rebuilt here with its weights, and the
{loss_name} on the data set's test points is printed. Needs numpy and chainrule."""

import numpy as np

import chainrule as cr

model = cr.Sequential(
    {layers},
)
model.load_state_dict({{
{state}
}})
model.eval()

points = np.array({points}, dtype=np.float64).reshape(-1, 2)  # test points (x1, x2)
y = np.array({targets}, dtype=np.float64)  # their {"values" if kind == "regression" else "classes"}
x1, x2 = points[:, 0], points[:, 1]
x = np.stack([{features}], axis=1)  # the input features
loss = {loss_ctor}(model(x), {target})
print(f"test loss {{loss:.4f}}")
'''


def safetensors_file(playground: Playground) -> bytes:
    """The network as a `.safetensors` file (chainrule's writer: architecture in the header,
    so `chainrule.load` rebuilds it)."""
    from ..interop import safetensors_bytes  # the optional `safetensors` package, on demand

    s = playground.settings
    return safetensors_bytes(playground.model, metadata={
        "playground": s.to_json(), "steps": playground.steps, "output": playground.kind})
