"""Optimizer updates recomputed by hand (formulas from the class docstrings)."""

from __future__ import annotations

import numpy as np
import pytest

from nets.layers import Param
from nets.optimizers import OPTIMIZERS
from nets.registry import ConfigError

W0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]])
B0 = np.array([0.1, -0.2, 0.3])
GRADS_W = [np.array([[0.1, -0.2, 0.3], [0.4, 0.0, -0.5]]),
           np.array([[-0.3, 0.1, 0.2], [0.05, -0.4, 0.6]]),
           np.array([[0.2, 0.2, -0.1], [-0.2, 0.3, 0.1]])]
GRADS_B = [np.array([0.5, -0.5, 0.1]), np.array([-0.1, 0.2, 0.3]), np.array([0.0, 0.4, -0.2])]
LRS = [0.1, 0.05, 0.2]  # the schedule hands a different lr to every update

# Non-default hyperparameters so a swapped or ignored constant shows.
SPECS = {
    "sgd": {"name": "sgd", "lr": 0.1},
    "momentum": {"name": "momentum", "lr": 0.1, "momentum": 0.8},
    "nesterov": {"name": "nesterov", "lr": 0.1, "momentum": 0.7},
    "rmsprop": {"name": "rmsprop", "lr": 0.1, "rho": 0.7, "eps": 1e-3},
    "adam": {"name": "adam", "lr": 0.1, "beta1": 0.8, "beta2": 0.9, "eps": 1e-3},
}


# ---- references, written from the docstrings, one parameter array at a time ----------

def ref_sgd(h, W, grads, lrs):
    for g, lr in zip(grads, lrs):
        W = W - lr * g
    return W


def ref_momentum(h, W, grads, lrs):
    v = np.zeros_like(W)
    for g, lr in zip(grads, lrs):
        v = h["momentum"] * v - lr * g
        W = W + v
    return W


def ref_nesterov(h, W, grads, lrs):
    v = np.zeros_like(W)
    mu = h["momentum"]
    for g, lr in zip(grads, lrs):
        v = mu * v - lr * g
        W = W + mu * v - lr * g
    return W


def ref_rmsprop(h, W, grads, lrs):
    s = np.zeros_like(W)
    for g, lr in zip(grads, lrs):
        s = h["rho"] * s + (1 - h["rho"]) * g ** 2
        W = W - lr * g / (np.sqrt(s) + h["eps"])
    return W


def ref_adam(h, W, grads, lrs):
    m, v = np.zeros_like(W), np.zeros_like(W)
    b1, b2 = h["beta1"], h["beta2"]
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        W = W - lr * m_hat / (np.sqrt(v_hat) + h["eps"])
    return W


REFERENCES = {"sgd": ref_sgd, "momentum": ref_momentum, "nesterov": ref_nesterov,
              "rmsprop": ref_rmsprop, "adam": ref_adam}


def _params(dtype=np.float64):
    return [Param("W", W0.astype(dtype), True), Param("b", B0.astype(dtype), False)]


def _run(opt, params, n=3, use_step=True):
    for i in range(n):
        params[0].grad[...] = GRADS_W[i]
        params[1].grad[...] = GRADS_B[i]
        if use_step:
            opt.step(params, LRS[i])
        else:
            opt.update(params, LRS[i])
    return params


def test_every_registered_optimizer_has_a_reference():
    missing = sorted(set(OPTIMIZERS.names()) - set(REFERENCES))
    assert not missing, f"optimizers without a hand-computed reference: {missing}"


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_three_updates_match_hand_computation(name):
    spec = SPECS.get(name, {"name": name})
    opt = OPTIMIZERS.build(spec)
    h = opt.hparams()
    W, b = _run(opt, _params(), use_step=False)
    np.testing.assert_allclose(W.value, REFERENCES[name](h, W0, GRADS_W, LRS), rtol=1e-12,
                               atol=1e-15, err_msg=f"{name}: W")
    np.testing.assert_allclose(b.value, REFERENCES[name](h, B0, GRADS_B, LRS), rtol=1e-12,
                               atol=1e-15, err_msg=f"{name}: b")


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_weight_decay_applies_to_decayed_params_only(name):
    wd = 0.1
    opt = OPTIMIZERS.build({**SPECS.get(name, {"name": name}), "weight_decay": wd})
    h = opt.hparams()
    W, b = _run(opt, _params())
    # Coupled L2: the gradient seen by the rule is g + wd * W at the current W.
    # Replay the reference from W0, extending the effective-gradient list one step at a
    # time (each step's gradient depends on the weights the previous step produced).
    Wr, eff = W0.copy(), []
    for i in range(3):
        eff.append(GRADS_W[i] + wd * Wr)
        Wr = REFERENCES[name](h, W0, eff, LRS[:i + 1])
    np.testing.assert_allclose(W.value, Wr, rtol=1e-12, atol=1e-15, err_msg=f"{name}: W")
    # The bias (decay=False) moves exactly as without weight decay.
    np.testing.assert_allclose(b.value, REFERENCES[name](h, B0, GRADS_B, LRS), rtol=1e-12,
                               atol=1e-15, err_msg=f"{name}: bias must not be decayed")


def test_regularize_adds_wd_times_w_to_decayed_grads():
    opt = OPTIMIZERS.build({"name": "sgd", "lr": 0.1, "weight_decay": 0.25})
    W, b = _params()
    W.grad[...], b.grad[...] = GRADS_W[0], GRADS_B[0]
    opt.regularize([W, b])
    np.testing.assert_allclose(W.grad, GRADS_W[0] + 0.25 * W0)
    np.testing.assert_array_equal(b.grad, GRADS_B[0])


