"""Per-job overhead of the ``nets`` launcher for a plain Hydra app.

``tests/apps/plain_app.py`` (its own numpy loop, plain ``mlflow.log_metric`` calls: 6
epochs x 4 metrics) is swept with ``python plain_app.py -m hydra/launcher=nets
hydra.launcher.n_jobs=1 seed=range(0,N)`` for a small and a large N, into a fresh store
each time. Two figures:

- the launcher's own time per job (``job N FINISHED in X s``: from the job's start in
  its worker to its result in the launcher: Hydra's ``run_job`` with its output dir and
  ``.hydra/`` files, the child run (params, config artifacts), the task's own logging
  calls, the diagnosis read-back, the run's end), median over the large sweep;
- the slope of the whole command's wall time between the two N (adds dispatch; noisy
  on a loaded machine, where process start-up varies by seconds).

The task's numpy work alone is timed in this process and printed next to them. Run with tracking on and off (the app then logs nothing) to split
recording from the rest.

Target: <= 0.3 s per job (issue 4's figure for nets' own jobs). Timings on a shared
machine vary with its load; the load average is printed.

    python tests/benchmarks/bench_own_code.py [--small 2] [--large 12] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "apps" / "plain_app.py"


def sweep(n: int, tracking: bool) -> tuple[float, list[float]]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, str(APP), "-m", "hydra/launcher=nets",
                            "hydra.launcher.n_jobs=1",
                            f"hydra.launcher.tracking={str(tracking).lower()}",
                            f"log={str(tracking).lower()}", f"seed=range(0,{n})"],
                           cwd=d, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        jobs = [float(m) for m in re.findall(r"FINISHED in ([0-9.]+) s", p.stderr)]
        return wall, jobs


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
        small = min((sweep(a.small, tracking) for _ in range(a.repeats)), key=lambda r: r[0])
        large = min((sweep(a.large, tracking) for _ in range(a.repeats)), key=lambda r: r[0])
        slope = (large[0] - small[0]) / (a.large - a.small)
        jobs = large[1]
        print(f"tracking {'on ' if tracking else 'off'}: per job in the launcher: median "
              f"{statistics.median(jobs):.3f} s, min {min(jobs):.3f} s over {len(jobs)} jobs"
              f"   (target <= 0.3 s); whole command {a.small} jobs {small[0]:.1f} s, "
              f"{a.large} jobs {large[0]:.1f} s -> slope {slope:.3f} s per job")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
