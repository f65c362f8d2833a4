"""``nets-reproduce RUN_ID``: rerun a recorded run from its stored config, prove the curves.

The run's ``config.yaml`` artifact (the resolved config ``nets-train`` recorded, not the
flattened params) is read with ``yaml.safe_load``, checked (plain data only, no ``_``
keys, no ``${...}`` interpolation, every component a registry name: ``build_run``),
checked against the run's ``nets.config_hash`` tag (an edited artifact is refused), and
rerun through ``nets.runs.job.run_job`` into the same store and experiment, as a new run
tagged ``nets.reproduces=<RUN_ID>``, with the BLAS thread count the original recorded.
Then every metric history the original recorded is compared point by point with ``==``
(a metric only a newer nets records is no difference).

Exit codes: 0 identical, 1 different (or the rerun failed), 2 a usage, store or config
problem: one line ``nets-reproduce: error: ...`` and nothing recorded.

Nothing from an artifact is ever unpickled, imported or called: the config is plain
YAML data and components are looked up by name in the registries. A run that used the
user's own modules (``nets.user_code`` tag) is rerun only when each module is found
from the launch directory or the Python path with the recorded content hash.

Which difference is reported: the curves (per-epoch metrics) first, at the earliest
step where any of them differs (ties: sorted key order); only when every curve agrees,
the first differing single-value metric (``best/``, ``final/``, ``data/``) in sorted key
order. (A changed curve also changes its ``final/`` value at step 0, which would
otherwise hide where the curves parted.)

A store directory that was copied or moved keeps the old absolute artifact locations in
its database. Artifacts are then read from the same place inside the store directory
(``<store>/artifacts/<experiment>/<run id>/artifacts``), and before the rerun writes
anything the experiment's artifact location is pointed back inside the store, so the
new run's files land in this store and not in the directory it was copied from.

The command line (and ``--print-command``) is ``nets.app.reproduce``.
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from nets.runs import usercode
from nets.store import client as store_client, read, uri as store_uri
from nets.store.tags import SUMMARY_PREFIXES, nets_key
from nets.store.uri import safe_uri
from nets.runs.job import (TRACKING_DEFAULTS, JobSpec, blas_state, config_hash, git_state,
                       run_job)
from nets.registry import ConfigError
from nets.text import cut, show
from nets.train import CONFIG_SECTIONS as ROOT_KEYS

PROG = "nets-reproduce"
# Tags that can change the numbers (or say the code did), compared before the curves.
ENV_TAGS = ("numpy.version", "nets.blas", "nets.blas_threads", "nets.version", "python.version",
            "mlflow.source.git.commit", "nets.git_dirty")
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000


class ReproduceError(Exception):
    """A usage, store or config problem: reported as one line, nothing recorded."""


@dataclass
class Difference:
    """The first place two runs' metrics part."""

    key: str
    step: int
    original: Any          # float, list of floats (several points at one step) or None
    reproduced: Any
    n_keys: int = 1        # how many metrics differ in all

    def describe(self) -> str:
        more = f" ({self.n_keys - 1} more metric(s) differ)" if self.n_keys > 1 else ""
        return (f"metric {self.key!r} at step {self.step}: original {_show(self.original)}, "
                f"reproduced {_show(self.reproduced)}{more}")


@dataclass
class Report:
    """What ``reproduce`` did."""

    original_run_id: str
    run_id: str | None
    difference: Difference | None
    env_differences: list[str] = field(default_factory=list)
    n_metrics: int = 0
    n_points: int = 0

    @property
    def identical(self) -> bool:
        return self.difference is None


def _show(v: Any) -> str:
    if v is None:
        return "(no point)"
    if isinstance(v, list) and len(v) == 1:
        return repr(v[0])
    return repr(v)


# -- the store and the run ------------------------------------------------------------

def open_store(uri_arg: str | None, launch_dir: str | os.PathLike | None = None) -> str:
    """Resolve the store like ``nets-train``; refuse a SQLite file that does not exist."""
    try:
        return store_uri.existing_store(uri_arg, launch_dir)
    except FileNotFoundError as e:
        raise ReproduceError(str(e)) from None


def get_run(client, run_id: str, uri: str):
    if not read.is_run_id(run_id):
        raise ReproduceError(f"{run_id!r} is not a run id (32 hex digits)")
    try:
        run = read.get_run(client, run_id)
    except read.StoreError as e:
        raise ReproduceError(f"cannot read run {run_id!r} from {safe_uri(uri)}: {e}") from None
    if run is None:
        raise ReproduceError(f"no run {run_id!r} in {safe_uri(uri)}")
    return run


def read_artifact(client, uri: str, run, name: str) -> str | None:
    """Text of artifact ``name`` of ``run`` (``None`` if it has none); size-capped.

    A copied or moved SQLite store's artifacts are found inside it
    (``nets.store.read.local_artifact_dirs``)."""
    try:
        return read.artifact_text(client, uri, run, name, MAX_CONFIG_BYTES)
    except read.StoreError as e:
        raise ReproduceError(str(e)) from None


# -- the config: plain data, registry names only -------------------------------------------

