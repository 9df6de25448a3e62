"""Tests for the scalar autograd engine `chainrule.Value`."""

from __future__ import annotations

import gc
import math
import random

import numpy as np
import pytest

from chainrule.value import GraphvizNotFoundError, Value

TIGHT = 1e-12


def rel_error(a: float, b: float) -> float:
    """|a - b| / max(|a| + |b|, 1e-8): the cs231n relative error."""
    return abs(a - b) / max(abs(a) + abs(b), 1e-8)


# ----------------------------------------------------------------- the seed's worked example


def seed_example() -> dict[str, Value]:
    """x=2, w=0.5, b=0.23, y=2.5: z1 = x*w = 1, z2 = z1+b = 1.23, z3 = y-z2 = 1.27, L = z3**2."""
    x, w, b, y = Value(2.0), Value(0.5), Value(0.23), Value(2.5)
    z1 = x * w
    z2 = z1 + b
    z3 = y - z2
    L = z3**2
    return {"x": x, "w": w, "b": b, "y": y, "z1": z1, "z2": z2, "z3": z3, "L": L}


def test_seed_forward_numbers():
    v = seed_example()
    assert v["z1"].data == pytest.approx(1.0, rel=TIGHT)
    assert v["z2"].data == pytest.approx(1.23, rel=TIGHT)
    assert v["z3"].data == pytest.approx(1.27, rel=TIGHT)
    assert v["L"].data == pytest.approx(1.27**2, rel=TIGHT)
    assert v["L"].data == pytest.approx(1.6129, rel=TIGHT)


def test_seed_every_gradient():
    v = seed_example()
    v["L"].backward()
    expected = {
        "L": 1.0,  # dL/dL
        "z3": 2.54,  # 2 * z3 = 2 * 1.27
        "y": 2.54,  # z3.grad * dz3/dy = 2.54 * 1
        "z2": -2.54,  # z3.grad * dz3/dz2 = 2.54 * -1
        "z1": -2.54,  # z2.grad * dz2/dz1 = -2.54 * 1
        "b": -2.54,  # z2.grad * dz2/db = -2.54 * 1
        "w": -5.08,  # z1.grad * dz1/dw = -2.54 * x = -2.54 * 2
        "x": -1.27,  # z1.grad * dz1/dx = -2.54 * w = -2.54 * 0.5
    }
    for name, grad in expected.items():
        assert v[name].grad == pytest.approx(grad, rel=TIGHT, abs=TIGHT), name


def test_seed_update_lowers_loss():
    v = seed_example()
    v["L"].backward()
    lr = 0.01
    w, b = v["w"], v["b"]
    w.data += -w.grad * lr
    b.data += -b.grad * lr
    assert w.data == pytest.approx(0.5 + 5.08 * lr, rel=TIGHT)
    assert b.data == pytest.approx(0.23 + 2.54 * lr, rel=TIGHT)
    new_loss = (v["y"] - (v["x"] * w + b)) ** 2
    assert new_loss.data == pytest.approx((2.5 - (2 * 0.5508 + 0.2554)) ** 2, rel=TIGHT)
    assert new_loss.data == pytest.approx(1.306449, rel=TIGHT)
    assert new_loss.data < v["L"].data


# ------------------------------------------------------- every op against finite differences

