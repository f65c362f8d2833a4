"""Health metrics during training, verdicts after it, and a gradient check before it.

Three parts, all numpy-only (no MLflow, Hydra or OmegaConf here):

``HealthMonitor``
    A trainer hook (see ``nets.train``). Once per epoch it adds ``health/...`` keys to the
    epoch's metrics, so they reach ``Result.history`` and MLflow like any other metric.
    Most of them come from one forward pass over a fixed *probe batch*: at most
    ``probe_size`` validation rows, picked once with a fixed generator (seed 0, not the
    run's: the run's random streams are untouched, so a run with and without the monitor
    trains identically, and every run on the same data sees the same probe).

``diagnose(history, info, settings) -> list[Verdict]``
    A pure function of a recorded history (it also works on one read back from MLflow)
    and a few static facts about the run (``RunInfo``). ``explain`` turns the verdicts
    into markdown for the run's description, ``summary`` into the ``nets.diagnosis`` tag.

``gradcheck_model``
    Analytic gradients against central differences before training; raises
    ``GradientCheckError`` when a layer's worst relative error exceeds the threshold.

Health metrics
--------------
Keys are the same at every epoch (epoch 0 included; 0 where a value is undefined), and
depend only on the model's layers and the task. ``<layer>`` is a layer label such as
``dense1``, ``conv2``, ``activation1``.

==================================  ==========================================================
key                                 meaning
==================================  ==========================================================
``health/grad_norm/<layer>``        L2 norm of the gradient the epoch's last update used
                                    (all the layer's parameters, L2 term included), read
                                    from ``Param.grad`` at the epoch's end: nothing runs per
                                    step. Epoch 0 (no update yet): the gradient at the
                                    initial weights on the probe batch, scaled to a training
                                    batch when ``reduction=sum``.
``health/weight_norm/<layer>``      L2 norm of the layer's parameters at the end of the epoch.
``health/update_ratio/<layer>``     ``||P_end - P_start|| / ||P_start||`` over the epoch (one
                                    copy of the weights per epoch, not per step: it measures
                                    how far the epoch moved the layer, whatever the number of
                                    steps in it). 0 at epoch 0 and after a rolled-back epoch.
``health/saturated/<activation>``   sigmoid/tanh hidden layers: share of the probe's unit
                                    outputs within ``saturation_eps * (high - low)`` of a
                                    bound (there the derivative is nearly 0).
``health/dead/<activation>``        ReLU-family hidden layers: share of units (channels for
                                    convolutions) whose output is <= 0 on *every* probe row.
``health/pred/top_class``           classification: the most frequently predicted class,
``health/pred/top_class_share``     and its share of the probe predictions;
``health/pred/entropy``             entropy of the predicted-class distribution / log(K):
                                    1 = every class equally often, 0 = always one class;
``health/pred/true_class_score``    mean output (probability for softmax) of the true class;
``health/pred/margin``              mean of (true-class output - best other output); > 0
                                    means correct on average;
``health/pred/changed``             share of probe predictions whose class differs from the
                                    previous epoch's (0 at epoch 0).
``health/schedule/<event>``         cumulative count of the schedule's ``increase``,
                                    ``decrease``, ``rollback`` and ``cut`` events (the last
                                    value is the run's total).
``health/baseline/...``             constant lines to read the curves against:
                                    ``chance_accuracy`` (1/K) and ``majority_accuracy``
                                    (always predicting the most frequent validation label);
                                    regression: ``mae`` of predicting the training mean.
==================================  ==========================================================

The output activation is not checked for saturation: a tanh output near -1 for the
nine wrong digits is what ``plus_minus_one`` targets ask for.

Verdict rules
-------------
Thresholds are ``DiagnosticsSettings`` fields (config ``diagnostics.<field>``). "Accuracy"
and "loss" are the validation curves (the training curves when there are none); "the
end" is the last recorded epoch.

==============================  ===================================================================
verdict                         fires when (defaults)
==============================  ===================================================================
``diverged``                    the run's outcome is ``diverged``, the training loss is not
                                finite, or it exceeded ``explode_factor`` (10) x its epoch-0 value.
``class_collapse``              at the end one class takes >= ``collapse_share`` (0.8) of the probe
                                predictions while the most frequent label is at most
                                ``collapse_max_majority`` (0.5) of the validation labels.
``saturated_units``             at the end a sigmoid/tanh hidden layer has >= ``saturated_fraction``
                                (0.5) of its probe outputs near a bound, unless the model
                                removed >= ``units_ok_gain`` (0.8) of the baseline's error at
                                the last epoch (see ``nothing_learned``): then the units did not
                                stop it, and the ``healthy`` evidence mentions them instead.
``dead_units``                  at the end a ReLU-family layer has >= ``dead_fraction`` (0.5) of
                                its units dead on the whole probe batch (same exception).
``lr_too_low``                  all of (needs >= 4 trained epochs): the median over epochs >= 1 of
                                the largest layer update ratio is < ``lr_too_low_ratio`` (1e-3);
                                the training loss fell, but by < ``lr_too_low_drop`` (0.5) of its
                                epoch-0 value; it fell in >= ``lr_too_low_steady`` (0.8) of the
                                epochs of the second half (still falling, not noise); the
                                gradient norm of the last 3 epochs (median) is >=
                                ``lr_too_low_grad`` (0.5) x that of epochs 1-3 (slope left: not
                                converged).
``nothing_learned``             the best share of the baseline's error the model removed (epochs
                                >= 1) is < ``nothing_margin`` (0.05), or < ``nothing_margin_train``
                                (0.25) when the validation set is the training set (a model can
                                beat the baseline there by memorising). Error: ``1 - accuracy``
                                against the majority-class predictor; MAE against predicting the
                                training mean. Not reported when ``diverged``, ``class_collapse``
                                or ``lr_too_low`` fired (they already say why), nor when
                                ``loss_accuracy_divergence`` found the loss still falling.
``loss_accuracy_divergence``    the loss fell by >= ``divergence_loss_drop`` (0.05) of its epoch-0
                                value while the accuracy moved by < ``divergence_acc_points``
                                (0.05) between epoch 0 and the end (classification only). The
                                evidence: true-class score and margin over the same epochs, and
                                the share of predictions that changed class per epoch in the
                                second half ("confidence moved, the arg-max did not" when <
                                ``divergence_changed`` (0.05)). When the loss still falls in >=
                                ``lr_too_low_steady`` of the second half's epochs with the
                                margin <= 0, the run is slow rather than stuck: the advice is
                                a larger rate or more epochs (unless ``diverged``,
                                ``class_collapse``, ``saturated_units`` or ``dead_units``
                                explain it) and ``nothing_learned`` is not reported.
``overfitting``                 the ``overfit_window``-epoch (3) moving average of the validation
                                loss ends >= ``overfit_rise`` (0.1) above its minimum while the
                                training loss average fell after that minimum (needs a held-out
                                validation set).
``healthy``                     none of the above.
==============================  ===================================================================

Rules that need health keys stay silent when the monitor was off. During a run the
monitor appends plain-language ``warnings`` when a condition holds for ``warn_patience``
(3) consecutive epochs (collapse, saturation, dead units) or at once (exploding loss).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

import numpy as np

from nets.gradcheck import central_differences, rel_error
from nets.layers import ActivationLayer
from nets.registry import ConfigError, check

SCHEDULE_EVENTS = ("increase", "decrease", "rollback", "cut")
PROBE_SEED = 0
# Most important first: the order of the nets.diagnosis tag and of the description.
VERDICTS = ("diverged", "class_collapse", "saturated_units", "dead_units", "lr_too_low",
            "nothing_learned", "loss_accuracy_divergence", "overfitting", "healthy")


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and math.isfinite(float(x))


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
    collapse_share, collapse_max_majority, saturated_fraction, dead_fraction, units_ok_gain,
    explode_factor, lr_too_low_ratio, lr_too_low_drop, lr_too_low_steady, lr_too_low_grad,
    nothing_margin, nothing_margin_train, divergence_loss_drop, divergence_acc_points,
    divergence_changed, overfit_rise, overfit_window, warn_patience
        Rule thresholds; see the table in the module docstring.
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
    saturated_fraction: float = 0.5
    dead_fraction: float = 0.5
    units_ok_gain: float = 0.8
    explode_factor: float = 10.0
    lr_too_low_ratio: float = 1e-3
    lr_too_low_drop: float = 0.5
    lr_too_low_steady: float = 0.8
    lr_too_low_grad: float = 0.5
    nothing_margin: float = 0.05
    nothing_margin_train: float = 0.25
    divergence_loss_drop: float = 0.05
    divergence_acc_points: float = 0.05
    divergence_changed: float = 0.05
    overfit_rise: float = 0.1
    overfit_window: int = 3
    warn_patience: int = 3

    def __post_init__(self):
        for f in fields(self):
            v, key = getattr(self, f.name), f"diagnostics.{f.name}"
            if f.type == "bool":
                check(isinstance(v, (bool, np.bool_)), key, v, "true or false")
            elif f.type == "int":
                check(_is_int(v) and v > 0, key, v, "must be a positive integer")
            else:
                check(_is_num(v) and v > 0, key, v, "must be a number > 0")
        for name in ("collapse_share", "collapse_max_majority", "saturated_fraction",
                     "dead_fraction", "units_ok_gain", "lr_too_low_drop", "lr_too_low_steady",
                     "lr_too_low_grad", "nothing_margin", "nothing_margin_train",
                     "divergence_loss_drop", "divergence_acc_points", "divergence_changed"):
            v = getattr(self, name)
            check(v <= 1, f"diagnostics.{name}", v, "must be in (0, 1]")
        check(self.saturation_eps < 0.5, "diagnostics.saturation_eps", self.saturation_eps,
              "must be in (0, 0.5)")
        check(self.explode_factor > 1, "diagnostics.explode_factor", self.explode_factor,
              "must be > 1")

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


# ---------------------------------------------------------------------------------------
# Health metrics during training
# ---------------------------------------------------------------------------------------

def _sq(a: np.ndarray) -> float:
    return float(np.vdot(a, a))


class HealthMonitor:
    """Trainer hook recording ``health/...`` metrics (see the module docstring).

    Parameters
    ----------
    settings : DiagnosticsSettings, optional
    warn : callable, optional
        Called with each warning as it is raised (e.g. the progress printer); warnings
        are also kept in ``self.warnings``.

    Cost: nothing per step (no ``after_backward``: a per-step Python call alone costs 1-2%
    of a small mini-batch run). Per epoch: one forward pass over the probe batch, a few
    norms and one copy of the weights.
    """

    def __init__(self, settings: DiagnosticsSettings | None = None,
                 warn: Callable[[str], None] | None = None):
        self.settings = settings or DiagnosticsSettings()
        self.warn = warn
        self.warnings: list[str] = []

    # -- hook protocol ------------------------------------------------------------------

    def on_train_start(self, trainer) -> None:
        s, data = self.settings, trainer.data
        Xv, Tv = trainer.Xv, trainer.Tv
        yv = np.asarray(data.y_val)
        if len(Xv) == 0:
            Xv, Tv, yv = trainer.X, trainer.T, np.asarray(data.y_train)
        n = len(Xv)
        m = min(s.probe_size, n)
        idx = (np.sort(np.random.default_rng(PROBE_SEED).choice(n, m, replace=False))
               if m < n else np.arange(n))
        self.Xp, self.Tp = np.ascontiguousarray(Xv[idx]), np.ascontiguousarray(Tv[idx])
        self.classification = bool(trainer.classification)
        self.yp = yv[idx].astype(np.int64) if self.classification else None
        if self.classification:  # flat positions of the true class in the (n, K) outputs
            self._true_idx = np.arange(len(idx)) * data.n_classes + self.yp
        self.n_classes = data.n_classes
        self.layers = [(layer.label, list(layer.params)) for layer in trainer.model.net
                       if layer.params]
        # (layer, saturated key, low and high thresholds, dead key) per hidden activation
        self.acts = []
        for layer in trainer.model.net:
            if not isinstance(layer, ActivationLayer):
                continue
            bounds, rect = layer.fn.bounds, layer.fn.rectifier
            if bounds is None and not rect:
                continue
            lo = hi = None
            if bounds is not None:
                tol = s.saturation_eps * (bounds[1] - bounds[0])
                lo, hi = bounds[0] + tol, bounds[1] - tol
            self.acts.append((layer, None if bounds is None else f"health/saturated/{layer.label}",
                              lo, hi, f"health/dead/{layer.label}" if rect else None))
        self._unit_keys = [k for a in self.acts for k in (a[1], a[4]) if k is not None]
        self._params = [params for _, params in self.layers]
        self._keys = [(f"health/grad_norm/{label}", f"health/weight_norm/{label}",
                       f"health/update_ratio/{label}") for label, _ in self.layers]
        self._start = [[p.value.copy() for p in params] for params in self._params]
        self._buf = [[np.empty_like(p.value) for p in params] for params in self._params]
        self._w2: list[float] | None = None  # squared norms at the last epoch end
        self._prev_pred = None
        self._n_events = 0
        self._counts = dict.fromkeys(SCHEDULE_EVENTS, 0)
        self._event_keys = [f"health/schedule/{e}" for e in SCHEDULE_EVENTS]
        self._streak: dict[str, int] = {}
        self._warned: set[str] = set()
        self.warnings = []
        self._loss0 = None
        self.baselines = baselines(data)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        out: dict[str, float] = {}
        with np.errstate(all="ignore"):
            self._layer_stats(trainer, out)
            Z = trainer.model.forward(self.Xp, training=False)
            self._unit_stats(out)
            if self.classification:
                self._prediction_stats(trainer.model.output.forward(Z), out)
        ev = trainer.events
        for _, e in ev[self._n_events:]:
            if e in self._counts:
                self._counts[e] += 1
        self._n_events = len(ev)
        for e, key in zip(SCHEDULE_EVENTS, self._event_keys):
            out[key] = float(self._counts[e])
        out.update(self.baselines)
        self._check_warnings(trainer.epoch, metrics, out)
        metrics.update(out)

    # -- pieces -------------------------------------------------------------------------

    def _probe_grad(self, trainer) -> list[float]:
        """Per-layer gradient norms at the current weights on the probe batch, for a
        batch of the training size (epoch 0, before any step)."""
        Z = trainer.model.forward(self.Xp, training=False)
        _, dZ = trainer.head.value_and_grad(Z, self.Tp, "mean")
        if trainer.settings.reduction == "sum":
            dZ *= trainer.bs  # a summed batch gradient is bs times the mean one
        trainer.model.backward(dZ)
        trainer.optimizer.regularize(trainer.params)
        return [math.sqrt(sum([_sq(p.grad) for p in params])) for params in self._params]

    def _layer_stats(self, trainer, out: dict) -> None:
        w2_prev, w2_now = self._w2, []
        # Epoch 0 has no update yet; afterwards Param.grad still holds the last update's.
        g0 = self._probe_grad(trainer) if w2_prev is None else None
        for i, (params, start, buf) in enumerate(zip(self._params, self._start, self._buf)):
            k_grad, k_weight, k_ratio = self._keys[i]
            w2 = d2 = g2 = 0.0
            for p, s0, b in zip(params, start, buf):
                w2 += _sq(p.value)
                if w2_prev is not None:
                    g2 += _sq(p.grad)
                    np.subtract(p.value, s0, out=b)
                    d2 += _sq(b)
                np.copyto(s0, p.value)
            w2_now.append(w2)
            out[k_grad] = g0[i] if g0 is not None else math.sqrt(g2)
            out[k_weight] = math.sqrt(w2)
            # ||P_start|| is the previous epoch's weight norm: no second pass over P_start.
            out[k_ratio] = 0.0 if w2_prev is None else math.sqrt(d2 / max(w2_prev[i], 1e-24))
        self._w2 = w2_now

    def _unit_stats(self, out: dict) -> None:
        for layer, sat_key, lo, hi, dead_key in self.acts:
            A = layer.A
            if sat_key is not None:
                n = np.count_nonzero(A <= lo) + np.count_nonzero(A >= hi)
                out[sat_key] = n / max(1, A.size)
            if dead_key is not None:
                peak = A.reshape(-1, A.shape[-1]).max(axis=0)  # a unit's best row
                out[dead_key] = np.count_nonzero(peak <= 0) / peak.size

    def _prediction_stats(self, A: np.ndarray, out: dict) -> None:
        n, k = A.shape
        pred = A.argmax(axis=1)  # as the trainer's accuracy (ties go to the lowest class)
        counts = np.bincount(pred, minlength=k)
        share = counts[counts > 0] / n
        A = np.ascontiguousarray(A)
        true = A.reshape(-1)[self._true_idx]
        other = A.copy()
        other.reshape(-1)[self._true_idx] = -np.inf
        top = int(counts.argmax())
        out["health/pred/top_class"] = float(top)
        out["health/pred/top_class_share"] = int(counts[top]) / n
        out["health/pred/entropy"] = max(0.0, float(-(share * np.log(share)).sum()) / math.log(k))
        out["health/pred/true_class_score"] = float(true.sum()) / n
        out["health/pred/margin"] = float((true - other.max(axis=1)).sum()) / n
        out["health/pred/changed"] = (0.0 if self._prev_pred is None
                                      else np.count_nonzero(pred != self._prev_pred) / n)
        self._prev_pred = pred

    def _check_warnings(self, epoch: int, metrics: Mapping[str, float], out: dict) -> None:
        s = self.settings
        loss = metrics.get("train/loss", math.nan)
        if self._loss0 is None:
            self._loss0 = loss
        elif "diverged" not in self._warned and (
                not math.isfinite(loss) or loss > s.explode_factor * self._loss0):
            self._emit("diverged", f"epoch {epoch}: diverged - the training loss is {loss:.4g}, "
                       f"{_times(loss, self._loss0)} its starting value {self._loss0:.4g}")
        if epoch == 0:
            return
        conds: dict[str, str] = {}
        maj = self.baselines.get("health/baseline/majority_accuracy", 1.0)
        share = out.get("health/pred/top_class_share", 0.0)
        if share >= s.collapse_share and maj <= s.collapse_max_majority:
            conds["class_collapse"] = (
                f"class_collapse - class {int(out['health/pred/top_class'])} has taken "
                f"{share:.0%} of the probe predictions (most frequent label: {maj:.1%})")
        for key in self._unit_keys:
            v = out[key]
            if key.startswith("health/saturated/") and v >= s.saturated_fraction:
                conds[key] = (f"saturated_units - {v:.0%} of the outputs of "
                              f"{key.rsplit('/', 1)[1]} sit at their bounds")
            elif key.startswith("health/dead/") and v >= s.dead_fraction:
                conds[key] = (f"dead_units - {v:.0%} of the units of {key.rsplit('/', 1)[1]} "
                              "are inactive on every probe row")
        for name in list(self._streak):
            if name not in conds:
                self._streak[name] = 0
        for name, text in conds.items():
            self._streak[name] = self._streak.get(name, 0) + 1
            if self._streak[name] >= s.warn_patience and name not in self._warned:
                self._emit(name, f"epoch {epoch}: {text}, {self._streak[name]} epochs in a row")

    def _emit(self, name: str, text: str) -> None:
        self._warned.add(name)
        self.warnings.append(text)
        if self.warn is not None:
            self.warn(f"warning: {text}")


def baselines(data) -> dict[str, float]:
    """``health/baseline/...`` values of a ``Data`` (constant over a run)."""
    if data.task == "classification":
        counts = np.bincount(np.asarray(data.y_val, np.int64), minlength=data.n_classes)
        return {"health/baseline/chance_accuracy": 1.0 / data.n_classes,
                "health/baseline/majority_accuracy": float(counts.max() / max(1, counts.sum()))}
    Yt = np.asarray(data.y_train, np.float64).reshape(len(data.y_train), -1)
    Yv = np.asarray(data.y_val, np.float64).reshape(len(data.y_val), -1)
    return {"health/baseline/mae": float(np.mean(np.abs(Yv - Yt.mean(axis=0))))}


def _times(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "far above"
    return f"{a / b:.3g}x"


# ---------------------------------------------------------------------------------------
# Verdicts after training
# ---------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """Static facts about a run that the rules need besides its history.

    Attributes
    ----------
    task : {"classification", "regression"}
    chance_accuracy, majority_accuracy : float, optional
        ``1/K`` and the most frequent validation label's share (classification).
    baseline_mae : float, optional
        Validation MAE of predicting the training mean (regression).
    val_is_train : bool
        The validation set is the training set (``val_fraction=0``).
    outcome, reason : str
        ``Result.outcome`` and ``Result.reason``.
    config : dict
        A few flat config values the advice can quote (``train.reduction``,
        ``train.batch_size``, ``optimizer.lr``, ``loss``, ``model.output``).
    """

    task: str = "classification"
    chance_accuracy: float | None = None
    majority_accuracy: float | None = None
    baseline_mae: float | None = None
    val_is_train: bool = False
    outcome: str = "completed"
    reason: str = ""
    config: dict = field(default_factory=dict)

    @classmethod
    def from_run(cls, run, result=None) -> "RunInfo":
        """From a ``nets.train.Run`` (and its ``Result``)."""
        data = run.data
        b = baselines(data)
        cfg = {"train.reduction": run.settings.reduction,
               "train.batch_size": run.settings.batch_size,
               "optimizer.name": run.optimizer.name, "optimizer.lr": run.optimizer.lr,
               "schedule.name": run.schedule.name, "loss": run.loss.name,
               "model.output": run.model.output.name}
        return cls(task=data.task,
                   chance_accuracy=b.get("health/baseline/chance_accuracy"),
                   majority_accuracy=b.get("health/baseline/majority_accuracy"),
                   baseline_mae=b.get("health/baseline/mae"),
                   val_is_train=data.X_val is data.X_train,
                   outcome=getattr(result, "outcome", "completed"),
                   reason=getattr(result, "reason", ""), config=cfg)

    @classmethod
    def from_record(cls, metrics: Mapping[str, float], tags: Mapping[str, str],
                    params: Mapping[str, str] | None = None) -> "RunInfo":
        """From what a run recorded: the summary metrics (``data/...``), the tags
        (``nets.task``, ``nets.outcome``, ``nets.reason``) and optionally the params."""
        p = dict(params or {})

        def spec(key):  # a spec is logged as "key" (a name) or "key.name" (a mapping)
            return p.get(f"{key}.name", p.get(key))

        bs = p.get("train.batch_size")
        config = {"train.reduction": p.get("train.reduction"),
                  "train.batch_size": int(bs) if bs is not None and str(bs).isdigit() else None,
                  "optimizer.name": spec("optimizer"), "optimizer.lr": p.get("optimizer.lr"),
                  "schedule.name": spec("schedule"), "loss": spec("loss"),
                  "model.output": spec("model.output")}
        return cls(task=tags.get("nets.task", "classification"),
                   chance_accuracy=metrics.get("data/chance_accuracy"),
                   majority_accuracy=metrics.get("data/majority_accuracy"),
                   baseline_mae=metrics.get("data/baseline_val_mae"),
                   val_is_train=bool(metrics.get("data/val_is_train", 0.0)),
                   outcome=tags.get("nets.outcome", "completed"),
                   reason=tags.get("nets.reason", ""),
                   config={k: v for k, v in config.items()
                           if v is not None or (k == "train.batch_size" and bs is not None)})


@dataclass
class Verdict:
    """One diagnosis: its ``name``, the ``evidence`` (plain words with the numbers that
    triggered it), what to try (``advice``) and the ``numbers`` themselves."""

    name: str
    evidence: str
    advice: str
    numbers: dict[str, float] = field(default_factory=dict)


def _series(history: Mapping[str, list], key: str) -> np.ndarray | None:
    v = history.get(key)
    if v is None or len(v) == 0:
        return None
    return np.asarray(v, dtype=np.float64)


def _curves(history) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """``(prefix, loss, accuracy)`` of the validation curves, else the training ones."""
    for prefix in ("val", "train"):
        loss = _series(history, f"{prefix}/loss")
        if loss is not None:
            return prefix, loss, _series(history, f"{prefix}/accuracy")
    return "", None, None


def _layer_keys(history, group: str) -> list[str]:
    """``health/<group>/<layer>`` keys in recording order (= layer order)."""
    return [k for k in history if k.startswith(f"health/{group}/")]


def _since(values: np.ndarray, cond) -> int:
    """First epoch of the run of epochs at the end where ``cond(value)`` holds."""
    i = len(values)
    while i > 0 and cond(values[i - 1]):
        i -= 1
    return i


def _moving_average(x: np.ndarray, w: int) -> np.ndarray:
    w = max(1, min(w, len(x)))
    c = np.cumsum(np.insert(x, 0, 0.0))
    return (c[w:] - c[:-w]) / w


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _cfg_hint(info: RunInfo) -> str:
    c = info.config
    if c.get("train.reduction") == "sum" and c.get("train.batch_size") not in (None, 1):
        return (f" This run sums the per-sample gradients of batches of {c['train.batch_size']} "
                f"(train.reduction=sum): each step is {c['train.batch_size']}x larger than with "
                "train.reduction=mean.")
    return ""


def _diverged(h, info, s) -> Verdict | None:
    loss = _series(h, "train/loss")
    nonfinite = loss is not None and not np.all(np.isfinite(loss))
    exploded = False
    if loss is not None and len(loss) > 1 and math.isfinite(loss[0]) and loss[0] > 0:
        with np.errstate(invalid="ignore"):
            exploded = bool(np.nanmax(np.where(np.isfinite(loss[1:]), loss[1:], np.nan),
                                      initial=-np.inf) > s.explode_factor * loss[0])
    if not (info.outcome == "diverged" or nonfinite or exploded):
        return None
    nums: dict[str, Any] = {}
    parts = []
    if info.outcome == "diverged":
        parts.append(f"Training stopped as diverged: {info.reason or 'non-finite values'}.")
    if loss is not None:
        finite = loss[np.isfinite(loss)]
        nums.update(initial_loss=float(loss[0]), max_loss=float(finite.max()) if finite.size
                    else math.nan, explode_factor=s.explode_factor)
        if exploded:
            parts.append(f"The training loss rose from {_fmt(loss[0])} to {_fmt(finite.max())}, "
                         f"more than {s.explode_factor:g}x its starting value.")
        if nonfinite:
            parts.append("The training loss became non-finite (inf or NaN).")
    return Verdict("diverged", " ".join(parts),
                   "Lower the learning rate (optimizer.lr) by 10x; with train.reduction=sum the "
                   "step grows with the batch size, so use mean or divide the rate by the batch "
                   "size; schedule=bold_driver with rollback=true rejects steps that raise the "
                   "loss." + _cfg_hint(info), nums)


def _class_collapse(h, info, s) -> Verdict | None:
    share = _series(h, "health/pred/top_class_share")
    maj = info.majority_accuracy
    if share is None or info.task != "classification" or maj is None:
        return None
    if not (share[-1] >= s.collapse_share and maj <= s.collapse_max_majority):
        return None
    top = _series(h, "health/pred/top_class")
    cls = int(top[-1]) if top is not None else None
    since = _since(share, lambda v: v >= s.collapse_share)
    _, _, acc = _curves(h)
    nums = {"top_class": cls, "top_class_share": float(share[-1]), "majority_accuracy": maj,
            "since_epoch": since, "collapse_share": s.collapse_share}
    who = f"class {cls}" if cls is not None else "one class"
    text = (f"At the last epoch the network predicts {who} for {share[-1]:.0%} of the probe "
            f"inputs, although the most frequent label makes up only {maj:.1%} of the "
            f"validation set")
    if acc is not None:
        nums["accuracy"] = float(acc[-1])
        text += f"; accuracy {acc[-1]:.1%} is about what always answering one class earns"
    text += "."
    if since == 0:
        text += (" It has done so since epoch 0: training never moved it away from the "
                 "input-independent output of the initial weights.")
    else:
        text += f" It has done so since epoch {since} (at epoch 0: {share[0]:.0%})."
    sat = _bad_units(h, s, "saturated")
    if sat:
        text += (" Saturated hidden units (" + ", ".join(sat)
                 + ") give the same output for every input and pass back almost no gradient.")
    advice = ("Collapse after the first epochs usually means steps that were too large: lower "
              "optimizer.lr, use train.reduction=mean, or softmax + cross_entropy instead of "
              "tanh/sigmoid outputs with mse." if since > 0 else
              "The weights barely moved from their initial values: raise optimizer.lr or use "
              "schedule=bold_driver (see lr_too_low), and check the inputs are scaled.")
    return Verdict("class_collapse", text, advice + _cfg_hint(info), nums)


def _bad_units(h, s, group: str) -> dict[str, float]:
    """Layer label -> share of ``group`` ("saturated" or "dead") units at the last epoch,
    for the layers at or above that group's threshold."""
    thr = s.saturated_fraction if group == "saturated" else s.dead_fraction
    return {k.rsplit("/", 1)[1]: float(h[k][-1]) for k in _layer_keys(h, group)
            if len(h[k]) and h[k][-1] >= thr}


