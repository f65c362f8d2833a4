"""Worker processes: what runs inside them (``init_worker``, ``execute``) and the
driver's handle on each one (``Slot``).

Each worker slot is its own one-process loky executor (``joblib.externals.loky``), not
one shared pool of ``n_jobs`` workers. A worker stays alive across jobs, so the task's
imports (numpy, nets, the user's modules) are paid once per worker, not once per job.
When a job kills its process (``os._exit``, SIGKILL, the OOM killer, a segfault), only
that slot's executor breaks: the job that was running in it is, without any doubt, the
one that died; the slot gets a fresh worker and the other jobs never notice.

Alternatives measured or ruled out on this 2-core machine:

- One shared loky pool (``get_reusable_executor``): one death breaks the pool, loky
  kills every healthy sibling, and the culprit is unknown (the exit codes come without
  pids). Slots cost nothing in the common case: the same processes, a few more threads
  in the driver.
- A fresh interpreter per job: a new process pays seconds of imports and store opening
  before its first step, many times the per-job overhead with kept workers
  (``tests/benchmarks/bench_sweep.py``).

Inside a worker, ``execute`` runs one ``Task``: ``task.fn(task.payload, guard)`` where
``guard(f, cfg)`` calls the task function inside the job's MLflow child run, records any
exception (traceback in ``error.txt`` and the job log) and re-raises it to the caller
(Hydra's ``run_job`` turns it into a FAILED ``JobReturn``). The run is opened here and
made MLflow's *active* run (so plain ``mlflow.log_metric`` calls land in it), or, for
nets' own job, written by a recorder process the worker keeps (``current_recorder``;
``nets.runs.records.open_job_run``): then this process never imports mlflow. Whatever
happens, the run is ended FINISHED, FAILED or KILLED, and only a small picklable
``JobResult`` goes back (with any earlier run whose end a recorder could not record).

Signals: workers ignore SIGINT (a terminal sends Ctrl-C to the whole process group);
the driver sends SIGUSR1 to stop a job (``KeyboardInterrupt`` inside it: KILLED) and
SIGUSR2 at its timeout (``JobTimeout``: FAILED). A worker whose launcher is gone (even
``kill -9``) exits within a second: a watcher thread compares its parent pid.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nets.runs import recorders, records
from nets.runs.cleanup import pid_alive
from nets.runs.settings import MLFLOW_ENV


class JobTimeout(Exception):
    """Raised inside a job whose per-job timeout expired (the run ends FAILED)."""


@dataclass
class Task:
    """What crosses to a worker: a picklable callable, its payload, and where to record.

    ``fn(payload, guard)`` runs the job; ``guard(task_function, cfg)`` runs the user's
    code inside the job's run. ``record`` is ``None`` when tracking is off.
    """

    number: int
    attempt: int
    fn: Callable[[Any, Callable], Any]
    payload: Any
    record: records.RunSpec | None
    log_path: str | None
    blas_threads: int
    overrides: list = field(default_factory=list)


@dataclass
class JobResult:
    """What comes back from a job: small and picklable, never an exception object."""

    status: str                      # FINISHED | FAILED | KILLED
    run_id: str | None = None
    error: str | None = None         # one line
    diagnosis: str | None = None
    metrics: dict = field(default_factory=dict)
    value: Any = None                # what ``task.fn`` returned (made picklable)
    # Earlier jobs of this worker whose run's end could not be recorded after their
    # result went back: ``(run id, one line)`` (``recorders.settle``).
    late: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)   # nets' own job's (``JobStatus.curves``)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


# -- worker side --------------------------------------------------------------------------

_IN_JOB = False
_LOG = None
_RECORDER = None


def current_log():
    """The running job's ``job.log`` stream (a task's progress goes there, not to the
    launcher's terminal), or ``None`` outside a job."""
    return _LOG


def current_recorder():
    """``(RunSpec, recorder)`` of the running job when its run is written by a recorder
    process (``nets.runs.writer.RecorderProcess``: a task records through it, the
    launcher's worker ends it); ``None`` outside a job, or when the job's run is MLflow's
    active run in this process instead."""
    return _RECORDER


def _on_stop(signum, frame):
    if _IN_JOB:
        raise KeyboardInterrupt("the sweep was interrupted (Ctrl-C)")


