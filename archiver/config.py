"""Settings: config/default.toml <- <archive>/archiver.toml <- --config FILE <- ARCHIVER_<SECTION>_<KEY>.

The default file is the schema: a key it does not define is unknown, and every override must have the
type of the default it replaces. Errors name the key and its source, so a typo in a cron environment is
found at once instead of being silently ignored.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from archiver.errors import ConfigError

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "config" / "default.toml"
ENV_PREFIX = "ARCHIVER_"
# Environment variables that are not settings (they choose the archive, belong to the test harness -- the index
# and storage engines of a test run, a runner that kills itself at a step of sealing: pipeline/sealing.py -- or show a failure's
# traceback: cli.main).
ENV_NOT_SETTINGS = {"ARCHIVER_HOME", "ARCHIVER_TRACEBACK", "ARCHIVER_TEST_INDEX", "ARCHIVER_TEST_STORAGE",
                    "ARCHIVER_FAULT_KILL_AT"}
# The section of per-site credentials: [auth."x.com"] tables, one per site (archiver/capture/auth.py).
AUTH_SECTION = "auth"


class Settings:
    """Resolved settings, read as ``settings["queue"]["lease_seconds"]`` or ``settings.get("queue.lease_seconds")``."""

    def __init__(self, data: dict[str, dict[str, Any]], sources: list[str]):
        self._data = data
        self.sources = sources

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self._data[section]

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return self._data[section][key]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return json.loads(json.dumps(self._data))


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check(defaults: dict, section: str, key: str, value: Any, source: str) -> Any:
    if section not in defaults:
        raise ConfigError(f"unknown setting section [{section}] in {source} (known: {', '.join(sorted(defaults))})")
    if key not in defaults[section]:
        raise ConfigError(f"unknown setting {section}.{key} in {source}")
    want = defaults[section][key]
    # bool is a subclass of int in Python; an int where a bool is wanted (or the reverse) is a mistake.
    if isinstance(want, bool) != isinstance(value, bool):
        raise ConfigError(f"setting {section}.{key} in {source} must be {_type_name(want)}, got {value!r}")
    if isinstance(want, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(want)):
        raise ConfigError(f"setting {section}.{key} in {source} must be {_type_name(want)}, got {value!r}")
    return value


def _parse_env(want: Any, raw: str, name: str) -> Any:
    try:
        if isinstance(want, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(want, int):
            return int(raw)
        if isinstance(want, float):
            return float(raw)
        if isinstance(want, list):
            raw = raw.strip()
            if raw.startswith("["):
                value = json.loads(raw)
                if not isinstance(value, list):
                    raise ValueError
                return value
            return [part.strip() for part in raw.split(",") if part.strip()]
        return raw
    except ValueError:
        raise ConfigError(f"environment {name}={raw!r} must be {_type_name(want)}") from None


def _merge_file(data: dict, defaults: dict, path: Path, label: str) -> None:
    try:
        with open(path, "rb") as fh:
            loaded = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, values in loaded.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{label} {path}: top-level key {section!r} must be a [section]")
        if section == AUTH_SECTION:
            # One table per site, named by the site: its keys are not in the schema (capture/auth.py checks them).
            from archiver.capture.auth import check_table  # late, like urls: config stays light
            data[section].update(check_table(values, f"{label} {path}", path.resolve().parent))
            continue
        for key, value in values.items():
            data.setdefault(section, {})
            data[section][key] = _check(defaults, section, key, value, f"{label} {path}")


def load(archive_dir: Path | None = None, config_file: Path | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings from every layer. Raises ConfigError naming the offending key."""
    environ = os.environ if environ is None else environ
    with open(DEFAULT_FILE, "rb") as fh:
        defaults = tomllib.load(fh)
    data = json.loads(json.dumps(defaults))
    sources = [str(DEFAULT_FILE)]
    if archive_dir is not None and (archive_dir / "archiver.toml").is_file():
        _merge_file(data, defaults, archive_dir / "archiver.toml", "archive settings")
        sources.append(str(archive_dir / "archiver.toml"))
    if config_file is not None:
        _merge_file(data, defaults, config_file, "--config")
        sources.append(str(config_file))
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section == AUTH_SECTION:
            raise ConfigError(f"{name}: site credentials are set in a settings file ([auth.\"site\"]), not in the "
                              f"environment")
        if section not in defaults or key not in defaults[section]:
            raise ConfigError(f"unknown setting in environment: {name} (expected ARCHIVER_<SECTION>_<KEY>, "
                              f"e.g. ARCHIVER_QUEUE_LEASE_SECONDS)")
        data[section][key] = _parse_env(defaults[section][key], raw, name)
        sources.append(f"env {name}")
    _check_values(data, sources)
    return Settings(data, sources)


