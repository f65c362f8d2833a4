"""Sweeps from the command line: the ``nets`` launcher's Hydra side, ``nets-sweep``,
``nets-cleanup``.

``launch`` composes every point of a sweep in the launching process and checks it the
way ``nets-train`` checks one run (the whole config is built, data included): one bad
value rejects the whole sweep with one line before anything is recorded. The resolved
configs then go to ``nets.runs.sweep`` as plain data; workers never compose.

``nets-sweep NAME`` runs ``sweeps/NAME.yaml``: a primary config that includes the base
config (``defaults: [config, _self_]``) and sets ``hydra.sweeper.params``; command-line
overrides win over the file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from nets.runs import sweep as sweeps
from nets.app import config as appconfig, logs, precheck
from nets.registry import ConfigError, suggest

SWEEPS_DIR = appconfig.CONF_DIR.parent / "sweeps"


# -- the launcher's Hydra side ------------------------------------------------------------

def settings_of(params: dict[str, Any]) -> sweeps.Settings:
    """``hydra.launcher.*`` -> ``Settings``, checked (one ``ConfigError`` line)."""
    known = sweeps.Settings.__dataclass_fields__
    s = sweeps.Settings(**{k: v for k, v in params.items() if k in known})
    checks = [("n_jobs", s.n_jobs != 0, "must be >= 1, or -1 for one per core"),
              ("blas_threads", s.blas_threads is None or s.blas_threads >= 1,
               "must be >= 1 or null"),
              ("max_retries", s.max_retries >= 0, "must be >= 0"),
              ("grace_seconds", s.grace_seconds >= 0, "must be >= 0"),
              ("timeout", s.timeout is None or s.timeout > 0, "must be > 0 seconds or null")]
    for key, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"hydra.launcher.{key}", getattr(s, key), allowed)
    return s


def plan(config, loader, job_overrides: Sequence[Sequence[str]],
         initial_job_idx: int) -> tuple[list[sweeps.Job], list]:
    """Compose and check every point; ``(jobs, composed configs)``.

    Raises ``ConfigError`` naming the first bad point and its overrides.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    from nets.store import uri as store_uri
    from nets.runs.job import tracking_of
    from nets.train import build_run

    launch_dir = os.getcwd()
    sweep_dir = Path(str(config.hydra.sweep.dir))
    jobs, cfgs, cache = [], [], {}
    try:
        for i, overrides in enumerate(job_overrides):
            idx, overrides = initial_job_idx + i, list(overrides)
            try:
                cfg = loader.load_sweep_config(config, overrides)
                with open_dict(cfg):
                    cfg.hydra.job.num = idx
                    cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
                HydraConfig.instance().set_config(cfg)  # for ${hydra:...} in user configs
                task_cfg = copy.deepcopy(cfg)
                with read_write(task_cfg), open_dict(task_cfg):
                    del task_cfg["hydra"]  # as Hydra hands it to a task function
                plain = appconfig.to_plain(task_cfg)
                tr = tracking_of(plain)
                core = {k: v for k, v in plain.items() if k != "tracking"}
                build_run(core, data=_dataset(core, cache))
                subdir = str(cfg.hydra.sweep.subdir)
            except (HydraException, OmegaConfBaseException, ConfigError) as e:
                err = appconfig.one_line(e, overrides)
                raise ConfigError(err.key, err.value, err.allowed,
                                  f"sweep job {idx}: {' '.join(overrides)}") from None
            uri = store_uri.resolve_uri(tr["uri"], launch_dir) if tr["enabled"] else None
            jobs.append(sweeps.Job(idx, overrides, plain, uri, tr["experiment"] if uri else None,
                                   str(sweep_dir / subdir / "job.log")))
            cfgs.append(task_cfg)
    finally:
        HydraConfig.instance().set_config(config)
    return jobs, cfgs


