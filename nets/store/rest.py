"""An HTTP session on an ``mlflow server`` for the reads MLflow's client has no bulk call
for (``runs/search`` as JSON, ``get-history-bulk``): MLflow's documented credentials and
TLS settings, retries of a read that lost its connection."""

from __future__ import annotations

import os
from urllib.parse import urlparse

THREADS = 8                   # concurrent requests to one server


def session(uri: str):
    """A ``requests`` session with the credentials MLflow's client documents:
    ``MLFLOW_TRACKING_TOKEN`` (bearer), ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` (or a
    ``user:password@`` in the URI), ``MLFLOW_TRACKING_INSECURE_TLS``,
    ``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``MLFLOW_TRACKING_CLIENT_CERT_PATH``."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    s = requests.Session()
    # POST too: this session only reads (runs/search is a POST); a request that lost its
    # connection (an overloaded server restarts a worker that misses its health check
    # during a long request: seen with uvicorn at load 15 on 2 cores) is asked again
    retries = Retry(total=3, backoff_factor=1, status_forcelist=(429, 502, 503, 504),
                    allowed_methods=("GET", "POST"))
    s.mount("http://", HTTPAdapter(max_retries=retries, pool_maxsize=THREADS))
    s.mount("https://", HTTPAdapter(max_retries=retries, pool_maxsize=THREADS))
    p = urlparse(uri)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or p.username
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or p.password
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        s.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    elif user and password:
        s.auth = (user, password)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        s.verify = False
    elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        s.verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        s.cert = os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"]
    return s


def base(uri: str) -> str:
    """The server's address without credentials: ``http://host:port/prefix``."""
    p = urlparse(uri.rstrip("/"))
    host = p.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"
