"""Health metrics, verdict rules and the pre-training gradient check.

Three layers of tests: every rule on a constructed history that has its pathology (and
silence on a healthy one); the monitor's keys on tiny real runs; and the stories end to
end, each yielding the verdict its symptom calls for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nets import diagnostics as dx
from nets.data import DATASETS, Data
from nets.diagnostics import (RULES, VERDICTS, DiagnosticsSettings, GradientCheckError,
                              HealthMonitor, RunInfo, Verdict, diagnose, explain,
                              gradcheck_model, gradcheck_trainer, summary)
from nets.layers import ActivationLayer, Dense
from nets.registry import ConfigError
from nets.train import build_run, make_rngs, train

# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

_CACHE: dict = {}


def digits() -> Data:
    """The registry's digits (1437 train / 360 val), loaded once."""
    if "digits" not in _CACHE:
        _CACHE["digits"] = DATASETS.build("digits").load(make_rngs(0)["data"])
    return _CACHE["digits"]


def small_digits(n_train=200, n_val=100) -> Data:
    d = digits()
    return Data(d.X_train[:n_train], d.y_train[:n_train], d.X_val[:n_val], d.y_val[:n_val],
                "classification", 10, (1, 8, 8), "digits")


def names(verdicts) -> list[str]:
    return [v.name for v in verdicts]


def run_and_diagnose(cfg, data=None, settings=None):
    mon = HealthMonitor(settings)
    r, res = train(cfg, hooks=[mon], data=data)
    return r, res, mon, diagnose(res.history, RunInfo.from_run(r, res), settings)


# --------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------

def test_default_settings_are_valid_and_round_trip():
    s = DiagnosticsSettings()
    assert DiagnosticsSettings.from_config(s.to_dict()) == s
    assert DiagnosticsSettings.from_config(None) == s


@pytest.mark.parametrize("key,value", [
    ("probe_size", 0), ("probe_size", 2.5), ("enabled", "yes"), ("collapse_share", 1.5),
    ("saturation_eps", 0.5), ("gradcheck_threshold", -1.0), ("explode_factor", 1.0),
    ("lr_too_low_ratio", float("nan")), ("overfit_window", 0)])
def test_bad_settings_name_their_key(key, value):
    with pytest.raises(ConfigError) as e:
        DiagnosticsSettings.from_config({key: value})
    assert e.value.key == f"diagnostics.{key}"
    assert "\n" not in str(e.value)


def test_the_config_file_lists_every_setting_at_its_default():
    """conf/config.yaml documents each threshold; it must not drift from the dataclass."""
    from pathlib import Path

    import yaml

    conf = yaml.safe_load((Path(__file__).parents[1] / "conf" / "config.yaml").read_text())
    assert list(conf["diagnostics"]) == list(DiagnosticsSettings().to_dict())
    assert DiagnosticsSettings.from_config(conf["diagnostics"]) == DiagnosticsSettings()


def test_unknown_setting_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        DiagnosticsSettings.from_config({"probe": 10})
    assert e.value.key == "diagnostics.probe" and "probe_size" in str(e.value)


# --------------------------------------------------------------------------------------
# rules on constructed histories
# --------------------------------------------------------------------------------------

E = 12  # epochs after epoch 0


def _curve(a, b, n=E + 1, shape=1.0):
    """``n`` values from ``a`` to ``b`` (geometric-ish when ``shape`` > 1)."""
    t = np.linspace(0, 1, n) ** (1 / shape)
    return list(a + (b - a) * t)


def healthy_history() -> dict[str, list[float]]:
    """What a good digits run records: loss down, accuracy up, health sane."""
    h = {"train/loss": _curve(2.3, 0.05, shape=3), "val/loss": _curve(2.3, 0.09, shape=3),
         "train/accuracy": _curve(0.1, 0.99, shape=3), "val/accuracy": _curve(0.1, 0.97, shape=3),
         "lr": [0.1] * (E + 1),
         "health/grad_norm/dense1": _curve(0.5, 0.2), "health/grad_norm/dense2": _curve(0.3, 0.15),
         "health/weight_norm/dense1": _curve(8, 11), "health/weight_norm/dense2": _curve(4, 9),
         "health/update_ratio/dense1": [0.0] + _curve(0.2, 0.01, E),
         "health/update_ratio/dense2": [0.0] + _curve(0.3, 0.01, E),
         "health/dead/activation1": [0.03] * (E + 1),
         "health/pred/top_class": [3.0] * (E + 1),
         "health/pred/top_class_share": [0.33] + [0.12] * E,
         "health/pred/entropy": [0.66] + [0.99] * E,
         "health/pred/true_class_score": _curve(0.1, 0.94, shape=3),
         "health/pred/margin": _curve(-0.04, 0.9, shape=3),
         "health/pred/changed": [0.0, 0.7] + [0.02] * (E - 1)}
    for e in dx.SCHEDULE_EVENTS:
        h[f"health/schedule/{e}"] = [0.0] * (E + 1)
    h["health/baseline/chance_accuracy"] = [0.1] * (E + 1)
    h["health/baseline/majority_accuracy"] = [0.103] * (E + 1)
    return h


