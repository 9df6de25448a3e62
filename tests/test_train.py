import numpy as np
import pytest

import chainrule as cr


def blobs(rng, n=400, classes=10, dim=2):
    centers = rng.normal(scale=4.0, size=(classes, dim))
    labels = rng.integers(0, classes, n)
    return (centers[labels] + rng.normal(scale=0.3, size=(n, dim))).astype(np.float32), labels


def test_two_sixteen_ten_network_loss_falls_tenfold(rng):
    x, y = blobs(rng)
    model = cr.Sequential(cr.Dense(2, 16, seed=0), cr.Tanh(), cr.Dense(16, 10, seed=1))
    loss_fn = cr.SoftmaxCrossEntropy()
    initial, _ = cr.evaluate(model, loss_fn, x, y)
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = cr.fit(model, loss_fn, opt, x, y, epochs=60, batch_size=32, progress=False)
    final, acc = cr.evaluate(model, loss_fn, x, y)
    assert final < initial / 10
    assert acc > 0.95
    assert len(history.loss) == 60 and history.loss[-1] < history.loss[0]


def test_api_training_step_by_hand(rng):
    """The five-line step from API.md works as written."""
    x, y = blobs(rng, n=128)
    model = cr.Sequential(cr.Dense(2, 16, seed=0), cr.ReLU(), cr.Dense(16, 10, seed=1))
    loss_fn = cr.SoftmaxCrossEntropy()
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        for xb, yb in cr.data.batches(x, y, batch_size=64, rng=np.random.default_rng(0)):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()
            losses.append(loss)
    assert losses[-1] < losses[0] / 3


def test_batches_are_the_shuffled_rows_in_the_inputs_layout(rng):
    """Each batch is x[idx], y[idx] for the epoch's permutation: same values, dtype and
    strides, for a C-contiguous array (gathered by take) and a transposed view alike."""
    x = rng.standard_normal((50, 3, 4)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    for data in (x, x.transpose(0, 2, 1)):
        order = np.random.default_rng(7).permutation(50)
        got = list(cr.data.batches(data, y, batch_size=16, rng=np.random.default_rng(7)))
        assert len(got) == 4
        for k, (xb, yb) in enumerate(got):
            idx = order[16 * k : 16 * (k + 1)]
            expected = data[idx]
            assert xb.tobytes() == expected.tobytes() and xb.strides == expected.strides
            assert xb.dtype == expected.dtype and np.array_equal(yb, y[idx])


@pytest.mark.parametrize("batch_size,expected_steps", [(1, 50), (None, 1), (0, 1), (16, 4)])
def test_stochastic_full_and_mini_batch(batch_size, expected_steps, rng):
    x, y = blobs(rng, n=50)
    model = cr.Sequential(cr.Dense(2, 10, seed=0))
    history = cr.fit(
        model,
        cr.SoftmaxCrossEntropy(),
        cr.optim.SGD(model.parameters(), lr=0.01),
        x,
        y,
        epochs=2,
        batch_size=batch_size,
        progress=False,
    )
    assert len(history.batch_loss) == 2 * expected_steps


def test_max_batches_stops_early_and_same_seed_is_bit_identical(rng):
    x, y = blobs(rng)

    def run():
        model = cr.Sequential(cr.Dense(2, 16, seed=3), cr.ReLU(), cr.Dense(16, 10, seed=4))
        opt = cr.optim.SGD(model.parameters(), lr=0.03)
        h = cr.fit(
            model,
            cr.SoftmaxCrossEntropy(),
            opt,
            x,
            y,
            epochs=5,
            batch_size=8,
            max_batches=7,
            seed=11,
            progress=False,
        )
        return model, h

    (m1, h1), (m2, _h2) = run(), run()
    assert len(h1.batch_loss) == 7 and h1.epochs == 1
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_validation_and_history_fields(rng):
    x, y = blobs(rng)
    model = cr.Sequential(cr.Dense(2, 10, seed=0))
    h = cr.fit(
        model,
        cr.SoftmaxCrossEntropy(),
        cr.optim.SGD(model.parameters(), lr=0.1),
        x,
        y,
        epochs=3,
        validation=(x[:50], y[:50]),
        progress=True,
    )
    assert len(h.val_accuracy) == len(h.val_loss) == len(h.lr) == len(h.time) == 3
    assert cr.History.from_dict(h.to_dict()) == h


# numpy's overflow warnings are on the way to the divergence this test provokes on purpose
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_divergence_raises_with_advice(rng):
    x, y = blobs(rng)
    model = cr.Sequential(cr.Dense(2, 16, seed=0), cr.ReLU(), cr.Dense(16, 10, seed=1))
    opt = cr.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(cr.TrainingDiverged, match=r"epoch 1, batch \d+.*smaller learning rate"):
        cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x * 1e3, y, epochs=3, progress=False)


def test_sgd_rejects_bad_learning_rates():
    params = cr.Dense(2, 2).parameters()
    for lr in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate"):
            cr.optim.SGD(params, lr=lr)


# ---- empty data, early-stopping names (issue 14) ------------------------------------------
def test_fit_on_empty_data_is_a_clear_value_error():
    model = cr.Sequential(cr.Dense(2, 3))
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    empty = np.zeros((0, 2), np.float32)
    with pytest.raises(ValueError, match="0 examples"):
        cr.fit(model, cr.SoftmaxCrossEntropy(), opt, empty, np.zeros(0, np.int64), progress=False)
    with pytest.raises(ValueError, match="4 examples but y has 3"):
        cr.fit(model, cr.SoftmaxCrossEntropy(), opt, np.zeros((4, 2), np.float32),
               np.zeros(3, np.int64), progress=False)


def test_predict_on_zero_rows_keeps_the_output_shape():
    mlp = cr.Sequential(cr.Dense(4, 3), cr.ReLU(), cr.Dense(3, 2))
    assert cr.predict(mlp, np.zeros((0, 4), np.float32)).shape == (0, 2)
    cnn = cr.models.cnn(seed=0)
    assert cr.predict(cnn, np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 10)
    assert cnn.training  # predict restores the mode it found


def test_early_stopping_rejects_an_unknown_monitor():
    with pytest.raises(ValueError, match="unknown monitor 'val_los'.*'val_loss'"):
        cr.EarlyStopping(patience=2, monitor="val_los")


def test_early_stopping_on_accuracy_waits_for_it_to_grow():
    stop = cr.EarlyStopping(patience=2, monitor="val_accuracy", restore_best=False)
    history = cr.History()
    stopped = []
    for epoch, acc in enumerate([0.5, 0.6, 0.7, 0.65, 0.68], start=1):
        history.loss.append(1.0)
        history.val_accuracy.append(acc)
        stopped.append(stop(epoch, history))
    assert stopped == [False, False, False, False, True]
    assert stop.best == 0.7 and stop.best_epoch == 3
