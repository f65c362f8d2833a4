"""Tracking overhead: a 30-epoch digits run with MLflow tracking on vs off.

Both variants run the same job (``nets.runs.job.run_job``, the code ``nets-train`` calls)
in one process after the imports, alternating on/off for several repeats, into a
prepared SQLite store in a temporary directory. Also reported: the whole-command wall
time of ``nets-train`` with ``tracking.enabled=true/false`` (process start included).
Target (issue 3): tracking adds <= 3% wall time.

    python tests/benchmarks/bench_tracking.py [--repeats 5] [--no-cli]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def job_config(enabled: bool, extra: tuple[str, ...] = ()) -> dict:
    from hydra import compose, initialize_config_dir

    from nets.app.config import CONF_DIR, to_plain
    from nets.app.schema import register

    register()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = to_plain(compose("config", overrides=["train.epochs=30",
                                                    f"tracking.enabled={str(enabled).lower()}",
                                                    "tracking.progress=off", *extra]))
    return cfg


def in_process(repeats: int, extra: tuple[str, ...] = ()) -> tuple[list[float], list[float]]:
    from nets.store import uri as store_uri, client as store_client
    from nets.runs.job import JobSpec, run_job

    on_cfg, off_cfg = job_config(True, extra), job_config(False, extra)
    with tempfile.TemporaryDirectory() as d:
        uri = store_uri.default_uri(d)
        exp = store_client.prepare_store(uri, "bench")
        run_job(JobSpec(on_cfg, uri, exp))  # warm-up: first-use imports (matplotlib ...)
        run_job(JobSpec(off_cfg))
        on, off = [], []
        for _ in range(repeats):
            for cfg, out in ((on_cfg, on), (off_cfg, off)):
                t = time.perf_counter()
                run_job(JobSpec(cfg, uri if out is on else None, exp if out is on else None))
                out.append(time.perf_counter() - t)
    return on, off


def whole_command(repeats: int) -> tuple[list[float], list[float]]:
    exe = Path(sys.executable).parent / "nets-train"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    on, off = [], []
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([str(exe), "train.epochs=1", "tracking.progress=off"], cwd=d, env=env,
                       check=True, capture_output=True)  # creates the store once
        for _ in range(repeats):
            for flag, out in (("true", on), ("false", off)):
                t = time.perf_counter()
                subprocess.run([str(exe), "train.epochs=30", f"tracking.enabled={flag}",
                                "tracking.progress=off"], cwd=d, env=env, check=True,
                               capture_output=True)
                out.append(time.perf_counter() - t)
    return on, off


def report(title: str, on: list[float], off: list[float]) -> None:
    mon, moff = statistics.median(on), statistics.median(off)
    print(f"{title}\n  tracking off: median {moff:.3f} s  (min {min(off):.3f})"
          f"\n  tracking on:  median {mon:.3f} s  (min {min(on):.3f})"
          f"\n  overhead:     {mon - moff:+.3f} s = {100 * (mon / moff - 1):+.1f}%   (target <= +3%)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-command timing")
    args = ap.parse_args()
    report("30-epoch digits run inside one process (run_job, imports excluded)",
           *in_process(args.repeats))
    if MNIST_DIR.is_dir():
        mnist = ("dataset=mnist", f"dataset.path={MNIST_DIR}", "dataset.split=test",
                 "dataset.download=false", "model.hidden=[128]")
        report("30-epoch MNIST run (10,000-image test split, mlp [128]) inside one process",
               *in_process(max(2, args.repeats // 2), mnist))
    if not args.no_cli:
        report("whole `nets-train train.epochs=30` command (process start included)",
               *whole_command(max(2, args.repeats // 2)))


if __name__ == "__main__":
    main()
