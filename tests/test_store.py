"""``nets.store`` in-process: URI resolution, store preparation, sanitising, RunRecorder,
and concurrent writers on one SQLite store."""

from __future__ import annotations

import math
import re
import multiprocessing as mp
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from nets.store import client as store_client
from nets.store import uri as store_uri
from nets.store.client import prepare_store
from nets.store.uri import resolve_uri
from nets.store.write import RunRecorder, clean_key, finite, flatten


def sqlite_uri(path: Path) -> str:
    return "sqlite:///" + str(path)  # unresolved on purpose: resolve_uri must not need it


@pytest.fixture
def store(tmp_path):
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    return uri, prepare_store(uri, "t")


# -- resolve_uri -------------------------------------------------------------------------

def test_default_uri_is_sqlite_under_launch_dir(tmp_path):
    assert resolve_uri(None, tmp_path) == sqlite_uri((tmp_path / "mlruns" / "mlflow.db").resolve())
    assert resolve_uri("", tmp_path) == resolve_uri(None, tmp_path)


def test_relative_sqlite_path_made_absolute(tmp_path):
    uri = resolve_uri("sqlite:///rel/x.db", tmp_path)
    assert uri == sqlite_uri((tmp_path / "rel" / "x.db").resolve())
    assert Path(store_uri.sqlite_path(uri)).is_absolute()


def test_absolute_sqlite_path_kept(tmp_path):
    uri = sqlite_uri(tmp_path / "abs.db")
    assert uri.startswith("sqlite:////")
    assert resolve_uri(uri, "/somewhere/else") == uri


def test_env_var_wins_over_default(tmp_path, monkeypatch):
    env = sqlite_uri(tmp_path / "other" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    assert resolve_uri(None, tmp_path / "launch") == env


def test_relative_env_var_made_absolute_against_launch_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///envstore/m.db")
    assert resolve_uri(None, tmp_path) == sqlite_uri((tmp_path / "envstore" / "m.db").resolve())


def test_explicit_beats_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path / "env.db"))
    explicit = sqlite_uri(tmp_path / "explicit.db")
    assert resolve_uri(explicit, tmp_path) == explicit


def test_bare_directory_means_db_inside(tmp_path):
    assert resolve_uri("store", tmp_path) == sqlite_uri((tmp_path / "store" / "mlflow.db").resolve())
    assert resolve_uri(str(tmp_path / "abs_store"), "/elsewhere") == \
        sqlite_uri((tmp_path / "abs_store" / "mlflow.db").resolve())


