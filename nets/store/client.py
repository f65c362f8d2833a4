"""Opening and preparing an MLflow store; retries on a held SQLite lock.

Rules from measurements on this stack (shared/research/stack-reliability.md):

- The launching process creates or upgrades the schema once, under a file lock, turns
  SQLite to WAL and creates the experiment with an absolute artifact location; jobs get
  the absolute URI and the experiment id and never call ``set_experiment`` (racing
  first opens of a new SQLite file broke it for good in 5 of 6 trials).
- Every write is retried on "database is locked" (the 20 s busy timeout is fixed).
- Only the explicit ``MlflowClient`` API is used, so no fluent global state (active
  run, experiment) leaks between jobs that share a worker process.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Iterable

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402, F401 - read.py's view of runs
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from nets.store import blank  # noqa: E402
from nets.store.uri import artifact_root, file_path, sqlite_path  # noqa: E402

DEFAULT_EXPERIMENT = "nets"
# What MLflow reads for an experiment's kind where the browser's GenAI / Model-training
# toggle does not decide (MLflow 3's ExperimentKindUtils; nets-ui sets the toggle).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def open_client(uri: str) -> MlflowClient:
    """An explicit client for ``uri`` (no fluent global state)."""
    return MlflowClient(uri)


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def relocate_if_moved(uri: str, experiment) -> str | None:
    """Point a copied/moved store's experiment back inside the store; the old location.

    Only when the store is SQLite, the recorded location is ``<old store>/artifacts/<x>``
    (how ``prepare_store`` makes it), and ``<this store>/artifacts/<x>`` exists. Without
    this the rerun's artifacts would be written into the old directory (or into the
    original store a copy was taken from).
    """
    db, root = sqlite_path(uri), artifact_root(uri)
    recorded = file_path(experiment.artifact_location or "")
    if db is None or root is None or recorded is None or recorded.parent.name != "artifacts":
        return None
    inside = Path(root) / recorded.name
    if inside.resolve() == recorded.resolve() or not inside.is_dir():
        return None
    with sqlite3.connect(db, timeout=20) as con:
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                    (inside.resolve().as_uri(), int(experiment.experiment_id)))
    return experiment.artifact_location


def prepare_store(uri: str, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Create/upgrade the schema, switch SQLite to WAL, get or create the experiment.

    Returns the experiment id. Safe to call from two launchers at once (file lock).
    """
    db = sqlite_path(uri)
    lock = contextlib.nullcontext() if db is None else _file_lock(db.with_suffix(".lock"))
    with lock:
        # A new SQLite store starts as a copy of the blank one (seconds of migrations
        # saved); else the first client call builds the schema, and under the lock only
        # one process ever does it.
        built = db is not None and not db.exists() and not blank.seed(db)
        client = MlflowClient(uri)
        exp = retry(client.get_experiment_by_name, experiment)
        if built:
            blank.keep(db)
        if db is not None:
            with sqlite3.connect(db) as con:
                con.execute("PRAGMA journal_mode=WAL")
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                retry(client.restore_experiment, exp.experiment_id)
            # A store copied or moved elsewhere still names its old artifact directory;
            # new runs would write there (or into the original it was copied from).
            relocate_if_moved(uri, exp)
            for k, v in EXPERIMENT_TAGS.items():
                if k not in exp.tags:
                    retry(client.set_experiment_tag, exp.experiment_id, k, v)
            return exp.experiment_id
        root = artifact_root(uri)
        location = None
        if root is not None:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment) or "experiment"
            location = Path(root, slug).resolve().as_uri()
        return retry(client.create_experiment, experiment, artifact_location=location,
                     tags=EXPERIMENT_TAGS)


def retry(fn, *args, attempts: int = 6, **kwargs):
    """Call ``fn``, retrying with back-off while SQLite reports a held lock."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except MlflowException as e:
            text = str(e).lower()
            if i == attempts - 1 or not ("locked" in text or "temporarily_unavailable" in text
                                         or "busy" in text):
                raise
            time.sleep(min(0.5 * 2 ** i, 8.0))


def end_orphans(uri: str, experiment_ids: Iterable[str], filter_string: str,
                status: str = "KILLED") -> list[str]:
    """End every RUNNING run matching ``filter_string`` with ``status``; return their ids."""
    client = MlflowClient(uri)
    runs = client.search_runs(list(experiment_ids),
                              f"attributes.status = 'RUNNING' and {filter_string}"
                              if filter_string else "attributes.status = 'RUNNING'",
                              max_results=50000)
    for r in runs:
        retry(client.set_terminated, r.info.run_id, status)
    return [r.info.run_id for r in runs]


def versions() -> dict[str, str]:
    """Versions of the libraries that can change a run's numbers."""
    import platform

    import numpy

    import nets

    return {"nets.version": nets.__version__, "numpy.version": numpy.__version__,
            "mlflow.version": mlflow.__version__, "python.version": platform.python_version()}
