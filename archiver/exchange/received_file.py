"""A file received from others (``archiver receive``), read back as it is kept: whole (a download exactly as
received), by byte range (ReplayWeb.page reads a WACZ, and a WARC over 25 MB, by ranges: web/replay.py reads its
``placed`` file as it reads a capture's), re-hashed against its
receipt ("verify now"), and the screenshots a capture tool put in it, read by their place.

The receipt says where the file is (its key, and in team mode its store and version): ``placed`` gives it the shape
of a capture's place (``warc_store``, ``warc_path``, ``warc_version``), so the readers of our own sealed files read
it too (``Archive.store_of``: read-only; ``store/payload.read_sealed``: ranges, from a directory or S3).

Attachments (exchange/foreign.py notes them on receipt: Scoop's ``file:///screenshot.png``, Browsertrix's
``urn:view:``, Webrecorder's ``screenshot:``) are read by the place the receipt holds -- for a WACZ, a WARC inside
the zip, whose bytes start where its local zip header ends -- and checked before they are shown: the record there
must be the one the receipt names (type and URI), its payload no larger than ``MAX_IMAGE_BYTES``, and an image of
the type it declares by its first bytes. The file is hostile: nothing of it is trusted further than that.

Video and audio (an attachment, or an MP4 a crawl fetched: exchange/foreign.py notes both) are played from the file
by byte ranges, streamed (``open_media``: store/payload.py reads them as it reads our own captures' media): the
record checked as an image's is, its type one of ``MEDIA_MAGIC``'s and its first bytes that type's. A record in a
.warc.gz is a gzip member in whatever deflate its writer chose, and nothing in it says where its n-th byte is: each
range is inflated from the member's start, streaming (memory stays at a few pieces of 256 KiB; a seek to the end of
a 100 MB video inflates 100 MB, about a third of a second), rather than refused or held whole. A member written
at gzip level 0 is walked by its blocks instead, and a record of a plain WARC (or of one stored in a WACZ, whose
members the spec keeps uncompressed) is read by range directly.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from typing import Any, BinaryIO, Mapping

from archiver.errors import NotFound
from archiver.store.archive import Archive
from archiver.store.blobs import NotStored, StorageError
from archiver.store.index import Index
from archiver.store.payload import RecordPayload, open_payload
from archiver.store.readback import Unreadable, _read

__all__ = ["placed", "open_file", "rehash", "attachments", "read_image", "open_media", "details", "shown",
           "ledger_of", "media_type", "IMAGE_MAGIC", "MEDIA_MAGIC", "MAX_IMAGE_BYTES", "Unreadable"]

MAX_IMAGE_BYTES = 32 << 20
MAX_HTTP_HEAD = 256 << 10    # an HTTP header block longer than this is not an image's
CHUNK = 1 << 20
# The images shown in the workbench, each by the bytes it must begin with (a declared type is a claim).
IMAGE_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
               "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}
# The video and audio played in the workbench, each by a test of its first bytes (as IMAGE_MAGIC): an ISO BMFF box
# (MP4, M4A, QuickTime), EBML (WebM), an Ogg page, an MP3 frame or ID3 tag, an ADTS frame, RIFF WAVE, FLAC.
_BOX = re.compile(rb"....(ftyp|styp|moov|moof|mdat|free|skip|wide)", re.S)
_EBML = re.compile(rb"\x1a\x45\xdf\xa3", re.S)
MEDIA_MAGIC: dict[str, re.Pattern[bytes]] = {
    "video/mp4": _BOX, "audio/mp4": _BOX, "audio/x-m4a": _BOX, "video/quicktime": _BOX,
    "video/webm": _EBML, "audio/webm": _EBML,
    "audio/ogg": re.compile(rb"OggS"), "video/ogg": re.compile(rb"OggS"), "audio/opus": re.compile(rb"OggS"),
    "audio/mpeg": re.compile(rb"ID3|\xff[\xe0-\xff]", re.S),
    "audio/aac": re.compile(rb"\xff[\xf0-\xf1\xf8-\xf9]", re.S),
    "audio/wav": re.compile(rb"RIFF....WAVE", re.S), "audio/x-wav": re.compile(rb"RIFF....WAVE", re.S),
    "audio/flac": re.compile(rb"fLaC")}
# What names the page an attachment shows: urn:view:<url> (Browsertrix, ArchiveWeb.page), screenshot:<url>.
_FOR_PREFIXES = ("urn:view:", "urn:thumbnail:", "urn:screenshot:", "screenshot:", "thumbnail:")
_MEDIA_TYPES = {"warc": "application/warc", "warc.gz": "application/warc", "wacz": "application/wacz"}


def placed(archive: Archive, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's file in the shape of a capture's place, for the readers of sealed files (module doc)."""
    return {"id": receipt["id"], "warc_store": receipt.get("store") or str(archive.path),
            "warc_path": receipt["path"], "warc_version": receipt.get("version")}


