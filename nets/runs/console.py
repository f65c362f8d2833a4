"""What a sweep shows on the terminal: one line per finished or failed job, a live
status line (rewritten on a terminal, every 30 s otherwise), the final summary and the
resume command."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

# The command that started the sweep, for the resume hint (set by ``nets-sweep``).
COMMAND: list[str] | None = None


def clock(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def resume_command() -> str:
    cmd = list(COMMAND or [Path(sys.argv[0]).name] + sys.argv[1:])
    cmd[0] = Path(cmd[0]).name
    if cmd[0] == "nets-sweep":
        if "--resume" not in cmd:
            cmd.append("--resume")
    elif not any(a.startswith("hydra.launcher.resume=") for a in cmd):
        cmd.append("hydra.launcher.resume=true")
    return shlex.join(cmd)


class Console:
    """Events, the status line and the summary of one sweep, on ``out`` (stderr)."""

    def __init__(self, out=None):
        self.out = out or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._shown = False
        self._last = 0.0

    def say(self, line: str) -> None:
        self.clear()
        print(line, file=self.out, flush=True)
        if not self.tty:
            self._last = time.monotonic()

    def status(self, text: str) -> None:
        now = time.monotonic()
        if self.tty and now - self._last >= 0.5:
            self._last = now
            print(f"\r\033[K{text}", end="", file=self.out, flush=True)
            self._shown = True
        elif not self.tty and now - self._last >= 30:
            self._last = now
            print(text, file=self.out, flush=True)

    def clear(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=self.out, flush=True)
            self._shown = False


def event_line(job, swept) -> str:
    if job.status == "FINISHED":
        m = job.metrics
        key = next((k for k in ("best/val_accuracy", "best/val_loss", "final/val_loss",
                                "final/train_loss") if k in m), None)
        extra = f" {key.replace('/', ' ')} {m[key]:.4g}" if key else ""
        if job.diagnosis:
            extra += f", diagnosis: {job.diagnosis}"
        return f"job {job.number} FINISHED in {job.seconds:.1f} s [{job.label(swept)}]{extra}"
    return (f"job {job.number} {job.status} [{job.label(swept)}]: {job.error or '?'}"
            + (f" (run {job.run_id})" if job.run_id else ""))


def status_text(counts: dict, running: int, starting: int, elapsed: float,
                running_for: list[float], durations: list[float], workers: int,
                stopping: bool) -> str:
    """``3 done, 2 running, 1 failed, 1 killed, 4 left | 0:42 elapsed, ETA 1:10``.

    The ETA counts down while jobs run: each running job is assumed to need the mean
    duration of the finished ones, minus what it has already run.
    """
    left = counts["PENDING"]
    eta = "?"
    if durations and not stopping:
        per = sum(durations) / len(durations)
        remaining = per * (left + starting) + sum(max(0.0, per - t) for t in running_for)
        eta = clock(remaining / max(1, workers))
    return (f"{counts['FINISHED'] + counts['SKIPPED']} done, {running} running, "
            f"{counts['FAILED']} failed, {counts['KILLED']} killed, {left + starting} left"
            + (f" ({starting} waiting for a worker to start)" if starting else "")
            + f" | {clock(elapsed)} elapsed, ETA {eta}")


def summary_text(sweep) -> str:
    c = sweep.counts()
    lines = [f"sweep {sweep.name} ({sweep.sweep_id}): {len(sweep.jobs)} jobs in "
             f"{clock(time.monotonic() - sweep.t0)}: "
             f"{c['FINISHED']} FINISHED, {c['FAILED']} FAILED, {c['KILLED']} KILLED, "
             f"{c['SKIPPED']} skipped (already FINISHED)"
             + (f", {c['PENDING']} not started" if c["PENDING"] else "")]
    if sweep.retried:
        lines.append(f"retried ({len(sweep.retried)}):")
        for number, attempt, why in sweep.retried:
            job = next(j for j in sweep.jobs if j.number == number)
            lines.append(f"  job {number} [{job.label(sweep.swept)}] attempt {attempt}: {why}; "
                         f"attempt {attempt + 1} {job.status if job.attempt > attempt else 'not run'}")
    bad = sweep.bad()
    if bad:
        lines.append("failed or killed:")
        for j in bad:
            lines.append(f"  job {j.number} [{j.label(sweep.swept)}] {j.status}: {j.error or '?'}"
                         + (f" (run {j.run_id})" if j.run_id else "")
                         + (f" log {j.log_path}" if j.log_path and Path(j.log_path).exists()
                            else ""))
    return "\n".join(lines)
