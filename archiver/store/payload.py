"""A record's payload read by byte range, streamed: what the workbench serves when a browser seeks in an archived
video (archiver/web/media.py).

Each WARC record is one gzip member (design.md, WARC conventions), so nothing in the file says where the n-th byte
of a payload is. Two ways to get there:

- A member written at gzip level 0 (``WARC-Gzip-Level: 0``: what the sealer chooses for bytes that do not compress
  -- video, images) is deflate's *stored* blocks: the payload's bytes as they are, in blocks of at most 64 KiB, each
  after a 5-byte header that gives its length. Such a member is walked block to block with no zlib at all, and
  every ``CHECKPOINT_EVERY`` bytes the walk notes where a block starts (payload position -> member position) in a
  small index kept in memory (``_CHECKPOINTS``: a few hundred entries for a 1 GiB video, for the last
  ``CHECKPOINT_RECORDS`` records). A later range starts at the checkpoint before it: one read from there. So the
  first seek to the end of a video costs one pass over it (or, on a local file, over its block headers only), and
  every seek after it costs what it reads.
- Any other member is inflated from its start, dropping what comes before the range.

Bytes are read through the capture's store as one stream from a position (``BlobStore.open_range``: a file at
its offset, or one ranged GET of the object on S3, pinned to the version sealed), ``CHUNK`` bytes at a time, so
memory stays bounded whatever the body's size (a 1 GiB video is never held whole). Measured (tests/
test_web_media.py prints it): the last MiB of a 1 GiB body.

The payload is what the record holds after its headers: a ``resource`` record's whole block, a ``response``
record's HTTP body (stored de-chunked and decoded: capture/base.py renames the headers that would lie). Its
media type is the one the record declares: the HTTP Content-Type of a response, the WARC Content-Type of a
resource. The record read must be the one the index names (its WARC-Type and WARC-Target-URI); its payload
digest is not checked here, since a range is never the whole payload (``archiver verify`` checks every byte).
"""
from __future__ import annotations

import bisect
import dataclasses
import threading
import zlib
from collections import OrderedDict
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Mapping

# One reader of a capture's sealed bytes for every read-back (a file at its offset, or a ranged GET on S3).
from archiver.store.readback import Unreadable, _read

if TYPE_CHECKING:
    from archiver.store.archive import Archive

__all__ = ["RecordPayload", "open_payload", "read_sealed", "Unreadable", "CHUNK"]

CHUNK = 256 << 10         # bytes read from the store, inflated and yielded at once
MAX_HEAD_BYTES = 1 << 20  # WARC headers + HTTP headers: more than this is not a record we wrote
GZIP_HEADER = b"\x1f\x8b\x08\x00"   # what zlib writes: deflate, no flags (so the header is 10 bytes)
CHECKPOINT_EVERY = 1 << 20
CHECKPOINT_RECORDS = 64

# (store, key, version, record offset) -> sorted payload positions and member positions of stored blocks.
_CHECKPOINTS: OrderedDict[tuple, tuple[list[int], list[int]]] = OrderedDict()
_CHECKPOINTS_LOCK = threading.Lock()


class _NotStored(Exception):
    """A block that is not a stored one: the member is inflated instead."""


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
    stored: bool   # the member is deflate's stored blocks (gzip level 0): walked, not inflated
    # The HTTP headers of a response, as recorded (lower-case names): what a received file's record says of its
    # body (chunked, compressed), which our own captures never leave lying (capture/base.py renames them).
    http_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    plain: bool = False   # an uncompressed record (a received .warc, or a WARC stored in a WACZ): read as it is

    def read(self, first: int = 0, last: int | None = None) -> Iterator[bytes]:
        """Bytes ``first``..``last`` (inclusive; None: to the end) of the payload, in pieces of at most CHUNK.
        Raises Unreadable (from the first piece on) if the member ends early or is not what it seemed."""
        last = self.length - 1 if last is None else min(last, self.length - 1)
        if first < 0 or first > last:
            return
        start, end = self.head_bytes + first, self.head_bytes + last + 1
        if self.plain:   # the payload's bytes are the file's: one ranged read, nothing to walk or inflate
            offset = self.record["offset"]
            yield from read_sealed(self.archive, self.capture, offset + start, offset + end - 1)
            return
        pieces = _walk_stored(self, start) if self.stored else _inflate(self.archive, self.capture, self.record)
        position = start if self.stored else 0   # where in the inflated member the next piece starts
        sent = False
        try:
            for piece in pieces:
                piece_end = position + len(piece)
                if piece_end > start:
                    sent = True
                    yield piece[max(0, start - position):end - position]
                position = piece_end
                if position >= end:
                    return
        except _NotStored:
            if sent:
                raise Unreadable(f"the record at offset {self.record['offset']} is not stored blocks past its "
                                 f"start") from None
            yield from dataclasses.replace(self, stored=False).read(first, last)
            return
        raise Unreadable(f"the record at offset {self.record['offset']} ends before its payload does")


