"""Small data files the tests write (imported by several test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_mnist(directory: Path, n: int = 40) -> Path:
    """Valid MNIST-format IDX files (train split, ``n`` random images) in ``directory``."""
    from nets.data import MNIST_FILES, write_idx

    directory.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(0)
    img, lab = MNIST_FILES["train"]
    write_idx(directory / img, r.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(directory / lab, (np.arange(n) % 10).astype(np.uint8))
    return directory