CLS = RunInfo(task="classification", chance_accuracy=0.1, majority_accuracy=0.103,
              config={"train.reduction": "sum", "train.batch_size": 100})


def _collapse():
    h = healthy_history()
    h["health/pred/top_class_share"] = [0.23] + [1.0] * E
    h["health/pred/top_class"] = [5.0] + [0.0] * E
    h["val/accuracy"] = [0.106] + [0.098] * E
    return h, CLS


def _stalled(h):
    """Accuracy stops at 55%: the units' state matters (at 97% it would not)."""
    h["val/accuracy"] = _curve(0.1, 0.55, shape=3)
    return h


def _saturated():
    h = _stalled(healthy_history())
    h["health/saturated/activation2"] = [0.01] + [0.96] * E
    return h, CLS


def _dead():
    h = _stalled(healthy_history())
    h["health/dead/activation1"] = [0.03] + [0.9] * E
    return h, CLS


def _diverged_nan():
    h = healthy_history()
    h["train/loss"][-1] = math.inf
    return h, RunInfo(**{**CLS.__dict__, "outcome": "diverged",
                         "reason": "the training loss became inf at step 40"})


def _diverged_exploding():
    h = healthy_history()
    h["train/loss"] = _curve(2.3, 40.0)
    return h, CLS


def _lr_too_low():
    """Story 1 before the fix: loss falls slowly, weights barely move."""
    n = 101
    h = {"train/loss": _curve(0.254, 0.223, n), "val/loss": _curve(0.254, 0.223, n),
         "train/accuracy": [0.102] * n, "val/accuracy": [0.100] * n, "lr": [0.01] * n,
         "health/grad_norm/dense1": _curve(0.054, 0.049, n),
         "health/grad_norm/dense2": _curve(0.174, 0.160, n),
         "health/update_ratio/dense1": [0.0] + [8e-5] * (n - 1),
         "health/update_ratio/dense2": [0.0] + [4.5e-4] * (n - 1),
         "health/pred/top_class_share": [0.4] * n}
    return h, CLS


def _nothing_learned_regression():
    """Story 2: random targets, validation = training set."""
    n = 50
    h = {"train/loss": _curve(1.18, 0.1, n), "val/loss": _curve(1.18, 0.1, n),
         "val/mae": _curve(0.63, 0.191, n), "train/mae": _curve(0.63, 0.191, n),
         "health/update_ratio/dense1": [0.0] + [0.01] * (n - 1)}
    return h, RunInfo(task="regression", baseline_mae=0.211, val_is_train=True)


def _nothing_learned_classification():
    h = healthy_history()
    h["val/accuracy"] = [0.1] + [0.11] * E
    h["val/loss"] = [2.3] * (E + 1)  # flat: no loss/accuracy divergence either
    return h, CLS


def _divergence():
    """Loss falls 35%, accuracy stays put: confidence moves, arg-max does not."""
    h = healthy_history()
    h["val/loss"] = _curve(2.3, 1.5)
    h["val/accuracy"] = [0.500] * E + [0.505]
    h["health/pred/true_class_score"] = _curve(0.20, 0.45)
    h["health/pred/margin"] = _curve(-0.30, -0.05)
    h["health/pred/changed"] = [0.0] + [0.01] * E
    return h, CLS


def _overfitting():
    """Story 3's reading: validation loss turns up while training loss keeps falling."""
    h = healthy_history()
    h["val/loss"] = [2.3, 1.0, 0.6, 0.45, 0.40, 0.38, 0.39, 0.42, 0.46, 0.50, 0.55, 0.60, 0.66]
    h["train/loss"] = _curve(2.3, 0.01, shape=3)
    return h, CLS


