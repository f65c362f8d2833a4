"""``nets-reproduce``: rerun recorded runs from their ``config.yaml`` and compare the curves.

In-process ``main([...])`` calls on ``tmp_path`` stores; small runs (200 digits, 3
epochs). The sweep-child test runs two jobs at once in two spawned processes under one
parent run, as a sweep launcher would.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from nets.app import reproduce as rpcli
from nets.runs import reproduce as rp
from nets.app import config as appconfig
from nets.app.schema import register
from nets.app.train import train
from nets.runs.job import JobSpec, config_hash, run_job
from nets.app.reproduce import main
from nets.runs.reproduce import Difference, compare
from nets.store.client import prepare_store
from nets.store.tags import logged_key
from nets.store.uri import resolve_uri

SMALL = ["dataset.subsample=200", "train.epochs=3", "tracking.progress=off",
         "tracking.log_plots=false"]


def compose_cfg(overrides):
    register()
    with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def record(store: Path, *overrides: str) -> str:
    """Record one run with ``nets-train``'s own code path; its run id."""
    ov = [*SMALL, f"tracking.uri={store}", *overrides]
    status = train(compose_cfg(ov), ov)
    assert status.status == "FINISHED"
    return status.run_id


def uri_of(store: Path) -> str:
    return resolve_uri(str(store), "/")


def runs(store: Path) -> list:
    client = MlflowClient(uri_of(store))
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=1000)


def reproductions(store: Path, run_id: str) -> list:
    return [r for r in runs(store) if r.data.tags.get("nets.reproduces") == run_id]


def artifact_path(store: Path, run_id: str, name: str = "config.yaml") -> Path:
    (path,) = Path(store, "artifacts").glob(f"*/{run_id}/artifacts/{name}")
    return path


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nets-reproduce: error: "), err
    return lines[0]


# -- a single run --------------------------------------------------------------------------

