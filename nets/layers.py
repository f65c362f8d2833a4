"""Layers: forward and backward side by side, backward consuming what forward cached.

Protocol (every registered layer):

- ``build(in_shape, rng, dtype) -> out_shape``: allocate parameters for per-sample input
  shape ``in_shape`` (no batch axis). ``rng`` is the generator this layer may keep
  (dropout) or use once (weight init).
- ``forward(X, training) -> Y``: ``X`` is ``(n_samples, *in_shape)``.
- ``backward(dY) -> dX``: fills ``p.grad`` of every ``Param`` in ``self.params``.

Image tensors flow between layers channels-last, ``(n, H, W, C)``: the channel axis is
contiguous, which makes the convolution a single GEMM over it. The ``image`` layer turns
flat ``(n, C*H*W)`` features (datasets store images as flattened CHW) into that layout.
"""

from __future__ import annotations

import numpy as np

from nets.activations import ACTIVATIONS, Activation
from nets.initializers import INITIALIZERS
from nets.registry import Component, check, registry

LAYERS = registry("layer")


class Param:
    """A trainable array and its gradient (same shape and dtype).

    Attributes
    ----------
    name : str
        ``W`` or ``b``; with the layer's name gives ``dense1.W``.
    value, grad : ndarray
        The parameter and the gradient of the loss with respect to it.
    decay : bool
        Whether the L2 penalty applies (weights yes, biases no).
    """

    __slots__ = ("name", "value", "grad", "decay")

    def __init__(self, name: str, value: np.ndarray, decay: bool):
        self.name, self.value, self.decay = name, value, decay
        self.grad = np.zeros_like(value)

    def __repr__(self) -> str:
        return f"Param({self.name}, shape={self.value.shape}, decay={self.decay})"


class Layer(Component):
    """Base layer. ``params`` is empty for parameter-free layers."""

    def __init__(self):
        pass

    params: list[Param] = []
    label: str = ""  # set by the model: ``dense1``, ``conv2``; keys of health metrics
    # False when nothing below needs dL/dX (the model's first layer with parameters):
    # backward then skips that product and returns None. For a 784-input dense layer it
    # is a quarter of an epoch's arithmetic.
    input_grad: bool = True

    def build(self, in_shape: tuple, rng: np.random.Generator, dtype) -> tuple:
        return tuple(in_shape)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dY: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@LAYERS.register("dense")
class Dense(Layer):
    """Affine map ``Z = X W + bias_input * b``.

    Parameters
    ----------
    units : int
        Output width ``n_out`` (> 0).
    init : spec
        Weight initializer (``INITIALIZERS``).
    bias_init : spec
        Bias initializer.
    bias_input : float
        The constant the bias weight multiplies: 1 is the usual bias; story 2 writes its
        bias as a constant -1 input (``bias_input=-1``), which flips the sign of ``db``.

    Shapes: ``X (n, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``, ``Z (n, n_out)``.
    Backward: ``dW = X^T dZ``, ``db = bias_input * sum_n dZ``, ``dX = dZ W^T``.
    """

    def __init__(self, units: int, init="xavier", bias_init="zeros", bias_input: float = 1.0):
        check(isinstance(units, (int, np.integer)) and units > 0, "units", units,
              "must be a positive integer")
        self.units = int(units)
        self.init = INITIALIZERS.build(init, key="init")
        self.bias_init = INITIALIZERS.build(bias_init, key="bias_init")
        self.bias_input = float(bias_input)

    def build(self, in_shape, rng, dtype):
        check(len(in_shape) == 1, "in_shape", in_shape,
              "dense takes flat inputs; put a flatten layer before it")
        n_in = in_shape[0]
        self.W = Param("W", self.init((n_in, self.units), n_in, self.units, rng, dtype), True)
        self.b = Param("b", self.bias_init((self.units,), n_in, self.units, rng, dtype), False)
        self.params = [self.W, self.b]
        return (self.units,)

    def forward(self, X, training=False):
        self.X = X
        Z = X @ self.W.value
        if self.bias_input == 1.0:
            Z += self.b.value
        else:
            Z += self.bias_input * self.b.value
        return Z

    def backward(self, dZ):
        np.matmul(self.X.T, dZ, out=self.W.grad)
        np.sum(dZ, axis=0, out=self.b.grad)
        if self.bias_input != 1.0:
            self.b.grad *= self.bias_input
        return dZ @ self.W.value.T if self.input_grad else None


@LAYERS.register("activation")
class ActivationLayer(Layer):
    """Applies an activation; caches its output ``A`` (read by health diagnostics).

    Parameters
    ----------
    fn : spec
        The activation (``ACTIVATIONS``).
    """

    def __init__(self, fn="relu"):
        self.fn: Activation = ACTIVATIONS.build(fn, key="fn")

    def forward(self, X, training=False):
        self.A = self.fn.forward(X)
        return self.A

    def backward(self, dA):
        return self.fn.backward(dA, self.A)


@LAYERS.register("dropout")
class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale
    the survivors by ``1/(1-rate)``, so evaluation needs no rescaling.

    Parameters
    ----------
    rate : float
        Drop probability in [0, 1).

    The mask comes from the generator handed to ``build`` (split from the run's seed),
    so the same config drops the same units.
    """

    def __init__(self, rate: float = 0.5):
        check(0 <= rate < 1, "rate", rate, "must be in [0, 1)")
        self.rate = float(rate)

    def build(self, in_shape, rng, dtype):
        self.rng = rng
        return tuple(in_shape)

    def forward(self, X, training=False):
        if not training or self.rate == 0:
            self.mask = None
            return X
        keep = 1.0 - self.rate
        # Uniforms are drawn in float64 whatever the data's dtype, so a float32 run drops
        # the same units as its float64 twin.
        self.mask = self.rng.random(X.shape) < keep
        self.mask = self.mask.astype(X.dtype) / X.dtype.type(keep)
        return X * self.mask

    def backward(self, dY):
        return dY if self.mask is None else dY * self.mask


@LAYERS.register("flatten")
class Flatten(Layer):
    """``(n, *shape) -> (n, prod(shape))``, a view when the input is contiguous."""

    def build(self, in_shape, rng, dtype):
        self.in_shape = tuple(in_shape)
        return (int(np.prod(in_shape)),)

    def forward(self, X, training=False):
        return X.reshape(len(X), -1)

    def backward(self, dY):
        return dY.reshape((len(dY),) + self.in_shape)


@LAYERS.register("image")
class Image(Layer):
    """Flat CHW features ``(n, C*H*W)`` -> channels-last images ``(n, H, W, C)``.

    Parameters
    ----------
    shape : list of int
        ``[C, H, W]``, as the dataset stores its images.
    """

    def __init__(self, shape=(1, 8, 8)):
        check(len(shape) == 3 and all(int(s) > 0 for s in shape), "shape", shape,
              "must be [channels, height, width] with positive sizes")
        self.shape = [int(s) for s in shape]

    def build(self, in_shape, rng, dtype):
        C, H, W = self.shape
        check(tuple(in_shape) == (C * H * W,), "shape", self.shape,
              f"must multiply out to the {in_shape[0] if in_shape else 0} input features")
        return (H, W, C)

    def forward(self, X, training=False):
        C, H, W = self.shape
        return X.reshape(len(X), C, H, W).transpose(0, 2, 3, 1)

    def backward(self, dY):
        return dY.transpose(0, 3, 1, 2).reshape(len(dY), -1)
