"""Reading a recorded history: the series, the baselines' gains, and a few shared
judgements (what counts as a collapse, a jump, a flat stretch) used by several rules
and by the monitor's warnings.

A history maps a metric key to one value per epoch (epoch 0 = before training); read
back from MLflow, series may differ in length (non-finite points are dropped), so each
helper checks the lengths it needs.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from nets.diagnostics.settings import DiagnosticsSettings


def series(history: Mapping[str, list], key: str) -> np.ndarray | None:
    """``history[key]`` as float64, ``None`` when absent or empty."""
    v = history.get(key)
    if v is None or len(v) == 0:
        return None
    return np.asarray(v, dtype=np.float64)


def curves(history) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """``(prefix, loss, accuracy)`` of the validation curves, else the training ones."""
    for prefix in ("val", "train"):
        loss = series(history, f"{prefix}/loss")
        if loss is not None:
            return prefix, loss, series(history, f"{prefix}/accuracy")
    return "", None, None


def layer_keys(history, group: str) -> list[str]:
    """``health/<group>/<layer>`` keys in recording order (= layer order)."""
    return [k for k in history if k.startswith(f"health/{group}/")]


def layer_matrix(history, group: str, n: int) -> tuple[list[str], np.ndarray | None]:
    """Layer labels and a ``(n_layers, n)`` array of ``health/<group>/<layer>`` series of
    length ``n`` (layers whose series has another length are left out)."""
    keys = [k for k in layer_keys(history, group) if len(history[k]) == n]
    if not keys:
        return [], None
    return [k.rsplit("/", 1)[1] for k in keys], np.array([history[k] for k in keys], np.float64)


def has_health(history) -> bool:
    """Whether the monitor ran (any per-epoch ``health/`` curve besides the constants)."""
    return any(k.startswith("health/") and not k.startswith(("health/baseline/",
                                                             "health/input/"))
               for k in history)


def since(values: np.ndarray, cond) -> int:
    """First epoch of the run of epochs at the end where ``cond(value)`` holds."""
    i = len(values)
    while i > 0 and cond(values[i - 1]):
        i -= 1
    return i


def moving_average(x: np.ndarray, w: int) -> np.ndarray:
    w = max(1, min(w, len(x)))
    c = np.cumsum(np.insert(x, 0, 0.0))
    return (c[w:] - c[:-w]) / w


def fmt(x: float) -> str:
    return f"{x:.3g}"


def collapsed(share: float, majority: float | None, s: DiagnosticsSettings) -> bool:
    """One class takes ``share`` of the predictions, judged against the label shares: at
    least ``collapse_share``, and at least ``collapse_excess`` of the way from the most
    frequent label's share to 1 (10 balanced classes: 80% is a collapse, it is 78% of the
    way from 10% to 100%; 2 balanced classes need 88%), on data whose most frequent label
    is at most ``collapse_max_majority`` (predicting a 90% class is not a collapse)."""
    if majority is None or not math.isfinite(share):
        return False
    return (share >= s.collapse_share and majority <= s.collapse_max_majority
            and (share - majority) >= s.collapse_excess * (1.0 - majority))


def gain(h, info, last: bool = False, prefix: str | None = None
         ) -> tuple[float, float, float] | None:
    """``(value, baseline, gain)``: ``gain`` is the share of the baseline's error the model
    removed, from the best trained epoch (``last``: the last epoch). Classification: error
    ``1 - accuracy`` against always predicting the most frequent class (or chance, if
    higher); regression: MAE against predicting the training mean. ``prefix`` picks the
    curve (default: validation, else training). ``None`` without the curve or baseline."""
    prefix = prefix or ("val" if "val/loss" in h else "train")
    cls = info.task == "classification"
    curve = series(h, f"{prefix}/{'accuracy' if cls else 'mae'}")
    if cls:
        maj = info.train_majority_accuracy if prefix == "train" and \
            info.train_majority_accuracy is not None else info.majority_accuracy
        base = None if maj is None else max(maj, info.chance_accuracy or 0.0)
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


def accuracy_gain(values: np.ndarray, info, train: bool = False) -> float | None:
    """Share of the majority-class predictor's error removed by the best of ``values``
    (accuracies; ``train``: judged against the training labels' majority)."""
    maj = info.train_majority_accuracy if train and info.train_majority_accuracy is not None \
        else info.majority_accuracy
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if maj is None or values.size == 0:
        return None
    base = max(maj, info.chance_accuracy or 0.0)
    return 1.0 - (1.0 - float(values.max())) / max(1e-12, 1.0 - base)


def learned_well(h, info, s: DiagnosticsSettings) -> float | None:
    """The final gain when it is at least ``units_ok_gain``: the model removed most of the
    baseline's error, so odd internals (saturated or dead units, small gradients in the
    first layers) did not stop it (story 4's summed gradients at lr 0.01 reach 92-94% with
    half the tanh outputs at +-1). ``None`` otherwise."""
    g = gain(h, info, last=True)
    return g[2] if g is not None and g[2] >= s.units_ok_gain else None


def bad_units(h, s: DiagnosticsSettings, group: str) -> dict[str, float]:
    """Layer label -> share of ``group`` ("saturated" or "dead") units at the last epoch,
    for the layers at or above that group's threshold."""
    thr = s.saturated_fraction if group == "saturated" else s.dead_fraction
    return {k.rsplit("/", 1)[1]: float(h[k][-1]) for k in layer_keys(h, group)
            if len(h[k]) and h[k][-1] >= thr}


def loss_scale(loss: np.ndarray, info) -> float:
    """What a "large" change of the loss is measured against: the label prior's loss for
    cross-entropy (ln K when balanced: the loss of knowing only the class frequencies),
    else the epoch-0 loss. Not the epoch-0 loss for cross-entropy, because unscaled
    inputs or a large init can make that 100x the prior and hide every later jump."""
    if info.prior_loss and info.config.get("loss") == "cross_entropy":
        return float(info.prior_loss)
    return float(abs(loss[0]))


def jumps(loss: np.ndarray, s: DiagnosticsSettings, scale: float) -> list[int]:
    """Epochs where the loss rose by at least ``unstable_rise`` of its previous value and
    by at least ``unstable_floor`` x ``scale`` (see ``loss_scale``; the floor keeps the
    wiggles of a loss already near 0 from counting: 0.004 -> 0.006 is +50% but harmless)."""
    if loss is None or len(loss) < 2 or not np.all(np.isfinite(loss)):
        return []
    rise = np.diff(loss)
    prev = loss[:-1]
    hit = (rise >= s.unstable_rise * np.abs(prev)) & (rise >= s.unstable_floor * scale)
    return [int(i) + 1 for i in np.flatnonzero(hit)]


def falling_share(x: np.ndarray) -> float:
    """Share of the steps of ``x`` that went down."""
    d = np.diff(x)
    return float(np.mean(d < 0)) if d.size else 0.0


def never_predicted(h, info) -> str:
    """A sentence naming the class the model never chose at the end (recall 0 on the
    probe), or ``""``; with skewed labels, the reminder that a model can score well while
    ignoring a rare class."""
    worst, wc = series(h, "health/pred/worst_recall"), series(h, "health/pred/worst_class")
    if worst is None or wc is None or worst[-1] != 0:
        return ""
    text = f" Class {int(wc[-1])} is never predicted on the probe batch (recall 0%)."
    maj, chance = info.majority_accuracy, info.chance_accuracy
    if maj is not None and chance and maj >= 1.5 * chance:
        text += (f" The labels are imbalanced (the most frequent class is {maj:.0%}): a model "
                 "can score well while ignoring a rare class; weigh or resample it if it "
                 "matters.")
    return text
