"""The ``nets`` launchers' Hydra side, imported lazily by ``nets_launcher.py`` (like
the joblib launcher's ``_core``): plan the batch in the launching process, hand plain
``nets.runs.sweep.Job``s to the sweep engine, and turn the results into ``JobReturn``s.

Planning composes every point here (``load_sweep_config``), sets ``hydra.job.num/id``,
and, when the task function has a ``check`` attribute, calls ``check(task_cfg)`` for
every point before anything is recorded: one bad point rejects the whole sweep in one
line (nets' own ``nets-train`` task exposes such a check; any app may). A task may also
say where each point is recorded (``tracking(cfg)`` returning ``tracking``, ``uri``,
``experiment``), over the launcher's settings. The composed
config travels to the worker, which never re-reads config files (research R-D2).

In the worker, ``run_hydra_job`` restores Hydra's singletons and calls Hydra's own
``run_job`` (output dir, ``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``,
``HydraConfig`` set, job callbacks, return value / FAILED with the exception), with the
task function wrapped by the launcher's guard so it runs inside the job's active MLflow
child run. The task function is pickled to the worker as the joblib launcher does it:
a module-level function by reference, one in ``__main__`` (the user's script) by value
(loky uses cloudpickle).
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.errors import CompactHydraException, HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.nets_launcher._compose import PointComposer, without_hydra
from nets.runs import sweep as sweeps
from nets.runs.console import Console
from nets.runs.settings import Settings
from nets.runs.workers import picklable


class LauncherError(CompactHydraException):
    """A sweep the launcher refuses or could not finish: Hydra prints this one line."""


# -- worker side --------------------------------------------------------------------------

class _Payload:
    def __init__(self, hydra_context, task_function, point, singleton_state):
        self.hydra_context, self.task_function = hydra_context, task_function
        self.point, self.singleton_state = point, singleton_state

    @property
    def config(self) -> DictConfig:
        """The job's full config (built where it is first needed: in the worker)."""
        return self.point.config


def run_hydra_job(payload: _Payload, guard) -> JobReturn:
    """One job in a worker, with Hydra's job semantics (see the module docstring)."""
    setup_globals()
    Singleton.set_state(payload.singleton_state)
    HydraConfig.instance().set_config(payload.config)
    task = functools.wraps(payload.task_function)(
        functools.partial(guard, payload.task_function))
    ret = run_job(hydra_context=payload.hydra_context, task_function=task,
                  config=payload.config, job_dir_key="hydra.sweep.dir",
                  job_subdir_key="hydra.sweep.subdir")
    if not picklable(ret):  # an exception or value that cannot travel back
        value = ret._return_value  # the getter would raise it for a FAILED job
        ret.return_value = (RuntimeError(f"{type(value).__name__}: {value}")
                             if ret.status == JobStatus.FAILED else repr(value))
    return ret


# -- driver side --------------------------------------------------------------------------

