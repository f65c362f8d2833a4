"""The first-day frictions of issue 20, as a user meets them on the command line.

``nets-train --help`` and shell completion, short run ids in ``nets-reproduce`` and
``nets-report``, and ``nets-ui``'s port and process handling. Everything runs as a real
subprocess on a real SQLite store under ``tmp_path``, on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "DISPLAY", "WAYLAND_DISPLAY")
HANG = 240  # seconds: a generous bound for a hang, never a speed requirement


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in DROP_ENV}


def run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=cwd, env=kw.pop("env", env()),
                          capture_output=True, text=True, timeout=HANG, **kw)


# -- nets-train --help and shell completion (items 5 and 7) ----------------------------

def test_help_has_nets_header_and_no_schema_groups(tmp_path):
    p = run(["nets-train", "--help"], tmp_path)
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith("nets-train: train one numpy network"), first
    assert "powered by Hydra" not in p.stdout
    assert "nets_schema" not in p.stdout
    groups = dict(ln.split(": ", 1) for ln in p.stdout.split("== Config groups")[1]
                  .split("== Config ")[0].splitlines()[1:] if ": " in ln)
    assert groups["optimizer"].split(", ") == ["adam", "momentum", "nesterov", "rmsprop", "sgd"]
    assert "bold_driver" in groups["schedule"]
    assert "lr: " in p.stdout  # the composed config follows, so every key can be looked up


def test_shell_completion_installs_and_completes(tmp_path):
    p = run(["nets-train", "--shell-completion", "install=bash"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "complete -o nospace -o default -F hydra_bash_completion nets-train" in p.stdout
    line = "nets-train optimizer="
    p = run(["nets-train", "-sc", "query=bash"], tmp_path,
            env={**env(), "COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == [f"optimizer={o}" for o in
                                        ("adam", "momentum", "nesterov", "rmsprop", "sgd")]
    line = "nets-train "
    p = run(["nets-train", "-sc", "query=bash"], tmp_path,
            env={**env(), "COMP_LINE": line, "COMP_POINT": str(len(line))})
    words = p.stdout.split()
    assert "optimizer=" in words and "train." in words
    assert not [w for w in words if "nets_schema" in w]


# -- short run ids (item 6) ------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One real ``nets-train`` run (for nets-reproduce) in a store of its own."""
    launch = tmp_path_factory.mktemp("ids")
    p = run(["nets-train", "train.epochs=1", "tracking.log_plots=false",
             "tracking.log_weights=false", "diagnostics.enabled=false"], launch)
    assert p.returncode == 0, p.stderr
    run_id = re.search(r"run ([0-9a-f]{32}) FINISHED", p.stderr).group(1)
    return {"launch": launch, "uri": "sqlite:///" + str(launch / "mlruns" / "mlflow.db"),
            "run_id": run_id}


def make_runs(uri: str, ids_and_names: list[tuple[str, str]]) -> None:
    """Runs with chosen ids, written the way MLflow's SQL store keeps them."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment(f"fixtures-{len(ids_and_names)}-{time.time_ns()}")
    db = uri[len("sqlite:///"):]
    for rid, name in ids_and_names:
        made = client.create_run(exp, run_name=name).info.run_id
        with sqlite3.connect(db) as con:  # give the run the id the test needs
            for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
                con.execute(f"UPDATE {table} SET run_uuid = ? WHERE run_uuid = ?", (rid, made))


def test_resolve_run_by_prefix_name_and_ambiguity(store):
    from nets.store.ids import RunNotFound, resolve_run

    uri = store["uri"]
    a, b = "4d2fc23b" + "0" * 24, "4d2fa000" + "1" * 24
    make_runs(uri, [(a, "sweep story4 (mnist)"), (b, "twin"), ("9" * 32, "twin")])
    assert resolve_run(uri, "4d2fc23b") == a
    assert resolve_run(uri, a) == a
    assert resolve_run(uri, "sweep story4 (mnist)") == a
    with pytest.raises(RunNotFound, match=r"'4d2f' names 2 runs: 4d2fc23b0000 .*4d2fa0001111"):
        resolve_run(uri, "4d2f")
    with pytest.raises(RunNotFound) as e:
        resolve_run(uri, "twin")
    assert len(e.value.candidates) == 2
    with pytest.raises(RunNotFound, match="no run 'beef0000'"):
        resolve_run(uri, "beef0000")


@pytest.mark.slow   # end to end; the default run stays under 5 minutes
def test_reproduce_and_report_take_a_short_id(store):
    short = store["run_id"][:8]
    p = run(["nets-reproduce", short, "--print-command"], store["launch"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("nets-train ") and "train.epochs=1" in p.stdout
    p = run(["nets-reproduce", "0000ffff"], store["launch"])
    assert p.returncode == 2
    assert p.stderr.strip() == "nets-reproduce: error: no run '0000ffff': not a run id, " \
                               "an id prefix or a run name in the store"
    # nets-report resolves the prefix to the run, then says it is no sweep's parent.
    p = run(["nets-report", short, "--no-log", "--out", str(store["launch"] / "r")],
            store["launch"])
    assert p.returncode == 2
    assert f"run {store['run_id']} has no child runs" in p.stderr


# -- nets-ui (item 8) ------------------------------------------------------------------

def start_ui(store: dict, *args: str) -> tuple[subprocess.Popen, str]:
    """``nets-ui`` on a free port; returns the process and the address it printed."""
    proc = subprocess.Popen([str(BIN / "nets-ui"), "--uri", store["uri"], "--no-browser", *args],
                            cwd=store["launch"], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG
    for line in proc.stdout:
        m = re.search(r"open (http://\S+)", line)
        if m:
            return proc, m.group(1)
        assert time.monotonic() < deadline, "nets-ui printed no address"
    proc.kill()
    raise AssertionError(f"nets-ui exited {proc.wait()}: {proc.stderr.read()}")


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and f"PPid:\t{pid}\n" in (d / "status").read_text():
                out.append(int(d.name))
        except OSError:
            pass
    return out


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for child processes")
def test_ui_lands_on_runs_refuses_a_busy_port_and_dies_with_its_server(store):
    proc, address = start_ui(store, "--port", "0")
    try:
        m = re.match(r"http://127\.0\.0\.1:(\d+)/#/experiments/(\d+)/runs\?"
                     r"workflowType=machine_learning$", address)
        assert m, address
        port = int(m.group(1))
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=HANG).read().decode()
        # The index page makes the runs table the default when the browser has no choice.
        assert ("if(localStorage.getItem('mlflow.workflowType_v1')===null)"
                "localStorage.setItem('mlflow.workflowType_v1','\"machine_learning\"')") in page
        assert not children(proc.pid)  # the server is this process, nothing to leave behind

        busy = run(["nets-ui", "--uri", store["uri"], "--no-browser", "--port", str(port)],
                   store["launch"])
        assert busy.returncode == 2
        lines = busy.stderr.strip().splitlines()
        assert lines == [f"nets-ui: port {port} on 127.0.0.1 is in use (another nets-ui or "
                         "server?): choose one with --port N, or --port 0 for any free port"]
        assert busy.stdout == ""
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # what `kill PID` sends
        code = proc.wait(timeout=HANG)
    assert code in (0, -signal.SIGTERM)
    assert not port_open("127.0.0.1", port)


def test_store_marks_the_experiment_as_model_training(store):
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(store["uri"]).get_experiment_by_name("nets")
    # Read by MLflow where its browser toggle does not decide (see nets.store.server).
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
