"""The warm recorder: a background process that keeps mlflow imported between runs.

A short ``nets-train`` waits mostly for its recorder process to import mlflow and its
SQLAlchemy store (~3.5 s of CPU, measured in ``tests/benchmarks/bench_startup.py``);
the training itself is a fraction of a second. People who use nets run many short
trainings from the shell, so after a run that had to pay for the imports, ``nets-train``
leaves this server behind: it imports once, listens on a Unix socket and forks one
recorder per run from the imported state (a fork takes milliseconds). It exits after
``NETS_WARM_RECORDER`` seconds without a run (600 by default; ``0`` turns it off).

What a forked recorder does is exactly what the cold one does (``writer.serve``); it
takes the caller's working directory, environment and standard error, so a relative
store path, an ``MLFLOW_*`` variable or a warning mean the same as in a child process.

Safety, from the design rules the cold recorder follows:

- the server never opens a store: a fork must not share a database connection;
- the socket lives in a directory only the user can enter, named after the Python,
  ``sys.path`` and nets/mlflow sources it was started with: an edited or upgraded nets
  gets a new server, the old one times out;
- one server per name, held by a lock file for its lifetime; a server killed without
  cleaning up leaves a socket nobody answers on, which the next start replaces;
- ``connect`` falls back to the cold recorder whenever the server does not answer
  (``None``), so a broken server can cost a run its speed, never its record.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "NETS_WARM_RECORDER"          # seconds to wait for the next run; 0 = off
DIR_ENV = "NETS_WARM_DIR"           # where sockets live (tests use their own)
DEFAULT_IDLE = 600.0
READY_TIMEOUT = 10.0                # the forked recorder says "ready" well within this
_FORK_MAGIC = b"N"


def idle_seconds() -> float:
    """How long a server waits for the next run (``0``: no warm recorder at all)."""
    raw = os.environ.get(ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_IDLE
    except ValueError:
        return DEFAULT_IDLE


def _base_dir() -> Path:
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "nets") if runtime else Path("/tmp", f"nets-{os.getuid()}")


def _sources() -> list[Path]:
    """The files whose code a forked recorder runs, or whose version it must match."""
    import importlib.util

    here = Path(__file__).resolve().parents[1]           # the nets package
    files = [*sorted((here / "store").glob("*.py")), here / "runs" / "writer.py",
             here / "runs" / "warm.py", here / "report" / "plots.py"]
    spec = importlib.util.find_spec("mlflow")             # finds, does not import
    if spec is not None and spec.origin:
        files.append(Path(spec.origin).with_name("version.py"))
    return files


def socket_path() -> Path:
    """The socket of the server for this Python, ``sys.path`` and these sources."""
    # Short: a Unix socket path has room for ~107 bytes.
    return _base_dir() / f"r-{_key()}.sock"


@functools.lru_cache(maxsize=1)
def _key() -> str:
    """Asked at a run's start and again at its end: the ~20 stats and the search for
    mlflow's files are done once."""
    h = hashlib.sha256()
    for part in (sys.executable, *sys.path):
        h.update(part.encode() + b"\0")
    for f in _sources():
        with contextlib.suppress(OSError):
            st = f.stat()
            h.update(f"{f}:{st.st_mtime_ns}:{st.st_size}\0".encode())
    return h.hexdigest()[:12]


def _private(path: Path, create: bool = False) -> bool:
    """Whether ``path`` is a directory of this user that nobody else can enter (created
    so when ``create``). A socket in any other directory could be someone else's: a
    recorder is sent the caller's environment (tokens included) and standard error."""
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


# -- the caller's side -----------------------------------------------------------------

