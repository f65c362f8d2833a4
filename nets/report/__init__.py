"""``nets-report [SWEEP]``: one look at a whole sweep, with no run cap.

The MLflow UI shows 10 runs by default, at most 100 in a line chart, samples curves and
lists the last value of a metric, not the best. ``nets-report`` reads a sweep (a parent
run and its children, tag ``mlflow.parentRunId``) and

- prints a table ranked by best validation accuracy (best validation loss for
  regression; ``--metric`` picks another): the params that vary across the sweep and
  only those (a ``--filter`` keeps the columns), the ranking metric, the epoch of the
  best value, the final value, the status and the diagnosis verdict (tag ``nets.diagnosis``). FAILED and
  KILLED runs are listed at the bottom with their error, never hidden;
- writes ``report.png`` (one panel pair per config, ranked: loss above, accuracy or
  MAE below, train blue, validation orange, chance accuracy or the baseline MAE
  dashed grey; the learning rate in green under them when a run's schedule adapts it;
  configs that differ only by ``seed`` drawn as mean ± std bands; the first ``--top``
  configs), ``report.html`` (one self-contained file, no server:
  click-to-sort tables of every config and every run, each run's curves as inline
  SVG; no cap on run count) and ``report.csv`` (one row per run), and logs the three
  files as artifacts of the parent run (``--no-log``: don't).

Which sweep: a parent run id, or a name matched against the parent's run name (also
``sweep NAME``, as ``nets-sweep`` names its parents), tag ``nets.sweep_name`` or tag
``nets.sweep_id``; the latest match wins. Without one: the latest sweep of the store
(the parent of the most recently started child run, or the most recently started run
tagged ``nets.sweep_role=parent``, whichever started later). A resumed sweep's parent
names the parent it resumes (tag ``nets.resumed_from`` or ``nets.resumes``): the
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
``nets-train``; an ``mlflow server`` (``http(s)://``) works too. Histories are fetched in bulk (see
``fetch_curves``): straight SQL on a SQLite store (read-only), MLflow's
``get-history-bulk`` REST endpoint (100 runs per request) on an ``http(s)://`` server,
the store's bulk call on other database stores, one call per run and metric as the
last resort.

Exit codes: 0 done; 1 the report was written but logging it to the parent failed; 2 a
usage or store problem (one line ``nets-report: error: ...``, nothing written).
"""

from __future__ import annotations

import argparse
import csv
import html
import math
import os
import re
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import numpy as np

from nets.store import uri as store_uri, client as store_client
from nets.report.plots import LR_COLOR, TRAIN_COLOR, VAL_COLOR

PROG = "nets-report"
SEED_KEY = "seed"
IGNORED_PARAM_PREFIXES = ("tracking.", "diagnostics.")
CURVE_KEYS = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "train/mae", "val/mae")
SUMMARY_PREFIXES = ("best/", "final/", "data/")
LOWER_IS_BETTER = ("loss", "mae", "mse", "sse", "rmse", "error", "epoch")
RESUME_TAGS = ("nets.resumed_from", "nets.resumes")
FAILED = ("FAILED", "KILLED")
DEFAULT_TOP = 24
SEARCH_PAGE = 50_000          # MLflow's own maximum for one search_runs page
SQL_CHUNK = 500               # run ids per SQL query (+ keys: under SQLite's 999 limit)
REST_CHUNK = 100              # run ids per get-history-bulk request (the server's maximum)
REST_MAX_RESULTS = 25_000     # points per get-history-bulk response (the server's maximum)
REST_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_COLORS = {TRAIN_COLOR: "#1f77b4", VAL_COLOR: "#ff7f0e"}   # tab:blue / tab:orange in SVG

Curve = tuple  # (steps: int64 array, values: float64 array), sorted by step, one point a step


class ReportError(Exception):
    """A usage or store problem: one line, exit 2, nothing written."""


# -- what a report is made of -----------------------------------------------------------

@dataclass
class RunRow:
    """One child run: what MLflow holds plus what the report derives."""

    run_id: str
    name: str
    status: str
    start_time: int
    experiment_id: str
    params: dict
    tags: dict
    metrics: dict                                   # latest value of every metric
    curves: dict = field(default_factory=dict)      # key -> Curve
    value: float | None = None                      # the ranking metric
    epoch: int | None = None                        # epoch of the best value
    final: float | None = None
    rank: int | None = None
    group: "Group | None" = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def diagnosis(self) -> str:
        return self.tags.get("nets.diagnosis", "")

    @property
    def error(self) -> str:
        return self.tags.get("nets.error", "")

    @property
    def task(self) -> str:
        t = self.tags.get("nets.task")
        if t:
            return t
        if "best/val_loss" in self.metrics or "val/mae" in self.metrics:
            return "regression"
        return "classification"


@dataclass
class Group:
    """Runs whose params agree except for ``seed``."""

    key: tuple
    runs: list
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    final_mean: float = math.nan
    final_std: float = math.nan
    epoch_mean: float = math.nan
    rank: int | None = None

    @property
    def has_value(self) -> bool:
        return self.n > 0


@dataclass
class Sweep:
    parent: Any                                     # mlflow Run
    chain: list                                     # parent run ids, newest first
    runs: list                                      # RunRow, one per config hash
    superseded: list = field(default_factory=list)  # earlier attempts of the same config

    @property
    def name(self) -> str:
        return self.parent.info.run_name or self.parent.info.run_id


@dataclass
class Report:
    sweep: Sweep
    uri: str
    metric: str
    ascending: bool
    final_key: str
    varying: list                                   # param keys that vary, sorted
    runs: list                                      # ranked; failed/killed last
    groups: list                                    # ranked
    filters: list = field(default_factory=list)     # (key, op, values) as given
    fetch_method: str = ""
    timings: dict = field(default_factory=dict)
    panels: tuple = (0, 0)                          # configs in the PNG, configs with curves

    @property
    def n_configs(self) -> int:
        return len(self.groups)

    @property
    def grouped(self) -> bool:
        return any(len(g.runs) > 1 for g in self.groups)

    @property
    def config_keys(self) -> list:
        return [k for k in self.varying if k != SEED_KEY]


# -- small helpers ----------------------------------------------------------------------

def safe_uri(uri: str) -> str:
    """The URI without any user:password part."""
    p = urlparse(uri)
    if p.password or p.username:
        return uri.replace(p.netloc, (p.hostname or "") + (f":{p.port}" if p.port else ""), 1)
    return uri


def lower_is_better(key: str) -> bool:
    last = key.rsplit("/", 1)[-1].lower()
    return any(w in last for w in LOWER_IS_BETTER)


