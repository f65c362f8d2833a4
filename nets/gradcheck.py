"""Central finite-difference gradient checks.

Relative error between an analytic gradient ``a`` and a numerical one ``b``:
``max|a - b| / max(1e-8, max|a| + max|b|)`` (max-norms, so entries that are tiny in
both do not dominate). In float64 with ``eps=1e-6`` correct code gives ~1e-9; the
bugs of the stories (a bias gradient multiplied by the bias, a delta missing the
activation derivative) give errors of order 1.

Scalar functions are made from array-valued ones with a fixed random covector ``R``:
``f(X) = sum(Y(X) * R)``, so ``dY = R`` and one backward pass checks every output.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))


def central_differences(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                        max_entries: int | None = None,
                        rng: np.random.Generator | None = None, f0: float | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences of scalar ``f()`` with respect to ``x`` (perturbed in place).

    Parameters
    ----------
    f : callable
        Recomputes the scalar from the current contents of ``x``.
    x : ndarray
        The array to perturb; restored afterwards.
    max_entries : int, optional
        Check only this many entries, drawn with ``rng`` (large layers).
    f0 : float, optional
        ``f()`` at the unperturbed ``x``; with it the curvature term is returned.

    Returns
    -------
    idx : ndarray of int
        Flat indices that were checked.
    grad : ndarray
        ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for each checked ``i``.
    slack : ndarray
        ``|f(x + eps e_i) - 2 f0 + f(x - eps e_i)| / (2 eps)``: how far ``f`` is from
        linear across the step (large at a ReLU kink, where no finite difference can
        match the one-sided analytic gradient). Zeros when ``f0`` is not given.
    """
    flat = x.reshape(-1)
    idx = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        idx = np.sort((rng or np.random.default_rng(0)).choice(flat.size, max_entries,
                                                                 replace=False))
    g, slack = np.empty(len(idx)), np.zeros(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        g[j] = (fp - fm) / (2 * eps)
        if f0 is not None:
            slack[j] = abs(fp - 2 * f0 + fm) / (2 * eps)
    return idx, g, slack


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                   max_entries: int | None = None, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, grad)`` of ``central_differences`` (no curvature term)."""
    idx, g, _ = central_differences(f, x, eps, max_entries, rng)
    return idx, g


def check_layer(layer, X: np.ndarray, rng: np.random.Generator, eps: float = 1e-6,
                max_entries: int | None = None) -> dict[str, float]:
    """Relative errors of ``dX`` and every parameter gradient of a built layer.

    The layer is run in evaluation mode (``training=False``) so dropout is deterministic;
    dropout's training path is checked with a fixed mask by the caller.
    """
    Y = layer.forward(X, training=False)
    R = rng.standard_normal(Y.shape)
    dX = layer.backward(R.copy())
    f = lambda: float(np.sum(layer.forward(X, training=False) * R))  # noqa: E731
    out = {}
    idx, num = numerical_grad(f, X, eps, max_entries, rng)
    out["X"] = rel_error(dX.reshape(-1)[idx], num)
    for p in layer.params:
        analytic = p.grad.copy()
        idx, num = numerical_grad(f, p.value, eps, max_entries, rng)
        out[p.name] = rel_error(analytic.reshape(-1)[idx], num)
    return out


def check_model(model, head, X: np.ndarray, T: np.ndarray, reduction: str = "mean",
                eps: float = 1e-6, max_entries: int | None = 64,
                rng: np.random.Generator | None = None) -> dict[str, float]:
    """Relative error of the loss gradient for every parameter of ``model``.

    Uses evaluation mode (dropout off) so the loss is a deterministic function of the
    parameters. Returns ``{"dense1.W": err, ...}``.
    """
    rng = rng or np.random.default_rng(0)
    Z = model.forward(X, training=False)
    _, dZ = head.value_and_grad(Z, T, reduction)
    model.backward(dZ)
    f = lambda: head.value(model.forward(X, training=False), T, reduction)  # noqa: E731
    out = {}
    for name, p in model.named_params():
        analytic = p.grad.copy()
        idx, num = numerical_grad(f, p.value, eps, max_entries, rng)
        out[name] = rel_error(analytic.reshape(-1)[idx], num)
    return out
