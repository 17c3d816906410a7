"""The capture report: one self-contained page (HTML, and PDF through Chromium) about one capture, for the
editor or court clerk who has to rely on it without running anything.

It holds what ``archiver show`` holds (the same index queries: ``Index.find_capture`` and friends) and what
only the WARC can prove: the screenshot as sealed (read from its ``urn:screenshot:`` record, by the offset
the index holds), the signature of the provenance record checked against the bytes in the file, the ledger
entries of the capture and its job, the RFC 3161 timestamps, and the commands that check all of it without us.

The page is written for hostile input: every captured string (titles, URLs, tweet text) is escaped, the page
has no script and loads nothing (a Content-Security-Policy says so to any browser that opens it, so even a
mistake in escaping could not run or fetch anything), and the screenshot is inlined as a ``data:`` URI. URLs
are shown as text, never as links: a captured ``javascript:`` URL must not become clickable.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import shlex
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from archiver.custody import keys, ledger
from archiver.store import details, readback
from archiver.store.archive import Archive
from archiver.errors import ArchiverError, CaptureFailed, UserError
from archiver.store.index import Index, now_iso
from archiver.custody.verify import Report as VerifyReport, check_against_ledger, check_ledger_of

# A screenshot larger than this is not inlined (its digest and offset are still given): base64 makes it a
# third larger again, and a page of tens of megabytes is one that editors' browsers and PDF viewers choke on.
# Screenshots are already cut at capture.screenshot_max_height, so this only stops pathological ones.
MAX_SCREENSHOT_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1 << 16
IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


class ReportError(ArchiverError):
    """The report cannot be made: Chromium cannot render the PDF."""

    exit_code = 1


class OutputPathError(UserError):
    """An output path that cannot be written: its directory is missing, it is a directory, or both outputs
    name the same file."""


class RecordUnreadable(Exception):
    """A record the index places at an offset is not there (or not readable): the report says so instead."""


@dataclass
class RecordPayload:
    """One record's payload read from the sealed file: its digest over all of it, the bytes only up to a limit."""
    uri: str
    offset: int
    size: int
    sha256: str                      # "sha256:<hex>", the form of the records table's payload_digest
    data: bytes | None               # None when larger than the limit it was read with


@dataclass
class Screenshot:
    uri: str
    offset: int
    content_type: str | None
    indexed_digest: str | None
    payload: RecordPayload | None = None
    problem: str | None = None       # why it is not shown

    @property
    def data_uri(self) -> str | None:
        if self.problem or self.payload is None or self.payload.data is None:
            return None
        return f"data:{self.content_type};base64,{base64.b64encode(self.payload.data).decode('ascii')}"


@dataclass
class Signature:
    """The capture's signature record, and whether it verifies against the provenance record in the file."""
    record_offset: int | None
    provenance_offset: int | None
    key_fingerprint: str | None = None
    signature_b64: str | None = None
    problem: str | None = None       # None: verifies

    @property
    def verifies(self) -> bool:
        return self.problem is None and self.key_fingerprint is not None


@dataclass
class ReportData:
    """Everything the report shows, gathered once; ``render_html`` only formats it."""
    archive_dir: Path
    capture: dict[str, Any]
    records: list[dict[str, Any]]
    tweet: dict[str, Any] | None
    video: dict[str, Any] | None
    ledger_entries: list[dict[str, Any]]
    # The ledger as it concerns this capture (verify.check_ledger_of, as `archiver verify ID` checks it): its
    # entries against their hashes and neighbours, and the newest whole-chain walk on record. Not a walk of the
    # whole chain: at a million captures that is a minute and more, for one report.
    ledger_check: dict[str, Any]
    ledger_head: dict[str, Any] | None
    index_vs_ledger: list[str]       # problems found comparing the index row with its sealing entry
    timestamps: list[dict[str, Any]]
    screenshot: Screenshot | None
    signature: Signature | None
    archive_key_fingerprint: str | None
    archive_key_note: str | None
    made_at: str = field(default_factory=now_iso)
    warc_location: str | None = None   # where the WARC is when it is an object in a store (s3://...)
    warc_fetch: str | None = None      # and the shell command that copies it to ``<id>.warc.gz``
    post: dict[str, Any] | None = None  # a post beyond X (Mastodon, Bluesky, Telegram...)

    @property
    def subject(self) -> str:
        return f"capture {self.capture['id']}"

    @property
    def warc_file(self) -> Path | str:
        return self.warc_location or self.archive_dir / self.capture["warc_path"]


# ---- gathering ----------------------------------------------------------------------------------------

