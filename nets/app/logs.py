"""Only nets' own lines on the terminal; ``NETS_LOG_LEVEL`` lets the libraries speak.

Measured on a first run: MLflow logs ``INFO ... Creating initial MLflow database
tables...`` and ``Updating database tables`` (and alembic its migrations) to stderr; a
dask cluster logs its shutdown; urllib3 logs every retry of an unreachable server.
None of it is about the user's run. ``quiet`` keeps MLflow at WARNING and dask and
urllib3 at ERROR, through the environment variables the libraries read when they are
imported (so worker processes inherit it) and through the loggers themselves (for a
library already imported). ``NETS_LOG_LEVEL=INFO`` (or ``DEBUG``) shows everything.
"""

from __future__ import annotations

import logging
import os

ENV = "NETS_LOG_LEVEL"
_ERROR_ONLY = ("distributed", "urllib3.connectionpool", "urllib3.util.retry")


def quiet() -> None:
    """Set the library log levels described in the module doc (idempotent)."""
    asked = os.environ.get(ENV, "").strip().upper()
    if asked:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", asked)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", asked.lower())
        return
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    for name in _ERROR_ONLY:
        logging.getLogger(name).setLevel(logging.ERROR)


def debug() -> bool:
    """Whether ``NETS_LOG_LEVEL=DEBUG`` asks for nets' own debugging lines too."""
    return os.environ.get(ENV, "").strip().upper() == "DEBUG"
