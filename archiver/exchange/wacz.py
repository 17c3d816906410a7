"""WACZ export (``archiver export``) and the offline check of an exported package (``archiver verify --wacz``).

A case export is one WACZ 1.1.1 file that a third party can replay (ReplayWeb.page), validate (``wacz validate``)
and check with standard tools alone -- what each capture holds, that nothing changed since it was sealed, when
it existed, and which archive sealed it:

    archive/<capture-id>.warc.gz     the sealed WARCs, byte for byte, stored (not deflated: replay reads them
                                     by offset), streamed into the zip -- never read whole into memory
    indexes/index.cdxj               one line per response/resource record: SURT key, 14-digit time, JSON with
                                     url, mime, status, payload digest, offset, length, filename, recordDigest
    pages/pages.jsonl                a header line, then one page per capture (id, url, ts, title)
    provenance/VERIFY.txt            how to check all of it with unzip, sha256sum, openssl, warcio and python3
    provenance/export.json           the captures (hashes, where their signed provenance records are), the keys,
                                     the ledger head, the timestamp tokens: what the checks below compare
    provenance/ledger.jsonl          the ledger entries of the exported captures and of their jobs (ledger.py
                                     says how each entry's hash is computed)
    provenance/<id>.<n>.tsr          the RFC 3161 timestamp tokens of each WARC, with their ``.tsr.json`` notes
    provenance/archive-key.pub.pem   the archive's Ed25519 public key, which signed every capture's provenance
    provenance/wacz-key.pub.pem      the ECDSA P-384 key that signs the package, and wacz-key-binding.txt/.sig:
                                     the archive key's signature vouching for it (keys.py says why two keys)
    datapackage.json                 every file above with its SHA-256 and size
    datapackage-digest.json          the SHA-256 of datapackage.json, signed with the WACZ key (anonymous form)
    received/, archive/received-*    files received from others, with their receipts and the receipts' tokens
                                     (wacz_received.py says how)

Layout rules that are not obvious (each was checked against py-wacz 0.6 and ReplayWeb.page 2.5): no file at the
root but the two datapackage files and no nested folder (py-wacz matches files by their last two path parts), so
our own files go in one listed ``provenance/`` folder; resource names lowercase (frictionless' pattern; our IDs
are uppercase); the pages file starts with a header line (wabac.js always drops the first line). The package
signature follows what wabac.js verifies: ECDSA P-384 / SHA-256 over the UTF-8 of the ``hash`` string, a
base64 SPKI public key, a raw ``r||s`` signature, ``created`` equal to the datapackage's. py-wacz never checks
an anonymous signature, so ``verify_wacz`` does.

An export refuses a capture whose WARC no longer hashes as it was sealed, or whose records are not where the
index says: it never passes on altered evidence. The file is written to a temporary name beside the output,
then linked into place (never over an existing file) in the transaction that appends the ``exported`` ledger
entry with its SHA-256.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.timeutils import iso_date_to_timestamp

from archiver.custody import keys, ledger
from archiver.custody import timestamps as tsa
from archiver.errors import ArchiverError, UserError
from archiver.custody.verify import SEALING_EVENTS, SIGNED_PREFIXES, _payload_digest
from archiver.store.blobs import Stores
from archiver.store.details import login_of
from archiver.store.warc import sha256_file

WACZ_VERSION = "1.1.1"
CHUNK = 1 << 20
DATAPACKAGE = "datapackage.json"
DIGEST = "datapackage-digest.json"
CDXJ_PATH = "indexes/index.cdxj"
PAGES_PATH = "pages/pages.jsonl"
PROVENANCE_DIR = "provenance"
MANIFEST_PATH = f"{PROVENANCE_DIR}/export.json"
LEDGER_PATH = f"{PROVENANCE_DIR}/ledger.jsonl"
VERIFY_PATH = f"{PROVENANCE_DIR}/VERIFY.txt"
ARCHIVE_KEY_PATH = f"{PROVENANCE_DIR}/archive-key.pub.pem"
WACZ_KEY_PATH = f"{PROVENANCE_DIR}/wacz-key.pub.pem"
BINDING_PATH = f"{PROVENANCE_DIR}/wacz-key-binding.txt"
BINDING_SIG_PATH = f"{PROVENANCE_DIR}/wacz-key-binding.sig"
PAGES_HEADER = {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
# The wacz-auth spec: "The SignatureData object MUST not contain any property that is not listed."
SIGNED_DATA_FIELDS = {"hash", "created", "software", "version", "signature", "publicKey"}
# Records replay looks up (requests, warcinfo and metadata are not pages of the web).
CDX_TYPES = ("response", "resource", "revisit")
# The ledger events that record a sealed file entering an index (verify.py keeps them as an SQL list).
SEALING = tuple(e.strip().strip("'") for e in SEALING_EVENTS.split(","))
# datapackage.json and the small files are read whole; a zip claiming more than this for one is not ours.
MAX_SMALL_MEMBER = 256 << 20
ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")   # signature ... file name length, extra field length
# The problems that break the tie between a package and the archive key it names (WaczReport.origin_problems).
ORIGIN_KINDS = ("package-signature", "key-binding", "unexpected-key")
ORIGIN_PATHS = (DATAPACKAGE, DIGEST, ARCHIVE_KEY_PATH, WACZ_KEY_PATH, BINDING_PATH, BINDING_SIG_PATH)


class ExportError(UserError):
    """An export that cannot be made as asked: nothing selected, the output exists or cannot be written."""


class EvidenceAltered(ArchiverError):
    """A selected capture's WARC no longer matches what was sealed (or what the index says of it): exporting it
    would pass altered evidence on as sealed. ``archiver verify`` names the damage."""

    exit_code = 1


def software() -> str:
    try:
        return f"archiver {package_version('archiver')}"
    except PackageNotFoundError:
        return "archiver"


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- reading a WARC once: hashes, record positions, the zip copy ------------------------------------------

class HashingReader:
    """Reads ``source`` front to back for warcio, hashing every byte -- the whole stream, and each byte range of
    ``ranges`` (the records: their SHA-256 is the CDXJ ``recordDigest``) -- and copying it to ``sink``. So one pass
    over a WARC gives its SHA-256, its records, every record's digest and its copy in the zip."""

    def __init__(self, source: IO[bytes], ranges: Iterable[tuple[int, int]] = (), sink: IO[bytes] | None = None):
        self._source = source
        self._sink = sink
        self._whole = hashlib.sha256()
        self.crc = 0
        self.position = 0
        self._ranges = sorted({(o, n) for o, n in ranges if n > 0})
        self._next = 0
        self._active: list[tuple[int, int, Any]] = []
        self.range_digests: dict[tuple[int, int], str] = {}

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:   # io semantics; warcio always reads in blocks
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        data = self._source.read(size)
        if data:
            self._take(data)
        return data

    def drain(self) -> None:
        """Read what the WARC parser left (nothing, for a well-formed WARC), so hashes and copy are complete."""
        while self.read(CHUNK):
            pass

    @property
    def sha256(self) -> str:
        return self._whole.hexdigest()

    def _take(self, data: bytes) -> None:
        start, end = self.position, self.position + len(data)
        self._whole.update(data)
        self.crc = zlib.crc32(data, self.crc)
        if self._sink is not None:
            self._sink.write(data)
        while self._next < len(self._ranges) and self._ranges[self._next][0] < end:
            offset, length = self._ranges[self._next]
            self._active.append((offset, length, hashlib.sha256()))
            self._next += 1
        still = []
        for offset, length, hasher in self._active:
            lo, hi = max(offset, start), min(offset + length, end)
            if lo < hi:
                hasher.update(data[lo - start:hi - start])
            if offset + length <= end:
                self.range_digests[(offset, length)] = "sha256:" + hasher.hexdigest()
            else:
                still.append((offset, length, hasher))
        self._active = still
        self.position = end


@dataclass
class ScannedRecord:
    type: str
    record_id: str | None
    uri: str | None
    date: str | None
    offset: int
    length: int
    mime: str | None
    status: str | None
    payload_digest: str | None      # as the record's header states it
    payload_sha256: str             # as computed from the payload read


@dataclass
class WarcScan:
    """What one streaming pass over a WARC found."""
    records: list[ScannedRecord]
    signed: dict[str, bytes]          # "provenance" / "signature" -> payload
    sha256: str
    size: int
    crc: int
    range_digests: dict[tuple[int, int], str]
    problems: list[str]


def _mime_status(record: Any) -> tuple[str | None, str | None]:
    """The CDXJ ``mime`` (from the HTTP Content-Type; for a resource, the WARC one) and ``status``."""
    http = record.http_headers if record.rec_type in ("response", "revisit") else None
    if http is not None:
        content_type = http.get_header("Content-Type")
        status = http.get_statuscode()
    else:
        content_type, status = record.rec_headers.get_header("Content-Type"), None
    if record.rec_type == "revisit":
        content_type = "warc/revisit"
    mime = content_type.split(";", 1)[0].strip().lower() if content_type else None
    return mime or None, status


