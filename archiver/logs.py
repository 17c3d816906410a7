"""Structured logs: JSON lines in ``<archive>/logs/archiver-YYYY-MM-DD.jsonl``, human lines on stderr.

Two readers, two forms. A person reads stderr (a terminal, or the file cron appends to); the JSON file is what
one greps, ``jq``s or loads (``sqlite-utils insert logs.db events FILE --nl``) the morning after a cron run
went wrong, with the job, URL, capture, failure class and timing on every line. The index stays the record
of what was captured; the log is the record of what the runners did (claims, kills, signals, lost leases).

Every line is one JSON object: ``ts``, ``level``, ``event``, ``pid``, ``worker`` and ``message`` always, then
whichever of ``job_id``, ``url``, ``host``, ``capture_id``, ``status``, ``class``, ``seconds``... apply.
Several processes append to the same file; each line goes out in one ``write(2)`` on an ``O_APPEND``
descriptor, so lines never interleave. A full disk must not stop a runner: a line that cannot be written is
dropped, with one warning on stderr.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from archiver.errors import ConfigError

LOGGER = "archiver"
LOG_DIR = "logs"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# Which process wrote a line: "supervisor", "w1", "w2"... (or "main" for foreground commands).
_worker_name = "main"


def event(logger: logging.Logger, level: int, name: str, message: str, *, exc_info: bool = False,
          **fields: Any) -> None:
    """Log one event: ``name`` (e.g. ``capture``, ``hard-timeout``) plus fields that become JSON keys
    (``class`` for a failure class: pass it as ``**{"class": ...}``)."""
    logger.log(level, message, exc_info=exc_info, extra={"event": name, "fields": fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or record.name,
            "pid": record.process,
            "worker": _worker_name,
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            if value is not None:
                data[key] = round(value, 3) if isinstance(value, float) else value
        data["message"] = record.getMessage()
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    """``archiver[w1 4242] warning: lost the lease on job 7; abandoning it``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"archiver[{_worker_name} {record.process}] {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class DailyJsonLines(logging.Handler):
    """Appends to ``archiver-<UTC date>.jsonl`` in ``directory``, switching files at midnight UTC."""

    def __init__(self, directory: Path, level: int = logging.INFO):
        super().__init__(level)
        self.directory = directory
        self._day: str | None = None
        self._fd: int | None = None
        self._warned = False
        self.setFormatter(JsonFormatter())

    def path_for(self, day: str) -> Path:
        return self.directory / f"archiver-{day}.jsonl"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8")
            day = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%d")
            if day != self._day or self._fd is None:
                self._reopen(day)
            os.write(self._fd, line)  # type: ignore[arg-type]
        except Exception:
            self.handleError(record)

    def _reopen(self, day: str) -> None:
        self._close_fd()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._day = day

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def handleError(self, record: logging.LogRecord) -> None:
        # Typically a full disk: the capture's own failure is recorded in the index and printed; a traceback per
        # dropped log line would bury that. Say it once.
        if not self._warned:
            self._warned = True
            exc = sys.exc_info()[1]
            print(f"archiver[{_worker_name} {os.getpid()}] warning: cannot write the log in {self.directory}: "
                  f"{exc}; further log lines may be lost", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._close_fd()
        super().close()


def _parse_level(name: str, setting: str) -> int:
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ConfigError(f"setting {setting} must be one of {', '.join(LEVELS)}, got {name!r}") from None


def _replace_handler(logger: logging.Logger, kind: str, handler: logging.Handler) -> None:
    """Set up idempotently: a second call (tests, a restarted worker) replaces our handler of that kind."""
    for old in [h for h in logger.handlers if getattr(h, "_archiver_kind", None) == kind]:
        logger.removeHandler(old)
        old.close()
    handler._archiver_kind = kind  # type: ignore[attr-defined]
    logger.addHandler(handler)


def setup_terminal(level: str = "warning", worker: str | None = None) -> None:
    """Human lines on stderr for every command (before any archive is opened)."""
    global _worker_name
    if worker is not None:
        _worker_name = worker
    logger = logging.getLogger(LOGGER)
    # The logger passes everything; each handler chooses its own level.
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(_parse_level(level, "logs.terminal_level"))
    handler.setFormatter(HumanFormatter())
    _replace_handler(logger, "terminal", handler)


def setup(archive_dir: Path, settings: Any, worker: str) -> Path:
    """Terminal and JSON-lines file logging for a runner process. Returns the log directory."""
    conf = settings["logs"]
    setup_terminal(conf["terminal_level"], worker)
    directory = archive_dir / LOG_DIR
    handler = DailyJsonLines(directory, _parse_level(conf["file_level"], "logs.file_level"))
    _replace_handler(logging.getLogger(LOGGER), "file", handler)
    return directory


def log_failure(archive_dir: Path, message: str, exc: BaseException, command: list[str]) -> Path | None:
    """Append a failure that ended a command to the archive's JSON log (``event`` ``command-failed``, with the
    traceback), for the command's one line on stderr to point to. The log file, or None when it cannot be written
    (a full disk, say): the failure is still reported, only its details are lost."""
    record = logging.LogRecord(LOGGER, logging.ERROR, __file__, 0, message, None,
                               (type(exc), exc, exc.__traceback__))
    record.event = "command-failed"  # type: ignore[attr-defined]
    record.fields = {"command": command, "exception": type(exc).__name__}  # type: ignore[attr-defined]
    day = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%d")
    path = DailyJsonLines(archive_dir / LOG_DIR).path_for(day)
    try:
        line = (JsonFormatter().format(record) + "\n").encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except (OSError, MemoryError, ValueError):
        return None
    return path
