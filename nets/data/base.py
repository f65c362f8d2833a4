"""The ``Data`` a dataset returns, the ``Dataset`` base with its shared options, and the
checks of dataset parameters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from nets.registry import Component, ConfigError, check, is_int, is_number, registry, suggest

DATASETS = registry("dataset")
TASKS = ("classification", "regression")
SCALINGS = ("none", "standard", "minmax")


@dataclass
class Data:
    """A training and a validation set, plus what a model needs to know about them.

    Attributes
    ----------
    X_train, X_val : ndarray of float64, shape (n_train, n_features) / (n_val, n_features)
        Features; images flattened in ``(C, H, W)`` order.
    y_train, y_val : ndarray
        Classification: ``(n,)`` int64 labels in ``0..n_classes-1``.
        Regression: ``(n, n_outputs)`` float64 targets.
    task : {"classification", "regression"}
    n_classes : int or None
        Number of classes (``None`` for regression).
    image_shape : tuple of int or None
        ``(C, H, W)`` when the features are an image, else ``None``.
    name : str
        Registry name of the dataset that produced this.

    Notes
    -----
    With ``val_fraction=0`` the validation arrays *are* the training arrays (the same
    objects, not copies), so validation metrics equal training metrics.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_classes: int | None
    image_shape: tuple[int, int, int] | None
    name: str

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Output units a model needs: ``n_classes``, or the target width for regression."""
        return int(self.n_classes) if self.task == "classification" else int(self.y_train.shape[1])


# ---------------------------------------------------------------------------------------
# Small validators: YAML and command-line overrides hand us ints as floats (``1e3``) and
# numbers as bools (``true``), so types are checked, not assumed.

def _int(v: Any, key: str, lo: int = 1, hi: int | None = None) -> int:
    rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    check(is_int(v, integral_floats=True) and v >= lo and (hi is None or v <= hi), key, v, rng)
    return int(v)


def _nonneg(v: Any, key: str) -> float:
    check(is_number(v) and np.isfinite(v) and v >= 0, key, v, "a number >= 0")
    return float(v)


def _positive(v: Any, key: str) -> float:
    check(is_number(v) and np.isfinite(v) and v > 0, key, v, "a number > 0")
    return float(v)


def _choice(v: Any, key: str, choices: tuple[str, ...]) -> str:
    check(v in choices, key, v, f"choose one of: {', '.join(choices)}" + suggest(v, choices))
    return v


def _bool(v: Any, key: str) -> bool:
    check(isinstance(v, (bool, np.bool_)), key, v, "true or false")
    return bool(v)


def _as_path(v: Any, key: str, required: bool = True) -> str | None:
    if v is None and not required:
        return None
    check(isinstance(v, (str, os.PathLike)) and str(v) != "", key, v,
          "a file path" + ("" if required else " or null"))
    return str(v)


# ---------------------------------------------------------------------------------------

class Dataset(Component):
    """Base of every dataset: ``load(rng) -> Data``.

    Subclasses list the three common options below in their own ``__init__`` (so
    ``hparams()`` sees them), pass them to ``Dataset.__init__``, implement ``_load`` and
    end it with ``self._finish(...)``.

    Parameters
    ----------
    val_fraction : float
        Share of the samples held out for validation, in ``[0, 1)``. ``0`` means the
        validation set is the training set itself (story 2 reports training error on a
        2-sample set). Otherwise at least one sample is held out and at least one kept.
    subsample : int or None
        Keep this many samples, drawn without replacement before the split; ``None``
        keeps all.
    scaling : {"none", "standard", "minmax"}
        Feature scaling fitted on the training part only and applied to both parts:
        ``(X - mean) / std`` or ``(X - min) / (max - min)``. A constant feature is
        divided by 1 instead of 0, so it becomes 0 rather than NaN.
    """

    def __init__(self, val_fraction: float = 0.2, subsample: int | None = None,
                 scaling: str = "none"):
        check(is_number(val_fraction) and 0 <= val_fraction < 1, "val_fraction",
              val_fraction, "a number in [0, 1) (0 = validate on the training set)")
        self.val_fraction = float(val_fraction)
        self.subsample = None if subsample is None else _int(subsample, "subsample")
        self.scaling = _choice(scaling, "scaling", SCALINGS)

    def load(self, rng: np.random.Generator | int) -> Data:
        """Read or generate the data and split it.

        Parameters
        ----------
        rng : numpy.random.Generator or int
            Source of every random choice (an int is used as a seed).

        Returns
        -------
        Data
        """
        check(isinstance(rng, np.random.Generator) or is_int(rng), "rng", rng,
              "a numpy Generator or an integer seed", "the data must be reproducible")
        return self._load(np.random.default_rng(rng))

    def _load(self, rng: np.random.Generator) -> Data:
        raise NotImplementedError

    def _finish(self, rng: np.random.Generator, X: np.ndarray, y: np.ndarray, *,
                task: str, n_classes: int | None = None,
                image_shape: tuple[int, int, int] | None = None,
                X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> Data:
        """Subsample, split and scale; the one place the common options are applied.

        Parameters
        ----------
        rng : numpy.random.Generator
        X : ndarray, shape (n_samples, n_features) or (n_samples, C, H, W)
        y : ndarray, shape (n_samples,) labels or (n_samples, n_outputs) targets
        task, n_classes, image_shape
            As in ``Data``.
        X_val, y_val : ndarray, optional
            A validation set from elsewhere (a second file); then nothing is carved
            out of ``X`` and ``subsample`` applies to ``X`` only.
        """
        X, y = _as_X(X), _as_y(y, task)
        if self.subsample is not None:
            n = len(X)
            if self.subsample > n:
                raise ConfigError("dataset.subsample", self.subsample,
                                  f"at most {n}, the number of samples available")
            keep = np.sort(rng.choice(n, self.subsample, replace=False))
            X, y = X[keep], y[keep]
        if X_val is not None:
            Xv, yv = _as_X(X_val), _as_y(y_val, task)
        elif self.val_fraction == 0:
            Xv, yv = X, y
        else:
            tr, va = _split(rng, y, self.val_fraction, stratify=task == "classification")
            X, y, Xv, yv = X[tr], y[tr], X[va], y[va]
        if self.scaling != "none":
            shift, div = _scale_stats(X, self.scaling)
            same = Xv is X
            X = (X - shift) / div
            Xv = X if same else (Xv - shift) / div
        return Data(X, y, Xv, yv, task, n_classes,
                    None if image_shape is None else tuple(int(v) for v in image_shape),
                    self.name)


def _as_X(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1)


def _as_y(y: np.ndarray, task: str) -> np.ndarray:
    if task == "classification":
        return np.asarray(y).astype(np.int64, copy=False).reshape(-1)
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


def _split(rng: np.random.Generator, y: np.ndarray, fraction: float,
           stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``, each in random order; ``round(n * fraction)`` to val.

    Stratification: visit a random permutation grouped by class and send every
    ``n/n_val``-th sample to validation, so each class gives ``fraction`` of itself
    (to within one sample) and the total is exact.
    """
    n = len(y)
    n_val = max(1, int(np.floor(n * fraction + 0.5)))
    if n_val >= n:
        raise ConfigError("dataset.val_fraction", fraction,
                          f"leaves no training samples out of {n}; use a smaller fraction "
                          "or 0 to validate on the training set")
    perm = rng.permutation(n)
    order = perm[np.argsort(y[perm], kind="stable")] if stratify else perm
    i = np.arange(n, dtype=np.int64)
    to_val = np.zeros(n, dtype=bool)
    to_val[order[(i + 1) * n_val // n > i * n_val // n]] = True
    return perm[~to_val[perm]], perm[to_val[perm]]


def _scale_stats(X: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if len(X) == 0:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    if how == "standard":
        shift, div = X.mean(axis=0), X.std(axis=0)
    else:
        shift, div = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
    div[div == 0] = 1.0
    return shift, div


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    # Equal class sizes (to within one) in random order, so no class is missing by luck.
    return rng.permutation(np.arange(n) % k)


# ---------------------------------------------------------------------------------------
# Real data
