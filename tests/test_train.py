"""The training loop: reproducibility, recording, stop rules, config checks, the stories."""

from __future__ import annotations

import numpy as np
import pytest

datasets = pytest.importorskip("nets.data", reason="nets.data not importable yet")
train_mod = pytest.importorskip("nets.train", reason="nets.train not importable")

from nets.registry import ConfigError  # noqa: E402

Data = datasets.Data


# --------------------------------------------------------------------------------------
# data, built here so these tests do not depend on the dataset registry's options
# --------------------------------------------------------------------------------------

_DIGITS = {}


def digits(n_train=300, n_val=150):
    """sklearn's 8x8 digits in [0, 1], a fixed shuffle, first ``n_train`` for training."""
    key = (n_train, n_val)
    if key not in _DIGITS:
        from sklearn.datasets import load_digits

        d = load_digits()
        idx = np.random.default_rng(0).permutation(len(d.target))
        X, y = d.data[idx] / 16.0, d.target[idx].astype(np.int64)
        _DIGITS[key] = Data(X[:n_train], y[:n_train], X[n_train:n_train + n_val],
                            y[n_train:n_train + n_val], "classification", 10, (1, 8, 8),
                            "digits")
    return _DIGITS[key]


def random_regression(seed=42):
    """Story 2's "nothing to learn" set: X 20x7, Y 20x2, both U[0, 1); val = train."""
    rng = np.random.default_rng(seed)
    X, Y = rng.random((20, 7)), rng.random((20, 2))
    return Data(X, Y, X, Y, "regression", None, None, "random_regression")


def cfg_classifier(**over):
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [16], "activation": "tanh", "output": "softmax"},
           "loss": "cross_entropy",
           "optimizer": {"name": "sgd", "lr": 0.5},
           "schedule": "constant",
           "train": {"epochs": 3}}
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def cfg_story2(**train):
    return {"seed": 0,
            "model": {"name": "mlp", "hidden": [3], "activation": "sigmoid",
                      "output": "identity", "init": "uniform01", "bias_init": "uniform01",
                      "bias_input": -1},
            "loss": "sse",
            "optimizer": {"name": "sgd", "lr": 1e-3},  # the story's "10e-4"
            "train": {"reduction": "sum", **train}}


def run(cfg, data=None):
    return train_mod.train(cfg, data=data if data is not None else digits())


# --------------------------------------------------------------------------------------
# reproducibility and dtypes
# --------------------------------------------------------------------------------------

def _noisy_cfg(seed, dtype="float64"):
    return cfg_classifier(seed=seed,
                          model={"hidden": [32], "dropout": 0.3},
                          optimizer={"name": "adam", "lr": 0.01},
                          train={"epochs": 3, "batch_size": 32, "dtype": dtype})


def test_same_seed_same_history_bit_for_bit():
    r1, a = run(_noisy_cfg(7))
    r2, b = run(_noisy_cfg(7))
    assert a.history == b.history  # exact float equality, list by list
    assert (a.outcome, a.steps, a.events) == (b.outcome, b.steps, b.events)
    w1, w2 = r1.model.get_weights(), r2.model.get_weights()
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)


