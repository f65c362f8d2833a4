"""Reading a store back: paged searches, runs, bulk metric histories, artifacts.

The one home of every read the read-back commands (``nets-report``, ``nets-reproduce``,
``nets-cleanup``, ``nets-sweep --resume``) make. Callers get MLflow's own entity objects
(``Run``: ``.info``, ``.data``) and plain numpy curves; every MLflow error surfaces as
:class:`StoreError` with one line, so no caller needs to import mlflow.

Metric histories of many runs at once are ``nets.store.curves``. A sweep's children
(``child_pages``) come as plain runs with the same fields: over a server from the REST
API's JSON (``nets.store.search``: the rest of a long search in start-time ranges at
once), on a local SQLite file from read-only SQL (``nets.store.sqlruns``).

``finished_by_tag`` (the ``--resume`` skip check) likewise reads a SQLite file with one
read-only query and searches elsewhere. Measured growth with each path:
``tests/benchmarks/bench_growth.py``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from nets.store import client as store_client
from nets.store import search, sqlruns
from nets.store.uri import first_line, sqlite_path  # noqa: F401 - first_line re-exported

MlflowException = store_client.MlflowException

SEARCH_PAGE = 50_000          # MLflow's own maximum for one search_runs page
STREAM_PAGE = 250             # runs per page when each run is reduced as it arrives:
                              # the peak of MLflow's entities for one page, 95 -> 40 MB
REST_SEARCH_PAGE = 500        # runs per runs/search request when only tags are kept
RUN_ID = re.compile(r"^[0-9a-f]{32}$")   # what MLflow's stores hand out (uuid4 hex)



class StoreError(Exception):
    """A store could not answer: one line, no traceback (the URI without credentials)."""


def is_run_id(text: str | None) -> bool:
    """Whether ``text`` has the shape of an MLflow run id (32 lower-case hex digits)."""
    return bool(text) and RUN_ID.match(text) is not None


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

def child_filter(parent_run_id: str) -> str:
    """MLflow's search filter for the children of ``parent_run_id``."""
    return f"tags.`mlflow.parentRunId` = '{parent_run_id}'"


def iter_runs(uri_or_client, experiment_ids: Sequence[str], filter_string: str = "",
              order_by: Sequence[str] | None = None, page: int = SEARCH_PAGE,
              deleted: bool = False):
    """The runs matching ``filter_string``, one page of ``page`` runs at a time (a
    caller that keeps only what it needs of each run holds one page of MLflow's
    entities at once, not all of them); the deleted ones instead with ``deleted``."""
    client, token = _client(uri_or_client), None
    view = store_client.ViewType.DELETED_ONLY if deleted else store_client.ViewType.ACTIVE_ONLY
    while True:
        batch = _call(client.search_runs, list(experiment_ids), filter_string,
                      run_view_type=view, max_results=min(page, SEARCH_PAGE),
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
                order_by: Sequence[str] | None = None, limit: int | None = None,
                deleted: bool = False) -> list:
    """Every run matching ``filter_string`` (MLflow's search syntax), all pages.

    Pages are ``SEARCH_PAGE`` runs (MLflow's maximum), so a store of 10,000 runs is one
    request; ``limit`` stops early (and asks for no more than it needs).
    """
    out = []
    for run in iter_runs(uri_or_client, experiment_ids, filter_string, order_by,
                         page=min(limit or SEARCH_PAGE, SEARCH_PAGE), deleted=deleted):
        out.append(run)
        if limit and len(out) >= limit:
            break
    return out


def children(uri_or_client, experiment_ids: Sequence[str], parent_run_id: str,
             page: int = SEARCH_PAGE):
    """The runs whose ``mlflow.parentRunId`` tag names ``parent_run_id`` (an iterator,
    ``page`` runs per request)."""
    return iter_runs(uri_or_client, experiment_ids,
                     child_filter(parent_run_id), page=page)


def _rest_pages(uri: str, experiment_ids: Sequence[str], filter_string: str, page: int,
                order_by: Sequence[str] | None = None):
    """``runs/search`` of an ``mlflow server`` as lists of plain runs, in the server's
    order (``nets.store.search.rest_pages``: the JSON decoded once; after the first
    page, ranges of start time asked concurrently)."""
    try:
        yield from search.rest_pages(uri, experiment_ids, filter_string, page, order_by)
    except search.SearchError as e:
        raise StoreError(str(e)) from None


def child_pages(uri_or_client, uri: str, experiment_ids: Sequence[str], parent_run_id: str,
                page: int | None = None):
    """The children of ``parent_run_id`` (as ``children``), one list per request of
    ``page`` runs. Over an ``mlflow server`` they are plain runs (info and data, no
    inputs or outputs) read from the REST API's JSON (``nets.store.search``); on a
    local SQLite file plain runs read with read-only SQL (``nets.store.sqlruns``);
    elsewhere MLflow's ``Run`` entities."""
    flt, page = child_filter(parent_run_id), page or STREAM_PAGE
    if uri.startswith(("http://", "https://")):
        return _rest_pages(uri, experiment_ids, flt, page)
    db = sqlite_path(uri)
    if db is not None:
        try:
            con = sqlruns.connect(db)
        except (sqlite3.Error, ValueError):
            pass           # not MLflow's schema (or unreadable): MLflow's search below
        else:
            return _closing(con, sqlruns.child_pages(con, experiment_ids, parent_run_id, page))
    return pages(iter_runs(uri_or_client, experiment_ids, flt, page=page), page)


def _closing(con, gen):
    try:
        yield from gen
    except sqlite3.Error as e:
        raise StoreError(f"{first_line(e)}") from None
    finally:
        con.close()


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
    (``_rest_pages``: after the first page, start-time ranges asked at once; every
    FINISHED run of the experiment is read, as MLflow's search has no ``IN`` for tag
    values); elsewhere one paged search.
    """
    db = sqlite_path(uri)
    if db is not None:
        try:
            con = sqlruns.connect(db, {"runs": {"run_uuid", "experiment_id", "status",
                                                "lifecycle_stage", "start_time"},
                                       "tags": {"run_uuid", "key", "value"}})
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


def artifact_bytes(uri_or_client, uri: str, run, name: str) -> bytes | None:
    """The bytes of artifact ``name`` of ``run`` (``None`` when it has no such file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = artifact_file(uri_or_client, uri, run, name, tmp)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None


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
