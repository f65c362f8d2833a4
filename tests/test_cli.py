"""``nets-train`` and ``nets-ui`` end to end, as subprocesses, reading the MLflow store back.

Every run happens in its own temporary launch directory with ``MLFLOW_TRACKING_URI`` and
``HYDRA_FULL_ERROR`` removed from the environment, so the default store is
``<launch dir>/mlruns/mlflow.db``. Each ``nets-train`` costs a few seconds of imports,
so compatible overrides share an invocation.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from _data import write_tiny_mnist
from conftest import BIN, clean_env

from nets.store.tags import logged_key, nets_metrics

NETS_TRAIN = BIN / "nets-train"
NETS_UI = BIN / "nets-ui"
EPOCH_METRICS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr")

# -- helpers -------------------------------------------------------------------------------

def nets_train(cwd: Path, *args: str, env: dict | None = None, timeout: float = 300,
               exe: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (exe or [str(NETS_TRAIN)]) + list(args)
    return subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def db_of(launch: Path) -> Path:
    return launch / "mlruns" / "mlflow.db"


def client(db: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient("sqlite:///" + str(db))


def all_runs(db: Path, experiment: str | None = None) -> list:
    """Every run in the store (all experiments unless named); a missing DB has none."""
    if not db.exists():
        return []
    from mlflow.entities import ViewType

    c = client(db)
    if experiment is not None:
        exp = c.get_experiment_by_name(experiment)
        ids = [exp.experiment_id] if exp else []
    else:
        ids = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ALL)]
    return c.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000) if ids else []


def n_runs_raw(db: Path) -> int:
    """Run count straight from SQLite (no MLflow, never creates the file)."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        try:
            return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def only_run(db: Path, experiment: str = "nets"):
    runs = all_runs(db, experiment)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def history(db: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    """The logged history of the engine's metric ``key`` (``train/loss`` is logged as
    ``curves/loss_train``: ``nets.store.tags.logged_key``)."""
    hist = client(db).get_metric_history(run_id, logged_key(key))
    return sorted((m.step, m.value) for m in hist)


def artifact_dir(run) -> Path:
    uri = run.info.artifact_uri
    assert uri.startswith("file:"), uri
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(uri).path))


def mnist_args(tmp: Path) -> list[str]:
    d = write_tiny_mnist(tmp / "mnist")
    return ["dataset=mnist", f"dataset.path='{d}'", f"dataset.cache_dir='{tmp / 'cache'}'",
            "dataset.verify=false", "dataset.download=false"]


# -- the default run, twice, and a seed change (shared: three launches) --------------------

@pytest.fixture(scope="module")
def default_store(tmp_path_factory):
    launch = tmp_path_factory.mktemp("default")
    procs = [ok(nets_train(launch, "train.epochs=3")), ok(nets_train(launch, "train.epochs=3")),
             ok(nets_train(launch, "train.epochs=3", "seed=3"))]
    runs = sorted(all_runs(db_of(launch), "nets"), key=lambda r: r.info.start_time)
    assert len(runs) == 3
    return {"launch": launch, "db": db_of(launch), "runs": runs, "procs": procs}


