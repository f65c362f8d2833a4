"""Running a sweep: many jobs in parallel local worker processes, one MLflow parent run.

The Hydra side (composing and checking every point) is in ``nets.app.sweep``; this
module gets plain data (resolved configs, absolute tracking URIs) and never imports
Hydra. Everything here follows the measured failures of Hydra 1.3's joblib launcher
(shared/research/stack-reliability.md §A-C):

- The store (schema, WAL, experiment) is prepared once, here, before any worker starts;
  jobs get the absolute URI, the experiment id and the parent run id.
- Each job runs inside ``execute``, which catches everything (``BaseException``), writes
  the full traceback to the job's ``job.log`` (``nets.runs.job.run_job`` also attaches it to
  the run as ``error.txt`` and ends the run FAILED or KILLED) and returns a small
  ``JobStatus``: no exception object crosses the process boundary.
- Results are handled as they arrive; each failure is printed when it happens.
- A driver-side janitor (``finally``) ends every run of the sweep still RUNNING, whatever
  stopped the sweep; ``nets-cleanup`` does the same after a crash of the driver itself.

Workers, and what happens when one dies
---------------------------------------
Each worker slot is its own one-process loky executor (``joblib.externals.loky``), not
one shared pool of ``n_jobs`` workers. A worker stays alive across jobs, so numpy,
mlflow and matplotlib are imported once per worker, not once per job. When a job kills
its process (``os._exit``, SIGKILL, the OOM killer, a segfault), only that slot's
executor breaks: the job that was running in it is, without any doubt, the one that
died. Its run (found by its sweep id, job number and attempt tags) is ended FAILED with
the reason ``worker died (exit code ...)``, the slot gets a fresh worker, and the other
jobs never notice. A job whose worker died is resubmitted up to ``max_retries`` times
(a new run, attempt + 1), for deaths that were not its own fault (an OOM kill caused by
its neighbours).

Alternatives measured or ruled out on this 2-core machine:

- One shared loky pool (``get_reusable_executor``): one death breaks the pool, loky
  kills every healthy sibling, and the culprit is unknown (the exit codes come without
  pids). The siblings must be rerun, and finding the culprit means rerunning the
  suspects one at a time: with 8 workers, up to 7 jobs run serially after each death.
  Slots cost nothing in the common case: the same processes, a few more threads in the
  driver.
- A fresh interpreter per job: a new process pays about 3.3 s before its first epoch
  (imports: nets 0.16 s, mlflow 0.96 s, matplotlib 0.2 s; opening the SQLAlchemy store
  0.95 s; scikit-learn for digits 1.05 s), over fifteen times the per-job overhead measured
  with kept workers (0.19 s: run creation, params, metrics, artifacts; dispatch itself
  0.01 s; ``tests/benchmarks/bench_sweep.py``). Slots pay it once per worker, in
  ``init_worker``, which also opens the store and loads the first job's dataset.
- A forkserver with those modules preloaded would start workers faster, but
  multiprocessing re-runs the main script in each worker it forks (its main-module
  fix-up): unsafe for a launcher started from arbitrary entry points.

Stopping
--------
Workers ignore SIGINT (a terminal sends Ctrl-C to the whole process group; loky workers
would otherwise die between jobs and break their executor). The driver decides: first
Ctrl-C (or SIGTERM) stops dispatching and asks each running job to stop (SIGUSR1 raises
``KeyboardInterrupt`` inside the job, which ends its run KILLED); a job that has not
stopped after ``grace_seconds`` has its worker killed and the janitor ends its run
KILLED. A second Ctrl-C kills every worker at once; the janitor still runs. A per-job
``timeout`` works the same way with SIGUSR2 (the run ends FAILED). Relaunching with
``resume`` skips every config that already has a FINISHED run.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import socket
import sys
import time
import traceback
import warnings
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from nets.runs.job import (JobFailed, JobSpec, JobStatus, config_hash, run_job, run_name,
                           sweep_run_name)

# Exit code of the last sweep(s) in this process: 0, 1 (a job failed), 130 (interrupted).
# The console entries (``nets-train -m``, ``nets-sweep``) exit with it after Hydra
# returns, so Hydra never re-raises only the first failure.
EXIT_CODE = 0
# The command that started the sweep, for the resume hint (set by ``nets-sweep``).
COMMAND: list[str] | None = None

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# Inherited MLflow state a job must not see: an inherited MLFLOW_RUN_ID makes MLflow
# ignore the parent and write into that run (mlflow#15713).
MLFLOW_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_PARENT_RUN_ID")
TEST_CRASH_ENV = "NETS_TEST_CRASH"


@dataclass
class Settings:
    """The launcher's settings (``hydra.launcher.*``), as plain data.

    Attributes
    ----------
    n_jobs : int
        Parallel worker processes; -1 = one per core, -2 = all but one.
    blas_threads : int or None
        BLAS threads per worker; ``None`` = ``max(1, cores // workers)``.
    resume : bool
        Skip every config that already has a FINISHED run in the experiment.
    max_retries : int
        Resubmissions of a job whose worker process died.
    grace_seconds : float
        Time a job gets to stop and record itself KILLED after Ctrl-C.
    timeout : float or None
        Per-job wall-clock limit in seconds.
    dry_run : bool
        Print the job list only.
    """

    n_jobs: int = -1
    blas_threads: int | None = None
    resume: bool = False
    max_retries: int = 1
    grace_seconds: float = 5.0
    timeout: float | None = None
    dry_run: bool = False


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_for(settings: Settings, n_points: int) -> tuple[int, int]:
    """``(workers, blas_threads)``: workers × threads stays within the cores."""
    n = settings.n_jobs
    workers = cores() if n == -1 else max(1, cores() + 1 + n) if n < -1 else n
    workers = max(1, min(workers, n_points))
    threads = settings.blas_threads or max(1, cores() // workers)
    return workers, threads


# -- worker side --------------------------------------------------------------------------

@dataclass
class Task:
    """What crosses to a worker: plain data only."""

    number: int
    attempt: int
    spec: JobSpec
    log_path: str | None
    blas_threads: int


class JobTimeout(Exception):
    """Raised inside a job whose per-job timeout expired (the run ends FAILED)."""


_IN_JOB = False


def _on_stop(signum, frame):
    if _IN_JOB:
        raise KeyboardInterrupt("the sweep was interrupted (Ctrl-C)")


def _on_timeout(signum, frame):
    if _IN_JOB:
        raise JobTimeout("the job exceeded the sweep's per-job timeout")


def init_worker(blas_threads: int, warm: dict | None = None) -> None:
    """Loky initializer: signals, BLAS limit, and the imports every job needs.

    ``warm`` (``uri``, ``experiment_id``, ``dataset``, ``seed`` of the first job) opens
    the store and loads that dataset once, so that their one-off costs (the SQLAlchemy
    store: 0.9 s; scikit-learn for digits: 1 s) are paid while the worker starts, not
    inside the first job.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_stop)
    signal.signal(signal.SIGUSR2, _on_timeout)
    _limit_blas(blas_threads)
    import io

    from nets.store import client as store_client  # mlflow: the slowest import, once per worker
    from nets.report.plots import curves_figure

    # The first figure loads fonts (~0.2 s); pay it here, not in the first job.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves_figure({"train/loss": [1.0, 0.5], "val/loss": [1.0, 0.6],
                       "train/accuracy": [0.5, 0.6], "val/accuracy": [0.5, 0.6],
                       "lr": [0.1, 0.1]}).savefig(io.BytesIO(), format="png")
        try:
            if warm and warm.get("uri"):
                store_client.MlflowClient(warm["uri"]).get_experiment(warm["experiment_id"])
            if warm and warm.get("dataset") is not None:
                from nets.data import DATASETS
                from nets.train import make_rngs

                DATASETS.build(warm["dataset"], key="dataset").load(
                    make_rngs(warm["seed"])["data"])
        except Exception:  # noqa: BLE001 - only a warm-up; the job reports real problems
            pass