def _lr_too_high():
    """Momentum 0.99's shape: the loss jumps back up, the accuracy falls from its best."""
    h = healthy_history()
    h["train/loss"] = [2.3, 1.13, 0.77, 1.23, 0.94, 0.51, 1.72, 1.20, 1.1, 1.6, 1.3, 1.25, 1.4]
    h["val/accuracy"] = [0.1, 0.6, 0.75, 0.6, 0.7, 0.85, 0.4, 0.5, 0.55, 0.35, 0.4, 0.38, 0.33]
    return h, CLS


def _plateau():
    """Flat at the initial loss for 7 epochs, then a drop."""
    h = healthy_history()
    h["train/loss"] = [2.303, 2.302, 2.303, 2.302, 2.301, 2.302, 2.301, 2.301, 1.6, 0.9, 0.5,
                       0.3, 0.2]
    h["val/accuracy"] = [0.1, 0.1, 0.1, 0.11, 0.1, 0.1, 0.1, 0.1, 0.4, 0.7, 0.85, 0.9, 0.92]
    return h, CLS


def _vanishing():
    """Five layers, each passing back a tenth of the gradient: 1e-4 at the first."""
    h = _stalled(healthy_history())
    for k in [k for k in h if k.startswith("health/grad_norm/")]:
        del h[k]
    for i in range(5):
        h[f"health/grad_norm/dense{i + 1}"] = [0.3 * 10.0 ** (i - 4)] * (E + 1)
    return h, CLS


def _exploding():
    """The gradient norm spikes 1000x at epoch 7 while the accuracy stalls."""
    h = _stalled(healthy_history())
    h["health/grad_norm/dense1"] = [0.5] * 7 + [500.0] + [0.5] * (E - 7)
    return h, CLS


def _underfitting():
    """A linear model on XOR: training accuracy stuck at the majority share, loss flat."""
    n = 20
    h = {"train/loss": [0.87, 0.76, 0.70] + [0.691] * (n - 3),
         "val/loss": [1.0, 0.9, 0.77] + [0.71] * (n - 3),
         "train/accuracy": [0.53] * n, "val/accuracy": [0.5] * n}
    return h, RunInfo(task="classification", chance_accuracy=0.5, majority_accuracy=0.5,
                      train_majority_accuracy=0.53, n_hidden=0, n_layers=1)


def _unscaled():
    """Raw 0..255 pixels behind saturated units."""
    h, info = _saturated()
    return h, RunInfo(**{**info.__dict__, "input_scale": 110.0, "input_spread": 3.0})


PATHOLOGIES = {
    "class_collapse": [_collapse],
    "saturated_units": [_saturated],
    "dead_units": [_dead],
    "diverged": [_diverged_nan, _diverged_exploding],
    "lr_too_low": [_lr_too_low],
    "nothing_learned": [_nothing_learned_regression, _nothing_learned_classification],
    "loss_accuracy_divergence": [_divergence],
    "overfitting": [_overfitting],
    "lr_too_high": [_lr_too_high],
    "plateau": [_plateau],
    "vanishing_gradients": [_vanishing],
    "exploding_gradients": [_exploding],
    "underfitting": [_underfitting],
    "unscaled_inputs": [_unscaled],
}
CASES = [(name, make) for name, makers in PATHOLOGIES.items() for make in makers]


def test_every_rule_has_a_case_and_a_place_in_the_order():
    assert set(PATHOLOGIES) == set(RULES)
    assert set(RULES) | {"healthy"} == set(VERDICTS)


@pytest.mark.parametrize("name,make", CASES, ids=[m.__name__ for _, m in CASES])
def test_rule_fires_on_its_pathology(name, make):
    h, info = make()
    verdicts = diagnose(h, info)
    assert name in names(verdicts), [v.evidence for v in verdicts]
    v = next(v for v in verdicts if v.name == name)
    assert v.evidence and v.advice and v.numbers
    assert any(ch.isdigit() for ch in v.evidence)  # the numbers that triggered it
    assert "healthy" not in names(verdicts)


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_is_quiet_on_a_healthy_history(name):
    assert RULES[name](healthy_history(), CLS, DiagnosticsSettings()) is None


def test_healthy_history_is_healthy():
    verdicts = diagnose(healthy_history(), CLS)
    assert names(verdicts) == ["healthy"]
    assert "97.0%" in verdicts[0].evidence  # final accuracy against its baselines


