"""Rules about the size of the steps: ``diverged``, ``lr_too_high``, ``lr_too_low``,
``plateau``. "The loss" is the training loss (the quantity the steps minimise; it is
evaluated on the whole training set each epoch, so it is smooth when training is)."""

from __future__ import annotations

import math

import numpy as np

from nets.diagnostics.curves import (accuracy_gain, collapsed, curves, falling_share, fmt, jumps,
                                     layer_matrix, learned_well, loss_scale, series)
from nets.diagnostics.rules.advice import lower_lr, mean_reduction, now, raise_lr
from nets.diagnostics.rules.base import Advice, Verdict, rule


@rule("diverged")
def diverged(h, info, s):
    """The run's outcome is ``diverged``, the training loss is not finite, or it rose above
    ``explode_factor`` (10) x its epoch-0 value."""
    loss = series(h, "train/loss")
    nonfinite = loss is not None and not np.all(np.isfinite(loss))
    exploded = False
    if loss is not None and len(loss) > 1 and math.isfinite(loss[0]) and loss[0] > 0:
        with np.errstate(invalid="ignore"):
            exploded = bool(np.nanmax(np.where(np.isfinite(loss[1:]), loss[1:], np.nan),
                                      initial=-np.inf) > s.explode_factor * loss[0])
    if not (info.outcome == "diverged" or nonfinite or exploded):
        return None
    nums: dict = {"explode_factor": s.explode_factor}
    parts = []
    if info.outcome == "diverged":
        parts.append(f"Training stopped as diverged: {info.reason or 'non-finite values'}.")
    if loss is not None:
        finite = loss[np.isfinite(loss)]
        nums.update(initial_loss=float(loss[0]),
                    max_loss=float(finite.max()) if finite.size else math.nan)
        if exploded:
            parts.append(f"The training loss rose from {fmt(loss[0])} to {fmt(finite.max())}, "
                         f"more than {s.explode_factor:g}x its starting value.")
        if nonfinite:
            bad = int(np.flatnonzero(~np.isfinite(loss))[0])
            parts.append(f"The training loss became non-finite (inf or NaN) at epoch {bad}.")
    return Verdict("diverged", " ".join(parts), numbers=nums, actions=[
        lower_lr(info), *mean_reduction(info),
        Advice("Or let a schedule reject bad steps: schedule=bold_driver with rollback=true "
               "undoes an epoch that raised the loss and halves the rate.",
               "schedule.name", "bold_driver")])


@rule("lr_too_high", silenced_by=("diverged",),
      causes=("dead_units", "saturated_units", "class_collapse", "loss_accuracy_divergence"))
def lr_too_high(h, info, s):
    """Unstable without diverging: the training loss jumped (rose by >= ``unstable_rise``
    (50%) of its previous value and by >= ``unstable_floor`` (5%) of the label prior's
    loss with cross-entropy, else of its epoch-0 value) and
    the run ended well below its best: validation accuracy >= ``unstable_acc_drop`` (10
    points) under its best, or the training loss >= ``unstable_end`` (25%) above its
    minimum (and by >= ``overfit_floor``, 1%, of that same scale); or it jumped >= 3 times and the model did not learn well (final gain
    < ``units_ok_gain``)."""
    loss = series(h, "train/loss")
    if loss is None or len(loss) < 3 or not np.all(np.isfinite(loss)):
        return None
    scale = loss_scale(loss, info)
    up = jumps(loss, s, scale)
    if not up:
        return None
    prefix, vloss, acc = curves(h)
    lo = int(np.argmin(loss[1:])) + 1
    end_gap = float(loss[-1] / loss[lo] - 1) if loss[lo] > 0 else 0.0
    end_gap_ok = end_gap >= s.unstable_end and loss[-1] - loss[lo] >= s.overfit_floor * scale
    acc_drop, best = 0.0, None
    if acc is not None and len(acc) > 1 and np.all(np.isfinite(acc)):
        best = int(np.argmax(acc))
        acc_drop = float(acc[best] - acc[-1])
    harm = acc_drop >= s.unstable_acc_drop or end_gap_ok
    if not (harm or (len(up) >= 3 and not learned_well(h, info, s))):
        return None  # jumps the run recovered from are not worth a verdict
    listed = ", ".join(f"epoch {e}: {fmt(loss[e - 1])} -> {fmt(loss[e])}" for e in up[:4])
    nums = {"jumps": len(up), "first_jump_epoch": up[0], "loss_min": float(loss[lo]),
            "loss_min_epoch": lo, "loss_last": float(loss[-1]), "end_gap": end_gap}
    text = (f"The training loss jumped up {len(up)} time{'s' * (len(up) > 1)} ({listed}) "
            f"without passing the {s.explode_factor:g}x divergence bar: the steps overshoot. "
            f"Its lowest value was {fmt(loss[lo])} at epoch {lo}; it ended at "
            f"{fmt(loss[-1])} ({end_gap:+.0%}).")
    if best is not None:
        nums.update(accuracy_best=float(acc[best]), accuracy_best_epoch=best,
                    accuracy_last=float(acc[-1]))
        text += (f" Best epoch: {best} with {prefix} accuracy {acc[best]:.1%}; last epoch "
                 f"{len(acc) - 1}: {acc[-1]:.1%}.")
    actions = [lower_lr(info)]
    mom = info.config.get("optimizer.momentum")
    try:
        mom = float(mom)
    except (TypeError, ValueError):
        mom = None
    if mom is not None and mom >= 0.95 and info.config.get("optimizer.name") in (
            "momentum", "nesterov"):
        actions.append(Advice(f"Lower the momentum to 0.9 (now {mom:g}: each step carries "
                              f"about {1 / (1 - mom):.0f} past gradients).",
                              "optimizer.momentum", "lower"))
    actions += mean_reduction(info)
    if best is not None and acc_drop > 0:
        actions.append(Advice(f"Keep the best epoch's weights: train.early_stopping=3 would "
                              f"have stopped near epoch {best}.", "train.early_stopping", "set"))
    return Verdict("lr_too_high", text, numbers=nums, actions=actions)


