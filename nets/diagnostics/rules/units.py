"""Rules about hidden units that stopped passing signal: ``saturated_units`` (sigmoid/tanh
outputs at a bound, derivative near 0) and ``dead_units`` (ReLU-family units at 0 on every
probe row). Neither fires when the model still learned well (``curves.learned_well``):
then the ``healthy`` evidence mentions the units instead."""

from __future__ import annotations

import numpy as np

from nets.diagnostics.curves import bad_units, fmt, gain, layer_keys, series, since
from nets.diagnostics.rules.advice import lower_lr, mean_reduction, now
from nets.diagnostics.rules.base import Advice, Verdict, rule


def _first_bad_epoch(h, group: str, layers, thr: float) -> int:
    """Epoch since which every listed layer has stayed at or above ``thr``."""
    return max(since(series(h, f"health/{group}/{lay}"), lambda v: v >= thr) for lay in layers)


def _first_layer_gradient(h) -> tuple[str, dict]:
    keys = layer_keys(h, "grad_norm")
    if not keys:
        return "", {}
    g = series(h, keys[0])
    name = keys[0].rsplit("/", 1)[1]
    if g is None or len(g) < 2:
        return "", {}
    nums = {"first_layer_grad_first": float(g[0]), "first_layer_grad_last": float(g[-1])}
    if np.all(g == 0):
        return (f" {name} received no gradient at all (0 at every epoch): nothing below the "
                "stuck units can learn.", nums)
    return f" The gradient of {name} went from {fmt(g[0])} at epoch 0 to {fmt(g[-1])}.", nums


def _bias_value(info) -> float | None:
    """The constant of ``model.bias_init=constant(v)``, else ``None``."""
    b = str(info.config.get("model.bias_init", ""))
    if b.startswith("constant(") and b.endswith(")"):
        try:
            return float(b[len("constant("):-1])
        except ValueError:
            return None
    return None


def excused(h, info, s, bad: dict[str, float]) -> bool:
    """Units that did not stop the model: it removed >= ``units_ok_gain`` of the baseline's
    error at the last epoch, or >= ``units_extreme_gain`` when a layer is past
    ``units_extreme`` (nearly every unit stuck needs a clearly good model to be excused:
    99.6% saturated with 81% of the error removed is a problem, not a remark)."""
    g = gain(h, info, last=True)
    if g is None:
        return False
    need = s.units_extreme_gain if max(bad.values()) >= s.units_extreme else s.units_ok_gain
    return g[2] >= need


def _units(h, info, s, group: str):
    thr = s.saturated_fraction if group == "saturated" else s.dead_fraction
    bad = bad_units(h, s, group)
    if not bad or excused(h, info, s, bad):
        return None
    layers = ", ".join(f"{name} {v:.0%}" for name, v in bad.items())
    start = _first_bad_epoch(h, group, bad, thr)
    nums = {f"{group}/{k}": v for k, v in bad.items()}
    nums.update(threshold=thr, since_epoch=start)
    grad, gnums = _first_layer_gradient(h)
    nums.update(gnums)
    when = (" They were already there at epoch 0, before any update: the starting point "
            "put them there, not the steps." if start == 0 else
            f" They got there during training (since epoch {start}): the steps pushed them.")
    return bad, layers, start, nums, when + grad


@rule("saturated_units", needs_health=True,
      causes=("class_collapse", "loss_accuracy_divergence", "vanishing_gradients"))
def saturated_units(h, info, s):
    """At the end a sigmoid/tanh hidden layer has >= ``saturated_fraction`` (50%) of its
    probe outputs within ``saturation_eps`` x (high - low) of a bound, unless the model
    removed >= ``units_ok_gain`` (80%) of the baseline's error at the last epoch
    (>= ``units_extreme_gain``, 90%, when a layer is past ``units_extreme``, 95%)."""
    got = _units(h, info, s, "saturated")
    if got is None:
        return None
    bad, layers, start, nums, more = got
    text = (f"At the last epoch these sigmoid/tanh layers have at least "
            f"{s.saturated_fraction:.0%} of their outputs on the probe batch within "
            f"{s.saturation_eps:g} x (high - low) of a bound (|tanh| > "
            f"{1 - 2 * s.saturation_eps:g}, sigmoid outside [{s.saturation_eps:g}, "
            f"{1 - s.saturation_eps:g}]): {layers}. There the derivative is close to 0, so "
            f"the units stop learning.{more}")
    actions = []
    if info.input_scale is not None and info.input_scale >= s.unscaled_scale:
        actions.append(Advice(f"Scale the inputs (dataset.scaling=standard): features reach "
                              f"an RMS of {fmt(info.input_scale)}, so the first layer's "
                              "pre-activations are large.", "dataset.scaling", "standard"))
    if start == 0:
        actions.append(Advice("Start with smaller weights: model.init=xavier" + now(
            info, "model.init") + ".", "model.init", "standard"))
    else:
        actions += [lower_lr(info, ": large steps push pre-activations out to the flat "
                                   "ends"), *mean_reduction(info)]
    actions.append(Advice("Or use relu hidden units (model.activation=relu), which do not "
                          "saturate for positive inputs.", "model.activation", "relu"))
    return Verdict("saturated_units", text, numbers=nums, actions=actions)


@rule("dead_units", needs_health=True,
      causes=("class_collapse", "loss_accuracy_divergence", "plateau"))
def dead_units(h, info, s):
    """At the end a ReLU-family layer has >= ``dead_fraction`` (50%) of its units at 0 on
    every probe row (same exception as ``saturated_units``)."""
    got = _units(h, info, s, "dead")
    if got is None:
        return None
    bad, layers, start, nums, more = got
    text = (f"At the last epoch these ReLU-family layers have at least {s.dead_fraction:.0%} "
            f"of their units inactive on every probe input: {layers}. A dead unit has zero "
            f"gradient and never recovers.{more}")
    actions = []
    b = _bias_value(info)
    if b is not None and b < 0:
        nums["bias_init"] = b
        text += (f" This run starts every bias at {b:g} (model.bias_init="
                 f"{info.config['model.bias_init']}), which puts the units below 0 for most "
                 "inputs from the start.")
        actions.append(Advice(f"Start the biases at 0 or slightly above: model.bias_init="
                              f"zeros or {{name: constant, value: 0.01}} (now {b:g}).",
                              "model.bias_init", "raise"))
    elif start == 0:
        actions.append(Advice("Start from a scaled initialisation: model.init=he" + now(
            info, "model.init") + ".", "model.init", "standard"))
    if start > 0:
        actions += [lower_lr(info, ": one large step can push a unit below 0 for every "
                                   "input"), *mean_reduction(info)]
    actions.append(Advice("Or use model.activation=leaky_relu, whose units keep a small "
                          "gradient below 0.", "model.activation", "leaky_relu"))
    return Verdict("dead_units", text, numbers=nums, actions=actions)
