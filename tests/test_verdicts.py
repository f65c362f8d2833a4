"""Verdicts on labelled runs trained with nets' engine (issue 17).

Each pathological case is a *config* (plus, for random labels and a skewed set, a small
``Data`` built here) trained with the ``HealthMonitor`` hook, then diagnosed: its label
must fire, cause before consequence, with numbers in every verdict and advice that never
pulls one knob two ways. The healthy side: a run of every dataset in the registry, of
every optimizer and of every schedule must stay ``healthy`` (silence over false alarms).
Everything is tiny (digits subsets, toy sets, <= 40 epochs) to keep the file fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nets.data import DATASETS, Data, write_idx
from nets.diagnostics import (RULES, HealthMonitor, RunInfo, Verdict, diagnose, explain,
                              summary)
from nets.diagnostics.verdicts import VERDICTS, _order
from nets.optimizers import OPTIMIZERS
from nets.schedules import SCHEDULES
from nets.train import train


def mlp(hidden=(32,), act="relu", out="softmax", **kw):
    return {"name": "mlp", "hidden": list(hidden), "activation": act, "output": out, **kw}


DIGITS = {"name": "digits", "subsample": 600}


def run(cfg, data=None):
    cfg = {"seed": 0, "loss": "cross_entropy", **cfg}
    mon = HealthMonitor()
    with np.errstate(all="ignore"):
        r, res = train(cfg, hooks=[mon], data=data)
    return r, res, mon, diagnose(res.history, RunInfo.from_run(r, res))


def names(verdicts) -> list[str]:
    return [v.name for v in verdicts]


def random_labels(n=400, n_features=20, k=4, seed=0) -> Data:
    """Features and labels drawn independently: 4 balanced classes, nothing to learn."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y = np.repeat(np.arange(k), n // k)
    rng.shuffle(y)
    return Data(X[:300], y[:300], X[300:], y[300:], "classification", k, None, "random")


# --------------------------------------------------------------------------------------
# the rule table itself
# --------------------------------------------------------------------------------------

def test_rules_declare_known_names_and_an_acyclic_cause_graph():
    for r in RULES.values():
        assert set(r.causes) | set(r.silenced_by) <= set(RULES), r.name
        assert r.name not in r.causes and r.summary  # documented: the README table's text
    every = {n: Verdict(n, "") for n in RULES}
    order = names(_order(every))
    assert sorted(order) == sorted(RULES)  # a cycle would leave some out
    for r in RULES.values():
        for c in r.causes:
            assert order.index(r.name) < order.index(c), (r.name, c)
    assert VERDICTS == tuple(RULES) + ("healthy",)


# --------------------------------------------------------------------------------------
# labelled pathological runs: each label fires on its case
# --------------------------------------------------------------------------------------

