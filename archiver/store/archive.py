"""The archive directory: where index.db, warcs/ and archiver.toml live, and the IDs and versions every
capture records."""
from __future__ import annotations

import functools
import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from archiver import config
from archiver.config import Settings
from archiver.store.engines import open_index
from archiver.store.index import Index

if TYPE_CHECKING:   # blobs is light, but its engines are not: they are imported when a store is asked for
    from archiver.store.blobs import BlobStore

DEFAULT_ARCHIVE = "archive"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_capture_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32. Sorts by time, and two
    machines capturing in the same millisecond still get different IDs."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def software_versions() -> dict[str, str]:
    """The versions of the code this process runs (copied: callers add to it)."""
    return dict(_software_versions())


@functools.cache
def _software_versions() -> dict[str, str]:
    # Once per process: the code running is the code imported at start, even if a package is upgraded on disk
    # meanwhile; and reading every package's metadata again cost a --no-browser capture ~10% of its time.
    # Imported here: importlib.metadata (and the email and zip modules it loads) is for captures, not reads.
    from importlib.metadata import PackageNotFoundError, version as package_version
    out = {"python": platform.python_version()}
    for name in ("archiver", "warcio", "httpx", "playwright", "sqlite-utils", "yt-dlp"):
        try:
            out[name] = package_version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


WARC_PREFIX = "warcs/"


def warc_key(warc_path: str) -> str:
    """The key of a sealed file in its store: its path in the archive's layout without "warcs/" (a store's root
    is what <archive>/warcs is to a local archive). ``warcs/2026/11/25/<id>.warc.gz`` -> ``2026/11/25/<id>.warc.gz``."""
    return warc_path[len(WARC_PREFIX):] if warc_path.startswith(WARC_PREFIX) else warc_path


@dataclass
class Archive:
    path: Path
    settings: Settings
    _stores: dict[tuple[str, bool], Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None) -> "Archive":
        """Resolve the archive directory (argument, $ARCHIVER_HOME, ./archive) and its settings."""
        chosen = Path(path or os.environ.get("ARCHIVER_HOME") or DEFAULT_ARCHIVE).expanduser().absolute()
        settings = config.load(chosen, Path(config_file) if config_file else None)
        return cls(chosen, settings)

    def ensure(self) -> None:
        (self.path / "warcs").mkdir(parents=True, exist_ok=True)

    @property
    def index_path(self) -> Path:
        return self.path / "index.db"

    @property
    def index_url(self) -> str:
        """``[index] url``: empty for the SQLite file ``index_path``; a PostgreSQL URL in team mode."""
        return self.settings["index"]["url"]

    def index(self) -> Index:
        self.ensure()
        return open_index(self.index_url, self.index_path, self.unreachable_gone)

    @property
    def unreachable_gone(self) -> tuple[int, float]:
        """How many unreachable observations over how many hours make an item gone (settings [watch])."""
        watch = self.settings["watch"]
        return watch["unreachable_gone_after"], watch["unreachable_gone_hours"]

    # -- where sealed files are kept (the engine chosen once: blobs.from_url)

    @property
    def storage_url(self) -> str:
        """``[storage] url``: empty for <archive>/warcs, as archiver has always kept its files."""
        return self.settings["storage"]["url"]

    @property
    def seals_to_store(self) -> bool:
        """Whether sealed files go to a store of their own (``[storage] url`` set): then they are put before they
        are indexed (pipeline/sealing.py). Empty: renamed into <archive>/warcs after indexing, as always."""
        return bool(self.storage_url)

    def store(self, read_only: bool = False) -> BlobStore:
        """The store ``[storage] url`` names (one per archive object and mode: an S3 client is not free)."""
        return self._store(self.storage_url, read_only)

    def _store(self, url: str, read_only: bool) -> BlobStore:
        if (url, read_only) not in self._stores:
            from archiver.store import blobs
            self._stores[(url, read_only)] = blobs.from_url(url, self.settings, archive_dir=self.path,
                                                            read_only=read_only)
        return self._stores[(url, read_only)]

    def store_of(self, capture: Mapping[str, Any]) -> BlobStore:
        """The store holding a capture's WARC, read-only: its ``warc_store`` (schema 7), or <archive>/warcs."""
        return self._store(capture.get("warc_store") or str(self.path / "warcs"), True)

    def stored_at(self, capture: Mapping[str, Any]) -> str:
        """Where a capture's WARC is, for people: a path for one in <archive>/warcs, else the store's location."""
        if not capture.get("warc_store"):
            return str(self.path / capture["warc_path"])
        return self.store_of(capture).location(warc_key(capture["warc_path"]))

    def token_at(self, capture: Mapping[str, Any], token_path: str) -> str:
        """Where one of a capture's RFC 3161 tokens is, for people: as indexed (``warcs/...``, under the archive) when
        the capture's WARC is in <archive>/warcs, else its location in the store, where it lies beside that WARC."""
        if not capture.get("warc_store") or not token_path:
            return token_path
        return self.store_of(capture).location(warc_key(token_path))

    def exists(self) -> bool:
        if self.index_url:
            # Team mode: the index is elsewhere. A host's directory is set up by hand (README: copy the archive's
            # keys/ and archiver.toml to it) before anything has made warcs/ there: any of the three marks it.
            return any((self.path / name).exists() for name in ("warcs", "keys", "archiver.toml"))
        return self.index_path.exists()

    def operator(self, requested_by: str | None) -> str:
        if requested_by:
            return requested_by
        if self.settings["archive"]["operator"]:
            return self.settings["archive"]["operator"]
        try:
            return os.getlogin()
        except OSError:
            import pwd
            return pwd.getpwuid(os.getuid()).pw_name
