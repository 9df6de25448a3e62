"""The Tensor engine: every primitive against PyTorch (float64, broadcasting in every pattern,
driven by hypothesis), gradchecks with random projections, fan-in, a 100 000-op chain,
no_grad, freeing the graph, custom Functions, and the errors."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import chainrule as cr
from chainrule.tensor import unbroadcast

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

SETTINGS = settings(max_examples=40, derandomize=True, deadline=None, database=None)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def _values(shape, seed, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return 0.5 + np.abs(x) if positive else x


def _compare(ours_fn, torch_fn, arrays, seed=0):
    """Forward and every input's gradient of <R, f(inputs)>, R random, chainrule vs torch."""
    ours_in = [cr.Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours_in), torch_fn(*theirs_in)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    R = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(R)
    ref.backward(torch.tensor(R))
    for mine, theirs in zip(ours_in, theirs_in):
        assert mine.grad.shape == mine.shape  # the engine summed broadcasting back
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, False),
    "div": (lambda a, b: a / b, lambda a, b: a / b, True),
    "pow": (lambda a, b: a**b, lambda a, b: a**b, True),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=PAIRS, seed=st.integers(0, 2**16))
def test_binary_ops_match_torch_under_broadcasting(name, shapes, seed):
    ours, theirs, positive = BINARY[name]
    a_shape, b_shape = shapes.input_shapes
    a = _values(a_shape, seed, positive)
    b = _values(b_shape, seed + 7, positive)
    _compare(ours, theirs, [a, b], seed)


@pytest.mark.parametrize(
    "a_shape, b_shape", [((1,), (1, 2)), ((1, 2), (1,)), ((), (3, 1)), ((2, 1, 3), (4, 1))]
)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_rank_changing_broadcasts(name, a_shape, b_shape):
    ours, theirs, positive = BINARY[name]
    _compare(ours, theirs, [_values(a_shape, 1, positive), _values(b_shape, 2, positive)])


def test_numbers_on_either_side_keep_the_tensor_dtype():
    t = cr.Tensor(np.ones(3, np.float32), requires_grad=True)
    for out in (t + 2.0, 2.0 - t, 3 * t, 1.0 / (t + 1), t**2, 2.0**t, -t):
        assert out.dtype == np.float32
    y = (2.0 - t) * 3 + t / 4
    y.sum().backward()
    np.testing.assert_array_equal(t.grad, np.full(3, -3 + 0.25, np.float32))


def test_pow_with_a_tensor_exponent_against_torch():
    a, b = _values((2, 3), 0, positive=True), _values((3,), 1)
    _compare(lambda x, y: x**y, lambda x, y: x**y, [a, b])
    _compare(lambda y: 2.0**y, lambda y: 2.0**y, [b])


MATMUL_SHAPES = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3))]  # fmt: skip


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES)
def test_matmul_matches_torch_including_batches_and_vectors(a_shape, b_shape):
    _compare(lambda a, b: a @ b, lambda a, b: a @ b, [_values(a_shape, 3), _values(b_shape, 4)])


@SETTINGS
@given(
    batch=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
    dims=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    vectors=st.tuples(st.booleans(), st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_matmul_matches_torch_with_broadcast_batches(batch, dims, vectors, seed):
    m, k, n = dims
    a_batch, b_batch = batch.input_shapes
    a_shape = (k,) if vectors[0] else (*a_batch, m, k)  # a 1-D operand has no batch axes
    b_shape = (k,) if vectors[1] else (*b_batch, k, n)
    _compare(lambda a, b: a @ b, lambda a, b: a @ b,
             [_values(a_shape, seed), _values(b_shape, seed + 1)], seed)  # fmt: skip


@SETTINGS
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 2**16),
)
def test_where_matches_torch_under_broadcasting(shapes, seed):
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = _values(cond_shape, seed + 2) > 0
    _compare(lambda a, b: cr.where(cond, a, b),
             lambda a, b: torch.where(torch.as_tensor(cond), a, b),
             [_values(a_shape, seed), _values(b_shape, seed + 1)], seed)  # fmt: skip


