"""Which sweep, and its runs: a sweep's parent found by id or name, its children (and
those of the parents it resumes) read from the store, their curves fetched in bulk.

Which sweep: a parent run id, or a name matched against the parent's run name (also
``sweep NAME``, as ``nets-sweep`` names its parents), tag ``nets.sweep_name`` or tag
``nets.sweep_id``; the latest match wins. Without one: the latest sweep of the store
(the parent of the most recently started child run, or the most recently started run
tagged ``nets.sweep_role=parent``, whichever started later).

A resumed sweep's parent names the parent it resumes (tag ``nets.resumes``, written by
``nets-sweep --resume``): the children of the whole chain are reported, plus any run
the parent's ``jobs.yaml`` lists as SKIPPED; among runs with the same
``nets.config_hash`` the latest FINISHED one wins (else the latest one), the others
count as superseded attempts (``all_attempts`` lists them too). A parent that a nets
launcher ended holds its children as one file, read instead of a search of them all
(``nets.store.summary``: over a server that search is most of a large report).

Every read goes through ``nets.store.read``; a store that cannot answer is a
``ReportError`` (one line).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Sequence

from nets.report.model import (CURVE_KEYS, SUMMARY_PREFIXES, Report, ReportError, RunRow,
                               Sweep, adaptive, apply_filters, build_report, curve_of,
                               dedupe, default_metric, matches, parse_filter)
from nets.store import read, summary, uri as store_uri
from nets.store.curves import SWEEP_FILE, CurveFetch, sweep_curves
from nets.store.tags import logged_key, nets_key, nets_metrics
from nets.store.uri import safe_uri

RESUME_TAG = "nets.resumes"          # written on a resumed sweep's parent: the older parent
JOBS_FILE_CAP = 8 << 20              # bytes of a parent's jobs.yaml read at most


def open_store(uri_arg: str | None, launch_dir: str | os.PathLike | None = None) -> str:
    """Resolve the store like ``nets-train``; refuse a SQLite file that does not exist."""
    try:
        return store_uri.existing_store(uri_arg, launch_dir)
    except FileNotFoundError as e:
        raise ReportError(str(e)) from None


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ReportError(f"sweep name {value!r} holds both quote characters: pass the parent run id")


def _has_children(client, exp_ids: list[str], run) -> bool:
    if run.data.tags.get("nets.sweep_role") == "parent":
        return True
    ids = list(dict.fromkeys(exp_ids + [run.info.experiment_id]))
    return bool(read.search_runs(client, ids, read.child_filter(run.info.run_id),
                                 limit=1))


def _get_run(client, run_id: str, uri: str):
    try:
        return read.get_run(client, run_id)
    except read.StoreError as e:
        raise ReportError(f"cannot read run {run_id!r} from {safe_uri(uri)}: {e}") from None


def find_sweep(client, uri: str, ident: str | None, experiment: str | None = None):
    """The parent run named by ``ident`` (id or name), or the latest sweep's (module doc)."""
    exp_ids = read.experiment_ids(client, experiment)
    if ident is None:
        return latest_sweep(client, uri, exp_ids)
    if read.is_run_id(ident):
        run = _get_run(client, ident, uri)
        if run is not None:
            if not _has_children(client, exp_ids, run):
                parent = run.data.tags.get("mlflow.parentRunId")
                hint = (f" (it is a child of sweep run {parent}: pass that id)" if parent
                        else "")
                raise ReportError(f"run {ident} has no child runs: it is not a sweep's parent"
                                  + hint)
            return run
    if not exp_ids:
        raise ReportError(f"no run or sweep {ident!r} in {safe_uri(uri)} (it has no experiment)")
    q = _quote(ident)
    named = []
    for flt in (f"attributes.run_name = {q}", f"attributes.run_name = {_quote('sweep ' + ident)}",
                f"tags.`nets.sweep_name` = {q}", f"tags.`nets.sweep_id` = {q}"):
        named.extend(read.search_runs(client, exp_ids, flt,
                                      order_by=["attributes.start_time DESC"], limit=50))
    seen, candidates = set(), []
    for r in sorted(named, key=lambda r: r.info.start_time or 0, reverse=True):
        if r.info.run_id not in seen:
            seen.add(r.info.run_id)
            candidates.append(r)
    for r in candidates:
        if _has_children(client, exp_ids, r):
            return r
    if candidates:
        raise ReportError(f"the run(s) named {ident!r} have no child runs: not a sweep")
    what = "run or sweep" if read.is_run_id(ident) else "sweep named"
    raise ReportError(f"no {what} {ident!r} in {safe_uri(uri)}"
                      + (f" (experiment {experiment!r})" if experiment else ""))