# (name, function of two Values, input points). Points avoid kinks and domain edges.
OPS = [
    ("add", lambda a, b: a + b, [(0.7, -1.3)]),
    ("sub", lambda a, b: a - b, [(0.7, -1.3)]),
    ("mul", lambda a, b: a * b, [(0.7, -1.3)]),
    ("div", lambda a, b: a / b, [(0.7, -1.3), (-2.0, 0.4)]),
    ("pow_const", lambda a, b: a**3 + b**2, [(0.7, -1.3)]),
    ("pow_neg", lambda a, b: a**-1.5 * b, [(0.7, -1.3)]),
    ("pow_value", lambda a, b: a**b, [(0.7, -1.3), (2.5, 0.6)]),
    ("radd", lambda a, b: 2.0 + a + 3 + b, [(0.7, -1.3)]),
    ("rsub", lambda a, b: 2.0 - a - (1 - b), [(0.7, -1.3)]),
    ("rmul", lambda a, b: 2.0 * a * (3 * b), [(0.7, -1.3)]),
    ("rtruediv", lambda a, b: 2.0 / a + 1 / b, [(0.7, -1.3)]),
    ("rpow", lambda a, b: 2.0**a * 0.5**b, [(0.7, -1.3)]),
    ("neg", lambda a, b: -a * b, [(0.7, -1.3)]),
    ("exp", lambda a, b: a.exp() + (a * b).exp(), [(0.7, -1.3)]),
    ("log", lambda a, b: a.log() * b, [(0.7, -1.3), (3.0, 2.0)]),
    ("tanh", lambda a, b: (a * b).tanh(), [(0.7, -1.3)]),
    ("sigmoid", lambda a, b: (a * b).sigmoid(), [(0.7, -1.3), (-3.0, 2.0)]),
    ("relu", lambda a, b: (a * b).relu() + a.relu(), [(0.7, -1.3), (0.7, 1.3)]),
    ("sum", lambda a, b: Value.sum([a, b, a * b, 2.0]), [(0.7, -1.3)]),
    ("dot", lambda a, b: Value.dot([a, b, 2.0], [b, 0.5, a], a * b), [(0.7, -1.3)]),
    ("dot_tanh", lambda a, b: Value.dot([a, -b], [a.tanh(), b]).tanh(), [(0.7, -1.3)]),
]


@pytest.mark.parametrize("name, fn, points", OPS, ids=[op[0] for op in OPS])
def test_op_derivative_matches_central_differences(name, fn, points):
    h = 1e-6
    for a0, b0 in points:
        a, b = Value(a0), Value(b0)
        out = fn(a, b)
        out.backward()
        numeric_a = (fn(Value(a0 + h), Value(b0)).data - fn(Value(a0 - h), Value(b0)).data) / (
            2 * h
        )
        numeric_b = (fn(Value(a0), Value(b0 + h)).data - fn(Value(a0), Value(b0 - h)).data) / (
            2 * h
        )
        assert rel_error(a.grad, numeric_a) < 1e-6, (name, a.grad, numeric_a)
        assert rel_error(b.grad, numeric_b) < 1e-6, (name, b.grad, numeric_b)


def test_forward_values_of_each_op():
    a, b = Value(0.7), Value(-1.3)
    assert (a + b).data == 0.7 + -1.3
    assert (a - b).data == 0.7 - -1.3
    assert (a * b).data == 0.7 * -1.3
    assert (a / b).data == 0.7 / -1.3
    assert (a**3).data == 0.7**3
    assert (a**b).data == 0.7**-1.3
    assert (2**a).data == 2**0.7
    assert (-a).data == -0.7
    assert a.exp().data == math.exp(0.7)
    assert a.log().data == math.log(0.7)
    assert b.tanh().data == math.tanh(-1.3)
    assert b.sigmoid().data == pytest.approx(1 / (1 + math.exp(1.3)), rel=TIGHT)
    assert b.relu().data == 0.0 and a.relu().data == 0.7
    assert Value.sum([a, b, 1]).data == pytest.approx(0.7 - 1.3 + 1, rel=TIGHT)


# -------------------------------------------------------------------- against torch float64


def _random_expression(rng: random.Random, backend):
    """Build the same random expression with `backend` ops; returns (leaves, output)."""
    leaves = [backend.leaf(rng.uniform(0.5, 2.0)) for _ in range(4)]
    pool = list(leaves)
    for _ in range(25):
        a, b = rng.choice(pool), rng.choice(pool)
        ad, bd = backend.data(a), backend.data(b)
        kind = rng.choice(
            ["add", "sub", "mul", "div", "pow", "powv", "rpow", "neg", "exp", "log", "tanh"]
            + ["sigmoid", "relu", "sum", "dot", "radd", "rsub", "rmul", "rdiv"]
        )
        if kind == "add":
            out = a + b
        elif kind == "sub":
            out = a - b
        elif kind == "mul":
            out = a * b
        elif kind == "div" and abs(bd) > 0.2:
            out = a / b
        elif kind == "pow" and 0.2 < abs(ad) < 3:
            out = a ** rng.choice([2, 3, -1])
        elif kind == "powv" and 0.2 < ad < 3 and abs(bd) < 3:
            out = a**b
        elif kind == "rpow" and abs(ad) < 3:
            out = 1.7**a
        elif kind == "neg":
            out = -a
        elif kind == "exp" and abs(ad) < 3:
            out = backend.exp(a)
        elif kind == "log" and ad > 0.1:
            out = backend.log(a)
        elif kind == "tanh":
            out = backend.tanh(a)
        elif kind == "sigmoid":
            out = backend.sigmoid(a)
        elif kind == "relu":
            out = backend.relu(a)
        elif kind == "sum":
            out = backend.sum([a, b, rng.choice(pool)])
        elif kind == "dot":
            out = backend.dot([a, b], [rng.choice(pool), a], rng.choice(pool))
        elif kind == "radd":
            out = 0.5 + a
        elif kind == "rsub":
            out = 0.5 - a
        elif kind == "rmul":
            out = 1.5 * a
        elif kind == "rdiv" and abs(ad) > 0.2:
            out = 1.5 / a
        else:
            out = a * b
        if abs(backend.data(out)) > 1e6:  # keep the expression tame
            continue
        pool.append(out)
    return leaves, backend.sum(pool[-6:])


