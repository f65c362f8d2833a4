"""``unscaled_inputs``: features far from unit scale, named when they did harm."""

from __future__ import annotations

from nets.diagnostics.curves import fmt
from nets.diagnostics.rules.base import Advice, Verdict, rule


@rule("unscaled_inputs", only_as_cause=True,
      causes=("diverged", "lr_too_high", "exploding_gradients", "saturated_units",
              "dead_units", "class_collapse", "plateau"))
def unscaled_inputs(h, info, s):
    """The training features' largest RMS is >= ``unscaled_scale`` (4; raw 0..16 pixels
    reach ~10, 0..255 pixels ~100), or the largest RMS is >= ``unscaled_spread`` (20) x
    the median feature's (one column in other units). Reported only as the cause of a
    verdict it produces (step-size, unit or collapse trouble); otherwise the ``healthy``
    evidence mentions it."""
    sc, sp = info.input_scale, info.input_spread
    if sc is None or sp is None:
        return None
    big, uneven = sc >= s.unscaled_scale, sp >= s.unscaled_spread
    if not (big or uneven):
        return None
    parts = []
    if big:
        parts.append(f"the largest per-feature RMS is {fmt(sc)} (threshold "
                     f"{s.unscaled_scale:g}; standardised features have 1)")
    if uneven:
        parts.append(f"the largest feature's RMS is {fmt(sp)}x the median feature's (threshold "
                     f"{s.unscaled_spread:g}x): one rate cannot suit both")
    text = ("The inputs are not scaled: " + "; ".join(parts) + ". Large inputs make large "
            "pre-activations and large gradients in the first layer.")
    return Verdict("unscaled_inputs", text,
                   numbers={"input_scale": sc, "input_spread": sp},
                   actions=[Advice("Scale the inputs: dataset.scaling=standard (or minmax), or "
                                   "your own preprocessing (e.g. pixels / 255).",
                                   "dataset.scaling", "standard")])
