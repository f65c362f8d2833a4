"""Is the store there? A check of a tracking URI in seconds, before any command opens it.

MLflow itself finds out late and loudly: with no server at ``http://127.0.0.1:9`` a
client retries for 259 s, printing urllib3 retry warnings, and ends in a 30-line
traceback; a SQLite path under a regular file or in ``/proc`` and an unknown scheme
end in tracebacks too. ``check`` answers within about ``TIMEOUT`` seconds, with a
``StoreError``: one line naming the URI, what is wrong and what to start or fix.

- ``http(s)://``: a TCP connection, then ``GET <uri>/health`` (any HTTP answer below
  500 counts as a server; 5xx is what MLflow would retry for minutes).
- ``sqlite:///``: the database file, if it exists, is an SQLite database whose schema
  upgrade was not left half-done; if not, its directory can be created (a scratch
  directory is made and removed there, so read-only and pseudo file systems show).
- ``postgresql://``, ``mysql://``, ``mssql://``: something listens at host:port.
- ``file:`` (MLflow's file store): a directory, or creatable.
- Any other scheme: one MLflow or a plugin knows, else the list of those that work.

No mlflow import here (it costs about a second): the check runs before it.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import socket
import sqlite3
import ssl
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from nets.registry import ConfigError

TIMEOUT = 3.0  # seconds per network step (connect, then the HTTP answer)
DB_SCHEMES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
OTHER_SCHEMES = ("databricks", "databricks-uc", "uc")
# MLflow's HTTP client retries a dead server for minutes and logs every retry through
# urllib3; the check above makes the first case rare, and these lines are not ours.
QUIET_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


class StoreError(ConfigError):
    """The tracking store cannot be opened; one line, nothing was recorded."""


def source_of(configured: str | None, key: str = "tracking.uri") -> str:
    """The setting to name in a message: ``key`` if it was given, else
    ``MLFLOW_TRACKING_URI`` if that is set, else ``key`` (the default store)."""
    if not configured and os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return key


def check(uri: str, key: str = "tracking.uri", timeout: float = TIMEOUT) -> None:
    """Raise ``StoreError`` unless the store at ``uri`` (resolved, absolute) can be
    opened; see the module doc for what is checked per scheme."""
    quiet_http_retries()
    p = urlparse(uri)
    scheme = p.scheme.lower()
    base = scheme.split("+", 1)[0]
    if scheme in ("http", "https"):
        _check_http(uri, p, key, timeout)
    elif base == "sqlite":
        _check_sqlite(uri, key)
    elif base in DB_SCHEMES:
        host, port = p.hostname or "localhost", p.port or DB_SCHEMES[base]
        why = _connect_error(host, port, timeout)
        if why:
            raise StoreError(key, _safe(uri), f"no database server answers at {host}:{port} "
                             f"({why}); start it, or fix {key}")
    elif scheme == "file" or (scheme == "" and uri):
        path = Path(p.path if scheme == "file" else uri)
        _check_dir(path, key, uri, "store directory")
    elif scheme not in OTHER_SCHEMES and scheme not in _plugin_schemes():
        raise StoreError(key, _safe(uri), "unknown tracking URI scheme "
                         f"{scheme + '://' if scheme else ''!r}; use http(s)://HOST:PORT (an "
                         "MLflow server), sqlite:///PATH, a store directory, "
                         "postgresql://..., mysql://..., mssql://... or file:///PATH")


def quiet_http_retries() -> None:
    """Keep urllib3's per-retry warnings off the terminal (``NETS_LOG_LEVEL`` shows them)."""
    import logging

    if os.environ.get("NETS_LOG_LEVEL"):
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


# -- per scheme ----------------------------------------------------------------------------