def latest_sweep(client, uri: str, exp_ids: list[str]):
    if not exp_ids:
        raise ReportError(f"no sweep in {safe_uri(uri)}: the store has no experiment")
    order = ["attributes.start_time DESC"]
    candidates = []
    child = read.search_runs(client, exp_ids, "tags.`mlflow.parentRunId` IS NOT NULL", order,
                             limit=1)
    if child:
        parent = _get_run(client, child[0].data.tags["mlflow.parentRunId"], uri)
        if parent is not None:
            candidates.append(parent)
    candidates.extend(read.search_runs(client, exp_ids, "tags.`nets.sweep_role` = 'parent'",
                                       order, limit=1))
    if not candidates:
        raise ReportError(f"no sweep in {safe_uri(uri)}: no run has child runs (run one with "
                          "nets-train -m or nets-sweep)")
    return max(candidates, key=lambda r: r.info.start_time or 0)


def _shared(d: dict, values: bool = True) -> dict:
    """``d`` with its keys (and short values) interned: a sweep's runs repeat the same
    ~100 keys and few distinct values, and per-run copies of them were ~20 kB a run."""
    intern = sys.intern
    if not values:
        return {intern(k): v for k, v in d.items()}
    return {intern(k): intern(v) if isinstance(v, str) and len(v) < 256 else v
            for k, v in d.items()}


def _row(run) -> RunRow:
    return RunRow(run.info.run_id, run.info.run_name or "", run.info.status,
                  run.info.start_time or 0, run.info.experiment_id, _shared(run.data.params),
                  _shared(run.data.tags), _shared(nets_metrics(run.data.metrics), values=False))


def _jobs_yaml_skipped(client, uri: str, run) -> list[str]:
    """Run ids the parent's ``jobs.yaml`` lists as SKIPPED (a resumed ``nets-sweep``)."""
    import yaml

    try:
        text = read.artifact_text(client, uri, run, "jobs.yaml", JOBS_FILE_CAP)
        jobs = yaml.safe_load(text) if text else None
    except Exception:  # noqa: BLE001 - no jobs.yaml (or unreadable) means nothing to add
        return []
    if not isinstance(jobs, list):
        return []
    return [str(j["run_id"]) for j in jobs if isinstance(j, dict) and j.get("status") == "SKIPPED"
            and isinstance(j.get("run_id"), str) and read.is_run_id(j["run_id"])]


def collect(client, uri: str, parent, all_attempts: bool = False, on_rows=None,
            runs_file: bool = True) -> Sweep:
    """The sweep's runs: children of the parent and of the parents it resumes (module doc).

    ``on_rows`` is called with each page of new rows as it arrives (before attempts of
    one config are told apart): the caller can start on them while the next page comes.
    A parent's children come from the file its launcher left (``nets.store.summary``),
    unless ``runs_file`` is false or it has none: then from a search of them all.
    """
    chain, seen, run = [], set(), parent
    while run is not None and run.info.run_id not in seen:
        seen.add(run.info.run_id)
        chain.append(run)
        older = run.data.tags.get(RESUME_TAG)
        run = _get_run(client, older, uri) if read.is_run_id(older) else None
    exp_ids = read.experiment_ids(client)
    rows: dict[str, RunRow] = {}

    def take(runs) -> None:
        new = []
        for r in runs:
            if r.info.run_id not in rows:
                rows[r.info.run_id] = row = _row(r)
                new.append(row)
        if new and on_rows is not None:
            on_rows(new)

    filed, again = 0, 0
    for p in chain:
        ids = list(dict.fromkeys(exp_ids + [p.info.experiment_id]))
        got = summary.children(client, uri, ids, p) if runs_file else None
        if got is not None:       # the launcher's file, and what changed since (one read)
            kids, fresh = got
            filed, again = filed + len(kids), again + fresh
            for i in range(0, len(kids), read.STREAM_PAGE):
                take(kids[i:i + read.STREAM_PAGE])
            continue
        # page by page: MLflow's entities of one page at a time, not of the whole sweep
        for page in read.child_pages(client, uri, ids, p.info.run_id):
            take(page)
    extra = [i for p in chain for i in _jobs_yaml_skipped(client, uri, p) if i not in rows]
    take(read.runs_by_id(client, exp_ids, extra))
    runs, superseded = dedupe(list(rows.values()))
    if all_attempts:
        runs, superseded = runs + superseded, []
    source = (f"{summary.RUNS_FILE} ({filed} runs, {again} read again)" if filed
              else "search")
    return Sweep(parent, [p.info.run_id for p in chain], runs, superseded, source)


def make_report(uri: str, ident: str | None = None, *, metric: str | None = None,
                ascending: bool | None = None, filters: Sequence[str] = (),
                experiment: str | None = None, all_attempts: bool = False,
                method: str | None = None, note=None, fresh: bool = False) -> Report:
    """Find the sweep, fetch its runs and curves, rank them (no files written).

    ``method`` forces one way of fetching the curves (``nets.store.curves.fetch_curves``);
    ``note`` receives a one-line remark when a faster way could not be used. The files
    the launcher left on the parent are read instead of the store unless ``fresh`` or
    ``method`` is given.
    """
    try:
        return _make_report(uri, ident, metric, ascending, filters, experiment, all_attempts,
                            method, note, fresh)
    except read.StoreError as e:
        raise ReportError(f"{safe_uri(uri)}: {e}") from None


