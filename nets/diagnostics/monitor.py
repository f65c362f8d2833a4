"""``HealthMonitor``: the trainer hook that records ``health/...`` metrics every epoch.

Most keys come from one forward pass over a fixed *probe batch*: at most ``probe_size``
validation rows, picked once with a fixed generator (seed 0, not the run's: the run's
random streams are untouched, so a run with and without the monitor trains identically,
and every run on the same data sees the same probe). The key table is in the package
docstring (``nets.diagnostics``).

``baselines(data)`` and ``input_stats(X)`` are constant over a run; the monitor writes
them every epoch (so every key has a value at every epoch) and ``RunInfo.from_run``
computes them with the same functions when the monitor was off.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from nets.diagnostics.curves import collapsed
from nets.diagnostics.settings import DiagnosticsSettings
from nets.layers import ActivationLayer

SCHEDULE_EVENTS = ("increase", "decrease", "rollback", "cut")
PROBE_SEED = 0


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
        # Constant over the run: computed once, written every epoch.
        self.baselines = {**baselines(data), **input_stats(data.X_train)}

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
        # Recall per class present in the probe; the worst one shows a class never chosen.
        hits = np.bincount(self.yp[pred == self.yp], minlength=k)
        seen = np.bincount(self.yp, minlength=k)
        recall = np.where(seen > 0, hits / np.maximum(seen, 1), np.inf)
        worst = int(recall.argmin())
        out["health/pred/worst_class"] = float(worst)
        out["health/pred/worst_recall"] = float(recall[worst]) if seen[worst] else 1.0

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
        if collapsed(share, maj, s):
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
    """``health/baseline/...`` values of a ``Data`` (constant over a run).

    Classification: ``chance_accuracy`` = 1/K; ``majority_accuracy`` = share of the most
    frequent validation label (``train_majority_accuracy`` the same on the training
    labels); ``prior_loss`` = ``-sum_k q_k log q_k`` over the validation label shares
    ``q``: the cross-entropy of always predicting the class frequencies, the loss a model
    reaches by learning the label prior and nothing else (ln K when balanced).
    Regression: ``mae`` of predicting the training mean on the validation targets.
    """
    if data.task == "classification":
        k = data.n_classes
        counts = np.bincount(np.asarray(data.y_val, np.int64), minlength=k)
        tcounts = np.bincount(np.asarray(data.y_train, np.int64), minlength=k)
        q = counts[counts > 0] / max(1, counts.sum())
        return {"health/baseline/chance_accuracy": 1.0 / k,
                "health/baseline/majority_accuracy": float(counts.max() / max(1, counts.sum())),
                "health/baseline/train_majority_accuracy":
                    float(tcounts.max() / max(1, tcounts.sum())),
                "health/baseline/prior_loss": float(-(q * np.log(q)).sum())}
    Yt = np.asarray(data.y_train, np.float64).reshape(len(data.y_train), -1)
    Yv = np.asarray(data.y_val, np.float64).reshape(len(data.y_val), -1)
    return {"health/baseline/mae": float(np.mean(np.abs(Yv - Yt.mean(axis=0))))}


def input_stats(X: np.ndarray) -> dict[str, float]:
    """``health/input/...``: how far the training features are from unit scale.

    ``scale`` = the largest per-feature root mean square ``sqrt(mean(x_j^2))`` (about 1
    for standardised features, 0.3-0.6 for pixels in [0, 1], 100 for raw 0..255 pixels);
    ``spread`` = that largest RMS over the median one (1 when all features share a
    scale; a column multiplied by 300 makes it ~300). Constant features are ignored.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    """
    X = np.asarray(X, np.float64).reshape(len(X), -1)
    if X.size == 0:
        return {"health/input/scale": 0.0, "health/input/spread": 1.0}
    rms = np.sqrt(np.mean(X * X, axis=0))
    varying = rms[np.ptp(X, axis=0) > 0]
    if varying.size == 0:
        return {"health/input/scale": float(rms.max()), "health/input/spread": 1.0}
    med = float(np.median(varying))
    return {"health/input/scale": float(varying.max()),
            "health/input/spread": float(varying.max() / med) if med > 0 else 1.0}


def _times(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "far above"
    return f"{a / b:.3g}x"