def test_default_run_is_complete(default_store):
    db, run = default_store["db"], default_store["runs"][0]
    rid = run.info.run_id
    assert run.info.status == "FINISHED"
    # The one-line status at the end names the run.
    assert f"run {rid} FINISHED" in default_store["procs"][0].stderr

    params = run.data.params
    assert params["optimizer.lr"] == "0.1"
    assert params["model.hidden"] == "[64]"
    assert params["train.epochs"] == "3"
    assert params["dataset.name"] == "digits"
    assert not any(k.startswith("tracking") for k in params)

    for key in EPOCH_METRICS:
        assert [s for s, _ in history(db, rid, key)] == [0, 1, 2, 3], key
    assert all(v == pytest.approx(0.1) for _, v in history(db, rid, "lr"))
    m = nets_metrics(run.data.metrics)
    for key in ("best/val_accuracy", "best/epoch", "final/val_accuracy", "final/train_loss",
                "data/chance_accuracy", "data/majority_accuracy"):
        assert key in m, key
    assert m["data/chance_accuracy"] == pytest.approx(0.1)
    assert 0 <= m["best/epoch"] <= 3
    assert m["best/val_accuracy"] == max(v for _, v in history(db, rid, "val/accuracy"))
    assert m["val/accuracy"] > m["data/majority_accuracy"]  # it learned something

    tags = run.data.tags
    assert len(tags["nets.config_hash"]) >= 8
    assert tags["mlflow.runName"] == run.info.run_name == "relu-cross_entropy-sgd-lr0.1"
    assert tags["numpy.version"] == np.__version__
    assert int(tags["nets.blas_threads"]) >= 1
    for key in ("nets.version", "mlflow.version", "python.version"):
        assert tags[key], key
    commit = tags.get("mlflow.source.git.commit")
    assert commit is not None and len(commit) == 40, "git commit tag missing"
    assert tags["nets.outcome"] == "completed"

    art = artifact_dir(run)
    c = client(db)
    assert {a.path for a in c.list_artifacts(rid)} >= {
        "config.yaml", "overrides.yaml", "weights.npz", "curves.png", "console.log"}
    cfg = yaml.safe_load((art / "config.yaml").read_text())
    assert isinstance(cfg, dict)
    assert cfg["optimizer"]["lr"] == float(params["optimizer.lr"])
    assert cfg["model"]["hidden"] == [64]
    from nets.runs.job import config_hash

    assert config_hash(cfg) == tags["nets.config_hash"]
    assert yaml.safe_load((art / "overrides.yaml").read_text()) == ["train.epochs=3"]
    with np.load(art / "weights.npz", allow_pickle=False) as w:
        assert {"dense1.W", "dense1.b", "dense2.W", "dense2.b"} <= set(w.files)
        assert w["dense1.W"].shape == (64, 64)
        assert w["dense2.W"].shape == (64, 10)
    assert (art / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (art / "console.log").read_text()
    assert "epoch" in log and "completed" in log

    exp = c.get_experiment(run.info.experiment_id)
    loc = Path(urllib.request.url2pathname(urllib.parse.urlparse(exp.artifact_location).path))
    assert loc.is_relative_to(default_store["launch"] / "mlruns")
    assert art.is_relative_to(default_store["launch"] / "mlruns")


def test_same_config_same_hash_and_same_numbers(default_store):
    db = default_store["db"]
    a, b, seeded = default_store["runs"]
    assert a.data.tags["nets.config_hash"] == b.data.tags["nets.config_hash"]
    assert a.info.run_id != b.info.run_id
    for key in EPOCH_METRICS:
        assert history(db, a.info.run_id, key) == history(db, b.info.run_id, key), key
    assert seeded.data.params["seed"] == "3"
    assert seeded.data.tags["nets.config_hash"] != a.data.tags["nets.config_hash"]
    assert seeded.info.run_name.endswith("-s3")


def test_ui_dry_run_prints_local_url_and_store(default_store):
    launch = default_store["launch"]
    p = ok(subprocess.run([str(NETS_UI), "--dry-run"], cwd=launch, env=clean_env(),
                          capture_output=True, text=True, timeout=120))
    assert "http://127.0.0.1:5000" in p.stdout
    assert "sqlite:///" + str(db_of(launch)) in p.stdout


def test_ui_without_store_fails_with_one_line(tmp_path):
    p = subprocess.run([str(NETS_UI), "--dry-run"], cwd=tmp_path, env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("nets-ui:")
    assert not db_of(tmp_path).exists()


# -- the override contract --------------------------------------------------------------

@pytest.mark.slow
def test_override_contract_mlp_on_mnist(tmp_path):
    args = [*mnist_args(tmp_path), "model=mlp", "model.hidden=[128,64]",
            "model.activation=tanh", "model.output=softmax", "loss=cross_entropy",
            "optimizer=adam", "optimizer.lr=0.1", "schedule=bold_driver", "train.epochs=20",
            "train.batch_size=100", "seed=3"]
    ok(nets_train(tmp_path, *args))
    run = only_run(db_of(tmp_path))
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert {k: p[k] for k in ("dataset.name", "model.name", "model.hidden", "model.activation",
                              "model.output", "loss.name", "optimizer.name", "optimizer.lr",
                              "schedule.name", "train.epochs", "train.batch_size", "seed")} == {
        "dataset.name": "mnist", "model.name": "mlp", "model.hidden": "[128, 64]",
        "model.activation": "tanh", "model.output": "softmax", "loss.name": "cross_entropy",
        "optimizer.name": "adam", "optimizer.lr": "0.1", "schedule.name": "bold_driver",
        "train.epochs": "20", "train.batch_size": "100", "seed": "3"}
    assert run.info.run_name == "mnist-tanh-cross_entropy-adam-lr0.1-bold_driver-s3"
    assert [s for s, _ in history(db_of(tmp_path), run.info.run_id, "train/loss")] == \
        list(range(21))


@pytest.mark.slow
def test_override_contract_cnn_on_digits(tmp_path):
    ok(nets_train(tmp_path, "model=cnn", "dataset.subsample=200", "train.epochs=1"))
    run = only_run(db_of(tmp_path))
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "cnn"
    assert run.data.params["dataset.name"] == "digits"
    assert run.data.params["dataset.subsample"] == "200"
    with np.load(artifact_dir(run) / "weights.npz", allow_pickle=False) as w:
        assert any(k.startswith("conv2d1.") for k in w.files)
    assert [s for s, _ in history(db_of(tmp_path), run.info.run_id, "val/accuracy")] == [0, 1]


# -- regression ---------------------------------------------------------------------------

def test_regression_run_metrics(tmp_path):
    p = ok(nets_train(tmp_path, "experiment=story2", "train.tol=1", "train.epochs=2000",
                      "tracking.progress=off"))
    assert "epoch    0/" not in p.stderr  # progress=off
    run = only_run(db_of(tmp_path))
    assert run.info.status == "FINISHED"
    m = nets_metrics(run.data.metrics)
    for key in ("train/mae", "train/sse", "val/mae", "val/sse", "best/val_loss", "best/epoch",
                "data/baseline_val_mae", "lr"):
        assert key in m, key
    assert "train/accuracy" not in m and "best/val_accuracy" not in m
    assert run.data.tags["nets.task"] == "regression"
    assert run.data.tags["nets.outcome"] == "converged"
    assert run.data.params["train.reduction"] == "sum"
    steps = [s for s, _ in history(db_of(tmp_path), run.info.run_id, "train/sse")]
    assert steps == list(range(len(steps))) and len(steps) > 1


# -- where the run lands -------------------------------------------------------------------

def test_env_tracking_uri_wins_over_default(tmp_path):
    launch, other = tmp_path / "launch", tmp_path / "other"
    launch.mkdir()
    env = clean_env(MLFLOW_TRACKING_URI="sqlite:///" + str(other / "mlflow.db"))
    ok(nets_train(launch, "train.epochs=1", "dataset.subsample=200", env=env))
    run = only_run(other / "mlflow.db")
    assert run.info.status == "FINISHED"
    assert not db_of(launch).exists()
    assert artifact_dir(run).is_relative_to(other)


def test_tracking_uri_beats_env_and_experiment_name(tmp_path):
    launch, envstore, explicit = tmp_path / "launch", tmp_path / "envstore", tmp_path / "explicit"
    launch.mkdir()
    env = clean_env(MLFLOW_TRACKING_URI="sqlite:///" + str(envstore / "mlflow.db"))
    ok(nets_train(launch, "train.epochs=1", "dataset.subsample=200",
                  f"tracking.uri='sqlite:///{explicit / 'mlflow.db'}'", "tracking.experiment=foo",
                  env=env))
    run = only_run(explicit / "mlflow.db", "foo")
    assert run.info.status == "FINISHED"
    assert all_runs(explicit / "mlflow.db", "nets") == []
    assert n_runs_raw(envstore / "mlflow.db") == 0
    assert not db_of(launch).exists()
    assert artifact_dir(run).is_relative_to(explicit)


# -- outcomes: diverged, failed, killed -----------------------------------------------------

def test_divergence_is_a_finished_run(tmp_path):
    # Full batch: epoch 1's metrics are infinite, so the recorder has to drop them.
    p = ok(nets_train(tmp_path, "optimizer.lr=1e100", "loss=mse", "model.output=identity",
                      "target=one_hot", "train.epochs=3", "train.batch_size=null"))
    assert "diverged" in p.stderr
    run = only_run(db_of(tmp_path))
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["nets.outcome"] == "diverged"
    assert tags["nets.diverged"] == "true"
    assert int(tags["nets.nonfinite_metrics"]) >= 1
    assert tags["nets.first_nonfinite"].endswith("@1")
    c = client(db_of(tmp_path))
    keys = set(run.data.metrics)
    assert "curves/loss_train" in keys
    for key in keys:
        for m in c.get_metric_history(run.info.run_id, key):
            assert math.isfinite(m.value) and abs(m.value) <= 1e300, (key, m.step, m.value)


FAILING_SCRIPT = """
import sys
import nets.train as T

_orig = T.Trainer.run


def _boom(self, callbacks=(), hooks=()):
    def cb(epoch, metrics):
        if epoch == 1:
            raise RuntimeError("boom injected by test_cli")
    return _orig(self, [*callbacks, cb], hooks)


T.Trainer.run = _boom
from nets.app.train import cli

sys.argv = ["nets-train", *sys.argv[1:]]
cli()
"""


@pytest.mark.slow
def test_code_error_is_a_failed_run_with_traceback(tmp_path):
    script = tmp_path / "failing_train.py"
    script.write_text(FAILING_SCRIPT)
    p = nets_train(tmp_path, "train.epochs=3", "dataset.subsample=200",
                   exe=[sys.executable, str(script)])
    assert p.returncode != 0, p.stderr
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("nets-train: run failed: RuntimeError: boom injected"), p.stderr
    runs = all_runs(db_of(tmp_path))
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_id in last
    assert run.info.status == "FAILED"
    assert run.data.tags["nets.error"].startswith("RuntimeError: boom injected by test_cli")
    err = (artifact_dir(run) / "error.txt").read_text()
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: boom injected by test_cli" in err
    assert (artifact_dir(run) / "console.log").exists()
    # What was logged before the error is kept.
    assert [s for s, _ in history(db_of(tmp_path), run.info.run_id, "train/loss")] == [0, 1]
    assert not [r for r in runs if r.info.status == "RUNNING"]


def _wait_for_points(db: Path, proc: subprocess.Popen, n: int, timeout: float) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "nets-train ended before it was interrupted"
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                    got = con.execute("select count(distinct step) from metrics "
                                      "where key = 'curves/loss_train'").fetchone()[0]
                if got >= n:
                    return got
            except sqlite3.OperationalError:
                pass  # schema not there yet, or locked for a moment
        time.sleep(0.2)
    raise AssertionError(f"no {n} metric points within {timeout}s")


@pytest.mark.slow
def test_ctrl_c_kills_the_run(tmp_path):
    proc = subprocess.Popen(
        [str(NETS_TRAIN), "train.epochs=100000", "dataset=blobs", "tracking.progress=lines"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_points(db_of(tmp_path), proc, 5, timeout=90)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    runs = all_runs(db_of(tmp_path))
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "KILLED", err[-2000:]
    assert run.info.end_time is not None
    assert len(history(db_of(tmp_path), run.info.run_id, "train/loss")) >= 5


# -- bad input: one line, non-zero exit, nothing recorded --------------------------------

def _corrupt_csv(tmp: Path) -> list[str]:
    path = tmp / "bad.csv"
    path.write_text("0,1.0,2.0\n1,3.0,4.0\n2,x,5.0\n0,1.5,2.5\n")
    return ["dataset=csv", f"dataset.path='{path}'"]


def _corrupt_idx(tmp: Path) -> list[str]:
    from nets.data import MNIST_FILES, write_idx

    d = write_tiny_mnist(tmp / "idx")
    write_idx(d / MNIST_FILES["train"][0], np.zeros(40, np.uint8))  # labels where images go
    return ["dataset=mnist", f"dataset.path='{d}'", f"dataset.cache_dir='{tmp / 'cache'}'",
            "dataset.verify=false", "dataset.download=false"]


def _empty_mnist(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["dataset=mnist", f"dataset.path='{tmp / 'empty'}'",
            f"dataset.cache_dir='{tmp / 'cache'}'", "dataset.download=false"]


BAD = {
    # id: (args or args(tmp), substrings the line must contain)
    "unknown_option": (["model=foo"], ["model", "'foo'", "cnn, mlp, sequential"]),
    "unknown_group": (["modle=mlp"], ["modle", "did you mean 'model'"]),
    "plus_unknown_group": (["+modle=mlp"], ["modle", "did you mean 'model'"]),
    "plus_unknown_train_key": (["+train.lrr=0.1"], ["train.lrr", "epochs", "batch_size"]),
    "unknown_train_key": (["train.lrr=0.1"], ["train.lrr", "epochs", "batch_size"]),
    "unknown_model_key": (["model.hiden=[64]"], ["model.hiden", "did you mean 'hidden'"]),
    "epochs_not_int": (["train.epochs=abc"], ["train.epochs", "abc", "integer"]),
    "lr_zero": (["optimizer.lr=0"], ["optimizer.lr", "> 0"]),
    "lr_negative": (["optimizer.lr=-1"], ["optimizer.lr", "-1", "> 0"]),
    "epochs_negative": (["train.epochs=-1"], ["train.epochs", "-1", ">= 0"]),
    "hidden_zero": (["model.hidden=[0]"], ["model.hidden", "[0]", "positive integers"]),
    "hidden_not_list": (["model.hidden=abc"], ["model.hidden", "abc", "list"]),
    "dropout_one": (["model.dropout=1.0"], ["model.dropout", "1.0", "[0, 1)"]),
    "bce_on_softmax": (["loss=bce"], ["model.output", "softmax", "bce", "sigmoid"]),
    "pm1_on_sigmoid": (["target=plus_minus_one", "model.output=sigmoid", "loss=mse"],
                       ["target", "plus_minus_one", "sigmoid", "outside the range", "0..1"]),
    "cnn_on_flat_data": (["model=cnn", "dataset=blobs"], ["model", "cnn", "image dataset"]),
    "mnist_missing": (_empty_mnist, ["MNIST", "not found", "empty", "dataset.download=false"]),
    "csv_missing": (lambda tmp: ["dataset=csv", f"dataset.path='{tmp / 'missing.csv'}'"],
                    ["dataset.path", "missing.csv", "no such file"]),
    "csv_corrupt": (_corrupt_csv, ["bad.csv", "line 3", "'x'", "not a number"]),
    "idx_corrupt": (_corrupt_idx, ["train-images-idx3-ubyte.gz", "bad magic number"]),
    "seed_missing": (["seed=???"], ["seed", "a value is required"]),
    "schedule_typo": (["schedule=bold_drive"], ["schedule", "bold_drive",
                                                "did you mean 'bold_driver'"]),
    "momentum_on_sgd": (["optimizer.momentum=0.9"], ["optimizer.momentum", "sgd", "lr",
                                                     "weight_decay"]),
}


BAD.update({
    "progress_unknown": (["tracking.progress=bogus", "dataset=blobs", "train.epochs=1"],
                         ["tracking.progress", "bogus", "auto", "bar", "lines", "off"]),
    "sequential_width": (["model=sequential", "model.output=softmax", "train.epochs=1"],
                         ["model"]),
    "layer_missing_units": (["model=sequential", "model.output=softmax",
                             "model.layers=[{name: dense}]"], ["model.layers", "units"]),
})


def _bad_params():
    return [pytest.param(case, BAD[case][0], BAD[case][1], id=case) for case in BAD]


@pytest.mark.parametrize("case,make,wanted", _bad_params())
def test_bad_input_is_one_line_and_records_nothing(case, make, wanted, tmp_path):
    launch = tmp_path / "launch"
    launch.mkdir()
    args = make(tmp_path) if callable(make) else make
    p = nets_train(launch, *args, timeout=120)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    line = lines[0]
    assert line.startswith("nets-train: config error:"), line
    for w in wanted:
        assert w in line, (w, line)
    assert "Traceback" not in p.stdout + p.stderr
    assert n_runs_raw(db_of(launch)) == 0  # a missing store counts as zero runs