def test_thresholds_come_from_the_settings():
    h, info = _saturated()
    assert "saturated_units" not in names(diagnose(h, info, DiagnosticsSettings(
        saturated_fraction=0.99)))
    h, info = _collapse()
    assert "class_collapse" not in names(diagnose(h, info, DiagnosticsSettings(
        collapse_share=1.0, collapse_max_majority=0.05)))


@pytest.mark.parametrize("key", ["health/saturated/activation1", "health/dead/activation1"])
def test_units_that_did_not_stop_a_good_model_are_a_remark_not_a_verdict(key):
    """Story 4's sum/lr 0.01 runs: 92-94% with half the tanh outputs at +-1."""
    h = healthy_history()  # 97% against a 10.3% majority: 97% of the errors removed
    h[key] = [0.01] + [0.9] * E
    v = diagnose(h, CLS)
    assert names(v) == ["healthy"]
    assert "activation1 has 90%" in v[0].evidence and "harmless" in v[0].evidence
    # The same history at 55% is a problem, and a stricter gain keeps the verdict at 97%.
    assert names(diagnose(_stalled(healthy_history()) | {key: h[key]}, CLS))[0] != "healthy"
    assert names(diagnose(h, CLS, DiagnosticsSettings(units_ok_gain=1.0)))[0] != "healthy"


def test_collapse_needs_balanced_labels():
    h, _ = _collapse()
    skewed = RunInfo(task="classification", chance_accuracy=0.5, majority_accuracy=0.9)
    assert "class_collapse" not in names(diagnose(h, skewed))


def test_collapse_evidence_names_the_class_and_the_cause():
    h, info = _collapse()
    h["health/saturated/activation1"] = [0.0] + [0.96] * E
    v = diagnose(h, info)
    # cause first: the saturated units explain the collapse
    assert names(v)[:2] == ["saturated_units", "class_collapse"]
    assert v[1].because == ["saturated_units"]
    assert "class 0" in v[1].evidence and "100%" in v[1].evidence and "since epoch 1" in \
        v[1].evidence
    assert "train.reduction=sum" in v[0].advice + v[1].advice  # the run's own setting
    # A more specific verdict explains the missing learning: no nothing_learned on top.
    assert "nothing_learned" not in names(v)


def test_divergence_evidence_says_why():
    h, info = _divergence()
    v = next(v for v in diagnose(h, info) if v.name == "loss_accuracy_divergence")
    assert "35%" in v.evidence and "+0.50 points" in v.evidence
    assert "arg-max did not" in v.evidence  # 1% changed per epoch < divergence_changed
    assert v.numbers["true_class_score_last"] == pytest.approx(0.45)


def test_divergence_of_a_slow_run_points_at_the_rate():
    """Story 3 at lr 1e-4 (momentum, measured): the loss falls 7% in 15 epochs, accuracy
    rises a little and drops back, the margin stays negative."""
    n = 16
    h = healthy_history()
    h = {k: v for k, v in h.items() if not k.startswith("health/pred/")}
    h["val/loss"] = _curve(2.686, 2.500, n, shape=2)
    h["train/loss"] = _curve(2.716, 2.490, n, shape=2)
    h["val/accuracy"] = [0.092, 0.092, 0.092, 0.104, 0.123, 0.138, 0.135, 0.127, 0.127,
                         0.131, 0.115, 0.112, 0.115, 0.119, 0.115, 0.112]
    h["health/pred/true_class_score"] = _curve(0.0807, 0.0849, n)
    h["health/pred/margin"] = _curve(-0.098, -0.029, n, shape=2)
    h["health/pred/changed"] = [0.0, 0.09, 0.14, 0.16, 0.16, 0.16, 0.07, 0.1, 0.07, 0.05,
                                0.08, 0.02, 0.04, 0.04, 0.02, 0.05]
    v = next(v for v in diagnose(h, CLS) if v.name == "loss_accuracy_divergence")
    assert "fell 7%" in v.evidence and "best 13.8% at epoch 5" in v.evidence
    assert "arg-max did not" in v.evidence  # 4.6% changed per epoch in epochs 8-15
    assert v.numbers["late_changed"] == pytest.approx(0.04625)
    assert "slow, not finished" in v.advice and "optimizer.lr" in v.advice
    # Adam at the same rate moved the accuracy 11.6 points: that is learning, not this.
    h["val/accuracy"][-1] = 0.208
    assert "loss_accuracy_divergence" not in names(diagnose(h, CLS))


