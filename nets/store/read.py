"""Reading a store back: paged searches, runs, bulk metric histories, artifacts.

The one home of every read the read-back commands (``nets-report``, ``nets-reproduce``,
``nets-cleanup``, ``nets-sweep --resume``) make. Callers get MLflow's own entity objects
(``Run``: ``.info``, ``.data``) and plain numpy curves; every MLflow error surfaces as
:class:`StoreError` with one line, so no caller needs to import mlflow.

How a metric history is fetched in bulk (``fetch_curves``), fastest first:

- ``sqlite``: a local SQLite store is read with one read-only SQL query per
  ``SQL_CHUNK`` run ids (the file is on this machine; no server answers for it);
- ``rest``: an ``mlflow server`` (``http(s)://``) through its public REST endpoint
  ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk`` (the one MLflow's UI uses),
  100 runs per request, 8 requests at a time; no SQL against a server's database;
- ``per-run``: ``MlflowClient.get_metric_history`` per run and key, 8 at a time
  (any other store: a database URI used directly, ``file:``).

``finished_by_tag`` (the ``--resume`` skip check) likewise reads a SQLite file with one
read-only query and searches elsewhere. Measured growth with each path:
``tests/benchmarks/bench_growth.py``.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlparse

import numpy as np

from nets.store import client as store_client
from nets.store.uri import safe_uri, sqlite_path

MlflowException = store_client.MlflowException

SEARCH_PAGE = 50_000          # MLflow's own maximum for one search_runs page
STREAM_PAGE = 250             # runs per page when each run is reduced as it arrives:
                              # the peak of MLflow's entities for one page, 95 -> 40 MB
REST_SEARCH_PAGE = 500        # runs per runs/search request when only tags are kept
SQL_CHUNK = 500               # run ids per SQL query (+ keys: under SQLite's 999 limit)
REST_CHUNK = 100              # run ids per get-history-bulk request (the server's maximum)
REST_MAX_RESULTS = 25_000     # points per get-history-bulk response (the server's maximum)
REST_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
THREADS = 8                   # concurrent requests to one server
RUN_ID = re.compile(r"^[0-9a-f]{32}$")   # what MLflow's stores hand out (uuid4 hex)

Curve = tuple  # (steps: int64 array, values: float64 array), sorted by step, one point a step


class StoreError(Exception):
    """A store could not answer: one line, no traceback (the URI without credentials)."""


def is_run_id(text: str | None) -> bool:
    """Whether ``text`` has the shape of an MLflow run id (32 lower-case hex digits)."""
    return bool(text) and RUN_ID.match(text) is not None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else getattr(e, "error_code", type(e).__name__)


def open_client(uri: str):
    """An explicit ``MlflowClient`` for ``uri`` (reused across calls: one connection pool)."""
    return store_client.open_client(uri)


def _client(uri_or_client):
    if isinstance(uri_or_client, str):
        return store_client.open_client(uri_or_client)
    return uri_or_client


def _call(fn, *args, **kwargs):
    """``store_client.retry`` with MLflow's errors turned into one-line ``StoreError``."""
    try:
        return store_client.retry(fn, *args, **kwargs)
    except MlflowException as e:
        raise StoreError(first_line(e)) from None


# -- runs and experiments ---------------------------------------------------------------

def iter_runs(uri_or_client, experiment_ids: Sequence[str], filter_string: str = "",
              order_by: Sequence[str] | None = None, page: int = SEARCH_PAGE):
    """The runs matching ``filter_string``, one page of ``page`` runs at a time (a
    caller that keeps only what it needs of each run holds one page of MLflow's
    entities at once, not all of them)."""
    client, token = _client(uri_or_client), None
    while True:
        batch = _call(client.search_runs, list(experiment_ids), filter_string,
                      max_results=min(page, SEARCH_PAGE),
                      order_by=list(order_by) if order_by else None, page_token=token)
        yield from batch
        token = batch.token
        if not token:
            return


def pages(runs: Iterable, size: int = STREAM_PAGE):
    """``runs`` in lists of ``size`` (of ``iter_runs`` with the same page size: one list
    per request, handed on before the next request is sent)."""
    page = []
    for r in runs:
        page.append(r)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def search_runs(uri_or_client, experiment_ids: Sequence[str], filter_string: str = "",
                order_by: Sequence[str] | None = None, limit: int | None = None) -> list:
    """Every run matching ``filter_string`` (MLflow's search syntax), all pages.

    Pages are ``SEARCH_PAGE`` runs (MLflow's maximum), so a store of 10,000 runs is one
    request; ``limit`` stops early (and asks for no more than it needs).
    """
    out = []
    for run in iter_runs(uri_or_client, experiment_ids, filter_string, order_by,
                         page=min(limit or SEARCH_PAGE, SEARCH_PAGE)):
        out.append(run)
        if limit and len(out) >= limit:
            break
    return out


