"""How every read-back command's cost grows with the store (issue 19).

Two stores are filled with one sweep of 100, then 1,000, then 10,000 child runs of 50
epochs (synthetic, written through ``MlflowClient`` in bulk: one ``create_run``, one
``log_batch`` of params + 6 curves × 50 epochs + summaries + tags, one
``set_terminated`` per run; writers in threads, and in 2 processes for PostgreSQL): a
local SQLite file, and an ``mlflow server`` (MLflow's default 4 workers) on a
throw-away PostgreSQL (started here on 127.0.0.1, as ``tests/test_postgres.py`` does;
needs the distribution's ``postgresql`` and ``psycopg``; filled through the client on
the database, read through the server). At each size it times:

- ``nets-report`` of the sweep (the whole command in a fresh interpreter, its files
  logged to the parent), and its peak memory (max RSS of that process);
- the ``nets-sweep --resume`` skip check of a 1,000-point sweep with everything done:
  the store-level function that check runs, ``nets.runs.records.finished_by_hash``
  (every FINISHED run's job hash: one read-only query on a SQLite file, a search over a
  server), then the 1,000 look-ups ("resume check"); the launcher itself is not driven
  (it would also compose 1,000 Hydra configs, which does not depend on the store);
- ``nets-cleanup --dry-run`` (the whole command);
- ``nets-reproduce`` of one real (tiny) run recorded in the same store (the whole
  command: it reruns the job, so a constant training cost is included);
- the first page of the MLflow UI's runs table: the ``POST /ajax-api/2.0/mlflow/runs/search``
  the UI sends (100 runs, newest first), against an ``mlflow server`` on the store.

Over the server, which is sent a few requests of each kind first (a long-running
server has set up its workers long before), it also takes the CPU seconds the server (its workers and PostgreSQL's
backends) spent on the report and on the resume check: on one machine the command and
the server share the cores, and most of a read over a server is the server's work.

After each fill the parent gets the two files a nets sweep's launcher leaves when the
sweep ends, with the launcher's functions: ``curves.npz`` (every FINISHED job's report
curves, which each job returns to the launcher; here rebuilt from each run's job number)
and ``runs.json.gz`` (the children as read back then, ``nets.store.summary``); the
report reads them instead of every run's histories and a search of every run, and
asks the store only what started, ended or was deleted since (a minute's margin).
``--no-file`` measures without them (a sweep that was not nets' or did not end).

It prints seconds per command per size, the growth factor per 10× (≈10 = linear), and
the goals: report <= 10 s at 1,000 runs over a server and <= 30 s at 10,000; resume
check <= 5 s at 1,000 points; report memory <= 1 GB at 10,000 runs.

    python tests/benchmarks/bench_growth.py [--sizes 100,1000,10000] [--stores sqlite,postgres]
                                            [--workdir DIR] [--threads 4] [--procs 2]
                                            [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from _services import Services, clean_env, postgres_bin  # noqa: E402

EPOCHS = 50
SWEEP_POINTS = 1000
UI_PAGE = 100
GOALS = {("report", "postgres", 1000): 10.0, ("report", None, 10000): 30.0,
         ("resume check", None, 1000): 5.0}
MEMORY_GOAL_MB = 1024


def script(name: str) -> list[str]:
    """Console script ``name`` of this checkout (pyproject.toml) as an argv prefix."""
    import re

    text = (HERE.parents[1] / "pyproject.toml").read_text()
    module, func = dict(re.findall(r'^(nets-[a-z-]+) = "([\w.:]+)"$', text, flags=re.M))[name] \
        .split(":")
    return [sys.executable, "-c", f"import sys; sys.argv[0] = {name!r}; {HWM_AT_EXIT}"
            f"from {module} import {func}; sys.exit({func}())"]


# The command's own peak memory: /proc/self/status's VmHWM at exit, written where
# NETS_BENCH_HWM says. wait4's ru_maxrss is not it: Linux carries the high-water mark of
# the memory the child had before exec (this benchmark's own: up to 976 MB after a fill)
# into the child's figure.
HWM_AT_EXIT = ("import atexit, os; atexit.register(lambda p=os.environ.get('NETS_BENCH_HWM'): "
               "p and open(p, 'w').write(next((ln for ln in open('/proc/self/status') "
               "if ln.startswith('VmHWM')), ''))); ")


def timed(argv: list[str], cwd: Path) -> tuple[float, float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code, output) of one command in a
    fresh process. CPU seconds (user + system of the command, not of the server) are
    what a busy shared machine distorts least."""
    hwm = Path(tempfile.mkdtemp(prefix="nets-hwm-")) / "hwm"
    t = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=clean_env(NETS_BENCH_HWM=str(hwm)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t
    try:
        rss = int(hwm.read_text().split()[1]) / 1024          # "VmHWM:  123456 kB"
    except (OSError, IndexError, ValueError):
        rss = usage.ru_maxrss / 1024
    shutil.rmtree(hwm.parent, ignore_errors=True)
    return dt, usage.ru_utime + usage.ru_stime, rss, p.returncode, out


# -- filling a store ----------------------------------------------------------------------

def base_params() -> dict[str, str]:
    from bench_report import base_params as params

    return params()


def fast_sqlite_writes() -> None:
    """This process's SQLite connections commit without waiting for the disk
    (``PRAGMA synchronous=OFF``: a connection setting, not stored in the file; a crash
    mid-fill could corrupt a benchmark store, nothing else)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_con, _record):
        if type(dbapi_con).__module__.startswith("sqlite3"):
            dbapi_con.execute("PRAGMA synchronous=OFF")

    if not event.contains(Engine, "connect", on_connect):
        event.listen(Engine, "connect", on_connect)


def fill(uri: str, exp: str, parent: str, start: int, stop: int, threads: int,
         procs: int = 1) -> float:
    """Children ``start..stop-1`` of ``parent``; seconds taken. ``procs`` processes of
    ``threads`` writers each (one process's writers share its interpreter lock: the
    client's own work, building and encoding 300 metrics a run, is CPU)."""
    if procs > 1 and stop - start > 100:
        import multiprocessing

        t = time.perf_counter()
        cuts = [start + (stop - start) * k // procs for k in range(procs + 1)]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(procs) as pool:
            pool.starmap(fill, [(uri, exp, parent, a, b, threads) for a, b in
                                zip(cuts, cuts[1:])])
        return time.perf_counter() - t
    import numpy as np
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:"):
        fast_sqlite_writes()
    client = MlflowClient(uri)
    base = base_params()
    hidden = ["[16]", "[32]", "[64]", "[128]", "[64, 32]"]
    acts = ["sigmoid", "tanh", "relu", "elu"]

    def one(i: int) -> None:
        lr, h = LRS[i % 20], hidden[(i // 20) % 5]
        act, seed = acts[(i // 100) % 4], i // 400
        params = {**base, "optimizer.lr": str(lr), "model.hidden": h, "model.activation": act,
                  "seed": str(seed)}
        run = client.create_run(exp, run_name=f"{act}-lr{lr}-s{seed}", tags={
            "mlflow.parentRunId": parent, "nets.config_hash": f"{i:016x}",
            "nets.job_hash": f"{i:016x}",
            "nets.task": "classification", "nets.sweep_role": "job", "nets.job": str(i)})
        e = np.arange(EPOCHS)
        curves = synthetic_curves(i)
        va = curves["val/accuracy"]
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(y), now, int(s)) for k, ys in
                   (*curves.items(), ("health/grad_norm/dense0", np.exp(-e / 20)))
                   for s, y in enumerate(ys)]
        tl, vl = curves["train/loss"], curves["val/loss"]
        b = int(np.argmax(va))
        metrics += [Metric(k, float(v), now, 0) for k, v in {
            "best/val_accuracy": va[b], "best/epoch": b, "final/val_accuracy": va[-1],
            "final/val_loss": vl[-1], "final/train_loss": tl[-1],
            "data/chance_accuracy": 0.1}.items()]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("nets.outcome", "completed"),
                               RunTag("nets.diagnosis", "healthy")])
        client.set_terminated(run.info.run_id, "FINISHED")

    t = time.perf_counter()
    pool = ThreadPoolExecutor(threads)
    try:
        for k, _ in enumerate(pool.map(one, range(start, stop)), 1):
            if k % 1000 == 0:
                print(f"    {start + k} runs ({time.perf_counter() - t:.0f} s)", flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)   # Ctrl-C: stop writing at once
    return time.perf_counter() - t


LRS = [round(0.5 * 0.8 ** k, 6) for k in range(20)]


def synthetic_curves(i: int) -> dict:
    """Run ``i``'s report curves, as ``fill`` logs them (the same every time)."""
    import numpy as np

    rng = np.random.default_rng(i)
    lr, e = LRS[i % 20], np.arange(EPOCHS)
    tl = 2.3 * np.exp(-lr * e * 2) + 0.05 + 0.02 * rng.random(EPOCHS)
    vl = tl + 0.05 + 0.03 * rng.random(EPOCHS)
    ta = np.clip(1 - tl / 2.5 + 0.02 * rng.standard_normal(EPOCHS), 0, 1)
    va = np.clip(ta - 0.03 + 0.02 * rng.standard_normal(EPOCHS), 0, 1)
    return {"train/loss": tl, "val/loss": vl, "train/accuracy": ta, "val/accuracy": va,
            "lr": np.full(EPOCHS, lr)}


def sweep_file(client, uri: str, exp: str, parent: str) -> None:
    """The parent's files, as the launcher leaves them when a sweep of these runs ends:
    the curves file (``nets.runs.records.log_sweep_curves``, from what each job
    returned: here rebuilt from each run's job number) and the runs file
    (``log_sweep_runs``: the children read back through ``uri``)."""
    import numpy as np

    from nets.runs.records import log_sweep_curves, log_sweep_runs
    from nets.store import read

    steps = np.arange(EPOCHS)
    curves = {r.info.run_id: {k: (steps, v) for k, v in
                              synthetic_curves(int(r.data.tags["nets.job"])).items()}
              for r in read.children(client, [exp], parent)}

    class Parent:       # what the launcher's parent recorder does for these two
        run_id = parent

        @staticmethod
        def log_file(path):
            client.log_artifact(parent, str(path))

        @staticmethod
        def set_tags(tags):
            for k, v in tags.items():
                client.set_tag(parent, k, v)

    log_sweep_curves(Parent, curves)
    log_sweep_runs(Parent, uri)


def real_run(uri: str, exp: str) -> str:
    """One tiny real ``nets-train`` run (it has a config.yaml: reproducible)."""
    from hydra import compose, initialize_config_dir

    from nets.app import config as appconfig
    from nets.app.schema import register
    from nets.runs.job import JobSpec, run_job

    register()
    with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[
            "dataset=blobs", "dataset.n_samples=60", "train.epochs=3", "tracking.progress=off",
            "tracking.log_weights=false", "tracking.log_plots=false", f"tracking.uri={uri}"])
    return run_job(JobSpec(appconfig.to_plain(cfg), uri, exp)).run_id


# -- the measurements ---------------------------------------------------------------------

def tree_cpu(pids: list[int]) -> float | None:
    """CPU seconds (user + system) so far of the processes ``pids`` and all their
    descendants (the mlflow server's workers, PostgreSQL's backends); ``None`` without
    ``/proc``. What the server spent on a command, next to the command's own CPU."""
    procs = Path("/proc")
    if not procs.is_dir():
        return None
    stats = {}
    for d in procs.iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, list(pids)
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def warm(server: str, exp: str, parent: str) -> None:
    """Send every kind of request the commands send, 8 at a time, before measuring: a
    server's worker sets up its store on its first request (7-12 s of CPU over MLflow's
    4 workers; a lab's long-running server has paid it long before)."""
    import requests

    def one(_):
        base = f"{server}/api/2.0/mlflow"
        r = requests.post(f"{base}/runs/search", timeout=300, json={
            "experiment_ids": [exp], "filter": f"tags.`mlflow.parentRunId` = '{parent}'",
            "max_results": 1})
        run = r.json()["runs"][0]["info"]["run_id"]
        requests.get(f"{server}/ajax-api/2.0/mlflow/metrics/get-history-bulk", timeout=300,
                     params=[("run_id", run), ("metric_key", "val/loss")])
        requests.get(f"{base}/runs/get", params={"run_id": parent}, timeout=300)

    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            list(pool.map(one, range(8)))


def ui_first_page(server: str, exp: str) -> float:
    """Seconds of the runs table's first request (the faster of two: the first request
    after a server start also pays for the server's lazy set-up)."""
    import requests

    body = {"experiment_ids": [exp], "filter": "", "run_view_type": "ACTIVE_ONLY",
            "max_results": UI_PAGE, "order_by": ["attributes.start_time DESC"]}
    times = []
    for _ in range(2):
        t = time.perf_counter()
        r = requests.post(f"{server}/ajax-api/2.0/mlflow/runs/search", json=body, timeout=300)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200 and len(r.json()["runs"]) == UI_PAGE, r.text[:300]
    return min(times)


def resume_check(uri: str, exp: str, finished) -> float:
    """Seconds to find which of the 1,000 points of a finished sweep are done."""
    hashes = [f"{i:016x}" for i in range(SWEEP_POINTS)]
    t = time.perf_counter()
    done = finished(uri, exp)
    skipped = sum(h in done for h in hashes)
    dt = time.perf_counter() - t
    assert skipped == SWEEP_POINTS, skipped
    return dt


def measure(uri: str, server: str | None, exp: str, parent: str, real: str, n: int,
            work: Path, server_pids: list[int] | None = None) -> dict:
    """``server_pids``: the processes that answer ``uri`` (a server and its database),
    whose CPU is measured with the report's and the resume check's."""
    out = {}
    if server_pids:
        warm(uri, exp, parent)
    s0 = tree_cpu(server_pids) if server_pids else None
    dt, cpu, rss, rc, text = timed([*script("nets-report"), parent, "--uri", uri, "--out",
                                    str(work / f"report-{n}")], work)
    assert rc == 0, text[-2000:]
    assert f"{n} runs" in text, text[:2000]
    out["report"], out["report CPU"], out["report MB"] = dt, cpu, rss
    if s0 is not None:
        out["report server CPU"] = tree_cpu(server_pids) - s0
    print("    nets-report: " + next((ln.strip() for ln in text.splitlines()
                                     if ln.startswith("wrote ")), ""), flush=True)
    if n >= SWEEP_POINTS:
        from nets.runs import records

        s0 = tree_cpu(server_pids) if server_pids else None
        out["resume check"] = resume_check(uri, exp, records.finished_by_hash)
        if s0 is not None:
            out["resume server CPU"] = tree_cpu(server_pids) - s0
    dt, cpu, _, rc, text = timed([*script("nets-cleanup"), "--uri", uri, "--dry-run"], work)
    assert rc == 0 and "would change 0 runs" in text, text[-2000:]
    out["cleanup --dry-run"], out["cleanup CPU"] = dt, cpu
    dt, cpu, _, rc, text = timed([*script("nets-reproduce"), real, "--uri", uri], work)
    assert rc == 0 and "identical" in text, text[-2000:]
    out["reproduce"], out["reproduce CPU"] = dt, cpu
    if server:
        out["UI first page"] = ui_first_page(server, exp)
    return out


def run_store(kind: str, sizes: list[int], work: Path, threads: int, procs: int,
              workers: int, keep: bool = False, no_file: bool = False) -> dict:
    from nets.store import client as store_client, read

    services = Services(work / "services")
    results = {}
    try:
        if kind == "sqlite":
            db = work / "mlruns" / "mlflow.db"
            uri = "sqlite:///" + str(db)
            exp = store_client.prepare_store(uri, "nets")
            # the UI over the same file, as nets-ui serves it
            server = services.mlflow_server(uri, work / "mlruns" / "artifacts",
                                            workers=workers)
            # one process: SQLite takes one writer at a time (its threads overlap the
            # client's own work with the other's commit)
            write_uri, write_threads, write_procs = uri, threads, 1
        else:
            backend = services.postgres(work / "pg" if keep else None)
            uri = server = services.mlflow_server(backend, work / "artifacts", workers=workers)
            services.wait_healthy(server)
            exp = store_client.prepare_store(uri, "nets")
            # filled through MlflowClient on the database itself (the server's own store
            # class, without its HTTP layer: 2x faster); every read goes through the server
            write_uri, write_threads, write_procs = backend, threads, procs
        from mlflow.tracking import MlflowClient

        client = MlflowClient(write_uri)
        ids = work / "ids.json"          # a kept store (--workdir) is filled further
        if ids.is_file():
            parent, real = json.loads(ids.read_text())
            for r in read.children(client, [exp], parent):
                if r.info.status != "FINISHED":      # cut short by Ctrl-C: written again
                    client.delete_run(r.info.run_id)
            have = len(list(read.children(client, [exp], parent)))
        else:
            parent = client.create_run(exp, run_name="sweep growth", tags={
                "nets.sweep_role": "parent", "nets.sweep_name": "growth"}).info.run_id
            client.set_terminated(parent, "FINISHED")
            real, have = real_run(uri, exp), 0
            ids.write_text(json.dumps([parent, real]))
        for n in sizes:
            if n < have:          # a kept store is already bigger
                print(f"  {kind}: {n} runs: skipped (the kept store has {have})")
                continue
            print(f"  {kind}: filling to {n} runs ...", flush=True)
            took = (fill(write_uri, exp, parent, have, n, write_threads, write_procs)
                    if n > have else 0.0)
            have = max(have, n)
            if not no_file:
                sweep_file(MlflowClient(uri), uri, exp, parent)
            print(f"  {kind}: {n} runs written in {took:.0f} s; measuring", flush=True)
            if kind == "sqlite":
                services.wait_healthy(server)
            load = os.getloadavg()[0]
            results[n] = measure(uri, server, exp, parent, real, n, work,
                                 [p.pid for p in services.procs] if kind != "sqlite" else None)
            results[n]["load"] = (load + os.getloadavg()[0]) / 2
            print(f"  {kind} {n}: " + json.dumps({k: round(v, 2) for k, v in results[n].items()}),
                  flush=True)
    finally:
        services.stop()
    return results


def per_10x(a: float | None, b: float | None, na: int, nb: int) -> str:
    """Growth factor per 10x more runs between two sizes (10.0 = linear)."""
    import math

    if not a or not b or na == nb:
        return ""
    return f"{(b / a) ** (1 / math.log10(nb / na)):.1f}x"


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def table(results: dict, sizes: list[int]) -> str:
    lines = []
    for kind, res in results.items():
        keys = [k for k in ("report", "report CPU", "report server CPU", "resume check",
                            "resume server CPU", "cleanup --dry-run",
                            "cleanup CPU", "reproduce", "reproduce CPU", "UI first page")
                if any(k in r for r in res.values())]
        growth_head = " ".join(f"{a // 1000 or a}{'k' if a >= 1000 else ''}->"
                               f"{b // 1000 or b}{'k' if b >= 1000 else ''}"
                               for a, b in zip(sizes, sizes[1:]))
        head = (f"{kind:<9} {'command':<18}" + "".join(f"{n:>10,}" for n in sizes)
                + f"   {'per 10x (' + growth_head + ')':<24} goal")
        lines += [head, "-" * len(head)]
        for k in keys:
            vals = [res.get(n, {}).get(k) for n in sizes]
            cells = "".join(f"{v:>9.2f}s" if v is not None else f"{'':>10}" for v in vals)
            growth = [per_10x(vals[i], vals[i + 1], sizes[i], sizes[i + 1])
                      for i in range(len(sizes) - 1)]
            goal = [f"<= {g:.0f} s at {n:,}"
                    + (f": {verdict(res[n][k], g)}" if k in res.get(n, {}) else "")
                    for (c, st, n), g in GOALS.items() if c == k and st in (None, kind)]
            lines.append(f"{'':<9} {k:<18}{cells}   {' '.join(growth):<24} {'; '.join(goal)}")
        rss = [res.get(n, {}).get("report MB") for n in sizes]
        top = max((n for n in sizes if res.get(n, {}).get("report MB")), default=None)
        lines.append(f"{'':<9} {'report peak RSS':<18}"
                     + "".join(f"{v:>8.0f}MB" if v else f"{'':>10}" for v in rss)
                     + f"   {' '.join(per_10x(rss[i], rss[i + 1], sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)):<24}"
                     + f" <= {MEMORY_GOAL_MB} MB at 10,000"
                     + (f": {verdict(res[10000]['report MB'], MEMORY_GOAL_MB)}"
                        if res.get(10000, {}).get("report MB") else
                        (f" (largest measured: {top:,})" if top else "")))
        load = [res.get(n, {}).get("load") for n in sizes]
        lines.append(f"{'':<9} {'load average':<18}"
                     + "".join(f"{v:>10.1f}" if v is not None else f"{'':>10}" for v in load)
                     + f"   (1-minute load while measuring, {os.cpu_count()} cores)")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--workdir", help="keep the stores here, and measure (and fill further) "
                   "the stores a previous run kept there (default: a temporary directory; "
                   "as root, PostgreSQL's data there must be reachable by user nobody)")
    p.add_argument("--threads", type=int, default=4, help="writers per filling process")
    p.add_argument("--procs", type=int, default=2,
                   help="processes filling the PostgreSQL store (SQLite: one writer)")
    p.add_argument("--workers", type=int, default=4,
                   help="mlflow server worker processes (MLflow's default: 4)")
    p.add_argument("--no-file", action="store_true",
                   help="no curves or runs file on the parent (a sweep nets' launcher did "
                        "not end: the report searches every run and fetches its histories; "
                        "in a new --workdir)")
    a = p.parse_args()
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"   # a line per run written
    sizes = sorted(int(s) for s in a.sizes.split(","))
    work = Path(a.workdir or tempfile.mkdtemp(prefix="nets-bench-growth-"))
    results = {}
    for kind in a.stores.split(","):
        if kind == "postgres" and postgres_bin() is None:
            print("postgres: skipped (no PostgreSQL binaries: apt-get install postgresql)")
            continue
        d = work / kind
        if not a.workdir:
            shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True, exist_ok=True)
        results[kind] = run_store(kind, sizes, d, a.threads, a.procs, a.workers,
                                  keep=bool(a.workdir), no_file=a.no_file)
        (work / f"results-{kind}.json").write_text(json.dumps(results[kind]))
    print("\nwall seconds per command (whole commands in a fresh interpreter, except the "
          "resume check and the UI request); '... CPU': CPU seconds of the command's own "
          "process (not the server's); '... server CPU': CPU seconds of the mlflow server's "
          f"processes and PostgreSQL's meanwhile; {EPOCHS} epochs per run; 'per 10x': how much longer "
          "per 10 times more runs (10.0x = linear, more = faster than linear); mlflow server "
          f"with {a.workers} worker(s)\n")
    print(table(results, sizes))
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
