"""Sweeping a plain Hydra app (its own numpy loop, plain ``mlflow`` calls) with
``hydra/launcher=nets``: MLflow grouping, Hydra's job semantics, and the launcher's
robustness (a raise, a worker death, a timeout, Ctrl-C and resume, a killed launcher,
a dask worker death), each through the real command in a temporary launch directory.

The app is ``tests/apps/plain_app.py``; its ``curves`` function gives the points it
logs, so the histories read back from the store are compared with them exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import plain_app  # noqa: E402

APP = Path(__file__).parent / "apps" / "plain_app.py"
KEYS = ("train/loss", "val/loss", "train/accuracy", "val/accuracy")
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")


def sweep(launch: Path, *overrides: str, popen: bool = False, launcher: str = "nets"):
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    cmd = [sys.executable, str(APP), "-m", f"hydra/launcher={launcher}",
           "hydra.launcher.n_jobs=2", "hydra.sweep.dir=multirun", *overrides]
    if popen:
        return subprocess.Popen(cmd, cwd=launch, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, cwd=launch, env=env, capture_output=True, text=True, timeout=300)


def runs_of(launch: Path, experiment: str = "plain_app"):
    from mlflow.tracking import MlflowClient

    c = MlflowClient("sqlite:///" + str(launch / "mlruns" / "mlflow.db"))
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], max_results=1000) if exp else []
    return (c, [r for r in runs if r.data.tags.get("nets.sweep_role") == "job"],
            [r for r in runs if r.data.tags.get("nets.sweep_role") == "parent"])


@pytest.mark.slow   # end to end; the default run stays under 5 minutes
def test_two_jobs_one_parent_two_finished_children_with_the_apps_points(tmp_path):
    p = sweep(tmp_path, "lr=0.5,2.0")
    assert p.returncode == 0, p.stderr
    c, kids, (parent,) = runs_of(tmp_path)
    assert parent.info.status == "FINISHED" and len(kids) == 2
    for r in kids:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.params["lr"] in ("0.5", "2.0") and r.data.params["my_own_param"] == "hello"
        assert r.data.tags["nets.diagnosis"] != "" or "Diagnosis" in r.data.tags.get(
            "mlflow.note.content", "")
        expected = plain_app.curves(float(r.data.params["lr"]), 5, 0)
        for key in KEYS:
            hist = sorted(c.get_metric_history(r.info.run_id, key), key=lambda m: m.step)
            assert [m.step for m in hist] == list(range(6))
            assert [m.value for m in hist] == [row[key] for row in expected]
        # Hydra's job semantics: per-job output dir with .hydra/ files
        job = r.data.tags["nets.job"]
        hydra_dir = tmp_path / "multirun" / job / ".hydra"
        assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= set(os.listdir(hydra_dir))
    assert "diagnosis" in p.stderr and "2 FINISHED" in p.stderr


@pytest.mark.slow
def test_a_raising_job_fails_alone(tmp_path):
    p = sweep(tmp_path, "mode=ok,raise")
    assert p.returncode == 1
    assert "ValueError: boom in my loop" in p.stderr  # Hydra re-raised the JobReturn's error
    c, kids, (parent,) = runs_of(tmp_path)
    status = {r.data.tags["nets.job"]: r for r in kids}
    assert status["0"].info.status == "FINISHED" and status["1"].info.status == "FAILED"
    assert parent.info.status == "FAILED"
    err = Path(c.download_artifacts(status["1"].info.run_id, "error.txt", str(tmp_path)))
    assert "in task" in err.read_text() and "boom in my loop" in err.read_text()
    # the points logged before the raise are kept
    assert len(c.get_metric_history(status["1"].info.run_id, "train/loss")) == 2
    assert "job 1 [mode=raise] FAILED: ValueError: boom in my loop" in p.stderr


@pytest.mark.slow
def test_worker_death_is_retried_then_failed_and_the_summary_says_why(tmp_path):
    p = sweep(tmp_path, "mode=ok,exit")
    assert p.returncode == 1
    _, kids, _ = runs_of(tmp_path)
    final = Counter((r.data.tags["nets.job"], r.info.status) for r in kids)
    assert final == {("0", "FINISHED"): 1, ("1", "FAILED"): 2}  # attempt 1 and its retry
    assert "RUNNING" not in {r.info.status for r in kids}
    summary = p.stderr[p.stderr.index("retried (1):"):]
    assert "job 1 [mode=exit] attempt 1: worker died (exit code EXIT(3))" in summary


@pytest.mark.slow
def test_timeout_fails_the_job_not_the_sweep(tmp_path):
    # generous: the quick job never reaches it, even on a loaded machine
    p = sweep(tmp_path, "mode=ok,sleep", "pause=10", "hydra.launcher.timeout=20")
    assert p.returncode == 1
    _, kids, _ = runs_of(tmp_path)
    assert {r.data.params["mode"]: r.info.status for r in kids} == {"ok": "FINISHED",
                                                                    "sleep": "FAILED"}
    assert "timed out after 20 s" in p.stderr


def _finished(launch: Path) -> int:
    import sqlite3

    db = launch / "mlruns" / "mlflow.db"
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_then_resume(tmp_path):
    args = ("mode=sleep", "pause=0.3", "seed=range(0,6)")
    proc = sweep(tmp_path, *args, popen=True)
    deadline = time.time() + 120
    while _finished(tmp_path) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted" in err and "hydra.launcher.resume=true" in err
    _, kids, (parent,) = runs_of(tmp_path)
    assert "RUNNING" not in {r.info.status for r in kids} and parent.info.status == "KILLED"
    done = {r.data.tags["nets.job_hash"] for r in kids if r.info.status == "FINISHED"}
    assert 1 <= len(done) < 6
    p = sweep(tmp_path, *args, "hydra.launcher.resume=true")
    assert p.returncode == 0, p.stderr
    _, kids, _ = runs_of(tmp_path)
    finished = Counter(r.data.tags["nets.job_hash"] for r in kids if r.info.status == "FINISHED")
    assert len(finished) == 6 and set(finished.values()) == {1}
    assert f"{len(done)} skipped" in p.stderr


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_the_launcher_takes_its_workers_with_it(tmp_path):
    proc = sweep(tmp_path, "mode=sleep", "pause=1", "epochs=60", "seed=0,1", popen=True)
    deadline = time.time() + 120
    kids: set[int] = set()
    while time.time() < deadline and proc.poll() is None:
        kids = _descendants(proc.pid)
        if len(kids) >= 2 and _finished(tmp_path) == 0 and (tmp_path / "multirun" / "1").exists():
            break
        time.sleep(0.2)
    assert kids, "the sweep started no worker"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    t = time.time()
    while time.time() - t < 20 and any(_alive(k) for k in kids):
        time.sleep(0.2)
    left = [k for k in kids if _alive(k)]
    assert not left, f"still alive {time.time() - t:.0f} s after kill -9: {left}"


@pytest.mark.slow
def test_dask_worker_death_fails_that_job_only(tmp_path):
    pytest.importorskip("distributed")
    p = sweep(tmp_path, "mode=ok,exit", "hydra.launcher.max_retries=0", launcher="nets_dask")
    assert p.returncode == 1, p.stderr
    _, kids, (parent,) = runs_of(tmp_path)
    status = {r.data.tags["nets.job"]: r.info.status for r in kids}
    assert status == {"0": "FINISHED", "1": "FAILED"}
    assert parent.data.tags["nets.launcher"] == "nets_dask"
    assert "worker died" in p.stderr