def curve_of(key: str) -> str | None:
    """The per-epoch key behind a summary key: ``best/val_loss`` -> ``val/loss``."""
    for prefix in ("best/", "final/"):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            if rest.startswith(("train_", "val_")):
                split, name = rest.split("_", 1)
                return f"{split}/{name}"
            return None
    return None if key.startswith("data/") else key


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return ""
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def fmt_pm(mean: float, std: float, n: int) -> str:
    if n == 0 or not math.isfinite(mean):
        return ""
    if n == 1 or not math.isfinite(std):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(std, 2)}"


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean and sample standard deviation (``ddof=1``) of the finite values, and their
    count. ``std`` is NaN for fewer than two values, both are NaN for none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def band(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per step: ``(steps, mean, std, n)`` over the curves that have a finite point at that
    step; ``std`` is the sample std (``ddof=1``), NaN where ``n < 2``."""
    curves = [c for c in curves if c is not None and len(c[0])]
    if not curves:
        e = np.zeros(0)
        return e.astype(np.int64), e, e, e.astype(np.int64)
    steps = np.unique(np.concatenate([c[0] for c in curves]))
    m = np.full((len(curves), len(steps)), np.nan)
    for i, (s, v) in enumerate(curves):
        m[i, np.searchsorted(steps, s)] = v
    ok = np.isfinite(m)
    n = ok.sum(axis=0)
    total = np.where(ok, m, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.full(len(steps), np.nan), where=n > 0)
    dev = np.where(ok, m - mean, 0.0)
    var = np.divide((dev * dev).sum(axis=0), n - 1, out=np.full(len(steps), np.nan),
                    where=n > 1)
    return steps, mean, np.sqrt(var), n


def _norm(v: str) -> str:
    return re.sub(r"\s+", "", str(v))


def _same_value(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return _norm(a) == _norm(b)


def _split_values(text: str) -> list[str]:
    """``0.1,0.3`` -> two values; commas inside ``[...]``/``{...}`` do not split."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_filter(text: str) -> tuple[str, str, list[str]]:
    m = re.match(r"^\s*([^=!]+?)\s*(!=|=)(.*)$", text)
    if not m or not m.group(1):
        raise ReportError(f"--filter {text!r}: expected KEY=VALUE[,VALUE...] or KEY!=VALUE")
    return m.group(1), m.group(2), _split_values(m.group(3))


def _filter_value(run: RunRow, key: str) -> list[str] | None:
    if key == "status":
        return [run.status]
    if key == "diagnosis":
        return [d for d in run.diagnosis.split(",") if d] or [""]
    if key.startswith("tags."):
        v = run.tags.get(key[5:])
        return None if v is None else [v]
    v = run.params.get(key)
    return None if v is None else [v]


def apply_filters(runs: list[RunRow], filters: list[tuple[str, str, list[str]]]) -> list[RunRow]:
    for key, op, values in filters:
        pseudo = key in ("status", "diagnosis") or key.startswith("tags.")
        if not pseudo and not any(key in r.params for r in runs):
            known = sorted({k for r in runs for k in r.params})
            close = [k for k in known if key.split(".")[-1] in k][:5]
            raise ReportError(f"--filter {key}{op}...: no run of the sweep has a param {key!r}"
                              + (f" (did you mean {', '.join(close)}?)" if close else "")
                              + "; also: status, diagnosis, tags.NAME")
        kept = []
        for r in runs:
            have = _filter_value(r, key)
            hit = have is not None and any(_same_value(h, v) for h in have for v in values)
            if hit == (op == "="):
                kept.append(r)
        runs = kept
    return runs


# -- the store and the sweep ----------------------------------------------------------

def open_store(uri_arg: str | None, launch_dir: str | os.PathLike | None = None) -> str:
    """Resolve the store like ``nets-train``; refuse a SQLite file that does not exist."""
    try:
        return store_uri.existing_store(uri_arg, launch_dir)
    except FileNotFoundError as e:
        raise ReportError(str(e)) from None


def _search(client, exp_ids: list[str], flt: str, order_by: list[str] | None = None,
            limit: int | None = None) -> list:
    out, token = [], None
    while True:
        page = store_client.retry(client.search_runs, exp_ids, flt,
                               max_results=min(limit or SEARCH_PAGE, SEARCH_PAGE),
                               order_by=order_by, page_token=token)
        out.extend(page)
        token = page.token
        if not token or (limit and len(out) >= limit):
            return out[:limit] if limit else out


def _experiment_ids(client, name: str | None) -> list[str]:
    if name:
        exp = store_client.retry(client.get_experiment_by_name, name)
        if exp is None:
            raise ReportError(f"no experiment named {name!r} in the store")
        return [exp.experiment_id]
    ids, token = [], None
    while True:
        page = store_client.retry(client.search_experiments, max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


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
    return bool(_search(client, ids, f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
                        limit=1))


def _get_run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return store_client.retry(client.get_run, run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.error_code
        raise ReportError(f"cannot read run {run_id!r} from {safe_uri(uri)}: {first}") from None


def find_sweep(client, uri: str, ident: str | None, experiment: str | None = None):
    """The parent run named by ``ident`` (id or name), or the latest sweep's (module doc)."""
    exp_ids = _experiment_ids(client, experiment)
    if ident is None:
        return latest_sweep(client, uri, exp_ids)
    if _RUN_ID.match(ident):
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
        named.extend(_search(client, exp_ids, flt, order_by=["attributes.start_time DESC"],
                             limit=50))
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
    what = "run or sweep" if _RUN_ID.match(ident) else "sweep named"
    raise ReportError(f"no {what} {ident!r} in {safe_uri(uri)}"
                      + (f" (experiment {experiment!r})" if experiment else ""))


def latest_sweep(client, uri: str, exp_ids: list[str]):
    if not exp_ids:
        raise ReportError(f"no sweep in {safe_uri(uri)}: the store has no experiment")
    order = ["attributes.start_time DESC"]
    candidates = []
    child = _search(client, exp_ids, "tags.`mlflow.parentRunId` IS NOT NULL", order, limit=1)
    if child:
        parent = _get_run(client, child[0].data.tags["mlflow.parentRunId"], uri)
        if parent is not None:
            candidates.append(parent)
    tagged = _search(client, exp_ids, "tags.`nets.sweep_role` = 'parent'", order, limit=1)
    candidates.extend(tagged)
    if not candidates:
        raise ReportError(f"no sweep in {safe_uri(uri)}: no run has child runs (run one with "
                          "nets-train -m or nets-sweep)")
    return max(candidates, key=lambda r: r.info.start_time or 0)


def _row(run) -> RunRow:
    return RunRow(run.info.run_id, run.info.run_name or "", run.info.status,
                  run.info.start_time or 0, run.info.experiment_id, dict(run.data.params),
                  dict(run.data.tags), dict(run.data.metrics))


def _jobs_yaml_skipped(client, run) -> list[str]:
    """Run ids the parent's ``jobs.yaml`` lists as SKIPPED (a resumed ``nets-sweep``)."""
    import yaml

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(client.download_artifacts(run.info.run_id, "jobs.yaml", tmp))
            if not local.is_file() or local.stat().st_size > (8 << 20):
                return []
            jobs = yaml.safe_load(local.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - no jobs.yaml (or unreadable) means nothing to add
        return []
    if not isinstance(jobs, list):
        return []
    return [str(j["run_id"]) for j in jobs if isinstance(j, dict) and j.get("status") == "SKIPPED"
            and isinstance(j.get("run_id"), str) and _RUN_ID.match(j["run_id"])]


def collect(client, uri: str, parent, all_attempts: bool = False) -> Sweep:
    """The sweep's runs: children of the parent and of the parents it resumes (module doc)."""
    chain, seen, run = [], set(), parent
    while run is not None and run.info.run_id not in seen:
        seen.add(run.info.run_id)
        chain.append(run)
        older = next((run.data.tags[t] for t in RESUME_TAGS if run.data.tags.get(t)), None)
        run = _get_run(client, older, uri) if older and _RUN_ID.match(older) else None
    exp_ids = _experiment_ids(client, None)
    rows: dict[str, RunRow] = {}
    for p in chain:
        ids = list(dict.fromkeys(exp_ids + [p.info.experiment_id]))
        for r in _search(client, ids, f"tags.`mlflow.parentRunId` = '{p.info.run_id}'"):
            rows.setdefault(r.info.run_id, _row(r))
    extra = [i for p in chain for i in _jobs_yaml_skipped(client, p) if i not in rows]
    for i in range(0, len(extra), 100):
        ids = ", ".join(f"'{x}'" for x in extra[i:i + 100])
        for r in _search(client, exp_ids, f"attributes.run_id IN ({ids})"):
            rows.setdefault(r.info.run_id, _row(r))
    runs, superseded = dedupe(list(rows.values()))
    if all_attempts:
        runs, superseded = runs + superseded, []
    return Sweep(parent, [p.info.run_id for p in chain], runs, superseded)


def dedupe(runs: list[RunRow]) -> tuple[list[RunRow], list[RunRow]]:
    """One run per ``nets.config_hash``: the latest FINISHED, else the latest."""
    by_hash: dict[str, list[RunRow]] = defaultdict(list)
    keep, dropped = [], []
    for r in runs:
        h = r.tags.get("nets.config_hash")
        if h:
            by_hash[h].append(r)
        else:
            keep.append(r)
    for group in by_hash.values():
        done = [r for r in group if r.status == "FINISHED"]
        win = max(done or group, key=lambda r: (r.start_time, r.run_id))
        keep.append(win)
        dropped.extend(r for r in group if r is not win)
    return keep, dropped


# -- bulk metric histories --------------------------------------------------------------

def _finish(points: dict) -> dict[str, dict[str, Curve]]:
    """``{(run, key): [(step, timestamp, value)]}`` -> sorted curves, one point a step
    (the latest-logged value wins when a step was logged twice)."""
    out: dict[str, dict[str, Curve]] = defaultdict(dict)
    for (run_id, key), pts in points.items():
        pts.sort()
        steps = np.fromiter((p[0] for p in pts), np.int64, len(pts))
        vals = np.fromiter((p[2] for p in pts), np.float64, len(pts))
        if len(steps) > 1:
            last = np.r_[steps[1:] != steps[:-1], True]
            steps, vals = steps[last], vals[last]
        out[run_id][key] = (steps, vals)
    return dict(out)


def _curves_sqlite(db: Path, run_ids: list[str], keys: list[str]) -> dict:
    """One SQL query per ``SQL_CHUNK`` run ids on MLflow's ``metrics`` table, read-only."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=20)
    try:
        cols = {row[1] for row in con.execute("PRAGMA table_info(metrics)")}
        need = {"run_uuid", "key", "value", "step", "timestamp", "is_nan"}
        if not need <= cols:
            raise sqlite3.DatabaseError(f"metrics table lacks {sorted(need - cols)}")
        points: dict = defaultdict(list)
        kq = ",".join("?" * len(keys))
        for i in range(0, len(run_ids), SQL_CHUNK):
            chunk = run_ids[i:i + SQL_CHUNK]
            sql = (f"SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics "
                   f"WHERE run_uuid IN ({','.join('?' * len(chunk))}) AND key IN ({kq})")
            for run, key, step, ts, value, is_nan in con.execute(sql, [*chunk, *keys]):
                points[(run, key)].append((step, ts, math.nan if is_nan else value))
        return _finish(points)
    finally:
        con.close()


class _NoBulkEndpoint(Exception):
    pass


def _curves_rest(client, uri: str, run_ids: list[str], keys: list[str]) -> dict:
    """MLflow's ``get-history-bulk`` endpoint: one request per 100 runs per key, 8 at a
    time; a response at the server's 25,000-point cap is split and asked again."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri.rstrip("/"))

    def get(chunk: list[str], key: str) -> list:
        params = [("run_id", r) for r in chunk] + [("metric_key", key),
                                                   ("max_results", str(REST_MAX_RESULTS))]
        resp = http_request(creds, REST_BULK, "GET", params=params, max_retries=3,
                            backoff_factor=1, timeout=120)
        if resp.status_code != 200:
            raise _NoBulkEndpoint(f"HTTP {resp.status_code}")
        pts = resp.json().get("metrics", [])
        if len(pts) < REST_MAX_RESULTS:
            return [(p["run_id"], key, int(p.get("step", 0)), int(p.get("timestamp", 0)),
                     float(p.get("value", math.nan))) for p in pts]
        if len(chunk) > 1:
            half = len(chunk) // 2
            return get(chunk[:half], key) + get(chunk[half:], key)
        hist = store_client.retry(client.get_metric_history, chunk[0], key)
        return [(chunk[0], key, int(m.step), int(m.timestamp), float(m.value)) for m in hist]

    tasks = [(run_ids[i:i + REST_CHUNK], k) for i in range(0, len(run_ids), REST_CHUNK)
             for k in keys]
    points: dict = defaultdict(list)
    with ThreadPoolExecutor(8) as pool:
        for rows in pool.map(lambda t: get(*t), tasks):
            for run, key, step, ts, value in rows:
                points[(run, key)].append((step, ts, value))
    return _finish(points)


def _curves_store_bulk(store, run_ids: list[str], keys: list[str]) -> dict:
    """A database store's own ``get_metric_history_bulk`` (one query per key per chunk)."""
    points: dict = defaultdict(list)
    for i in range(0, len(run_ids), SQL_CHUNK):
        chunk = run_ids[i:i + SQL_CHUNK]
        for key in keys:
            for m in store_client.retry(store.get_metric_history_bulk, chunk, key, 10 ** 9):
                points[(m.run_id, key)].append((int(m.step), int(m.timestamp), float(m.value)))
    return _finish(points)


def _curves_per_run(client, run_ids: list[str], keys: list[str],
                    available: Mapping[str, Iterable[str]] | None) -> dict:
    """One ``get_metric_history`` call per run and key (only keys the run has)."""
    tasks = [(r, k) for r in run_ids for k in keys
             if available is None or k in set(available.get(r, ()))]

    def get(task):
        r, k = task
        return r, k, store_client.retry(client.get_metric_history, r, k)

    points: dict = defaultdict(list)
    with ThreadPoolExecutor(8) as pool:
        for r, k, hist in pool.map(get, tasks):
            for m in hist:
                points[(r, k)].append((int(m.step), int(m.timestamp), float(m.value)))
    return _finish(points)


def fetch_curves(client, uri: str, run_ids: Sequence[str], keys: Sequence[str],
                 available: Mapping[str, Iterable[str]] | None = None,
                 method: str | None = None) -> tuple[dict, str]:
    """``{run id: {key: (steps, values)}}`` for every run and key, and how it was fetched.

    ``method`` forces one path (``sqlite``, ``rest``, ``store``, ``per-run``); by default
    the fastest the store allows, falling back to the next one when it cannot be used
    (see the module doc). ``available`` (run id -> its metric keys) saves per-run calls.
    """
    run_ids, keys = list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))
    if not run_ids or not keys:
        return {}, "none"
    db = store_uri.sqlite_path(uri)
    if method in (None, "sqlite") and db is not None:
        try:
            return _curves_sqlite(db, run_ids, keys), "sqlite"
        except sqlite3.Error:
            if method == "sqlite":
                raise
    if method in (None, "rest") and uri.startswith(("http://", "https://")):
        try:
            return _curves_rest(client, uri, run_ids, keys), "rest"
        except _NoBulkEndpoint as e:
            if method == "rest":
                raise ReportError(f"{safe_uri(uri)}{REST_BULK} answered {e}") from None
            print(f"{PROG}: note: {REST_BULK} answered {e}; fetching one history per call "
                  "(slower)", file=sys.stderr)
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if method in (None, "store") and hasattr(store, "get_metric_history_bulk"):
        return _curves_store_bulk(store, run_ids, keys), "store"
    return _curves_per_run(client, run_ids, keys, available), "per-run"


# -- ranking ----------------------------------------------------------------------------

def default_metric(runs: Sequence[RunRow]) -> str:
    if any("best/val_accuracy" in r.metrics for r in runs):
        return "best/val_accuracy"
    if any("best/val_loss" in r.metrics for r in runs):
        return "best/val_loss"
    return "best/val_loss" if any(r.task == "regression" for r in runs) else "best/val_accuracy"


def final_key_for(metric: str, runs: Sequence[RunRow]) -> str:
    curve = curve_of(metric)
    if curve and "/" in curve and curve.split("/", 1)[0] in ("train", "val"):
        return "final/" + curve.replace("/", "_", 1)
    return "final/val_loss" if default_metric(runs) == "best/val_loss" else "final/val_accuracy"


def run_value(run: RunRow, metric: str, ascending: bool) -> tuple[float | None, int | None]:
    """The run's ranking value and the epoch it was reached at.

    A logged value wins (``best/val_accuracy`` as ``run_job`` recorded it, with
    ``best/epoch``); a ``best/...`` key the run did not log, or a per-epoch key, is the
    best point of the curve in the ranking direction; ``final/...`` its last point.
    """
    curve_key = curve_of(metric)
    curve = run.curves.get(curve_key) if curve_key else None
    if metric in run.metrics and (metric.startswith(SUMMARY_PREFIXES) or curve is None):
        value = run.metrics[metric]
        epoch = None
        primary = "best/val_loss" if "best/val_loss" in run.metrics else "best/val_accuracy"
        if metric == primary and "best/epoch" in run.metrics:
            epoch = int(run.metrics["best/epoch"])
        elif curve is not None and metric.startswith("best/"):
            hit = np.flatnonzero(curve[1] == value)
            epoch = int(curve[0][hit[0]]) if hit.size else None
        return value, epoch
    if curve is None or not np.isfinite(curve[1]).any():
        return None, None
    steps, vals = curve
    if metric.startswith("final/"):
        ok = np.flatnonzero(np.isfinite(vals))
        return float(vals[ok[-1]]), int(steps[ok[-1]])
    i = int(np.nanargmin(vals) if ascending else np.nanargmax(vals))
    return float(vals[i]), int(steps[i])


def _final(run: RunRow, key: str) -> float | None:
    if key in run.metrics:
        return run.metrics[key]
    c = run.curves.get(curve_of(key) or "")
    if c is not None:
        ok = np.flatnonzero(np.isfinite(c[1]))
        if ok.size:
            return float(c[1][ok[-1]])
    return None


def varying_params(runs: Sequence[RunRow]) -> list[str]:
    """Param keys with at least two distinct values among the runs (missing ignored)."""
    values: dict[str, set] = defaultdict(set)
    for r in runs:
        for k, v in r.params.items():
            if not k.startswith(IGNORED_PARAM_PREFIXES):
                values[k].add(_norm(v))
    keys = [k for k, vs in values.items() if len(vs) > 1]
    return sorted(keys, key=lambda k: (k == SEED_KEY, k))


def group_key(run: RunRow) -> tuple:
    if not run.params:
        return ("run", run.run_id)
    return tuple(sorted((k, _norm(v)) for k, v in run.params.items()
                        if k != SEED_KEY and not k.startswith(IGNORED_PARAM_PREFIXES)))


def _sort_key(value: float | None, ascending: bool, tie: tuple):
    if value is None or not math.isfinite(value):
        return (1, 0.0, tie)
    return (0, value if ascending else -value, tie)


def build_report(sweep: Sweep, runs: list[RunRow], uri: str, metric: str | None = None,
                 ascending: bool | None = None, filters=(), fetch_method: str = "") -> Report:
    """Rank runs and configs (runs must carry their curves already). The varying params
    are those of the whole sweep (``sweep.runs``), so a filter keeps its columns."""
    metric = metric or default_metric(runs)
    asc = lower_is_better(metric) if ascending is None else ascending
    final_key = final_key_for(metric, runs)
    for r in runs:
        r.value, r.epoch = run_value(r, metric, asc)
        r.final = _final(r, final_key)
    live = [r for r in runs if not r.failed]
    dead = [r for r in runs if r.failed]
    live.sort(key=lambda r: _sort_key(r.value, asc, (r.start_time, r.run_id)))
    dead.sort(key=lambda r: (r.start_time, r.run_id))
    ranked = live + dead
    for i, r in enumerate(ranked, 1):
        r.rank = i
    groups: dict[tuple, Group] = {}
    for r in ranked:
        if not r.params and not r.curves and r.value is None:
            continue   # e.g. a run that failed before it logged anything: not a config
        g = groups.setdefault(group_key(r), Group(group_key(r), []))
        g.runs.append(r)
        r.group = g
    for g in groups.values():
        ok = [r for r in g.runs if not r.failed]
        g.mean, g.std, g.n = mean_std(r.value for r in ok)
        g.final_mean, g.final_std, _ = mean_std(r.final for r in ok)
        g.epoch_mean = mean_std(r.epoch for r in ok if r.value is not None)[0]
    ordered = sorted(groups.values(), key=lambda g: _sort_key(
        g.mean if g.n else None, asc, (min(r.rank for r in g.runs),)))
    for i, g in enumerate(ordered, 1):
        g.rank = i
    return Report(sweep, uri, metric, asc, final_key, varying_params(sweep.runs), ranked, ordered,
                  list(filters), fetch_method)


# -- the printed table --------------------------------------------------------------------

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


def _status_summary(runs: Sequence[RunRow]) -> str:
    c = Counter(r.status for r in runs)
    return " ".join(f"{n} {s}" for s, n in sorted(c.items(), key=lambda kv: -kv[1]))


def _diagnosis_summary(runs: Sequence[RunRow]) -> str:
    c = Counter(r.diagnosis for r in runs if r.diagnosis)
    if len(c) == 1 and sum(c.values()) == len(runs):
        return next(iter(c))
    return " ".join(f"{d}×{n}" for d, n in c.most_common())


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
                     fmt_pm(g.final_mean, g.final_std, g.n), _status_summary(g.runs),
                     _diagnosis_summary(g.runs)])
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


