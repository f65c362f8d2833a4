"""Shared test set-up: no test sees the user's MLflow environment, and every subprocess
gets the same clean environment.

Helpers are imported by test files as ``from conftest import clean_env, BIN``; helpers
that start real services live in ``_services.py`` (the benchmarks use them too).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from _services import Services

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent          # the console scripts of this environment
# Variables that would point a run at another store, experiment or run.
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")


def clean_env(**extra: str) -> dict:
    """``os.environ`` without ``DROP_ENV``, plus ``extra``: for subprocesses."""
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    env.update(extra)
    return env


@pytest.fixture(scope="session", autouse=True)
def _private_warm_recorders():
    """``nets-train`` leaves a warm recorder behind (``nets.runs.warm``): the tests use
    it, as users do, but in a directory of their own (short: it holds Unix sockets), and
    stop every one when the session ends."""
    from nets.runs import warm

    d = tempfile.mkdtemp(prefix="nw", dir="/tmp")
    os.environ[warm.DIR_ENV] = d
    try:
        yield Path(d)
    finally:
        warm.stop_all(Path(d))
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _private_cache():
    """The blank store new stores are copied from (``nets.store.blank``) is the
    session's own: no test reads or leaves one in the user's cache."""
    from nets.store import blank

    d = tempfile.mkdtemp(prefix="nets-cache-")
    os.environ[blank.CACHE_ENV] = d
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_ambient_store(monkeypatch):
    """In-process code under test never writes to a store named by the environment."""
    for k in DROP_ENV:
        monkeypatch.delenv(k, raising=False)


def sqlite_uri(db: Path) -> str:
    return "sqlite:///" + str(Path(db).resolve())


@pytest.fixture
def services(tmp_path):
    """Start real processes on 127.0.0.1 (PostgreSQL, ``mlflow server``, dask); every one
    is stopped by its process group when the test ends, pass or fail."""
    s = Services(tmp_path / "services")
    try:
        yield s
    finally:
        s.stop()