class _ChainruleBackend:
    leaf = staticmethod(Value)
    data = staticmethod(lambda v: v.data)
    exp = staticmethod(Value.exp)
    log = staticmethod(Value.log)
    tanh = staticmethod(Value.tanh)
    sigmoid = staticmethod(Value.sigmoid)
    relu = staticmethod(Value.relu)
    sum = staticmethod(Value.sum)
    dot = staticmethod(Value.dot)


def _torch_backend(torch):
    class _TorchBackend:
        leaf = staticmethod(lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True))
        data = staticmethod(lambda t: t.item())
        exp = staticmethod(torch.exp)
        log = staticmethod(torch.log)
        tanh = staticmethod(torch.tanh)
        sigmoid = staticmethod(torch.sigmoid)
        relu = staticmethod(torch.relu)
        sum = staticmethod(lambda ts: torch.stack(list(ts)).sum())
        dot = staticmethod(lambda ws, xs, b: torch.dot(torch.stack(ws), torch.stack(xs)) + b)

    return _TorchBackend


@pytest.mark.parametrize("seed", range(20))
def test_random_expressions_match_torch(seed):
    torch = pytest.importorskip("torch")
    leaves, out = _random_expression(random.Random(seed), _ChainruleBackend)
    t_leaves, t_out = _random_expression(random.Random(seed), _torch_backend(torch))
    out.backward()
    t_out.backward()
    assert rel_error(out.data, t_out.item()) < 1e-12
    for v, t in zip(leaves, t_leaves):
        t_grad = 0.0 if t.grad is None else t.grad.item()  # None: the leaf was not used
        assert v.data == t.item()
        assert rel_error(v.grad, t_grad) < 1e-10, (v.grad, t_grad)


def test_each_unary_op_matches_torch():
    torch = pytest.importorskip("torch")
    for x in [-2.3, -0.4, 0.6, 1.9]:
        for name in ["exp", "tanh", "sigmoid", "relu"] + (["log"] if x > 0 else []):
            v = Value(x)
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            out, t_out = getattr(v, name)(), getattr(torch, name)(t)
            out.backward()
            t_out.backward()
            assert rel_error(out.data, t_out.item()) < 1e-14, name
            assert rel_error(v.grad, t.grad.item()) < 1e-14, name


# ------------------------------------------------------------------------ graph mechanics


