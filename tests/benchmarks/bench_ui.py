"""``nets-ui``: seconds from the command to its first page, and back to a free port.

Each repeat starts ``nets-ui --port P`` on an existing store (one ``nets-train`` run
made first) and polls ``http://127.0.0.1:P/`` until it answers 200; then sends SIGTERM
and times until the port refuses connections. The same is measured, alternating, for
``mlflow ui`` as nets-ui launched it before issue 20 (a child process tree). Target
(issue 16): first page <= 5 s.

    python tests/benchmarks/bench_ui.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def first_page(cmd: list[str], port: int, cwd: Path) -> tuple[float, float]:
    """``(seconds to the first 200 on /, seconds from SIGTERM to a free port)``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited {proc.returncode}") from None
                time.sleep(0.05)
        up = time.perf_counter() - t0
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        while not refused(port):
            time.sleep(0.05)
            if time.perf_counter() - t1 > 60:
                break
        down = time.perf_counter() - t1
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the old way left behind
        except ProcessLookupError:
            pass
        proc.wait()
    return up, down


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    subprocess.run([str(BIN / "nets-train"), "train.epochs=1", "tracking.progress=off"], cwd=work,
                   check=True, capture_output=True)
    uri = "sqlite:///" + str(work / "mlruns" / "mlflow.db")
    ways = {
        "nets-ui (in-process server)": lambda p: [str(BIN / "nets-ui"), "--port", str(p),
                                                   "--no-browser"],
        "mlflow ui (old nets-ui child)": lambda p: [
            sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(p),
            "--default-artifact-root", str(work / "mlruns" / "artifacts")],
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in ways}
    for _ in range(args.repeats):
        for name, cmd in ways.items():
            port = free_port()
            times[name].append(first_page(cmd(port), port, work))
    load = os.getloadavg()[0]
    print(f"first page / port free after SIGTERM, median of {args.repeats} "
          f"(load average {load:.1f} on {os.cpu_count()} cores):")
    for name, t in times.items():
        up = statistics.median(u for u, _ in t)
        down = statistics.median(d for _, d in t)
        print(f"  {name:<32} {up:6.2f} s   (target <= 5 s)   port free {down:5.2f} s   "
              f"all: {', '.join(f'{u:.1f}' for u, _ in t)}")


if __name__ == "__main__":
    main()