UNARY = {
    "neg": (lambda a: -a, lambda a: -a, False),
    "exp": (lambda a: a.exp(), torch.exp, False),
    "log": (lambda a: a.log(), torch.log, True),
    "tanh": (lambda a: a.tanh(), torch.tanh, False),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, False),
    "relu": (lambda a: a.relu(), torch.relu, False),
    "abs": (lambda a: a.abs(), torch.abs, False),
    "sqrt": (lambda a: a.sqrt(), torch.sqrt, True),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=st.lists(st.integers(1, 3), max_size=3).map(tuple), seed=st.integers(0, 2**16))
def test_unary_ops_match_torch(name, shape, seed):
    ours, theirs, positive = UNARY[name]
    _compare(ours, theirs, [_values(shape, seed, positive)], seed)


@st.composite
def _reductions(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    axes = draw(st.none() | st.integers(-len(shape), len(shape) - 1)
                | st.sets(st.integers(0, len(shape) - 1), min_size=1).map(tuple))  # fmt: skip
    return shape, axes, draw(st.booleans()), draw(st.integers(0, 2**16))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@SETTINGS
@given(case=_reductions())
def test_reductions_match_torch(name, case):
    shape, axis, keepdims, seed = case
    dims = tuple(range(len(shape))) if axis is None else axis
    torch_fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[name]
    _compare(
        lambda a: getattr(a, name)(axis=axis, keepdims=keepdims),
        lambda a: torch_fn(a, dim=dims, keepdim=keepdims),
        [_values(shape, seed)],
        seed,
    )


def test_max_shares_the_gradient_between_ties_like_amax():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    _compare(lambda t: t.max(axis=1), lambda t: torch.amax(t, dim=1), [a])
    _compare(lambda t: t.max(), lambda t: torch.amax(t), [a])


def test_shape_ops_match_torch():
    a = _values((2, 3, 4), 5)
    _compare(lambda t: t.reshape(4, 6), lambda t: t.reshape(4, 6), [a])
    _compare(lambda t: t.reshape((6, -1)), lambda t: t.reshape(6, -1), [a])
    _compare(lambda t: t.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1), [a])
    _compare(lambda t: t.T, lambda t: t.permute(2, 1, 0), [a])
    _compare(lambda t: t.transpose(), lambda t: t.permute(2, 1, 0), [a])


INDICES = [
    (slice(None), 1),
    (slice(0, 2), slice(None, None, 2)),
    np.array([0, 1, 1, 0]),  # an integer array picking rows twice: both gradients add
    (Ellipsis, np.array([3, 0, 3])),
    (np.array([0, 1]), np.array([2, 2]), slice(1, 3)),
    -1,
]


@pytest.mark.parametrize("index", INDICES, ids=range(len(INDICES)))
def test_indexing_matches_torch(index):
    a = _values((2, 3, 4), 6)
    t_index = tuple(torch.as_tensor(i) if isinstance(i, np.ndarray) else i
                    for i in (index if isinstance(index, tuple) else (index,)))  # fmt: skip
    _compare(lambda t: t[index], lambda t: t[t_index], [a])


def test_indexing_by_a_boolean_mask_and_by_a_tensor():
    a = _values((3, 4), 7)
    mask = a > 0
    _compare(lambda t: t[mask], lambda t: t[torch.as_tensor(mask)], [a])
    rows = cr.Tensor(np.array([2, 0]))
    _compare(lambda t: t[rows], lambda t: t[torch.tensor([2, 0])], [a])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_stack_match_torch(axis):
    a, b, c = _values((2, 3), 1), _values((2, 3), 2), _values((2, 3), 3)
    _compare(lambda *ts: cr.stack(ts, axis), lambda *ts: torch.stack(ts, axis), [a, b, c])
    b2 = _values((2, 1), 4) if axis else _values((1, 3), 4)
    _compare(lambda *ts: cr.concat(ts, axis), lambda *ts: torch.cat(ts, axis), [a, b2])


