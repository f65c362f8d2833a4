"""Metric names: laid out for MLflow's UI, and records of either spelling read back.

MLflow 3's UI (``RunsChartsCardConfig.getBaseChartAndSectionConfigs`` and
``extractChartSectionName`` in the UI's ``runs-charts.types``) puts each metric in the
section named by its key up to the last ``/``, orders the named sections by name and
puts keys without a ``/`` last, in "Model metrics"; charts inside a section are ordered
by key. ``sections`` below is that rule; the browser test checks the real page.

Records written before the rename carry the engine's names (``train/loss``,
``best/val_accuracy``): a store rewritten to those names (SQL on the SQLite file, as the
previous version wrote it) must give the same report, reproduce identically and get the
same diagnosis.
"""

from __future__ import annotations

import shutil
import sqlite3
import time

import pytest
from mlflow.tracking import MlflowClient

import test_report as tr
from nets.app import diagnose
from nets.report import sweep as rsweep
from nets.runs import reproduce as rp
from nets.runs.job import JobSpec, run_job
from nets.store.client import prepare_store
from nets.store.tags import logged_key, nets_key

MODEL_METRICS = "Model metrics"   # MLflow's section of keys without a "/"


def sections(keys) -> list[tuple[str, list[str]]]:
    """MLflow's run page layout of ``keys``: ``[(section, [key, ...]), ...]``."""
    by = {}
    for k in sorted(keys):
        by.setdefault(k.rpartition("/")[0] or MODEL_METRICS, []).append(k)
    named = sorted(s for s in by if s != MODEL_METRICS)
    return [(s, by[s]) for s in named + ([MODEL_METRICS] if MODEL_METRICS in by else [])]


def logged_keys(uri: str, run_id: str) -> set[str]:
    return set(MlflowClient(uri).get_run(run_id).data.metrics)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """One run with the health monitor on: every kind of key nets logs."""
    root = tmp_path_factory.mktemp("names")
    uri = "sqlite:///" + str(root / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    status = run_job(JobSpec(tr.job_config(uri, 0.3, 0), uri, exp))
    assert status.status == "FINISHED"
    return uri, status.run_id


def test_the_first_section_holds_loss_and_accuracy_then_the_rate_then_health(classifier):
    layout = sections(logged_keys(*classifier))
    first, charts = layout[0]
    assert first == "curves"
    assert charts == ["curves/accuracy_train", "curves/accuracy_val", "curves/loss_train",
                      "curves/loss_val", "curves/lr"]
    health = [s for s, _ in layout[1:-1]]
    assert health and all(s.startswith("health/") for s in health), layout
    last, summaries = layout[-1]
    assert last == MODEL_METRICS
    assert {"best_val_accuracy", "best_epoch", "final_val_loss", "data_chance_accuracy"} \
        <= set(summaries)


def test_a_summary_is_searched_without_backquotes(classifier):
    uri, run_id = classifier
    best = MlflowClient(uri).get_run(run_id).data.metrics["best_val_accuracy"]
    found = MlflowClient(uri).search_runs(
        ["1"], f"metrics.best_val_accuracy >= {best}", order_by=["metrics.best_val_accuracy DESC"])
    assert [r.info.run_id for r in found] == [run_id]


@pytest.mark.parametrize("key", ["train/loss", "val/accuracy", "val/sse", "lr", "best/epoch",
                                 "final/val_loss", "data/val_is_train", "health/pred/entropy",
                                 "health/grad_norm/dense1", "usercheck/relu", "sweep/finished"])
def test_either_spelling_reads_as_the_engine_name(key):
    assert nets_key(logged_key(key)) == key and nets_key(key) == key


def old_names(db) -> int:
    """Rewrite a SQLite store's metric keys to the engine's names (the previous version)."""
    n = 0
    with sqlite3.connect(db) as con:
        for table in ("metrics", "latest_metrics"):
            for (key,) in con.execute(f"SELECT DISTINCT key FROM {table}").fetchall():
                if nets_key(key) != key:
                    n += con.execute(f"UPDATE {table} SET key = ? WHERE key = ?",
                                     (nets_key(key), key)).rowcount
    return n


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    """A tiny sweep, and a copy of its store with the previous version's metric names."""
    new, old = tmp_path_factory.mktemp("new"), tmp_path_factory.mktemp("old")
    uri = "sqlite:///" + str(new / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    parent = tr.make_sweep(uri, exp, "names", (0.3, 0.03), (0,), failed=False)
    time.sleep(0.01)
    shutil.copytree(new / "mlruns", old / "mlruns")
    assert old_names(old / "mlruns" / "mlflow.db") > 0
    old_uri = "sqlite:///" + str(old / "mlruns" / "mlflow.db")
    some = tr.children(old_uri, parent)[0].info.run_id
    assert "train/loss" in logged_keys(old_uri, some) and "best/val_accuracy" in \
        logged_keys(old_uri, some) and "curves/loss_train" not in logged_keys(old_uri, some)
    return {"new": uri, "old": old_uri, "parent": parent, "run": some}


def test_the_report_reads_the_old_names_as_the_new(two_stores):
    reports = {k: rsweep.make_report(two_stores[k], two_stores["parent"]) for k in ("new", "old")}
    rows = {k: [(r.run_id, r.value, r.epoch, r.final) for r in rep.runs]
            for k, rep in reports.items()}
    assert rows["old"] == rows["new"] and all(v is not None for _, v, _, _ in rows["new"])
    assert reports["old"].metric == reports["new"].metric == "best/val_accuracy"
    for a, b in zip(reports["new"].runs, reports["old"].runs):
        assert set(a.curves) == set(b.curves) >= {"train/loss", "val/loss", "val/accuracy"}
        for k in a.curves:
            assert [list(x) for x in a.curves[k]] == [list(x) for x in b.curves[k]]


def test_an_old_run_reproduces_identically(two_stores, capsys):
    report = rp.reproduce(two_stores["run"], two_stores["old"])
    assert report.identical, report.difference
    new = logged_keys(two_stores["old"], report.run_id)
    assert "curves/loss_train" in new and "train/loss" not in new   # written with the new names


def test_an_old_run_gets_the_same_diagnosis(two_stores, capsys):
    tag = {}
    for k in ("new", "old"):
        assert diagnose.main([two_stores["run"], "--uri", two_stores[k], "--no-tag"]) == 0
        out = capsys.readouterr().out
        tag[k] = out.splitlines()[0].split(": ", 1)[1]
        assert "\n  read " not in out   # nets' own names need no "read X as Y" line
    assert tag["old"] == tag["new"]
    run = MlflowClient(two_stores["new"]).get_run(two_stores["run"])
    assert tag["new"] == run.data.tags["nets.diagnosis"]


@pytest.mark.parametrize("metric", ["best_val_accuracy", "best/val_accuracy",
                                    "curves/loss_val", "val/loss"])
def test_report_metric_takes_either_name(two_stores, tmp_path, capsys, metric):
    rc, out, err = tr.run_main([two_stores["parent"], "--uri", two_stores["old"], "--metric",
                                metric, "--no-log", "--out", tmp_path], capsys)
    assert rc == 0, err
    assert ("best/val_accuracy" if "accuracy" in metric else "val/loss") in out
