"""Will the run fit in memory? An estimate before the model allocates anything.

``model.hidden=[10000000]`` on digits asks for a 64 x 10^7 weight matrix: 4.8 GiB, then
as much again for its gradient, then the activations of every evaluated row. numpy
fails with a ``_ArrayMemoryError`` traceback after trying (or the kernel's OOM killer
ends the process on a bigger machine, and in a sweep the launcher builds every point
too). ``check_fits`` walks the model's layer specs with shapes only and refuses, in one
``ConfigError`` line with the estimate, a run that needs more than the memory available.

The estimate, in bytes, with ``b`` the dtype's size and ``P`` the parameter count:

``P*b*(2 + slots)`` weights, gradients and optimizer state (``slots``: 0 for sgd, 1 for
momentum, nesterov and rmsprop, 2 for adam), ``+ P*b*(1 + slots)`` when the schedule
keeps a snapshot to roll back to, ``+ rows * A * b`` activations, where ``A`` is the sum
of every layer's output size per sample (each layer keeps its input or output for the
backward pass; a convolution also its window matrix) and ``rows`` the larger of a
training batch and an evaluation chunk (``train.eval_batch_size``).

It is an estimate of what nets allocates, not of what numpy's temporaries add; it
errs low, so it refuses only what cannot fit.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from nets.registry import ConfigError

GIB = 1024 ** 3
# Arrays of optimizer state per parameter array (``Optimizer._slots`` keys).
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2}
SETTING = "train.max_memory_gb"


def available_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (``None`` where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def layer_shapes(layers, in_shape: tuple, image_shape=None) -> list[tuple[str, tuple, int, int]]:
    """``(name, out_shape, n_params, extra_per_row)`` per layer, from unbuilt layers.

    ``extra_per_row``: values a layer keeps per sample besides its output (a
    convolution's window matrix). A layer nets does not know is taken to keep the
    shape and hold no parameters (the estimate stays low, never refuses wrongly).
    """
    out, shape = [], tuple(int(d) for d in in_shape)
    for layer in layers:
        name, params, extra = layer.name, 0, 0
        if name in ("conv2d", "max_pool2d") and len(shape) == 1 and image_shape is not None:
            C, H, W = (int(d) for d in image_shape)
            shape = (H, W, C)  # the image layer a built CNN puts first
        if name == "dense" and len(shape) == 1:
            params = shape[0] * layer.units + layer.units
            shape = (layer.units,)
        elif name == "conv2d" and len(shape) == 3:
            H, W, C = shape
            k, s, p, co = layer.kernel, layer.stride, layer.padding, layer.channels
            ho, wo = max(0, (H + 2 * p - k) // s + 1), max(0, (W + 2 * p - k) // s + 1)
            params = k * k * C * co + co
            extra = ho * wo * (k * k * C + 1) + (H + 2 * p) * (W + 2 * p) * C
            shape = (ho, wo, co)
        elif name == "max_pool2d" and len(shape) == 3:
            H, W, C = shape
            k = layer.size
            s = layer.stride or k
            shape = (max(0, (H - k) // s + 1), max(0, (W - k) // s + 1), C)
        elif name == "flatten":
            shape = (int(np.prod(shape)),)
        elif name == "image":
            C, H, W = layer.shape
            shape = (H, W, C)
        out.append((name, shape, params, extra))
    return out


def estimate(model, in_shape: tuple, n_train: int, n_val: int, settings,
             optimizer: str = "sgd", rolls_back: bool = False,
             image_shape=None) -> dict[str, float]:
    """Bytes by part: ``params`` (weights + gradients), ``optimizer``, ``snapshot``,
    ``activations``, ``total``, and the ``rows`` the activations are counted for.

    Parameters
    ----------
    model : Sequential
        Built without ``in_shape`` (layer specs only, nothing allocated).
    in_shape : tuple
        Per-sample input shape ``(n_features,)``.
    n_train, n_val : int
        Rows of the training and validation sets.
    settings : TrainSettings
    """
    itemsize = np.dtype(settings.dtype).itemsize
    layers = layer_shapes(model.net, in_shape, image_shape)
    n_params = sum(p for _, _, p, _ in layers)
    per_row = sum(int(np.prod(s)) + e for _, s, _, e in layers)
    batch = n_train if settings.batch_size is None else min(settings.batch_size, n_train)
    rows = max(batch, min(settings.eval_batch_size, max(n_train, n_val)))
    slots = OPTIMIZER_SLOTS.get(optimizer, 2)
    parts = {"params": 2.0 * n_params * itemsize,
             "optimizer": float(slots * n_params * itemsize),
             "snapshot": float((1 + slots) * n_params * itemsize) if rolls_back else 0.0,
             "activations": float(rows) * per_row * itemsize}
    parts["total"] = sum(parts.values())
    parts["rows"] = rows
    return parts


def limit_bytes(settings) -> tuple[float | None, str]:
    """``(limit in bytes, where it comes from)``: the setting, else ``MemAvailable``."""
    gb = getattr(settings, "max_memory_gb", None)
    if gb is not None:
        return gb * GIB, f"{SETTING}={gb:g}"
    avail = available_bytes()
    return (None, "") if avail is None else (float(avail), "available")


def size(n: float) -> str:
    """``"4.8 GiB"``."""
    for unit, scale in (("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def check_fits(spec: Any, model, in_shape: tuple, n_train: int, n_val: int, settings,
               optimizer: str = "sgd", rolls_back: bool = False, image_shape=None) -> dict:
    """Raise ``ConfigError`` (one line, with the estimate) if the run cannot fit; else
    return the estimate (``estimate``)."""
    est = estimate(model, in_shape, n_train, n_val, settings, optimizer, rolls_back,
                   image_shape)
    limit, source = limit_bytes(settings)
    if limit is None or est["total"] <= limit:
        return est
    if isinstance(spec, Mapping) and spec.get("name", "mlp") == "mlp" and spec.get("hidden"):
        key, value = "model.hidden", spec["hidden"]
    else:
        key = "model"
        value = spec if isinstance(spec, str) else dict(spec or {}).get("name", spec)
    have = f"{size(limit)} is available" if source == "available" else f"the limit is {source}"
    raise ConfigError(key, value,
                      f"the run needs about {size(est['total'])} (weights and gradients "
                      f"{size(est['params'])}, optimizer state {size(est['optimizer'] + est['snapshot'])}, "
                      f"activations of {est['rows']} rows {size(est['activations'])}) and {have}; "
                      f"use a smaller model, train.batch_size or train.eval_batch_size, or set "
                      f"{SETTING} above the estimate")
