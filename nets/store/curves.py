"""Metric histories of many runs at once (``fetch_curves``, ``CurveFetch``), fastest first:

- ``sqlite``: a local SQLite store is read with one read-only SQL query per
  ``SQL_CHUNK`` run ids (the file is on this machine; no server answers for it);
- ``rest``: an ``mlflow server`` (``http(s)://``) through its public REST endpoint
  ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk`` (the one MLflow's UI uses),
  100 runs per request, 8 requests at a time; no SQL against a server's database;
- ``per-run``: ``MlflowClient.get_metric_history`` per run and key, 8 at a time
  (any other store: a database URI used directly, ``file:``).

Measured growth with each path: ``tests/benchmarks/bench_growth.py``.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from nets.store import client as store_client
from nets.store import rest, sqlruns
from nets.store.read import StoreError, _call
from nets.store.rest import THREADS
from nets.store.uri import first_line, safe_uri, sqlite_path

SQL_CHUNK = 450               # run ids per SQL query at most (2 variables each, 2 a key:
SQL_VARS = 999                # under SQLite's old limit on one query's variables)
REST_CHUNK = 100              # run ids per get-history-bulk request (the server's maximum)
REST_MAX_RESULTS = 25_000     # points per get-history-bulk response (the server's maximum)
REST_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
Curve = tuple  # (steps: int64 array, values: float64 array), sorted by step, one point a step

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

    def add_indexed(self, runs: np.ndarray, keys: np.ndarray, steps: np.ndarray,
                    stamps: np.ndarray, values: np.ndarray) -> None:
        """A batch whose runs and keys are already positions in ``run_ids``/``keys``."""
        if len(runs):
            self._batches.append((np.asarray(runs, np.int32), np.asarray(keys, np.int32),
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


ROW = np.dtype([("run", np.int32), ("key", np.int32), ("step", np.int64),
                ("stamp", np.int64), ("value", np.float64), ("nan", np.int8)])


def _curves_sqlite(db: Path, run_ids: list[str], keys: list[str]) -> dict:
    """One read-only SQL query per ``SQL_CHUNK`` run ids (fewer with many keys) on the local file's ``metrics``
    table (MLflow's client has no bulk history call; one call per run and key was 10x
    slower at 1,000 runs).

    The query names runs and keys by their position in ``run_ids`` and ``keys``
    (``VALUES`` tables): rows of numbers only, read into one numpy record array a
    chunk (turning 2 million rows of strings into columns in Python was 14 of the
    report's 23 s of CPU at 10,000 runs). Runs are joined first and "+key" keeps
    SQLite on the run's index: on the primary key's (key first) each (run, key) read
    every point of that key in the store (36 s at 10,000 runs, growing with the square).
    """
    con = sqlruns.connect(db, {"metrics": {"run_uuid", "key", "value", "step", "timestamp",
                                           "is_nan"}})
    try:
        points = _Points(run_ids, keys)
        kv = ",".join("(?,?)" for _ in keys)
        kargs = [x for j, k in enumerate(keys) for x in (j, k)]
        step = max(1, min(SQL_CHUNK, (SQL_VARS - len(kargs)) // 2))
        for i in range(0, len(run_ids), step):
            chunk = run_ids[i:i + step]
            sql = (f"WITH ids(i, run) AS (VALUES {','.join('(?,?)' for _ in chunk)}), "
                   f"ks(j, key) AS (VALUES {kv}) "
                   "SELECT ids.i, ks.j, m.step, m.timestamp, m.value, m.is_nan "
                   "FROM ids CROSS JOIN metrics m CROSS JOIN ks "
                   "WHERE m.run_uuid = ids.run AND +m.key = ks.key")
            args = [x for j, r in enumerate(chunk, i) for x in (j, r)] + kargs
            rows = np.array(con.execute(sql, args).fetchall(), dtype=ROW)
            if len(rows):
                points.add_indexed(rows["run"], rows["key"], rows["step"], rows["stamp"],
                                   np.where(rows["nan"] != 0, math.nan, rows["value"]))
        return points.curves()
    finally:
        con.close()


class NoBulkEndpoint(StoreError):
    """The server does not answer ``get-history-bulk`` (an old or a proxied server)."""


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
                self._session = rest.session(self.uri)
            self._submit(_rest_get, self._session, rest.base(self.uri) + REST_BULK, self.client,
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


# -- a sweep's curves in one file -------------------------------------------------------

SWEEP_FILE = "curves.npz"   # on a sweep's parent run: its jobs' report curves, as logged


def pack(curves: Mapping[str, Mapping[str, tuple]]) -> bytes:
    """``{run id: {logged key: (steps, values)}}`` as the bytes of a ``SWEEP_FILE``.

    The launcher has every job's curves in hand when the sweep ends (each job returns
    them); one file on the parent run lets a report over a server read them in one
    request instead of the server serving every point of every run (most of a 1,000-run
    report's time there: ``tests/benchmarks/bench_growth.py``). Columns of numbers, like
    ``_Points``: 20 bytes a point before compression.
    """
    import io

    runs = list(curves)
    keys = sorted({k for c in curves.values() for k in c})
    where = {k: i for i, k in enumerate(keys)}
    cols: list[list[np.ndarray]] = [[], [], [], []]
    for i, run in enumerate(runs):
        for k, (steps, values) in curves[run].items():
            n = len(steps)
            for col, part in zip(cols, (np.full(n, i, np.int32), np.full(n, where[k], np.int32),
                                        np.asarray(steps, np.int64),
                                        np.asarray(values, np.float64))):
                col.append(part)
    run, key, step, value = (np.concatenate(c) if c else np.zeros(0, t) for c, t in
                             zip(cols, (np.int32, np.int32, np.int64, np.float64)))
    buf = io.BytesIO()
    np.savez_compressed(buf, runs=np.array(runs, dtype=str), keys=np.array(keys, dtype=str),
                        run=run, key=key, step=step, value=value)
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, dict[str, Curve]]:
    """A ``SWEEP_FILE`` read back: ``{run id: {logged key: (steps, values)}}``, as
    ``CurveFetch.result`` gives them (sorted by step, one point a step)."""
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        points = _Points([str(r) for r in z["runs"]], [str(k) for k in z["keys"]])
        points.add_indexed(z["run"], z["key"], z["step"], np.zeros(len(z["step"]), np.int64),
                           z["value"])
    return points.curves()


def sweep_curves(client, uri: str, parent) -> dict[str, dict[str, Curve]]:
    """The curves the launcher kept on the sweep's ``parent`` run (``{}`` when it has
    no such file: an older or an interrupted sweep, or one that is not nets')."""
    from nets.store.read import artifact_bytes

    data = artifact_bytes(client, uri, parent, SWEEP_FILE)
    if data is None:
        return {}
    try:
        return unpack(data)
    except (OSError, ValueError, KeyError):   # not one of ours: fetch as usual
        return {}


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