def children(uri_or_client, experiment_ids: Sequence[str], parent_run_id: str,
             page: int = SEARCH_PAGE):
    """The runs whose ``mlflow.parentRunId`` tag names ``parent_run_id`` (an iterator,
    ``page`` runs per request)."""
    return iter_runs(uri_or_client, experiment_ids,
                     f"tags.`mlflow.parentRunId` = '{parent_run_id}'", page=page)


REST_SEARCH = "/api/2.0/mlflow/runs/search"


def _plain_run(d: dict) -> SimpleNamespace:
    """A run of ``runs/search``'s JSON with the fields of MLflow's ``Run`` a read-back
    view uses (``info``: run_id, run_name, status, start_time, end_time,
    experiment_id, lifecycle_stage, artifact_uri; ``data``: params, tags, metrics as
    dicts), absent fields read as protobuf's defaults, as ``Run.from_proto`` does."""
    info, data = d.get("info", {}), d.get("data", {})
    return SimpleNamespace(
        info=SimpleNamespace(
            run_id=info.get("run_id") or info.get("run_uuid", ""),
            run_name=info.get("run_name", ""), status=info.get("status", "RUNNING"),
            start_time=int(info.get("start_time", 0)),
            end_time=int(info["end_time"]) if "end_time" in info else None,
            experiment_id=str(info.get("experiment_id", "")),
            lifecycle_stage=info.get("lifecycle_stage", ""),
            artifact_uri=info.get("artifact_uri", "")),
        data=SimpleNamespace(
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
            metrics={m["key"]: float(m.get("value", 0.0)) for m in data.get("metrics", [])}))


def _rest_pages(uri: str, experiment_ids: Sequence[str], filter_string: str, page: int,
                order_by: Sequence[str] | None = None):
    """``runs/search`` of an ``mlflow server`` page by page as plain runs (the JSON
    decoded once: MLflow's client turns it into protobuf messages, then entities, 2 s
    of this process's time per 1,000 runs of 30 params; the same request, results and
    order)."""
    url = _base(uri) + REST_SEARCH
    token = None
    with _session(uri) as session:
        while True:
            body = {"experiment_ids": list(experiment_ids), "filter": filter_string,
                    "max_results": min(page, SEARCH_PAGE), "run_view_type": "ACTIVE_ONLY"}
            if order_by:
                body["order_by"] = list(order_by)
            if token:
                body["page_token"] = token
            try:
                resp = session.post(url, json=body, timeout=300)
            except OSError as e:
                raise StoreError(f"{safe_uri(uri)}: {first_line(e)}") from None
            if resp.status_code != 200:
                try:
                    why = resp.json().get("message", "")
                except ValueError:
                    why = resp.text
                raise StoreError(f"{safe_uri(uri)}{REST_SEARCH} answered HTTP "
                                 f"{resp.status_code}: {first_line(Exception(why))}")
            out = resp.json()
            yield [_plain_run(r) for r in out.get("runs", [])]
            token = out.get("next_page_token")
            if not token:
                return


def child_pages(uri_or_client, uri: str, experiment_ids: Sequence[str], parent_run_id: str,
                page: int | None = None):
    """The children of ``parent_run_id`` (as ``children``), one list per request of
    ``page`` runs. Over an ``mlflow server`` they are plain runs (``_plain_run``: info
    and data, no inputs or outputs) read from the REST API's JSON; elsewhere MLflow's
    ``Run`` entities."""
    flt, page = f"tags.`mlflow.parentRunId` = '{parent_run_id}'", page or STREAM_PAGE
    if uri.startswith(("http://", "https://")):
        return _rest_pages(uri, experiment_ids, flt, page)
    return pages(iter_runs(uri_or_client, experiment_ids, flt, page=page), page)


def runs_by_id(uri_or_client, experiment_ids: Sequence[str], run_ids: Iterable[str]) -> list:
    """The runs with these ids (100 per search: one request, not one per run)."""
    ids = [i for i in dict.fromkeys(run_ids) if is_run_id(i)]
    out = []
    for i in range(0, len(ids), 100):
        quoted = ", ".join(f"'{x}'" for x in ids[i:i + 100])
        out.extend(search_runs(uri_or_client, experiment_ids,
                               f"attributes.run_id IN ({quoted})"))
    return out


