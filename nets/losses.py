"""Losses with an explicit batch reduction, value and gradient side by side.

Convention (one for all losses): a per-sample loss ``l_i`` is computed from row ``i``,
then reduced over the batch of ``n`` samples:

- ``reduction="mean"``: ``L = (1/n) sum_i l_i`` (the default; step size independent of n)
- ``reduction="sum"``:  ``L = sum_i l_i`` (story 4's summed updates: an n-times larger step)

``grad`` returns ``dL/dY`` for that same ``L``. Losses marked ``fused`` consume the
*logits* of their output activation (``cross_entropy`` with softmax, ``bce`` with
sigmoid) so they stay finite for any logits and the gradient is simply ``P - T``.

Shapes: ``Y`` and ``T`` are ``(n_samples, n_out)``.
"""

from __future__ import annotations

import numpy as np

from nets.registry import Component, check, registry

LOSSES = registry("loss")
REDUCTIONS = ("mean", "sum")


def _scale(n: int, reduction: str) -> float:
    check(reduction in REDUCTIONS, "train.reduction", reduction,
          f"choose one of: {', '.join(REDUCTIONS)}")
    return 1.0 / n if reduction == "mean" else 1.0


class Loss(Component):
    """Base class: ``value(Y, T)`` and ``grad(Y, T)`` for the same reduction.

    Attributes
    ----------
    fused : str or None
        Name of the output activation this loss folds in (it then takes logits).
    outputs : tuple of str or None
        Output activations the loss makes sense with (``None``: any).
    targets : tuple of str
        Target encodings the loss makes sense with.
    """

    fused: str | None = None
    outputs: tuple[str, ...] | None = None
    targets: tuple[str, ...] = ("one_hot", "plus_minus_one", "raw")

    def per_sample(self, Y: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``l_i`` for each row, shape ``(n_samples,)``."""
        raise NotImplementedError

    def value(self, Y: np.ndarray, T: np.ndarray, reduction: str = "mean") -> float:
        return float(self.per_sample(Y, T).sum() * _scale(len(Y), reduction))

    def grad(self, Y: np.ndarray, T: np.ndarray, reduction: str = "mean") -> np.ndarray:
        """``dL/dY``, shape ``(n_samples, n_out)``."""
        raise NotImplementedError


@LOSSES.register("mse")
class MSE(Loss):
    """Mean squared error per element: ``l_i = (1/k) sum_j (Y_ij - T_ij)**2``.

    With the default mean reduction ``L`` equals ``np.mean((Y - T)**2)``.
    """

    def per_sample(self, Y, T):
        D = Y - T
        return np.einsum("ij,ij->i", D, D) / Y.shape[1]

    def grad(self, Y, T, reduction="mean"):
        return (Y - T) * (2.0 * _scale(len(Y), reduction) / Y.shape[1])


@LOSSES.register("sse")
class SSE(Loss):
    """Sum of squared errors per sample: ``l_i = sum_j (Y_ij - T_ij)**2`` (no 1/2).

    With ``reduction="sum"`` ``L`` is the total SSE that story 2 reports.
    """

    def per_sample(self, Y, T):
        D = Y - T
        return np.einsum("ij,ij->i", D, D)

    def grad(self, Y, T, reduction="mean"):
        return (Y - T) * (2.0 * _scale(len(Y), reduction))


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax cross-entropy on logits: ``l_i = -sum_j T_ij log softmax(Z_i)_j``.

    Computed as ``logsumexp(Z_i) - sum_j T_ij Z_ij`` (for rows of ``T`` summing to 1),
    which is finite for any logits. ``dL/dZ = (softmax(Z) - T) * scale``.
    """

    fused = "softmax"
    outputs = ("softmax",)
    targets = ("one_hot",)

    @staticmethod
    def _log_softmax(Z):
        Zs = Z - Z.max(axis=1, keepdims=True)
        return Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))

    def per_sample(self, Z, T):
        return -np.einsum("ij,ij->i", T, self._log_softmax(Z))

    def grad(self, Z, T, reduction="mean"):
        P = np.exp(self._log_softmax(Z))
        P -= T
        P *= _scale(len(Z), reduction)
        return P


@LOSSES.register("bce")
class BCE(Loss):
    """Binary cross-entropy on sigmoid logits, averaged over outputs.

    ``l_i = (1/k) sum_j [softplus(Z_ij) - T_ij Z_ij]``, which equals
    ``-(1/k) sum_j [T log p + (1 - T) log(1 - p)]`` with ``p = sigmoid(Z)`` but never
    takes the log of 0. ``dL/dZ = (sigmoid(Z) - T) * scale / k``.
    """

    fused = "sigmoid"
    outputs = ("sigmoid",)
    targets = ("one_hot", "raw")

    def per_sample(self, Z, T):
        return (np.logaddexp(0, Z) - T * Z).sum(axis=1) / Z.shape[1]

    def grad(self, Z, T, reduction="mean"):
        P = np.exp(-np.logaddexp(0, -Z))  # sigmoid(Z) without overflow
        P -= T
        P *= _scale(len(Z), reduction) / Z.shape[1]
        return P
