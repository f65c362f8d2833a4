"""Story 1's network as its author wrote it, split into nets layers: with their bugs.

``SigmoidDense`` (the output layer) multiplies the bias gradient by the bias itself;
``HiddenSigmoidDense`` builds its delta without the sigmoid derivative. nets'
automatic gradient check stops a run that uses either. See ../README.md.
"""

import numpy as np

from nets.layers import Layer, Param


class SigmoidDense(Layer):
    """``A = sigmoid(X W + b)``; ``X (n, n_in)``, ``W (n_in, units)``, ``b (units,)``.

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
        self.b.grad[...] = delta.sum(axis=0) * self.b.value   # bug: times the bias
        return delta @ self.W.value.T


class HiddenSigmoidDense(SigmoidDense):
    """The hidden layer as written: its delta skips the sigmoid derivative."""

    def backward(self, dA):
        delta = dA                                            # bug: no A * (1 - A)
        self.W.grad[...] = self.X.T @ delta
        self.b.grad[...] = delta.sum(axis=0)
        return delta @ self.W.value.T
