"""Optimizers and schedules against torch.optim: same start, same gradients, same path.

Every case runs 50 steps in float64 from the same initial weights with the same gradient
stream g_t = R_t + c·θ_t (R_t fixed random, c·θ a pull towards 0 so the weights feed back
into the gradients), and asks for the same parameters (and learning rates) to 1e-10.
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import lr_scheduler as sched

torch = pytest.importorskip("torch")

STEPS = 50
RTOL = 1e-10
SHAPES = [(5, 3), (3,), (2, 2, 2)]


def _relerr(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _run_pair(ours_factory, torch_factory, sched_pair=None, metric=None, steps=STEPS, seed=0):
    """Drive our optimizer and torch's side by side; returns (ours, theirs, lrs, tlrs)."""
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s) for s in SHAPES]
    noise = [[rng.normal(size=s) for s in SHAPES] for _ in range(steps)]
    params = [cr.Parameter(w.copy()) for w in init]
    tparams = [torch.tensor(w.copy(), dtype=torch.float64, requires_grad=True) for w in init]
    opt, topt = ours_factory(params), torch_factory(tparams)
    s = ts = None
    if sched_pair is not None:
        s, ts = sched_pair[0](opt), sched_pair[1](topt)
    lrs, tlrs = [], []
    for t in range(steps):
        for p, tp, r in zip(params, tparams, noise[t]):
            p.grad[...] = r + 0.3 * p.data
            tp.grad = torch.tensor(r) + 0.3 * tp.detach()
        opt.step()
        topt.step()
        if s is not None:
            if metric is not None:
                s.step(metric(t))
                ts.step(metric(t))
            else:
                s.step()
                ts.step()
        lrs.append(opt.param_groups[0]["lr"])
        tlrs.append(topt.param_groups[0]["lr"])
    ours = np.concatenate([p.data.ravel() for p in params])
    theirs = np.concatenate([tp.detach().numpy().ravel() for tp in tparams])
    return ours, theirs, np.array(lrs), np.array(tlrs)


OPTIMIZER_CASES = {
    "sgd": ("SGD", dict(lr=0.05)),
    "sgd-momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "sgd-dampening": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    "sgd-nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd-wd": ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1)),
    "sgd-nesterov-wd": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-alpha": ("RMSprop", dict(lr=0.02, alpha=0.9, eps=1e-6)),
    "rmsprop-momentum": ("RMSprop", dict(lr=0.01, momentum=0.9)),
    "rmsprop-centered": ("RMSprop", dict(lr=0.01, centered=True)),
    "rmsprop-all": ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    "adagrad": ("Adagrad", dict(lr=0.1)),
    "adagrad-decay": ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
    "adagrad-init": ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam-betas": ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    "adam-wd": ("Adam", dict(lr=0.01, weight_decay=0.1)),
    "adam-amsgrad": ("Adam", dict(lr=0.01, amsgrad=True)),
    "adam-amsgrad-wd": ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw-wd": ("AdamW", dict(lr=0.01, weight_decay=0.3)),
    "adamw-amsgrad": ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_matches_torch(case):
    name, kwargs = OPTIMIZER_CASES[case]
    ours, theirs, _, _ = _run_pair(
        lambda ps: getattr(cr.optim, name)(ps, **kwargs),
        lambda ps: getattr(torch.optim, name)(ps, **kwargs),
    )
    assert not np.allclose(ours, _run_pair(  # the weights really moved
        lambda ps: cr.optim.SGD(ps, lr=0.0), lambda ps: torch.optim.SGD(ps, lr=0.0))[0])
    assert _relerr(ours, theirs) < RTOL, case
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-13)


def _plateau_metric(t):
    # falls, then plateaus with wiggles, then falls again: several cuts and a cooldown
    return max(1.0 - 0.05 * t, 0.5) + 0.01 * np.sin(t) + (0.2 if 30 <= t < 35 else 0.0)


