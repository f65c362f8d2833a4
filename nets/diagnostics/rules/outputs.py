"""Rules about what the network outputs: ``class_collapse`` (one class for every input)
and ``loss_accuracy_divergence`` (the loss moves, the decisions do not)."""

from __future__ import annotations

import numpy as np

from nets.diagnostics.curves import (collapsed, curves, falling_share, fmt, gain,
                                     layer_matrix, series, since)
from nets.diagnostics.rules.advice import lower_lr, mean_reduction, raise_lr
from nets.diagnostics.rules.base import Advice, Verdict, rule


@rule("class_collapse", needs_health=True, causes=("loss_accuracy_divergence",))
def class_collapse(h, info, s):
    """At the end one class takes >= ``collapse_share`` (80%) of the probe predictions,
    and at least ``collapse_excess`` (75%) of the way from the most frequent label's share
    to 100% (2 balanced classes: >= 88%), on data whose most frequent label is at most
    ``collapse_max_majority`` (50%)."""
    share = series(h, "health/pred/top_class_share")
    maj = info.majority_accuracy
    if share is None or info.task != "classification" or maj is None:
        return None
    if not collapsed(share[-1], maj, s):
        return None
    top = series(h, "health/pred/top_class")
    cls = int(top[-1]) if top is not None else None
    start = since(share, lambda v: collapsed(v, maj, s))
    _, _, acc = curves(h)
    chance = info.chance_accuracy or 0.0
    nums = {"top_class": cls, "top_class_share": float(share[-1]), "majority_accuracy": maj,
            "chance_accuracy": chance, "since_epoch": start, "collapse_share": s.collapse_share}
    who = f"class {cls}" if cls is not None else "one class"
    text = (f"At the last epoch the network predicts {who} for {share[-1]:.0%} of the probe "
            f"inputs, although the most frequent label makes up only {maj:.1%} of the "
            f"validation set (1/K = {chance:.1%})")
    if acc is not None:
        nums["accuracy"] = float(acc[-1])
        if abs(acc[-1] - chance) <= 0.05 or acc[-1] <= maj + 0.02:
            text += (f"; accuracy {acc[-1]:.1%} is what a constant answer earns ("
                     + (f"{maj:.1%}" if abs(maj - chance) < 0.0005 else
                        f"between {chance:.1%} and {maj:.1%}") + " here)")
        else:
            text += f"; accuracy {acc[-1]:.1%}"
    text += "."
    if start == 0:
        text += (" It has done so since epoch 0: training never moved it away from the "
                 "input-independent output of the initial weights.")
    else:
        text += f" It has done so since epoch {start} (at epoch 0: {share[0]:.0%})."
    labels, R = layer_matrix(h, "update_ratio", len(share))
    moved = None
    if R is not None and R.shape[1] > 1:
        moved = float(np.median(R[:, 1:].max(axis=0)))
        nums["median_update_ratio"] = moved
    actions = []
    if start > 0:
        actions += [lower_lr(info, ": a collapse after the first epochs usually means steps "
                                   "that were too large"), *mean_reduction(info)]
        if info.config.get("loss") == "mse":
            actions.append(Advice("Use softmax + cross_entropy instead of sigmoid/tanh "
                                  "outputs with mse.", "loss", "cross_entropy"))
    elif moved is not None and moved < s.lr_too_low_ratio:
        text += (f" The weights barely moved: a median {moved:.2g} of their norm per epoch "
                 "for the layer that moved most.")
        actions.append(raise_lr(info, " or use schedule=bold_driver"))
    elif moved is not None:
        text += (f" The weights did move (a median {moved:.2g} of their norm per epoch for "
                 "the layer that moved most), without changing the answer.")
    if not actions:
        actions.append(Advice("Check what keeps the output constant: the other verdicts "
                              "name it when they can; otherwise look at the inputs' scale and "
                              "the initialisation."))
    return Verdict("class_collapse", text, numbers=nums, actions=actions)


