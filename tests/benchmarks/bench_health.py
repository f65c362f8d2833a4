"""Cost of the health monitor: the default 30-epoch digits run with and without it.

Same process, same data, alternating with/without for several repeats (tracking off, so
only the monitor differs). Target (issue 8): health metrics add <= 10% wall time.

    python tests/benchmarks/bench_health.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from nets.data import DATASETS
from nets.diagnostics import DiagnosticsSettings, HealthMonitor
from nets.train import build_run

CFG = {"seed": 0, "model": {"name": "mlp", "hidden": [64], "activation": "relu",
                            "output": "softmax"},
       "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1},
       "train": {"epochs": 30, "batch_size": 32}}


def once(data, with_monitor: bool) -> float:
    trainer = build_run(CFG, data=data).trainer()
    hooks = [HealthMonitor(DiagnosticsSettings())] if with_monitor else []
    t = time.perf_counter()
    trainer.run([], hooks)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    data = DATASETS.build("digits").load(np.random.default_rng(0))
    once(data, True), once(data, False)  # warm-up
    on, off = [], []
    for _ in range(args.repeats):
        off.append(once(data, False))
        on.append(once(data, True))
    mon, moff = statistics.median(on), statistics.median(off)
    print(f"30-epoch digits run (mlp [64] relu, sgd, batch 32), median of {args.repeats}")
    print(f"  without health monitor: {moff * 1e3:.1f} ms")
    print(f"  with health monitor:    {mon * 1e3:.1f} ms")
    print(f"  overhead: {100 * (mon / moff - 1):+.1f}%   (target <= +10%)")


if __name__ == "__main__":
    main()