def test_different_seed_different_history():
    _, a = run(_noisy_cfg(7))
    _, b = run(_noisy_cfg(8))
    assert a.history["train/loss"] != b.history["train/loss"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_run_and_params_keep_their_dtype(dtype):
    r, res = run(_noisy_cfg(1, dtype))
    assert res.outcome == "completed"
    for name, p in r.model.named_params():
        assert p.value.dtype == np.dtype(dtype), name
        assert p.grad.dtype == np.dtype(dtype), name
    for k, v in res.history.items():
        assert all(np.isfinite(v)), k
        assert all(type(x) is float for x in v), k
    assert res.history["train/loss"][-1] < res.history["train/loss"][0]


def test_float32_and_float64_agree_roughly():
    # Without dropout: the masks are drawn in the data's dtype, so with dropout the two
    # precisions drop different units and the runs are not comparable.
    cfgs = [_noisy_cfg(1, dt) for dt in ("float32", "float64")]
    for cfg in cfgs:
        cfg["model"] = {**cfg["model"], "dropout": 0.0}
    _, a = run(cfgs[0])
    _, b = run(cfgs[1])
    np.testing.assert_allclose(a.history["train/loss"], b.history["train/loss"], rtol=1e-5)


# --------------------------------------------------------------------------------------
# what gets recorded
# --------------------------------------------------------------------------------------

def test_epoch_zero_is_recorded_before_any_update():
    cfg = cfg_classifier(optimizer={"lr": 0.3}, train={"epochs": 4})
    data = digits()
    r, res = run(cfg, data)
    assert all(len(v) == 5 for v in res.history.values()), {k: len(v) for k, v in
                                                            res.history.items()}
    assert res.history["lr"][0] == 0.3
    assert res.epochs == 4 and res.steps == 4  # full batch: one step per epoch
    fresh = train_mod.build_run(cfg, data)  # same seed: the same initial weights
    t = fresh.trainer()
    assert res.history["train/loss"][0] == t.head.value(t.outputs(t.X), t.T, "mean")
    acc0 = float(np.mean(fresh.model.predict(data.X_val).argmax(1) == data.y_val))
    assert res.history["val/accuracy"][0] == acc0


def test_mini_batch_step_count_keeps_the_remainder():
    # 300 samples, batches of 64: 4 full batches and one of 44 per epoch.
    _, res = run(cfg_classifier(train={"epochs": 3, "batch_size": 64}))
    assert res.steps == 15


class CountingHook:
    def __init__(self):
        self.calls = {"on_train_start": 0, "after_backward": 0, "after_update": 0,
                      "on_epoch_end": 0, "on_train_end": 0}
        self.result = None
        self.grad_seen = []

    def on_train_start(self, trainer):
        self.calls["on_train_start"] += 1

    def after_backward(self, trainer):
        self.calls["after_backward"] += 1
        self.grad_seen.append(float(sum(np.vdot(p.grad, p.grad) for p in trainer.params)))

    def after_update(self, trainer):
        self.calls["after_update"] += 1

    def on_epoch_end(self, trainer, metrics):
        self.calls["on_epoch_end"] += 1
        metrics["health/probe"] = float(trainer.epoch)

    def on_train_end(self, trainer, result):
        self.calls["on_train_end"] += 1
        self.result = result


def test_callbacks_and_hooks():
    seen = []
    hook = CountingHook()
    _, res = train_mod.train(cfg_classifier(train={"epochs": 3, "batch_size": 100}),
                             callbacks=[lambda e, m: seen.append((e, m))], hooks=[hook],
                             data=digits())
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    for _, m in seen:
        assert isinstance(m, dict) and "lr" in m
        assert {"train/loss", "val/loss", "train/accuracy", "val/accuracy"} <= set(m)
        assert all(type(v) is float for v in m.values()), m
    assert res.steps == 9
    assert hook.calls == {"on_train_start": 1, "after_backward": 9, "after_update": 9,
                          "on_epoch_end": 4, "on_train_end": 1}
    assert hook.result is res
    assert all(g > 0 for g in hook.grad_seen)
    # Keys a hook adds at epoch end reach the history and the callbacks.
    assert res.history["health/probe"] == [0.0, 1.0, 2.0, 3.0]
    assert [m["health/probe"] for _, m in seen] == [0.0, 1.0, 2.0, 3.0]


# --------------------------------------------------------------------------------------
# stop rules
# --------------------------------------------------------------------------------------

def test_tol_stops_with_converged():
    _, res = run(cfg_story2(epochs=500, tol=1.0), random_regression())
    assert res.outcome == "converged", res.reason
    assert 0 < res.steps < 500
    assert "tol" in res.reason


def test_larger_tol_stops_earlier():
    steps = {}
    for tol in (10.0, 1.0):
        _, res = run(cfg_story2(epochs=500, tol=tol), random_regression())
        assert res.outcome == "converged", (tol, res.reason)
        steps[tol] = res.steps
    assert steps[10.0] < steps[1.0], steps


def test_tol_checks_the_squared_gradient_norm():
    hook = CountingHook()
    _, res = train_mod.train(cfg_story2(epochs=500, tol=1.0), hooks=[hook],
                             data=random_regression())
    # The last backward is the one whose gradient fell below tol; no update followed.
    assert hook.grad_seen[-1] < 1.0 <= min(hook.grad_seen[:-1])
    assert hook.calls["after_update"] == res.steps == hook.calls["after_backward"] - 1


def test_huge_learning_rate_diverges_without_exception():
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [8], "activation": "relu", "output": "identity"},
           "loss": "mse", "optimizer": {"name": "sgd", "lr": 1e6},
           "train": {"epochs": 100}}
    _, res = run(cfg, random_regression())
    assert res.outcome == "diverged", res.reason
    assert res.epochs < 100
    assert res.reason


