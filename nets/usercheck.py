"""The automatic gradient check of the user's own components, before the first update.

Every component loaded by import path or from a ``plugins`` module that has a backward
pass is checked on its own, where the run uses it: a layer on the activations that reach
it from the first ``batch`` training rows, an activation on its real pre-activations, a
loss on the model's outputs and the encoded targets, a user model on the loss. Central
differences in float64 (``eps=1e-6``) against the component's analytic gradient for
every parameter and for the input, with a fixed random covector ``R``
(``f = sum(Y * R)``, so one backward pass gives every directional derivative).

Relative error is ``nets.gradcheck.rel_error`` (max-norms). An entry where ``f`` is not
smooth within ``eps`` (a ReLU kink) is skipped when its curvature term exceeds
``threshold`` times the gradient's scale, as ``nets.diagnostics.gradcheck_model`` does.

One failing part raises ``ComponentCheckError``, whose message is one line::

    gradient check failed: mylayers:SigmoidDense parameter b: relative error 1 (threshold 1e-4)

and whose ``results`` hold the whole per-part table (``table`` renders it as markdown).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import numpy as np

from nets import plugins
from nets.gradcheck import central_differences, rel_error
from nets.layers import ActivationLayer

EPS = 1e-6


@dataclass
class PartResult:
    """One checked array of one component."""

    component: str     # import path (or registered name) of the component
    where: str         # config key: ``model.layers[1]``, ``loss``, ``model.output``
    part: str          # parameter name (``W``, ``b``) or ``input``
    error: float       # relative error; inf when not finite or when the pass raised
    checked: int       # entries compared
    note: str = ""

    def passed(self, threshold: float) -> bool:
        return self.error <= threshold

    def describe(self) -> str:
        what = {"input": "input gradient dX", "forward": "forward",
                "backward": "backward"}.get(self.part, f"parameter {self.part}")
        if self.note:
            return f"{self.component} {what}: {self.note}"
        return f"{self.component} {what}: relative error {_num(self.error)}"


class ComponentCheckError(RuntimeError):
    """A user component's backward pass disagrees with its forward pass."""

    def __init__(self, results: list[PartResult], threshold: float, duplicates: set[str] = ()):
        self.results, self.threshold = list(results), float(threshold)
        bad = [r for r in results if not r.passed(threshold)]
        self.worst = max(bad, key=lambda r: (not math.isfinite(r.error), r.error))
        name = self.worst.component
        if name in duplicates:
            name = f"{name} ({self.worst.where})"
        shown = PartResult(name, self.worst.where, self.worst.part, self.worst.error,
                           self.worst.checked, self.worst.note)
        super().__init__(f"gradient check failed: {shown.describe()} "
                         f"(threshold {_num(threshold)})")


def _num(x: float) -> str:
    """``0.98``, ``1``, ``3.1e-10``, ``1e-4``: short, exponent without padding."""
    if not math.isfinite(x):
        return str(x)
    s = f"{x:.2g}"
    if "e" in s or (x != 0 and abs(x) < 1e-3):
        mant, exp = f"{x:.1e}".split("e")
        s = f"{mant.rstrip('0').rstrip('.')}e{exp}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), s)


def compare(f, x: np.ndarray, analytic: np.ndarray, threshold: float,
            rng: np.random.Generator, max_entries: int | None) -> tuple[float, int]:
    """Relative error of ``analytic`` (same shape as ``x``) against central differences
    of ``f`` w.r.t. ``x`` (perturbed in place), and the number of entries compared."""
    f0 = f()
    idx, num, slack = central_differences(f, x, EPS, max_entries, rng, f0)
    a = np.asarray(analytic, np.float64).reshape(-1)[idx]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(num))):
        return math.inf, len(idx)
    scale = max(1e-8, float(np.max(np.abs(a), initial=0.0) + np.max(np.abs(num), initial=0.0)))
    smooth = slack <= threshold * scale
    err = rel_error(a[smooth], num[smooth]) if smooth.any() else 0.0
    return (err if math.isfinite(err) else math.inf), int(smooth.sum())


