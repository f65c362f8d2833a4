"""Image sets read from files: scikit-learn's bundled 8x8 digits (read directly) and MNIST (IDX files,
downloaded on request and checksummed)."""

from __future__ import annotations

import functools
import http.client
import importlib.util
from pathlib import Path

import numpy as np

from nets.data.base import DATASETS, Dataset, _as_path, _bool, _choice, _positive
from nets.data.downloads import _check_md5, _download, _first_file, _one_line
from nets.data.idx_files import IDX_IMAGES, IDX_LABELS, read_idx
from nets.registry import ConfigError


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
        data = _digits_array()
        return self._finish(rng, data[:, :-1] * self.scale, data[:, -1].astype(np.int64),
                            task="classification", n_classes=10, image_shape=(1, 8, 8))


@functools.lru_cache(maxsize=1)
def _digits_array() -> np.ndarray:
    """The parsed file, once per process (read-only): a sweep's launcher checks every
    point, and a worker runs job after job, over seeds that each split it anew."""
    data = np.loadtxt(_digits_file(), delimiter=",")
    data.flags.writeable = False
    return data


def _digits_file() -> Path:
    """scikit-learn's bundled ``digits.csv.gz``, found without importing scikit-learn.

    ``import sklearn.datasets`` costs ~1.8 s (scipy, pandas checks) to read a 60 kB file;
    the file's rows are the 64 pixels then the label, exactly what ``load_digits`` parses.
    """
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root, "datasets", "data", "digits.csv.gz")
        if path.is_file():
            return path
    raise ConfigError("dataset.name", "digits", "needs scikit-learn's bundled digits file "
                      "(pip install scikit-learn), or choose another dataset")


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MNIST_MD5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
MNIST_SPLITS = ("train", "test", "all")


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