def load_config(text: str) -> dict:
    """Parse and check a ``config.yaml`` artifact; ``ReproduceError`` if it is unsafe."""
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReproduceError(f"config.yaml is not plain YAML data ({first}): refused") from None
    check_config(cfg)
    return cfg


def check_config(cfg: Any) -> None:
    """Shape checks before the registries see anything (``build_run`` checks the names)."""
    if not isinstance(cfg, dict):
        raise ReproduceError(f"config.yaml must be a mapping of config sections, not "
                             f"{type(cfg).__name__}: refused")
    unknown = [k for k in cfg if k not in ROOT_KEYS]
    if unknown:
        raise ReproduceError(f"config.yaml has unknown top-level key {show(unknown[0])} (valid: "
                             f"{', '.join(ROOT_KEYS)}): refused")
    missing = [k for k in ("model", "optimizer", "train") if k not in cfg]
    if missing:
        raise ReproduceError(f"config.yaml has no {missing[0]!r} section: refused")
    tr = cfg.get("tracking")
    if tr is not None:
        if not isinstance(tr, dict):
            raise ReproduceError("config.yaml: tracking must be a mapping: refused")
        bad = [k for k in tr if k not in TRACKING_DEFAULTS]
        if bad:
            raise ReproduceError(f"config.yaml has unknown key tracking.{cut(bad[0])}: refused")
    count = [0]

    def walk(node: Any, path: str) -> None:
        count[0] += 1
        if count[0] > MAX_CONFIG_NODES:
            raise ReproduceError(f"config.yaml has more than {MAX_CONFIG_NODES} values: refused")
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise ReproduceError(f"config.yaml: key {show(k)} under {path or 'the root'} "
                                         "is not a string: refused")
                if k.startswith("_"):
                    raise ReproduceError(f"config.yaml: key {show(_join(path, k))} starts with '_' "
                                         "(no _target_-style keys): refused")
                walk(v, _join(path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str):
            if "${" in node:
                raise ReproduceError(f"config.yaml: {cut(path)}={show(node)} holds an interpolation; "
                                     "a recorded config is resolved: refused")
        elif node is not None and not isinstance(node, (bool, int, float)):
            raise ReproduceError(f"config.yaml: {path} is a {type(node).__name__}, not plain "
                                 "data: refused")

    walk(cfg, "")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_buildable(cfg: Mapping[str, Any]) -> None:
    """``build_run`` on the core config: every name must be in a registry."""
    from nets.train import build_run

    try:
        build_run({k: v for k, v in cfg.items() if k != "tracking"})
    except ConfigError as e:
        raise ReproduceError(f"config.yaml names something nets does not know: {e}: "
                             "refused") from None
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as e:
        line = str(e).splitlines()[0] if str(e) else ""
        raise ReproduceError(f"config.yaml does not build: {type(e).__name__}: {line}: "
                             "refused") from None


def load_overrides(text: str | None) -> list[str]:
    if text is None:
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ReproduceError("overrides.yaml is not plain YAML data: refused") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(o, str) for o in data):
        raise ReproduceError("overrides.yaml must be a list of strings: refused")
    return data


# -- comparing ------------------------------------------------------------------------------

def metric_histories(client, run) -> dict[str, list[tuple[int, float]]]:
    """Every metric of ``run`` as sorted ``(step, value)`` lists, under the engine's
    names: a run recorded before the metric rename compares with its reproduction."""
    return {nets_key(k): v for k, v in read.metric_histories(client, run).items()}


def compare(original: Mapping[str, list], reproduced: Mapping[str, list]) -> Difference | None:
    """``None`` if every history the original recorded is identical (``==`` on floats),
    else the first difference (curves first, earliest step, sorted keys; then
    single-value metrics; see module doc).

    A metric the original never recorded (a newer nets adds health curves) is no
    difference: what was recorded is what must come back, point for point.
    """
    found = []
    for key in sorted(original):
        a, b = _by_step(original.get(key)), _by_step(reproduced.get(key))
        if a == b and key in original and key in reproduced:
            continue
        steps = sorted(s for s in set(a) | set(b) if a.get(s) != b.get(s))
        step = steps[0] if steps else 0
        summary = key.startswith(SUMMARY_PREFIXES)
        found.append(((summary, step, key), Difference(key, step, a.get(step), b.get(step))))
    if not found:
        return None
    first = min(found, key=lambda f: f[0])[1]
    first.n_keys = len(found)
    return first


def _by_step(points) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for step, value in points or ():
        out.setdefault(int(step), []).append(float(value))
    for v in out.values():
        v.sort()
    return out


