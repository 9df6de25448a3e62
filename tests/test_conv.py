"""Conv2D, MaxPool2D, AvgPool2D and BatchNorm2d: gradient checks, naive-loop oracles, errors.

The `*_naive` functions below are deliberately the slowest, plainest loops over every
image, channel and output pixel: an independent statement of what the fast im2col /
strided code must compute.
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule import conv as conv_module
from chainrule.conv import AvgPool2D, BatchNorm2d, Conv2D, MaxPool2D
from chainrule.module import describe, module_from_config


# ---- naive oracles ------------------------------------------------------------------------
def conv2d_naive(x, weight, bias=None, stride=1, padding=0):
    """y[n, o, a, b] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, ho, wo), x.dtype)
    for b_ in range(n):
        for oc in range(o):
            for a in range(ho):
                for b in range(wo):
                    patch = xp[b_, :, a * sh : a * sh + kh, b * sw : b * sw + kw]
                    y[b_, oc, a, b] = np.sum(patch * weight[oc])
            if bias is not None:
                y[b_, oc] += bias[oc]
    return y


def maxpool2d_naive(x, kernel_size, stride=None):
    """(y, dy→dx function): the max of each window, and the gradient routed to the first
    maximum of each window in row-major order."""
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n, c, ho, wo), x.dtype)
    where = {}
    for b_ in range(n):
        for ch in range(c):
            for a in range(ho):
                for b in range(wo):
                    win = x[b_, ch, a * sh : a * sh + kh, b * sw : b * sw + kw]
                    i, j = np.unravel_index(np.argmax(win), win.shape)  # first maximum
                    y[b_, ch, a, b] = win[i, j]
                    where[b_, ch, a, b] = (a * sh + i, b * sw + j)

    def backward(g):
        dx = np.zeros_like(x)
        for (b_, ch, a, b), (i, j) in where.items():
            dx[b_, ch, i, j] += g[b_, ch, a, b]
        return dx

    return y, backward


def avgpool2d_naive(x, kernel_size, stride=None):
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n, c, ho, wo), x.dtype)
    for a in range(ho):
        for b in range(wo):
            y[:, :, a, b] = x[:, :, a * sh : a * sh + kh, b * sw : b * sw + kw].mean(axis=(2, 3))
    return y


def distinct(rng, shape, spacing=0.01):
    """Values no two of which are within `spacing`: a max pool has no ties, and the finite
    differences (h = 1e-4) never change which entry wins."""
    values = (rng.permutation(int(np.prod(shape))) - np.prod(shape) / 2) * spacing
    return values.reshape(shape).astype(np.float64)


# (in, out, H, W, kernel, stride, padding): square and non-square inputs and kernels
CONV_CASES = [
    (2, 3, 5, 7, 3, 1, 1),
    (1, 2, 6, 6, 3, 1, 0),
    (3, 2, 7, 5, 3, 2, 1),
    (2, 2, 6, 7, (2, 3), (2, 1), (1, 0)),
    (2, 3, 4, 4, 1, 1, 0),
    (1, 2, 5, 6, (3, 2), (1, 2), (2, 1)),
    (2, 2, 4, 4, 4, 1, 0),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradcheck(case, rng):
    c_in, c_out, h, w, k, s, p = case
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p, rng=rng)
    layer.bias.data[:] = rng.standard_normal(c_out)
    x = rng.standard_normal((2, c_in, h, w))
    assert cr.gradcheck(layer, x) < 1e-6


def test_conv2d_without_bias_gradcheck(rng):
    layer = Conv2D(2, 3, 3, padding=1, bias=False, rng=rng)
    assert layer.bias is None and len(layer.parameters()) == 1
    assert cr.gradcheck(layer, rng.standard_normal((2, 2, 4, 5))) < 1e-6


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_naive_loops(case, rng):
    c_in, c_out, h, w, k, s, p = case
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p, rng=rng, dtype=np.float64)
    layer.bias.data[:] = rng.standard_normal(c_out)
    x = rng.standard_normal((3, c_in, h, w))
    expected = conv2d_naive(x, layer.weight.data, layer.bias.data, layer.stride, layer.padding)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [(1, 4, 6, 7, 3, 1, 1), (3, 2, 5, 5, (2, 3), 2, (1, 0))])
