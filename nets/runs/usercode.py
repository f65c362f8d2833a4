"""The user's own code in a run's record: stored, checked before training, verified on rerun.

A job calls ``check_and_record`` after building its run and before the first update:

- the source file of every user module the run's components come from (and of every
  ``plugins`` module) is stored as artifact ``user_code/<file>``, and the tag
  ``nets.user_code`` lists them as JSON ``[{"module", "file", "sha256"}]``;
- with ``diagnostics.gradcheck_user`` (default on) every user component with a backward
  pass is gradient-checked (``nets.usercheck``); the per-part table goes to artifact
  ``usercheck.md``, the errors to ``usercheck/...`` metrics, ``passed``/``failed`` to the
  tag ``nets.usercheck``, and a failure raises before anything trains.

``nets-reproduce`` calls ``problems`` before it rebuilds anything: each recorded module
must be found (launch directory first, then the Python path) with the same hash.
Nothing here imports from an artifact; ``hint`` tells the user the explicit step that
puts the recorded copy on the path.
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any, Callable, Mapping

from nets import plugins, usercheck

TAG = "nets.user_code"


def run_modules(run, cfg: Mapping[str, Any]) -> list[str]:
    """Names of the user modules ``run`` depends on, in a stable order."""
    mods = [m for m in (cfg.get("plugins") or []) if isinstance(m, str)]
    objs = [run.model, run.model.output, run.loss, run.optimizer, run.schedule, run.target,
            *run.model.net, *(getattr(layer, "fn", None) for layer in run.model.net)]
    for obj in objs:
        if obj is not None and plugins.is_user(obj):
            mods.append(type(obj).__module__)
    dataset = cfg.get("dataset")
    name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    if plugins.is_import_path(name):
        mods.append(name.split(":")[0])
    known = {s.module for s in plugins.sources()}
    out: list[str] = []
    for m in mods:
        if m in known and m not in out:
            out.append(m)
    return out


def recorded(tags: Mapping[str, str]) -> list[plugins.Source]:
    """The ``nets.user_code`` tag of a run as ``Source`` records (``[]`` when absent)."""
    text = tags.get(TAG)
    if not text:
        return []
    try:
        items = json.loads(text)
        return [plugins.Source(str(i["module"]), str(i["file"]), str(i["sha256"]))
                for i in items]
    except (ValueError, KeyError, TypeError):
        return [plugins.Source("?", "?", "?")]


def check_and_record(run, cfg: Mapping[str, Any], settings, rec,
                     say: Callable[[str], None]) -> list[usercheck.PartResult]:
    """Store the run's user source files and gradient-check its user components.

    Parameters
    ----------
    run : nets.train.Run
    cfg : mapping
        The run's plain config (its ``plugins`` list).
    settings : nets.diagnostics.DiagnosticsSettings
        ``gradcheck_user``, ``gradcheck_threshold``, ``gradcheck_batch``.
    rec : nets.store.write.RunRecorder or None
    say : callable
        Progress lines.

    Raises
    ------
    nets.usercheck.ComponentCheckError
        A user component's gradient is wrong (the record already holds the table).
    """
    by_name = {s.module: s for s in plugins.sources()}
    sources = [by_name[m] for m in run_modules(run, cfg)]
    if rec is not None and sources:
        for s in sources:
            folder = "/".join(["user_code", *s.filename.split("/")[:-1]])
            rec.log_file(s.file, folder)
        rec.set_tags({TAG: json.dumps([{"module": s.module, "file": s.filename,
                                        "sha256": s.sha256} for s in sources])})
    if not getattr(settings, "gradcheck_user", True) or not usercheck.user_components(run):
        return []
    threshold = settings.gradcheck_threshold
    try:
        results = usercheck.check_run(run, threshold, settings.gradcheck_batch)
    except usercheck.ComponentCheckError as e:
        _record(rec, e.results, threshold, "failed")
        raise
    _record(rec, results, threshold, "passed")
    if results:
        worst = max(results, key=lambda r: r.error)
        say(f"gradient check of user components passed ({len(results)} parts, worst "
            f"{worst.describe()})")
    return results


def _record(rec, results, threshold: float, verdict: str) -> None:
    if rec is None or not results:
        return
    rec.log_text(usercheck.table(results, threshold), "usercheck.md")
    rec.log_summary({f"usercheck/{r.where.replace('[', '').replace(']', '')}/{r.part}": r.error
                     for r in results if math.isfinite(r.error)})
    rec.set_tags({"nets.usercheck": verdict})


def problems(tags: Mapping[str, str]) -> list[str]:
    """Why a run's user modules cannot be re-imported as they were (``[]``: they can)."""
    return plugins.verify(recorded(tags))


def hint(run_id: str, uri: str) -> str:
    """The explicit step that reruns with the recorded copy of the user code."""
    return (f"to rerun with the recorded copy: MLFLOW_TRACKING_URI={shlex.quote(uri)} mlflow "
            f"artifacts download -r {run_id} -a user_code -d DIR, then run "
            f"nets-reproduce {run_id} --uri {shlex.quote(uri)} from DIR/user_code")
