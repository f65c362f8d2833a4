"""A sweep worker's recorder processes, kept from job to job.

A worker records nets' own jobs through recorder processes forked by the warm recorder
(``nets.runs.warm``, ``nets.runs.writer.RecorderProcess``) instead of importing mlflow.
It keeps ``KEEP`` of them: a job's result goes back once its recorder has everything
(``end(wait=False)``), and while that one writes the last of the run, the next job
records through the other. How each end went is heard later (``settle``): before a
recorder is reused, with the worker's next result, and when the launcher drains its
workers at the sweep's end; a failed end comes back as ``(run id, one line)`` and the
launcher turns that job FAILED.
"""

from __future__ import annotations

from nets.runs.writer import RecorderProcess, WriterError

# How long a job waits for the warm server its launcher started beside it (importing
# mlflow takes ~3.5 s of CPU; on a loaded machine several times that).
RECORDER_WAIT = 60.0
_RECORDERS: dict[str, list] = {}   # socket -> this worker's kept recorder processes
_LATE: list[tuple[str, str]] = []   # (run id, one line): ends that failed after the fact
KEEP = 2   # one ends the last job's run while the other records the next job


def take(path: str):
    """A recorder process for this worker's next job from the warm server at ``path``:
    a kept one that is done with its last run (its store open, its statements
    compiled), else a new one while fewer than ``KEEP`` are kept, else the oldest once
    it is done; ``None`` when the server does not answer."""
    pool = _RECORDERS.setdefault(path, [])
    _settle_some(pool, wait=False)
    for rec in [r for r in pool if not r.busy and not r.reusable]:   # its child is gone
        pool.remove(rec)
        rec.close()
    if len(pool) >= KEEP and not any(r.reusable for r in pool):
        _settle_some(pool[:1], wait=True)  # the oldest is still ending its run
    for rec in list(pool):
        if rec.reusable:
            pool.remove(rec)
            pool.append(rec)          # the most recently used last
            return rec
    rec = RecorderProcess.forked(path, wait=RECORDER_WAIT)
    if rec is not None:
        pool.append(rec)
    return rec


def prepare(path: str, uri: str) -> None:
    """Fork this worker's ``KEEP`` recorders now, each opening the store at ``uri``, if
    the warm server at ``path`` answers at once, and wait until they have: a worker's
    first jobs then find their recorders as later jobs do (the store open, ~0.14 s of
    CPU each), instead of training beside them. Called as the worker starts, before any
    job could change its directory."""
    pool = _RECORDERS.setdefault(path, [])
    while len(pool) < KEEP:
        rec = RecorderProcess.forked(path)
        if rec is None:
            break
        try:
            rec.open_store(uri)
        except WriterError:
            rec.close()
            break
        pool.append(rec)
    _settle_some(pool, wait=True)


def _settle_some(recs: list, wait: bool) -> None:
    """Hear how the kept recorders ``recs`` ended their last runs (``wait``: until they
    have; else only what they said already); a failed end goes to ``_LATE``."""
    for rec in list(recs):
        try:
            rec.settle() if wait else rec.poll()
        except WriterError as e:
            _LATE.append((rec.run_id, str(e)))
            for pool in _RECORDERS.values():
                if rec in pool:
                    pool.remove(rec)


def settle(wait: bool = True) -> list[tuple[str, str]]:
    """``(run id, one line)`` for every run a kept recorder could not end after its
    job's result went back (``close_job_run``): heard so far, or (``wait``) once every
    kept recorder is done. A worker reports them with its next result and when drained
    at the sweep's end."""
    for pool in list(_RECORDERS.values()):
        _settle_some(list(pool), wait)
    late, _LATE[:] = list(_LATE), []
    return late


def forked(rec) -> bool:
    """Whether ``rec`` is a recorder process (not a ``RunRecorder`` in this process)."""
    return isinstance(rec, RecorderProcess)


def close_all() -> None:
    """Let every kept recorder go (each ends nothing: ``settle`` first). A worker kept
    for the next sweep starts it with new recorders: a fork carries the working
    directory and environment of the job that made it, which the next sweep's jobs
    need not share."""
    for pool in _RECORDERS.values():
        while pool:
            pool.pop().close()