def _check_values(data: dict[str, dict[str, Any]], sources: list[str]) -> None:
    """Values of the right type that still cannot work, found now rather than at the first capture."""
    from archiver.urls import parse_networks  # urls needs nothing from here; imported late to keep config light
    origin = next((s for s in reversed(sources) if "allow_addresses" in s.lower()), None) or \
        f"the settings ({', '.join(sources[1:]) or 'defaults'})"
    parse_networks(tuple(data["network"]["allow_addresses"]), source=f"network.allow_addresses (from {origin})")
    from archiver.custody.timestamps import check_settings as check_timestamp_settings  # late, like urls: config stays light
    check_timestamp_settings(data["timestamp"])
    from archiver.store.blobs import check_settings as check_storage_settings  # late as well; boto3 is never imported here
    check_storage_settings(data["storage"])
    check_index_url(data["index"]["url"])
    from archiver.capture.auth import check_settings as check_auth_settings  # late as well; stdlib only
    check_auth_settings(data[AUTH_SECTION])


# URL schemes libpq accepts for a connection URI.
POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_index_url(url: str) -> None:
    """``index.url`` is empty (the SQLite file <archive>/index.db) or a libpq ``postgresql://`` URL without a
    password: settings files are copied, backed up and shown, so the password comes from libpq's own places."""
    if not url:
        return
    from urllib.parse import parse_qs, urlsplit  # late: most commands never read a PostgreSQL URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ConfigError(f"setting index.url is not a valid URL ({exc}): {url!r}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ConfigError(f"setting index.url must be empty (the SQLite file <archive>/index.db) or a "
                          f"postgresql://host/dbname URL, got {url!r}")
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ConfigError("setting index.url must not hold a password: libpq finds it (PGPASSWORD, ~/.pgpass or "
                          "PGPASSFILE, a service named by PGSERVICE or ?service=NAME)")


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped) + '"'


def set_in_file(path: Path, values: Mapping[tuple[str, str], str]) -> None:
    """Set ``[section] key = "value"`` for each ((section, key), value) in the settings file ``path`` (made if
    missing), keeping everything else in it as written, comments included: a key's line is replaced where it is, a
    missing key goes right under its section's header, a missing section at the end. The result is read back before
    it replaces the file (atomically), and must give exactly these values; ConfigError otherwise, the file unchanged."""
    import re
    text = path.read_text("utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for (section, key), value in values.items():
        line = f"{key} = {toml_string(value)}\n"
        header = next((i for i, l in enumerate(lines) if re.fullmatch(rf"\s*\[\s*{re.escape(section)}\s*\]\s*(#.*)?\n?", l)),
                      None)
        if header is None:
            lines += (["\n"] if lines and lines[-1].strip() else []) + [f"[{section}]\n", line]
            continue
        end = next((i for i in range(header + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
        found = next((i for i in range(header + 1, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[i])), None)
        if found is None:
            lines.insert(header + 1, line)
        else:
            lines[found] = line
    new = "".join(lines)
    try:
        loaded = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot set {', '.join(f'{s}.{k}' for s, k in values)} in {path} ({exc}): set them by hand"
                          ) from None
    wrong = [f"{s}.{k}" for (s, k), v in values.items() if loaded.get(s, {}).get(k) != v]
    if wrong:
        raise ConfigError(f"cannot set {', '.join(wrong)} in {path} (the file spells them in a way this edit does "
                          f"not follow): set them by hand")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(new)
        fh.flush()
        os.fsync(fh.fileno())
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