class _Wanted:
    """Which curves each run needs, decided page by page while the runs arrive (the
    same curves a decision over the whole sweep would fetch; the report draws them).

    Every per-epoch key the report draws (``CURVE_KEYS``, and the curve behind an
    explicit ``--metric``) that the run logged, for every run that passes the filters;
    ``lr`` too once a run with an adaptive schedule is seen (then also for the runs
    seen before it). Runs that turn out superseded are fetched and dropped.
    """

    def __init__(self, fetch: "CurveFetch", metric: str | None, filters, stored: dict):
        self.fetch, self.filters, self.stored = fetch, filters, stored
        self.keys = list(CURVE_KEYS)
        extra = curve_of(metric) if metric else None
        if extra and extra not in self.keys and not extra.startswith(SUMMARY_PREFIXES):
            self.keys.append(extra)
        self.seen: list[RunRow] = []
        self.lr = False
        self.from_file: set[str] = set()   # runs whose wanted curves are all in ``stored``

    def _add(self, rows: list[RunRow], keys: list[str]) -> None:
        """Fetch ``keys`` (the ones each run logged) of the runs the sweep's curves file
        does not hold whole."""
        spelled = _spellings(keys)
        fetch = {}
        for r in rows:
            logged = _spellings(r.metrics)
            stored = self.stored.get(r.run_id)
            if stored is not None and all(any(s in stored for s in _spellings([k]))
                                          for k in keys if k in r.metrics):
                self.from_file.add(r.run_id)
            else:
                self.from_file.discard(r.run_id)
                fetch[r.run_id] = logged
        self.fetch.add(fetch, spelled, fetch)

    def __call__(self, rows: list[RunRow]) -> None:
        rows = [r for r in rows if matches(r, self.filters)]
        self.seen.extend(rows)
        self._add(rows, self.keys)
        if not self.lr and any(adaptive(r) for r in rows):
            self.lr, rows = True, self.seen  # the rate's trace is the story (bold driver)
        if self.lr:
            self._add(rows, self.keys + ["lr"])


def _spellings(keys) -> list[str]:
    """Each key under both names: a sweep may hold runs logged before the rename
    (``train/loss``) and after it (``curves/loss_train``); rows hold nets' names."""
    return [s for k in keys for s in dict.fromkeys((logged_key(k), k))]


def _make_report(uri, ident, metric, ascending, filters, experiment, all_attempts, method,
                 note, fresh) -> Report:
    timings = {}
    t = time.perf_counter()
    client = read.open_client(uri)
    parent = find_sweep(client, uri, ident, experiment)
    parsed = [parse_filter(f) for f in filters]
    explicit = metric is not None
    # The curves and runs the launcher kept on the parent (one read each), unless a way
    # of fetching is forced (a check of that way) or the store itself is asked for.
    files = method is None and not fresh
    stored = sweep_curves(client, uri, parent) if files else {}
    with CurveFetch(uri, client, method, note) as fetch:
        wanted = _Wanted(fetch, metric, parsed, stored)
        sweep = collect(client, uri, parent, all_attempts, wanted, runs_file=files)
        timings["runs"] = time.perf_counter() - t
        if not sweep.runs:
            raise ReportError(f"sweep {sweep.name!r} (run {parent.info.run_id}) has no child "
                              "runs")
        runs = apply_filters(sweep.runs, parsed)
        if not runs:
            raise ReportError(f"no run of sweep {sweep.name!r} matches "
                              + " and ".join(filters))
        metric = metric or default_metric(runs)
        t = time.perf_counter()
        curves, how = fetch.result()
    if wanted.from_file:
        curves.update({r: stored[r] for r in wanted.from_file})
        how = f"{SWEEP_FILE} ({len(wanted.from_file)} runs)" + (
            f" + {how}" if how != "none" else "")
    del stored
    lr = any(adaptive(r) for r in runs)
    for r in runs:
        got = curves.get(r.run_id, {})
        got = {nets_key(k): c for k, c in got.items()}
        r.curves = got if lr or "lr" not in got else {k: c for k, c in got.items() if k != "lr"}
    del curves
    timings["curves"] = time.perf_counter() - t
    t = time.perf_counter()
    report = build_report(sweep, runs, uri, metric, ascending, parsed, how)
    if explicit and all(r.value is None for r in report.runs):
        known = sorted({k for r in runs for k in r.metrics if k.startswith(SUMMARY_PREFIXES)})
        raise ReportError(f"--metric {metric}: no run of the sweep has it or a curve to derive "
                          f"it from (logged: {', '.join(known[:12]) or 'nothing'}"
                          + (", ..." if len(known) > 12 else "") + ")")
    timings["rank"] = time.perf_counter() - t
    report.timings.update(timings)
    return report


def log_to_parent(report: Report, files) -> None:
    """Log the report's files as artifacts of the sweep's parent run."""
    read.log_artifacts(report.uri, report.sweep.parent.info.run_id, files)
