"""The sweep launcher's settings (``hydra.launcher.*``) as plain data, and the worker
count they give on this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# Inherited MLflow state a job must not see: an inherited MLFLOW_RUN_ID makes MLflow
# ignore the parent and write into that run (mlflow#15713).
MLFLOW_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_PARENT_RUN_ID")
# The curves the after-job diagnosis reads, by role; a task logs them under these keys
# (or the settings rename them).
DIAGNOSIS_KEYS = {"train_loss": "train/loss", "val_loss": "val/loss",
                  "train_accuracy": "train/accuracy", "val_accuracy": "val/accuracy",
                  "val_mae": "val/mae"}


class SettingsError(ValueError):
    """A launcher setting out of range: one line naming the key, value and valid range."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"hydra.launcher.{key}={value!r}: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


@dataclass
class Settings:
    """The launcher's settings, as plain data.

    Attributes
    ----------
    n_jobs : int
        Parallel worker processes; -1 = one per core, -2 = all but one.
    blas_threads : int or None
        BLAS threads per worker; ``None`` = ``max(1, cores // workers)`` (less one core
        for the recorder processes: ``workers_for``).
    resume : bool
        Skip every job whose config already has a FINISHED run in the experiment.
    max_retries : int
        Resubmissions of a job whose worker process died.
    grace_seconds : float
        Time a job gets to stop and record itself KILLED after Ctrl-C.
    timeout : float or None
        Per-job wall-clock limit in seconds.
    dry_run : bool
        Print the job list only.
    tracking : bool
        One MLflow parent run per sweep, each job inside an active child run.
    uri : str or None
        Tracking URI or store directory; ``None`` = ``$MLFLOW_TRACKING_URI``, else
        ``<launch dir>/mlruns/mlflow.db``.
    experiment : str or None
        MLflow experiment; ``None`` = the Hydra job name.
    diagnosis_keys : dict
        Role -> metric key the after-job diagnosis reads (``DIAGNOSIS_KEYS``).
    """

    n_jobs: int = -1
    blas_threads: int | None = None
    resume: bool = False
    max_retries: int = 1
    grace_seconds: float = 5.0
    timeout: float | None = None
    dry_run: bool = False
    tracking: bool = True
    uri: str | None = None
    experiment: str | None = None
    diagnosis_keys: dict = field(default_factory=lambda: dict(DIAGNOSIS_KEYS))

    @classmethod
    def from_params(cls, params: dict[str, Any]):
        """Known keys of ``params`` (others belong to a subclass or to Hydra), checked."""
        known = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in params.items() if k in known})
        s.diagnosis_keys = {**DIAGNOSIS_KEYS, **dict(s.diagnosis_keys or {})}
        s.check()
        return s

    def check(self) -> None:
        checks = [("n_jobs", self.n_jobs != 0, "must be >= 1, or -1 for one per core"),
                  ("blas_threads", self.blas_threads is None or self.blas_threads >= 1,
                   "must be >= 1 or null"),
                  ("max_retries", self.max_retries >= 0, "must be >= 0"),
                  ("grace_seconds", self.grace_seconds >= 0, "must be >= 0"),
                  ("timeout", self.timeout is None or self.timeout > 0,
                   "must be > 0 seconds or null")]
        for key, ok, allowed in checks:
            if not ok:
                raise SettingsError(key, getattr(self, key), allowed)
        unknown = sorted(set(self.diagnosis_keys) - set(DIAGNOSIS_KEYS))
        if unknown:
            raise SettingsError(f"diagnosis_keys.{unknown[0]}", self.diagnosis_keys[unknown[0]],
                                "unknown role; valid: " + ", ".join(DIAGNOSIS_KEYS))


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_for(settings: Settings, n_points: int, recorders: bool = False) -> tuple[int, int]:
    """``(workers, blas_threads)``: workers × threads stays within the cores, less one
    core for the recorder processes when the jobs record through them (``recorders``)
    and the workers leave cores free: they write every job's run beside its training,
    and a worker whose BLAS threads wait on a busy core trains slower (the digits MLP
    with 1 worker on 2 cores: 0.35 s a job with 2 threads, 0.25 s with 1)."""
    n = settings.n_jobs
    workers = cores() if n == -1 else max(1, cores() + 1 + n) if n < -1 else n
    workers = max(1, min(workers, n_points))
    spare = 1 if recorders and workers < cores() else 0
    threads = settings.blas_threads or max(1, (cores() - spare) // workers)
    return workers, threads