@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (0, 2, 3, 1), (1, 0, 2, 3)])
def test_conv2d_any_input_and_gradient_layout_gives_the_same_numbers(case, layout, rng):
    """Inputs and output gradients in any memory order (NCHW, channels-last, channel-major)
    are the same convolution: the layer copies what it must, exactly."""
    c_in, c_out, h, w, k, s, p = case
    x = rng.standard_normal((3, c_in, h, w))
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p, seed=1, dtype=np.float64)
    layer.bias.data[:] = np.arange(c_out) / 4
    y = layer(x)
    g = np.cos(np.arange(y.size)).reshape(y.shape)
    dx = layer.backward(g).copy()
    dw, db = layer.weight.grad.copy(), layer.bias.grad.copy()
    undo = np.argsort(layout)

    def relaid(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.transpose(layout)).transpose(undo)

    layer.zero_grad()
    np.testing.assert_array_equal(layer(relaid(x)), y)
    np.testing.assert_array_equal(layer.backward(relaid(g)), dx)
    np.testing.assert_array_equal(layer.weight.grad, dw)
    np.testing.assert_array_equal(layer.bias.grad, db)


def test_conv2d_output_is_channels_last_in_memory(rng):
    """y's memory is (N, Ho, Wo, O): the next layer gets contiguous channels-last input."""
    y = Conv2D(2, 3, 3, padding=1, rng=rng)(rng.standard_normal((2, 2, 5, 4)))
    assert y.shape == (2, 3, 5, 4) and y.transpose(0, 2, 3, 1).flags.c_contiguous


