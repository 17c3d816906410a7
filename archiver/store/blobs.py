"""The storage interface: where sealed files (WARCs, and the RFC 3161 tokens beside them) are kept.

One interface, one module per engine, the engine chosen once (``from_url``), as fsspec does for filesystems:
``local`` keeps files in a directory (today's ``<archive>/warcs``), ``s3`` in a bucket with Object Lock. Whoever
holds a ``BlobStore`` never asks which engine it is.

What every engine promises:
- ``put_file`` is create-only. A key holds one object for ever: a second put of other bytes under it is refused
  (``AlreadyStored``); a second put of the same bytes (a retry, or a runner settling a seal another runner began)
  answers with the object already there. The bytes are checked against the SHA-256 the caller sealed them with,
  by the server where it can (S3 checks x-amz-checksum-sha256), and by us.
- ``put_file`` never removes the caller's file: the caller removes it once the index holds the capture, so a kill
  between the two leaves the file and the object, and the next runner settles it (design.md principle 2).
- There is no delete. A stored object is evidence; nothing in archiver removes one.
- ``open`` streams; ``sha256_of`` re-hashes a stored object in constant memory; ``list`` yields every key under a
  prefix, in pages, for ``reindex``.
- Failures are named: ``StorageError`` and its kinds below. ``StorageUnavailable`` means the store did not answer
  (or answered 5xx) for longer than ``storage.retry_seconds``; everything else is an answer.

Keys are relative, "/"-separated paths such as ``2026/11/25/01M882R8M3DK93G0RA6VH54WKN.warc.gz``; an engine maps
them under its root (a directory, or the bucket's prefix).
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping
from urllib.parse import urlsplit

from archiver.errors import ArchiverError, ConfigError

__all__ = ["BlobStore", "StoredObject", "ListedObject", "StorageSettings", "StorageError", "AlreadyStored",
           "ChecksumMismatch", "StorageUnavailable", "NotStored", "ReadOnlyStore", "BadKey", "from_url",
           "check_settings", "check_key", "Stores"]

READ_CHUNK = 1 << 20
# S3's limits for one object: parts of 5 MiB to 5 GiB, at most 10 000 of them; one PUT of at most 5 GiB.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024 ** 3
MAX_PARTS = 10_000
RETENTION_MODES = ("COMPLIANCE", "GOVERNANCE", "")


# ---- errors ----------------------------------------------------------------------------------------------------

class StorageError(ArchiverError):
    """The store refused or failed an operation. Not the user's input, so the CLI exits 1 with this one line."""

    exit_code = 1


class AlreadyStored(StorageError):
    """A create-only put found the key taken by other bytes (or bytes it cannot compare). ``existing`` describes
    the object there, when the store could say."""

    def __init__(self, message: str, key: str, existing: StoredObject | None = None):
        super().__init__(message)
        self.key = key
        self.existing = existing


class ChecksumMismatch(StorageError):
    """The bytes are not the ones sealed: the server reported another checksum, a read-back hashed to another
    SHA-256, or the local file no longer hashes to what it was sealed with."""

    def __init__(self, message: str, key: str, expected: str, got: str):
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.got = got


class StorageUnavailable(StorageError):
    """The store did not answer, or answered 5xx / SlowDown, for longer than the retry bound. Retryable later:
    nothing was decided."""


class NotStored(StorageError):
    """No object under that key."""


class ReadOnlyStore(StorageError):
    """A put on a store opened read-only (verify, reindex, export)."""


class BadKey(StorageError):
    """A key that is not a plain relative path (absolute, "..", empty segments, control characters)."""


