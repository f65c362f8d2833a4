"""Datasets: one registry entry per source of examples, each returning a split ``Data``.

A config says ``{"name": "mnist", "split": "test", "val_fraction": 0}``;
``DATASETS.build(spec).load(rng)`` reads or generates the arrays, then one shared
``Dataset._finish`` applies the options every dataset has:

1. ``subsample`` -- keep that many samples, drawn without replacement;
2. ``val_fraction`` -- carve the validation set out (stratified by class for
   classification); ``0`` means *validate on the training set itself*;
3. ``scaling`` -- standardise or min-max the features with statistics of the
   training part only, applied to both parts.

Every random choice (synthetic points, subsample, split) comes from the ``rng`` passed
to ``load``, never from the global ``np.random`` state, so one seed gives the same
arrays on every machine.

Images are flattened in ``(C, H, W)`` order, so ``X.reshape(-1, *image_shape)`` gives the
image batch back. Classification labels are ``int64`` class indices ``0..n_classes-1``;
regression targets are ``float64`` ``(n_samples, n_outputs)``.

The package is numpy-only. Its modules: ``base`` (Data, Dataset, shared options),
``images`` (digits, mnist), ``idx_files`` and ``csv_files`` (file formats), ``downloads``,
``synthetic`` (blobs, moons, spirals, xor, regression sets) and ``shapes``. Importing the
package registers every dataset.
"""

from nets.data import csv_files, images, shapes, synthetic  # noqa: F401 - register every dataset
from nets.data.base import DATASETS, SCALINGS, TASKS, Data, Dataset
from nets.data.idx_files import read_idx, write_idx
from nets.data.images import (
           MNIST,
           MNIST_FILES,
           MNIST_MD5,
           MNIST_SPLITS,
           MNIST_URL,
           Digits,
)
from nets.data.synthetic import TinyRegression

__all__ = ["DATASETS", "SCALINGS", "TASKS", "Data", "Dataset", "read_idx", "write_idx",
           "MNIST", "MNIST_FILES", "MNIST_MD5", "MNIST_SPLITS", "MNIST_URL", "Digits",
           "TinyRegression"]
