"""What every way of capturing shares: the result it returns, how stored headers are made to describe
stored bytes, and how network errors map to failure classes."""
from __future__ import annotations

import codecs
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class CaptureResult:
    status: str                       # ok | partial | failed
    final_url: str | None
    main_record_id: str | None        # WARC-Record-ID of the main document's response
    http_status: int | None = None
    content_type: str | None = None
    failure_class: str | None = None  # set for partial and failed
    failure_message: str | None = None
    title: str | None = None
    text: str | None = None
    outlinks: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # method-specific provenance (TLS, IPs, timings, ...)
    # (source, HTML text) pairs for discovering referenced evidence: "html" as received, "dom" as rendered.
    documents: list[tuple[str, str]] = field(default_factory=list)


def status_failure(http_status: int | None) -> tuple[str | None, str | None]:
    """The failure class an HTTP status means for the main document (None for success)."""
    if http_status is None or http_status < 400:
        return None, None
    if http_status == 429:
        return "http-429", "the server answered 429 Too Many Requests"
    if http_status >= 500:
        return "http-5xx", f"the server answered HTTP {http_status}"
    return "http-4xx", f"the server answered HTTP {http_status}"


def stored_headers(headers: list[tuple[str, str]], stored_length: int, decoded: bool) -> list[tuple[str, str]]:
    """Headers that describe the bytes we store (design.md principle 3).

    ``decoded``: the body is stored after content decoding (the browser hands us decoded bytes), so a
    Content-Encoding header would lie; it is kept as X-Orig-Content-Encoding. The body is always stored
    de-chunked, so Transfer-Encoding becomes X-Orig-Transfer-Encoding. A Content-Length that differs from
    the stored length is kept as X-Orig-Content-Length and a true one is added.
    """
    out: list[tuple[str, str]] = []
    length_ok = False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-encoding" and decoded and value.strip().lower() not in ("", "identity"):
            out.append(("X-Orig-Content-Encoding", value))
        elif lower == "transfer-encoding":
            out.append(("X-Orig-Transfer-Encoding", value))
        elif lower == "content-length":
            if value.strip() == str(stored_length) and not length_ok:
                out.append((name, value))
                length_ok = True
            else:
                out.append(("X-Orig-Content-Length", value))
        else:
            out.append((name, value))
    if not length_ok:
        out.append(("Content-Length", str(stored_length)))
    return out


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    lower = name.lower()
    return next((v for n, v in headers if n.lower() == lower), None)


def is_html(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower() in HTML_TYPES


# Chromium net::ERR_* names -> failure classes.
_NET_ERRORS = {
    "ERR_NAME_NOT_RESOLVED": "dns", "ERR_NAME_RESOLUTION_FAILED": "dns", "ERR_ADDRESS_UNREACHABLE": "refused",
    "ERR_CONNECTION_REFUSED": "refused", "ERR_CONNECTION_RESET": "reset", "ERR_CONNECTION_CLOSED": "reset",
    "ERR_EMPTY_RESPONSE": "reset", "ERR_CONNECTION_ABORTED": "reset", "ERR_CONNECTION_FAILED": "refused",
    "ERR_TIMED_OUT": "timeout", "ERR_CONNECTION_TIMED_OUT": "timeout", "ERR_INTERNET_DISCONNECTED": "network",
    "ERR_NETWORK_CHANGED": "network", "ERR_PROXY_CONNECTION_FAILED": "network",
    "ERR_TOO_MANY_REDIRECTS": "redirect-loop", "ERR_INVALID_RESPONSE": "protocol",
    "ERR_INVALID_HTTP_RESPONSE": "protocol", "ERR_RESPONSE_HEADERS_TOO_BIG": "too-large",
    "ERR_CONTENT_DECODING_FAILED": "protocol", "ERR_UNSAFE_PORT": "blocked", "ERR_BLOCKED_BY_CLIENT": "blocked",
    "ERR_CONTENT_LENGTH_MISMATCH": "reset", "ERR_INCOMPLETE_CHUNKED_ENCODING": "reset",
    "ERR_HTTP2_PROTOCOL_ERROR": "protocol", "ERR_QUIC_PROTOCOL_ERROR": "protocol",
}

# WARC-Truncated reasons (WARC 1.1, section 5.14) -> the failure class of a capture holding such a record.
TRUNCATION_CLASSES = {"length": "too-large", "time": "timeout", "disconnect": "reset", "unspecified": "internal"}


def classify_net_error(text: str) -> str:
    name = text.strip().split()[0].removeprefix("net::") if text.strip() else ""
    if name.startswith(("ERR_CERT_", "ERR_SSL_", "ERR_BAD_SSL")):
        return "tls"
    return _NET_ERRORS.get(name, "network")


def charset_of(content_type: str | None, head: bytes) -> str:
    """The character set a body declares (header first, then a <meta> in its head), as a Python codec."""
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.I)
    if not match:
        match = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", head[:4096], re.I)
        name = match.group(1).decode("ascii", "replace") if match else "utf-8"
    else:
        name = match.group(1)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def truncation_class(reason: str | None) -> str:
    """The failure class a record cut for ``reason`` (a WARC-Truncated value) gives its capture."""
    return TRUNCATION_CLASSES.get(reason or "unspecified", "internal")


