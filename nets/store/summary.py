"""A sweep's child runs as one file on its parent: what a report reads instead of
searching every child, and the few small searches that tell what changed since.

Over an ``mlflow server`` a ``runs/search`` costs the server about 3 ms of CPU a run
(its ORM builds a row object per param, tag and metric, then protobuf, then JSON): 31
of the 41 s of a 10,000-run report (``tests/benchmarks/bench_growth.py``), and no
request can ask for less of a run. So when a nets sweep ends, its launcher reads its
children once and leaves them on the parent (``RUNS_FILE``: gzip'd JSON, one column of
values per key), with the time it read them less ``MARGIN_MS`` (``SINCE_TAG``; the
margin covers the clocks of other machines that end runs). A report then asks only:

- the children started, or ended, at or after that time (``attributes.start_time``,
  ``attributes.end_time``): a run whose end was still being written when the file was
  read, one that ``nets-cleanup`` ended later, one added later. These replace the
  file's rows;
- the deleted children (a search of deleted runs only, usually none): dropped.

Nothing nets does changes an ended child without a new end time (``nets-reproduce``
records its verdict on the new run; ``nets-cleanup`` ends runs). Not seen: a tag edited
by hand on an ended run in MLflow's UI, and a run deleted before the file was read and
restored after it; ``nets-report --fresh`` searches the children whole, as a parent
without a file (a sweep that was not nets', or did not end) always is.
"""

from __future__ import annotations

import gzip
import json
import time
from types import SimpleNamespace
from typing import Iterable, Sequence

RUNS_FILE = "runs.json.gz"          # on a sweep's parent run
SINCE_TAG = "nets.runs_file_since"  # ms: the file holds every change before this time
MARGIN_MS = 60_000
_INFO = ("run_id", "run_name", "status", "start_time", "end_time", "experiment_id",
         "lifecycle_stage", "artifact_uri")


def now_ms() -> int:
    return int(time.time() * 1000)


def pack(runs: Iterable, since: int) -> bytes:
    """Runs (MLflow's ``Run`` or plain runs: ``.info`` and ``.data``) as the bytes of a
    ``RUNS_FILE``. Each of params, tags and metrics is a list of keys and, per run, a
    list of values in that order (``null`` where the run lacks the key): a sweep's runs
    share their keys, so each key is written once, not once a run."""
    runs = list(runs)
    keys = {part: list(dict.fromkeys(k for r in runs for k in getattr(r.data, part)))
            for part in ("params", "tags", "metrics")}
    out = [[getattr(r.info, f) for f in _INFO]
           + [[getattr(r.data, part).get(k) for k in names] for part, names in keys.items()]
           for r in runs]
    doc = {"version": 1, "since": int(since), "info": list(_INFO),
           "keys": keys, "runs": out}
    # NaN and infinities are valid metric values; json writes them as its extension
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5)


def unpack(data: bytes) -> tuple[int, list[SimpleNamespace]]:
    """A ``RUNS_FILE`` read back: ``(since, plain runs)`` with the fields of
    ``nets.store.search._plain_run``; ``ValueError`` when it is not one of ours."""
    try:
        doc = json.loads(gzip.decompress(data))
        if doc.get("version") != 1 or doc.get("info") != list(_INFO):
            raise ValueError("not a nets runs file")
        since, keys = int(doc["since"]), doc["keys"]
        pk, tk, mk = keys["params"], keys["tags"], keys["metrics"]
        runs = []
        for row in doc["runs"]:
            info = dict(zip(_INFO, row))
            params, tags, metrics = row[len(_INFO):]
            runs.append(SimpleNamespace(
                info=SimpleNamespace(**info),
                data=SimpleNamespace(
                    params={k: v for k, v in zip(pk, params) if v is not None},
                    tags={k: v for k, v in zip(tk, tags) if v is not None},
                    metrics={k: float(v) for k, v in zip(mk, metrics) if v is not None})))
    except (OSError, EOFError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a nets runs file: {e}") from None
    return since, runs


def _order(runs: list) -> list:
    """MLflow's search order: newest first, then by run id."""
    return sorted(runs, key=lambda r: (-(r.info.start_time or 0), r.info.run_id))


def usable(parent) -> int | None:
    """The time of the parent's ``RUNS_FILE`` (``None``: it has none)."""
    try:
        return int(parent.data.tags[SINCE_TAG])
    except (KeyError, ValueError):
        return None


def children(client, uri: str, experiment_ids: Sequence[str], parent) -> tuple[list, int] | None:
    """The active children of ``parent`` from its ``RUNS_FILE`` and what changed since
    (module doc), in MLflow's search order, and how many were read again; ``None`` when
    the parent has no usable file (the caller searches them all)."""
    from nets.store import read

    since = usable(parent)
    data = read.artifact_bytes(client, uri, parent, RUNS_FILE) if since is not None else None
    if data is None:
        return None
    try:
        written, runs = unpack(data)
    except ValueError:
        return None
    if written != since:          # a file of another ending (a crash between file and tag)
        return None
    ids, mine = list(experiment_ids), read.child_filter(parent.info.run_id)
    fresh = {}
    for flt in (f"{mine} and attributes.start_time >= {since}",
                f"{mine} and attributes.end_time >= {since}"):
        fresh.update((r.info.run_id, r) for r in read.search_runs(client, ids, flt))
    gone = {r.info.run_id for r in read.search_runs(client, ids, mine, deleted=True)}
    out = {r.info.run_id: r for r in runs if r.info.run_id not in gone}
    out.update((i, r) for i, r in fresh.items() if i not in gone)
    return _order(list(out.values())), len(fresh)


def file_bytes(uri: str, experiment_ids: Sequence[str], parent_run_id: str) -> tuple[bytes, int]:
    """The ``RUNS_FILE`` of the parent's children as they are now, and its time."""
    from nets.store import read

    since = now_ms() - MARGIN_MS     # taken before the read: later changes are newer
    runs = [r for page in read.child_pages(uri, uri, experiment_ids, parent_run_id,
                                           page=read.SEARCH_PAGE) for r in page]
    return pack(runs, since), since