def test_conv2d_float32_default_and_layout(rng):
    layer = Conv2D(3, 4, 3, padding=1, rng=rng)
    assert layer.weight.data.dtype == np.float32 and layer.bias.data.dtype == np.float32
    x64 = rng.standard_normal((2, 3, 6, 6))
    y = layer(x64)  # a layer computes in its own dtype
    assert y.dtype == np.float32 and y.shape == (2, 4, 6, 6)
    # a channel-major (non-contiguous) input gives the same answer as a contiguous one
    xt = np.ascontiguousarray(x64.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(layer(xt), y)  # the same columns, the same product
    w64 = layer.weight.data.astype(np.float64)
    b64 = layer.bias.data.astype(np.float64)
    np.testing.assert_allclose(y, conv2d_naive(x64, w64, b64, 1, 1), rtol=1e-4, atol=1e-5)


def test_conv2d_outputs_and_grads_are_not_shared_between_calls(rng):
    layer = Conv2D(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x1, x2 = rng.standard_normal((2, 2, 2, 5, 5))
    y1 = layer(x1)
    kept = y1.copy()
    dx1 = layer.backward(np.ones_like(y1))
    kept_dx = dx1.copy()
    y2 = layer(x2)
    layer.backward(np.ones_like(y2))
    np.testing.assert_array_equal(y1, kept)  # reused buffers never leak into results
    np.testing.assert_array_equal(dx1, kept_dx)
    assert layer(x1[:1]).shape == (1, 3, 5, 5)  # a new batch size reallocates scratch


def test_conv2d_backward_accumulates_and_skips_input_grad(rng):
    layer = Conv2D(2, 2, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 5))
    g = rng.standard_normal(layer(x).shape)
    layer.backward(g)
    once = layer.weight.grad.copy()
    assert layer.backward(g, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, 2 * once)


def test_conv2d_eval_chunks_big_batches(rng, monkeypatch):
    layer = Conv2D(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((7, 2, 6, 6))
    full = layer(x)
    monkeypatch.setattr(conv_module, "EVAL_COLS_BYTES", 2 * 18 * 6 * 8 * 8)  # ~2 images
    layer.eval()
    np.testing.assert_allclose(layer(x), full, rtol=1e-13)
    with pytest.raises(RuntimeError, match="train mode"):
        layer.backward(np.ones_like(full))


def test_cnn_column_buffers_stay_small():
    """Scratch memory of the default CNN's convolutions for a batch of 128 (float32)."""
    model = cr.models.cnn(seed=0)
    model.train()
    logits = model(np.zeros((128, 28, 28), np.float32))
    model.backward(np.ones_like(logits), input_grad=False)
    scratch = sum(
        b.nbytes
        for layer in model
        if isinstance(layer, Conv2D)
        for b in (*layer._spare_cols, layer._pad_buffer)
        if b is not None
    )
    assert scratch < 100 * 2**20


POOL_CASES = [
    (2, None, (2, 3, 6, 8)),
    (3, 1, (2, 2, 5, 6)),
    (3, 2, (1, 2, 7, 5)),
    ((2, 3), (1, 2), (2, 2, 5, 7)),
]


@pytest.mark.parametrize("kernel, stride, shape", POOL_CASES)
def test_maxpool2d_gradcheck_and_naive(kernel, stride, shape, rng):
    x = distinct(rng, shape)
    layer = MaxPool2D(kernel, stride)
    y_naive, backward_naive = maxpool2d_naive(x, kernel, stride)
    np.testing.assert_array_equal(layer(x), y_naive)
    g = rng.standard_normal(y_naive.shape)
    np.testing.assert_allclose(layer.backward(g), backward_naive(g), rtol=1e-12, atol=1e-12)
    assert cr.gradcheck(layer, x) < 1e-6


def test_maxpool2d_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 5.0], [5.0, 1.0]]
    layer = MaxPool2D(2)
    y = layer(x)
    np.testing.assert_array_equal(y[0, 0], [[0.0, 0.0], [0.0, 5.0]])
    dx = layer.backward(np.ones_like(y))
    _, backward_naive = maxpool2d_naive(x, 2)
    np.testing.assert_array_equal(dx, backward_naive(np.ones_like(y)))
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == 1 and dx[0, 0, 2, 3] == 1


@pytest.mark.parametrize("layout", ["nchw", "channel-major", "channels-last", "nhcw", "strided"])
@pytest.mark.parametrize("h", [6, 7])
def test_max_of_row_pairs_matches_the_general_pass(layout, h, rng):
    """The whole-array-shift pass along H of a 2×2 pool equals the general strided one,
    ties included (the top row wins), for rows filling one block of memory in any axis
    order, or declines (None) for a strided view it cannot shift in."""
    from chainrule.pooling import _max_along, _max_of_row_pairs

    rows = rng.integers(0, 3, (3, 4, h, 5)).astype(np.float32)  # many ties
    orders = {"channel-major": (1, 0, 2, 3), "channels-last": (0, 2, 3, 1), "nhcw": (0, 2, 1, 3)}
    if layout in orders:
        order = orders[layout]
        rows = np.ascontiguousarray(rows.transpose(order)).transpose(np.argsort(order))
    elif layout == "strided":
        rows = rng.integers(0, 3, (3, 4, h, 10)).astype(np.float32)[..., ::2]
    fast = _max_of_row_pairs(rows, h // 2)
    if layout == "strided":
        assert fast is None
        return
    y, below = _max_along(rows, 2, 2, 2, h // 2)
    np.testing.assert_array_equal(fast[0], y)
    np.testing.assert_array_equal(fast[1], below)


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 3, 7, 5), (1, 2, 2, 2)])
def test_maxpool2x2_gradcheck_naive_and_torch_ties_in_any_layout(shape, rng):
    """The 2×2 pool's fast pass, on inputs with and without ties, in three memory layouts."""
    x = distinct(rng, shape)
    assert cr.gradcheck(MaxPool2D(2), x) < 1e-6
    tied = rng.integers(-1, 2, shape).astype(np.float64)
    for x in (tied, tied.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3), tied[..., ::-1]):
        layer = MaxPool2D(2)
        y_naive, backward_naive = maxpool2d_naive(x, 2)
        np.testing.assert_array_equal(layer(x), y_naive)
        g = rng.standard_normal(y_naive.shape)
        np.testing.assert_array_equal(layer.backward(g), backward_naive(g))