def _failed(component: str, where: str, part: str, exc: BaseException) -> PartResult:
    line = (str(exc).strip().splitlines() or [""])[0]
    return PartResult(component, where, part, math.inf, 0,
                      f"the check could not run: {type(exc).__name__}: {line}")


def check_layer(layer, X: np.ndarray, where: str, threshold: float,
                rng: np.random.Generator, max_entries: int | None = 64) -> list[PartResult]:
    """Every parameter and the input gradient of a built float64 ``layer`` at input ``X``."""
    name = layer.name
    X = np.array(X, dtype=np.float64)
    try:
        layer.input_grad = True
        Y = layer.forward(X, False)
        R = rng.standard_normal(np.shape(Y))
        for p in layer.params:
            p.grad[...] = 0
        dX = layer.backward(R.copy())
        grads = [(p.name, p.value, np.array(p.grad, np.float64)) for p in layer.params]
    except Exception as e:  # noqa: BLE001 - a crashing backward is a failed check
        return [_failed(name, where, "backward", e)]

    def f() -> float:
        return float(np.sum(layer.forward(X, False) * R))

    out = []
    for pname, value, g in grads:
        try:
            err, n = compare(f, value, g, threshold, rng, max_entries)
            out.append(PartResult(name, where, pname, err, n))
        except Exception as e:  # noqa: BLE001
            out.append(_failed(name, where, pname, e))
    if dX is not None:
        try:
            if np.shape(dX) != X.shape:
                out.append(PartResult(name, where, "input", math.inf, 0,
                                      f"backward returned shape {np.shape(dX)}, the input "
                                      f"has shape {X.shape}"))
            else:
                err, n = compare(f, X, dX, threshold, rng, max_entries)
                out.append(PartResult(name, where, "input", err, n))
        except Exception as e:  # noqa: BLE001
            out.append(_failed(name, where, "input", e))
    return out


def check_activation(fn, Z: np.ndarray, where: str, threshold: float,
                     rng: np.random.Generator, max_entries: int | None = 64) -> list[PartResult]:
    """``fn.backward(dA, A)`` against central differences of ``fn.forward`` at ``Z``."""
    Z = np.array(Z, dtype=np.float64)
    try:
        A = fn.forward(Z)
        R = rng.standard_normal(np.shape(A))
        dZ = fn.backward(R.copy(), A)
        err, n = compare(lambda: float(np.sum(fn.forward(Z) * R)), Z, dZ, threshold, rng,
                         max_entries)
    except Exception as e:  # noqa: BLE001
        return [_failed(fn.name, where, "input", e)]
    return [PartResult(fn.name, where, "input", err, n)]


def check_loss(loss, Y: np.ndarray, T: np.ndarray, reduction: str, where: str,
               threshold: float, rng: np.random.Generator,
               max_entries: int | None = 64) -> list[PartResult]:
    """``loss.grad(Y, T, reduction)`` against central differences of ``loss.value``."""
    Y, T = np.array(Y, np.float64), np.array(T, np.float64)
    try:
        g = loss.grad(Y.copy(), T, reduction)
        err, n = compare(lambda: float(loss.value(Y, T, reduction)), Y, g, threshold, rng,
                         max_entries)
    except Exception as e:  # noqa: BLE001
        return [_failed(loss.name, where, "input", e)]
    return [PartResult(loss.name, where, "input", err, n)]


def float64_copy(model):
    """A deep copy of ``model`` with every parameter in float64 (the model is untouched)."""
    m = copy.deepcopy(model)
    for _, p in m.named_params():
        p.value = np.array(p.value, dtype=np.float64)
        p.grad = np.zeros_like(p.value)
    m.dtype = np.dtype(np.float64)
    return m


def user_components(run) -> list[str]:
    """Config keys of the run's user components (those the check would look at, and
    those without a backward pass)."""
    out = []
    for key, obj in (("dataset", None), ("model", run.model), ("loss", run.loss),
                     ("optimizer", run.optimizer), ("schedule", run.schedule),
                     ("target", run.target), ("model.output", run.model.output)):
        if obj is not None and plugins.is_user(obj):
            out.append(key)
    for i, layer in enumerate(run.model.net):
        if plugins.is_user(layer):
            out.append(f"model.layers[{i}]")
        elif isinstance(layer, ActivationLayer) and plugins.is_user(layer.fn):
            out.append(f"model.layers[{i}].fn")
    return out


