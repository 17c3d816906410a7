"""Two small things every sealed file needs, kept apart from the WARC writer so that reading a local store (show,
search) never imports warcio: its SHA-256 read back from disk, and a durable directory entry."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20        # bytes read at a time when hashing (large reads: hashing runs near OpenSSL's own speed)


def sha256_file(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read in chunks (constant memory for any size)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingReader:
    """A stream that hashes what is read through it, so that a sealed file read once -- from a store, over the
    network -- is both parsed and re-hashed (verify, reindex). ``drain`` reads the rest: (hex SHA-256, size)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.digest, self.size = stream, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> tuple[str, int]:
        while self.read(CHUNK):
            pass
        return self.digest.hexdigest(), self.size
