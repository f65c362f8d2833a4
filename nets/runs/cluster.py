"""The sweep launcher's distributed mode: the same sweep on a dask.distributed cluster.

Selected with ``hydra/launcher=nets_dask`` on the command line (a launcher chosen in a
swept experiment file is ignored, hydra#2946), e.g.
``nets-sweep example hydra/launcher=nets_dask hydra.launcher.address=tcp://10.0.0.5:8786``.
Without an ``address`` a ``LocalCluster`` on 127.0.0.1 is started (one single-threaded
worker process per core), to try it out. joblib/loky (``nets.runs.sweep``) stays the local
engine; this module only replaces *dispatch*. Planning (every point composed and checked
in the launching process), the store, the parent run, the janitor, retries, the summary
and the exit code are ``nets.runs.sweep.Sweep``'s. Measured behaviour this follows:
shared/research/stack-reliability.md §D.

- **One future per job**, carrying only plain data: the resolved config, the absolute
  tracking URI, experiment id, parent run id, sweep id, job number and attempt
  (``nets.runs.workers.Task``). Workers never compose configs and never read the launcher's
  files or environment. Never joblib's dask backend: it hung the driver on worker death.
- **A lost worker is that job's FAILED status.** At most as many futures are in flight
  as the cluster has worker threads, so a dying worker holds one job, the one that
  killed it (dask marks every task *processing* on a dead worker suspicious). Run the
  scheduler with ``distributed.scheduler.allowed-failures`` 0 (set for a LocalCluster;
  ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0`` for ``dask scheduler``): the
  ``KilledWorker`` then arrives at once, the job's run is ended FAILED by its tags
  (``worker died``), and the launcher resubmits it up to ``max_retries`` times as a new
  attempt. If the cluster has no worker for ``connect_timeout`` seconds, the jobs left
  fail instead of waiting for ever.
- **At-least-once execution is made idempotent** in the job wrapper (``run_remote``):
  before training it looks up the runs of the same (sweep id, job number): a FINISHED
  one is returned as the result without training again (exactly one FINISHED run per
  config), and RUNNING ones (an earlier execution on a worker that died) are ended
  KILLED. The driver's janitor ends anything still RUNNING at the end, as locally.
- **Clean state per job:** the wrapper resets MLflow's process-wide state (inherited
  ``MLFLOW_RUN_ID``/``MLFLOW_EXPERIMENT_ID``..., active runs, the fluent experiment id,
  the tracking URI) before each job; workers are long-lived and shared by sweeps.
- **Checked before anything is recorded:** ``nets`` must import on the scheduler and
  on every worker at the launcher's version (otherwise the scheduler cannot unpickle
  the tasks and the launcher would wait with no error), and a local SQLite URI is
  refused when the cluster spans more than this host.
- Ctrl-C asks running jobs to stop: on its worker, the job raises ``KeyboardInterrupt``
  at its next epoch (the run ends KILLED); a per-job ``timeout`` raises ``JobTimeout``
  the same way, from a timer on the worker (the run ends FAILED). A job still running
  after ``grace_seconds`` (or at a second Ctrl-C) has its worker restarted through its
  nanny and is recorded KILLED. (Raising asynchronously in the job's thread was tried:
  the exception can land in a gc callback, which swallows it.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

from nets.runs import console, records, sweep as sweeps
from nets.runs.settings import BLAS_ENV, Settings, cores
from nets.runs.workers import JobResult, JobTimeout, Task, execute, one_line
from nets.registry import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1")
WORKER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@dataclass
class DaskSettings(Settings):
    """``hydra.launcher.*`` of ``nets_dask`` (``n_jobs``: LocalCluster workers only).

    Attributes
    ----------
    address : str or None
        Scheduler address (``tcp://host:8786``); ``None`` = a LocalCluster on 127.0.0.1.
    allowed_failures : int
        ``distributed.scheduler.allowed-failures`` for the LocalCluster (an external
        scheduler reads its own setting).
    connect_timeout : float
        Seconds to wait for the scheduler and a first worker (and, later, the longest
        time without any worker before the remaining jobs fail).
    """

    address: Optional[str] = None
    allowed_failures: int = 0
    connect_timeout: float = 60.0
    blas_threads: Optional[int] = 1

    def check(self) -> None:
        super().check()
        if self.allowed_failures < 0:
            raise ConfigError("hydra.launcher.allowed_failures", self.allowed_failures,
                              "must be >= 0")
        if self.connect_timeout <= 0:
            raise ConfigError("hydra.launcher.connect_timeout", self.connect_timeout,
                              "must be > 0")
        if self.address is not None and "://" not in str(self.address):
            self.address = f"tcp://{self.address}"


# -- worker side --------------------------------------------------------------------------

_JOB_THREADS: dict[str, int] = {}   # dask key -> ident of the thread running that job


def reset_mlflow(uri: str | None) -> None:
    """Forget whatever an earlier job (or sweep) left in this long-lived worker."""
    from nets.store import active

    active.reset(uri)
    os.environ.update(WORKER_ENV)


def settle_attempts(spec: records.RunSpec | None) -> JobResult | None:
    """Idempotency under at-least-once execution (see the module docstring).

    Returns the result of an existing FINISHED run of this (sweep id, job), or ``None``
    after ending the job's RUNNING runs (earlier executions) KILLED.
    """
    from nets.store.tags import SUMMARY_PREFIXES, nets_metrics

    if spec is None or "nets.sweep_id" not in spec.tags:
        return None
    runs = records.job_runs(spec.uri, spec.experiment_id, spec.tags["nets.sweep_id"],
                            spec.tags["nets.job"])
    for r in runs:
        if r.info.status == "FINISHED":
            keep = {k: float(v) for k, v in nets_metrics(r.data.metrics).items()
                    if k.startswith(SUMMARY_PREFIXES)}
            return JobResult("FINISHED", r.info.run_id,
                             diagnosis=r.data.tags.get("nets.diagnosis"), metrics=keep)
    for r in runs:
        if r.info.status == "RUNNING":
            why = (f"superseded: job {spec.tags['nets.job']} started again (attempt "
                   f"{spec.tags.get('nets.attempt')}) after this execution was lost")
            c = records.client(spec.uri)
            records.retry(c.set_tag, r.info.run_id, "nets.error", why)
            records.retry(c.set_terminated, r.info.run_id, "KILLED")
    return None


_STOP: dict[int, type] = {}       # job thread ident -> exception to raise at its next epoch
_CHECKER_INSTALLED = False


def _pending_stop():
    exc = _STOP.pop(threading.get_ident(), None)
    if exc is KeyboardInterrupt:
        return KeyboardInterrupt("the sweep was interrupted (Ctrl-C)")
    if exc is not None:
        return exc("the job exceeded the sweep's per-job timeout")
    return None


def _install_stop_check() -> None:
    """Make every MLflow logging call in the job's own thread raise a requested stop:
    ``KeyboardInterrupt`` (the run ends KILLED) or ``JobTimeout`` (FAILED). Cooperative,
    so no exception lands inside MLflow's or dask's own code; a task that logs nothing
    is stopped by restarting its worker after the grace period."""
    global _CHECKER_INSTALLED
    if _CHECKER_INSTALLED:
        return
    from nets.store import active

    active.install_stop_check(_pending_stop)
    _CHECKER_INSTALLED = True


def stop_jobs(keys: Sequence[str]) -> list[str]:
    """On a worker (``client.run``): ask those jobs to stop at their next epoch; the keys
    running here."""
    found = [k for k in keys if k in _JOB_THREADS]
    for k in found:
        _STOP[_JOB_THREADS[k]] = KeyboardInterrupt
    return found


def run_remote(task: Task, key: str, timeout: float | None = None) -> JobResult:
    """The dask task of one job: clean state, idempotency, then ``workers.execute``."""
    reset_mlflow(task.record.uri if task.record else None)
    try:
        done = settle_attempts(task.record)
    except Exception as e:  # noqa: BLE001 - an unreachable server fails the job, in one line
        return JobResult("FAILED", error=f"tracking server: {one_line(e)}")
    if done is not None:
        return done
    _install_stop_check()
    ident = threading.get_ident()
    _STOP.pop(ident, None)
    _JOB_THREADS[key] = ident
    timer = None
    if timeout:
        timer = threading.Timer(timeout, lambda: _JOB_THREADS.get(key) == ident
                                and _STOP.setdefault(ident, JobTimeout))
        timer.daemon = True
        timer.start()
    try:
        return execute(task)
    finally:
        _JOB_THREADS.pop(key, None)
        _STOP.pop(ident, None)
        if timer is not None:
            timer.cancel()


# -- driver side ------------------------------------------------------------------------

def is_local_store(uri: str | None) -> bool:
    """A store only processes on this host can reach (SQLite file, local path)."""
    if not uri:
        return False
    from nets.store import uri as store_uri

    return store_uri.sqlite_path(uri) is not None or store_uri.file_path(uri) is not None \
        or uri.startswith("sqlite:")


def _host_of(address: str) -> str:
    rest = address.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[1:rest.index("]")]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def this_host_names() -> set[str]:
    names = set(LOOPBACK) | {socket.gethostname(), socket.getfqdn()}
    try:
        names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return names


def single_host(scheduler: str | None, worker_hosts: Sequence[str]) -> bool:
    """Scheduler (``None`` = LocalCluster) and every worker on this machine."""
    mine = this_host_names()
    return (scheduler is None or _host_of(scheduler) in mine) and all(h in mine for h in worker_hosts)


def check_store(uris: Sequence[str | None], scheduler: str | None,
                worker_hosts: Sequence[str]) -> None:
    """Refuse a local SQLite/file store when the cluster is not all on this host."""
    if single_host(scheduler, worker_hosts):
        return
    for uri in uris:
        if is_local_store(uri):
            raise ConfigError("tracking.uri", uri, "a local SQLite file cannot be shared by a "
                              "multi-host dask cluster; start `mlflow server --backend-store-uri "
                              "... --host <interface>` and pass tracking.uri=http://<host>:<port>")


def _probe():  # pickled by value into workers: must not need nets to unpickle
    try:
        import nets

        return nets.__version__
    except Exception as e:  # noqa: BLE001
        return f"not importable ({type(e).__name__}: {e})"


_probe.__module__ = "__main__"


class DaskSweep(sweeps.Sweep):
    """``nets.runs.sweep.Sweep`` with dask futures instead of loky slots."""

    launcher_name = "nets_dask"

    def __init__(self, jobs, settings: DaskSettings, name, axes, sweep_dir=None, out=None):
        super().__init__(jobs, settings, name, axes, sweep_dir, out)
        self.client = self.cluster = None
        self.local = True
        self.address = settings.address
        self.inflight: dict[str, tuple[Any, sweeps.Job, float]] = {}

    # -- connecting and checking (before anything is recorded) --------------------------

    def connect(self) -> None:
        """Cluster, client, version and store checks. Raises ``ConfigError``."""
        import dask
        from distributed import Client, LocalCluster

        s: DaskSettings = self.settings
        # dask logs every connect/close at INFO through Hydra's handler: keep warnings only.
        for name in ("distributed", "distributed.nanny", "distributed.scheduler",
                     "distributed.worker", "distributed.core"):
            logging.getLogger(name).setLevel(logging.WARNING)
        dask.config.set({"distributed.scheduler.allowed-failures": s.allowed_failures})
        try:
            if s.address is None:
                n = cores() if s.n_jobs == -1 else (
                    max(1, cores() + 1 + s.n_jobs) if s.n_jobs < -1 else s.n_jobs)
                n = max(1, min(n, len(self.jobs)))
                self.cluster = LocalCluster(host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                            n_workers=n, threads_per_worker=1, processes=True,
                                            env={**WORKER_ENV, **{k: str(s.blas_threads or 1)
                                                                 for k in BLAS_ENV}})
                self.address = self.cluster.scheduler_address
                self.client = Client(self.cluster, set_as_default=False)
            else:
                self.client = Client(s.address, timeout=s.connect_timeout, set_as_default=False)
            self.client.wait_for_workers(1, timeout=s.connect_timeout)
        except (OSError, TimeoutError) as e:
            self.close()
            raise ConfigError("hydra.launcher.address", s.address,
                              f"no dask scheduler with a worker answered within "
                              f"{s.connect_timeout:g} s ({one_line(e)})") from None
        try:
            self._check_versions()
            hosts = [w["host"] for w in self.client.scheduler_info()["workers"].values()]
            check_store([j.uri for j in self.jobs], s.address, hosts)
            self.local = single_host(s.address, hosts)
        except BaseException:
            self.close()
            raise
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.threads = s.blas_threads or 1

    def _check_versions(self) -> None:
        import nets

        from concurrent.futures import ThreadPoolExecutor, TimeoutError as Late

        def ask():
            where = {"scheduler": self.client.run_on_scheduler(_probe)}
            where.update(self.client.run(_probe, on_error="return"))
            return where

        pool = ThreadPoolExecutor(1)
        try:
            where = pool.submit(ask).result(timeout=self.settings.connect_timeout)
        except Late:
            raise ConfigError("hydra.launcher.address", self.address,
                              f"the scheduler or a worker did not answer within "
                              f"{self.settings.connect_timeout:g} s") from None
        finally:
            pool.shutdown(wait=False)
        for who, version in where.items():
            if version != nets.__version__:
                raise ConfigError("hydra.launcher.address", self.address,
                                  f"nets {nets.__version__} must be installed on the scheduler "
                                  f"and every worker; on {who} it is {version}")

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - shutting down
                    pass
        self.client = self.cluster = None

    # -- the record -----------------------------------------------------------------------

    def _parent_run(self, store, group, key):
        rec = super()._parent_run(store, group, key)
        rec.set_tags({"nets.dask_scheduler": self.address or "",
                      "nets.dask_workers": self.workers})
        return rec

    def _recorded_by_recorders(self) -> bool:
        """No: a dask worker may be on another machine, and its cooperative stop check
        sits on MLflow's client in the worker (``_install_stop_check``)."""
        return False

    def _task(self, job: sweeps.Job) -> Task:
        task = super()._task(job)
        # Job logs are files on the launcher's machine: written only when workers share it.
        return task if self.local else replace(task, log_path=None)

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        client, s = self.client, self.settings
        pending = deque(j for j in self.jobs if j.status == "PENDING")
        self.pending = pending
        skipped = sum(1 for j in self.jobs if j.status == "SKIPPED")
        self._say(f"sweep {self.name} ({self.sweep_id}): {len(self.jobs)} jobs"
                  + (f", {skipped} skipped (already FINISHED)" if skipped else "")
                  + f"; dask {self.address}: {self.workers} worker threads"
                  + (f"; logs in {self.sweep_dir}" if self.sweep_dir and self.local else ""))
        capacity, checked, no_workers = self.workers, 0.0, None
        stop_at = None
        while True:
            now = time.monotonic()
            if now - checked >= 1.0:
                checked = now
                try:
                    capacity = sum(client.nthreads().values())
                except Exception:  # noqa: BLE001 - scheduler gone: handled below
                    capacity = 0
                if capacity:
                    no_workers = None
                elif no_workers is None:
                    no_workers = now
                elif now - no_workers > s.connect_timeout:
                    self._fail_all(pending, f"no dask worker for {s.connect_timeout:g} s")
                    break
            if not self.stop_requested:
                while pending and len(self.inflight) < capacity:
                    self._submit(pending.popleft())
            elif stop_at is None:
                stop_at = now + s.grace_seconds
                self._stop_running()
            elif now >= stop_at or self.forced:
                self._kill_inflight("KILLED", "stopped by Ctrl-C (worker restarted)")
            if not self.inflight and (self.stop_requested or not pending):
                break
            done = [k for k, (f, _, _) in self.inflight.items() if f.done()]
            for k in done:
                self._collect_future(*self.inflight.pop(k))
            self._status()
            if not done:
                time.sleep(0.1)

    def _submit(self, job: sweeps.Job) -> None:
        job.attempt += 1
        job.status = "RUNNING"
        key = f"nets-{self.sweep_id}-{job.number}-{job.attempt}"
        fut = self.client.submit(run_remote, self._task(job), key, self.settings.timeout,
                                 key=key, pure=False, retries=0)
        self.inflight[key] = (fut, job, time.monotonic())

    def _stop_running(self) -> None:
        keys = list(self.inflight)
        try:
            found = {k for ks in self.client.run(stop_jobs, keys, on_error="return").values()
                     if isinstance(ks, list) for k in ks}
        except Exception:  # noqa: BLE001
            found = set()
        for k in keys:
            fut, job, _ = self.inflight[k]
            if k not in found and not fut.done():  # not started: forget it
                fut.cancel()
                del self.inflight[k]
                job.status, job.attempt = "PENDING", job.attempt - 1
        running = len(self.inflight)
        self._say(f"interrupted: not starting the {sum(j.status == 'PENDING' for j in self.jobs)}"
                  f" jobs left; stopping {running} running (up to {self.settings.grace_seconds:g}"
                  " s; Ctrl-C again to stop at once)")

    def _kill_inflight(self, status: str, reason: str) -> None:
        """Cancel every job in flight and restart (via its nanny) each worker still
        running one: a thread cannot be killed, its process can. Their runs end
        ``status``."""
        keys = set(self.inflight)
        try:
            busy = [w for w, ks in self.client.processing().items() if keys & set(ks)]
            if busy:
                self.client.restart_workers(busy, timeout=30, raise_for_error=False)
        except Exception as e:  # noqa: BLE001 - no nanny, scheduler gone ...
            self._say(f"could not restart the workers running this sweep's jobs: "
                      f"{one_line(e)}")
        for fut, job, _ in self.inflight.values():
            fut.cancel()
            self._lost(job, status, reason)
            self._event(job)
        self.inflight.clear()

    def _fail_all(self, pending: deque, reason: str) -> None:
        self._kill_inflight("FAILED", reason)
        while pending:
            job = pending.popleft()
            job.status, job.error = "FAILED", reason
            self._event(job)

    def _collect_future(self, fut, job: sweeps.Job, submitted: float) -> None:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        job.seconds = time.monotonic() - submitted
        try:
            st = fut.result()
        except KilledWorker as e:
            worker = getattr(getattr(e, "last_worker", None), "address", None)
            self._lost(job, "FAILED", "worker died" + (f" ({worker})" if worker else "")
                       + " while running this job")
            if self._retry(job, self.jobs_error(job)):
                return
        except CancelledError:
            self._lost(job, "KILLED" if self.stop_requested else "FAILED",
                       "stopped by Ctrl-C" if self.stop_requested else "cancelled by dask")
        except Exception as e:  # noqa: BLE001 - unpicklable task, scheduler error ...
            self._lost(job, "KILLED" if self.stop_requested else "FAILED", one_line(e))
        else:
            self._take(job, st)
            if st.status == "FAILED" and "JobTimeout" in (st.error or ""):
                job.error = f"timed out after {self.settings.timeout:g} s"
        self._event(job)

    @staticmethod
    def jobs_error(job: sweeps.Job) -> str:
        return job.error or "worker died"

    def _status_text(self) -> str:
        now = time.monotonic()
        running_for = [now - t for _, _, t in self.inflight.values()]
        durations = [j.seconds for j in self.jobs if j.status == "FINISHED" and j.seconds]
        c = self.counts()
        c["PENDING"] = c["PENDING"]
        return console.status_text(c, len(running_for), 0, now - self.t0, running_for,
                                   durations, self.workers, self.stop_requested)

    def _cleanup(self) -> None:
        if self.inflight and self.client is not None:
            self._kill_inflight("KILLED" if self.interrupted else "FAILED",
                                "stopped by Ctrl-C" if self.interrupted
                                else "the launcher stopped")
        try:
            super()._cleanup()
        finally:
            self.close()
