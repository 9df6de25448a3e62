"""The BLAS thread policy: sizes read off the layers, one thread for small products."""

from __future__ import annotations

import chainrule as cr
from chainrule.models import cnn, mlp
from chainrule.threads import PARALLEL_MIN_MACS, free_cores, layer_macs, threads_for


def test_layer_macs_are_batch_times_weight_size_times_output_positions():
    assert layer_macs(mlp(seed=0), (28, 28), 64) == [64 * 784 * 128, 64 * 128 * 10]
    conv1, conv2, dense1, dense2 = layer_macs(cnn(seed=0), (28, 28), 128)
    assert conv1 == 128 * (32 * 1 * 9) * 28 * 28
    assert conv2 == 128 * (64 * 32 * 9) * 14 * 14
    assert (dense1, dense2) == (128 * 3136 * 128, 128 * 128 * 10)


def test_small_products_get_one_thread_big_ones_all_spare_cores():
    assert threads_for(mlp(seed=0), (28, 28), 64, max_threads=2) == 1
    assert threads_for(cnn(seed=0), (28, 28), 128, max_threads=2) == 2
    assert threads_for(cnn(seed=0), (28, 28), 128, max_threads=1) == 1
    assert 64 * 784 * 128 < PARALLEL_MIN_MACS


def test_the_model_is_left_as_it_was():
    model = cr.Sequential(cr.Dense(4, 3, seed=0))
    before = model.state_dict()["0.weight"].copy()
    threads_for(model, (4,), 8, max_threads=2)
    assert model.training and (model.state_dict()["0.weight"] == before).all()
    model.eval()
    threads_for(model, (4,), 8, max_threads=2)
    assert not model.training


def test_free_cores_is_at_least_one():
    assert free_cores() >= 1