def connect(path: str | os.PathLike | None = None, wait: float = 0.0) -> socket.socket | None:
    """A connection to a freshly forked recorder, or ``None`` (use the cold one).

    ``path``: the server's socket, when another process chose it (a sweep's launcher
    for its workers, whose ``sys.path`` may differ); default: this process's own.
    ``wait``: seconds to wait for a server that is still starting.
    The recorder has our working directory, environment and standard error once this
    returns; it answered that it is ready, so a server that is shutting down or broken
    is found here, before the run depends on it.
    """
    if idle_seconds() <= 0:
        return None
    path = Path(path) if path is not None else socket_path()
    if not _private(path.parent):
        return None
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            break
        except OSError:
            sock.close()
            # A server still importing (a sweep starts one beside its launcher) is
            # worth waiting for, up to ``wait`` seconds; a missing one is not.
            if time.monotonic() >= deadline or not starting(path):
                return None
            time.sleep(0.05)
    try:
        socket.send_fds(sock, [_FORK_MAGIC], [2])
        hello = pickle.dumps(("hello", os.getcwd(), dict(os.environ)),
                             protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(len(hello).to_bytes(8, "big") + hello)
        ready, _, _ = select.select([sock], [], [], READY_TIMEOUT)
        if not ready or sock.recv(1) != b"R":
            raise OSError("the warm recorder did not answer")
    except OSError:
        sock.close()
        return None
    return sock


def start() -> Path | None:
    """Leave a server behind for the next run (no-op when one runs or it is off); its
    socket, or ``None`` when there is none to be had."""
    idle = idle_seconds()
    if idle <= 0:
        return None
    path = socket_path()
    if not _private(path.parent, create=True):
        return None
    if _answers(path):
        return path
    # It runs in "/" (it must not hold the caller's directory), so it finds nets where
    # this process found it, installed or not.
    here = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "nets.runs.warm", str(path), str(idle)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd="/", start_new_session=True,
                                env=env)
    except OSError:
        return None
    # Until it holds its lock (~0.1 s: before its imports), a caller that finds no
    # socket could not tell a starting server from none (``connect(wait=...)``).
    deadline = time.monotonic() + 5.0
    while not starting(path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return path


def starting(path: Path) -> bool:
    """Whether a server holds ``path``'s lock: it is importing, or serving already."""
    import fcntl

    try:
        with open(path.with_suffix(".lock"), "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True                      # closing at once: the server's fork sees EOF


def stop_all(directory: Path | None = None) -> int:
    """Stop every server whose socket is in ``directory`` (default: the usual place);
    the number stopped. Recorders already forked finish their runs."""
    n = 0
    for pid_file in Path(directory or _base_dir()).glob("r-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            n += 1
    return n


# -- the server ------------------------------------------------------------------------

def _import_everything() -> None:
    """What a recorder would import: the point of keeping this process."""
    from nets.runs import writer
    from nets.store import client, sqlstore, write  # noqa: F401

    writer.import_plotting()


def _recorder(conn: socket.socket) -> int:
    """In the forked child: become the caller's recorder on ``conn``."""
    from nets.runs import writer

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
    if fds:
        os.dup2(fds[0], 2)
        os.close(fds[0])
    inp, out = conn.makefile("rb"), conn.makefile("wb")
    size = int.from_bytes(inp.read(8), "big")
    _, cwd, env = pickle.loads(inp.read(size))
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None                # chosen again from the caller's TMPDIR
    # mlflow read its level when the server imported it; the caller's may differ.
    level = os.environ.get("MLFLOW_LOGGING_LEVEL", "").strip().upper()
    if isinstance(logging.getLevelName(level), int):
        logging.getLogger("mlflow").setLevel(level)
    out.write(b"R")
    out.flush()
    return writer.serve(inp, out)


class _Stop(Exception):
    """SIGTERM: leave the wait (a handler that only set a flag would let ``select``
    resume and sleep out its timeout)."""


def _stop(*_) -> None:
    raise _Stop


def _serve_forever(path: Path, idle: float) -> int:
    import fcntl

    lock = open(path.with_suffix(".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0                           # another server holds this name
    _import_everything()
    # Everything imported stays for the server's life: out of the collector's sight,
    # so a recorder's collections do not walk (and copy, page by page) the whole heap
    # it shares with the server after the fork.
    gc.collect()
    gc.freeze()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()                      # a killed server's socket: nobody answers it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    pid_file = path.with_suffix(".pid")
    pid_file.write_text(str(os.getpid()))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)     # recorders are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)

    def fork_for(conn: socket.socket) -> None:
        if os.fork() == 0:
            code = 1
            try:
                listener.close()
                lock.close()   # the lock stays with the server, not with its recorders
                code = _recorder(conn)
            except BaseException:  # noqa: BLE001 - the caller went away; it falls back
                pass
            finally:
                os._exit(code)
        conn.close()

    deadline = time.monotonic() + idle
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([listener], [], [], left)[0]:
                conn, _ = listener.accept()
                fork_for(conn)
                deadline = time.monotonic() + idle
    except _Stop:
        pass
    finally:
        # Unlink first, so no new caller finds us; then serve whoever connected already.
        with contextlib.suppress(OSError):
            path.unlink()
            pid_file.unlink()
        listener.setblocking(False)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                break                      # none left waiting
            conn.setblocking(True)
            fork_for(conn)
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(_serve_forever(Path(sys.argv[1]), float(sys.argv[2])))