def header_block_size(headers: list[tuple[str, str]]) -> int:
    """Bytes of a header block as sent on the wire ("Name: value\\r\\n" per line), for network.max_header_bytes."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


class SlowDrip(Exception):
    """A body arrived slower than network.min_bytes_per_second: cut off, recorded as far as it came."""


class DripGuard:
    """Tells a body that keeps a connection busy without delivering (slowloris) from one that is merely slow.

    Once ``window`` seconds have passed since the response began, every span of ``window`` seconds must have
    brought at least ``min_rate * window`` bytes. A per-read timeout alone cannot see this: a server sending one
    byte every few seconds never lets a read time out. ``min_rate`` 0 switches the guard off.

    Use: wait for the next bytes at most ``wait_limit()`` seconds; if none came in that time, the body is too
    slow (raise ``cut_off()``); if some came, ``add(n)`` them and ask again.
    """

    # Arrivals are kept in at most this many buckets per window (constant memory for a fast body); a bucket
    # counts from its latest arrival, so the rule is applied up to window/BUCKETS more leniently.
    BUCKETS = 32

    def __init__(self, min_rate: float, window: float, clock: Callable[[], float] = time.monotonic):
        self.min_rate = max(0.0, min_rate)
        self.window = window
        self.need = self.min_rate * window
        self.clock = clock
        self.started = clock()
        self._buckets: deque[list[float]] = deque()   # [opened at, latest arrival, bytes], oldest first

    @property
    def enabled(self) -> bool:
        return self.need > 0 and self.window > 0

    def cut_off(self) -> SlowDrip:
        return SlowDrip(f"body arrived at fewer than {self.min_rate:g} bytes/s over {self.window:g}s "
                        f"(network.min_bytes_per_second, network.slow_window_seconds); cut off")

    def add(self, n: int) -> None:
        """Count ``n`` bytes that just arrived."""
        if not self.enabled or n <= 0:
            return
        now = self.clock()
        last = self._buckets[-1] if self._buckets else None
        if last is not None and now - last[0] < self.window / self.BUCKETS:
            last[1], last[2] = now, last[2] + n
        else:
            self._buckets.append([now, now, n])
        while self._buckets and self._buckets[0][1] + self.window <= now:
            self._buckets.popleft()  # no longer inside any window that can still be judged

    def wait_limit(self) -> float | None:
        """Seconds the next read may wait for bytes before the body must be cut off (None: no limit; 0: now)."""
        if not self.enabled:
            return None
        now = self.clock()
        judged_from = max(now, self.started + self.window)   # the first window is given in full
        # Without new bytes, each bucket leaves the window at its latest arrival + window; the body fails at the
        # first moment (not before judged_from) when what is left in the window is less than needed.
        counted = [b for b in self._buckets if b[1] + self.window > judged_from]
        left = sum(b[2] for b in counted)
        if left < self.need:
            return max(0.0, judged_from - now)
        for bucket in counted:
            left -= bucket[2]
            if left < self.need:
                return max(0.0, bucket[1] + self.window + self.window / self.BUCKETS - now)
        return 0.0  # not reached: with every bucket gone nothing is left, which is less than needed