def test_reproduce_single_run_is_identical(tmp_path, capsys):
    store = tmp_path / "store"
    rid = record(store, "optimizer=momentum", "model.hidden=[8,4]")
    capsys.readouterr()
    assert main([rid, "--uri", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("identical: run ") and rid in out
    (new,) = reproductions(store, rid)
    client = MlflowClient(uri_of(store))
    orig = client.get_run(rid)
    assert new.info.experiment_id == orig.info.experiment_id
    assert new.info.status == "FINISHED"
    assert new.data.tags["nets.config_hash"] == orig.data.tags["nets.config_hash"]
    assert new.data.tags["nets.reproduce.result"] == "identical"
    assert "mlflow.parentRunId" not in new.data.tags
    for key in orig.data.metrics:   # the claim checked independently of compare()
        h = lambda r: [(m.step, m.value) for m in sorted(  # noqa: E731
            client.get_metric_history(r, key), key=lambda m: m.step)]
        assert h(rid) == h(new.info.run_id), key
    # The rerun records its own config.yaml/overrides.yaml like any run.
    again = yaml.safe_load(artifact_path(store, new.info.run_id).read_text())
    assert config_hash(again) == orig.data.tags["nets.config_hash"]
    assert yaml.safe_load(artifact_path(store, new.info.run_id, "overrides.yaml").read_text()) == \
        yaml.safe_load(artifact_path(store, rid, "overrides.yaml").read_text())


def test_env_var_store_thread_count_and_version_notes(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    rid = record(store)
    client = MlflowClient(uri_of(store))
    # Pretend the original ran with one BLAS thread and another numpy.
    client.set_tag(rid, "nets.blas_threads", "1")
    client.set_tag(rid, "numpy.version", "0.0.1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri_of(store))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main([rid]) == 0
    err = capsys.readouterr().err
    assert "numpy.version 0.0.1 -> " in err and "with 1 BLAS thread(s)" in err
    (new,) = reproductions(store, rid)
    assert new.data.tags["nets.blas_threads"] == "1"


def test_print_command_recreates_the_config(tmp_path, capsys):
    store = tmp_path / "store"
    rid = record(store, "optimizer=adam", "optimizer.lr=0.003", "model.hidden=[8,4]",
                 "model.init={name: normal, std: 0.1}", "seed=3", "train.batch_size=null")
    capsys.readouterr()
    n_runs = len(runs(store))
    assert main([rid, "--uri", str(store), "--print-command"]) == 0
    out, err = capsys.readouterr()
    line = out.strip()
    assert line.startswith("nets-train ") and "\n" not in line and err == ""
    argv = shlex.split(line)[1:]
    assert "optimizer=adam" in argv and "model.hidden=[8,4]" in argv
    stored = yaml.safe_load(artifact_path(store, rid).read_text())
    assert config_hash(appconfig.to_plain(compose_cfg(argv))) == config_hash(stored)
    assert len(runs(store)) == n_runs   # nothing recorded


def test_print_command_falls_back_to_recorded_overrides(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    rid = record(store, "optimizer.lr=0.05")
    monkeypatch.setattr(rpcli, "overrides_for", lambda cfg: None)   # conf/ changed since
    capsys.readouterr()
    assert main([rid, "--uri", str(store), "--print-command"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "nets-train dataset.subsample=200 train.epochs=3 optimizer.lr=0.05 " \
                          "tracking.log_plots=false"
    assert "recorded overrides" in err


# -- a sweep child ------------------------------------------------------------------------------

def test_reproduce_sweep_child_alone(tmp_path, capsys):
    store = tmp_path / "store"
    uri = uri_of(store)
    exp_id = prepare_store(uri, "sweep")
    client = MlflowClient(uri)
    parent = client.create_run(exp_id, run_name="sweep", tags={"nets.sweep": "1"}).info.run_id
    ctx = mp.get_context("spawn")
    procs = []
    for seed in (1, 2):
        ov = [*SMALL, f"seed={seed}", "tracking.experiment=sweep", "train.batch_size=16"]
        spec = JobSpec(appconfig.to_plain(compose_cfg(ov)), uri, exp_id, parent_run_id=parent,
                       tags={"nets.job": str(seed)}, overrides=ov)
        procs.append(ctx.Process(target=run_job, args=(spec,)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    client.set_terminated(parent)
    children = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == 2
    child = next(r for r in children if r.data.tags["nets.job"] == "2").info.run_id

    capsys.readouterr()
    assert main([child, "--uri", str(store)]) == 0, capsys.readouterr()
    assert "identical" in capsys.readouterr().out
    (new,) = reproductions(store, child)
    assert new.info.experiment_id == exp_id
    assert "mlflow.parentRunId" not in new.data.tags   # a rerun, not a sweep member

    # A sweep's parent run has no config: one line, nothing recorded.
    n = len(runs(store))
    assert main([parent, "--uri", str(store)]) == 2
    assert "no config.yaml" in one_error_line(capsys.readouterr().err)
    assert len(runs(store)) == n


# -- a copied store ---------------------------------------------------------------------------

def test_reproduce_from_copied_store(tmp_path, capsys):
    original = tmp_path / "a" / "mlruns"
    rid = record(original)
    copy = tmp_path / "b" / "copied"
    shutil.copytree(original, copy)
    original.rename(tmp_path / "a" / "gone")   # the recorded absolute paths are stale now
    capsys.readouterr()
    assert main([rid, "--uri", str(copy)]) == 0
    out, err = capsys.readouterr()
    assert "identical" in out and "moved or copied" in err
    (new,) = reproductions(copy, rid)
    # The rerun's artifacts went into the copy, not back to the old location.
    assert artifact_path(copy, new.info.run_id).is_file()
    assert not original.exists()
    assert main([rid, "--uri", str(copy), "--print-command"]) == 0


def test_copy_beside_its_original_writes_into_the_copy(tmp_path, capsys):
    original = tmp_path / "a"
    rid = record(original)
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    artifact_path(original, rid).write_text("model: {name: os.system}\n")  # only the copy is read
    capsys.readouterr()
    assert main([rid, "--uri", str(copy)]) == 0
    (new,) = reproductions(copy, rid)
    assert artifact_path(copy, new.info.run_id).is_file()
    assert list(Path(original, "artifacts").glob(f"*/{new.info.run_id}")) == []
    assert reproductions(original, rid) == []


# -- refusals: one line, nothing recorded -------------------------------------------------------

TAMPERED = {
    "unknown model": lambda t: t.replace("name: mlp", "name: os.system"),
    "python tag": lambda t: "!!python/object/apply:os.system ['touch {marker}']\n",
    "python tag inside": lambda t: t.replace("name: sgd", "name: !!python/name:os.system ''"),
    "target key": lambda t: t.replace("name: sgd", "name: sgd\n  _target_: os.system"),
    "interpolation": lambda t: t.replace("name: sgd", "name: ${oc.env:HOME}"),
    "not a mapping": lambda t: "- model\n- optimizer\n",
    "unknown root": lambda t: t + "callbacks: [os.system]\n",
    "bad yaml": lambda t: "model: {name: [\n",
    "binary": lambda t: t.replace("name: sgd", "name: !!binary aGVsbG8="),
    "edited value": lambda t: t.replace("lr: 0.1", "lr: 0.2"),   # valid, but not what ran
}


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("base") / "store"
    return store, record(store)


@pytest.mark.parametrize("how", list(TAMPERED))
def test_tampered_config_is_refused(how, base_store, tmp_path, capsys):
    src, rid = base_store
    store = tmp_path / "store"
    shutil.copytree(src, store)
    marker = tmp_path / "marker"
    path = artifact_path(store, rid)
    path.write_text(TAMPERED[how](path.read_text()).replace("{marker}", str(marker)))
    n = len(runs(store))
    capsys.readouterr()
    assert main([rid, "--uri", str(store)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "config.yaml" in line and "refused" in line
    if how == "unknown model":
        assert "model.name='os.system' is not valid: unknown model" in line
    if how == "edited value":
        assert "nets.config_hash" in line
    assert main([rid, "--uri", str(store), "--print-command"]) == 2
    one_error_line(capsys.readouterr().err)
    assert len(runs(store)) == n and not marker.exists()


def test_rerun_into_another_experiment(base_store, tmp_path, capsys):
    src, rid = base_store
    store = tmp_path / "store"
    shutil.copytree(src, store)
    assert main([rid, "--uri", str(store), "--experiment", "checks"]) == 0
    (new,) = reproductions(store, rid)
    client = MlflowClient(uri_of(store))
    assert client.get_experiment(new.info.experiment_id).name == "checks"
    assert artifact_path(store, new.info.run_id).is_file()


def test_tampered_overrides_refused(base_store, tmp_path, capsys):
    src, rid = base_store
    store = tmp_path / "store"
    shutil.copytree(src, store)
    artifact_path(store, rid, "overrides.yaml").write_text("!!python/object/apply:os.getpid []\n")
    assert main([rid, "--uri", str(store)]) == 2
    assert "overrides.yaml" in one_error_line(capsys.readouterr().err)


def test_unknown_run_and_missing_store(base_store, tmp_path, capsys):
    store, rid = base_store
    n = len(runs(store))
    assert main(["0" * 32, "--uri", str(store)]) == 2
    assert "no run '000" in one_error_line(capsys.readouterr().err)
    assert main(["../../etc", "--uri", str(store)]) == 2
    assert "not a run id" in one_error_line(capsys.readouterr().err)
    assert len(runs(store)) == n
    assert main([rid, "--uri", str(tmp_path / "nowhere")]) == 2
    assert "no MLflow store" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "nowhere").exists()   # no empty store created


def test_unfinished_original_refused(base_store, tmp_path, capsys):
    src, rid = base_store
    store = tmp_path / "store"
    shutil.copytree(src, store)
    MlflowClient(uri_of(store)).update_run(rid, status="FAILED")
    n = len(runs(store))
    assert main([rid, "--uri", str(store)]) == 2
    assert "is FAILED" in one_error_line(capsys.readouterr().err)
    assert len(runs(store)) == n
    assert main([rid, "--uri", str(store), "--print-command"]) == 0   # to edit and rerun


# -- a different history ------------------------------------------------------------------------

def test_different_history_reports_first_difference(tmp_path, capsys):
    store = tmp_path / "store"
    rid = record(store)
    client = MlflowClient(uri_of(store))
    (pt,) = [m for m in client.get_metric_history(rid, "curves/loss_val") if m.step == 2]
    changed = pt.value + 1e-12
    db = Path(uri_of(store)[len("sqlite:///"):])
    with sqlite3.connect(db) as con:   # the stored curve, altered at one point
        n = con.execute("UPDATE metrics SET value = ? WHERE run_uuid = ? AND key = 'curves/loss_val' "
                        "AND step = 2", (changed, rid)).rowcount
    assert n == 1
    capsys.readouterr()
    assert main([rid, "--uri", str(store)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("different: ")
    assert f"metric 'val/loss' at step 2: original {changed!r}, reproduced {pt.value!r}" in out
    (new,) = reproductions(store, rid)
    assert new.data.tags["nets.reproduce.result"] == "different"
    assert "val/loss" in new.data.tags["nets.reproduce.first_difference"]


def test_compare_rules():
    a = {"lr": [(0, 0.1), (1, 0.1)], "train/loss": [(0, 2.0), (1, 1.5), (2, 1.0)],
         "val/loss": [(0, 2.1), (1, 1.6), (2, 1.1)], "final/train_loss": [(0, 1.0)]}
    assert compare(a, {k: list(v) for k, v in a.items()}) is None
    b = {**a, "train/loss": [(0, 2.0), (1, 1.5), (2, 1.25)], "val/loss": [(0, 2.1), (1, 1.75),
                                                                           (2, 1.1)],
         "final/train_loss": [(0, 1.25)]}
    # The curves before the single-value metrics; the earliest step, then key order.
    assert compare(a, b) == Difference("val/loss", 1, [1.6], [1.75], 3)
    assert "original 1.6, reproduced 1.75 (2 more metric(s) differ)" in compare(a, b).describe()
    # A missing metric, a missing step, and points in another order.
    assert compare(a, {k: v for k, v in a.items() if k != "lr"}) == \
        Difference("lr", 0, [0.1], None, 1)
    assert compare(a, {**a, "train/loss": a["train/loss"][:2]}) == \
        Difference("train/loss", 2, [1.0], None, 1)
    assert compare(a, {**a, "train/loss": a["train/loss"][::-1]}) is None
    assert compare(a, {**a, "final/train_loss": [(0, 1.0 + 2 ** -52)]}).key == "final/train_loss"
    # A curve a newer nets records that the original never had is no difference; a
    # curve the original had and the rerun lacks is one.
    assert compare(a, {**a, "health/input/scale": [(0, 1.0)]}) is None
    assert compare({**a, "health/input/scale": [(0, 1.0)]}, a).key == "health/input/scale"


def test_config_checks_are_plain_data_only():
    good = {"seed": 0, "model": {"name": "mlp"}, "optimizer": {"name": "sgd"}, "train": {}}
    rp.check_config(good)
    for bad in ({**good, "model": {"name": "mlp", "_target_": "os.system"}},
                {**good, "model": {"name": "${x}"}}, {**good, 1: 2},
                {**good, "tracking": {"callback": "os.system"}},
                {**good, "train": {"epochs": {1, 2}}}):
        with pytest.raises(rp.ReproduceError):
            rp.check_config(bad)


def test_hydra_values():
    assert rpcli.hydra_value([8, 4]) == "[8,4]"
    assert rpcli.hydra_value({"name": "normal", "std": 0.1}) == "{name: normal, std: 0.1}"
    assert rpcli.hydra_value("null") == "'null'" and rpcli.hydra_value(None) == "null"
    assert rpcli.hydra_value("/a b/c.csv") == "'/a b/c.csv'"
    assert rpcli.hydra_value(1e-05) == "1e-05" and rpcli.hydra_value(True) == "true"


# -- an mlflow server over http (opt-in: the server takes ~20 s to start) ------------------

@pytest.mark.skipif(os.environ.get("NETS_TEST_MLFLOW_SERVER") != "1",
                    reason="set NETS_TEST_MLFLOW_SERVER=1 to test against `mlflow server`")
def test_reproduce_through_mlflow_server(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "served")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        import urllib.request

        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        ov = [*SMALL]
        rid = train(compose_cfg(ov), ov).run_id
        capsys.readouterr()
        assert main([rid]) == 0
        assert "identical" in capsys.readouterr().out
        assert main([rid, "--print-command"]) == 0
        assert capsys.readouterr().out.startswith("nets-train dataset.subsample=200")
    finally:
        server.terminate()
        server.wait(30)


def test_a_sweep_job_leaves_its_curves_figure_to_the_report(tmp_path):
    """A job recorded into a run a launcher opened draws no curves.png (the sweep report
    draws every run's curves; ~0.4 s of a short job) unless tracking.sweep_plots=true;
    everything else is recorded as for a run alone."""
    uri = uri_of(tmp_path / "store")
    exp_id = prepare_store(uri, "nets")
    client = MlflowClient(uri)
    for sweep_plots in (False, True):
        run_id = client.create_run(exp_id).info.run_id
        ov = [*SMALL, "tracking.log_plots=true",
              f"tracking.sweep_plots={str(sweep_plots).lower()}"]
        status = run_job(JobSpec(appconfig.to_plain(compose_cfg(ov)), uri, exp_id,
                                 run_id=run_id), stream=io.StringIO())
        assert status.status == "FINISHED"
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"weights.npz", "diagnosis.md"} <= names, names
        assert ("curves.png" in names) is sweep_plots, names
        assert client.get_metric_history(run_id, logged_key("val/loss"))
