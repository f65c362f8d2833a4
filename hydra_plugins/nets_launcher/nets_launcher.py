"""The ``nets`` Hydra launcher (and sweeper): thin adapters, the work is elsewhere.

Selected in ``conf/config.yaml`` (``override hydra/launcher: nets``; it must be the
primary config: a launcher chosen in an experiment file is ignored for multirun,
hydra#2946). ``launch`` composes and checks every sweep point in this process, then hands
plain data to ``nets.runs.sweep`` (imported lazily, like the stock joblib launcher's
``_core``), which runs the jobs in local worker processes and records them under one
MLflow parent run. See ``nets/runs/sweep.py`` for what happens when a job or a worker fails.

Hydra sees every job COMPLETED with the job's ``nets.runs.job.JobStatus`` (FINISHED, FAILED
or KILLED) as its return value: the launcher prints every failure and the summary
itself, and ``nets-train``/``nets-sweep`` exit non-zero afterwards (Hydra would re-raise
only the first failure and lose the rest).
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

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
        from nets.app import sweep

        return sweep.launch(self, job_overrides, initial_job_idx)


class NetsDaskLauncher(NetsLauncher):
    """Runs a batch of sweep points as dask futures (``nets.runs.cluster``)."""

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from nets.runs import cluster as distributed

        return distributed.launch(self, job_overrides, initial_job_idx)


class NetsSweeper(BasicSweeper):
    """Hydra's basic sweeper, minus its own composition pass when the launcher is ours.

    The basic sweeper composes every point before launching and prints Hydra's
    multi-line error for the first bad one; the nets launcher composes every point
    anyway, checks more (the whole config is built), and reports one line.
    """

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not isinstance(self.launcher, NetsLauncher):
            super().validate_batch_is_legal(batch)
