"""Gradient check before training: backprop against central differences.

``gradcheck_model`` compares a model's analytic gradients with
``nets.gradcheck.central_differences`` on a small batch; ``gradcheck_trainer`` runs it on
a ``Trainer``'s first rows with its reduction. A layer whose worst relative error exceeds
the threshold raises ``GradientCheckError`` naming it.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from nets.diagnostics.settings import DiagnosticsSettings
from nets.gradcheck import central_differences, rel_error


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
