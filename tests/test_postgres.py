"""A lab's shared set-up, for real: PostgreSQL, an ``mlflow server`` on it, a dask
scheduler and two workers, all started by the test on 127.0.0.1 and torn down by it.

A sweep whose worker is killed in the middle of a job ends with exactly one FINISHED run
per config; then ``nets-report``, ``nets-reproduce`` and ``nets-cleanup`` work against
that server. PostgreSQL comes from the distribution (``.ci/run`` installs it); the test
skips, saying why, where its binaries or psycopg are missing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("psycopg", reason="psycopg 3 is missing: pip install -e '.[test]'")

from _services import clean_env, postgres_bin, wait_for  # noqa: E402

pytestmark = pytest.mark.slow  # the end-to-end tier: `pytest -m slow`

if postgres_bin() is None:
    pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin: apt-get install "
                "postgresql, or set NETS_PG_BIN)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
# [project.scripts] of pyproject.toml: name = "module:function"
SCRIPTS = dict(re.findall(r'^(nets-[a-z-]+) = "([\w.:]+)"$',
                          (ROOT / "pyproject.toml").read_text(), flags=re.M))
TINY = ["dataset=blobs", "dataset.n_samples=60", "tracking.progress=off",
        "tracking.log_weights=false"]
LONG_EPOCHS = 200          # the job whose worker is killed: long enough to be caught running


def command(name: str, *args: str, cwd: Path, timeout: float = 120,
            **kw) -> subprocess.CompletedProcess:
    """Run console script ``name`` as pyproject.toml declares it (this checkout's code)."""
    module, func = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; sys.exit({func}())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def start_sweep(address: str, uri: str, launch: Path) -> subprocess.Popen:
    module, func = SCRIPTS["nets-train"].split(":")
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    launch.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", code, "-m", "hydra/launcher=nets_dask",
         f"hydra.launcher.address={address}", "hydra.launcher.max_retries=1",
         f"tracking.uri={uri}", *TINY, f"train.epochs=3,4,{LONG_EPOCHS}"],
        cwd=launch, env=clean_env(), stdout=subprocess.DEVNULL,
        stderr=open(launch / "stderr.log", "w"), text=True, start_new_session=True)


def test_sweep_report_reproduce_cleanup_on_postgres(services, tmp_path):
    from distributed import Client
    from mlflow.tracking import MlflowClient

    t0 = time.monotonic()
    backend = services.postgres()
    uri = services.mlflow_server(backend, tmp_path / "artifacts")
    address = services.dask(workers=2)       # starts while the server migrates its schema
    services.wait_healthy(uri)
    with Client(address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
    started = time.monotonic() - t0

    # -- a sweep on the cluster; the worker of the long job is killed mid-job ------------
    launch = tmp_path / "launch"
    sweep = start_sweep(address, uri, launch)
    client = MlflowClient(uri)
    victim = []

    def long_job_running() -> bool:
        exp = client.get_experiment_by_name("nets")
        if exp is None:
            return False
        runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING' and "
                                  "tags.`nets.job` = '2' and tags.`nets.attempt` = '1'")
        if runs and client.get_metric_history(runs[0].info.run_id, "curves/loss_train"):
            victim.append(runs[0])
            return True
        return False

    try:
        wait_for(long_job_running, 90, "the long job to log an epoch", [sweep])
        os.kill(int(victim[0].data.tags["nets.pid"]), signal.SIGKILL)
        sweep.wait(timeout=180)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    swept = time.monotonic() - t0 - started
    err = (launch / "stderr.log").read_text()
    assert sweep.returncode == 0, err[-3000:]
    exp_id = client.get_experiment_by_name("nets").experiment_id
    runs = client.search_runs([exp_id], "", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nets.sweep_role") == "parent"]
    jobs = [r for r in runs if r.data.tags.get("nets.sweep_role") == "job"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = Counter(r.data.tags["nets.config_hash"] for r in jobs
                       if r.info.status == "FINISHED")
    assert len(finished) == 3 and set(finished.values()) == {1}, finished  # one per config
    lost = next(r for r in jobs if r.info.run_id == victim[0].info.run_id)
    assert lost.info.status == "FAILED" and "worker died" in lost.data.tags["nets.error"]
    assert not [r for r in jobs if r.info.status == "RUNNING"]
    retried = [r for r in jobs if r.data.tags["nets.job"] == "2" and r.info.status == "FINISHED"]
    assert retried[0].data.tags["nets.attempt"] == "2"

    # -- nets-report over the server: one row per config, logged to the parent -----------
    parent = parents[0].info.run_id
    rep = command("nets-report", parent, "--uri", uri, "--out", str(tmp_path / "report"),
                  "--by", "run", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "3 runs (3 FINISHED)" in rep.stdout and "1 earlier attempt(s)" in rep.stdout
    csv_rows = (tmp_path / "report" / "report.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 3
    assert {a.path for a in client.list_artifacts(parent)} >= {"report.html", "report.csv",
                                                               "report.png"}

    reported = time.monotonic() - t0 - started - swept

    # -- nets-reproduce of a run recorded on the cluster ----------------------------------
    short = next(r for r in jobs if r.info.status == "FINISHED"
                 and r.data.tags["nets.job"] == "0")
    rep = command("nets-reproduce", short.info.run_id, "--uri", uri, cwd=tmp_path, timeout=180)
    assert rep.returncode == 0, rep.stderr
    assert "\nidentical: run " in "\n" + rep.stdout, rep.stdout

    # -- nets-cleanup: a run whose process died unnoticed is ended ------------------------
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = client.create_run(exp_id, run_name="orphan", tags={
        "nets.host": socket.gethostname(), "nets.pid": str(dead.pid)}).info.run_id
    dry = command("nets-cleanup", "--uri", uri, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and orphan in dry.stdout and "would change 1 run" in dry.stdout
    assert client.get_run(orphan).info.status == "RUNNING"
    done = command("nets-cleanup", "--uri", uri, cwd=tmp_path)
    assert done.returncode == 0 and "changed 1 run" in done.stdout, done.stdout + done.stderr
    assert client.get_run(orphan).info.status == "KILLED"
    print(f"\nservices up in {started:.1f} s, sweep {swept:.1f} s, report {reported:.1f} s; "
          f"whole test {time.monotonic() - t0:.1f} s")
