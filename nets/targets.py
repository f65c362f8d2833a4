"""Target encodings: how labels become the arrays a loss compares outputs with.

Classification labels ``y`` are integers ``(n_samples,)``; regression targets are
already ``(n_samples, n_out)`` floats and pass through ``raw``.
"""

from __future__ import annotations

import numpy as np

from nets.registry import Component, registry

TARGETS = registry("target")


class Target(Component):
    """``encode(y, n_classes, dtype) -> T`` of shape ``(n_samples, n_out)``.

    Attributes
    ----------
    values : tuple of float or None
        The (off, on) values the encoding uses, or ``None`` for raw targets; used to
        check that the output activation can reach them.
    """

    values: tuple[float, float] | None = None

    def encode(self, y: np.ndarray, n_classes: int | None, dtype=np.float64) -> np.ndarray:
        raise NotImplementedError


@TARGETS.register("one_hot")
class OneHot(Target):
    """``T[i, y_i] = 1``, every other entry 0."""

    values = (0.0, 1.0)

    def encode(self, y, n_classes, dtype=np.float64):
        T = np.zeros((len(y), n_classes), dtype=dtype)
        T[np.arange(len(y)), y] = 1
        return T


@TARGETS.register("plus_minus_one")
class PlusMinusOne(Target):
    """``T[i, y_i] = +1``, every other entry -1 (story 4's tanh/MSE targets)."""

    values = (-1.0, 1.0)

    def encode(self, y, n_classes, dtype=np.float64):
        T = np.full((len(y), n_classes), -1, dtype=dtype)
        T[np.arange(len(y)), y] = 1
        return T


@TARGETS.register("raw")
class Raw(Target):
    """Regression targets as given, reshaped to 2-D."""

    def encode(self, y, n_classes, dtype=np.float64):
        y = np.asarray(y, dtype=dtype)
        return y.reshape(len(y), -1)


@TARGETS.register("auto")
class Auto(Target):
    """``one_hot`` for class labels, ``raw`` for regression targets (the default)."""

    def resolve(self, data) -> Target:
        return OneHot() if data.task == "classification" else Raw()

    def encode(self, y, n_classes, dtype=np.float64):
        return (OneHot() if n_classes else Raw()).encode(y, n_classes, dtype)
