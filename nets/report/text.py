"""The report as text: the printed table (per run, or per config over seeds) and the
CSV (always one row per run, with its config's rank, n, mean and std)."""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from nets.report.model import (SUMMARY_PREFIXES, Report, RunRow, diagnosis_summary, fmt, fmt_pm,
                               status_summary)
from nets.store.uri import safe_uri


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
               right: Sequence[bool], width: int = 40) -> str:
    def cut(s: str) -> str:
        s = str(s).replace("\n", " ")
        return s if len(s) <= width else s[:width - 1] + "…"

    rows = [[cut(c) for c in row] for row in rows]
    w = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join((c.rjust(w[i]) if right[i] else c.ljust(w[i]))
                                   for i, c in enumerate(cells)).rstrip()
    return "\n".join([line(headers)] + [line(r) for r in rows])


def _by_config(report: Report, by: str) -> bool:
    return by == "config" or (by == "auto" and report.grouped)


def run_table(report: Report, runs: Sequence[RunRow] | None = None) -> str:
    runs = report.runs if runs is None else runs
    headers = ["#", *report.varying, report.metric, "epoch", report.final_key, "status",
               "diagnosis", "run"]
    right = [True, *([False] * len(report.varying)), True, True, True, False, False, False]
    rows = []
    for r in runs:
        note = (f"error: {r.error}" if r.error else "") if r.failed else r.diagnosis
        rows.append([str(r.rank), *(r.params.get(k, "") for k in report.varying), fmt(r.value),
                     "" if r.epoch is None else str(r.epoch), fmt(r.final), r.status, note,
                     r.run_id[:8]])
    return text_table(headers, rows, right)


def config_table(report: Report) -> str:
    keys = report.config_keys
    headers = ["#", *keys, "n", report.metric, "epoch", report.final_key, "status", "diagnosis"]
    right = [True, *([False] * len(keys)), True, True, True, True, False, False]
    rows = []
    for g in report.groups:
        first = g.runs[0]
        rows.append([str(g.rank), *(first.params.get(k, "") for k in keys), str(g.n),
                     fmt_pm(g.mean, g.std, g.n),
                     "" if not math.isfinite(g.epoch_mean) else f"{g.epoch_mean:.3g}",
                     fmt_pm(g.final_mean, g.final_std, g.n), status_summary(g.runs),
                     diagnosis_summary(g.runs)])
    return text_table(headers, rows, right)


def header_lines(report: Report) -> list[str]:
    s = report.sweep
    counts = Counter(r.status for r in report.runs)
    direction = "lower" if report.ascending else "higher"
    lines = [f"{s.name}  parent {s.parent.info.run_id} ({s.parent.info.status})  "
             f"store {safe_uri(report.uri)}"]
    if len(s.chain) > 1:
        lines.append(f"resumes {', '.join(s.chain[1:])}: their runs are included")
    lines.append(f"{len(report.runs)} runs ("
                 + ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) + f"), "
                 f"{report.n_configs} configs; ranked by {report.metric} ({direction} is "
                 "better)")
    if report.filters:
        lines.append("filter: " + " and ".join(f"{k}{op}{','.join(v)}"
                                               for k, op, v in report.filters))
    if s.superseded:
        lines.append(f"{len(s.superseded)} earlier attempt(s) of the same configs not shown "
                     "(--all-attempts lists them)")
    return lines


def render_text(report: Report, by: str = "auto") -> str:
    out = header_lines(report) + [""]
    if _by_config(report, by):
        out.append("configs (over seeds: mean ± sample std, n = runs with a value):")
        out.append(config_table(report))
        dead = [r for r in report.runs if r.failed or r.group is None]
        if dead:
            out += ["", "failed or killed runs:", run_table(report, dead)]
    else:
        out.append(run_table(report))
    return "\n".join(out)


# -- CSV ------------------------------------------------------------------------------------

def write_csv(report: Report, path: Path) -> None:
    extra = sorted({k for r in report.runs for k in r.metrics if k.startswith(SUMMARY_PREFIXES)}
                   - {report.metric, report.final_key})
    head = ["rank", "run_id", "run_name", "status", *report.varying, report.metric,
            "best_epoch", report.final_key, "diagnosis", "outcome", "error", "config_rank",
            "config_n", "config_mean", "config_std", "start_time", *extra]

    def num(v):
        return "" if v is None or not math.isfinite(v) else repr(float(v))

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for r in report.runs:
            g = r.group
            w.writerow([r.rank, r.run_id, r.name, r.status,
                        *(r.params.get(k, "") for k in report.varying), num(r.value),
                        "" if r.epoch is None else r.epoch, num(r.final), r.diagnosis,
                        r.tags.get("nets.outcome", ""), r.error, g.rank if g else "",
                        g.n if g else "", num(g.mean) if g else "", num(g.std) if g else "",
                        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r.start_time / 1000)),
                        *(num(r.metrics.get(k)) for k in extra)])
