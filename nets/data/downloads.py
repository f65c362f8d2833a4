"""Finding dataset files on disk and downloading them, checksummed, without partial files."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from nets.registry import ConfigError


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
