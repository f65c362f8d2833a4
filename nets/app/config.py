"""Config at the border: compose, check strictly, turn into plain data.

Hydra lets some mistakes through silently (``+train.lrr=0.1``, ``+modle=mlp``, ``???``
values: shared/research/stack-reliability.md §E) and prints others over many lines.
Everything here ends in one ``ConfigError`` line naming the key, the bad value and the
valid choices, raised before anything is recorded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from nets import plugins
from nets.app import errors, schema
from nets.app.schema import GROUPS, ROOT_KEYS
from nets.catalog import REGISTRIES
from nets.registry import ConfigError, suggest
from nets.train import TrainSettings

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_GROUP_OVERRIDE = re.compile(r"^(?P<op>[+~]{0,2})(?P<key>[A-Za-z_][\w.]*)(@[\w.]+)?=(?P<val>.*)$")


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The YAML stems available in a config group."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_overrides(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Catch unknown groups, options and root keys in command-line overrides.

    Runs before Hydra so the user gets one line with the choices instead of Hydra's
    multi-line message, and so ``+key=`` cannot smuggle in a key no schema knows. It
    first makes the user's components composable (``register_user_components``).
    """
    selected = register_user_components(overrides, conf_dir)
    # conf/hydra/ only configures Hydra itself (the --help page), no user group
    groups = set(GROUPS) | {p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"}
    for o in overrides:
        if o.startswith("hydra.") or o.startswith("hydra/") or o.startswith("+hydra"):
            continue
        m = _GROUP_OVERRIDE.match(o)
        if not m:
            continue
        key, val = m.group("key"), m.group("val")
        root = key.split(".")[0]
        if root not in ROOT_KEYS and root not in groups:
            raise ConfigError(key, val, "unknown config key; valid top-level keys: "
                              + ", ".join(sorted(set(ROOT_KEYS) | groups)) + suggest(root, ROOT_KEYS))
        if "." in key and root in GROUPS:
            sub = key.split(".")[1]
            known = _group_keys(root) | selected.get(root, set())
            if sub not in known:
                raise ConfigError(key, val, f"unknown key of {root}; valid keys: "
                                  + ", ".join(sorted(known)) + suggest(sub, known))
        if key == "train" or key.startswith("train."):
            sub = key.split(".")[1] if "." in key else ""
            if sub and sub not in TrainSettings.__dataclass_fields__:
                known = list(TrainSettings.__dataclass_fields__)
                raise ConfigError(key, val, "unknown key of train; valid keys: "
                                  + ", ".join(known) + suggest(sub, known))
        if "." not in key and root in groups and m.group("op") != "~":
            choices = options(root, conf_dir)
            extra = set(REGISTRIES[root].names()) if root in GROUPS else set()
            for v in _sweep_values(val):
                if v not in choices and v not in extra and not plugins.is_import_path(v):
                    raise ConfigError(key, v, f"unknown {key}; choose one of: {', '.join(choices)}"
                                      + suggest(v, choices))


def register_user_components(overrides: list[str], conf_dir: Path = CONF_DIR
                             ) -> dict[str, set[str]]:
    """Import a ``plugins=[...]`` override's modules and register every group choice that
    is an import path (``optimizer=myopt:Lion``) as a Hydra option of its group.

    Returns the hyperparameter names of those user choices per group, so that
    ``optimizer.beta=0.5`` passes the strict key check. Choices made inside YAML files
    cannot be seen here: select user components of a group on the command line (nested
    specs, such as ``model.layers`` entries, work anywhere).
    """
    for o in overrides:
        m = _GROUP_OVERRIDE.match(o)
        if m and m.group("key") == "plugins" and m.group("op") != "~":
            plugins.load_modules(_list_value(m.group("val")), "plugins")
    schema.register(conf_dir)
    selected: dict[str, set[str]] = {}
    for o in overrides:
        m = _GROUP_OVERRIDE.match(o)
        if not m or m.group("key") not in GROUPS or m.group("op") == "~":
            continue
        for v in _sweep_values(m.group("val")):
            if plugins.is_import_path(v):
                schema.register_user(m.group("key"), v)
                cls = REGISTRIES[m.group("key")].get(v, m.group("key"))
                selected.setdefault(m.group("key"), set()).update(cls.hparam_names())
    return selected


def _list_value(val: str) -> list[str]:
    """``[a, b]`` or ``a`` (an override's value) as a list of module names."""
    val = val.strip()
    if val.startswith("[") and val.endswith("]"):
        val = val[1:-1]
    return [v.strip().strip("'\"") for v in val.split(",") if v.strip()]


def _group_keys(group: str) -> set[str]:
    """Every hyperparameter name any option of ``group`` accepts (plus ``name``)."""
    reg = REGISTRIES[group]
    return {"name"} | {p for n in reg.names() for p in reg[n].hparam_names()}


def _sweep_values(val: str) -> list[str]:
    """Option names in a plain value or a simple ``a,b,c`` sweep (others left to Hydra)."""
    if any(c in val for c in "()[]{}$"):
        return []
    return [v.strip() for v in val.split(",") if v.strip()]


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """Resolved config as plain dicts/lists, ``hydra`` node removed, strictly checked."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        # Name the first missing key in sorted order, whichever the walk met first
        # (missing_keys walks the whole tree: only worth it when one is missing).
        missing = sorted(OmegaConf.missing_keys(cfg))
        if not missing:
            raise one_line(e) from e
        raise ConfigError(missing[0], "???", "a value is required") from None
    except OmegaConfBaseException as e:
        raise one_line(e) from e
    plain.pop("hydra", None)
    if not plain.get("plugins"):
        # Absent rather than empty: a run without plugins hashes as it always did.
        plain.pop("plugins", None)
    unknown = [k for k in plain if k not in ROOT_KEYS]
    if unknown:
        raise ConfigError(unknown[0], plain[unknown[0]], "unknown config key; valid: "
                          + ", ".join(ROOT_KEYS) + suggest(unknown[0], ROOT_KEYS))
    return plain


def one_line(exc: BaseException, overrides: list[str] = ()) -> ConfigError:
    """Hydra/OmegaConf exception -> one-line ``ConfigError``.

    Hydra wraps the informative OmegaConf error (which knows the key and the schema
    class) in a generic one; the chain is searched for it.
    """
    if isinstance(exc, ConfigError):
        return exc
    known = errors.translate(exc, overrides)
    if known is not None:
        return known
    msg = str(exc)
    m = re.search(r"Could not find '([\w/]+)/(\w+)'", msg)
    if m:
        group, name = m.groups()
        choices = options(group)
        return ConfigError(group, name, f"unknown {group}; choose one of: {', '.join(choices)}"
                           + suggest(name, choices))
    inner, c = None, exc
    while c is not None and inner is None:
        if getattr(c, "full_key", None):
            inner = c
        c = c.__cause__ or c.__context__
    if inner is None:
        first = next((ln.strip() for ln in msg.splitlines() if ln.strip()), type(exc).__name__)
        return ConfigError("", "", first)
    key = inner.full_key
    given = {o.lstrip("+~").split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    value = given.get(key, "")
    first = str(getattr(inner, "msg", inner)).splitlines()[0].strip()
    schema = getattr(inner, "object_type", None)
    fields = list(getattr(schema, "__dataclass_fields__", {}))
    m = re.search(r"Key '(\w+)' (?:is )?not in", first)
    if m and fields:
        what = f"{key.rsplit('.', 1)[0]} {getattr(schema(), 'name', '')!r}".replace(" ''", "")
        return ConfigError(key, value, f"unknown key of {what}; valid keys: {', '.join(fields)}"
                           + suggest(m.group(1), fields))
    m = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", first)
    if m:
        return ConfigError(key, m.group(1), f"must be {'an' if m.group(3)[0] in 'AEIOU' else 'a'} "
                           f"{m.group(3).lower()}")
    if "is not a ListConfig" in first:
        first = "must be a list, e.g. [128, 64]"
    return ConfigError(key, value, first)