LABELLED = {
    # momentum 0.99: loss jumps, accuracy 87% at epoch 1 and 22% at the end
    "lr_too_high": (dict(dataset="digits", model=mlp(),
                         optimizer={"name": "momentum", "lr": 0.1, "momentum": 0.99},
                         train={"epochs": 15, "batch_size": 32}),
                    None, ["lr_too_high", "dead_units", "class_collapse"]),
    # raw 0..255 pixels into sigmoid units
    "unscaled_inputs": (dict(dataset={**DIGITS, "scale": 16.0}, model=mlp(act="sigmoid"),
                             optimizer={"name": "sgd", "lr": 0.1},
                             train={"epochs": 10, "batch_size": 32}),
                        None, ["unscaled_inputs", "saturated_units"]),
    # a logistic regression on XOR
    "underfitting": (dict(dataset="xor", model=mlp(()), optimizer={"name": "adam", "lr": 0.05},
                          train={"epochs": 30, "batch_size": 32}),
                     None, ["underfitting"]),
    # 8 sigmoid layers
    "vanishing_gradients": (dict(dataset=DIGITS, model=mlp([32] * 8, "sigmoid"),
                                 optimizer={"name": "sgd", "lr": 0.1},
                                 train={"epochs": 10, "batch_size": 32}),
                            None, ["vanishing_gradients", "class_collapse"]),
    # 12 relu layers initialised with std 0.5 (he would be 0.25)
    "exploding_gradients": (dict(dataset="digits",
                                 model=mlp([32] * 12, init={"name": "normal", "std": 0.5}),
                                 optimizer={"name": "sgd", "lr": 1e-4},
                                 train={"epochs": 8, "batch_size": 32}),
                            None, ["exploding_gradients"]),
    # small init on XOR: flat for ~20 epochs, then the drop
    "plateau_then_drop": (dict(dataset="xor", model=mlp([8, 8], "tanh",
                                                         init={"name": "normal", "std": 0.1}),
                               optimizer={"name": "sgd", "lr": 1.0},
                               train={"epochs": 40, "batch_size": 32}),
                          None, ["plateau"]),
    # tiny init on XOR: still flat at ln 2 after 40 epochs, one class for every input
    "plateau_still_flat": (dict(dataset="xor", model=mlp([8, 8], "tanh",
                                                          init={"name": "normal", "std": 1e-3}),
                                optimizer={"name": "sgd", "lr": 0.3},
                                train={"epochs": 40, "batch_size": 32}),
                           None, ["plateau", "class_collapse"]),
    # every bias at -3: the relu units are dead from the start, and the output collapses
    "dead_units_cause_collapse": (dict(dataset=DIGITS, model=mlp(bias_init={
        "name": "constant", "value": -3.0}), optimizer={"name": "sgd", "lr": 0.1},
        train={"epochs": 8, "batch_size": 32}), None, ["dead_units", "class_collapse"]),
    # 4 balanced random classes
    "random_labels": (dict(model=mlp([64]), optimizer={"name": "adam", "lr": 0.01},
                           train={"epochs": 20, "batch_size": 32}),
                      random_labels, ["nothing_learned"]),
}
_RUNS: dict = {}


def labelled(name):
    if name not in _RUNS:
        cfg, data, _ = LABELLED[name]
        _RUNS[name] = run(cfg, data() if data else None)
    return _RUNS[name]


def knobs_are_consistent(verdicts) -> bool:
    """No two kept advice items pull the same config key."""
    keys = [a.knob for v in verdicts for a in v.actions if a.knob is not None]
    return len(keys) == len(set(keys))


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_label_fires_on_its_run_cause_first_with_numbers(name):
    *_, verdicts = labelled(name)
    assert names(verdicts) == LABELLED[name][2], explain(verdicts)
    for v in verdicts:
        assert v.numbers and any(ch.isdigit() for ch in v.evidence), v.name
    assert knobs_are_consistent(verdicts)
    text = explain(verdicts)
    for v in verdicts[1:]:
        if v.because:
            assert f"### {v.name}, because {' and '.join(v.because)}" in text
    # "barely moved" is said only of weights that barely moved
    for v in verdicts:
        if "barely mov" in v.evidence:
            assert v.numbers["median_update_ratio"] < 1e-3


def test_lr_too_high_reports_the_best_epoch_next_to_the_last():
    *_, verdicts = labelled("lr_too_high")
    v = verdicts[0]
    assert "Best epoch: 1 with val accuracy 86.9%; last epoch 15: 22.3%" in v.evidence
    assert v.numbers["accuracy_best"] - v.numbers["accuracy_last"] > 0.5
    assert "momentum to 0.9 (now 0.99" in v.advice and "optimizer.lr=0.01" in v.advice
    assert verdicts[2].because == ["lr_too_high", "dead_units"]


def test_unscaled_inputs_are_named_as_the_cause_with_their_scale():
    r, res, _, verdicts = labelled("unscaled_inputs")
    v = verdicts[0]
    assert v.numbers["input_scale"] > 100  # 0..255 pixels
    assert res.history["health/input/scale"] == [v.numbers["input_scale"]] * (res.epochs + 1)
    assert "dataset.scaling=standard" in v.advice
    assert verdicts[1].because == ["unscaled_inputs"]
    assert verdicts[1].advice.startswith("Fix unscaled_inputs first")


def test_underfitting_names_the_missing_capacity():
    *_, verdicts = labelled("underfitting")
    assert "linear model" in verdicts[0].evidence and "model.hidden=[32]" in verdicts[0].advice
    assert "no setting fixes that" not in explain(verdicts)


