"""The verdict rules, one small registered object each (see ``base``).

Importing this package registers every rule in ``RULES``, in priority order (the
tie-break between verdicts that are not cause and consequence). A new rule is one
decorated function in one of these modules; the tests walk ``RULES``.
"""

from nets.diagnostics.rules.base import RULES, Advice, Rule, Verdict, rule
from nets.diagnostics.rules import steps as _steps  # noqa: F401  diverged, lr_too_high
from nets.diagnostics.rules import gradients as _gradients  # noqa: F401
from nets.diagnostics.rules import units as _units  # noqa: F401
from nets.diagnostics.rules import outputs as _outputs  # noqa: F401
from nets.diagnostics.rules import learning as _learning  # noqa: F401
from nets.diagnostics.rules import inputs as _inputs  # noqa: F401

__all__ = ["RULES", "Advice", "Rule", "Verdict", "rule"]