def _check_http(uri: str, p, key: str, timeout: float) -> None:
    host = p.hostname
    if not host:
        raise StoreError(key, _safe(uri), "no host in the URI; write http://HOST:PORT")
    port = p.port or (443 if p.scheme == "https" else 80)
    start = (f"start one: mlflow server --host {host} --port {port}" if host in
             ("127.0.0.1", "localhost", "::1") else "start it")
    why = _connect_error(host, port, timeout)
    if why:
        raise StoreError(key, _safe(uri), f"no MLflow server answers at {host}:{port} ({why}); "
                         f"{start}, or fix {key}")
    cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ssl.create_default_context()} if p.scheme == "https" else {}
    conn = cls(host, port, timeout=timeout, **kwargs)
    path = (p.path.rstrip("/") or "") + "/health"
    try:
        conn.request("GET", path, headers={"User-Agent": "nets"})
        status = conn.getresponse().status
    except ssl.SSLError as e:
        raise StoreError(key, _safe(uri), f"the TLS handshake with {host}:{port} failed "
                         f"({e.reason or e}); check the certificate or use http://") from None
    except (socket.timeout, TimeoutError):
        raise StoreError(key, _safe(uri), f"the server at {host}:{port} accepts connections but "
                         f"does not answer within {timeout:g} s; restart it, or fix {key}") from None
    except (OSError, http.client.HTTPException) as e:
        raise StoreError(key, _safe(uri), f"the server at {host}:{port} does not speak HTTP "
                         f"({type(e).__name__}); {start}, or fix {key}") from None
    finally:
        conn.close()
    if status >= 500:
        raise StoreError(key, _safe(uri), f"the server at {host}:{port} answers HTTP {status} "
                         "(is the MLflow server behind it running?); restart it, or fix " + key)


def _check_sqlite(uri: str, key: str) -> None:
    raw = uri.split("://", 1)[1] if "://" in uri else ""
    path = raw[1:].split("?")[0] if raw.startswith("/") else raw.split("?")[0]
    if path in ("", ":memory:"):
        return
    db = Path(path)
    if db.exists():
        if not db.is_file():
            raise StoreError(key, uri, f"{db} is a directory, not an SQLite file; "
                             "point at the .db file, or at the directory that holds mlflow.db")
        _check_database(db, uri, key)
        return
    _check_dir(db.parent, key, uri, "directory for the SQLite file")


def _check_database(db: Path, uri: str, key: str) -> None:
    con = None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        names = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
    except sqlite3.DatabaseError as e:
        if "locked" in str(e).lower():
            return  # a writer holds it: the store itself retries
        raise StoreError(key, uri, f"{db} is not an SQLite database ({e}); point at an MLflow "
                         "store, or at a path that does not exist yet") from None
    finally:
        if con is not None:
            con.close()
    broken = [n for n in names if n.startswith("_alembic_tmp_")]
    if broken:
        raise StoreError(key, uri, f"{db} holds a half-done schema upgrade (table {broken[0]}), "
                         "which MLflow cannot repair; move the file away and start a new store")


def _check_dir(d: Path, key: str, uri: str, what: str) -> None:
    """``d`` is a directory nets can write in, or can be created; else ``StoreError``."""
    probe = d
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StoreError(key, uri, f"{probe} is a file, so the {what} {d} cannot be created; "
                         f"choose another {key}")
    try:
        scratch = tempfile.mkdtemp(prefix=".nets-check-", dir=probe)
    except OSError as e:
        reason = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
                  errno.ENOSPC: "no space left",
                  errno.ENOENT: "the file system takes no new files"}.get(e.errno, e.strerror or str(e))
        raise StoreError(key, uri, f"cannot create the {what} {d}: nothing can be written in "
                         f"{probe} ({reason}); choose another {key}") from None
    shutil.rmtree(scratch, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------

def _connect_error(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to ``host:port`` fails within ``timeout``, or ``None``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"unknown host {host!r}"
    except (socket.timeout, TimeoutError):
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as e:
        return e.strerror or type(e).__name__


def _plugin_schemes() -> set[str]:
    from importlib.metadata import entry_points

    try:
        return {e.name for e in entry_points(group="mlflow.tracking_store")}
    except Exception:  # noqa: BLE001 - broken metadata: no plugins
        return set()


def _safe(uri: str) -> str:
    """The URI without a password (it is printed)."""
    p = urlparse(uri)
    if p.password:
        return uri.replace(f":{p.password}@", ":***@", 1)
    return uri
