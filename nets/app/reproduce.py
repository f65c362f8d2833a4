"""``nets-reproduce RUN_ID``: the command line of ``nets.runs.reproduce``.

``--print-command`` prints the ``nets-train`` command that recreates the run. The
overrides are derived from the stored config itself: its group choices plus every value
that differs from what those choices compose to with the current ``conf/``, checked by
composing them again (same config hash). If the current ``conf/`` cannot express the
config, the recorded ``overrides.yaml`` is printed instead, with a note on stderr.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from typing import Any, Mapping

from nets.app import errors, logs
from nets.app.schema import GROUPS
from nets.runs.job import TRACKING_DEFAULTS, JobFailed, config_hash
from nets.runs.reproduce import PROG, ReproduceError, open_store, prepare, reproduce
from nets.store import read
from nets.store.ids import RunNotFound, resolve_run

_PLAIN_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def hydra_value(v: Any) -> str:
    """A value in Hydra's override grammar."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                 ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        if _PLAIN_WORD.match(v) and v.lower() not in ("null", "true", "false", "inf", "nan"):
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {hydra_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as an override")


def _diff(base: Any, want: Any, prefix: str, out: list[str]) -> None:
    for k, v in want.items():
        key = f"{prefix}{k}"
        if k not in base:
            out.append(f"+{key}={hydra_value(v)}")
        elif isinstance(v, dict) and isinstance(base[k], dict) and v and base[k]:
            _diff(base[k], v, key + ".", out)
        elif base[k] != v or type(base[k]) is not type(v):
            out.append(f"{key}={hydra_value(v)}")
    for k in base:
        if k not in want:
            out.append(f"~{prefix}{k}")


def _compose(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir

    from nets.app import config as appconfig
    from nets.app.schema import register

    register()
    with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return appconfig.to_plain(cfg)


def overrides_for(cfg: Mapping[str, Any]) -> list[str] | None:
    """Overrides of the current ``conf/`` that compose exactly ``cfg``'s core (same
    ``config_hash``), or ``None`` if there are none this simple."""
    core = {k: v for k, v in cfg.items() if k != "tracking"}
    try:
        default = _compose([])
        groups = []
        for g in GROUPS:
            spec = core.get(g)
            name = spec if isinstance(spec, str) else (spec or {}).get("name")
            if isinstance(name, str) and name != (default.get(g) or {}).get("name"):
                groups.append(f"{g}={name}")
        base = _compose(groups) if groups else default
        values: list[str] = []
        _diff({k: v for k, v in base.items() if k != "tracking"}, core, "", values)
        again = _compose(groups + values)
    except Exception:  # noqa: BLE001 - any composition failure means "not expressible"
        return None
    return groups + values if config_hash(again) == config_hash(core) else None


def command_line(cfg: Mapping[str, Any], recorded: list[str], experiment: str | None,
                 warn=None) -> str:
    """``nets-train ...`` recreating the run (see module doc)."""
    overrides = overrides_for(cfg)
    if overrides is None:
        if warn:
            warn("the stored config is not expressible as overrides of the current conf/ "
                 "(it may have changed since the run); printing the recorded overrides")
        overrides = [o for o in recorded if not o.lstrip("+~").startswith("tracking")]
    tr = {**TRACKING_DEFAULTS, **dict(cfg.get("tracking") or {})}
    extra = []
    if experiment and experiment != TRACKING_DEFAULTS["experiment"]:
        extra.append(f"tracking.experiment={hydra_value(experiment)}")
    for k in ("log_weights", "log_plots", "sweep_plots"):
        if tr[k] != TRACKING_DEFAULTS[k]:
            extra.append(f"tracking.{k}={hydra_value(tr[k])}")
    return " ".join(["nets-train", *(shlex.quote(o) for o in overrides + extra)])



def main(argv: list[str] | None = None) -> int:
    logs.quiet()
    p = argparse.ArgumentParser(
        prog=PROG, description="Rerun a recorded nets run from its stored config.yaml and "
        "check that every metric history is identical (exit 0; 1 if not; 2 on a usage or "
        "config problem).")
    p.add_argument("run_id", metavar="RUN", help="the run to reproduce: its id, a unique "
                   "prefix of it (as nets-report prints), or its name if unique")
    p.add_argument("--uri", help="tracking URI or store directory (default: "
                   "$MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    p.add_argument("--experiment", metavar="NAME",
                   help="record the rerun in this experiment (default: the original's)")
    p.add_argument("--print-command", action="store_true",
                   help="only print the nets-train command line that recreates the run")
    args = p.parse_args(argv)
    try:
        uri = open_store(args.uri)
        args.run_id = resolve_run(uri, args.run_id)
        if args.print_command:
            client, run, cfg, overrides = prepare(args.run_id, uri)
            exp = read.get_experiment(client, run.info.experiment_id)
            print(command_line(cfg, overrides, exp.name,
                               warn=lambda t: print(f"{PROG}: note: {t}", file=sys.stderr)))
            return 0
        report = reproduce(args.run_id, uri, args.experiment)
    except (ReproduceError, RunNotFound, read.StoreError) as e:
        print(errors.line(PROG, "error", e), file=sys.stderr)
        return 2
    except JobFailed as e:
        print(f"{PROG}: the rerun failed: {e} (run {e.run_id}: traceback in its error.txt)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (a rerun already started is recorded as KILLED)",
              file=sys.stderr)
        return 130
    if report.identical:
        print(f"identical: run {report.run_id} reproduces run {report.original_run_id} bit for "
              f"bit ({report.n_metrics} metrics, {report.n_points} points)")
        return 0
    print(f"different: run {report.run_id} does not reproduce run {report.original_run_id}: "
          f"first difference in {report.difference.describe()}")
    if report.env_differences:
        print(f"  (environment differs: {'; '.join(report.env_differences)})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
