"""Rules about how much was learned: ``nothing_learned`` (no better than a baseline),
``underfitting`` (cannot fit even the training set) and ``overfitting`` (fits the
training set at the expense of new data)."""

from __future__ import annotations

import numpy as np

from nets.diagnostics.curves import (accuracy_gain, falling_share, fmt, gain,
                                     moving_average, never_predicted, series)
from nets.diagnostics.rules.base import Advice, Verdict, rule


def _prior_text(h, info, s) -> tuple[str, dict, bool]:
    """The label prior's loss against the best validation loss (cross-entropy only):
    ``(text, numbers, never_below)``."""
    if info.prior_loss is None or info.config.get("loss") != "cross_entropy":
        return "", {}, False
    loss = series(h, "val/loss" if "val/loss" in h else "train/loss")
    if loss is None or len(loss) < 2 or not np.isfinite(loss[1:]).any():
        return "", {}, False
    best = float(np.nanmin(loss[1:]))
    never = best >= info.prior_loss * (1 - s.nothing_prior_margin)
    text = (f" Predicting the label frequencies alone (the label prior) gives a cross-entropy "
            f"of {fmt(info.prior_loss)}"
            + (f" (ln {round(np.exp(info.prior_loss))} for balanced classes)"
               if info.chance_accuracy and abs(info.prior_loss + np.log(info.chance_accuracy))
               < 1e-3 else "")
            + f"; the best validation loss was {fmt(best)}"
            + (": never below it, so nothing beyond the label frequencies was learned."
               if never else "."))
    return text, {"prior_loss": info.prior_loss, "best_loss": best}, never


@rule("nothing_learned",
      silenced_by=("diverged", "lr_too_high", "class_collapse", "lr_too_low", "plateau",
                   "vanishing_gradients", "exploding_gradients", "underfitting", "dead_units",
                   "saturated_units"))
def nothing_learned(h, info, s):
    """The best share of the baseline's error the model removed (epochs >= 1) is
    < ``nothing_margin`` (5%), or < ``nothing_margin_train`` (25%) when the validation set
    is the training set (a model can beat the baseline there by memorising); or, with
    cross-entropy, the validation loss never went below the label prior's loss (within
    ``nothing_prior_margin``, 1%) while the gain stayed < ``nothing_margin_train``. Error:
    ``1 - accuracy`` against the majority-class predictor; MAE against predicting the
    training mean."""
    margin = s.nothing_margin_train if info.val_is_train else s.nothing_margin
    where = "training set (used for validation)" if info.val_is_train else "validation set"
    g = gain(h, info)
    if g is None:
        return None
    prior, pnums, never = _prior_text(h, info, s)
    best, base, gn = g
    if not (gn < margin or (never and gn < s.nothing_margin_train)):
        return None
    if info.task == "classification":
        nums = {"best_accuracy": best, "baseline_accuracy": base, "gain": gn, "margin": margin}
        text = (f"The best accuracy on the {where} was {best:.1%}; always predicting the most "
                f"frequent class gets {base:.1%} (chance: {info.chance_accuracy or 0:.1%}). The "
                f"model removed {max(gn, 0):.1%} of that baseline's errors "
                f"(needed: {margin:.0%}).")
    else:
        nums = {"best_mae": best, "baseline_mae": base, "gain": gn, "margin": margin}
        text = (f"The best MAE on the {where} was {fmt(best)}; predicting the training mean "
                f"for every input gives {fmt(base)}. The model is only {max(gn, 0):.1%} "
                f"better (needed: {margin:.0%}).")
    text += prior + never_predicted(h, info)
    nums.update(pnums)
    if info.val_is_train:
        text += (" Validation is the training set here, so even that gain may be memorisation "
                 "rather than learning.")
    return Verdict("nothing_learned", text, numbers=nums, actions=[
        Advice("Check that inputs and targets belong together (label column, shuffling, "
               "scaling). If the targets are unrelated to the inputs, as with random labels, "
               "there is nothing to learn and no setting fixes that."),
        Advice("Judge learning on held-out data (dataset.val_fraction=0.2).",
               "dataset.val_fraction", "set")] if info.val_is_train else [
        Advice("Check that inputs and targets belong together (label column, shuffling, "
               "scaling). If the targets are unrelated to the inputs, as with random labels, "
               "there is nothing to learn and no setting fixes that.")])


