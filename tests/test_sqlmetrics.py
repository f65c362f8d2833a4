"""Metric points written straight into a SQLite store's tables (``nets.store.sqlmetrics``)
are stored exactly as MLflow's own ``log_batch`` stores them, read back through MLflow."""

from __future__ import annotations

import sqlite3

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conftest import sqlite_uri
from nets.store import sqlmetrics
from nets.store.client import prepare_store

# Batches as a run could send them: duplicates within a batch and across batches, steps
# out of order, a later timestamp at the same step, the same step and time with another
# value, a summary at step 0 after later steps, negative and huge values.
BATCHES = [
    [Metric("loss", 2.0, 1000, 0), Metric("acc", 0.1, 1000, 0), Metric("loss", 2.0, 1000, 0)],
    [Metric("loss", 1.5, 1010, 2), Metric("loss", 1.7, 1005, 1), Metric("acc", 0.3, 1010, 2)],
    [Metric("loss", 1.5, 1010, 2), Metric("loss", 1.4, 1020, 2), Metric("acc", 0.2, 1020, 2)],
    [Metric("loss", 1.6, 1020, 2), Metric("grad/norm", -3.5e300, 1030, 3)],
    [Metric("best_acc", 0.3, 1040, 0), Metric("acc", 0.25, 1040, 1)],
    [Metric("loss", 1.4, 1020, 2)],
]


def _latest(db, run_id):
    with sqlite3.connect(db) as con:
        return sorted(con.execute("SELECT key, value, timestamp, step, is_nan FROM "
                                  "latest_metrics WHERE run_uuid = ?", (run_id,)))


def _points(db, run_id):
    with sqlite3.connect(db) as con:
        return sorted(con.execute("SELECT key, value, timestamp, step, is_nan FROM metrics "
                                  "WHERE run_uuid = ?", (run_id,)))


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "mlruns" / "mlflow.db"
    uri = sqlite_uri(db)
    return db, uri, prepare_store(uri), MlflowClient(uri)


def test_points_are_stored_as_mlflow_stores_them(store):
    db, uri, exp_id, client = store
    by_mlflow, by_nets = (client.create_run(exp_id).info.run_id for _ in range(2))
    writer = sqlmetrics.Writer.open(uri)
    assert writer is not None
    for batch in BATCHES:
        client.log_batch(by_mlflow, metrics=batch)
        writer.log_metrics(by_nets, batch)

    assert _points(db, by_nets) == _points(db, by_mlflow)
    assert _latest(db, by_nets) == _latest(db, by_mlflow)
    mine, theirs = client.get_run(by_nets).data, client.get_run(by_mlflow).data
    assert mine.metrics == theirs.metrics and mine.metrics["loss"] == 1.6
    for key in theirs.metrics:
        assert ([(m.step, m.timestamp, m.value) for m in client.get_metric_history(by_nets, key)]
                == [(m.step, m.timestamp, m.value)
                    for m in client.get_metric_history(by_mlflow, key)])


def test_a_deleted_or_unknown_run_is_mlflow_s_error_and_nothing_is_written(store):
    db, uri, exp_id, client = store
    run_id = client.create_run(exp_id).info.run_id
    client.delete_run(run_id)
    writer = sqlmetrics.Writer.open(uri)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        writer.log_metrics(run_id, BATCHES[0])
    with pytest.raises(MlflowException, match="not found"):
        writer.log_metrics("0" * 32, BATCHES[0])
    assert _points(db, run_id) == [] and _latest(db, run_id) == []
    client.restore_run(run_id)
    writer.log_metrics(run_id, BATCHES[0])          # the connection is still usable
    assert client.get_run(run_id).data.metrics == {"loss": 2.0, "acc": 0.1}


def test_any_other_store_goes_through_mlflow(tmp_path, store):
    db, uri, _, _ = store
    assert sqlmetrics.Writer.open("http://127.0.0.1:5000") is None
    assert sqlmetrics.Writer.open(sqlite_uri(tmp_path / "absent.db")) is None
    other = tmp_path / "other.db"                    # a metrics table with another column
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE metrics (key, value, timestamp, run_uuid, step, is_nan, "
                    "model_id)")
        con.execute("CREATE TABLE latest_metrics (key, value, timestamp, step, is_nan, "
                    "run_uuid)")
    assert sqlmetrics.Writer.open(sqlite_uri(other)) is None
    with sqlite3.connect(db) as con:                 # a trigger MLflow might rely on
        con.execute("CREATE TRIGGER t AFTER INSERT ON metrics BEGIN SELECT 1; END")
    assert sqlmetrics.Writer.open(uri) is None


def test_a_run_recorder_writes_its_curves_through_it(store):
    from nets.store.write import RunRecorder

    db, uri, exp_id, client = store
    rec = RunRecorder(uri, exp_id, "r")
    for epoch in range(5):
        rec.log_metrics({"train/loss": 1.0 / (epoch + 1), "val/acc": 0.1 * epoch}, epoch)
    rec.set_tags({"nets.note": "deferred"}, defer=True)
    rec.flush()
    run = client.get_run(rec.run_id)
    assert sqlmetrics.writer_for(uri) is not None
    assert len(client.get_metric_history(rec.run_id, "curves/loss_train")) == 5
    assert run.data.metrics["curves/loss_train"] == pytest.approx(0.2)
    assert run.data.tags["nets.note"] == "deferred"


def test_a_store_made_again_at_the_same_path_is_opened_again(tmp_path, store):
    """A process that keeps its writer must not write into a deleted store's file."""
    original, _, exp_id, client = store
    run_id = client.create_run(exp_id).info.run_id
    db = tmp_path / "copy" / "mlflow.db"
    db.parent.mkdir()

    def copy():
        with sqlite3.connect(original) as src, sqlite3.connect(db) as dest:
            src.backup(dest)
        src.close()
        dest.close()

    copy()
    first = sqlmetrics.writer_for(sqlite_uri(db))
    db.unlink()
    copy()                                           # the same path, another file
    second = sqlmetrics.writer_for(sqlite_uri(db))
    assert second is not None and second is not first
    second.log_metrics(run_id, BATCHES[0])
    assert [p[:2] for p in _points(db, run_id)] == [("acc", 0.1), ("loss", 2.0)]