def finished_by_tag(uri: str, experiment_id: str, tag: str, client=None) -> dict[str, str]:
    """``tag value -> run id`` of every FINISHED, active run of the experiment that has
    ``tag`` (the latest run wins a shared value): the skip check of ``--resume``.

    On a local SQLite file one read-only SQL query over the run and tag tables (a
    search returns every param, metric and tag of every run: 7 s for 1,000 runs on a
    busy machine, against well under a second); over a server ``runs/search``'s JSON
    page by page (``_rest_pages``); elsewhere one paged search.
    """
    db = sqlite_path(uri)
    if db is not None:
        try:
            con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=20)
            try:
                rows = con.execute(
                    "SELECT t.value, r.run_uuid FROM runs r JOIN tags t "
                    "ON t.run_uuid = r.run_uuid WHERE r.experiment_id = ? AND "
                    "r.status = 'FINISHED' AND r.lifecycle_stage = 'active' AND t.key = ? "
                    "ORDER BY r.start_time ASC", (int(experiment_id), tag)).fetchall()
            finally:
                con.close()
            return dict(rows)
        except (sqlite3.Error, ValueError):
            pass
    flt, order = "attributes.status = 'FINISHED'", ["attributes.start_time ASC"]
    if uri.startswith(("http://", "https://")):
        out = {}
        for page in _rest_pages(uri, [experiment_id], flt, REST_SEARCH_PAGE, order):
            out.update((r.data.tags[tag], r.info.run_id) for r in page if tag in r.data.tags)
        return out
    runs = search_runs(client or uri, [experiment_id], flt, order_by=order)
    return {r.data.tags[tag]: r.info.run_id for r in runs if tag in r.data.tags}


