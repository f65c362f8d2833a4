"""``nets-train`` and the warm recorder it leaves behind (``nets.runs.warm``), as a user
meets them: the next run is recorded by a recorder forked from it, exactly as the first;
a dead or stale server costs a run its speed, never its record; it goes away when idle.

Each test has its own server directory, so the servers it starts are its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, clean_env
from nets.runs import warm

FAST = ["train.epochs=2", "dataset.subsample=150"]
HANG = 180          # seconds: only a hang takes this long


def nets_train(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(BIN / "nets-train"), *FAST, *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def warm_env(tmp_path):
    d = Path(os.environ[warm.DIR_ENV]) / tmp_path.name[-20:]   # short: socket paths
    env = clean_env(**{warm.DIR_ENV: str(d), "NETS_LOG_LEVEL": "DEBUG"})
    try:
        yield env, d
    finally:
        warm.stop_all(d)


def server_pid(d: Path, not_pid: int | None = None) -> int:
    """The pid of the server in ``d`` once it listens (it imports mlflow first)."""
    deadline = time.monotonic() + HANG
    while True:
        socks, pids = list(d.glob("r-*.sock")), list(d.glob("r-*.pid"))
        if socks and pids:
            with_pid = pids[0].read_text().strip()
            if with_pid and int(with_pid) != not_pid:
                return int(with_pid)
        assert time.monotonic() < deadline, f"no warm recorder listening in {d}"
        time.sleep(0.2)


def recorded(cwd: Path) -> list:
    c = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("nets")
    return sorted(c.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)


@pytest.mark.slow   # end to end; the default run stays under 5 minutes
def test_the_next_run_is_recorded_by_the_warm_recorder_exactly_as_the_first(tmp_path, warm_env):
    env, d = warm_env
    first = nets_train(tmp_path, env)
    assert "recorder: a new process" in first.stderr
    pid = server_pid(d)
    second = nets_train(tmp_path, env)
    assert "recorder: forked by the warm recorder" in second.stderr
    assert server_pid(d) == pid                       # the same server, still waiting
    a, b = recorded(tmp_path)
    assert a.info.status == b.info.status == "FINISHED"
    assert a.data.params == b.data.params
    # Same seed, same curves; only the run's own identity differs.
    assert a.data.metrics == b.data.metrics
    same = {"mlflow.runName", "nets.run_id", "nets.started", "nets.pid"}
    assert {k: v for k, v in a.data.tags.items() if k not in same and "time" not in k} == \
           {k: v for k, v in b.data.tags.items() if k not in same and "time" not in k}
    c = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert {f.path for f in c.list_artifacts(a.info.run_id)} == \
           {f.path for f in c.list_artifacts(b.info.run_id)}


@pytest.mark.slow
def test_a_killed_server_costs_speed_not_the_record(tmp_path, warm_env):
    env, d = warm_env
    nets_train(tmp_path, env)
    os.kill(pid := server_pid(d), signal.SIGKILL)     # its socket file stays behind
    assert list(d.glob("r-*.sock"))
    p = nets_train(tmp_path, env)
    assert "recorder: a new process" in p.stderr
    assert [r.info.status for r in recorded(tmp_path)] == ["FINISHED", "FINISHED"]
    server_pid(d, not_pid=pid)                        # and it left a new server behind
    assert "forked by the warm recorder" in nets_train(tmp_path, env).stderr


@pytest.mark.slow
def test_an_idle_server_leaves_and_zero_turns_it_off(tmp_path, warm_env):
    env, d = warm_env
    nets_train(tmp_path, {**env, warm.ENV: "1"})
    pid = server_pid(d)
    deadline = time.monotonic() + HANG
    while _alive(pid):
        assert time.monotonic() < deadline, "the idle warm recorder did not leave"
        time.sleep(0.2)
    assert not list(d.glob("r-*.sock"))               # it cleaned up after itself
    off = d.parent / (d.name + "-off")
    p = nets_train(tmp_path, {**env, warm.ENV: "0", warm.DIR_ENV: str(off)})
    assert "recorder: a new process" in p.stderr
    assert not off.exists()                           # nothing was started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until its parent (the first nets-train, gone) is reaped by init.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
