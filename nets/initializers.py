"""Parameter initializers.

Each is called with the array shape, its fan-in and fan-out and the run's generator,
so initial weights depend only on the config's seed. Dense weights are
``(n_in, n_out)``; conv kernels ``(kh, kw, c_in, c_out)`` with
``fan_in = kh*kw*c_in`` and ``fan_out = kh*kw*c_out``.
"""

from __future__ import annotations

import numpy as np

from nets.registry import Component, check, registry

INITIALIZERS = registry("init")
DISTRIBUTIONS = ("uniform", "normal")


class Initializer(Component):
    """``__call__(shape, fan_in, fan_out, rng, dtype) -> ndarray``."""

    def __call__(self, shape, fan_in: int, fan_out: int, rng: np.random.Generator,
                 dtype=np.float64) -> np.ndarray:
        raise NotImplementedError


def _draw(rng, shape, std, distribution, dtype):
    if distribution == "normal":
        return rng.normal(0.0, std, size=shape).astype(dtype, copy=False)
    a = std * np.sqrt(3.0)  # U[-a, a] has standard deviation a / sqrt(3)
    return rng.uniform(-a, a, size=shape).astype(dtype, copy=False)


@INITIALIZERS.register("zeros")
class Zeros(Initializer):
    """All zeros (the usual bias init)."""

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        return np.zeros(shape, dtype=dtype)


@INITIALIZERS.register("constant")
class Constant(Initializer):
    """Every entry ``value``.

    Parameters
    ----------
    value : float
        The constant (story 2's bias input of -1 is ``constant`` -1 times a weight; a
        constant bias init of e.g. 0.1 keeps ReLU units alive at the start).
    """

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        return np.full(shape, self.value, dtype=dtype)


@INITIALIZERS.register("uniform01")
class Uniform01(Initializer):
    """``U[0, 1)`` for every entry (story 2's hand-written init; all weights positive)."""

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        return rng.random(shape).astype(dtype, copy=False)


@INITIALIZERS.register("uniform")
class Uniform(Initializer):
    """``U[-scale, scale)``.

    Parameters
    ----------
    scale : float
        Half-width of the interval, > 0.
    """

    def __init__(self, scale: float = 0.05):
        check(scale > 0, "scale", scale, "must be > 0")
        self.scale = float(scale)

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        return rng.uniform(-self.scale, self.scale, size=shape).astype(dtype, copy=False)


@INITIALIZERS.register("normal")
class Normal(Initializer):
    """``N(0, std**2)``.

    Parameters
    ----------
    std : float
        Standard deviation, > 0.
    """

    def __init__(self, std: float = 0.01):
        check(std > 0, "std", std, "must be > 0")
        self.std = float(std)

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        return rng.normal(0.0, self.std, size=shape).astype(dtype, copy=False)


@INITIALIZERS.register("xavier")
class Xavier(Initializer):
    """Glorot/Xavier: variance ``gain**2 * 2 / (fan_in + fan_out)``.

    Parameters
    ----------
    distribution : {"uniform", "normal"}
        Shape of the distribution with that variance.
    gain : float
        Multiplier on the standard deviation (e.g. 4 for sigmoid units).
    """

    def __init__(self, distribution: str = "uniform", gain: float = 1.0):
        check(distribution in DISTRIBUTIONS, "distribution", distribution,
              f"choose one of: {', '.join(DISTRIBUTIONS)}")
        check(gain > 0, "gain", gain, "must be > 0")
        self.distribution, self.gain = distribution, float(gain)

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        std = self.gain * np.sqrt(2.0 / (fan_in + fan_out))
        return _draw(rng, shape, std, self.distribution, dtype)


@INITIALIZERS.register("he")
class He(Initializer):
    """He/Kaiming: variance ``gain**2 * 2 / fan_in`` (for ReLU units).

    Parameters
    ----------
    distribution : {"uniform", "normal"}
        Shape of the distribution with that variance.
    gain : float
        Multiplier on the standard deviation.
    """

    def __init__(self, distribution: str = "normal", gain: float = 1.0):
        check(distribution in DISTRIBUTIONS, "distribution", distribution,
              f"choose one of: {', '.join(DISTRIBUTIONS)}")
        check(gain > 0, "gain", gain, "must be > 0")
        self.distribution, self.gain = distribution, float(gain)

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
        std = self.gain * np.sqrt(2.0 / fan_in)
        return _draw(rng, shape, std, self.distribution, dtype)
