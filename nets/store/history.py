"""What ``nets-diagnose`` reads from and writes to any MLflow store.

Runs are found by id, by experiment name or by nets sweep id; their metric histories
are read under nets' keys, through a key map for runs other tools wrote (``val_acc``
read as ``val/accuracy``); the verdict is written back as the ``nets.diagnosis`` tag
and the run's description (``mlflow.note.content``).

Every failure a user can cause (unknown run, experiment or sweep; an unreachable store)
is a ``HistoryError`` with one line.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from nets.store.client import MlflowClient, retry

NOTE_TAG = "mlflow.note.content"
MAX_TAG = 8000


class HistoryError(Exception):
    """A run, experiment or sweep that cannot be read: one line."""


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def open_client(uri: str) -> MlflowClient:
    return MlflowClient(uri)


def get_runs(client: MlflowClient, run_ids: Iterable[str]) -> list:
    """The runs with these ids, in order; ``HistoryError`` names the first unknown one."""
    out = []
    for rid in run_ids:
        try:
            out.append(retry(client.get_run, rid))
        except MlflowException as e:
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise HistoryError(f"no run {rid!r} in this store") from None
            raise HistoryError(f"cannot read run {rid!r}: {_first(e)}") from None
    return out


def experiment_runs(client: MlflowClient, name: str) -> list:
    """Every run of experiment ``name`` (sweep parents excluded), oldest first."""
    exp = retry(client.get_experiment_by_name, name)
    if exp is None:
        names = sorted(e.name for e in retry(client.search_experiments))
        raise HistoryError(f"no experiment {name!r} in this store (experiments: "
                           f"{', '.join(names) or 'none'})")
    runs = retry(client.search_runs, [exp.experiment_id], "", max_results=50000,
                 order_by=["attributes.start_time ASC"])
    return [r for r in runs if r.data.tags.get("nets.sweep_role") != "parent"]


def sweep_runs(client: MlflowClient, sweep_id: str) -> list:
    """The job runs of nets sweep ``sweep_id`` (tag ``nets.sweep_id``), oldest first."""
    ids = [e.experiment_id for e in retry(client.search_experiments)]
    if "'" in sweep_id:
        raise HistoryError(f"{sweep_id!r} is not a sweep id")
    runs = retry(client.search_runs, ids, f"tags.`nets.sweep_id` = '{sweep_id}'",
                 max_results=50000, order_by=["attributes.start_time ASC"])
    runs = [r for r in runs if r.data.tags.get("nets.sweep_role") != "parent"]
    if not runs:
        raise HistoryError(f"no runs of sweep {sweep_id!r} in this store")
    return runs


def histories(client: MlflowClient, run, keys: Mapping[str, str],
              extra_prefixes: Iterable[str] = ("health/",)) -> dict[str, list[float]]:
    """Metric histories of ``run`` under nets' keys.

    Parameters
    ----------
    keys : mapping
        nets key -> the key the run logged (``{"val/accuracy": "val_acc"}``); a nets key
        the run does not have is left out.
    extra_prefixes : iterable of str
        Keys logged under these prefixes are read as they are (nets' health metrics).

    Returns
    -------
    dict of str to list of float
        One value per logged step, in step order; when a step was logged more than
        once (several points per epoch) the last one written counts.
    """
    logged = set(run.data.metrics)
    wanted = {nets: theirs for nets, theirs in keys.items() if theirs in logged}
    for k in sorted(logged):
        if any(k.startswith(p) for p in extra_prefixes) and k not in wanted:
            wanted[k] = k
    out = {}
    for nets_key, theirs in wanted.items():
        points = retry(client.get_metric_history, run.info.run_id, theirs)
        by_step: dict[int, tuple[int, float]] = {}
        for m in points:
            if m.step not in by_step or m.timestamp >= by_step[m.step][0]:
                by_step[m.step] = (m.timestamp, float(m.value))
        out[nets_key] = [by_step[s][1] for s in sorted(by_step)]
    return out


def set_diagnosis(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Write the verdict tags (``nets.diagnosis``, ``mlflow.note.content`` ...) at once."""
    items = [RunTag(k, str(v)[:MAX_TAG]) for k, v in tags.items()]
    retry(client.log_batch, run_id, tags=items)
