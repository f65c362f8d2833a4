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

This module is numpy-only; scikit-learn is imported lazily, and only by ``digits``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nets.registry import Component, ConfigError, check, registry, suggest

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

def _is_int(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (float, np.floating)):
        return float(v).is_integer()
    return isinstance(v, (int, np.integer))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _int(v: Any, key: str, lo: int = 1, hi: int | None = None) -> int:
    rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    check(_is_int(v) and v >= lo and (hi is None or v <= hi), key, v, rng)
    return int(v)


def _nonneg(v: Any, key: str) -> float:
    check(_is_number(v) and np.isfinite(v) and v >= 0, key, v, "a number >= 0")
    return float(v)


def _positive(v: Any, key: str) -> float:
    check(_is_number(v) and np.isfinite(v) and v > 0, key, v, "a number > 0")
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
        check(_is_number(val_fraction) and 0 <= val_fraction < 1, "val_fraction",
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
        check(isinstance(rng, np.random.Generator) or _is_int(rng), "rng", rng,
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

@DATASETS.register("digits")
class Digits(Dataset):
    """scikit-learn's bundled 8x8 handwritten digits: 1797 images, 10 classes.

    ``image_shape = (1, 8, 8)``; pixels are integers 0..16 times ``scale``.

    Parameters
    ----------
    scale : float
        Multiplier for the pixels; the default 1/16 puts them in ``[0, 1]``.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, scale: float = 1 / 16, val_fraction: float = 0.2,
                 subsample: int | None = None, scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.scale = _positive(scale, "scale")

    def _load(self, rng):
        from sklearn.datasets import load_digits  # lazy: the only sklearn use in the core

        d = load_digits()
        return self._finish(rng, d.data * self.scale, d.target, task="classification",
                            n_classes=10, image_shape=(1, 8, 8))


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MNIST_MD5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
MNIST_SPLITS = ("train", "test", "all")
IDX_LABELS, IDX_IMAGES = 0x00000801, 0x00000803


@DATASETS.register("mnist")
class MNIST(Dataset):
    """MNIST from the official IDX files: 28x28 digits, 10 classes.

    Each file is looked for in ``path``, then in ``cache_dir`` (gzipped, or unzipped
    under the same name without ``.gz``). Missing files are downloaded into
    ``cache_dir`` from ``MNIST_URL`` when ``download`` is on, checked against the
    published MD5 and renamed into place only when complete.

    Parameters
    ----------
    path : str or None
        Directory holding the ``*-idx?-ubyte.gz`` files.
    split : {"train", "test", "all"}
        Which official split to read (60,000 / 10,000 / both = 70,000 images); the
        validation set is carved out of it with ``val_fraction``. Story 4's 9.8% is
        ``split="test", val_fraction=0`` (980 of the 10,000 test digits are zeros).
    cache_dir : str
        Where downloads go and the second place looked in.
    download : bool
        Fetch missing files (never needed when ``path`` has them).
    verify : bool
        Check files with the canonical names against the published MD5s; turn off
        only for hand-made files under those names (tests).
    scale : float
        Multiplier for the uint8 pixels; the default 1/255 puts them in ``[0, 1]``.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, path: str | None = None, split: str = "train",
                 cache_dir: str = "~/.cache/nets/mnist", download: bool = True,
                 verify: bool = True, scale: float = 1 / 255, val_fraction: float = 0.2,
                 subsample: int | None = None, scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.path = _as_path(path, "path", required=False)
        self.split = _choice(split, "split", MNIST_SPLITS)
        self.cache_dir = _as_path(cache_dir, "cache_dir")
        self.download = _bool(download, "download")
        self.verify = _bool(verify, "verify")
        self.scale = _positive(scale, "scale")

    def _load(self, rng):
        parts = ["train", "test"] if self.split == "all" else [self.split]
        files = self._locate([f for p in parts for f in MNIST_FILES[p]])
        Xs, ys, shape = [], [], None
        for p in parts:
            img_name, lab_name = MNIST_FILES[p]
            images = read_idx(files[img_name], IDX_IMAGES)
            labels = read_idx(files[lab_name], IDX_LABELS)
            if len(images) != len(labels):
                raise ConfigError("", None, f"{files[img_name]} has {len(images)} images but "
                                  f"{files[lab_name]} has {len(labels)} labels; "
                                  "they must come from the same split")
            if labels.size and labels.max() > 9:
                raise ConfigError("", None, f"{files[lab_name]}: label {int(labels.max())} "
                                  "is not a digit 0-9")
            if shape is not None and images.shape[1:] != shape:
                raise ConfigError("", None, f"{files[img_name]}: images are "
                                  f"{images.shape[1:]}, the other split's are {shape}")
            shape = images.shape[1:]
            Xs.append(np.multiply(images.reshape(len(images), -1), self.scale,
                                  dtype=np.float64))
            ys.append(labels)
        X, y = (Xs[0], ys[0]) if len(Xs) == 1 else (np.concatenate(Xs), np.concatenate(ys))
        return self._finish(rng, X, y, task="classification", n_classes=10,
                            image_shape=(1, *shape))

    def _locate(self, names: list[str]) -> dict[str, Path]:
        """Path of each file: ``path``, then ``cache_dir``, then a download."""
        cache = Path(self.cache_dir).expanduser()
        dirs = ([Path(self.path).expanduser()] if self.path else []) + [cache]
        if self.path and Path(self.path).expanduser().is_file():
            raise ConfigError("dataset.path", self.path,
                              "a directory holding the MNIST .gz files, not a file")
        found = {n: _first_file(n, dirs) for n in names}
        missing = [n for n, f in found.items() if f is None]
        if missing:
            target = dirs[0]
            looked = " or ".join(str(d) for d in dict.fromkeys(dirs))
            if not self.download:
                reason = "download is off (dataset.download=false)"
            else:
                reason = ""
                try:
                    for n in missing:
                        found[n] = _download(MNIST_URL + n, cache / n, MNIST_MD5.get(n))
                except (OSError, http.client.HTTPException) as e:
                    reason = f"downloading from {MNIST_URL} failed ({_one_line(e)})"
            if reason:
                raise ConfigError("", None, f"MNIST file(s) {', '.join(missing)} not found "
                                  f"in {looked} and {reason}: put them in {target}")
        if self.verify:
            for n, f in found.items():
                if f.name in MNIST_MD5:
                    _check_md5(f, MNIST_MD5[f.name])
        return found


def _first_file(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / name, d / name.removesuffix(".gz")):
            if cand.is_file():
                return cand
    return None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_md5(path: Path, want: str) -> None:
    got = _md5(path)
    if got != want:
        raise ConfigError("", None, f"{path}: MD5 {got} does not match the official "
                          f"{path.name} ({want}); the file is corrupt or not the real one: "
                          "delete it to download again, or set dataset.verify=false for "
                          "your own file")


def _download(url: str, dest: Path, md5: str | None) -> Path:
    """Fetch ``url`` to ``dest`` via a temporary file renamed only once complete and
    checked, so an interrupted download never leaves a half file under the real name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if md5 is not None and h.hexdigest() != md5:
            raise ConfigError("", None, f"downloaded {url} has MD5 {h.hexdigest()}, expected "
                              f"{md5}; nothing was saved to {dest}")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes.

    Format: big-endian ``uint32`` magic ``0x000008NN`` (``0x08`` = unsigned byte, ``NN``
    = number of dimensions), one big-endian ``uint32`` per dimension, then the data in
    C order.

    Parameters
    ----------
    path : path-like
    magic : int
        Expected magic number: ``0x801`` for labels ``(n,)``, ``0x803`` for images
        ``(n, rows, cols)``.

    Returns
    -------
    ndarray of uint8, shape given by the header

    Raises
    ------
    ConfigError
        Unreadable file, wrong magic number, or a size that differs from the header's.
    """
    path = Path(path)
    what = {IDX_LABELS: "label", IDX_IMAGES: "image"}.get(magic, "IDX")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ConfigError("", None, f"{path}: cannot read it ({_one_line(e)}); "
                          "the download is probably incomplete: delete it and retry") from None
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        got = f"0x{int.from_bytes(raw[:4], 'big'):08x}" if len(raw) >= 4 else "nothing"
        raise ConfigError("", None, f"{path}: bad magic number {got}, expected 0x{magic:08x} "
                          f"for an IDX {what} file; is it the right file?")
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ConfigError("", None, f"{path}: truncated: {len(raw)} bytes, shorter than "
                          f"its {head}-byte header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head != size:
        state = "truncated" if len(raw) - head < size else "too long"
        raise ConfigError("", None, f"{path}: {state}: the header promises "
                          f"{'x'.join(map(str, dims))} = {size} bytes of data, the file has "
                          f"{len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=head).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` (uint8, 1-D labels or 3-D images) as an IDX file.

    Gzipped when ``compress`` is true, or by default when the name ends in ``.gz``.
    The inverse of ``read_idx``; used to make small MNIST-format files.
    """
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = (0x0800 | a.ndim).to_bytes(4, "big") + np.asarray(a.shape, ">u4").tobytes() \
        + a.tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)


@DATASETS.register("csv")
class CSV(Dataset):
    """Numbers from a delimited text file, one sample per row (story 4's MNIST CSV).

    Blank lines are skipped; every other row needs the same number of columns and only
    numbers (no missing values, no NaN).

    Parameters
    ----------
    path : str
        The file.
    label_column : int
        Column holding the label or target, 0-based; negative counts from the end
        (``-1`` = last). The remaining columns are the features, in file order.
    header : bool or None
        Whether the first non-blank line is a header to skip. ``None`` (default) decides
        from the line itself: it is a header when any field is not a number.
    delimiter : str
        Field separator.
    scale : float
        Multiplier for the features (``0.00392156862745098`` = 1/255 for pixels).
    image_shape : list of 3 int or None
        ``[C, H, W]`` of the features, so a CNN can use them; must multiply out to the
        number of feature columns.
    task : {"classification", "regression"}
        Classification labels must be non-negative integers, used as class indices as
        they are (no remapping); ``n_classes`` is then ``max label + 1``. Regression
        targets are any finite numbers, shape ``(n, 1)``.
    n_classes : int or None
        Number of classes when some are absent from the file; labels must be below it.
    val_path : str or None
        A second file (same layout) used as the validation set, e.g. ``mnist_test.csv``;
        ``val_fraction`` must then be 0. ``subsample`` and the header rule apply to
        ``path`` only and each file, respectively.
    val_fraction, subsample, scaling
        See ``Dataset``.
    """

    def __init__(self, path: str | None = None, label_column: int = 0,
                 header: bool | None = None, delimiter: str = ",", scale: float = 1.0,
                 image_shape: list[int] | None = None, task: str = "classification",
                 n_classes: int | None = None, val_path: str | None = None,
                 val_fraction: float = 0.2, subsample: int | None = None,
                 scaling: str = "none"):
        super().__init__(val_fraction, subsample, scaling)
        self.path = _as_path(path, "path")
        check(_is_int(label_column), "label_column", label_column,
              "an integer column index (0 = first, -1 = last)")
        self.label_column = int(label_column)
        check(header is None or isinstance(header, (bool, np.bool_)), "header", header,
              "true, false or null (null = a header when the first line is not all numbers)")
        self.header = None if header is None else bool(header)
        check(isinstance(delimiter, str) and len(delimiter) == 1, "delimiter", delimiter,
              "one character")
        self.delimiter = delimiter
        self.scale = _positive(scale, "scale")
        if image_shape is not None:
            ok = (not isinstance(image_shape, (str, bytes)) and hasattr(image_shape, "__len__")
                  and len(image_shape) == 3 and all(_is_int(v) and v >= 1 for v in image_shape))
            check(ok, "image_shape", image_shape, "null or [C, H, W], three positive integers")
            image_shape = [int(v) for v in image_shape]
        self.image_shape = image_shape
        self.task = _choice(task, "task", TASKS)
        self.n_classes = None if n_classes is None else _int(n_classes, "n_classes", 2)
        check(n_classes is None or task == "classification", "n_classes", n_classes,
              "null for task=regression")
        self.val_path = _as_path(val_path, "val_path", required=False)
        check(val_path is None or self.val_fraction == 0, "val_fraction", val_fraction,
              "0 when val_path is set", "the validation set comes from val_path")

    def _load(self, rng):
        X, y, n_max = self._read(self.path, "path")
        Xv = yv = None
        if self.val_path is not None:
            Xv, yv, n_max_v = self._read(self.val_path, "val_path")
            if Xv.shape[1] != X.shape[1]:
                raise ConfigError("dataset.val_path", self.val_path,
                                  f"has {Xv.shape[1]} feature columns, {self.path} has "
                                  f"{X.shape[1]}")
            n_max = max(n_max, n_max_v)
        n_classes = None
        if self.task == "classification":
            n_classes = self.n_classes if self.n_classes is not None else max(2, n_max + 1)
        if self.image_shape is not None and int(np.prod(self.image_shape)) != X.shape[1]:
            raise ConfigError("dataset.image_shape", self.image_shape,
                              f"must multiply out to the {X.shape[1]} feature columns of "
                              f"{self.path}")
        return self._finish(rng, X, y, task=self.task, n_classes=n_classes,
                            image_shape=self.image_shape, X_val=Xv, y_val=yv)

    def _read(self, path: str, key: str) -> tuple[np.ndarray, np.ndarray, int]:
        """``(X, y, largest label)`` from one file, every problem reported with its line."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"dataset.{key}", path, "is a directory, not a CSV file"
                              if p.is_dir() else "no such file")
        first = next(_csv_rows(p, self.delimiter, 0), None)
        if first is None:
            raise ConfigError("", None, f"{p}: the file is empty")
        header_line, row = first
        has_header = self.header if self.header is not None else not all(map(_is_float, row))
        skip = header_line if has_header else 0
        if has_header and next(_csv_rows(p, self.delimiter, skip), None) is None:
            raise ConfigError("", None, f"{p}: no data rows after the header line")
        try:
            data = np.loadtxt(p, delimiter=self.delimiter, skiprows=skip, ndmin=2,
                              dtype=np.float64, comments=None, quotechar='"',
                              encoding="utf-8-sig")
        except ValueError as e:
            # loadtxt's row numbers skip blank lines; rescan to report the real line.
            _raise_first_bad_row(p, self.delimiter, skip)
            raise ConfigError("", None, f"{p}: {_one_line(e)}") from None
        ncol = data.shape[1]
        if ncol < 2:
            raise ConfigError("", None, f"{p}: one column per row; need a label column "
                              "and at least one feature column (wrong delimiter?)")
        lc = self.label_column
        if not -ncol <= lc < ncol:
            raise ConfigError("dataset.label_column", lc, f"{p} has {ncol} columns "
                              f"(0..{ncol - 1}, or -1 for the last)")
        lc %= ncol

        def fail(rows: np.ndarray, what: str) -> None:
            k = int(np.flatnonzero(rows)[0])
            raise ConfigError("", None, f"{p} line {_line_of_row(p, self.delimiter, skip, k)}"
                              f": {what}")

        bad = ~np.isfinite(data)
        if bad.any():
            fail(bad.any(axis=1), "NaN or infinite value")
        labels = data[:, lc]
        X = np.delete(data, lc, axis=1)
        if self.scale != 1.0:
            X *= self.scale
        if self.task == "regression":
            return X, labels[:, None], 0
        bad = (labels < 0) | (labels != np.round(labels))
        if bad.any():
            v = labels[np.flatnonzero(bad)[0]]
            fail(bad, f"label {v:g} in column {lc + 1} is not a class index 0, 1, 2, ... "
                 "(task=classification; use task=regression for real-valued targets, or "
                 "check label_column)")
        if self.n_classes is not None and (labels >= self.n_classes).any():
            v = labels[np.flatnonzero(labels >= self.n_classes)[0]]
            fail(labels >= self.n_classes, f"label {v:g} is not below "
                 f"dataset.n_classes={self.n_classes}")
        return X, labels.astype(np.int64), int(labels.max())


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _csv_rows(path: Path, delimiter: str, skip_lines: int) -> Iterator[tuple[int, list[str]]]:
    """``(1-based line number, fields)`` of each non-blank row after ``skip_lines`` lines.

    Blank means an empty line, as in ``np.loadtxt``; a line of spaces is a malformed row.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        for row in reader:
            if reader.line_num > skip_lines and row:
                yield reader.line_num, row


def _raise_first_bad_row(path: Path, delimiter: str, skip: int) -> None:
    width = None
    for line, row in _csv_rows(path, delimiter, skip):
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise ConfigError("", None, f"{path} line {line}: {len(row)} columns, the rows "
                              f"above have {width}")
        for j, field in enumerate(row):
            if not _is_float(field):
                hint = (f" (wrong delimiter? dataset.delimiter={delimiter!r})"
                        if any(c in field for c in ",;\t|" if c != delimiter) else "")
                raise ConfigError("", None, f"{path} line {line}, column {j + 1}: "
                                  f"{field!r} is not a number{hint}")


def _line_of_row(path: Path, delimiter: str, skip: int, k: int) -> int:
    for i, (line, _) in enumerate(_csv_rows(path, delimiter, skip)):
        if i == k:
            return line
    return -1


# ---------------------------------------------------------------------------------------
# Synthetic 2-D classification

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
