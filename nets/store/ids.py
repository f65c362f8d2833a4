"""What a user may type where a command wants a run: an id, a unique prefix, a unique name.

``nets-report`` and the live sweep lines print 8-character ids, and the runs table shows
names; every command that takes a run accepts all three. A SQLite store is asked directly
(read-only, no MLflow import: a prefix lookup must not cost the seconds MLflow takes to
import); any other store goes through ``MlflowClient``.
"""

from __future__ import annotations

import re
import sqlite3

from nets.store.uri import sqlite_path

FULL_ID = re.compile(r"^[0-9a-f]{32}$")
HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 4  # shorter hex words are more likely a name than an id


class RunNotFound(LookupError):
    """No run, or more than one, answers to what the user typed (one-line message).

    ``candidates`` holds the ``(run_id, name)`` pairs when there were several.
    """

    def __init__(self, message: str, candidates: list[tuple[str, str]] = ()):
        super().__init__(message)
        self.candidates = list(candidates)


def resolve_run(uri: str, token: str) -> str:
    """The full run id that ``token`` names in the store at ``uri``.

    ``token`` is a full id, a prefix of one (at least ``MIN_PREFIX`` hex characters) or a
    run name; deleted runs only answer to their full id. An exact name and an id prefix
    are both tried, and must agree on one run.

    Raises
    ------
    RunNotFound
        Nothing matches, or several runs do (the message lists up to five).
    """
    token = token.strip()
    if FULL_ID.match(token):
        return token
    by_name, by_prefix = _candidates(uri, token)
    found = {rid: name for rid, name in by_name + by_prefix}
    if len(found) == 1:
        return next(iter(found))
    if not found:
        what = ("not a run id, an id prefix or a run name in the store" if HEX.match(token)
                else "not a run id, and no run in the store has that name")
        raise RunNotFound(f"no run {token!r}: {what}")
    shown = ", ".join(f"{rid[:12]} ({name})" for rid, name in list(found.items())[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise RunNotFound(f"{token!r} names {len(found)} runs: {shown}{more}; "
                      "give more characters of the id, or the full id", list(found.items()))


def _candidates(uri: str, token: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(by exact name, by id prefix)``, each ``[(run_id, name)]`` of active runs."""
    prefix = token.lower() if HEX.match(token.lower()) and len(token) >= MIN_PREFIX else None
    db = sqlite_path(uri)
    if db is not None:
        return _sqlite_candidates(db, token, prefix)
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not exps:
        return [], []
    quoted = token.replace("'", "\\'")
    named = client.search_runs(exps, f"attributes.run_name = '{quoted}'", max_results=6)
    by_name = [(r.info.run_id, r.info.run_name) for r in named]
    by_prefix: list[tuple[str, str]] = []
    if prefix:
        # The search grammar has no LIKE on run ids: page through the ids.
        token_ = None
        while True:
            page = client.search_runs(exps, max_results=5000, page_token=token_)
            by_prefix += [(r.info.run_id, r.info.run_name) for r in page
                          if r.info.run_id.startswith(prefix)]
            token_ = page.token
            if not token_:
                break
    return by_name, by_prefix


def _sqlite_candidates(db, token: str, prefix: str | None):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=20) as con:
        by_name = con.execute(
            "SELECT run_uuid, name FROM runs WHERE name = ? AND lifecycle_stage = 'active' "
            "LIMIT 6", (token,)).fetchall()
        by_prefix = [] if prefix is None else con.execute(
            "SELECT run_uuid, name FROM runs WHERE run_uuid LIKE ? AND lifecycle_stage = 'active' "
            "LIMIT 6", (prefix + "%",)).fetchall()
    return by_name, by_prefix
