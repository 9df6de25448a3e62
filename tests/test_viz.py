"""Plots: each writes a real PNG atomically; the helpers behind them compute the right thing."""

import numpy as np
import pytest
from PIL import Image

import chainrule as cr
from chainrule import viz
from chainrule.models import cnn


def history(epochs=4, per_epoch=10, seed=0):
    rng = np.random.default_rng(seed)
    loss = list(np.linspace(2.0, 0.2, epochs))
    return cr.History(
        loss=loss, accuracy=list(np.linspace(0.5, 0.95, epochs)),
        val_loss=[v * 1.1 for v in loss], val_accuracy=list(np.linspace(0.6, 0.94, epochs)),
        lr=[0.1] * epochs, time=[0.1] * epochs,
        batch_loss=list(np.repeat(loss, per_epoch) * rng.uniform(0.5, 1.5, epochs * per_epoch)),
    )


def is_png(path, min_size=(100, 100)):
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]
    return True


def mlp():
    return cr.Sequential(cr.Flatten(), cr.Dense(784, 20, seed=0), cr.ReLU(),
                         cr.Dense(20, 10, seed=1))


@pytest.mark.parametrize("epochs", [1, 5])
def test_loss_and_accuracy_curves(tmp_path, epochs):
    h = history(epochs)
    assert is_png(viz.plot_loss(h, tmp_path / "loss.png", batches_per_epoch=10))
    assert is_png(viz.plot_accuracy(h.to_dict(), tmp_path / "acc.png", test_accuracy=0.93))


def test_loss_curve_of_a_short_run_without_validation(tmp_path):
    h = cr.History(loss=[1.0], accuracy=[0.5], batch_loss=[2.3, 1.5, 1.0])
    assert is_png(viz.plot_loss(h, tmp_path / "loss.png"))


def test_confusion_matrix_counts():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = viz.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_plot(tmp_path, rng):
    y = rng.integers(0, 10, 500)
    pred = np.where(rng.random(500) < 0.9, y, rng.integers(0, 10, 500))
    cm = viz.confusion_matrix(y, pred, 10)
    assert is_png(viz.plot_confusion(cm, tmp_path / "confusion.png"), (300, 300))
    names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Boot"]
    assert is_png(viz.plot_confusion(cm, tmp_path / "named.png", names))


def test_weights_of_an_mlp_are_28x28_tiles(tmp_path):
    model = mlp()
    assert viz.first_layer_weights(model).shape == (20, 784)
    assert is_png(viz.plot_weights(model, tmp_path / "weights.png"))


def test_weights_of_a_cnn_are_its_kernels(tmp_path):
    model = cnn(seed=0, channels=(4, 8), hidden=16, dropout=0.0)
    assert viz.first_layer_weights(model).shape == (4, 1, 3, 3)
    assert viz.has_conv(model) and not viz.has_conv(mlp())
    assert is_png(viz.plot_weights(model, tmp_path / "weights.png"), (50, 50))


def test_weights_without_square_inputs_is_a_matrix(tmp_path):
    model = cr.Sequential(cr.Dense(3, 5, seed=0))
    assert is_png(viz.plot_weights(model, tmp_path / "w.png"), (50, 50))


def test_worst_mistakes_are_most_confident_first():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01]])
    labels = np.array([0, 0, 1, 1])
    assert viz.worst_mistakes(probs, labels).tolist() == [3, 1, 2]  # by p(true class)


def test_mistakes_plot(tmp_path, rng):
    x = rng.random((50, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 50)
    probs = rng.dirichlet(np.ones(10), 50)
    assert is_png(viz.plot_mistakes(x, y, probs, tmp_path / "mistakes.png"))
    perfect = np.eye(10)[y]
    assert is_png(viz.plot_mistakes(x, y, perfect, tmp_path / "none.png"))


def test_feature_maps_of_a_cnn(tmp_path, rng):
    model = cnn(seed=0, channels=(4, 8), hidden=16, dropout=0.25)
    image = rng.random((28, 28), dtype=np.float32)
    maps = viz.feature_maps(model, image)
    shapes = [m.shape for _, m in maps]
    assert shapes == [(4, 28, 28), (4, 14, 14), (8, 14, 14), (8, 7, 7)]
    # the CNN pools before its ReLU: the full-size maps are the conv's, the pooled ones ReLU's
    assert "Conv2D" in maps[0][0] and "ReLU" in maps[1][0]
    assert model.training  # the mode is restored
    assert is_png(viz.plot_feature_maps(model, image, tmp_path / "feature-maps.png"))
    with pytest.raises(ValueError, match="no convolution"):
        viz.plot_feature_maps(mlp(), image, tmp_path / "no.png")


def test_failed_render_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "loss.png"
    target.write_bytes(b"old")

    def broken(self, *args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(viz.Figure, "savefig", broken)
    with pytest.raises(RuntimeError):
        viz.plot_loss(history(), target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]
