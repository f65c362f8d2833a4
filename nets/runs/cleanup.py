"""``nets-cleanup``: end RUNNING runs that nothing will ever end (the launcher or a job
was killed outright). The sweep's own janitor covers every other way a sweep stops."""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from nets.runs import records


def parse_age(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if t and t[-1] in units:
        return float(t[:-1]) * units[t[-1]]
    return float(t)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (``None``: no process)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    runs = records.search(uri, experiment_ids, flt)
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
    client = records.client(uri)
    for r, why in orphans:
        print(f"{r.info.run_id}  {r.info.run_name or '':<32} RUNNING -> {status}  ({why})"
              + ("  [dry run]" if dry_run else ""), file=out)
        if not dry_run:
            records.retry(client.set_tag, r.info.run_id, "nets.error",
                          f"ended by nets-cleanup: {why}")
            records.retry(client.set_terminated, r.info.run_id, status)
    verb = "would change" if dry_run else "changed"
    print(f"nets-cleanup: {verb} {len(orphans)} run{'s' * (len(orphans) != 1)}", file=out)
    return [r.info.run_id for r, _ in orphans]
