"""``nets-report [SWEEP]``: one look at a whole sweep, with no run cap.

The MLflow UI shows 10 runs by default, at most 100 in a line chart, samples curves and
lists the last value of a metric, not the best. ``nets-report`` reads a sweep (a parent
run and its children, tag ``mlflow.parentRunId``) and

- prints a table ranked by best validation accuracy (best validation loss for
  regression; ``--metric`` picks another): the params that vary across the sweep and
  only those (a ``--filter`` keeps the columns), the ranking metric, the epoch of the
  best value, the final value, the status and the diagnosis verdict (tag
  ``nets.diagnosis``). FAILED and KILLED runs are listed at the bottom with their
  error, never hidden;
- writes ``report.png`` (one panel pair per config, ranked: loss above, accuracy or
  MAE below, train blue, validation orange, chance accuracy or the baseline MAE
  dashed grey; the learning rate in green under them when a run's schedule adapts it;
  configs that differ only by ``seed`` drawn as mean ± std bands; the first ``--top``
  configs), ``report.html`` (one self-contained file, no server:
  click-to-sort tables of every config and every run, each run's curves as inline
  SVG thumbnails with the learning rate where the schedule adapts it, a click
  enlarges one; no cap on run count) and ``report.csv`` (one row per run), and logs the three
  files as artifacts of the parent run (``--no-log``: don't).

Which sweep: a parent run id, or a name matched against the parent's run name (also
``sweep NAME``, as ``nets-sweep`` names its parents), tag ``nets.sweep_name`` or tag
``nets.sweep_id``; the latest match wins. Without one: the latest sweep of the store
(the parent of the most recently started child run, or the most recently started run
tagged ``nets.sweep_role=parent``, whichever started later). A resumed sweep's parent
names the parent it resumes (tag ``nets.resumes``): the
children of the whole chain are reported, plus any run the parent's ``jobs.yaml``
lists as SKIPPED; among runs with the same ``nets.config_hash`` the latest FINISHED
one wins (else the latest one), the others count as superseded attempts
(``--all-attempts`` lists them too).

Seeds. Runs are grouped by every param except ``seed`` (and ``tracking.*``,
``diagnostics.*``). A group's value is the mean ± **sample** standard deviation
(``ddof=1``) of its runs' values over the runs that have one; ``std`` is undefined
(shown as nothing) for a single value. Bands in the figures are, per epoch, the mean
± sample std over the runs that have a point at that epoch. ``--by config`` (the
default when some config has several seeds) prints one row per config with ``n``;
``--by run`` one row per run. The CSV always has one row per run, with its config's
rank, n, mean and std.

The store is ``--uri`` > ``MLFLOW_TRACKING_URI`` > ``./mlruns/mlflow.db``, as for
``nets-train``; an ``mlflow server`` (``http(s)://``) works too. Histories are fetched in
bulk (``nets.store.curves.fetch_curves``): one read-only SQL query per ~450 runs on a local
SQLite file, MLflow's public ``get-history-bulk`` REST endpoint (100 runs per request)
on an ``http(s)://`` server, one call per run and metric on any other store.

Exit codes: 0 done; 1 the report was written but logging it to the parent failed; 2 a
usage or store problem (one line ``nets-report: error: ...``, nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nets.report.figures import DEFAULT_TOP
from nets.report.model import ReportError
from nets.store.tags import nets_key

PROG = "nets-report"


def note(text: str) -> None:
    print(f"{PROG}: note: {text}", file=sys.stderr)


def _say(text: str) -> None:
    """Print to stdout; a closed pipe (``nets-report | head``) does not stop the report."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def sweep_ident(uri: str, token: str | None) -> str | None:
    """A full parent id for an id prefix or a unique run name; else ``token`` itself
    (a sweep name, matched by ``find_sweep``). An ambiguous prefix is an error."""
    from nets.store.ids import RunNotFound, resolve_run

    if token is None:
        return None
    try:
        return resolve_run(uri, token)
    except RunNotFound as e:
        if e.candidates:
            raise ReportError(str(e)) from None
        return token


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG, description="One look at a whole sweep: a ranked table, a PNG grid of "
        "curves (seeds as mean ± std bands), an HTML page with every run and a CSV, logged "
        "to the sweep's parent run.")
    p.add_argument("sweep", nargs="?", metavar="SWEEP",
                   help="parent run id (or a unique prefix, as printed), its run name, or the "
                   "sweep name (default: the latest sweep in the store)")
    p.add_argument("--uri", help="tracking URI or store directory (default: "
                   "$MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    p.add_argument("--experiment", metavar="NAME",
                   help="look for the sweep (by name, or the latest) in this experiment only")
    p.add_argument("--metric", metavar="KEY",
                   help="rank by this metric (default best/val_accuracy, regression "
                   "best/val_loss); best/<split>_<name> or a per-epoch key such as val/loss "
                   "means the best epoch's value, computed from the curve if not logged; the "
                   "names MLflow shows (best_val_accuracy, curves/loss_val) work too")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_const", const=True,
                       help="lower is better (default: guessed from the key: loss, mae, "
                       "error ... are lower-is-better)")
    order.add_argument("--descending", dest="ascending", action="store_const", const=False,
                       help="higher is better")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=V[,V...]",
                   help="keep runs whose param KEY has one of the values (KEY!=V drops "
                   "them); also status=, diagnosis=, tags.NAME=; repeat to combine (and)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N",
                   help=f"configs in the PNG grid (default {DEFAULT_TOP}; 0 = all). The "
                   "HTML page and the CSV always hold every run")
    p.add_argument("--by", choices=("auto", "run", "config"), default="auto",
                   help="printed table: one row per run, or per config over seeds "
                   "(default: per config when some config has several seeds)")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default ./reports/<sweep name>-<parent id[:8]>)")
    p.add_argument("--no-log", action="store_true",
                   help="do not log the files as artifacts of the parent run")
    p.add_argument("--all-attempts", action="store_true",
                   help="also list earlier attempts of a config (retries, resumed sweeps)")
    p.add_argument("--fresh", action="store_true",
                   help="read every run and curve from the store, not from the files the "
                   "launcher left on the parent (which miss a tag edited by hand later)")
    args = p.parse_args(argv)
    if args.top < 0:
        p.error("--top must be >= 0")
    from nets.report import files as report_files, sweep as report_sweep, text as report_text
    from nets.store.read import StoreError

    t0 = time.perf_counter()
    try:
        uri = report_sweep.open_store(args.uri)
        report = report_sweep.make_report(
            uri, sweep_ident(uri, args.sweep), metric=args.metric and nets_key(args.metric),
            ascending=args.ascending, filters=args.filter, experiment=args.experiment,
            all_attempts=args.all_attempts, note=note, fresh=args.fresh)
    except (ReportError, StoreError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    _say(report_text.render_text(report, args.by))
    out = Path(args.out) if args.out else report_files.default_out_dir(report.sweep)
    try:
        files = report_files.write_report(report, out, args.top)
    except OSError as e:
        print(f"{PROG}: error: cannot write the report to {out}: {e}", file=sys.stderr)
        return 2
    what = ", ".join(f"{p.name}" for p in files.values())
    line = (f"\nwrote {out}/: {what} ({len(report.runs)} runs"
            + (f"; picture: {report.panels[0]} of {report.panels[1]} configs with curves"
               if "png" in files else "")
            + f") in {time.perf_counter() - t0:.1f}s")
    tm = report.timings
    files_s = sum(tm.get(k, 0) for k in ("csv", "html", "png"))
    line += (f" (runs {tm.get('runs', 0):.1f}s from {report.sweep.source}, "
             f"curves {tm.get('curves', 0):.1f}s via "
             f"{report.fetch_method}, files {files_s:.1f}s)")
    _say(line)
    if args.no_log:
        return 0
    try:
        report_sweep.log_to_parent(report, files.values())
    except Exception as e:  # noqa: BLE001 - the files exist; say why they were not logged
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{PROG}: error: could not log the report to parent run "
              f"{report.sweep.parent.info.run_id}: {first} (the files are in {out}; --no-log "
              "skips this)", file=sys.stderr)
        return 1
    _say(f"logged to parent run {report.sweep.parent.info.run_id} as artifacts "
         + ", ".join(p.name for p in files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
