"""A run's MLflow record written by a child process, beside the training.

``import mlflow`` and its SQLAlchemy store cost ~3 s of CPU before the first number
exists; matplotlib another ~0.7 s for ``curves.png``. A single ``nets-train`` run of a
small network trains in a fraction of that. So the command starts this writer first
thing: the child imports mlflow and matplotlib on the other core while the parent
composes the config, loads the data and trains; the parent sends what it would have
written (params, tags, every metric point, artifacts) down a pipe and, at the end,
waits for the child to confirm that all of it is in the store. What is recorded is
exactly what ``RunRecorder`` records in process (the child runs one).

Guarantees kept from the in-process recorder:

- nothing is lost: ``end`` returns only after the child flushed everything, terminated
  the run and said so; an error in the child is raised in the parent at the next point
  where the parent waits (``run_id``, ``end``) as a ``WriterError`` with one line;
- the run always ends: if the parent dies (or closes the pipe) before ``end``, the
  child ends the run KILLED; Ctrl-C goes to the parent only (the child ignores SIGINT
  and ends the run with the status the parent sends).

After a run that had to wait for those imports, ``nets-train`` leaves a warm recorder
behind (``nets.runs.warm``): the next run's recorder is forked from it, already imported.
Both speak the same messages; ``RecorderProcess.spawn`` takes the warm one when it answers.

A sweep's workers record nets' own jobs the same way, through recorders forked by the
warm server its launcher starts (``RecorderProcess.forked``), so a worker never imports
mlflow; a task that logs through MLflow itself gets its run in the worker as before
(``nets.runs.records.open_job_run``).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping


class WriterError(RuntimeError):
    """The writer process could not record (one line: what and why)."""


class RecorderProcess:
    """Parent side: the same methods as ``nets.store.write.RunRecorder``.

    ``spawn()`` starts the child at once (it begins importing mlflow); ``open`` then
    names the store and creates the run. Calls only queue messages; ``run_id`` and
    ``end`` wait for the child's answer.
    """

    def __init__(self, proc: "subprocess.Popen | _Forked"):
        self._proc = proc
        self._run_id: str | None = None
        self.run_info_name = ""
        self.ended = False
        self._torn = False    # interrupted mid-message: the stream cannot be trusted
        self._unsettled = False   # an ``end(wait=False)`` whose answer is still to come

    @classmethod
    def spawn(cls, warm: bool = False) -> "RecorderProcess":
        """A recorder forked by the warm server when ``warm`` and one answers, else a
        new child process (which starts importing at once)."""
        if warm:
            from nets.runs import warm as warm_server

            sock = warm_server.connect()
            if sock is not None:
                return cls(_Forked(sock))
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        proc = subprocess.Popen([sys.executable, "-m", "nets.runs.writer"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                start_new_session=False)
        return cls(proc)

    @classmethod
    def forked(cls, path: str | os.PathLike, wait: float = 0.0) -> "RecorderProcess | None":
        """A recorder forked by the warm server at ``path`` (waiting up to ``wait``
        seconds for one that is starting), or ``None`` when none answers."""
        from nets.runs import warm as warm_server

        sock = warm_server.connect(path, wait=wait)
        return cls(_Forked(sock)) if sock is not None else None

    @property
    def warm(self) -> bool:
        """Whether a warm server forked this recorder (it had nothing left to import)."""
        return isinstance(self._proc, _Forked)

    # -- messages -----------------------------------------------------------------------

    def _send(self, *msg: Any) -> None:
        self._poll()
        try:
            pickle.dump(msg, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._raise_child_error()
        except BaseException:   # Ctrl-C, a job's stop signal: maybe half a message out
            self._torn = True
            raise

    def _next(self) -> tuple[str, Any]:
        """The child's next message: an answer, the new run's id (said unasked as soon
        as the run exists: kept), or an error (raised)."""
        try:
            kind, value = pickle.load(self._proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError):
            self._raise_child_error()
        except BaseException:
            self._torn = True
            raise
        if kind == "error":
            self.close()
            raise WriterError(value)
        if kind == "run":
            self._run_id = value
        return kind, value

    def _answer(self) -> Any:
        """The answer to the last request (the run's id may come first)."""
        while True:
            kind, value = self._next()
            if kind != "run":
                return value

    def _poll(self) -> None:
        """Raise at once if the child already reported an error (it says so unasked)."""
        while not self._proc.stdout.closed and \
                select.select([self._proc.stdout], [], [], 0)[0]:
            if self._next()[0] == "ok":
                self._unsettled = False   # the only answer nobody waits for

    def _raise_child_error(self):
        code = self._proc.wait()
        how = "ended" if code is None else f"exited ({code})"
        raise WriterError(f"the MLflow writer process {how} before the run was recorded")

    # -- the RunRecorder interface ------------------------------------------------------

    def open(self, uri: str, experiment: str | None, experiment_id: str | None,
             run_name: str, tags: Mapping[str, Any], parent_run_id: str | None = None,
             if_lost: str | None = "KILLED") -> None:
        """Prepare the store (when no ``experiment_id`` is given) and create the run.

        ``if_lost``: how the child ends the run when this side goes away without
        ``end``; ``None`` leaves it RUNNING for whoever owns it (a sweep's launcher
        ends a lost job's run FAILED with the reason it knows).
        """
        self.run_info_name, self._run_id, self.ended = run_name, None, False
        self._send("open", uri, experiment, experiment_id, run_name,
                   {k: str(v) for k, v in tags.items()}, parent_run_id, if_lost)

    def open_store(self, uri: str) -> None:
        """Have the child open the store at ``uri`` now, before it has a run: MLflow's
        first open in a process reads its schema's migration scripts (~0.14 s). The
        child is then ready for ``open`` (``reusable``), as after a run it ended, once
        ``settle`` has heard it is done."""
        self._send("open_store", uri)
        self.ended = self._unsettled = True

    @property
    def run_id(self) -> str | None:
        """The run's id (waits until the child has created the run, not for what was
        sent after); ``None`` once the child is gone without one (the error that
        stopped it was raised already)."""
        while self._run_id is None and not self._proc.stdout.closed:
            self._next()
        return self._run_id

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self._send("log_metrics", dict(metrics), int(step))

    def flush(self) -> None:
        self._send("flush")

    def log_summary(self, metrics: Mapping[str, Any]) -> None:
        self._send("log_summary", dict(metrics))

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._send("log_params", dict(params))

    def set_tags(self, tags: Mapping[str, Any], defer: bool = False) -> None:
        self._send("set_tags", dict(tags), defer)

    def log_text(self, text: str, path: str) -> None:
        self._send("log_text", text, path)

    def log_bytes(self, data: bytes, path: str) -> None:
        self._send("log_bytes", data, path)

    def log_file(self, local_path: str | os.PathLike, artifact_dir: str | None = None) -> None:
        name = Path(local_path).name
        self.log_bytes(Path(local_path).read_bytes(),
                       f"{artifact_dir}/{name}" if artifact_dir else name)

    def log_curves(self, history: Mapping[str, list], chance: float | None, title: str,
                   path: str = "curves.png") -> None:
        """``curves.png`` drawn in the child (matplotlib is imported there, not here)."""
        self._send("log_curves", {k: list(v) for k, v in history.items()}, chance, title, path)

    def end(self, status: str = "FINISHED", keep: bool = False, wait: bool = True) -> None:
        """Terminate the run; returns once the child has written everything.

        ``keep``: the child stays for the next run (``open`` again; ``reusable``), with
        its store open and warm: a sweep's worker keeps one for all its jobs.
        ``wait=False`` (with ``keep``): return once the child has everything it needs to
        end the run; ``settle`` waits for it to say it did (a sweep worker returns its
        job's result meanwhile, and settles before its next job or when drained).
        """
        if self.ended:
            return
        self.ended = True
        self.run_id  # noqa: B018 - known before the pipe closes (the caller reports it)
        self._send("end", status, keep)
        if keep and not wait:
            self._unsettled = True
            return
        try:
            self._answer()
        finally:
            if not keep:
                self.close()

    def poll(self) -> None:
        """Take what the child said unasked (an ``end(wait=False)`` confirmed, or an
        error: raised as ``WriterError``), without waiting."""
        self._poll()

    def settle(self) -> None:
        """Wait for the child to confirm an ``end(wait=False)``; ``WriterError`` (one
        line) if it could not end the run."""
        if self._unsettled:
            self._unsettled = False
            self._answer()

    @property
    def busy(self) -> bool:
        """Ending a run (``end(wait=False)``) it has not confirmed yet."""
        return self._unsettled

    @property
    def reusable(self) -> bool:
        """Whether the next run can go through this child (``end(keep=True)`` done and
        settled, the stream intact, the child there)."""
        if not self.ended or self._unsettled or self._torn or self._proc.stdin.closed:
            return False
        try:
            self._poll()        # an error it reported, or EOF: it is gone
        except (WriterError, OSError, ValueError):   # ValueError: its socket was closed
            return False
        return not self._proc.stdout.closed

    def kill(self) -> None:
        """Stop a writer that was never given a run (nothing of it to keep)."""
        self._proc.kill()
        self.close()

    def close(self) -> None:
        """Let the child go (it ends a run still open as KILLED) and reap it."""
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class _Forked:
    """A recorder forked by the warm server, seen through the part of ``Popen``'s
    interface ``RecorderProcess`` uses. It is not our child: it is done when it closes
    its end of the socket."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.stdin = sock.makefile("wb")
        self.stdout = sock.makefile("rb")

    def wait(self, timeout: float | None = None) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)     # EOF: it ends a run still open
            self._sock.settimeout(timeout)
            while self._sock.recv(65536):
                pass
        except TimeoutError:
            raise subprocess.TimeoutExpired("warm recorder", timeout) from None
        except OSError:
            pass
        self._sock.close()

    def kill(self) -> None:
        self._sock.close()


# -- the child --------------------------------------------------------------------------

def import_plotting() -> None:
    """matplotlib for ``curves.png``, imported while the parent still trains."""
    from nets.report import plots  # noqa: F401 - the import is the work
    from matplotlib.backends import backend_agg  # noqa: F401


def _child() -> int:
    """A child process: read messages from stdin, answer on stdout."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    return serve(sys.stdin.buffer, out)


# Seconds between the flushes a recorder makes while it waits for messages (~20-50 ms of
# its CPU each; the parent never waits for them).
EAGER_FLUSH = 0.25


def serve(inp, out) -> int:
    """Read messages from ``inp`` until ``end`` or EOF; answer on ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides how the run ends
    sys.stdout = sys.stderr                         # stray prints must not corrupt answers

    def answer(kind: str, value: Any) -> None:
        pickle.dump((kind, value), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    # The point of the process: pay these while the parent trains.
    from nets.store import client as store_client
    from nets.store import write as store_write

    rec, if_lost = None, "KILLED"
    idle = [import_plotting]  # work for the moments the parent has nothing to send
    while True:
        while not select.select([inp], [], [], 0)[0]:
            if idle:
                idle.pop(0)()
            elif rec is not None and not rec.ended and rec.due(EAGER_FLUSH):
                # Nothing to read: write what is buffered now, so what is left when the
                # parent ends the run (and waits) is the last moments' points only.
                try:
                    rec.flush()
                except Exception:  # noqa: BLE001 - kept buffered; the next flush says why
                    break
            else:
                break
        try:
            msg = pickle.load(inp)
        except EOFError:
            break
        op, args = msg[0], msg[1:]
        try:
            if op == "open":
                uri, experiment, exp_id, name, tags, parent, if_lost = args
                if exp_id is None:
                    exp_id = store_client.prepare_store(uri, experiment)
                rec = store_write.RunRecorder(uri, exp_id, name,
                                              tags={**tags, **store_client.versions()},
                                              parent_run_id=parent)
                answer("run", rec.run_id)   # unasked: the parent reads it when it needs it
            elif op == "open_store":
                try:   # only a warm-up: the next ``open`` reports a store that fails
                    store_client.open_client(args[0])
                except Exception:  # noqa: BLE001
                    pass
                answer("ok", None)
            elif op == "log_bytes":
                data, path = args
                with tempfile.TemporaryDirectory() as d:
                    p = Path(d, Path(path).name)
                    p.write_bytes(data)
                    rec.log_file(p, str(Path(path).parent) if "/" in path else None)
            elif op == "log_curves":
                history, chance, title, path = args
                from nets.report.plots import curves_figure

                rec.log_figure(curves_figure(history, chance=chance, title=title), path)
            elif op == "end":
                status, keep = args
                rec.end(status)
                answer("ok", None)
                if keep:   # the next run of the same caller (a sweep worker's next job)
                    rec, if_lost = None, "KILLED"
                    continue
                # Everything is committed; MLflow's exit hooks would only make the
                # parent (which waits for this process) wait another second.
                sys.stderr.flush()
                os._exit(0)
            else:
                getattr(rec, op)(*args)
        except Exception as e:  # noqa: BLE001 - reported to the parent as one line
            line = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
            # Said unasked: the parent checks before every message it sends.
            answer("error", f"recording to the store failed: {line[:500]}")
            if rec is not None and not rec.ended:
                try:
                    rec.end("FAILED")
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
            return 1
    # The parent went away without ending the run: never leave it RUNNING (unless its
    # owner ends it: then keep what was sent, and leave the status to the owner).
    if rec is not None and not rec.ended:
        try:
            rec.end(if_lost) if if_lost else rec.flush()
        except Exception:  # noqa: BLE001 - nothing left to report to
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_child())
