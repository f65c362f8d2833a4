"""Learning-rate schedules: scripted loss sequences -> the exact expected rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nets.registry import ConfigError
from nets.schedules import SCHEDULES


def drive(schedule, base_lr, losses, val_losses=None):
    """``start`` then ``update(t, loss)`` for each scripted loss; ``(lrs, events)``.

    ``lrs[0]`` is the starting rate, ``lrs[t + 1]`` the rate decided after unit ``t``.
    """
    lrs, events = [schedule.start(base_lr)], []
    for t, loss in enumerate(losses):
        v = None if val_losses is None else val_losses[t]
        d = schedule.update(t, loss, v)
        lrs.append(d.lr)
        events.append(d.event)
    return lrs, events


def bold(**kw):
    return SCHEDULES.build({"name": "bold_driver", "increase": 1.1, "decrease": 0.5, **kw})


# --------------------------------------------------------------------------------------
# bold driver
# --------------------------------------------------------------------------------------

LUCKY = [1.0, 0.9, 0.5, 0.8, 0.7, 0.6]  # 0.5 is a lucky low epoch


def test_bold_driver_lucky_low_epoch_without_rollback():
    lrs, events = drive(bold(), 0.1, LUCKY)
    expected = [0.1,
                0.1,                     # 1.0: first call only records
                0.1 * 1.1,               # 0.9 < 1.0
                0.1 * 1.1 * 1.1,         # 0.5 < 0.9
                0.1 * 1.1 * 1.1 * 0.5,   # 0.8 > 0.5: decrease, reference becomes 0.8
                0.1 * 1.1 * 1.1 * 0.5 * 1.1,         # 0.7 < 0.8 (previous, not best 0.5)
                0.1 * 1.1 * 1.1 * 0.5 * 1.1 * 1.1]   # 0.6 < 0.7
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert events == [None, "increase", "increase", "decrease", "increase", "increase"]


def test_bold_driver_lucky_low_epoch_with_rollback():
    s = bold(rollback=True)
    lrs, events = drive(s, 0.1, LUCKY + [0.45])
    expected = [0.1, 0.1, 0.11, 0.121,
                0.121 * 0.5,             # 0.8 > 0.5: rollback, reference stays 0.5
                0.121 * 0.25,            # 0.7 > 0.5 again: another rollback
                0.121 * 0.125,           # 0.6 > 0.5 again
                0.121 * 0.125 * 1.1]     # 0.45 < 0.5 finally a fall
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert events == [None, "increase", "increase", "rollback", "rollback", "rollback",
                      "increase"]
    assert [(d := s.update(9, 0.45)).event, d.rollback] == [None, False]  # equal: keep


def test_bold_driver_equal_losses_keep_the_rate():
    lrs, events = drive(bold(), 0.2, [1.0, 1.0, 1.0, 0.9, 0.9])
    assert lrs == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.22, 0.22], rel=1e-12)
    assert events == [None, None, None, "increase", None]


def test_bold_driver_first_call_only_records():
    s = bold()
    assert s.start(0.3) == 0.3
    d = s.update(0, 5.0)
    assert (d.lr, d.event) == (0.3, None)
    d = s.update(1, 100.0)  # a rise compared with the recorded 5.0
    assert (d.lr, d.event) == (pytest.approx(0.15), "decrease")


def test_bold_driver_clamps_at_max_lr():
    lrs, events = drive(bold(max_lr=0.12), 0.1, [1.0, 0.9, 0.8, 0.7, 0.8])
    assert lrs == pytest.approx([0.1, 0.1, 0.11, 0.12, 0.12, 0.06], rel=1e-12)
    assert events[-1] == "decrease"


def test_bold_driver_clamps_at_min_lr():
    lrs, _ = drive(bold(min_lr=0.03), 0.1, [1.0, 1.1, 1.2, 1.3, 1.2])
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.03, 0.03, 0.033], rel=1e-12)


def test_bold_driver_start_clamps_the_base_rate():
    assert bold(max_lr=1.0).start(5.0) == 1.0
    assert bold(min_lr=0.01).start(1e-4) == 0.01


def test_bold_driver_non_finite_loss_is_a_rise():
    lrs, events = drive(bold(), 0.1, [1.0, math.nan, 0.9])
    assert lrs[2] == pytest.approx(0.05)
    assert events[1] == "decrease"
    # The reference became +inf, so any finite loss afterwards is a fall.
    assert events[2] == "increase"
    lrs, events = drive(bold(), 0.1, [math.inf, 1.0])  # nothing recorded yet: keep
    assert lrs == pytest.approx([0.1, 0.1, 0.1]) and events == [None, None]


def test_bold_driver_restart_forgets_the_reference():
    s = bold()
    drive(s, 0.1, [1.0, 0.5])
    assert s.start(0.1) == 0.1
    d = s.update(0, 3.0)  # would be a rise against 0.5; after start it only records
    assert (d.lr, d.event) == (0.1, None)


# --------------------------------------------------------------------------------------
# time-based schedules
# --------------------------------------------------------------------------------------

def test_constant():
    lrs, events = drive(SCHEDULES.build("constant"), 0.3, [1.0, 2.0, 0.5])
    assert lrs == [0.3] * 4 and events == [None] * 3


def test_step():
    s = SCHEDULES.build({"name": "step", "step_size": 3, "gamma": 0.5})
    lrs, _ = drive(s, 0.8, [0.0] * 8)
    assert lrs == pytest.approx([0.8, 0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2], rel=1e-12)


def test_exponential():
    s = SCHEDULES.build({"name": "exponential", "gamma": 0.9})
    lrs, _ = drive(s, 0.5, [None] * 5)
    assert lrs == pytest.approx([0.5] + [0.5 * 0.9 ** t for t in range(5)], rel=1e-12)


def test_cosine():
    s = SCHEDULES.build({"name": "cosine", "period": 10, "min_lr": 0.01})
    assert s.start(0.1) == 0.1
    assert s.update(0).lr == pytest.approx(0.1, rel=1e-12)
    assert s.update(5).lr == pytest.approx(0.01 + 0.09 * 0.5, rel=1e-12)
    assert s.update(10).lr == pytest.approx(0.01, rel=1e-12)
    assert s.update(15).lr == pytest.approx(0.01, rel=1e-12)
    assert s.update(2).lr == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 0.2)) / 2)


def test_warmup_then_step():
    s = SCHEDULES.build({"name": "warmup", "steps": 3,
                         "after": {"name": "step", "step_size": 2, "gamma": 0.5}})
    lrs, _ = drive(s, 0.8, [1.0] * 8)
    assert lrs == pytest.approx([
        0.2,        # start: lr0 / (steps + 1)
        0.2,        # after unit 0: still the first warm-up rate
        0.4, 0.6,   # t = 1, 2
        0.8,        # t = steps: lr0, the wrapped schedule at its own t = 0
        0.8,        # its t = 1
        0.4, 0.4,   # its t = 2, 3
        0.2,        # its t = 4
    ], rel=1e-12)


def test_warmup_then_constant():
    s = SCHEDULES.build({"name": "warmup", "steps": 4})
    lrs, _ = drive(s, 1.0, [1.0] * 7)
    assert lrs == pytest.approx([0.2, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0], rel=1e-12)
    assert lrs[0] > 0


def test_warmup_passes_losses_to_the_wrapped_schedule():
    s = SCHEDULES.build({"name": "warmup", "steps": 1,
                         "after": {"name": "bold_driver", "increase": 2.0, "decrease": 0.5}})
    lrs, events = drive(s, 0.1, [9.0, 1.0, 0.5, 0.25])
    assert lrs == pytest.approx([0.05, 0.05, 0.1, 0.2, 0.4], rel=1e-12)
    assert events == [None, None, "increase", "increase"]


# --------------------------------------------------------------------------------------
# reduce on plateau
# --------------------------------------------------------------------------------------

def test_reduce_on_plateau_patience_threshold_and_floor():
    s = SCHEDULES.build({"name": "reduce_on_plateau", "monitor": "train", "factor": 0.5,
                         "patience": 2, "threshold": 0.1, "min_lr": 0.02})
    losses = [1.0,                 # best = 1.0
              0.95, 0.92, 0.91,    # not below 1.0 * 0.9: 3 bad units > patience 2 -> cut
              0.85,                # below 0.9: new best 0.85
              0.8, 0.8, 0.8,       # not below 0.765: cut
              0.8, 0.8, 0.8,       # cut, clamped at min_lr 0.02
              0.8, 0.8, 0.8]       # already at the floor: no event
    lrs, events = drive(s, 0.1, losses)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025,
                                 0.025, 0.025, 0.02, 0.02, 0.02, 0.02], rel=1e-12)
    assert [i for i, e in enumerate(events) if e] == [3, 7, 10]
    assert {e for e in events if e} == {"cut"}


def test_reduce_on_plateau_patience_zero_cuts_at_first_stall():
    s = SCHEDULES.build({"name": "reduce_on_plateau", "monitor": "train", "patience": 0,
                         "factor": 0.1, "threshold": 0.0})
    lrs, events = drive(s, 1.0, [1.0, 1.0, 0.5, 0.5])
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01], rel=1e-12)
    assert events == [None, "cut", None, "cut"]


def test_reduce_on_plateau_monitor_val_vs_train():
    train = [1.0, 0.9, 0.8, 0.7, 0.6]
    val = [1.0, 1.1, 1.2, 1.3, 1.4]  # overfitting: validation rises
    spec = {"name": "reduce_on_plateau", "patience": 1, "factor": 0.5}
    lrs_val, ev = drive(SCHEDULES.build({**spec, "monitor": "val"}), 0.1, train, val)
    assert lrs_val == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-12)
    assert ev == [None, None, "cut", None, "cut"]
    lrs_train, ev = drive(SCHEDULES.build({**spec, "monitor": "train"}), 0.1, train, val)
    assert lrs_train == [0.1] * 6 and ev == [None] * 5
    # monitor=val falls back to the training loss when there is no validation loss.
    lrs_fallback, _ = drive(SCHEDULES.build({**spec, "monitor": "val"}), 0.1, val)
    assert lrs_fallback == lrs_val


# --------------------------------------------------------------------------------------
# round trips and bad values
# --------------------------------------------------------------------------------------

NON_DEFAULT = {
    "constant": {"name": "constant", "every": "step"},
    "step": {"name": "step", "every": "step", "step_size": 7, "gamma": 0.3},
    "exponential": {"name": "exponential", "gamma": 0.5},
    "cosine": {"name": "cosine", "period": 12, "min_lr": 1e-4},
    "warmup": {"name": "warmup", "steps": 2, "after": {"name": "cosine", "period": 5}},
    "reduce_on_plateau": {"name": "reduce_on_plateau", "monitor": "train", "factor": 0.2,
                          "patience": 3, "threshold": 0.01, "min_lr": 1e-5},
    "bold_driver": {"name": "bold_driver", "increase": 1.1, "decrease": 0.4,
                    "rollback": True, "min_lr": 1e-6, "max_lr": 2.0},
}


def test_every_registered_schedule_has_scripted_cases():
    missing = sorted(set(SCHEDULES.names()) - set(NON_DEFAULT))
    assert not missing, f"schedules without scripted tests here: {missing}"


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_hparams_round_trip(name):
    for spec in ({"name": name}, NON_DEFAULT.get(name, {"name": name})):
        s = SCHEDULES.build(spec)
        h = s.hparams()
        assert h["name"] == name
        again = SCHEDULES.build(h)
        assert type(again) is type(s) and again.hparams() == h
        for k, v in spec.items():
            # Nested specs (warmup's ``after``) come back with their defaults filled in.
            want = SCHEDULES.build(v).hparams() if isinstance(v, dict) else v
            assert h[k] == want, f"{name}.{k}"
        # Same hyperparameters, same rates.
        losses = [1.0, 0.8, 0.9, 0.7, 0.7, 0.75]
        assert drive(s, 0.1, losses) == drive(again, 0.1, losses)
        # State (reference loss, counters) is not a hyperparameter.
        assert not set(s.state_dict()) & set(h)


BAD = [
    ({"name": "constant", "every": "week"}, "schedule.every"),
    ({"name": "step", "step_size": 0}, "schedule.step_size"),
    ({"name": "step", "gamma": 0}, "schedule.gamma"),
    ({"name": "step", "gamma": 1.5}, "schedule.gamma"),
    ({"name": "exponential", "gamma": 0.0}, "schedule.gamma"),
    ({"name": "cosine", "period": 0}, "schedule.period"),
    ({"name": "cosine", "min_lr": -1.0}, "schedule.min_lr"),
    ({"name": "warmup", "steps": 0}, "schedule.steps"),
    ({"name": "warmup", "after": "warmup"}, "schedule.after"),
    ({"name": "warmup", "after": "bogus"}, "schedule.after.name"),
    ({"name": "reduce_on_plateau", "factor": 1.0}, "schedule.factor"),
    ({"name": "reduce_on_plateau", "factor": 0.0}, "schedule.factor"),
    ({"name": "reduce_on_plateau", "patience": -1}, "schedule.patience"),
    ({"name": "reduce_on_plateau", "threshold": -0.1}, "schedule.threshold"),
    ({"name": "reduce_on_plateau", "monitor": "test"}, "schedule.monitor"),
    ({"name": "bold_driver", "increase": 0.9}, "schedule.increase"),
    ({"name": "bold_driver", "decrease": 1.0}, "schedule.decrease"),
    ({"name": "bold_driver", "decrease": 0.0}, "schedule.decrease"),
    ({"name": "bold_driver", "min_lr": 1.0, "max_lr": 0.1}, "schedule.min_lr"),
    ({"name": "bold_driver", "min_lr": -1.0}, "schedule.min_lr"),
    ({"name": "bold_driver", "increse": 1.1}, "schedule.increse"),
]


@pytest.mark.parametrize("spec,key", BAD, ids=[f"{k}={s}" for s, k in BAD])
def test_bad_values_raise_config_error(spec, key):
    with pytest.raises(ConfigError) as e:
        SCHEDULES.build(spec, key="schedule")
    assert e.value.key == key
    assert key in str(e.value)


# --------------------------------------------------------------------------------------
# through the training loop
# --------------------------------------------------------------------------------------

def _digits_data(n_train=300, n_val=150):
    datasets = pytest.importorskip("nets.data", reason="nets.data not importable")
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(d.target))[:n_train + n_val]
    X, y = d.data[idx] / 16.0, d.target[idx].astype(np.int64)
    return datasets.Data(X[:n_train], y[:n_train], X[n_train:], y[n_train:],
                         "classification", 10, (1, 8, 8), "digits")


def _train(schedule, epochs=15, lr=2.0, **train):
    # A large rate on a softmax net: the loss rises now and then, so bold driver both
    # increases and cuts (a sigmoid/mse net on digits sits on a plateau and never rises).
    train_mod = pytest.importorskip("nets.train", reason="nets.train not importable")
    cfg = {"seed": 3,
           "model": {"name": "mlp", "hidden": [16], "activation": "tanh",
                     "output": "softmax"},
           "loss": "cross_entropy",
           "optimizer": {"name": "sgd", "lr": lr, "weight_decay": 1e-4},
           "schedule": schedule,
           "train": {"epochs": epochs, **train}}
    return train_mod.train(cfg, data=_digits_data())[1]


def test_bold_driver_every_epoch_equals_every_step_full_batch():
    spec = {"name": "bold_driver", "increase": 1.1, "decrease": 0.5}
    by_epoch = _train({**spec, "every": "epoch"})
    by_step = _train({**spec, "every": "step"})
    assert by_epoch.history == by_step.history
    # Per epoch, the schedule also decides once after the last epoch (a rate no update
    # uses); per step there is no step after the last one. Otherwise the same events.
    assert [e for e in by_epoch.events if e[0] < 15] == by_step.events
    kinds = {e for _, e in by_epoch.events}
    assert {"increase", "decrease"} <= kinds, by_epoch.events  # both branches exercised


def test_bold_driver_rollback_never_records_a_rise():
    res = _train({"name": "bold_driver", "increase": 1.1, "decrease": 0.5, "rollback": True})
    loss = res.history["train/loss"]
    assert any(e == "rollback" for _, e in res.events), res.events
    assert all(b <= a for a, b in zip(loss, loss[1:])), loss
    # The recorded lr halves right after each rollback.
    lr = res.history["lr"]
    for epoch, event in res.events:
        if event == "rollback" and epoch + 1 < len(lr):
            assert lr[epoch + 1] == pytest.approx(lr[epoch] * 0.5)


def test_bold_driver_rollback_every_step_retakes_the_step_full_batch():
    # Documented difference (nets/schedules.py): per step, the rejected point is recorded
    # in the epoch curve before the next step rejects it; that next step restores the
    # weights and retakes the update from them with the cut rate, so every epoch still
    # makes exactly one update and the run recovers to the same kind of decisions.
    spec = {"name": "bold_driver", "increase": 1.1, "decrease": 0.5, "rollback": True}
    by_epoch = _train({**spec, "every": "epoch"})
    by_step = _train({**spec, "every": "step"})
    assert any(e == "rollback" for _, e in by_step.events), by_step.events
    assert by_step.steps == by_step.epochs
    loss = by_step.history["train/loss"]
    for step, event in by_step.events:
        if event == "rollback":
            # step t judged the update of step t-1 (recorded as epoch t): a rise.
            assert loss[step] > loss[step - 1]
            # the retaken step starts from the weights of epoch t-1 and lowers the loss.
            if step + 1 < len(loss):
                assert loss[step + 1] < loss[step]
    # Decisions agree up to the first rollback (before it both see the same losses).
    first = next(t for t, e in by_epoch.events if e == "rollback")
    assert by_step.history["train/loss"][:first] == by_epoch.history["train/loss"][:first]


def test_warmup_wrapping_bold_driver_with_rollback():
    res = _train({"name": "warmup", "steps": 1,
                  "after": {"name": "bold_driver", "increase": 1.1, "decrease": 0.5,
                            "rollback": True}}, lr=4.0)
    loss = res.history["train/loss"]
    rolled = [e for e, kind in res.events if kind == "rollback"]
    assert rolled, res.events
    for e in rolled:  # the rejected epoch is recorded with the restored parameters
        assert loss[e] == loss[e - 1]