def _learned_despite_units(h, info, s) -> float | None:
    """The final gain when it is at least ``units_ok_gain``: saturated or dead units did
    not stop this model (story 4's summed gradients at lr 0.01 reach 92-94% with half the
    tanh outputs at +-1), so they are not what went wrong."""
    g = _gain(h, info, last=True)
    return g[2] if g is not None and g[2] >= s.units_ok_gain else None


def _units(h, info, s, group: str) -> Verdict | None:
    thr = s.saturated_fraction if group == "saturated" else s.dead_fraction
    bad = _bad_units(h, s, group)
    if not bad or _learned_despite_units(h, info, s):
        return None
    layers = ", ".join(f"{name} {v:.0%}" for name, v in bad.items())
    nums = {f"{group}/{k}": v for k, v in bad.items()}
    nums["threshold"] = thr
    g_keys = _layer_keys(h, "grad_norm")
    grad = ""
    if g_keys:
        g = _series(h, g_keys[0])
        if g is not None and len(g) > 1:
            grad = (f" The gradient of {g_keys[0].rsplit('/', 1)[1]} went from {_fmt(g[0])} "
                    f"to {_fmt(g[-1])}.")
            nums["first_layer_grad_first"] = float(g[0])
            nums["first_layer_grad_last"] = float(g[-1])
    if group == "saturated":
        return Verdict("saturated_units",
                       f"At the last epoch these sigmoid/tanh layers have at least {thr:.0%} of "
                       f"their outputs on the probe batch within {s.saturation_eps:g} x (high - "
                       f"low) of a bound (|tanh| > {1 - 2 * s.saturation_eps:g}, sigmoid "
                       f"outside [{s.saturation_eps:g}, {1 - s.saturation_eps:g}]): {layers}. "
                       f"There the derivative is close to 0, so the units stop learning.{grad}",
                       "Large pre-activations cause this: lower optimizer.lr (or use "
                       "train.reduction=mean), scale the inputs (dataset.scaling=standard), "
                       "use xavier initialization, or relu hidden units." + _cfg_hint(info),
                       nums)
    return Verdict("dead_units",
                   f"At the last epoch these ReLU-family layers have at least {thr:.0%} of "
                   f"their units inactive on every probe input: {layers}. A dead unit has "
                   f"zero gradient and never recovers.{grad}",
                   "Lower optimizer.lr, use he initialization, a small positive bias_init, or "
                   "model.activation=leaky_relu.", nums)