# ---- what stores answer ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredObject:
    """What a store says about one stored object, without reading it.

    ``sha256`` is the hex SHA-256 of the whole object when the store knows it without reading the bytes: on S3 the
    server-checked checksum of an object PUT in one piece, else the value we recorded in its metadata at upload
    (``sha256_source`` says which: "server", "metadata" or None). ``checksum`` is the store's own checksum as it
    reports it (S3: base64), ``checksum_type`` "FULL_OBJECT" or "COMPOSITE" (a multipart object's: the SHA-256 of its
    parts' SHA-256s, "<base64>-<parts>"). ``locked_until`` and
    ``lock_mode`` are the Object Lock retention; ``read_only`` is true where nothing can change the bytes through
    ordinary means (a read-only file; a locked object). ``already_present``: a put found these same bytes there.
    """

    key: str
    size: int
    location: str
    sha256: str | None = None
    sha256_source: str | None = None
    checksum: str | None = None
    checksum_type: str | None = None
    version_id: str | None = None
    lock_mode: str | None = None
    locked_until: datetime | None = None
    read_only: bool = False
    already_present: bool = False


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int


# ---- settings ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StorageSettings:
    """The [storage] section, checked (config/default.toml documents each)."""

    url: str = ""
    endpoint_url: str = ""
    region: str = ""
    retention_mode: str = "COMPLIANCE"
    retention_days: int = 3650
    multipart_threshold_bytes: int = 512 * 1024 * 1024
    part_size_bytes: int = 64 * 1024 * 1024
    retry_seconds: float = 60.0
    timeout_seconds: float = 60.0
    read_back: bool = False

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> StorageSettings:
        check_settings(section)
        return cls(**{name: section[name] for name in cls.__dataclass_fields__ if name in section})


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def check_settings(section: Mapping[str, Any]) -> None:
    """Values of the right type that still cannot work, named as the setting they came from (ConfigError)."""
    url = section.get("url", "")
    if url:
        _parse_url(url)
    endpoint = section.get("endpoint_url", "")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"setting storage.endpoint_url must be an http:// or https:// URL, got {endpoint!r}")
        if parts.username or parts.password:
            raise ConfigError("setting storage.endpoint_url must not hold credentials: they come from boto3's standard "
                              "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role)")
    region = section.get("region", "")
    if region and not re.fullmatch(r"[a-z0-9-]{2,40}", region):
        raise ConfigError(f"setting storage.region must be a region name such as eu-west-1, got {region!r}")
    mode = section.get("retention_mode", "COMPLIANCE")
    if mode not in RETENTION_MODES:
        raise ConfigError(f"setting storage.retention_mode must be \"COMPLIANCE\", \"GOVERNANCE\" or \"\" (none), "
                          f"got {mode!r}")
    days = section.get("retention_days", 1)
    if days < 0 or (mode and days == 0):
        raise ConfigError(f"setting storage.retention_days must be a positive number of days when retention_mode is "
                          f"{mode!r}, got {days!r}")
    part = section.get("part_size_bytes", MIN_PART_BYTES)
    if not MIN_PART_BYTES <= part <= MAX_PART_BYTES:
        raise ConfigError(f"setting storage.part_size_bytes must be between {MIN_PART_BYTES} (5 MiB) and "
                          f"{MAX_PART_BYTES} (5 GiB), S3's limits for a part, got {part!r}")
    threshold = section.get("multipart_threshold_bytes", MAX_PART_BYTES)
    if not part <= threshold <= MAX_PART_BYTES:
        raise ConfigError(f"setting storage.multipart_threshold_bytes must be at least part_size_bytes ({part}) and at "
                          f"most {MAX_PART_BYTES} (5 GiB, the largest single PUT), got {threshold!r}")
    for name in ("retry_seconds", "timeout_seconds"):
        value = section.get(name, 1.0)
        if value < 0 or (name == "timeout_seconds" and value == 0):
            raise ConfigError(f"setting storage.{name} must be a positive number of seconds, got {value!r}")


