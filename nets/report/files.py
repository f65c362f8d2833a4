"""The report's files: ``report.csv``, ``report.html`` and ``report.png`` in one folder."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from nets.report.figures import DEFAULT_TOP, grid_figure
from nets.report.html import write_html
from nets.report.model import Report, Sweep
from nets.report.text import write_csv


def default_out_dir(sweep: Sweep, base: str | os.PathLike | None = None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", sweep.name).strip("_.") or "sweep"
    return Path(base or os.getcwd()) / "reports" / f"{slug}-{sweep.parent.info.run_id[:8]}"


def write_report(report: Report, out: Path, top: int = DEFAULT_TOP) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    png = out / "report.png"
    aside = _Picture.fork(report, top, png)   # drawn on the other core meanwhile
    t = time.perf_counter()
    write_csv(report, out / "report.csv")
    files["csv"] = out / "report.csv"
    report.timings["csv"] = time.perf_counter() - t
    t = time.perf_counter()
    write_html(report, out / "report.html")
    files["html"] = out / "report.html"
    report.timings["html"] = time.perf_counter() - t
    t = time.perf_counter()
    drawn = aside.join() if aside is not None else None
    if drawn is None:                  # not forked, or the child failed: draw it here
        drawn = _draw(report, top, png)
    else:
        report.panels = drawn
    if report.panels != (0, 0) and png.exists():
        files["png"] = png
    report.timings["png"] = time.perf_counter() - t
    return files


def _draw(report: Report, top: int, png: Path) -> tuple:
    fig = grid_figure(report, top)
    if fig is not None:
        fig.savefig(png)
    elif png.exists():
        png.unlink()
    return report.panels


class _Picture:
    """``report.png`` drawn by a forked child while this process writes the HTML and
    CSV: on 2 cores the picture (3 s at 1,000 runs: matplotlib's tick labels) and the
    page (2 s) were a third of a report over a server. The child has the report in
    memory already; it only draws, and says ``report.panels`` back."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd

    @classmethod
    def fork(cls, report: Report, top: int, png: Path) -> "_Picture | None":
        import threading

        # A fork copies one thread: with others running, a lock they hold (an import,
        # a logging handler) could be held for ever in the child. Draw in process then.
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:           # the child: draw, say the panels, leave without cleanup
            code = 1
            try:
                os.close(r)
                os.write(w, ("%d %d" % _draw(report, top, png)).encode())
                code = 0
            except BaseException:  # noqa: BLE001 - the parent draws it again and reports
                pass
            finally:
                os._exit(code)
        os.close(w)
        return cls(pid, r)

    def join(self) -> tuple | None:
        """``report.panels`` as the child drew them, or ``None`` if it failed."""
        with os.fdopen(self.fd, "rb") as fh:
            said = fh.read().decode()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not said:
            return None
        n, total = (int(x) for x in said.split())
        return n, total
