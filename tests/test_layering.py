"""The floors of the house, checked by folder (not by a hand-written list of modules).

- The engine (``nets/*.py``), ``nets/data`` and ``nets/diagnostics`` import neither
  Hydra, OmegaConf nor MLflow, nor any upper floor (store, runs, report, app).
- Only ``nets/store`` imports mlflow; only ``nets/app`` and ``hydra_plugins`` import
  hydra or omegaconf. Checked twice: statically (every import statement, including the
  lazy ones inside functions) and by importing each module in a fresh interpreter
  (what importing it actually pulls in: an upper floor imported at module level, hydra
  outside its floors, or mlflow loaded by the engine or by a command module that must
  start before any store is needed: ``nets-train`` and the launcher load mlflow only
  when they record, so a short run pays for it beside its training, not before).
- No module uses a private (``_name``) name of another package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nets", "hydra_plugins")
ENGINE_FLOORS = ("", "data", "diagnostics")          # "" = the top-level engine modules
UPPER = ("nets.store", "nets.runs", "nets.report", "nets.app")
MLFLOW_HOME = ("nets.store",)
HYDRA_HOME = ("nets.app", "hydra_plugins")
# Commands whose start must not wait for ``import mlflow`` (seconds): they import it lazily.
LAZY_MLFLOW = ("nets.app.train", "nets.app.sweep", "nets.app.config", "nets.app.schema",
               "hydra_plugins")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _floor(module: str) -> str:
    """``nets.store.write`` -> ``nets.store``; engine modules -> ``nets``."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "hydra_plugins"
    if len(parts) >= 2 and (ROOT / "nets" / parts[1]).is_dir():
        return f"nets.{parts[1]}"
    return "nets"


def _is_engine(module: str) -> bool:
    return _floor(module) in ("nets", "nets.data", "nets.diagnostics")


def _within(name: str, homes) -> bool:
    return any(name == h or name.startswith(h + ".") for h in homes)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every import in the file, module level or not: ``(module, names, line)``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def test_the_walk_sees_every_floor():
    floors = {_floor(m) for m in MODULES}
    assert {"nets", "nets.data", "nets.diagnostics", "nets.store", "nets.runs", "nets.report",
            "nets.app", "hydra_plugins"} <= floors
    assert len(MODULES) >= 30


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_stay_on_their_floor(module):
    floor = _floor(module)
    bad = []
    for name, names, line in _imports(MODULES[module]):
        top = name.split(".")[0]
        full = [name] + [f"{name}.{n}" for n in names]
        if top == "mlflow" and not _within(module, MLFLOW_HOME):
            bad.append(f"line {line}: imports {name} (only nets/store may)")
        if top in ("hydra", "omegaconf") and not _within(module, HYDRA_HOME):
            bad.append(f"line {line}: imports {name} (only nets/app and hydra_plugins may)")
        if _is_engine(module) and any(_within(f, UPPER) for f in full):
            bad.append(f"line {line}: the engine floor imports {name}")
        if floor == "nets.store" and any(_within(f, ("nets.runs", "nets.report", "nets.app"))
                                         for f in full):
            bad.append(f"line {line}: the store imports {name} from a floor above it")
        for n in names:
            target = _floor(f"{name}.{n}") if name == "nets" else _floor(name)
            if name.startswith("nets") and n.startswith("_") and not n.startswith("__") \
                    and target != floor:
                bad.append(f"line {line}: uses {name}.{n}, private to {target}")
    assert not bad, f"{module}: " + "; ".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_attribute_of_another_package(module):
    """``store_client._retry(...)``: a private name reached through a module alias."""
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith("nets"):
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("nets") and a.asname:
                    aliases[a.asname] = a.name
    floor = _floor(module)
    bad = sorted({f"{aliases[n.value.id]}.{n.attr}" for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                  and n.value.id in aliases and n.attr.startswith("_")
                  and not n.attr.startswith("__")
                  and _floor(aliases[n.value.id]) != floor})
    assert not bad, f"{module} uses private names of another package: {bad}"


def _loaded_after_import(*modules: str) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('nets.') else "
            "'.'.join(m.split('.')[:2]) for m in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, f"importing {modules} failed: {out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _violations(module: str, mods: list[str]) -> list[str]:
    bad = []
    if "mlflow" in mods and (_is_engine(module) or _within(module, LAZY_MLFLOW)):
        bad.append(f"{module} loads mlflow on import")
    if {"hydra", "omegaconf"} & set(mods) and not _within(module, HYDRA_HOME):
        bad.append(f"{module} loads hydra/omegaconf on import")
    if _is_engine(module):
        up = [m for m in mods if _within(m, UPPER)]
        if up:
            bad.append(f"engine module {module} loads {up}")
    return bad


def test_each_module_in_a_fresh_interpreter():
    """What importing a module really pulls in.

    A module may not load what its floor forbids; whatever a set of modules loads
    together includes what each loads alone, so the modules that share the same
    prohibitions are imported together in one fresh interpreter, and only a set that
    breaks one is imported again one module per interpreter, to name the culprit.
    """
    groups: dict[tuple, list[str]] = {}
    for module in MODULES:
        rules = (_is_engine(module), _within(module, LAZY_MLFLOW), _within(module, HYDRA_HOME))
        groups.setdefault(rules, []).append(module)
    bad = []
    with ThreadPoolExecutor(4) as pool:
        together = dict(zip(groups, pool.map(lambda ms: _loaded_after_import(*ms),
                                            groups.values())))
        for rules, modules in groups.items():
            if any(_violations(m, together[rules]) for m in modules):
                for module, mods in zip(modules, pool.map(_loaded_after_import, modules)):
                    bad += _violations(module, mods)
    assert not bad, "; ".join(bad)
    assert len(groups) >= 3, groups.keys()  # engine, the mlflow-free launch path, the rest
