"""What the `dense` and `conv2d` checks share: a learner's layer against the library's layer
and against finite differences, in float64.

The learner's layer is built from given arrays, `Layer(weight, bias, **options)`, and has
`forward(x)`, `backward(grad_out) -> grad_in` that adds into `weight_grad` and `bias_grad`.
"""

from __future__ import annotations

import numpy as np

from ..checking import Fail, as_array, expect_close, numerical_gradient

ACCUMULATE = ("backward adds into the gradients (`self.weight_grad += ...`), so that two "
              "backward passes before a step sum, as the library's layers do; do not use `=`")


def layer_backward(layer, x: np.ndarray, grad_out: np.ndarray):
    """(y, dx, dW, db) from the learner's layer: forward, then backward with fresh zero grads."""
    layer.weight_grad = np.zeros_like(layer.weight)
    layer.bias_grad = np.zeros_like(layer.bias)
    y = layer.forward(x.copy())
    y = as_array(y, "forward's output", grad_out.shape)
    dx = layer.backward(grad_out.copy())
    return y, dx, layer.weight_grad, layer.bias_grad


def library_backward(reference, x: np.ndarray, grad_out: np.ndarray):
    """(y, dx, dW, db) from the library's layer on the same data."""
    reference.zero_grad()
    y = reference.forward(x.copy())
    dx = reference.backward(grad_out.copy())
    return y, dx, reference.weight.grad.copy(), reference.bias.grad.copy()


def compare_backward(learner, library, hints: dict[str, str]) -> None:
    """Fail at the first of dx, dW, db that differs; hints[name] says where to look."""
    for name, got, want in zip(("dL/dx", "dL/dW", "dL/db"), learner[1:], library[1:]):
        expect_close(got, want, f"backward's {name}", hints[name])


def finite_differences(make_layer, x: np.ndarray, grad_out: np.ndarray, weight, bias) -> None:
    """Fail unless backward's gradients match central differences of L = Σ forward(x) ⊙ G."""
    layer = make_layer(weight.copy(), bias.copy())
    _, dx, dW, db = layer_backward(layer, x, grad_out)
    probe = make_layer(weight.copy(), bias.copy())
    xs = x.copy()

    def loss() -> float:
        return float(np.sum(np.asarray(probe.forward(xs.copy()), dtype=np.float64) * grad_out))

    for name, got, array in (("dL/dx", dx, xs), ("dL/dW", dW, probe.weight),
                             ("dL/db", db, probe.bias)):
        want = numerical_gradient(loss, array)
        expect_close(got, want, f"backward's {name}",
                     f"{name} disagrees with finite differences of your own forward: "
                     "re-derive it from the formula in the docstring", tol=1e-6)


def accumulates(layer, x: np.ndarray, grad_out: np.ndarray) -> None:
    """Fail unless two backward passes leave twice the gradients of one."""
    _, _, dW, db = layer_backward(layer, x, grad_out)
    once = np.array(dW, dtype=np.float64), np.array(db, dtype=np.float64)
    layer.forward(x.copy())
    layer.backward(grad_out.copy())
    for name, got, want in (("weight_grad", layer.weight_grad, once[0]),
                            ("bias_grad", layer.bias_grad, once[1])):
        got = np.asarray(got, dtype=np.float64)
        if np.allclose(got, want, rtol=1e-9, atol=0) and np.any(want):
            raise Fail(f"after two backward passes {name} equals one pass's", ACCUMULATE)
        expect_close(got, 2 * want, f"{name} after two backward passes", ACCUMULATE)


def leaves_input(layer, x: np.ndarray, grad_out: np.ndarray) -> None:
    """Fail if forward or backward changes the arrays it was given."""
    x_seen, g_seen = x.copy(), grad_out.copy()
    layer.weight_grad = np.zeros_like(layer.weight)
    layer.bias_grad = np.zeros_like(layer.bias)
    layer.forward(x_seen)
    layer.backward(g_seen)
    if not np.array_equal(x_seen, x):
        raise Fail("forward changed the input array x",
                   "compute into new arrays (e.g. `y = x @ W.T`, not `x *= ...`): the caller "
                   "still needs x")
    if not np.array_equal(g_seen, grad_out):
        raise Fail("backward changed grad_out", "compute into new arrays: leave grad_out as "
                   "it came (it may be shared by other layers)")
