"""Keys and values MLflow accepts, made once and without importing mlflow: the same
sanitising for a run written in process and one written by the recorder process."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-/ :]")


def clean_key(key: str) -> str:
    """A key MLflow accepts: allowed characters, no leading or doubled '/', <= 250."""
    key = _KEY_BAD.sub("_", str(key))
    key = re.sub(r"/+", "/", key).strip("/") or "_"
    return key[:250]


def finite(value: Any) -> float | None:
    """``float(value)`` if finite, else ``None`` (the caller records divergence)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": "0.1"}``; lists stay one value."""
    out: dict[str, str] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


# -- one run --------------------------------------------------------------------------