def test_a_loss_still_falling_is_not_nothing_learned():
    """Story 4 on digits, MSE against +-1 at mean/lr 0.01 (measured): 12.3% after 5 epochs,
    but the loss falls in every epoch; lr 0.1 reaches 52%. "Check the data" is wrong here."""
    h, info = _nothing_learned_classification()
    h["val/loss"] = [1.14, 0.83, 0.62, 0.50, 0.46, 0.42] + [0.41 - 0.01 * i for i in range(E - 5)]
    h["health/pred/margin"] = _curve(-0.425, -0.234)
    assert names(diagnose(h, info)) == ["loss_accuracy_divergence"]
    # Collapsed with 100x steps (story 4 at sum/0.1): the loss creeps down, but a larger
    # rate is the wrong advice.
    collapsed = {**h, "health/pred/top_class_share": [0.2] + [1.0] * E}
    v = diagnose(collapsed, info)
    assert names(v) == ["class_collapse", "loss_accuracy_divergence"]
    assert "slow, not finished" not in v[1].advice
    h["val/loss"][-1] = h["val/loss"][-3] + 0.1  # stalled: the data may well be the problem
    h["val/loss"][-2] = h["val/loss"][-3] + 0.05
    assert "nothing_learned" in names(diagnose(h, info))


def test_lr_too_low_that_stopped_at_the_tolerance_names_the_tolerance():
    """Story 2's tiny set with tol 1: stopped after 95 iterations, still falling."""
    h, info = _lr_too_low()
    stopped = RunInfo(**{**info.__dict__, "outcome": "converged",
                         "reason": "squared gradient norm 0.998 < tol 1 after 95 steps"})
    v = next(v for v in diagnose(h, stopped) if v.name == "lr_too_low")
    assert "tol 1 after 95 steps" in v.evidence and v.advice.startswith("Lower train.tol")
    plain = next(v for v in diagnose(h, info) if v.name == "lr_too_low")
    assert "tolerance" not in plain.evidence and plain.advice.startswith("Raise optimizer.lr")
    assert "Lower train.tol" not in plain.advice


def test_nothing_learned_is_stricter_when_validating_on_the_training_set():
    h, info = _nothing_learned_regression()
    held_out = RunInfo(task="regression", baseline_mae=0.211, val_is_train=False)
    # 9% better than the mean: learning on held-out data, memorisation on training data.
    assert "nothing_learned" in names(diagnose(h, info))
    assert "nothing_learned" not in names(diagnose(h, held_out))


def test_rules_without_health_keys_still_work():
    """The monitor off (or a history from before it existed): no crash, no health rules."""
    plain = {k: v for k, v in healthy_history().items() if not k.startswith("health/")}
    assert names(diagnose(plain, CLS)) == ["healthy"]
    h, info = _diverged_nan()
    plain = {k: v for k, v in h.items() if not k.startswith("health/")}
    assert "diverged" in names(diagnose(plain, info))


def test_history_read_back_with_dropped_points():
    """MLflow drops non-finite points, so series can differ in length."""
    h = healthy_history()
    h["train/loss"] = h["train/loss"][:-2]
    h["health/update_ratio/dense1"] = h["health/update_ratio/dense1"][:-1]
    v = diagnose(h, {"task": "classification", "chance_accuracy": 0.1, "majority_accuracy": 0.103,
                     "outcome": "diverged", "unknown": 1})
    assert names(v) == ["diverged"]  # the unknown key is ignored, the short series judged
    assert v[0].numbers["initial_loss"] == pytest.approx(2.3)


def test_an_untrained_run_is_not_judged():
    h = {k: v[:1] for k, v in healthy_history().items()}
    h["val/accuracy"] = [0.1]
    assert names(diagnose(h, CLS)) == ["healthy"]


def test_summary_and_explain():
    h, info = _collapse()
    h["health/saturated/activation1"] = [0.0] + [0.96] * E
    verdicts = diagnose(h, info)
    assert summary(verdicts).startswith("saturated_units,class_collapse")
    text = explain(verdicts, ["epoch 3: class_collapse - ..."])
    assert text.startswith("**Diagnosis: saturated_units; class_collapse, because "
                           "saturated_units")
    for v in verdicts:
        assert f"### {v.name}" in text and v.evidence in text
        for a in v.actions:
            assert a.text in text
    assert text.count("### What to try") == 1  # one reconciled list for the run
    assert "Warnings during the run" in text
    assert summary([Verdict("healthy", "", "")]) == "healthy"


