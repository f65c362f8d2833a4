"""Procedural images of shapes (story 3's CNN set): one shape per class, drawn with
random position, size, rotation and noise."""

from __future__ import annotations

import numpy as np

from nets.data.base import DATASETS, Dataset, _balanced_labels, _int, _nonneg
from nets.registry import check


def _box(dx, dy, a):
    return (np.abs(dx) <= a) & (np.abs(dy) <= a)


# Each maps offsets from the shape's centre (dx, dy: (m, H, W)), the half-size s and a
# line half-width w (both (m, 1, 1)) to an intensity in [0, 1]. All fit in the box
# |dx|, |dy| <= s, so one placement rule keeps every shape inside the image.
SHAPES = {
    "square": lambda dx, dy, s, w: _box(dx, dy, s),
    "circle": lambda dx, dy, s, w: np.abs(np.hypot(dx, dy) - (s - w)) <= w,
    "hbar": lambda dx, dy, s, w: (np.abs(dy) <= w) & (np.abs(dx) <= s),
    "vbar": lambda dx, dy, s, w: (np.abs(dx) <= w) & (np.abs(dy) <= s),
    "plus": lambda dx, dy, s, w: ((np.abs(dy) <= w) | (np.abs(dx) <= w)) & _box(dx, dy, s),
    "diagonal": lambda dx, dy, s, w: (np.abs(dx - dy) <= 1.4 * w) & _box(dx, dy, s),
    "triangle": lambda dx, dy, s, w: (np.abs(dy) <= s) & (np.abs(dx) <= (dy + s) / 2),
    "x_cross": lambda dx, dy, s, w: ((np.abs(dx - dy) <= 1.4 * w)
                                     | (np.abs(dx + dy) <= 1.4 * w)) & _box(dx, dy, s),
    "checker": lambda dx, dy, s, w: _box(dx, dy, s) & (
        (np.floor((dx + s) / np.maximum(2.0, s / 2)) + np.floor((dy + s) / np.maximum(2.0, s / 2)))
        % 2 == 0),
    "two_dots": lambda dx, dy, s, w: (np.hypot(np.abs(dx) - 0.6 * s, dy) <= 0.35 * s),
    "l_shape": lambda dx, dy, s, w: _box(dx, dy, s) & ((dx <= -s + 2 * w) | (dy >= s - 2 * w)),
    "frame": lambda dx, dy, s, w: _box(dx, dy, s) & ~_box(dx, dy, s - 2 * w),
    "gradient": lambda dx, dy, s, w: _box(dx, dy, s) * np.clip((dx + s) / (2 * s), 0, 1),
    "disc": lambda dx, dy, s, w: np.hypot(dx, dy) <= s,
    "diamond": lambda dx, dy, s, w: np.abs(dx) + np.abs(dy) <= s,
    "stripes": lambda dx, dy, s, w: _box(dx, dy, s) & (np.floor((dy + s) / 2) % 2 == 0),
}
SHAPE_NAMES = tuple(SHAPES)  # class c draws SHAPE_NAMES[c]


@DATASETS.register("shapes")
class Shapes(Dataset):
    """Procedural images, one drawn shape per class (a fast stand-in for story 3).

    Class ``c`` draws ``SHAPE_NAMES[c]``: square, circle, hbar, vbar, plus, diagonal,
    triangle, x_cross, checker, two_dots, l_shape, frame, gradient, disc, diamond,
    stripes. Each image jitters the shape's half-size (``U[0.18, 0.38] * min(H, W)``),
    its centre (anywhere it fits) and its brightness per channel (``U[0.6, 1]``), then
    adds ``N(0, noise^2)`` to every pixel (not clipped), so pixels are roughly in
    ``[0, 1]``. Position and size vary, so a model must learn the shape, not a pixel.

    Parameters
    ----------
    n_samples : int
    n_classes : int
        2 to 16.
    height, width : int
        Image size, at least 8.
    channels : int
        Every channel shows the same shape with its own brightness.
    noise : float
        Standard deviation of the pixel noise.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, n_samples: int = 1300, n_classes: int = 13, height: int = 24,
                 width: int = 32, channels: int = 1, noise: float = 0.1,
                 val_fraction: float = 0.2, subsample: int | None = None,
                 scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.n_classes = _int(n_classes, "n_classes", 2, len(SHAPES))
        self.n_samples = _int(n_samples, "n_samples")
        check(self.n_samples >= self.n_classes, "n_samples", n_samples,
              f"at least n_classes={self.n_classes}")
        self.height = _int(height, "height", 8)
        self.width = _int(width, "width", 8)
        self.channels = _int(channels, "channels")
        self.noise = _nonneg(noise, "noise")

    def _load(self, rng):
        n, C, H, W = self.n_samples, self.channels, self.height, self.width
        y = _balanced_labels(rng, n, self.n_classes)
        images = np.empty((n, C, H, W))
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
        for c in range(self.n_classes):
            idx = np.flatnonzero(y == c)
            m = len(idx)
            s = rng.uniform(0.18, 0.38, (m, 1, 1)) * min(H, W)
            cx = rng.uniform(s, W - 1 - s)
            cy = rng.uniform(s, H - 1 - s)
            w = 0.5 + 0.12 * s
            shape = SHAPES[SHAPE_NAMES[c]](xx - cx, yy - cy, s, w).astype(np.float64)
            images[idx] = rng.uniform(0.6, 1.0, (m, C, 1, 1)) * shape[:, None]
        images += self.noise * rng.standard_normal(images.shape)
        return self._finish(rng, images, y, task="classification", n_classes=self.n_classes,
                            image_shape=(C, H, W))
