"""Story 1's network as its author wrote it, split into nets layers: fixed version.

A dense layer with the sigmoid built in, ``A = sigmoid(X W + b)``, written by hand the
way the story's author wrote their forward and backward passes. See ../README.md.
"""

import numpy as np

from nets.layers import Layer, Param


class SigmoidDense(Layer):
    """``A = sigmoid(X W + b)``; ``X (n, n_in)``, ``W (n_in, units)``, ``b (units,)``.

    Backward: ``delta = dA * A * (1 - A)``; ``dW = X^T delta``; ``db = sum_n delta``;
    ``dX = delta W^T``.

    Parameters
    ----------
    units : int
        Output width.
    scale : float
        Standard deviation of the initial weights and biases.
    """

    def __init__(self, units: int = 10, scale: float = 0.1):
        self.units, self.scale = int(units), float(scale)

    def build(self, in_shape, rng, dtype):
        n_in = in_shape[0]
        self.W = Param("W", (self.scale * rng.standard_normal((n_in, self.units))).astype(dtype), True)
        self.b = Param("b", (self.scale * rng.standard_normal(self.units)).astype(dtype), False)
        self.params = [self.W, self.b]
        return (self.units,)

    def forward(self, X, training=False):
        self.X = X
        self.A = 1.0 / (1.0 + np.exp(-(X @ self.W.value + self.b.value)))
        return self.A

    def backward(self, dA):
        delta = dA * self.A * (1.0 - self.A)
        self.W.grad[...] = self.X.T @ delta
        self.b.grad[...] = delta.sum(axis=0)
        return delta @ self.W.value.T


class HiddenSigmoidDense(SigmoidDense):
    """The hidden layer: the same layer (the story's author wrote it separately)."""
