"""One sha256 helper and one ``ChecksumError`` for every file recbook verifies: public data
(:mod:`recbook.datasets`) and pretrained model files (:mod:`recbook.text`); and the folder
and atomic writer for derived files keyed by those hashes (embeddings, parse caches).

Why together: a derived cache is trusted only through the content hash of its inputs, so
where it lives and how it is written belong with the hashing. Downloaded data is not a cache:
it stays in ``data/`` or ``$RECBOOK_DATA`` (:func:`recbook.datasets.data_dir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Environment variable naming the folder for derived caches (default: the user cache folder).
CACHE_ENV = "RECBOOK_CACHE"


class ChecksumError(ValueError):
    """A file whose sha256 differs from the recorded one: it is not the file that was vetted."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes already in memory (hash what you parse, not a second read)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (model weights are ~100 MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Folder for derived caches: ``$RECBOOK_CACHE`` if set, else the user's cache folder
    (``platformdirs.user_cache_dir("recbook")``, e.g. ``~/.cache/recbook`` on Linux), never the
    working directory, where another checkout or user could plant a file."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("recbook"))


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(handle)`` on a unique temporary file beside ``path``, then rename it to
    ``path`` in one step: two processes filling a cache never read or clobber each other's
    half-written file, and a fixed temp name cannot be raced or pre-planted as a link."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
