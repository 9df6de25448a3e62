"""Learning-rate schedules without torch: closed forms, saving, fit() integration, errors."""

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import lr_scheduler as sched


def _opt(lr=0.1):
    return cr.optim.SGD([cr.Parameter(np.zeros(2))], lr=lr, momentum=0.9)


def _lrs(s, steps):
    out = [s.get_last_lr()[0]]
    for _ in range(steps):
        s.optimizer.step()
        s.step()
        out.append(s.get_last_lr()[0])
    return np.array(out)


def test_step_lr_closed_form():
    lrs = _lrs(sched.StepLR(_opt(), step_size=3, gamma=0.5), 10)
    np.testing.assert_allclose(lrs, [0.1 * 0.5 ** (t // 3) for t in range(11)], rtol=1e-14)


def test_exponential_lr_closed_form():
    lrs = _lrs(sched.ExponentialLR(_opt(), gamma=0.9), 20)
    np.testing.assert_allclose(lrs, [0.1 * 0.9**t for t in range(21)], rtol=1e-13)


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_closed_form_including_restart(eta_min):
    T = 8
    lrs = _lrs(sched.CosineAnnealingLR(_opt(), T_max=T, eta_min=eta_min), 3 * T)
    closed = [eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * t / T)) / 2
              for t in range(3 * T + 1)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-10, atol=1e-15)
    assert lrs[T] == pytest.approx(eta_min, abs=1e-15)


def test_linear_warmup_closed_form_and_alias():
    assert sched.LinearLR is sched.LinearWarmup
    lrs = _lrs(sched.LinearWarmup(_opt(), start_factor=0.1, total_iters=4), 8)
    closed = [0.1 * (0.1 + 0.9 * min(t, 4) / 4) for t in range(9)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-13)
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.1)


def test_reduce_on_plateau_rules():
    opt = _opt()
    s = sched.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    assert s.needs_metric
    lrs = []
    for metric in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        s.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # two bad epochs (> patience 1) cut; the cooldown epoch is ignored; then two more cut;
    # the rate stops at min_lr
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    for _ in range(5):
        s.step(1.0)
    assert opt.param_groups[0]["lr"] == 0.02


@pytest.mark.parametrize("make", [
    lambda o: sched.StepLR(o, 3, 0.5),
    lambda o: sched.ExponentialLR(o, 0.9),
    lambda o: sched.CosineAnnealingLR(o, 10, 0.001),
    lambda o: sched.LinearWarmup(o, 0.2, 1.0, 6),
    lambda o: sched.ReduceLROnPlateau(o, patience=1, factor=0.5),
])
def test_state_dict_round_trip_resumes_identically(make):
    metrics = [1.0, 0.8, 0.8, 0.81, 0.79, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7]

    def advance(s, ms):
        for m in ms:
            s.optimizer.step()
            s.step(m) if s.needs_metric else s.step()

    full = make(_opt())
    advance(full, metrics)

    first = make(_opt())
    advance(first, metrics[:5])
    saved_opt = first.optimizer.state_dict()
    saved = json.loads(json.dumps(first.state_dict()))  # schedules save as plain JSON

    opt = _opt()
    resumed = make(opt)  # constructing may change lr (warm-up); loading puts it back
    resumed.load_state_dict(saved)
    opt.load_state_dict(saved_opt)
    assert resumed.get_last_lr() == first.get_last_lr() == [opt.param_groups[0]["lr"]]
    advance(resumed, metrics[5:])
    assert resumed.get_last_lr() == full.get_last_lr()
    assert opt.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]


def test_load_state_from_another_schedule_fails():
    with pytest.raises(ValueError, match="different schedule"):
        sched.StepLR(_opt(), 3).load_state_dict(sched.CosineAnnealingLR(_opt(), 5).state_dict())


@pytest.mark.parametrize("make, match", [
    (lambda o: sched.StepLR(o, 0), "step_size"),
    (lambda o: sched.StepLR(o, 2.5), "step_size"),
    (lambda o: sched.StepLR(o, 2, gamma=-1), "gamma"),
    (lambda o: sched.ExponentialLR(o, float("nan")), "gamma"),
    (lambda o: sched.CosineAnnealingLR(o, 0), "T_max"),
    (lambda o: sched.CosineAnnealingLR(o, 5, eta_min=-1), "eta_min"),
    (lambda o: sched.LinearWarmup(o, start_factor=0), "start_factor"),
    (lambda o: sched.LinearWarmup(o, end_factor=1.5), "end_factor"),
    (lambda o: sched.LinearWarmup(o, total_iters=0), "total_iters"),
    (lambda o: sched.ReduceLROnPlateau(o, mode="up"), "mode"),
    (lambda o: sched.ReduceLROnPlateau(o, factor=1.0), "factor"),
    (lambda o: sched.ReduceLROnPlateau(o, threshold_mode="pct"), "threshold_mode"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(_opt())


def test_schedules_need_an_optimizer():
    with pytest.raises(TypeError, match="Optimizer"):
        sched.StepLR(object(), 3)
    with pytest.raises(TypeError, match="Optimizer"):
        sched.ReduceLROnPlateau(object())


def test_make_scheduler_names():
    opt = _opt()
    assert isinstance(sched.make_scheduler("cosine", opt, T_max=5), sched.CosineAnnealingLR)
    assert isinstance(sched.make_scheduler("StepLR", opt, step_size=5), sched.StepLR)
    assert isinstance(sched.make_scheduler("LinearLR", opt), sched.LinearWarmup)
    with pytest.raises(ValueError, match="unknown schedule"):
        sched.make_scheduler("cyclic", opt)


def _toy(rng):
    x = rng.normal(size=(64, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_fit_steps_the_schedule_per_epoch(rng):
    x, y = _toy(rng)
    model = cr.Sequential(cr.Dense(3, 2, seed=0))
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    s = sched.StepLR(opt, step_size=2, gamma=0.1)
    h = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=5, batch_size=16,
               scheduler=s, progress=False)
    # History.lr is the rate each epoch trained with; the step after epoch 2 cuts it
    np.testing.assert_allclose(h.lr, [0.01, 0.01, 0.001, 0.001, 1e-4], rtol=1e-12)


def test_fit_passes_the_metric_to_plateau(rng):
    x, y = _toy(rng)
    model = cr.Sequential(cr.Dense(3, 2, seed=0))
    opt = cr.optim.SGD(model.parameters(), lr=1e-3)
    # improving means halving the best loss: after the first epoch, every epoch is a plateau
    s = sched.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=0.5)
    h = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=4, batch_size=64,
               validation=(x, y), scheduler=s, progress=False)
    assert s.last_epoch == 4 and s.best == h.val_loss[0]
    np.testing.assert_allclose(h.lr, [1e-3, 1e-3, 5e-4, 2.5e-4])
    assert opt.param_groups[0]["lr"] == pytest.approx(1.25e-4)
