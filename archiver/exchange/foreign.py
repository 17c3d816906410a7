"""Reading and checking WARC and WACZ files made by other tools -- evidence received, never changed.

``inspect(path)`` reads a ``.warc``, ``.warc.gz`` or ``.wacz`` once, front to back, in bounded memory, and says
what it holds and whether it holds together: the WARC versions and producing software found, every record's
digests checked in the algorithm and encoding the record states them in, the pages a person would look for
(with their visible text, for search), and for a WACZ its datapackage and its signature. Nothing is "fixed":
what does not hold is reported, by record, and the file stays as it came.

Digests, as real writers state them (the WARC standard leaves algorithm and encoding open):

- ``WARC-Block-Digest`` covers the record's block; ``WARC-Payload-Digest`` the block minus its HTTP headers when
  the block is ``application/http`` (whatever the URI scheme: Scoop records ``file:///screenshot.png`` and
  puppeteer-warc ``data:`` URLs as HTTP responses), else the whole block. warcio only looks for HTTP headers
  under ``http(s):`` URIs, so ``warcio check`` calls those correct records failed; we read the Content-Type.
- sha1 base32 (Heritrix, wget, pywb, Webrecorder), sha256 hex (warcio.js, Scoop), sha1 hex (warcprox 1.4),
  base64: all accepted, compared as bytes.
- A chunked response (``Transfer-Encoding: chunked`` kept as received): the spec says the payload is the
  entity body, i.e. de-chunked; warcprox/webrecorder.io hashed the chunked bytes as stored
  (warcio's example-iana.org-chunked.warc). Either holding is a holding digest.
- Revisit records state the payload digest of the record they revisit: there is no payload here to check.
- Writer mistakes that leave the bytes demonstrably intact are ``quirks``, not problems: Webrecorder Platform
  4.x wrote the payload digest into WARC-Block-Digest too. When the payload digest holds and the block digest
  is that same value, the payload is vouched for and the HTTP headers by nothing; we say exactly that.

Attachments: what a capture tool put beside the pages it archived -- Scoop's ``file:///screenshot.png`` and
``file:///pdf-snapshot.pdf`` (HTTP responses), Browsertrix's and ArchiveWeb.page's ``urn:view:``/``urn:thumbnail:``
resources, Webrecorder's ``screenshot:<url>`` -- are noted by place (WARC, offset, length) and type as the file is
read, so that a viewer can show them without reading the file again (at most ``MAX_ATTACHMENTS``; the rest counted).
So are the video and audio a crawl fetched (an http(s) response of status 200 with a video/* or audio/* type: an
MP4 a page played), for the workbench to play from the file.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from archiver.capture.base import charset_of, header_value, is_html
from archiver.capture.http import Inflater, TextExtractor
from archiver.exchange.wacz import DATAPACKAGE, DIGEST, HashingReader, StoredMember, data_offset

MAX_TEXT = 100_000                 # characters of visible text kept per page
MAX_HTTP_HEADER = 256 * 1024       # an HTTP header block longer than this is not looked for further
HTML_LIMIT = 2 * 1024 * 1024       # bytes of an HTML body read for its text: stored (chunked, compressed), inflated
PARSE_STEP = 64 * 1024             # characters fed to the HTML parser at a time (it stops once MAX_TEXT is read)
READ_SIZE = 1 << 20
PAGES_FILES = ("pages/pages.jsonl", "pages/extraPages.jsonl")
MAX_PAGES_LINE = 8 * 1024 * 1024   # a pages.jsonl line longer than this is skipped, not held
MAX_ATTACHMENTS = 1000             # attachments noted by place; a crawl's thumbnails beyond these are counted
# The URI schemes capture tools write their own additions under (a page's resources are http(s): and data:).
ATTACHMENT_SCHEMES = ("file:", "urn:", "screenshot:", "thumbnail:")
ATTACHMENT_TYPES = ("image/", "video/", "audio/", "application/pdf")
CRAWLED_MEDIA_TYPES = ("video/", "audio/")   # of a crawl's own http(s) responses, noted as attachments too
MAX_CRAWLED_MEDIA = 200
_HEX = re.compile(r"[0-9a-fA-F]+")


class ForeignFileError(Exception):
    """The path itself cannot be opened (what the file holds never raises: it becomes a problem)."""


@dataclass
class RecordProblem:
    warc: str              # the WARC's name (for a WACZ, its path inside the zip: archive/data.warc.gz)
    offset: int            # the record's offset in that WARC (compressed offset for .gz)
    type: str | None
    uri: str | None
    record_id: str | None
    problem: str           # "block-digest" | "payload-digest" | "unreadable"
    detail: str            # expected vs computed, or why unreadable

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Page:
    url: str
    ts: str                # ISO 8601 UTC
    status: int | None
    mime: str | None
    title: str | None
    text: str              # the WACZ's own text when present, else extracted from the HTML (<= MAX_TEXT)
    warc: str
    offset: int            # where its response record is (-1: the package lists a page it holds no record of)
    text_source: str = "html"   # "package" (pages.jsonl) | "html" (extracted here) | "none"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Attachment:
    uri: str               # file:///screenshot.png, urn:view:https://..., screenshot:https://...
    type: str              # the WARC record's type: response (Scoop) or resource
    mime: str              # the payload's media type (the HTTP Content-Type of a response)
    warc: str
    offset: int
    length: int            # the record's length in that WARC as stored (compressed for .gz)
    bytes: int | None      # the record's block (Content-Length)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class WaczCheck:
    datapackage: list[str] = field(default_factory=list)  # a listed file missing, a hash or size differing...
    signature: str = "absent"      # "absent" | "valid" | "invalid" | "unsupported"
    signature_kind: str | None = None   # "anonymous" (publicKey) | "domain" (domain + domainCert chain) | None
    signature_detail: str = ""     # who signed / why invalid; created time
    signer: str | None = None      # the domain, or the anonymous key's fingerprint
    signed_at: str | None = None   # `created` of the signature; for domain signatures the RFC 3161 time
    trust: list[str] = field(default_factory=list)  # whether the certificate chains end at roots this system trusts
    wacz_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Inspection:
    format: str                    # "warc" | "warc.gz" | "wacz"
    warc_versions: list[str]       # as found in record headers, e.g. ["WARC/0.17"], ["WARC/1.0", "WARC/1.1"]
    software: list[str]            # from warcinfo (software, http-header-user-agent) and WACZ "software"
    records: int                   # records read
    checked: int                   # records whose digests could be checked
    problems: list[RecordProblem]  # empty when every digest holds
    pages: list[Page]
    wacz: WaczCheck | None
    quirks: list[RecordProblem] = field(default_factory=list)  # writer mistakes, bytes intact (module doc)
    warcs: list[str] = field(default_factory=list)             # the WARCs read (names; in a WACZ, zip paths)
    attachments: list[Attachment] = field(default_factory=list)  # screenshots and the like (module doc)
    attachments_more: int = 0                                   # beyond MAX_ATTACHMENTS, not noted

    @property
    def ok(self) -> bool:
        return not self.problems and (self.wacz is None or (not self.wacz.datapackage
                                                             and self.wacz.signature != "invalid"))

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "warc_versions": self.warc_versions, "software": self.software,
                "records": self.records, "checked": self.checked, "ok": self.ok, "warcs": self.warcs,
                "problems": [p.as_dict() for p in self.problems], "quirks": [q.as_dict() for q in self.quirks],
                "pages": [p.as_dict() for p in self.pages], "wacz": self.wacz.as_dict() if self.wacz else None,
                "attachments": [a.as_dict() for a in self.attachments], "attachments_more": self.attachments_more}


def inspect(path: Path, on_page: Callable[[Page], None] | None = None) -> Inspection:
    """Read and check a foreign WARC or WACZ (see the module doc). With ``on_page``, each page is handed to it
    and not kept in ``Inspection.pages`` (a crawl of millions of pages then stays in bounded memory).
    Raises ForeignFileError only when ``path`` cannot be opened at all."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ForeignFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    state = _State(on_page)
    if magic.startswith(b"PK\x03\x04") or path.name.lower().endswith(".wacz"):
        fmt = "wacz"
        state.wacz = _inspect_wacz(path, state)
    else:
        fmt = "warc.gz" if magic.startswith(b"\x1f\x8b") else "warc"
        with open(path, "rb") as fh:
            _scan_warc(fh, path.name, state, wanted=None)
    return state.result(fmt)