def test_max_steps():
    # 5 steps per epoch (300 / 64 with remainder): step 7 is in epoch 2.
    _, res = run(cfg_classifier(train={"epochs": 10, "batch_size": 64, "max_steps": 7}))
    assert res.outcome == "max_steps"
    assert res.steps == 7 and res.epochs == 2
    assert len(res.history["train/loss"]) == 3


def test_early_stopping():
    patience = 2
    _, res = run(cfg_classifier(optimizer={"lr": 2.0},
                                train={"epochs": 30, "early_stopping": patience}))
    assert res.outcome == "early_stopped", res.reason
    assert res.epochs < 30
    val = res.history["val/loss"]
    assert len(val) == res.epochs + 1
    best_before = min(val[1:-patience])
    assert all(v >= best_before for v in val[-patience:]), val


# --------------------------------------------------------------------------------------
# reduction
# --------------------------------------------------------------------------------------

def test_one_sum_step_equals_one_mean_step_at_batch_times_lr():
    base = cfg_classifier(model={"output": "sigmoid"}, loss="mse")
    r_sum, res_sum = run({**base, "optimizer": {"name": "sgd", "lr": 0.01},
                          "train": {"epochs": 1, "batch_size": 100, "max_steps": 1,
                                    "reduction": "sum"}})
    r_mean, res_mean = run({**base, "optimizer": {"name": "sgd", "lr": 1.0},
                            "train": {"epochs": 1, "batch_size": 100, "max_steps": 1,
                                      "reduction": "mean"}})
    assert res_sum.steps == res_mean.steps == 1
    w_sum, w_mean = r_sum.model.get_weights(), r_mean.model.get_weights()
    w0 = train_mod.build_run({**base, "train": {"epochs": 1}}, digits()).model.get_weights()
    for k in w_sum:
        assert not np.array_equal(w_sum[k], w0[k]), f"{k} did not move"
        np.testing.assert_allclose(w_sum[k], w_mean[k], rtol=1e-10, atol=1e-14, err_msg=k)


# --------------------------------------------------------------------------------------
# combinations that cannot work
# --------------------------------------------------------------------------------------

