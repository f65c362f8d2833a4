"""``nets-train``: the Hydra app. ``train(cfg)`` does the work; ``main`` wraps it.

Composition, strict checking and store preparation happen here, in the launching
process; the job itself (``nets.runs.job.run_job``) only sees plain data.
"""

from __future__ import annotations

import json
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from nets.app import config as appconfig, logs
from nets.app.schema import register
from nets.runs.job import JobFailed, JobSpec, JobStatus, RunConfig, in_sweep, run_job, tracking_of
from nets.registry import ConfigError
from nets.text import one_line

register()


def help_groups(conf_dir=appconfig.CONF_DIR) -> str:
    """``group: option, ...`` lines for ``--help``: the user's groups under ``conf/``.

    Hydra's ``$APP_CONFIG_GROUPS`` would also list the typed ``nets_schema/*`` groups
    the YAML files extend, which are no user's choice.
    """
    groups = sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra")
    return "\n".join(f"{g}: {', '.join(appconfig.options(g, conf_dir))}" for g in groups)


if not OmegaConf.has_resolver("nets_help_groups"):
    OmegaConf.register_new_resolver("nets_help_groups", lambda: help_groups())


def prepare(plain: dict, launch_dir: str) -> tuple[str | None, str | None]:
    """Resolve the tracking URI and prepare the store once; ``(uri, experiment_id)``."""
    tr = tracking_of(plain)
    if not tr["enabled"]:
        return None, None
    from nets.store import connect, uri as store_uri

    uri = store_uri.resolve_uri(tr["uri"], launch_dir)
    connect.check(uri, connect.source_of(tr["uri"]))  # seconds, not MLflow's minutes of retries
    from nets.store import client as store_client

    return uri, store_client.prepare_store(uri, tr["experiment"])


_DATA_CACHE: dict = {}