# ---- shared state of one inspection ------------------------------------------------------------------------

class _State:
    def __init__(self, on_page: Callable[[Page], None] | None):
        self.on_page = on_page
        self.versions: list[str] = []
        self.software: list[str] = []
        self.records = 0
        self.checked = 0
        self.problems: list[RecordProblem] = []
        self.quirks: list[RecordProblem] = []
        self.pages: list[Page] = []
        self.seen_pages: set[tuple[str, str]] = set()
        self.warcs: list[str] = []
        self.wacz: WaczCheck | None = None
        self.attachments: list[Attachment] = []
        self.attachments_more = 0
        self.crawled_media = 0

    def version(self, value: str | None) -> None:
        if value and value not in self.versions:
            self.versions.append(value)

    def add_software(self, value: str | None) -> None:
        value = " ".join((value or "").split())
        if value and value not in self.software:
            self.software.append(value[:300])

    def page(self, page: Page) -> None:
        key = (page.url, page.ts)
        if key in self.seen_pages:
            return
        self.seen_pages.add(key)
        if self.on_page is not None:
            self.on_page(page)
        else:
            self.pages.append(page)

    def result(self, fmt: str) -> Inspection:
        return Inspection(fmt, sorted(self.versions, key=_version_key), self.software, self.records, self.checked,
                          self.problems, self.pages, self.wacz, self.quirks, self.warcs, self.attachments,
                          self.attachments_more)

    def attachment(self, reader: "_RecordReader", uri: str | None, warc: str, offset: int, length: int) -> None:
        """Note a record a capture tool added beside the pages (module doc), if it is one."""
        lowered = (uri or "").lower()
        crawled = lowered.startswith(("http://", "https://"))
        if reader.type not in ("response", "resource") or not (crawled or lowered.startswith(ATTACHMENT_SCHEMES)):
            return
        declared = header_value(reader.http.headers, "content-type") if reader.http is not None else \
            reader.rec.rec_headers.get_header("Content-Type")
        mime = (declared or "").split(";", 1)[0].strip().lower()
        if crawled:
            # The video and audio a crawl fetched (an MP4 a page played), noted to be played in the workbench:
            # whole ones only (a 206 holds a piece a player cannot start from), and at most MAX_CRAWLED_MEDIA, so
            # a crawl of a streaming site's thousands of segments never crowds out the screenshots.
            if not mime.startswith(CRAWLED_MEDIA_TYPES) or reader.http is None or reader.http.status != 200:
                return
            if self.crawled_media >= MAX_CRAWLED_MEDIA:
                self.attachments_more += 1
                return
            self.crawled_media += 1
        elif not mime.startswith(ATTACHMENT_TYPES):
            return
        if len(self.attachments) >= MAX_ATTACHMENTS:
            self.attachments_more += 1
            return
        self.attachments.append(Attachment(uri or "", reader.type, mime[:100], warc, offset, length, reader.length))