def test_run_info_from_record():
    metrics = {"health/baseline/chance_accuracy": 0.1,
               "health/baseline/majority_accuracy": 0.103, "health/baseline/prior_loss": 2.3,
               "health/input/scale": 0.9, "health/input/spread": 1.5, "data/val_is_train": 0.0}
    tags = {"nets.task": "classification", "nets.outcome": "completed"}
    params = {"train.reduction": "sum", "train.batch_size": "100", "loss.name": "mse",
              "model.output": "tanh", "optimizer.lr": "0.1", "model.name": "mlp",
              "model.hidden": "[32, 16]", "model.bias_init.name": "constant",
              "model.bias_init.value": "-3.0"}
    info = RunInfo.from_record(metrics, tags, params)
    assert (info.majority_accuracy, info.val_is_train, info.outcome) == (0.103, False, "completed")
    assert (info.prior_loss, info.input_scale, info.n_hidden, info.n_layers) == (2.3, 0.9, 2, 3)
    assert info.config["train.batch_size"] == 100 and info.config["loss"] == "mse"
    assert info.config["model.bias_init"] == "constant(-3.0)"
    full = RunInfo.from_record(metrics, tags, {"train.batch_size": "None"})
    assert full.config == {"train.batch_size": None}


# --------------------------------------------------------------------------------------
# the monitor on real runs
# --------------------------------------------------------------------------------------

def _tiny_cfg(**over):
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [16], "activation": "tanh", "output": "softmax"},
           "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.5},
           "train": {"epochs": 4, "batch_size": 32}}
    cfg.update(over)
    return cfg


def test_monitor_keys_are_stable_and_sane():
    r, res, mon, _ = run_and_diagnose(_tiny_cfg(), small_digits())
    h = res.history
    health = sorted(k for k in h if k.startswith("health/"))
    expected = {f"health/{g}/{layer}" for g in ("grad_norm", "weight_norm", "update_ratio")
                for layer in ("dense1", "dense2")}
    expected |= {"health/saturated/activation1"}
    expected |= {f"health/pred/{k}" for k in ("top_class", "top_class_share", "entropy",
                                              "true_class_score", "margin", "changed",
                                              "worst_class", "worst_recall")}
    expected |= {f"health/schedule/{e}" for e in dx.SCHEDULE_EVENTS}
    expected |= {f"health/baseline/{k}" for k in ("chance_accuracy", "majority_accuracy",
                                                  "train_majority_accuracy", "prior_loss")}
    expected |= {"health/input/scale", "health/input/spread"}
    assert set(health) == expected
    assert len(health) <= 30  # modest: the MLflow UI slows down with many keys
    for k in health:
        assert len(h[k]) == res.epochs + 1, k  # every epoch, epoch 0 included
        assert all(math.isfinite(v) for v in h[k]), k
    for k in ("health/saturated/activation1", "health/pred/top_class_share",
              "health/pred/entropy", "health/pred/changed"):
        assert all(0 <= v <= 1 for v in h[k]), k
    assert h["health/update_ratio/dense1"][0] == 0 and h["health/pred/changed"][0] == 0
    assert all(v > 0 for v in h["health/update_ratio/dense1"][1:])
    assert all(v > 0 for v in h["health/grad_norm/dense1"])
    assert h["health/baseline/chance_accuracy"] == [0.1] * (res.epochs + 1)
    # The weight norm is the norm of the final weights.
    W = r.model.get_weights()
    assert h["health/weight_norm/dense2"][-1] == pytest.approx(
        math.sqrt(np.sum(W["dense2.W"] ** 2) + np.sum(W["dense2.b"] ** 2)))


def test_monitor_does_not_change_training():
    """The probe pass and its gradient at epoch 0 leave the run bit-for-bit the same."""
    cfg = _tiny_cfg(model={"name": "mlp", "hidden": [16], "activation": "relu",
                           "output": "softmax", "dropout": 0.2},
                    optimizer={"name": "adam", "lr": 0.01},
                    train={"epochs": 3, "batch_size": 32, "reduction": "sum"})
    _, plain = train(cfg, data=small_digits())
    _, watched = train(cfg, hooks=[HealthMonitor()], data=small_digits())
    for k, v in plain.history.items():
        assert watched.history[k] == v, k


