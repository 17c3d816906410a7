"""WARC writing and sealing: one capture, one file (design.md principle 2).

Records are WARC/1.1, one gzip member each, with SHA-256 block and payload digests (hex, so that they can
be compared with ``sha256sum`` output) and ``WARC-Warcinfo-ID`` on every record. Bodies are streamed from
file objects in fixed-size chunks, so a large body is never held in memory.

Each record's gzip member is written at a level chosen for that record (``gzip_level``) and says which in its
own ``WARC-Gzip-Level`` header: 0 (deflate's stored blocks) for a body that does not compress -- video, images,
anything the server already compressed -- and 6 for the rest. Deflate at any level from 1 to 9 runs at ~60 MB/s
on bytes it cannot shrink and saves nothing there, while stored blocks cost a copy and a CRC: a 1 GiB video
sealed at level 9 spent 31 s in zlib, and now spends well under a second.

Sealing: temporary file under ``<archive>/tmp`` -> flush + fsync -> SHA-256 read back from disk -> read-only
(``prepare_seal``) -> the caller indexes it, which is the commit point -> atomic rename into
``warcs/YYYY/MM/DD/<capture-id>.warc.gz`` -> fsync of the directory (``commit_seal``). A file is only ever
moved into warcs/ once the index holds it, so a runner killed at any moment leaves either a temporary file
the index does not know (removed by the next runner; the job is captured again) or one it does (moved into
place by the next runner, ``finish_seal``) -- never a second sealed file for one capture, never a sealed
file the index does not know. A temporary file is never mistaken for a sealed one (``tmp/``, ``.part``).

Our own secrets are the one thing a record does not hold as it went over the wire (design.md principle 3). In a
request record the value of every credential header we send (``REDACTED_REQUEST_HEADERS``: Cookie, Authorization,
Proxy-Authorization) is replaced by ``REDACTED``, whoever added it (site credentials, capture/auth.py, or a cookie
the site set earlier in the capture, which is a session as much), and the record says so in a header of ours,
``WARC-Redacted-Headers: Cookie`` (the names of the headers redacted, in order, comma-separated): a reader can tell
a redacted value from one a client sent, and the block digest is that of the record as stored. In a response
record, a ``Set-Cookie`` for one of the credential's cookie names (``CaptureWarc.secret_cookie_names``: a site that
refreshes the session hands the secret back) keeps its name and attributes and loses its value, said the same way
(``WARC-Redacted-Headers: Set-Cookie``); every other Set-Cookie is the server's evidence and kept whole.

With ``[storage] url`` set (team mode), the prepared file is put into that store before it is indexed and removed
after: pipeline/sealing.py, which says what a kill at each of those steps leaves and how it is settled.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.errors import CaptureFailed
from archiver.store.files import fsync_dir, sha256_file  # noqa: F401  (sealing's; importers still find them here)

CHUNK = 1 << 20        # bytes read at a time when hashing (large reads: hashing runs near OpenSSL's own speed)

# Compression level of each record's gzip member (gzip_level): deflate (6, zlib's own default: level 9 costs far
# more CPU for a percent or two on text) unless a probe of the body says deflate would save under
# STORE_BELOW_SAVING of it; then stored (0), which is still a gzip member any reader inflates.
DEFLATE_LEVEL = 6
STORED_LEVEL = 0
STORE_BELOW_SAVING = 0.05
# What a redacted header value reads, and the header of ours that names the headers redacted (module docstring).
REDACTED = "[redacted]"
REDACTED_HEADER = "WARC-Redacted-Headers"
REDACTED_REQUEST_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
PROBE_MIN = 64 * 1024   # bodies up to this size are deflated without a probe: they cost next to nothing either way
PROBE_WINDOW = 32 * 1024
PROBE_WINDOWS = 4       # spread over the body: a video's header (its moov box) may compress, its frames do not
GZIP_LEVEL_HEADER = "WARC-Gzip-Level"
TMP_DIR = "tmp"
WARC_DIR = "warcs"

Body = bytes | BinaryIO


class DiskFull(CaptureFailed):
    """No space left where the WARC is written. Retryable: the job waits in the queue for space."""

    def __init__(self, message: str):
        super().__init__("disk-full", message, retryable=True)


def _disk_full(exc: OSError, doing: str, path: Path) -> DiskFull:
    free = _free_bytes(path)
    where = f"; {free:,} bytes free on that filesystem" if free is not None else ""
    return DiskFull(f"disk full while {doing} {path}{where}")


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _open_temp(path: Path) -> BinaryIO:
    """The file every byte of a capture is written to before sealing, opened exclusively (never an existing file).

    This is the one place a full disk shows up while capturing (writes and flushes of this file raise ENOSPC),
    which makes it the injection point for tests that cannot mount a small filesystem: they replace this
    function with one returning a file that raises ENOSPC past a byte budget. RLIMIT_FSIZE is no substitute:
    it raises EFBIG (after SIGXFSZ), which is a different failure.
    """
    return open(path, "xb")


@dataclass(frozen=True)
class SealedWarc:
    path: Path          # absolute
    rel_path: str       # relative to the archive directory, with forward slashes
    sha256: str         # hex digest of the whole file
    size: int


def warc_date(when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reason_phrase(status: int, given: str | None = None) -> str:
    if given:
        return given
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _clean(value: str) -> str:
    # A CR or LF inside a header value would forge extra header lines in the record.
    return value.replace("\r", " ").replace("\n", " ")


def redact_request_headers(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """(headers with every credential value replaced by REDACTED, the names of those replaced)."""
    out, redacted = [], []
    for name, value in headers:
        if name.lower() in REDACTED_REQUEST_HEADERS:
            out.append((name, REDACTED))
            redacted.append(name)
        else:
            out.append((name, value))
    return out, redacted


def redact_set_cookies(headers: list[tuple[str, str]], names: frozenset[str]) -> tuple[list[tuple[str, str]],
                                                                                          list[str]]:
    """(headers with the value of each Set-Cookie for one of ``names`` replaced by REDACTED, attributes kept;
    the names of the headers redacted)."""
    if not names:
        return headers, []
    out, redacted = [], []
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookie, sep, attributes = value.partition(";")
            cookie_name = cookie.split("=", 1)[0].strip()
            if "=" in cookie and cookie_name in names:
                out.append((name, f"{cookie_name}={REDACTED}{sep}{attributes}"))
                redacted.append(name)
                continue
        out.append((name, value))
    return out, redacted


def _redaction_note(redacted: list[str]) -> list[tuple[str, str]]:
    names = list(dict.fromkeys(redacted))  # each name once, in the order met
    return [(REDACTED_HEADER, ", ".join(names))] if names else []


def _body_stream(body: Body) -> tuple[BinaryIO, int]:
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        return io.BytesIO(data), len(data)
    body.seek(0, os.SEEK_END)
    length = body.tell()
    body.seek(0)
    return body, length


def gzip_level(stream: BinaryIO, length: int) -> int:
    """The compression level for a record whose body is ``stream`` (``length`` bytes; left at position 0).

    Chosen from the bytes, not from the Content-Type, which is the server's claim (and archived content is
    hostile): a few windows spread over the body are deflated at level 1, and a body they barely shrink is
    stored. A wrong guess costs bytes (a body stored that would have compressed further on) or time (one
    deflated that would not), never fidelity: every level inflates to the same bytes."""
    if length <= PROBE_MIN:
        return DEFLATE_LEVEL
    probe = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    taken = packed = 0
    for i in range(PROBE_WINDOWS):
        # The middle of each of PROBE_WINDOWS equal slices: a small header (a video's index) weighs what it
        # weighs in the body, not a whole window's worth.
        middle = length * (2 * i + 1) // (2 * PROBE_WINDOWS)
        stream.seek(min(max(0, middle - PROBE_WINDOW // 2), length - PROBE_WINDOW))
        window = stream.read(PROBE_WINDOW)
        taken += len(window)
        packed += len(probe.compress(window)) + len(probe.flush(zlib.Z_FULL_FLUSH))
    stream.seek(0)
    return STORED_LEVEL if packed >= taken * (1 - STORE_BELOW_SAVING) else DEFLATE_LEVEL


class _GzipMember:
    """A file-like object that takes one record's serialisation from warcio and writes it to ``out`` as one gzip
    member at ``level``. warcio's own GzippingWrapper (warcio 1.7-1.8) always deflates at level 9 and its
    WARCWriter takes no level, so the writer is run with gzip off over this instead. warcio calls ``flush`` once,
    after the record's closing CRLFs: that ends the member (a later write would fail loudly, never start a
    second member silently)."""

    def __init__(self, out: BinaryIO, level: int):
        self.out = out
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS + 16)

    def write(self, data: bytes) -> None:
        self.out.write(self.compressor.compress(data))

    def flush(self) -> None:
        self.out.write(self.compressor.flush())
        self.out.flush()


def _sha256_stream(stream: BinaryIO, prefix: bytes = b"") -> tuple[str, str]:
    """(block digest over prefix+stream, payload digest over stream), each as ``sha256:<hex>``."""
    block, payload = hashlib.sha256(prefix), hashlib.sha256()
    while chunk := stream.read(CHUNK):
        block.update(chunk)
        payload.update(chunk)
    stream.seek(0)
    return "sha256:" + block.hexdigest(), "sha256:" + payload.hexdigest()


class CaptureWarc:
    """The WARC of one capture while it is being written. Use as a context manager: leaving it without
    ``seal()`` (an exception, a timeout) discards the temporary file."""

    def __init__(self, archive_dir: Path, capture_id: str, owner_tag: str, started: datetime):
        self.archive_dir = archive_dir
        self.capture_id = capture_id
        day = started.astimezone(timezone.utc)
        self.rel_path = f"{WARC_DIR}/{day:%Y/%m/%d}/{capture_id}.warc.gz"
        tmp_dir = archive_dir / TMP_DIR
        # The owner tag in the name lets a later run tell a live writer's file from a dead one's.
        self.tmp_path = tmp_dir / f"{capture_id}.{owner_tag}.warc.gz.part"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            self._fh = _open_temp(self.tmp_path)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _disk_full(exc, "creating", self.tmp_path) from None
            raise
        # Builds records only; each is written as its own gzip member by _write (see _GzipMember).
        self._writer = WARCWriter(self._fh, gzip=False, warc_version="1.1")
        self.records: list[dict[str, Any]] = []
        self.warcinfo_id: str | None = None
        self.prepared: SealedWarc | None = None
        self.sealed: SealedWarc | None = None   # set once the file is the index's: then it is never discarded
        # Cookie names of the capture's site credentials, whose values are redacted from Set-Cookie answers.
        self.secret_cookie_names: frozenset[str] = frozenset()
        # Request records whose credential headers were redacted (their URIs), for provenance.
        self.redacted_requests: list[str] = []

    def __enter__(self) -> "CaptureWarc":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sealed is None:
            self.discard()

    # ---- records ------------------------------------------------------------------------------------

    def _write(self, uri: str | None, rec_type: str, body: Body, *, content_type: str | None = None,
               http_headers: StatusAndHeaders | None = None, extra: Iterable[tuple[str, str]] = (),
               date: datetime | None = None, http_status: int | None = None,
               index_content_type: str | None = None) -> str:
        stream, length = _body_stream(body)
        prefix = b""
        if http_headers is not None:
            http_headers.compute_headers_buffer(None)
            prefix = http_headers.headers_buff
        block_digest, payload_digest = _sha256_stream(stream, prefix)
        level = gzip_level(stream, length)
        warc_headers = StatusAndHeaders("", [], protocol="WARC/1.1")
        record_id = f"<urn:uuid:{uuid.uuid4()}>"
        warc_headers.add_header("WARC-Type", rec_type)
        warc_headers.add_header("WARC-Record-ID", record_id)
        warc_headers.add_header("WARC-Date", warc_date(date))
        if uri is not None:
            warc_headers.add_header("WARC-Target-URI", uri)
        if self.warcinfo_id and rec_type != "warcinfo":
            warc_headers.add_header("WARC-Warcinfo-ID", self.warcinfo_id)
        for name, value in extra:
            warc_headers.add_header(name, _clean(value))
        warc_headers.add_header("WARC-Block-Digest", block_digest)
        if rec_type != "warcinfo":
            warc_headers.add_header("WARC-Payload-Digest", payload_digest)
        warc_headers.add_header(GZIP_LEVEL_HEADER, str(level))
        record = self._writer.create_warc_record(uri or "", rec_type, payload=stream, length=length,
                                                 warc_headers=warc_headers, http_headers=http_headers,
                                                 warc_content_type=content_type)
        offset = self._fh.tell()
        try:
            # The one gzip member of this record, at its own level (the writer itself has gzip off).
            WARCWriter(_GzipMember(self._fh, level), gzip=False, warc_version="1.1").write_record(record)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _disk_full(exc, "writing", self.tmp_path) from None
            raise
        self.records.append({
            "seq": len(self.records), "record_id": record_id, "type": rec_type, "uri": uri, "offset": offset,
            "length": self._fh.tell() - offset, "http_status": http_status,
            # For HTTP records, the index wants the payload's type (None when the server sent none).
            "content_type": index_content_type if http_headers is not None else content_type,
            "payload_digest": payload_digest if rec_type != "warcinfo" else None, "gzip_level": level,
        })
        return record_id

    def write_warcinfo(self, fields: dict[str, Any]) -> str:
        lines = []
        for name, value in fields.items():
            if value is None or value == "":
                continue
            lines.append(f"{name}: {_clean(str(value))}\r\n")
        body = "".join(lines).encode("utf-8")
        self.warcinfo_id = self._write(None, "warcinfo", body, content_type="application/warc-fields",
                                       extra=[("WARC-Filename", Path(self.rel_path).name)])
        return self.warcinfo_id

    def write_response(self, uri: str, status: int, reason: str | None, headers: list[tuple[str, str]],
                       body: Body, *, date: datetime | None = None, ip: str | None = None,
                       protocols: Iterable[str] = (), truncated: str | None = None) -> str:
        headers, redacted = redact_set_cookies(headers, self.secret_cookie_names)
        http_headers = StatusAndHeaders(f"{status} {reason_phrase(status, reason)}",
                                        [(n, _clean(v)) for n, v in headers], protocol="HTTP/1.1")
        extra = _redaction_note(redacted)
        if ip:
            extra.append(("WARC-IP-Address", ip))
        extra.extend(("WARC-Protocol", p) for p in protocols)
        if truncated:
            extra.append(("WARC-Truncated", truncated))
        # As written into the record (cleaned), so that reindex reads back what the index holds.
        content_type = next((_clean(v) for n, v in headers if n.lower() == "content-type"), None)
        return self._write(uri, "response", body, content_type="application/http; msgtype=response",
                           http_headers=http_headers, extra=extra, date=date, http_status=status,
                           index_content_type=content_type)

    def write_request(self, uri: str, method: str, target: str, headers: list[tuple[str, str]], body: Body,
                      *, concurrent_to: str, date: datetime | None = None) -> str:
        headers, redacted = redact_request_headers(headers)
        if redacted:
            self.redacted_requests.append(uri)
        http_headers = StatusAndHeaders(f"{method} {target}", [(n, _clean(v)) for n, v in headers],
                                        protocol="HTTP/1.1", is_http_request=True)
        return self._write(uri, "request", body, content_type="application/http; msgtype=request",
                           http_headers=http_headers, extra=[("WARC-Concurrent-To", concurrent_to),
                                                             *_redaction_note(redacted)], date=date)

    def write_resource(self, uri: str, content_type: str, body: Body, *, concurrent_to: str | None = None,
                       date: datetime | None = None, truncated: str | None = None) -> str:
        extra = [("WARC-Concurrent-To", concurrent_to)] if concurrent_to else []
        if truncated:
            extra.append(("WARC-Truncated", truncated))
        return self._write(uri, "resource", body, content_type=content_type, extra=extra, date=date)

    def write_metadata(self, uri: str, content_type: str, body: Body, *, refers_to: str | None = None,
                       refers_to_uri: str | None = None) -> str:
        extra = []
        if refers_to:
            extra.append(("WARC-Refers-To", refers_to))
        if refers_to_uri:
            extra.append(("WARC-Refers-To-Target-URI", refers_to_uri))
        return self._write(uri, "metadata", body, content_type=content_type, extra=extra)

    # ---- sealing ------------------------------------------------------------------------------------

    def prepare_seal(self) -> SealedWarc:
        """Make the file durable, hash it as stored and make it read-only, still in tmp/. Index the returned
        facts, then call ``commit_seal``; leaving the context before that discards the file."""
        final = self.archive_dir / self.rel_path
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            digest, size = sha256_file(self.tmp_path)
            os.chmod(self.tmp_path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                raise FileExistsError(f"{final} already exists; refusing to overwrite a sealed file")
        except OSError as exc:
            self.discard()
            if exc.errno == errno.ENOSPC:
                raise _disk_full(exc, "sealing", final) from None
            raise
        self.prepared = SealedWarc(path=final, rel_path=self.rel_path, sha256=digest, size=size)
        return self.prepared

    def commit_seal(self) -> SealedWarc:
        """Move the prepared file into warcs/. Call once the index holds the capture: from here on the file is
        evidence the index refers to, so even if the move fails it is kept (``finish_seal`` completes it)."""
        if self.prepared is None:
            raise RuntimeError("commit_seal() before prepare_seal()")
        self.sealed = self.prepared
        finish_seal(self.tmp_path, self.sealed.path)
        return self.sealed

    def seal(self) -> SealedWarc:
        """Both halves at once, for a WARC that is not indexed by the caller."""
        self.prepare_seal()
        return self.commit_seal()

    def discard(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                # Closing flushes what is still buffered, which fails again on a full disk; the descriptor is
                # closed all the same, and the file must go whatever its state.
                pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


def finish_seal(tmp_path: Path, final: Path) -> bool:
    """Move a prepared (durable, hashed, read-only, indexed) file into warcs/ and make the move durable.
    False when it is no longer there to move: another runner finished this seal first. Never overwrites."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        if tmp_path.exists():
            raise FileExistsError(f"{final} already exists; refusing to overwrite a sealed file with {tmp_path}")
        return False
    try:
        # Only one process can rename the one temporary file, so a race ends here, never in an overwrite.
        os.rename(tmp_path, final)
    except FileNotFoundError:
        if final.exists():
            return False
        raise
    fsync_dir(final.parent)
    return True


