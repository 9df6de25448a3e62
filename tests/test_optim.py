"""Optimizers without torch: update rules by hand, BB on seed 001, state, dtypes, bad input."""

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import OPTIMIZERS, make_optimizer

# seed 001: solve Ax = b by minimizing F(x) = ‖Ax − b‖²; the answer is x = (1, 2, 3, 4)
A = np.array([[1, 3, 2, -1], [5, 2, 1, -2], [0, 1, 2, 4], [1, 1, -1, -3]], dtype=np.float64)
B = np.array([9, 4, 24, -12], dtype=np.float64)

ALL = {
    "sgd": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": dict(lr=0.01, weight_decay=0.01, amsgrad=True),
    "adamw": dict(lr=0.01),
    "rmsprop": dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01),
    "adagrad": dict(lr=0.1, lr_decay=0.01),
    "bb": dict(lr=0.01),
}


def _solve(opt_factory, max_steps):
    """Steps until F(x) = ‖Ax − b‖² < 1e-10 (or max_steps), and the final x."""
    p = cr.Parameter(np.zeros(4))
    opt = opt_factory([p])
    for k in range(max_steps):
        r = A @ p.data - B
        if r @ r < 1e-10:
            return k, p.data
        opt.zero_grad()
        p.grad += 2 * A.T @ r  # ∇F = 2Aᵀ(Ax − b)
        opt.step()
    return max_steps, p.data


@pytest.mark.parametrize("variant", [1, 2])
def test_barzilai_borwein_solves_seed_001_far_faster_than_gd(variant):
    bb_steps, x = _solve(lambda ps: cr.optim.BarzilaiBorwein(ps, lr=0.01, variant=variant), 500)
    gd_steps, x_gd = _solve(lambda ps: cr.optim.SGD(ps, lr=0.01), 5000)
    r = A @ x - B
    assert r @ r < 1e-10
    np.testing.assert_allclose(x, [1, 2, 3, 4], atol=1e-4)
    np.testing.assert_allclose(x_gd, [1, 2, 3, 4], atol=1e-4)
    assert bb_steps <= 60, bb_steps  # 38 (BB1) / 42 (BB2) steps
    assert gd_steps > 20 * bb_steps, (gd_steps, bb_steps)  # plain GD needs ~1500


def test_barzilai_borwein_step_sizes_by_hand():
    """First step uses lr; the second uses s·s/s·y from the first move."""
    p = cr.Parameter(np.array([3.0, -1.0]))
    H = np.diag([1.0, 4.0])  # F = ½θᵀHθ, ∇F = Hθ
    opt = cr.optim.BarzilaiBorwein([p], lr=0.1)
    x0 = p.data.copy()
    p.grad[...] = H @ p.data
    opt.step()
    assert opt.last_step_size == 0.1
    np.testing.assert_allclose(p.data, x0 - 0.1 * H @ x0)
    x1 = p.data.copy()
    p.grad[...] = H @ p.data
    opt.step()
    s, y = x1 - x0, H @ (x1 - x0)
    assert opt.last_step_size == pytest.approx(s @ s / (s @ y), rel=1e-14)
    np.testing.assert_allclose(p.data, x1 - (s @ s / (s @ y)) * H @ x1, rtol=1e-14)
    opt2 = cr.optim.BarzilaiBorwein([cr.Parameter(x0.copy())], lr=0.1, variant="bb2")
    for _ in range(2):
        opt2.params[0].grad[...] = H @ opt2.params[0].data
        opt2.step()
    assert opt2.last_step_size == pytest.approx(s @ y / (y @ y), rel=1e-14)


def test_barzilai_borwein_falls_back_to_lr_without_positive_curvature():
    p = cr.Parameter(np.array([1.0]))
    opt = cr.optim.BarzilaiBorwein([p], lr=0.5)
    sizes = []
    for g in (1.0, 2.0, 1.0):
        p.grad[...] = g
        opt.step()
        sizes.append(opt.last_step_size)
    # step 2: θ moved down (s < 0) while the gradient rose (y > 0): s·y < 0, so lr again;
    # step 3: s = −1, y = −1, a positive curvature of 1, so α = s·s/s·y = 1
    assert sizes == [0.5, 0.5, 1.0]


def test_sgd_by_hand():
    p = cr.Parameter(np.array([1.0, -2.0]))
    opt = cr.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad[...] = [0.2, 0.4]
    opt.step()  # g = (0.2 + 0.5, 0.4 − 1.0); b = g; θ −= 0.1 b
    np.testing.assert_allclose(p.data, [1.0 - 0.07, -2.0 + 0.06])
    np.testing.assert_allclose(p.grad, [0.2, 0.4])  # the gradient is not modified


