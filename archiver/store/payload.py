"""A record's payload read by byte range, streamed: what the workbench serves when a browser seeks in an archived
video (archiver/web/media.py).

Each WARC record is one gzip member (design.md, WARC conventions), so there is no index into the inflated bytes:
a range is served by inflating the member from its start and dropping what comes before the range. The member is
read through the capture's store (``readback._read``: a file in <archive>/warcs at its offset, or ranged GETs of
the object on S3 pinned to the version sealed) in windows of ``WINDOW`` bytes, and inflated ``CHUNK`` bytes of
output at a time, so memory stays bounded whatever the body's size (a 1 GiB video is never held whole).

The payload is what the record holds after its headers: a ``resource`` record's whole block, a ``response``
record's HTTP body (stored de-chunked and decoded: capture/base.py renames the headers that would lie). Its
media type is the one the record declares: the HTTP Content-Type of a response, the WARC Content-Type of a
resource. The record read must be the one the index names (its WARC-Type and WARC-Target-URI); its payload
digest is not checked here, since a range is never the whole payload (``archiver verify`` checks every byte).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

# One reader of a capture's sealed bytes for every read-back (a file at its offset, or a ranged GET on S3).
from archiver.store.readback import Unreadable, _read

if TYPE_CHECKING:
    from archiver.store.archive import Archive

__all__ = ["RecordPayload", "open_payload", "read_sealed", "Unreadable", "WINDOW", "CHUNK"]

WINDOW = 1 << 20          # compressed bytes asked of the store at once (one GET on S3)
CHUNK = 256 << 10         # inflated bytes produced at once, and yielded at most at once
MAX_HEAD_BYTES = 1 << 20  # WARC headers + HTTP headers: more than this is not a record we wrote


@dataclass(frozen=True)
class RecordPayload:
    """One record's payload as the index places it: ``length`` bytes of ``content_type`` starting ``head_bytes``
    into the inflated member. ``read(first, last)`` streams bytes first..last (inclusive) of the payload."""

    archive: Any
    capture: Mapping[str, Any]
    record: Mapping[str, Any]
    content_type: str | None
    length: int
    head_bytes: int
    http_status: int | None

    def read(self, first: int = 0, last: int | None = None) -> Iterator[bytes]:
        """Bytes ``first``..``last`` (inclusive; None: to the end) of the payload, in pieces of at most CHUNK.
        Raises Unreadable (from the first piece on) if the member ends early or is not gzip."""
        last = self.length - 1 if last is None else min(last, self.length - 1)
        if first < 0 or first > last:
            return
        skip, want = self.head_bytes + first, last - first + 1
        for piece in _inflate(self.archive, self.capture, self.record):
            if skip >= len(piece):
                skip -= len(piece)
                continue
            piece = piece[skip:skip + want]
            skip = 0
            want -= len(piece)
            yield piece
            if want == 0:
                return
        raise Unreadable(f"the record at offset {self.record['offset']} ends {want:,} bytes before its payload does")


def open_payload(archive: Archive, capture: Mapping[str, Any], record: Mapping[str, Any]) -> RecordPayload:
    """The payload of a ``response`` or ``resource`` record of the capture (an index row of ``capture_records``),
    its headers read and checked against the index. Raises Unreadable."""
    if record.get("type") not in ("response", "resource"):
        raise Unreadable(f"a {record.get('type')} record has no payload to serve")
    head = b""
    for piece in _inflate(archive, capture, record):
        head += piece
        if _head_end(head, record["type"]) is not None or len(head) > MAX_HEAD_BYTES:
            break
    end = _head_end(head, record["type"])
    if end is None:
        raise Unreadable(f"no WARC record headers at offset {record['offset']}")
    warc_head, _, rest = head[:end].partition(b"\r\n\r\n")
    warc = _fields(warc_head)
    where = f"the record at offset {record['offset']}"
    if not warc_head.startswith(b"WARC/") or warc.get("warc-type") != record["type"]:
        raise Unreadable(f"{where} is not the {record['type']} record the index names")
    if (warc.get("warc-target-uri") or "") != (record.get("uri") or ""):
        raise Unreadable(f"{where} is {warc.get('warc-target-uri')!r}, not {record.get('uri')!r} as the index says")
    try:
        block = int(warc.get("content-length", ""))
    except ValueError:
        raise Unreadable(f"{where} has no Content-Length") from None
    warc_bytes = len(warc_head) + 4
    if record["type"] == "resource":
        return RecordPayload(archive, capture, record, warc.get("content-type"), block, warc_bytes, None)
    http = _fields(rest)
    status_line = rest.split(b"\r\n", 1)[0].split(b" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    http_bytes = end - warc_bytes
    return RecordPayload(archive, capture, record, http.get("content-type"), block - http_bytes, end, status)


def read_sealed(archive: Archive, capture: Mapping[str, Any], first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first``..``last`` (inclusive) of the capture's sealed WARC as stored (compressed), WINDOW at a time,
    through its store: what a replay tool reading the WARC by ranges asks for. Raises Unreadable."""
    while first <= last:
        window = _read(archive, capture, first, min(WINDOW, last - first + 1))
        if not window:
            raise Unreadable(f"the sealed WARC ends at byte {first}, before byte {last}")
        first += len(window)
        yield window


def _head_end(head: bytes, record_type: str) -> int | None:
    """Where the payload starts in the inflated member's first bytes (after the WARC headers, and for a response
    the HTTP headers too), or None if they have not all arrived."""
    warc_end = head.find(b"\r\n\r\n")
    if warc_end < 0:
        return None
    if record_type != "response":
        return warc_end + 4
    http_end = head.find(b"\r\n\r\n", warc_end + 4)
    return None if http_end < 0 else http_end + 4


def _fields(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    return out


def _inflate(archive: Archive, capture: Mapping[str, Any], record: Mapping[str, Any]) -> Iterator[bytes]:
    """The record's gzip member inflated, from its start, in pieces of at most CHUNK; compressed bytes are read
    WINDOW at a time, so at most WINDOW + CHUNK bytes are held whatever the member's size."""
    offset, length = record["offset"], record["length"]
    inflater = zlib.decompressobj(wbits=31)
    done = 0
    while done < length and not inflater.eof:
        window = _read(archive, capture, offset + done, min(WINDOW, length - done))
        if not window:
            raise Unreadable(f"the sealed WARC ends inside the record at offset {offset}")
        done += len(window)
        data = window
        try:
            # A full piece may leave output inside zlib with no input left: ask again until a piece comes short.
            while not inflater.eof:
                piece = inflater.decompress(data, CHUNK)
                data = inflater.unconsumed_tail
                if piece:
                    yield piece
                if not data and len(piece) < CHUNK:
                    break
        except zlib.error as exc:
            raise Unreadable(f"the record at offset {offset} is not a gzip member ({exc})") from None
    if not inflater.eof:
        raise Unreadable(f"the record at offset {offset} is cut short")