def gather(archive: Archive, index: Index, ident: str) -> ReportData:
    """Collect the report of the capture ``ident`` (an ID, an ID prefix or a URL, as ``archiver show`` takes).

    Raises ``NotFound`` for an ident the index does not know."""
    cap = index.find_capture(ident)
    records = index.capture_records(cap["id"])
    # Read back from the sealed file (the index keeps its place only); unreadable, the signature section says why.
    cap["provenance"], _ = readback.provenance(archive, cap, records)
    warc_file = _warc_source(archive, cap, records)
    agreement, chain = VerifyReport(), VerifyReport()
    check_against_ledger(index.conn, cap, agreement)
    check_ledger_of(index.conn, [cap], chain)
    fingerprint, key_note = _archive_key(archive)
    return ReportData(
        archive_dir=archive.path, capture=cap, records=records,
        tweet=index.tweet_of(cap["id"]), video=index.video_of(cap["id"]), post=index.post_of(cap["id"]),
        ledger_entries=ledger.entries(index.conn, capture_id=cap["id"], job_id=cap.get("job_id")),
        ledger_check=chain.ledger, ledger_head=ledger.head(index.conn),
        index_vs_ledger=[p.detail for p in agreement.problems],
        timestamps=_timestamps(index.conn, cap["id"]),
        screenshot=_screenshot(warc_file, records),
        signature=_signature(warc_file, cap["id"], records),
        archive_key_fingerprint=fingerprint, archive_key_note=key_note,
        warc_location=archive.stored_at(cap) if cap.get("warc_store") else None,
        warc_fetch=_fetch_command(archive, cap))


def _fetch_command(archive: Archive, cap: dict[str, Any]) -> str | None:
    """How to copy an object in a store to ``<id>.warc.gz`` by hand (the version sealed); None for a file."""
    if not cap.get("warc_store"):
        return None
    from archiver.store.archive import warc_key
    return archive.store_of(cap).fetch_command(warc_key(cap["warc_path"]), cap.get("warc_version"),
                                               f"{cap['id']}.warc.gz")


def _warc_source(archive: Archive, cap: dict[str, Any], records: list[dict[str, Any]]
                 ) -> Path | Callable[[int], BinaryIO]:
    """The WARC to read records from: its file, or for an object in a store, each record read by its range."""
    if not cap.get("warc_store"):
        return archive.path / cap["warc_path"]
    from archiver.store.archive import warc_key
    store, key = archive.store_of(cap), warc_key(cap["warc_path"])
    lengths = {r["offset"]: r["length"] for r in records}

    def at(offset: int) -> BinaryIO:
        return io.BytesIO(store.read_range(key, offset, lengths.get(offset, 0), cap.get("warc_version")))
    return at


def _timestamps(conn: sqlite3.Connection, capture_id: str) -> list[dict[str, Any]]:
    """RFC 3161 timestamps of the sealed file. Read column by column as the table has them: the module that
    requests them is newer than this one, and an index without the table (never migrated) has none."""
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM timestamps WHERE capture_id = ? ORDER BY id",
                                              (capture_id,))]
    except sqlite3.OperationalError:
        return []


def _archive_key(archive: Archive) -> tuple[str | None, str | None]:
    """The archive's current public key fingerprint. A report only reads: no key is created for it."""
    path = keys.key_path(archive.path, archive.settings)
    if not path.exists():
        return None, f"no signing key at {path}"
    try:
        return keys.load_or_create(archive.path, archive.settings).fingerprint, None
    except keys.SigningKeyError as exc:
        return None, str(exc)