def test_maxpool2d_same_in_train_and_eval(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    layer = MaxPool2D(2)
    y_train = layer(x)
    np.testing.assert_array_equal(layer.eval()(x), y_train)


@pytest.mark.parametrize("kernel, stride, shape", POOL_CASES)
def test_avgpool2d_gradcheck_and_naive(kernel, stride, shape, rng):
    x = rng.standard_normal(shape)
    layer = AvgPool2D(kernel, stride)
    np.testing.assert_allclose(layer(x), avgpool2d_naive(x, kernel, stride), rtol=1e-12)
    assert cr.gradcheck(layer, x) < 1e-6


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_gradcheck(training, rng):
    layer = BatchNorm2d(3)
    layer.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[:] = rng.standard_normal(3)
    layer.running_mean[:] = rng.standard_normal(3)
    layer.running_var[:] = rng.uniform(0.5, 2.0, 3)
    layer.train(training)  # (gradcheck lets eval-mode layers keep their caches)
    assert cr.gradcheck(layer, rng.standard_normal((3, 3, 4, 5)) * 2 + 1) < 1e-6


def test_batchnorm2d_statistics(rng):
    layer = BatchNorm2d(2, momentum=0.1, dtype=np.float64)
    x = rng.standard_normal((4, 2, 3, 5)) * [[[[3.0]], [[0.5]]]] + [[[[1.0]], [[-2.0]]]]
    y = layer(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)  # eps = 1e-5
    n = 4 * 3 * 5
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=(0, 2, 3)))
    unbiased = x.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * unbiased)
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    layer.eval()
    expected = (x - layer.running_mean[:, None, None]) / np.sqrt(
        layer.running_var[:, None, None] + 1e-5
    )
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)


def test_astype_converts_buffers():
    layer = BatchNorm2d(4).astype(np.float64)
    assert layer.running_var.dtype == np.float64 and layer.weight.data.dtype == np.float64
    conv = Conv2D(1, 2, 3).astype(np.float64)
    assert conv(np.zeros((1, 1, 3, 3), np.float32)).dtype == np.float64


@pytest.mark.parametrize(
    "layer",
    [
        Conv2D(3, 8, 3),
        Conv2D(1, 4, (3, 5), stride=(2, 1), padding=(1, 2), bias=False),
        MaxPool2D(2),
        MaxPool2D(3, stride=1),
        AvgPool2D((2, 3), stride=(2, 1)),
        BatchNorm2d(5, eps=1e-3, momentum=0.2),
    ],
)
def test_config_rebuilds_the_layer(layer):
    spec = describe(layer)
    rebuilt = module_from_config(spec)
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in layer.state_dict().items()
    }


