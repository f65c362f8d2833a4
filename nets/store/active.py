"""MLflow's process-wide ("fluent") state around a sweep job.

A sweep launcher opens each job's child run and makes it MLflow's *active* run, so a
task's plain ``mlflow.log_metric(...)`` calls land in it; afterwards the launcher reads
the curves back for the diagnosis. Workers are reused across jobs and sweeps, so every
job starts from a clean state (no inherited ``MLFLOW_RUN_ID``, no leftover active run,
no cached experiment id: shared/research/stack-reliability.md §D, R-D3).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Iterable

from nets.store.client import MlflowClient, mlflow, retry

FLUENT_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_PARENT_RUN_ID")


def reset(uri: str | None) -> None:
    """Forget whatever an earlier job left in this process; point MLflow at ``uri``."""
    for k in FLUENT_ENV:
        os.environ.pop(k, None)
    try:
        while mlflow.active_run() is not None:
            mlflow.end_run()
    except Exception:  # noqa: BLE001 - a broken leftover run must not stop the job
        pass
    fluent = getattr(mlflow.tracking, "fluent", None)
    if fluent is not None and hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None
    if uri:
        mlflow.set_tracking_uri(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri


def activate(uri: str, run_id: str, experiment_id: str) -> None:
    """Make ``run_id`` the active run of this process (fluent calls write into it)."""
    reset(uri)
    os.environ["MLFLOW_EXPERIMENT_ID"] = str(experiment_id)
    mlflow.start_run(run_id=run_id)


def active_run_id() -> str | None:
    """The id of the active run a launcher opened for this job, or ``None``."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def deactivate() -> None:
    """Pop every active run without ending it (the launcher ends the run itself)."""
    fluent = getattr(mlflow.tracking, "fluent", None)
    stack = getattr(fluent, "_active_run_stack", None)
    try:
        if stack is not None and hasattr(stack, "get"):  # mlflow 3: a thread-local stack
            stack.get().clear()
        elif isinstance(stack, list):
            stack.clear()
        else:
            while mlflow.active_run() is not None:
                mlflow.end_run()
    except Exception:  # noqa: BLE001
        pass
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def histories(uri: str, run_id: str, keys: Iterable[str]) -> dict[str, list[float]]:
    """Metric key -> values by step (the last value of each step) for the keys logged."""
    client = MlflowClient(uri)
    out = {}
    for key in keys:
        points = retry(client.get_metric_history, run_id, key)
        if points:
            by_step: dict[int, float] = {}
            for m in sorted(points, key=lambda m: (m.step, m.timestamp)):
                by_step[int(m.step)] = float(m.value)
            out[key] = [by_step[s] for s in sorted(by_step)]
    return out


_STOP_INSTALLED = False


def install_stop_check(pending: Callable[[], BaseException | None]) -> None:
    """Make every MLflow logging call in this process first raise ``pending()``'s
    exception, if any: a cooperative stop point inside a task that logs per epoch
    (used where a signal cannot reach the job's thread, e.g. a dask worker)."""
    global _STOP_INSTALLED
    if _STOP_INSTALLED:
        return
    for name in ("log_metric", "log_batch", "log_param"):
        original = getattr(MlflowClient, name)

        def checked(self, *args, _original=original, **kwargs):
            exc = pending()
            if exc is not None:
                raise exc
            return _original(self, *args, **kwargs)

        setattr(MlflowClient, name, checked)
    _STOP_INSTALLED = True


def thread_id() -> int:
    return threading.get_ident()
