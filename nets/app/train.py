"""``nets-train``: the Hydra app. ``train(cfg)`` does the work; ``main`` wraps it.

Composition, strict checking and store preparation happen here, in the launching
process; the job itself (``nets.runs.job.run_job``) only sees plain data.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from nets.app import config as appconfig, logs
from nets.app.schema import register
from nets.runs.job import JobFailed, JobSpec, JobStatus, run_job, tracking_of
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


def train(cfg: DictConfig, overrides: list[str] | None = None) -> JobStatus:
    """Check the composed config, prepare the store, run and record one job."""
    from nets.train import build_run

    plain = appconfig.to_plain(cfg)
    # Build once before recording anything: every bad value, missing file or senseless
    # combination is reported while the store is still untouched.
    build_run({k: v for k, v in plain.items() if k != "tracking"})
    tracking_of(plain)
    uri, exp_id = prepare(plain, os.getcwd())
    return run_job(JobSpec(plain, uri, exp_id, overrides=list(overrides or [])))


@hydra.main(version_base="1.3", config_path=str(appconfig.CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
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
    main()
    # A multirun by the nets launcher prints every failure and a summary itself and
    # reports the outcome here, so Hydra never re-raises only the first failure.
    sweeps = sys.modules.get("nets.runs.sweep")
    if sweeps is not None and sweeps.EXIT_CODE:
        sys.exit(sweeps.EXIT_CODE)


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
