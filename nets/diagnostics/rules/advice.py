"""Advice items that quote the run's own config (rate, reduction, init, bias init, depth)."""

from __future__ import annotations

from nets.diagnostics.rules.base import Advice
from nets.diagnostics.runinfo import RunInfo


def lr_of(info: RunInfo) -> float | None:
    try:
        return float(info.config.get("optimizer.lr"))
    except (TypeError, ValueError):
        return None


def now(info: RunInfo, key: str) -> str:
    """``" (now 0.1)"`` when the run's config has ``key``, else ``""``."""
    v = info.config.get(key)
    return f" (now {v:g})" if isinstance(v, float) else (f" (now {v})" if v is not None else "")


def lower_lr(info: RunInfo, why: str = "") -> Advice:
    lr = lr_of(info)
    to = f"={lr / 10:g}, 10x below this run's {lr:g}" if lr else " 10x"
    return Advice(f"Lower optimizer.lr{to}{why}.", "optimizer.lr", "lower")


def raise_lr(info: RunInfo, why: str = "") -> Advice:
    lr = lr_of(info)
    to = f"={lr * 10:g}, 10x this run's {lr:g}" if lr else " 10x"
    return Advice(f"Raise optimizer.lr{to}{why}.", "optimizer.lr", "raise")


def mean_reduction(info: RunInfo) -> list[Advice]:
    """Story 4's cause, when this run has it: a summed batch gradient."""
    c = info.config
    bs = c.get("train.batch_size")
    if c.get("train.reduction") == "sum" and bs not in (None, 1):
        return [Advice(f"Use train.reduction=mean: this run sums the per-sample gradients of "
                       f"batches of {bs} (train.reduction=sum), so each step is {bs}x larger "
                       "than with mean.", "train.reduction", "mean")]
    return []
