"""One sha256 helper and one ``ChecksumError`` for every file recbook verifies: public data
(:mod:`recbook.datasets`) and pretrained model files (:mod:`recbook.text`)."""

from __future__ import annotations

import hashlib
from pathlib import Path


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