def read_payload(warc_file: Path | Callable[[int], BinaryIO], offset: int, expect_uri: str,
                 limit: int | None = None) -> RecordPayload:
    """The payload of the record at ``offset`` (which must be ``expect_uri``), streamed: hashed whole, kept in
    memory only up to ``limit`` bytes. ``warc_file``: a file, or what reads a record of an object in a store
    from its offset. Raises ``RecordUnreadable``."""
    from archiver.store.blobs import StorageError
    try:
        with (open(warc_file, "rb") if isinstance(warc_file, Path) else warc_file(offset)) as fh:
            if isinstance(warc_file, Path):
                fh.seek(offset)
            record = next(iter(ArchiveIterator(fh, check_digests=False)), None)
            if record is None:
                raise RecordUnreadable(f"no record at offset {offset}")
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            if uri != expect_uri:
                raise RecordUnreadable(f"the record at offset {offset} is {uri or record.rec_type!r}, "
                                       f"not {expect_uri!r} as the index says")
            digest, size, kept = hashlib.sha256(), 0, bytearray()
            stream = record.raw_stream
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if limit is None or size <= limit:
                    kept += chunk
    except FileNotFoundError:
        raise RecordUnreadable(f"the sealed WARC {warc_file} is not there") from None
    except StorageError as exc:
        raise RecordUnreadable(f"cannot read the sealed WARC: {exc}") from None
    except (ArchiveLoadFailed, OSError, EOFError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RecordUnreadable(f"cannot read the record at offset {offset}: {reason}") from None
    over = limit is not None and size > limit
    return RecordPayload(uri, offset, size, "sha256:" + digest.hexdigest(), None if over else bytes(kept))


def _first(records: list[dict[str, Any]], prefix: str, rec_type: str) -> dict[str, Any] | None:
    return next((r for r in records if r["type"] == rec_type and (r["uri"] or "").startswith(prefix)), None)


def _screenshot(warc_file: Path, records: list[dict[str, Any]]) -> Screenshot | None:
    # The first screenshot is the page's own; a tweet capture's is the rendered embed page.
    row = _first(records, "urn:screenshot:", "resource")
    if row is None:
        return None
    content_type = (row["content_type"] or "").split(";")[0].strip().lower()
    shot = Screenshot(row["uri"], row["offset"], content_type, row["payload_digest"])
    try:
        shot.payload = read_payload(warc_file, row["offset"], row["uri"], MAX_SCREENSHOT_BYTES)
    except RecordUnreadable as exc:
        shot.problem = str(exc)
        return shot
    if shot.payload.data is None:
        shot.problem = (f"{shot.payload.size:,} bytes, more than the {MAX_SCREENSHOT_BYTES // (1024 * 1024)} MiB "
                        f"a report inlines; extract it from the WARC (see How to check this)")
    elif shot.indexed_digest and shot.payload.sha256 != shot.indexed_digest:
        shot.problem = (f"its bytes hash to {shot.payload.sha256}, the index recorded {shot.indexed_digest}: "
                        f"not shown (run archiver verify)")
    elif content_type not in IMAGE_MAGIC or not shot.payload.data.startswith(IMAGE_MAGIC[content_type]):
        # Only what is an image of the declared type goes into a data: URI.
        shot.problem = f"the record is not a {content_type or 'typed'} image as declared: not shown"
    return shot


def _signature(warc_file: Path, capture_id: str, records: list[dict[str, Any]]) -> Signature | None:
    sig_row = _first(records, f"urn:signature:{capture_id}", "metadata")
    prov_row = _first(records, f"urn:provenance:{capture_id}", "metadata")
    if sig_row is None:
        return None
    signature = Signature(sig_row["offset"], prov_row["offset"] if prov_row else None)
    try:
        sig_payload = read_payload(warc_file, sig_row["offset"], sig_row["uri"])
        record = json.loads(sig_payload.data or b"")
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except RecordUnreadable as exc:
        signature.problem = str(exc)
        return signature
    except ValueError:
        signature.problem = "the signature record is not readable JSON"
        return signature
    signature.key_fingerprint = record.get("key_fingerprint")
    signature.signature_b64 = record.get("signature")
    if prov_row is None:
        signature.problem = "the capture has no provenance record to check the signature against"
        return signature
    try:
        provenance = read_payload(warc_file, prov_row["offset"], prov_row["uri"]).data or b""
    except RecordUnreadable as exc:
        signature.problem = str(exc)
        return signature
    signature.problem = keys.check_signature(record, provenance)
    return signature


# ---- rendering ----------------------------------------------------------------------------------------

CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111; margin: 0 auto;
       max-width: 60rem; padding: 1rem; }
h1 { font-size: 15pt; margin: 0 0 .2rem; overflow-wrap: anywhere; }
h2 { font-size: 12pt; margin: 1.4rem 0 .4rem; border-bottom: 1px solid #999; padding-bottom: .1rem;
     break-after: avoid; page-break-after: avoid; }
