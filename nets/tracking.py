"""The MLflow record of a run: the only module of nets that imports mlflow.

Rules from measurements on this stack (shared/research/stack-reliability.md):

- The launching process creates or upgrades the schema once, under a file lock, turns
  SQLite to WAL and creates the experiment with an absolute artifact location; jobs get
  the absolute URI and the experiment id and never call ``set_experiment`` (racing
  first opens of a new SQLite file broke it for good in 5 of 6 trials).
- Metrics go out synchronously in ``log_batch`` calls: points are buffered and flushed
  once at least ``flush_seconds`` have passed (so an epoch longer than that is written
  as soon as it ends, and a run of 5 ms epochs costs one transaction a second instead
  of one per epoch), and always before the run ends. Never MLflow's asynchronous
  logging: it lost points under lock contention while the run still ended FINISHED.
- Every write is retried on "database is locked" (the 20 s busy timeout is fixed).
- Keys and values are sanitised here, once: int steps, finite floats. A NaN/inf metric
  is not written as 1.8e308: it is dropped and the run is tagged as diverged.
- Only the explicit ``MlflowClient`` API is used, so no fluent global state (active
  run, experiment) leaks between jobs that share a worker process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

DEFAULT_EXPERIMENT = "nets"
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-/ :]")
MAX_PARAM_LEN = 6000


# -- store set-up (launching process only) ------------------------------------------------

def default_uri(launch_dir: str | os.PathLike) -> str:
    """``sqlite:///<launch_dir>/mlruns/mlflow.db`` with an absolute path."""
    return "sqlite:///" + str((Path(launch_dir) / "mlruns" / "mlflow.db").resolve())


def resolve_uri(configured: str | None, launch_dir: str | os.PathLike) -> str:
    """The tracking URI: ``tracking.uri`` if set, else ``MLFLOW_TRACKING_URI``, else the
    default SQLite store under ``<launch_dir>/mlruns``. Relative SQLite paths are made
    absolute against ``launch_dir`` once, so jobs in other directories agree."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(launch_dir)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///"):]
        if not os.path.isabs(path):
            uri = "sqlite:///" + str((Path(launch_dir) / path).resolve())
    elif "://" not in uri:
        # A bare path names a store directory: the SQLite file inside it.
        uri = "sqlite:///" + str((Path(launch_dir) / uri / "mlflow.db").resolve())
    return uri


def existing_store(configured: str | None, launch_dir: str | os.PathLike | None = None) -> str:
    """Resolve the store like ``nets-train`` for a command that only reads it.

    Raises ``FileNotFoundError`` (one line) for a SQLite file that does not exist:
    opening it would silently create an empty store.
    """
    uri = resolve_uri(configured, launch_dir or os.getcwd())
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise FileNotFoundError(f"no MLflow store at {db} (pass --uri, set MLFLOW_TRACKING_URI, "
                                "or run from the directory that holds mlruns/)")
    return uri


def sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):].split("?")[0])
    return None


def artifact_root(uri: str) -> str | None:
    """Where a local store keeps artifacts: ``<store dir>/artifacts`` next to the DB."""
    p = sqlite_path(uri)
    return str(p.parent / "artifacts") if p is not None else None


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


def file_path(uri: str) -> Path | None:
    """Local path of a ``file:`` URI (or a bare absolute path), else ``None``."""
    if uri.startswith("file:"):
        return Path(url2pathname(unquote(urlparse(uri).path)))
    if "://" not in uri and ":" not in uri.split("/")[0] and os.path.isabs(uri):
        return Path(uri)
    return None


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
        client = MlflowClient(uri)
        # The first client call on a new store builds the schema; under the lock only
        # one process ever does it.
        exp = _retry(client.get_experiment_by_name, experiment)
        if db is not None:
            with sqlite3.connect(db) as con:
                con.execute("PRAGMA journal_mode=WAL")
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                _retry(client.restore_experiment, exp.experiment_id)
            # A store copied or moved elsewhere still names its old artifact directory;
            # new runs would write there (or into the original it was copied from).
            relocate_if_moved(uri, exp)
            return exp.experiment_id
        root = artifact_root(uri)
        location = None
        if root is not None:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment) or "experiment"
            location = Path(root, slug).resolve().as_uri()
        return _retry(client.create_experiment, experiment, artifact_location=location)


# -- sanitising -------------------------------------------------------------------------

def clean_key(key: str) -> str:
    """A key MLflow accepts: allowed characters, no leading or doubled '/', <= 250."""
    key = _KEY_BAD.sub("_", str(key))
    key = re.sub(r"/+", "/", key).strip("/") or "_"
    return key[:250]


def finite(value: Any) -> float | None:
    """``float(value)`` if finite, else ``None`` (the caller records divergence)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": "0.1"}``; lists stay one value."""
    out: dict[str, str] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


