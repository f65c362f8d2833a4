"""``runs/search`` of an ``mlflow server`` read as JSON: plain runs, page by page, and the
rest of a long search asked in disjoint ``start_time`` ranges at once.

MLflow's client turns the JSON into protobuf messages, then entities: 2 s of the
caller's time per 1,000 runs of 30 params; decoding the JSON once gives the same runs
(``_plain_run``). A server answers one request in one worker process, so a search read
page after page keeps one worker busy while the others wait; building the runs is the
server's cost (3-4 ms a run at 1,000 runs, most of the time a search takes). After the
first page, the remaining runs are split into ``THREADS`` ranges of ``start_time``
that are asked concurrently and handed on in the server's own order, so a caller
sees the same runs in the same order as from one paged search.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Sequence

from nets.store import rest
from nets.store.uri import first_line, safe_uri

SEARCH_PAGE = 50_000          # MLflow's own maximum for one search_runs page
REST_SEARCH = "/api/2.0/mlflow/runs/search"
START_ASC, START_DESC = "attributes.start_time ASC", "attributes.start_time DESC"
SPLIT = rest.THREADS          # start-time ranges of a long search asked at once


class SearchError(Exception):
    """The server refused or could not be reached (one line, the URI without credentials)."""


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


class _Search:
    """One search's requests on one session: the filter, order and page size."""

    def __init__(self, uri: str, session, experiment_ids: Sequence[str], filter_string: str,
                 page: int, order_by: Sequence[str] | None):
        self.uri, self.session, self.url = uri, session, rest.base(uri) + REST_SEARCH
        self.experiment_ids, self.filter = list(experiment_ids), filter_string
        self.page, self.order_by = min(page, SEARCH_PAGE), list(order_by or [])

    def request(self, extra: str = "", max_results: int | None = None,
                order_by: Sequence[str] | None = None, token: str | None = None) -> dict:
        flt = " and ".join(f for f in (self.filter, extra) if f)
        body = {"experiment_ids": self.experiment_ids, "filter": flt,
                "max_results": max_results or self.page, "run_view_type": "ACTIVE_ONLY"}
        order = self.order_by if order_by is None else list(order_by)
        if order:
            body["order_by"] = order
        if token:
            body["page_token"] = token
        try:
            resp = self.session.post(self.url, json=body, timeout=300)
        except OSError as e:
            raise SearchError(f"{safe_uri(self.uri)}: {first_line(e)}") from None
        if resp.status_code != 200:
            try:
                why = resp.json().get("message", "")
            except ValueError:
                why = resp.text
            raise SearchError(f"{safe_uri(self.uri)}{REST_SEARCH} answered HTTP "
                              f"{resp.status_code}: {first_line(Exception(why))}")
        return resp.json()

    def pages(self, extra: str = "", first: dict | None = None):
        """Plain runs page by page (``first``: the first page's answer, already asked)."""
        out = first if first is not None else self.request(extra)
        while True:
            yield [_plain_run(r) for r in out.get("runs", [])]
            token = out.get("next_page_token")
            if not token:
                return
            out = self.request(extra, token=token)

    def range_pages(self, extra: str, skip: set) -> list[list]:
        """Every page of one ``start_time`` range, without the runs in ``skip``."""
        return [[r for r in page if r.info.run_id not in skip] for page in self.pages(extra)]


def _ranges(edge: int, end: int, ascending: bool, n: int) -> list[str]:
    """Filters of ``n`` disjoint ``start_time`` ranges from ``edge`` (included: a run
    logged in the same millisecond as the first page's last may follow it) to ``end``
    (included), in the order the search reads them."""
    lo, hi = (edge, end) if ascending else (end, edge)
    n = max(1, min(n, hi - lo + 1))
    cuts = [lo + (hi - lo + 1) * k // n for k in range(n + 1)]     # [cut_k, cut_k+1)
    spans = [(a, b - 1) for a, b in zip(cuts, cuts[1:]) if b > a]
    if not ascending:
        spans.reverse()
    return [f"attributes.start_time >= {a} and attributes.start_time <= {b}" for a, b in spans]


def rest_pages(uri: str, experiment_ids: Sequence[str], filter_string: str, page: int,
               order_by: Sequence[str] | None = None, split: int | None = None):
    """``runs/search`` of an ``mlflow server`` as lists of plain runs (``_plain_run``),
    in the server's order: the same runs as MLflow's ``search_runs`` with the same
    filter and order (default: newest first).

    The first page is asked alone (a search of one page costs one request, as before).
    When more follow and the order is by start time only (the default, or
    ``start_time`` ascending or descending), the remaining runs, from the first page's
    last start time to the other end's (one request of one run), are read in ``split``
    ranges at once, each page by page; a range's pages are handed on once that range
    and every range before it are read. Any other order is read page after page.
    """
    split = SPLIT if split is None else split
    with rest.session(uri) as session:
        search = _Search(uri, session, experiment_ids, filter_string, page, order_by)
        first = search.request()
        runs = first.get("runs", [])
        order = search.order_by
        ascending = order == [START_ASC]
        if (split <= 1 or not first.get("next_page_token") or not runs
                or order not in ([], [START_ASC], [START_DESC])):
            yield from search.pages(first=first)
            return
        head = [_plain_run(r) for r in runs]
        yield head
        edge = head[-1].info.start_time
        other = search.request(max_results=1, order_by=[START_DESC if ascending else START_ASC])
        if not other.get("runs"):
            return
        end = _plain_run(other["runs"][0]).info.start_time
        # ties at the edge: runs of the first page read again by the first range
        seen = {r.info.run_id for r in head if r.info.start_time == edge}
        pool = ThreadPoolExecutor(split)
        try:
            futures = [pool.submit(search.range_pages, f, seen)
                       for f in _ranges(edge, end, ascending, split)]
            for f in futures:
                for p in f.result():
                    if p:
                        yield p
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
