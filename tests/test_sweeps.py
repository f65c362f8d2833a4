"""Sweeps with the ``nets`` launcher: ``nets-train -m``, ``nets-sweep``, ``nets-cleanup``.

End to end, as subprocesses, each in its own temporary launch directory (so the store
is ``<launch dir>/mlruns/mlflow.db``), then the store is read back with ``MlflowClient``.
Jobs are tiny (60 blobs, 3 epochs) except where a job must last long enough to be
interrupted. Crashes are injected by a Hydra job callback that lives in the tests
(``tests/crash_callback.py``, put on the path only here).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from nets.runs import cleanup as cleanups, console, settings as sweeps

BIN = Path(sys.executable).parent
TINY = ["dataset=blobs", "dataset.n_samples=60", "train.epochs=3", "tracking.progress=off"]
EPOCH_METRICS = ("curves/loss_train", "curves/accuracy_train", "curves/loss_val",
                 "curves/accuracy_val", "curves/lr")  # as logged (nets.store.tags.logged_key)
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "NETS_TEST_CRASH")
TESTS = Path(__file__).parent
CRASH = "+hydra.callbacks.crash._target_=crash_callback.Crash"


# -- helpers -------------------------------------------------------------------------------

def env(**extra: str) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    e.update(extra)
    return e


def run(cwd: Path, exe: str, *args: str, timeout: float = 240, **extra_env: str):
    return subprocess.run([str(BIN / exe), *args], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def ok(p: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert p.returncode == code, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def store(launch: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient("sqlite:///" + str(launch / "mlruns" / "mlflow.db"))


def runs_of(launch: Path) -> tuple[list, list]:
    """``(child runs, parent runs)`` of experiment ``nets``."""
    c = store(launch)
    exp = c.get_experiment_by_name("nets")
    runs = c.search_runs([exp.experiment_id], max_results=1000) if exp else []
    kids = [r for r in runs if r.data.tags.get("nets.sweep_role") == "job"]
    parents = [r for r in runs if r.data.tags.get("nets.sweep_role") == "parent"]
    return kids, parents


def no_lock_errors(p: subprocess.CompletedProcess) -> None:
    text = (p.stdout + p.stderr).lower()
    assert "database is locked" not in text and "operationalerror" not in text, p.stderr


# -- planning: nothing runs ----------------------------------------------------------------

def test_workers_times_blas_threads_fit_the_cores():
    n = sweeps.cores()
    for n_jobs in (-1, 1, 2, 8):
        w, t = sweeps.workers_for(sweeps.Settings(n_jobs=n_jobs), 16)
        assert w == (n if n_jobs == -1 else n_jobs) and t == max(1, n // w)
        assert w == 1 or w * t <= max(n, w)
    assert sweeps.workers_for(sweeps.Settings(n_jobs=8), 3)[0] == 3  # never more than jobs
    assert sweeps.workers_for(sweeps.Settings(n_jobs=2, blas_threads=3), 4) == (2, 3)
    # jobs recording through recorder processes leave them a core while cores are free
    for n_jobs in (1, 2, 8):
        w, t = sweeps.workers_for(sweeps.Settings(n_jobs=n_jobs), 16, recorders=True)
        assert t == (max(1, (n - 1) // w) if w < n else max(1, n // w))
        assert w * t + 1 <= n or t == 1


def test_resume_hint_and_ages(monkeypatch):
    monkeypatch.setattr(console, "COMMAND", ["nets-sweep", "example", "seed=1"])
    assert console.resume_command() == "nets-sweep example seed=1 --resume"
    monkeypatch.setattr(console, "COMMAND", ["/x/bin/nets-train", "-m", "seed=range(0,3)"])
    assert console.resume_command() == "nets-train -m 'seed=range(0,3)' hydra.launcher.resume=true"
    assert [cleanups.parse_age(a) for a in ("90s", "30m", "2h", "1d", "5")] == [90, 1800, 7200,
                                                                            86400, 5]


def test_status_line_counts_killed_apart_and_its_eta_counts_down():
    counts = {"FINISHED": 2, "SKIPPED": 0, "FAILED": 1, "KILLED": 1, "PENDING": 2}
    # two jobs left, one running; finished jobs took 4 s each; one worker
    early = console.status_text(counts, 1, 0, 10.0, [1.0], [4.0, 4.0], 1, False)
    later = console.status_text(counts, 1, 0, 12.0, [3.0], [4.0, 4.0], 1, False)
    assert "2 done, 1 running, 1 failed, 1 killed, 2 left" in early
    assert early.endswith("ETA 0:11") and later.endswith("ETA 0:09")
    stopping = console.status_text(counts, 1, 0, 12.0, [3.0], [4.0, 4.0], 1, True)
    assert stopping.endswith("ETA ?")


def test_dry_run_lists_jobs_and_records_nothing(tmp_path):
    p = ok(run(tmp_path, "nets-sweep", "example", "--dry-run"))
    lines = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("#")]
    assert len(lines) == 9 and p.stdout.strip().endswith("9 jobs")
    assert "#0  optimizer.lr=0.3 model.activation=sigmoid" in p.stdout
    assert sorted(os.listdir(tmp_path)) == []  # no store, no multirun dir


@pytest.mark.parametrize("name", sorted(p.stem for p in
                                         (Path(__file__).parents[1] / "sweeps").glob("*.yaml")))
def test_every_sweep_file_composes(name, tmp_path):
    """Every point of every sweep file composes and builds (a dry run checks them all)."""
    p = ok(run(tmp_path, "nets-sweep", name, "--dry-run"))
    assert "jobs" in p.stdout.splitlines()[-1]


def test_one_bad_point_rejects_the_sweep_with_one_line(tmp_path):
    p = run(tmp_path, "nets-train", "-m", "optimizer.lr=0.1,-1,abc", *TINY)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1 and "optimizer.lr" in line and "sweep job 1" in line
    assert "nothing was run or recorded" in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "multirun").exists()


# -- running -----------------------------------------------------------------------------

@pytest.mark.slow
def test_sixteen_jobs_eight_workers_fresh_store_repeated(tmp_path):
    """The schema race that broke fresh SQLite stores (research §A1) cannot happen."""
    for round_ in range(2):
        launch = tmp_path / f"round{round_}"
        launch.mkdir()
        p = ok(run(launch, "nets-train", "-m", "hydra.launcher.n_jobs=8", "seed=range(0,16)",
                   *TINY))
        no_lock_errors(p)
        kids, parents = runs_of(launch)
        assert len(kids) == 16 and len(parents) == 1
        assert {r.info.status for r in kids} == {"FINISHED"}
        assert sorted(int(r.data.params["seed"]) for r in kids) == list(range(16))
        parent = parents[0]
        assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/finished"] == 16
        assert parent.data.params["sweep.seed"] == ",".join(map(str, range(16)))
        c = store(launch)
        for r in kids:
            t = r.data.tags
            assert t["mlflow.parentRunId"] == parent.info.run_id
            assert t["nets.sweep_id"] == parent.data.tags["nets.sweep_id"]
            assert t["nets.attempt"] == "1" and t["nets.host"] == socket.gethostname()
            assert t["nets.n_jobs"] == "8" and t["nets.blas_threads_limit"] == "1"
            for key in EPOCH_METRICS:
                assert [m.step for m in c.get_metric_history(r.info.run_id, key)] == [0, 1, 2, 3]
        assert len({r.data.tags["nets.pid"] for r in kids}) > 1  # really in parallel


@pytest.mark.slow
def test_crashing_jobs_fail_alone_and_are_all_reported(tmp_path):
    crash = "1:raise,2:exit,3:sigkill,4:sys_exit,5:unpicklable"
    p = run(tmp_path, "nets-train", "-m", "hydra.launcher.n_jobs=2", "seed=range(0,8)", *TINY,
            CRASH, NETS_TEST_CRASH=crash,
            PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    ok(p, 1)
    kids, (parent,) = runs_of(tmp_path)
    final = {}
    for r in sorted(kids, key=lambda r: int(r.data.tags["nets.attempt"])):
        final[int(r.data.tags["nets.job"])] = r.info.status
    assert final == {0: "FINISHED", 1: "FAILED", 2: "FAILED", 3: "FAILED", 4: "FAILED",
                     5: "FAILED", 6: "FINISHED", 7: "FINISHED"}
    assert "RUNNING" not in {r.info.status for r in kids}
    attempts = Counter(int(r.data.tags["nets.job"]) for r in kids)
    assert attempts[2] == attempts[3] == 2  # a job whose worker died is retried once
    assert attempts[1] == attempts[4] == attempts[5] == 1
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["sweep/finished"] == 3 and parent.data.metrics["sweep/failed"] == 5
    summary = p.stderr[p.stderr.index("failed or killed:"):]
    for job, why in ((1, "RuntimeError: test crash in job 1"),
                     (2, "worker died (exit code EXIT(3))"),
                     (3, "worker died (exit code SIGKILL(-9))"), (4, "SystemExit: 2"),
                     (5, "Unpicklable: test crash in job 5")):
        assert f"job {job} [seed={job}] FAILED: {why}" in summary
    # Failures are printed when they happen, not only in the summary.
    assert p.stderr.index("job 1 FAILED") < p.stderr.index("failed or killed:")
    # The full traceback, with the frame that raised, is in the job log and on the run.
    log = next(tmp_path.glob("multirun/*/*/1/job.log")).read_text()
    assert "in crashing" in log and "RuntimeError: test crash in job 1" in log
    raised = next(r for r in kids if r.data.tags["nets.job"] == "1")
    error = store(tmp_path).download_artifacts(raised.info.run_id, "error.txt", str(tmp_path))
    assert "in crashing" in Path(error).read_text()
    assert "worker died" in next(tmp_path.glob("multirun/*/*/2/job.log")).read_text()


@pytest.mark.slow
def test_timeout_fails_the_job_not_the_sweep(tmp_path):
    # The limit is generous: a 3-epoch job must never reach it, even on a loaded machine.
    p = run(tmp_path, "nets-train", "-m", "hydra.launcher.n_jobs=2", "hydra.launcher.timeout=20",
            "train.epochs=3,100000", "dataset=blobs", "dataset.n_samples=60",
            "tracking.progress=off", "tracking.log_plots=false")
    ok(p, 1)
    kids, _ = runs_of(tmp_path)
    status = {r.data.params["train.epochs"]: r.info.status for r in kids}
    assert status == {"3": "FINISHED", "100000": "FAILED"}
    assert "timed out after 20 s" in p.stderr


def _finished_in_store(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_one_finished_run_per_config(tmp_path):
    args = ["-m", "hydra.launcher.n_jobs=2", "seed=range(0,8)", "train.epochs=300",
            "tracking.progress=off", "tracking.log_plots=false"]
    proc = subprocess.Popen([str(BIN / "nets-train"), *args], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # a background process from a non-interactive shell ignores SIGINT
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = tmp_path / "mlruns" / "mlflow.db"
    deadline = time.time() + 120
    while _finished_in_store(db) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "hydra.launcher.resume=true" in err
    kids, (parent,) = runs_of(tmp_path)
    assert "RUNNING" not in {r.info.status for r in kids}
    assert parent.info.status == "KILLED"
    done_before = {r.data.tags["nets.config_hash"] for r in kids if r.info.status == "FINISHED"}
    assert 1 <= len(done_before) < 8

    p = ok(run(tmp_path, "nets-train", *args, "hydra.launcher.resume=true"))
    kids, parents = runs_of(tmp_path)
    finished = Counter(r.data.tags["nets.config_hash"] for r in kids if r.info.status == "FINISHED")
    assert len(finished) == 8 and set(finished.values()) == {1}
    assert "RUNNING" not in {r.info.status for r in kids}
    new = next(r for r in parents if r.info.run_id != parent.info.run_id)
    assert new.data.tags["nets.resumes"] == parent.info.run_id and new.info.status == "FINISHED"
    assert new.data.metrics["sweep/skipped"] == len(done_before)
    assert f"{len(done_before)} skipped" in p.stderr


@pytest.mark.slow
def test_sweep_file_with_overrides_on_top(tmp_path):
    # The file sweeps lr (3) x activation (3) for 10 epochs; the command line replaces
    # the lr axis, narrows the activations and the epochs.
    p = ok(run(tmp_path, "nets-sweep", "example", "optimizer.lr=0.5", "model.activation=tanh,relu",
               *TINY, "--jobs", "2"))
    kids, (parent,) = runs_of(tmp_path)
    got = sorted((r.data.params["optimizer.lr"], r.data.params["model.activation"],
                  r.data.params["train.epochs"]) for r in kids)
    assert got == [("0.5", "relu", "3"), ("0.5", "tanh", "3")]
    assert parent.data.tags["nets.sweep_name"] == "example" and parent.info.status == "FINISHED"
    assert "2 FINISHED" in p.stderr


def test_cleanup_ends_runs_whose_process_is_gone(tmp_path, capsys):
    from nets.store import uri as store_uri, client as store_client, write as store_write
    from nets.app.sweep import cleanup_cli

    uri = store_uri.default_uri(tmp_path)
    exp = store_client.prepare_store(uri, "nets")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    orphan = store_write.RunRecorder(uri, exp, "orphan", {"nets.host": host, "nets.pid": dead.pid})
    alive = store_write.RunRecorder(uri, exp, "alive", {"nets.host": host, "nets.pid": os.getpid()})
    swept = store_write.RunRecorder(uri, exp, "swept", {"nets.host": host, "nets.pid": os.getpid(),
                                                     "nets.sweep_id": "s1"})
    cleanup_cli(["--uri", uri])
    out = capsys.readouterr().out
    c = store(tmp_path)
    assert c.get_run(orphan.run_id).info.status == "KILLED" and orphan.run_id in out
    assert c.get_run(alive.run_id).info.status == "RUNNING"
    assert "changed 1 run" in out
    cleanup_cli(["--uri", uri, "--sweep", "s1", "--status", "FAILED"])
    assert c.get_run(swept.run_id).info.status == "FAILED"
    assert c.get_run(alive.run_id).info.status == "RUNNING"