# -- the PNG grid ---------------------------------------------------------------------------

def adaptive(run: RunRow) -> bool:
    """Whether the run's schedule can change the rate (anything but ``constant``)."""
    name = run.params.get("schedule.name", run.params.get("schedule"))
    return name is not None and name != "constant"


def _draw_lr(ax, runs: Sequence[RunRow]) -> None:
    """Each run's learning rate (seeds of one config can cut at different epochs)."""
    from matplotlib.ticker import NullFormatter

    curves = [r.curves["lr"] for r in runs if "lr" in r.curves]
    for s, v in curves:
        ax.plot(s, v, color=LR_COLOR, linewidth=1.0 if len(curves) == 1 else 0.7,
                alpha=1.0 if len(curves) == 1 else 0.6)
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for _, v in curves] or [np.zeros(0)])
    if pos.size:  # rates read in decades; at least one decade, so a flat rate is a level
        lo, hi = float(pos.min()), float(pos.max())
        pad = max(1.0, math.sqrt(10 * lo / hi)) * 1.3
        ax.set_yscale("log")
        ax.set_ylim(lo / pad, hi * pad)
        ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: 2e-1, 3e-1 ... crowd


def _second(runs: Sequence[RunRow]) -> str:
    return "accuracy" if any("val/accuracy" in r.curves or "train/accuracy" in r.curves
                             for r in runs) else "mae"


