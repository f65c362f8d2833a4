"""Learning-rate schedules, evaluated per epoch or per optimizer step.

Protocol: ``start(base_lr) -> lr`` resets the state and gives the rate for the first
update; after each completed unit (epoch or step, see ``every``) the trainer calls
``update(t, loss, val_loss) -> Decision`` with ``t`` the number of completed units and
``loss`` the training objective *at the current parameters* (mean data loss plus the L2
penalty). With full-batch training an epoch is a step, so both settings make the same
decisions. One difference remains with rollback: per step, a step is judged by the loss
measured at the start of the next step, after the epoch that contains it has been
recorded, so the rejected point shows in the epoch curve; the trainer then restores the
weights and retakes that next step from them with the cut rate.

The decision carries the rate for the next update and an ``event`` (``"increase"``,
``"decrease"``, ``"rollback"``, ``"cut"`` or ``None``) that diagnostics count. A
``rollback`` asks the trainer to restore the parameters (and optimizer state) saved
before the rejected unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nets.registry import Component, check, registry

SCHEDULES = registry("schedule")
EVERY = ("epoch", "step")


@dataclass(frozen=True)
class Decision:
    """What a schedule decided after one unit: the next ``lr`` and what happened."""

    lr: float
    event: str | None = None

    @property
    def rollback(self) -> bool:
        return self.event == "rollback"


class Schedule(Component):
    """Base schedule.

    Parameters
    ----------
    every : {"epoch", "step"}
        Whether ``update`` runs after each epoch or after each optimizer step.
    """

    def __init__(self, every: str = "epoch"):
        check(every in EVERY, "schedule.every", every, f"choose one of: {', '.join(EVERY)}")
        self.every = every

    @property
    def rolls_back(self) -> bool:
        """Whether ``update`` may return a rollback (the trainer then keeps snapshots)."""
        return False

    def start(self, base_lr: float) -> float:
        self.base_lr = self.lr = float(base_lr)
        return self.lr

    def update(self, t: int, loss: float | None = None,
               val_loss: float | None = None) -> Decision:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in self.hparam_names()}


class _TimeBased(Schedule):
    """A schedule whose rate depends only on ``t``: subclasses define ``factor(t)``."""

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def update(self, t, loss=None, val_loss=None):
        self.lr = self.base_lr * self.factor(t)
        return Decision(self.lr)


@SCHEDULES.register("constant")
class Constant(_TimeBased):
    """``lr_t = lr_0``."""

    def factor(self, t):
        return 1.0


@SCHEDULES.register("step")
class Step(_TimeBased):
    """``lr_t = lr_0 * gamma ** floor(t / step_size)``.

    Parameters
    ----------
    step_size : int
        Units between cuts (> 0).
    gamma : float
        Multiplier at each cut, in (0, 1].
    """

    def __init__(self, every: str = "epoch", step_size: int = 10, gamma: float = 0.5):
        super().__init__(every)
        check(step_size > 0, "schedule.step_size", step_size, "must be a positive integer")
        check(0 < gamma <= 1, "schedule.gamma", gamma, "must be in (0, 1]")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, t):
        return self.gamma ** (t // self.step_size)


@SCHEDULES.register("exponential")
class Exponential(_TimeBased):
    """``lr_t = lr_0 * gamma ** t``.

    Parameters
    ----------
    gamma : float
        Per-unit multiplier, in (0, 1].
    """

    def __init__(self, every: str = "epoch", gamma: float = 0.95):
        super().__init__(every)
        check(0 < gamma <= 1, "schedule.gamma", gamma, "must be in (0, 1]")
        self.gamma = float(gamma)

    def factor(self, t):
        return self.gamma ** t


@SCHEDULES.register("cosine")
class Cosine(_TimeBased):
    """``lr_t = min_lr + (lr_0 - min_lr) * (1 + cos(pi * min(t, period) / period)) / 2``.

    Parameters
    ----------
    period : int
        Units from ``lr_0`` down to ``min_lr`` (> 0); the rate stays at ``min_lr`` after.
    min_lr : float
        Floor (>= 0).
    """

    def __init__(self, every: str = "epoch", period: int = 100, min_lr: float = 0.0):
        super().__init__(every)
        check(period > 0, "schedule.period", period, "must be a positive integer")
        check(min_lr >= 0, "schedule.min_lr", min_lr, "must be >= 0")
        self.period, self.min_lr = int(period), float(min_lr)

    def update(self, t, loss=None, val_loss=None):
        c = (1 + math.cos(math.pi * min(t, self.period) / self.period)) / 2
        self.lr = self.min_lr + (self.base_lr - self.min_lr) * c
        return Decision(self.lr)


@SCHEDULES.register("warmup")
class Warmup(Schedule):
    """Linear warm-up wrapping another schedule.

    ``lr_t = lr_0 * (t + 1) / (steps + 1)`` for ``t < steps`` (so the first update uses
    ``lr_0 / (steps + 1)``, never 0), then the wrapped schedule, started at ``lr_0`` and
    shifted so its own ``t`` begins at 0 when warm-up ends.

    Parameters
    ----------
    steps : int
        Warm-up length in units (> 0).
    after : spec
        The schedule that takes over (``SCHEDULES``, its own ``every`` is ignored).
    """

    def __init__(self, every: str = "epoch", steps: int = 5, after="constant"):
        super().__init__(every)
        check(steps > 0, "schedule.steps", steps, "must be a positive integer")
        self.steps = int(steps)
        self.after = SCHEDULES.build(after, key="schedule.after")
        check(self.after.name != "warmup", "schedule.after", "warmup", "cannot nest warm-ups")

    @property
    def rolls_back(self) -> bool:
        return self.after.rolls_back

    def start(self, base_lr):
        super().start(base_lr)
        self.after.start(base_lr)
        self.lr = self.base_lr / (self.steps + 1)
        return self.lr

    def update(self, t, loss=None, val_loss=None):
        if t < self.steps:
            self.lr = self.base_lr * (t + 1) / (self.steps + 1)
            return Decision(self.lr)
        d = self.after.update(t - self.steps, loss, val_loss)
        self.lr = d.lr
        return d


@SCHEDULES.register("reduce_on_plateau")
class ReduceOnPlateau(Schedule):
    """Cut the rate by ``factor`` when the monitored loss has not improved on its best
    value by more than ``threshold`` (relative) for ``patience`` consecutive units.

    Parameters
    ----------
    monitor : {"val", "train"}
        Which loss to watch (``val`` falls back to ``train`` when there is none).
    factor : float
        Multiplier at each cut, in (0, 1).
    patience : int
        Units without improvement tolerated before a cut (>= 0).
    threshold : float
        Relative improvement that counts: ``loss < best * (1 - threshold)``.
    min_lr : float
        Floor (>= 0).
    """

    def __init__(self, every: str = "epoch", monitor: str = "val", factor: float = 0.5,
                 patience: int = 5, threshold: float = 1e-4, min_lr: float = 0.0):
        super().__init__(every)
        check(monitor in ("val", "train"), "schedule.monitor", monitor,
              "choose one of: train, val")
        check(0 < factor < 1, "schedule.factor", factor, "must be in (0, 1)")
        check(patience >= 0, "schedule.patience", patience, "must be >= 0")
        check(threshold >= 0, "schedule.threshold", threshold, "must be >= 0")
        check(min_lr >= 0, "schedule.min_lr", min_lr, "must be >= 0")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.threshold, self.min_lr = float(threshold), float(min_lr)

    def start(self, base_lr):
        self.best, self.bad = math.inf, 0
        return super().start(base_lr)

    def update(self, t, loss=None, val_loss=None):
        x = val_loss if (self.monitor == "val" and val_loss is not None) else loss
        if x is None:
            return Decision(self.lr)
        if x < self.best * (1 - self.threshold):
            self.best, self.bad = x, 0
            return Decision(self.lr)
        self.bad += 1
        if self.bad > self.patience:
            self.bad = 0
            new = max(self.lr * self.factor, self.min_lr)
            event = "cut" if new < self.lr else None
            self.lr = new
            return Decision(self.lr, event)
        return Decision(self.lr)


@SCHEDULES.register("bold_driver")
class BoldDriver(Schedule):
    """The adaptive increase/decrease rule ("bold driver").

    After each unit, the training objective ``loss`` is compared with the objective
    after the *previous* unit (not the best so far: scikit-learn#15596 is what happens
    when the docs and code disagree on this):

    - it fell (``loss < previous``): ``lr <- lr * increase``;
    - it rose (``loss > previous``): ``lr <- lr * decrease``; with ``rollback`` the unit
      is rejected: the trainer restores the parameters from before it, and the
      reference stays at the previous value (the parameters it belongs to are back);
    - equal: the rate is kept.

    The rate is clamped to ``[min_lr, max_lr]``. The first call only records the
    reference. Events: ``increase``, ``decrease``, ``rollback``.

    Parameters
    ----------
    increase : float
        Multiplier after a fall (>= 1, e.g. 1.05).
    decrease : float
        Multiplier after a rise, in (0, 1) (e.g. 0.5).
    rollback : bool
        Reject the unit that raised the loss.
    min_lr, max_lr : float
        Clamp range (0 <= min_lr <= max_lr).
    """

    def __init__(self, every: str = "epoch", increase: float = 1.05, decrease: float = 0.5,
                 rollback: bool = False, min_lr: float = 1e-8, max_lr: float = 100.0):
        super().__init__(every)
        check(increase >= 1, "schedule.increase", increase, "must be >= 1")
        check(0 < decrease < 1, "schedule.decrease", decrease, "must be in (0, 1)")
        check(0 <= min_lr <= max_lr, "schedule.min_lr", min_lr, f"must be in [0, max_lr={max_lr}]")
        self.increase, self.decrease, self.rollback = float(increase), float(decrease), bool(rollback)
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)

    @property
    def rolls_back(self) -> bool:
        return self.rollback

    def start(self, base_lr):
        self.previous = None
        return super().start(min(max(base_lr, self.min_lr), self.max_lr))

    def update(self, t, loss=None, val_loss=None):
        if loss is None or not math.isfinite(loss):
            # A non-finite loss is a rise that no rate increase can follow.
            if self.previous is None:
                return Decision(self.lr)
            loss = math.inf
        if self.previous is None:
            self.previous = loss
            return Decision(self.lr)
        event = None
        if loss < self.previous:
            if self.lr < self.max_lr:
                event = "increase"
            self.lr = self.lr * self.increase
            self.previous = loss
        elif loss > self.previous:
            self.lr = self.lr * self.decrease
            if self.rollback:
                event = "rollback"
            else:
                event, self.previous = "decrease", loss
        self.lr = min(max(self.lr, self.min_lr), self.max_lr)
        return Decision(self.lr, event)
