"""``DiagnosticsSettings``: the ``diagnostics`` section of a config, checked at the border.

Every rule threshold is a field here, so ``diagnostics.<field>=...`` changes it and the
README's verdict table can name it. The rules' docstrings (``nets.diagnostics.rules``)
say what each threshold is compared against.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from nets.registry import ConfigError, check, is_int, is_number


# Thresholds that are shares or probabilities: (0, 1].
_SHARES = ("collapse_share", "collapse_max_majority", "collapse_excess", "saturated_fraction",
           "dead_fraction", "units_ok_gain", "units_extreme", "units_extreme_gain", "lr_too_low_drop", "lr_too_low_steady",
           "lr_too_low_grad", "nothing_margin", "nothing_margin_train", "nothing_prior_margin",
           "divergence_loss_drop", "divergence_acc_points", "divergence_changed",
           "unstable_floor", "unstable_acc_drop", "plateau_flat", "plateau_drop",
           "underfit_gain", "underfit_flat", "underfit_gap", "vanishing_ratio", "overfit_floor")


@dataclass
class DiagnosticsSettings:
    """The ``diagnostics`` section of a config.

    Parameters
    ----------
    enabled : bool
        Record health metrics (the verdicts are computed either way, from what exists).
    probe_size : int
        Validation rows in the fixed probe batch (> 0).
    saturation_eps : float
        An output within ``saturation_eps * (high - low)`` of a bound is saturated, in
        (0, 0.5): 0.05 means ``|tanh| > 0.9`` or a sigmoid outside ``[0.05, 0.95]``.
    gradcheck : bool
        Check the gradients against central differences before training.
    gradcheck_threshold : float
        Largest relative error allowed (the check runs in float64, float32 models on a
        float64 copy; correct code gives ~1e-9, the stories' bugs ~1).
    gradcheck_batch : int
        Training rows used by the check.
    gradcheck_user : bool
        Check every user component (loaded by import path or from ``plugins``) with a
        backward pass before the first update (``nets.usercheck``).
    warn_patience : int
        Consecutive epochs a condition must hold before the monitor warns mid-run.
    others
        Rule thresholds; each rule's docstring in ``nets.diagnostics.rules`` and the
        README's verdict table say what they compare.
    """

    enabled: bool = True
    probe_size: int = 256
    saturation_eps: float = 0.05
    gradcheck: bool = False
    gradcheck_threshold: float = 1e-4
    gradcheck_batch: int = 8
    gradcheck_user: bool = True
    collapse_share: float = 0.8
    collapse_max_majority: float = 0.5
    collapse_excess: float = 0.75
    saturated_fraction: float = 0.5
    dead_fraction: float = 0.5
    units_ok_gain: float = 0.8
    units_extreme: float = 0.95
    units_extreme_gain: float = 0.9
    explode_factor: float = 10.0
    unstable_rise: float = 0.5
    unstable_floor: float = 0.05
    unstable_acc_drop: float = 0.1
    unstable_end: float = 0.25
    lr_too_low_ratio: float = 1e-3
    lr_too_low_drop: float = 0.5
    lr_too_low_steady: float = 0.8
    lr_too_low_grad: float = 0.5
    plateau_epochs: int = 5
    plateau_flat: float = 0.02
    plateau_drop: float = 0.1
    vanishing_depth: int = 4
    vanishing_ratio: float = 0.01
    exploding_ratio: float = 100.0
    exploding_spike: float = 100.0
    unscaled_scale: float = 4.0
    unscaled_spread: float = 20.0
    nothing_margin: float = 0.05
    nothing_margin_train: float = 0.25
    nothing_prior_margin: float = 0.01
    underfit_gain: float = 0.3
    underfit_width: int = 4
    underfit_flat: float = 0.02
    underfit_gap: float = 0.1
    divergence_loss_drop: float = 0.05
    divergence_acc_points: float = 0.05
    divergence_changed: float = 0.05
    overfit_rise: float = 0.1
    overfit_window: int = 3
    overfit_floor: float = 0.01
    warn_patience: int = 3

    def __post_init__(self):
        for f in fields(self):
            v, key = getattr(self, f.name), f"diagnostics.{f.name}"
            if f.type == "bool":
                check(isinstance(v, (bool, np.bool_)), key, v, "true or false")
            elif f.type == "int":
                check(is_int(v) and v > 0, key, v, "must be a positive integer")
            else:
                check(is_number(v) and math.isfinite(v) and v > 0, key, v, "must be a number > 0")
        for name in _SHARES:
            v = getattr(self, name)
            check(v <= 1, f"diagnostics.{name}", v, "must be in (0, 1]")
        check(self.saturation_eps < 0.5, "diagnostics.saturation_eps", self.saturation_eps,
              "must be in (0, 0.5)")
        for name in ("explode_factor", "exploding_ratio", "exploding_spike", "unscaled_spread"):
            v = getattr(self, name)
            check(v > 1, f"diagnostics.{name}", v, "must be > 1")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "DiagnosticsSettings":
        """Build from the plain ``diagnostics`` mapping (``None``: defaults)."""
        cfg = dict(cfg or {})
        names = [f.name for f in fields(cls)]
        for k in cfg:
            if k not in names:
                raise ConfigError(f"diagnostics.{k}", cfg[k], "unknown key; valid: "
                                  + ", ".join(names))
        return cls(**cfg)

    def to_dict(self) -> dict:
        return asdict(self)