def _version_key(value: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[/.]", value))


# ---- digests -------------------------------------------------------------------------------------------------

class _Digest:
    """A stated digest ("sha1:B32...", "sha256:hex", "md5:base64"...), and a hasher in its algorithm."""

    def __init__(self, stated: str):
        self.stated = stated
        algo, sep, text = stated.partition(":")
        self.algorithm = algo.strip().lower().replace("-", "").replace("_", "")
        self.expected: bytes | None = None
        self.why_not: str | None = None
        if not sep:
            self.why_not = f"names no algorithm ({stated[:80]!r})"
            return
        try:
            size = hashlib.new(self.algorithm).digest_size
        except ValueError:
            self.why_not = f"uses an algorithm this system does not have ({algo[:20]!r})"
            return
        self.expected = _decode_digest(text.strip(), size)
        if self.expected is None:
            self.why_not = f"is not a {self.algorithm} digest in hex, base32 or base64 ({text[:80]!r})"

    def new(self) -> Any:
        return hashlib.new(self.algorithm)

    def holds(self, hasher: Any) -> bool:
        return self.expected is not None and hasher.digest() == self.expected

    def shown(self, hasher: Any) -> str:
        """A computed digest in the encoding the stated one uses, for a reader comparing the two."""
        raw = hasher.digest()
        text = self.stated.partition(":")[2].strip()
        if len(text) == 2 * len(raw) and _HEX.fullmatch(text):
            value = raw.hex()
        elif text.rstrip("=").isupper() or text.rstrip("=").isdigit():
            value = base64.b32encode(raw).decode("ascii")
            value = value if text.endswith("=") else value.rstrip("=")
        else:
            value = base64.b64encode(raw).decode("ascii")
        return f"{self.stated.partition(':')[0]}:{value}"


def _decode_digest(text: str, size: int) -> bytes | None:
    if len(text) == 2 * size and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    candidates = []
    stripped = text.rstrip("=")
    try:
        candidates.append(base64.b32decode(stripped.upper() + "=" * (-len(stripped) % 8)))
    except (binascii.Error, ValueError):
        pass
    for altchars in (None, b"-_"):
        try:
            candidates.append(base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=altchars,
                                               validate=True))
        except (binascii.Error, ValueError):
            pass
    return next((c for c in candidates if len(c) == size), None)


