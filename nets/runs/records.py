"""What a sweep writes to the MLflow store: the parent run, each job's child run (opened,
made active, diagnosed and ended), the ends of lost jobs, and the searches that find
them again by their tags. The one place in ``nets/runs`` that talks to ``nets.store``
(the store's paged search moves to ``nets.store.read`` when that lands).

Tags: ``nets.sweep_id``, ``nets.sweep_role`` (``parent``/``job``), ``nets.job``,
``nets.attempt`` identify every run of a sweep; ``nets.job_hash`` (hash of the job's
whole config) is what ``resume`` matches; ``nets.config_hash`` starts equal to it and a
task may refine it (nets' own job hashes the config without ``tracking``/``diagnostics``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


def config_hash(cfg: Mapping[str, Any]) -> str:
    """16 hex digits of the canonical JSON of a plain config."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sweep_key(hashes: Iterable[str]) -> str:
    """Identity of a sweep: the set of its job configs (same jobs => same key)."""
    return hashlib.sha256(",".join(sorted(hashes)).encode()).hexdigest()[:16]


# -- reading ------------------------------------------------------------------------------

def client(uri: str):
    from nets.store.client import open_client

    return open_client(uri)


def retry(fn, *args, **kwargs):
    from nets.store.client import retry as store_retry

    return store_retry(fn, *args, **kwargs)


def search(uri: str, experiment_ids: list[str], filter_string: str,
           order_by: list[str] | None = None, limit: int | None = None) -> list:
    """Every run matching ``filter_string`` (all pages), or the first ``limit``."""
    from nets.store import read

    return read.search_runs(uri, experiment_ids, filter_string, order_by, limit)


def finished_by_hash(uri: str, experiment_id: str) -> dict[str, str]:
    """``job hash -> run id`` of every FINISHED run in the experiment (the ``--resume``
    skip check: one read-only query on a SQLite store, not a search of every run)."""
    from nets.store import read

    return read.finished_by_tag(uri, experiment_id, "nets.job_hash")


def job_runs(uri: str, experiment_id: str, sweep_id: str, number: int,
             attempt: int | None = None) -> list:
    flt = (f"tags.`nets.sweep_id` = '{sweep_id}' and tags.`nets.job` = '{number}' and "
           "tags.`nets.sweep_role` = 'job'")
    if attempt is not None:
        flt += f" and tags.`nets.attempt` = '{attempt}'"
    return search(uri, [experiment_id], flt)


def end_run(uri: str, run_id: str, status: str, reason: str | None = None) -> None:
    c = client(uri)
    if reason:
        retry(c.set_tag, run_id, "nets.error", reason[:500])
        retry(c.log_text, run_id, reason + "\n", "error.txt")
    retry(c.set_terminated, run_id, status)


# -- the parent run -----------------------------------------------------------------------

def prepare(uri: str, experiment: str) -> str:
    """Schema, WAL and experiment, once, in the launcher; the experiment id."""
    from nets.store.client import prepare_store

    return prepare_store(uri, experiment)


def open_parent(uri: str, experiment_id: str, name: str, tags: dict, params: dict):
    from nets.store.client import versions
    from nets.store.write import RunRecorder

    rec = RunRecorder(uri, experiment_id, name, tags={**tags, **versions()})
    rec.log_params(params)
    return rec


# -- a job's child run (worker side) ------------------------------------------------------

@dataclass
class RunSpec:
    """Everything a worker needs to open a job's child run: plain picklable data."""

    uri: str
    experiment_id: str
    parent_run_id: str | None
    name: str
    tags: dict
    params: dict                 # flattened job config
    config_yaml: str
    overrides: list = field(default_factory=list)
    diagnosis_keys: dict = field(default_factory=dict)
    # The warm recorder's socket (``nets.runs.warm``) when the task records through the
    # recorder it is handed (nets' own job); ``None``: the run is opened in the worker
    # and made MLflow's active run, for a task that logs through MLflow itself.
    recorder: str | None = None


def open_job_run(spec: RunSpec):
    """Create the child run and log the config; the recorder.

    Through a recorder forked by the warm server when ``spec.recorder`` names one that
    answers (this process never imports mlflow; the run is written beside the training
    and is not MLflow's active run here); else in this process, as MLflow's active run.
    """
    tags = {**spec.tags, "nets.host": socket.gethostname(), "nets.pid": os.getpid()}
    overrides = "".join(f"- {o}\n" for o in spec.overrides) or "[]\n"
    if spec.recorder:
        from nets.runs import recorders

        rec = recorders.take(spec.recorder)
        if rec is not None:
            # The launcher ends a lost job's run (FAILED, with the reason it knows).
            rec.open(spec.uri, None, spec.experiment_id, spec.name, tags,
                     spec.parent_run_id, if_lost=None)
            rec.log_params(spec.params)
            rec.log_text(spec.config_yaml, "config.yaml")
            rec.log_text(overrides, "overrides.yaml")
            return rec
    from nets.store import active
    from nets.store.write import RunRecorder

    active.reset(spec.uri)
    rec = RunRecorder(spec.uri, spec.experiment_id, spec.name, tags=tags,
                      parent_run_id=spec.parent_run_id)
    rec.log_params(spec.params)
    rec.log_text(spec.config_yaml, "config.yaml")
    rec.log_text(overrides, "overrides.yaml")
    active.activate(spec.uri, rec.run_id, spec.experiment_id)
    return rec


