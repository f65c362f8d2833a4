"""Metric points written straight into a local SQLite store's tables, as MLflow writes them.

MLflow's ``log_batch`` on SQLite spends 0.15-0.26 ms of CPU a point, 95% of it in the
SQLAlchemy ORM building one object per row (profiled in the notes of issue 16); the
inserts themselves take 0.005 ms. A 1,200-epoch job of the default MLP logs 38,400
points: 5.6 s of recording beside 9.5 s of training, which is what kept two workers on
two cores from twice the speed of one. So a run's points go into MLflow's own
``metrics`` and ``latest_metrics`` tables in one transaction, with what MLflow's
``SqlAlchemyStore._log_metrics_once`` does to them:

- a point equal to one already stored (key, timestamp, step, value) is left out
  (MLflow's primary key, and its retry after an ``IntegrityError``);
- a key's latest value is replaced only by a point whose ``(step, timestamp, value)``
  is greater (MLflow's ``_compare_metrics``);
- the run must exist and be active, else the same ``MlflowException``.

Values reach here finite (``nets.store.keys.finite``; a NaN/inf point is dropped and
tagged, never stored), so ``is_nan`` is always 0. Only when both tables have exactly the
columns of MLflow's schema as this module knows it, and no trigger watches them
(``Writer.open``); any other store, and every server, goes through MLflow.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Sequence

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from nets.store.uri import sqlite_path

COLUMNS = {"metrics": {"key", "value", "timestamp", "run_uuid", "step", "is_nan"},
           "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}}
BUSY_SECONDS = 20.0          # as MLflow's SQLite engine waits for a held lock
ATTEMPTS = 6


# (pid, uri) -> (the database file's identity, its writer): a fork opens its own, and
# a store deleted and made again at the same path is opened again, never written unlinked.
_OPEN: dict[tuple[int, str], tuple[tuple[int, int] | None, "Writer | None"]] = {}


def writer_for(uri: str) -> "Writer | None":
    """This process's writer for ``uri``, or ``None``: use MLflow."""
    db = sqlite_path(uri)
    try:
        st = os.stat(db) if db is not None else None
    except OSError:
        st = None
    ident = (st.st_dev, st.st_ino) if st is not None else None
    key = (os.getpid(), uri)
    known, writer = _OPEN.get(key, (None, None))
    if key not in _OPEN or known != ident:
        if writer is not None:
            writer.close()
        writer = Writer.open(uri) if ident is not None else None
        _OPEN[key] = (ident, writer)
    return writer


class Writer:
    """One connection to one SQLite store, for one process's runs."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con
        self._lock = threading.Lock()   # one transaction at a time on the connection

    @classmethod
    def open(cls, uri: str) -> "Writer | None":
        """A writer for the SQLite store at ``uri``; ``None`` for any other store or a
        schema this module does not know (the caller uses MLflow)."""
        db = sqlite_path(uri)
        if db is None or not Path(db).is_file():
            return None
        try:
            con = sqlite3.connect(db, timeout=BUSY_SECONDS, isolation_level=None,
                                  check_same_thread=False)
            for table, columns in COLUMNS.items():
                have = {row[1] for row in con.execute(f'PRAGMA table_info("{table}")')}
                if have != columns:
                    con.close()
                    return None
            watched = con.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' "
                                  "AND tbl_name IN ('metrics', 'latest_metrics', 'runs')")
            if watched.fetchone()[0]:
                con.close()
                return None
        except sqlite3.Error:
            return None
        return cls(con)

    def log_metrics(self, run_id: str, points: Sequence) -> None:
        """Store ``points`` (MLflow ``Metric``s, finite values) of ``run_id`` in one
        transaction, retried while another writer holds the database."""
        if not points:
            return
        # In the order given, each distinct point once.
        rows = list(dict.fromkeys((p.key, float(p.value), int(p.timestamp), int(p.step))
                                  for p in points))
        latest: dict[str, tuple[int, int, float]] = {}
        for key, value, ts, step in rows:
            if key not in latest or (step, ts, value) > latest[key]:
                latest[key] = (step, ts, value)
        for attempt in range(ATTEMPTS):
            try:
                with self._lock:
                    return self._write(run_id, rows, latest)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(min(0.5 * 2 ** attempt, 8.0))

    def _write(self, run_id: str, rows: list, latest: dict) -> None:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            stage = con.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?",
                                (run_id,)).fetchone()
            if stage is None:
                raise MlflowException(f"Run with id={run_id} not found",
                                      RESOURCE_DOES_NOT_EXIST)
            if stage[0] != "active":
                raise MlflowException(f"The run {run_id} must be in the 'active' state. "
                                      f"Current state is {stage[0]}.", INVALID_PARAMETER_VALUE)
            con.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, 0)",
                [(k, v, ts, run_id, step) for k, v, ts, step in rows])
            stored = {k: (step, ts or 0, v) for k, v, ts, step in con.execute(
                "SELECT key, value, timestamp, step FROM latest_metrics WHERE run_uuid = ?",
                (run_id,))}
            con.executemany(
                "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, "
                "run_uuid) VALUES (?, ?, ?, ?, 0, ?)",
                [(k, v, ts, step, run_id) for k, (step, ts, v) in latest.items()
                 if k not in stored or (step, ts, v) > stored[k]])
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:    # SQLite itself may have rolled back (disk full)
                con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.con.close()
