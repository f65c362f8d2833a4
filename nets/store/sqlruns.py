"""A sweep's child runs read from a local SQLite store with read-only SQL, as plain runs.

MLflow's ``search_runs`` on a SQLite file builds an ORM object per param, tag and
metric of every run, then an entity of each: 7.8 ms a run at load 9 on 2 cores (24 s
for 3,000 runs; most of ``nets-report``'s time at 10,000 runs). The file is on this
machine, so its ``runs``, ``params``, ``tags`` and ``latest_metrics`` tables are read
directly, as ``finished_by_tag`` and the curves' fetch already do: the runs
``search_runs`` returns for ``tags.`mlflow.parentRunId` = '<parent>'`` (active runs of
the given experiments), in its order (newest first, then run id), with the fields of
``nets.store.search._plain_run``. Never used on a server's database.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

PARENT_TAG = "mlflow.parentRunId"
NEEDED = {"runs": {"run_uuid", "name", "status", "start_time", "end_time", "experiment_id",
                   "lifecycle_stage", "artifact_uri"},
          "params": {"run_uuid", "key", "value"},
          "tags": {"run_uuid", "key", "value"},
          "latest_metrics": {"run_uuid", "key", "value", "is_nan"}}


def connect(db: Path, needed: dict[str, set[str]] = NEEDED) -> sqlite3.Connection:
    """A read-only connection to MLflow's SQLite file; ``sqlite3.DatabaseError`` when
    a table lacks a column of ``needed`` (not MLflow's schema: the caller asks MLflow).
    Every direct read of a SQLite store (these runs, curves, the skip check) opens here."""
    con = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, timeout=20)
    try:
        for table, cols in needed.items():
            have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            if not cols <= have:
                raise sqlite3.DatabaseError(f"{table} table lacks {sorted(cols - have)}")
    except BaseException:
        con.close()
        raise
    return con


def _by_run(con, table: str, cols: str, ids: list[str]) -> dict[str, list]:
    out: dict[str, list] = {i: [] for i in ids}
    sql = f"SELECT run_uuid, {cols} FROM {table} WHERE run_uuid IN ({','.join('?' * len(ids))})"
    for row in con.execute(sql, ids):
        out[row[0]].append(row[1:])
    return out


def child_pages(con: sqlite3.Connection, experiment_ids: Sequence[str], parent_run_id: str,
                page: int):
    """Lists of at most ``page`` plain runs: the active children of ``parent_run_id`` in
    ``experiment_ids``, newest first (then by run id), as MLflow's search orders them."""
    exps = [int(e) for e in experiment_ids]
    runs = con.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.experiment_id, "
        "r.lifecycle_stage, r.artifact_uri FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        f"WHERE t.key = ? AND t.value = ? AND r.experiment_id IN ({','.join('?' * len(exps))}) "
        "AND r.lifecycle_stage = 'active' ORDER BY r.start_time DESC, r.run_uuid",
        [PARENT_TAG, parent_run_id, *exps]).fetchall()
    for i in range(0, len(runs), page):
        chunk = runs[i:i + page]
        ids = [r[0] for r in chunk]
        params = _by_run(con, "params", "key, value", ids)
        tags = _by_run(con, "tags", "key, value", ids)
        metrics = _by_run(con, "latest_metrics", "key, value, is_nan", ids)
        yield [SimpleNamespace(
            info=SimpleNamespace(run_id=rid, run_name=name or "", status=status,
                                 start_time=start, end_time=end, experiment_id=str(exp),
                                 lifecycle_stage=stage, artifact_uri=art or ""),
            data=SimpleNamespace(
                params={k: v for k, v in params[rid]},
                tags={k: v for k, v in tags[rid]},
                metrics={k: math.nan if nan else float(v) for k, v, nan in metrics[rid]}))
            for rid, name, status, start, end, exp, stage, art in chunk]
