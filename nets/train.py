"""The training loop: full-batch or mini-batch, schedules, stop rules, hooks.

The loop knows nothing of MLflow or Hydra. It reports through two plain channels:

- ``callbacks``: ``callback(epoch, metrics)`` once per epoch (epoch 0 = before any
  update) with a ``dict[str, float]`` of metrics that includes ``lr``;
- ``hooks``: objects with optional methods ``on_train_start(trainer)``,
  ``after_backward(trainer)`` (gradients filled, L2 term included, before the update),
  ``after_update(trainer)``, ``on_epoch_end(trainer, metrics)`` (may add keys) and
  ``on_train_end(trainer, result)``, for health statistics that need per-step access.

Outcomes (``Result.outcome``): ``completed`` (all epochs), ``converged`` (squared
gradient norm below ``tol``), ``max_steps``, ``early_stopped`` and ``diverged``
(non-finite loss or parameters: a result, not a crash).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from nets import catalog  # noqa: F401 - every kind registered: build_run builds by name
from nets import plugins
from nets.activations import Activation
from nets.data import DATASETS, Data
from nets.losses import LOSSES, REDUCTIONS, Loss
from nets import memory
from nets.models import MODELS, Head, Sequential, build_model
from nets.optimizers import OPTIMIZERS, Optimizer
from nets.registry import ConfigError, check, is_int
from nets.schedules import SCHEDULES, Schedule
from nets.targets import TARGETS, Target

DTYPES = ("float32", "float64")
# The sections of a run's config: the component groups (one registry each) and the rest.
GROUPS = ("dataset", "model", "loss", "target", "optimizer", "schedule")
CONFIG_SECTIONS = ("seed", *GROUPS, "train", "diagnostics", "tracking", "plugins")
Callback = Callable[[int, dict], None]


@dataclass
class TrainSettings:
    """The ``train`` section of a config.

    Parameters
    ----------
    epochs : int
        Passes over the training set (>= 0; 0 only evaluates).
    batch_size : int or None
        Mini-batch size; ``None`` = full batch (every update sees the whole set).
    reduction : {"mean", "sum"}
        How per-sample gradients combine in a batch; ``sum`` makes the step
        ``batch_size`` times larger (story 4).
    tol : float or None
        Stop when the squared L2 norm of the whole gradient (L2 term included) falls
        below ``tol`` (story 2); checked before each update.
    max_steps : int or None
        Stop after this many updates.
    dtype : {"float32", "float64"}
        Floating type of data and parameters.
    shuffle : bool
        Reshuffle the mini-batch order every epoch (from the run's generator).
    early_stopping : int or None
        Stop when the validation loss has not improved for this many epochs.
    eval_batch_size : int
        Rows per forward pass when evaluating (bounds memory, not results).
    max_memory_gb : float or None
        Refuse a run whose estimated memory (``nets.memory``) is above this many GiB;
        ``None`` = the memory available when the run is built. Never changes results.
    """

    epochs: int = 20
    batch_size: int | None = None
    reduction: str = "mean"
    tol: float | None = None
    max_steps: int | None = None
    dtype: str = "float64"
    shuffle: bool = True
    early_stopping: int | None = None
    eval_batch_size: int = 4096
    max_memory_gb: float | None = None

    def __post_init__(self):
        check(is_int(self.epochs) and self.epochs >= 0, "train.epochs", self.epochs,
              "must be an integer >= 0")
        check(self.batch_size is None or (is_int(self.batch_size) and self.batch_size > 0),
              "train.batch_size", self.batch_size, "must be a positive integer or null (full batch)")
        check(self.reduction in REDUCTIONS, "train.reduction", self.reduction,
              f"choose one of: {', '.join(REDUCTIONS)}")
        check(self.tol is None or self.tol > 0, "train.tol", self.tol, "must be > 0 or null")
        check(self.max_steps is None or (is_int(self.max_steps) and self.max_steps > 0),
              "train.max_steps", self.max_steps, "must be a positive integer or null")
        check(self.dtype in DTYPES, "train.dtype", self.dtype, f"choose one of: {', '.join(DTYPES)}")
        check(self.early_stopping is None or (is_int(self.early_stopping) and self.early_stopping > 0),
              "train.early_stopping", self.early_stopping, "must be a positive integer or null")
        check(is_int(self.eval_batch_size) and self.eval_batch_size > 0, "train.eval_batch_size",
              self.eval_batch_size, "must be a positive integer")
        check(self.max_memory_gb is None or (isinstance(self.max_memory_gb, (int, float))
                                             and not isinstance(self.max_memory_gb, bool)
                                             and self.max_memory_gb > 0),
              "train.max_memory_gb", self.max_memory_gb, "must be > 0 (GiB) or null")


@dataclass
class Result:
    """What a training run produced.

    Attributes
    ----------
    history : dict of str to list of float
        One list per metric key, index = epoch (0 = before training).
    outcome : str
        See the module docstring.
    epochs, steps : int
        Completed epochs and updates.
    events : list of (int, str)
        Schedule events with the unit count at which they happened.
    reason : str
        One line on why training stopped.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    outcome: str = "completed"
    epochs: int = 0
    steps: int = 0
    events: list[tuple[int, str]] = field(default_factory=list)
    reason: str = ""

    def last(self, key: str) -> float:
        return self.history[key][-1]


def make_rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for each use of randomness, all from ``seed``.

    Separate streams mean that, e.g., changing the batch size does not change the
    initial weights, and adding dropout does not change the data split.
    """
    names = ("data", "model", "order")
    seqs = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {n: np.random.default_rng(s) for n, s in zip(names, seqs)}


def check_combination(output: Activation, loss: Loss, target: Target, data: Data) -> None:
    """Reject output/loss/target/task combinations that cannot work, saying why."""
    if data.task == "regression" and loss.name == "cross_entropy":
        raise ConfigError("loss", loss.name, "regression needs mse or sse",
                          "cross-entropy compares class probabilities")
    if loss.outputs is not None and output.name not in loss.outputs:
        raise ConfigError("model.output", output.name, f"loss={loss.name} needs model.output="
                          f"{' or '.join(loss.outputs)}",
                          f"{loss.name} is computed on the logits of {loss.fused}")
    if data.task == "classification" and target.name == "raw":
        raise ConfigError("target", "raw", "classification labels need one_hot or plus_minus_one",
                          f"dataset {data.name} has {data.n_classes} classes")
    if data.task == "regression" and target.name != "raw":
        raise ConfigError("target", target.name, "regression data needs target=raw (or auto)",
                          f"dataset {data.name} has real-valued targets")
    # A user's own target encoding is not in any built-in loss's list; its values are
    # still checked against the output's range below.
    if target.name not in loss.targets and not plugins.is_user(target):
        raise ConfigError("target", target.name, f"loss={loss.name} works with target="
                          f"{' or '.join(loss.targets)}")
    if target.values is not None and output.bounds is not None:
        lo, hi = output.bounds
        off, on = target.values
        if off < lo or on > hi:
            raise ConfigError("target", target.name,
                              f"targets {off:g}/{on:g} lie outside the range of model.output="
                              f"{output.name} ({lo:g}..{hi:g})",
                              "the loss can never reach zero; use tanh/identity outputs or "
                              "one_hot targets")


class Trainer:
    """Runs the loop; hooks read its attributes (``model``, ``step``, ``epoch``, ``lr``,
    ``batch_loss`` ...) while it runs.

    Parameters
    ----------
    model : Sequential
    loss : Loss
    optimizer : Optimizer
    schedule : Schedule
    data : Data
    target : Target
    settings : TrainSettings
    order_rng : np.random.Generator
        Mini-batch order.
    """

    def __init__(self, model: Sequential, loss: Loss, optimizer: Optimizer,
                 schedule: Schedule, data: Data, target: Target, settings: TrainSettings,
                 order_rng: np.random.Generator):
        self.model, self.loss, self.optimizer, self.schedule = model, loss, optimizer, schedule
        self.data, self.target, self.settings, self.order_rng = data, target, settings, order_rng
        self.head = Head(model.output, loss)
        dt = np.dtype(settings.dtype)
        self.X = np.ascontiguousarray(data.X_train, dtype=dt)
        self.Xv = np.ascontiguousarray(data.X_val, dtype=dt)
        self.T = target.encode(data.y_train, data.n_classes, dt)
        self.Tv = target.encode(data.y_val, data.n_classes, dt)
        self.classification = data.task == "classification"
        self.params = model.params
        self.step = self.epoch = 0
        self.lr = float(optimizer.lr)
        self.batch_loss = math.nan

    # -- evaluation -----------------------------------------------------------------

    def outputs(self, X: np.ndarray) -> np.ndarray:
        """Logits for ``X`` in evaluation mode, in chunks of ``eval_batch_size``."""
        bs = self.settings.eval_batch_size
        if len(X) <= bs:
            return self.model.forward(X, training=False)
        return np.concatenate([self.model.forward(X[i:i + bs], training=False)
                               for i in range(0, len(X), bs)])

    def evaluate(self, X, T, y, prefix: str) -> dict[str, float]:
        """Loss and accuracy (classification) or loss, MAE, SSE, RMSE (regression)."""
        Z = self.outputs(X)
        with np.errstate(over="ignore", invalid="ignore"):
            out = {f"{prefix}/loss": self.head.value(Z, T, "mean")}
            A = self.model.output.forward(Z)
            if self.classification:
                out[f"{prefix}/accuracy"] = float(np.mean(A.argmax(axis=1) == y))
            else:
                D = A - T
                out[f"{prefix}/mae"] = float(np.mean(np.abs(D)))
                out[f"{prefix}/sse"] = float(np.sum(D * D))
                out[f"{prefix}/rmse"] = float(np.sqrt(np.mean(D * D)))
        return out

    def objective(self, data_loss_mean: float) -> float:
        """Training objective the schedules compare: mean data loss + L2 penalty."""
        return data_loss_mean + self.optimizer.penalty(self.params)

    # -- snapshots for rolled-back units ------------------------------------------------

    def _snapshot(self):
        return [p.value.copy() for p in self.params], self.optimizer.state_dict()

    def _restore(self, snap) -> None:
        if snap is None:
            raise RuntimeError(f"schedule {self.schedule.name} asked for a rollback but no "
                               "snapshot was kept (its rolls_back property is False)")
        values, opt_state = snap
        for p, v in zip(self.params, values):
            p.value[...] = v
        self.optimizer.load_state_dict(opt_state)

    # -- the loop --------------------------------------------------------------------

    def _call(self, hooks, name, *args):
        for h in hooks:
            fn = getattr(h, name, None)
            if fn is not None:
                fn(self, *args)

    def _finite_params(self) -> bool:
        return all(np.isfinite(np.sum(p.value)) for p in self.params)

    def start(self, hooks: list = ()) -> None:
        """Reset the schedule and per-run buffers (called by ``run``)."""
        s, n = self.settings, len(self.X)
        self.bs = n if s.batch_size is None else min(s.batch_size, n)
        self.per_step = self.schedule.every == "step"
        self.rollback = self.schedule.rolls_back
        self.lr = self.schedule.start(self.optimizer.lr)
        self.events: list[tuple[int, str]] = []
        self._step_snap = None
        self._hooks = list(hooks)
        if self.bs < n:
            # Batches are gathered into these buffers: no allocation per step.
            self._Xb = np.empty((self.bs,) + self.X.shape[1:], self.X.dtype)
            self._Tb = np.empty((self.bs,) + self.T.shape[1:], self.T.dtype)

    def batches(self):
        """``(X_batch, T_batch)`` pairs of one epoch, in the run generator's order."""
        n, bs = len(self.X), self.bs
        if bs == n:
            yield self.X, self.T
            return
        order = self.order_rng.permutation(n) if self.settings.shuffle else np.arange(n)
        for i in range(0, n - bs + 1, bs):
            idx = order[i:i + bs]
            yield (np.take(self.X, idx, axis=0, out=self._Xb),
                   np.take(self.T, idx, axis=0, out=self._Tb))
        if n % bs:
            # The short remainder batch is still used (nothing silently dropped).
            idx = order[n - n % bs:]
            yield self.X[idx], self.T[idx]

    def train_epoch(self) -> tuple[str, str] | None:
        """One pass over the training set; returns ``(outcome, reason)`` if it must stop."""
        s = self.settings
        for xb, tb in self.batches():
            Z = self.model.forward(xb, training=True)
            with np.errstate(over="ignore", invalid="ignore"):
                loss, dZ = self.head.value_and_grad(Z, tb, s.reduction)
            self.batch_loss = loss
            if not math.isfinite(loss):
                return "diverged", f"the training loss became {loss} at step {self.step}"
            if self.per_step:
                mean_loss = loss if s.reduction == "mean" else loss / len(xb)
                d = self.schedule.update(self.step, self.objective(mean_loss))
                if d.event:
                    self.events.append((self.step, d.event))
                self.lr = d.lr
                if d.rollback:
                    # Back to the weights before the rejected update; this batch's
                    # gradient is retaken there, with the cut rate.
                    self._restore(self._step_snap)
                    Z = self.model.forward(xb, training=True)
                    with np.errstate(over="ignore", invalid="ignore"):
                        loss, dZ = self.head.value_and_grad(Z, tb, s.reduction)
                    self.batch_loss = loss
            self.model.backward(dZ)
            self.optimizer.regularize(self.params)
            self._call(self._hooks, "after_backward")
            if s.tol is not None:
                gsq = float(sum(np.vdot(p.grad, p.grad) for p in self.params))
                if gsq < s.tol:
                    return "converged", (f"squared gradient norm {gsq:.3g} < tol {s.tol:g} "
                                         f"after {self.step} steps")
            if self.rollback and self.per_step:
                self._step_snap = self._snapshot()
            self.optimizer.update(self.params, self.lr)
            self.step += 1
            self._call(self._hooks, "after_update")
            if s.max_steps is not None and self.step >= s.max_steps:
                return "max_steps", f"reached max_steps={s.max_steps}"
        return None

    def epoch_metrics(self) -> dict[str, float]:
        m = self.evaluate(self.X, self.T, self.data.y_train, "train")
        m.update(self.evaluate(self.Xv, self.Tv, self.data.y_val, "val"))
        return m

    def run(self, callbacks: list[Callback] = (), hooks: list = ()) -> Result:
        """Train for ``settings.epochs`` (or until a stop rule fires) and report."""
        s, res = self.settings, Result()
        self.start(hooks)
        self._call(hooks, "on_train_start")

        def record(metrics: dict, lr: float) -> None:
            # ``lr`` at step e is the rate the updates of epoch e used (epoch 0: the start).
            metrics["lr"] = float(lr)
            self._call(hooks, "on_epoch_end", metrics)
            for k, v in metrics.items():
                res.history.setdefault(k, []).append(float(v))
            for cb in callbacks:
                cb(self.epoch, dict(metrics))

        metrics = self.epoch_metrics()
        record(metrics, self.lr)
        if not math.isfinite(metrics["train/loss"]):
            res.outcome, res.reason = "diverged", "the loss is not finite before training"
            return self._end(res, hooks)
        if not self.per_step:
            self.schedule.update(0, self.objective(metrics["train/loss"]), metrics["val/loss"])
        best_val, bad_epochs = math.inf, 0
        stop = None
        for epoch in range(1, s.epochs + 1):
            self.epoch = epoch
            epoch_snap = self._snapshot() if (self.rollback and not self.per_step) else None
            stop = self.train_epoch()
            if stop and stop[0] == "diverged":
                break
            metrics = self.epoch_metrics()
            lr_used = self.lr
            if not (math.isfinite(metrics["train/loss"]) and self._finite_params()):
                stop = ("diverged", f"the loss or the weights became non-finite in epoch {epoch}")
            elif not self.per_step:
                d = self.schedule.update(epoch, self.objective(metrics["train/loss"]),
                                         metrics["val/loss"])
                if d.event:
                    self.events.append((epoch, d.event))
                if d.rollback:
                    self._restore(epoch_snap)
                    # The parameters are those of the previous epoch again: so are the metrics.
                    metrics = {k: res.history[k][-1] for k in metrics}
                self.lr = d.lr
            record(metrics, lr_used)
            res.epochs = epoch
            if stop:
                break
            if s.early_stopping:
                if metrics["val/loss"] < best_val:
                    best_val, bad_epochs = metrics["val/loss"], 0
                else:
                    bad_epochs += 1
                    if bad_epochs >= s.early_stopping:
                        stop = ("early_stopped", f"no validation improvement for "
                                f"{s.early_stopping} epochs")
                        break
        if stop:
            res.outcome, res.reason = stop
        else:
            res.reason = f"ran all {s.epochs} epochs"
        res.events = self.events
        return self._end(res, hooks)

    def _end(self, res: Result, hooks) -> Result:
        res.steps = self.step
        self._call(hooks, "on_train_end", res)
        return res


@dataclass
class Run:
    """Every object of one run, built from a plain config mapping."""

    data: Data
    model: Sequential
    loss: Loss
    optimizer: Optimizer
    schedule: Schedule
    target: Target
    settings: TrainSettings
    rngs: dict[str, np.random.Generator]

    def trainer(self) -> Trainer:
        return Trainer(self.model, self.loss, self.optimizer, self.schedule, self.data,
                       self.target, self.settings, self.rngs["order"])


def build_run(cfg: Mapping[str, Any], data: Data | None = None) -> Run:
    """Turn a plain config (the resolved ``conf/`` tree as dicts) into a ``Run``.

    Keys used: ``plugins``, ``seed``, ``dataset``, ``model``, ``loss``, ``target``,
    ``optimizer``, ``schedule``, ``train``. Raises ``ConfigError`` (one line) on any bad
    value. ``plugins`` modules are imported first, so the names they register resolve.
    """
    plugins.load_modules(cfg.get("plugins"))
    seed = cfg.get("seed", 0)
    check(is_int(seed) and seed >= 0, "seed", seed, "must be an integer >= 0")
    rngs = make_rngs(seed)
    train_cfg = dict(cfg.get("train", {}))
    unknown = set(train_cfg) - set(TrainSettings.__dataclass_fields__)
    if unknown:
        k = sorted(unknown)[0]
        raise ConfigError(f"train.{k}", train_cfg[k], "unknown key; valid: "
                          + ", ".join(TrainSettings.__dataclass_fields__))
    settings = TrainSettings(**train_cfg)
    loss = LOSSES.build(cfg.get("loss", "mse"), key="loss")
    optimizer = OPTIMIZERS.build(cfg.get("optimizer", "sgd"), key="optimizer")
    schedule = SCHEDULES.build(cfg.get("schedule", "constant"), key="schedule")
    target = TARGETS.build(cfg.get("target", "auto"), key="target")
    if data is None:
        data = DATASETS.build(cfg.get("dataset", "digits"), key="dataset").load(rngs["data"])
    target = target.resolve(data) if hasattr(target, "resolve") else target
    n_out = data.n_classes if data.task == "classification" else data.y_train.reshape(
        len(data.y_train), -1).shape[1]
    # Shapes only first: a model that cannot fit is refused before it allocates.
    spec = MODELS.build(cfg.get("model", "mlp"), key="model", n_out=n_out, dtype=settings.dtype,
                        image_shape=data.image_shape)
    memory.check_fits(cfg.get("model", "mlp"), spec, data.X_train.shape[1:], len(data.X_train),
                      len(data.X_val), settings, optimizer.name, schedule.rolls_back,
                      data.image_shape)
    model = build_model(cfg.get("model", "mlp"), in_shape=data.X_train.shape[1:], n_out=n_out,
                        rng=rngs["model"], dtype=settings.dtype, image_shape=data.image_shape)
    check(getattr(model, "out_shape", (n_out,)) == (n_out,), "model.layers",
          f"output width {getattr(model, 'out_shape', ('?',))[-1]}",
          f"the last layer must output {n_out} values for dataset {data.name}")
    check_combination(model.output, loss, target, data)
    return Run(data, model, loss, optimizer, schedule, target, settings, rngs)


def train(cfg: Mapping[str, Any], callbacks: list[Callback] = (), hooks: list = (),
          data: Data | None = None) -> tuple[Run, Result]:
    """Build and train from a plain config; returns the run's objects and its result."""
    run = build_run(cfg, data)
    return run, run.trainer().run(callbacks, hooks)
