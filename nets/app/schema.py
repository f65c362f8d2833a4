"""Structured-config schemas for every ``conf/`` group, generated from the registries.

Each registered component's constructor signature *is* its schema: a dataclass with a
``name`` field fixed to the registry key and one typed field per hyperparameter. The
YAML files extend it (``defaults: [/nets_schema/<kind>/<name>@_here_, _self_]``), so a
wrong type or an unknown key fails at composition time, and Python and YAML cannot
drift apart. The root ``Config`` gives ``train``, ``tracking`` and ``seed`` their types.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from nets.catalog import REGISTRIES
from nets.diagnostics import DiagnosticsSettings
from nets.train import TrainSettings
from nets.runs.job import Tracking

# Config groups selected at the top level; every name in their registry has a YAML file.
from nets.train import GROUPS  # noqa: E402 - one list of the component groups
# Fields holding a nested spec (a name, or a mapping with one): typed Any and checked by
# the registry when built, since OmegaConf has no Union of str and dict.
SPEC_FIELDS = {"init", "bias_init", "activation", "output", "fn", "after", "layers"}
_ANNOTATIONS = {"float": float, "int": int, "bool": bool, "str": str,
                "float | None": Optional[float], "int | None": Optional[int],
                "str | None": Optional[str], "bool | None": Optional[bool]}


@dataclass
class ConvBlock:
    channels: int = 8   # output channels of the convolution
    kernel: int = 3     # square kernel size
    stride: int = 1
    padding: int = 0    # zero padding on each side
    pool: int = 1       # max-pool size and stride after the activation (1 = no pool)


def _field_type(name: str, param: inspect.Parameter) -> tuple[Any, Any]:
    """``(type, default)`` for one constructor argument."""
    default = param.default
    if name == "conv":
        return List[ConvBlock], field(default_factory=lambda d=default: [ConvBlock(**b) for b in d])
    if name in SPEC_FIELDS:
        if isinstance(default, (list, tuple)):
            return Any, field(default_factory=lambda d=default: list(d))
        return Any, default
    ann = param.annotation
    if isinstance(ann, str) and ann in _ANNOTATIONS:
        typ = _ANNOTATIONS[ann]
    elif ann in (int, float, bool, str):   # a user module without postponed annotations
        typ = ann
    elif isinstance(default, bool):
        typ = bool
    elif isinstance(default, int):
        typ = int
    elif isinstance(default, float):
        typ = float
    elif isinstance(default, str):
        typ = str
    elif isinstance(default, (list, tuple)):
        elem = int if all(isinstance(x, int) for x in default) and default else Any
        if name == "hidden":
            elem = int
        return List[elem], field(default_factory=lambda d=default: list(d))
    else:
        typ = Optional[Any]
    return typ, default


def component_schema(kind: str, name: str) -> type:
    """The dataclass schema of registry entry ``kind/name``."""
    cls = REGISTRIES[kind][name]
    sig = inspect.signature(cls.__init__)
    fields: list[tuple] = [("name", str, field(default=name))]
    for p in cls.hparam_names():
        typ, default = _field_type(p, sig.parameters[p])
        if default is inspect.Parameter.empty:
            default = MISSING
        fields.append((p, typ, default if isinstance(default, dataclasses.Field)
                       else field(default=default)))
    title = "".join(w.capitalize() for w in re.split(r"[_.:]", f"{kind}_{name}"))
    return dataclasses.make_dataclass(f"{title}Conf", fields)


def _settings_conf(settings_cls, name: str) -> type:
    """A schema dataclass mirroring a core settings dataclass (string annotations)."""
    fields = []
    for f in dataclasses.fields(settings_cls):
        typ = _ANNOTATIONS.get(f.type, Any) if isinstance(f.type, str) else f.type
        fields.append((f.name, typ, field(default=f.default)))
    return dataclasses.make_dataclass(name, fields)


TrainConf = _settings_conf(TrainSettings, "TrainConf")
DiagnosticsConf = _settings_conf(DiagnosticsSettings, "DiagnosticsConf")


# The tracking section's one schema lives with the job that reads it.
TrackingConf = Tracking


@dataclass
class Config:
    seed: int = 0
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    target: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    train: Any = field(default_factory=TrainConf)
    diagnostics: Any = field(default_factory=DiagnosticsConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    # modules to import first; their classes register themselves (docs/components.md)
    plugins: Optional[List[str]] = None


ROOT_KEYS = tuple(f.name for f in dataclasses.fields(Config))


def register(conf_dir=None) -> None:
    """Store every schema in Hydra's ConfigStore (idempotent).

    A registry name without a YAML file in ``conf_dir`` (registered by a ``plugins``
    module) also becomes an option of its group, so ``optimizer=myopt`` composes.
    """
    cs = ConfigStore.instance()
    cs.store(name="nets_base", node=Config)
    for kind in GROUPS:
        for name in REGISTRIES[kind].names():
            cs.store(group=f"nets_schema/{kind}", name=name, node=component_schema(kind, name))
            if conf_dir is not None and not (conf_dir / kind / f"{name}.yaml").is_file():
                cs.store(group=kind, name=name, node=component_schema(kind, name))


def register_user(kind: str, path: str) -> type:
    """Make the user's class ``path`` (``mylosses:Huber``) an option of group ``kind``:
    ``loss=mylosses:Huber loss.delta=0.5`` then composes, its constructor arguments
    typed and defaulted like a built-in's. Raises ``ConfigError`` (one line) when the
    class cannot be imported or does not follow the protocol of its kind."""
    schema = component_schema(kind, path)
    ConfigStore.instance().store(group=kind, name=path, node=schema)
    return schema