def _parse_url(url: str) -> tuple[str, str, str]:
    """("file", path, "") or ("s3", bucket, prefix); ConfigError naming storage.url otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc or not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise ConfigError(f"setting storage.url: {parts.netloc!r} is not an S3 bucket name (3-63 characters: "
                              f"lower-case letters, digits, '.', '-'), in {url!r}")
        if parts.query or parts.fragment or parts.username:
            raise ConfigError(f"setting storage.url must be s3://bucket or s3://bucket/prefix, got {url!r}")
        prefix = parts.path.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except BadKey as exc:
                raise ConfigError(f"setting storage.url: prefix {prefix!r}: {exc}") from None
        return "s3", parts.netloc, prefix
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"setting storage.url: a file:// URL names a path on this host, got {url!r}")
        return "file", parts.path, ""
    if parts.scheme and len(parts.scheme) > 1:  # a Windows drive letter is not a scheme
        raise ConfigError(f"setting storage.url must be empty (<archive>/warcs), a directory, file:///path or "
                          f"s3://bucket/prefix, got {url!r}")
    return "file", url, ""


_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_key(key: str) -> str:
    """The key, if it is a plain relative path; BadKey otherwise. Keeps a key from escaping a store's root."""
    if not isinstance(key, str) or not key or len(key) > 900:
        raise BadKey(f"not a storage key: {key!r}")
    if key.startswith("/") or _BAD_KEY_CHARS.search(key):
        raise BadKey(f"storage key must be a relative path without control characters or backslashes: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise BadKey(f"storage key must not have empty, '.' or '..' segments: {key!r}")
    return key


# ---- the interface -----------------------------------------------------------------------------------------------

class BlobStore(ABC):
    """One store of sealed files. Engines: ``local.LocalStore``, ``s3.S3Store``; ``from_url`` chooses."""

    url: str
    read_only: bool

    def put_file(self, key: str, path: Path, sha256: str, *, content_type: str | None = None) -> StoredObject:
        """Store the sealed file at ``path`` under ``key``, create-only, checked against ``sha256`` (hex).
        Leaves ``path`` in place. Raises AlreadyStored, ChecksumMismatch, StorageUnavailable, ReadOnlyStore."""
        check_key(key)
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is open read-only; refusing to store {key}")
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a hex SHA-256: {sha256!r}")
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StorageError(f"cannot store {key}: the sealed file {path} is gone") from None
        return self._put(key, path, sha256, size, content_type or content_type_for(key))

    @abstractmethod
    def _put(self, key: str, path: Path, sha256: str, size: int, content_type: str) -> StoredObject:
        """The engine's create-only put of a checked key from an existing file (put_file checked the rest)."""

    @abstractmethod
    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A binary stream of the stored object (use as a context manager). NotStored if there is none."""

    @abstractmethod
    def head(self, key: str, version_id: str | None = None) -> StoredObject:
        """What the store says about the object, without reading its bytes. NotStored if there is none."""

    def read_range(self, key: str, offset: int, length: int, version_id: str | None = None) -> bytes:
        """``length`` bytes of the object from ``offset`` (fewer at its end): one WARC record, read where the index
        says it is, without reading the rest of the object (engines read just the range)."""
        with self.open(key, version_id) as stream:
            stream.seek(offset) if stream.seekable() else stream.read(offset)
            return stream.read(length)

    def open_range(self, key: str, offset: int, version_id: str | None = None) -> BinaryIO:
        """A binary stream of the stored object from byte ``offset`` to its end (use as a context manager): one
        request however much is read, for readers that stream a part of a large object (a video served by
        ranges). Engines open just that part; this default skips to it."""
        stream = self.open(key, version_id)
        if stream.seekable():
            stream.seek(offset)
        else:
            while offset > 0 and (skipped := len(stream.read(min(offset, READ_CHUNK)))):
                offset -= skipped
        return stream

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ListedObject]:
        """Every stored key under ``prefix`` (a key prefix, "" for all), sorted, fetched page by page."""

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotStored:
            return False
        return True

    def sha256_of(self, key: str, version_id: str | None = None) -> tuple[str, int]:
        """Re-hash a stored object as stored: (hex SHA-256, size), read in 1 MiB pieces (constant memory)."""
        import hashlib
        digest = hashlib.sha256()
        size = 0
        with self.open(key, version_id) as stream:
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def verify(self, key: str, sha256: str, version_id: str | None = None) -> int:
        """Re-hash the stored object and compare with ``sha256``: its size, or ChecksumMismatch."""
        got, size = self.sha256_of(key, version_id)
        if got != sha256:
            raise ChecksumMismatch(f"{self.location(key)}: stored bytes hash to {got}, sealed as {sha256}",
                                   key, sha256, got)
        return size

    @abstractmethod
    def location(self, key: str) -> str:
        """Where the object is, for people and for the index: a path, or s3://bucket/key."""

    def fetch_command(self, key: str, version_id: str | None, out: str) -> str | None:
        """A shell command that copies the object (that version) to the file ``out`` without archiver, for people
        checking a capture by hand; None when the object already is a file they can read (a directory store)."""
        return None

    def write_once(self) -> bool | None:
        """Whether the store itself keeps stored objects from being changed or deleted (S3: Object Lock enabled on the
        bucket); None when it cannot tell (a directory: only its files' modes; a role not allowed to ask)."""
        return None


def content_type_for(key: str) -> str:
    """The media type stored with an object, from its name (what S3 serves it as)."""
    if key.endswith((".warc.gz", ".warc")):
        return "application/warc"
    if key.endswith(".tsr"):
        return "application/timestamp-reply"
    return "application/octet-stream"


def from_url(url: str | None, settings: Any = None, *, archive_dir: Path | None = None,
             read_only: bool = False) -> BlobStore:
    """The store a URL names, with its engine's settings: "" (``archive_dir``/warcs), a directory path (relative
    to ``archive_dir``) or file:///path -> LocalStore; s3://bucket/prefix -> S3Store. ``settings`` is the
    archive's Settings, its [storage] section as a mapping, or a StorageSettings (None: the defaults).
    ``read_only``: every put is refused (verify, reindex and export never write)."""
    storage = _storage_settings(settings)
    url = storage.url if url is None else url
    if not url:
        if archive_dir is None:
            raise ConfigError("setting storage.url is empty, which means <archive>/warcs, but no archive was given")
        url = str(archive_dir / "warcs")
    kind, where, prefix = _parse_url(url)
    if kind == "s3":
        from archiver.store.s3 import S3Store  # boto3 is imported only when an S3 store is asked for
        return S3Store(where, prefix, storage, read_only=read_only)
    from archiver.store.local import LocalStore
    path = Path(where)
    if not path.is_absolute():
        if archive_dir is None:
            raise ConfigError(f"setting storage.url: relative path {where!r} needs an archive directory")
        path = archive_dir / path
    return LocalStore(path, read_only=read_only)


def _storage_settings(settings: Any) -> StorageSettings:
    if settings is None:
        return StorageSettings()
    if isinstance(settings, StorageSettings):
        return settings
    if hasattr(settings, "as_dict"):  # archiver.config.Settings
        return StorageSettings.from_section(settings["storage"])
    if "storage" in settings and isinstance(settings["storage"], Mapping):
        return StorageSettings.from_section(settings["storage"])
    return StorageSettings.from_section(settings)


class Stores:
    """The stores a command reads captures from, each opened once (``from_url``) and read-only: a capture names its
    own (schema 7's ``warc_store``), so captures sealed before the settings changed are read where they are.
    ``storage``: the [storage] settings, checked (None without settings)."""

    def __init__(self, archive_dir: Path, settings: Any) -> None:
        self.archive_dir, self.settings = archive_dir, settings
        self._open: dict[str, BlobStore] = {}
        self.storage = _storage_settings(settings) if settings is not None else None

    def of(self, url: str) -> BlobStore:
        if url not in self._open:
            self._open[url] = from_url(url, self.settings, archive_dir=self.archive_dir, read_only=True)
        return self._open[url]
