"""Every kind of component, registered: the one module that imports them all.

``registry.py`` only defines the tables; each component module fills its own. Code that
builds components by kind and name (the trainer, the config schema, the checks) imports
this module, so every table is full and no component module imports another one only
for its side effect.
"""

from __future__ import annotations

from typing import Any

from nets import (activations, convolutions, data, initializers, layers,  # noqa: F401
                  losses, models, optimizers, schedules, targets)
from nets.registry import REGISTRIES, ConfigError, Registry

def kinds() -> dict[str, Registry]:
    """Every registry, by kind (``{"activation": ACTIVATIONS, ...}``)."""
    return dict(REGISTRIES)


def build(kind: str, spec: Any, key: str | None = None, **runtime: Any) -> Any:
    """Build a component of ``kind`` from a plain spec (see ``Registry.build``)."""
    if kind not in REGISTRIES:
        raise ConfigError("kind", kind, f"choose one of: {', '.join(sorted(REGISTRIES))}")
    return REGISTRIES[kind].build(spec, key=key, **runtime)