def _retry(fn, *args, attempts: int = 6, **kwargs):
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


# -- one run --------------------------------------------------------------------------

class RunRecorder:
    """Writes one run: params once, a metric batch per epoch, tags, artifacts, status.

    Parameters
    ----------
    uri : str
        Absolute tracking URI (prepared by ``prepare_store`` in the launcher).
    experiment_id : str
    run_name : str
    tags : mapping
        Initial tags (config hash, versions, sweep ids ...).
    parent_run_id : str, optional
        Makes this a child run (``mlflow.parentRunId``).
    """

    def __init__(self, uri: str, experiment_id: str, run_name: str,
                 tags: Mapping[str, str] = (), parent_run_id: str | None = None,
                 flush_seconds: float = 1.0):
        self.client = MlflowClient(uri)
        self.flush_seconds = flush_seconds
        self._buffer: list[Metric] = []
        self._last_flush = time.monotonic()
        all_tags = {k: str(v) for k, v in dict(tags).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        self.run = _retry(self.client.create_run, experiment_id, run_name=run_name,
                          tags=all_tags)
        self.run_id = self.run.info.run_id
        self.dropped: list[tuple[str, int]] = []
        self.ended = False

    # metrics ------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Queue an epoch's metrics at integer ``step``; flush if the buffer is due."""
        now = int(time.time() * 1000)
        for k, v in metrics.items():
            fv = finite(v)
            if fv is None:
                self.dropped.append((k, int(step)))
                continue
            self._buffer.append(Metric(clean_key(k), fv, now, int(step)))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every buffered point (the client splits batches over 1000 points)."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            _retry(self.client.log_batch, self.run_id, metrics=batch)
        self._last_flush = time.monotonic()

    def log_summary(self, metrics: Mapping[str, Any]) -> None:
        """Single-value metrics (``best/…``, ``final/…``) at step 0, written now."""
        self.log_metrics(metrics, 0)
        self.flush()

    # params and tags ------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params once (MLflow params are immutable); the client chunks the batch.

        A value over MLflow's 6000-character limit is cut with a marker; the full
        config is always in the ``config.yaml`` artifact.
        """
        items = []
        for k, v in params.items():
            s = str(v)
            if len(s) > MAX_PARAM_LEN:
                s = s[:MAX_PARAM_LEN - 20] + "…(see config.yaml)"
            items.append(Param(clean_key(k), s))
        _retry(self.client.log_batch, self.run_id, params=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(clean_key(k), str(v)[:8000]) for k, v in tags.items()]
        if items:
            _retry(self.client.log_batch, self.run_id, tags=items)

    # artifacts ----------------------------------------------------------------------

    def log_text(self, text: str, path: str) -> None:
        _retry(self.client.log_text, self.run_id, text, path)

    def log_file(self, local_path: str | os.PathLike, artifact_dir: str | None = None) -> None:
        _retry(self.client.log_artifact, self.run_id, str(local_path), artifact_dir)

    def log_figure(self, fig, path: str) -> None:
        _retry(self.client.log_figure, self.run_id, fig, path)

    # end ----------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run once with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        if self.ended:
            return
        self.flush()
        if self.dropped:
            first = self.dropped[0]
            self.set_tags({"nets.nonfinite_metrics": len(self.dropped),
                           "nets.first_nonfinite": f"{first[0]}@{first[1]}"})
        _retry(self.client.set_terminated, self.run_id, status)
        self.ended = True


def end_orphans(uri: str, experiment_ids: Iterable[str], filter_string: str,
                status: str = "KILLED") -> list[str]:
    """End every RUNNING run matching ``filter_string`` with ``status``; return their ids."""
    client = MlflowClient(uri)
    runs = client.search_runs(list(experiment_ids),
                              f"attributes.status = 'RUNNING' and {filter_string}"
                              if filter_string else "attributes.status = 'RUNNING'",
                              max_results=50000)
    for r in runs:
        _retry(client.set_terminated, r.info.run_id, status)
    return [r.info.run_id for r in runs]


def versions() -> dict[str, str]:
    """Versions of the libraries that can change a run's numbers."""
    import platform

    import numpy

    import nets

    return {"nets.version": nets.__version__, "numpy.version": numpy.__version__,
            "mlflow.version": mlflow.__version__, "python.version": platform.python_version()}