# ---- bad input: a ValueError naming the layer and the shapes ---------------------------------
@pytest.mark.parametrize(
    "layer, shape, words",
    [
        (Conv2D(1, 4, 3), (5, 28, 28), ["Conv2D(1, 4", "(N, 1, H, W)", "(5, 28, 28)"]),
        (Conv2D(3, 4, 3), (2, 1, 8, 8), ["Conv2D(3, 4", "(N, 3, H, W)", "(2, 1, 8, 8)"]),
        (Conv2D(1, 4, 5), (2, 1, 3, 3), ["Conv2D(1, 4", "larger than the padded input 3×3"]),
        (Conv2D(1, 4, 5, padding=1), (2, 1, 2, 8), ["padded input 4×10", "padding 1"]),
        (MaxPool2D(2), (3, 28, 28), ["MaxPool2D(2", "(N, C, H, W)", "(3, 28, 28)"]),
        (AvgPool2D(4), (1, 1, 3, 8), ["AvgPool2D(4", "larger than the padded input 3×8"]),
        (BatchNorm2d(3), (2, 4, 5, 5), ["BatchNorm2d(3)", "(N, 3, H, W)", "(2, 4, 5, 5)"]),
        (BatchNorm2d(3), (2, 3, 5), ["BatchNorm2d(3)", "(2, 3, 5)"]),
        (BatchNorm2d(3), (1, 3, 1, 1), ["more than one value per channel"]),
    ],
)
def test_bad_input_raises_value_error(layer, shape, words):
    with pytest.raises(ValueError) as info:
        layer(np.zeros(shape, np.float32))
    for word in words:
        assert word in str(info.value)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(1, 2, 0)
    with pytest.raises(ValueError, match="stride"):
        MaxPool2D(2, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="padding"):
        Conv2D(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="in_channels"):
        Conv2D(0, 2, 3)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)


def test_backward_rejects_wrong_gradient_shape(rng):
    for layer in (Conv2D(1, 2, 3), MaxPool2D(2), AvgPool2D(2), BatchNorm2d(1)):
        layer(rng.standard_normal((2, 1, 4, 4)))
        with pytest.raises(ValueError, match=type(layer).__name__):
            layer.backward(np.ones((2, 5, 1, 1)))


# ---- trust: workspaces, eval caches, dtypes, odd shapes --------------------------------------
def test_conv2d_padded_buffer_keyed_on_full_geometry(rng):
    """A 6×4 input after a 4×6 one (same area) must not see the old image in its border."""
    layer = Conv2D(1, 2, 3, padding=1, rng=rng, dtype=np.float64)
    layer.bias.data[:] = [0.5, -0.25]
    layer(rng.standard_normal((2, 1, 4, 6)) * 100)
    y = layer(np.zeros((2, 1, 6, 4)))
    np.testing.assert_allclose(y, np.broadcast_to(layer.bias.data[None, :, None, None], y.shape))
    x = rng.standard_normal((2, 1, 6, 4))
    np.testing.assert_allclose(layer(x), conv2d_naive(x, layer.weight.data, layer.bias.data,
                                                      padding=1), rtol=1e-12, atol=1e-12)


def _held_bytes(model) -> int:
    """Bytes of arrays a model's layers hold beyond their parameters and buffers."""
    total = 0
    for layer in model.layers:
        buffers = {id(b) for _, b in layer.named_buffers()}
        for value in vars(layer).values():
            for a in value if isinstance(value, tuple) else (value,):
                if isinstance(a, np.ndarray) and id(a) not in buffers:
                    total += a.nbytes
    return total


def test_eval_forward_keeps_nothing_for_backward(rng):
    model = cr.models.cnn(seed=0)
    x = rng.random((64, 28, 28)).astype(np.float32)
    model(x)
    assert _held_bytes(model) > 10 * 2**20  # training: caches and workspaces
    model.eval()
    model(x)
    assert _held_bytes(model) < 1024
    with pytest.raises(RuntimeError, match=r"needs a forward pass in train mode.*model\.train"):
        model.backward(np.ones((64, 10), np.float32))
    bn = cr.models.cnn(seed=0, channels=(4, 8), batchnorm=True).eval()
    bn(x)
    assert _held_bytes(bn) < 1024