@rule("loss_accuracy_divergence")
def loss_accuracy_divergence(h, info, s):
    """The loss fell by >= ``divergence_loss_drop`` (5%) of its epoch-0 value while the
    accuracy moved by < ``divergence_acc_points`` (5 points) between epoch 0 and the end
    (classification), with room to move: the accuracy is more than
    ``divergence_acc_points`` below 100% and the model did not learn well (final gain
    < ``units_ok_gain``); with cross-entropy the loss must also have gone below the label
    prior's loss (falling only toward it is learning the class frequencies:
    ``nothing_learned``). When the loss still falls in >= ``lr_too_low_steady`` (80%) of
    the second half's epochs with the margin <= 0, the run is slow rather than stuck: the
    advice is a larger rate and ``nothing_learned`` is not reported."""
    if info.task != "classification":
        return None
    prefix, loss, acc = curves(h)
    if loss is None or acc is None or len(loss) < 2 or len(acc) != len(loss) \
            or not np.all(np.isfinite(loss)) or not np.all(np.isfinite(acc)):
        return None
    drop = float((loss[0] - loss[-1]) / loss[0]) if loss[0] > 0 else 0.0
    moved = float(acc[-1] - acc[0])
    if not (drop >= s.divergence_loss_drop and abs(moved) < s.divergence_acc_points):
        return None
    if 1.0 - max(acc[0], acc[-1]) < s.divergence_acc_points:
        return None  # at its ceiling: accuracy cannot move, the loss can
    g = gain(h, info, last=True)
    if g is not None and g[2] >= s.units_ok_gain:
        return None
    prior = info.prior_loss if info.config.get("loss") == "cross_entropy" else None
    below_prior = prior is None or float(np.min(loss[1:])) < prior * (1 - s.nothing_prior_margin)
    if not below_prior:
        return None  # falling only toward the label prior's loss: nothing_learned's case
    best = int(np.argmax(acc))
    nums = {"loss_first": float(loss[0]), "loss_last": float(loss[-1]), "loss_drop": drop,
            "accuracy_first": float(acc[0]), "accuracy_last": float(acc[-1]),
            "accuracy_best": float(acc[best])}
    text = (f"The {prefix} loss fell {drop:.0%} ({fmt(loss[0])} -> {fmt(loss[-1])}) over "
            f"{len(loss) - 1} epochs while the {prefix} accuracy moved {moved * 100:+.2f} points "
            f"({acc[0]:.1%} -> {acc[-1]:.1%}")
    # "rises a little and then drops back" (story 3) is the same symptom: say so
    text += (f"; best {acc[best]:.1%} at epoch {best})." if acc[best] - acc[-1] >= 0.01
             else ").")
    # The second half is where "still falling" is judged (as in lr_too_low): a loss that
    # keeps falling there while the decisions stay put is confidence, not learning.
    half = len(loss) // 2
    falling = falling_share(loss[half:])
    nums["falling_share"] = falling
    ts, mg, ch = (series(h, f"health/pred/{k}") for k in ("true_class_score", "margin",
                                                          "changed"))
    if ts is not None and mg is not None and ch is not None and len(ch) == len(loss):
        changed = float(np.mean(ch[max(1, half):])) if len(ch) > 1 else 0.0
        nums.update(true_class_score_first=float(ts[0]), true_class_score_last=float(ts[-1]),
                    margin_first=float(mg[0]), margin_last=float(mg[-1]), late_changed=changed)
        text += (f" Over the same epochs the mean output for the true class went {fmt(ts[0])} "
                 f"-> {fmt(ts[-1])} and the mean margin (true class minus the best other "
                 f"class) {fmt(mg[0])} -> {fmt(mg[-1])}. In the second half (epochs {half}-"
                 f"{len(loss) - 1}) the loss went {fmt(loss[half])} -> {fmt(loss[-1])} while "
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
    verdict = Verdict("loss_accuracy_divergence", text, numbers=nums)
    if falling >= s.lr_too_low_steady and (mg is None or mg[-1] <= 0):
        nums["still_falling"] = 1.0
        verdict.silences.append("nothing_learned")
        verdict.actions.append(raise_lr(
            info, f". The loss still fell in {falling:.0%} of the second half's epochs: this "
                  "run is slow, not finished; or train longer (a sweep over optimizer.lr shows "
                  "the rate at which confidence turns into decisions)"))
    verdict.actions.append(Advice(
        "Watch health/pred/margin and health/pred/changed: accuracy moves only once the "
        "margin turns positive."
        + ("" if info.config.get("loss") == "cross_entropy" else
           " softmax + cross_entropy ties the loss more closely to the arg-max than squared "
           "error on sigmoid/tanh outputs.")))
    return verdict