def _lr_too_low(h, info, s) -> Verdict | None:
    loss = _series(h, "train/loss")
    r_keys = _layer_keys(h, "update_ratio")
    if loss is None or not r_keys or len(loss) < 5 or not np.all(np.isfinite(loss)):
        return None
    R = np.array([h[k] for k in r_keys if len(h[k]) == len(loss)], dtype=np.float64)
    if R.size == 0:
        return None
    ratio = float(np.median(R[:, 1:].max(axis=0)))
    drop = float((loss[0] - loss[-1]) / loss[0]) if loss[0] > 0 else 0.0
    half = loss[len(loss) // 2:]
    steady = float(np.mean(np.diff(half) < 0)) if len(half) > 1 else 0.0
    g_keys = _layer_keys(h, "grad_norm")
    kept = 1.0
    if g_keys:
        G = np.array([h[k] for k in g_keys if len(h[k]) == len(loss)], dtype=np.float64)
        if G.size:
            tot = np.sqrt((G ** 2).sum(axis=0))
            # medians of 3 epochs: the last mini-batch's gradient is a noisy sample
            first, last = float(np.median(tot[1:4])), float(np.median(tot[-3:]))
            kept = last / first if first > 0 else 1.0
    if not (ratio < s.lr_too_low_ratio and 0 < drop < s.lr_too_low_drop
            and steady >= s.lr_too_low_steady and kept >= s.lr_too_low_grad):
        return None
    lr = _series(h, "lr")
    nums = {"median_update_ratio": ratio, "loss_drop": drop, "falling_share": steady,
            "grad_kept": kept, "lr": float(lr[-1]) if lr is not None else None,
            "threshold": s.lr_too_low_ratio}
    return Verdict("lr_too_low",
                   f"The weights barely move: in a typical epoch the layer that moved most "
                   f"changed by {ratio:.2g} of its norm (threshold {s.lr_too_low_ratio:g}). The "
                   f"training loss is still falling (in {steady:.0%} of the epochs of the "
                   f"second half) but slowly: {drop:.1%} below its start after "
                   f"{len(loss) - 1} epochs ({_fmt(loss[0])} -> {_fmt(loss[-1])}), and the "
                   f"gradient is still {kept:.0%} of its size in the first epochs, so the "
                   "slope is there; the steps are just too small."
                   + (f" Learning rate: {lr[-1]:g}." if lr is not None else "")
                   + (f" The run then stopped at the gradient tolerance ({info.reason}) while "
                      "the loss was still falling: the tolerance ended it, not a minimum."
                      if info.outcome == "converged" else ""),
                   ("Lower train.tol (10x per step) so the run goes on, or raise "
                    if info.outcome == "converged" else "Raise ")
                   + "optimizer.lr (try 10x), or let it adapt: schedule=bold_driver raises "
                   "the rate while the loss falls (story 1's fix)."
                   + (" This run is full-batch, one step per epoch: mini-batches "
                      "(train.batch_size=32) take many." if "train.batch_size" in info.config
                      and info.config["train.batch_size"] is None else ""),
                   nums)


def _gain(h, info, last: bool = False) -> tuple[float, float, float] | None:
    """``(value, baseline, gain)``: ``gain`` is the share of the baseline's error the model
    removed, from the best trained epoch (``last``: the last epoch). Classification: error
    ``1 - accuracy`` against always predicting the most frequent class (or chance, if
    higher); regression: MAE against predicting the training mean. ``None`` without the
    curve or baseline."""
    prefix = "val" if "val/loss" in h else "train"
    cls = info.task == "classification"
    curve = _series(h, f"{prefix}/{'accuracy' if cls else 'mae'}")
    if cls:
        base = (None if info.majority_accuracy is None
                else max(info.majority_accuracy, info.chance_accuracy or 0.0))
    else:
        base = info.baseline_mae if info.baseline_mae and info.baseline_mae > 0 else None
    if curve is None or base is None or len(curve) < 2:  # nothing trained, nothing to judge
        return None
    trained = curve[1:][np.isfinite(curve[1:])]
    if trained.size == 0:
        return None
    if cls:
        v = float(trained[-1] if last else trained.max())
        return v, base, 1.0 - (1.0 - v) / max(1e-12, 1.0 - base)
    v = float(trained[-1] if last else trained.min())
    return v, base, 1.0 - v / base


def _nothing_learned(h, info, s) -> Verdict | None:
    margin = s.nothing_margin_train if info.val_is_train else s.nothing_margin
    where = "training set (used for validation)" if info.val_is_train else "validation set"
    g = _gain(h, info)
    if g is None or g[2] >= margin:
        return None
    best, base, gain = g
    if info.task == "classification":
        nums = {"best_accuracy": best, "baseline_accuracy": base, "gain": gain,
                "margin": margin}
        text = (f"The best accuracy on the {where} was {best:.1%}; always predicting the most "
                f"frequent class gets {base:.1%} (chance: {info.chance_accuracy or 0:.1%}). The "
                f"model removed {max(gain, 0):.1%} of that baseline's errors "
                f"(needed: {margin:.0%}).")
    else:
        nums = {"best_mae": best, "baseline_mae": base, "gain": gain, "margin": margin}
        text = (f"The best MAE on the {where} was {_fmt(best)}; predicting the training mean "
                f"for every input gives {_fmt(base)}. The model is only {max(gain, 0):.1%} "
                f"better (needed: {margin:.0%}).")
    if info.val_is_train:
        text += (" Validation is the training set here, so even that gain may be memorisation "
                 "rather than learning.")
    return Verdict("nothing_learned", text,
                   "Check that inputs and targets belong together (label column, shuffling, "
                   "scaling). If the targets are unrelated to the inputs, as with random data, "
                   "there is nothing to learn: no setting fixes that. Judge learning on held-out "
                   "data (dataset.val_fraction=0.2).", nums)


def _divergence(h, info, s) -> Verdict | None:
    if info.task != "classification":
        return None
    prefix, loss, acc = _curves(h)
    if loss is None or acc is None or len(loss) < 2 or len(acc) != len(loss) \
            or not np.all(np.isfinite(loss)):
        return None
    drop = float((loss[0] - loss[-1]) / loss[0]) if loss[0] > 0 else 0.0
    moved = float(acc[-1] - acc[0])
    if not (drop >= s.divergence_loss_drop and abs(moved) < s.divergence_acc_points):
        return None
    best = int(np.nanargmax(acc))
    nums = {"loss_first": float(loss[0]), "loss_last": float(loss[-1]), "loss_drop": drop,
            "accuracy_first": float(acc[0]), "accuracy_last": float(acc[-1]),
            "accuracy_best": float(acc[best])}
    text = (f"The {prefix} loss fell {drop:.0%} ({_fmt(loss[0])} -> {_fmt(loss[-1])}) over "
            f"{len(loss) - 1} epochs while the {prefix} accuracy moved {moved * 100:+.2f} points "
            f"({acc[0]:.1%} -> {acc[-1]:.1%}")
    # "rises a little and then drops back" (story 3) is the same symptom: say so
    text += (f"; best {acc[best]:.1%} at epoch {best})." if acc[best] - acc[-1] >= 0.01
             else ").")
    # The second half is where "still falling" is judged (as in lr_too_low): a loss that
    # keeps falling there while the decisions stay put is confidence, not learning.
    half = len(loss) // 2
    late = np.diff(loss[half:])
    falling = float(np.mean(late < 0)) if late.size else 0.0
    nums["falling_share"] = falling
    ts, mg, ch = (_series(h, f"health/pred/{k}") for k in ("true_class_score", "margin",
                                                           "changed"))
    if ts is not None and mg is not None and ch is not None and len(ch) == len(loss):
        changed = float(np.mean(ch[max(1, half):])) if len(ch) > 1 else 0.0
        nums.update(true_class_score_first=float(ts[0]), true_class_score_last=float(ts[-1]),
                    margin_first=float(mg[0]), margin_last=float(mg[-1]), late_changed=changed)
        text += (f" Over the same epochs the mean output for the true class went {_fmt(ts[0])} "
                 f"-> {_fmt(ts[-1])} and the mean margin (true class minus the best other "
                 f"class) {_fmt(mg[0])} -> {_fmt(mg[-1])}. In the second half (epochs {half}-"
                 f"{len(loss) - 1}) the loss went {_fmt(loss[half])} -> {_fmt(loss[-1])} while "
                 f"on average {changed:.1%} of the probe predictions changed class per epoch.")
        if changed < s.divergence_changed:
            text += (" So the outputs changed without changing which class scores highest: "
                     "confidence moved, the arg-max did not.")
        else:
            text += " Predictions did change class, but not toward the true class."
        if ts[-1] < ts[0]:
            text += (" The true-class output even fell: the loss gained from the other outputs "
                     "moving toward their 'off' target (0, or -1 with plus_minus_one).")
        if mg[-1] <= 0:
            text += (" The margin is still not positive: on average the true class does not "
                     "score highest, so the accuracy stays where it was.")
    text += (" The loss rewards every output for moving toward its target; accuracy only counts "
             "which output is largest.")
    advice = ("Read the other verdicts for the cause (too small a learning rate, collapse, "
              "saturation). Watch health/pred/margin and health/pred/changed: accuracy moves "
              "only once the margin turns positive."
              + ("" if info.config.get("loss") == "cross_entropy" else
                 " softmax + cross_entropy ties the loss more closely to the arg-max than "
                 "squared error on sigmoid/tanh outputs."))
    if falling >= s.lr_too_low_steady and (mg is None or mg[-1] <= 0):
        nums["still_falling"] = 1.0  # diagnose() decides what that means (_still_falling)
    return Verdict("loss_accuracy_divergence", text, advice, nums)


# Verdicts that explain a stuck accuracy by steps that were too large or units that stopped:
# with one of them, a loss still creeping down is not a reason to raise the rate.
_STEP_CAUSES = ("diverged", "class_collapse", "saturated_units", "dead_units")


def _still_falling(out: list[Verdict]) -> list[Verdict]:
    """Adjust the verdicts when ``loss_accuracy_divergence`` found the loss still falling
    steadily with a negative margin: that is "not yet", not "nothing to learn" (story 4's
    MSE at mean/lr 0.01 on digits: 12% after 5 epochs, 52% at lr 0.1), so drop
    ``nothing_learned`` (its advice is to check the data) and, unless a step-size cause was
    found, advise a larger rate (story 3 at lr 1e-4)."""
    div = next((v for v in out if v.name == "loss_accuracy_divergence"), None)
    if div is None or not div.numbers.get("still_falling"):
        return out
    out = [v for v in out if v.name != "nothing_learned"]
    if not any(v.name in _STEP_CAUSES for v in out):
        div.advice = (f"The loss still fell in {div.numbers['falling_share']:.0%} of the second "
                      "half's epochs: this run is slow, not finished. Raise optimizer.lr (try "
                      "10x) or train longer; a sweep over optimizer.lr shows the rate at which "
                      "confidence turns into decisions. " + div.advice)
    return out


def _overfitting(h, info, s) -> Verdict | None:
    if info.val_is_train:
        return None
    val, tr = _series(h, "val/loss"), _series(h, "train/loss")
    w = s.overfit_window
    if val is None or tr is None or len(val) != len(tr) or len(val) < 2 * w + 1:
        return None
    if not (np.all(np.isfinite(val)) and np.all(np.isfinite(tr))):
        return None
    mv, mt = _moving_average(val, w), _moving_average(tr, w)
    b = int(np.argmin(mv))
    rise = float(mv[-1] / mv[b] - 1) if mv[b] > 0 else 0.0
    if not (b < len(mv) - 1 and rise >= s.overfit_rise and mt[-1] < mt[b]):
        return None
    best_epoch = b + w - 1  # last epoch of the best window
    nums = {"best_epoch": best_epoch, "val_loss_best": float(mv[b]), "val_loss_last": float(mv[-1]),
            "rise": rise, "train_loss_at_best": float(mt[b]), "train_loss_last": float(mt[-1]),
            "window": w}
    text = (f"The validation loss ({w}-epoch average) reached its minimum {_fmt(mv[b])} at epoch "
            f"{best_epoch} and ended {rise:.0%} higher at {_fmt(mv[-1])}, while the training "
            f"loss kept falling ({_fmt(mt[b])} -> {_fmt(mt[-1])}): the model fits the training "
            "set at the expense of new data.")
    acc = _series(h, "val/accuracy")
    if acc is not None and len(acc) == len(val):
        nums["val_accuracy_best"], nums["val_accuracy_last"] = float(acc.max()), float(acc[-1])
        text += f" Validation accuracy: best {acc.max():.1%}, last {acc[-1]:.1%}."
    return Verdict("overfitting", text,
                   f"Stop earlier (train.early_stopping=5, or about {best_epoch} epochs), add "
                   "an L2 penalty (optimizer.weight_decay=1e-4) or dropout (model.dropout=0.25), "
                   "use more training data or a smaller model.", nums)


RULES = {"diverged": _diverged, "class_collapse": _class_collapse,
         "saturated_units": lambda h, i, s: _units(h, i, s, "saturated"),
         "dead_units": lambda h, i, s: _units(h, i, s, "dead"),
         "lr_too_low": _lr_too_low, "nothing_learned": _nothing_learned,
         "loss_accuracy_divergence": _divergence, "overfitting": _overfitting}


def diagnose(history: Mapping[str, list], info: RunInfo | Mapping[str, Any] | None = None,
             settings: DiagnosticsSettings | None = None) -> list[Verdict]:
    """Verdicts for a recorded run, most important first (see the module docstring).

    Parameters
    ----------
    history : mapping of str to list of float
        Metric key -> one value per epoch (``Result.history``, or histories read back
        from MLflow; series may have different lengths there, each is used on its own).
    info : RunInfo or mapping, optional
        Static facts (a mapping is read as ``RunInfo`` fields).
    settings : DiagnosticsSettings, optional

    Returns
    -------
    list of Verdict
        ``[Verdict("healthy", ...)]`` when no rule fires.
    """
    s = settings or DiagnosticsSettings()
    if info is None:
        info = RunInfo()
    elif not isinstance(info, RunInfo):
        names = {f.name for f in fields(RunInfo)}
        info = RunInfo(**{k: v for k, v in dict(info).items() if k in names})
    out: list[Verdict] = []
    with np.errstate(all="ignore"):
        for name, rule in RULES.items():
            if name == "nothing_learned" and any(
                    v.name in ("diverged", "class_collapse", "lr_too_low") for v in out):
                continue
            v = rule(history, info, s)
            if v is not None:
                v.numbers = {k: float(x) for k, x in v.numbers.items()
                             if _is_num(x) or (isinstance(x, float) and math.isnan(x))}
                out.append(v)
    out = _still_falling(out)
    if not out:
        out.append(_healthy(history, info, s))
    return out


def _healthy(h, info: RunInfo, s: DiagnosticsSettings) -> Verdict:
    prefix, loss, acc = _curves(h)
    nums: dict[str, Any] = {}
    parts = ["No rule fired."]
    if acc is not None:
        nums["accuracy"] = float(acc[-1])
        parts.append(f"Final {prefix} accuracy {acc[-1]:.1%}"
                     + (f" (chance {info.chance_accuracy:.1%}, majority class "
                        f"{info.majority_accuracy:.1%})." if info.majority_accuracy is not None
                        else "."))
    mae = _series(h, f"{prefix}/mae")
    if mae is not None:
        nums["mae"] = float(mae[-1])
        parts.append(f"Final {prefix} MAE {_fmt(mae[-1])}"
                     + (f" (predicting the mean: {_fmt(info.baseline_mae)})."
                        if info.baseline_mae is not None else "."))
    gain = _learned_despite_units(h, info, s)
    if gain is not None:
        for group, what in (("saturated", "of its outputs at a bound"),
                            ("dead", "of its units dead")):
            for layer, v in _bad_units(h, s, group).items():
                nums[f"health/{group}/{layer}"] = v
                parts.append(f"{layer} has {v:.0%} {what}; harmless here: the model removed "
                             f"{gain:.0%} of the baseline's error.")
    return Verdict("healthy", " ".join(parts), "Nothing to fix; compare settings in a sweep.",
                   nums)


def summary(verdicts: list[Verdict]) -> str:
    """One line for the ``nets.diagnosis`` tag: ``class_collapse,saturated_units``."""
    return ",".join(v.name for v in verdicts)


def explain(verdicts: list[Verdict], warnings: list[str] | None = None) -> str:
    """Markdown for the run's description (``mlflow.note.content``)."""
    lines = [f"**Diagnosis: {', '.join(v.name for v in verdicts)}**", ""]
    for v in verdicts:
        lines += [f"### {v.name}", "", v.evidence, "", f"*What to try:* {v.advice}", ""]
    if warnings:
        lines += ["### Warnings during the run", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Gradient check before training
# ---------------------------------------------------------------------------------------

class GradientCheckError(RuntimeError):
    """Backprop disagrees with central differences; ``errors`` maps layer -> worst error."""

    def __init__(self, errors: dict[str, float], threshold: float):
        self.errors, self.threshold = dict(errors), float(threshold)
        bad = {k: v for k, v in errors.items() if not v <= threshold}
        self.layer = max(bad, key=lambda k: (not math.isfinite(bad[k]), bad[k]))
        self.error = bad[self.layer]
        listing = ", ".join(f"{k}={v:.2g}" for k, v in errors.items())
        super().__init__(
            f"gradient check failed: {self.layer} has relative error {self.error:.3g} between "
            f"backprop and central differences (threshold {threshold:g}; {listing}). The "
            f"backward pass of {self.layer}, or of a layer above it that feeds it dL/dX, does "
            "not match its forward pass.")


def gradcheck_model(model, head, X: np.ndarray, T: np.ndarray, reduction: str = "mean",
                    threshold: float = 1e-4, eps: float = 1e-6, max_entries: int | None = 64,
                    rng: np.random.Generator | None = None) -> dict[str, float]:
    """Worst relative error per layer between backprop and central differences.

    Runs on a float64 copy of ``model`` in evaluation mode (dropout off); the model
    itself is not touched, and float32 models are checked in float64, where differences
    of ``eps=1e-6`` are exact enough for the same threshold. Per parameter, up to
    ``max_entries`` entries are checked and compared with ``nets.gradcheck.rel_error``.

    Where ``nets.gradcheck.check_model`` would cry wolf: an entry whose loss is not
    smooth within ``eps`` (a ReLU or max-pool kink: zero pixels and zero biases put
    convolution pre-activations exactly at 0) has a central difference that is off by up
    to ``|f(x+e) - 2 f(x) + f(x-e)| / (2e)``. Such entries are skipped when that bound
    exceeds ``threshold`` times the gradient's scale; smooth entries (all of them for
    sigmoid/tanh networks) are always compared.

    Parameters
    ----------
    model : Sequential
    head : Head
    X, T : ndarray
        A small batch, ``(n, ...)`` inputs and ``(n, n_out)`` encoded targets.
    reduction : {"mean", "sum"}
    threshold : float
        Largest relative error allowed.

    Returns
    -------
    dict of str to float
        ``{"dense1": 3e-10, "dense2": 1e-9}``: per layer, the worst over its parameters.

    Raises
    ------
    GradientCheckError
        When a layer's error exceeds ``threshold`` (or is not finite).
    """
    rng = rng or np.random.default_rng(0)
    m = copy.deepcopy(model)
    for _, p in m.named_params():
        p.value = np.array(p.value, dtype=np.float64)
        p.grad = np.zeros_like(p.value)
    m.dtype = np.dtype(np.float64)
    X, T = np.asarray(X, np.float64), np.asarray(T, np.float64)

    def f() -> float:
        return head.value(m.forward(X, training=False), T, reduction)

    errors: dict[str, float] = {}
    with np.errstate(all="ignore"):
        _, dZ = head.value_and_grad(m.forward(X, training=False), T, reduction)
        m.backward(dZ)
        f0 = f()
        for name, p in m.named_params():
            analytic = p.grad.reshape(-1).copy()
            idx, num, slack = central_differences(f, p.value, eps, max_entries, rng, f0)
            a = analytic[idx]
            scale = max(1e-8, float(np.max(np.abs(a), initial=0.0) + np.max(np.abs(num),
                                                                            initial=0.0)))
            smooth = slack <= threshold * scale
            err = rel_error(a[smooth], num[smooth]) if smooth.any() else 0.0
            if not (math.isfinite(err) and np.all(np.isfinite(a)) and np.all(np.isfinite(num))):
                err = math.inf
            layer = name.rsplit(".", 1)[0]
            errors[layer] = max(errors.get(layer, 0.0), err)
    if any(not v <= threshold for v in errors.values()):
        raise GradientCheckError(errors, threshold)
    return errors


def gradcheck_trainer(trainer, settings: DiagnosticsSettings | None = None) -> dict[str, float]:
    """``gradcheck_model`` on the first ``gradcheck_batch`` training rows of a ``Trainer``
    with its reduction (call before ``trainer.run``)."""
    s = settings or DiagnosticsSettings()
    n = s.gradcheck_batch
    return gradcheck_model(trainer.model, trainer.head, trainer.X[:n], trainer.T[:n],
                           trainer.settings.reduction, s.gradcheck_threshold)
