"""Per-job overhead of the ``nets`` launcher for a plain Hydra app.

``tests/apps/plain_app.py`` (its own numpy loop, plain ``mlflow.log_metric`` calls: 6
epochs x 4 metrics) is swept with ``python plain_app.py -m hydra/launcher=nets
hydra.launcher.n_jobs=1 seed=range(0,N)`` for a small and a large N, into a fresh store
each time. The difference of the two wall times divided by the difference of N is the
cost of one more job: dispatch, Hydra's ``run_job`` (output dir, ``.hydra/`` files),
the child run (params, config artifacts), the task's own logging calls, the diagnosis
read-back and the run's end. The task's numpy work alone is timed in this process and
printed next to it. Run with tracking on and off (the app then logs nothing) to split
recording from the rest.

Target: <= 0.3 s per job (issue 4's figure for nets' own jobs). Timings on a shared
machine vary with its load; the load average is printed.

    python tests/benchmarks/bench_own_code.py [--small 2] [--large 12] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "apps" / "plain_app.py"


def sweep(n: int, tracking: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(APP), "-m", "hydra/launcher=nets",
                        "hydra.launcher.n_jobs=1", f"hydra.launcher.tracking={str(tracking).lower()}",
                        f"log={str(tracking).lower()}", f"seed=range(0,{n})"], cwd=d, env=env, check=True, capture_output=True)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2)
    ap.add_argument("--large", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=1, help="keep the fastest of this many")
    a = ap.parse_args()
    sys.path.insert(0, str(APP.parent))
    import plain_app

    t = time.perf_counter()
    for seed in range(20):
        plain_app.curves(0.5, 5, seed)
    work = (time.perf_counter() - t) / 20
    print(f"load average {os.getloadavg()[0]:.2f}; the task's own numpy work: {work * 1000:.1f} ms")
    for tracking in (True, False):
        small = min(sweep(a.small, tracking) for _ in range(a.repeats))
        large = min(sweep(a.large, tracking) for _ in range(a.repeats))
        per = (large - small) / (a.large - a.small)
        print(f"tracking {'on ' if tracking else 'off'}: {a.small} jobs {small:.2f} s, "
              f"{a.large} jobs {large:.2f} s -> {per:.3f} s per job   (target <= 0.3 s)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