COMBINATIONS = {
    "cross_entropy-with-sigmoid": (
        {"model": {"output": "sigmoid"}, "loss": "cross_entropy"}, "classification",
        "model.output", ["cross_entropy", "softmax"]),
    "bce-with-softmax": (
        {"model": {"output": "softmax"}, "loss": "bce"}, "classification",
        "model.output", ["bce", "sigmoid"]),
    "plus_minus_one-with-sigmoid": (
        {"model": {"output": "sigmoid"}, "loss": "mse", "target": "plus_minus_one"},
        "classification", "target", ["outside the range", "sigmoid"]),
    "raw-target-on-classification": (
        {"model": {"output": "sigmoid"}, "loss": "mse", "target": "raw"}, "classification",
        "target", ["classification", "one_hot"]),
    "cross_entropy-on-regression": (
        {"model": {"output": "softmax"}, "loss": "cross_entropy"}, "regression",
        "loss", ["cross_entropy", "regression"]),
    "one_hot-on-regression": (
        {"model": {"output": "identity"}, "loss": "mse", "target": "one_hot"}, "regression",
        "target", ["regression", "raw"]),
}


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_check_combination_rejects(case):
    over, task, key, words = COMBINATIONS[case]
    data = digits() if task == "classification" else random_regression()
    with pytest.raises(ConfigError) as e:
        train_mod.build_run(cfg_classifier(**over), data)
    msg = str(e.value)
    assert e.value.key == key, msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg  # one line


@pytest.mark.parametrize("train,key", [
    ({"epochs": -1}, "train.epochs"), ({"batch_size": 0}, "train.batch_size"),
    ({"reduction": "avg"}, "train.reduction"), ({"tol": 0}, "train.tol"),
    ({"dtype": "float16"}, "train.dtype"), ({"epoch": 3}, "train.epoch"),
])
def test_bad_train_settings(train, key):
    with pytest.raises(ConfigError) as e:
        train_mod.build_run(cfg_classifier(train=train), digits())
    assert e.value.key == key


# --------------------------------------------------------------------------------------
# the stories, small and fast: qualitative outcomes only
# --------------------------------------------------------------------------------------

def _story1(schedule):
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [30], "activation": "sigmoid",
                     "output": "sigmoid"},
           "loss": "mse",
           "target": "one_hot",
           "optimizer": {"name": "sgd", "lr": 0.01, "weight_decay": 1e-4},  # reg_lambda
           "schedule": schedule,
           "train": {"epochs": 100}}  # full batch
    return run(cfg, digits(1400, 397))[1]


def test_story1_bold_driver_beats_a_small_constant_rate():
    const = _story1("constant")
    bold = _story1({"name": "bold_driver", "increase": 1.1, "decrease": 0.5})
    # The symptom: the loss falls, the accuracy stays at chance.
    assert const.history["train/loss"][-1] < const.history["train/loss"][0]
    assert const.last("val/accuracy") < 0.2
    # The fix.
    assert bold.last("val/accuracy") > const.last("val/accuracy") + 0.2
    assert bold.last("lr") > 0.01
    assert any(e == "increase" for _, e in bold.events)


def test_story2_random_regression_reports_steps():
    _, res = run(cfg_story2(epochs=5000, tol=0.1), random_regression())
    assert res.outcome == "converged", res.reason
    assert 0 < res.steps < 5000
    assert str(res.steps) in res.reason
    # Nothing to learn: MAE stays near 0.25, SSE in the story's range.
    assert 0.15 < res.last("train/mae") < 0.35
    assert 2.0 < res.last("train/sse") < 6.0


def _story4(reduction):
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [64], "activation": "tanh", "output": "tanh"},
           "loss": "mse",
           "target": "plus_minus_one",
           "optimizer": {"name": "sgd", "lr": 0.1},
           "train": {"epochs": 3, "batch_size": 100, "reduction": reduction}}
    data = digits(1400, 397)
    r, res = run(cfg, data)
    pred = r.model.predict(data.X_val).argmax(axis=1)
    return res, np.bincount(pred, minlength=10).max() / len(pred)


def test_story4_summed_updates_collapse_to_one_class():
    res_sum, top_sum = _story4("sum")
    res_mean, top_mean = _story4("mean")
    assert top_sum >= 0.8, top_sum  # one digit predicted for (nearly) every image
    assert top_mean < 0.5, top_mean
    assert res_mean.last("val/accuracy") > res_sum.last("val/accuracy") + 0.2
