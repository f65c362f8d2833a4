"""Running a sweep: many jobs in parallel worker processes, one MLflow parent run.

This module gets plain data: ``Job``s, each with a picklable worker-side callable and
its payload (the Hydra side, ``hydra_plugins/nets_launcher``, composes and checks every
point and makes those), and never imports Hydra or MLflow. It follows the measured
failures of Hydra 1.3's joblib launcher (shared/research/stack-reliability.md §A-C):

- The store (schema, WAL, experiment) and the parent run are prepared once, here,
  before any worker starts; jobs get the absolute URI, the experiment id and the parent
  run id (``nets.runs.records``).
- Each job runs inside ``nets.runs.workers.execute``, which catches everything, records
  the traceback, ends the job's run and returns a small ``JobResult``: no exception
  object crosses the process boundary.
- Results are handled as they arrive; each failure is printed when it happens
  (``nets.runs.console``).
- A job whose worker died is ended FAILED (found by its sweep id, job number and attempt
  tags) with the reason ``worker died (exit code ...)``, and resubmitted up to
  ``max_retries`` times as a new run (attempt + 1): deaths are often not the job's own
  fault (an OOM kill caused by its neighbours). The summary lists every retry and why.
- A driver-side janitor (``finally``) ends every run of the sweep still RUNNING, whatever
  stopped the sweep; ``nets-cleanup`` (``nets.runs.cleanup``) does it after a crash of
  the driver itself.

Stopping: the first Ctrl-C (or SIGTERM) stops dispatching and asks each running job to
stop (SIGUSR1: ``KeyboardInterrupt`` inside the job, its run ends KILLED); a job that
has not stopped after ``grace_seconds`` has its worker killed and the janitor ends its
run KILLED. A second Ctrl-C kills every worker at once; the janitor still runs. A
per-job ``timeout`` works the same way with SIGUSR2 (the run ends FAILED). Relaunching
with ``resume`` skips every job whose config already has a FINISHED run.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import numpy as np

from nets.runs import console, records, warm
from nets.runs.jobs import Job, Store, jobs_yaml, sweep_run_name  # noqa: F401 - sweeps.Job
from nets.runs.console import resume_command  # noqa: F401 - the public hint
from nets.runs.settings import BLAS_ENV, Settings, cores, workers_for  # noqa: F401
from nets.runs.workers import JobResult, Slot, Task, make_executor, one_line

# Exit code of the last sweep(s) in this process: 0, 1 (a job failed), 2 (rejected
# before anything ran), 130 (interrupted). ``nets-train -m`` / ``nets-sweep`` exit with
# it after Hydra returns.
EXIT_CODE = 0


# Seconds a lost job's run may take to appear (its recorder reads what the dead worker
# sent, and creates the run first) before the launcher records a placeholder instead.
LATE_RUN_WAIT = 5.0


def _exit_codes(exc: BaseException) -> str:
    text = str(exc)
    i = text.find("{")
    codes = text[i:text.find("}", i) + 1] if i >= 0 else ""
    return f"exit code {codes.strip('{}')}" if codes else one_line(exc)


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

    launcher_name = "nets"

    def __init__(self, jobs: list[Job], settings: Settings, name: str,
                 axes: dict[str, list[str]], sweep_dir: Path | None = None, out=None):
        self.jobs, self.settings, self.name, self.axes = jobs, settings, name, axes
        self.swept = [k for k, v in axes.items() if len(v) > 1]
        self.sweep_dir = sweep_dir
        self.console = console.Console(out)
        self.out = self.console.out
        self.sweep_id = time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        self.workers, self.threads = workers_for(settings, max(1, len(jobs)),
                                                 recorders=self._recorded_by_recorders())
        self.stores: dict[tuple, Store] = {}
        self.stop_requested = self.interrupted = self.forced = False
        self.cleaning = False
        self.retries = 0
        self.retried: list[tuple[int, int, str]] = []   # (job, attempt, why)
        self.pending: deque[Job] = deque()
        self.slots: list[Slot] = []
        self.timings: dict[str, float] = {}   # seconds: prepare, dispatch, cleanup
        self.recorder: str | None = None       # the warm recorder's socket (workers')
        self.t0 = time.monotonic()
        self._stop_said = False

    # -- planning -------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the execution backend before anything is recorded (local: nothing to
        do); raise ``ValueError`` if it cannot run this sweep."""

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
                from nets.store.uri import sqlite_path

                db = sqlite_path(uri)
                if db is not None and not db.exists():
                    continue
                e = records.retry(records.client(uri).get_experiment_by_name, exp)
                if e is None:
                    continue
                exp_id = e.experiment_id
            else:
                exp_id = self.stores[(uri, exp)].experiment_id
            done = records.finished_by_hash(uri, exp_id)
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
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for s in old:
                signal.signal(s, self._on_signal)
        try:
            self.recorder = self._start_recorder()
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

    def _recorded_by_recorders(self) -> bool:
        """Whether a job records through a recorder process (nets' own, warm one on)."""
        return warm.idle_seconds() > 0 and any(j.uri and not j.needs_fluent for j in self.jobs)

    def _start_recorder(self) -> str | None:
        """The warm recorder's socket for jobs that record through a recorder process
        (``nets.runs.warm``; started now, beside the launcher's own store preparation,
        when none runs yet); ``None`` when no job does or it is turned off. Workers
        then never import mlflow: they start in a fraction of the time, and a job's
        record is written beside its training."""
        if not self._recorded_by_recorders():
            return None
        path = warm.start()
        return str(path) if path is not None else None

    def _prepare(self) -> None:
        """Schema, WAL, experiment and the parent run, once, before any worker starts."""
        groups = self._groups()
        for (uri, exp), group in groups.items():
            if uri is None:
                continue
            store = Store(uri, records.prepare(uri, exp))
            self.stores[(uri, exp)] = store
            for j in group:
                j.experiment_id = store.experiment_id
        if self.settings.resume:
            for number, run_id in self._finished_elsewhere().items():
                job = next(j for j in self.jobs if j.number == number)
                job.status, job.run_id = "SKIPPED", run_id
            if not self.stores:
                self._say("resume: tracking is disabled, so nothing can be skipped")
        key = records.sweep_key(j.config_hash for j in self.jobs)
        for (uri, exp), store in self.stores.items():
            if self.settings.resume:
                prev = records.search(uri, [store.experiment_id],
                                      f"tags.`nets.sweep_key` = '{key}' and "
                                      "tags.`nets.sweep_role` = 'parent'",
                                      order_by=["attributes.start_time DESC"], limit=1)
                store.previous_parent = prev[0].info.run_id if prev else None
            store.parent = self._parent_run(store, groups[(uri, exp)], key)

    def _parent_run(self, store: Store, group: list[Job], key: str):
        s = self.settings
        tags = {"nets.sweep_id": self.sweep_id, "nets.sweep_role": "parent",
                "nets.sweep_name": self.name, "nets.sweep_key": key,
                "nets.launcher": self.launcher_name,
                "nets.host": socket.gethostname(), "nets.pid": os.getpid(),
                "nets.n_jobs": self.workers, "nets.blas_threads_limit": self.threads,
                "nets.sweep_dir": str(self.sweep_dir or "")}
        if store.previous_parent:
            prev = records.retry(records.client(store.uri).get_run, store.previous_parent)
            tags.update({"nets.resumes": store.previous_parent,
                         "nets.resumes_sweep_id": prev.data.tags.get("nets.sweep_id", "")})
        params = {f"sweep.{k}": ",".join(v) for k, v in self.axes.items()}
        params.update({"sweep.jobs": len(group), "launcher.n_jobs": self.workers,
                       "launcher.blas_threads": self.threads,
                       "launcher.max_retries": s.max_retries,
                       "launcher.grace_seconds": s.grace_seconds,
                       "launcher.timeout": s.timeout, "launcher.resume": s.resume})
        rec = records.open_parent(store.uri, store.experiment_id,
                                  sweep_run_name(self.name, [j.config for j in group],
                                                 store.previous_parent is not None),
                                  tags, params)
        rec.log_text(jobs_yaml(group), "jobs.yaml")
        return rec

    def _task(self, job: Job) -> Task:
        store = self.stores.get((job.uri, job.experiment))
        spec = None
        if store is not None:
            import yaml

            from nets.store.write import flatten

            h = job.config_hash
            tags = {"nets.sweep_id": self.sweep_id, "nets.sweep_role": "job",
                    "nets.job": job.number, "nets.attempt": job.attempt,
                    "nets.job_hash": h, "nets.config_hash": h,
                    "nets.launcher": self.launcher_name,
                    "nets.n_jobs": self.workers, "nets.blas_threads_limit": self.threads,
                    "nets.launcher_host": socket.gethostname(),
                    "nets.launcher_pid": os.getpid()}
            spec = records.RunSpec(
                store.uri, store.experiment_id, store.parent.run_id if store.parent else None,
                job.run_name or f"job {job.number}: {job.label(self.swept)}"[:240], tags,
                flatten(job.config), yaml.safe_dump(job.config, sort_keys=False),
                list(job.overrides), dict(self.settings.diagnosis_keys),
                None if job.needs_fluent else self.recorder)
        return Task(job.number, job.attempt, job.fn, job.payload, spec, job.log_path,
                    self.threads, list(job.overrides))

    def _make_executor(self):
        # Warm the store in workers for jobs whose run is opened there, else in recorders.
        uri = next((j.uri for j in self.jobs if j.uri and (j.needs_fluent or not self.recorder)),
                   None)
        recorded = next((j.uri for j in self.jobs if j.uri and not j.needs_fluent), None)
        recorder = (self.recorder, recorded) if self.recorder and recorded else None
        return make_executor(self.threads, {k: str(self.threads) for k in BLAS_ENV}, uri,
                             self._worker_modules(), recorder)

    def _worker_modules(self) -> tuple:
        """What the jobs' code imports, for the workers to import as they start: the
        modules of the worker-side callables, and nets' own job's engine."""
        names = {getattr(j.fn, "__module__", None) for j in self.jobs}
        if any(not j.needs_fluent for j in self.jobs):
            # numpy 2 imports these on first use (generators; np.median): 30 ms of a job.
            names.update(("nets.runs.job", "numpy.random", "numpy.ma"))
        return tuple(sorted(n for n in names if n and n != "__main__"))

    def _dispatch(self) -> None:
        pending = deque(j for j in self.jobs if j.status == "PENDING")
        skipped = [j for j in self.jobs if j.status == "SKIPPED"]
        self.slots = [Slot(self._make_executor, self.threads) for _ in range(self.workers)]
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

    def _watch(self, busy: list[Slot]) -> None:
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

    def _collect(self, slot: Slot) -> None:
        from joblib.externals.loky.process_executor import BrokenProcessPool

        job, fut, reason = slot.job, slot.future, slot.stop_reason
        job.seconds = time.monotonic() - (slot.started or slot.submitted)
        slot.release()
        try:
            res = fut.result()
        except BrokenProcessPool as e:
            slot.discard()
            if reason == "interrupt":
                self._lost(job, "KILLED", "stopped by Ctrl-C (worker killed)")
                self._event(job)
                return
            why = (f"timed out after {self.settings.timeout:g} s (worker killed)"
                   if reason == "timeout" else f"worker died ({_exit_codes(e)})")
            self._lost(job, "FAILED", why)
            if reason is None and self._retry(job, why):
                return
        except Exception as e:  # noqa: BLE001 - executor shut down, unpicklable task ...
            slot.discard()
            self._lost(job, "KILLED" if self.stop_requested else "FAILED", one_line(e))
        else:
            self._take(job, res)
            if reason == "timeout" and res.status == "FAILED":
                job.error = f"timed out after {self.settings.timeout:g} s"
        self._event(job)

    def _retry(self, job: Job, why: str) -> bool:
        """Requeue a job whose worker died, if it has attempts left; print either way."""
        if job.attempt <= self.settings.max_retries and not self.stop_requested:
            self.retries += 1
            self.retried.append((job.number, job.attempt, why))
            self._event(job, f"; retrying as attempt {job.attempt + 1}")
            job.status = "PENDING"
            self.pending.append(job)
            return True
        return False

    def _take(self, job: Job, res: JobResult) -> None:
        job.status, job.error = res.status, res.error
        job.metrics, job.diagnosis = res.metrics, res.diagnosis
        job.run_id = res.run_id or job.run_id
        job.value = res.value
        job.curves = {k: (np.asarray(st, np.int64), np.asarray(v, np.float64))
                      for k, (st, v) in res.curves.items()}   # 16 bytes a point, kept
        for run_id, line in res.late:
            self._late(run_id, line)

    def _late(self, run_id: str, line: str) -> None:
        """A job reported FINISHED whose run's end could not be recorded afterwards: it
        failed (the janitor ends the run, still RUNNING)."""
        for j in self.jobs:
            if j.run_id == run_id and j.status == "FINISHED":
                j.status, j.error = "FAILED", line
                self._say(f"job {j.number}: {line}")

    # -- the record of lost jobs --------------------------------------------------------

    def _job_runs(self, job: Job) -> list:
        store = self.stores.get((job.uri, job.experiment))
        if store is None:
            return []
        return records.job_runs(store.uri, store.experiment_id, self.sweep_id, job.number,
                                job.attempt)

    def _lost(self, job: Job, status: str, reason: str) -> None:
        """A job whose worker was lost: end its run ``status`` with ``reason``."""
        job.status, job.error, job.value = status, reason, None
        if job.log_path and Path(job.log_path).parent.is_dir():
            with open(job.log_path, "a") as fh:
                fh.write(f"== {status}: {reason}\n")
        store = self.stores.get((job.uri, job.experiment))
        if store is None:
            return
        try:
            runs = self._job_runs(job)
            deadline = time.monotonic() + LATE_RUN_WAIT
            while not runs and self.recorder and time.monotonic() < deadline:
                # A recorder process may still be creating the run of a job whose worker
                # died as it started: wait for it rather than add a second run.
                time.sleep(0.25)
                runs = self._job_runs(job)
            for r in runs:
                if r.info.status == "RUNNING":
                    records.end_run(store.uri, r.info.run_id, status, reason)
            if runs:
                job.run_id = runs[0].info.run_id
            elif status == "FAILED":
                job.run_id = self._placeholder(job, reason)
        except Exception as e:  # noqa: BLE001 - the janitor will still end it
            self._say(f"could not record the loss of job {job.number}: {one_line(e)}")

    def _placeholder(self, job: Job, reason: str) -> str:
        """A FAILED run for a job that died before creating its own."""
        from nets.store.write import RunRecorder

        spec = self._task(job).record
        rec = RunRecorder(spec.uri, spec.experiment_id, spec.name,
                          tags={**spec.tags, "nets.error": reason},
                          parent_run_id=spec.parent_run_id)
        rec.log_params(spec.params)
        rec.log_text(reason + "\n", "error.txt")
        rec.end("FAILED")
        return rec.run_id

    # -- the end ----------------------------------------------------------------------

    def _cleanup(self) -> None:
        for slot in self.slots:
            for run_id, line in slot.drain():   # runs its recorder is still ending
                self._late(run_id, line)
            if slot.job is not None:
                job = slot.job
                slot.discard()
                slot.release()
                if job.status == "RUNNING":
                    job.status = "KILLED" if self.interrupted else "FAILED"
                    job.error = job.error or ("stopped by Ctrl-C" if self.interrupted
                                              else "the launcher stopped")
            elif self.interrupted:
                slot.discard()
            else:
                slot.keep()
        for j in self.jobs:  # requeued or never dispatched
            if j.status == "RUNNING":
                j.status = "KILLED"
        self.console.clear()
        self._janitor()
        self._end_parents()
        self._summary()

    def _janitor(self) -> None:
        """End every run of this sweep still RUNNING (KILLED after Ctrl-C, else FAILED)."""
        status = "KILLED" if self.interrupted else "FAILED"
        for store in self.stores.values():
            try:
                runs = records.search(store.uri, [store.experiment_id],
                                      f"attributes.status = 'RUNNING' and "
                                      f"tags.`nets.sweep_id` = '{self.sweep_id}' and "
                                      "tags.`nets.sweep_role` = 'job'")
                why = "interrupted" if self.interrupted else "sweep ended"
                for r in runs:
                    c = records.client(store.uri)
                    records.retry(c.set_tag, r.info.run_id, "nets.error",
                                  f"ended by the sweep janitor ({why})")
                    records.retry(c.set_terminated, r.info.run_id, status)
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
        out = {k: 0 for k in ("FINISHED", "FAILED", "KILLED", "SKIPPED", "PENDING", "RUNNING")}
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
                rec.log_text(jobs_yaml(group), "jobs.yaml")
                rec.log_text(console.summary_text(self) + "\n", "summary.txt")
                records.log_sweep_curves(rec, {j.run_id: j.curves for j in group
                                               if j.status == "FINISHED" and j.run_id
                                               and j.curves})
                try:
                    records.log_sweep_runs(rec, uri)
                except Exception as e:  # noqa: BLE001 - a report then searches the runs
                    self._say(f"could not leave the runs file on the parent: {one_line(e)}")
            finally:
                rec.end(status)

    def _summary(self) -> None:
        text = console.summary_text(self)
        parents = [s.parent.run_id for s in self.stores.values() if s.parent is not None]
        if parents:
            text += "\nparent run: " + ", ".join(parents)
        if self.bad() or self.counts()["PENDING"]:
            text += f"\nresume (skips the FINISHED configs): {console.resume_command()}"
        print(text, file=self.out, flush=True)

    # -- output -------------------------------------------------------------------------

    def _event(self, job: Job, suffix: str = "") -> None:
        self._say(console.event_line(job, self.swept) + suffix
                  + ("" if self.console.tty else f"  | {self._status_text()}"))

    def _status_text(self) -> str:
        busy = [s for s in self.slots if s.job is not None]
        now = time.monotonic()
        running_for = [now - s.started for s in busy if s.started is not None]
        durations = [j.seconds for j in self.jobs if j.status == "FINISHED" and j.seconds]
        return console.status_text(self.counts(), len(running_for),
                                   len(busy) - len(running_for), now - self.t0, running_for,
                                   durations, self.workers, self.stop_requested)

    def _status(self) -> None:
        self.console.status(self._status_text())

    def _say(self, line: str) -> None:
        self.console.say(line)
