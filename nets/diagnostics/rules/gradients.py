"""Rules that read ``health/grad_norm/<layer>`` across layers and over time:
``vanishing_gradients`` and ``exploding_gradients``. Both stay silent on a model that
learned well (final gain >= ``units_ok_gain``): odd gradient sizes that did not stop it
are not what went wrong."""

from __future__ import annotations

import numpy as np

from nets.diagnostics.curves import fmt, layer_matrix, learned_well, series
from nets.diagnostics.rules.advice import lower_lr, now
from nets.diagnostics.rules.base import Advice, Verdict, rule


def _grads(h):
    loss = series(h, "train/loss")
    n = len(loss) if loss is not None else max((len(v) for k, v in h.items()
                                                if k.startswith("health/grad_norm/")), default=0)
    return layer_matrix(h, "grad_norm", n)


@rule("vanishing_gradients", silenced_by=("dead_units", "diverged"), needs_health=True,
      causes=("class_collapse", "loss_accuracy_divergence", "plateau"))
def vanishing_gradients(h, info, s):
    """In a network with >= ``vanishing_depth`` (4) layers with weights, the first layer's
    gradient norm is < ``vanishing_ratio`` (0.01) x the last layer's (median over trained
    epochs): the signal that should train the early layers fades on its way back."""
    labels, G = _grads(h)
    if G is None or len(labels) < s.vanishing_depth or G.shape[1] < 2:
        return None
    if not np.all(np.isfinite(G)) or learned_well(h, info, s):
        return None
    last = G[-1, 1:]
    if not np.all(last > 0):
        return None
    ratio = float(np.median(G[0, 1:] / last))
    if not ratio < s.vanishing_ratio:
        return None
    med = np.median(G[:, 1:], axis=1)
    steps = ", ".join(f"{lab} {fmt(v)}" for lab, v in zip(labels, med))
    nums = {"grad_ratio_first_last": ratio, "threshold": s.vanishing_ratio,
            "layers": len(labels)}
    act = info.config.get("model.activation")
    text = (f"The gradient shrinks on its way back through the {len(labels)} layers with "
            f"weights{f' ({act} units)' if act else ''}: median norms per epoch "
            f"{steps}. The first layer gets {ratio:.2g} of the last layer's gradient "
            f"(threshold {s.vanishing_ratio:g}), so the layers next to the input barely learn.")
    actions = []
    if act in ("sigmoid", "tanh", None):
        actions.append(Advice("Use model.activation=relu with model.init=he" + now(
            info, "model.activation") + ": sigmoid passes back at most 0.25 of the gradient "
            "per layer, tanh at most 1 and usually much less.", "model.activation", "relu"))
    actions.append(Advice(f"Use fewer layers (model.hidden with fewer entries; now "
                          f"{len(labels)} layers with weights).", "model.hidden", "fewer"))
    return Verdict("vanishing_gradients", text, numbers=nums, actions=actions)


@rule("exploding_gradients", silenced_by=("diverged",), needs_health=True,
      causes=("lr_too_high", "dead_units", "saturated_units", "class_collapse",
              "loss_accuracy_divergence"))
def exploding_gradients(h, info, s):
    """The gradient norm grows where it should not. Any of: with >= ``vanishing_depth`` (4)
    layers with weights, the first layer's gradient is >= ``exploding_ratio`` (100) x the
    last layer's (median over trained epochs), or the epoch-0 gradient (at the initial
    weights) is >= ``exploding_spike`` (100) x the median over trained epochs (a too-large
    initialisation compounding through the layers); in any network, some epoch's total
    gradient norm is >= ``exploding_spike`` x the median of the trained epochs before it
    (a spike once training has started; gradients that merely shrink as the run converges
    never count)."""
    labels, G = _grads(h)
    if G is None or G.shape[1] < 4 or not np.all(np.isfinite(G)) or learned_well(h, info, s):
        return None
    tot = np.sqrt((G ** 2).sum(axis=0))
    med = float(np.median(tot[1:]))
    deep = len(labels) >= s.vanishing_depth
    last = G[-1, 1:]
    ratio = float(np.median(G[0, 1:] / last)) if np.all(last > 0) else 0.0
    init = float(tot[0] / med) if med > 0 else 0.0
    spikes = [(t, float(tot[t] / np.median(tot[1:t]))) for t in range(2, len(tot))
              if np.median(tot[1:t]) > 0]
    t_spike, spike = max(spikes, key=lambda x: x[1], default=(0, 0.0))
    nums = {"grad_ratio_first_last": ratio, "grad_init_over_median": init,
            "grad_spike": spike, "spike_epoch": t_spike, "grad_median": med}
    parts = []
    if deep and ratio >= s.exploding_ratio:
        parts.append(f"The gradient grows on its way back through the {len(labels)} layers: "
                     f"the first layer's is {ratio:.3g}x the last layer's (median over epochs; "
                     f"threshold {s.exploding_ratio:g}x).")
    if deep and init >= s.exploding_spike:
        parts.append(f"At the initial weights the total gradient norm was {fmt(tot[0])}, "
                     f"{init:.3g}x its median {fmt(med)} once training started (threshold "
                     f"{s.exploding_spike:g}x): the initialisation blows the signal up "
                     f"through the {len(labels)} layers.")
        loss = series(h, "train/loss")
        if loss is not None and info.prior_loss:
            nums["initial_loss"] = float(loss[0])
            parts[-1] += (f" The initial loss was {fmt(loss[0])}, against "
                          f"{fmt(info.prior_loss)} for predicting the label frequencies.")
    if spike >= s.exploding_spike:
        parts.append(f"At epoch {t_spike} the total gradient norm reached {fmt(tot[t_spike])}, "
                     f"{spike:.3g}x its median over the epochs before (threshold "
                     f"{s.exploding_spike:g}x).")
    if not parts:
        return None
    actions = [Advice("Use a scaled initialisation (model.init=he for relu, xavier for "
                      "tanh/sigmoid)" + now(info, "model.init") + ".", "model.init", "standard"),
               lower_lr(info, " so one large gradient cannot throw the weights far")]
    return Verdict("exploding_gradients", " ".join(parts), numbers=nums, actions=actions)