def test_monitor_on_regression_and_cnn():
    data = DATASETS.build("random_regression").load(0)
    _, res = train({"seed": 0, "model": {"name": "mlp", "hidden": [3], "activation": "sigmoid",
                                         "output": "identity"},
                    "loss": "sse", "train": {"epochs": 3}}, hooks=[HealthMonitor()], data=data)
    assert not any(k.startswith("health/pred/") for k in res.history)
    assert "health/baseline/mae" in res.history and "health/saturated/activation1" in res.history
    cnn = {"seed": 0, "model": {"name": "cnn", "conv": [{"channels": 4, "kernel": 3,
                                                         "padding": 1, "pool": 2}]},
           "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
           "train": {"epochs": 1, "batch_size": 50}}
    _, res = train(cnn, hooks=[HealthMonitor()], data=small_digits(100, 50))
    assert {"health/grad_norm/conv2d1", "health/dead/activation1",
            "health/update_ratio/dense1"} <= set(res.history)
    assert 0 <= res.history["health/dead/activation1"][-1] <= 1


def test_schedule_events_are_counted():
    cfg = _tiny_cfg(schedule={"name": "bold_driver", "increase": 1.1, "decrease": 0.5},
                    train={"epochs": 6, "batch_size": None})
    _, res, _, _ = run_and_diagnose(cfg, small_digits())
    for e in dx.SCHEDULE_EVENTS:
        series = res.history[f"health/schedule/{e}"]
        assert series == sorted(series)  # cumulative
        assert series[-1] == sum(1 for _, ev in res.events if ev == e)
    assert res.history["health/schedule/increase"][-1] > 0


def test_probe_is_fixed_and_bounded():
    mon = HealthMonitor(DiagnosticsSettings(probe_size=40))
    train(_tiny_cfg(train={"epochs": 1}), hooks=[mon], data=small_digits())
    first = mon.Xp.copy()
    assert len(first) == 40
    train(_tiny_cfg(seed=5, train={"epochs": 1}), hooks=[mon], data=small_digits())
    np.testing.assert_array_equal(mon.Xp, first)  # same data -> same probe, any seed


# --------------------------------------------------------------------------------------
# the stories end to end
# --------------------------------------------------------------------------------------

def _story4(reduction):
    return {"seed": 0,
            "model": {"name": "mlp", "hidden": [30], "activation": "tanh", "output": "tanh"},
            "loss": "mse", "target": "plus_minus_one",
            "optimizer": {"name": "sgd", "lr": 0.1}, "schedule": "constant",
            "train": {"epochs": 5, "batch_size": 100, "reduction": reduction}}


def test_story4_summed_gradients_collapse_to_one_class():
    warned = []
    mon = HealthMonitor(warn=warned.append)
    r, res = train(_story4("sum"), hooks=[mon], data=digits())
    verdicts = diagnose(res.history, RunInfo.from_run(r, res))
    # cause first: the saturated units, then the collapse they produce
    assert names(verdicts)[:2] == ["saturated_units", "class_collapse"], summary(verdicts)
    collapse = verdicts[1]
    assert collapse.because == ["saturated_units"]
    assert collapse.numbers["top_class_share"] >= 0.8
    # names the cause (reduction=sum, batch 100) once, in the reconciled advice
    assert "100x larger" in verdicts[0].advice + collapse.advice
    # Warned during the run, as soon as it was clear.
    assert any("class_collapse" in w for w in mon.warnings) and len(warned) == len(mon.warnings)


def test_story4_with_mean_reduction_does_not_collapse():
    _, res, _, verdicts = run_and_diagnose(_story4("mean"), digits())
    assert "class_collapse" not in names(verdicts)
    assert "saturated_units" not in names(verdicts)


def test_story1_small_learning_rate():
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [30], "activation": "sigmoid", "output": "sigmoid"},
           "loss": "mse", "target": "one_hot",
           "optimizer": {"name": "sgd", "lr": 0.01, "weight_decay": 1e-4},
           "schedule": "constant", "train": {"epochs": 100, "batch_size": None}}
    _, res, _, verdicts = run_and_diagnose(cfg, digits())
    got = names(verdicts)
    assert "lr_too_low" in got and "loss_accuracy_divergence" in got, got
    assert "nothing_learned" not in got  # explained by lr_too_low
    lr = next(v for v in verdicts if v.name == "lr_too_low")
    assert lr.numbers["median_update_ratio"] < 1e-3 and "bold_driver" in lr.advice
    assert "full-batch" in lr.advice
    # one advice list: nothing in it lowers the rate that lr_too_low raises
    text = explain(verdicts)
    assert "Raise optimizer.lr=0.1" in text and "Lower optimizer.lr" not in text
    for v in verdicts:
        if v.name in ("class_collapse", "loss_accuracy_divergence"):
            assert "lr_too_low" in v.because


