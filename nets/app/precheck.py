"""Checks before Hydra starts a sweep: the sweep file, its first point, the store.

Hydra reads a sweep file late and reports it in many lines: broken YAML as a 69-line
``yaml.parser.ParserError`` traceback, an unknown key in the file's body as a 5-line
block without "did you mean"; and an unreachable store is found only when the launcher
prepares it, after minutes of MLflow's retries. ``nets-sweep`` and ``nets-train -m``
(and ``nets-train`` for one run: ``check_store_of``) call these first; each problem is
one ``ConfigError`` line and nothing has been run, written or recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from nets.app import config as appconfig
from nets.registry import ConfigError


def check_sweep_file(path: Path) -> None:
    """The sweep file's own text, before Hydra reads it: YAML syntax (Hydra prints a
    69-line parser traceback) and every key of its body and of ``hydra.sweeper.params``
    (Hydra's 5-line block has no "did you mean"). One ``ConfigError`` line."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("sweep", str(path), f"cannot be read ({type(e).__name__}: "
                          f"{getattr(e, 'strerror', None) or getattr(e, 'reason', '')})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        ctx, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if ctx and cmark:
            what += f" ({ctx} that starts at line {cmark.line + 1})"
        raise ConfigError("sweep", str(path), f"broken YAML{where}: {what}; fix the file "
                          "(nothing was run or recorded)") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError("sweep", str(path), "must be a YAML mapping (defaults, hydra, "
                          f"config keys), not a {type(data).__name__}")
    hydra_node = data.get("hydra") if isinstance(data.get("hydra"), dict) else {}
    sweeper = hydra_node.get("sweeper") if isinstance(hydra_node.get("sweeper"), dict) else {}
    params = sweeper.get("params") if isinstance(sweeper.get("params"), dict) else {}
    body = [f"{k}={v}" for k, v in _flat({k: v for k, v in data.items()
                                          if k not in ("defaults", "hydra")})]
    swept = [f"{k}={v}" for k, v in params.items()]
    try:
        appconfig.check_overrides(body + swept)
    except ConfigError as e:
        raise ConfigError(e.key, e.value, e.allowed, f"in sweep file {path}") from None


def _flat(node: dict, prefix: str = "", depth: int = 2):
    """``(dotted key, value)`` pairs down to ``depth`` levels (what ``check_overrides``
    checks: the section and its key)."""
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and depth > 1:
            yield from _flat(v, key + ".", depth - 1)
        else:
            yield key, v


def first_point(path: Path | None, overrides: list[str]) -> dict:
    """The sweep's first point composed and checked (one ``ConfigError`` line), as plain
    data: the file's ``hydra.sweeper.params`` and swept overrides at their first value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import yaml

    from nets.app.schema import register

    register()
    params, data = {}, {}
    if path is not None:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    given = [f"{k}={v}" for k, v in params.items()] + list(overrides)
    chosen: dict[str, str] = {}
    try:
        parser = OverridesParser.create()
        for text in given:
            o = parser.parse_override(text)
            key = text.split("=", 1)[0]
            if o.is_sweep_override():
                try:
                    first = next(iter(o.sweep_string_iterator()))
                except Exception:  # noqa: BLE001 - glob() etc.: the launcher checks each point
                    continue
                text = f"{key}={first}"
            chosen[key.lstrip("+~")] = text
        extra = [] if path is None else [f"hydra.searchpath=[file://{appconfig.CONF_DIR}]"]
        config_dir = appconfig.CONF_DIR if path is None else path.parent
        with initialize_config_dir(str(config_dir), version_base="1.3"):
            cfg = compose("config" if path is None else path.stem,
                          overrides=list(chosen.values()) + extra)
        return appconfig.to_plain(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        err = appconfig.one_line(e, list(chosen.values()) or given)
        if path is None or err.key in chosen:
            raise err from None
        value = dict(_flat(data, depth=99)).get(err.key, err.value)  # the file's own text
        raise ConfigError(err.key, value, err.allowed, f"in sweep file {path}") from None


def check_store_of(plain: dict) -> None:
    """``nets.store.connect.check`` on the point's store (``StoreError``), if it records."""
    from nets.runs.job import tracking_of
    from nets.store import connect, uri as store_uri

    tr = tracking_of(plain)
    if tr["enabled"]:
        connect.check(store_uri.resolve_uri(tr["uri"], os.getcwd()), connect.source_of(tr["uri"]))


def precheck_argv(argv: list[str]) -> None:
    """``nets-train -m ...``: the checks ``nets-sweep`` makes before Hydra starts (the
    config file named by ``--config-dir``/``--config-name``, the first point, the store)."""
    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
                 "--shell-completion", "-sc", "--config-path", "-cp") for a in argv):
        return
    flags = {"--config-dir": "dir", "-cd": "dir", "--config-name": "name", "-cn": "name"}
    opts, rest, it = {}, [], iter(argv)
    for a in it:
        flag, eq, val = a.partition("=")
        if flag in flags:
            opts[flags[flag]] = val if eq else next(it, "")
        elif not a.startswith("-"):
            rest.append(a)
    config_dir, name = opts.get("dir"), opts.get("name") or "config"
    path = None
    if config_dir or name != "config":
        path = Path(config_dir or appconfig.CONF_DIR, f"{name}.yaml")
        if not path.is_file():
            return  # Hydra names what it cannot find
        check_sweep_file(path)
    plain = first_point(path, rest)
    if not any(a.startswith("hydra.launcher.dry_run=true") for a in rest):
        check_store_of(plain)
