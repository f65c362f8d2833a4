"""A sweep's workers record nets' own jobs through recorder processes forked by the warm
recorder, kept from one job to the next; a task that logs through MLflow itself still
gets its run as MLflow's active run in the worker.

The sweep engine runs in this process (``nets.runs.sweep.Sweep``, as ``bench_sweep.py``
drives it) with real loky workers and a real warm server in the session's private
directory (``conftest``); the store is read back with ``MlflowClient``.
"""

from __future__ import annotations

import io
import os
import sys
import time

import pytest

from conftest import sqlite_uri
from nets.runs import sweep as sweeps, workers
from nets.runs.job import sweep_task
from nets.runs.workers import current_recorder

CFG = {"dataset": "blobs", "train": {"epochs": 3},
       "tracking": {"progress": "off", "log_weights": True}}


def own_job(cfg: dict, guard):
    """nets' own job, reporting whether the worker imported mlflow and which process
    recorded it."""
    status = sweep_task(cfg, guard)
    return status.status, "mlflow" in sys.modules, os.getpid()


own_job.nets_recorder = True


def own_job_that_dies(cfg: dict, guard):
    """Logs two epochs through the recorder it was handed, then its worker dies."""
    _, rec = current_recorder()
    for epoch in range(2):
        rec.log_metrics({"train/loss": 1.0 / (epoch + 1)}, epoch)
    rec.flush()
    rec.run_id  # noqa: B018 - the recorder has read everything before the worker dies
    os._exit(3)


own_job_that_dies.nets_recorder = True


def own_job_whose_run_is_deleted(cfg: dict, guard):
    """nets' own job, whose run someone deletes before the recorder has ended it."""
    status = sweep_task(cfg, guard)
    spec, _ = current_recorder()
    MlflowClient(spec.uri).delete_run(status.run_id)
    return status


own_job_whose_run_is_deleted.nets_recorder = True


def own_job_counting_recorders(cfg: dict, guard):
    """nets' own job, reporting how many recorders its worker had when it ran."""
    from nets.runs import recorders

    status = sweep_task(cfg, guard)
    return status.status, sum(len(pool) for pool in recorders._RECORDERS.values())


own_job_counting_recorders.nets_recorder = True


def fluent_job(cfg: dict, guard):
    """A task that logs through MLflow's fluent API itself."""
    def task(c):
        import mlflow

        mlflow.log_metric("user/score", 0.5, step=0)
        return mlflow.active_run().info.run_id
    return guard(task, cfg)


def full_config(seed: int, extra=()) -> dict:
    from hydra import compose, initialize_config_dir

    from nets.app.config import CONF_DIR, to_plain
    from nets.app.schema import register

    register()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("config", overrides=[
            f"seed={seed}", "dataset=blobs", "dataset.n_samples=60", "train.epochs=3",
            "tracking.progress=off", *extra]))


@pytest.fixture(autouse=True)
def fresh_workers():
    """Each test's workers are its own (a worker kept from another test's sweep may
    have imported mlflow for a task that logs through it)."""
    workers.stop_idle()
    yield
    workers.stop_idle()


def MlflowClient(uri: str):
    # Imported here: the workers import this module (its job functions) and must not
    # get mlflow from it.
    from mlflow.tracking import MlflowClient as client

    return client(uri)


def sweep(tmp_path, fn, n: int, extra=(), **settings) -> tuple[sweeps.Sweep, list, str]:
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    cfgs = [full_config(i, extra[i] if extra else ()) for i in range(n)]
    jobs = [sweeps.Job(i, [f"seed={i}"], c, fn, c, uri, "nets") for i, c in enumerate(cfgs)]
    s = sweeps.Sweep(jobs, sweeps.Settings(n_jobs=1, **settings), "t",
                     {"seed": [str(i) for i in range(n)]}, out=io.StringIO())
    s.run()
    return s, jobs, uri


