"""The ``nets`` Hydra launcher (and sweeper): thin adapters, the work is elsewhere.

``hydra/launcher=nets`` (or ``nets_dask``) runs ANY Hydra app's task function, with
Hydra's job semantics (``hydra.core.utils.run_job`` in the worker) and nets' robustness
and MLflow grouping (``nets/runs/sweep.py``). ``nets-train`` selects it in
``conf/config.yaml`` (a launcher chosen in an experiment file is ignored for multirun,
hydra#2946). The work is in ``_core`` (imported lazily, like the joblib launcher's).

Hydra gets one ``JobReturn`` per job: COMPLETED with the task's return value, or FAILED
with its exception (a job whose worker died or timed out: a ``RuntimeError`` naming
why). The launcher prints every failure and a summary itself; Hydra then re-raises the
first failure and exits 1.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class NetsLauncherConf:
    _target_: str = "hydra_plugins.nets_launcher.nets_launcher.NetsLauncher"
    n_jobs: int = -1                     # parallel workers; -1 = one per core
    blas_threads: Optional[int] = None   # BLAS threads per worker; null = cores // n_jobs
    resume: bool = False                 # skip configs that already have a FINISHED run
    max_retries: int = 1                 # resubmissions of a job whose worker process died
    grace_seconds: float = 5.0           # after Ctrl-C: time a job gets to end itself KILLED
    timeout: Optional[float] = None      # per-job limit in seconds (the run ends FAILED)
    dry_run: bool = False                # print the job list and count; run and record nothing
    tracking: bool = True                # one MLflow parent run, each job in an active child run
    uri: Optional[str] = None            # store; null = $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db
    experiment: Optional[str] = None     # MLflow experiment; null = the Hydra job name
    # role -> metric key the after-job diagnosis reads (train_loss, val_loss,
    # train_accuracy, val_accuracy, val_mae); defaults: train/loss, val/loss, ...
    diagnosis_keys: Dict[str, str] = field(default_factory=dict)


@dataclass
class NetsDaskLauncherConf:
    """``hydra/launcher=nets_dask``: the same sweep on a dask.distributed cluster
    (``nets/runs/cluster.py``; README "Running on a cluster")."""

    _target_: str = "hydra_plugins.nets_launcher.nets_launcher.NetsDaskLauncher"
    address: Optional[str] = None        # tcp://host:8786; null = LocalCluster on 127.0.0.1
    n_jobs: int = -1                     # LocalCluster worker processes; -1 = one per core
    blas_threads: Optional[int] = 1      # BLAS threads per job
    resume: bool = False                 # skip configs that already have a FINISHED run
    max_retries: int = 1                 # resubmissions of a job whose worker died
    allowed_failures: int = 0            # LocalCluster's distributed.scheduler.allowed-failures
    connect_timeout: float = 60.0        # wait for scheduler + a worker (and without workers)
    grace_seconds: float = 5.0           # after Ctrl-C: time a job gets to end itself KILLED
    timeout: Optional[float] = None      # per-job limit in seconds (the run ends FAILED)
    dry_run: bool = False                # print the job list and count; run and record nothing
    tracking: bool = True                # one MLflow parent run, each job in an active child run
    uri: Optional[str] = None            # store; null = $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db
    experiment: Optional[str] = None     # MLflow experiment; null = the Hydra job name
    # role -> metric key the after-job diagnosis reads (train_loss, val_loss,
    # train_accuracy, val_accuracy, val_mae); defaults: train/loss, val/loss, ...
    diagnosis_keys: Dict[str, str] = field(default_factory=dict)


@dataclass
class NetsSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.nets_launcher.nets_launcher.NetsSweeper"


ConfigStore.instance().store(group="hydra/launcher", name="nets", node=NetsLauncherConf,
                             provider="nets")
ConfigStore.instance().store(group="hydra/launcher", name="nets_dask",
                             node=NetsDaskLauncherConf, provider="nets")
ConfigStore.instance().store(group="hydra/sweeper", name="nets", node=NetsSweeperConf,
                             provider="nets")


class NetsLauncher(Launcher):
    """Runs a batch of sweep points with ``nets.runs.sweep`` (see module docstring)."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.nets_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)


class NetsDaskLauncher(NetsLauncher):
    """Runs a batch of sweep points as dask futures (``nets.runs.cluster``)."""

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.nets_launcher import _core
        from nets.runs import cluster

        return _core.launch(self, job_overrides, initial_job_idx,
                            settings_cls=cluster.DaskSettings, sweep_cls=cluster.DaskSweep)


class NetsSweeper(BasicSweeper):
    """Hydra's basic sweeper, minus its own composition pass when the launcher is ours.

    The basic sweeper composes every point before launching and prints Hydra's
    multi-line error for the first bad one; the nets launcher composes every point
    anyway, checks more (the whole config is built), and reports one line.
    """

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not isinstance(self.launcher, NetsLauncher):
            super().validate_batch_is_legal(batch)