def _log_bytes(parent, name: str, data: bytes) -> None:
    """``data`` as artifact ``name`` of the parent run (its recorder logs files)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d, name)
        path.write_bytes(data)
        parent.log_file(path)


def log_sweep_curves(parent, curves: dict) -> None:
    """The FINISHED jobs' report curves, ``{run id: {key: (steps, values)}}``, as one
    file on the parent run (``nets.store.curves.SWEEP_FILE``: a report reads it instead
    of every run's histories; a run it lacks is fetched as before)."""
    from nets.store.curves import SWEEP_FILE, pack

    if curves:
        _log_bytes(parent, SWEEP_FILE, pack(curves))


def log_sweep_runs(parent, uri: str) -> None:
    """The parent's children as they are now, as one file on it with the time they were
    read (``nets.store.summary``: a report reads it instead of searching them all, which
    over a server is most of a large report's time)."""
    from nets.store import read, summary

    data, since = summary.file_bytes(uri, read.experiment_ids(uri), parent.run_id)
    _log_bytes(parent, summary.RUNS_FILE, data)
    parent.set_tags({summary.SINCE_TAG: str(since)})   # after the file: a reader trusts it


def record_failure(rec, status: str, line: str, tb: str) -> None:
    rec.set_tags({"nets.error": line[:500]})
    rec.log_text(tb, "error.txt")


def close_job_run(rec, spec: RunSpec, status: str, known: tuple | None = None
                  ) -> tuple[str | None, dict]:
    """Diagnose a FINISHED job from its logged curves (unless the task already did), end
    the run with ``status``; ``(diagnosis, a few summary metrics)``. ``known``: the
    ``(diagnosis, metrics)`` nets' own job returned (no need to read them back)."""
    from nets.runs import recorders

    diagnosis, summary = None, {}
    if recorders.forked(rec):   # nets' own job, through a recorder process: it diagnosed itself
        try:
            if status == "FINISHED" and known is not None:
                diagnosis = known[0]
                summary = {k: v for k, v in known[1].items()
                           if k.startswith(("best/", "final/"))}
        finally:
            # Everything the run needs is with the recorder; the job's result goes back
            # while it writes the last of it (``recorders.settle`` hears how that went).
            rec.end(status, keep=True, wait=False)   # kept for a later job
        return diagnosis, summary
    from nets.store import active
    from nets.store.tags import nets_metrics

    active.deactivate()
    try:
        if status == "FINISHED":
            if known is not None and known[0] is not None:
                diagnosis, metrics = known
            else:
                rec.flush()
                run = retry(rec.client.get_run, rec.run_id)
                diagnosis = run.data.tags.get("nets.diagnosis")
                metrics = nets_metrics(run.data.metrics)
            summary = {k: v for k, v in metrics.items() if k.startswith(("best/", "final/"))}
            if diagnosis is None:
                diagnosis, extra = diagnose_logged(rec, spec.uri, spec.diagnosis_keys)
                summary.update(extra)
    finally:
        rec.end(status)
    return diagnosis, summary


def diagnose_logged(rec, uri: str, keys: Mapping[str, str]) -> tuple[str | None, dict]:
    """The curve-based rules on what the task logged under ``keys`` (role -> key)."""
    from nets import diagnostics
    from nets.store import active

    keys = dict(keys)
    logged = active.histories(uri, rec.run_id, keys.values())
    if not logged:
        return None, {}
    # The rules read nets' own key names; the task's keys are mapped onto them.
    roles = {"train_loss": "train/loss", "val_loss": "val/loss",
             "train_accuracy": "train/accuracy", "val_accuracy": "val/accuracy",
             "val_mae": "val/mae"}
    history = {roles[r]: logged[k] for r, k in keys.items() if k in logged}
    classification = "val/accuracy" in history or "train/accuracy" in history
    if "val/loss" not in history and "train/loss" in history:
        history["val/loss"] = history["train/loss"]
    info = diagnostics.RunInfo(task="classification" if classification else "regression",
                               val_is_train="val/loss" not in {roles[r] for r, k in keys.items()
                                                               if k in logged})
    try:
        verdicts = diagnostics.diagnose(history, info)
    except Exception as e:  # noqa: BLE001 - a rule that needs data the task did not log
        verdicts, note = [], f"diagnosis skipped: {type(e).__name__}: {e}"
    else:
        note = diagnostics.explain(verdicts)
    verdict = diagnostics.summary(verdicts)
    rec.set_tags({"nets.diagnosis": verdict, "mlflow.note.content": note})
    summary = {}
    own = {roles[r]: logged[k] for r, k in keys.items() if k in logged}  # not the copies
    for name, values in own.items():
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            summary[f"final/{name.replace('/', '_')}"] = values[-1]
    if "val/accuracy" in history:
        summary["best/val_accuracy"] = max(v for v in history["val/accuracy"]
                                           if math.isfinite(v)) if any(
            math.isfinite(v) for v in history["val/accuracy"]) else float("nan")
    rec.log_summary(summary)
    return verdict, summary
