"""Optimizers: in-place parameter updates from ``Param.grad``.

The learning rate is not state: the schedule hands the current ``lr`` to every
``update`` call, and ``lr`` here is only the starting rate it begins from.

L2 penalty: ``weight_decay`` (the stories' ``reg_lambda``) adds ``weight_decay * W`` to
the gradient of every parameter with ``decay=True`` (weights, not biases) before the
update; that is the gradient of ``(weight_decay / 2) * sum ||W||**2`` added to the loss.
It is a gradient term (coupled, as in SGD with L2), not AdamW-style decoupled decay.

Hyperparameters (logged) are constructor arguments; state (velocities, moments, the
step count) lives in ``self.state`` and is what ``state_dict`` saves.
"""

from __future__ import annotations

import numpy as np

from nets.layers import Param
from nets.registry import Component, check, registry

OPTIMIZERS = registry("optimizer")


class Optimizer(Component):
    """Base optimizer.

    Parameters
    ----------
    lr : float
        Starting learning rate (> 0); the schedule scales it over time.
    weight_decay : float
        L2 penalty coefficient (>= 0) on parameters with ``decay=True``.
    """

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0):
        check(lr > 0, "optimizer.lr", lr, "must be > 0")
        check(weight_decay >= 0, "optimizer.weight_decay", weight_decay, "must be >= 0")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.state: dict[str, list] = {}

    def penalty(self, params: list[Param]) -> float:
        """``(weight_decay / 2) * sum ||W||**2`` over decayed parameters."""
        if not self.weight_decay:
            return 0.0
        return 0.5 * self.weight_decay * float(sum(np.vdot(p.value, p.value)
                                                   for p in params if p.decay))

    def regularize(self, params: list[Param]) -> None:
        """Add the L2 penalty's gradient ``weight_decay * W`` to ``p.grad`` in place."""
        if self.weight_decay:
            for p in params:
                if p.decay:
                    p.grad += self.weight_decay * p.value

    def update(self, params: list[Param], lr: float) -> None:
        """Apply one update with learning rate ``lr`` using the current ``p.grad``."""
        raise NotImplementedError

    def step(self, params: list[Param], lr: float | None = None) -> None:
        """``regularize`` then ``update`` (``lr`` defaults to the starting rate)."""
        self.regularize(params)
        self.update(params, self.lr if lr is None else lr)

    def _slots(self, key: str, params: list[Param]) -> list[np.ndarray]:
        # State arrays are created lazily, zeroed, one per parameter, matched by position.
        if key not in self.state:
            self.state[key] = [np.zeros_like(p.value) for p in params]
        return self.state[key]

    def state_dict(self) -> dict:
        """A deep copy of the state (for rolling back a rejected step)."""
        return {k: [a.copy() for a in v] if isinstance(v, list) else v
                for k, v in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        self.state = {k: [a.copy() for a in v] if isinstance(v, list) else v
                      for k, v in state.items()}


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """``W <- W - lr * g``."""

    def update(self, params, lr):
        for p in params:
            p.value -= lr * p.grad


@OPTIMIZERS.register("momentum")
class Momentum(Optimizer):
    """Heavy-ball momentum: ``v <- mu v - lr g``; ``W <- W + v``.

    Parameters
    ----------
    momentum : float
        ``mu`` in [0, 1).
    """

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, momentum: float = 0.9):
        super().__init__(lr, weight_decay)
        check(0 <= momentum < 1, "optimizer.momentum", momentum, "must be in [0, 1)")
        self.momentum = float(momentum)

    def update(self, params, lr):
        for p, v in zip(params, self._slots("velocity", params)):
            v *= self.momentum
            v -= lr * p.grad
            p.value += v


@OPTIMIZERS.register("nesterov")
class Nesterov(Momentum):
    """Nesterov momentum in the form used by scikit-learn and PyTorch:
    ``v <- mu v - lr g``; ``W <- W + mu v - lr g`` (the look-ahead folded into the update).

    Parameters
    ----------
    momentum : float
        ``mu`` in [0, 1).
    """

    def update(self, params, lr):
        for p, v in zip(params, self._slots("velocity", params)):
            v *= self.momentum
            v -= lr * p.grad
            p.value += self.momentum * v - lr * p.grad


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """``s <- rho s + (1 - rho) g**2``; ``W <- W - lr g / (sqrt(s) + eps)``.

    Parameters
    ----------
    rho : float
        Decay of the squared-gradient average, in [0, 1).
    eps : float
        Added to the denominator (> 0).
    """

    def __init__(self, lr: float = 0.001, weight_decay: float = 0.0, rho: float = 0.9,
                 eps: float = 1e-8):
        super().__init__(lr, weight_decay)
        check(0 <= rho < 1, "optimizer.rho", rho, "must be in [0, 1)")
        check(eps > 0, "optimizer.eps", eps, "must be > 0")
        self.rho, self.eps = float(rho), float(eps)

    def update(self, params, lr):
        for p, s in zip(params, self._slots("sq", params)):
            s *= self.rho
            s += (1 - self.rho) * p.grad * p.grad
            p.value -= lr * p.grad / (np.sqrt(s) + self.eps)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam with bias correction:
    ``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g**2``;
    ``W <- W - lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)``.

    Parameters
    ----------
    beta1, beta2 : float
        Decay rates of the first and second moment, in [0, 1).
    eps : float
        Added to the denominator (> 0).
    """

    def __init__(self, lr: float = 0.001, weight_decay: float = 0.0, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr, weight_decay)
        check(0 <= beta1 < 1, "optimizer.beta1", beta1, "must be in [0, 1)")
        check(0 <= beta2 < 1, "optimizer.beta2", beta2, "must be in [0, 1)")
        check(eps > 0, "optimizer.eps", eps, "must be > 0")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, params, lr):
        t = self.state["t"] = self.state.get("t", 0) + 1
        ms, vs = self._slots("m", params), self._slots("v", params)
        c1, c2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        for p, m, v in zip(params, ms, vs):
            m *= self.beta1
            m += (1 - self.beta1) * p.grad
            v *= self.beta2
            v += (1 - self.beta2) * p.grad * p.grad
            p.value -= (lr / c1) * m / (np.sqrt(v / c2) + self.eps)
