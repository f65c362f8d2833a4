"""Real services on 127.0.0.1 for tests and benchmarks: PostgreSQL, ``mlflow server``,
a dask scheduler and workers. Each is a process in its own session, started here and
stopped by its process group (= its PID), never by name.

PostgreSQL comes from the distribution (``apt-get install postgresql``: binaries in
``/usr/lib/postgresql/<version>/bin``; ``NETS_PG_BIN`` names another directory).
``initdb`` refuses to run as root, so as root the server runs as user ``nobody`` with
a data directory that user owns (a fresh ``/tmp/nets-pg-*``, removed on stop: pytest's
own temporary directories are closed to other users).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "NETS_TEST_CRASH")
PG_USER = "nets"                     # the database role the server is created with


def clean_env(**extra: str) -> dict:
    """This process's environment without inherited MLflow/dask state."""
    e = {k: v for k, v in os.environ.items() if k not in DROP_ENV and not k.startswith("DASK_")}
    e.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
              "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}, **extra)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float, what: str, procs=()) -> None:
    """Poll ``cond`` until true; fail early when one of ``procs`` has exited."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: process {p.args[:3]} exited {p.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def stop(procs: list, sig: int = signal.SIGTERM) -> None:
    """Signal each process group, wait, then kill what is left (children included)."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class Services:
    """Processes started for one test (or one benchmark), stopped together, newest first."""

    def __init__(self, logs: Path):
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.cleanups: list = []

    def start(self, name: str, argv: list[str], cwd: Path | None = None,
              env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        p = subprocess.Popen(argv, cwd=cwd or self.logs, env=env or clean_env(), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        p.name = name
        self.procs.append(p)
        return p

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.is_file() else ""

    def stop(self) -> None:
        while self.procs:
            p = self.procs.pop()
            # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM waits for clients)
            stop([p], signal.SIGINT if getattr(p, "name", "") == "postgres" else signal.SIGTERM)
        while self.cleanups:
            self.cleanups.pop()()

    # -- the services ----------------------------------------------------------------------

    def postgres(self, keep: Path | None = None) -> str:
        """A throw-away PostgreSQL on 127.0.0.1 with database ``mlflow``; its
        ``postgresql+psycopg://`` URI. ``RuntimeError`` (with the reason) if it cannot.

        ``keep``: a directory that holds the data and outlives the service (a benchmark
        store filled once, measured many times); a database already there is reused.
        As root it must be reachable by user ``nobody`` (e.g. under ``/tmp``).
        """
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql, "
                               "or set NETS_PG_BIN)")
        as_root = os.geteuid() == 0
        run_as = ["runuser", "-u", "nobody", "--"] if as_root else []
        if as_root and shutil.which("runuser") is None:
            raise RuntimeError("running as root and no runuser to start PostgreSQL as nobody")
        if keep is None:
            home = Path(tempfile.mkdtemp(prefix="nets-pg-"))
            self.cleanups.append(lambda: shutil.rmtree(home, ignore_errors=True))
        else:
            home = Path(keep).resolve()
            home.mkdir(parents=True, exist_ok=True)
        if as_root:
            os.chown(home, *_nobody())
        if not (home / "data" / "PG_VERSION").is_file():
            init = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(home / "data"),
                                   "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync",
                                   "--no-instructions"], capture_output=True, text=True,
                                  timeout=120)
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed: "
                                   f"{(init.stderr or init.stdout).strip()[-500:]}")
        port = free_port()
        # durability off: a test database dies with the test
        pg = self.start("postgres", [*run_as, str(bindir / "postgres"), "-D", str(home / "data"),
                                     "-h", "127.0.0.1", "-p", str(port), "-k", str(home),
                                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                                     "-c", "full_page_writes=off", "-c", "max_connections=200"])
        import psycopg

        def ready() -> bool:
            try:
                with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER,
                                     dbname="postgres", connect_timeout=2,
                                     autocommit=True) as con:
                    exists = con.execute(
                        "SELECT 1 FROM pg_database WHERE datname = 'mlflow'").fetchone()
                    if not exists:
                        con.execute("CREATE DATABASE mlflow")
                return True
            except psycopg.OperationalError:
                return False

        wait_for(ready, 60, "PostgreSQL to accept connections", [pg])
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/mlflow"

    def mlflow_server(self, backend: str, artifacts: Path, name: str = "mlflow",
                      workers: int = 1) -> str:
        """Start ``mlflow server`` on ``backend``; its ``http://127.0.0.1:PORT`` (not yet
        answering: ``wait_healthy``, so other services can start meanwhile). One worker
        process by default (tests); MLflow's own default is 4."""
        port = free_port()
        self.start(name, [str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
                              "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
                              "--port", str(port), "--workers", str(workers)])
        return f"http://127.0.0.1:{port}"

    def dask(self, workers: int = 2) -> str:
        """A dask scheduler and ``workers`` one-thread workers; the scheduler address."""
        sport = free_port()
        self.start("scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                 "--port", str(sport), "--dashboard-address", "127.0.0.1:0"],
                   env=clean_env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0"))
        address = f"tcp://127.0.0.1:{sport}"
        for i in range(workers):
            self.start(f"worker{i}", [str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                      "--nworkers", "1", "--host", "127.0.0.1",
                                      "--dashboard-address", "127.0.0.1:0"])
        return address

    def wait_healthy(self, url: str, name: str = "mlflow", timeout: float = 180) -> None:
        proc = next(p for p in self.procs if getattr(p, "name", "") == name)
        try:
            wait_for(lambda: http_ok(f"{url}/health"), timeout, f"{name} at {url}", [proc])
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log(name)}") from None


def _nobody() -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def postgres_bin() -> Path | None:
    """The directory with ``initdb`` and ``postgres``, or ``None``."""
    if os.environ.get("NETS_PG_BIN"):
        d = Path(os.environ["NETS_PG_BIN"])
        return d if (d / "initdb").is_file() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None
