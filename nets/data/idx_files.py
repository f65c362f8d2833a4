"""The IDX file format (MNIST's): read and write, plain or gzipped, checked."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from nets.data.downloads import _one_line
from nets.registry import ConfigError

IDX_LABELS, IDX_IMAGES = 0x00000801, 0x00000803   # magic numbers: uint8 1-d and 3-d


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