def test_penalty_value():
    W, b = _params()
    opt = OPTIMIZERS.build({"name": "sgd", "lr": 0.1, "weight_decay": 0.3})
    assert opt.penalty([W, b]) == pytest.approx(0.5 * 0.3 * np.sum(W0 ** 2), rel=1e-12)
    assert OPTIMIZERS.build({"name": "sgd", "lr": 0.1}).penalty([W, b]) == 0.0


def test_step_without_lr_uses_the_starting_rate():
    opt = OPTIMIZERS.build({"name": "sgd", "lr": 0.3})
    W, b = _params()
    W.grad[...] = GRADS_W[0]
    opt.step([W, b])
    np.testing.assert_allclose(W.value, W0 - 0.3 * GRADS_W[0])


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_state_dict_round_trip(name):
    spec = SPECS.get(name, {"name": name})
    a = OPTIMIZERS.build(spec)
    pa = _run(a, _params(), n=2)
    saved = a.state_dict()
    snapshot = {k: [x.copy() for x in v] if isinstance(v, list) else v for k, v in saved.items()}
    # A restored optimizer continues exactly as the original.
    b = OPTIMIZERS.build(spec)
    b.load_state_dict(saved)
    pb = [Param(p.name, p.value.copy(), p.decay) for p in pa]
    for p in (pa, pb):
        p[0].grad[...], p[1].grad[...] = GRADS_W[2], GRADS_B[2]
    a.step(pa, LRS[2])
    b.step(pb, LRS[2])
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x.value, y.value, err_msg=f"{name}: {x.name}")
    # The saved dict is a copy: neither optimizer's later steps changed it.
    for k, v in saved.items():
        if isinstance(v, list):
            for x, y in zip(v, snapshot[k]):
                np.testing.assert_array_equal(x, y, err_msg=f"{name}: state {k} aliased")
        else:
            assert v == snapshot[k]


def test_load_state_dict_rolls_back():
    opt = OPTIMIZERS.build(SPECS["adam"])
    params = _run(opt, _params(), n=1)
    saved_values = [p.value.copy() for p in params]
    saved = opt.state_dict()
    params[0].grad[...], params[1].grad[...] = GRADS_W[1], GRADS_B[1]
    opt.step(params, LRS[1])
    opt.load_state_dict(saved)
    for p, v in zip(params, saved_values):
        p.value[...] = v
    params[0].grad[...], params[1].grad[...] = GRADS_W[1], GRADS_B[1]
    opt.step(params, LRS[1])
    ref = _run(OPTIMIZERS.build(SPECS["adam"]), _params(), n=2)
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p.value, r.value)


BAD = [
    ({"name": "sgd", "lr": 0}, "optimizer.lr"),
    ({"name": "sgd", "lr": -0.1}, "optimizer.lr"),
    ({"name": "adam", "weight_decay": -1e-3}, "optimizer.weight_decay"),
    ({"name": "momentum", "momentum": 1.0}, "optimizer.momentum"),
    ({"name": "momentum", "momentum": -0.1}, "optimizer.momentum"),
    ({"name": "nesterov", "momentum": 1.5}, "optimizer.momentum"),
    ({"name": "rmsprop", "rho": 1.0}, "optimizer.rho"),
    ({"name": "rmsprop", "eps": 0.0}, "optimizer.eps"),
    ({"name": "adam", "beta1": 1.0}, "optimizer.beta1"),
    ({"name": "adam", "beta2": 1.0}, "optimizer.beta2"),
    ({"name": "adam", "eps": -1e-8}, "optimizer.eps"),
    ({"name": "adam", "betta1": 0.9}, "optimizer.betta1"),
    ({"name": "adamm"}, "optimizer.name"),
]


@pytest.mark.parametrize("spec,key", BAD, ids=[k + "=" + str(s) for s, k in BAD])
def test_bad_hyperparameters_raise_config_error_naming_the_key(spec, key):
    with pytest.raises(ConfigError) as e:
        OPTIMIZERS.build(spec, key="optimizer")
    assert e.value.key == key
    assert key in str(e.value)


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ConfigError) as e:
        OPTIMIZERS.build("adamm", key="optimizer")
    for name in OPTIMIZERS.names():
        assert name in str(e.value)
    assert "did you mean 'adam'" in str(e.value)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_hparams_round_trip(name):
    for spec in ({"name": name}, {**SPECS.get(name, {"name": name}), "weight_decay": 0.01}):
        opt = OPTIMIZERS.build(spec)
        h = opt.hparams()
        assert h["name"] == name
        assert {k: v for k, v in spec.items()} == {k: h[k] for k in spec}
        again = OPTIMIZERS.build(h)
        assert type(again) is type(opt) and again.hparams() == h
        assert "state" not in h  # state is checkpointed, never a hyperparameter


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_float32_params_stay_float32(name):
    opt = OPTIMIZERS.build({**SPECS.get(name, {"name": name}), "weight_decay": 0.01})
    params = _run(opt, _params(np.float32))
    for p in params:
        assert p.value.dtype == np.float32 and p.grad.dtype == np.float32, (name, p.name)
    for k, v in opt.state.items():
        if isinstance(v, list):
            assert all(a.dtype == np.float32 for a in v), (name, k)
    ref = _run(OPTIMIZERS.build({**SPECS.get(name, {"name": name}), "weight_decay": 0.01}),
               _params())
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.value, r.value, rtol=1e-4, atol=1e-5)
