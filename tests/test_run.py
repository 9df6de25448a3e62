"""`chainrule train` runs in-process: resuming is exact, a new --epochs follows a fresh schedule."""

import numpy as np
import pytest

from chainrule import run as runs
from chainrule.cli.config import TrainConfig
from chainrule.cli.run import Run


def config(epochs):
    return TrainConfig(epochs=epochs, hidden=(16,), batch_size=256, val_size=50, augment=True,
                       seed=5)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = Run.start(config(4), tmp_path_factory.mktemp("full"))
    run.train(progress=False)
    return run


def weights(run):
    return run.model.state_dict()


def test_resume_after_an_interruption_equals_the_uninterrupted_run(
        tmp_path, monkeypatch, uninterrupted):
    run = Run.start(config(4), tmp_path)
    real = Run.checkpoint

    def checkpoint_then_stop(self, metrics=None):
        path = real(self, metrics)
        if self.epochs_done == 2:
            raise KeyboardInterrupt  # as Ctrl-C after the second epoch's checkpoint
        return path

    monkeypatch.setattr(Run, "checkpoint", checkpoint_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run.train(progress=False)
    monkeypatch.setattr(Run, "checkpoint", real)
    resumed = Run.resume(tmp_path)
    assert resumed.epochs_done == 2 and resumed.model.training
    resumed.train(progress=False)
    assert resumed.history.lr == uninterrupted.history.lr
    full = weights(uninterrupted)
    for name, value in weights(resumed).items():
        np.testing.assert_array_equal(value, full[name], err_msg=name)  # docs/cli.md: exactly


def test_resume_with_new_epochs_takes_the_rates_of_a_fresh_run_of_that_length(
        tmp_path, uninterrupted):
    short = Run.start(config(2), tmp_path)
    short.train(progress=False)
    longer = Run.resume(tmp_path, epochs=4)
    assert longer.scheduler.T_max == 4
    longer.train(progress=False)
    fresh = uninterrupted.history.lr  # lr in effect during each epoch of a fresh 4-epoch run
    np.testing.assert_allclose(longer.history.lr[2:], fresh[2:], rtol=1e-12)
    assert longer.history.lr[:2] == short.history.lr[:2]


def test_replay_schedule_matches_a_fresh_schedule():
    cfg = config(7)
    model = runs.build_model(cfg)
    fresh_opt = runs.optimizer_for(cfg, model)
    fresh = runs.schedule_for(cfg, fresh_opt, 1000)
    for _ in range(3):
        fresh.step()
    opt = runs.optimizer_for(cfg, model)
    opt.lr = 1e-4  # whatever rate the old schedule had left
    replayed = runs.replay_schedule(cfg, opt, 1000, 3)
    assert replayed.last_epoch == fresh.last_epoch
    assert opt.lr == fresh_opt.lr