@pytest.mark.parametrize("make", [
    lambda: Conv2D(2, 3, 3, padding=1), lambda: MaxPool2D(2), lambda: BatchNorm2d(2),
])
def test_layers_compute_in_their_dtype(make, rng):
    layer = make()
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    y = layer(x)
    dx = layer.backward(rng.standard_normal(y.shape))  # float64 gradient in
    assert y.dtype == dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_float32_cnn_float64_grad_gives_float32_everywhere(rng):
    model = cr.models.cnn(seed=0, channels=(2, 3), hidden=8, batchnorm=True)
    model.append(cr.GELU()).append(cr.Sigmoid()).append(cr.Tanh()).append(cr.SmeLU())
    x = rng.random((4, 28, 28)).astype(np.float32)
    outs = []
    for layer in model:
        x = layer(x)
        outs.append(x)
    g = rng.standard_normal(x.shape)  # float64
    for layer in reversed(model.layers):
        g = layer.backward(g)
        assert g.dtype == np.float32, type(layer).__name__
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_pool_shapes_floor_like_torch():
    assert MaxPool2D(2)(np.zeros((1, 1, 7, 7), np.float32)).shape == (1, 1, 3, 3)
    assert MaxPool2D(2, ceil_mode=True)(np.zeros((1, 1, 7, 7), np.float32)).shape == (1, 1, 4, 4)
    # ceil_mode's last window must start inside the input: 5 = 2 + 3·1 → ⌈(5 − 2)/3⌉ + 1 = 2
    assert MaxPool2D(2, 3, ceil_mode=True)(np.zeros((1, 1, 5, 5))).shape == (1, 1, 2, 2)
    assert Conv2D(1, 2, 3, stride=2)(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 2, 13, 13)
    assert describe(MaxPool2D(2, ceil_mode=True))["ceil_mode"] is True
    assert module_from_config(describe(AvgPool2D(3, 2, ceil_mode=True))).ceil_mode


@pytest.mark.parametrize("layer, shape", [
    (Conv2D(1, 2, 3, stride=2), (2, 1, 8, 8)),
    (Conv2D(2, 2, (3, 2), stride=(2, 3), padding=1), (2, 2, 7, 8)),
    (MaxPool2D(2), (2, 2, 7, 7)),
    (MaxPool2D(2, ceil_mode=True), (2, 2, 7, 5)),
    (MaxPool2D(3, 2, ceil_mode=True), (2, 2, 8, 6)),
    (AvgPool2D(2), (2, 2, 7, 7)),
    (AvgPool2D(2, ceil_mode=True), (2, 2, 7, 5)),
    (AvgPool2D((3, 2), (2, 3), ceil_mode=True), (2, 2, 8, 6)),
])
def test_odd_shapes_gradcheck(layer, shape, rng):
    """Central differences of L = Σ R ⊙ layer(x) in float64 (absolute + relative tolerance:
    inputs no window reads have exactly zero gradient)."""
    layer = layer.astype(np.float64)
    x = rng.standard_normal(shape)
    R = rng.standard_normal(layer(x).shape)
    layer.zero_grad()
    layer(x)
    dx = layer.backward(R)
    analytic = [dx] + [p.grad.copy() for p in layer.parameters()]
    arrays = [x] + [p.data for p in layer.parameters()]
    h = 1e-6
    for a, expected in zip(arrays, analytic):
        numeric = np.zeros_like(a)
        for i in range(a.size):
            saved = a.flat[i]
            a.flat[i] = saved + h
            up = np.sum(R * layer(x))
            a.flat[i] = saved - h
            down = np.sum(R * layer(x))
            a.flat[i] = saved
            numeric.flat[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(expected, numeric, rtol=1e-6, atol=1e-8)


def test_integer_images_pool_as_floats():
    x = np.arange(16).reshape(1, 1, 4, 4)
    for layer in (AvgPool2D(2), MaxPool2D(2)):
        y = layer(x)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, layer(x.astype(np.float64)))