def test_http_uri_untouched(tmp_path):
    assert resolve_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.parametrize("uri, shown", [
    ("http://alice:s3cret@mlflow.lab:5000/prefix", "http://mlflow.lab:5000/prefix"),
    ("https://token@mlflow.lab", "https://mlflow.lab"),
    # no host at all: a PostgreSQL socket URI (the copy in reproduce raised TypeError)
    ("postgresql+psycopg://nets:pw@/mlflow?host=/run/postgresql",
     "postgresql+psycopg:///mlflow?host=/run/postgresql"),
    ("http://u:p@[::1]:5000", "http://[::1]:5000"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:////tmp/mlruns/mlflow.db", "sqlite:////tmp/mlruns/mlflow.db"),
])
def test_safe_uri_hides_credentials_only(uri, shown):
    assert store_uri.safe_uri(uri) == shown


def test_read_search_runs_pages_and_limits(tmp_path, monkeypatch):
    from nets.store import read

    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    client = store_client.MlflowClient(uri)
    ids = {client.create_run(exp, tags={"k": str(i % 2)}).info.run_id for i in range(7)}
    monkeypatch.setattr(read, "SEARCH_PAGE", 3)        # 7 runs: three pages
    assert {r.info.run_id for r in read.search_runs(uri, [exp])} == ids
    assert len(read.search_runs(client, [exp], "tags.k = '1'")) == 3
    assert len(read.search_runs(uri, [exp], limit=4)) == 4
    assert {r.info.run_id for r in read.runs_by_id(uri, [exp], sorted(ids)[:5] + ["x"])} \
        == set(sorted(ids)[:5])
    assert read.get_run(uri, "0" * 32) is None and read.is_run_id(next(iter(ids)))
    with pytest.raises(read.StoreError, match="no experiment named 'nope'"):
        read.experiment_ids(uri, "nope")


def _history_store(tmp_path):
    """7 runs, two keys (one without a slash), points logged out of order, one step
    twice and one NaN; run 6 lacks ``val/loss``."""
    from mlflow.entities import Metric

    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    client = store_client.MlflowClient(uri)
    ids = []
    for i in range(7):
        run = client.create_run(exp).info.run_id
        keys = ("val/loss", "trainloss") if i < 6 else ("trainloss",)
        pts = [Metric(k, float(i + s / 10), 1000 + s, s) for k in keys for s in (3, 0, 2, 1)]
        pts += [Metric("trainloss", 99.0 + i, 2000, 2), Metric("val/loss", float("nan"), 1, 4)]
        client.log_batch(run, metrics=pts[:-1] if i == 6 else pts)
        ids.append(run)
    return uri, client, ids


def test_curves_fetched_in_pages_equal_per_run_histories(tmp_path, monkeypatch):
    """Runs added page by page, in chunks smaller than a page, give exactly each run's
    own ``get_metric_history`` (sorted by step, the latest point of a step) on every
    path a SQLite file allows; a key a run lacks is not asked for."""
    from nets.store import curves as store_curves, read
    from nets.store.curves import CurveFetch, fetch_curves

    uri, client, ids = _history_store(tmp_path)
    want = {}
    for r in ids:
        for k in ("val/loss", "trainloss"):
            hist = client.get_metric_history(r, k)
            if hist:
                last = {}
                for m in sorted(hist, key=lambda m: (m.step, m.timestamp, m.value)):
                    last[m.step] = m.value
                want.setdefault(r, {})[k] = (sorted(last), [last[s] for s in sorted(last)])
    assert want[ids[0]]["trainloss"] == ([0, 1, 2, 3], [0.0, 0.1, 99.0, 0.3])
    monkeypatch.setattr(store_curves, "REST_CHUNK", 2)
    monkeypatch.setattr(store_curves, "SQL_CHUNK", 2)        # several queries
    calls = []
    real = client.get_metric_history
    monkeypatch.setattr(client, "get_metric_history",
                        lambda r, k: calls.append((r, k)) or real(r, k))
    for method in ("sqlite", "per-run"):
        with CurveFetch(uri, client, method) as fetch:
            for page in read.pages(iter(ids), 3):               # pages of 3: 3 + 3 + 1
                avail = {r: client.get_run(r).data.metrics.keys() for r in page}
                fetch.add(page, ["val/loss", "trainloss"], avail)
            fetch.add(ids[:2], ["trainloss"])                   # asked twice: fetched once
            got, how = fetch.result()
        assert how == method
        assert got.keys() == want.keys() and "val/loss" not in got[ids[6]]
        for r, curves in want.items():
            assert got[r].keys() == curves.keys()
            for k, (steps, values) in curves.items():
                assert got[r][k][0].tolist() == steps
                np.testing.assert_array_equal(got[r][k][1], values)   # NaN where logged
    assert sorted(calls) == sorted((r, k) for r in want for k in want[r])   # one call each
    assert [len(p) for p in read.pages(range(7), 3)] == [3, 3, 1]
    assert fetch_curves(uri, [], ["trainloss"]) == ({}, "none")
    with pytest.raises(read.StoreError, match="not an http"):
        CurveFetch(uri, client, "rest")


def test_read_finished_by_tag_sql_and_search_agree(tmp_path, monkeypatch):
    from nets.store import read

    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    client = store_client.MlflowClient(uri)
    want = {}
    for i, status in enumerate(["FINISHED", "FAILED", "FINISHED", "KILLED", "FINISHED"]):
        run = client.create_run(exp, tags={"nets.config_hash": f"h{i % 3}"}).info.run_id
        client.set_terminated(run, status)
        if status == "FINISHED":
            want[f"h{i % 3}"] = run
    client.create_run(exp, tags={"other": "x"})      # RUNNING, no hash: not listed
    deleted = client.create_run(exp, tags={"nets.config_hash": "h9"}).info.run_id
    client.set_terminated(deleted, "FINISHED")
    client.delete_run(deleted)
    assert read.finished_by_tag(uri, exp, "nets.config_hash") == want
    monkeypatch.setattr(read, "sqlite_path", lambda uri: None)   # the search path
    assert read.finished_by_tag(uri, exp, "nets.config_hash") == want


def test_read_children_sql_equal_mlflow_search(tmp_path, monkeypatch):
    """A SQLite store's children read with SQL: the runs, fields and order of MLflow's
    search (ties of start time, a NaN metric, a deleted child, another parent's child,
    a second experiment, a run with nothing logged)."""
    from mlflow.entities import Metric, Param, RunTag

    from nets.store import read, sqlruns

    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    client = store_client.MlflowClient(uri)
    other_exp = client.create_experiment("other")
    parent = client.create_run(exp).info.run_id
    stranger = client.create_run(exp).info.run_id
    for i, t in enumerate((5000, 5000, 5000, 7000, 1000, 9000, 7000)):
        run = client.create_run(other_exp if i == 3 else exp, start_time=t, run_name=f"r{i}",
                                tags={"mlflow.parentRunId": stranger if i == 6 else parent})
        rid = run.info.run_id
        if i != 4:
            client.log_batch(rid, metrics=[Metric("val/loss", math.nan if i == 1 else 0.5 + i,
                                                  1, 0), Metric("best/epoch", i, 1, 0)],
                             params=[Param("lr", str(0.1 * i)), Param("seed", str(i))],
                             tags=[RunTag("nets.config_hash", f"h{i}")])
        if i == 2:
            client.delete_run(rid)
        elif i != 5:
            client.set_terminated(rid, "FAILED" if i == 0 else "FINISHED")
    ids = [exp, other_exp]

    def flat(pages):
        return [(r.info.run_id, r.info.run_name, r.info.status, r.info.start_time,
                 r.info.end_time, r.info.experiment_id, r.info.lifecycle_stage,
                 r.info.artifact_uri, r.data.params, r.data.tags,
                 {k: "nan" if math.isnan(v) else v for k, v in r.data.metrics.items()})
                for p in pages for r in p]

    by_sql = flat(read.child_pages(client, uri, ids, parent, page=2))
    assert not hasattr(next(iter(read.child_pages(client, uri, ids, parent)))[0], "inputs")

    def refuse(db):
        raise sqlite3.DatabaseError("not asked")

    monkeypatch.setattr(sqlruns, "connect", refuse)
    by_mlflow = flat(read.child_pages(client, uri, ids, parent, page=2))
    assert len(by_sql) == 5 and by_sql == by_mlflow


@pytest.mark.parametrize("edge,end,ascending,n", [
    (100, 10_000, True, 8), (10_000, 100, False, 8), (5, 7, True, 8), (7, 5, False, 8),
    (42, 42, True, 4), (0, 999, True, 1)])
def test_search_ranges_cover_the_rest_once_in_order(edge, end, ascending, n):
    """The start-time ranges a split search reads: every millisecond from the first
    page's edge to the other end in exactly one range, in the search's order."""
    from nets.store.search import _ranges

    spans = [tuple(int(x) for x in re.findall(r"\d+", f)) for f in _ranges(edge, end,
                                                                         ascending, n)]
    assert 1 <= len(spans) <= n
    covered = [t for a, b in spans for t in range(a, b + 1)]
    lo, hi = min(edge, end), max(edge, end)
    assert sorted(covered) == list(range(lo, hi + 1))
    firsts = [a for a, _ in spans]
    assert firsts == sorted(firsts, reverse=not ascending)


def test_artifact_root_next_to_db(tmp_path):
    assert store_uri.artifact_root(sqlite_uri(tmp_path / "s" / "mlflow.db")) == \
        str(tmp_path / "s" / "artifacts")
    assert store_uri.artifact_root("http://x") is None


# -- prepare_store -------------------------------------------------------------------------

def test_prepare_store_idempotent_and_wal(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    first = prepare_store(uri, "exp")
    second = prepare_store(uri, "exp")
    assert first == second
    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    exp = MlflowClient(uri).get_experiment(first)
    assert exp.name == "exp"
    loc = exp.artifact_location
    assert loc.startswith("file://")
    assert str(tmp_path / "mlruns" / "artifacts") in loc
    other = prepare_store(uri, "exp two")
    assert other != first


def test_prepare_store_restores_deleted_experiment(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = sqlite_uri(tmp_path / "mlflow.db")
    eid = prepare_store(uri, "gone")
    MlflowClient(uri).delete_experiment(eid)
    assert prepare_store(uri, "gone") == eid
    assert MlflowClient(uri).get_experiment(eid).lifecycle_stage == "active"


# -- sanitising ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,want", [
    ("acc@1", "acc_1"),
    ("a//b", "a/b"),
    ("/leading", "leading"),
    ("trailing/", "trailing"),
    ("train/loss", "train/loss"),
    ("ok-key_1.2 :x", "ok-key_1.2 :x"),
    ("", "_"),
    ("//", "_"),
])
def test_clean_key_examples(raw, want):
    assert clean_key(raw) == want


def test_clean_key_truncates_long_keys():
    assert len(clean_key("k" * 300)) == 250
    assert clean_key("k" * 300) == "k" * 250


def test_clean_keys_are_accepted_by_mlflow(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    rec = RunRecorder(uri, eid, "keys")
    raw = ["acc@1", "a//b", "/lead", "x" * 300, "weird#key$%"]
    rec.log_metrics({k: 1.0 for k in raw}, 0)
    rec.end()
    got = MlflowClient(uri).get_run(rec.run_id).data.metrics
    assert set(got) == {clean_key(k) for k in raw}


@pytest.mark.parametrize("value,want", [
    (1, 1.0), (2.5, 2.5), (np.float32(1.5), 1.5), (np.float64(-3.0), -3.0), (np.int64(4), 4.0),
    (float("nan"), None), (float("inf"), None), (-float("inf"), None),
    (np.float32("nan"), None), (np.float32("inf"), None), (np.float64(1e309), None),
    ("abc", None), (None, None), ("2.0", 2.0),
])
def test_finite(value, want):
    got = finite(value)
    assert got == want
    if want is not None:
        assert type(got) is float


def test_flatten_nested_config():
    cfg = {"optimizer": {"name": "sgd", "lr": 0.1},
           "model": {"hidden": [128, 64], "activation": {"name": "leaky_relu", "alpha": 0.1},
                     "conv": [{"channels": 8}]},
           "seed": 3, "train": {"batch_size": None, "shuffle": True}, "empty": {}}
    assert flatten(cfg) == {
        "optimizer.name": "sgd", "optimizer.lr": "0.1",
        "model.hidden": "[128, 64]", "model.activation.name": "leaky_relu",
        "model.activation.alpha": "0.1", "model.conv": '[{"channels": 8}]',
        "seed": "3", "train.batch_size": "None", "train.shuffle": "True", "empty": "{}",
    }


# -- RunRecorder -------------------------------------------------------------------------------

def test_recorder_drops_nonfinite_metrics_and_tags_them(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    rec = RunRecorder(uri, eid, "nonfinite", tags={"nets.config_hash": "abc", "n": 3})
    rec.log_metrics({"train/loss": 1.0, "val/loss": 2.0}, 0)
    rec.log_metrics({"train/loss": float("nan"), "val/loss": np.float32(1.5)}, 1)
    rec.log_metrics({"train/loss": float("inf"), "val/loss": -float("inf")}, 2)
    rec.end("FINISHED")
    rec.end("FAILED")  # a second end is ignored
    c = MlflowClient(uri)
    run = c.get_run(rec.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "nonfinite"
    assert run.data.tags["nets.config_hash"] == "abc"
    assert run.data.tags["n"] == "3"
    assert [(m.step, m.value) for m in c.get_metric_history(rec.run_id, "curves/loss_train")] == [(0, 1.0)]
    assert [(m.step, m.value) for m in c.get_metric_history(rec.run_id, "curves/loss_val")] == \
        [(0, 2.0), (1, 1.5)]
    assert run.data.tags["nets.nonfinite_metrics"] == "3"
    assert run.data.tags["nets.first_nonfinite"] == "curves/loss_train@1"
    for key in ("curves/loss_train", "curves/loss_val"):
        assert all(math.isfinite(m.value) and abs(m.value) < 1e300
                   for m in c.get_metric_history(rec.run_id, key))


def test_recorder_without_nonfinite_sets_no_tag(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    rec = RunRecorder(uri, eid, "clean")
    rec.log_metrics({"a": 1}, np.int64(3))
    rec.end()
    run = MlflowClient(uri).get_run(rec.run_id)
    assert "nets.nonfinite_metrics" not in run.data.tags
    assert [m.step for m in MlflowClient(uri).get_metric_history(rec.run_id, "a")] == [3]


def test_recorder_cuts_long_params(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    rec = RunRecorder(uri, eid, "params")
    long = "x" * 7000
    rec.log_params({"short": 1, "long": long, "exact": "y" * 6000, "bad@key": "v"})
    rec.end()
    params = MlflowClient(uri).get_run(rec.run_id).data.params
    assert params["short"] == "1"
    assert len(params["long"]) <= 6000
    assert params["long"].startswith("x" * 5000)
    assert params["long"].endswith("(see config.yaml)")
    assert params["exact"] == "y" * 6000
    assert params["bad_key"] == "v"


def test_recorder_child_run_and_status(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    parent = RunRecorder(uri, eid, "parent")
    child = RunRecorder(uri, eid, "child", parent_run_id=parent.run_id)
    child.log_text("hello", "notes/a.txt")
    child.end("KILLED")
    parent.end("FAILED")
    c = MlflowClient(uri)
    assert c.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert c.get_run(child.run_id).info.status == "KILLED"
    assert c.get_run(parent.run_id).info.status == "FAILED"
    assert [a.path for a in c.list_artifacts(child.run_id, "notes")] == ["notes/a.txt"]


def test_end_orphans_ends_running_runs(store):
    from mlflow.tracking import MlflowClient

    uri, eid = store
    a = RunRecorder(uri, eid, "orphan", tags={"sweep": "s1"})
    b = RunRecorder(uri, eid, "other", tags={"sweep": "s2"})
    ended = store_client.end_orphans(uri, [eid], "tags.sweep = 's1'")
    assert ended == [a.run_id]
    c = MlflowClient(uri)
    assert c.get_run(a.run_id).info.status == "KILLED"
    assert c.get_run(b.run_id).info.status == "RUNNING"
    b.end()


def test_versions_tags():
    v = store_client.versions()
    assert {"nets.version", "numpy.version", "mlflow.version", "python.version"} <= set(v)
    assert v["numpy.version"] == np.__version__


# -- concurrent writers -----------------------------------------------------------------------

N_PROCS, N_EPOCHS = 8, 20


def _worker(uri: str, experiment_id: str, i: int, barrier) -> None:
    rec = RunRecorder(uri, experiment_id, f"worker{i}", tags={"worker": i})
    rec.log_params({"worker": i, "optimizer.lr": 0.1})
    barrier.wait(timeout=120)  # all runs exist: now write at the same time
    for epoch in range(N_EPOCHS):
        rec.log_metrics({"train/loss": 1.0 / (epoch + 1), "val/accuracy": epoch / N_EPOCHS,
                         "lr": 0.1}, epoch)
    rec.end("FINISHED")


@pytest.mark.slow
def test_eight_processes_write_one_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    eid = prepare_store(uri, "concurrent")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    procs = [ctx.Process(target=_worker, args=(uri, eid, i, barrier)) for i in range(N_PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "workers hung"
    assert [p.exitcode for p in procs] == [0] * N_PROCS
    c = MlflowClient(uri)
    runs = c.search_runs([eid], max_results=100)
    assert len(runs) == N_PROCS
    assert sorted(r.info.run_name for r in runs) == sorted(f"worker{i}" for i in range(N_PROCS))
    for r in runs:
        assert r.info.status == "FINISHED"
        for key in ("curves/loss_train", "curves/accuracy_val", "curves/lr"):
            hist = c.get_metric_history(r.info.run_id, key)
            assert sorted(m.step for m in hist) == list(range(N_EPOCHS)), (r.info.run_name, key)
