"""Generated datasets: blobs, moons, spirals, XOR, and story 2's regression sets."""

from __future__ import annotations

import numpy as np

from nets.data.base import DATASETS, Dataset, _balanced_labels, _int, _nonneg
from nets.registry import check


class _Synthetic(Dataset):
    """Shared validation for the generated sets."""

    def _common(self, n_samples: int, noise: float, n_classes: int = 2) -> None:
        self.n_samples = _int(n_samples, "n_samples", 2)
        self.noise = _nonneg(noise, "noise")
        check(self.n_samples >= n_classes, "n_samples", n_samples,
              f"at least n_classes={n_classes}")


@DATASETS.register("blobs")
class Blobs(_Synthetic):
    """Gaussian clusters, one per class.

    Centres are drawn uniformly in ``[-10, 10]^n_features``; each point is its class
    centre plus ``N(0, spread^2)`` noise per feature.

    Parameters
    ----------
    n_samples : int
    n_classes : int
    n_features : int
    spread : float
        Standard deviation of each cluster (>= 0).
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 300, n_classes: int = 3, n_features: int = 2,
                 spread: float = 1.0, val_fraction: float = 0.2,
                 subsample: int | None = None, scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.n_classes = _int(n_classes, "n_classes", 2)
        self.n_features = _int(n_features, "n_features")
        self.spread = _nonneg(spread, "spread")
        self.n_samples = _int(n_samples, "n_samples", 2)
        check(self.n_samples >= self.n_classes, "n_samples", n_samples,
              f"at least n_classes={self.n_classes}")

    def _load(self, rng):
        centers = rng.uniform(-10.0, 10.0, size=(self.n_classes, self.n_features))
        y = _balanced_labels(rng, self.n_samples, self.n_classes)
        X = centers[y] + self.spread * rng.standard_normal((self.n_samples, self.n_features))
        return self._finish(rng, X, y, task="classification", n_classes=self.n_classes)


@DATASETS.register("moons")
class Moons(_Synthetic):
    """Two interleaving half circles (radius 1), as in scikit-learn's ``make_moons``.

    Class 0: ``(cos t, sin t)``; class 1: ``(1 - cos t, 0.5 - sin t)``, ``t ~ U[0, pi]``;
    plus ``N(0, noise^2)`` per coordinate.

    Parameters
    ----------
    n_samples : int
    noise : float
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 300, noise: float = 0.1, val_fraction: float = 0.2,
                 subsample: int | None = None, scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self._common(n_samples, noise)

    def _load(self, rng):
        n = self.n_samples
        y = _balanced_labels(rng, n, 2)
        t = rng.uniform(0.0, np.pi, n)
        X = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                     np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)])
        X = X + self.noise * rng.standard_normal((n, 2))
        return self._finish(rng, X, y, task="classification", n_classes=2)


@DATASETS.register("spirals")
class Spirals(_Synthetic):
    """Interleaved spiral arms, one per class (the CS231n toy set).

    A point at radius ``r ~ U[0, 1]`` on arm ``c`` sits at angle
    ``t = 4 r + 2 pi c / n_classes + noise * N(0, 1)``: ``(r sin t, r cos t)``.
    Not linearly separable; a small MLP learns it.

    Parameters
    ----------
    n_samples : int
    n_classes : int
    noise : float
        Standard deviation of the angle, in radians.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 300, n_classes: int = 3, noise: float = 0.2,
                 val_fraction: float = 0.2, subsample: int | None = None,
                 scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.n_classes = _int(n_classes, "n_classes", 2)
        self._common(n_samples, noise, self.n_classes)

    def _load(self, rng):
        n = self.n_samples
        y = _balanced_labels(rng, n, self.n_classes)
        r = rng.uniform(0.0, 1.0, n)
        t = 4.0 * r + 2.0 * np.pi * y / self.n_classes + self.noise * rng.standard_normal(n)
        X = np.c_[r * np.sin(t), r * np.cos(t)]
        return self._finish(rng, X, y, task="classification", n_classes=self.n_classes)


@DATASETS.register("xor")
class XOR(_Synthetic):
    """Four clusters at ``(+-1, +-1)``; the label is 1 when the signs differ.

    The smallest problem a linear model cannot solve; ``noise=0`` gives the four
    classic XOR points repeated.

    Parameters
    ----------
    n_samples : int
    noise : float
        Standard deviation of each cluster.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 200, noise: float = 0.2, val_fraction: float = 0.2,
                 subsample: int | None = None, scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self._common(n_samples, noise)

    def _load(self, rng):
        n = self.n_samples
        corner = _balanced_labels(rng, n, 4)
        sx, sy = corner & 1, corner >> 1
        y = sx ^ sy
        X = np.c_[2.0 * sx - 1.0, 2.0 * sy - 1.0] + self.noise * rng.standard_normal((n, 2))
        return self._finish(rng, X, y, task="classification", n_classes=2)


# ---------------------------------------------------------------------------------------
# Story 2's regression sets

@DATASETS.register("random_regression")
class RandomRegression(Dataset):
    """Story 2's "nothing to learn" set: ``X`` and ``Y`` independent, both ``U[0, 1)``.

    The best any model can do on unseen data is predict the mean 0.5 (MAE 0.25); with
    ``val_fraction=0`` (default) training error is reported, as in the story.

    Parameters
    ----------
    n_samples, n_features, n_outputs : int
        ``X`` is ``(n_samples, n_features)``, ``Y`` is ``(n_samples, n_outputs)``.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 20, n_features: int = 7, n_outputs: int = 2,
                 val_fraction: float = 0.0, subsample: int | None = None,
                 scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.n_samples = _int(n_samples, "n_samples")
        self.n_features = _int(n_features, "n_features")
        self.n_outputs = _int(n_outputs, "n_outputs")

    def _load(self, rng):
        X = rng.random((self.n_samples, self.n_features))
        Y = rng.random((self.n_samples, self.n_outputs))
        return self._finish(rng, X, Y, task="regression")


@DATASETS.register("tiny_regression")
class TinyRegression(Dataset):
    """Story 2's tiny learnable set: 2 samples, 4 inputs -> 4 outputs.

    Fixed, no randomness::

        X = [[1, 0, 1, 0],        Y = [[0.1, 0.9, 0.2, 0.8],
             [0, 1, 0, 1]]             [0.9, 0.1, 0.8, 0.2]]

    The inputs differ, so sigmoid hidden units see two different activations and an
    identity output layer can hit both target rows exactly; SSE can fall to 0.

    Parameters
    ----------
    val_fraction, subsample, scaling
        See ``Dataset``; ``val_fraction=0`` (default) validates on the two samples.
    """

    X = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    Y = np.array([[0.1, 0.9, 0.2, 0.8], [0.9, 0.1, 0.8, 0.2]])

    def __init__(self, val_fraction: float = 0.0, subsample: int | None = None,
                 scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)

    def _load(self, rng):
        return self._finish(rng, self.X.copy(), self.Y.copy(), task="regression")


# ---------------------------------------------------------------------------------------
# Procedural images for the CNN story
