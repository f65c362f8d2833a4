"""``nets-report``: a small real sweep, read back with ``MlflowClient`` and checked.

The sweep is built without the launcher: a parent run made with ``create_run`` and six
child jobs through ``nets.runs.job.run_job`` (blobs, 60 samples, 3 epochs, lr 0.3/0.03 ×
seed 0/1/2) plus one child ended FAILED by hand; an older two-run sweep sits in the
same store so "the latest sweep" and name lookup have something to tell apart.
``NETS_TEST_MLFLOW_SERVER=1`` also runs the report against a real ``mlflow server``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from nets.app import report as app_report
from nets.report import figures, html as report_html, model, sweep as rsweep
from nets.store import read, search
from nets.store import curves as store_curves
from nets.store.curves import fetch_curves
from nets.app import config as appconfig
from nets.app.schema import register
from nets.runs.job import JobSpec, run_job
from nets.store.client import prepare_store
from nets.store.tags import logged_key

LRS, SEEDS = (0.3, 0.03), (0, 1, 2)


def job_config(uri: str, lr: float, seed: int, extra=()) -> dict:
    register()
    with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[
            "dataset=blobs", "dataset.n_samples=60", "train.epochs=3", f"optimizer.lr={lr}",
            f"seed={seed}", "tracking.progress=off", "tracking.log_weights=false",
            "tracking.log_plots=false", f"tracking.uri={uri}", *extra])
    return appconfig.to_plain(cfg)


def make_sweep(uri: str, exp: str, name: str, lrs, seeds, failed: bool = True,
               extra=()) -> str:
    client = MlflowClient(uri)
    parent = client.create_run(exp, run_name=f"sweep {name}").info.run_id
    for lr in lrs:
        for seed in seeds:
            status = run_job(JobSpec(job_config(uri, lr, seed, extra), uri, exp,
                                     parent_run_id=parent))
            assert status.status == "FINISHED"
    if failed:
        run = client.create_run(exp, run_name="broken", tags={
            "mlflow.parentRunId": parent, "nets.error": "RuntimeError: boom"})
        client.set_terminated(run.info.run_id, "FAILED")
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    uri = "sqlite:///" + str(root / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    old = make_sweep(uri, exp, "old", (0.1,), (0, 1), failed=False)
    time.sleep(0.01)
    parent = make_sweep(uri, exp, "tiny", LRS, SEEDS)
    return {"uri": uri, "root": root, "exp": exp, "parent": parent, "old": old}


def children(uri: str, parent: str) -> list:
    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.`mlflow.parentRunId` = '{parent}'", max_results=1000)


def run_main(args, capsys) -> tuple[int, str, str]:
    rc = app_report.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def table_header(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("#  "))
    return line.split()


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nets-report: error: "), err
    return lines[0]


# -- the math -------------------------------------------------------------------------------

def test_mean_std_is_the_sample_std():
    m, s, n = model.mean_std([1.0, 2.0, 3.0, 4.0, None, math.nan])
    assert (m, n) == (2.5, 4)
    assert s == pytest.approx(math.sqrt(((1.5 ** 2) * 2 + (0.5 ** 2) * 2) / 3))
    assert math.isnan(model.mean_std([0.7])[1]) and model.mean_std([])[2] == 0


def test_band_over_unequal_curves():
    a = (np.array([0, 1, 2]), np.array([1.0, 3.0, 5.0]))
    b = (np.array([0, 1]), np.array([3.0, 5.0]))
    steps, mean, std, n = model.band([a, b])
    assert steps.tolist() == [0, 1, 2] and n.tolist() == [2, 2, 1]
    assert mean.tolist() == [2.0, 4.0, 5.0]
    assert std[:2] == pytest.approx([math.sqrt(2.0), math.sqrt(2.0)])   # |1-3|/sqrt(2)
    assert math.isnan(std[2])


# -- the report of a real sweep -------------------------------------------------------------

def test_ranking_matches_client_and_failed_run_is_last(store, tmp_path, capsys):
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--by", "run", "--no-log"], capsys)
    assert rc == 0, err
    rows = read_csv(tmp_path / "report.csv")
    client = MlflowClient(store["uri"])
    kids = children(store["uri"], store["parent"])
    assert {r["run_id"] for r in rows} == {k.info.run_id for k in kids}
    finished = [r for r in rows if r["status"] == "FINISHED"]
    best = [client.get_run(r["run_id"]).data.metrics["best_val_accuracy"] for r in finished]
    assert len(best) == 6 and best == sorted(best, reverse=True)
    assert [float(r["best/val_accuracy"]) for r in finished] == best
    for r in finished:
        assert int(r["best_epoch"]) == client.get_run(r["run_id"]).data.metrics["best_epoch"]
    assert rows[-1]["status"] == "FAILED" and rows[-1]["error"] == "RuntimeError: boom"
    assert [int(r["rank"]) for r in rows] == list(range(1, 8))
    # printed: exactly the varying params, the failed run at the bottom with its status
    head = table_header(out)
    assert head[1:3] == ["optimizer.lr", "seed"] and head[3] == "best/val_accuracy"
    assert not [h for h in head if "." in h and h not in ("optimizer.lr",)
                and not h.startswith(("best/", "final/"))]
    table = out.split("\n\n")[1].splitlines()
    assert "FAILED" in table[-1] and "boom" in table[-1]
    assert "ranked by best/val_accuracy (higher is better)" in out


def test_seed_aggregation_by_hand(store, tmp_path, capsys):
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--no-log"], capsys)
    assert rc == 0, err
    client = MlflowClient(store["uri"])
    rows = read_csv(tmp_path / "report.csv")
    r = rsweep.make_report(store["uri"], store["parent"])
    assert r.varying == ["optimizer.lr", "seed"] and r.config_keys == ["optimizer.lr"]
    assert len(r.groups) == 2 and all(len(g.runs) == 3 for g in r.groups)
    # printed per config (the default with seeds): n column, mean ± std
    assert table_header(out)[1:3] == ["optimizer.lr", "n"]
    for lr in LRS:
        ids = [x["run_id"] for x in rows if x["optimizer.lr"] == str(lr)]
        vals = [client.get_run(i).data.metrics["best_val_accuracy"] for i in ids]
        mean = sum(vals) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (3 - 1))
        (g,) = [g for g in r.groups if g.runs[0].params["optimizer.lr"] == str(lr)]
        assert g.mean == pytest.approx(mean, abs=1e-12) and g.n == 3
        assert g.std == pytest.approx(std, abs=1e-12)
        for x in rows:
            if x["run_id"] in ids:
                assert float(x["config_mean"]) == pytest.approx(mean, abs=1e-12)
                assert float(x["config_std"]) == pytest.approx(std, abs=1e-12)
        # the band of the validation loss, per epoch, by hand from the histories
        hist = [{m.step: m.value for m in client.get_metric_history(i, "curves/loss_val")} for i in ids]
        steps, bmean, bstd, n = model.band([g_run.curves["val/loss"] for g_run in g.runs])
        assert steps.tolist() == [0, 1, 2, 3] and n.tolist() == [3, 3, 3, 3]
        for k, s in enumerate(steps):
            v = [h[s] for h in hist]
            m = sum(v) / 3
            assert bmean[k] == pytest.approx(m, abs=1e-12)
            assert bstd[k] == pytest.approx(math.sqrt(sum((x - m) ** 2 for x in v) / 2),
                                            abs=1e-12)
        line = next(ln for ln in out.splitlines() if ln.split()[1:2] == [str(lr)])
        assert f"{model.fmt(mean)} ± {model.fmt(std, 2)}" in line and " 3 " in line
    assert "failed or killed runs:" in out and "boom" in out.split("failed or killed")[1]


def test_files_written_logged_and_html_lists_every_run(store, tmp_path, capsys):
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path], capsys)
    assert rc == 0, err
    for name in ("report.png", "report.html", "report.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(store["uri"])
    logged = {a.path for a in client.list_artifacts(store["parent"])}
    assert {"report.png", "report.html", "report.csv"} <= logged
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    kids = children(store["uri"], store["parent"])
    assert len(kids) == 7
    for k in kids:
        assert k.info.run_id in page
    assert page.count("<polyline") >= 6 * 4            # every finished run's curves
    assert ">lr</text>" not in page                      # constant rates: no rate panel
    assert "<script>" in page and "http" not in page.split("<body>")[1].split("<script>")[0] \
        .replace("http://", "")                          # nothing fetched from outside
    assert "logged to parent run" in out


def test_top_limits_the_picture(store, tmp_path, capsys):
    r = rsweep.make_report(store["uri"], store["parent"])
    fig = figures.grid_figure(r, top=1)
    assert len(fig.axes) == 2 and r.panels == (1, 2)      # one config: loss + accuracy
    assert len(figures.grid_figure(r, top=0).axes) == 4
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--top", "1", "--no-log"], capsys)
    assert rc == 0 and "picture: 1 of 2 configs" in out
    assert len(read_csv(tmp_path / "report.csv")) == 7  # the table keeps every run


def test_adaptive_schedules_add_the_learning_rate_row(store, tmp_path):
    # Constant rates: no lr curve fetched, two axes per config (test_top_limits_the_picture).
    assert all("lr" not in r.curves for r in rsweep.make_report(store["uri"], store["parent"]).runs)
    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    parent = make_sweep(uri, prepare_store(uri), "bold", (0.3,), (0, 1), failed=False,
                        extra=["schedule=bold_driver", "train.epochs=6"])
    r = rsweep.make_report(uri, parent)
    client = MlflowClient(uri)
    for run in r.runs:
        steps, values = run.curves["lr"]
        hist = sorted(client.get_metric_history(run.run_id, "curves/lr"), key=lambda m: m.step)
        assert list(values) == [m.value for m in hist] and len(values) == 7
        assert values[-1] != values[0]                      # the schedule moved it
    fig = figures.grid_figure(r)
    assert len(fig.axes) == 3                               # one config: loss, accuracy, lr
    lr_ax = fig.axes[2]
    assert lr_ax.get_yscale() == "log" and len(lr_ax.lines) == 2   # one line per seed
    assert "learning rate" in [t.get_text() for t in fig.legends[0].get_texts()]
    # report.html: the same rate under each row's thumbnails, readable and enlargeable
    page = report_html.render_html(r)
    svgs = re.findall(r'<svg class="c".*?</svg>', page, flags=re.S)
    assert len(svgs) == 1 + 2                               # the config row and its 2 runs
    for svg in svgs:
        w, h = (float(x) for x in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups())
        assert w >= 400 and h >= 60                         # was 308 x 54 for two panels
        assert ">lr</text>" in svg and 'stroke="#2ca02c"' in svg
        lines = re.findall(r"<polyline[^>]*>", svg)
        train = [x for x in lines if 'stroke="#1f77b4"' in x]
        val = [x for x in lines if 'stroke="#ff7f0e"' in x]
        assert train and val and len(train) == len(val)
        # validation dashed over a solid training line: both visible where they agree
        assert all('class="v"' in x for x in val) and not any('class="v"' in x for x in train)
        assert lines.index(train[0]) < lines.index(val[0])
    assert "id='zoom'" in page and "svg.c" in page.split("<script>")[1]   # click to enlarge
    assert "learning rate" in page.split("<h2>")[0]                      # in the key


def test_filter_by_param_value(store, tmp_path, capsys):
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--filter", "optimizer.lr=0.3", "--no-log"], capsys)
    assert rc == 0, err
    rows = read_csv(tmp_path / "report.csv")
    assert len(rows) == 3 and {r["optimizer.lr"] for r in rows} == {"0.3"}
    assert "filter: optimizer.lr=0.3" in out
    r = rsweep.make_report(store["uri"], store["parent"], filters=["optimizer.lr=0.30,0.03"])
    assert len(r.runs) == 6 and r.varying == ["optimizer.lr", "seed"]
    r = rsweep.make_report(store["uri"], store["parent"], filters=["status=FAILED"])
    assert [x.status for x in r.runs] == ["FAILED"]
    r = rsweep.make_report(store["uri"], store["parent"], filters=["seed!=0", "optimizer.lr=0.03"])
    assert sorted(x.params["seed"] for x in r.runs) == ["1", "2"]
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--filter", "optimizer.lrr=0.3"], capsys)
    assert rc == 2 and "optimizer.lrr" in one_error_line(err)


def test_metric_option_ranks_ascending(store, tmp_path, capsys):
    rc, out, err = run_main([store["parent"], "--uri", store["uri"], "--out", tmp_path,
                             "--metric", "best/val_loss", "--by", "run", "--no-log"], capsys)
    assert rc == 0, err
    assert "ranked by best/val_loss (lower is better)" in out
    client = MlflowClient(store["uri"])
    rows = [r for r in read_csv(tmp_path / "report.csv") if r["status"] == "FINISHED"]
    best = []
    for r in rows:   # classification runs log no best/val_loss: the curve's minimum
        hist = client.get_metric_history(r["run_id"], "curves/loss_val")
        low = min(hist, key=lambda m: m.value)
        best.append(low.value)
        assert float(r["best/val_loss"]) == low.value and int(r["best_epoch"]) == low.step
        assert float(r["final/val_loss"]) == max(hist, key=lambda m: m.step).value
    assert best == sorted(best)
    r = rsweep.make_report(store["uri"], store["parent"], metric="best/val_loss", ascending=False)
    vals = [x.value for x in r.runs if x.value is not None]
    assert vals == sorted(vals, reverse=True)


def test_default_is_the_latest_sweep_and_names_work(store, tmp_path, capsys):
    rc, out, err = run_main(["--uri", store["uri"], "--out", tmp_path / "a", "--no-log"], capsys)
    assert rc == 0, err
    assert f"parent {store['parent']}" in out
    rc, out, err = run_main(["old", "--uri", store["uri"], "--out", tmp_path / "b", "--no-log"],
                            capsys)
    assert rc == 0, err
    assert f"parent {store['old']}" in out and "2 runs" in out
    rc, out, err = run_main(["sweep tiny", "--uri", store["uri"], "--out", tmp_path / "c",
                             "--no-log"], capsys)
    assert rc == 0 and f"parent {store['parent']}" in out


def test_default_out_dir(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main(["--uri", store["uri"], "--no-log"], capsys)
    assert rc == 0, err
    assert (tmp_path / "reports" / f"sweep_tiny-{store['parent'][:8]}" / "report.html").is_file()


def test_bad_sweep_gives_one_line(store, tmp_path, capsys):
    for ident in ("0" * 32, "no-such-sweep"):
        rc, out, err = run_main([ident, "--uri", store["uri"], "--out", tmp_path], capsys)
        assert rc == 2
        assert ident in one_error_line(err)
        assert not (tmp_path / "report.csv").exists()
    child = children(store["uri"], store["parent"])[0].info.run_id
    rc, out, err = run_main([child, "--uri", store["uri"], "--out", tmp_path], capsys)
    assert rc == 2 and store["parent"] in one_error_line(err)
    rc, out, err = run_main(["--uri", str(tmp_path / "nowhere"), "--out", tmp_path], capsys)
    assert rc == 2 and "no MLflow store" in one_error_line(err)


def test_fetch_paths_agree(store):
    client = MlflowClient(store["uri"])
    ids = [k.info.run_id for k in children(store["uri"], store["parent"])]
    got = {}
    for method in ("sqlite", "per-run"):
        keys = [logged_key(k) for k in model.CURVE_KEYS]
        curves, how = fetch_curves(store["uri"], ids, keys, method=method, client=client)
        assert how == method
        got[method] = curves
    ref = got["sqlite"]
    assert len(ref) == 6 and all(set(c) == {"curves/loss_train", "curves/loss_val",
                                            "curves/accuracy_train", "curves/accuracy_val"}
                                 for c in ref.values())
    for other in ("per-run",):
        assert got[other].keys() == ref.keys()
        for run_id, cs in ref.items():
            for key, (s, v) in cs.items():
                s2, v2 = got[other][run_id][key]
                assert s.tolist() == s2.tolist() and v.tolist() == v2.tolist()


def test_resumed_sweep_includes_the_older_parent_and_dedupes(tmp_path, capsys):
    uri = "sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db")
    exp = prepare_store(uri)
    client = MlflowClient(uri)

    def child(parent, h, status, acc, lr):
        run = client.create_run(exp, tags={"mlflow.parentRunId": parent, "nets.config_hash": h,
                                           "nets.task": "classification"})
        client.log_param(run.info.run_id, "optimizer.lr", lr)
        if acc is not None:
            client.log_metric(run.info.run_id, "best/val_accuracy", acc, step=0)
        client.set_terminated(run.info.run_id, status)
        time.sleep(0.005)
        return run.info.run_id

    p1 = client.create_run(exp, run_name="sweep r").info.run_id
    a = child(p1, "a", "FINISHED", 0.5, "0.1")
    b_failed = child(p1, "b", "FAILED", None, "0.2")
    client.set_terminated(p1, "FAILED")
    p2 = client.create_run(exp, run_name="sweep r", tags={"nets.resumes": p1}).info.run_id
    b = child(p2, "b", "FINISHED", 0.7, "0.2")
    client.set_terminated(p2, "FINISHED")
    rc, out, err = run_main(["r", "--uri", uri, "--out", tmp_path / "o", "--by", "run",
                             "--no-log"], capsys)
    assert rc == 0, err
    assert f"parent {p2}" in out and p1 in out
    assert [r["run_id"] for r in read_csv(tmp_path / "o" / "report.csv")] == [b, a]
    assert "1 earlier attempt(s)" in out
    r = rsweep.make_report(uri, p2, all_attempts=True)
    assert {x.run_id for x in r.runs} == {a, b, b_failed}


# -- a real mlflow server ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(os.environ.get("NETS_TEST_MLFLOW_SERVER") != "1",
                    reason="starts an mlflow server (~20 s): set NETS_TEST_MLFLOW_SERVER=1")
def test_http_server_uses_the_bulk_endpoint(tmp_path, capsys):
    db = tmp_path / "server.db"
    port = _free_port()
    exe = Path(sys.executable).parent / "mlflow"
    cmd = [str(exe), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
           "--port", str(port), "--artifacts-destination", str(tmp_path / "artifacts"),
           "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        exp = prepare_store(uri)
        parent = make_sweep(uri, exp, "served", LRS, (0, 1))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(read, "STREAM_PAGE", 2)    # several runs/search pages
            over_http = rsweep.make_report(uri, parent)
        assert over_http.fetch_method == "rest"
        direct = rsweep.make_report(f"sqlite:///{db}", parent)
        assert direct.fetch_method == "sqlite"
        assert [r.run_id for r in over_http.runs] == [r.run_id for r in direct.runs]
        for a, b in zip(over_http.runs, direct.runs):   # runs/search's JSON = the entities
            assert (a.name, a.status, a.start_time, a.experiment_id, a.params, a.tags) == \
                (b.name, b.status, b.start_time, b.experiment_id, b.params, b.tags)
            assert a.metrics.keys() == b.metrics.keys() and all(
                a.metrics[k] == b.metrics[k] or (math.isnan(a.metrics[k])
                                                 and math.isnan(b.metrics[k]))
                for k in a.metrics)
            assert (a.value, a.epoch, a.final, a.rank) == (b.value, b.epoch, b.final, b.rank)
            assert a.curves.keys() == b.curves.keys()
            for k in a.curves:
                assert a.curves[k][0].tolist() == b.curves[k][0].tolist()
                assert a.curves[k][1].tolist() == b.curves[k][1].tolist()
        # the --resume skip check over the server (runs/search's JSON) = on the file
        hashes = read.finished_by_tag(f"sqlite:///{db}", exp, "nets.config_hash")
        assert set(hashes.values()) == {r.run_id for r in direct.runs
                                        if r.status == "FINISHED"
                                        and "nets.config_hash" in r.tags}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(read, "REST_SEARCH_PAGE", 3)
            assert read.finished_by_tag(uri, exp, "nets.config_hash") == hashes
        # runs/search read in start-time ranges at once: MLflow's runs in MLflow's order,
        # with runs of one millisecond on both sides of a page's edge
        client = MlflowClient(uri)
        tied = client.create_experiment("tied")
        for i, t in enumerate((1000, 1000, 1000, 1000, 2000, 2000, 5000, 9000, 9001)):
            client.create_run(tied, start_time=t, tags={"half": str(i % 2)})
        for flt in ("", "tags.half = '1'"):
            for order in (None, ["attributes.start_time ASC"], ["attributes.start_time DESC"]):
                want = [r.info.run_id for r in client.search_runs([tied], flt, order_by=order)]
                for page in (1, 2, 3):
                    got = [r.info.run_id for p in search.rest_pages(uri, [tied], flt, page,
                                                                    order, split=4)
                           for r in p]
                    assert got == want, (flt, order, page)
        # the 25,000-point cap: chunks are split and asked again
        with contextlib.ExitStack() as stack:
            stack.enter_context(pytest.MonkeyPatch.context()).setattr(store_curves, "REST_MAX_RESULTS", 5)
            client = MlflowClient(uri)
            ids = [r.run_id for r in direct.runs]
            small, how = fetch_curves(uri, ids, ["curves/loss_val"], method="rest",
                                           client=client)
            assert how == "rest"
            for r in direct.runs:
                if "val/loss" in r.curves:
                    assert small[r.run_id]["curves/loss_val"][1].tolist() == \
                        r.curves["val/loss"][1].tolist()
        rc, out, err = run_main([parent, "--uri", uri, "--out", tmp_path / "out"], capsys)
        assert rc == 0, err
        logged = {a.path for a in MlflowClient(uri).list_artifacts(parent)}
        assert {"report.png", "report.html", "report.csv"} <= logged
        assert rsweep.make_report(uri, None).sweep.parent.info.run_id == parent
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
