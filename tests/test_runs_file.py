"""The runs file a sweep's launcher leaves on its parent (``nets.store.summary``): a report
reads the children from it, and only what changed since from the store, and gets the
same runs a search of them all gives.

A real SQLite store; children made with ``MlflowClient`` (params, tags, metrics with a
NaN, one still RUNNING), the file written with the launcher's function and read back by
``nets.report.sweep.collect``, compared with a search of every child.
"""

from __future__ import annotations

import math
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import sqlite_uri
from nets.report import sweep as rsweep
from nets.runs import records
from nets.store import read, summary
from nets.store.client import prepare_store


class Parent:
    """What ``records.log_sweep_runs`` needs of the launcher's parent recorder."""

    def __init__(self, client, run_id):
        self.client, self.run_id = client, run_id

    def log_file(self, path):
        self.client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags):
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """A parent with five children: four ended (one with a NaN metric, one FAILED), one
    still RUNNING when the file is written (margin 0: the file holds what came before)."""
    monkeypatch.setattr(summary, "MARGIN_MS", 0)
    uri = sqlite_uri(tmp_path / "mlflow.db")
    exp = prepare_store(uri)
    client = MlflowClient(uri)
    parent = client.create_run(exp, run_name="sweep s").info.run_id
    kids = []
    for i in range(5):
        run = client.create_run(exp, run_name=f"job {i}", tags={
            "mlflow.parentRunId": parent, "nets.config_hash": f"h{i}",
            "nets.task": "classification", **({"nets.only_here": "x"} if i == 2 else {})})
        rid = run.info.run_id
        client.log_param(rid, "optimizer.lr", str(0.1 * (i + 1)))
        client.log_param(rid, "seed", str(i))
        client.log_metric(rid, "best/val_accuracy", 0.5 + 0.1 * i, step=0)
        if i == 1:
            client.log_metric(rid, "final/train_loss", math.nan, step=0)
        if i < 4:
            client.set_terminated(rid, "FAILED" if i == 3 else "FINISHED")
        kids.append(rid)
        time.sleep(0.003)
    time.sleep(0.01)      # the file's time after every end so far
    records.log_sweep_runs(Parent(client, parent), uri)
    return {"uri": uri, "exp": exp, "client": client, "parent": parent, "kids": kids}


def _searched(s) -> dict:
    runs = read.search_runs(s["uri"], [s["exp"]], f"tags.`mlflow.parentRunId` = '{s['parent']}'")
    return {r.info.run_id: r for r in runs}


def _same(a, b) -> None:
    for f in ("run_id", "run_name", "status", "start_time", "end_time", "experiment_id",
              "lifecycle_stage", "artifact_uri"):
        assert getattr(a.info, f) == getattr(b.info, f), f
    assert a.data.params == b.data.params and a.data.tags == b.data.tags
    assert a.data.metrics.keys() == b.data.metrics.keys()
    for k, v in a.data.metrics.items():
        assert v == b.data.metrics[k] or (math.isnan(v) and math.isnan(b.data.metrics[k]))


def _from_file(s):
    parent = read.get_run(s["uri"], s["parent"])
    return summary.children(s["client"], s["uri"], [s["exp"]], parent)


def test_the_file_holds_every_child_as_a_search_returns_it(sweep):
    runs, again = _from_file(sweep)
    searched = _searched(sweep)
    assert [r.info.run_id for r in runs] == list(searched)      # and in the search's order
    assert again == 0          # nothing started or ended since (margin 0)
    for r in runs:
        _same(r, searched[r.info.run_id])
    tags = read.get_run(sweep["uri"], sweep["parent"]).data.tags
    assert int(tags[summary.SINCE_TAG]) <= summary.now_ms()


def test_what_changed_after_the_file_is_read_from_the_store(sweep):
    """A run that ended after it, one deleted, one added: the report sees all three."""
    c, kids = sweep["client"], sweep["kids"]
    c.set_terminated(kids[4], "FINISHED")
    c.log_metric(kids[4], "best/val_accuracy", 0.99, step=1)
    c.delete_run(kids[0])
    new = c.create_run(sweep["exp"], run_name="late", tags={
        "mlflow.parentRunId": sweep["parent"], "nets.config_hash": "h9"}).info.run_id
    runs, again = _from_file(sweep)
    searched = _searched(sweep)
    assert kids[0] not in searched and new in searched
    assert [r.info.run_id for r in runs] == list(searched)
    assert again == 2          # the one ended since and the one added
    for r in runs:
        _same(r, searched[r.info.run_id])
    parent = read.get_run(sweep["uri"], sweep["parent"])
    sw = rsweep.collect(c, sweep["uri"], parent)
    assert sw.source == f"{summary.RUNS_FILE} (5 runs, 2 read again)"
    row = next(r for r in sw.runs if r.run_id == kids[4])
    assert row.status == "FINISHED" and row.metrics["best/val_accuracy"] == 0.99


def test_the_report_from_the_file_ranks_what_a_search_ranks(sweep):
    uri, parent = sweep["uri"], sweep["parent"]
    a = rsweep.make_report(uri, parent)
    b = rsweep.make_report(uri, parent, method="sqlite")       # a forced way: searched
    assert a.sweep.source.startswith(summary.RUNS_FILE) and b.sweep.source == "search"
    assert [(r.run_id, r.status, r.value) for r in a.runs] == \
        [(r.run_id, r.status, r.value) for r in b.runs]


def test_a_file_that_is_not_the_tagged_one_or_not_ours_is_not_used(sweep):
    c, parent = sweep["client"], sweep["parent"]
    c.set_tag(parent, summary.SINCE_TAG, "12345")       # another ending's time
    assert _from_file(sweep) is None
    c.set_tag(parent, summary.SINCE_TAG, "not a time")
    assert _from_file(sweep) is None
    with pytest.raises(ValueError, match="not a nets runs file"):
        summary.unpack(b"\x1f\x8b garbage")
    sw = rsweep.collect(c, sweep["uri"], read.get_run(sweep["uri"], parent))
    assert sw.source == "search" and len(sw.runs) == 5


def test_pack_keeps_keys_a_run_lacks_apart_from_empty_values(sweep):
    runs = list(_searched(sweep).values())
    runs[0].data.tags["empty"] = ""
    since, back = summary.unpack(summary.pack(runs, 7))
    assert since == 7
    assert back[0].data.tags["empty"] == "" and "empty" not in back[1].data.tags
    only = [r for r in back if "nets.only_here" in r.data.tags]
    assert len(only) == 1 and only[0].info.run_id == sweep["kids"][2]


def test_the_command_says_where_the_runs_came_from_and_fresh_asks_the_store(sweep, tmp_path,
                                                                            capsys):
    from nets.app import report as app_report

    args = [sweep["parent"], "--uri", sweep["uri"], "--out", tmp_path / "o", "--no-log"]
    assert app_report.main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    assert f"from {summary.RUNS_FILE} (5 runs, 0 read again)" in out
    assert app_report.main([str(a) for a in args + ["--fresh"]]) == 0
    assert "from search, curves" in capsys.readouterr().out