def test_story2_random_targets_learn_nothing():
    cfg = {"seed": 0, "dataset": "random_regression",
           "model": {"name": "mlp", "hidden": [3], "activation": "sigmoid", "output": "identity",
                     "init": "uniform01", "bias_init": "uniform01", "bias_input": -1.0},
           "loss": "sse", "target": "raw", "optimizer": {"name": "sgd", "lr": 1e-3},
           "train": {"epochs": 100000, "batch_size": None, "reduction": "sum", "tol": 0.01}}
    _, res, _, verdicts = run_and_diagnose(cfg)
    assert res.outcome == "converged"
    assert names(verdicts) == ["nothing_learned"]
    assert "memorisation" in verdicts[0].evidence


def test_healthy_digits_run_is_healthy():
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [64], "activation": "relu", "output": "softmax"},
           "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
           "train": {"epochs": 10, "batch_size": 32}}
    _, res, mon, verdicts = run_and_diagnose(cfg, digits())
    assert names(verdicts) == ["healthy"], explain(verdicts)
    assert mon.warnings == []


def test_exploding_loss_is_diverged_and_warned_at_once():
    cfg = {"seed": 0, "model": {"name": "mlp", "hidden": [32], "activation": "relu",
                                "output": "softmax"},
           "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 1e6},
           "train": {"epochs": 3, "batch_size": 64}}
    with np.errstate(all="ignore"):
        _, res, mon, verdicts = run_and_diagnose(cfg, small_digits())
    assert names(verdicts)[0] == "diverged"
    assert mon.warnings[0].startswith("epoch 1: diverged")


# --------------------------------------------------------------------------------------
# gradient check
# --------------------------------------------------------------------------------------

def _gc_run(**model):
    cfg = {"seed": 0,
           "model": {"name": "mlp", "hidden": [12], "activation": "sigmoid", "output": "sigmoid",
                     **model},
           "loss": "mse", "target": "one_hot", "optimizer": {"name": "sgd", "lr": 0.1,
                                                             "weight_decay": 1e-3}}
    return build_run(cfg, small_digits())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradcheck_passes_on_a_correct_model_and_leaves_it_alone(dtype):
    r = build_run({"seed": 0, "model": {"name": "mlp", "hidden": [12, 8], "activation": "tanh",
                                        "output": "softmax", "dropout": 0.2},
                   "loss": "cross_entropy", "train": {"dtype": dtype, "reduction": "sum"}},
                  small_digits())
    before = r.model.get_weights()
    errors = gradcheck_trainer(r.trainer(), DiagnosticsSettings(gradcheck=True))
    assert set(errors) == {"dense1", "dense2", "dense3"}
    assert max(errors.values()) < 1e-6
    for k, v in r.model.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == np.dtype(dtype)


def test_gradcheck_ignores_relu_kinks_in_a_cnn():
    """Zero pixels and zero biases put conv pre-activations exactly on the ReLU kink."""
    r = build_run({"seed": 0, "model": {"name": "cnn", "hidden": [8]},
                   "loss": "cross_entropy"}, small_digits())
    assert max(gradcheck_trainer(r.trainer()).values()) < 1e-6


def test_gradcheck_catches_story1_bias_bug(monkeypatch):
    """Story 1: the output-bias gradient multiplied by the bias itself."""
    r = _gc_run(bias_init={"name": "constant", "value": 0.5})
    right = Dense.backward

    def wrong(self, dZ):
        dX = right(self, dZ)
        if self.label == "dense2":
            self.b.grad *= self.b.value
        return dX

    monkeypatch.setattr(Dense, "backward", wrong)
    t = r.trainer()
    with pytest.raises(GradientCheckError) as e:
        gradcheck_model(t.model, t.head, t.X[:8], t.T[:8], "mean", 1e-4)
    assert e.value.layer == "dense2" and e.value.error > 1e-2
    assert e.value.errors["dense1"] < 1e-6  # the bug is in dense2's own bias gradient
    assert "dense2" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, RuntimeError)


def test_gradcheck_catches_a_missing_activation_derivative(monkeypatch):
    """Story 1: the hidden delta skipped the sigmoid derivative."""
    r = _gc_run()
    monkeypatch.setattr(ActivationLayer, "backward", lambda self, dA: dA)
    with pytest.raises(GradientCheckError) as e:
        gradcheck_trainer(r.trainer())
    assert e.value.layer == "dense1"