@rule("lr_too_low", silenced_by=("diverged",),
      causes=("loss_accuracy_divergence", "class_collapse"), needs_health=True)
def lr_too_low(h, info, s):
    """All of (>= 4 trained epochs): the median over epochs >= 1 of the largest layer
    update ratio is < ``lr_too_low_ratio`` (1e-3); the training loss fell, but by
    < ``lr_too_low_drop`` (50%) of its epoch-0 value; it fell in >= ``lr_too_low_steady``
    (80%) of the second half's epochs; the gradient norm of the last 3 epochs (median) is
    >= ``lr_too_low_grad`` (0.5) x that of epochs 1-3 (slope left: not converged)."""
    loss = series(h, "train/loss")
    if loss is None or len(loss) < 5 or not np.all(np.isfinite(loss)):
        return None
    _, R = layer_matrix(h, "update_ratio", len(loss))
    if R is None:
        return None
    ratio = float(np.median(R[:, 1:].max(axis=0)))
    drop = float((loss[0] - loss[-1]) / loss[0]) if loss[0] > 0 else 0.0
    steady = falling_share(loss[len(loss) // 2:])
    kept = 1.0
    _, G = layer_matrix(h, "grad_norm", len(loss))
    if G is not None:
        tot = np.sqrt((G ** 2).sum(axis=0))
        # medians of 3 epochs: the last mini-batch's gradient is a noisy sample
        first, last = float(np.median(tot[1:4])), float(np.median(tot[-3:]))
        kept = last / first if first > 0 else 1.0
    if not (ratio < s.lr_too_low_ratio and 0 < drop < s.lr_too_low_drop
            and steady >= s.lr_too_low_steady and kept >= s.lr_too_low_grad):
        return None
    lr = series(h, "lr")
    nums = {"median_update_ratio": ratio, "loss_drop": drop, "falling_share": steady,
            "grad_kept": kept, "threshold": s.lr_too_low_ratio}
    if lr is not None:
        nums["lr"] = float(lr[-1])
    stopped = info.outcome == "converged"
    text = (f"The weights barely move: in a typical epoch the layer that moved most changed "
            f"by {ratio:.2g} of its norm (threshold {s.lr_too_low_ratio:g}). The training "
            f"loss is still falling (in {steady:.0%} of the epochs of the second half) but "
            f"slowly: {drop:.1%} below its start after {len(loss) - 1} epochs "
            f"({fmt(loss[0])} -> {fmt(loss[-1])}), and the gradient is still {kept:.0%} of "
            "its size in the first epochs, so the slope is there; the steps are just too "
            "small." + (f" Learning rate: {lr[-1]:g}." if lr is not None else "")
            + (f" The run then stopped at the gradient tolerance ({info.reason}) while the "
               "loss was still falling: the tolerance ended it, not a minimum." if stopped
               else ""))
    actions = []
    if stopped:
        actions.append(Advice("Lower train.tol (10x per step) so the run goes on.",
                              "train.tol", "lower"))
    actions.append(raise_lr(info, ", or let it adapt: schedule=bold_driver raises the rate "
                                  "while the loss falls (story 1's fix)"))
    if "train.batch_size" in info.config and info.config["train.batch_size"] is None:
        actions.append(Advice("This run is full-batch, one step per epoch: mini-batches "
                              "(train.batch_size=32) take many.", "train.batch_size", "set"))
    return Verdict("lr_too_low", text, numbers=nums, actions=actions)


def _flat_stretch(loss: np.ndarray, s) -> tuple[int, int] | None:
    """``(a, b)``: the longest stretch of epochs starting at epoch 0, 1 or 2 over which the
    loss stays within ``plateau_flat`` of its value at ``a`` and does not fall steadily."""
    best = None
    for a in (0, 1, 2):
        if a >= len(loss) - 1 or loss[a] <= 0:
            continue
        b = a
        lo = hi = loss[a]
        while b + 1 < len(loss):
            lo2, hi2 = min(lo, loss[b + 1]), max(hi, loss[b + 1])
            if hi2 - lo2 > s.plateau_flat * loss[a]:
                break
            lo, hi, b = lo2, hi2, b + 1
        if best is None or b - a > best[1] - best[0]:
            best = (a, b)
    if best is None or best[1] - best[0] < s.plateau_epochs:
        return None
    if falling_share(loss[best[0]:best[1] + 1]) >= s.lr_too_low_steady:
        return None  # a slow steady descent is lr_too_low's, not a plateau
    return best


@rule("plateau", silenced_by=("diverged", "vanishing_gradients", "dead_units",
                              "saturated_units", "lr_too_low"),
      causes=("class_collapse", "loss_accuracy_divergence"))
def plateau(h, info, s):
    """The training loss stays within ``plateau_flat`` (2%) of its value at epoch 0, 1 or 2
    for >= ``plateau_epochs`` (5) epochs without falling steadily, learning nothing
    meanwhile (median accuracy gain < ``nothing_margin``), and then either drops by
    >= ``plateau_drop`` (10%) below that level, or is still flat at the end while the
    first layer's median update ratio over the stretch is < ``lr_too_low_ratio`` or the
    predictions were collapsed to one class (median share over it) (a saddle; without health curves
    this second case is left to ``nothing_learned``)."""
    loss = series(h, "train/loss")
    if loss is None or len(loss) < s.plateau_epochs + 2 or not np.all(np.isfinite(loss)):
        return None
    st = _flat_stretch(loss, s)
    if st is None:
        return None
    a, b = st
    level = float(loss[a])
    _, _, acc = curves(h)
    if info.task == "classification" and acc is not None and len(acc) == len(loss):
        # the median: on a flat loss near 0.5 probabilities, single epochs flip by chance
        g = accuracy_gain([float(np.median(acc[max(a, 1):b + 1]))], info)
        if g is not None and g >= s.nothing_margin:
            return None  # the accuracy moved during the flat stretch: not stuck
    nums = {"plateau_start": a, "plateau_end": b, "plateau_level": level,
            "plateau_epochs": b - a}
    text = (f"The training loss stayed flat at {fmt(level)} (within {s.plateau_flat:.0%}) from "
            f"epoch {a} to epoch {b} ({b - a} epochs)")
    if b < len(loss) - 1:
        after = float(loss[b + 1:].min())
        if after > (1 - s.plateau_drop) * level:
            return None
        nums["loss_after"] = after
        text += (f", then dropped to {fmt(after)}: the run sat on a plateau (a saddle point or "
                 "a poor starting point) before it found a way down.")
    else:
        labels, R = layer_matrix(h, "update_ratio", len(loss))
        share = series(h, "health/pred/top_class_share")
        if R is None:
            return None
        first = float(np.median(R[0, max(a, 1):b + 1]))
        one = (share is not None and len(share) == len(loss)
               and collapsed(float(np.median(share[max(a, 1):b + 1])), info.majority_accuracy,
                             s))
        if not (first < s.lr_too_low_ratio or one):
            return None
        nums["first_layer_update_ratio"] = first
        text += (f" and is still flat at the end, at the loss of an input-independent output. "
                 f"The first layer ({labels[0]}) moved by a median {first:.2g} of its norm per "
                 "epoch" + (f" (threshold {s.lr_too_low_ratio:g}): the weights next to the "
                            "input are stuck" if first < s.lr_too_low_ratio else "")
                 + (", and in most epochs the network gave one class for (nearly) every probe "
                    "input" if one else "")
                 + ": a saddle point, where every direction is nearly flat, not data without "
                 "signal (random labels are memorised, and the training loss falls).")
    actions = [Advice("Start from a better point: a standard initialisation (model.init=xavier "
                      "for tanh/sigmoid, he for relu)" + now(info, "model.init") + ", or another "
                      "seed.", "model.init", "standard")]
    if info.config.get("optimizer.name") == "sgd":
        actions.append(Advice("Momentum or Adam crosses flat regions faster "
                              "(optimizer=momentum or optimizer=adam).", "optimizer.name",
                              "adaptive"))
    if b == len(loss) - 1:
        actions.append(Advice("Train longer: a plateau can end by itself.", "train.epochs",
                              "raise"))
    return Verdict("plateau", text, numbers=nums, actions=actions)