def test_vanishing_gradients_cite_the_layer_ratio():
    *_, verdicts = labelled("vanishing_gradients")
    assert verdicts[0].numbers["grad_ratio_first_last"] < 1e-3
    assert verdicts[1].because == ["vanishing_gradients"]
    assert "model.activation=relu" in verdicts[0].advice


def test_plateau_is_not_lr_too_low_nor_nothing_learned():
    for name in ("plateau_then_drop", "plateau_still_flat"):
        *_, verdicts = labelled(name)
        assert not {"lr_too_low", "nothing_learned"} & set(names(verdicts))
    *_, verdicts = labelled("plateau_then_drop")
    assert "then dropped to" in verdicts[0].evidence
    assert verdicts[0].numbers["plateau_epochs"] >= 5


# --------------------------------------------------------------------------------------
# the fixes listed under "Wrong today"
# --------------------------------------------------------------------------------------

def test_already_converged_logistic_regression_is_healthy():
    """Blobs + Adam: 98-100% from epoch 0, the loss falls 100x; accuracy is at its ceiling."""
    _, res, _, verdicts = run(dict(dataset="blobs", model=mlp(()),
                                   optimizer={"name": "adam", "lr": 0.1},
                                   train={"epochs": 30, "batch_size": 32}))
    assert res.history["val/accuracy"][-1] == 1.0
    assert names(verdicts) == ["healthy"], explain(verdicts)
    assert "Converged: nothing left to gain" in verdicts[0].evidence
    assert "other verdicts" not in explain(verdicts)


def test_random_labels_are_nothing_learned_not_slow():
    *_, verdicts = labelled("random_labels")
    v = verdicts[0]
    assert v.numbers["best_loss"] >= v.numbers["prior_loss"]
    assert v.numbers["prior_loss"] == pytest.approx(math.log(4), abs=0.05)
    assert "label prior" in v.evidence and "never below it" in v.evidence
    assert "slow" not in explain(verdicts) and "Raise optimizer.lr" not in explain(verdicts)


def test_collapse_is_judged_against_the_label_shares():
    """Balanced binary task, 82% one class, accuracy 31.7%: not a collapse (always one
    class earns 50%), and the text never claims otherwise."""
    n = 11
    h = {"train/loss": list(np.linspace(0.7, 0.6, n)), "val/loss": list(np.linspace(0.7, 0.65, n)),
         "val/accuracy": [0.5] + [0.317] * (n - 1),
         "health/pred/top_class_share": [0.5] + [0.82] * (n - 1),
         "health/pred/top_class": [0.0] * n, "health/update_ratio/dense1": [0.0] + [0.02] * (n - 1)}
    info = RunInfo(chance_accuracy=0.5, majority_accuracy=0.5)
    assert "class_collapse" not in names(diagnose(h, info))
    h["health/pred/top_class_share"] = [0.5] + [0.97] * (n - 1)
    h["val/accuracy"] = [0.5] + [0.5] * (n - 1)
    v = next(v for v in diagnose(h, info) if v.name == "class_collapse")
    assert "what a constant answer earns (50.0% here)" in v.evidence
    # on 10 classes the real collapse cites both 1/K and the majority share
    *_, verdicts = labelled("dead_units_cause_collapse")
    assert "1/K = 10.0%" in verdicts[1].evidence


def test_collapse_caused_by_dead_units_gives_one_advice_quoting_the_bias_init():
    *_, verdicts = labelled("dead_units_cause_collapse")
    dead, collapse = verdicts
    assert collapse.because == ["dead_units"]
    assert "model.bias_init=constant(-3.0)" in dead.evidence and "now -3" in dead.advice
    text = explain(verdicts)
    assert "optimizer.lr" not in text  # neither "raise" nor "lower": the rate is not it
    assert "received no gradient at all" in dead.evidence and "from 0 to 0" not in text
    assert "The weights did move" in collapse.evidence  # measured, not assumed


def test_near_miss_saturation_at_a_mediocre_gain_is_a_verdict():
    """99.6% saturated with 81% of the error removed: a problem, not a remark."""
    n = 11
    h = {"train/loss": list(np.linspace(2.3, 0.8, n)), "val/loss": list(np.linspace(2.3, 0.8, n)),
         "val/accuracy": list(np.linspace(0.1, 0.83, n)),
         "health/saturated/activation1": [0.5] + [0.996] * (n - 1)}
    info = RunInfo(chance_accuracy=0.1, majority_accuracy=0.103)
    assert "saturated_units" in names(diagnose(h, info))
    h["health/saturated/activation1"] = [0.5] + [0.9] * (n - 1)  # not extreme: excused
    assert names(diagnose(h, info)) == ["healthy"]