def open_payload(archive: Archive, capture: Mapping[str, Any], record: Mapping[str, Any], *,
                 plain_ok: bool = False) -> RecordPayload:
    """The payload of a ``response`` or ``resource`` record of the capture (an index row of ``capture_records``),
    its headers read and checked against the index. ``plain_ok``: the record may be uncompressed (a received
    file's: exchange/received_file.py), read as it is when its bytes do not begin a gzip member; our own records
    are always gzip members, and one that is not is refused. Raises Unreadable."""
    if record.get("type") not in ("response", "resource"):
        raise Unreadable(f"a {record.get('type')} record has no payload to serve")
    start = _read(archive, capture, record["offset"], 11)
    plain = plain_ok and start[:2] != GZIP_HEADER[:2]
    head = b""
    offset, length = record["offset"], record["length"]
    with closing(read_sealed(archive, capture, offset, offset + min(length, MAX_HEAD_BYTES) - 1) if plain
                 else _inflate(archive, capture, record)) as pieces:
        for piece in pieces:
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
    # A WARC 1.1 grammar quirk some writers follow: the URI in <> (a received file's; the index holds it bare).
    if _bare_uri(warc.get("warc-target-uri")) != (record.get("uri") or ""):
        raise Unreadable(f"{where} is {warc.get('warc-target-uri')!r}, not {record.get('uri')!r} as the index says")
    try:
        block = int(warc.get("content-length", ""))
    except ValueError:
        raise Unreadable(f"{where} has no Content-Length") from None
    stored = not plain and start[:4] == GZIP_HEADER and len(start) == 11 and not start[10] & 0b110
    warc_bytes = len(warc_head) + 4
    if plain and warc_bytes + block > length:
        raise Unreadable(f"{where} claims {block} bytes, more than its {length - warc_bytes} in the file")
    if record["type"] == "resource":
        return RecordPayload(archive, capture, record, warc.get("content-type"), block, warc_bytes, None, stored,
                             plain=plain)
    http = _fields(rest)
    status_line = rest.split(b"\r\n", 1)[0].split(b" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    if block < end - warc_bytes:
        raise Unreadable(f"{where} ends inside its HTTP headers")
    return RecordPayload(archive, capture, record, http.get("content-type"), block - (end - warc_bytes), end, status,
                         stored, http, plain)


def read_sealed(archive: Archive, capture: Mapping[str, Any], first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first``..``last`` (inclusive) of the capture's sealed WARC as stored (compressed), in pieces of
    CHUNK, from one stream of its store: what a replay tool reading the WARC by ranges asks for. Raises Unreadable."""
    with _stream(archive, capture, first) as stream:
        while first <= last:
            piece = stream.read(min(CHUNK, last - first + 1))
            if not piece:
                raise Unreadable(f"the sealed WARC ends at byte {first}, before byte {last}")
            first += len(piece)
            yield piece


@contextmanager
def _stream(archive: Archive, capture: Mapping[str, Any], offset: int) -> Iterator[BinaryIO]:
    """The capture's sealed WARC from byte ``offset`` on, as one stream of its store; its failures as Unreadable."""
    from archiver.store.archive import warc_key
    from archiver.store.blobs import NotStored, StorageError
    where = archive.stored_at(capture)
    try:
        stream = archive.store_of(capture).open_range(warc_key(capture["warc_path"]), offset,
                                                      capture.get("warc_version"))
    except NotStored:
        raise Unreadable(f"the sealed WARC {where} is not there") from None
    except (StorageError, OSError) as exc:
        raise Unreadable(f"cannot read {where}: {exc}") from None
    with stream:
        try:
            yield stream
        except (StorageError, OSError) as exc:
            raise Unreadable(f"cannot read {where}: {exc}") from None


def _key(payload: RecordPayload) -> tuple:
    capture = payload.capture
    return (capture.get("warc_store") or "", capture["warc_path"], capture.get("warc_version"),
            payload.record["offset"])


def _checkpoint_before(key: tuple, position: int) -> tuple[int, int]:
    """(payload position, member position) of the last known stored block starting at or before ``position``."""
    with _CHECKPOINTS_LOCK:
        known = _CHECKPOINTS.get(key)
        if known is None:
            return 0, 10
        _CHECKPOINTS.move_to_end(key)
        at = bisect.bisect_right(known[0], position) - 1
        return (known[0][at], known[1][at]) if at >= 0 else (0, 10)


def _note_checkpoint(key: tuple, position: int, member_position: int) -> None:
    with _CHECKPOINTS_LOCK:
        known = _CHECKPOINTS.setdefault(key, ([], []))
        _CHECKPOINTS.move_to_end(key)
        at = bisect.bisect_right(known[0], position)
        if (at == 0 or position - known[0][at - 1] >= CHECKPOINT_EVERY) and \
                (at == len(known[0]) or known[0][at] - position >= CHECKPOINT_EVERY):
            known[0].insert(at, position)
            known[1].insert(at, member_position)
        while len(_CHECKPOINTS) > CHECKPOINT_RECORDS:
            _CHECKPOINTS.popitem(last=False)


def _walk_stored(payload: RecordPayload, target: int) -> Iterator[bytes]:
    """The member's inflated bytes from the stored block holding position ``target`` on (the first piece starts
    at ``target``), block by block from the nearest checkpoint; blocks before ``target`` are skipped by their
    headers (seeking past their bytes where the stream can, reading past them where it cannot). Raises _NotStored
    at a block that is not stored, Unreadable at a header that is not one."""
    key, record = _key(payload), payload.record
    position, at = _checkpoint_before(key, target)
    with _stream(payload.archive, payload.capture, record["offset"] + at) as stream:
        seekable = stream.seekable()
        while at < record["length"]:
            header = stream.read(5)
            if len(header) < 5:
                break
            if header[0] & 0b110:
                raise _NotStored()
            size = int.from_bytes(header[1:3], "little")
            if size ^ 0xFFFF != int.from_bytes(header[3:5], "little"):
                raise Unreadable(f"the record at offset {record['offset']} has a broken stored block at {at}")
            _note_checkpoint(key, position, at)
            at += 5
            if position + size <= target:   # the whole block is before the range
                if seekable:
                    stream.seek(size, 1)
                else:
                    _skip(stream, size)
                position, at = position + size, at + size
            else:
                if position < target:   # the range starts inside this block
                    if seekable:
                        stream.seek(target - position, 1)
                    else:
                        _skip(stream, target - position)
                    at += target - position
                    size -= target - position
                    position = target
                while size:
                    piece = stream.read(min(size, CHUNK))
                    if not piece:
                        raise Unreadable(f"the record at offset {record['offset']} is cut short")
                    size -= len(piece)
                    position += len(piece)
                    at += len(piece)
                    yield piece
            if header[0] & 1:   # the final block
                return
    raise Unreadable(f"the record at offset {record['offset']} is cut short")


def _skip(stream: BinaryIO, size: int) -> None:
    while size:
        piece = stream.read(min(size, CHUNK))
        if not piece:
            return
        size -= len(piece)


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


def _bare_uri(uri: str | None) -> str:
    return uri[1:-1] if uri and uri.startswith("<") and uri.endswith(">") else uri or ""


def _fields(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    return out


def _inflate(archive: Archive, capture: Mapping[str, Any], record: Mapping[str, Any]) -> Iterator[bytes]:
    """The record's gzip member inflated, from its start, in pieces of at most CHUNK, read CHUNK at a time from
    one stream of the store: at most a few CHUNKs are held whatever the member's size."""
    offset, length = record["offset"], record["length"]
    inflater = zlib.decompressobj(wbits=31)
    done = 0
    with _stream(archive, capture, offset) as stream:
        while done < length and not inflater.eof:
            data = stream.read(min(CHUNK, length - done))
            if not data:
                raise Unreadable(f"the sealed WARC ends inside the record at offset {offset}")
            done += len(data)
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
