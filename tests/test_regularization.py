"""Dropout, BatchNorm1d and EarlyStopping: behaviour, gradients, saving, bad input."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.module import describe, module_from_config


# ---- Dropout ------------------------------------------------------------------------------
def test_dropout_fixed_mask_forward_backward(rng):
    x = rng.normal(size=(4, 5))
    mask = rng.random(x.shape) > 0.3
    layer = cr.Dropout(0.3)
    y = layer.forward(x, mask=mask)
    np.testing.assert_allclose(y, np.where(mask, x / 0.7, 0.0))
    g = rng.normal(size=x.shape)
    np.testing.assert_allclose(layer.backward(g), np.where(mask, g / 0.7, 0.0))


def test_dropout_gradcheck_with_fixed_mask(rng):
    layer = cr.Dropout(0.4)
    layer.mask = rng.random((3, 6)) > 0.4
    # dropout is linear in x, so a large step is exact and keeps round-off (≈ 1e-16/h)
    # on the dropped entries, whose true gradient is 0, far below gradcheck's atol
    assert cr.gradcheck(layer, rng.normal(size=(3, 6)), h=1e-2) < 1e-6


def test_dropout_in_model_gradcheck(rng):
    drop = cr.Dropout(0.5)
    model = cr.Sequential(cr.Dense(4, 6, seed=0), cr.Tanh(), drop, cr.Dense(6, 2, seed=1))
    drop.mask = rng.random((5, 6)) > 0.5
    assert cr.gradcheck(model, rng.normal(size=(5, 4))) < 1e-6


def test_dropout_statistics_and_eval_identity():
    layer = cr.Dropout(0.25, seed=0)
    x = np.ones((400, 500), dtype=np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.005)
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # inverted: E[y] = x
    layer.eval()
    assert layer(x) is x
    assert layer.backward(x) is x


def test_dropout_seed_is_reproducible_and_p_edges():
    x = np.ones((10, 10))
    np.testing.assert_array_equal(cr.Dropout(0.5, seed=3)(x), cr.Dropout(0.5, seed=3)(x))
    assert not np.array_equal(cr.Dropout(0.5, seed=3)(x), cr.Dropout(0.5, seed=4)(x))
    np.testing.assert_array_equal(cr.Dropout(0.0)(x), x)
    np.testing.assert_array_equal(cr.Dropout(1.0)(x), 0 * x)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match="Dropout"):
        cr.Dropout(p)


def test_dropout_bad_mask_shape():
    with pytest.raises(ValueError, match="mask"):
        cr.Dropout(0.5).forward(np.ones((2, 3)), mask=np.ones((3, 2), bool))


def test_dropout_config_rebuilds():
    rebuilt = module_from_config(describe(cr.Dropout(0.2)))
    assert isinstance(rebuilt, cr.Dropout) and rebuilt.p == 0.2


# ---- BatchNorm1d --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_gradcheck_train(rng, shape, affine):
    layer = cr.BatchNorm1d(4, affine=affine)
    if affine:
        layer.weight.data[...] = rng.normal(size=4)
        layer.bias.data[...] = rng.normal(size=4)
    assert cr.gradcheck(layer, rng.normal(1.0, 2.0, size=shape)) < 1e-6


def test_batchnorm_gradcheck_eval(rng):
    layer = cr.BatchNorm1d(3, dtype=np.float64)
    layer.running_mean[...] = rng.normal(size=3)
    layer.running_var[...] = rng.uniform(0.5, 2, size=3)
    layer.weight.data[...] = rng.normal(size=3)
    layer.eval()
    assert cr.gradcheck(layer, rng.normal(size=(4, 3))) < 1e-6


def test_batchnorm_in_mlp_gradcheck(rng):
    # no bias before BatchNorm: the batch mean removes it, its gradient is exactly 0
    model = cr.Sequential(cr.Dense(5, 8, bias=False, seed=0), cr.BatchNorm1d(8), cr.ReLU(),
                          cr.Dense(8, 3, seed=1))
    assert cr.gradcheck(model, rng.normal(size=(7, 5))) < 1e-6


def test_batchnorm_normalizes_and_tracks_running_stats(rng):
    layer = cr.BatchNorm1d(3, momentum=0.5)
    x = rng.normal(5.0, 3.0, size=(200, 3)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and layer.running_mean.dtype == np.float32
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(layer.running_mean, 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer.running_var, 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-5)
    before = layer.running_mean.copy()
    layer.eval()
    layer(x)
    np.testing.assert_array_equal(layer.running_mean, before)  # eval leaves them alone


def test_batchnorm_state_dict_and_config_round_trip(rng):
    model = cr.Sequential(cr.Dense(3, 4, seed=0), cr.BatchNorm1d(4, momentum=0.3), cr.Dropout(0.1))
    model(rng.normal(size=(8, 3)))
    state = model.state_dict()
    assert {"1.weight", "1.bias", "1.running_mean", "1.running_var"} <= set(state)
    rebuilt = module_from_config(describe(model))
    assert rebuilt[1].momentum == 0.3 and rebuilt[2].p == 0.1
    rebuilt.load_state_dict(state)
    model.eval()
    rebuilt.eval()
    x = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(model(x), rebuilt(x))


def test_batchnorm_astype_float64():
    layer = cr.BatchNorm1d(2).astype(np.float64)
    assert layer.running_var.dtype == np.float64 and layer.weight.data.dtype == np.float64
    assert layer(np.ones((3, 2), np.float32)).dtype == np.float64


def test_batchnorm_input_grad_false_still_fills_param_grads(rng):
    layer = cr.BatchNorm1d(3, dtype=np.float64)
    layer(rng.normal(size=(4, 3)))
    assert layer.backward(np.ones((4, 3)), input_grad=False) is None
    np.testing.assert_allclose(layer.bias.grad, 4.0)


def test_batchnorm_bad_input():
    with pytest.raises(ValueError, match="num_features"):
        cr.BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        cr.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cr.BatchNorm1d(3)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="more than one value"):
        cr.BatchNorm1d(3)(np.ones((1, 3)))
    layer = cr.BatchNorm1d(3).eval()
    assert layer(np.ones((1, 3))).shape == (1, 3)  # a single example is fine in eval


# ---- EarlyStopping ------------------------------------------------------------------------
def _history(values):
    h = cr.History()
    h.val_loss.extend(values)
    h.loss.extend(values)
    return h


def test_early_stopping_patience_and_min_delta():
    stop = cr.EarlyStopping(patience=2, min_delta=0.01, restore_best=False)
    h = cr.History()
    decisions = []
    for epoch, v in enumerate([1.0, 0.8, 0.795, 0.79, 0.7, 0.75, 0.76], start=1):
        h.val_loss.append(v)
        h.loss.append(v)
        decisions.append(stop(epoch, h))
    # 0.795 and 0.79 are not 0.01 better than 0.8: the second of them stops training
    assert decisions == [False, False, False, True, False, False, True]
    assert stop.best == 0.7 and stop.best_epoch == 5


def test_early_stopping_restores_best_weights_in_fit(rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = cr.Sequential(cr.Dense(4, 16, seed=0), cr.ReLU(), cr.Dense(16, 2, seed=1))
    stopper = cr.EarlyStopping(patience=2, model=model)
    # a far too large learning rate: validation loss gets worse after the first epochs
    opt = cr.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    history = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=40, batch_size=8,
                     validation=(x, y), on_epoch_end=stopper, progress=False)
    assert stopper.stopped_epoch == history.epochs < 40
    best = int(np.argmin(history.val_loss))
    assert stopper.best_epoch == best + 1
    loss, _ = cr.evaluate(model, cr.SoftmaxCrossEntropy(), x, y)
    assert loss == pytest.approx(history.val_loss[best], rel=1e-5)


def test_early_stopping_bad_input():
    with pytest.raises(ValueError, match="patience"):
        cr.EarlyStopping(-1)
    with pytest.raises(ValueError, match="min_delta"):
        cr.EarlyStopping(2, min_delta=-0.1)


def test_dropout_and_batchnorm_compute_in_their_dtype(rng):
    x = rng.normal(size=(6, 4)).astype(np.float32)
    for layer in (cr.Dropout(0.5, seed=0), cr.BatchNorm1d(4)):
        y = layer(x)
        dx = layer.backward(rng.normal(size=y.shape))  # float64 gradient
        assert y.dtype == dx.dtype == np.float32
        assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    dropout = cr.Dropout(0.5).eval()
    dropout(x)
    assert dropout.backward(rng.normal(size=x.shape)).dtype == np.float32  # identity


def test_batchnorm_eval_keeps_nothing_unless_asked(rng):
    layer = cr.BatchNorm1d(4, dtype=np.float64)
    layer(rng.normal(size=(8, 4)))
    layer.eval()
    layer(rng.normal(size=(8, 4)))
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="train mode"):
        layer.backward(np.ones((8, 4)))
    layer.grad_in_eval = True
    layer(rng.normal(size=(8, 4)))
    assert layer.backward(np.ones((8, 4))).shape == (8, 4)