def scan_warc(source: IO[bytes], ranges: Iterable[tuple[int, int]] = (), sink: IO[bytes] | None = None) -> WarcScan:
    """Read a WARC (any stream, front to back): its records, the SHA-256 of the whole and of each range in
    ``ranges``, its signed provenance payloads, and every payload against the digest its header states."""
    reader = HashingReader(source, ranges, sink)
    records: list[ScannedRecord] = []
    signed: dict[str, bytes] = {}
    problems: list[str] = []
    try:
        iterator = ArchiveIterator(reader, check_digests=False)
        for record in iterator:
            headers = record.rec_headers
            uri = headers.get_header("WARC-Target-URI")
            mime, status = _mime_status(record)
            # Read the payload first: asking for the offset makes warcio skip past the record.
            got, payload = _payload_digest(record, keep=(uri or "").startswith(SIGNED_PREFIXES))
            if payload is not None:
                signed[uri.split(":", 2)[1]] = payload
            offset, length = iterator.get_record_offset(), iterator.get_record_length()
            stated = headers.get_header("WARC-Payload-Digest")
            if record.rec_type not in ("warcinfo", "revisit") and stated and stated.startswith("sha256:") \
                    and stated != got:
                problems.append(f"the payload of the {record.rec_type} record {uri} at offset {offset} hashes to "
                                f"{got}, its header states {stated}")
            records.append(ScannedRecord(record.rec_type, headers.get_header("WARC-Record-ID"), uri,
                                         headers.get_header("WARC-Date"), offset, length, mime, status, stated, got))
        reader.drain()
    except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # The reason may quote the bytes it choked on: keep what a terminal shows as text.
        reason = "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in reason)[:120]
        problems.append(f"cannot be read after {len(records)} record(s) ({reason})")
        try:
            reader.drain()
        except (OSError, ValueError, zipfile.BadZipFile):
            pass
    return WarcScan(records, signed, reader.sha256, reader.position, reader.crc, reader.range_digests, problems)


# ---- CDXJ and pages -----------------------------------------------------------------------------------------

def surt_key(url: str) -> str:
    """A SURT sort key as cdxj-indexer writes it: host labels reversed, lowercase, without ``www.``, then ``)``
    and the path and query (``example,news)/2016/12/16/aleppo-live/``). Replay in wabac.js goes by the ``url``
    field; pywb-style readers binary-search on this key. Other URIs (``urn:...``) are just lowercased. Written
    here because the ``surt`` package pulls in tldextract, which may fetch the public-suffix list."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return url.lower()
    if parts.scheme not in ("http", "https") or not host:
        return url.lower()
    if host.replace(".", "").isdigit() or ":" in host:
        key = host                       # an address: not a hierarchy of names
    else:
        labels = host.split(".")
        if labels[0] == "www":
            labels = labels[1:]
        key = ",".join(reversed(labels))
    if port and port != {"http": 80, "https": 443}[parts.scheme]:
        key += f":{port}"
    return f"{key}){(parts.path or '/').lower()}" + (f"?{parts.query.lower()}" if parts.query else "")


def cdxj_lines(filename: str, scan: WarcScan) -> list[str]:
    """The CDXJ lines of one WARC's replayable records (not yet sorted across the package)."""
    lines = []
    for r in scan.records:
        when = _cdx_time(r.date)
        # A URI with white space (some received files hold them) would split the line where readers split it.
        if r.type not in CDX_TYPES or not r.uri or when is None or any(c.isspace() for c in r.uri):
            continue
        entry: dict[str, str] = {"url": r.uri}
        if r.mime:
            entry["mime"] = r.mime
        if r.status and r.type != "resource":
            entry["status"] = str(r.status)
        if r.payload_digest:
            entry["digest"] = r.payload_digest
        entry.update(length=str(r.length), offset=str(r.offset), filename=filename)
        if (r.offset, r.length) in scan.range_digests:
            entry["recordDigest"] = scan.range_digests[(r.offset, r.length)]
        lines.append(f"{surt_key(r.uri)} {when} {json.dumps(entry, ensure_ascii=False)}")
    return lines


def _cdx_time(date: str | None) -> str | None:
    """The 14-digit CDXJ time of a WARC-Date: ISO 8601 (WARC/1.0 on), or already 14 digits (WARC/0.17, in files
    received from others); None when it is neither."""
    if not date:
        return None
    if len(date) == 14 and date.isdigit():
        return date
    try:
        when = iso_date_to_timestamp(date)
    except (ValueError, TypeError, IndexError):
        return None
    return when if len(when) >= 14 and when[:14].isdigit() else None


def page_of(capture: dict[str, Any], scan: WarcScan) -> dict[str, Any]:
    """The capture as a page of pages.jsonl: the URL it ended at (or was asked for) when the WARC holds a
    record of it; else the first HTML response (a tweet's embed page); else its first replayable record."""
    replayable = [r for r in scan.records if r.type in CDX_TYPES and r.uri]
    by_url = {r.uri: r for r in reversed(replayable)}
    chosen = next((by_url[u] for u in (capture.get("final_url"), capture["url"]) if u in by_url), None)
    if chosen is None:
        chosen = next((r for r in replayable if r.type == "response" and r.mime == "text/html"), None)
    if chosen is None and replayable:
        chosen = replayable[0]
    page: dict[str, Any] = {"id": capture["id"], "url": chosen.uri if chosen else capture["url"],
                            "ts": (chosen.date if chosen and chosen.date else capture["started_at"])}
    if capture.get("title"):
        page["title"] = capture["title"]
    return page


# ---- selecting and exporting --------------------------------------------------------------------------------

def select_captures(index: Any, ids: list[str], tag: str | None, since: str | None) -> list[dict[str, Any]]:
    """The captures named by ID (or unique ID prefix, or URL), plus those ``archiver list --tag/--since`` shows,
    oldest first, each once."""
    return select(index, ids, tag, since)[0]