def _reference(runs: Sequence[RunRow], second: str) -> tuple[float | None, float | None]:
    """(dashed line, dotted line): chance and majority accuracy, or the baseline MAE."""
    def avg(key):
        v = [r.metrics[key] for r in runs if key in r.metrics]
        return float(np.mean(v)) if v else None

    if second == "accuracy":
        chance, major = avg("data/chance_accuracy"), avg("data/majority_accuracy")
        if chance is None:
            chance = avg("health/baseline/chance_accuracy")
        if major is not None and chance is not None and abs(major - chance) < 0.01:
            major = None
        return chance, major
    return avg("data/baseline_val_mae"), None


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """``model.hidden`` -> ``hidden`` where the last part names one key only."""
    last = Counter(k.rsplit(".", 1)[-1] for k in keys)
    return {k: k.rsplit(".", 1)[-1] if last[k.rsplit(".", 1)[-1]] == 1 else k for k in keys}


def config_label(report: Report, g: Group, width: int = 200, short: bool = False) -> str:
    first = g.runs[0]
    if not first.params:
        return f"{first.name or first.run_id[:8]} (no params)"
    names = short_keys(report.config_keys) if short else {k: k for k in report.config_keys}
    parts = [f"{names[k]}={first.params.get(k, '')}" for k in report.config_keys]
    text = ", ".join(parts) or "(same config)"
    return text if len(text) <= width else text[:width - 1] + "…"


