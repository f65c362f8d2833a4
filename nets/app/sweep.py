"""Sweeps from the command line: ``nets-sweep``, ``nets-cleanup``.

A sweep runs through the ``nets`` Hydra launcher (``hydra_plugins/nets_launcher``),
which checks every point with ``nets.app.train.check`` (the task function's ``check``)
before anything is recorded and runs ``nets.app.train.task`` in its workers.

``nets-sweep NAME`` runs ``sweeps/NAME.yaml``: a primary config that includes the base
config (``defaults: [config, _self_]``) and sets ``hydra.sweeper.params``; command-line
overrides win over the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nets.runs import cleanup as cleanups, console
from nets.app import config as appconfig, logs, precheck
from nets.registry import ConfigError, suggest

SWEEPS_DIR = appconfig.CONF_DIR.parent / "sweeps"


# -- nets-sweep ---------------------------------------------------------------------------

def sweep_names() -> list[str]:
    dirs = [Path.cwd() / "sweeps", SWEEPS_DIR]
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})


def sweep_file(name: str) -> Path:
    """``sweeps/NAME.yaml`` (here, then in the nets checkout), or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if path.is_file():
            return path.resolve()
        raise ConfigError("sweep", name, "no such file")
    for d in (Path.cwd() / "sweeps", SWEEPS_DIR):
        if (d / f"{name}.yaml").is_file():
            return (d / f"{name}.yaml").resolve()
    names = sweep_names()
    raise ConfigError("sweep", name, f"unknown sweep; choose one of: {', '.join(names)}"
                      + suggest(name, names))


def sweep_cli(argv: list[str] | None = None) -> None:
    """``nets-sweep NAME [OVERRIDE ...] [--dry-run] [--resume] [--jobs N]``."""
    logs.quiet()
    p = argparse.ArgumentParser(
        prog="nets-sweep", description="Run a sweep file (sweeps/NAME.yaml) with the nets "
        "launcher. Overrides on the command line win over the file.")
    p.add_argument("name", nargs="?", help="sweep name (sweeps/NAME.yaml) or a YAML path")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.epochs=5 seed=0,1")
    p.add_argument("--dry-run", action="store_true",
                   help="print the job list and count; run and record nothing")
    p.add_argument("--resume", action="store_true",
                   help="skip every config that already has a FINISHED run")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="parallel workers (default: cores)")
    p.add_argument("--list", action="store_true", help="list the sweep files and exit")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_intermixed_args(argv)
    if args.list or not args.name:
        names = sweep_names()
        print("sweeps: " + (", ".join(names) if names else "(none)"))
        if not args.name and not args.list:
            p.print_usage(sys.stderr)
            sys.exit(2)
        return
    try:
        path = sweep_file(args.name)
        appconfig.check_overrides(args.overrides)
        if args.jobs is not None and args.jobs == 0:
            raise ConfigError("--jobs", 0, "must be >= 1, or -1 for one per core")
        # Before Hydra: its parser and composer report these in many lines, and the
        # store would be found unreachable only after minutes of MLflow's retries.
        precheck.check_sweep_file(path)
        plain = precheck.first_point(path, args.overrides)
        if not args.dry_run or args.resume:
            precheck.check_store_of(plain)
    except ConfigError as e:
        print(f"nets-sweep: config error: {e}", file=sys.stderr)
        sys.exit(2)
    if not args.dry_run and (plain.get("tracking") or {}).get("enabled", True):
        # The jobs record through the warm recorder (``nets.runs.warm``): started now, its
        # imports (~3 s) overlap Hydra's composition of every point and the workers'
        # start, instead of holding up the first job.
        from nets.runs import warm

        warm.start()
    extra = (["hydra.launcher.dry_run=true"] if args.dry_run else []) \
        + (["hydra.launcher.resume=true"] if args.resume else []) \
        + ([f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs is not None else [])
    console.COMMAND = ["nets-sweep", *argv]
    sys.argv = ["nets-sweep", "--multirun", "--config-dir", str(path.parent),
                "--config-name", path.stem, *args.overrides, *extra]
    from nets.app.train import main, run_main

    run_main(main)


# -- nets-cleanup -------------------------------------------------------------------------

def cleanup_cli(argv: list[str] | None = None) -> None:
    """``nets-cleanup``: end RUNNING runs that nothing will ever end."""
    logs.quiet()
    p = argparse.ArgumentParser(
        prog="nets-cleanup",
        description="End RUNNING runs left behind by a crash of a sweep launcher or a job. "
        "Default: runs recorded on this host whose process (and launcher) is gone. "
        "With --sweep and/or --older-than: every RUNNING run of that sweep / that old.")
    p.add_argument("--uri", help="tracking URI or store directory (default: "
                   "$MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    p.add_argument("--experiment", help="only this experiment (default: all)")
    p.add_argument("--sweep", metavar="SWEEP_ID", help="every RUNNING run of this sweep id")
    p.add_argument("--older-than", metavar="AGE", help="every RUNNING run started before "
                   "AGE ago: 90s, 30m, 2h, 1d")
    p.add_argument("--status", choices=("KILLED", "FAILED"), default="KILLED",
                   help="status to end them with (default KILLED)")
    p.add_argument("--dry-run", action="store_true", help="print what would change")
    args = p.parse_args(argv)
    from nets.store import connect, uri as store_uri

    uri = store_uri.resolve_uri(args.uri, os.getcwd())
    db = store_uri.sqlite_path(uri)
    if db is not None and not db.exists():
        print(f"nets-cleanup: no MLflow store at {db}", file=sys.stderr)
        sys.exit(2)
    try:
        connect.check(uri, connect.source_of(args.uri, "--uri"))
    except connect.StoreError as e:
        print(f"nets-cleanup: {e}", file=sys.stderr)
        sys.exit(2)
    from nets.store import client as store_client  # mlflow: seconds, once the store answers
    try:
        older = cleanups.parse_age(args.older_than) if args.older_than else None
    except ValueError:
        print(f"nets-cleanup: --older-than {args.older_than!r} is not an age (90s, 30m, 2h, 1d)",
              file=sys.stderr)
        sys.exit(2)
    client = store_client.MlflowClient(uri)
    if args.experiment:
        exp = client.get_experiment_by_name(args.experiment)
        if exp is None:
            print(f"nets-cleanup: no experiment {args.experiment!r} in {uri}", file=sys.stderr)
            sys.exit(2)
        ids = [exp.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    cleanups.cleanup(uri, ids, args.status, args.sweep, older, args.dry_run)
