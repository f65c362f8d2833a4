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
    t = time.perf_counter()
    write_csv(report, out / "report.csv")
    files["csv"] = out / "report.csv"
    report.timings["csv"] = time.perf_counter() - t
    t = time.perf_counter()
    write_html(report, out / "report.html")
    files["html"] = out / "report.html"
    report.timings["html"] = time.perf_counter() - t
    t = time.perf_counter()
    fig = grid_figure(report, top)
    png = out / "report.png"
    if fig is not None:
        fig.savefig(png)
        files["png"] = png
    elif png.exists():
        png.unlink()
    report.timings["png"] = time.perf_counter() - t
    return files