def test_where_matches_torch_with_broadcasting():
    cond = _values((2, 3), 1) > 0
    a, b = _values((2, 3), 2), _values((3,), 3)
    _compare(lambda x, y: cr.where(cond, x, y),
             lambda x, y: torch.where(torch.as_tensor(cond), x, y), [a, b])  # fmt: skip
    t = cr.Tensor(a, requires_grad=True)
    cr.where(cr.Tensor(cond), t, 0.0).sum().backward()
    np.testing.assert_array_equal(t.grad, cond.astype(float))


def test_a_composite_expression_matches_torch():
    def f(x, w, b):
        h = (x @ w + b).tanh()
        return (h * h.sigmoid()).mean(axis=0) - (x.abs() + 1).log().sum() / (h.max() + 2)

    def g(x, w, b):
        h = torch.tanh(x @ w + b)
        return (h * torch.sigmoid(h)).mean(dim=0) - torch.log(x.abs() + 1).sum() / (h.max() + 2)

    _compare(f, g, [_values((5, 3), 1), _values((3, 4), 2), _values((4,), 3)])


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: (a * b + a / (b * b + 1)).tanh(), [(3, 1), (1, 4)]),
        (lambda a, b: (a @ b).sigmoid().max(axis=1), [(2, 3), (3, 4)]),
        (lambda a: (a.exp() + 1).log().sqrt().mean(axis=0, keepdims=True), [(3, 2)]),
        (lambda a, b: cr.concat([a, b], 1)[:, 1:].reshape(-1) ** 2, [(2, 2), (2, 3)]),
    ],
)
def test_gradcheck_with_random_projections(fn, shapes):
    arrays = [_values(s, i) for i, s in enumerate(shapes)]
    err = cr.gradcheck(fn, *arrays)
    assert err.passed, err