def stale_temp_files(archive_dir: Path, live_owner_tags: set[str]) -> list[Path]:
    """Temporary files left by writers that no longer hold a lease (killed, crashed)."""
    tmp_dir = archive_dir / TMP_DIR
    if not tmp_dir.is_dir():
        return []
    stale = []
    for path in tmp_dir.glob("*.warc.gz.part"):
        parts = path.name.split(".")
        owner_tag = parts[1] if len(parts) > 4 else ""
        if owner_tag not in live_owner_tags:
            stale.append(path)
    return stale


IMPORTING_SUFFIX = ".warc.gz.importing"


def importing_files(archive_dir: Path) -> list[Path]:
    """WARCs being imported (ingest.py): never taken for a dead writer's file, since no lease covers them."""
    tmp_dir = archive_dir / TMP_DIR
    return sorted(tmp_dir.glob(f"*{IMPORTING_SUFFIX}")) if tmp_dir.is_dir() else []


def temp_files_of(archive_dir: Path, tag: str) -> list[Path]:
    """Temporary files written by one owner (a worker the supervisor has just killed)."""
    tmp_dir = archive_dir / TMP_DIR
    return sorted(tmp_dir.glob(f"*.{tag}.warc.gz.part")) if tmp_dir.is_dir() else []


def owner_tag(owner: str) -> str:
    """A file-name-safe form of a lease owner (host:pid:random)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in owner)