def _limit_blas(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def execute(task: Task) -> JobStatus:
    """Run one job in a worker and return its status, whatever happens in it."""
    global _IN_JOB
    for k in MLFLOW_ENV:
        os.environ.pop(k, None)
    log = _open_log(task)
    disarm = _arm_test_crash(task.number)
    _IN_JOB = True
    try:
        _limit_blas(task.blas_threads)
        return run_job(task.spec, stream=log)
    except JobFailed as e:  # the run is already ended FAILED, traceback attached
        log.write(traceback.format_exc())
        return JobStatus("FAILED", run_id=e.run_id, error=str(e))
    except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, ...
        log.write(traceback.format_exc())
        return JobStatus("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED",
                         error=one_line(e))
    finally:
        _IN_JOB = False
        disarm()
        log.close()


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class _Log:
    """The job's ``job.log`` (or nothing), line-buffered so a crash loses nothing."""

    def __init__(self, path: str | None):
        self.fh = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(path, "a", buffering=1)

    def write(self, text: str) -> int:
        if self.fh is not None:
            self.fh.write(text)
        return len(text)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def _open_log(task: Task) -> _Log:
    log = _Log(task.log_path)
    log.write(f"== job {task.number} attempt {task.attempt} pid {os.getpid()} "
              f"host {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              f"   overrides: {' '.join(task.spec.overrides)}\n")
    return log


def _arm_test_crash(number: int) -> Callable[[], None]:
    """TEST INSTRUMENTATION ONLY: make job ``number`` misbehave after its first epoch.

    ``NETS_TEST_CRASH="3:exit,5:raise"`` (modes: ``raise``, ``unpicklable`` (an exception
    whose class cannot be pickled), ``exit`` = ``os._exit(3)``, ``sigkill``,
    ``sys_exit``). Read from the environment only, never from a config, so no sweep file
    can reach it. It fires inside the run (after the epoch-1 metrics are
    logged), so the run exists and would be left RUNNING without the janitor.
    """
    wanted = dict(part.split(":", 1) for part in os.environ.get(TEST_CRASH_ENV, "").split(",")
                  if ":" in part)
    mode = wanted.get(str(number))
    if mode is None:
        return lambda: None
    from nets.store import write as store_write

    original = store_write.RunRecorder.log_metrics

    def crashing(self, metrics, step):
        original(self, metrics, step)
        if step >= 1:
            self.flush()
            if mode == "raise":
                raise RuntimeError(f"test crash in job {number}")
            if mode == "unpicklable":
                class Unpicklable(Exception):  # local class: pickle cannot find it
                    pass

                raise Unpicklable(f"test crash in job {number}")
            if mode == "exit":
                os._exit(3)
            if mode == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "sys_exit":
                sys.exit(2)

    store_write.RunRecorder.log_metrics = crashing
    return lambda: setattr(store_write.RunRecorder, "log_metrics", original)


# -- driver side: jobs and the store ----------------------------------------------------

@dataclass
class Job:
    """One point of the sweep, as the driver tracks it."""

    number: int
    overrides: list[str]
    config: dict                       # resolved, checked
    uri: str | None = None             # absolute; None = tracking disabled
    experiment: str | None = None      # experiment name
    log_path: str | None = None
    experiment_id: str | None = None
    attempt: int = 0
    status: str = "PENDING"            # PENDING FINISHED FAILED KILLED SKIPPED
    error: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    diagnosis: str | None = None

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    def label(self, keys: Iterable[str] | None = None) -> str:
        """The overrides, or only those of ``keys`` (the swept ones)."""
        keys = set(keys or ())
        shown = [o for o in self.overrides if o.partition("=")[0].lstrip("+~") in keys] \
            if keys else self.overrides
        return " ".join(shown or self.overrides) or "(no overrides)"


@dataclass
class Store:
    uri: str
    experiment_id: str
    parent: Any = None                 # store_write.RunRecorder of the sweep's parent run
    previous_parent: str | None = None


def _client(uri: str):
    # nets.tracking is the only module that imports mlflow; it has no run search yet,
    # so its client class is used here.
    from nets.store import client as store_client

    return store_client.MlflowClient(uri)


def _retry(fn, *args, **kwargs):
    from nets.store import client as store_client

    return store_client.retry(fn, *args, **kwargs)


def _search(uri: str, experiment_ids: list[str], filter_string: str,
            order_by: list[str] | None = None, limit: int | None = None) -> list:
    client, out, token = _client(uri), [], None
    while True:
        page = _retry(client.search_runs, experiment_ids, filter_string,
                      max_results=min(limit or 5000, 5000), order_by=order_by,
                      page_token=token)
        out.extend(page)
        token = page.token
        if not token or (limit and len(out) >= limit):
            return out[:limit] if limit else out


def finished_runs(uri: str, experiment_id: str) -> dict[str, str]:
    """``config hash -> run id`` of every FINISHED run in the experiment."""
    runs = _search(uri, [experiment_id], "attributes.status = 'FINISHED'")
    return {r.data.tags["nets.config_hash"]: r.info.run_id for r in runs
            if "nets.config_hash" in r.data.tags}


def sweep_key(jobs: Iterable[Job]) -> str:
    """Identity of a sweep: the set of its configs (same jobs => same key)."""
    return hashlib.sha256(",".join(sorted(j.config_hash for j in jobs)).encode()).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- driver side: the sweep ---------------------------------------------------------------

class _Slot:
    """One worker process in its own loky executor (see the module docstring)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make
        self.executor = None
        self.pid_future = None
        self.job: Job | None = None
        self.future = None
        self.submitted = 0.0
        self.ready_at: float | None = None    # when this slot's current worker came up
        self.first_ready: float | None = None
        self.stop_reason: str | None = None   # "interrupt" | "timeout"
        self.kill_at: float | None = None

    @property
    def started(self) -> float | None:
        """When the current job started: submitted to a worker that was up."""
        if self.job is None or self.ready_at is None:
            return None
        return max(self.submitted, self.ready_at)

    @property
    def pid(self) -> int | None:
        f = self.pid_future
        if f is not None and f.done() and not f.cancelled() and f.exception() is None:
            return f.result()
        return None

    def start(self) -> None:
        self.executor, self.ready_at = self.make(), None
        # The worker's pid (to signal it); its arrival also marks when the job starts.
        self.pid_future = self.executor.submit(os.getpid)
        self.pid_future.add_done_callback(self._ready)

    def _ready(self, future) -> None:
        self.ready_at = time.monotonic()
        self.first_ready = self.first_ready or self.ready_at

    def submit(self, job: Job, task: Task) -> None:
        if self.executor is None:
            self.start()
        self.job, self.submitted = job, time.monotonic()
        self.stop_reason = self.kill_at = None
        self.future = self.executor.submit(execute, task)

    def signal(self, sig: int) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def release(self) -> None:
        self.job = self.future = None
        self.stop_reason = self.kill_at = None

    def discard(self) -> None:
        """Drop the executor (broken, or to be killed); the next job gets a fresh worker."""
        if self.executor is not None:
            try:
                self.executor.shutdown(wait=False, kill_workers=True)
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.executor = self.pid_future = self.ready_at = None


class Sweep:
    """Run ``jobs`` (all checked already) and record them under one parent run per store.

    Parameters
    ----------
    jobs : list of Job
    settings : Settings
    name : str
        Shown in messages and as the parent run's name.
    axes : dict
        Override key -> its values across the sweep (the parent's params; keys with
        more than one value label the jobs in messages).
    sweep_dir : Path, optional
        Where the job logs go.
    out : file
        Where events, the status line and the summary go (stderr).
    """

    def __init__(self, jobs: list[Job], settings: Settings, name: str,
                 axes: dict[str, list[str]], sweep_dir: Path | None = None, out=None):
        self.jobs, self.settings, self.name, self.axes = jobs, settings, name, axes
        self.swept = [k for k, v in axes.items() if len(v) > 1]
        self.sweep_dir = sweep_dir
        self.out = out or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.sweep_id = time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        self.workers, self.threads = workers_for(settings, max(1, len(jobs)))
        self.stores: dict[tuple, Store] = {}
        self.stop_requested = self.interrupted = self.forced = False
        self.cleaning = False
        self.retries = 0
        self.pending: deque[Job] = deque()
        self.slots: list[_Slot] = []
        self.timings: dict[str, float] = {}   # seconds: prepare, dispatch, cleanup
        self.t0 = time.monotonic()
        self._status_shown = self._stop_said = False
        self._last_status = 0.0

    # -- planning -------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the execution backend before anything is recorded (local: nothing to
        do); raise ``ConfigError`` if it cannot run this sweep."""

    def dry_run(self) -> int:
        """Print the job list and count; record nothing (the store is only read)."""
        skip = self._finished_elsewhere(read_only=True) if self.settings.resume else {}
        width = len(str(max((j.number for j in self.jobs), default=0)))
        print(f"sweep {self.name}: {len(self.jobs)} jobs, {self.workers} workers × "
              f"{self.threads} BLAS threads (dry run: nothing is run or recorded)")
        for j in self.jobs:
            note = f"  (skip: FINISHED run {skip[j.number]})" if j.number in skip else ""
            print(f"  #{j.number:<{width}}  {j.label()}{note}")
        left = len(self.jobs) - len(skip)
        print(f"{len(self.jobs)} jobs" + (f", {len(skip)} already FINISHED, {left} to run"
                                          if self.settings.resume else ""))
        return 0

    def _finished_elsewhere(self, read_only: bool = False) -> dict[int, str]:
        """Job number -> FINISHED run id, for ``resume``."""
        out: dict[int, str] = {}
        for (uri, exp), group in self._groups().items():
            if uri is None:
                continue
            if read_only:
                from nets.store import uri as store_uri

                db = store_uri.sqlite_path(uri)
                if db is not None and not db.exists():
                    continue
                e = _retry(_client(uri).get_experiment_by_name, exp)
                if e is None:
                    continue
                exp_id = e.experiment_id
            else:
                exp_id = self.stores[(uri, exp)].experiment_id
            done = finished_runs(uri, exp_id)
            for j in group:
                if j.config_hash in done:
                    out[j.number] = done[j.config_hash]
        return out

    def _groups(self) -> dict[tuple, list[Job]]:
        groups: dict[tuple, list[Job]] = {}
        for j in self.jobs:
            groups.setdefault((j.uri, j.experiment), []).append(j)
        return groups

    # -- the run --------------------------------------------------------------------

    def run(self) -> int:
        """Prepare the store, dispatch, clean up, summarise; the exit code."""
        global EXIT_CODE
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        in_main = _main_thread()
        if in_main:
            for s in old:
                signal.signal(s, self._on_signal)
        try:
            self._prepare()
            self.timings["prepare"] = time.monotonic() - self.t0
            self._dispatch()
            self.timings["dispatch"] = time.monotonic() - self.t0 - self.timings["prepare"]
            ready = [s.first_ready for s in self.slots if s.first_ready]
            if ready:  # worker start-up: spawn, imports, warm-up
                self.timings["first_job_start"] = min(ready) - self.t0
        except KeyboardInterrupt:
            self.interrupted = self.forced = True
        finally:
            self.cleaning = True
            t = time.monotonic()
            self._cleanup()
            self.timings["cleanup"] = time.monotonic() - t
            if in_main:
                for s, h in old.items():
                    signal.signal(s, h)
        code = 130 if self.interrupted else 1 if self.bad() else 0
        EXIT_CODE = max(EXIT_CODE, code)
        return code

    def _on_signal(self, signum, frame):
        if self.cleaning:  # the janitor must finish; no print() here (not reentrant)
            os.write(2, b"\nnets: recording the end of the sweep, one moment\n")
            return
        if self.stop_requested:
            self.forced = True
            raise KeyboardInterrupt
        self.stop_requested = self.interrupted = True

    def _prepare(self) -> None:
        """Schema, WAL, experiment and the parent run, once, before any worker starts."""
        from nets.store import client as store_client

        groups = self._groups()
        for (uri, exp), group in groups.items():
            if uri is None:
                continue
            store = Store(uri, store_client.prepare_store(uri, exp))
            self.stores[(uri, exp)] = store
            for j in group:
                j.experiment_id = store.experiment_id
        if self.settings.resume:
            for number, run_id in self._finished_elsewhere().items():
                job = next(j for j in self.jobs if j.number == number)
                job.status, job.run_id = "SKIPPED", run_id
            if not self.stores:
                self._say("resume: tracking is disabled, so nothing can be skipped")
        key = sweep_key(self.jobs)
        for (uri, exp), store in self.stores.items():
            if self.settings.resume:
                prev = _search(uri, [store.experiment_id],
                               f"tags.`nets.sweep_key` = '{key}' and "
                               "tags.`nets.sweep_role` = 'parent'",
                               order_by=["attributes.start_time DESC"], limit=1)
                store.previous_parent = prev[0].info.run_id if prev else None
            store.parent = self._parent_run(store, groups[(uri, exp)], key)

    def _parent_run(self, store: Store, group: list[Job], key: str):
        from nets.store import client as store_client, write as store_write

        s = self.settings
        tags = {"nets.sweep_id": self.sweep_id, "nets.sweep_role": "parent",
                "nets.sweep_name": self.name, "nets.sweep_key": key,
                "nets.host": socket.gethostname(), "nets.pid": os.getpid(),
                "nets.n_jobs": self.workers, "nets.blas_threads_limit": self.threads,
                "nets.sweep_dir": str(self.sweep_dir or ""), **store_client.versions()}
        if store.previous_parent:
            prev = _retry(_client(store.uri).get_run, store.previous_parent)
            tags.update({"nets.resumes": store.previous_parent,
                         "nets.resumes_sweep_id": prev.data.tags.get("nets.sweep_id", "")})
        rec = store_write.RunRecorder(store.uri, store.experiment_id,
                                      sweep_run_name(self.name, [j.config for j in group],
                                                     store.previous_parent is not None),
                                      tags=tags)
        params = {f"sweep.{k}": ",".join(v) for k, v in self.axes.items()}
        params.update({"sweep.jobs": len(group), "launcher.n_jobs": self.workers,
                       "launcher.blas_threads": self.threads,
                       "launcher.max_retries": s.max_retries,
                       "launcher.grace_seconds": s.grace_seconds,
                       "launcher.timeout": s.timeout, "launcher.resume": s.resume})
        rec.log_params(params)
        rec.log_text(_jobs_yaml(group), "jobs.yaml")
        return rec

    def _task(self, job: Job) -> Task:
        store = self.stores.get((job.uri, job.experiment))
        tags = {"nets.sweep_id": self.sweep_id, "nets.sweep_role": "job",
                "nets.job": job.number, "nets.attempt": job.attempt,
                "nets.n_jobs": self.workers, "nets.blas_threads_limit": self.threads,
                "nets.launcher_host": socket.gethostname(), "nets.launcher_pid": os.getpid()}
        spec = JobSpec(job.config, job.uri, job.experiment_id,
                       store.parent.run_id if store and store.parent else None, tags,
                       list(job.overrides))
        return Task(job.number, job.attempt, spec, job.log_path, self.threads)

    def _make_executor(self):
        from joblib.externals.loky.process_executor import ProcessPoolExecutor

        env = {k: str(self.threads) for k in BLAS_ENV}
        job = self.pending[0] if self.pending else None
        warm = None if job is None else {
            "uri": job.uri, "experiment_id": job.experiment_id,
            "dataset": job.config.get("dataset", "digits"), "seed": job.config.get("seed", 0)}
        return ProcessPoolExecutor(max_workers=1, initializer=init_worker,
                                   initargs=(self.threads, warm), env=env)

    def _dispatch(self) -> None:
        pending = deque(j for j in self.jobs if j.status == "PENDING")
        skipped = [j for j in self.jobs if j.status == "SKIPPED"]
        self.slots = [_Slot(self._make_executor) for _ in range(self.workers)]
        self.pending = pending
        self._say(f"sweep {self.name} ({self.sweep_id}): {len(self.jobs)} jobs"
                  + (f", {len(skipped)} skipped (already FINISHED)" if skipped else "")
                  + f"; {self.workers} workers × {self.threads} BLAS threads"
                  + (f"; logs in {self.sweep_dir}" if self.sweep_dir else ""))
        while True:
            if not self.stop_requested:
                for slot in self.slots:
                    if slot.job is None and pending:
                        if slot.executor is None:
                            slot.start()
                        job = pending.popleft()
                        job.attempt += 1
                        job.status = "RUNNING"
                        slot.submit(job, self._task(job))
            busy = [s for s in self.slots if s.job is not None]
            if not busy and (self.stop_requested or not pending):
                break
            done, _ = wait([s.future for s in busy], timeout=0.25, return_when=FIRST_COMPLETED)
            for slot in busy:
                if slot.future in done:
                    self._collect(slot)
            self._watch([s for s in self.slots if s.job is not None])
            self._status()

    def _watch(self, busy: list[_Slot]) -> None:
        """Start clocks, enforce timeouts, stop jobs after Ctrl-C."""
        now = time.monotonic()
        for slot in busy:
            if slot.kill_at is not None and now >= slot.kill_at:
                slot.kill_at = None
                if not slot.signal(signal.SIGKILL):
                    slot.discard()
                continue
            if slot.stop_reason is not None:
                continue
            if self.stop_requested:
                if slot.started is None:  # never started: drop its worker, nothing to record
                    job = slot.job
                    slot.discard()
                    slot.release()
                    job.status, job.attempt = "PENDING", job.attempt - 1
                else:
                    slot.stop_reason = "interrupt"
                    slot.signal(signal.SIGUSR1)
                    slot.kill_at = now + self.settings.grace_seconds
            elif (self.settings.timeout and slot.started is not None
                  and now - slot.started > self.settings.timeout):
                slot.stop_reason = "timeout"
                slot.signal(signal.SIGUSR2)
                slot.kill_at = now + max(2.0, self.settings.grace_seconds)
        if self.stop_requested and not self._stop_said:
            self._stop_said = True
            running = [s for s in busy if s.started is not None]
            self._say(f"interrupted: not starting the {len(self.pending)} jobs left; stopping "
                      f"{len(running)} running (up to {self.settings.grace_seconds:g} s; "
                      "Ctrl-C again to stop at once)")

    def _collect(self, slot: _Slot) -> None:
        from joblib.externals.loky.process_executor import BrokenProcessPool

        job, fut, reason = slot.job, slot.future, slot.stop_reason
        job.seconds = time.monotonic() - (slot.started or slot.submitted)
        slot.release()
        try:
            st = fut.result()
        except BrokenProcessPool as e:
            slot.discard()
            if reason == "interrupt":
                self._lost(job, "KILLED", "stopped by Ctrl-C (worker killed)")
                self._event(job)
                return
            why = (f"timed out after {self.settings.timeout:g} s (worker killed)"
                   if reason == "timeout" else f"worker died ({_exit_codes(e)})")
            self._lost(job, "FAILED", why)
            retry = job.attempt <= self.settings.max_retries and not self.stop_requested
            if reason is None and retry:
                self.retries += 1
                self._event(job, f"; retrying as attempt {job.attempt + 1}")
                job.status = "PENDING"
                self.pending.append(job)
                return
        except Exception as e:  # noqa: BLE001 - executor shut down, unpicklable task ...
            slot.discard()
            self._lost(job, "KILLED" if self.stop_requested else "FAILED", one_line(e))
        else:
            job.status, job.error = st.status, st.error
            job.metrics = st.metrics
            job.diagnosis = st.diagnosis
            job.run_id = st.run_id or job.run_id
            if reason == "timeout" and st.status == "FAILED":
                job.error = f"timed out after {self.settings.timeout:g} s"
            if st.status != "FINISHED" and st.run_id is None and job.uri:
                runs = self._job_runs(job)
                job.run_id = runs[0].info.run_id if runs else None
        self._event(job)

    # -- the record of lost jobs --------------------------------------------------------

    def _job_runs(self, job: Job) -> list:
        store = self.stores.get((job.uri, job.experiment))
        if store is None:
            return []
        return _search(store.uri, [store.experiment_id],
                       f"tags.`nets.sweep_id` = '{self.sweep_id}' and "
                       f"tags.`nets.job` = '{job.number}' and "
                       f"tags.`nets.attempt` = '{job.attempt}'")

    def _lost(self, job: Job, status: str, reason: str) -> None:
        """A job whose worker was lost: end its run ``status`` with ``reason``."""
        job.status, job.error = status, reason
        if job.log_path and Path(job.log_path).parent.is_dir():
            with open(job.log_path, "a") as fh:
                fh.write(f"== {status}: {reason}\n")
        store = self.stores.get((job.uri, job.experiment))
        if store is None:
            return
        client = _client(store.uri)
        try:
            runs = self._job_runs(job)
            for r in runs:
                if r.info.status == "RUNNING":
                    _retry(client.set_tag, r.info.run_id, "nets.error", reason)
                    _retry(client.log_text, r.info.run_id, reason + "\n", "error.txt")
                    _retry(client.set_terminated, r.info.run_id, status)
            if runs:
                job.run_id = runs[0].info.run_id
            elif status == "FAILED":
                job.run_id = self._placeholder(job, store, reason)
        except Exception as e:  # noqa: BLE001 - the janitor will still end it
            self._say(f"could not record the loss of job {job.number}: {one_line(e)}")

    def _placeholder(self, job: Job, store: Store, reason: str) -> str:
        """A FAILED run for a job that died before creating its own."""
        from nets.store import write as store_write

        core = {k: v for k, v in job.config.items() if k != "tracking"}
        task = self._task(job)
        rec = store_write.RunRecorder(store.uri, store.experiment_id, run_name(core),
                                   tags={**task.spec.tags, "nets.config_hash": job.config_hash,
                                         "nets.error": reason},
                                   parent_run_id=task.spec.parent_run_id)
        rec.log_params(store_write.flatten(core))
        rec.log_text(reason + "\n", "error.txt")
        rec.end("FAILED")
        return rec.run_id

    # -- the end ----------------------------------------------------------------------

    def _cleanup(self) -> None:
        for slot in self.slots:
            if slot.job is not None:
                job = slot.job
                slot.discard()
                slot.release()
                if job.status == "RUNNING":
                    job.status = "KILLED" if self.interrupted else "FAILED"
                    job.error = job.error or ("stopped by Ctrl-C" if self.interrupted
                                              else "the launcher stopped")
            else:
                slot.discard()
        for j in self.jobs:  # requeued or never dispatched
            if j.status == "RUNNING":
                j.status = "KILLED"
        self._clear_status()
        self._janitor()
        self._end_parents()
        self._summary()

    def _janitor(self) -> None:
        """End every run of this sweep still RUNNING (KILLED after Ctrl-C, else FAILED)."""
        status = "KILLED" if self.interrupted else "FAILED"
        for store in self.stores.values():
            try:
                runs = _search(store.uri, [store.experiment_id],
                               f"attributes.status = 'RUNNING' and "
                               f"tags.`nets.sweep_id` = '{self.sweep_id}' and "
                               "tags.`nets.sweep_role` = 'job'")
                client = _client(store.uri)
                for r in runs:
                    why = "interrupted" if self.interrupted else "sweep ended"
                    _retry(client.set_tag, r.info.run_id, "nets.error",
                           f"ended by the sweep janitor ({why})")
                    _retry(client.set_terminated, r.info.run_id, status)
                    job = next((j for j in self.jobs
                                if str(j.number) == r.data.tags.get("nets.job")
                                and str(j.attempt) == r.data.tags.get("nets.attempt")), None)
                    if job is not None:
                        job.run_id = job.run_id or r.info.run_id
                        if job.status not in ("FAILED", "KILLED"):
                            job.status = status
                if runs:
                    self._say(f"janitor: ended {len(runs)} RUNNING runs {status}")
            except Exception as e:  # noqa: BLE001 - report, never mask the sweep's result
                self._say(f"janitor failed on {store.uri}: {one_line(e)}; run nets-cleanup "
                          f"--sweep {self.sweep_id}")

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("FINISHED", "FAILED", "KILLED", "SKIPPED", "PENDING")}
        for j in self.jobs:
            out[j.status] = out.get(j.status, 0) + 1
        return out

    def bad(self) -> list[Job]:
        return [j for j in self.jobs if j.status in ("FAILED", "KILLED")]

    def _end_parents(self) -> None:
        c = self.counts()
        status = ("KILLED" if self.interrupted else
                  "FINISHED" if c["FINISHED"] + c["SKIPPED"] == len(self.jobs) else "FAILED")
        for (uri, exp), store in self.stores.items():
            rec = store.parent
            if rec is None:
                continue
            try:
                rec.log_summary({"sweep/jobs": len(self.jobs), "sweep/finished": c["FINISHED"],
                                 "sweep/failed": c["FAILED"], "sweep/killed": c["KILLED"],
                                 "sweep/skipped": c["SKIPPED"], "sweep/not_started": c["PENDING"],
                                 "sweep/retries": self.retries,
                                 "sweep/seconds": time.monotonic() - self.t0})
                rec.set_tags({"nets.sweep_status": status,
                              "nets.interrupted": str(self.interrupted).lower()})
                group = self._groups()[(uri, exp)]
                rec.log_text(_jobs_yaml(group), "jobs.yaml")
                rec.log_text(self._summary_text() + "\n", "summary.txt")
            finally:
                rec.end(status)

    def _summary_text(self) -> str:
        c = self.counts()
        el = _clock(time.monotonic() - self.t0)
        lines = [f"sweep {self.name} ({self.sweep_id}): {len(self.jobs)} jobs in {el}: "
                 f"{c['FINISHED']} FINISHED, {c['FAILED']} FAILED, {c['KILLED']} KILLED, "
                 f"{c['SKIPPED']} skipped (already FINISHED)"
                 + (f", {c['PENDING']} not started" if c["PENDING"] else "")]
        bad = self.bad()
        if bad:
            lines.append("failed or killed:")
            for j in bad:
                lines.append(f"  job {j.number} [{j.label(self.swept)}] {j.status}: "
                             f"{j.error or '?'}"
                             + (f" (run {j.run_id})" if j.run_id else "")
                             + (f" log {j.log_path}" if j.log_path and Path(j.log_path).exists()
                                else ""))
        return "\n".join(lines)

    def _summary(self) -> None:
        text = self._summary_text()
        parents = [s.parent.run_id for s in self.stores.values() if s.parent is not None]
        if parents:
            text += "\nparent run: " + ", ".join(parents)
        c = self.counts()
        if self.bad() or c["PENDING"]:
            text += f"\nresume (skips the FINISHED configs): {resume_command()}"
        print(text, file=self.out, flush=True)

    # -- output -------------------------------------------------------------------------

    def _event(self, job: Job, suffix: str = "") -> None:
        if job.status == "FINISHED":
            acc = job.metrics.get("best/val_accuracy", job.metrics.get("best/val_loss"))
            what = "best val_acc" if "best/val_accuracy" in job.metrics else "best val_loss"
            extra = f" {what} {acc:.4g}" if acc is not None else ""
            if job.diagnosis:
                extra += f", diagnosis: {job.diagnosis}"
            line = (f"job {job.number} FINISHED in {job.seconds:.1f} s "
                    f"[{job.label(self.swept)}]{extra}")
        else:
            line = (f"job {job.number} {job.status} [{job.label(self.swept)}]: {job.error or '?'}"
                    + (f" (run {job.run_id})" if job.run_id else ""))
        self._say(line + suffix + ("" if self.tty else f"  | {self._status_text()}"))

    def _status_text(self) -> str:
        c = self.counts()
        busy = [s for s in self.slots if s.job is not None]
        running = sum(1 for s in busy if s.started is not None)
        starting = len(busy) - running
        left = c["PENDING"]
        el = time.monotonic() - self.t0
        done = [j.seconds for j in self.jobs if j.status in ("FINISHED", "FAILED", "KILLED")
                and j.seconds]
        eta = "?"
        if done and not self.stop_requested:
            per = sum(done) / len(done)
            eta = _clock(per * (left + starting + 0.5 * running) / self.workers)
        return (f"{c['FINISHED'] + c['SKIPPED']} done, {running} running, "
                f"{c['FAILED'] + c['KILLED']} failed, {left + starting} left"
                + (f" ({starting} waiting for a worker to start)" if starting else "")
                + f" | {_clock(el)} elapsed, ETA {eta}")

    def _status(self) -> None:
        now = time.monotonic()
        if self.tty and now - self._last_status >= 0.5:
            self._last_status = now
            print(f"\r\033[K{self._status_text()}", end="", file=self.out, flush=True)
            self._status_shown = True
        elif not self.tty and now - self._last_status >= 30:
            self._last_status = now
            print(self._status_text(), file=self.out, flush=True)

    def _clear_status(self) -> None:
        if self._status_shown:
            print("\r\033[K", end="", file=self.out, flush=True)
            self._status_shown = False

    def _say(self, line: str) -> None:
        self._clear_status()
        print(line, file=self.out, flush=True)
        if not self.tty:
            self._last_status = time.monotonic()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_codes(exc: BaseException) -> str:
    text = str(exc)
    i = text.find("{")
    codes = text[i:text.find("}", i) + 1] if i >= 0 else ""
    return f"exit code {codes.strip('{}')}" if codes else one_line(exc)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _jobs_yaml(jobs: Sequence[Job]) -> str:
    import yaml

    return yaml.safe_dump([{"job": j.number, "overrides": list(j.overrides),
                            "config_hash": j.config_hash, "status": j.status,
                            "attempts": j.attempt, "run_id": j.run_id, "error": j.error}
                           for j in jobs], sort_keys=False)


def resume_command() -> str:
    cmd = list(COMMAND or [Path(sys.argv[0]).name] + sys.argv[1:])
    cmd[0] = Path(cmd[0]).name
    if cmd[0] == "nets-sweep":
        if "--resume" not in cmd:
            cmd.append("--resume")
    elif not any(a.startswith("hydra.launcher.resume=") for a in cmd):
        cmd.append("hydra.launcher.resume=true")
    return shlex.join(cmd)


# -- nets-cleanup -------------------------------------------------------------------------

def parse_age(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if t and t[-1] in units:
        return float(t[:-1]) * units[t[-1]]
    return float(t)


def find_orphans(uri: str, experiment_ids: list[str], sweep_id: str | None = None,
                 older_than: float | None = None) -> list[tuple[Any, str]]:
    """RUNNING runs nobody will end, each with the reason it was picked.

    With ``sweep_id`` and/or ``older_than``: every RUNNING run of that sweep / started
    longer ago than that (both, if both are given). Otherwise: RUNNING runs recorded on
    this host whose process is gone (and whose sweep launcher, if any, is gone too).
    """
    flt = "attributes.status = 'RUNNING'"
    if sweep_id:
        flt += f" and tags.`nets.sweep_id` = '{sweep_id}'"
    if older_than is not None:
        flt += f" and attributes.start_time < {int((time.time() - older_than) * 1000)}"
    runs = _search(uri, experiment_ids, flt)
    if sweep_id or older_than is not None:
        why = " and ".join(w for w in (f"sweep {sweep_id}" if sweep_id else "",
                                       f"older than {older_than:g} s" if older_than else "") if w)
        return [(r, why) for r in runs]
    host, out = socket.gethostname(), []
    for r in runs:
        t = r.data.tags
        if t.get("nets.host") != host or not str(t.get("nets.pid", "")).isdigit():
            continue
        pid = int(t["nets.pid"])
        launcher = t.get("nets.launcher_pid", "")
        if pid_alive(pid) or (launcher.isdigit() and pid_alive(int(launcher))):
            continue
        out.append((r, f"process {pid} on {host} is gone"))
    return out


def cleanup(uri: str, experiment_ids: list[str], status: str = "KILLED",
            sweep_id: str | None = None, older_than: float | None = None,
            dry_run: bool = False, out=None) -> list[str]:
    """End orphaned RUNNING runs with ``status``; print each; return their ids."""
    out = out or sys.stdout
    orphans = find_orphans(uri, experiment_ids, sweep_id, older_than)
    client = _client(uri)
    for r, why in orphans:
        print(f"{r.info.run_id}  {r.info.run_name or '':<32} RUNNING -> {status}  ({why})"
              + ("  [dry run]" if dry_run else ""), file=out)
        if not dry_run:
            _retry(client.set_tag, r.info.run_id, "nets.error", f"ended by nets-cleanup: {why}")
            _retry(client.set_terminated, r.info.run_id, status)
    verb = "would change" if dry_run else "changed"
    print(f"nets-cleanup: {verb} {len(orphans)} run{'s' * (len(orphans) != 1)}", file=out)
    return [r.info.run_id for r, _ in orphans]