.sub { color: #444; margin: 0 0 .8rem; }
table { border-collapse: collapse; width: 100%; margin: .2rem 0; }
th, td { text-align: left; vertical-align: top; padding: .15rem .4rem; border-bottom: 1px solid #ddd;
         overflow-wrap: anywhere; unicode-bidi: isolate; }
table.kv th { width: 11rem; font-weight: 600; color: #333; }
table.grid th { background: #eee; font-size: 9pt; white-space: nowrap; }
table.grid td { font-size: 8.5pt; }
td.nw { white-space: nowrap; overflow-wrap: normal; }
tr { break-inside: avoid; page-break-inside: avoid; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 8.8pt;
              overflow-wrap: anywhere; }
.ok { color: #05620f; font-weight: 700; }
.bad { color: #a00; font-weight: 700; }
.warn { color: #8a5a00; font-weight: 700; }
.box { border: 2px solid #333; padding: .5rem .8rem; margin: 1rem 0; background: #f7f7f2;
       break-inside: avoid; page-break-inside: avoid; }
.box pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: .3rem 0; font-size: 8.5pt; }
.shot { break-before: page; page-break-before: always; }
.shot img { display: block; width: 100%; height: auto; border: 1px solid #999; }
.note { color: #444; font-size: 9pt; }
footer { margin-top: 2rem; color: #555; font-size: 8.5pt; }
@media print { body { max-width: none; padding: 0; } }
"""

# Nothing may be fetched or run by the page, whatever it contains: images only from data: URIs, styles only
# inline. A browser honouring this stops even an escaping mistake from reaching the network.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _e(value: Any) -> str:
    """Escaped text of a value, ``-`` for nothing. Everything shown passes through here."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value)) or "-"
    return escape(str(value), quote=True)


def _code(value: Any) -> str:
    return f'<span class="mono">{_e(value)}</span>'


def utc(value: str | None) -> str:
    """An index time (ISO 8601, Z) as people read it, saying UTC."""
    if not value:
        return "-"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return f"{value} (UTC)"
    return when.strftime("%Y-%m-%d %H:%M:%S") + (f".{when.microsecond:06d}" if when.microsecond else "") + " UTC"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    amount, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            break
        amount /= 1024
    return f"{n:,} bytes" + ("" if unit == "B" else f" ({amount:.1f} {unit})")


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table; values are already HTML (built with ``_e``/``_code``)."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _grid(headings: list[str], rows: Iterable[list[str]], nowrap: int = 0) -> str:
    """A table with a heading row; values are already HTML. The first ``nowrap`` columns (short values such
    as sequence numbers and times) are kept on one line."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f'<td class="nw">{c}</td>' if i < nowrap else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _verdict(ok: bool, good: str, bad: str) -> str:
    return f'<span class="ok">{_e(good)}</span>' if ok else f'<span class="bad">{_e(bad)}</span>'


def _section_capture(d: ReportData) -> str:
    c = d.capture
    status = _e(c["status"])
    if c["failure_class"]:
        status += f" — {_e(c['failure_class'])}: {_e(c['failure_message'])}"
    css = {"ok": "ok", "partial": "warn"}.get(c["status"], "bad")
    return "<h2>Capture</h2>" + _kv([
        ("Capture ID", _code(c["id"])),
        ("URL as requested", _code(c["url"])),
        ("Final URL", _code(c["final_url"])),
        ("Status", f'<span class="{css}">{status}</span>'),
        ("HTTP status", _e(c["http_status"])),
        ("Content type", _e(c["content_type"])),
        ("Page title", _e(c["title"])),
        ("Kind / method", f"{_e(c['kind'])} / {_e(c['method'])}"),
        ("Logged in", _e(details.login_of(c.get("provenance")) or "no: captured as any reader would see it")),
        ("Started", _e(utc(c["started_at"]))),
        ("Finished", _e(utc(c["finished_at"]))),
        ("Requested by", _e(c["requested_by"])),
        ("Requested at", _e(utc(c["requested_at"]))),
        ("Tags", _e(c["tags"])),
        ("Note", _e(c["note"])),
    ])


def _section_file(d: ReportData) -> str:
    c = d.capture
    rows = [
        ("WARC file", _code(d.warc_file)),
        ("SHA-256", _code(c["warc_sha256"])),
        ("Size", _e(_size(c["warc_size"]))),
        ("Records", _e(c["record_count"])),
    ]
    sig = d.signature
    if sig is None:
        rows.append(("Signature", '<span class="warn">none (sealed before captures were signed)</span>'))
    else:
        rows.append(("Signed by key", _code(sig.key_fingerprint)))
        rows.append(("Signature", _verdict(sig.verifies, "verifies: the provenance record in the file is the one "
                                                         "that was signed", f"does NOT verify: {sig.problem}")))
    if d.archive_key_fingerprint:
        same = sig is not None and sig.key_fingerprint == d.archive_key_fingerprint
        rows.append(("Archive key", _code(d.archive_key_fingerprint)
                     + ("" if sig is None else " " + _e("(the key that signed this capture)" if same
                                                        else "(not the key that signed this capture)"))))
    else:
        rows.append(("Archive key", _e(d.archive_key_note)))
    check = d.ledger_check
    if check["intact"]:
        chain = _verdict(True, f"intact where this capture stands in it: its {check['capture_entries']} entries "
                               f"(the capture's and its job's) agree with their hashes and link to their neighbours "
                               f"({check['entries']} entries in all)", "")
        if check.get("walked"):
            chain += _e(f"; entries {check['walked']['from']}-{check['walked']['to']}, appended since the last "
                        f"whole walk, were walked now")
        if check["not_walked"]:
            chain += _e(f"; {check['not_walked']}")
    else:
        chain = _verdict(False, "", f"broken at entry {check['broken']['seq']}: {check['broken']['reason']}")
    rows.append(("Ledger chain", chain))
    if d.ledger_head:
        rows.append(("Ledger head", f"entry {_e(d.ledger_head['seq'])}, {_e(utc(d.ledger_head['at']))}, "
                                    f"hash {_code(d.ledger_head['hash'])}"))
    rows.append(("Index vs. ledger", _verdict(not d.index_vs_ledger,
                                              "the file's path, hash and size agree with the ledger entry made "
                                              "when it was sealed", "; ".join(d.index_vs_ledger))))
    return "<h2>File, hashes and signature</h2>" + _kv(rows)


# TLS SignatureScheme code points (RFC 8446 section 4.2.3) as Chromium reports them in securityDetails.
SIGNATURE_SCHEMES = {
    0x0401: "rsa_pkcs1_sha256", 0x0501: "rsa_pkcs1_sha384", 0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256", 0x0503: "ecdsa_secp384r1_sha384", 0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0808: "ed448", 0x0809: "rsa_pss_pss_sha256", 0x080A: "rsa_pss_pss_sha384",
    0x080B: "rsa_pss_pss_sha512", 0x0201: "rsa_pkcs1_sha1", 0x0203: "ecdsa_sha1",
}


def _tls_rows(tls: dict[str, Any] | None, chain_pem: str | None) -> list[tuple[str, str]]:
    """TLS details as recorded: Chromium's securityDetails for the browser, protocol and cipher for httpx."""
    if not tls:
        return [("TLS", "-")]
    rows = [("TLS protocol", _e(tls.get("protocol"))), ("Cipher", _e(tls.get("cipher")))]
    if tls.get("keyExchange") or tls.get("keyExchangeGroup"):
        rows.append(("Key exchange", _e(" ".join(filter(None, [tls.get("keyExchange"), tls.get("keyExchangeGroup")])))))
    for key, label in (("subjectName", "Certificate subject"), ("issuer", "Issuer"),
                       ("certificateTransparencyCompliance", "Certificate Transparency")):
        if tls.get(key) not in (None, ""):
            rows.append((label, _e(tls[key])))
    scheme = tls.get("serverSignatureAlgorithm")
    if isinstance(scheme, int):
        # Chromium reports the TLS SignatureScheme code point; the name is what a reader can look up.
        rows.append(("Server signature", _e(f"{SIGNATURE_SCHEMES.get(scheme, 'code')} (0x{scheme:04x})")))
    if tls.get("sanList"):
        names = list(tls["sanList"])
        rows.append(("Names in certificate", _e(names[:30]) + (_e(f" … and {len(names) - 30} more")
                                                                if len(names) > 30 else "")))
    for key, label in (("validFrom", "Valid from"), ("validTo", "Valid until")):
        if isinstance(tls.get(key), (int, float)):
            rows.append((label, _e(datetime.fromtimestamp(tls[key], timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))))
    if tls.get("signedCertificateTimestampList"):
        rows.append(("SCTs", _e(len(tls["signedCertificateTimestampList"]))))
    leaf = _leaf_fingerprint(chain_pem)
    if leaf:
        rows.append(("Server certificate SHA-256", _code(leaf)))
    return rows


def _leaf_fingerprint(chain_pem: str | None) -> str | None:
    if not chain_pem:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(chain_pem.encode("ascii"))
    except ValueError:
        return None
    return certificate.fingerprint(hashes.SHA256()).hex()


def _section_network(d: ReportData) -> str:
    prov = d.capture.get("provenance") or {}
    main = prov.get("main") or {}
    rows = [("Server IP", _code(main.get("ip"))), ("Protocol", _e(main.get("protocol")))]
    rows += _tls_rows(main.get("tls"), main.get("certificate_chain_pem"))
    net = prov.get("network") or {}
    if isinstance(net, dict) and net.get("proxy"):
        rows.append(("Proxy", _code(net.get("proxy"))))
    if prov.get("hostname"):
        rows.append(("Captured from host", _e(prov["hostname"])))
    software = prov.get("software") or {}
    if software:
        rows.append(("Software", _e(", ".join(f"{k} {v}" for k, v in sorted(software.items())))))
    out = "<h2>Network and TLS</h2>" + _kv(rows)
    redirects = prov.get("redirects") or []
    if redirects:
        hops = [[_e(i + 1), _e(r.get("status")), _code(r.get("url")), _code(r.get("location"))]
                for i, r in enumerate(redirects)]
        hops.append([_e(len(redirects) + 1), _e(main.get("status")), _code(main.get("url")), "-"])
        out += "<h3>Redirect chain</h3>" + _grid(["#", "HTTP", "URL", "Location"], hops)
    return out


def _section_tweet(t: dict[str, Any]) -> str:
    try:
        links = json.loads(t.get("urls") or "[]")
    except ValueError:
        links = [t.get("urls")]
    return "<h2>Tweet</h2>" + _kv([
        ("Tweet ID", _code(t["tweet_id"])), ("Availability", _e(t["availability"])),
        ("Author", _e(f"@{t['screen_name']} ({t['name']})" if t.get("screen_name") else None)),
        ("Posted", _e(utc(t.get("created_at")) if t.get("created_at") else None)),
        ("Time in the ID", _e(utc(t.get("snowflake_time")) if t.get("snowflake_time") else None)),
        ("Times agree", _e(t.get("time_check"))), ("Language", _e(t.get("lang"))),
        ("Text", _e(t.get("text"))), ("Media", _e(t.get("media_count"))),
        ("Reply to", _code(t.get("reply_to"))), ("Quotes", _code(t.get("quoted_id"))),
        ("Links", _code(links)),
    ])


def _section_post(p: dict[str, Any]) -> str:
    """A post of a platform beyond X (Mastodon, Bluesky, Telegram...), as the index holds it (``posts``)."""
    return f"<h2>{_e(p['platform'].capitalize())} post</h2>" + _kv([
        ("Post", _code(p["post_id"])), ("Availability", _e(p["availability"])),
        ("Author", _e(f"{p['author']} ({p['author_name']})" if p.get("author_name") else p.get("author"))),
        ("Posted", _e(utc(p["posted_at"]) if p.get("posted_at") else None)),
        ("Edited", _e(utc(p["edited_at"]) if p.get("edited_at") else None)), ("Language", _e(p.get("lang"))),
        ("Text", _e(p.get("text"))), ("Media", _e(p.get("media_count"))),
        ("Reply to", _code(p.get("reply_to"))), ("Quotes", _code(p.get("quoted"))), ("Shown at", _code(p.get("url"))),
    ])


def _yt_date(value: str | None) -> str | None:
    """yt-dlp's YYYYMMDD as an ISO date (it is the platform's date, with no time zone of its own)."""
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _section_video(v: dict[str, Any]) -> str:
    return "<h2>Video</h2>" + _kv([
        ("Extractor / ID", _code(f"{v.get('extractor')}:{v.get('video_id')}")), ("Title", _e(v.get("title"))),
        ("Uploader", _e(v.get("uploader"))), ("Upload date", _e(_yt_date(v.get("upload_date")))),
        ("Duration", _e(f"{v['duration']} s" if v.get("duration") is not None else None)),
        ("Live", _e("yes" if v.get("is_live") else "no")), ("Page", _code(v.get("webpage_url"))),
        ("Media", _e(_size(v.get("media_bytes")))), ("Cut off", _e(v.get("cut"))),
    ])


def _section_timestamps(d: ReportData) -> str:
    if not d.timestamps:
        return ("<h2>Trusted timestamps</h2><p class=\"note\">No RFC 3161 timestamp has been requested for this "
                "capture.</p>")
    rows = []
    for t in d.timestamps:
        tsa = _code(t.get("tsa_url")) + (f"<br>{_e(t['tsa_name'])}" if t.get("tsa_name") else "")
        token = _code(t.get("token_path")) + (f"<br>{_code(t['token_sha256'])}" if t.get("token_sha256") else "")
        state = _e(t.get("state")) + (f": {_e(t['last_error'])}" if t.get("last_error") and t.get("state") != "done"
                                      else "")
        rows.append([_e(utc(t.get("gen_time")) if t.get("gen_time") else None), state, tsa, _e(t.get("serial")),
                     token])
    return ("<h2>Trusted timestamps</h2><p class=\"note\">RFC 3161 tokens over the WARC file's SHA-256: the "
            "time-stamping authority vouches that the file existed, as it is, at that time.</p>"
            + _grid(["Time vouched for", "State", "Time-stamping authority", "Serial", "Token file and SHA-256"],
                    rows, nowrap=1))


def _section_ledger(d: ReportData) -> str:
    if not d.ledger_entries:
        return "<h2>Custody ledger</h2><p class=\"note\">The ledger holds no entry for this capture or its job.</p>"
    rows = [[_e(e["seq"]), _e(utc(e["at"])), _e(e["event"]), _code(e["capture_id"] or f"job {e['job_id']}"),
             _code(e["hash"])] for e in d.ledger_entries]
    return ("<h2>Custody ledger</h2><p class=\"note\">Entries for this capture and the job it came from. Each hash "
            "covers the entry and the hash of the entry before it.</p>"
            + _grid(["Seq", "Time", "Event", "Of", "Hash (SHA-256)"], rows, nowrap=3))


def _section_screenshot(d: ReportData) -> str:
    shot = d.screenshot
    if shot is None:
        return (f'<h2>Screenshot</h2><p class="note">This capture has no screenshot (method '
                f'{_e(d.capture["method"])}).</p>')
    where = (f"Record <span class=\"mono\">{_e(shot.uri)}</span> at offset {_e(shot.offset)}"
             + (f", payload {_code(shot.payload.sha256)}" if shot.payload else ""))
    data_uri = shot.data_uri
    if data_uri is None:
        return f'<section class="shot"><h2>Screenshot</h2><p class="warn">Not shown: {_e(shot.problem)}</p>' \
               f'<p class="note">{where}</p></section>'
    return (f'<section class="shot"><h2>Screenshot</h2><p class="note">{where}</p>'
            f'<img alt="Screenshot of the captured page as sealed in the WARC" src="{escape(data_uri)}">'
            f"</section>")


def _section_records(d: ReportData) -> str:
    rows = [[_e(r["offset"]), _e(r["type"]), _e(r["http_status"]), _code(r["uri"]), _code(r["payload_digest"])]
            for r in d.records]
    return f"<h2>Records ({len(d.records)})</h2>" + _grid(["Offset", "Type", "HTTP", "URI", "Payload digest"], rows,
                                                          nowrap=3)


def check_commands(d: ReportData) -> list[str]:
    """The shell commands that check this capture without trusting archiver's own answers."""
    warc = shlex.quote(str(d.warc_file))
    fetch: list[str] = []
    if d.warc_fetch:
        # An object in a bucket: fetched (the version sealed) with the AWS CLI, then checked as a file.
        warc = shlex.quote(f"{d.capture['id']}.warc.gz")
        fetch = [d.warc_fetch]
    # --archive everywhere: run from another directory, `archiver key` would make a new archive and key there.
    archiver = f"archiver --archive {shlex.quote(str(d.archive_dir))}"
    lines = fetch + [f"sha256sum {warc}",
             f"#   expect {d.capture['warc_sha256']}",
             f"{archiver} verify {d.capture['id']}"]
    sig = d.signature
    if sig and sig.provenance_offset is not None and sig.signature_b64:
        lines += [f"{archiver} key --pem > archive-key.pub.pem   # or the public key published with the archive",
                  f"warcio extract --payload {warc} {sig.provenance_offset} > provenance.json",
                  f"echo {shlex.quote(sig.signature_b64)} | base64 -d > signature.bin",
                  "openssl pkeyutl -verify -pubin -inkey archive-key.pub.pem -rawin -in provenance.json "
                  "-sigfile signature.bin"]
    if d.screenshot:
        lines.append(f"warcio extract --payload {warc} {d.screenshot.offset} > screenshot.png")
    return lines


def howto_box(intro_html: str, commands: list[str]) -> str:
    """The boxed "How to check this": what the commands check (already HTML), then the commands, escaped."""
    return ('<div class="box"><h2 style="margin-top:0">How to check this</h2>'
            f"<p>{intro_html}</p><pre>{escape(chr(10).join(commands))}</pre></div>")


def _section_howto(d: ReportData) -> str:
    return howto_box("The WARC file is the evidence; this page describes it. Its SHA-256 must be the one above; "
                     "<code>archiver verify</code> re-hashes the file and every record and checks the ledger; "
                     "OpenSSL checks the signature of the provenance record (which lists the SHA-256 of every other "
                     "record) with the archive's public key alone:", check_commands(d))


def render_html(d: ReportData) -> str:
    """The report as one HTML document: inline CSS, no script, nothing loaded from anywhere."""
    c = d.capture
    title = c["title"] or c["url"]
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Capture report {_e(c['id'])}: {_e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Capture report for <span class="mono">{_e(c["id"])}</span>, captured '
        f"{_e(utc(c['started_at']))}.</p>",
        _section_capture(d),
        _section_file(d),
        _section_howto(d),
        _section_network(d),
        _section_tweet(d.tweet) if d.tweet else "",
        _section_post(d.post) if d.post else "",
        _section_video(d.video) if d.video else "",
        _section_timestamps(d),
        _section_ledger(d),
        _section_screenshot(d),
        _section_records(d),
        f"<footer>Report made {_e(utc(d.made_at))} by archiver {_e(_archiver_version())} from the archive at "
        f"{_code(d.archive_dir)}. All times UTC.</footer>",
        "</body></html>\n",
    ]
    return "".join(parts)


def _archiver_version() -> str:
    try:
        return package_version("archiver")
    except PackageNotFoundError:
        return "(version unknown)"


# ---- PDF and writing ----------------------------------------------------------------------------------

async def render_pdf(html: str, settings: Any, footer: str = "") -> bytes:
    """The report printed to PDF (A4) by the same Chromium, launched the same way, as captures use. Every page
    carries ``footer`` and its page number, so a loose page still says which capture it belongs to."""
    from playwright.async_api import Error as PlaywrightError
    from archiver.capture.browser import BrowserSession

    session = BrowserSession(settings)
    try:
        await session.start()
        # No script runs and no request leaves: the page needs neither, and it holds captured text.
        context = await session.browser.new_context(java_script_enabled=False, offline=True)
        await context.route("**/*", lambda route: route.abort())
        page = await context.new_page()
        await page.set_content(html, wait_until="load")
        footer_html = (f'<div style="font-size:7pt;width:100%;text-align:center;color:#555">{escape(footer)} '
                       '&middot; page <span class="pageNumber"></span> of <span class="totalPages"></span></div>')
        return await page.pdf(format="A4", print_background=True, prefer_css_page_size=True,
                              display_header_footer=True, header_template="<div></div>",
                              footer_template=footer_html)
    except CaptureFailed as exc:
        raise ReportError(f"cannot render the PDF: {exc.message}") from None
    except PlaywrightError as exc:
        raise ReportError(f"cannot render the PDF: Chromium failed ({str(exc).splitlines()[0][:200]})") from None
    finally:
        await session.close()


def check_output(path: Path, option: str) -> Path:
    """An output path that can be written: its directory exists and it is not itself a directory."""
    path = path.expanduser()
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{option} {path}: the directory {parent} is not writable")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: a reader sees the old
    file or the whole new one, never a half-written report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private; a report is made to be handed on, so it gets the usual umask mode.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from None


def make_report(archive: Archive, ident: str, html_path: Path | None, pdf_path: Path | None) -> Any:
    """Build the report of one capture -- or, for a receipt's or a received page's ID, the report on a file received
    from others (report_received.py: never one that could pass for a capture's) -- and write it as HTML and/or PDF.
    Paths are checked before any work, and nothing is written unless everything asked for could be made. Returns
    what the report was made from (``.subject`` names it)."""
    from archiver.errors import NotFound
    from archiver.exchange import report_received
    if html_path is None and pdf_path is None:
        raise OutputPathError("say where to write the report: -o FILE.html, --pdf FILE.pdf, or both")
    html_path = check_output(html_path, "-o") if html_path else None
    pdf_path = check_output(pdf_path, "--pdf") if pdf_path else None
    if html_path and pdf_path and html_path.resolve() == pdf_path.resolve():
        raise OutputPathError(f"-o and --pdf name the same file {html_path}")
    index = archive.index()
    data: ReportData | report_received.ReceivedReportData
    try:
        try:
            data = gather(archive, index, ident)
        except NotFound:
            data = report_received.gather(archive, index, ident)   # NotFound names captures and received files
    finally:
        index.close()
    if isinstance(data, ReportData):
        html, footer = render_html(data), f"archiver capture report {data.capture['id']}, made {utc(data.made_at)}"
    else:
        html, footer = report_received.render_html(data), data.footer
    pdf = asyncio.run(render_pdf(html, archive.settings, footer)) if pdf_path else None
    if html_path:
        write_atomic(html_path, html.encode("utf-8"))
    if pdf_path and pdf is not None:
        write_atomic(pdf_path, pdf)
    return data