def _plain(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException:  # an interpolation only the job can resolve
        return OmegaConf.to_container(cfg, resolve=False)


def plan(launcher, settings: Settings, job_overrides: Sequence[Sequence[str]],
         initial_job_idx: int) -> list[sweeps.Job]:
    from nets.store.uri import resolve_uri

    config, loader = launcher.config, launcher.hydra_context.config_loader
    check = getattr(launcher.task_function, "check", None)
    tracking_hook = getattr(launcher.task_function, "tracking", None)
    singletons = Singleton.get_state()
    launch_dir = os.getcwd()
    sweep_dir = Path(str(config.hydra.sweep.dir))
    composer, progress = PointComposer(loader, config), PlanProgress(len(job_overrides))
    jobs = []
    try:
        for i, overrides in enumerate(job_overrides):
            progress.update(i)
            idx, overrides = initial_job_idx + i, list(overrides)
            try:
                point = composer.compose(overrides, idx)
            except (HydraException, OmegaConfBaseException) as e:
                first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise LauncherError(f"config error: sweep job {idx} ({' '.join(overrides)}): "
                                    f"{first}") from e
            if point.uses_hydra or i == 0:
                # A point's full config (its hydra node) costs more than composing it:
                # only when the app's config reads it (${hydra:...}); else the first
                # point's stands for all while they are checked.
                HydraConfig.instance().set_config(point.config)
            task_cfg = point.task_config
            if check is not None:
                try:
                    check(task_cfg)
                except Exception as e:
                    raise LauncherError(f"config error: sweep job {idx} "
                                        f"({' '.join(overrides)}): {e}") from None
            # Where this point is recorded: the launcher's settings, or the task's own
            # answer (``task.tracking(cfg)``: nets-train follows its tracking.* keys).
            where = {"tracking": settings.tracking, "uri": settings.uri,
                     "experiment": settings.experiment}
            if tracking_hook is not None:
                where.update(tracking_hook(task_cfg))
            tracking, uri = bool(where["tracking"]), where["uri"]
            experiment = where["experiment"] or str(point.base.hydra.job.name)
            jobs.append(sweeps.Job(
                idx, overrides, _plain(task_cfg), run_hydra_job,
                _Payload(launcher.hydra_context, launcher.task_function, point, singletons),
                resolve_uri(uri, launch_dir) if tracking else None,
                experiment if tracking else None, str(sweep_dir / point.subdir / "job.log"),
                fluent=not getattr(launcher.task_function, "nets_recorder", False)))
    finally:
        progress.done()
        HydraConfig.instance().set_config(config)
    return jobs


class PlanProgress:
    """``planning: 57/200 points composed and checked`` once planning has taken 2 s:
    rewritten on a terminal, a plain line every 30 s otherwise (from 10 s, so that a
    short plan that ends in a one-line error prints that line alone)."""

    def __init__(self, total: int):
        self.total, self.start = total, time.monotonic()
        self.console = Console()
        self.first = 2.0 if self.console.tty else 10.0

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        if elapsed >= self.first:
            self.console.status(f"planning: {done}/{self.total} points composed and checked "
                                f"({elapsed:.0f} s)")

    def done(self) -> None:
        self.console.clear()


def axes_of(job_overrides: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Key -> its values across the sweep (``optimizer.lr: [0.3, 0.1]``)."""
    values: dict[str, list[str]] = {}
    for overrides in job_overrides:
        for o in overrides:
            key, _, val = o.partition("=")
            seen = values.setdefault(key.lstrip("+~"), [])
            if val not in seen:
                seen.append(val)
    return values


def _remove_if_only_multirun_yaml(sweep_dir: Path) -> None:
    """A dry run or a rejected sweep leaves nothing behind: drop the sweep dir that
    Hydra's sweeper made before launching (it holds only ``multirun.yaml``)."""
    if not sweep_dir.is_dir() or [p.name for p in sweep_dir.iterdir()] != ["multirun.yaml"]:
        return
    (sweep_dir / "multirun.yaml").unlink()
    cwd, d = Path.cwd().resolve(), sweep_dir.resolve()
    while d != cwd and cwd in d.parents and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def _job_return(job: sweeps.Job, launcher) -> JobReturn:
    if isinstance(job.value, JobReturn):
        ret = job.value
        if job.status != "FINISHED" and ret.status != JobStatus.FAILED:
            ret.status, ret.return_value = JobStatus.FAILED, RuntimeError(job.error or job.status)
        return ret
    cfg = job.payload.config
    ret = JobReturn(overrides=list(job.overrides), cfg=without_hydra(cfg), hydra_cfg=cfg,
                    working_dir=str(Path(job.log_path).parent) if job.log_path else os.getcwd(),
                    task_name=str(cfg.hydra.job.name))
    if job.status in ("FINISHED", "SKIPPED"):
        ret.status, ret.return_value = JobStatus.COMPLETED, None
    else:
        ret.status = JobStatus.FAILED
        ret.return_value = RuntimeError(f"job {job.number} {job.status}: {job.error or '?'}")
    return ret


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
           settings_cls=Settings, sweep_cls=None) -> list[JobReturn]:
    """``NetsLauncher.launch``: plan every point, run them (or list them), return
    Hydra's ``JobReturn``s in order."""
    setup_globals()
    sweep_cls = sweep_cls or sweeps.Sweep
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))

    def reject(line: str) -> None:
        sweeps.EXIT_CODE = max(sweeps.EXIT_CODE, 2)
        _remove_if_only_multirun_yaml(sweep_dir)
        raise LauncherError(f"{line}; nothing was run or recorded") from None

    try:
        settings = settings_cls.from_params(dict(launcher.params))
    except ValueError as e:  # SettingsError, or a backend's own check
        reject(f"launcher setting: {e}")
    try:
        jobs = plan(launcher, settings, job_overrides, initial_job_idx)
    except LauncherError as e:
        reject(str(e))
    axes = axes_of(job_overrides)
    name = str(launcher.config.hydra.job.config_name or "config")
    if name == "config":
        name = "×".join(k for k, v in axes.items() if len(v) > 1) or "sweep"
    sweep = sweep_cls(jobs, settings, name, axes, sweep_dir)
    if settings.dry_run:
        sweep.dry_run()
        _remove_if_only_multirun_yaml(sweep_dir)
        return [JobReturn(overrides=list(j.overrides), cfg=None, hydra_cfg=None,
                          working_dir="", task_name="", status=JobStatus.COMPLETED,
                          _return_value=None) for j in jobs]  # (the field's own name)
    try:
        sweep.connect()
    except ValueError as e:
        reject(f"config error: {e}")
    sweep.run()
    if sweep.interrupted:
        raise LauncherError(f"sweep {sweep.name} interrupted (Ctrl-C); resume with: "
                            f"{sweeps.resume_command()}")
    return [_job_return(j, launcher) for j in jobs]
