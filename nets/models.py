"""Models: a sequence of layers plus an output activation, built from a plain spec.

``forward`` returns the *logits* ``Z`` (the input of the output activation);
``predict`` applies the output activation. Keeping them apart lets a fused loss
(``cross_entropy`` on softmax, ``bce`` on sigmoid) read the logits, while every other
loss sees ``A = output(Z)``; ``Head`` below makes that choice once.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from nets.activations import ACTIVATIONS, Activation
from nets.layers import LAYERS, Layer, Param
from nets.losses import Loss
from nets.registry import Component, ConfigError, check, registry

MODELS = registry("model")


class Sequential(Component):
    """Layers applied in order, then the output activation.

    Parameters
    ----------
    layers : list of spec
        Layer specs (``LAYERS``), e.g. ``[{"name": "dense", "units": 30}, ...]``.
    output : spec
        Output activation.

    Runtime arguments (``build(..., in_shape=, n_out=, rng=, dtype=)``): the per-sample
    input shape, the output width, the generator for init and dropout, the dtype.
    """

    runtime_args = ("in_shape", "n_out", "rng", "dtype", "image_shape")

    def __init__(self, layers=(), output="identity", in_shape=None, n_out=None, rng=None,
                 dtype=np.float64, image_shape=None):
        self.layers = list(layers)
        self.output = ACTIVATIONS.build(output, key="model.output")
        self._assemble(self.layers, in_shape, rng, dtype)

    def _assemble(self, specs, in_shape, rng, dtype) -> None:
        """Build the layer objects; ``in_shape=None`` leaves them unbuilt (spec only)."""
        self.net: list[Layer] = []
        counts: dict[str, int] = {}
        for i, spec in enumerate(specs):
            layer = LAYERS.build(spec, key=f"model.layers[{i}]")
            counts[layer.name] = counts.get(layer.name, 0) + 1
            layer.label = f"{layer.name}{counts[layer.name]}"
            self.net.append(layer)
        self.dtype = np.dtype(dtype)
        if in_shape is None:
            return
        first = next((i for i, layer in enumerate(self.net) if layer.params or
                      layer.name in ("dense", "conv2d")), None)
        self._stop = 0 if first is None else first
        if first is not None:
            self.net[first].input_grad = False
        rng = rng if rng is not None else np.random.default_rng(0)
        # One child generator per layer: adding a dropout layer does not shift the
        # initial weights of the layers after it.
        children = rng.spawn(len(self.net)) if self.net else []
        shape = tuple(in_shape)
        for layer, child in zip(self.net, children):
            shape = layer.build(shape, child, self.dtype)
        self.out_shape = shape

    @property
    def params(self) -> list[Param]:
        return [p for layer in self.net for p in layer.params]

    def named_params(self) -> list[tuple[str, Param]]:
        """``[("dense1.W", param), ...]`` in layer order."""
        return [(f"{layer.label}.{p.name}", p) for layer in self.net for p in layer.params]

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits ``Z``, shape ``(n_samples, n_out)``."""
        for layer in self.net:
            X = layer.forward(X, training)
        return X

    def backward(self, dZ: np.ndarray) -> None:
        """Back-propagate ``dL/dZ`` down to the first layer with parameters, filling
        every ``param.grad`` (the gradient with respect to the input is never needed)."""
        for layer in reversed(self.net[self._stop:]):
            dZ = layer.backward(dZ)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Output activations ``A = output(forward(X))`` in evaluation mode."""
        return self.output.forward(self.forward(X, training=False))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: p.value.copy() for k, p in self.named_params()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        for k, p in self.named_params():
            p.value[...] = weights[k]

    def n_params(self) -> int:
        return int(sum(p.value.size for p in self.params))


def _hidden_sizes(hidden) -> list[int]:
    hidden = [] if hidden is None else list(hidden)
    for h in hidden:
        check(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0,
              "model.hidden", hidden, "must be a list of positive integers, e.g. [128, 64]")
    return [int(h) for h in hidden]


def _dense_stack(hidden, activation, init, bias_init, bias_input, dropout, n_out):
    """Specs of ``[dense, act, (dropout)] * len(hidden) + [dense(n_out)]``."""
    specs: list[dict] = []
    for h in hidden:
        specs.append({"name": "dense", "units": h, "init": init, "bias_init": bias_init,
                      "bias_input": bias_input})
        specs.append({"name": "activation", "fn": activation})
        if dropout:
            specs.append({"name": "dropout", "rate": dropout})
    specs.append({"name": "dense", "units": n_out, "init": init, "bias_init": bias_init,
                  "bias_input": bias_input})
    return specs


@MODELS.register("mlp")
class MLP(Sequential):
    """Fully connected network: ``hidden`` dense layers with one hidden activation.

    Parameters
    ----------
    hidden : list of int
        Hidden layer widths (may be empty: a linear/logistic model).
    activation : spec
        Hidden activation.
    output : spec
        Output activation.
    init, bias_init : spec
        Initializers for every dense layer.
    bias_input : float
        Constant input the biases multiply (story 2: -1).
    dropout : float
        Dropout rate after each hidden activation (0 = none).
    """

    def __init__(self, hidden=(64,), activation="relu", output="softmax", init="xavier",
                 bias_init="zeros", bias_input: float = 1.0, dropout: float = 0.0,
                 in_shape=None, n_out=None, rng=None, dtype=np.float64, image_shape=None):
        self.hidden = _hidden_sizes(hidden)
        self.activation = ACTIVATIONS.build(activation, key="model.activation")
        self.output = ACTIVATIONS.build(output, key="model.output")
        check(0 <= dropout < 1, "model.dropout", dropout, "must be in [0, 1)")
        self.init, self.bias_init = init, bias_init
        self.bias_input, self.dropout = float(bias_input), float(dropout)
        specs = _dense_stack(self.hidden, self.activation.hparams(), init, bias_init,
                             self.bias_input, self.dropout, n_out or 1)
        if in_shape is not None and len(in_shape) != 1:
            in_shape = (int(np.prod(in_shape)),)
        self._assemble(specs, in_shape, rng, dtype)


@MODELS.register("cnn")
class CNN(Sequential):
    """Convolutional network: conv blocks, then a dense head.

    Parameters
    ----------
    conv : list of mapping
        One block each: ``{"channels": 8, "kernel": 3, "stride": 1, "padding": 1,
        "pool": 2}``; a block is conv -> activation -> (max-pool of size/stride
        ``pool`` when ``pool > 1``).
    hidden : list of int
        Dense layers between the flattened features and the output layer.
    activation, output, init, bias_init : spec
        As for ``mlp``.
    dropout : float
        Dropout rate before each dense layer of the head (story 3: 0.25).

    Needs an image dataset: ``image_shape`` ``(C, H, W)`` is passed at build time.
    """

    def __init__(self, conv=({"channels": 8, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},),
                 hidden=(), activation="relu", output="softmax", init="he",
                 bias_init="zeros", dropout: float = 0.0, in_shape=None, n_out=None,
                 rng=None, dtype=np.float64, image_shape=None):
        self.conv = [dict(b) for b in conv]
        check(len(self.conv) > 0, "model.conv", conv, "needs at least one conv block")
        self.hidden = _hidden_sizes(hidden)
        self.activation = ACTIVATIONS.build(activation, key="model.activation")
        self.output = ACTIVATIONS.build(output, key="model.output")
        check(0 <= dropout < 1, "model.dropout", dropout, "must be in [0, 1)")
        self.init, self.bias_init, self.dropout = init, bias_init, float(dropout)
        act = self.activation.hparams()
        block_keys = ("channels", "kernel", "stride", "padding", "pool")
        specs: list[dict] = []
        if in_shape is not None:
            check(image_shape is not None, "model", "cnn",
                  "needs an image dataset (digits, mnist, shapes)",
                  "this dataset has flat features with no image shape")
            specs.append({"name": "image", "shape": list(image_shape)})
        for i, b in enumerate(self.conv):
            for k in b:
                if k not in block_keys:
                    raise ConfigError(f"model.conv[{i}].{k}", b[k],
                                      f"unknown block key; valid: {', '.join(block_keys)}")
            specs.append({"name": "conv2d", "channels": b.get("channels", 8),
                          "kernel": b.get("kernel", 3), "stride": b.get("stride", 1),
                          "padding": b.get("padding", 0), "init": init, "bias_init": bias_init})
            specs.append({"name": "activation", "fn": act})
            if b.get("pool", 1) and b.get("pool", 1) > 1:
                specs.append({"name": "max_pool2d", "size": b["pool"], "stride": b["pool"]})
        specs.append({"name": "flatten"})
        if self.dropout:
            specs.append({"name": "dropout", "rate": self.dropout})
        specs += _dense_stack(self.hidden, act, init, bias_init, 1.0, self.dropout, n_out or 1)
        self._assemble(specs, in_shape, rng, dtype)


@MODELS.register("sequential")
class SequentialModel(Sequential):
    """Any explicit list of layer specs (see ``Sequential``)."""


class Head:
    """The output activation and the loss, joined the numerically safe way.

    If the loss is fused with the output activation (softmax + cross_entropy,
    sigmoid + bce) it reads the logits; otherwise it reads ``A = output(Z)`` and the
    gradient goes back through the activation.
    """

    def __init__(self, output: Activation, loss: Loss):
        self.output, self.loss = output, loss
        self.fused = loss.fused is not None and loss.fused == output.name

    def value_and_grad(self, Z, T, reduction="mean") -> tuple[float, np.ndarray]:
        """Loss at logits ``Z`` and ``dL/dZ``, both for ``reduction``."""
        if self.fused:
            return self.loss.value(Z, T, reduction), self.loss.grad(Z, T, reduction)
        A = self.output.forward(Z)
        dA = self.loss.grad(A, T, reduction)
        return self.loss.value(A, T, reduction), self.output.backward(dA, A)

    def value(self, Z, T, reduction="mean") -> float:
        Y = Z if self.fused else self.output.forward(Z)
        return self.loss.value(Y, T, reduction)

    def per_sample(self, Z, T) -> np.ndarray:
        Y = Z if self.fused else self.output.forward(Z)
        return self.loss.per_sample(Y, T)


def build_model(spec: Mapping[str, Any], in_shape, n_out: int, rng, dtype=np.float64,
                image_shape=None) -> Sequential:
    """Build a model from its spec with the runtime shapes (see ``MODELS``)."""
    return MODELS.build(spec, key="model", in_shape=in_shape, n_out=n_out, rng=rng,
                        dtype=dtype, image_shape=image_shape)
