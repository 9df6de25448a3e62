"""chainrule's own threads (`set_num_threads`): the split work equals the serial work exactly."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import _threads, threads

# Above MIN_PARALLEL_SIZE (256K elements), so these really run on 2 threads.
BIG = (64, 16, 28, 28)  # 802,816 elements


@pytest.fixture(autouse=True)
def restore_threads():
    before = cr.get_num_threads()
    yield
    cr.set_num_threads(before)


@pytest.fixture
def no_workers(monkeypatch):
    """Fail if anything wakes the worker threads."""

    def refuse():
        raise AssertionError("work was sent to the threads")

    monkeypatch.setattr(_threads, "_get_workers", refuse)


def channel_major(x):
    """The layout a Conv2D hands on: (N, C, H, W) with C outermost in memory."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def train_step(layer, x, seed=1):
    """Forward, then backward of a fixed random gradient: (y, dx, parameter grads)."""
    layer.train()
    for p in layer.parameters():
        p.grad[...] = 0
    y = layer(x)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    dx = layer.backward(g)
    return [y, dx] + [p.grad.copy() for p in layer.parameters()]


def serial_and_threaded(make_layer, x):
    """The same step with 1 thread and with 2 (fresh but identical layers)."""
    results = []
    for n in (1, 2):
        cr.set_num_threads(n)
        results.append(train_step(make_layer(), x))
    return results


def assert_identical(results):
    serial, threaded = results
    for a, b in zip(serial, threaded, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_default_and_set_get():
    assert cr.get_num_threads() >= 1
    cr.set_num_threads(3)
    assert cr.get_num_threads() == 3
    cr.set_num_threads(1)
    assert cr.get_num_threads() == 1


@pytest.mark.parametrize("timeout, expected", [(None, 1), ("28", 1), ("4", 2), ("oops", 1)])
def test_default_is_two_threads_only_when_openblas_does_not_spin(monkeypatch, timeout, expected):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    if timeout is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", timeout)
    assert threads.default_num_threads() == expected


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises((ValueError, TypeError)):
        cr.set_num_threads(bad)


@pytest.mark.parametrize("layout", [np.ascontiguousarray, channel_major])
def test_relu_on_threads_equals_serial(rng, layout):
    x = layout(rng.standard_normal(BIG).astype(np.float32))
    assert_identical(serial_and_threaded(cr.ReLU, x))


@pytest.mark.parametrize("layout", [np.ascontiguousarray, channel_major])
@pytest.mark.parametrize(
    "kernel, stride, ceil", [(2, None, False), (3, 2, True), ((2, 3), (1, 2), False)]
)
def test_maxpool_on_threads_equals_serial(rng, layout, kernel, stride, ceil):
    x = np.round(rng.standard_normal(BIG) * 2).astype(np.float32)  # many ties
    results = serial_and_threaded(lambda: cr.MaxPool2D(kernel, stride, ceil_mode=ceil), layout(x))
    assert_identical(results)


@pytest.mark.parametrize("channels, padding", [((1, 8), 1), ((16, 8), 1), ((16, 4), 0)])
def test_conv_im2col_col2im_on_threads_equal_serial(rng, channels, padding):
    x = channel_major(rng.standard_normal((64, channels[0], 28, 28)).astype(np.float32))
    results = serial_and_threaded(lambda: cr.Conv2D(*channels, 3, padding=padding, seed=0), x)
    assert_identical(results)


def test_default_cnn_step_on_threads_equals_serial(rng):
    x = rng.random((64, 28, 28), dtype=np.float32)
    results = serial_and_threaded(lambda: cr.models.cnn(seed=0, dropout=0.0), x)
    assert_identical(results)


def test_small_arrays_stay_on_the_calling_thread(rng, no_workers):
    cr.set_num_threads(2)
    x = rng.standard_normal((4, 3, 8, 8))
    assert _threads.slices(len(x), x.size) == [slice(0, 4)]
    layer = cr.MaxPool2D(2)
    layer.backward(np.ones_like(cr.ReLU()(layer(x))))
    cr.Conv2D(3, 2, 3, seed=0).train()(x)


def test_one_thread_is_the_plain_serial_path(rng, no_workers):
    cr.set_num_threads(1)
    x = channel_major(rng.standard_normal(BIG).astype(np.float32))
    assert _threads.parts(x) == [(slice(None), slice(0, BIG[1]))]
    train_step(cr.MaxPool2D(2), x)
    train_step(cr.ReLU(), x)
    train_step(cr.Conv2D(16, 4, 3, padding=1, seed=0), x)


def test_elementwise_splits_along_the_outer_axis_in_memory(rng):
    cr.set_num_threads(2)
    x = channel_major(rng.standard_normal(BIG).astype(np.float32))
    assert [p[1] for p in _threads.parts(x)] == [slice(0, 8), slice(8, 16)]
    y = _threads.elementwise(np.maximum, x, 0)
    assert y.dtype == np.float32 and y.strides == x.strides  # laid out like x
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    with pytest.raises(ValueError, match="shapes"):
        _threads.elementwise(np.add, x, x[:1])


def test_errors_on_a_worker_reach_the_caller():
    cr.set_num_threads(2)

    def fail(part):
        raise RuntimeError(f"piece {part}")

    with pytest.raises(RuntimeError, match="piece"):
        _threads.run(fail, [0, 1])


def test_work_started_on_a_worker_runs_serially():
    cr.set_num_threads(2)
    inner = _threads.run(lambda _: _threads.slices(8, 2**30), [0, 1])
    assert inner == [[slice(0, 8)], [slice(0, 8)]]  # no nested waits on the same workers
    assert len(_threads.slices(8, 2**30)) == 2


def test_grads_on_threads_still_check_in_float64(rng, monkeypatch):
    """Every piece small: the split path runs even on gradcheck-sized inputs (the conv hands
    the pool and the ReLU its channel-major layout)."""
    monkeypatch.setattr(_threads, "MIN_PARALLEL_SIZE", 1)
    cr.set_num_threads(2)
    x = rng.standard_normal((3, 4, 6, 6))
    for layer in (cr.ReLU(), cr.MaxPool2D(2), cr.Conv2D(4, 2, 3, padding=1, seed=0)):
        layer.train()
        assert cr.gradcheck(layer, x) < 1e-6
    model = cr.models.cnn(channels=(2, 3), hidden=5, dropout=0.0, image_shape=(1, 8, 8), seed=0)
    assert cr.gradcheck(model, rng.random((3, 8, 8))) < 1e-6