def experiment_ids(uri_or_client, name: str | None = None) -> list[str]:
    """The id of experiment ``name`` (``StoreError`` if there is none), or of all of them."""
    client = _client(uri_or_client)
    if name:
        exp = _call(client.get_experiment_by_name, name)
        if exp is None:
            raise StoreError(f"no experiment named {name!r} in the store")
        return [exp.experiment_id]
    ids, token = [], None
    while True:
        page = _call(client.search_experiments, max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def get_experiment(uri_or_client, experiment_id: str):
    return _call(_client(uri_or_client).get_experiment, experiment_id)


def get_run(uri_or_client, run_id: str):
    """The run, or ``None`` when the store has no run ``run_id``."""
    try:
        return store_client.retry(_client(uri_or_client).get_run, run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise StoreError(first_line(e)) from None


# -- artifacts -----------------------------------------------------------------------------

def local_artifact_dirs(uri: str, run) -> list[Path]:
    """Where a run's artifacts may be on disk, best first.

    In a SQLite store ``<store>/artifacts/<experiment>/<run id>/artifacts`` comes first:
    it is right for a copied or moved store, whose database still holds the old
    absolute path, and is the recorded path itself otherwise.
    """
    from nets.store.uri import artifact_root, file_path

    recorded = file_path(run.info.artifact_uri or "")
    out: list[Path] = []
    root = artifact_root(uri)
    if root is not None:
        if recorded is not None and recorded.name == "artifacts" \
                and recorded.parent.name == run.info.run_id:
            out.append(Path(root) / recorded.parent.parent.name / run.info.run_id / "artifacts")
        out.extend(sorted(Path(root).glob(f"*/{run.info.run_id}/artifacts")))
    if recorded is not None:
        out.append(recorded)
    return list(dict.fromkeys(out))


def artifact_file(uri_or_client, uri: str, run, name: str, tmp: str | os.PathLike) -> Path | None:
    """A local path to artifact ``name`` of ``run`` (downloaded into ``tmp`` when the
    artifacts are served), or ``None`` when the run has no such file."""
    from nets.store.uri import file_path

    if file_path(run.info.artifact_uri or "") is not None:
        for d in local_artifact_dirs(uri, run):
            if (d / name).is_file():
                return d / name
        return None
    try:
        local = Path(_client(uri_or_client).download_artifacts(run.info.run_id, name, str(tmp)))
    except Exception:  # noqa: BLE001 - absent, or the server refused: both mean "none"
        return None
    return local if local.is_file() else None


def artifact_text(uri_or_client, uri: str, run, name: str, max_bytes: int) -> str | None:
    """Text of artifact ``name`` (``None`` if absent); ``StoreError`` when it is larger
    than ``max_bytes`` or not UTF-8."""
    with tempfile.TemporaryDirectory() as tmp:
        path = artifact_file(uri_or_client, uri, run, name, tmp)
        if path is None:
            return None
        if path.stat().st_size > max_bytes:
            raise StoreError(f"{name} artifact is larger than {max_bytes} bytes: refused")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise StoreError(f"{name} artifact is not UTF-8 text: refused") from None


def log_artifacts(uri_or_client, run_id: str, paths: Iterable[str | os.PathLike]) -> None:
    client = _client(uri_or_client)
    for p in paths:
        _call(client.log_artifact, run_id, str(p))


# -- metric histories ----------------------------------------------------------------------

def metric_histories(uri_or_client, run) -> dict[str, list[tuple[int, float]]]:
    """Every metric of one run as sorted ``(step, value)`` lists (one call per key)."""
    client = _client(uri_or_client)
    out = {}
    for key in run.data.metrics:
        pts = _call(client.get_metric_history, run.info.run_id, key)
        out[key] = sorted((int(m.step), float(m.value)) for m in pts)
    return out


class _Points:
    """Points of many (run, key) series gathered as numpy columns, one batch per query.

    A Python tuple per point costs ~100 bytes: 2 million of them (10,000 runs x 4 keys x
    50 epochs) were most of the report's memory; columns cost 28 bytes a point. Runs and
    keys get their index when first seen, so batches may come in any order.
    """

    def __init__(self, run_ids: Sequence[str] = (), keys: Sequence[str] = ()):
        self.run_ids: list[str] = []
        self.keys: list[str] = []
        self._run: dict[str, int] = {}
        self._key: dict[str, int] = {}
        for r in run_ids:
            self._index(self._run, self.run_ids, r)
        for k in keys:
            self._index(self._key, self.keys, k)
        self._batches: list[tuple] = []

    @staticmethod
    def _index(table: dict, names: list, name: str) -> int:
        i = table.get(name)
        if i is None:
            i = table[name] = len(names)
            names.append(name)
        return i

    def add(self, runs: Sequence[str], keys: Sequence[str], steps: Sequence[int],
            stamps: Sequence[int], values: Sequence[float]) -> None:
        n = len(runs)
        if n:
            run, key = self._run, self._key
            self._batches.append((
                np.fromiter((run[r] if r in run else self._index(run, self.run_ids, r)
                             for r in runs), np.int32, n),
                np.fromiter((key[k] if k in key else self._index(key, self.keys, k)
                             for k in keys), np.int32, n),
                np.asarray(steps, np.int64), np.asarray(stamps, np.int64),
                np.asarray(values, np.float64)))

    def curves(self) -> dict[str, dict[str, Curve]]:
        """``{run: {key: (steps, values)}}`` sorted by step, one point a step (the
        latest-logged value wins when a step was logged twice; the larger value when
        two points share step and time, as a SQL ``ORDER BY`` would not say)."""
        if not self._batches:
            return {}
        run, key, step, stamp, value = (np.concatenate(c) for c in zip(*self._batches))
        self._batches = []
        order = np.lexsort((value, stamp, step, key, run))
        run, key, step, value = run[order], key[order], step[order], value[order]
        # the last point of each (run, key, step): next point differs in any of them
        last = np.r_[(run[1:] != run[:-1]) | (key[1:] != key[:-1]) | (step[1:] != step[:-1]),
                     True]
        run, key, step, value = run[last], key[last], step[last], value[last]
        starts = np.flatnonzero(np.r_[True, (run[1:] != run[:-1]) | (key[1:] != key[:-1])])
        ends = np.r_[starts[1:], len(run)]
        out: dict[str, dict[str, Curve]] = defaultdict(dict)
        for s, e in zip(starts.tolist(), ends.tolist()):
            out[self.run_ids[run[s]]][self.keys[key[s]]] = (step[s:e].copy(), value[s:e].copy())
        return dict(out)


def _curves_sqlite(db: Path, run_ids: list[str], keys: list[str]) -> dict:
    """One read-only SQL query per ``SQL_CHUNK`` run ids on the local file's ``metrics``
    table (MLflow's client has no bulk history call; one call per run and key was 10x
    slower at 1,000 runs)."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=20)
    try:
        cols = {row[1] for row in con.execute("PRAGMA table_info(metrics)")}
        need = {"run_uuid", "key", "value", "step", "timestamp", "is_nan"}
        if not need <= cols:
            raise sqlite3.DatabaseError(f"metrics table lacks {sorted(need - cols)}")
        points = _Points(run_ids, keys)
        kq = ",".join("?" * len(keys))
        for i in range(0, len(run_ids), SQL_CHUNK):
            chunk = run_ids[i:i + SQL_CHUNK]
            # "+key": not the primary key's index (it starts with key: every point of
            # those keys in the store, for each chunk: 36 s at 10,000 runs), the run's
            sql = (f"SELECT run_uuid, key, step, timestamp, "
                   f"CASE WHEN is_nan THEN NULL ELSE value END FROM metrics "
                   f"WHERE run_uuid IN ({','.join('?' * len(chunk))}) AND +key IN ({kq})")
            rows = con.execute(sql, [*chunk, *keys]).fetchall()
            if rows:
                runs, ks, steps, stamps, values = zip(*rows)
                points.add(runs, ks, steps, stamps,
                           [math.nan if v is None else v for v in values])
        return points.curves()
    finally:
        con.close()


class NoBulkEndpoint(StoreError):
    """The server does not answer ``get-history-bulk`` (an old or a proxied server)."""


def _session(uri: str):
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


def _base(uri: str) -> str:
    """The server's address without credentials: ``http://host:port/prefix``."""
    p = urlparse(uri.rstrip("/"))
    host = p.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"


def _rest_get(session, url: str, client, uri: str, chunk: list[str], key: str) -> list:
    """One ``get-history-bulk`` request (``chunk``: at most ``REST_CHUNK`` runs) as
    batches for ``_Points``; a response at the server's 25,000-point cap is split and
    asked again (one run alone: ``get_metric_history``, which pages)."""
    params = [("run_id", r) for r in chunk] + [("metric_key", key),
                                               ("max_results", str(REST_MAX_RESULTS))]
    try:
        resp = session.get(url, params=params, timeout=120)
    except OSError as e:
        raise StoreError(f"{safe_uri(uri)}: {first_line(e)}") from None
    if resp.status_code != 200:
        raise NoBulkEndpoint(f"HTTP {resp.status_code}")
    pts = resp.json().get("metrics", [])
    if len(pts) < REST_MAX_RESULTS:
        return [([p["run_id"] for p in pts], [key] * len(pts),
                 [int(p.get("step", 0)) for p in pts],
                 [int(p.get("timestamp", 0)) for p in pts],
                 [float(p.get("value", math.nan)) for p in pts])]
    if len(chunk) > 1:
        half = len(chunk) // 2
        return (_rest_get(session, url, client, uri, chunk[:half], key)
                + _rest_get(session, url, client, uri, chunk[half:], key))
    return _per_run_get(client, chunk[0], key)


def _per_run_get(client, run_id: str, key: str) -> list:
    hist = _call(client.get_metric_history, run_id, key)
    return [([run_id] * len(hist), [key] * len(hist), [m.step for m in hist],
             [m.timestamp for m in hist], [m.value for m in hist])]


METHODS = ("sqlite", "rest", "per-run")


class CurveFetch:
    """Metric histories of many runs, fetched while the caller goes on reading runs.

    ``add`` names runs and keys (a page of a search as it arrives); over a server the
    requests start at once, ``THREADS`` at a time, so the server computes histories
    while it also answers the next page of the search (and the caller decodes it).
    ``result`` waits for all of them. Paths as in the module doc: ``sqlite`` reads the
    local file in ``result`` (it takes a fraction of a second per 1,000 runs), ``rest``
    sends ``get-history-bulk`` requests of ``REST_CHUNK`` runs of one key (runs are
    held back until a request is full), ``per-run`` one ``get_metric_history`` per run
    and key. A server that does not answer the bulk endpoint is asked per run instead
    (``note`` says so), for every run added.

    Use as a context manager: leaving it early (an error) cancels what has not started.
    """

    def __init__(self, uri: str, client=None, method: str | None = None, note=None):
        if method is not None and method not in METHODS:
            raise ValueError(f"method {method!r}: one of {', '.join(METHODS)}")
        self.uri, self.note, self.forced = uri, note, method
        self.client = client or store_client.open_client(uri)
        self._wanted: dict[str, dict[str, None]] = {}     # run -> keys, in the order added
        self._pending: dict[str, list[str]] = defaultdict(list)   # key -> runs not yet sent
        self._futures: list = []
        self._pool = self._session = None
        db = sqlite_path(uri)
        if method in (None, "sqlite") and db is not None:
            self.method = "sqlite"
        elif method in (None, "rest") and uri.startswith(("http://", "https://")):
            self.method = "rest"
        elif method == "sqlite":
            raise StoreError(f"{safe_uri(uri)} is not a SQLite file")
        elif method == "rest":
            raise StoreError(f"{safe_uri(uri)} is not an http(s):// server")
        else:
            self.method = "per-run"
        self._db = db

    def __enter__(self) -> "CurveFetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _submit(self, fn, *args):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(THREADS)
        self._futures.append(self._pool.submit(fn, *args))

    def _send(self, key: str, runs: list[str]) -> None:
        if self.method == "rest":
            if self._session is None:
                self._session = _session(self.uri)
            self._submit(_rest_get, self._session, _base(self.uri) + REST_BULK, self.client,
                         self.uri, runs, key)
        else:
            for r in runs:
                self._submit(_per_run_get, self.client, r, key)

    def add(self, run_ids: Iterable[str], keys: Sequence[str],
            available: Mapping[str, Iterable[str]] | None = None) -> None:
        """Fetch ``keys`` of ``run_ids`` (only the keys a run has, when ``available``
        maps run id -> its metric keys); a run and key asked twice is fetched once."""
        have = None if available is None else {r: set(v) for r, v in available.items()}
        for r in run_ids:
            seen = self._wanted.setdefault(r, {})
            for k in keys:
                if k in seen or (have is not None and k not in have.get(r, ())):
                    continue
                seen[k] = None
                if self.method == "sqlite":
                    continue
                pending = self._pending[k]
                pending.append(r)
                if self.method != "rest" or len(pending) >= REST_CHUNK:
                    self._send(k, pending[:])
                    pending.clear()

    def _gather(self) -> dict:
        for k, runs in self._pending.items():
            if runs:
                self._send(k, runs[:])
        self._pending.clear()
        points = _Points()
        try:
            for f in self._futures:
                for batch in f.result():
                    points.add(*batch)
        finally:
            self._futures = []
            self.close()
        return points.curves()

    def result(self) -> tuple[dict, str]:
        """``{run id: {key: (steps, values)}}`` for every run and key added (a run
        without a point of a key has no entry for it), and the path that fetched them."""
        if self.method == "sqlite":
            runs = list(self._wanted)
            keys = list(dict.fromkeys(k for ks in self._wanted.values() for k in ks))
            if not runs or not keys:
                return {}, "none"
            try:
                return _curves_sqlite(self._db, runs, keys), "sqlite"
            except sqlite3.Error as e:
                if self.forced == "sqlite":
                    raise StoreError(f"{self._db}: {first_line(e)}") from None
            self.method = "per-run"       # not MLflow's schema (or unreadable): ask MLflow
            return self._refetch(), "per-run"
        if not self._wanted:
            return {}, "none"
        try:
            return self._gather(), self.method
        except NoBulkEndpoint as e:
            if self.forced == "rest":
                raise StoreError(f"{safe_uri(self.uri)}{REST_BULK} answered {e}") from None
            if self.note:
                self.note(f"{REST_BULK} answered {e}; fetching one history per call (slower)")
            self.method = "per-run"
            return self._refetch(), "per-run"

    def _refetch(self) -> dict:
        wanted, self._wanted = self._wanted, {}
        for r, keys in wanted.items():
            self.add([r], list(keys))
        return self._gather()


def fetch_curves(uri: str, run_ids: Sequence[str], keys: Sequence[str],
                 available: Mapping[str, Iterable[str]] | None = None,
                 method: str | None = None, client=None,
                 note=None) -> tuple[dict, str]:
    """``{run id: {key: (steps, values)}}`` for every run and key, and how it was fetched.

    Parameters
    ----------
    uri : str
        The tracking URI.
    run_ids, keys : sequence of str
        Runs and metric keys wanted (duplicates ignored).
    available : mapping, optional
        Run id -> its metric keys; only those are asked for.
    method : {"sqlite", "rest", "per-run"}, optional
        Force one path; by default the fastest the store allows (module doc), falling
        back to ``per-run`` when a server does not answer the bulk endpoint.
    note : callable, optional
        Called with one line when a faster path could not be used.
    """
    with CurveFetch(uri, client, method, note) as fetch:
        fetch.add(dict.fromkeys(run_ids), list(dict.fromkeys(keys)), available)
        return fetch.result()