def _draw(ax, runs: Sequence[RunRow], metric: str) -> None:
    for split, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
        key = f"{split}/{metric}"
        curves = [r.curves[key] for r in runs if key in r.curves]
        if not curves:
            continue
        if len(curves) == 1:
            s, v = curves[0]
            ax.plot(s, v, color=color, linewidth=1.2)
            continue
        steps, mean, std, _ = band(curves)
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
        ax.plot(steps, mean, color=color, linewidth=1.2)


def grid_figure(report: Report, top: int = DEFAULT_TOP):
    """One panel pair per config in ranked order (``top`` of them; 0 = all): loss above,
    accuracy (or MAE) below, and the learning rate under them when a run has its curve
    (adaptive schedules); ``None`` when no run has a curve."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    groups = [g for g in report.groups if any(r.curves for r in g.runs)]
    total = len(groups)
    if top and top > 0:
        groups = groups[:top]
    if not groups:
        return None
    n = len(groups)
    cols = min(n, max(1, math.ceil(math.sqrt(n * 1.4))), 8)
    rows = math.ceil(n / cols)
    with_lr = any("lr" in r.curves for g in groups for r in g.runs)
    w_in, h_in = max(3.1 * cols + 0.4, 7.0), (3.9 if with_lr else 3.0) * rows + 1.2
    fig = Figure(figsize=(w_in, h_in), dpi=100)
    fig.subplots_adjust(left=0.6 / w_in, right=1 - 0.15 / w_in, bottom=0.45 / h_in,
                        top=1 - 1.05 / h_in, wspace=0.28, hspace=0.3 if with_lr else 0.42)
    outer = fig.add_gridspec(rows, cols)
    unit = any(len(g.runs) > 1 for g in groups)
    drawn: set[str] = set()
    for i, g in enumerate(groups):
        r, c = divmod(i, cols)
        inner = outer[r, c].subgridspec(3 if with_lr else 2, 1, hspace=0.06,
                                        height_ratios=[1, 1, 0.7] if with_lr else None)
        ax_l = fig.add_subplot(inner[0])
        ax_s = fig.add_subplot(inner[1], sharex=ax_l)
        ax_r = fig.add_subplot(inner[2], sharex=ax_l) if with_lr else None
        if ax_r is not None:
            _draw_lr(ax_r, g.runs)
        second = _second(g.runs)
        _draw(ax_l, g.runs, "loss")
        _draw(ax_s, g.runs, second)
        finite = np.concatenate([v[np.isfinite(v)] for rr in g.runs
                                 for k, (_, v) in rr.curves.items() if k.endswith("/loss")]
                                or [np.zeros(0)])
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax_l.set_yscale("log")
        dashed, dotted = _reference(g.runs, second)
        if dashed is not None:
            ax_s.axhline(dashed, color="grey", linestyle="--", linewidth=0.9)
            drawn.add("chance" if second == "accuracy" else "baseline")
        if dotted is not None:
            ax_s.axhline(dotted, color="grey", linestyle=":", linewidth=0.9)
            drawn.add("majority")
        ax_s.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        if second == "accuracy":
            ax_s.set_ylim(-0.02, 1.02)
        label = textwrap.shorten(config_label(report, g, short=True), 90, placeholder="…")
        label = "\n".join(textwrap.wrap(f"#{g.rank} {label}", 46)[:2])
        value = fmt_pm(g.mean, g.std, g.n)
        n_txt = f" (n={len(g.runs)})" if len(g.runs) > 1 else ""
        # Text rather than set_title: titles are re-positioned against every tick label
        # at draw time, which cost more than the curves on a big grid.
        ax_l.text(0, 1.03, f"{label}\n{report.metric} {value or '—'}{n_txt}", fontsize=7,
                  transform=ax_l.transAxes, va="bottom", ha="left")
        bottom = ax_r or ax_s
        for ax in (ax_l, ax_s, ax_r):
            if ax is None:
                continue
            ax.tick_params(labelsize=6, length=2)
            ax.grid(True, linewidth=0.3, alpha=0.5)
            if ax.get_yscale() == "linear":
                ax.yaxis.set_major_locator(MaxNLocator(4))
            if ax is not bottom:
                ax.tick_params(labelbottom=False)
        if c == 0:
            ax_l.set_ylabel("loss", fontsize=7)
            ax_s.set_ylabel(second, fontsize=7)
            if ax_r is not None:
                ax_r.set_ylabel("lr", fontsize=7)
        if r == rows - 1 or i + cols >= n:
            bottom.set_xlabel("epoch", fontsize=7)
    handles = [Line2D([], [], color=TRAIN_COLOR, label="train"),
               Line2D([], [], color=VAL_COLOR, label="validation")]
    if with_lr:
        handles.append(Line2D([], [], color=LR_COLOR, label="learning rate"))
    for style, label in (("--", "chance accuracy" if "chance" in drawn else None),
                         ("--", "baseline MAE (predict the training mean)"
                          if "baseline" in drawn else None),
                         (":", "majority class" if "majority" in drawn else None)):
        if label:
            handles.append(Line2D([], [], color="grey", linestyle=style, label=label))
    if unit:
        handles.append(Patch(color="grey", alpha=0.3, label="mean ± sample std over seeds"))
    fig.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5 / w_in, 1 - 0.36 / h_in))
    shown = f"top {n} of {total} configs" if n < total else f"{total} configs"
    fig.text(0.6 / w_in, 1 - 0.1 / h_in, f"{report.sweep.name}: {shown}, ranked by "
             f"{report.metric} ({'lower' if report.ascending else 'higher'} is better)",
             fontsize=9, va="top", ha="left", weight="bold")
    report.panels = (n, total)
    return fig


# -- the HTML page --------------------------------------------------------------------------

SVG_W, SVG_H, SVG_GAP = 150, 54, 8


def _envelope(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """At most two points (min and max) per pixel column when a curve has more than
    ``2 * width`` points: spikes survive, nothing is averaged away."""
    if len(x) <= 2 * width:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    b = np.minimum(((x - x[0]) / span * width).astype(np.int64), width - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(b)]
    keep = []
    for s, e in zip(starts, ends):
        seg = y[s:e]
        keep.extend(sorted({s + int(np.argmin(seg)), s + int(np.argmax(seg))}))
    return x[keep], y[keep]


def _points(x, y, x0, xmax, lo, hi, log=False) -> str:
    if log:
        y, lo, hi = np.log10(y), math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0
    px = x0 + (x / (xmax or 1)) * SVG_W
    py = 2 + (SVG_H - 4) * (1 - (y - lo) / span)
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist()))


def _svg_panel(series: list, x0: float, fixed: tuple | None, ref: list,
               title: str) -> str:
    """``series``: [(color, steps, values[, std])]; draws bands where std is given."""
    parts = [f'<rect x="{x0}" y="0" width="{SVG_W}" height="{SVG_H}" class="f"/>']
    clean = []
    for item in series:
        color, s, v = item[0], np.asarray(item[1], float), np.asarray(item[2], float)
        sd = np.asarray(item[3], float) if len(item) > 3 else None
        ok = np.isfinite(v)
        clean.append((color, s[ok], v[ok], None if sd is None else sd[ok]))
    vals = [v for _, _, v, _ in clean if v.size]
    if not vals:
        return "".join(parts) + f"<title>{html.escape(title)}: no points</title>"
    xmax = max(float(s.max()) for _, s, v, _ in clean if v.size)
    curve = np.concatenate(vals)
    log = not fixed and curve.min() > 0 and curve.max() / curve.min() > 100
    if fixed:
        lo, hi = fixed
    elif log:   # bands never decide the scale; the lower edge is cut at the lowest point
        ups = [v + sd for _, _, v, sd in clean if sd is not None and v.size]
        lo, hi = float(curve.min()), float(np.nanmax(np.concatenate([curve] + ups)))
    else:
        allv = np.concatenate(vals + [v + sd for _, _, v, sd in clean if sd is not None]
                              + [v - sd for _, _, v, sd in clean if sd is not None])
        allv = allv[np.isfinite(allv)]
        lo, hi = float(allv.min()), float(allv.max())
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    for color, s, v, sd in clean:
        if not v.size:
            continue
        if sd is not None:
            okb = np.isfinite(sd)
            if okb.sum() > 1:
                up, down = v[okb] + sd[okb], v[okb] - sd[okb]
                if log:
                    down = np.maximum(down, lo)
                up, down = np.clip(up, lo, hi), np.clip(down, lo, hi)
                poly = (_points(s[okb], up, x0, xmax, lo, hi, log) + " "
                        + _points(s[okb][::-1], down[::-1], x0, xmax, lo, hi, log))
                parts.append(f'<polygon points="{poly}" fill="{color}" fill-opacity="0.25"/>')
        xs, ys = _envelope(s, v, SVG_W)
        parts.append(f'<polyline points="{_points(xs, ys, x0, xmax, lo, hi, log)}" '
                     f'stroke="{color}"/>')
    for value, dash in ref:
        if value is not None and lo <= value <= hi:
            y = _points(np.array([0.0]), np.array([value]), x0, 1, lo, hi, log).split(",")[1]
            parts.append(f'<line x1="{x0}" x2="{x0 + SVG_W}" y1="{y}" y2="{y}" class="{dash}"/>')
    scale = " (log scale)" if log else ""
    parts.append(f"<title>{html.escape(title)}{scale}: {fmt(lo)} … {fmt(hi)}, "
                 f"epochs 0 … {fmt(xmax)}</title>")
    return "".join(parts)


def curves_svg(runs: Sequence[RunRow], bands: bool = False) -> str:
    if not any(r.curves for r in runs):
        return "<span class='meta'>no curves</span>"
    second = _second(runs)
    panels = []
    for i, metric in enumerate(("loss", second)):
        series = []
        for split, color in (("train", _COLORS[TRAIN_COLOR]), ("val", _COLORS[VAL_COLOR])):
            key = f"{split}/{metric}"
            cs = [r.curves[key] for r in runs if key in r.curves]
            if not cs:
                continue
            if bands and len(cs) > 1:
                s, m, sd, _ = band(cs)
                series.append((color, s, m, sd))
            else:
                series.extend((color, s, v) for s, v in cs)
        ref = []
        if metric != "loss":
            dashed, dotted = _reference(runs, second)
            ref = [(dashed, "d"), (dotted, "o")]
        fixed = (0.0, 1.0) if metric == "accuracy" else None
        panels.append(_svg_panel(series, i * (SVG_W + SVG_GAP), fixed, ref, metric))
    w = 2 * SVG_W + SVG_GAP
    return (f'<svg width="{w}" height="{SVG_H}" viewBox="0 0 {w} {SVG_H}">'
            + "".join(f"<g>{p}</g>" for p in panels) + "</svg>")


_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#555;margin:.15em 0}code{font-size:12px}
table{border-collapse:collapse;font-size:12px}
th,td{padding:2px 7px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}
th{position:sticky;top:0;background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[data-type=none]{cursor:default}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff0f0}td.err{color:#a00;max-width:28em}
svg .f{fill:#fafafa;stroke:#ddd}svg polyline{fill:none;stroke-width:1.2}
svg line.d{stroke:#888;stroke-dasharray:3 2}svg line.o{stroke:#888;stroke-dasharray:1 2}
.key span{display:inline-block;width:14px;height:3px;margin:0 4px 3px 10px}
#q{margin:.3em 0 .6em;padding:3px 6px;width:24em}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){if(th.dataset.type==='none')return;
  th.addEventListener('click',function(){
  var dir=th.dataset.dir==='asc'?'desc':'asc';
  t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=dir;
  var num=th.dataset.type==='num',b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
  function val(r){var c=r.cells[i],v=c.dataset.v!==undefined?c.dataset.v:c.textContent;
   return num?(v===''?NaN:parseFloat(v)):v.toLowerCase();}
  rows.sort(function(a,c){var x=val(a),y=val(c);
   if(num){var xn=isNaN(x),yn=isNaN(y);if(xn||yn)return xn-yn;return dir==='asc'?x-y:y-x;}
   return dir==='asc'?x.localeCompare(y):y.localeCompare(x);});
  rows.forEach(function(r){b.appendChild(r)});});});});
var q=document.getElementById('q');if(q)q.addEventListener('input',function(){
 var s=q.value.toLowerCase();document.querySelectorAll('#runs tbody tr').forEach(function(r){
 r.style.display=r.textContent.toLowerCase().indexOf(s)>=0?'':'none';});});
"""