# ---- the stateless kernel pair: several forwards before their backwards ----------------------
def _fresh_pass(make, x, g):
    layer = make()
    y = layer(x)
    dx = layer.backward(g)
    return y, dx, [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv2D(3, 4, 3, padding=1, seed=2),
        lambda: Conv2D(3, 4, (2, 3), stride=2, seed=2),
        lambda: MaxPool2D(2),
        lambda: MaxPool2D(3, stride=2, ceil_mode=True),
        lambda: AvgPool2D(2),
    ],
)
def test_two_forwards_then_two_backwards_equal_fresh_layers(make, rng):
    """One layer applied twice before any backward (a cell reused in a graph): each cache
    owns its arrays, so no reused buffer is overwritten by the second call, and the two
    backwards add up to the two fresh layers' gradients, the same numbers exactly."""
    x1, x2 = rng.standard_normal((2, 4, 3, 9, 9)).astype(np.float32)
    layer = make()
    y1, cache1 = layer.forward_with_cache(x1)
    y1_kept = y1.copy()
    y2, cache2 = layer.forward_with_cache(x2)
    g1 = np.cos(np.arange(y1.size)).reshape(y1.shape)
    g2 = np.sin(np.arange(y2.size)).reshape(y2.shape)
    dx2 = layer.backward_from_cache(cache2, g2.astype(np.float32)).copy()
    dx1 = layer.backward_from_cache(cache1, g1.astype(np.float32))
    fy1, fdx1, fgrads1 = _fresh_pass(make, x1, g1.astype(np.float32))
    fy2, fdx2, fgrads2 = _fresh_pass(make, x2, g2.astype(np.float32))
    np.testing.assert_array_equal(y1, y1_kept)
    np.testing.assert_array_equal(y1, fy1)
    np.testing.assert_array_equal(y2, fy2)
    np.testing.assert_array_equal(dx1, fdx1)
    np.testing.assert_array_equal(dx2, fdx2)
    for p, a, b in zip(layer.parameters(), fgrads1, fgrads2):
        np.testing.assert_allclose(p.grad, a + b, rtol=1e-6, atol=1e-6)


def test_kernel_pair_in_eval_keeps_nothing_and_backward_asks_for_train_mode(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    for layer in (Conv2D(3, 2, 3, seed=0), MaxPool2D(2)):
        layer.eval()
        y, cache = layer.forward_with_cache(x)
        assert cache is None and y.shape[0] == 2
        with pytest.raises(RuntimeError, match=r"call model\.train\(\)"):
            layer.backward_from_cache(cache, np.ones_like(y))
        layer(x)
        with pytest.raises(RuntimeError, match=r"call model\.train\(\)"):
            layer.backward(np.ones_like(y))


def test_conv2d_reuses_column_buffers_only_when_no_cache_holds_them(rng):
    layer = Conv2D(2, 3, 3, padding=1, seed=0)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    _, cache1 = layer.forward_with_cache(x)
    _, cache2 = layer.forward_with_cache(x)
    assert cache1[0] is not cache2[0]  # the first cache is alive: a second buffer
    first = id(cache1[0])
    del cache1
    _, cache3 = layer.forward_with_cache(x)
    assert id(cache3[0]) == first  # now free: reused


@pytest.mark.parametrize("min_run", [1, 10**6])
@pytest.mark.parametrize("case", [(3, 4, 6, 7, 3, 1, 1), (2, 3, 7, 6, (2, 3), 2, (1, 0))])
def test_conv2d_both_column_layouts_are_the_same_convolution(case, min_run, rng, monkeypatch):
    """im2col's two stores (rows of windows, or offset by offset transposed, picked by how
    many values a window row holds) give the naive loops' numbers and pass gradcheck."""
    monkeypatch.setattr(conv_module, "MIN_RUN", min_run)
    c_in, c_out, h, w, k, s, p = case
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p, seed=3, dtype=np.float64)
    layer.bias.data[:] = np.arange(c_out) / 3
    x = rng.standard_normal((2, c_in, h, w))
    y, cache = layer.forward_with_cache(x)
    assert cache[0].flags.f_contiguous == (min_run > 1)  # transposed store: an F-order view
    naive = conv2d_naive(x, layer.weight.data, layer.bias.data, layer.stride, layer.padding)
    np.testing.assert_allclose(y, naive, rtol=1e-12, atol=1e-12)
    assert cr.gradcheck(layer, x) < 1e-6