def test_plain_sgd_is_theta_minus_lr_g_and_skips_an_untouched_gradient():
    """Plain SGD's fast path: θ − lr·g bit for bit; a gradient still marked zero (the
    parameter took no part in the backward) leaves θ as it was, and p.grad reads zero."""
    rng = np.random.default_rng(0)
    used = cr.Parameter(rng.standard_normal(5).astype(np.float32))
    unused = cr.Parameter(np.array([1.5, -0.0, np.inf], np.float32))
    before_used, before_unused = used.data.copy(), unused.data.copy()
    opt = cr.optim.SGD([used, unused], lr=0.1)
    opt.zero_grad()
    used.add_sum(rng.standard_normal((3, 5)).astype(np.float32))
    g = used.grad.copy()
    opt.step()
    assert used.data.tobytes() == (before_used - np.float32(0.1) * g).tobytes()
    assert unused.data.tobytes() == before_unused.tobytes()
    assert np.array_equal(unused.grad, np.zeros(3)) and used.grad.tobytes() == g.tobytes()


def test_adam_first_step_is_lr_times_sign():
    """After bias correction, Adam's first step is lr·g/(|g| + ε) ≈ lr·sign(g)."""
    p = cr.Parameter(np.array([0.0, 0.0, 0.0]))
    opt = cr.optim.Adam([p], lr=0.01)
    p.grad[...] = [3.0, -0.001, 1e-12]
    opt.step()
    np.testing.assert_allclose(p.data[:2], [-0.01, 0.01], rtol=1e-4)
    assert abs(p.data[2]) < 0.01 * 1e-12 / 1e-8 * 1.01  # tiny gradients: ε dominates


def test_adamw_decay_is_decoupled():
    p = cr.Parameter(np.array([2.0]))
    opt = cr.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad[...] = 0.0
    opt.step()  # zero gradient: only the decay acts, θ ← θ(1 − lr·λ)
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.05)])


def test_adagrad_by_hand():
    p = cr.Parameter(np.array([1.0]))
    opt = cr.optim.Adagrad([p], lr=0.1, initial_accumulator_value=1.0, eps=0.0)
    p.grad[...] = 2.0
    opt.step()  # s = 1 + 4; θ −= 0.1·2/√5
    np.testing.assert_allclose(p.data, [1 - 0.2 / math.sqrt(5)])


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_optimizer_keeps_float32_and_updates_in_place(name, rng):
    model = cr.Sequential(cr.Dense(4, 5, seed=0), cr.Tanh(), cr.Dense(5, 2, seed=1))
    datas = [p.data for p in model.parameters()]
    opt = make_optimizer(name, model.parameters(), **ALL[name])
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 2, 16)
    loss_fn = cr.SoftmaxCrossEntropy()
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        first = loss if first is None else first
        model.backward(loss_fn.backward())
        opt.step()
    assert loss < first  # it trains
    for p, d in zip(model.parameters(), datas):
        assert p.data is d and p.data.dtype == np.float32
    for s in opt.state_dict()["state"]:
        for k, v in s.items():
            assert isinstance(v, np.ndarray)
            assert v.dtype == (np.int64 if k == "step" else np.float32)


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_dict_round_trip_resumes_identically(name, rng):
    """Save after 10 steps (through JSON + npz-style arrays), resume: same as never stopping."""
    grads = [[rng.normal(size=s) for s in [(3, 2), (2,)]] for _ in range(20)]
    init = [rng.normal(size=(3, 2)), rng.normal(size=(2,))]

    def run(opt, params, steps):
        for g in steps:
            for p, gi in zip(params, g):
                p.grad[...] = gi
            opt.step()

    params = [cr.Parameter(w.copy()) for w in init]
    opt = make_optimizer(name, params, **ALL[name])
    run(opt, params, grads)

    params2 = [cr.Parameter(w.copy()) for w in init]
    opt2 = make_optimizer(name, params2, **ALL[name])
    run(opt2, params2, grads[:10])
    saved = opt2.state_dict()
    groups = json.loads(json.dumps(saved["param_groups"]))  # as the CLI stores them
    arrays = {f"optim.{i}.{k}": v for i, s in enumerate(saved["state"]) for k, v in s.items()}
    weights = [p.data.copy() for p in params2]

    params3 = [cr.Parameter(w.copy()) for w in weights]
    opt3 = make_optimizer(name, params3, **ALL[name])
    state = [{} for _ in params3]
    for key, v in arrays.items():
        _, i, slot = key.split(".")
        state[int(i)][slot] = v
    opt3.load_state_dict({"param_groups": groups, "state": state})
    run(opt3, params3, grads[10:])
    for p, q in zip(params, params3):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    p = cr.Parameter(np.ones(2))
    opt = cr.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad[...] = 1.0
    opt.step()
    saved = opt.state_dict()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], [1.0, 1.0])