def _is_num(values: Iterable[str]) -> bool:
    seen = False
    for v in values:
        if v == "":
            continue
        try:
            float(v)
        except ValueError:
            return False
        seen = True
    return seen


def _td(text: str, num: bool = False, sort: str | None = None, cls: str = "") -> str:
    attrs = []
    classes = ("n " if num else "") + cls
    if classes.strip():
        attrs.append(f'class="{classes.strip()}"')
    if sort is not None:
        attrs.append(f'data-v="{html.escape(sort)}"')
    return f"<td {' '.join(attrs)}>{html.escape(text)}</td>" if attrs else \
        f"<td>{html.escape(text)}</td>"


def _th(text: str, num: bool | None) -> str:
    kind = "none" if num is None else "num" if num else "str"
    return f'<th data-type="{kind}">{html.escape(text)}</th>'


def _numv(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def render_html(report: Report) -> str:
    s = report.sweep
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>nets-report: {e(s.name)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(s.name)}</h1>"]
    out += [f'<p class="meta">{e(line)}</p>' for line in header_lines(report)]
    out.append(f'<p class="meta">generated {time.strftime("%Y-%m-%d %H:%M:%S")} by nets-report; '
               "click a column to sort. "
               f'<span class="key"><span style="background:{_COLORS[TRAIN_COLOR]}"></span>train'
               f'<span style="background:{_COLORS[VAL_COLOR]}"></span>validation'
               '<span style="border-top:2px dashed #888;height:0"></span>chance '
               '(baseline MAE)<span style="border-top:2px dotted #888;height:0"></span>majority '
               "class</span>; loss left, accuracy (0…1) or MAE right; hover a plot for its "
               "range.</p>")
    keys = report.config_keys
    if report.grouped:
        out.append("<h2>Configs</h2><p class='meta'>runs that differ only by seed, "
                   "mean ± sample std (ddof=1) over the runs with a value; the band is "
                   "mean ± sample std per epoch.</p>")
        nums = [_is_num(g.runs[0].params.get(k, "") for g in report.groups) for k in keys]
        out.append("<table class='sortable' id='configs'><thead><tr>" + _th("#", True)
                   + "".join(_th(k, n) for k, n in zip(keys, nums))
                   + _th("n", True) + _th(report.metric, True) + _th("± std", True)
                   + _th("epoch", True) + _th(report.final_key, True) + _th("status", False)
                   + _th("diagnosis", False) + _th("curves", None) + "</tr></thead><tbody>")
        for g in report.groups:
            first = g.runs[0]
            out.append("<tr>" + _td(str(g.rank), True, str(g.rank))
                       + "".join(_td(first.params.get(k, ""), n) for k, n in zip(keys, nums))
                       + _td(str(g.n), True) + _td(fmt(g.mean), True, _numv(g.mean))
                       + _td(fmt(g.std, 2), True, _numv(g.std))
                       + _td("" if not math.isfinite(g.epoch_mean) else f"{g.epoch_mean:.3g}",
                             True, _numv(g.epoch_mean))
                       + _td(fmt_pm(g.final_mean, g.final_std, g.n), True, _numv(g.final_mean))
                       + _td(_status_summary(g.runs)) + _td(_diagnosis_summary(g.runs))
                       + f"<td>{curves_svg(g.runs, bands=True)}</td></tr>")
        out.append("</tbody></table>")
    out.append(f"<h2>Runs ({len(report.runs)})</h2>"
               "<input id='q' placeholder='show only rows containing…'>")
    vk = report.varying
    nums = [_is_num(r.params.get(k, "") for r in report.runs) for k in vk]
    out.append("<table class='sortable' id='runs'><thead><tr>" + _th("#", True)
               + "".join(_th(k, n) for k, n in zip(vk, nums))
               + _th(report.metric, True) + _th("epoch", True) + _th(report.final_key, True)
               + _th("status", False) + _th("diagnosis", False) + _th("config", True)
               + _th("run", False) + _th("curves", None) + "</tr></thead><tbody>")
    for r in report.runs:
        note = (r.error if r.failed else r.diagnosis)
        out.append(("<tr class='bad'>" if r.failed else "<tr>")
                   + _td(str(r.rank), True, str(r.rank))
                   + "".join(_td(r.params.get(k, ""), n) for k, n in zip(vk, nums))
                   + _td(fmt(r.value), True, _numv(r.value))
                   + _td("" if r.epoch is None else str(r.epoch), True)
                   + _td(fmt(r.final), True, _numv(r.final)) + _td(r.status)
                   + _td(note, cls="err" if r.failed else "")
                   + _td(str(r.group.rank) if r.group else "", True)
                   + f'<td><code title="{e(r.name)}">{e(r.run_id)}</code></td>'
                   + f"<td>{curves_svg([r])}</td></tr>")
    out.append(f"</tbody></table><script>{_JS}</script></body></html>")
    return "\n".join(out)


# -- writing, logging, the command line ---------------------------------------------------

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
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
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


def make_report(uri: str, ident: str | None = None, *, metric: str | None = None,
                ascending: bool | None = None, filters: Sequence[str] = (),
                experiment: str | None = None, all_attempts: bool = False,
                method: str | None = None) -> Report:
    """Find the sweep, fetch its runs and curves, rank them (no files written)."""
    from mlflow.tracking import MlflowClient

    timings = {}
    t = time.perf_counter()
    client = MlflowClient(uri)
    parent = find_sweep(client, uri, ident, experiment)
    sweep = collect(client, uri, parent, all_attempts)
    timings["runs"] = time.perf_counter() - t
    if not sweep.runs:
        raise ReportError(f"sweep {sweep.name!r} (run {parent.info.run_id}) has no child runs")
    parsed = [parse_filter(f) for f in filters]
    runs = apply_filters(sweep.runs, parsed)
    if not runs:
        raise ReportError(f"no run of sweep {sweep.name!r} matches "
                          + " and ".join(filters))
    explicit = metric is not None
    metric = metric or default_metric(runs)
    keys = list(CURVE_KEYS)
    extra = curve_of(metric)
    if extra and extra not in keys and not extra.startswith(SUMMARY_PREFIXES):
        keys.append(extra)
    if any(adaptive(r) for r in runs):  # the rate's trace is the story (bold driver's cuts)
        keys.append("lr")
    keys = [k for k in keys if any(k in r.metrics for r in runs)]   # no request for mae ...
    t = time.perf_counter()
    curves, how = fetch_curves(client, uri, [r.run_id for r in runs], keys,
                               {r.run_id: r.metrics.keys() for r in runs}, method)
    for r in runs:
        r.curves = curves.get(r.run_id, {})
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


def log_to_parent(uri: str, report: Report, files: Mapping[str, Path]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for path in files.values():
        store_client.retry(client.log_artifact, report.sweep.parent.info.run_id, str(path))


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
                   "means the best epoch's value, computed from the curve if not logged")
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
    args = p.parse_args(argv)
    if args.top < 0:
        p.error("--top must be >= 0")
    from mlflow.exceptions import MlflowException

    t0 = time.perf_counter()
    try:
        uri = open_store(args.uri)
        report = make_report(uri, sweep_ident(uri, args.sweep), metric=args.metric,
                             ascending=args.ascending,
                             filters=args.filter, experiment=args.experiment,
                             all_attempts=args.all_attempts)
    except ReportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.error_code
        print(f"{PROG}: error: {first}", file=sys.stderr)
        return 2
    _say(render_text(report, args.by))
    out = Path(args.out) if args.out else default_out_dir(report.sweep)
    try:
        files = write_report(report, out, args.top)
    except OSError as e:
        print(f"{PROG}: error: cannot write the report to {out}: {e}", file=sys.stderr)
        return 2
    what = ", ".join(f"{p.name}" for p in files.values())
    line = (f"\nwrote {out}/: {what} ({len(report.runs)} runs"
            + (f"; picture: {report.panels[0]} of {report.panels[1]} configs with curves"
               if "png" in files else "")
            + f") in {time.perf_counter() - t0:.1f}s")
    _say(line)
    if args.no_log:
        return 0
    try:
        log_to_parent(report.uri, report, files)
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