def test_raw_pixels_with_a_bumpy_loss_ending_a_third_above_its_minimum():
    """Raw 0..16 pixels: the initial loss is 9 (4x ln 10), so jumps must be judged against
    the label prior's loss, not the epoch-0 loss, or this run passes as healthy."""
    train_loss = [9.27, 0.83, 0.37, 0.28, 0.46, 0.18, 0.11, 0.12, 0.22, 0.15, 0.12, 0.1, 0.13,
                  0.12, 0.11, 0.133]
    h = {"train/loss": train_loss, "val/loss": [v * 1.2 for v in train_loss],
         "train/accuracy": [0.07] + [0.95] * 15, "val/accuracy": [0.08] + [0.93] * 15}
    info = RunInfo(chance_accuracy=0.1, majority_accuracy=0.103, prior_loss=math.log(10),
                   input_scale=10.6, input_spread=2.0, config={"loss": "cross_entropy"})
    v = diagnose(h, info)
    assert names(v) == ["unscaled_inputs", "lr_too_high"], explain(v)
    assert v[1].numbers["end_gap"] == pytest.approx(0.33, abs=0.01)
    assert "Best epoch" in v[1].evidence and "dataset.scaling=standard" in v[0].advice


# --------------------------------------------------------------------------------------
# evidence where no label fits
# --------------------------------------------------------------------------------------

def test_overfitting_mentions_label_noise_when_training_accuracy_levels_off():
    n = 16
    h = {"train/loss": list(np.geomspace(1.0, 0.4, n)),
         "val/loss": [1.0, 0.7, 0.55, 0.5, 0.52, 0.56, 0.6, 0.64, 0.68, 0.7, 0.72, 0.74, 0.76,
                      0.78, 0.8, 0.82],
         "train/accuracy": [0.5] + [0.8] * (n - 1),
         "val/accuracy": [0.5, 0.7, 0.78, 0.8, 0.78, 0.76] + [0.75] * (n - 6)}
    v = diagnose(h, RunInfo(chance_accuracy=0.5, majority_accuracy=0.5))[0]
    assert v.name == "overfitting" and "wrong labels" in v.evidence


