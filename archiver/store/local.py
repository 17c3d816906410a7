"""The local engine: sealed files in a directory (``<archive>/warcs`` by default), as archiver has always kept them.

Create-only without a race: the sealed file is hard-linked to its final name (link(2) fails with EEXIST when the
name is taken, atomically, where a check-then-rename could overwrite), then the directory is fsynced so the new
name survives a power cut. Linking copies nothing, however large the file; the caller's name for it stays until
the caller removes it (blobs.py: put never removes the source). Across filesystems, where a link cannot be made,
the file is copied beside its final name as ``.part``, hashed as it is copied, fsynced, and linked into place the
same way; a ``.part`` name is never a stored object.
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

# The sealed file's own hashing and the directory fsync of sealing: one definition of each for both (and no
# warcio: show and search read local stores).
from archiver.store.files import fsync_dir, sha256_file
from archiver.store.blobs import (READ_CHUNK, AlreadyStored, BlobStore, ChecksumMismatch, ListedObject, NotStored,
                                  StorageError, StoredObject, check_key)

PART_SUFFIX = ".part"
READ_ONLY_MODE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class LocalStore(BlobStore):
    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.url = self.root.as_uri() if self.root.is_absolute() else str(self.root)

    def location(self, key: str) -> str:
        return str(self._path(key))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    # -- writing

    def _put(self, key: str, path: Path, sha256: str, size: int, content_type: str) -> StoredObject:
        final = self._path(key)
        try:
            # A sealed file is read-only before it is placed (the sealer made it so; making sure costs nothing).
            os.chmod(path, READ_ONLY_MODE)
            self._make_dirs(final.parent)
            try:
                os.link(path, final)
            except FileExistsError:
                return self._settle_existing(key, final, path, sha256)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self._copy_into_place(key, path, final, sha256)
            fsync_dir(final.parent)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not path.exists():
                raise StorageError(f"cannot store {key}: the sealed file {path} is gone") from None
            raise StorageError(f"cannot store {key} at {final}: {exc.strerror or exc}") from None
        return self.head(key)

    def _settle_existing(self, key: str, final: Path, path: Path, sha256: str) -> StoredObject:
        """The key is taken: the same bytes (a retry, or the same file linked already) are success; others never."""
        try:
            if os.path.samefile(final, path):
                return self._already(key)
        except OSError:
            pass
        got, _ = sha256_file(final)
        if got == sha256:
            return self._already(key)
        raise AlreadyStored(f"{final} already holds other bytes (SHA-256 {got}); refusing to store {path} "
                            f"(SHA-256 {sha256}) under {key}", key, self.head(key))

    def _already(self, key: str) -> StoredObject:
        info = self.head(key)
        return StoredObject(**{**info.__dict__, "already_present": True})

    def _copy_into_place(self, key: str, path: Path, final: Path, sha256: str) -> None:
        part = final.with_name(f"{final.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as src, open(part, "xb") as dst:
                while chunk := src.read(READ_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != sha256:
                raise ChecksumMismatch(f"{path} hashes to {digest.hexdigest()}, sealed as {sha256}: not storing it "
                                       f"as {key}", key, sha256, digest.hexdigest())
            os.chmod(part, READ_ONLY_MODE)
            try:
                os.link(part, final)
            except FileExistsError:
                self._settle_existing(key, final, part, sha256)
        finally:
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass

    def _make_dirs(self, directory: Path) -> None:
        """Create missing directories, fsyncing each new one's parent so the whole path survives a power cut."""
        missing = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:
                continue
            fsync_dir(new.parent)

    # -- reading

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotStored(f"no stored object {key} in {self.root}") from None

    def read_range(self, key: str, offset: int, length: int, version_id: str | None = None) -> bytes:
        with self.open(key) as fh:
            fh.seek(offset)
            return fh.read(length)

    def head(self, key: str, version_id: str | None = None) -> StoredObject:
        path = self._path(key)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise NotStored(f"no stored object {key} in {self.root}") from None
        return StoredObject(key=key, size=info.st_size, location=str(path),
                            read_only=not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def list(self, prefix: str = "") -> Iterator[ListedObject]:
        # In the order S3 lists keys (by the whole key), so two listings agree and reindex goes in a stable order;
        # a directory is entered only when keys under it can start with the prefix.
        yield from self._walk(self.root, "", prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ListedObject]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        named = sorted((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in entries)
        for name, entry in named:
            key = rel + name
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if name.endswith("/"):
                yield from self._walk(Path(entry.path), key, prefix)
            elif not name.endswith(PART_SUFFIX) and not name.startswith(".") and key.startswith(prefix):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                yield ListedObject(key, size)