def test_own_jobs_are_recorded_whole_by_one_kept_recorder_and_no_mlflow_in_the_worker(
        tmp_path):
    s, jobs, uri = sweep(tmp_path, own_job, 3)
    assert s.recorder is not None, "the sweep found no warm recorder"
    assert [j.status for j in jobs] == ["FINISHED"] * 3, s.out.getvalue()
    assert {j.value[1] for j in jobs} == {False}, "the worker imported mlflow"
    c = MlflowClient(uri)
    for j in jobs:
        run = c.get_run(j.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["nets.sweep_role"] == "job"
        assert run.data.tags["nets.diagnosis"]
        assert run.data.tags["mlflow.version"]
        assert run.data.params["seed"] == str(j.number)
        assert [m.step for m in c.get_metric_history(j.run_id, "curves/loss_train")] == [
            0, 1, 2, 3]
        names = {a.path for a in c.list_artifacts(j.run_id)}
        assert {"config.yaml", "overrides.yaml", "diagnosis.md", "console.log",
                "weights.npz"} <= names
    assert len({j.value[2] for j in jobs}) == 1   # one worker ...


def test_a_worker_s_first_job_finds_its_recorders_forked_as_the_worker_started(tmp_path):
    """Both kept recorders are forked (and open the store) while the worker starts, so
    the first job does not pay for them; without that it would find one."""
    from nets.runs import recorders

    s, jobs, uri = sweep(tmp_path, own_job_counting_recorders, 2)
    assert [j.status for j in jobs] == ["FINISHED"] * 2, s.out.getvalue()
    assert [j.value[1] for j in jobs] == [recorders.KEEP] * 2
    c = MlflowClient(uri)
    assert all(c.get_run(j.run_id).info.status == "FINISHED" for j in jobs)


def test_a_dead_worker_s_run_is_ended_failed_with_what_it_sent(tmp_path):
    s, jobs, uri = sweep(tmp_path, own_job_that_dies, 1, max_retries=0)
    assert jobs[0].status == "FAILED" and "worker died" in jobs[0].error
    c = MlflowClient(uri)
    (run,) = [r for r in c.search_runs([c.get_experiment_by_name("nets").experiment_id])
              if r.data.tags.get("nets.sweep_role") == "job"]
    deadline = time.monotonic() + 60   # the recorder writes what it read, then leaves
    while len(c.get_metric_history(run.info.run_id, "curves/loss_train")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    run = c.get_run(run.info.run_id)
    assert run.info.status == "FAILED"
    assert "worker died" in run.data.tags["nets.error"]


@pytest.mark.slow
def test_a_task_that_logs_through_mlflow_gets_the_active_run(tmp_path):
    s, jobs, uri = sweep(tmp_path, fluent_job, 2)
    assert [j.status for j in jobs] == ["FINISHED"] * 2, s.out.getvalue()
    c = MlflowClient(uri)
    for j in jobs:
        assert j.value == j.run_id
        assert [m.value for m in c.get_metric_history(j.run_id, "user/score")] == [0.5]


@pytest.mark.slow
def test_without_a_warm_recorder_own_jobs_are_recorded_in_the_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("NETS_WARM_RECORDER", "0")
    s, jobs, uri = sweep(tmp_path, own_job, 2)
    assert s.recorder is None
    assert [j.status for j in jobs] == ["FINISHED"] * 2, s.out.getvalue()
    assert {j.value[1] for j in jobs} == {True}
    c = MlflowClient(uri)
    assert all(len(c.get_metric_history(j.run_id, "curves/loss_train")) == 4 for j in jobs)


@pytest.mark.slow
def test_a_second_sweep_in_the_process_reuses_the_worker_and_its_recorder(tmp_path):
    first, jobs1, _ = sweep(tmp_path / "a", own_job, 1)
    second, jobs2, uri = sweep(tmp_path / "b", own_job, 1)
    assert jobs1[0].value[2] == jobs2[0].value[2]   # the same kept worker
    assert MlflowClient(uri).get_run(jobs2[0].run_id).info.status == "FINISHED"


def test_a_run_whose_end_cannot_be_recorded_after_its_result_went_back_is_a_failed_job(
        tmp_path):
    """The job's result goes back while its recorder ends the run; when that fails, the
    launcher hears it (from the worker's next job, or when it drains the workers at the
    end) and the job is FAILED, not FINISHED."""
    s, jobs, uri = sweep(tmp_path, own_job_whose_run_is_deleted, 2)
    assert [j.status for j in jobs] == ["FAILED"] * 2, s.out.getvalue()
    assert all("recording to the store failed" in j.error for j in jobs)
    assert s.bad()


def test_the_parent_keeps_every_job_s_report_curves_as_the_store_has_them(tmp_path):
    """The file the launcher leaves on the parent (one read for a report over a server)
    holds each FINISHED job's report curves exactly as their histories in the store: an
    adaptive rate, and a run whose loss became NaN (those points are not logged)."""
    from nets.report import sweep as report
    from nets.store.curves import SWEEP_FILE
    from nets.store.summary import RUNS_FILE

    extra = [["schedule=bold_driver", "train.epochs=6"],
             ["optimizer.lr=1e40", "model.activation=relu", "train.epochs=6"], []]
    s, jobs, uri = sweep(tmp_path, sweep_task, 3, extra)
    assert [j.status for j in jobs] == ["FINISHED"] * 3, s.out.getvalue()
    (parent,) = {p.parent.run_id for p in s.stores.values()}
    names = {a.path for a in MlflowClient(uri).list_artifacts(parent)}
    assert SWEEP_FILE in names and RUNS_FILE in names
    from_file = report.make_report(uri, parent)
    fetched = report.make_report(uri, parent, method="sqlite")
    assert from_file.fetch_method.startswith(SWEEP_FILE) and fetched.fetch_method == "sqlite"
    # the runs too (those that ended within the file's margin are read again)
    assert from_file.sweep.source.startswith(f"{RUNS_FILE} (3 runs, ")
    assert fetched.sweep.source == "search"
    a = {r.run_id: r.curves for r in from_file.runs}
    b = {r.run_id: r.curves for r in fetched.runs}
    assert a.keys() == b.keys() == {j.run_id for j in jobs}
    for run_id in a:
        assert a[run_id].keys() == b[run_id].keys()
        assert "lr" in a[run_id]       # a bold-driver run is in the sweep: rates drawn
        for key, (steps, values) in a[run_id].items():
            assert steps.tolist() == b[run_id][key][0].tolist()
            assert values.tolist() == b[run_id][key][1].tolist()
    diverged = next(j for j in jobs if j.number == 1)
    curves = a[diverged.run_id]     # its loss became NaN: that point is not logged
    assert len(curves["train/loss"][0]) < len(curves["val/accuracy"][0])
    assert [r.run_id for r in from_file.runs] == [r.run_id for r in fetched.runs]
