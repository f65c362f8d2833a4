"""Elementwise (and softmax) activations, forward and backward side by side.

Every derivative is written in terms of the activation's *output* ``A`` (as in
scikit-learn): the layer caches only ``A``, and backward never recomputes the forward.
Backward takes the upstream gradient ``dA`` and returns ``dZ``.

Shapes: ``Z``, ``A``, ``dA``, ``dZ`` all ``(n_samples, ...)``; softmax works on the last
axis.
"""

from __future__ import annotations

import numpy as np

from nets.registry import Component, check, registry

ACTIVATIONS = registry("activation")


class Activation(Component):
    """``A = f(Z)``; ``dZ = f'(Z) * dA`` expressed through ``A``.

    Attributes
    ----------
    bounds : tuple of float or None
        The output range ``(low, high)`` for saturating units, used by diagnostics to
        count units near their bounds; ``None`` when the activation does not saturate.
    rectifier : bool
        True for the ReLU family, whose units can be dead (zero gradient everywhere).
    """

    bounds: tuple[float, float] | None = None
    rectifier: bool = False

    def forward(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dA: np.ndarray, A: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@ACTIVATIONS.register("identity")
class Identity(Activation):
    """``A = Z``; ``dZ = dA``."""

    def forward(self, Z):
        return Z

    def backward(self, dA, A):
        return dA


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """``A = 1 / (1 + exp(-Z))``; ``dZ = dA * A * (1 - A)``."""

    bounds = (0.0, 1.0)

    def forward(self, Z):
        # Split by sign so exp never overflows (exp of a non-positive number only).
        out = np.empty_like(Z)
        pos = Z >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-Z[pos]))
        ez = np.exp(Z[~pos])
        out[~pos] = ez / (1.0 + ez)
        return out

    def backward(self, dA, A):
        return dA * A * (1.0 - A)


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """``A = tanh(Z)``; ``dZ = dA * (1 - A**2)``."""

    bounds = (-1.0, 1.0)

    def forward(self, Z):
        return np.tanh(Z)

    def backward(self, dA, A):
        return dA * (1.0 - A * A)


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """``A = max(Z, 0)``; ``dZ = dA * [A > 0]`` (the subgradient at 0 is taken as 0)."""

    rectifier = True

    def forward(self, Z):
        return np.maximum(Z, 0)

    def backward(self, dA, A):
        return dA * (A > 0)


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """``A = Z if Z > 0 else alpha * Z``; ``dZ = dA * (1 if A > 0 else alpha)``.

    Parameters
    ----------
    alpha : float
        Slope for negative inputs, in [0, 1) so the sign of ``A`` is the sign of ``Z``.
    """

    rectifier = True

    def __init__(self, alpha: float = 0.01):
        check(0 <= alpha < 1, "alpha", alpha, "must be in [0, 1)")
        self.alpha = float(alpha)

    def forward(self, Z):
        return np.where(Z > 0, Z, self.alpha * Z)

    def backward(self, dA, A):
        return dA * np.where(A > 0, 1.0, self.alpha).astype(dA.dtype, copy=False)


@ACTIVATIONS.register("elu")
class ELU(Activation):
    """``A = Z if Z > 0 else alpha * (exp(Z) - 1)``; ``dZ = dA * (1 if A > 0 else A + alpha)``.

    Parameters
    ----------
    alpha : float
        Saturation value for large negative inputs is ``-alpha``; must be > 0.
    """

    rectifier = True

    def __init__(self, alpha: float = 1.0):
        check(alpha > 0, "alpha", alpha, "must be > 0")
        self.alpha = float(alpha)

    def forward(self, Z):
        return np.where(Z > 0, Z, self.alpha * np.expm1(np.minimum(Z, 0)))

    def backward(self, dA, A):
        return dA * np.where(A > 0, 1.0, A + self.alpha)


@ACTIVATIONS.register("softplus")
class Softplus(Activation):
    """``A = log(1 + exp(Z))``; ``dZ = dA * sigmoid(Z) = dA * (1 - exp(-A))``."""

    def forward(self, Z):
        return np.logaddexp(0, Z)

    def backward(self, dA, A):
        return dA * -np.expm1(-A)


@ACTIVATIONS.register("softmax")
class Softmax(Activation):
    """``A_j = exp(Z_j) / sum_k exp(Z_k)`` over the last axis.

    ``dZ = A * (dA - sum_k dA_k A_k)``: the Jacobian-vector product, never the Jacobian.
    Used as an output; with ``cross_entropy`` the loss consumes the logits directly.
    """

    bounds = (0.0, 1.0)

    def forward(self, Z):
        E = np.exp(Z - Z.max(axis=-1, keepdims=True))
        E /= E.sum(axis=-1, keepdims=True)
        return E

    def backward(self, dA, A):
        return A * (dA - np.sum(dA * A, axis=-1, keepdims=True))