class Cube(cr.Function):
    """x³, with the derivative 3x² written by hand."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class ScaledAdd(cr.Function):
    """a + k·b for a number k: one gradient per input, None for the number."""

    @staticmethod
    def forward(ctx, a, b, k):
        ctx.k = k
        return a + k * b

    @staticmethod
    def backward(ctx, grad):
        return grad, ctx.k * grad, None


def test_custom_functions_pass_gradcheck_and_match_torch():
    x = _values((3, 2), 1)
    assert cr.gradcheck(Cube, x).passed
    assert cr.gradcheck(lambda a, b: ScaledAdd.apply(a, b, 2.5), x, _values((2,), 2)).passed
    _compare(lambda t: Cube.apply(t), lambda t: t**3, [x])


def test_a_broken_custom_function_is_caught_by_gradcheck():
    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 2 * x**2

    assert not cr.gradcheck(WrongCube, _values((3,), 1)).passed


def test_a_gradient_of_the_wrong_shape_is_an_error_naming_the_function():
    class Bad(cr.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, grad):
            return np.ones(5)

    t = cr.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(5,\)"):
        Bad.apply(t).backward()


def test_a_wrong_number_of_gradients_is_an_error():
    class OneForTwo(cr.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    t = cr.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"OneForTwo.backward returned 1 gradient\(s\) for 2"):
        OneForTwo.apply(t, t).sum().backward()


def test_unbroadcast_sums_back_and_refuses_other_shapes():
    g = np.ones((4, 2, 3))
    np.testing.assert_array_equal(unbroadcast(g, (2, 1)), np.full((2, 1), 12.0))
    np.testing.assert_array_equal(unbroadcast(g, ()), np.array(24.0))
    with pytest.raises(RuntimeError, match="shape"):
        unbroadcast(g, (5, 3))


def test_fan_in_accumulates():
    a = cr.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    b = a + a
    c = b * b + a  # a reaches c three times
    c.sum().backward()
    np.testing.assert_array_equal(a.grad, 8 * a.data + 1)  # d/da (4a² + a)


def test_leaf_gradients_add_up_over_backward_calls():
    a = cr.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (a * 3).sum().backward()
    (a * 3).sum().backward()
    np.testing.assert_array_equal(a.grad, [6.0, 6.0])


def test_a_100k_op_chain_needs_no_recursion():
    x = cr.Tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])


def test_no_grad_records_nothing():
    w = cr.Tensor(np.ones(3), requires_grad=True)
    with cr.no_grad():
        y = (w * 2).exp().sum()
        assert not cr.tensor.is_grad_enabled()
    assert cr.tensor.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    model = cr.Dense(3, 2, seed=0)
    with cr.no_grad():
        out = model(cr.Tensor(np.ones((1, 3), np.float32), requires_grad=True))
    assert not out.requires_grad and out.is_leaf


def test_no_grad_nests_and_restores_on_error():
    with pytest.raises(ValueError):
        with cr.no_grad():
            with cr.no_grad():
                pass
            assert not cr.tensor.is_grad_enabled()
            raise ValueError
    assert cr.tensor.is_grad_enabled()


def test_the_graph_is_freed_after_backward():
    x = cr.Tensor(np.arange(3.0), requires_grad=True)
    h = x.exp()
    loss = (h * h).sum()
    seen = weakref.ref(h)
    del h
    gc.collect()
    assert seen() is not None  # the graph holds h until backward
    assert loss.node.function.__name__ == "Sum" and x.node is None
    loss.backward()
    gc.collect()
    assert seen() is None  # backward let go of it
    assert loss.node is None
    with pytest.raises(RuntimeError, match="already used by a backward pass"):
        loss.backward()
    x2 = cr.Tensor(np.arange(3.0), requires_grad=True)
    (x2 * 2).sum().backward()  # a new forward builds a new graph
    np.testing.assert_array_equal(x2.grad, [2.0, 2.0, 2.0])


def test_tensor_api_basics():
    a = np.arange(6.0).reshape(2, 3)
    t = cr.Tensor(a, requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and len(t) == 2
    assert t.numpy() is a and t.T.shape == (3, 2)
    d = t.detach()
    assert d.data is a and not d.requires_grad
    assert cr.Tensor(np.array([2.5])).item() == 2.5
    assert "requires_grad=True" in repr(t)
    out = np.ones((2, 3)) + t  # an ndarray on the left defers to the Tensor
    assert isinstance(out, cr.Tensor) and out.requires_grad


def test_backward_of_a_non_scalar_needs_its_gradient():
    t = cr.Tensor(np.ones((2, 2)), requires_grad=True)
    y = t * 2
    with pytest.raises(RuntimeError, match="needs an explicit gradient"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) does not fit"):
        (t * 2).backward(np.ones(3))
    (t * 2).backward(np.ones(2))  # a broadcastable gradient is summed like any other
    np.testing.assert_array_equal(t.grad, np.full((2, 2), 2.0))


def test_hostile_inputs_give_one_line_errors():
    with pytest.raises(ValueError, match="only floating arrays can require gradients"):
        cr.Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(ValueError, match="at least one tensor"):
        cr.concat([], axis=0)
    with pytest.raises(ValueError, match="at least one tensor"):
        cr.stack([])
    with pytest.raises(TypeError, match="not a Tensor"):
        cr.gradcheck(lambda a: a.data, np.ones(2))


def test_a_function_sees_needs_input_grad_and_nothing_is_kept_under_no_grad():
    seen = []

    class Probe(cr.Function):
        @staticmethod
        def forward(ctx, a, b):
            seen.append(tuple(ctx.needs_input_grad))
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad * b, grad * a

    a, b = cr.Tensor(np.ones(2), requires_grad=True), cr.Tensor(np.full(2, 3.0))
    Probe.apply(a, b).sum().backward()
    with cr.no_grad():
        out = Probe.apply(a, b)
    assert seen == [(True, False), (False, False)]
    assert out.is_leaf and not out.requires_grad
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])
