"""``nets-report`` on a big sweep: 1 parent + 1,000 children × 50 epochs × 6 metrics.

The synthetic store is written through MLflow's own API (``MlflowClient.log_batch``,
so the schema is MLflow's), one batch of params, one of metrics and one of tags per
run, and cached under ``/tmp/nets-bench-report-<runs>x<epochs>/`` (generating takes a
minute; delete the directory to regenerate). Children look like ``nets.runs.job`` runs:
the flattened default config as params (lr × hidden × activation × seed varied),
``nets.*`` tags, per-epoch ``train/loss``, ``train/accuracy``, ``val/loss``,
``val/accuracy``, ``lr``, ``health/grad_norm/dense0``, summary metrics at step 0; 1%
of them FAILED half-way.

Then ``nets-report`` is timed end to end: in process (``nets.app.report.main`` with a
temporary ``--out``, logging to the parent included) and as a whole command
(``python -m nets.app.report``: interpreter start and imports included). Target (issue 6):
<= 10 s. ``--compare-fetch`` also times every history-fetching path on the same runs.

    python tests/benchmarks/bench_report.py [--runs 1000] [--epochs 50] [--repeats 3]
                                            [--compare-fetch] [--no-cli]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0


def base_params() -> dict[str, str]:
    from hydra import compose, initialize_config_dir

    from nets.app.config import CONF_DIR, to_plain
    from nets.app.schema import register
    from nets.store.write import flatten

    register()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = to_plain(compose("config"))
    return flatten({k: v for k, v in cfg.items() if k not in ("tracking", "diagnostics")})


def generate(uri: str, n_runs: int, epochs: int) -> str:
    """Write the synthetic sweep into the store at ``uri``; the parent run id."""
    import numpy as np
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from nets.store import client as store_client

    exp = store_client.prepare_store(uri, "bench-report")
    client = MlflowClient(uri)
    parent = client.create_run(exp, run_name="sweep bench", tags={
        "nets.sweep_role": "parent", "nets.sweep_name": "bench"}).info.run_id
    base = base_params()
    lrs = [0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.001]
    hidden = ["[16]", "[32]", "[64]", "[128]", "[64, 32]"]
    acts = ["sigmoid", "tanh", "relu", "elu"]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    i = 0
    for lr in lrs:
        for h in hidden:
            for act in acts:
                for seed in range(5):
                    if i >= n_runs:
                        break
                    params = {**base, "optimizer.lr": str(lr), "model.hidden": h,
                              "model.activation": act, "seed": str(seed)}
                    failed = i % 100 == 37
                    tags = {"mlflow.parentRunId": parent, "nets.config_hash": f"{i:016x}",
                            "nets.task": "classification", "nets.dataset": "digits",
                            "nets.sweep_role": "job", "nets.job": str(i)}
                    run = client.create_run(exp, run_name=f"{act}-lr{lr}-s{seed}", tags=tags)
                    rid = run.info.run_id
                    client.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
                    n_ep = epochs // 2 if failed else epochs
                    rate = lr * (1 + 0.3 * rng.standard_normal())
                    e = np.arange(n_ep)
                    tl = 2.3 * np.exp(-rate * e * 2) + 0.05 + 0.02 * rng.random(n_ep)
                    vl = tl + 0.05 + 0.03 * rng.random(n_ep)
                    ta = np.clip(1 - tl / 2.5 + 0.02 * rng.standard_normal(n_ep), 0, 1)
                    va = np.clip(ta - 0.03 + 0.02 * rng.standard_normal(n_ep), 0, 1)
                    gn = np.exp(-e / 20) * (1 + rng.random(n_ep))
                    now = int(time.time() * 1000)
                    metrics = []
                    for key, ys in (("train/loss", tl), ("val/loss", vl), ("train/accuracy", ta),
                                    ("val/accuracy", va), ("lr", np.full(n_ep, lr)),
                                    ("health/grad_norm/dense0", gn)):
                        metrics += [Metric(key, float(y), now, int(s)) for s, y in enumerate(ys)]
                    if not failed:
                        b = int(np.argmax(va))
                        summ = {"best/val_accuracy": va[b], "best/epoch": b,
                                "final/val_accuracy": va[-1], "final/train_accuracy": ta[-1],
                                "final/val_loss": vl[-1], "final/train_loss": tl[-1],
                                "final/epochs": n_ep - 1, "final/steps": 40 * (n_ep - 1),
                                "data/chance_accuracy": 0.1, "data/majority_accuracy": 0.102,
                                "data/val_is_train": 0.0}
                        metrics += [Metric(k, float(v), now, 0) for k, v in summ.items()]
                    for j in range(0, len(metrics), 1000):
                        client.log_batch(rid, metrics=metrics[j:j + 1000])
                    end_tags = ({"nets.error": "RuntimeError: synthetic failure"} if failed else
                                {"nets.outcome": "completed",
                                 "nets.diagnosis": "healthy" if va.max() > 0.5 else
                                 "lr_too_low,nothing_learned"})
                    client.log_batch(rid, tags=[RunTag(k, v) for k, v in end_tags.items()])
                    client.set_terminated(rid, "FAILED" if failed else "FINISHED")
                    i += 1
                    if i % 100 == 0:
                        print(f"  generated {i}/{n_runs} runs ({time.perf_counter() - t0:.0f}s)",
                              flush=True)
    client.set_terminated(parent, "FINISHED")
    return parent


def cached_store(n_runs: int, epochs: int) -> tuple[str, str]:
    from nets.store import uri as store_uri

    root = Path(tempfile.gettempdir()) / f"nets-bench-report-{n_runs}x{epochs}"
    marker = root / "parent_run_id"
    if not marker.is_file():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        (root / "mlruns").mkdir(parents=True)
        print(f"generating {n_runs} runs × {epochs} epochs × 6 metrics into {root} ...")
        t = time.perf_counter()
        parent = generate(store_uri.default_uri(root), n_runs, epochs)
        print(f"  done in {time.perf_counter() - t:.0f}s")
        marker.write_text(parent)
    return store_uri.default_uri(root), marker.read_text().strip()


def in_process(uri: str, parent: str, repeats: int) -> list[float]:
    from nets.app import report

    times = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            buf = io.StringIO()
            t = time.perf_counter()
            with contextlib.redirect_stdout(buf):
                rc = report.main([parent, "--uri", uri, "--out", out])
            times.append(time.perf_counter() - t)
            assert rc == 0, buf.getvalue()[-2000:]
            if i == 0:
                html = Path(out, "report.html").stat().st_size
                lines = buf.getvalue().strip().splitlines()
                print(f"  first run's output ends: {lines[-2].strip()}")
                print(f"  report.html {html / 1e6:.1f} MB, report.png "
                      f"{Path(out, 'report.png').stat().st_size / 1e3:.0f} kB")
    return times


def stages(uri: str, parent: str) -> None:
    from nets.report import files, sweep

    r = sweep.make_report(uri, parent)
    with tempfile.TemporaryDirectory() as out:
        files.write_report(r, Path(out))
    t = r.timings
    print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items())
          + f"  (histories via {r.fetch_method})")


def compare_fetch(uri: str, parent: str) -> None:
    from nets.report import model, sweep as report_sweep
    from nets.store import read
    from nets.store.curves import fetch_curves

    client = read.open_client(uri)
    sweep = report_sweep.collect(client, uri, read.get_run(client, parent))
    ids = [r.run_id for r in sweep.runs]
    avail = {r.run_id: r.metrics.keys() for r in sweep.runs}
    ref = None
    methods = ("rest", "per-run") if uri.startswith("http") else ("sqlite", "per-run")
    for method in methods:
        t = time.perf_counter()
        curves, how = fetch_curves(uri, ids, model.CURVE_KEYS, avail, method, client=client)
        dt = time.perf_counter() - t
        n = sum(len(c[0]) for cs in curves.values() for c in cs.values())
        same = ""
        if ref is None:
            ref = curves
        else:
            ok = all((ref[r][k][0] == curves[r][k][0]).all() and
                     (ref[r][k][1] == curves[r][k][1]).all() for r in ref for k in ref[r])
            same = "  identical to " + methods[0] if ok and ref.keys() == curves.keys() else "  DIFFERENT"
        print(f"  fetch {how:<8} {dt:6.2f}s  {n} points{same}")


def whole_command(uri: str, parent: str, repeats: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nets.app.report", parent, "--uri", uri, "--out",
                            out], check=True, env=env, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare-fetch", action="store_true")
    p.add_argument("--no-cli", action="store_true")
    a = p.parse_args()
    uri, parent = cached_store(a.runs, a.epochs)
    print(f"store {uri}, parent {parent}: {a.runs} runs × {a.epochs} epochs × 6 metrics")
    stages(uri, parent)
    t = in_process(uri, parent, a.repeats)
    print(f"nets-report in process:  median {statistics.median(t):.2f}s "
          f"(runs: {', '.join(f'{x:.2f}' for x in t)})   target <= {TARGET_S:.0f}s")
    if not a.no_cli:
        t = whole_command(uri, parent, a.repeats)
        print(f"nets-report command:     median {statistics.median(t):.2f}s "
              f"(runs: {', '.join(f'{x:.2f}' for x in t)})   target <= {TARGET_S:.0f}s")
    if a.compare_fetch:
        compare_fetch(uri, parent)


if __name__ == "__main__":
    main()
