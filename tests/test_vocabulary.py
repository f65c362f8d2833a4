"""One vocabulary of tag keys: every key nets reads from a run is written by nets.

Tag keys are read in many places (the report, resume, cleanup, reproduce, the UI's
ids, nets-diagnose) and written in a few (the job, the sweep, the launcher). A key read
that nothing writes is a silent bug (``nets.resumed_from`` was one: the report followed
it, nothing ever set it). This walks every module's syntax tree and classifies each
``nets.*`` / ``mlflow.*`` tag key by how it is used:

- written: a key of a dict literal (``tags={"nets.job": ...}``), a ``set_tag(run, KEY,
  value)`` argument, an item assignment ``tags[KEY] = ...``, a module constant
  (``TAG = "nets.user_code"``) that its module writes through;
- read: ``tags.get(KEY)``, ``tags[KEY]``, ``KEY in tags``, and search filters
  (``tags.`KEY` = '...'``).

Then every key read must be written somewhere, and ``nets.store.tags`` must list every
key written: the one place a reader finds what a run can carry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nets.store import tags as vocabulary

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^(nets|mlflow)\.[a-z_]+(\.[a-z_]+)*$")
FILTER_KEY = re.compile(r"tags\.`((?:nets|mlflow)\.[A-Za-z_.]+)`")
# Written by MLflow itself (run creation), read by nets.
BY_MLFLOW = {"mlflow.runName", "mlflow.parentRunId", "mlflow.user"}


def _is_module_path(s: str) -> bool:
    parts = s.split(".")
    return (ROOT / Path(*parts)).with_suffix(".py").is_file() or (ROOT / Path(*parts)).is_dir()


def _classify() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    written: dict[str, list[str]] = {}
    read: dict[str, list[str]] = {}
    for path in sorted([*ROOT.joinpath("nets").rglob("*.py"),
                        *ROOT.joinpath("hydra_plugins").rglob("*.py")]):
        if path.name == "tags.py" and path.parent.name == "store":
            continue
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            for k in FILTER_KEY.findall(node.value):
                read.setdefault(k, []).append(where)
            if not KEY.match(node.value):
                continue
            key, parent = node.value, parents.get(node)
            if isinstance(parent, ast.Dict) and node in parent.keys:
                written.setdefault(key, []).append(where)
            elif _is_module_path(key):   # sys.modules.get("nets.runs.sweep"): no tag
                continue
            elif isinstance(parent, ast.Call) and node in parent.args and (
                    isinstance(parent.func, ast.Attribute) and parent.func.attr == "set_tag"
                    or any(isinstance(a, ast.Attribute) and a.attr == "set_tag"
                           for a in parent.args)):   # retry(client.set_tag, run, KEY, v)
                written.setdefault(key, []).append(where)
            elif isinstance(parent, ast.Assign) and parents.get(parent) is tree:
                # A module constant (``TAG = "nets.user_code"``) names a key its module
                # writes through the name.
                written.setdefault(key, []).append(where)
            elif isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
                written.setdefault(key, []).append(where)
            elif isinstance(parent, ast.Subscript) or (
                    isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute)
                    and parent.func.attr == "get") or isinstance(parent, ast.Compare):
                read.setdefault(key, []).append(where)
    return written, read


WRITTEN, READ = _classify()


def test_the_walk_finds_both_sides():
    assert {"nets.config_hash", "nets.sweep_id", "nets.diagnosis"} <= set(WRITTEN)
    assert {"nets.sweep_role", "nets.config_hash"} <= set(READ)


def test_every_key_read_is_written():
    orphans = {k: v for k, v in READ.items() if k not in WRITTEN and k not in BY_MLFLOW}
    assert not orphans, f"read but never written: {orphans}"


def test_the_vocabulary_lists_every_key_written_and_nothing_else():
    listed = set(vocabulary.TAGS)
    assert set(WRITTEN) <= listed, f"written but not in nets/store/tags.py: {sorted(set(WRITTEN) - listed)}"
    stale = listed - set(WRITTEN) - BY_MLFLOW
    assert not stale, f"listed in nets/store/tags.py but never written: {sorted(stale)}"
