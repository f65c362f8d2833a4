"""A new SQLite store is a copy of the blank one MLflow built once (``nets.store.blank``):
the same store MLflow would have built, without its migrations."""

from __future__ import annotations

import sqlite3

import mlflow.store.db.utils as db_utils
import pytest
from mlflow.tracking import MlflowClient

from conftest import sqlite_uri
from nets.store import blank
from nets.store.client import prepare_store


def _dump(db):
    with sqlite3.connect(db) as con:
        schema = sorted(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall(),
                        key=str)
        rows = {t: con.execute(f'SELECT * FROM "{t}"').fetchall()
                for t in ("alembic_version", "workspaces", "experiment_tags")}
        exps = con.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage "
                           "FROM experiments ORDER BY experiment_id").fetchall()
    return schema, rows, exps


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(blank.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_copy_is_the_store_mlflow_builds_without_its_migrations(tmp_path, cache,
                                                                      monkeypatch):
    built, copied = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    prepare_store(sqlite_uri(built))
    assert blank.blank_path().is_file() and blank.blank_path().parent == cache

    def no_migrations(engine):
        raise AssertionError("MLflow migrated a store the blank should have seeded")

    monkeypatch.setattr(db_utils, "_initialize_tables", no_migrations)
    exp_id = prepare_store(sqlite_uri(copied))

    (s1, r1, e1), (s2, r2, e2) = _dump(built), _dump(copied)
    assert s1 == s2 and r1 == r2
    # Same experiments; each store's own names its own artifact directory.
    assert [e[:2] + e[3:] for e in e1] == [e[:2] + e[3:] for e in e2]
    assert e1[0][2] == e2[0][2]                            # Default: MLflow's location
    assert e2[1][2] == (tmp_path / "b" / "artifacts" / "nets").as_uri()
    with sqlite3.connect(copied) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    client = MlflowClient(sqlite_uri(copied))
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "loss", 0.5, step=3)
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    assert got.data.metrics == {"loss": 0.5} and got.info.status == "FINISHED"


def test_the_blank_holds_no_experiment_of_the_store_it_came_from(tmp_path, cache):
    prepare_store(sqlite_uri(tmp_path / "a" / "mlflow.db"), "mine")
    with sqlite3.connect(blank.blank_path()) as con:
        assert con.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
        assert con.execute("SELECT COUNT(*) FROM experiment_tags").fetchone() == (0,)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)


@pytest.mark.parametrize("content", [b"not a database at all", b""])
def test_a_broken_blank_costs_the_speed_not_the_store(tmp_path, cache, content):
    cache.mkdir()
    blank.blank_path().write_bytes(content)
    exp_id = prepare_store(sqlite_uri(tmp_path / "a" / "mlflow.db"))
    client = MlflowClient(sqlite_uri(tmp_path / "a" / "mlflow.db"))
    assert client.get_experiment(exp_id).name == "nets"
    assert not list((tmp_path / "a").glob("*.part"))


def test_an_existing_store_is_never_replaced(tmp_path, cache):
    db = tmp_path / "a" / "mlflow.db"
    exp_id = prepare_store(sqlite_uri(db))
    client = MlflowClient(sqlite_uri(db))
    run = client.create_run(exp_id)
    prepare_store(sqlite_uri(db))
    assert client.get_run(run.info.run_id).info.run_id == run.info.run_id


def test_another_mlflow_gets_a_blank_of_its_own(tmp_path, cache, monkeypatch):
    prepare_store(sqlite_uri(tmp_path / "a" / "mlflow.db"))
    first = blank.blank_path()
    monkeypatch.setattr(blank, "_key", lambda: "another-mlflow")
    assert blank.blank_path() != first and not blank.blank_path().exists()
    prepare_store(sqlite_uri(tmp_path / "b" / "mlflow.db"))
    assert blank.blank_path().is_file() and first.is_file()
