"""Where a store is: tracking URIs and the files behind a local SQLite store.

Kept free of mlflow imports: commands resolve and check the URI before paying for
``import mlflow`` (seconds on a cold start).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname


# -- store set-up (launching process only) ------------------------------------------------

def default_uri(launch_dir: str | os.PathLike) -> str:
    """``sqlite:///<launch_dir>/mlruns/mlflow.db`` with an absolute path."""
    return "sqlite:///" + str((Path(launch_dir) / "mlruns" / "mlflow.db").resolve())


def resolve_uri(configured: str | None, launch_dir: str | os.PathLike) -> str:
    """The tracking URI: ``tracking.uri`` if set, else ``MLFLOW_TRACKING_URI``, else the
    default SQLite store under ``<launch_dir>/mlruns``. Relative SQLite paths are made
    absolute against ``launch_dir`` once, so jobs in other directories agree."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(launch_dir)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///"):]
        if not os.path.isabs(path):
            uri = "sqlite:///" + str((Path(launch_dir) / path).resolve())
    elif "://" not in uri:
        # A bare path names a store directory: the SQLite file inside it.
        uri = "sqlite:///" + str((Path(launch_dir) / uri / "mlflow.db").resolve())
    return uri


def existing_store(configured: str | None, launch_dir: str | os.PathLike | None = None) -> str:
    """Resolve the store like ``nets-train`` for a command that only reads it.

    Raises ``FileNotFoundError`` (one line) for a SQLite file that does not exist:
    opening it would silently create an empty store; and for any store
    ``nets.store.connect.check`` cannot reach within seconds (a server that does not
    answer, a file that is not a database, an unknown scheme).
    """
    from nets.store import connect

    uri = resolve_uri(configured, launch_dir or os.getcwd())
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise FileNotFoundError(f"no MLflow store at {db} (pass --uri, set MLFLOW_TRACKING_URI, "
                                "or run from the directory that holds mlruns/)")
    try:
        connect.check(uri, connect.source_of(configured, "--uri"))
    except connect.StoreError as e:
        raise FileNotFoundError(str(e)) from None
    return uri


def sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):].split("?")[0])
    return None


def artifact_root(uri: str) -> str | None:
    """Where a local store keeps artifacts: ``<store dir>/artifacts`` next to the DB."""
    p = sqlite_path(uri)
    return str(p.parent / "artifacts") if p is not None else None


def file_path(uri: str) -> Path | None:
    """Local path of a ``file:`` URI (or a bare absolute path), else ``None``."""
    if uri.startswith("file:"):
        return Path(url2pathname(unquote(urlparse(uri).path)))
    if "://" not in uri and ":" not in uri.split("/")[0] and os.path.isabs(uri):
        return Path(uri)
    return None



def safe_uri(uri: str) -> str:
    """The URI without its ``user:password@`` part, for messages (any scheme, with or
    without a host: ``postgresql://u:p@/db?host=/run/pg`` has none)."""
    netloc = urlparse(uri).netloc
    if "@" not in netloc:
        return uri
    return uri.replace(netloc, netloc.rsplit("@", 1)[1], 1)


def first_line(e: BaseException) -> str:
    """The first line of an error's message (its MLflow error code, else its type, when
    it has none): what a store's failure says on one line."""
    text = str(e).strip()
    return text.splitlines()[0] if text else getattr(e, "error_code", type(e).__name__)
