"""``diagnose``: run every rule on a history, then combine their verdicts.

Combining is declared by the rules themselves (``rules.base``), never a hard-coded chain:

1. rules that need health curves are skipped on a history without them (listed in
   ``Diagnosis.skipped`` and in the explanation);
2. a verdict is dropped when a verdict that silences it fired (declared ``silenced_by``,
   or ``Verdict.silences`` from this run's numbers), and an ``only_as_cause`` verdict
   when none of its consequences is left;
3. the rest is ordered cause before consequence (a topological order of the declared
   ``causes``, ties broken by registration order), each consequence listing its causes;
4. the advice is reconciled into one list: a consequence defers to its causes' advice
   (its own remedies treat the symptom), and walking the verdicts in order, an item on a
   knob an earlier item already set (the other way, or the same) is dropped.

``summary`` gives the ``nets.diagnosis`` tag, ``explain`` the markdown description.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Mapping

import numpy as np

from nets.diagnostics.curves import (bad_units, curves, falling_share, fmt, has_health,
                                     learned_well, never_predicted, series)
from nets.diagnostics.rules import RULES, Advice, Verdict
from nets.diagnostics.runinfo import RunInfo
from nets.diagnostics.settings import DiagnosticsSettings
from nets.registry import is_number

VERDICTS = tuple(RULES) + ("healthy",)


class Diagnosis(list):
    """The verdicts of one run (a list, cause first) plus the rules that were
    ``skipped`` for lack of health curves."""

    def __init__(self, verdicts=(), skipped=()):
        super().__init__(verdicts)
        self.skipped = list(skipped)


def _as_info(info) -> RunInfo:
    if info is None:
        return RunInfo()
    if isinstance(info, RunInfo):
        return info
    names = {f.name for f in fields(RunInfo)}
    return RunInfo(**{k: v for k, v in dict(info).items() if k in names})


def _order(kept: dict[str, Verdict]) -> list[Verdict]:
    """Cause before consequence; registration order among the rest."""
    rank = {n: i for i, n in enumerate(RULES)}
    edges = {n: [c for c in RULES[n].causes if c in kept] for n in kept}
    waiting = {n: sum(n in edges[m] for m in kept) for n in kept}
    out: list[Verdict] = []
    ready = sorted((n for n, k in waiting.items() if k == 0), key=rank.get)
    while ready:
        n = ready.pop(0)
        out.append(kept[n])
        for m in edges[n]:
            waiting[m] -= 1
            if waiting[m] == 0:
                ready = sorted(ready + [m], key=rank.get)
    return out


def _reconcile(ordered: list[Verdict]) -> None:
    """Set each verdict's ``advice`` from its ``actions`` that survive (see module doc)."""
    taken: dict[str, tuple[str | None, str]] = {}
    for v in ordered:
        kept: list[Advice] = []
        # A consequence's own remedies treat the symptom; its cause's advice comes first
        # and is the advice (a collapse caused by dead units is fixed by the bias init,
        # not by the rate a collapse alone would suggest).
        for a in ([] if v.because else v.actions):
            if a.knob is not None and a.knob in taken:
                continue  # same knob: either a repeat or the other way from a cause
            kept.append(a)
            if a.knob is not None:
                taken[a.knob] = (a.direction, v.name)
        v.actions = kept
        v.advice = " ".join(a.text for a in kept) if kept else (
            f"Fix {' and '.join(v.because)} first (see above): this follows from it."
            if v.because else "See the advice above.")


def diagnose(history: Mapping[str, list], info: RunInfo | Mapping[str, Any] | None = None,
             settings: DiagnosticsSettings | None = None) -> Diagnosis:
    """Verdicts for a recorded run, cause first (see the module docstring).

    Parameters
    ----------
    history : mapping of str to list of float
        Metric key -> one value per epoch (``Result.history``, or histories read back
        from MLflow; series may have different lengths there, each is used on its own).
        The plain curves alone (``train/loss``, ``val/loss``, ``train/accuracy``,
        ``val/accuracy``, ``val/mae``) are enough; rules that need ``health/...`` curves
        are then skipped.
    info : RunInfo or mapping, optional
        Static facts (a mapping is read as ``RunInfo`` fields).
    settings : DiagnosticsSettings, optional

    Returns
    -------
    Diagnosis
        A list of ``Verdict``; ``[Verdict("healthy", ...)]`` when no rule fires.
    """
    s = settings or DiagnosticsSettings()
    info = _as_info(info)
    health = has_health(history)
    fired: dict[str, Verdict] = {}
    skipped = []
    with np.errstate(all="ignore"):
        for name, r in RULES.items():
            if r.needs_health and not health:
                skipped.append(name)
                continue
            v = r(history, info, s)
            if v is not None:
                v.numbers = {k: float(x) for k, x in v.numbers.items()
                             if is_number(x) and not math.isinf(x)}  # NaN kept: it says 'no value'
                fired[name] = v
    silenced = {m for v in fired.values() for m in v.silences}
    kept = {n: v for n, v in fired.items()
            if n not in silenced and not any(b in fired for b in RULES[n].silenced_by)}
    kept = {n: v for n, v in kept.items()
            if not RULES[n].only_as_cause or any(c in kept for c in RULES[n].causes)}
    for n, v in kept.items():
        v.because = [c for c in kept if n in RULES[c].causes]
    out = _order(kept)
    _reconcile(out)
    if not out:
        out = [_healthy(history, info, s, skipped)]
    return Diagnosis(out, skipped)


