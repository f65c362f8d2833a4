"""The recorder process: what nets-train records beside its training lands whole, from a
new child process (cold) and from one forked by the warm recorder (warm)."""

from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import sqlite_uri
from nets.runs import warm as warm_server
from nets.runs.writer import RecorderProcess, WriterError

KINDS = ["cold", "warm"]


@pytest.fixture(scope="module")
def warm_ready():
    """A warm recorder for this process's ``sys.path`` (the session's private dir)."""
    warm_server.start()
    path, deadline = warm_server.socket_path(), time.monotonic() + 180
    while not warm_server._answers(path):            # it imports mlflow first
        assert time.monotonic() < deadline, "the warm recorder never answered"
        time.sleep(0.2)
    return path


def spawn(kind: str, request) -> RecorderProcess:
    if kind == "warm":
        request.getfixturevalue("warm_ready")
    rec = RecorderProcess.spawn(warm=kind == "warm")
    assert rec.warm == (kind == "warm")
    return rec


def _record(tmp_path, request, kind: str, end: str | None = "FINISHED"):
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    rec = spawn(kind, request)
    rec.open(uri, "w", None, "r1", {"nets.config_hash": "abc"})
    rec.log_params({"optimizer.lr": 0.1, "model.hidden": [64]})
    for epoch in range(5):
        rec.log_metrics({"train/loss": 1.0 / (epoch + 1), "val/accuracy": 0.1 * epoch}, epoch)
    rec.log_summary({"best/val_accuracy": 0.4})
    rec.set_tags({"nets.outcome": "completed"})
    rec.log_text("a: 1\n", "config.yaml")
    rec.log_bytes(b"\x00\x01binary", "weights.npz")
    rec.log_curves({"train/loss": [1.0, 0.5], "val/loss": [1.1, 0.6],
                    "train/accuracy": [0.1, 0.5], "val/accuracy": [0.1, 0.4]}, 0.1, "r1")
    run_id = rec.run_id
    if end:
        rec.end(end)
    else:
        rec.close()
    return uri, run_id


@pytest.mark.parametrize("kind", KINDS)
def test_everything_sent_is_in_the_store(tmp_path, request, kind):
    uri, run_id = _record(tmp_path, request, kind)
    c = MlflowClient(uri)
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optimizer.lr": "0.1", "model.hidden": "[64]"}
    assert run.data.tags["nets.config_hash"] == "abc"
    assert run.data.tags["nets.outcome"] == "completed"
    hist = c.get_metric_history(run_id, "curves/loss_train")
    assert [(m.step, m.value) for m in hist] == [(e, 1.0 / (e + 1)) for e in range(5)]
    assert run.data.metrics["best_val_accuracy"] == 0.4
    names = {a.path for a in c.list_artifacts(run_id)}
    assert {"config.yaml", "weights.npz", "curves.png"} <= names
    path = c.download_artifacts(run_id, "weights.npz", str(tmp_path))
    assert open(path, "rb").read() == b"\x00\x01binary"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_parent_that_goes_away_leaves_no_running_run(tmp_path, request, kind):
    uri, run_id = _record(tmp_path, request, kind, end=None)
    c = MlflowClient(uri)
    deadline = time.monotonic() + 60
    while c.get_run(run_id).info.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.get_run(run_id).info.status == "KILLED"


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_that_cannot_be_written_is_one_error(tmp_path, request, kind):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    rec = spawn(kind, request)
    rec.open(sqlite_uri(blocker / "store" / "mlflow.db"), "w", None, "r", {})
    with pytest.raises(WriterError) as e:
        for epoch in range(1000):       # the error arrives while the parent trains
            rec.log_metrics({"train/loss": 1.0}, epoch)
            time.sleep(0.01)
        rec.end()
    assert "recording to the store failed" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_warm_recorder_works_in_the_callers_directory(tmp_path, request, monkeypatch):
    """A relative store path means the caller's directory, not the server's (``/``)."""
    request.getfixturevalue("warm_ready")
    monkeypatch.chdir(tmp_path)
    rec = RecorderProcess.spawn(warm=True)
    assert rec.warm
    rec.open("sqlite:///relative.db", "w", None, "r", {})
    rec.log_params({"a": 1})
    run_id = rec.run_id
    rec.end()
    assert (tmp_path / "relative.db").is_file()
    assert MlflowClient(f"sqlite:///{tmp_path / 'relative.db'}").get_run(run_id).data.params == {
        "a": "1"}


def test_no_warm_recorder_in_a_directory_others_can_enter(tmp_path, monkeypatch):
    """Someone else's socket must never receive our environment: a directory that is
    not ours alone is neither used nor started in."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv(warm_server.DIR_ENV, str(shared))
    warm_server.start()
    assert list(shared.iterdir()) == []
    assert warm_server.connect() is None


def test_a_kept_recorder_records_one_run_after_another(tmp_path, request):
    """A sweep worker's recorder: ``end(keep=True)``, then the next run through it."""
    request.getfixturevalue("warm_ready")
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    rec = RecorderProcess.spawn(warm=True)
    ids = []
    for i in range(3):
        rec.open(uri, "w", None, f"r{i}", {"i": i})
        rec.log_metrics({"train/loss": float(i)}, 0)
        ids.append(rec.run_id)
        rec.end("FINISHED", keep=True)
        assert rec.reusable
    rec.close()
    assert not rec.reusable
    c = MlflowClient(uri)
    assert len(set(ids)) == 3
    for i, run_id in enumerate(ids):
        run = c.get_run(run_id)
        assert (run.info.status, run.data.tags["i"], run.data.metrics["curves/loss_train"]) == (
            "FINISHED", str(i), float(i))


def test_a_run_left_to_its_owner_keeps_what_was_sent_and_stays_running(tmp_path, request):
    """``if_lost=None`` (a sweep job's run): the caller vanishes, the points it sent are
    written and the status is left to the launcher, which knows why the job died."""
    request.getfixturevalue("warm_ready")
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    rec = RecorderProcess.spawn(warm=True)
    rec.open(uri, "w", None, "r", {}, if_lost=None)
    for epoch in range(3):
        rec.log_metrics({"train/loss": 1.0}, epoch)
    run_id = rec.run_id
    rec.close()
    c = MlflowClient(uri)
    deadline = time.monotonic() + 60
    while len(c.get_metric_history(run_id, "curves/loss_train")) < 3:
        assert time.monotonic() < deadline, "the points sent never arrived"
        time.sleep(0.2)
    time.sleep(0.5)
    assert c.get_run(run_id).info.status == "RUNNING"