@rule("underfitting",
      silenced_by=("diverged", "lr_too_high", "lr_too_low", "plateau", "vanishing_gradients",
                   "exploding_gradients", "dead_units", "saturated_units", "class_collapse"))
def underfitting(h, info, s):
    """Classification, >= 6 epochs. Over the last third of the run the training accuracy
    (median) removed < ``underfit_gain`` (30%) of the training majority-class error while
    the training loss stopped moving (range < ``underfit_flat``, 2%, of its median there,
    and not falling in >= ``lr_too_low_steady`` of those epochs)
    and the validation gain (same measure) is within ``underfit_gap`` (0.1) of it (no
    memorising either); and the model is linear (no hidden layer), or has a hidden layer of
    at most ``underfit_width`` (4) units and learned something on held-out data (gain
    >= ``nothing_margin``). A wider model stuck low is left alone (overlapping classes
    look the same from the curves) or to ``nothing_learned`` (random labels do too)."""
    if info.task != "classification":
        return None
    acc = series(h, "train/accuracy")
    loss = series(h, "train/loss")
    if acc is None and info.val_is_train:
        acc = series(h, "val/accuracy")
    if acc is None or loss is None or len(acc) < 7 or len(loss) != len(acc) \
            or not np.all(np.isfinite(loss)):
        return None
    k = max(2, len(acc) // 3)
    tail_acc, tail_loss = acc[-k:], loss[-k:]
    med = float(np.median(tail_acc))
    g_train = accuracy_gain([med], info, train=True)
    flat = float(tail_loss.max() - tail_loss.min())
    level = float(np.median(tail_loss))
    if g_train is None or g_train >= s.underfit_gain or not flat < s.underfit_flat * level \
            or falling_share(tail_loss) >= s.lr_too_low_steady:
        return None  # still learning the training set, or still falling: not converged
    val = series(h, "val/accuracy")
    gap = 0.0
    if val is not None and len(val) == len(acc) and not info.val_is_train:
        g_val = accuracy_gain([float(np.median(val[-k:]))], info)
        # in gains, not points: split label shares differ, and below 0 is noise
        gap = max(g_train, 0.0) - max(g_val if g_val is not None else 0.0, 0.0)
    if gap >= s.underfit_gap:
        return None
    linear = info.n_hidden == 0
    hidden = info.config.get("model.hidden") or []
    narrow = bool(hidden) and min(hidden) <= s.underfit_width
    g_val = gain(h, info)
    if not (linear or (narrow and g_val is not None and g_val[2] >= s.nothing_margin)):
        return None  # a wide model stuck low: noisy classes or no signal, not capacity
    base = info.train_majority_accuracy or info.majority_accuracy
    nums = {"train_accuracy": med, "train_gain": g_train, "loss_range": flat, "gap": gap,
            "epochs_judged": k}
    text = (f"Over the last {k} epochs the training accuracy stayed at {med:.1%} (median; the "
            f"most frequent training label alone gets {base:.1%}: {max(g_train, 0):.0%} of its "
            f"errors removed, needed {s.underfit_gain:.0%}) while the training loss stopped "
            f"moving ({fmt(tail_loss[0])} -> {fmt(tail_loss[-1])}, range {fmt(flat)}): the "
            "model cannot fit even the training set.")
    if linear:
        text += (" It is a linear model (no hidden layer): it separates classes with flat "
                 "boundaries only, and XOR-like data has none that works.")
        actions = [Advice("Add a hidden layer: model.hidden=[32] (now []).", "model.hidden",
                          "more")]
    else:
        text += f" Its narrowest hidden layer has {min(hidden)} units."
        actions = [Advice(f"Give the model more capacity: wider hidden layers (now "
                          f"model.hidden={hidden}).", "model.hidden", "more")]
    actions.append(Advice("If a bigger model fits the training set but still not the "
                          "validation set, the labels carry little signal."))
    return Verdict("underfitting", text, numbers=nums, actions=actions)


@rule("overfitting", silenced_by=("diverged", "lr_too_high", "nothing_learned"))
def overfitting(h, info, s):
    """The ``overfit_window``-epoch (3) moving average of the validation loss ends
    >= ``overfit_rise`` (10%) above its minimum while the training loss kept falling after
    that minimum; the rise must also be >= ``overfit_floor`` (1%) of the epoch-0
    validation loss (a loss near 0 wiggles by large ratios). Needs a held-out validation set. Not reported with
    ``nothing_learned``: memorising labels that carry no signal has no best epoch to keep."""
    if info.val_is_train:
        return None
    val, tr = series(h, "val/loss"), series(h, "train/loss")
    w = s.overfit_window
    if val is None or tr is None or len(val) != len(tr) or len(val) < 2 * w + 1:
        return None
    if not (np.all(np.isfinite(val)) and np.all(np.isfinite(tr))):
        return None
    floor = s.overfit_floor * abs(val[0])
    mv, mt = moving_average(val, w), moving_average(tr, w)
    b = int(np.argmin(mv))
    rise = float(mv[-1] / mv[b] - 1) if mv[b] > 0 else 0.0
    smooth = (b < len(mv) - 1 and rise >= s.overfit_rise and mt[-1] < mt[b]
              and mv[-1] - mv[b] >= floor)
    if not smooth:
        return None  # (a single last-epoch bump is noise: spirals at 97% do that)
    best_epoch = b + w - 1  # last epoch of the best window
    lo, hi, tlo, thi = mv[b], mv[-1], mt[b], mt[-1]
    nums = {"best_epoch": best_epoch, "val_loss_best": float(lo), "val_loss_last": float(hi),
            "rise": rise, "train_loss_at_best": float(tlo), "train_loss_last": float(thi),
            "window": w}
    text = (f"The validation loss ({w}-epoch average) reached its minimum {fmt(lo)} at epoch "
            f"{best_epoch} and "
            f"ended {rise:.0%} higher at {fmt(hi)}, while the training loss kept falling "
            f"({fmt(tlo)} -> {fmt(thi)}): the model fits the training set at the expense of "
            "new data.")
    acc, tacc = series(h, "val/accuracy"), series(h, "train/accuracy")
    if acc is not None and len(acc) == len(val):
        peak = int(np.argmax(acc))
        nums.update(val_accuracy_best=float(acc.max()), val_accuracy_last=float(acc[-1]),
                    val_accuracy_best_epoch=peak)
        text += (f" Validation accuracy: best {acc.max():.1%} at epoch {peak}, last "
                 f"{acc[-1]:.1%}.")
        if tacc is not None and len(tacc) == len(acc) and tacc[-1] < 0.95 \
                and peak <= 2 * (len(acc) - 1) // 3:
            nums["train_accuracy_last"] = float(tacc[-1])
            text += (f" The training accuracy levels off at {tacc[-1]:.1%}, well below 100%, "
                     "while validation peaked early: wrong labels in the data are one "
                     "explanation to check (a model memorises them late, and they cap what "
                     "it can fit).")
    return Verdict("overfitting", text, numbers=nums, actions=[
        Advice(f"Stop earlier: train.early_stopping=5, or about {best_epoch} epochs.",
               "train.early_stopping", "set"),
        Advice("Add an L2 penalty (optimizer.weight_decay=1e-4) or dropout "
               "(model.dropout=0.25).", "optimizer.weight_decay", "raise"),
        Advice("Use more training data or a smaller model.")])