def _healthy(h, info: RunInfo, s: DiagnosticsSettings, skipped: list[str]) -> Verdict:
    prefix, loss, acc = curves(h)
    nums: dict[str, Any] = {}
    parts = ["No rule fired."]
    if acc is not None:
        nums["accuracy"] = float(acc[-1])
        parts.append(f"Final {prefix} accuracy {acc[-1]:.1%}"
                     + (f" (chance {info.chance_accuracy:.1%}, majority class "
                        f"{info.majority_accuracy:.1%})." if info.majority_accuracy is not None
                        else "."))
    mae = series(h, f"{prefix}/mae")
    if mae is not None:
        nums["mae"] = float(mae[-1])
        parts.append(f"Final {prefix} MAE {fmt(mae[-1])}"
                     + (f" (predicting the mean: {fmt(info.baseline_mae)})."
                        if info.baseline_mae is not None else "."))
    tr, tacc = series(h, "train/loss"), series(h, "train/accuracy")
    if tr is not None and len(tr) >= 4 and np.all(np.isfinite(tr)):
        k = max(2, len(tr) // 3)
        flat = float(tr[-k:].max() - tr[-k:].min()) < s.underfit_flat * tr[0]
        top = max(float(acc[-1]) if acc is not None else 0.0,
                  float(tacc[-1]) if tacc is not None else 0.0)
        if flat and top >= 0.995:
            nums["converged"] = 1.0
            parts.append(f"Converged: nothing left to gain (accuracy {top:.1%}, training loss "
                         f"{fmt(tr[-k])} -> {fmt(tr[-1])} over the last {k} epochs).")
        elif falling_share(tr[len(tr) // 2:]) >= s.lr_too_low_steady:
            parts.append("The training loss was still falling at the end "
                         f"({fmt(tr[len(tr) // 2])} -> {fmt(tr[-1])} over the second half): "
                         "more epochs may still gain.")
    gain = learned_well(h, info, s)
    if gain is not None:
        for group, what in (("saturated", "of its outputs at a bound"),
                            ("dead", "of its units dead")):
            for layer, v in bad_units(h, s, group).items():  # excused, or a rule had fired
                nums[f"health/{group}/{layer}"] = v
                parts.append(f"{layer} has {v:.0%} {what}; harmless here: the model removed "
                             f"{gain:.0%} of the baseline's error.")
    if info.input_scale is not None and (info.input_scale >= s.unscaled_scale or
                                         (info.input_spread or 1) >= s.unscaled_spread):
        nums["input_scale"] = info.input_scale
        parts.append(f"The inputs are not scaled (largest feature RMS {fmt(info.input_scale)}, "
                     f"{fmt(info.input_spread or 1)}x the median feature's); it did no visible "
                     "harm here, dataset.scaling=standard usually trains faster.")
    rare = never_predicted(h, info)
    if rare:
        nums["worst_recall"] = 0.0
        parts.append(rare.strip())
    if skipped:
        parts.append(f"Not checked (no health/... curves in this history): {', '.join(skipped)}.")
    return Verdict("healthy", " ".join(parts), "Nothing to fix; compare settings in a sweep.",
                   nums)


def summary(verdicts: list[Verdict]) -> str:
    """One line for the ``nets.diagnosis`` tag, cause first: ``dead_units,class_collapse``."""
    return ",".join(v.name for v in verdicts)


def _title(v: Verdict) -> str:
    return v.name + (f", because {' and '.join(v.because)}" if v.because else "")


def explain(verdicts: list[Verdict], warnings: list[str] | None = None) -> str:
    """Markdown for the run's description (``mlflow.note.content``): the verdicts, cause
    first, with their evidence; one reconciled list of what to try; the rules skipped for
    lack of health curves; the monitor's warnings."""
    lines = [f"**Diagnosis: {'; '.join(_title(v) for v in verdicts)}**", ""]
    for v in verdicts:
        lines += [f"### {_title(v)}", "", v.evidence, ""]
    items = [(v.name, a.text) for v in verdicts for a in v.actions]
    if not items:
        items = [(v.name, v.advice) for v in verdicts if v.advice]
    if items:
        lines += ["### What to try", ""]
        lines += [f"{i}. {text} *({name})*" for i, (name, text) in enumerate(items, 1)] + [""]
    skipped = getattr(verdicts, "skipped", [])
    if skipped:
        lines += ["### Not checked", "", "This history has no health/... curves (monitor off, "
                  "or another app's run), so these rules were skipped: "
                  + ", ".join(skipped) + ".", ""]
    if warnings:
        lines += ["### Warnings during the run", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(lines)
