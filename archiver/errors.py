"""Named exceptions. User errors (bad input, bad settings) exit 2 with one line; nothing else prints a traceback
for them. Capture failures carry a failure class, because failures are data (design.md principle 4)."""
from __future__ import annotations


class ArchiverError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with when this reaches it."""

    exit_code = 2


class UserError(ArchiverError):
    """Bad input from the person or script at the command line."""


class ConfigError(UserError):
    """A setting is unknown or has the wrong type."""


class BadURL(UserError):
    """A URL that cannot be captured: not absolute http(s), no host, ..."""


class NotFound(ArchiverError):
    """An ID or URL that the index does not know."""

    exit_code = 1


class IndexUnavailable(ArchiverError):
    """The index's database cannot be reached now (a PostgreSQL server restarting, a network between): nothing of
    the change being made was committed, unless ``commit_unknown`` (the connection broke during COMMIT)."""

    exit_code = 1

    def __init__(self, message: str, commit_unknown: bool = False):
        super().__init__(message)
        self.commit_unknown = commit_unknown


class IntegrityConflict(ArchiverError):
    """The index refused a write: a uniqueness rule, or evidence (ledger, sealed captures and their records) that
    cannot be changed or deleted. Engine-neutral: PostgreSQL's errors are raised as this; SQLite's as
    ``sqlite3.IntegrityError``."""

    exit_code = 1


class CaptureFailed(Exception):
    """A capture attempt ended without evidence worth sealing.

    ``failure_class`` is one of the classes in design.md (dns, refused, tls, timeout, http-4xx, http-5xx,
    too-large, blocked, browser-crash, ...); ``retryable`` says whether trying later can help.
    """

    def __init__(self, failure_class: str, message: str, retryable: bool | None = None):
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.retryable = is_retryable(failure_class) if retryable is None else retryable


# A failure class that trying again later can cure. Everything else is final.
RETRYABLE_CLASSES = {"dns", "refused", "reset", "timeout", "http-5xx", "http-429", "browser-crash", "unknown-answer",
                     "network", "disk-full", "internal", "index-unavailable", "storage",
                     "not-started", "not-yet-available"}   # an X Space before it started, its recording being made


def is_retryable(failure_class: str | None) -> bool:
    return failure_class in RETRYABLE_CLASSES


# ---- failures that reach the command line -------------------------------------------------------------

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report ^C


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """One line saying what went wrong, for an exception that is no ArchiverError, and the exit status: 130 for ^C,
    1 for everything else (a failure of this machine or of the index, never the user's input). The details (the
    traceback) belong in the log file, not on the terminal."""
    import errno
    import sqlite3

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (^C); a change in progress was not committed", EXIT_INTERRUPTED
    if isinstance(exc, MemoryError):
        return ("out of memory; nothing more was written. Free memory (or raise the process's limit) and run it "
                "again"), EXIT_FAILURE
    if isinstance(exc, sqlite3.DatabaseError):
        text = str(exc)
        if "database or disk is full" in text:
            return ("the disk holding the index is full; the change being made was not committed. Free space and "
                    "run it again"), EXIT_FAILURE
        if "locked" in text or "busy" in text:
            return (f"the index is busy ({text}): another archiver process holds its write lock; try again"), \
                EXIT_FAILURE
        if "unable to open" in text:
            return f"the index database cannot be opened ({text}): check the archive directory and index.db", \
                EXIT_FAILURE
        if isinstance(exc, sqlite3.OperationalError) and "readonly" not in text and "I/O" not in text:
            return f"the index database cannot be used: {text}", EXIT_FAILURE
        return (f"the index database cannot be used: {text}. It may be damaged: keep a copy of it, and "
                "`archiver reindex` rebuilds an index from the WARCs"), EXIT_FAILURE
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the device{where}; nothing half-written was kept. Free space and run it " \
                   "again", EXIT_FAILURE
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"not allowed to {'write' if exc.errno == errno.EROFS else 'read or write'} it{where} " \
                   f"({exc.strerror})", EXIT_FAILURE
        return f"{exc.strerror or exc}{where}", EXIT_FAILURE
    return f"internal error ({type(exc).__name__}: {str(exc)[:200] or 'no message'}); this is a bug in archiver", \
        EXIT_FAILURE