SCHEDULE_CASES = {
    "step": (lambda o: sched.StepLR(o, step_size=7, gamma=0.5),
             lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), None),
    "step-default": (lambda o: sched.StepLR(o, 10),
                     lambda o: torch.optim.lr_scheduler.StepLR(o, 10), None),
    "exponential": (lambda o: sched.ExponentialLR(o, gamma=0.93),
                    lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.93), None),
    "cosine": (lambda o: sched.CosineAnnealingLR(o, T_max=50),
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50), None),
    "cosine-restart": (  # past T_max the cosine turns back up; includes the 0/0 branch
        lambda o: sched.CosineAnnealingLR(o, T_max=12, eta_min=1e-3),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=1e-3), None),
    "warmup": (lambda o: sched.LinearWarmup(o, start_factor=0.1, total_iters=10),
               lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
               None),
    "linear-decay": (
        lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=40),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.05,
                                                    total_iters=40), None),
    "linear-default": (lambda o: sched.LinearLR(o),
                       lambda o: torch.optim.lr_scheduler.LinearLR(o), None),
    "plateau": (lambda o: sched.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1),
                lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=2,
                                                                     cooldown=1),
                _plateau_metric),
    "plateau-abs-min-lr": (
        lambda o: sched.ReduceLROnPlateau(o, factor=0.3, patience=1, threshold=0.01,
                                          threshold_mode="abs", min_lr=0.004),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, factor=0.3, patience=1, threshold=0.01, threshold_mode="abs", min_lr=0.004),
        _plateau_metric),
    "plateau-max": (
        lambda o: sched.ReduceLROnPlateau(o, mode="max", factor=0.5, patience=3),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode="max", factor=0.5,
                                                             patience=3),
        lambda t: -_plateau_metric(t)),
}


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("case", sorted(SCHEDULE_CASES))
def test_schedule_matches_torch(case, optimizer):
    ours_sched, torch_sched, metric = SCHEDULE_CASES[case]
    kwargs = dict(lr=0.05, momentum=0.9) if optimizer == "SGD" else dict(lr=0.05)
    ours, theirs, lrs, tlrs = _run_pair(
        lambda ps: getattr(cr.optim, optimizer)(ps, **kwargs),
        lambda ps: getattr(torch.optim, optimizer)(ps, **kwargs),
        sched_pair=(ours_sched, torch_sched),
        metric=metric,
    )
    assert len(set(lrs.round(15))) > 2, "the schedule should actually change the rate"
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12, atol=0)
    assert _relerr(ours, theirs) < RTOL
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-13)


def test_get_last_lr_matches_torch():
    p = [cr.Parameter(np.zeros(3))]
    tp = [torch.zeros(3, requires_grad=True)]
    ours = sched.CosineAnnealingLR(cr.optim.SGD(p, lr=0.1), T_max=5)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.SGD(tp, lr=0.1), T_max=5)
    for _ in range(12):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-14)
        ours.optimizer.step()
        theirs.optimizer.step()
        ours.step()
        theirs.step()


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=s) for s in SHAPES]
    params = [cr.Parameter(np.zeros(s)) for s in SHAPES]
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    total = cr.optim.clip_grad_norm(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=0)


# ---- regularization layers ----------------------------------------------------------------
def _t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_matches_torch_with_its_mask(p):
    """Let torch draw the mask, read it off its output, and replay it through ours."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 2.0, size=(6, 7))  # nonzero everywhere, so zeros mark drops
    g = rng.normal(size=x.shape)
    torch.manual_seed(0)
    xt = _t(x, grad=True)
    yt = torch.nn.functional.dropout(xt, p=p, training=True)
    yt.backward(_t(g))
    mask = yt.detach().numpy() != 0
    layer = cr.Dropout(p)
    y = layer.forward(x, mask=mask)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-15, atol=0)
    layer.eval()
    np.testing.assert_array_equal(layer(x), torch.nn.functional.dropout(_t(x), p, False))


def _bn_pair(num_features, affine=True, momentum=0.1, eps=1e-5, seed=0):
    rng = np.random.default_rng(seed)
    ours = cr.BatchNorm1d(num_features, eps=eps, momentum=momentum, affine=affine,
                          dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(num_features, eps=eps, momentum=momentum,
                                  affine=affine).double()
    if affine:
        w, b = rng.normal(size=num_features), rng.normal(size=num_features)
        ours.weight.data[...] = w
        ours.bias.data[...] = b
        with torch.no_grad():
            theirs.weight.copy_(_t(w))
            theirs.bias.copy_(_t(b))
    return ours, theirs


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(a, b.detach().numpy() if hasattr(b, "detach") else b,
                               rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 4), (6, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm1d_train_and_eval_match_torch(shape, affine):
    ours, theirs = _bn_pair(4, affine=affine, momentum=0.2)
    rng = np.random.default_rng(7)
    for _ in range(3):  # a few training batches move the running statistics
        x = rng.normal(2.0, 3.0, size=shape)
        g = rng.normal(size=shape)
        ours.train()
        theirs.train()
        ours.zero_grad()
        xt = _t(x, grad=True)
        yt = theirs(xt)
        yt.backward(_t(g))
        _close(ours.forward(x), yt)
        _close(ours.backward(g), xt.grad)
        if affine:
            _close(ours.weight.grad, theirs.weight.grad)
            _close(ours.bias.grad, theirs.bias.grad)
            theirs.weight.grad = theirs.bias.grad = None
        _close(ours.running_mean, theirs.running_mean)
        _close(ours.running_var, theirs.running_var)
    # eval mode: running statistics, and gradients through the fixed affine map
    ours.eval()
    ours.grad_in_eval = True  # eval mode keeps nothing for backward unless asked
    theirs.eval()
    ours.zero_grad()
    x, g = rng.normal(size=shape), rng.normal(size=shape)
    xt = _t(x, grad=True)
    yt = theirs(xt)
    yt.backward(_t(g))
    _close(ours.forward(x), yt)
    _close(ours.backward(g), xt.grad)
    if affine:
        _close(ours.weight.grad, theirs.weight.grad)
        _close(ours.bias.grad, theirs.bias.grad)
    state = ours.state_dict()
    for name, value in theirs.state_dict().items():
        if name in state:
            _close(state[name], value)
