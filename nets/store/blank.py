"""A new SQLite store copied from an empty one MLflow built, instead of built again.

MLflow builds a new SQLite store by running every Alembic migration since its first
release: 1.3-2.5 s on this kind of machine (``tests/benchmarks/bench_startup.py``),
most of a short run's first time in a new directory. The result is the same file every
time for a given MLflow: the tables, the Alembic head and one ``workspaces`` row. So the
first store a machine builds leaves a copy of itself, emptied of experiments, in the
user's cache (``blank-mlflow-<key>.db``), and every later new store starts as a copy of
it. MLflow then finds every table at the head revision and only creates its ``Default``
experiment, with this store's artifact location and this moment's time, as it would
have on a store it migrated itself.

The key is MLflow's version and the names of its migration scripts, so an upgraded (or
edited) MLflow builds, and leaves, a blank of its own. Any failure to read, copy or
leave a blank costs the speed, never the store: ``prepare_store`` lets MLflow build it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

CACHE_ENV = "NETS_CACHE_DIR"       # tests keep their blanks to themselves


def cache_dir() -> Path:
    """``$NETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nets``, else ``~/.cache/nets``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg, "nets") if xdg else Path.home() / ".cache" / "nets"


def _key() -> str:
    import mlflow
    import mlflow.store.db_migrations as migrations

    versions = Path(migrations.__file__).with_name("versions")
    names = sorted(p.name for p in versions.glob("*.py"))
    return hashlib.sha256("\n".join([mlflow.__version__, *names]).encode()).hexdigest()[:16]


def blank_path() -> Path:
    return cache_dir() / f"blank-mlflow-{_key()}.db"


def seed(db: Path) -> bool:
    """Make the absent ``db`` a copy of the blank store; whether it did.

    The caller holds the store's lock. The copy is written beside ``db`` and renamed,
    so nothing ever opens a half-copied store.
    """
    try:
        src = blank_path()
        if db.exists() or not src.is_file():
            return False
        db.parent.mkdir(parents=True, exist_ok=True)
        part = db.with_name(f".{db.name}.{os.getpid()}.part")
        try:
            _copy(src, part)
            os.replace(part, db)
        finally:
            part.unlink(missing_ok=True)
        return True
    except (OSError, sqlite3.Error):
        return False


def keep(db: Path) -> None:
    """Leave the store MLflow has just built at ``db`` (no run yet) as the blank."""
    try:
        dest = blank_path()
        if dest.is_file():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            _copy(db, part)
            with sqlite3.connect(part) as con:
                # The experiments are this store's: MLflow makes its Default experiment
                # again in every copy, with that store's location and time.
                con.execute("DELETE FROM experiment_tags")
                con.execute("DELETE FROM experiments")
            con.close()
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
    except (OSError, sqlite3.Error):
        pass


def _copy(src: Path, dest: Path) -> None:
    """``src`` into the new file ``dest`` through SQLite's backup (consistent even if a
    writer is busy), left in rollback-journal mode so the copy is one self-contained
    file; then checked to be a store at an Alembic revision."""
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(dest) as d:
        s.backup(d)
        d.execute("PRAGMA journal_mode=DELETE")
        row = d.execute("SELECT version_num FROM alembic_version").fetchone()
        if not row or not row[0]:
            raise sqlite3.DatabaseError(f"{src} has no Alembic revision")
    s.close()
    d.close()
