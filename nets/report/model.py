"""What a sweep report is made of: runs, configs (runs that differ only by seed), the
ranking, and the values the views print.

Seeds. Runs are grouped by every param except ``seed`` (and ``tracking.*``,
``diagnostics.*``). A group's value is the mean ± **sample** standard deviation
(``ddof=1``) of its runs' values over the runs that have one; ``std`` is undefined
(NaN, shown as nothing) for a single value. Bands are, per epoch, the mean ± sample std
over the runs that have a point at that epoch.

Ranking. By best validation accuracy (best validation loss for regression) unless a
metric is given; a ``best/...`` key a run did not log, or a per-epoch key, is the best
point of its curve in the ranking direction. FAILED and KILLED runs come last.

Pure data and numpy: nothing here reads a store or draws.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from nets.store.tags import SWEEP_CURVES

SEED_KEY = "seed"
IGNORED_PARAM_PREFIXES = ("tracking.", "diagnostics.")
CURVE_KEYS = tuple(k for k in SWEEP_CURVES if k != "lr")   # the rate: adaptive runs only
SUMMARY_PREFIXES = ("best/", "final/", "data/")
LOWER_IS_BETTER = ("loss", "mae", "mse", "sse", "rmse", "error", "epoch")
FAILED = ("FAILED", "KILLED")

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
    source: str = "search"                          # where the children were read

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

# -- values and filters ---------------------------------------------------------------

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


SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=65_536)
def _norm(v: str) -> str:
    # a sweep's 30 params take few distinct values: cached, 10,000 runs' 900,000 calls
    # were 10 s of a report's CPU on a loaded machine
    return SPACE.sub("", str(v))


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


def matches(run: RunRow, filters: list[tuple[str, str, list[str]]]) -> bool:
    """Whether ``run`` passes every filter (a run without the param fails ``=`` and
    passes ``!=``)."""
    for key, op, values in filters:
        have = _filter_value(run, key)
        hit = have is not None and any(_same_value(h, v) for h in have for v in values)
        if hit != (op == "="):
            return False
    return True


def apply_filters(runs: list[RunRow], filters: list[tuple[str, str, list[str]]]) -> list[RunRow]:
    for key, op, values in filters:
        pseudo = key in ("status", "diagnosis") or key.startswith("tags.")
        if not pseudo and not any(key in r.params for r in runs):
            known = sorted({k for r in runs for k in r.params})
            close = [k for k in known if key.split(".")[-1] in k][:5]
            raise ReportError(f"--filter {key}{op}...: no run of the sweep has a param {key!r}"
                              + (f" (did you mean {', '.join(close)}?)" if close else "")
                              + "; also: status, diagnosis, tags.NAME")
    return [r for r in runs if matches(r, filters)]
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
        key = group_key(r)
        g = groups.setdefault(key, Group(key, []))
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
# -- what the views share ------------------------------------------------------------------

def status_summary(runs: Sequence[RunRow]) -> str:
    c = Counter(r.status for r in runs)
    return " ".join(f"{n} {s}" for s, n in sorted(c.items(), key=lambda kv: -kv[1]))


def diagnosis_summary(runs: Sequence[RunRow]) -> str:
    c = Counter(r.diagnosis for r in runs if r.diagnosis)
    if len(c) == 1 and sum(c.values()) == len(runs):
        return next(iter(c))
    return " ".join(f"{d}×{n}" for d, n in c.most_common())

def adaptive(run: RunRow) -> bool:
    """Whether the run's schedule can change the rate (anything but ``constant``)."""
    name = run.params.get("schedule.name", run.params.get("schedule"))
    return name is not None and name != "constant"
def second_metric(runs: Sequence[RunRow]) -> str:
    """The lower panel's metric: ``accuracy`` (classification) or ``mae`` (regression)."""
    return "accuracy" if any("val/accuracy" in r.curves or "train/accuracy" in r.curves
                             for r in runs) else "mae"


def reference_lines(runs: Sequence[RunRow], second: str) -> tuple[float | None, float | None]:
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
