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
                     "network", "disk-full", "internal"}


def is_retryable(failure_class: str | None) -> bool:
    return failure_class in RETRYABLE_CLASSES
