"""``nets-diagnose`` on runs that nets did not write.

Runs are logged with a plain ``MlflowClient`` (as a Keras or PyTorch script logging to
MLflow would), under nets' keys and under other tools' names read through ``--key``.
The verdict must be the one nets gives the same curves in its own runs: the same
``diagnose`` call on the same history, and for a real nets run copied metric by metric,
the very ``nets.diagnosis`` tag nets wrote.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from nets import diagnostics
from nets.app.diagnose import main
from nets.diagnostics import RunInfo
from nets.runs.job import JobSpec, run_job
from nets.store.client import prepare_store

E = 12
t = np.arange(E + 1, dtype=float)
CURVES = {
    # loss and accuracy both improve
    "healthy": {"train/loss": 2.3 * np.exp(-t / 4) + 0.1, "val/loss": 2.3 * np.exp(-t / 4) + 0.15,
                "train/accuracy": 0.1 + 0.85 * (1 - np.exp(-t / 3)),
                "val/accuracy": 0.1 + 0.8 * (1 - np.exp(-t / 3))},
    # the loss explodes after a few epochs
    "diverged": {"train/loss": 1.0 * 3.0 ** np.minimum(t, 8), "val/loss": 1.0 * 3.0 ** np.minimum(t, 8),
                 "train/accuracy": np.full(E + 1, 0.1), "val/accuracy": np.full(E + 1, 0.1)},
    # story 4: every input gets class 0; accuracy = its share; the loss hardly moves
    "collapsed": {"train/loss": 1.0 - 0.02 * (1 - np.exp(-t)), "val/loss": 1.0 - 0.02 * (1 - np.exp(-t)),
                  "train/accuracy": np.full(E + 1, 0.098), "val/accuracy": np.full(E + 1, 0.098),
                  "health/pred/top_class": np.zeros(E + 1),
                  "health/pred/top_class_share": np.full(E + 1, 1.0)},
}
SUMMARY = {"health/baseline/chance_accuracy": 0.1, "health/baseline/majority_accuracy": 0.1135}
THEIRS = {"train/loss": "loss", "val/loss": "val_loss", "train/accuracy": "accuracy",
          "val/accuracy": "val_acc"}
KEY_ARGS = [a for k, v in THEIRS.items() for a in ("--key", f"{k}={v}")]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    uri = "sqlite:///" + str(tmp_path_factory.mktemp("diagnose") / "mlflow.db")
    return uri, MlflowClient(uri)


@pytest.fixture
def store(shared, request, monkeypatch):
    """One SQLite store for the module (creating one costs seconds), an experiment per
    test, named after it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, client = shared
    name = "keras-" + "".join(c if c.isalnum() else "-" for c in request.node.name)
    return uri, client, client.create_experiment(name)


def log_plain(client, exp, curves, summary=(), rename=None, tags=None) -> str:
    """One run as another tool writes it: per-epoch steps, no nets tags."""
    run = client.create_run(exp, tags=dict(tags or {}))
    rid = run.info.run_id
    metrics = [Metric((rename or {}).get(k, k), float(v), 1000 + i, i)
               for k, vs in curves.items() for i, v in enumerate(vs) if math.isfinite(v)]
    metrics += [Metric(k, float(v), 0, 0) for k, v in dict(summary).items()]
    client.log_batch(rid, metrics=metrics)
    client.set_terminated(rid, "FINISHED")
    return rid


def nets_verdict(curves, summary) -> str:
    """What nets' own job computes for these curves (its RunInfo from the same facts)."""
    info = RunInfo(task="classification", chance_accuracy=summary.get("health/baseline/chance_accuracy"),
                   majority_accuracy=summary.get("health/baseline/majority_accuracy"))
    return diagnostics.summary(diagnostics.diagnose({k: list(v) for k, v in curves.items()}, info))


@pytest.mark.parametrize("case", sorted(CURVES))
@pytest.mark.parametrize("mapped", [False, True], ids=["nets-keys", "mapped-keys"])
def test_same_verdict_as_nets(store, case, mapped, capsys):
    uri, client, exp = store
    curves = CURVES[case]
    rename = THEIRS if mapped else None
    rid = log_plain(client, exp, curves, SUMMARY, rename)
    assert main([rid, "--uri", uri, *(KEY_ARGS if mapped else [])]) == 0
    out = capsys.readouterr().out
    tags = client.get_run(rid).data.tags
    expected = nets_verdict(curves, SUMMARY)
    assert tags["nets.diagnosis"] == expected
    first_line = out.splitlines()[0]
    assert first_line.startswith(f"run {rid} (") and first_line.endswith(f"): {expected}")
    assert tags["mlflow.note.content"].startswith(f"**Diagnosis: {expected.replace(',', ', ')}**")
    first = expected.split(",")[0]
    assert first == {"healthy": "healthy", "diverged": "diverged",
                     "collapsed": "class_collapse"}[case]
    # rules whose health metrics the run lacks say they were skipped
    skipped = "saturated_units, dead_units, lr_too_low"
    if case != "collapsed":
        skipped = "class_collapse, " + skipped
    assert f"skipped (need health metrics this run did not log): {skipped}\n" in out
    if mapped:
        assert "read loss as train/loss" in out


