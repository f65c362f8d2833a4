"""Shared fixtures. Helpers that start real services live in ``_services.py`` (the
benchmarks use them too)."""

from __future__ import annotations

import pytest

from _services import Services


@pytest.fixture
def services(tmp_path):
    """Start real processes on 127.0.0.1 (PostgreSQL, ``mlflow server``, dask); every one
    is stopped by its process group when the test ends, pass or fail."""
    s = Services(tmp_path / "services")
    try:
        yield s
    finally:
        s.stop()
