"""The archive directory: where index.db, warcs/ and archiver.toml live, and the IDs and versions every
capture records."""
from __future__ import annotations

import functools
import os
import platform
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from archiver import config
from archiver.config import Settings
from archiver.store.engines import open_index
from archiver.store.index import Index

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


@dataclass
class Archive:
    path: Path
    settings: Settings

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

    def exists(self) -> bool:
        if self.index_url:   # team mode: the index is elsewhere; the directory holds the keys and WARCs
            return (self.path / "warcs").is_dir()
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
