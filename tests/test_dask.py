"""The sweep launcher's distributed mode (``hydra/launcher=nets_dask``, ``nets/runs/cluster.py``).

The slow tests start, from the test and all on 127.0.0.1, an ``mlflow server`` (SQLite
backend), a ``dask scheduler`` and two ``dask worker`` processes (``--nthreads 1``),
shared by both sweeps (module fixture), and tear them down by PID. The fast tests cover
the SQLite refusal and the idempotency helper against a local store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from nets.runs import cluster as nd  # noqa: E402
from nets.runs.records import RunSpec  # noqa: E402
from nets.registry import ConfigError  # noqa: E402

BIN = Path(sys.executable).parent
TINY = ["dataset=blobs", "dataset.n_samples=60", "tracking.progress=off"]
EPOCH_METRICS = ("curves/loss_train", "curves/accuracy_train", "curves/loss_val",
                 "curves/accuracy_val", "curves/lr")  # as logged (nets.store.tags.logged_key)
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "NETS_TEST_CRASH")


def env(**extra: str) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in DROP_ENV and not k.startswith("DASK_")}
    e.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}, **extra)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fast: refusal and idempotency --------------------------------------------------------

def test_sqlite_refused_for_multi_host_cluster():
    db = "sqlite:////tmp/x/mlflow.db"
    # one machine: fine (LocalCluster, loopback scheduler and workers)
    nd.check_store([db], None, ["127.0.0.1", "127.0.0.1"])
    nd.check_store([db], "tcp://127.0.0.1:8786", ["127.0.0.1"])
    # a server is fine anywhere
    nd.check_store(["http://10.1.2.3:5000"], "tcp://10.1.2.3:8786", ["10.1.2.4"])
    for scheduler, hosts in [("tcp://10.1.2.3:8786", ["127.0.0.1"]),
                             ("tcp://127.0.0.1:8786", ["127.0.0.1", "10.1.2.4"]),
                             (None, ["192.0.2.77"])]:
        with pytest.raises(ConfigError) as e:
            nd.check_store([db], scheduler, hosts)
        msg = str(e.value)
        assert "\n" not in msg and "tracking.uri" in msg and "mlflow server" in msg
    assert nd.is_local_store("file:///tmp/mlruns") and not nd.is_local_store("http://h:5000")


def test_settings_of_checks_and_normalises():
    s = nd.DaskSettings.from_params({"address": "127.0.0.1:8786", "max_retries": 2})
    assert s.address == "tcp://127.0.0.1:8786" and s.max_retries == 2 and s.allowed_failures == 0
    with pytest.raises(ConfigError, match="allowed_failures"):
        nd.DaskSettings.from_params({"allowed_failures": -1})


def test_version_check_names_the_machine_without_nets():
    class FakeClient:
        def run_on_scheduler(self, fn):
            return fn()  # the probe itself, here: this interpreter has nets

        def run(self, fn, on_error="raise"):
            return {"tcp://127.0.0.1:1": fn(), "tcp://10.9.9.9:2": "not importable "
                    "(ModuleNotFoundError: No module named 'nets')"}

    sweep = nd.DaskSweep([], nd.DaskSettings(address="tcp://127.0.0.1:8786"), "t", {})
    sweep.client = FakeClient()
    with pytest.raises(ConfigError) as e:
        sweep._check_versions()
    assert "tcp://10.9.9.9:2" in str(e.value) and "No module named 'nets'" in str(e.value)
    assert "\n" not in str(e.value)


def test_settle_attempts_is_idempotent(tmp_path, monkeypatch):
    from nets.store import client as store_client, write as store_write

    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = store_client.prepare_store(uri, "nets")
    tags = {"nets.sweep_id": "S1", "nets.sweep_role": "job", "nets.job": 3, "nets.attempt": 1}
    spec = RunSpec(uri, exp, None, "job 3", {**tags, "nets.attempt": 2}, {}, "")
    client = store_client.MlflowClient(uri)

    assert nd.settle_attempts(spec) is None  # nothing yet
    lost = store_write.RunRecorder(uri, exp, "lost", tags=tags)  # an execution on a dead worker
    other = store_write.RunRecorder(uri, exp, "other job", tags={**tags, "nets.job": 4})
    assert nd.settle_attempts(spec) is None
    assert client.get_run(lost.run_id).info.status == "KILLED"
    assert "superseded" in client.get_run(lost.run_id).data.tags["nets.error"]
    assert client.get_run(other.run_id).info.status == "RUNNING"

    done = store_write.RunRecorder(uri, exp, "done", tags={**tags, "nets.attempt": 2})
    done.log_summary({"best/val_accuracy": 0.9})
    done.set_tags({"nets.diagnosis": "healthy"})
    done.end("FINISHED")
    st = nd.settle_attempts(spec)  # dask ran the task again: no second FINISHED run
    assert st.status == "FINISHED" and st.run_id == done.run_id
    assert st.metrics["best/val_accuracy"] == pytest.approx(0.9) and st.diagnosis == "healthy"

    monkeypatch.setenv("MLFLOW_RUN_ID", "stale")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "13")
    nd.reset_mlflow(uri)
    assert "MLFLOW_RUN_ID" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert store_client.mlflow.get_tracking_uri() == uri
    other.end("FINISHED")


# -- slow: a real cluster and tracking server ---------------------------------------------

def _wait(cond, timeout: float, what: str, procs=()):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            return
        for p in procs:
            assert p.poll() is None, f"{what}: process {p.args} exited {p.returncode}"
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate, wait, then kill: each by its own process group (= its PID)."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group: nanny's worker process too
        except ProcessLookupError:
            pass
        p.wait(timeout=5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    mport, sport = free_port(), free_port()
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str, **extra: str) -> subprocess.Popen:
        log = open(d / f"{name}.log", "w")
        p = subprocess.Popen([str(BIN / args[0]), *args[1:]], cwd=d, env=env(**extra),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    try:
        start("mlflow", "mlflow", "server", "--backend-store-uri", f"sqlite:///{d}/mlflow.db",
              "--artifacts-destination", str(d / "artifacts"), "--host", "127.0.0.1",
              "--port", str(mport), "--workers", "1")
        start("scheduler", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(sport),
              "--dashboard-address", "127.0.0.1:0",
              DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
        address = f"tcp://127.0.0.1:{sport}"
        for i in range(2):
            start(f"worker{i}", "dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
                  "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0")
        from distributed import Client

        _wait(lambda: _healthy(f"http://127.0.0.1:{mport}/health"), 90, "mlflow server", procs)
        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield {"uri": f"http://127.0.0.1:{mport}", "address": address, "dir": d}
    finally:
        _stop(procs)


def _sweep(cluster, launch: Path, *overrides: str) -> subprocess.Popen:
    launch.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(BIN / "nets-train"), "-m", "hydra/launcher=nets_dask",
         f"hydra.launcher.address={cluster['address']}", f"tracking.uri={cluster['uri']}",
         *TINY, *overrides],
        cwd=launch, env=env(), stdout=subprocess.PIPE, stderr=open(launch / "stderr.log", "w"),
        text=True, start_new_session=True)


def _finish(p: subprocess.Popen, launch: Path, timeout: float) -> tuple[int, str]:
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise AssertionError("the launcher hung:\n" + (launch / "stderr.log").read_text())
    return p.returncode, (launch / "stderr.log").read_text()


def _runs(uri: str, sweep_id: str | None = None):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("nets")
    flt = f"tags.`nets.sweep_id` = '{sweep_id}'" if sweep_id else ""
    runs = c.search_runs([exp.experiment_id], flt, max_results=1000)
    return c, [r for r in runs if r.data.tags.get("nets.sweep_role") == "job"], \
        [r for r in runs if r.data.tags.get("nets.sweep_role") == "parent"]


def _sweep_id(err: str) -> str:
    line = next(x for x in err.splitlines() if x.startswith("sweep ") and "(" in x)
    return line.split("(", 1)[1].split(")", 1)[0]


@pytest.mark.slow
def test_six_jobs_on_cluster_logged_to_server(cluster, tmp_path):
    t = time.monotonic()
    p = _sweep(cluster, tmp_path / "a", "train.epochs=3", "optimizer.lr=0.3,0.1,0.03", "seed=0,1")
    code, err = _finish(p, tmp_path / "a", 150)
    took = time.monotonic() - t
    assert code == 0, err
    c, kids, parents = _runs(cluster["uri"], _sweep_id(err))
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["nets.launcher"] == "nets_dask"
    assert len(kids) == 6 and {r.info.status for r in kids} == {"FINISHED"}
    assert sorted(int(r.data.tags["nets.job"]) for r in kids) == list(range(6))
    assert len({r.data.tags["nets.config_hash"] for r in kids}) == 6
    for r in kids:
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["nets.attempt"] == "1"
        for key in EPOCH_METRICS:
            assert [m.step for m in c.get_metric_history(r.info.run_id, key)] == [0, 1, 2, 3]
    arts = {a.path for a in c.list_artifacts(kids[0].info.run_id)}  # uploaded over HTTP
    assert {"config.yaml", "weights.npz"} <= arts, arts
    assert "curves.png" not in arts  # a sweep's job leaves its figure to nets-report
    assert len({r.data.tags["nets.pid"] for r in kids}) == 2  # both workers, not the launcher
    assert str(os.getpid()) not in {r.data.tags["nets.pid"] for r in kids}
    print(f"6-job sweep on the cluster: {took:.1f} s (launcher start included)")


@pytest.mark.slow
def test_killed_worker_fails_or_retries_its_job(cluster, tmp_path):
    launch = tmp_path / "b"
    t = time.monotonic()
    # Job 3 (800 epochs) is the one whose worker is killed in the middle.
    p = _sweep(cluster, launch, "train.epochs=3,4,5,800")
    from mlflow.tracking import MlflowClient

    c = MlflowClient(cluster["uri"])
    exp = c.get_experiment_by_name("nets").experiment_id
    victim = []

    def long_job_running() -> bool:
        runs = c.search_runs([exp], "attributes.status = 'RUNNING' and tags.`nets.job` = '3' "
                             "and tags.`nets.attempt` = '1' and tags.`nets.sweep_role` = 'job'")
        runs = [r for r in runs if r.info.start_time / 1000 > time.time() - 120]
        if runs and c.get_metric_history(runs[0].info.run_id, "curves/loss_train"):
            victim.append(runs[0])
            return True
        return False

    _wait(long_job_running, 90, "the long job to start", [p])
    pid = int(victim[0].data.tags["nets.pid"])
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    log = launch / "stderr.log"
    _wait(lambda: "worker died" in log.read_text(), 60, "the launcher to see the loss", [p])
    detected = time.monotonic() - killed_at
    code, err = _finish(p, launch, 150)
    total = time.monotonic() - t
    assert code in (0, 1), err

    sid = _sweep_id(err)
    _, kids, parents = _runs(cluster["uri"], sid)
    assert len(parents) == 1 and parents[0].info.status in ("FINISHED", "FAILED")
    assert not [r for r in kids if r.info.status == "RUNNING"], "a run was left RUNNING"
    by_job = Counter((r.data.tags["nets.job"], r.info.status) for r in kids)
    for j in ("0", "1", "2"):
        assert by_job[(j, "FINISHED")] == 1, by_job
    lost = [r for r in kids if r.data.tags["nets.job"] == "3"]
    first = next(r for r in lost if r.info.run_id == victim[0].info.run_id)
    assert first.info.status == "FAILED" and "worker died" in first.data.tags["nets.error"]
    finished = [r for r in lost if r.info.status == "FINISHED"]
    assert len(finished) <= 1
    if code == 0:  # retried to exactly one FINISHED run
        assert len(finished) == 1 and finished[0].data.tags["nets.attempt"] == "2"
    print(f"killed worker detected after {detected:.1f} s; sweep took {total:.1f} s; "
          f"job 3: {sorted(r.info.status for r in lost)}")