def select(index: Any, ids: list[str], tag: str | None, since: str | None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``archiver export`` exports: the captures named by ID (or unique ID prefix, or URL), plus those
    ``archiver list --tag/--since`` shows, oldest first, each once; and the received files (wacz_received) named
    by a receipt's ID or a received page's ID (a page takes its whole file), plus the receipts with that tag,
    received since then."""
    from archiver.errors import NotFound
    from archiver.exchange import wacz_received
    if not ids and not tag and not since:
        raise ExportError("say what to export: capture IDs, receipt IDs, --tag TAG and/or --since DATE")
    chosen: dict[str, dict[str, Any]] = {}
    receipts: dict[str, dict[str, Any]] = {}
    for ident in ids:
        try:
            capture = index.find_capture(ident)
        except NotFound:
            held = wacz_received.find_receipt(index, ident)   # NotFound: exit 1, as everywhere for an unknown ID
            receipts[held["id"]] = held
            continue
        chosen[capture["id"]] = capture
    if tag or since:
        for row in index.list_captures(tag=tag, since=since):
            if row["id"] not in chosen:
                chosen[row["id"]] = index.find_capture(row["id"])
        for held in wacz_received.receipts_tagged(index, tag, since):
            receipts.setdefault(held["id"], held)
    if not chosen and not receipts:
        what = " and ".join(f"{name} {value!r}" for name, value in (("--tag", tag), ("--since", since)) if value)
        raise ExportError(f"no captures match {what}, nor any file received from others; nothing exported "
                          "(see `archiver list`)")
    return [chosen[k] for k in sorted(chosen)], [receipts[k] for k in sorted(receipts)]


@dataclass
class ExportResult:
    path: Path
    sha256: str
    bytes: int
    captures: list[str]
    datapackage_hash: str
    ledger_seq: int
    timestamps: int
    warnings: list[str] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)     # the received files exported, by receipt

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "bytes": self.bytes, "captures": self.captures,
                "receipts": self.receipts, "datapackage_hash": self.datapackage_hash, "ledger_seq": self.ledger_seq,
                "timestamps": self.timestamps, "warnings": self.warnings}


class _Package:
    """The zip being written, and the resources datapackage.json will list."""

    def __init__(self, zf: zipfile.ZipFile, when: datetime):
        self.zf = zf
        self.date_time = when.timetuple()[:6]
        self.resources: list[dict[str, Any]] = []

    def _info(self, path: str, compress: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self.date_time)
        info.compress_type = compress
        info.external_attr = 0o644 << 16
        return info

    def _list(self, path: str, sha256_hex: str, size: int) -> None:
        # Lowercase: frictionless (run by `wacz validate`) wants names matching ^([-a-z0-9._/])+$.
        self.resources.append({"name": path.lower(), "path": path, "hash": f"sha256:{sha256_hex}", "bytes": size})

    def add_bytes(self, path: str, data: bytes, listed: bool = True) -> None:
        self.zf.writestr(self._info(path, zipfile.ZIP_DEFLATED), data)
        if listed:
            self._list(path, hashlib.sha256(data).hexdigest(), len(data))

    def add_file(self, path: str, source: Path) -> str:
        """Copy a small file in, streamed; its SHA-256."""
        h = hashlib.sha256()
        size = 0
        with open(source, "rb") as fh, self.zf.open(self._info(path, zipfile.ZIP_DEFLATED), "w") as out:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        self._list(path, h.hexdigest(), size)
        return h.hexdigest()

    def add_stream(self, path: str, source: IO[bytes], size: int) -> tuple[str, int]:
        """Copy a file that is already compressed (a received WACZ) in, stored, streamed; its SHA-256 and size."""
        info = self._info(path, zipfile.ZIP_STORED)
        info.file_size = size
        h, written = hashlib.sha256(), 0
        with self.zf.open(info, "w") as out:
            while chunk := source.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                written += len(chunk)
        self._list(path, h.hexdigest(), written)
        return h.hexdigest(), written

    def add_warc(self, path: str, source: Path | Callable[[], BinaryIO], ranges: list[tuple[int, int]],
                 size: int | None = None) -> WarcScan:
        """Stream a WARC in, stored (replay reads records by offset inside the member), scanning it on the way.
        ``source``: a file, or what opens an object in a store (then ``size`` is its size)."""
        info = self._info(path, zipfile.ZIP_STORED)
        # The size up front lets zipfile pick ZIP64 for a WARC over 4 GiB without rewriting anything.
        info.file_size = source.stat().st_size if isinstance(source, Path) else size
        opener = (lambda: open(source, "rb")) if isinstance(source, Path) else source
        with opener() as fh, self.zf.open(info, "w") as out:
            scan = scan_warc(fh, ranges, sink=out)
        self._list(path, scan.sha256, scan.size)
        return scan


def _login(scan: WarcScan) -> str | None:
    """How the scanned capture was logged in (store/details.login_of), from its signed provenance."""
    try:
        provenance = json.loads(scan.signed.get("provenance") or b"null")
    except ValueError:
        return None
    return login_of(provenance if isinstance(provenance, dict) else None)


def granted_tokens(conn: sqlite3.Connection, column: str, ident: str) -> list[dict[str, Any]]:
    """The granted timestamps with a token file of a capture (``column`` "capture_id") or of a receipt
    ("receipt_id"). Read defensively: an index from before the table, or columns that changed, give none rather
    than a failed export."""
    assert column in ("capture_id", "receipt_id")
    try:
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM timestamps WHERE {column} = ? ORDER BY id", (ident,))]
    except sqlite3.Error:
        return []
    return [r for r in rows if r.get("state") == "done" and r.get("token_path")]


PackagedToken = tuple[str, Path | bytes, str | None]   # (path in the package, file or bytes, SHA-256 recorded)


def packaged_tokens(rows: list[dict[str, Any]], read: Callable[[str], Path | bytes | None],
                    named: Callable[[str], str], missing: Callable[[str], str], warnings: list[str]
                    ) -> tuple[list[dict[str, Any]], list[PackagedToken]]:
    """The tokens of ``rows`` (granted_tokens) and their notes, to put into the package: their manifest entries
    (``timestamps`` of a capture or of a received file) and what to copy (add_tokens). ``read`` gives a token or
    note by its path as indexed (None: not there), ``named`` its path in the package; a token that is not there is
    left out with the warning ``missing`` words, so that the export still carries the rest."""
    stamps: list[dict[str, Any]] = []
    tokens: list[PackagedToken] = []
    for row in rows:
        token = read(row["token_path"])
        if token is None:
            warnings.append(missing(row["token_path"]))
            continue
        path = named(row["token_path"])
        stamps.append({"token": path, "tsa_url": row.get("tsa_url"), "digest": row.get("digest"),
                       "gen_time": row.get("gen_time"), "serial": row.get("serial"),
                       "tsa_name": row.get("tsa_name"), "token_sha256": row.get("token_sha256")})
        tokens.append((path, token, row.get("token_sha256")))
        sidecar = read(tsa.sidecar_of(row["token_path"]))
        if sidecar is not None:
            stamps[-1]["note"] = tsa.sidecar_of(path)
            tokens.append((tsa.sidecar_of(path), sidecar, None))
    return stamps, tokens


def token_reader(archive_dir: Path, store: Any) -> Callable[[str], Path | bytes | None]:
    """How packaged_tokens reads a token or note: an object in ``store`` (beside a WARC or a receipt in it), or a
    file under the archive (``store`` None)."""
    def read(rel: str) -> Path | bytes | None:
        if store is not None:
            return tsa.object_bytes(store, rel)
        path = archive_dir / rel
        return path if path.is_file() else None
    return read


def add_tokens(package: "_Package", tokens: list[PackagedToken]) -> None:
    """Copy the tokens in, each checked against the SHA-256 recorded when it was granted: a token changed since
    is not passed on as the TSA's."""
    for path, source, recorded in tokens:
        if isinstance(source, bytes):
            package.add_bytes(path, source)
            copied = hashlib.sha256(source).hexdigest()
        else:
            copied = package.add_file(path, source)
        if recorded and copied != recorded:
            raise EvidenceAltered(f"timestamp token {Path(path).name} hashes to {copied}, the index recorded "
                                  f"{recorded}; not exported (run `archiver verify`)")


def _ledger_excerpt(conn: sqlite3.Connection, captures: list[dict[str, Any]],
                    receipt_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The ledger entries of the exported captures and of the jobs they came from, and the ``received`` entries of
    the exported received files, in chain order."""
    from archiver.exchange.wacz_received import receiving_entries
    seen: dict[int, dict[str, Any]] = {}
    for capture in captures:
        for entry in ledger.entries(conn, capture_id=capture["id"], job_id=capture.get("job_id")):
            entry["detail"] = json.loads(entry["detail"])
            seen[entry["seq"]] = entry
    for entry in receiving_entries(conn, list(receipt_ids)):
        entry["detail"] = json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"]
        seen[entry["seq"]] = entry
    return [seen[seq] for seq in sorted(seen)]


def _check_sealed(capture: dict[str, Any], scan: WarcScan, indexed: list[dict[str, Any]]) -> None:
    rel, cid = capture["warc_path"], capture["id"]
    if scan.sha256 != capture["warc_sha256"]:
        raise EvidenceAltered(f"capture {cid}: {rel} hashes to {scan.sha256}, it was sealed as "
                              f"{capture['warc_sha256']}; not exported (run `archiver verify {cid}`)")
    if scan.problems:
        raise EvidenceAltered(f"capture {cid}: {rel} {scan.problems[0]}; not exported")
    found = [(r.offset, r.length) for r in scan.records]
    if found != [(r["offset"], r["length"]) for r in indexed]:
        raise EvidenceAltered(f"capture {cid}: the records of {rel} are not where the index says they are; not "
                              f"exported (run `archiver verify {cid}`)")


def export_wacz(archive_dir: Path, settings: Any, index: Any, output: Path, *, ids: list[str],
                tag: str | None = None, since: str | None = None, title: str | None = None) -> ExportResult:
    """Write the selected captures as a signed WACZ at ``output`` and record the export in the ledger."""
    if output.suffix.lower() != ".wacz":
        raise ExportError(f"{output}: the output must end in .wacz (replay tools know a WACZ by its name)")
    if output.exists() or output.is_symlink():
        raise ExportError(f"{output} already exists; an export never overwrites a file (choose another -o)")
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise ExportError(f"cannot write {output}: {output.parent} is not a writable directory")
    captures, receipts = select(index, ids, tag, since)
    archive_key = keys.load_or_create(archive_dir, settings, index)
    wacz_key = keys.load_or_create_wacz_key(archive_dir, settings, index)
    when = datetime.now(timezone.utc).replace(microsecond=0)
    created = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "x", allowZip64=True) as zf:
            package = _Package(zf, when)
            built = _write_members(package, archive_dir, index, captures, archive_key, wacz_key, created, title,
                                   Stores(archive_dir, settings), receipts)
            dp_bytes = (json.dumps(built.datapackage(package.resources), indent=2, ensure_ascii=False) + "\n").encode()
            dp_hash = "sha256:" + hashlib.sha256(dp_bytes).hexdigest()
            package.add_bytes(DATAPACKAGE, dp_bytes, listed=False)
            package.add_bytes(DIGEST, json.dumps(signed_digest(wacz_key, dp_hash, created), indent=2).encode(),
                              listed=False)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest, size = sha256_file(tmp)
        return _place(index, tmp, output, ExportResult(
            output, digest, size, [c["id"] for c in captures], dp_hash, 0, built.timestamps, built.warnings,
            [r["id"] for r in receipts]),
            archive_key, wacz_key)
    finally:
        tmp.unlink(missing_ok=True)


def signed_digest(wacz_key: keys.WaczKey, dp_hash: str, created: str) -> dict[str, Any]:
    """datapackage-digest.json: the datapackage hash, signed as ArchiveWeb.page signs and wabac.js verifies
    (the message is the UTF-8 of the hash string itself, prefix included)."""
    return {"path": DATAPACKAGE, "hash": dp_hash,
            "signedData": {"hash": dp_hash, "created": created, "software": software(),
                           "signature": base64.b64encode(wacz_key.sign(dp_hash.encode("utf-8"))).decode("ascii"),
                           "publicKey": wacz_key.public_b64}}


@dataclass
class _Built:
    title: str
    description: str
    created: str
    pages: list[dict[str, Any]]
    timestamps: int
    warnings: list[str]

    def datapackage(self, resources: list[dict[str, Any]]) -> dict[str, Any]:
        package: dict[str, Any] = {"profile": "data-package", "wacz_version": WACZ_VERSION, "title": self.title,
                                   "description": self.description, "created": self.created,
                                   "modified": self.created, "software": software(), "resources": resources}
        if self.pages:
            package.update(mainPageUrl=self.pages[0]["url"], mainPageDate=self.pages[0]["ts"])
        return package


def _warc_source(archive_dir: Path, stores: Any, capture: dict[str, Any]) -> tuple[Path | Callable[[], BinaryIO], int | None]:
    """Where export reads a capture's WARC: its file in warcs/, or its object (the version sealed) in a store."""
    missing = EvidenceAltered(f"capture {capture['id']}: its WARC {capture['warc_path']} is missing; not exported "
                              f"(run `archiver verify {capture['id']}`)")
    if not capture.get("warc_store"):
        if not (archive_dir / capture["warc_path"]).is_file():
            raise missing
        return archive_dir / capture["warc_path"], None
    from archiver.store.archive import warc_key
    from archiver.store.blobs import NotStored
    store, key, version = stores.of(capture["warc_store"]), warc_key(capture["warc_path"]), capture.get("warc_version")
    try:
        info = store.head(key, version)
    except NotStored:
        raise missing from None
    return (lambda: store.open(key, version)), info.size


def _write_members(package: _Package, archive_dir: Path, index: Any, captures: list[dict[str, Any]],
                   archive_key: keys.ArchiveKey, wacz_key: keys.WaczKey, created: str, title: str | None,
                   stores: Any = None, receipts: list[dict[str, Any]] | None = None) -> _Built:
    cdx: list[str] = []
    pages: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    tokens: list[PackagedToken] = []
    warnings: list[str] = []
    for capture in captures:
        indexed = index.capture_records(capture["id"])
        name = f"{capture['id']}.warc.gz"
        source, size = _warc_source(archive_dir, stores, capture)
        scan = package.add_warc(f"archive/{name}", source, [(r["offset"], r["length"]) for r in indexed], size)
        _check_sealed(capture, scan, indexed)
        cdx += cdxj_lines(name, scan)
        pages.append(page_of(capture, scan))
        store = stores.of(capture["warc_store"]) if capture.get("warc_store") else None
        stamps, carried = packaged_tokens(
            granted_tokens(index.conn, "capture_id", capture["id"]), token_reader(archive_dir, store),
            lambda rel: f"{PROVENANCE_DIR}/{Path(rel).name}",
            lambda rel, cid=capture["id"]: f"capture {cid}: timestamp token {rel} is missing; not exported (run "
                                           f"`archiver verify {cid}`)", warnings)
        tokens += carried
        signed_at = {kind: next(({"offset": r.offset, "length": r.length} for r in scan.records
                                 if r.uri == f"urn:{kind}:{capture['id']}"), None)
                     for kind in ("provenance", "signature")}
        listed.append({"id": capture["id"], "url": capture["url"], "final_url": capture.get("final_url"),
                       "status": capture["status"], "started_at": capture["started_at"],
                       "finished_at": capture["finished_at"], "title": capture.get("title"),
                       "warc": f"archive/{name}", "warc_sha256": scan.sha256, "warc_size": scan.size,
                       "record_count": len(scan.records), "provenance_record": signed_at["provenance"],
                       "signature_record": signed_at["signature"], "timestamps": stamps,
                       # Whether the capture was made logged in, and as whom (never a secret: capture/auth.py).
                       "logged_in": _login(scan)})
    for c in listed:
        if c["logged_in"]:
            # Said where the exporter reads it too: these captures show what one account saw, not any reader.
            warnings.append(f"capture {c['id']} was made logged in: {c['logged_in']}")
    unstamped = [c["id"] for c in listed if not c["timestamps"]]
    if unstamped:
        # Not an error -- the package still proves integrity and origin -- but its recipient should know that the
        # time of these rests on this archive's clock and ledger alone, while the fix is one command away.
        warnings.append(f"{len(unstamped)} of {len(listed)} capture(s) carry no RFC 3161 timestamp, so their time "
                        f"rests on this archive's clock and ledger alone; `archiver timestamp "
                        f"{' '.join(unstamped[:3])}{' ...' if len(unstamped) > 3 else ''}` (with timestamp.tsa_urls "
                        f"set) adds one before exporting")
    held = _write_received(package, archive_dir, index, receipts or [], stores, cdx, pages, warnings, tokens)
    package.add_bytes(CDXJ_PATH, "".join(line + "\n" for line in sorted(cdx)).encode("utf-8"))
    package.add_bytes(PAGES_PATH, "".join(json.dumps(p, ensure_ascii=False) + "\n"
                                          for p in [PAGES_HEADER, *pages]).encode("utf-8"))
    add_tokens(package, tokens)
    excerpt = _ledger_excerpt(index.conn, captures, [r["receipt"] for r in held])
    head = ledger.head(index.conn)
    binding, binding_sig = keys.wacz_key_binding(archive_key, wacz_key)
    package.add_bytes(ARCHIVE_KEY_PATH, archive_key.public_pem.encode("ascii"))
    package.add_bytes(WACZ_KEY_PATH, wacz_key.public_pem.encode("ascii"))
    package.add_bytes(BINDING_PATH, binding)
    package.add_bytes(BINDING_SIG_PATH, binding_sig)
    package.add_bytes(LEDGER_PATH, "".join(ledger.canonical(e) + "\n" for e in excerpt).encode("utf-8"))
    manifest = {
        "format": "archiver-export-1", "created": created, "software": software(),
        "archive_key": {"algorithm": keys.ALGORITHM, "fingerprint": archive_key.fingerprint,
                        "public_key": archive_key.public_b64, "file": ARCHIVE_KEY_PATH},
        "wacz_key": {"algorithm": keys.WACZ_ALGORITHM, "fingerprint": wacz_key.fingerprint,
                     "file": WACZ_KEY_PATH, "binding": BINDING_PATH, "binding_signature": BINDING_SIG_PATH},
        # The seqs of the excerpt: entries of other captures lie between them, so the chain alone cannot show
        # that one of these was taken out; this list can.
        "ledger": {"file": LEDGER_PATH, "entries": len(excerpt), "seqs": [e["seq"] for e in excerpt],
                   "head": {k: head[k] for k in ("seq", "at", "hash")} if head else None},
        "captures": listed,
    }
    if held:
        manifest["received"] = held
    package.add_bytes(MANIFEST_PATH, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    package.add_bytes(VERIFY_PATH, verify_text(manifest).encode("utf-8"))
    count = len(captures)
    others = (f" and {len(held)} file{'s' if len(held) != 1 else ''} received from others" if held else "")
    return _Built(
        title=title or f"archiver export of {count} capture{'s' if count != 1 else ''}{others}",
        description=(f"{count} sealed capture(s) exported by {software()} on {created}, each WARC as sealed and "
                     f"signed by the archive key {archive_key.fingerprint}."
                     + (f" With {len(held)} file(s) received from others, NOT captured by this archive: each kept "
                        f"as received, with its receipt (received/)." if held else "")
                     + f" How to check everything with standard tools: `{VERIFY_PATH}`."),
        created=created, pages=pages, warnings=warnings,
        timestamps=sum(len(c["timestamps"]) for c in listed) + sum(len(r["timestamps"]) for r in held))


def _write_received(package: _Package, archive_dir: Path, index: Any, receipts: list[dict[str, Any]], stores: Any,
                    cdx: list[str], pages: list[dict[str, Any]], warnings: list[str],
                    tokens: list[PackagedToken]) -> list[dict[str, Any]]:
    """The received files into the package (wacz_received), their CDXJ lines, pages and receipts' timestamp tokens
    added to ``cdx``, ``pages`` and ``tokens``; their manifest entries. Refuses (EvidenceAltered) a file that is
    not as it was received."""
    from archiver.exchange import wacz_received
    held = []
    for row in receipts:
        try:
            members = wacz_received.add_received(package, archive_dir, stores, index, row)
        except wacz_received.ReceivedAltered as exc:
            raise EvidenceAltered(f"received file {row['id']}: {exc}; not exported (run `archiver verify`)") from None
        cdx += members.cdx
        pages += members.pages
        tokens += members.tokens
        warnings += members.warnings
        held.append(members.entry)
    return held


def _place(index: Any, tmp: Path, output: Path, result: ExportResult, archive_key: keys.ArchiveKey,
           wacz_key: keys.WaczKey) -> ExportResult:
    """Link the finished file into place inside the transaction that appends the ``exported`` entry: the ledger
    never names a file that is not there, and no file appears that the ledger does not name."""
    placed = False
    try:
        with index.transaction() as conn:
            entry = ledger.append(conn, "exported", detail={
                "path": str(output.absolute()), "sha256": result.sha256, "bytes": result.bytes,
                "captures": result.captures, "receipts": result.receipts,
                "datapackage_hash": result.datapackage_hash,
                "archive_key": archive_key.fingerprint, "wacz_key": wacz_key.fingerprint,
                "timestamps": result.timestamps})
            _link_no_overwrite(tmp, output)
            placed = True
    except BaseException:
        if placed:
            output.unlink(missing_ok=True)
        raise
    result.ledger_seq = entry["seq"]
    return result


def _link_no_overwrite(tmp: Path, output: Path) -> None:
    try:
        os.link(tmp, output)        # atomic, and fails if the name was taken meanwhile
    except FileExistsError:
        raise ExportError(f"{output} appeared while exporting; an export never overwrites a file") from None
    except OSError:
        # A filesystem without hard links (a FAT-formatted USB stick): rename, after one more look.
        if output.exists():
            raise ExportError(f"{output} appeared while exporting; an export never overwrites a file") from None
        os.rename(tmp, output)
    fd = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- VERIFY.txt ---------------------------------------------------------------------------------------------

# One-line programs for the checks that need more than one tool. Each reads only files of the package.
_PY_RESOURCES = ("python3 -c 'import json; [print(r[\"hash\"].split(\":\",1)[1]+\"  \"+r[\"path\"]) for r in "
                 "json.load(open(\"datapackage.json\"))[\"resources\"]]' | sha256sum -c")
_PY_DIGEST = ("python3 -c 'import json,hashlib; h=\"sha256:\"+hashlib.sha256(open(\"datapackage.json\",\"rb\")"
              ".read()).hexdigest(); d=json.load(open(\"datapackage-digest.json\")); "
              "ok=h==d[\"hash\"]==d[\"signedData\"][\"hash\"]; "
              "print(\"datapackage.json:\", \"OK\" if ok else \"CHANGED\"); raise SystemExit(not ok)'")
_PY_SIGNATURE = ("python3 -c 'import json,base64; s=json.load(open(\"datapackage-digest.json\"))[\"signedData\"]; "
                 "open(\"checks/signed-message.txt\",\"w\").write(s[\"hash\"]); "
                 "open(\"checks/wacz-key.der\",\"wb\").write(base64.b64decode(s[\"publicKey\"])); "
                 "raw=base64.b64decode(s[\"signature\"]); "
                 "i=lambda b: (lambda v: b\"\\x02\"+bytes([len(v)])+v)"
                 "(b\"\\x00\"*(b.lstrip(b\"\\x00\")[:1]>=b\"\\x80\")+b.lstrip(b\"\\x00\")); "
                 "body=i(raw[:48])+i(raw[48:]); "
                 "open(\"checks/signature.der\",\"wb\").write(b\"\\x30\"+bytes([len(body)])+body)'")
_PY_CAPTURE_SIG = ("python3 -c 'import json,base64,sys; open(sys.argv[2],\"wb\").write(base64.b64decode("
                   "json.load(open(sys.argv[1]))[\"signature\"]))'")
_PY_LEDGER = ("python3 -c 'import json,hashlib; "
              "E=[json.loads(l) for l in open(\"provenance/ledger.jsonl\",encoding=\"utf-8\")]; "
              "R=[(e[\"seq\"], e[\"event\"], e[\"capture_id\"] or \"-\", \"OK\" if "
              "hashlib.sha256(json.dumps({\"seq\":e[\"seq\"],\"at\":e[\"at\"],\"event\":e[\"event\"],\"capture_id\":"
              "e[\"capture_id\"],\"job_id\":e[\"job_id\"],\"url\":e[\"url\"],\"detail\":e[\"detail\"],"
              "\"prev\":e[\"prev_hash\"]},"
              "sort_keys=True,separators=(\",\",\":\"),ensure_ascii=False).encode()).hexdigest()==e[\"hash\"] else "
              "\"CHANGED\") for e in E]; [print(*r) for r in R]; raise SystemExit(any(r[3] != \"OK\" for r in R))'")


def token_lines(label: str, stamp: dict[str, Any], digest: str) -> list[str]:
    """VERIFY.txt's commands for one RFC 3161 token (a manifest ``timestamps`` entry) of the file whose SHA-256 is
    ``digest`` (a hex digest, or a shell expression that prints one): the time it states; the check against the
    TSA's root, which the reader must get from the TSA (so not a ``$`` line); the check of the signature and hash
    alone, with the certificates the token carries."""
    token = stamp["token"]
    certs = f"checks/{Path(token).name}.certs.pem"
    return [f"  {label} ({stamp.get('tsa_name') or stamp.get('tsa_url') or 'TSA'}, {stamp.get('gen_time') or '?'}):",
            f"    $ openssl ts -reply -in {token} -text | grep -E '^(Time stamp|Message data|TSA):'",
            f"      openssl ts -verify -digest {digest} -in {token} -CAfile TSA-ROOT.pem",
            "    without the TSA's root, this checks the signature and the hash only (not who the TSA is):",
            f"    $ openssl ts -reply -in {token} -token_out | openssl pkcs7 -inform DER -print_certs > {certs}",
            f"    $ openssl ts -verify -digest {digest} -in {token} -CAfile {certs} -partial_chain",
            ""]


def verify_text(manifest: dict[str, Any]) -> str:
    """VERIFY.txt: every check, as commands to run in the unpacked package (lines starting with ``$``)."""
    captures = manifest["captures"]
    archive_fp, wacz_fp = manifest["archive_key"]["fingerprint"], manifest["wacz_key"]["fingerprint"]
    head = manifest["ledger"]["head"]
    raw_key = f"openssl pkey -pubin -in {ARCHIVE_KEY_PATH} -outform DER | tail -c 32"   # the 32 raw key bytes
    out = [
        "HOW TO CHECK THIS PACKAGE WITHOUT ARCHIVER",
        "",
        f"This WACZ was written by {manifest['software']} on {manifest['created']}. It holds {len(captures)} "
        "sealed capture(s)" + (f", and {len(manifest['received'])} file(s) received from others that this archive "
                               "did NOT capture (section 6)" if manifest.get("received") else "") + ":",
        "",
        *(f"  {c['id']}  {c['started_at']}  {c['status']:<7}  {c['url']}" for c in captures),
        "",
        "Each capture is one WARC file in archive/, exactly as the archive sealed it. What to check, and how:",
        "integrity (nothing changed), origin (which archive sealed it), time (when it existed). You need unzip,",
        "sha256sum, openssl (3.0 or later), python3 and warcio (pip install warcio). Lines starting with $ are",
        "commands; run them in the folder the package is unpacked into. Each must succeed, and print no CHANGED",
        "or FAILED. `archiver verify --wacz FILE.wacz --expect-key FINGERPRINT` makes all these checks at once,",
        "origin included when FINGERPRINT is the archive key's as the archive publishes it (section 2).",
        "",
        "0. Unpack",
        "",
        "    unzip -d case FILE.wacz && cd case",
        "    $ mkdir -p checks",
        "",
        "1. Integrity: every file against datapackage.json, and datapackage.json against its signed hash",
        "",
        "datapackage.json lists the SHA-256 of every other file. Check them all (each line must say OK):",
        "",
        f"    $ {_PY_RESOURCES}",
        "",
        "or one by one, e.g. for the WARCs (expected hash after the #):",
        "",
        *(f"    $ sha256sum {c['warc']}    # {c['warc_sha256']}" for c in captures),
        "",
        "datapackage-digest.json holds the SHA-256 of datapackage.json; that hash is what the package signature",
        "covers:",
        "",
        f"    $ {_PY_DIGEST}",
        "",
        "Every record inside each WARC against the digests in its headers (warcio prints 'digest pass'):",
        "",
        *(f"    $ warcio check -v {c['warc']}" for c in captures),
        "",
        "2. Origin: the package signature, the WACZ key, the archive key",
        "",
        "The package is signed as the WACZ signing spec says (anonymous form): ECDSA P-384 with SHA-256 over the",
        "text of the \"hash\" field of datapackage-digest.json, the signature in raw r||s form (96 bytes), the",
        "public key in \"publicKey\" (base64 DER). openssl wants the signature in DER form; this converts it:",
        "",
        f"    $ {_PY_SIGNATURE}",
        "    $ openssl dgst -sha256 -verify checks/wacz-key.der -keyform DER -signature checks/signature.der "
        "checks/signed-message.txt",
        "",
        "(prints 'Verified OK'). That key must be the archive's WACZ key: its SHA-256,",
        f"{wacz_fp},",
        f"is named in {BINDING_PATH}, which the archive's Ed25519 key signed:",
        "",
        f"    $ grep -qx \"wacz-key: ECDSA-P384 sha256:$(sha256sum checks/wacz-key.der | cut -d' ' -f1)\" "
        f"{BINDING_PATH} && echo 'wacz key: OK'",
        f"    $ openssl pkeyutl -verify -pubin -inkey {ARCHIVE_KEY_PATH} -rawin -in {BINDING_PATH} "
        f"-sigfile {BINDING_SIG_PATH}",
        "",
        "The archive key's fingerprint is the SHA-256 of its 32 raw bytes:",
        f"{archive_fp}.",
        "Compare it with the fingerprint the archive publishes (`archiver key` there), through a channel other",
        "than this package: whoever could change the package could change the key in it too.",
        "",
        f"    $ {raw_key} | sha256sum    # {archive_fp.split(':', 1)[1]}",
        f"    $ grep -qx \"archive-key: Ed25519 sha256:$({raw_key} | sha256sum | cut -d' ' -f1)\" {BINDING_PATH} "
        "&& echo 'archive key: OK'",
        "",
        "Each capture's provenance record (who asked, when, from where, the SHA-256 of every other record of the",
        "capture) is signed with the archive key, and that signature is sealed in the same WARC:",
        "",
    ]
    for c in captures:
        prov, sig = c["provenance_record"], c["signature_record"]
        if not prov or not sig:
            out += [f"  {c['id']}: sealed before the archive signed captures; it has no signature record.", ""]
            continue
        out += [
            f"  {c['id']}:",
            f"    $ warcio extract --payload {c['warc']} {prov['offset']} > checks/{c['id']}.provenance.json",
            f"    $ warcio extract --payload {c['warc']} {sig['offset']} > checks/{c['id']}.signature.json",
            f"    $ {_PY_CAPTURE_SIG} checks/{c['id']}.signature.json checks/{c['id']}.signature.bin",
            f"    $ openssl pkeyutl -verify -pubin -inkey {ARCHIVE_KEY_PATH} -rawin "
            f"-in checks/{c['id']}.provenance.json -sigfile checks/{c['id']}.signature.bin",
            "",
        ]
    out += ["3. Time: RFC 3161 timestamps", ""]
    stamped = [(c, t) for c in captures for t in c["timestamps"]]
    if not stamped:
        out += ["This package holds no RFC 3161 timestamp token of a capture: the capture times rest on the",
                "archive's own clock and on its ledger (below)."
                + (" The receipts' tokens are in section 6." if any(r.get("timestamps") for r in
                                                                     manifest.get("received") or []) else ""), ""]
    else:
        out += ["A time-stamping authority (TSA) signed that a file with the WARC's SHA-256 existed at the time it",
                "states. Print that time, then check the token against the TSA's root certificate (from the TSA):",
                ""]
        for c, t in stamped:
            out += token_lines(c["id"], t, c["warc_sha256"])
        out += ["(A TSA certificate that has expired since does not void a token it signed while valid: add",
                "-attime with the token's time in seconds since 1970 to check the chain as of then.)", ""]
    out += [
        "4. Custody: the ledger",
        "",
        f"{LEDGER_PATH} holds the archive's ledger entries about these captures and the jobs they came from.",
        "Each entry's hash is the SHA-256 of the JSON object {seq, at, event, capture_id, job_id, url, detail,",
        "prev} (prev: the previous entry's hash) with keys sorted, no spaces, non-ASCII kept as is; so each entry",
        "is bound to all before it. Recompute every hash (each line must say OK):",
        "",
        f"    $ {_PY_LEDGER}",
        "",
        "The 'sealed' (or 'backfilled', 'reindexed', 'imported') entry of each capture states the WARC's",
        "SHA-256, which must be the one in datapackage.json. Entries of other captures lie between these; the",
        "archive holds them all.",
    ]
    if head:
        out += ["", f"When this package was made, the ledger's newest entry was entry {head['seq']}, with hash",
                f"{head['hash']}:",
                "an archive that later shows another hash for that entry has rewritten its history."]
    out += ["", "5. Replay", "",
            "Open the .wacz file in ReplayWeb.page (https://replayweb.page, or run it offline) to see each page as",
            "captured; it checks the package signature too.", ""]
    from archiver.exchange.wacz_received import verify_lines
    out += verify_lines(manifest)
    return "\n".join(out)


# ---- checking a package offline ------------------------------------------------------------------------------

@dataclass
class WaczProblem:
    kind: str        # unreadable | layout | altered | package-signature | key-binding | record-altered |
                     # capture-signature | index | provenance | ledger | timestamp | unexpected-key |
                     # received (a received file's receipt) | received-altered (not the bytes handed over)
    path: str        # inside the package
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"problem": self.kind, "path": self.path, "detail": self.detail}


@dataclass
class WaczReport:
    source: str
    files: int = 0
    captures: int = 0
    records: int = 0
    bytes: int = 0
    signed_captures: int = 0
    unsigned_captures: int = 0
    timestamps: int = 0
    ledger_entries: int = 0
    received: int = 0        # files received from others, checked against their receipts (wacz_received)
    created: str | None = None
    archive_key: str | None = None
    wacz_key: str | None = None
    problems: list[WaczProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, path: str, detail: str) -> None:
        self.problems.append(WaczProblem(kind, path, detail))

    def origin_problems(self) -> list[WaczProblem]:
        """What stands between the package and the archive key it names: its signature, the key binding, the
        files that carry them, the key expected."""
        return [p for p in self.problems if p.kind in ORIGIN_KINDS or p.path in ORIGIN_PATHS]

    def expect_key(self, fingerprint: str) -> None:
        """Name the package's archive key as a problem unless it is ``fingerprint`` (``--expect-key``): a
        package is only as trustworthy as the key it names, and any forger can name a key of their own."""
        if self.archive_key is None:
            self.add("unexpected-key", ARCHIVE_KEY_PATH, f"the package holds no readable archive key; expected "
                     f"{fingerprint}")
        elif self.archive_key != fingerprint:
            self.add("unexpected-key", ARCHIVE_KEY_PATH, f"the package's archive key is {self.archive_key}, not "
                     f"the expected {fingerprint}: it was not made by that archive")

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "files": self.files, "captures": self.captures,
                "records": self.records, "bytes": self.bytes, "signed_captures": self.signed_captures,
                "unsigned_captures": self.unsigned_captures, "timestamps": self.timestamps,
                "ledger_entries": self.ledger_entries, "received": self.received, "created": self.created, "archive_key": self.archive_key,
                "wacz_key": self.wacz_key, "problems": [p.as_dict() for p in self.problems]}


class StoredMember:
    """The bytes of a stored zip member, read from the zip file itself: unlike ``ZipFile.open`` it does not stop
    at a CRC mismatch, so an altered WARC is hashed to the end and named by its hash."""

    def __init__(self, fh: IO[bytes], start: int, length: int):
        self._fh, self._pos, self._left = fh, start, length

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        self._fh.seek(self._pos)
        data = self._fh.read(size)
        self._pos += len(data)
        self._left -= len(data)
        return data


def data_offset(fh: IO[bytes], info: zipfile.ZipInfo) -> tuple[int | None, str | None]:
    """Where a member's bytes start, from its local header; and the name that header gives (which must be the
    central directory's: readers that walk local headers would otherwise see another file)."""
    fh.seek(info.header_offset)
    header = fh.read(ZIP_LOCAL_HEADER.size)
    if len(header) < ZIP_LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        return None, None
    _, name_len, extra_len = ZIP_LOCAL_HEADER.unpack(header)
    name = fh.read(name_len).decode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    return info.header_offset + ZIP_LOCAL_HEADER.size + name_len + extra_len, name


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, report: WaczReport) -> bytes | None:
    if info.file_size > MAX_SMALL_MEMBER:
        report.add("layout", info.filename, f"claims {info.file_size} bytes; not read")
        return None
    try:
        with zf.open(info) as member:
            return member.read(MAX_SMALL_MEMBER + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        report.add("altered", info.filename, f"cannot be read from the zip: {exc}")
        return None


def _json(data: bytes | None, path: str, report: WaczReport) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        report.add("unreadable", path, f"is not JSON ({exc})")
        return None


def verify_wacz(path: Path, expect_key: str | None = None) -> WaczReport:
    """Check a WACZ offline, holding nothing but the file: zip structure; every file against datapackage.json;
    datapackage.json against the signed digest; the package signature; the WACZ key's binding to the archive
    key; every WARC's records against their digests and its capture signature by that archive key; the CDXJ
    against the records; the provenance manifest, ledger excerpt and timestamp tokens against the WARCs. With
    ``expect_key`` (a fingerprint, keys.parse_fingerprint), the archive key must be that one."""
    return _check_package(path, expect_key, whole=True)


def package_origin(path: Path, expect_key: str | None = None) -> WaczReport:
    """The part of ``verify_wacz`` that says who made the package -- datapackage.json against its signed digest,
    the package signature, the key binding, the archive key (and ``expect_key``), each small file against its
    listed hash -- without reading the WARCs (import reads and checks each of them anyway)."""
    return _check_package(path, expect_key, whole=False)


def _check_package(path: Path, expect_key: str | None, whole: bool) -> WaczReport:
    report = WaczReport(str(path))
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add("unreadable", path.name, f"is not a readable zip file ({exc})")
    else:
        with zf, open(path, "rb") as raw:
            check = _PackageCheck(zf, raw, report)
            if whole:
                check.run()
            else:
                check.origin()
    if expect_key is not None:
        report.expect_key(expect_key)
    return report


class _PackageCheck:
    def __init__(self, zf: zipfile.ZipFile, raw: IO[bytes], report: WaczReport):
        self.zf, self.raw, self.report = zf, raw, report
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.listed: dict[str, dict[str, Any]] = {}
        self.small: dict[str, bytes] = {}        # small members that match datapackage.json, by path
        # Every small member read, matching or not. The keys are taken only from matching ones; the content
        # checks read these too, so that a file whose hash was recomputed to hide an edit, or that was edited
        # without, is still named for what the edit did (a removed ledger entry, a swapped token...).
        self.read: dict[str, bytes] = {}
        self.warc_hashes: dict[str, str] = {}    # archive/<name> -> hex, as found
        self.archive_public: bytes | None = None
        self.spki: bytes | None = None           # the package's signing key, once its signature holds
        self.received_warcs: set[str] = set()    # archive/ members that are received files (wacz_received)
        self.received_ledger: dict[str, str] = {}   # receipt -> the SHA-256 its first `received` entry states

    def origin(self) -> bool:
        """The members, datapackage.json, its signature, every small file against its hash, the keys. False
        when there is no datapackage.json to go on."""
        report = self.report
        for info in self.zf.infolist():
            if info.filename in self.members:
                report.add("layout", info.filename, "the zip holds two files of this name (readers differ on which "
                           "one they take)")
            if not info.is_dir():
                self.members[info.filename] = info
        package = self._datapackage()
        if package is None:
            return False
        report.created = package.get("created")
        self._digest(package)
        self._resources(package)
        self._keys()
        return True

    def run(self) -> None:
        report = self.report
        if not self.origin():
            return
        from archiver.exchange.wacz_received import received_paths
        self.received_warcs = received_paths(self.read.get(MANIFEST_PATH))
        cdx = self._cdxj()
        for name in sorted(n for n in self.listed if n.startswith("archive/")):
            if name in self.members:
                self._warc(name, cdx.get(name[len("archive/"):], []), received=name in self.received_warcs)
        for filename in sorted(set(cdx) - {n[len("archive/"):] for n in self.listed if n.startswith("archive/")}):
            report.add("index", CDXJ_PATH, f"points into archive/{filename}, which the package does not list")
        self._pages()
        self._provenance()

    # -- datapackage and signature --

    def _datapackage(self) -> dict[str, Any] | None:
        info = self.members.get(DATAPACKAGE)
        if info is None:
            self.report.add("layout", DATAPACKAGE, "is missing: not a WACZ")
            return None
        data = _read_small(self.zf, info, self.report)
        package = _json(data, DATAPACKAGE, self.report)
        if not isinstance(package, dict):
            if data is not None and package is not None:
                self.report.add("unreadable", DATAPACKAGE, "is not a JSON object")
            return None
        self.small[DATAPACKAGE] = data
        if package.get("wacz_version") != WACZ_VERSION:
            self.report.add("layout", DATAPACKAGE, f"wacz_version is {package.get('wacz_version')!r}, not "
                            f"{WACZ_VERSION!r}")
        return package

    def _digest(self, package: dict[str, Any]) -> None:
        report = self.report
        info = self.members.get(DIGEST)
        if info is None:
            report.add("package-signature", DIGEST, "is missing: the package is not signed")
            return
        digest = _json(_read_small(self.zf, info, report), DIGEST, report)
        if not isinstance(digest, dict):
            if digest is not None:
                report.add("unreadable", DIGEST, "is not a JSON object")
            return
        actual = "sha256:" + hashlib.sha256(self.small[DATAPACKAGE]).hexdigest()
        if digest.get("path") != DATAPACKAGE or digest.get("hash") != actual:
            report.add("altered", DATAPACKAGE, f"hashes to {actual}; {DIGEST} states {digest.get('hash')}")
        signed = digest.get("signedData")
        if not isinstance(signed, dict):
            report.add("package-signature", DIGEST, "has no signedData: the package is not signed")
            return
        extra = sorted(set(signed) - SIGNED_DATA_FIELDS)
        if extra:
            report.add("package-signature", DIGEST, f"signedData holds fields the spec does not allow: {extra}")
        if signed.get("hash") != digest.get("hash"):
            report.add("package-signature", DIGEST, "signedData.hash differs from the digest's hash (ReplayWeb.page "
                       "then skips the signature)")
        if signed.get("created") != package.get("created"):
            report.add("package-signature", DIGEST, f"signedData.created {signed.get('created')!r} differs from "
                       f"datapackage.json's {package.get('created')!r}")
        try:
            spki = base64.b64decode(signed.get("publicKey") or "", validate=True)
            signature = base64.b64decode(signed.get("signature") or "", validate=True)
        except ValueError:
            report.add("package-signature", DIGEST, "publicKey or signature is not base64")
            return
        why = keys.check_wacz_signature(spki, signature, str(signed.get("hash")).encode("utf-8"))
        if why is not None:
            report.add("package-signature", DIGEST, f"{why} (ECDSA P-384 over signedData.hash)")
            return
        self.spki = spki
        report.wacz_key = keys.spki_fingerprint(spki)

    # -- files --

    def _resources(self, package: dict[str, Any]) -> None:
        report = self.report
        resources = package.get("resources")
        if not isinstance(resources, list):
            report.add("layout", DATAPACKAGE, "has no list of resources")
            resources = []
        for resource in resources:
            if not isinstance(resource, dict) or not isinstance(resource.get("path"), str):
                report.add("layout", DATAPACKAGE, f"a resource without a path: {resource!r:.100}")
                continue
            self.listed[resource["path"]] = resource
        for name in sorted(set(self.members) - set(self.listed) - {DATAPACKAGE, DIGEST}):
            report.add("layout", name, "is in the zip but not listed in datapackage.json (its hash is vouched for "
                       "by nothing)")
        for name, resource in sorted(self.listed.items()):
            info = self.members.get(name)
            if info is None:
                report.add("layout", name, "is listed in datapackage.json but not in the zip")
                continue
            report.files += 1
            if name.startswith("archive/") or (name.startswith("received/") and name.endswith(".wacz")):
                if info.compress_type != zipfile.ZIP_STORED:
                    report.add("layout", name, "is compressed in the zip; WACZ stores WARCs (replay reads them by "
                               "offset)")
                continue     # hashed while its records are read (_warc), or a received WACZ (wacz_received)
            data = _read_small(self.zf, info, report)
            if data is None:
                continue
            self.read[name] = data
            if self._matches(name, resource, hashlib.sha256(data).hexdigest(), len(data)):
                self.small[name] = data

    def _matches(self, name: str, resource: dict[str, Any], sha256_hex: str, size: int) -> bool:
        if resource.get("hash") != f"sha256:{sha256_hex}":
            self.report.add("altered", name, f"hashes to sha256:{sha256_hex}; datapackage.json lists "
                            f"{resource.get('hash')}")
            return False
        if resource.get("bytes") not in (None, size):
            self.report.add("altered", name, f"is {size} bytes; datapackage.json lists {resource.get('bytes')}")
            return False
        return True

    # -- keys --

    def _keys(self) -> None:
        report = self.report
        pem = self.small.get(ARCHIVE_KEY_PATH)
        if pem is None:
            report.add("key-binding", ARCHIVE_KEY_PATH, "is missing or altered: no archive key to check origin "
                       "against")
            return
        try:
            public = serialization.load_pem_public_key(pem)
            if not isinstance(public, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
        except ValueError as exc:
            report.add("key-binding", ARCHIVE_KEY_PATH, f"cannot be read as an Ed25519 public key ({exc})")
            return
        self.archive_public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        report.archive_key = keys.fingerprint(self.archive_public)
        text, sig = self.small.get(BINDING_PATH), self.small.get(BINDING_SIG_PATH)
        if text is None or sig is None:
            report.add("key-binding", BINDING_PATH, "is missing or altered: nothing ties the package's key to the "
                       "archive key")
        elif self.spki is not None:
            why = keys.check_wacz_key_binding(text, sig, self.archive_public, self.spki)
            if why is not None:
                report.add("key-binding", BINDING_PATH, why)

    # -- WARCs and their index --

    def _cdxj(self) -> dict[str, list[dict[str, Any]]]:
        """CDXJ entries by WARC file name (the index itself was checked against datapackage.json already)."""
        data = self.read.get(CDXJ_PATH)
        by_file: dict[str, list[dict[str, Any]]] = {}
        if data is None:
            if CDXJ_PATH not in self.listed:
                self.report.add("index", CDXJ_PATH, "is missing: replay tools cannot find the records")
            return by_file
        lines = data.decode("utf-8", "replace").splitlines()
        if lines != sorted(lines):
            self.report.add("index", CDXJ_PATH, "is not sorted (readers binary-search it)")
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line.split(" ", 2)[2])
                by_file.setdefault(entry["filename"], []).append(
                    {"line": n, "url": entry["url"], "offset": int(entry["offset"]), "length": int(entry["length"]),
                     "recordDigest": entry.get("recordDigest")})
            except (IndexError, ValueError, KeyError, TypeError):
                self.report.add("index", CDXJ_PATH, f"line {n} cannot be read")
        return by_file

    def _warc(self, name: str, entries: list[dict[str, Any]], received: bool = False) -> None:
        """One WARC of the package: its records against the CDXJ; a capture's against its digests and signature.
        A file ``received`` from others is checked against its receipt instead (wacz_received.check_package):
        what its records hold was found on receipt, and our key never signed it."""
        report = self.report
        info = self.members[name]
        start, local_name = data_offset(self.raw, info)
        if start is None or local_name != name:
            report.add("layout", name, "its local zip header is missing or names another file")
            return
        ranges = [(e["offset"], e["length"]) for e in entries]
        if info.compress_type == zipfile.ZIP_STORED:
            scan = scan_warc(StoredMember(self.raw, start, info.compress_size), ranges)
        else:                                   # already named as a layout problem; still check what it holds
            with self.zf.open(info) as member:
                scan = scan_warc(member, ranges)
        report.captures += 0 if received else 1
        report.records += len(scan.records)
        report.bytes += scan.size
        self.warc_hashes[name] = scan.sha256
        if self._matches(name, self.listed[name], scan.sha256, scan.size) and scan.crc != info.CRC:
            report.add("altered", name, "its bytes do not match the zip's own CRC-32")
        for problem in ([] if received else scan.problems):
            report.add("record-altered", name, problem)
        records = {(r.offset, r.length): r for r in scan.records}
        for e in entries:
            record = records.get((e["offset"], e["length"]))
            if record is None or record.uri != e["url"]:
                report.add("index", CDXJ_PATH, f"line {e['line']} points at no record of {e['url']} in {name}")
            elif e["recordDigest"] and scan.range_digests.get((e["offset"], e["length"])) != e["recordDigest"]:
                report.add("index", CDXJ_PATH, f"line {e['line']}: the record of {e['url']} in {name} does not "
                           "match its recordDigest")
        if not received:
            self._capture_signature(name, scan)

    def _capture_signature(self, name: str, scan: WarcScan) -> None:
        report = self.report
        if "signature" not in scan.signed:
            report.unsigned_captures += 1
            return
        try:
            record = json.loads(scan.signed["signature"])
        except ValueError:
            record = {}
        why = keys.check_signature(record, scan.signed.get("provenance", b""))
        if why is not None:
            report.add("capture-signature", name, why)
            return
        if self.archive_public is not None and record.get("public_key") != \
                base64.b64encode(self.archive_public).decode("ascii"):
            report.add("capture-signature", name, f"signed by the key {record.get('key_fingerprint')}, not by the "
                       f"archive key of this package ({report.archive_key})")
            return
        try:
            provenance = json.loads(scan.signed["provenance"])
            provenance_id, listed = provenance.get("capture_id"), provenance.get("records") or []
        except (ValueError, AttributeError):
            provenance_id, listed = None, []
        if f"{provenance_id}.warc.gz" != Path(name).name:
            report.add("capture-signature", name, f"its signed provenance is of capture {provenance_id}, not of "
                       "the file's name")
            return
        # The signed provenance lists every record before it with its payload's SHA-256: so each capture holds
        # by the archive key alone, whatever happened to the package around it.
        found = {r.record_id: r.payload_sha256 for r in scan.records}
        for item in listed:
            if not isinstance(item, dict) or not item.get("payload_digest"):
                continue
            if found.get(item.get("record_id")) != item["payload_digest"]:
                report.add("record-altered", name, f"the {item.get('type')} record {item.get('uri')} is not in the "
                           "file as its signed provenance lists it")
                return
        report.signed_captures += 1

    def _pages(self) -> None:
        data = self.read.get(PAGES_PATH)
        if data is None:
            return
        try:
            lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except (ValueError, UnicodeDecodeError):
            self.report.add("unreadable", PAGES_PATH, "a line is not JSON")
            return
        if not lines or lines[0].get("format") != PAGES_HEADER["format"]:
            self.report.add("index", PAGES_PATH, "has no header line (ReplayWeb.page would drop the first page)")

    # -- provenance: manifest, ledger, timestamps --

    def _provenance(self) -> None:
        report = self.report
        manifest = _json(self.read.get(MANIFEST_PATH), MANIFEST_PATH, report)
        if not isinstance(manifest, dict):
            if MANIFEST_PATH not in self.read:
                report.add("provenance", MANIFEST_PATH, "is missing or unreadable")
            return
        listed = manifest.get("captures")
        captures = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        named = {c.get("warc") for c in captures} | self.received_warcs
        for warc in sorted(set(self.warc_hashes) - named):
            report.add("provenance", MANIFEST_PATH, f"does not list {warc}")
        for c in captures:
            warc = c.get("warc")
            if warc not in self.warc_hashes:
                report.add("provenance", MANIFEST_PATH, f"lists {warc}, which the package does not hold")
            elif c.get("warc_sha256") != self.warc_hashes[warc]:
                report.add("provenance", MANIFEST_PATH, f"states {c.get('warc_sha256')} for {warc}, which hashes to "
                           f"{self.warc_hashes[warc]}")
        if report.archive_key and (manifest.get("archive_key") or {}).get("fingerprint") != report.archive_key:
            report.add("provenance", MANIFEST_PATH, "names another archive key than the package holds")
        listed_seqs = (manifest.get("ledger") or {}).get("seqs")
        held = manifest.get("received")
        received = [r for r in held if isinstance(r, dict)] if isinstance(held, list) else []
        self._ledger(captures, listed_seqs if isinstance(listed_seqs, list) else None, received)
        self._timestamps(captures, received)
        from archiver.exchange.wacz_received import check_package
        check_package(self.zf, self.raw, self.read, self.listed, self.warc_hashes, self.received_ledger, manifest,
                      report)

    def _ledger(self, captures: list[dict[str, Any]], listed_seqs: list[Any] | None,
                received: list[dict[str, Any]]) -> None:
        report = self.report
        data = self.read.get(LEDGER_PATH)
        if data is None:
            report.add("ledger", LEDGER_PATH, "is missing or unreadable")
            return
        sealed: dict[str, str] = {}
        # (capture or receipt ID, token SHA-256) of each `timestamped` entry
        stamped: set[tuple[str, str]] = set()
        seqs: list[Any] = []
        previous: dict[str, Any] | None = None
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            try:
                entry = json.loads(line)
                recomputed = ledger.entry_hash(entry)
            except (ValueError, KeyError, TypeError, AttributeError):
                report.add("ledger", LEDGER_PATH, f"line {n} cannot be read")
                continue
            report.ledger_entries += 1
            if recomputed != entry.get("hash"):
                report.add("ledger", LEDGER_PATH, f"entry {entry.get('seq')} does not match its hash: it was changed")
            if previous is not None and isinstance(previous.get("seq"), int) and \
                    entry.get("seq") == previous["seq"] + 1 and entry.get("prev_hash") != previous.get("hash"):
                report.add("ledger", LEDGER_PATH, f"entry {entry.get('seq')} does not follow from entry "
                           f"{previous.get('seq')}")
            seqs.append(entry.get("seq"))
            detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
            if entry.get("event") in SEALING and entry.get("capture_id") and detail:
                sealed.setdefault(entry["capture_id"], detail.get("warc_sha256"))
            if entry.get("event") == "timestamped" and (entry.get("capture_id") or detail.get("receipt")):
                stamped.add((entry.get("capture_id") or f"receipt {detail['receipt']}",
                             str(detail.get("token_sha256"))))
            if entry.get("event") == "received" and detail.get("receipt") and not detail.get("again"):
                self.received_ledger.setdefault(str(detail["receipt"]), str(detail.get("sha256")))
            previous = entry
        if listed_seqs is not None:     # exports before the manifest listed them have no list to check against
            for seq in sorted(set(map(str, listed_seqs)) - set(map(str, seqs)), key=lambda v: (len(v), v)):
                report.add("ledger", LEDGER_PATH, f"entry {seq}, which {MANIFEST_PATH} lists, is missing: removed")
            for seq in sorted(set(map(str, seqs)) - set(map(str, listed_seqs)), key=lambda v: (len(v), v)):
                report.add("ledger", LEDGER_PATH, f"entry {seq} is not one {MANIFEST_PATH} lists: inserted")
        for c in captures:
            found = self.warc_hashes.get(c.get("warc"))
            if found is None:
                continue
            if c.get("id") not in sealed:
                report.add("ledger", LEDGER_PATH, f"has no entry for the sealing of {c.get('id')}")
            elif sealed[c["id"]] != found:
                report.add("ledger", LEDGER_PATH, f"recorded {sealed[c['id']]} when {c['id']} was sealed; its WARC "
                           f"hashes to {found}")
        subjects = [(c.get("id"), c.get("timestamps")) for c in captures if c.get("warc") in self.warc_hashes]
        subjects += [(f"receipt {r.get('receipt')}", r.get("timestamps")) for r in received]
        for subject, stamps in subjects:
            for stamp in stamps if isinstance(stamps, list) else []:
                if isinstance(stamp, dict) and stamp.get("token_sha256") and \
                        (subject, stamp["token_sha256"]) not in stamped:
                    report.add("ledger", LEDGER_PATH, f"has no 'timestamped' entry for {stamp.get('token')} of "
                               f"{subject}")

    def _timestamps(self, captures: list[dict[str, Any]], received: list[dict[str, Any]]) -> None:
        """Each token vouches for its file's SHA-256 -- a capture's WARC, or a received file's receipt
        (received/<receipt>.receipt.json, as in the package) -- and its signature holds (with the certificate it
        carries: whether that TSA is trusted is for the reader, who holds its root)."""
        receipts = {str(r.get("receipt_file")): hashlib.sha256(self.read[str(r.get("receipt_file"))]).hexdigest()
                    for r in received if str(r.get("receipt_file")) in self.read}
        # What each file of the package hashes to, so that a token that vouches for another one is named by it.
        known = {**{v: k for k, v in self.warc_hashes.items()}, **{v: k for k, v in receipts.items()}}
        subjects = [(str(c.get("warc")), self.warc_hashes.get(c.get("warc")), c.get("timestamps")) for c in captures]
        subjects += [(str(r.get("receipt_file")), receipts.get(str(r.get("receipt_file"))), r.get("timestamps"))
                     for r in received]
        for dated, found, stamps in subjects:
            for stamp in stamps if isinstance(stamps, list) else []:
                if isinstance(stamp, dict):
                    self._timestamp(stamp, dated, found, known)

    def _timestamp(self, stamp: dict[str, Any], dated: str, found: str | None, known: dict[str, str]) -> None:
        report = self.report
        token_path = stamp.get("token")
        data = self.read.get(token_path)
        if data is None:
            report.add("timestamp", str(token_path), "is missing or unreadable")
            return
        actual = hashlib.sha256(data).hexdigest()
        if stamp.get("token_sha256") and stamp["token_sha256"] != actual:
            report.add("timestamp", token_path, f"hashes to {actual}; the archive recorded "
                       f"{stamp['token_sha256']} when the token was granted")
        if found is None:
            return
        try:
            token = tsa.parse_reply(data)
        except tsa.TimestampError as exc:
            report.add("timestamp", token_path, f"cannot be read: {exc}")
            return
        if token.digest != found:
            other = f" ({known[token.digest]})" if token.digest in known else ""
            report.add("timestamp", token_path, f"vouches for {token.digest}{other}, not for {dated} ({found})")
            return
        why = self._openssl_check(token_path, data, found, token)
        if why is not None:
            report.add("timestamp", token_path, why)
            return
        report.timestamps += 1

    @staticmethod
    def _openssl_check(token_path: str, data: bytes, digest: str, token: tsa.Token) -> str | None:
        with tempfile.TemporaryDirectory(prefix="archiver-wacz-") as tmp:
            copy = Path(tmp) / Path(token_path).name
            copy.write_bytes(data)
            try:
                return tsa.openssl_verify(copy, digest, token, None)
            except tsa.OpensslMissing as exc:
                return str(exc)
