"""What a rule is and what it returns: ``Rule``, ``Verdict``, ``Advice``, and ``RULES``.

A rule is a pure function ``(history, info, settings) -> Verdict | None`` registered with
what ``diagnose`` needs to combine it with the others, declared next to the function:

- ``causes``: verdicts this one can explain. When both fire, the cause is listed first
  and the consequence says "because <cause>"; the cause's advice wins a conflict.
- ``silenced_by``: verdicts that make this one redundant (it is then not reported).
- ``needs_health``: the rule reads ``health/...`` curves; without them (monitor off, a
  plain history from another app) it is skipped, and the explanation says so.
- ``only_as_cause``: reported only when one of its ``causes`` fired (an input scale that
  did no harm is a remark, not a verdict).

Registration order is the tie-break between verdicts that are not cause and consequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from nets.diagnostics.runinfo import RunInfo
from nets.diagnostics.settings import DiagnosticsSettings


@dataclass(frozen=True)
class Advice:
    """One thing to try. ``knob`` is the config key it changes and ``direction`` how
    (``"lower"``, ``"raise"``, or a value such as ``"mean"``): two items on the same knob
    in opposite directions contradict each other, and only the cause's is kept."""

    text: str
    knob: str | None = None
    direction: str | None = None


@dataclass
class Verdict:
    """One diagnosis: its ``name``, the ``evidence`` (plain words with the numbers that
    triggered it), what to try (``advice``, the reconciled text; ``actions`` the items),
    the ``numbers`` themselves, the verdicts it was caused by (``because``) and those its
    numbers make redundant in this run (``silences``, besides the declared ones)."""

    name: str
    evidence: str
    advice: str = ""
    numbers: dict[str, float] = field(default_factory=dict)
    actions: list[Advice] = field(default_factory=list)
    because: list[str] = field(default_factory=list)
    silences: list[str] = field(default_factory=list)  # found by this run's numbers


RuleFn = Callable[[Mapping[str, list], RunInfo, DiagnosticsSettings], "Verdict | None"]


@dataclass(frozen=True)
class Rule:
    name: str
    fn: RuleFn
    causes: tuple[str, ...] = ()
    silenced_by: tuple[str, ...] = ()
    needs_health: bool = False
    only_as_cause: bool = False
    summary: str = ""

    def __call__(self, history, info, settings) -> Verdict | None:
        return self.fn(history, info, settings)


RULES: dict[str, Rule] = {}


def rule(name: str, *, causes=(), silenced_by=(), needs_health=False, only_as_cause=False):
    """Register the decorated function as the rule ``name`` (see the module docstring)."""
    def deco(fn: RuleFn) -> RuleFn:
        if name in RULES:
            raise ValueError(f"rule {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        RULES[name] = Rule(name, fn, tuple(causes), tuple(silenced_by), needs_health,
                           only_as_cause, " ".join(doc.split()))
        return fn
    return deco