def loaded_blas() -> set[str]:
    """``"openblas 0.3.27"`` for every BLAS library loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return set()
    return {f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
            if i.get("user_api") == "blas"}


def environment_differences(original_tags: Mapping[str, str],
                            current: Mapping[str, str]) -> list[str]:
    """``"numpy.version 1.26.4 -> 2.1.0"`` for every float-relevant tag that changed."""
    out = []
    loaded = loaded_blas()
    for k in ENV_TAGS:
        a, b = original_tags.get(k), current.get(k)
        if k == "nets.blas" and a in loaded:
            # One process may hold several BLAS libraries (numpy's, scipy's); which one
            # is listed first depends on import order, so any loaded one matches.
            continue
        if a != b and not (a is None and b is None):
            out.append(f"{k} {a if a is not None else '(not recorded)'} -> "
                       f"{b if b is not None else '(none)'}")
    return out


# -- reproduce ------------------------------------------------------------------------------

def _thread_limit(tags: Mapping[str, str]):
    n = tags.get("nets.blas_threads")
    try:
        n = int(n) if n is not None else None
    except ValueError:
        n = None
    if not n or n < 1:
        return nullcontext(), None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext(), None
    import numpy  # noqa: F401 - BLAS must be loaded for threadpoolctl to see it

    return threadpool_limits(limits=n, user_api="blas"), n


def prepare(run_id: str, uri: str, finished: bool = False) -> tuple[Any, Any, dict, list[str]]:
    """Everything checked before anything is written: ``(client, run, config, overrides)``.

    ``finished``: refuse a run that did not end FINISHED (its curves are incomplete).
    """
    client = read.open_client(uri)
    run = get_run(client, run_id, uri)
    if finished and run.info.status != "FINISHED":
        raise ReproduceError(f"run {run_id} is {run.info.status}: only FINISHED runs have "
                             "whole curves to compare (--print-command still works)")
    text = read_artifact(client, uri, run, "config.yaml")
    if text is None:
        raise ReproduceError(f"run {run_id} has no config.yaml artifact (was it recorded by "
                             "nets-train? a sweep's parent run has none)")
    cfg = load_config(text)
    # The user's own modules must be the very files the run imported, found where a
    # fresh nets-train would find them; a recorded copy is only used after the user
    # downloads it and runs from there (usercode.hint).
    bad = usercode.problems(run.data.tags)
    if bad:
        raise ReproduceError(f"{bad[0]}: refused; {usercode.hint(run_id, uri)}")
    check_buildable(cfg)
    recorded_hash = run.data.tags.get("nets.config_hash")
    if recorded_hash is not None and config_hash(cfg) != recorded_hash:
        raise ReproduceError(f"config.yaml of run {run_id} is not the config it ran with (hash "
                             f"{config_hash(cfg)}, recorded nets.config_hash {show(recorded_hash)}): "
                             "refused")
    overrides = load_overrides(read_artifact(client, uri, run, "overrides.yaml"))
    return client, run, cfg, overrides


def reproduce(run_id: str, uri: str, experiment: str | None = None, stream=None) -> Report:
    """Rerun ``run_id`` of store ``uri`` and compare its metric histories (module doc)."""
    stream = stream or sys.stderr

    def say(text: str) -> None:
        print(f"{PROG}: {text}", file=stream, flush=True)

    client, run, cfg, overrides = prepare(run_id, uri, finished=True)
    if experiment:
        exp_id = store_client.prepare_store(uri, experiment)
    else:
        exp_id = run.info.experiment_id
    exp = read.get_experiment(client, exp_id)
    if exp.lifecycle_stage != "active":
        raise ReproduceError(f"experiment {exp.name!r} of run {run_id} is deleted: restore it "
                             "or pass --experiment NAME")
    old = store_client.relocate_if_moved(uri, exp)
    if old:
        say(f"note: the store was moved or copied; experiment {exp.name!r} now keeps its "
            f"artifacts inside it (was {old})")
    tags = run.data.tags
    limit, n_threads = _thread_limit(tags)
    cfg = dict(cfg)
    cfg["tracking"] = {**TRACKING_DEFAULTS, **dict(cfg.get("tracking") or {}), "enabled": True,
                       "uri": uri, "experiment": exp.name, "progress": "lines",
                       "run_name": f"{run.info.run_name or run_id}-reproduce"}
    with limit:
        current = {**store_client.versions(), **git_state(), **blas_state()}
        env = environment_differences(tags, current)
        if n_threads is None:
            say("note: the original run recorded no BLAS thread count; using the current one")
        if env:
            say("note: the environment differs from the original run (floats may differ): "
                + "; ".join(env))
        say(f"rerunning run {run_id} ({run.info.run_name}) into experiment {exp.name!r}"
            + (f" with {n_threads} BLAS thread(s)" if n_threads else ""))
        try:
            status = run_job(JobSpec(cfg, uri, exp_id, tags={"nets.reproduces": run_id},
                                     overrides=overrides), stream=stream)
        except ConfigError as e:   # checked above already; kept for a changed registry
            raise ReproduceError(f"config.yaml: {e}: refused") from None
    new_run = read.get_run(client, status.run_id)
    original_h = metric_histories(client, run)
    new_h = metric_histories(client, new_run)
    diff = compare(original_h, new_h)
    store_client.retry(client.set_tag, status.run_id, "nets.reproduce.result",
                    "identical" if diff is None else "different")
    if diff is not None:
        store_client.retry(client.set_tag, status.run_id, "nets.reproduce.first_difference",
                        diff.describe()[:5000])
    return Report(run_id, status.run_id, diff, env, len(original_h),
                  sum(len(v) for v in original_h.values()))