def dataset_for(core: dict):
    """The loaded dataset of a config's (dataset, seed), kept for the next config with
    the same pair in this process (a sweep's launcher checking every point, a worker
    running one job after another); ``None`` if the seed is bad (``build_run`` says so).
    """
    from nets.data import DATASETS
    from nets.train import make_rngs

    seed, spec = core.get("seed", 0), core.get("dataset", "digits")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        return None
    key = json.dumps([spec, seed], sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = DATASETS.build(spec, key="dataset").load(make_rngs(seed)["data"])
    return _DATA_CACHE[key]


def check(cfg: DictConfig) -> dict:
    """The strict check of one config, before anything is recorded; the plain config.

    The whole run is built (data loaded, model built): every bad value, missing file or
    senseless combination is reported while the store is still untouched. A sweep's
    launcher calls this for every point (``task.check``); datasets are loaded once per
    (dataset, seed) for the whole check (``dataset_for``).
    """
    from nets.train import build_run

    plain = appconfig.to_plain(cfg)
    core = RunConfig.of(plain).core
    build_run(core, data=dataset_for(core))
    _CHECKED[:] = [cfg, plain]
    return plain


_CHECKED: list = []  # [cfg, plain] of the last check: the launcher asks tracking() next


def _plain_of(cfg: DictConfig) -> dict:
    return _CHECKED[1] if _CHECKED and _CHECKED[0] is cfg else appconfig.to_plain(cfg)


def train(cfg: DictConfig, overrides: list[str] | None = None) -> JobStatus:
    """Check the composed config, prepare the store, run and record one job.

    Inside a sweep of the ``nets`` launcher the job's run is already open (its worker
    opened it, through a recorder process or as MLflow's active run): the job records
    into it instead of opening its own.
    """
    plain = appconfig.to_plain(cfg)
    job = in_sweep(plain, overrides)
    if job is not None:  # in a sweep: the launcher checked every point already
        spec, rec = job
        return run_job(spec, data=dataset_for(RunConfig.of(plain).core), recorder=rec)
    from nets.app import start

    plain = check(cfg)   # the strict check, as a sweep's launcher does for every point
    writer, tr = start.take_writer(), tracking_of(plain)
    if writer is not None and tr["enabled"]:
        # The recorder process prepares the store and writes the run beside the
        # training; here only the quick reachability check (no mlflow import).
        from nets.store import connect, uri as store_uri

        uri = store_uri.resolve_uri(tr["uri"], os.getcwd())
        try:
            connect.check(uri, connect.source_of(tr["uri"]))
        except BaseException:
            writer.close()
            raise
        return run_job(JobSpec(plain, uri, None, overrides=list(overrides or [])),
                       recorder=writer)
    if writer is not None:
        writer.close()
    uri, exp_id = prepare(plain, os.getcwd())
    return run_job(JobSpec(plain, uri, exp_id, overrides=list(overrides or [])))


def task(cfg: DictConfig) -> JobStatus:
    """The task function: one run alone (``nets-train``), or one job of a sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN:
        return train(cfg, overrides)  # the launcher records and reports failures
    try:
        status = train(cfg, overrides)
    except ConfigError as e:
        _fail(f"config error: {e}", 2)
    except JobFailed as e:
        _fail(f"run failed: {e} (run {e.run_id}: traceback in its error.txt)", 1)
    except KeyboardInterrupt:
        # The job already ended its run KILLED; no traceback for a deliberate Ctrl-C.
        _fail("interrupted: the run was recorded as KILLED", 130)
    if status.run_id:
        print(f"run {status.run_id} {status.status} ({status.outcome})", file=sys.stderr)
    return status


def tracking(cfg: DictConfig) -> dict:
    """Where the launcher records this config's job: its ``tracking`` section."""
    tr = RunConfig.of(_plain_of(cfg)).tracking
    return {"tracking": tr.enabled, "uri": tr.uri, "experiment": tr.experiment}


task.check = check          # the launcher's strict check of every point
task.tracking = tracking    # and where it records each one
task.nets_recorder = True   # records through the recorder its worker hands it
main = hydra.main(version_base="1.3", config_path=str(appconfig.CONF_DIR),
                  config_name="config")(task)


def _fail(line: str, code: int) -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise
    print(f"nets-train: {one_line(line)}", file=sys.stderr)
    sys.exit(code)


# Hydra flags whose following words are not overrides of nets' config.
HYDRA_ONLY_FLAGS = ("--shell-completion", "-sc", "--hydra-help")
SCHEMA_GROUP = "nets_schema"  # typed groups behind conf/ (nets.app.schema): hidden from users


def cli() -> None:
    """Console entry: one-line errors for bad overrides before Hydra composes anything."""
    logs.quiet()
    if any(a in HYDRA_ONLY_FLAGS or a.startswith("--shell-completion=") for a in sys.argv[1:]):
        # Their arguments (install=bash, query=bash) are no config overrides.
        if not any(a.startswith("query=") for a in sys.argv[1:]):
            main()
            return
        import contextlib
        import io

        words = io.StringIO()
        with contextlib.redirect_stdout(words):
            main()
        print(" ".join(w for w in words.getvalue().split() if not w.startswith(SCHEMA_GROUP)))
        return
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    try:
        appconfig.check_overrides(args)
        _compose_check(sys.argv[1:])
    except ConfigError as e:
        print(f"nets-train: config error: {e}", file=sys.stderr)
        sys.exit(2)
    run_main(main)


class _WithoutHydraHint:
    """stderr minus Hydra's "Set the environment variable HYDRA_FULL_ERROR=1" line: nets'
    errors are one line (``HYDRA_FULL_ERROR=1`` still gives the whole trace)."""

    HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.strip() == self.HINT else self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def run_main(entry) -> None:
    """Run a Hydra entry point; exit with the sweep's own code (see below)."""
    stderr, sys.stderr = sys.stderr, _WithoutHydraHint(sys.stderr)
    try:
        entry()
    except SystemExit as e:
        if e.code not in (0, None):
            exit_with_sweep_code(int(e.code) if isinstance(e.code, int) else 1)
        raise
    finally:
        sys.stderr = stderr
    exit_with_sweep_code(0)


def exit_with_sweep_code(code: int) -> None:
    """A multirun by the nets launcher prints every failure and a summary itself; Hydra
    then exits 1 on the first failure. Exit with the sweep's own code instead (2: the
    sweep was rejected before anything ran; 130: interrupted)."""
    sweeps = sys.modules.get("nets.runs.sweep")
    if sweeps is not None and sweeps.EXIT_CODE:
        sys.exit(sweeps.EXIT_CODE)
    if code:
        sys.exit(code)


def _compose_check(argv: list[str]) -> None:
    """Compose once with the overrides so type errors surface as one line."""
    if "-m" in argv or "--multirun" in argv:
        from nets.app import precheck

        precheck.precheck_argv(argv)  # as nets-sweep: the file, the first point, the store
        return
    if any(a in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--info", "-i",
                 "--cfg", "-c", "--shell-completion", "-sc") or a.startswith("--config")
           for a in argv):
        return  # Hydra handles these itself; sweeps are validated point by point
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in argv if not a.startswith("-")]
    try:
        with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise appconfig.one_line(e, overrides) from None
    from nets.app import precheck

    precheck.check_store_of(appconfig.to_plain(cfg))  # before Hydra makes its output dir