def _dataset(core: dict, cache: dict):
    """The loaded dataset for a point, shared by points with the same data and seed."""
    from nets.data import DATASETS
    from nets.train import make_rngs

    seed = core.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        return None  # build_run reports it
    spec = core.get("dataset", "digits")
    key = json.dumps([spec, seed], sort_keys=True, default=str)
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = DATASETS.build(spec, key="dataset").load(make_rngs(seed)["data"])
    return cache[key]


def axes_of(job_overrides: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Key -> its values across the sweep (``optimizer.lr: [0.3, 0.1]``)."""
    values: dict[str, list[str]] = {}
    for overrides in job_overrides:
        for o in overrides:
            key, _, val = o.partition("=")
            seen = values.setdefault(key.lstrip("+~"), [])
            if val not in seen:
                seen.append(val)
    return values


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
           parse_settings=None, sweep_cls=None) -> list:
    """``NetsLauncher.launch``: plan every point, then run them (or only list them).

    ``parse_settings`` and ``sweep_cls`` let another backend (``nets.runs.cluster``)
    reuse all of it and change only how jobs are dispatched.
    """
    from hydra.core.utils import JobReturn, JobStatus as HydraStatus

    prog = Path(sys.argv[0]).name or "nets"
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_cls = sweep_cls or sweeps.Sweep

    def reject(e: ConfigError):
        print(f"{prog}: config error: {e}; nothing was run or recorded", file=sys.stderr)
        _remove_if_only_multirun_yaml(sweep_dir)
        raise SystemExit(2) from None

    try:
        settings = (parse_settings or settings_of)(launcher.params)
        jobs, cfgs = plan(launcher.config, launcher.hydra_context.config_loader,
                          job_overrides, initial_job_idx)
    except ConfigError as e:
        reject(e)
    axes = axes_of(job_overrides)
    name = str(launcher.config.hydra.job.config_name or "config")
    if name == "config":
        name = "×".join(k for k, v in axes.items() if len(v) > 1) or "sweep"
    sweep = sweep_cls(jobs, settings, name, axes, sweep_dir)
    if settings.dry_run:
        sweep.dry_run()
        _remove_if_only_multirun_yaml(sweep_dir)
    else:
        try:
            sweep.connect()
        except ConfigError as e:
            reject(e)
        sweep.run()
        if sweep.interrupted:
            raise SystemExit(130)  # no further batches after Ctrl-C
    out = []
    for job, cfg in zip(jobs, cfgs):
        status = sweeps.JobStatus("FINISHED" if job.status == "SKIPPED" else job.status,
                                  run_id=job.run_id, error=job.error, metrics=job.metrics)
        out.append(JobReturn(overrides=list(job.overrides), cfg=cfg, hydra_cfg=None,
                             working_dir=str(Path(job.log_path).parent) if job.log_path else "",
                             task_name=str(launcher.config.hydra.job.name),
                             status=HydraStatus.COMPLETED,
                             _return_value=None if settings.dry_run else status))
    return out


def _remove_if_only_multirun_yaml(sweep_dir: Path) -> None:
    """A dry run or a rejected sweep leaves nothing behind: drop the sweep dir that
    Hydra's sweeper made before launching (it holds only ``multirun.yaml``)."""
    if not sweep_dir.is_dir() or [p.name for p in sweep_dir.iterdir()] != ["multirun.yaml"]:
        return
    (sweep_dir / "multirun.yaml").unlink()
    cwd, d = Path.cwd().resolve(), sweep_dir.resolve()
    while d != cwd and cwd in d.parents and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


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
    extra = (["hydra.launcher.dry_run=true"] if args.dry_run else []) \
        + (["hydra.launcher.resume=true"] if args.resume else []) \
        + ([f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs is not None else [])
    sweeps.COMMAND = ["nets-sweep", *argv]
    sys.argv = ["nets-sweep", "--multirun", "--config-dir", str(path.parent),
                "--config-name", path.stem, *args.overrides, *extra]
    from nets.app.train import main

    main()
    sys.exit(sweeps.EXIT_CODE)


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
        older = sweeps.parse_age(args.older_than) if args.older_than else None
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
    sweeps.cleanup(uri, ids, args.status, args.sweep, older, args.dry_run)