def test_load_state_that_does_not_match_the_model():
    p = cr.Parameter(np.ones((2, 3)))
    opt = cr.optim.Adam([p])
    p.grad[...] = 1.0
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameters, this model has 1"):
        cr.optim.Adam([p]).load_state_dict({**saved, "state": saved["state"] * 2})
    with pytest.raises(ValueError, match="shape"):
        cr.optim.Adam([cr.Parameter(np.ones((3, 2)))]).load_state_dict(saved)
    with pytest.raises(ValueError, match="different optimizer"):
        cr.optim.SGD([p]).load_state_dict(saved)
    with pytest.raises(ValueError, match="different optimizer"):
        cr.optim.RMSprop([p]).load_state_dict(
            {"param_groups": [{"lr": 0.1}], "state": saved["state"]})
    with pytest.raises(ValueError, match="AdamW"):
        cr.optim.Adam([p]).load_state_dict(cr.optim.AdamW([p]).state_dict())
    with pytest.raises(ValueError, match="param_groups"):
        cr.optim.Adam([p]).load_state_dict({"state": []})


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), "fast"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bad_learning_rate(name, lr):
    with pytest.raises(ValueError, match="learning rate"):
        make_optimizer(name, [cr.Parameter(np.ones(2))], lr=lr)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9), (0.9,), 0.9,
                                   (float("nan"), 0.9)])
@pytest.mark.parametrize("cls", [cr.optim.Adam, cr.optim.AdamW])
def test_bad_betas(cls, betas):
    with pytest.raises(ValueError, match="betas"):
        cls([cr.Parameter(np.ones(2))], betas=betas)


@pytest.mark.parametrize("name, kwargs", [
    ("adam", dict(eps=-1e-8)), ("adam", dict(weight_decay=-0.1)),
    ("adamw", dict(weight_decay=-0.1)), ("rmsprop", dict(eps=-1.0)),
    ("rmsprop", dict(alpha=1.5)), ("rmsprop", dict(momentum=-0.9)),
    ("adagrad", dict(lr_decay=-1.0)), ("adagrad", dict(initial_accumulator_value=-1.0)),
    ("sgd", dict(momentum=-0.5)), ("sgd", dict(weight_decay=float("nan"))),
    ("sgd", dict(nesterov=True)), ("bb", dict(variant=3)), ("bb", dict(weight_decay=-1)),
])
def test_bad_hyperparameters(name, kwargs):
    with pytest.raises(ValueError):
        make_optimizer(name, [cr.Parameter(np.ones(2))], **kwargs)


def test_make_optimizer_names():
    p = [cr.Parameter(np.ones(2))]
    assert sorted(OPTIMIZERS) == ["adagrad", "adam", "adamw", "bb", "rmsprop", "sgd"]
    assert isinstance(make_optimizer("Adam", p), cr.optim.Adam)
    assert isinstance(make_optimizer("BarzilaiBorwein", p), cr.optim.BarzilaiBorwein)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs", p)
    with pytest.raises(ValueError, match="empty"):
        cr.optim.Adam([])
    with pytest.raises(TypeError, match="Parameters"):
        cr.optim.Adam([np.ones(2)])


def test_clip_grad_norm_by_hand():
    a, b = cr.Parameter(np.zeros(2)), cr.Parameter(np.zeros(1))
    a.grad[...] = [3.0, 0.0]
    b.grad[...] = [4.0]
    total = cr.optim.clip_grad_norm([a, b], max_norm=1.0)
    assert total == 5.0
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-6)
    assert cr.optim.clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-6)


def test_clip_grad_norm_float32_and_module():
    model = cr.Dense(3, 2, seed=0)
    model.weight.grad[...] = 10.0
    total = cr.optim.clip_grad_norm(model, 1.0)
    assert total == pytest.approx(math.sqrt(600), rel=1e-6)
    assert model.weight.grad.dtype == np.float32
    assert np.linalg.norm(model.weight.grad) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(FloatingPointError):
        model.weight.grad[0, 0] = np.nan
        cr.optim.clip_grad_norm(model, 1.0, error_if_nonfinite=True)


# ---- a saved state missing a slot is refused on load (issue 14) ---------------------------
@pytest.mark.parametrize(
    ("make", "drop"),
    [
        (lambda ps: cr.optim.SGD(ps, lr=0.1, momentum=0.9), "momentum_buffer"),
        (lambda ps: cr.optim.Adam(ps, lr=0.01), "exp_avg_sq"),
        (lambda ps: cr.optim.Adam(ps, lr=0.01, amsgrad=True), "max_exp_avg_sq"),
        (lambda ps: cr.optim.RMSprop(ps, lr=0.01, momentum=0.5), "momentum_buffer"),
    ],
    ids=["sgd-momentum", "adam", "adam-amsgrad", "rmsprop-momentum"],
)
def test_load_refuses_a_state_missing_a_slot(make, drop):
    model = cr.Sequential(cr.Dense(3, 2, seed=0), cr.Dense(2, 2, seed=1))
    opt = make(model.parameters())
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    state = opt.state_dict()
    del state["state"][1][drop]
    fresh = make(model.parameters())
    with pytest.raises(ValueError, match=f"parameter 1 lacks slot '{drop}'"):
        fresh.load_state_dict(state)
    empty = make(model.parameters())
    empty.load_state_dict(make(model.parameters()).state_dict())  # no step yet: nothing needed
    empty.step()