class _Dechunker:
    """HTTP/1.1 chunked transfer coding, undone incrementally. ``failed`` once the bytes are not chunked after
    all (Webrecorder kept the header and stored the body de-chunked)."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0
        self.state = "size"
        self.failed = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.failed or self.done:
            return b""
        self.buf += data
        out: list[bytes] = []
        while not self.failed:
            if self.state == "size":
                nl = self.buf.find(b"\n")
                if nl < 0:
                    self.failed = len(self.buf) > 1024
                    break
                line = self.buf[:nl].split(b";", 1)[0].strip()
                if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", line):
                    self.failed = True
                    break
                self.buf = self.buf[nl + 1:]
                size = int(line, 16)
                if size == 0:
                    self.done = True       # trailers, if any, are not payload
                    break
                self.left, self.state = size, "data"
            elif self.state == "data":
                take = self.buf[:self.left]
                out.append(take)
                self.left -= len(take)
                self.buf = self.buf[len(take):]
                if self.left:
                    break
                self.state = "end"
            else:
                if len(self.buf) < 2:
                    self.failed = self.buf not in (b"", b"\r", b"\n")
                    if self.buf == b"\n":
                        self.buf, self.state = b"", "size"
                        continue
                    break
                if self.buf.startswith(b"\r\n"):
                    self.buf = self.buf[2:]
                elif self.buf.startswith(b"\n"):
                    self.buf = self.buf[1:]
                else:
                    self.failed = True
                    break
                self.state = "size"
        return b"".join(out)


# ---- one record ------------------------------------------------------------------------------------------

@dataclass
class _Http:
    status: int | None
    headers: list[tuple[str, str]]


def _parse_http_head(head: bytes) -> _Http:
    lines = head.decode("latin-1").splitlines()
    status = None
    first = lines[0].split() if lines else []
    if len(first) >= 2 and first[0].upper().startswith("HTTP/") and first[1].isdigit():
        status = int(first[1])
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.append((name.strip(), value.strip()))
    return _Http(status, headers)


def _head_end(buf: bytes) -> tuple[int, int] | None:
    """(end of the header block, start of the body) in ``buf``, or None while not found."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return None