def test_long_chain_backward_has_no_recursion_limit():
    """A chain of 1,000,000 additions backpropagates iteratively (its time: bench_scalar.py).

    The cyclic garbage collector is paused while the chain is built: it would rescan the
    growing heap many times over, which is about Python's GC (bench/bench_scalar.py times
    that), not about the iterative backward pass tested here.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        one, x = Value(1.0), Value(0.0)
        for _ in range(1_000_000):
            x = x + one
        x.backward()
    finally:
        if gc_was_enabled:
            gc.enable()
    assert x.data == 1_000_000.0
    assert one.grad == 1_000_000.0
    assert x._prev[0]._prev[0].grad == 1.0
    x.backward()  # twice: interior grads are reset, the leaf accumulates
    assert x._prev[0].grad == 1.0 and one.grad == 2_000_000.0


def test_deep_chain_of_unary_ops():
    x = Value(0.5)
    y = x
    for _ in range(20_000):
        y = y.tanh() * 1.0
    y.backward()
    h = 1e-6

    def f(v):
        for _ in range(20_000):
            v = math.tanh(v)
        return v

    assert rel_error(x.grad, (f(0.5 + h) - f(0.5 - h)) / (2 * h)) < 1e-5


def test_value_used_twice_accumulates():
    a = Value(3.0)
    b = a + a  # db/da = 2
    b.backward()
    assert a.grad == 2.0

    a = Value(3.0)
    b = a + a  # 6
    c = b * b  # 36; dc/da = 2b * 2 = 24
    c.backward()
    assert c.data == 36.0 and b.grad == 12.0 and a.grad == 24.0

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b  # -2
    d = a * b + b**3  # -8 + 8 = 0
    e = c * d + d * d  # dE/da = d + c*b + 2*d*b ; dE/db = d + c*(a + 3b^2) + 2*d*(a + 3b^2)
    e.backward()
    assert a.grad == pytest.approx(0 + (-2) * 2 + 0, abs=TIGHT)
    assert b.grad == pytest.approx(0 + (-2) * (-4 + 12) + 0, abs=TIGHT)

    a = Value(1.5)
    s = Value.sum([a, a, a])  # ds/da = 3
    s.backward()
    assert a.grad == 3.0


def test_backward_twice_resets_interior_and_accumulates_leaves():
    v = seed_example()
    v["L"].backward()
    v["L"].backward()
    assert v["z3"].grad == pytest.approx(2.54, rel=TIGHT)  # interior: not doubled
    assert v["z1"].grad == pytest.approx(-2.54, rel=TIGHT)
    assert v["L"].grad == 1.0
    assert v["w"].grad == pytest.approx(2 * -5.08, rel=TIGHT)  # leaf: accumulates
    v["L"].zero_grad()
    v["L"].backward()
    assert v["w"].grad == pytest.approx(-5.08, rel=TIGHT)


def test_zero_grad_reaches_every_node():
    v = seed_example()
    v["L"].backward()
    v["L"].zero_grad()
    assert all(node.grad == 0.0 for node in v.values())
    assert len(v["L"].topological_order()) == len(v)


def test_backward_seed_and_leaf_root():
    v = seed_example()
    v["L"].backward(grad=2.0)
    assert v["w"].grad == pytest.approx(2 * -5.08, rel=TIGHT)
    a = Value(3.0)
    a.backward()
    assert a.grad == 1.0


def test_topological_order_children_first():
    v = seed_example()
    order = v["L"].topological_order()
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        for child in node._prev:
            assert position[child] < position[node]
    assert order[-1] is v["L"]


def test_sum_is_one_node_with_n_children():
    values = [Value(float(i)) for i in range(10)]
    s = Value.sum(values)
    assert s._op == "sum" and s._prev == tuple(values)
    assert s.data == 45.0
    s.backward()
    assert all(v.grad == 1.0 for v in values)
    assert Value.sum([]).data == 0.0
    assert Value.sum(v for v in values).data == 45.0  # any iterable
    assert sum(values).data == 45.0  # the builtin works through __radd__


def _dot_inputs(seed: int, n: int) -> tuple[list[Value], list[Value], Value]:
    rng = random.Random(seed)
    ws = [Value(rng.uniform(-1, 1)) for _ in range(n)]
    xs = [Value(rng.uniform(-1, 1)) for _ in range(n)]
    return ws, xs, Value(rng.uniform(-1, 1))


@pytest.mark.parametrize("n", [1, 2, 16])
def test_dot_equals_the_unfused_expression(n):
    """One dot node: the value and every gradient of sum([b, w1*x1, ..., wn*xn])."""
    ws, xs, b = _dot_inputs(n, n)
    fused = Value.dot(ws, xs, b).tanh()  # tanh: a non-trivial gradient flows into the node
    fused.backward()
    fused_grads = [v.grad for v in [*ws, *xs, b]]
    for v in [*ws, *xs, b]:
        v.grad = 0.0
    unfused = Value.sum([b, *[w * x for w, x in zip(ws, xs)]]).tanh()
    unfused.backward()
    assert fused.data == pytest.approx(unfused.data, rel=TIGHT, abs=TIGHT)
    for got, want in zip(fused_grads, [v.grad for v in [*ws, *xs, b]]):
        assert got == pytest.approx(want, rel=TIGHT, abs=TIGHT)


def test_dot_is_one_node_with_weights_inputs_bias_as_children():
    ws, xs, b = _dot_inputs(0, 4)
    out = Value.dot(ws, xs, b)
    assert out._op == "dot" and out._prev == (*ws, *xs, b)
    assert out.topological_order() == [*ws, *xs, b, out]


def test_dot_gradient_matches_central_differences():
    ws, xs, b = _dot_inputs(1, 5)
    leaves = [*ws, *xs, b]

    def f(values: list[float]) -> float:
        v = [Value(x) for x in values]
        return (Value.dot(v[:5], v[5:10], v[10]) ** 2).data

    out = Value.dot(ws, xs, b) ** 2
    out.backward()
    h = 1e-6
    point = [v.data for v in leaves]
    for i, leaf in enumerate(leaves):
        up, down = list(point), list(point)
        up[i] += h
        down[i] -= h
        numeric = (f(up) - f(down)) / (2 * h)
        assert rel_error(leaf.grad, numeric) < 1e-6, i


def test_dot_numbers_repeats_and_errors():
    a, b = Value(3.0), Value(-2.0)
    out = Value.dot([a, 2, b], [a, a, 0.5], 1)  # a*a + 2*a + 0.5*b + 1
    assert out.data == 9.0 + 6.0 - 1.0 + 1.0
    out.backward()
    assert a.grad == 2 * 3.0 + 2.0  # a used three times: every use adds its share
    assert b.grad == 0.5
    assert Value.dot([], []).data == 0.0 and Value.dot([], [], 1.5).data == 1.5
    # NumPy scalars are numbers too (they have a .data attribute, a memoryview: not a Value's)
    assert Value.dot([np.float64(2.0)], [a], np.float32(0.5)).data == 6.5
    assert Value.dot([a, np.int64(2)], [np.float64(1.5), np.float64(-1.0)]).data == 2.5
    with pytest.raises(ValueError, match="as many weights as inputs, got 2 and 1"):
        Value.dot([a, b], [a])
    with pytest.raises(TypeError, match=r"Value.dot\(\) needs Values or real numbers, got str"):
        Value.dot([a], ["x"])
    with pytest.raises(TypeError, match="got NoneType"):
        Value.dot([a], [a], None)
    with pytest.raises(TypeError, match="got ndarray"):
        Value.dot([a], [np.ones(2)])


def test_backward_order_follows_creation_not_discovery():
    """A late-made node reached first by the search still runs after its own parents."""
    a = Value(1.5)
    late = a * 2.0  # made first: a child of everything below
    c = a.tanh() + late
    d = c * late + late.exp()
    d.backward()
    h = 1e-6

    def f(x: float) -> float:
        return (math.tanh(x) + 2 * x) * 2 * x + math.exp(2 * x)

    assert rel_error(a.grad, (f(1.5 + h) - f(1.5 - h)) / (2 * h)) < 1e-8
    seqs = [node._seq for node in d.topological_order()]
    assert d._interior_order()[-1] is d and seqs[-1] == max(seqs)


def test_children_are_an_ordered_tuple():
    a, b = Value(1.0), Value(2.0)
    assert (a - b)._prev == (a, b)
    assert (b - a)._prev == (b, a)
    assert isinstance((a * b)._prev, tuple)


def test_numbers_on_either_side():
    v = Value(3.0)
    cases = {
        "v + 2": (v + 2, 5.0, 1.0),
        "2 + v": (2 + v, 5.0, 1.0),
        "v - 2": (v - 2, 1.0, 1.0),
        "2 - v": (2 - v, -1.0, -1.0),
        "v * 2": (v * 2, 6.0, 2.0),
        "2 * v": (2 * v, 6.0, 2.0),
        "v / 2": (v / 2, 1.5, 0.5),
        "2 / v": (2 / v, 2 / 3, -2 / 9),
        "v ** 2": (v**2, 9.0, 6.0),
        "2 ** v": (2**v, 8.0, 8.0 * math.log(2)),
    }
    for name, (out, data, grad) in cases.items():
        v.grad = 0.0
        out.backward()
        assert out.data == pytest.approx(data, rel=TIGHT), name
        assert v.grad == pytest.approx(grad, rel=TIGHT), name


def test_numpy_scalars_are_numbers():
    v = Value(np.float32(1.5))
    assert type(v.data) is float and v.data == 1.5
    assert (v * np.float64(2.0)).data == 3.0
    assert (np.float64(2.0) * v).data == 3.0
    assert (np.int64(2) + v).data == 3.5


def test_sigmoid_is_stable_at_extremes():
    lo, hi = Value(-1000.0), Value(1000.0)
    s_lo, s_hi = lo.sigmoid(), hi.sigmoid()
    assert s_lo.data == 0.0 and s_hi.data == 1.0
    (s_lo + s_hi).backward()
    assert lo.grad == 0.0 and hi.grad == 0.0
    assert Value(-40.0).sigmoid().data == pytest.approx(math.exp(-40.0), rel=1e-12)


def test_kinks_and_edges():
    x = Value(0.0)
    x.relu().backward()
    assert x.grad == 0.0  # relu'(0) = 0, as PyTorch
    x = Value(0.0)
    (x**0.5).backward()
    assert x.grad == math.inf  # sqrt has an infinite slope at 0, as PyTorch
    x = Value(0.0)
    (x**0).backward()
    assert x.grad == 0.0
    x = Value(-2.0)
    (x**3).backward()
    assert x.grad == pytest.approx(12.0, rel=TIGHT)


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "make, type_name",
    [
        (lambda: Value(1.0) + "a", "str"),
        (lambda: "a" + Value(1.0), "str"),
        (lambda: Value(1.0) - None, "NoneType"),
        (lambda: None - Value(1.0), "NoneType"),
        (lambda: Value(1.0) * {}, "dict"),
        (lambda: Value(1.0) / "2", "str"),
        (lambda: "2" / Value(1.0), "str"),
        (lambda: Value(1.0) ** "2", "str"),
        (lambda: "2" ** Value(1.0), "str"),
        (lambda: Value(1.0) + 1j, "complex"),
        (lambda: Value("2"), "str"),
        (lambda: Value(None), "NoneType"),
        (lambda: Value.sum([Value(1.0), "a"]), "str"),
    ],
)
def test_non_numbers_raise_type_error_naming_the_type(make, type_name):
    with pytest.raises(TypeError, match=type_name):
        make()


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Value(0.0).log(), "log is defined only for positive"),
        (lambda: Value(-1.0).log(), "log is defined only for positive"),
        (lambda: Value(-2.0) ** Value(2.0), "positive base"),
        (lambda: Value(0.0) ** Value(2.0), "positive base"),
        (lambda: (-2.0) ** Value(2.0), "positive base"),
        (lambda: Value(-8.0) ** (1 / 3), "not a real number"),
    ],
)
def test_domain_errors_raise_value_error(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


# ---------------------------------------------------------------------- display, pictures


def test_repr_is_readable():
    v = seed_example()
    v["L"].backward()
    assert repr(v["w"]) == "Value(data=0.5, grad=-5.08)"
    assert repr(v["z3"]) == "Value(data=1.27, grad=2.54, op='-')"
    assert repr(Value(2.0, label="x")) == "Value(data=2, grad=0, label='x')"


def test_to_dot_shows_ops_data_and_grads():
    x, w = Value(2.0, label="x"), Value(0.5, label="w")
    L = (x * w - 3.0) ** 2
    L.backward()
    dot = L.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert 'label="*"' in dot and 'label="-"' in dot and 'label="**2"' in dot
    assert "x | data 2 | grad -2" in dot  # dL/dx = 2 (xw - 3) w = 2 * -2 * 0.5
    assert "w | data 0.5 | grad -8" in dot  # dL/dw = 2 (xw - 3) x = 2 * -2 * 2
    # one record per value, one oval per operation
    assert dot.count("shape=record") == 6 and dot.count("shape=ellipse") == 3


def test_to_dot_escapes_labels():
    dot = Value(1.0, label="a|b{c}").to_dot()
    assert r"a\|b\{c\}" in dot


def test_draw_writes_svg(tmp_path):
    pytest.importorskip("graphviz")
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("test extra: Graphviz's dot is not installed (apt-get install graphviz)")
    v = seed_example()
    v["L"].backward()
    out = v["L"].draw(tmp_path / "graph.svg")
    text = out.read_text()
    assert "<svg" in text and "1.27" in text


def test_draw_without_dot_says_how_to_install(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    import chainrule.value as value_module

    monkeypatch.setattr(value_module.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        Value(1.0).draw(tmp_path / "g.svg")
