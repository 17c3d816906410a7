"""HTTP byte ranges (RFC 9110 section 14) for the workbench's archived bytes: one parser, one response maker, used by
the media endpoint (a record's payload) and the replay app (a capture's WARC).

One range is served (206 with Content-Range). A header asking for several ranges is answered as if it were absent
(200, the whole body), which RFC 9110 allows: browsers never ask for several, and multipart/byteranges would be
one more body format to get right for no reader. A range that cannot be satisfied gets 416 with
``Content-Range: bytes */<size>``; a header that is not a byte range at all is ignored (200), as the RFC says.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

from starlette.responses import Response, StreamingResponse

__all__ = ["ByteRange", "Unsatisfiable", "parse_range", "ranged_response"]

_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int   # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class Unsatisfiable(Exception):
    """A byte range none of whose bytes exist (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for in a body of ``size`` bytes; None for the whole body (no header, a header
    that is not a single byte range, several ranges). Raises Unsatisfiable."""
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.fullmatch(spec)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":   # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_text)
    if last_text != "" and int(last_text) < first:
        return None   # syntactically invalid: ignored
    if first >= size:
        raise Unsatisfiable(header)
    last = size - 1 if last_text == "" else int(last_text)
    return ByteRange(first, min(last, size - 1))


def ranged_response(range_header: str | None, size: int, read: Callable[[int, int], Iterator[bytes]],
                    headers: dict[str, str], *, method: str = "GET", if_range: str | None = None) -> Response:
    """200, 206 or 416 for a body of ``size`` bytes that ``read(first, last)`` streams, with ``headers`` added
    (Content-Type and ETag among them). HEAD gets the same headers and no body. ``if_range``: the request's
    If-Range; unless it is our ETag (sealed bytes never change, but a client may hold another body's validator,
    or a date, which we never send) the Range is ignored and the whole body sent, as RFC 9110 13.1.5 says."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    if if_range is not None and if_range.strip() != headers.get("ETag"):
        range_header = None
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        return Response(b"", 416, {**headers, "Content-Range": f"bytes */{size}"})
    status = 200
    first, last = 0, size - 1
    if wanted is not None:
        status, first, last = 206, wanted.first, wanted.last
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(max(0, last - first + 1))
    if method == "HEAD" or size == 0:
        return Response(b"", status, headers)
    return StreamingResponse(read(first, last), status, headers)