def test_collapse_without_health_metrics_is_named_as_skipped(store, capsys):
    uri, client, exp = store
    curves = {k: v for k, v in CURVES["collapsed"].items() if not k.startswith("health/")}
    rid = log_plain(client, exp, curves, rename=THEIRS)
    assert main([rid, "--uri", uri, "--no-tag", *KEY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "class_collapse" not in out.splitlines()[0]
    assert ("skipped (need health metrics this run did not log): class_collapse, "
            "saturated_units, dead_units, lr_too_low") in out
    assert "nets.diagnosis" not in client.get_run(rid).data.tags      # --no-tag writes nothing


def test_a_nets_run_copied_by_hand_gets_its_own_verdict(store, tmp_path, capsys):
    uri, client, _ = store
    exp = prepare_store(uri, "nets-own")
    cfg = {"dataset": {"name": "digits", "subsample": 300}, "model": {"name": "mlp", "hidden": [16],
           "activation": "tanh"}, "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.5},
           "train": {"epochs": 6, "batch_size": 32},
           "tracking": {"progress": "off", "log_plots": False, "log_weights": False}}
    status = run_job(JobSpec(cfg, uri, exp))
    original = client.get_run(status.run_id)
    curves = {k: [m.value for m in sorted(client.get_metric_history(status.run_id, k),
                                          key=lambda m: m.step)]
              for k in original.data.metrics if not k.startswith(("final_", "best_", "data_",
                                                                   "usercheck/"))}
    summary = {k: v for k, v in original.data.metrics.items() if k.startswith("data_")}
    copy = log_plain(client, client.create_experiment("copies"), curves, summary)
    assert main([copy, "--uri", uri]) == 0
    capsys.readouterr()
    assert client.get_run(copy).data.tags["nets.diagnosis"] == original.data.tags["nets.diagnosis"]


def test_sweep_and_experiment_selection(store, capsys):
    uri, client, exp = store
    a = log_plain(client, exp, CURVES["healthy"], tags={"nets.sweep_id": "sw1"})
    b = log_plain(client, exp, CURVES["diverged"], tags={"nets.sweep_id": "sw1"})
    log_plain(client, exp, CURVES["healthy"], tags={"nets.sweep_id": "other"})
    assert main(["--sweep", "sw1", "--uri", uri, "--no-tag"]) == 0
    out = capsys.readouterr().out
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("run ")] == [a, b]
    name = client.get_experiment(exp).name
    assert main(["--experiment", name, "--uri", uri, "--no-tag"]) == 0
    assert len([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("run ")]) == 3


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("nets-diagnose: error: ")
    return line


def test_errors_are_one_line_and_write_nothing(store, tmp_path, capsys):
    uri, client, exp = store
    rid = log_plain(client, exp, CURVES["healthy"])
    assert main(["0123456789abcdef0123456789abcdef", "--uri", uri]) == 2
    assert "no run '0123456789abcdef0123456789abcdef'" in one_line_error(capsys)
    only_acc = log_plain(client, exp, {"acc": [0.5, 0.6, 0.7], "loss": [1.0]})
    assert main([only_acc, "--uri", uri]) == 2
    line = one_line_error(capsys)
    assert "has no usable curves" in line and "--key train/loss=loss" in line
    assert main([rid, "--uri", uri, "--key", "val/acc=val_acc"]) == 2
    assert "'val/acc' is not a key nets reads" in one_line_error(capsys)
    assert main(["--experiment", "nope", "--uri", uri]) == 2
    assert "no experiment 'nope'" in one_line_error(capsys)
    assert main(["--sweep", "nope", "--uri", uri]) == 2
    assert "no runs of sweep 'nope'" in one_line_error(capsys)
    assert main([rid, "--uri", str(tmp_path / "elsewhere")]) == 2
    assert "no MLflow store at" in one_line_error(capsys)
    assert "nets.diagnosis" not in client.get_run(rid).data.tags


def test_example_script_diagnosed(shared, tmp_path, capsys):
    """examples/diagnose_any_run: a plain-MLflow script's run, diagnosed through --key."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "diagnose_any_run" / "log_with_mlflow.py"
    uri = shared[0]
    p = subprocess.run([sys.executable, str(script), "--uri", uri, "--lr", "300", "--epochs", "6"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.split()[-1]
    assert main([rid, "--uri", uri, *KEY_ARGS]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"run {rid} (softmax-lr300): diverged"
    assert "read loss as train/loss, val_loss as val/loss" in out
    assert MlflowClient(uri).get_run(rid).data.tags["nets.diagnosis"] == "diverged"