class _RecordReader:
    """Streams one record's block: its block digest, its payload digest (raw and, when chunked, de-chunked),
    the HTTP status line and headers, and the first HTML_LIMIT bytes of the body when ``keep_body``."""

    def __init__(self, rec: Any, keep_body: Callable[[_Http | None], bool]):
        headers = rec.rec_headers
        self.rec = rec
        self.type = rec.rec_type
        self.length = _int(headers.get_header("Content-Length"))
        content_type = (headers.get_header("Content-Type") or "").split(";", 1)[0].strip().lower()
        self.is_http = content_type == "application/http"
        block = headers.get_header("WARC-Block-Digest")
        payload = headers.get_header("WARC-Payload-Digest")
        self.block = _Digest(block) if block else None
        # A revisit's payload digest is the revisited record's: nothing here to check it against.
        self.payload = _Digest(payload) if payload and self.type != "revisit" else None
        self.block_h = self.block.new() if self.block and self.block.expected else None
        self.payload_h = self.payload.new() if self.payload and self.payload.expected else None
        # The bytes after the HTTP headers, in the block digest's algorithm: what a writer that put the payload's
        # digest in WARC-Block-Digest hashed (module doc).
        self.rest_h = self.block.new() if self.block_h is not None and self.is_http else None
        self.dechunked_h: Any = None
        self.dechunker: _Dechunker | None = None
        self.keep_body = keep_body
        self.http: _Http | None = None
        self.body: bytearray | None = None
        self.read = 0
        self._head = bytearray() if self.is_http else None
        if not self.is_http and keep_body(None):
            self.body = bytearray()

    def run(self) -> None:
        stream = self.rec.raw_stream
        while chunk := stream.read(READ_SIZE):
            self.read += len(chunk)
            if self.block_h is not None:
                self.block_h.update(chunk)
            if self._head is not None:
                self._head += chunk
                found = _head_end(bytes(self._head[:MAX_HTTP_HEADER + 4]))
                if found is None:
                    if len(self._head) > MAX_HTTP_HEADER:
                        chunk, self._head = bytes(self._head), None   # no header block: all of it is payload
                        self._payload(chunk)
                    continue
                end, body_start = found
                self.http = _parse_http_head(bytes(self._head[:end]))
                chunk, self._head = bytes(self._head[body_start:]), None
                if "chunked" in (header_value(self.http.headers, "transfer-encoding") or "").lower():
                    self.dechunker = _Dechunker()
                    self.dechunked_h = self.payload.new() if self.payload_h is not None else None
                if self.keep_body(self.http):
                    self.body = bytearray()
            self._payload(chunk)
        if self._head is not None:              # the block ended inside what would be the HTTP header block
            if self._head.strip():
                found = _head_end(bytes(self._head))
                if found is not None:
                    self.http = _parse_http_head(bytes(self._head[:found[0]]))
                    self._payload(bytes(self._head[found[1]:]))
                else:
                    self.http = _parse_http_head(bytes(self._head))
            self._head = None

    def _payload(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.payload_h is not None:
            self.payload_h.update(chunk)
        if self.rest_h is not None and self.http is not None:
            self.rest_h.update(chunk)
        if self.dechunker is not None:
            piece = self.dechunker.feed(chunk)
            if self.dechunked_h is not None and piece:
                self.dechunked_h.update(piece)
        if self.body is not None and len(self.body) < HTML_LIMIT:
            self.body += chunk[:HTML_LIMIT - len(self.body)]

    def payload_holds(self) -> bool:
        assert self.payload is not None
        if self.payload.holds(self.payload_h):
            return True
        return (self.dechunker is not None and not self.dechunker.failed and self.dechunked_h is not None
                and self.payload.holds(self.dechunked_h))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# ---- one WARC ------------------------------------------------------------------------------------------------

def _scan_warc(source: IO[bytes], name: str, state: _State, wanted: dict[str, bool] | None,
               candidates: dict[str, list[Page]] | None = None) -> None:
    """Read one WARC stream to its end. ``wanted`` (WACZ): the URLs pages.jsonl names, each with whether its
    text must come from the HTML; their records become ``candidates`` instead of pages."""
    state.warcs.append(name)
    iterator = ArchiveIterator(source, no_record_parse=True, check_digests=False)
    records = iter(iterator)
    offset = 0
    read = 0
    while True:
        try:
            rec = next(records)
        except StopIteration:
            if not read:
                state.problems.append(RecordProblem(name, 0, None, None, None, "unreadable",
                                                    "the file holds no WARC record"))
            break
        except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
            state.problems.append(RecordProblem(name, _where(iterator, offset), None, None, None, "unreadable",
                                                f"the WARC cannot be read on from here: {_reason(exc)}"))
            return
        headers = rec.rec_headers
        uri = _target(headers.get_header("WARC-Target-URI"))
        record_id = headers.get_header("WARC-Record-ID")
        state.records += 1
        read += 1
        state.version(headers.protocol)
        want_text = _wants_body(rec, uri, wanted)
        reader = _RecordReader(rec, want_text)
        try:
            reader.run()
        except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
            state.problems.append(RecordProblem(name, _where(iterator, offset), rec.rec_type, uri, record_id,
                                                "unreadable", f"the record cannot be read to its end: {_reason(exc)}"))
            return
        offset = iterator.get_record_offset()
        problem = _Problems(state, name, offset, rec.rec_type, uri, record_id)
        if reader.length is None:
            problem.add("unreadable", "the record states no valid Content-Length (the file may be cut here): its "
                        "end cannot be known")
        elif reader.read < reader.length:
            problem.add("unreadable", f"the file ends inside this record: {reader.read} of its {reader.length} "
                        "bytes are there")
        else:
            _check_digests(reader, problem)
        if rec.rec_type == "warcinfo" and reader.body is not None:
            _warcinfo_software(bytes(reader.body), state)
        state.attachment(reader, uri, name, offset, iterator.get_record_length())
        page = _page_of(reader, headers, uri, name, offset, any_record=wanted is not None)
        if page is not None:
            if wanted is None:
                state.page(page)
            elif candidates is not None:
                candidates.setdefault(uri or "", []).append(page)


def _wants_body(rec: Any, uri: str | None, wanted: dict[str, bool] | None) -> Callable[[_Http | None], bool]:
    """Whether to keep the start of a record's body: warcinfo (its software), and the HTML whose text a page
    needs. Called with the HTTP head once read, with None for a block that has none."""
    if rec.rec_type == "warcinfo":
        return lambda http: http is None
    if rec.rec_type not in ("response", "resource"):
        return lambda http: False
    if wanted is not None:
        if uri not in wanted:
            return lambda http: False
        needs_text = wanted[uri]
        return lambda http: needs_text and _html_ok(http)
    if not (uri or "").startswith(("http://", "https://")):
        return lambda http: False
    return _html_ok


def _html_ok(http: _Http | None) -> bool:
    return http is not None and http.status is not None and 200 <= http.status < 300 and \
        is_html(header_value(http.headers, "content-type"))


class _Problems:
    def __init__(self, state: _State, warc: str, offset: int, rtype: str | None, uri: str | None,
                 record_id: str | None):
        self.state, self.args = state, (warc, offset, rtype, uri, record_id)

    def add(self, problem: str, detail: str, quirk: bool = False) -> None:
        (self.state.quirks if quirk else self.state.problems).append(RecordProblem(*self.args, problem, detail))


def _check_digests(reader: _RecordReader, problem: _Problems) -> None:
    checked = False
    block_ok = payload_ok = None
    for digest, what in ((reader.block, "WARC-Block-Digest"), (reader.payload, "WARC-Payload-Digest")):
        if digest is not None and digest.why_not is not None:
            problem.add("block-digest" if what == "WARC-Block-Digest" else "payload-digest",
                        f"its {what} {digest.why_not}: it cannot be checked")
    if reader.block_h is not None:
        checked = True
        block_ok = reader.block.holds(reader.block_h)
    if reader.payload_h is not None:
        checked = True
        payload_ok = reader.payload_holds()
    if checked:
        problem.state.checked += 1
    if payload_ok is False:
        alt = ""
        if reader.dechunked_h is not None and reader.dechunker is not None and not reader.dechunker.failed:
            alt = f" (de-chunked: {reader.payload.shown(reader.dechunked_h)})"
        problem.add("payload-digest", f"the payload hashes to {reader.payload.shown(reader.payload_h)}{alt}; "
                    f"the record states {reader.payload.stated}")
    if block_ok is False:
        detail = (f"the block hashes to {reader.block.shown(reader.block_h)}; the record states "
                  f"{reader.block.stated}")
        if reader.http is not None and reader.rest_h is not None and payload_ok is not False \
                and reader.block.holds(reader.rest_h):
            # Webrecorder Platform 4.x: WARC-Block-Digest carries the digest of the payload alone (for a revisit,
            # of its empty payload). The payload is intact; the HTTP headers are vouched for by no digest.
            problem.add("block-digest", detail + ", the digest of the bytes after its HTTP headers alone: the "
                        "writer hashed the payload for the block digest too; those bytes are intact, the HTTP "
                        "headers are covered by no digest", quirk=True)
        else:
            problem.add("block-digest", detail)


def _warcinfo_software(body: bytes, state: _State) -> None:
    fields: dict[str, str] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    state.add_software(fields.get("software"))
    agent = fields.get("http-header-user-agent")
    if agent:
        state.add_software(f"user agent: {agent}")


def _page_of(reader: _RecordReader, headers: Any, uri: str | None, warc: str, offset: int,
             any_record: bool) -> Page | None:
    """The page a record is: in a WARC, an HTML 2xx response of an http(s) URL; in a WACZ (``any_record``),
    any response, resource or revisit of a URL its pages.jsonl names."""
    if not uri or reader.type not in (("response", "resource", "revisit") if any_record else ("response",)):
        return None
    http = reader.http
    if not any_record and (http is None or not _html_ok(http) or not uri.startswith(("http://", "https://"))):
        return None
    if http is not None:
        status, content_type = http.status, header_value(http.headers, "content-type")
    else:
        status, content_type = None, headers.get_header("Content-Type")
    mime = content_type.split(";", 1)[0].strip().lower() if content_type else None
    if reader.type == "revisit":
        mime = "warc/revisit"
    title, text = None, ""
    if reader.body is not None and http is not None:
        title, text = _html_text(bytes(reader.body), http, reader.dechunker is not None, uri)
    return Page(uri, _iso(headers.get_header("WARC-Date")), status, mime or None, title or None, text, warc, offset,
                "html" if text else "none")


def _html_text(raw: bytes, http: _Http, chunked: bool, url: str) -> tuple[str, str]:
    """Title and visible text of a stored HTML body (de-chunked, inflated, decoded), bounded."""
    body = raw
    if chunked:
        dechunker = _Dechunker()
        plain = dechunker.feed(raw)
        if not dechunker.failed:
            body = plain
    encoding = (header_value(http.headers, "content-encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        inflater, pieces, made = Inflater(encoding), [], 0
        try:
            for i in range(0, len(body), PARSE_STEP):
                for piece in inflater.feed(body[i:i + PARSE_STEP], HTML_LIMIT + 1 - made):
                    pieces.append(piece)
                    made += len(piece)
                if made > HTML_LIMIT:
                    break
        except Exception:   # a corrupt or cut stream: the text of what did inflate
            pass
        # Nothing inflated: browser-based writers (puppeteer-warc) store the decoded body and keep the header.
        body = b"".join(pieces) if made else body
    body = body[:HTML_LIMIT]
    content_type = header_value(http.headers, "content-type")
    html = body.decode(charset_of(content_type, body), errors="replace")
    del body
    parser = TextExtractor(url)
    try:
        # In steps, stopping once the text is long enough: a huge page's text is bounded, so is the parse.
        for i in range(0, len(html), PARSE_STEP):
            parser.feed(html[i:i + PARSE_STEP])
            if sum(map(len, parser.parts)) > 2 * MAX_TEXT:
                break
        parser.close()
    except (AssertionError, ValueError):
        pass
    return " ".join(parser.title.split())[:1000], parser.text()[:MAX_TEXT]


def _target(uri: str | None) -> str | None:
    if uri and uri.startswith("<") and uri.endswith(">"):   # WARC 1.1 grammar quirk some writers follow
        return uri[1:-1]
    return uri


def _iso(value: str | None) -> str:
    """A WARC-Date (or pages.jsonl ts) as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SS[.fff]Z``; unparsable: as found."""
    if not value:
        return ""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        digits = re.sub(r"\D", "", text)
        if len(digits) < 14:
            return text
        try:
            moment = datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return base + (f".{moment.microsecond // 1000:03d}" if moment.microsecond else "") + "Z"


def _where(iterator: Any, fallback: int) -> int:
    try:
        return int(iterator.offset)
    except (AttributeError, TypeError, ValueError):
        return fallback


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in text)[:160]


# ---- WACZ ----------------------------------------------------------------------------------------------------

def _inspect_wacz(path: Path, state: _State) -> WaczCheck:
    check = WaczCheck()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        check.datapackage.append(f"{path.name} is not a readable zip file ({_reason(exc)})")
        check.signature_detail = "no package to check"
        return check
    with zf, open(path, "rb") as raw:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            if info.filename in members:
                check.datapackage.append(f"{info.filename}: the zip holds two files of this name")
            members[info.filename] = info
        dp_bytes = _small(zf, members.get(DATAPACKAGE), check)
        package = _json_object(dp_bytes, DATAPACKAGE, check)
        listed: dict[str, dict[str, Any]] = {}
        if package is None:
            if DATAPACKAGE not in members:
                check.datapackage.append(f"{DATAPACKAGE} is missing: nothing vouches for the files")
        else:
            check.wacz_version = str(package.get("wacz_version")) if package.get("wacz_version") else None
            state.add_software(package.get("software") if isinstance(package.get("software"), str) else None)
            resources = package.get("resources")
            for resource in resources if isinstance(resources, list) else []:
                if isinstance(resource, dict) and isinstance(resource.get("path"), str):
                    listed[resource["path"]] = resource
                else:
                    check.datapackage.append(f"{DATAPACKAGE} lists a resource without a path: {resource!r:.100}")
            for name in sorted(set(members) - set(listed) - {DATAPACKAGE, DIGEST}):
                check.datapackage.append(f"{name} is in the zip but not listed in {DATAPACKAGE}")
            for name in sorted(set(listed) - set(members)):
                check.datapackage.append(f"{name} is listed in {DATAPACKAGE} but not in the zip")
        digest_doc = _json_object(_small(zf, members.get(DIGEST), check), DIGEST, check)
        from archiver.exchange.wacz_signature import check_signature   # needs this module's classes
        check_signature(digest_doc, dp_bytes, check)

        warc_names = sorted(n for n in members if n.startswith("archive/") and
                            n.lower().endswith((".warc", ".warc.gz", ".arc", ".arc.gz")))
        for name in sorted(set(listed) & set(members)):
            if name not in warc_names:
                _check_member(zf, raw, members[name], listed[name], check)
        entries = _page_entries(zf, members, listed, check)
        wanted: dict[str, bool] | None = None
        if entries:
            wanted = {}
            for entry in entries:
                wanted[entry["url"]] = wanted.get(entry["url"], False) or not entry.get("text")
        candidates: dict[str, list[Page]] = {}
        for name in warc_names:
            info = members[name]
            stream, closer = _member_stream(zf, raw, info, check)
            if stream is None:
                continue
            hashing = HashingReader(stream)
            try:
                _scan_warc(hashing, name, state, wanted, candidates)
                hashing.drain()
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                check.datapackage.append(f"{name} cannot be read from the zip to its end ({_reason(exc)})")
            finally:
                if closer is not None:
                    closer.close()
            if name in listed:
                _compare(name, listed[name], hashing.sha256, hashing.position, check)
            if info.compress_type == zipfile.ZIP_STORED and hashing.crc != info.CRC:
                check.datapackage.append(f"{name}: its bytes do not match the zip's own CRC-32")
        if entries:
            for entry in entries:
                state.page(_wacz_page(entry, candidates.get(entry["url"], [])))
    return check


def _member_stream(zf: zipfile.ZipFile, raw: IO[bytes], info: zipfile.ZipInfo,
                   check: WaczCheck) -> tuple[Any, Any]:
    """A member's bytes: read from the file itself when stored (``ZipFile.open`` stops at a CRC mismatch, and
    an altered WARC must still be read to the end and named by its records)."""
    if info.compress_type == zipfile.ZIP_STORED:
        start, local_name = data_offset(raw, info)
        if start is None or local_name != info.filename:
            check.datapackage.append(f"{info.filename}: its local zip header is missing or names another file")
            return None, None
        return StoredMember(raw, start, info.compress_size), None
    try:
        member = zf.open(info)
    except (zipfile.BadZipFile, NotImplementedError, OSError) as exc:
        check.datapackage.append(f"{info.filename} cannot be opened in the zip ({_reason(exc)})")
        return None, None
    return member, member


def _check_member(zf: zipfile.ZipFile, raw: IO[bytes], info: zipfile.ZipInfo, resource: dict[str, Any],
                  check: WaczCheck) -> None:
    stream, closer = _member_stream(zf, raw, info, check)
    if stream is None:
        return
    algorithm = str(resource.get("hash") or "sha256:").partition(":")[0].lower().replace("-", "") or "sha256"
    try:
        hasher = hashlib.new(algorithm)
    except ValueError:
        check.datapackage.append(f"{info.filename}: {DATAPACKAGE} states a hash in an unknown algorithm "
                                 f"({resource.get('hash')!r:.60})")
        hasher = hashlib.sha256()
    size = 0
    try:
        while chunk := stream.read(READ_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        check.datapackage.append(f"{info.filename} cannot be read from the zip ({_reason(exc)})")
        return
    finally:
        if closer is not None:
            closer.close()
    _compare(info.filename, resource, hasher.hexdigest(), size, check, hasher.name)


def _compare(name: str, resource: dict[str, Any], hex_digest: str, size: int, check: WaczCheck,
             algorithm: str = "sha256") -> None:
    stated = resource.get("hash")
    algo, _, value = str(stated or "").partition(":")
    if not stated:
        check.datapackage.append(f"{name}: {DATAPACKAGE} states no hash for it")
    elif algo.lower().replace("-", "") == algorithm and value.lower() != hex_digest:
        check.datapackage.append(f"{name} hashes to {algorithm}:{hex_digest}; {DATAPACKAGE} lists {stated}")
    elif algo.lower().replace("-", "") != algorithm:
        check.datapackage.append(f"{name}: {DATAPACKAGE} states {stated!r:.80}, which is not checked here")
    if resource.get("bytes") not in (None, size):
        check.datapackage.append(f"{name} is {size} bytes; {DATAPACKAGE} lists {resource.get('bytes')}")


def _small(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, check: WaczCheck) -> bytes | None:
    if info is None:
        return None
    if info.file_size > 64 << 20:
        check.datapackage.append(f"{info.filename} claims {info.file_size} bytes; not read")
        return None
    try:
        with zf.open(info) as member:
            return member.read(64 << 20)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        check.datapackage.append(f"{info.filename} cannot be read from the zip ({_reason(exc)})")
        return None


def _json_object(data: bytes | None, name: str, check: WaczCheck) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        check.datapackage.append(f"{name} is not JSON ({_reason(exc)})")
        return None
    if not isinstance(value, dict):
        check.datapackage.append(f"{name} is not a JSON object")
        return None
    return value


def _page_entries(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], listed: dict[str, Any],
                  check: WaczCheck) -> list[dict[str, Any]]:
    """pages.jsonl (and extraPages.jsonl) entries: url, ts, title, text (bounded); the header line skipped."""
    entries: list[dict[str, Any]] = []
    for name in PAGES_FILES:
        info = members.get(name)
        if info is None:
            continue
        try:
            with zf.open(info) as member:
                for line in _lines(member):
                    try:
                        entry = json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        check.datapackage.append(f"{name}: a line is not JSON")
                        continue
                    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                        continue         # the header line ({"format": "json-pages-1.0", ...})
                    text = entry.get("text") if isinstance(entry.get("text"), str) else ""
                    title = entry.get("title") if isinstance(entry.get("title"), str) else None
                    entries.append({"url": entry["url"], "ts": _iso(str(entry.get("ts") or "")),
                                    "title": title, "text": text[:MAX_TEXT]})
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            check.datapackage.append(f"{name} cannot be read from the zip ({_reason(exc)})")
    return entries


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    buf = b""
    skipping = False
    while chunk := stream.read(READ_SIZE):
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line, buf = buf[:nl], buf[nl + 1:]
            if not skipping and line.strip():
                yield line
            skipping = False
        if len(buf) > MAX_PAGES_LINE:    # an unbounded line: dropped, not held
            buf, skipping = b"", True
    if buf.strip() and not skipping:
        yield buf


def _wacz_page(entry: dict[str, Any], candidates: list[Page]) -> Page:
    """A pages.jsonl entry, placed on its record: the response closest in time (a revisit or a non-2xx only
    when there is nothing better)."""
    best: Page | None = None
    if candidates:
        def rank(page: Page) -> tuple[int, int, float]:
            good = page.status is None or 200 <= page.status < 300
            return (page.mime == "warc/revisit", not good, _distance(page.ts, entry["ts"]))
        best = min(candidates, key=rank)
    text, source = entry["text"], "package"
    if not text:
        text, source = (best.text, "html") if best is not None and best.text else ("", "none")
    title = entry["title"] or (best.title if best is not None else None)
    if best is None:
        return Page(entry["url"], entry["ts"], None, None, title, text, "", -1, source)
    return Page(entry["url"], entry["ts"] or best.ts, best.status, best.mime, title, text, best.warc, best.offset,
                source)


def _distance(a: str, b: str) -> float:
    try:
        return abs((datetime.fromisoformat(a.replace("Z", "+00:00")) -
                    datetime.fromisoformat(b.replace("Z", "+00:00"))).total_seconds())
    except ValueError:
        return float("inf")