def test_a_class_never_predicted_is_named_with_its_recall():
    """95% / 5% labels and no signal: the rare class is never chosen."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 5))
    y = (rng.random(400) < 0.05).astype(np.int64)
    data = Data(X[:300], y[:300], X[300:], y[300:], "classification", 2, None, "skewed")
    _, res, _, verdicts = run(dict(model=mlp([8]), optimizer={"name": "adam", "lr": 0.01},
                                   train={"epochs": 10, "batch_size": 32}), data)
    assert res.history["health/pred/worst_recall"][-1] == 0.0
    assert "class_collapse" not in names(verdicts)  # 95% is what the labels ask for
    assert "Class 1 is never predicted on the probe batch (recall 0%)" in explain(verdicts)


# --------------------------------------------------------------------------------------
# plain curves only (other apps' runs, monitor off)
# --------------------------------------------------------------------------------------

PLAIN = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "val/mae")


@pytest.mark.parametrize("name", ["lr_too_high", "random_labels", "underfitting"])
def test_plain_curves_are_enough_and_skipped_rules_are_listed(name):
    r, res, _, _ = labelled(name)
    plain = {k: v for k, v in res.history.items() if k in PLAIN}
    verdicts = diagnose(plain, RunInfo.from_run(r, res))
    assert names(verdicts) == [LABELLED[name][2][0]]  # the rules that need no health keys
    assert "class_collapse" in verdicts.skipped and "dead_units" in verdicts.skipped
    assert "### Not checked" in explain(verdicts)
    # and with nothing known about the run at all
    assert names(diagnose(plain)) and summary(diagnose(plain))


# --------------------------------------------------------------------------------------
# healthy runs stay healthy: every dataset, every optimizer, every schedule
# --------------------------------------------------------------------------------------

def _dataset_cfg(name, tmp):
    A = {"name": "adam", "lr": 0.01}
    if name == "mnist":  # MNIST-format files made from digits, 8x8, 0..255
        d = DATASETS.build("digits").load(0)
        write_idx(tmp / "train-images-idx3-ubyte.gz", (d.X_train[:600] * 255).reshape(-1, 8, 8))
        write_idx(tmp / "train-labels-idx1-ubyte.gz", d.y_train[:600])
        return dict(dataset={"name": "mnist", "path": str(tmp), "cache_dir": str(tmp),
                             "verify": False, "download": False},
                    model=mlp(), optimizer=A, train={"epochs": 10, "batch_size": 32})
    if name == "csv":
        b = DATASETS.build({"name": "blobs", "n_features": 4, "val_fraction": 0}).load(1)
        path = tmp / "blobs.csv"
        path.write_text("".join(",".join(f"{v:.4f}" for v in x) + f",{c}\n"
                                for x, c in zip(b.X_train, b.y_train)))
        return dict(dataset={"name": "csv", "path": str(path), "label_column": -1},
                    model=mlp([16]), optimizer=A, train={"epochs": 20, "batch_size": 32})
    return {
        "digits": dict(dataset=DIGITS, model=mlp(), optimizer=A,
                       train={"epochs": 10, "batch_size": 32}),
        "blobs": dict(dataset="blobs", model=mlp([16]), optimizer=A,
                      train={"epochs": 20, "batch_size": 32}),
        "moons": dict(dataset="moons", model=mlp([16], "tanh"),
                      optimizer={"name": "adam", "lr": 0.02},
                      train={"epochs": 40, "batch_size": 32}),
        "spirals": dict(dataset="spirals", model=mlp(), optimizer={"name": "adam", "lr": 0.02},
                        train={"epochs": 60, "batch_size": 32}),
        "xor": dict(dataset="xor", model=mlp([8], "tanh"), optimizer={"name": "adam", "lr": 0.05},
                    train={"epochs": 30, "batch_size": 32}),
        "shapes": dict(dataset={"name": "shapes", "n_samples": 400, "n_classes": 4, "height": 12,
                                "width": 12}, model={"name": "cnn", "conv": [
                                    {"channels": 4, "kernel": 3, "padding": 1, "pool": 2}]},
                       optimizer=A, train={"epochs": 10, "batch_size": 32}),
        "tiny_regression": dict(dataset="tiny_regression", model=mlp([8], "sigmoid", "identity"),
                                loss="mse", optimizer={"name": "adam", "lr": 0.05},
                                train={"epochs": 200}),
        # X and Y independent by construction: "nothing learned" is its right verdict
        "random_regression": dict(dataset="random_regression",
                                  model=mlp([8], "sigmoid", "identity"), loss="mse",
                                  optimizer={"name": "adam", "lr": 0.05}, train={"epochs": 200}),
    }[name]


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_has_a_healthy_run(name, tmp_path):
    _, res, mon, verdicts = run(_dataset_cfg(name, tmp_path))
    want = ["nothing_learned"] if name == "random_regression" else ["healthy"]
    assert names(verdicts) == want, explain(verdicts)


OPTIMIZER_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "rmsprop": 0.003, "adam": 0.01}


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_has_a_healthy_run(name):
    _, _, _, verdicts = run(dict(dataset=DIGITS, model=mlp(),
                                 optimizer={"name": name, "lr": OPTIMIZER_LR[name]},
                                 train={"epochs": 10, "batch_size": 32}))
    assert names(verdicts) == ["healthy"], explain(verdicts)


SCHEDULE_ARGS = {"step": {"step_size": 3}, "exponential": {"gamma": 0.9}, "cosine": {"period": 10},
                 "warmup": {"steps": 3}, "reduce_on_plateau": {"patience": 2}}


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_has_a_healthy_run(name):
    _, _, _, verdicts = run(dict(dataset=DIGITS, model=mlp(), optimizer={"name": "sgd", "lr": 0.1},
                                 schedule={"name": name, **SCHEDULE_ARGS.get(name, {})},
                                 train={"epochs": 10, "batch_size": 32}))
    assert names(verdicts) == ["healthy"], explain(verdicts)
