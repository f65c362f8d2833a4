"""Datasets from delimited text files, with line-numbered errors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np

from nets.data.base import (
    DATASETS,
    TASKS,
    Dataset,
    _as_path,
    _choice,
    _int,
    _positive,
)
from nets.data.downloads import _one_line
from nets.registry import ConfigError, check, is_int
from nets.text import cut, show

# Characters of a bad cell quoted in an error: enough to find it, too few to print a
# line of a file that was never meant to be read as data.
CELL = 16


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
        check(is_int(label_column, integral_floats=True), "label_column", label_column,
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
                  and len(image_shape) == 3 and all(is_int(v, 1, integral_floats=True) for v in image_shape))
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
            raise ConfigError("", None, f"{p}: {cut(_one_line(e), 2 * CELL)}") from None
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
                if len(row) == 1:
                    # The whole line is one field: quoting it would print the file
                    # (dataset.path=/etc/passwd); its length says enough.
                    raise ConfigError("", None, f"{path} line {line}: one field of {len(field)} "
                                      f"characters, not a number: not a {delimiter!r}-delimited "
                                      f"file of numbers{hint}")
                raise ConfigError("", None, f"{path} line {line}, column {j + 1}: "
                                  f"{show(field, CELL)} is not a number{hint}")


def _line_of_row(path: Path, delimiter: str, skip: int, k: int) -> int:
    for i, (line, _) in enumerate(_csv_rows(path, delimiter, skip)):
        if i == k:
            return line
    return -1


# ---------------------------------------------------------------------------------------
# Synthetic 2-D classification