def check_run(run, threshold: float = 1e-4, batch: int = 8, X=None, T=None,
              reduction: str | None = None, max_entries: int | None = 64) -> list[PartResult]:
    """Check every user component of a built ``nets.train.Run`` with a backward pass.

    Parameters
    ----------
    run : nets.train.Run
    threshold : float
        Largest relative error allowed.
    batch : int
        Training rows the check runs on.
    X, T : ndarray, optional
        The batch (default: the first ``batch`` training rows and their encoded targets).
    reduction : {"mean", "sum"}, optional
        The loss reduction (default: the run's).

    Returns
    -------
    list of PartResult
        Empty when the run has no user component with a backward pass.

    Raises
    ------
    ComponentCheckError
        When any part's error exceeds ``threshold`` (or is not finite).
    """
    from nets.models import Head

    rng = np.random.default_rng(0)
    reduction = reduction or run.settings.reduction
    if X is None:
        X = run.data.X_train[:batch]
    if T is None:
        T = run.target.encode(run.data.y_train[:batch], run.data.n_classes, np.float64)
    X, T = np.asarray(X, np.float64), np.asarray(T, np.float64)
    m = float64_copy(run.model)
    results: list[PartResult] = []
    names: list[str] = []
    with np.errstate(all="ignore"):
        H = X
        for i, layer in enumerate(m.net):
            where = f"model.layers[{i}]"
            if plugins.is_user(layer):
                results += check_layer(layer, H, where, threshold, rng, max_entries)
                names.append(layer.name)
            elif isinstance(layer, ActivationLayer) and plugins.is_user(layer.fn):
                results += check_activation(layer.fn, H, f"{where}.fn", threshold, rng,
                                            max_entries)
                names.append(layer.fn.name)
            try:
                H = layer.forward(H, False)
            except Exception as e:  # noqa: BLE001 - report, do not train on it
                results.append(_failed(layer.name, where, "forward", e))
                break
        else:
            Z = H
            if plugins.is_user(m.output):
                results += check_activation(m.output, Z, "model.output", threshold, rng,
                                            max_entries)
                names.append(m.output.name)
            head = Head(m.output, run.loss)
            if plugins.is_user(run.loss):
                Y = Z if head.fused else m.output.forward(Z)
                results += check_loss(run.loss, Y, T, reduction, "loss", threshold, rng,
                                      max_entries)
                names.append(run.loss.name)
            if plugins.is_user(m):
                results += check_model(m, head, X, T, reduction, threshold, rng, max_entries)
                names.append(m.name)
    if any(not r.passed(threshold) for r in results):
        dup = {n for n in names if names.count(n) > 1}
        raise ComponentCheckError(results, threshold, dup)
    return results


def check_model(m, head, X, T, reduction, threshold, rng, max_entries=64) -> list[PartResult]:
    """A user model: the loss gradient of every named parameter."""
    try:
        m.backward(head.value_and_grad(m.forward(X, False), T, reduction)[1])
        grads = [(n, p.value, np.array(p.grad, np.float64)) for n, p in m.named_params()]
    except Exception as e:  # noqa: BLE001
        return [_failed(m.name, "model", "backward", e)]
    f = lambda: float(head.value(m.forward(X, False), T, reduction))  # noqa: E731
    out = []
    for n, value, g in grads:
        err, k = compare(f, value, g, threshold, rng, max_entries)
        out.append(PartResult(m.name, "model", n, err, k))
    return out


def table(results: list[PartResult], threshold: float) -> str:
    """The per-part results as a markdown table (the run's ``usercheck.md``)."""
    lines = [f"Gradient check of the user components (float64, central differences, "
             f"threshold {_num(threshold)})", "",
             "| component | config key | part | relative error | entries | result |",
             "|---|---|---|---|---|---|"]
    for r in results:
        err = r.note or _num(r.error)
        lines.append(f"| {r.component} | {r.where} | {r.part} | {err} | {r.checked} | "
                     f"{'pass' if r.passed(threshold) else 'FAIL'} |")
    return "\n".join(lines) + "\n"