def media_type(receipt: Mapping[str, Any]) -> str:
    return _MEDIA_TYPES.get(receipt["format"], "application/octet-stream")


def open_file(archive: Archive, receipt: Mapping[str, Any]) -> BinaryIO:
    """The received file as kept, from its start (a stream of its store). Raises Unreadable."""
    where = placed(archive, receipt)
    try:
        return archive.store_of(where).open(where["warc_path"], where["warc_version"])
    except NotStored:
        raise Unreadable(f"the received file {archive.stored_at(where)} is not there") from None
    except (StorageError, OSError) as exc:
        raise Unreadable(f"cannot read {archive.stored_at(where)}: {exc}") from None


def rehash(archive: Archive, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The received file re-hashed now, streaming, against its receipt: ``ok`` when its SHA-256 and size are the
    ones received; else ``problem`` (received-missing, received-altered, unreadable) and ``detail``."""
    where = placed(archive, receipt)
    out: dict[str, Any] = {"receipt": receipt["id"], "where": archive.stored_at(where), "ok": False,
                           "expected_sha256": receipt["sha256"], "expected_size": receipt["size"]}
    try:
        digest, size = archive.store_of(where).sha256_of(where["warc_path"], where["warc_version"])
    except NotStored:
        return {**out, "problem": "received-missing", "detail": "the received file is not there"}
    except (StorageError, OSError) as exc:
        return {**out, "problem": "unreadable", "detail": str(exc)}
    out.update(sha256=digest, size=size)
    if digest != receipt["sha256"] or size != receipt["size"]:
        return {**out, "problem": "received-altered",
                "detail": f"SHA-256 {digest} ({size} bytes), received as {receipt['sha256']} ({receipt['size']} bytes)"}
    return {**out, "ok": True}


def attachments(receipt: Mapping[str, Any], page: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The attachments noted on receipt (exchange/foreign.py), each with ``n`` (its number, which names it),
    ``for_url`` (the page it shows, when its URI names one), ``image`` (shown inline) and ``altered`` (its record's
    digests did not hold on receipt). With ``page``: those of that page, and those of the whole package (a
    ``file:`` attachment names no page: Scoop's screenshot is of the capture)."""
    checks = receipt.get("checks") or {}
    altered = {(p.get("warc"), p.get("offset")) for p in checks.get("problems") or []}
    out = []
    for n, found in enumerate(checks.get("attachments") or []):
        uri = found.get("uri") or ""
        for_url = next((uri[len(p):] for p in _FOR_PREFIXES if uri.lower().startswith(p)), None)
        item = {**found, "n": n, "for_url": for_url, "image": found.get("mime") in IMAGE_MAGIC
                and (found.get("bytes") or 0) <= MAX_IMAGE_BYTES, "altered": (found.get("warc"), found.get("offset"))
                in altered, "playable": found.get("mime") in MEDIA_MAGIC,
                "crawled": uri.lower().startswith(("http://", "https://"))}
        if page is None or for_url in (None, page["url"]) or uri == page["url"]:
            out.append(item)
    return out


def read_image(archive: Archive, receipt: Mapping[str, Any], n: int) -> tuple[str, bytes]:
    """(media type, bytes) of attachment ``n`` of the receipt, read by its place and checked (module doc).
    NotFound for no such image attachment; Unreadable when the file does not hold it as the receipt says."""
    found = next((a for a in attachments(receipt) if a["n"] == n), None)
    if found is None or found["mime"] not in IMAGE_MAGIC:
        raise NotFound(f"received file {receipt['id']} has no image attachment {n}")
    if (found.get("bytes") or 0) > MAX_IMAGE_BYTES or found["length"] > MAX_IMAGE_BYTES + (1 << 20):
        raise Unreadable(f"{found['uri']} is {found.get('bytes')} bytes: more than is shown here "
                         f"({MAX_IMAGE_BYTES >> 20} MiB); download the received file")
    # warcio here, not at the top: `show` of a received page imports this module, and read commands stay light
    # (tests/test_imports.py).
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed
    where = placed(archive, receipt)
    start = _warc_start(archive, receipt, found["warc"])
    member = _read(archive, where, start + found["offset"], found["length"])
    try:
        record = next(iter(ArchiveIterator(io.BytesIO(member), check_digests=False)))
        uri = record.rec_headers.get_header("WARC-Target-URI") or ""
        if record.rec_type != found["type"] or uri.strip("<>") != found["uri"]:
            raise Unreadable(f"the record at {found['warc']} @{found['offset']} is {record.rec_type} {uri[:200]!r}, "
                             f"not {found['type']} {found['uri'][:200]!r} as the receipt says")
        block = record.raw_stream.read(MAX_IMAGE_BYTES + MAX_HTTP_HEAD + 1)
        http = (record.rec_headers.get_header("Content-Type") or "").split(";", 1)[0].strip().lower()
    except (StopIteration, ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as exc:
        raise Unreadable(f"no readable record at {found['warc']} @{found['offset']}: {exc}") from None
    # warcio reads HTTP headers only under http(s): URIs; Scoop's file:///screenshot.png is an HTTP response too.
    data = _http_body(block, found) if http == "application/http" else block
    if len(data) > MAX_IMAGE_BYTES:
        raise Unreadable(f"{found['uri']} holds more than {MAX_IMAGE_BYTES >> 20} MiB: not shown here")
    if not data.startswith(IMAGE_MAGIC[found["mime"]]):
        raise Unreadable(f"{found['uri']} is not a {found['mime']} image as it declares")
    return found["mime"], data


def open_media(archive: Archive, receipt: Mapping[str, Any], n: int) -> RecordPayload:
    """Attachment ``n`` of the receipt, a video or an audio (``MEDIA_MAGIC``), opened to be read by byte ranges
    (``read(first, last)``, streamed; module doc). NotFound for no such attachment; Unreadable when the file does
    not hold it as the receipt says, or holds it in a form not played here (chunked, compressed, not whole)."""
    found = next((a for a in attachments(receipt) if a["n"] == n), None)
    if found is None or not found["playable"]:
        raise NotFound(f"received file {receipt['id']} has no video or audio attachment {n}")
    where = placed(archive, receipt)
    record = {"type": found["type"], "uri": found["uri"], "length": found["length"],
              "offset": _warc_start(archive, receipt, found["warc"]) + found["offset"]}
    at = f"{found['warc']} @{found['offset']}"
    try:
        payload = open_payload(archive, where, record, plain_ok=True)
    except Unreadable as exc:
        raise Unreadable(f"the record at {at} is not the one the receipt names: {exc}") from None
    declared = (payload.content_type or "").split(";", 1)[0].strip().lower()
    if declared != found["mime"]:
        raise Unreadable(f"the record at {at} declares {declared[:100]!r}, not {found['mime']} as on receipt")
    if found["type"] == "response" and payload.http_status != 200:
        raise Unreadable(f"{found['uri']}: its response is HTTP {payload.http_status}, not a whole body")
    headers = payload.http_headers
    if "chunked" in headers.get("transfer-encoding", "").lower() or \
            headers.get("content-encoding", "identity").strip().lower() not in ("identity", ""):
        # Ranges of the body a player asks for would not be ranges of the bytes stored: not served by place.
        raise Unreadable(f"{found['uri']} is stored chunked or compressed as sent: download the received file")
    first = b"".join(payload.read(0, 15))
    if not MEDIA_MAGIC[found["mime"]].match(first):
        raise Unreadable(f"{found['uri']} is not a {found['mime']} as it declares")
    return payload


def _http_body(block: bytes, found: Mapping[str, Any]) -> bytes:
    """The body of an HTTP response block (de-chunked when its headers say chunked)."""
    end = block.find(b"\r\n\r\n", 0, MAX_HTTP_HEAD)
    if end < 0:
        raise Unreadable(f"{found['uri']}: its HTTP response has no end of headers")
    head, body = block[:end].lower(), block[end + 4:]
    if not re.search(rb"^transfer-encoding:[^\r\n]*chunked", head, re.M):
        return body
    out, at = bytearray(), 0
    while True:
        line_end = body.find(b"\r\n", at)
        size = body[at:line_end].split(b";", 1)[0].strip() if line_end >= 0 else b""
        if not re.fullmatch(rb"[0-9a-fA-F]{1,8}", size):
            raise Unreadable(f"{found['uri']}: its chunked body is not well formed")
        if int(size, 16) == 0:
            return bytes(out)
        at = line_end + 2
        out += body[at:at + int(size, 16)]
        at += int(size, 16) + 2


def _warc_start(archive: Archive, receipt: Mapping[str, Any], warc: str) -> int:
    """Where the WARC an attachment was found in starts in the received file: 0 for a WARC; for a WACZ, where the
    zip member's bytes start (its local header read, as a reader walking the zip would)."""
    if receipt["format"] != "wacz":
        return 0
    from archiver.exchange.wacz import data_offset
    with io.BufferedReader(_Ranges(archive, placed(archive, receipt), receipt["size"]), 1 << 16) as raw:
        try:
            info = zipfile.ZipFile(raw).getinfo(warc)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise Unreadable(f"{warc} cannot be found in the received package ({exc})") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise Unreadable(f"{warc} is compressed inside the package: its records are not read by place here")
        start, name = data_offset(raw, info)
    if start is None or name != warc:
        raise Unreadable(f"{warc}: its local zip header is missing or names another file")
    return start


class _Ranges(io.RawIOBase):
    """A received file as a seekable read-only file, each read a range read of its store (zipfile reads a WACZ's
    central directory and a local header: a few reads, never the whole file)."""

    def __init__(self, archive: Archive, where: Mapping[str, Any], size: int) -> None:
        self.archive, self.where, self.size, self.pos = archive, where, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = max(0, {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = _read(self.archive, self.where, self.pos, want)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def details(archive: Archive, index: Index, ident: str, *, receipt_pages: int | None = None
            ) -> tuple[str, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``archiver show`` shows of a receipt or a received page (store/received.py ``find``): (what, receipt
    with its ``location``, page or None, the receipt's pages: all of them for a page, at most ``receipt_pages``
    for a receipt; the receipt's RFC 3161 timestamps). NotFound when ``ident`` is neither."""
    from archiver.custody import timestamps
    from archiver.exchange.receive import location
    from archiver.store import received
    what, held, page = received.find(index, ident)
    held["location"] = location(archive, held)
    stamps = [{k: t[k] for k in timestamps.SHOWN_FIELDS} for t in timestamps.of_receipt(index.conn, held["id"])]
    return (what, held, page, received.pages_of(index, held["id"], limit=None if what == "page" else receipt_pages),
            stamps)


def shown(what: str, receipt: dict[str, Any], page: dict[str, Any] | None, pages: list[dict[str, Any]],
          stamps: list[dict[str, Any]]) -> dict[str, Any]:
    """``archiver show ID --json`` of a received page or a receipt (``details``)."""
    if page:
        return {"received_page": page, "receipt": receipt, "timestamps": stamps}
    return {"receipt": receipt, "pages": pages, "timestamps": stamps}


def ledger_of(index: Index, receipt_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The ledger's entries about a receipt (received, again; accessed; verified), oldest first, at most ``limit``."""
    rows = index.conn.execute(
        "SELECT seq, at, event, detail FROM ledger WHERE event IN ('received', 'accessed', 'verified') AND detail "
        f"LIKE ? ORDER BY seq LIMIT {int(limit)}", (f'%"receipt":"{receipt_id}"%',)).fetchall()
    out = [dict(r) for r in rows]
    for entry in out:
        entry["detail"] = json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"]
    return out