def _on_timeout(signum, frame):
    if _IN_JOB:
        raise JobTimeout("the job exceeded the sweep's per-job timeout")


def _watch_parent(launcher_pid: int) -> None:
    """Exit when the launcher is gone (``kill -9`` included): the worker would otherwise
    live on, holding memory, for ever (issue 18 item 2)."""
    while True:
        if os.getppid() != launcher_pid:
            os._exit(70)
        time.sleep(0.5)


def _drop_mlflow_env() -> None:
    """A job gets its store from the launcher, never from the worker's environment."""
    for k in MLFLOW_ENV:
        os.environ.pop(k, None)


def init_worker(blas_threads: int, launcher_pid: int | None = None,
                warm_uri: str | None = None, modules: tuple = (),
                recorder: tuple[str, str] | None = None) -> None:
    """Loky initializer: signals, parent watch, BLAS limit, the jobs' code imported
    (``modules``: so the first job is no slower than the next), and an opened store
    when the jobs' runs are opened here (``warm_uri``), or recorders that have opened
    it when they are written by recorders (``recorder``: the warm server's socket and
    the store's URI)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_stop)
    signal.signal(signal.SIGUSR2, _on_timeout)
    if launcher_pid:
        threading.Thread(target=_watch_parent, args=(launcher_pid,), daemon=True,
                         name="nets-parent-watch").start()
    limit_blas(blas_threads)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - only a warm-up; the job reports real problems
            pass
    if recorder:
        _drop_mlflow_env()       # as every job sees it (``execute``): a fork keeps it
        try:
            recorders.prepare(*recorder)
        except Exception:  # noqa: BLE001 - only a warm-up; the job reports real problems
            pass
    if warm_uri:
        try:  # the SQLAlchemy store costs ~1 s to open: pay it while the worker starts
            records.client(warm_uri).search_experiments(max_results=1)
        except Exception:  # noqa: BLE001 - only a warm-up; the job reports real problems
            pass


def limit_blas(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


class _Log(io.TextIOBase):
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

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


class Guard:
    """Runs the user's task function inside the job's run and records how it ended."""

    def __init__(self, rec, log: _Log):
        self.rec, self.log = rec, log
        self.status: str | None = None
        self.error: str | None = None

    def __call__(self, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException as e:
            self.failed(e)
            raise

    def failed(self, e: BaseException) -> None:
        if self.status is not None:
            return
        self.status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        self.error = one_line(e)
        tb = traceback.format_exc()
        self.log.write(tb)
        if self.rec is not None:
            try:
                records.record_failure(self.rec, self.status, self.error, tb)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass


def picklable(value: Any) -> bool:
    """Can ``value`` travel back to the launcher (loky and dask use cloudpickle)?"""
    try:
        from joblib.externals import cloudpickle
    except ImportError:  # joblib >= 1.5 uses the installed package
        import cloudpickle

    try:
        cloudpickle.dumps(value)
        return True
    except Exception:  # noqa: BLE001 - a local class, an open handle ...
        return False


def _picklable(value: Any) -> Any:
    """``value``, or its ``repr`` when it cannot travel back to the launcher."""
    return value if picklable(value) else f"(not picklable) {value!r}"[:2000]


def _own_job(value: Any):
    """nets' own job's ``JobStatus`` when the task was one (itself, or in Hydra's
    ``JobReturn``), else ``None``."""
    job = sys.modules.get("nets.runs.job")
    value = getattr(value, "_return_value", value)   # never the getter: it may raise
    return value if job is not None and isinstance(value, job.JobStatus) else None


def execute(task: Task) -> JobResult:
    """Run one job in a worker and return its result, whatever happens in it."""
    global _IN_JOB, _LOG, _RECORDER
    _drop_mlflow_env()
    log = _Log(task.log_path)
    log.write(f"== job {task.number} attempt {task.attempt} pid {os.getpid()} "
              f"host {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              f"   overrides: {' '.join(task.overrides)}\n")
    rec, guard, value = None, Guard(None, log), None
    _IN_JOB, _LOG = True, log
    try:
        limit_blas(task.blas_threads)
        if task.record is not None:
            rec = guard.rec = records.open_job_run(task.record)
            if recorders.forked(rec):
                _RECORDER = (task.record, rec)
        value = task.fn(task.payload, guard)
    except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, ...
        guard.failed(e)
        value = None
    finally:
        _IN_JOB, _LOG, _RECORDER = False, None, None
    status = guard.status or "FINISHED"
    diagnosis, metrics, curves = None, {}, {}
    own = _own_job(value)
    if own is not None:   # its curves go back once, in the result, not in the value too
        curves, own.curves = own.curves, {}
    if rec is not None:
        try:
            diagnosis, metrics = records.close_job_run(
                rec, task.record, status,
                (own.diagnosis, dict(own.metrics or {})) if own is not None else None)
        except Exception as e:  # noqa: BLE001 - the janitor will end the run
            log.write(f"== could not end the run: {one_line(e)}\n")
            if status == "FINISHED":   # its record is not whole: not a finished job
                status, guard.error = "FAILED", one_line(e)
    log.write(f"== {status}" + (f": {guard.error}" if guard.error else "") + "\n")
    log.close()
    for stream in (sys.stdout, sys.stderr):  # the worker may be killed, buffers and all
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    return JobResult(status, rec.run_id if rec is not None else None, guard.error, diagnosis,
                     {k: float(v) for k, v in metrics.items()},
                     _picklable(value), recorders.settle(wait=False),
                     curves if status == "FINISHED" and rec is not None else {})


def drain() -> list[tuple[str, str]]:
    """Run in an idle worker when the sweep ends: the runs its recorders are still
    ending are ended (``recorders.settle``) before the launcher's janitor looks, and the
    recorders go (``recorders.close_all``)."""
    late = recorders.settle()
    recorders.close_all()
    return late


# -- driver side: one slot ----------------------------------------------------------------

# Healthy idle workers of finished sweeps in this launcher process, by BLAS thread count:
# the next sweep (Hydra's next batch, another sweep in the same process) reuses them
# instead of paying the worker start-up again.
_IDLE: dict[int, list] = {}


def stop_idle() -> None:
    """Stop the idle workers kept for the next sweep in this process."""
    for kept in _IDLE.values():
        while kept:
            executor, _ = kept.pop()
            executor.shutdown(wait=False, kill_workers=True)


class Slot:
    """One worker process in its own loky executor (see the module docstring)."""

    def __init__(self, make: Callable[[], Any], key: int = 0):
        self.make, self.key = make, key
        self.executor = None
        self.pid_future = None
        self.job = None
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
        idle = _IDLE.get(self.key, [])
        while idle:
            executor, pid_future = idle.pop()
            if pid_future.done() and not pid_future.exception() and pid_alive(pid_future.result()):
                self.executor, self.pid_future = executor, pid_future
                self.ready_at = time.monotonic()
                self.first_ready = self.first_ready or self.ready_at
                return
            executor.shutdown(wait=False, kill_workers=True)
        self.executor, self.ready_at = self.make(), None
        # The worker's pid (to signal it); its arrival also marks when the job starts.
        self.pid_future = self.executor.submit(os.getpid)
        self.pid_future.add_done_callback(self._ready)

    def _ready(self, future) -> None:
        self.ready_at = time.monotonic()
        self.first_ready = self.first_ready or self.ready_at

    def submit(self, job, task: Task) -> None:
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

    def drain(self, timeout: float = 60.0) -> list:
        """``workers.drain`` in this idle worker; ``[]`` when it has none or is gone."""
        if self.executor is None or self.job is not None or not pid_alive(self.pid):
            return []
        try:
            return self.executor.submit(drain).result(timeout=timeout)
        except Exception:  # noqa: BLE001 - a dead worker's recorder ends what it read
            return []

    def keep(self) -> None:
        """Give a healthy idle worker back for the next sweep in this process."""
        if self.executor is not None and self.job is None and pid_alive(self.pid):
            _IDLE.setdefault(self.key, []).append((self.executor, self.pid_future))
            self.executor = self.pid_future = self.ready_at = None
        else:
            self.discard()

    def discard(self) -> None:
        """Drop the executor (broken, or to be killed); the next job gets a fresh worker."""
        if self.executor is not None:
            try:
                self.executor.shutdown(wait=False, kill_workers=True)
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.executor = self.pid_future = self.ready_at = None


def make_executor(threads: int, env: dict, warm_uri: str | None, modules: tuple = (),
                  recorder: tuple[str, str] | None = None):
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=1, initializer=init_worker,
                               initargs=(threads, os.getpid(), warm_uri, modules, recorder),
                               env=env)
