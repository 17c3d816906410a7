"""Evidence received from others: a partner's WACZ, a reporter's ArchiveWeb.page package, a wget or Heritrix WARC,
taken into custody as it was handed over (``archiver receive``).

A received file is never ours and never becomes ours: it is kept byte for byte, read-only, beside our captures
(``received/<first two hex digits>/<its SHA-256>.<format>`` in the archive's store: ``<archive>/received/`` or the
bucket), with a receipt saying who handed it over, who took it in, when, under which name, its size and SHA-256, and
what was found in it on receipt (exchange/foreign.py: every record's digests, the WARC versions, the producing
software, a WACZ's datapackage and signature). Its pages are indexed with the receipt (store/received.py), searchable
beside our captures and marked as received. What is found is recorded, never "fixed": a file whose records do not
match their digests is kept as received, with those records named.

Order, so that nothing is half-taken: the file is copied into ``<archive>/tmp`` while it is hashed (the copy is what
is kept: the original may change after), checked, put create-only into the store, its receipt written and put
create-only beside it, and only then the receipt row, its pages and its ``received`` ledger entry are written, in one
transaction. The same bytes handed over again are recognised by their SHA-256: no second copy and no second
receipt, but a ``received`` ledger entry saying who handed them over this time (custody records every handing-over).

Why a received file's key is its SHA-256 (content-addressed), and its receipt's key the file's plus
``.receipt.json``: two hosts may receive the same bytes at once (team mode), and a store in team mode keeps every
object for years (create-only, Object Lock): whatever a receive puts there can never be taken back. Under keys of
their own (the receipt's ID), both would put a copy and a receipt, and the one whose row came second would leave a
copy and a receipt in the bucket that no row names -- an object a custody auditor finds and nobody can explain, or
delete. Keyed by content, both put the same object (the store answers the second put of the same bytes with the
object already there), and the receipt's create-only put decides which receipt is the one: the first put wins;
the other receive finds the key taken, reads the receipt there, and ends as "already" -- its handing-over in the
ledger (``again``), nothing of its own left in the store. The store, not the index, arbitrates, because the store
is what cannot be undone. The same rule makes a receive killed between the put and the index harmless: the file
and its receipt are there without a row (``archiver verify``: ``received-unindexed``); the same bytes received
again write the row from the receipt already there (``from_receipt_file`` in its ``received`` entry), with the pages
of the same bytes, and put no second copy; ``archiver reindex`` restores it from the receipt too.

Whoever writes a receipt's row writes its ``received`` ledger entry in the same transaction (the receive that took
the file in, or the one that found its receipt in the store without a row): one row, one entry, for each receipt.

The receipt file (``<key>.receipt.json``, read-only beside the received file) holds the receipt row, so the table
can be rebuilt from the store alone. Files received before receipts were keyed by content keep their keys
(``received/YYYY/MM/DD/<receipt id>.<format>``): the row says where each is.

When TSAs are configured (``timestamp.tsa_urls``), the receipt file is timestamped (custody/timestamps.py): its rows
are queued in the transaction that records the receipt (``take_in``, by whichever receive writes the row: the digest
is the SHA-256 of the receipt file in the store, the one that won), then each TSA is asked at once, within
``timestamp.timeout_seconds``. A TSA that is down or refuses never fails a receipt: its row stays pending, and runners
and ``archiver timestamp`` ask again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Sequence

from archiver import logs
from archiver.custody import ledger, timestamps
from archiver.errors import ArchiverError, UserError
from archiver.store.archive import Archive, new_capture_id
from archiver.store.blobs import AlreadyStored
from archiver.store.files import fsync_dir
from archiver.store import received
from archiver.store.index import Index
from archiver.store.local import READ_ONLY_MODE, LocalStore

__all__ = ["receive", "Received", "NotEvidenceFile", "ReceiptUnreadable", "sniff_format", "check_sources",
           "receipts_store", "received_key", "take_in", "receipt_document", "read_receipt", "receipt_row",
           "RECEIPT_SUFFIX", "RECEIPT_COLUMNS", "location", "inspect_spooling", "index_spooled", "copy_hashing"]

CHUNK = 1 << 20
RECEIPT_SUFFIX = ".receipt.json"
FORMATS = ("warc", "warc.gz", "wacz")
# A receipt file is read whole; none archiver writes comes near this (its checks name at most every record).
MAX_RECEIPT_BYTES = 16 * 1024 * 1024
# The receipts table's columns, as a receipt file holds them.
RECEIPT_COLUMNS = ("id", "sha256", "size", "format", "original_name", "received_from", "received_by", "received_at",
                   "note", "tags", "path", "store", "version", "checks")
# Where a test kills a receive (ARCHIVER_FAULT_KILL_AT=<step>): its file in the store and no receipt there; its file
# and its receipt there, and no row.
KILL_FILE_STORED = "receive-file-stored"
KILL_STORED = "receive-stored"

log = logging.getLogger("archiver.exchange.receive")


class NotEvidenceFile(UserError):
    """The file is not a WARC, a gzipped WARC or a WACZ (exit 2): nothing of it is kept."""


class ReceiptUnreadable(ArchiverError):
    """A receipt file in the store that holds no receipt row (exit 1): not one archiver receive wrote, or damaged."""

    exit_code = 1


@dataclass
class Received:
    """What ``receive`` did with one file: ``outcome`` "received" (a new receipt) or "already" (the same bytes were
    received before as ``receipt_id``)."""
    outcome: str
    receipt_id: str
    source: str
    sha256: str
    size: int
    format: str
    checks: dict[str, Any] = field(default_factory=dict)
    received_at: str = ""
    location: str = ""
    # The receipt's RFC 3161 timestamps as they stand after receiving (timestamps.SHOWN_FIELDS of each row).
    timestamps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "receipt_id": self.receipt_id, "source": self.source, "sha256": self.sha256,
                "size": self.size, "format": self.format, "received_at": self.received_at,
                "location": self.location, "checks": self.checks, "timestamps": self.timestamps}


def sniff_format(head: bytes, name: str) -> str:
    """The format of a file by its first bytes (not its name, which a sender may have got wrong): a zip is a WACZ,
    gzip a gzipped WARC, ``WARC/`` a WARC. NotEvidenceFile otherwise."""
    if head.startswith(b"PK\x03\x04"):
        return "wacz"
    if head.startswith(b"\x1f\x8b"):
        return "warc.gz"
    if head.lstrip(b"\r\n").startswith(b"WARC/"):
        return "warc"
    what = "empty" if not head else "neither a WARC (it does not begin with WARC/), a gzipped WARC nor a WACZ (zip)"
    raise NotEvidenceFile(f"{name}: {what}; archiver receive takes .warc, .warc.gz and .wacz files")


def check_sources(sources: list[Path]) -> None:
    """Every file there and a WARC or WACZ, before any is taken: UserError / NotEvidenceFile naming the first that
    is not (so that nothing of a batch is kept when one of it is wrong)."""
    for source in sources:
        if not source.is_file():
            raise UserError(f"{source}: no such file (give .warc, .warc.gz or .wacz files)")
        with open(source, "rb") as handle:
            sniff_format(handle.read(8), source.name)


def receipts_store(archive: Archive) -> Any:
    """Where received files are kept: the archive's store when it seals to one (team mode), else the archive
    directory itself (keys ``received/...``)."""
    if archive.seals_to_store:
        return archive.store()
    return LocalStore(archive.path)


def received_key(sha256: str, fmt: str) -> str:
    """A received file's key in the store: named by its SHA-256 (see the module's docstring for why)."""
    return f"received/{sha256[:2]}/{sha256}.{fmt}"


def receive(archive: Archive, index: Index, source: Path, *, received_from: str, received_by: str | None = None,
            note: str | None = None, tags: list[str] | None = None) -> Received:
    """Take ``source`` into custody (see the module's docstring). Raises NotEvidenceFile (nothing kept) for a file
    that is not a WARC or a WACZ."""
    from archiver.pipeline.sealing import fault_point
    if not received_from.strip():
        raise UserError("--from is empty: say who handed the file over (a person, an organisation)")
    with open(source, "rb") as handle:
        fmt = sniff_format(handle.read(8), source.name)
    receipt_id = new_capture_id()
    tmp = archive.path / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    # The copy keeps the name it was handed over under: what was found in it is reported by that name (a record's
    # WARC and offset), which is the name the sender knows it by.
    receiving = tmp / f"{receipt_id}.receiving"
    receiving.mkdir(parents=True)
    copy = receiving / source.name
    receipt_file = tmp / f"{receipt_id}{RECEIPT_SUFFIX}"
    spool_file = tmp / f"{receipt_id}.pages.jsonl"
    try:
        with open(source, "rb") as src:
            sha256, size = copy_hashing(src, copy)
        by = archive.operator(received_by)
        at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        handing = {"from": received_from, "by": by, "original_name": source.name, "size": size, "sha256": sha256,
                   "note": note}
        held = index.conn.execute("SELECT * FROM receipts WHERE sha256 = ?", (sha256,)).fetchone()
        if held is not None:
            return _again(archive, index, dict(held), source, {**handing, "matched_in": "index"})
        checks = inspect_spooling(copy, spool_file)
        key = received_key(sha256, fmt)
        store = receipts_store(archive)
        # Another receive of the same bytes may have put them already: the same object, answered as there.
        stored = store.put_file(key, copy, sha256)
        fault_point(KILL_FILE_STORED)
        place = {"store": store.url if archive.seals_to_store else None, "version": stored.version_id}
        row = {"id": receipt_id, "sha256": sha256, "size": size, "format": fmt, "original_name": source.name,
               "received_from": received_from, "received_by": by, "received_at": at, "note": note,
               "tags": json.dumps(list(tags or [])), "path": key, **place,
               "checks": json.dumps(checks, sort_keys=True)}
        _write_read_only(receipt_file, receipt_document(row))
        receipt_sha, _ = _sha256_of(receipt_file)
        try:
            store.put_file(key + RECEIPT_SUFFIX, receipt_file, receipt_sha, content_type="application/json")
        except AlreadyStored:
            # Another receive put its receipt of these bytes first (at the same time, or it stopped before its row
            # was written): that receipt is the one; this handing-over is recorded against it.
            where = store.location(key + RECEIPT_SUFFIX)
            document, first_sha = read_receipt(store, key + RECEIPT_SUFFIX)
            first = receipt_row(document, **place, where=where)
            if first["sha256"] != sha256:
                raise ReceiptUnreadable(f"{where}: a receipt of other bytes (SHA-256 {first['sha256']}) under the key "
                                        f"of {sha256}")
            return _again(archive, index, first, source, {**handing, "matched_in": "store"},
                          restore=(spool_file, first_sha))
        fault_point(KILL_STORED)
        with index.transaction() as conn:
            kept, queued = take_in(index, conn, row, spool_file, receipt_sha, _tsa_urls(archive))
        if kept["id"] != receipt_id:
            # Only a receipt of these bytes under a key of before content keys can be there instead (written by an
            # older archiver meanwhile): this one's receipt file stays in the store, unused, and the entry says so.
            return _again(archive, index, kept, source, {**handing, "matched_in": "index",
                                                         "unused_receipt_file": key + RECEIPT_SUFFIX})
        if queued:
            _timestamp(archive, index, receipt_id)
        return Received("received", receipt_id, str(source), sha256, size, fmt, checks, at, location(archive, row),
                        _stamps(index, receipt_id))
    finally:
        for leftover in (copy, receipt_file, spool_file):
            leftover.unlink(missing_ok=True)
        receiving.rmdir()


def take_in(index: Index, conn: Any, row: dict[str, Any], spool_file: Path, receipt_sha256: str,
            tsa_urls: Sequence[str], *, from_receipt_file: bool = False,
            spooled_as: str | None = None) -> tuple[dict[str, Any], int]:
    """The receipts row of ``row``'s bytes, inside the caller's write transaction (``index.transaction()``, whose
    connection is ``conn``): ``row`` written now with its pages (spooled from the same bytes: ``inspect_spooling``),
    its ``received`` ledger entry and its timestamps queued (one per TSA of ``tsa_urls``, of ``receipt_sha256``: the
    SHA-256 of its receipt file as it is in the store), or the row already there for the same SHA-256 (written by
    another receive of them meanwhile; nothing queued). ``from_receipt_file``: ``row`` is read from a receipt in the
    store, not made by this receive (its receive stopped, or has not got this far yet), and its entry says so;
    ``spooled_as``: the name the pages' WARC was inspected under here, when another handing-over gave the same bytes
    the receipt's name (its pages name that). The write transaction serialises the check and the insert (SQLite's
    write lock; PostgreSQL's ledger lock). Returns the row and how many timestamps were queued: the caller asks
    the TSAs for them once the transaction is committed (``_timestamp``)."""
    held = conn.execute("SELECT * FROM receipts WHERE sha256 = ?", (row["sha256"],)).fetchone()
    if held is not None:
        return dict(held), 0
    conn.execute(f"INSERT INTO receipts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    renamed = {spooled_as: row["original_name"]} if spooled_as and spooled_as != row["original_name"] else None
    index_spooled(index, row["id"], spool_file, renamed)
    checks = json.loads(row["checks"])
    detail = {"receipt": row["id"], "from": row["received_from"], "by": row["received_by"],
              "original_name": row["original_name"], "size": row["size"], "sha256": row["sha256"],
              "format": row["format"], "path": row["path"], "note": row["note"], "received_at": row["received_at"],
              "problems": len(checks.get("problems") or []) + len((checks.get("wacz") or {}).get("datapackage") or [])}
    if from_receipt_file:
        detail["from_receipt_file"] = True
    ledger.append(conn, "received", detail=detail)
    # In the same transaction: a receipt is never recorded without its timestamps queued.
    return row, timestamps.queue_receipt(conn, row["id"], receipt_sha256, tsa_urls)


def _tsa_urls(archive: Archive) -> list[str]:
    return list(timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls)


def _again(archive: Archive, index: Index, held: dict[str, Any], source: Path, handing: dict[str, Any], *,
           restore: tuple[Path, str] | None = None) -> Received:
    """The same bytes handed over again: a ``received`` entry naming the receipt ``held`` (``again``), saying where
    it was found (``matched_in``: "index", its row; "store", its receipt file, put by a receive of the same bytes at
    the same time or by one that stopped before its row). ``restore`` (the pages spooled from these bytes, and the
    SHA-256 of the receipt file in the store): ``held`` was read from the receipt in the store, and its row is
    written first, with those pages and its timestamps queued, if it is not there yet."""
    queued = 0
    with index.transaction() as conn:
        if restore is not None:
            spool_file, receipt_sha256 = restore
            held, queued = take_in(index, conn, held, spool_file, receipt_sha256, _tsa_urls(archive),
                                   from_receipt_file=True, spooled_as=source.name)
        ledger.append(conn, "received", url=None, detail={"receipt": held["id"], "again": True, **handing})
    if queued:
        _timestamp(archive, index, held["id"])
    checks = held["checks"]
    return Received("already", held["id"], str(source), handing["sha256"], handing["size"], held["format"],
                    json.loads(checks) if isinstance(checks, str) else checks, held["received_at"],
                    location(archive, held), _stamps(index, held["id"]))


def receipt_document(row: dict[str, Any]) -> bytes:
    """The receipt file's bytes for a receipts row: the row, its checks as JSON within."""
    return json.dumps({"receipt": {**row, "checks": json.loads(row["checks"])}}, indent=1,
                      sort_keys=True).encode("utf-8")


def read_receipt(store: Any, key: str) -> tuple[Any, str]:
    """A receipt file in the store, parsed, and the SHA-256 of its bytes (what its RFC 3161 timestamps date).
    ReceiptUnreadable when it is not JSON (or larger than any receipt archiver writes)."""
    with store.open(key) as stream:
        data = stream.read(MAX_RECEIPT_BYTES + 1)
    try:
        if len(data) > MAX_RECEIPT_BYTES:
            raise ValueError(f"larger than {MAX_RECEIPT_BYTES} bytes")
        return json.loads(data), hashlib.sha256(data).hexdigest()
    except ValueError as exc:
        raise ReceiptUnreadable(f"{store.location(key)}: not a receipt ({exc})") from None


def receipt_row(document: Any, *, store: str | None, version: str | None, where: str = "") -> dict[str, Any]:
    """The receipts row a receipt file holds, placed where its file is now (``store``, ``version``: a receipt says
    where its file was first put; a migrated file is elsewhere). ReceiptUnreadable naming ``where`` (the receipt
    file) when it holds no row."""
    receipt = document.get("receipt") if isinstance(document, dict) else None
    if not isinstance(receipt, dict):
        raise ReceiptUnreadable(f"{where or 'a receipt file'}: holds no receipt")
    missing = [c for c in RECEIPT_COLUMNS if c not in ("note", "store", "version") and receipt.get(c) is None]
    if missing:
        raise ReceiptUnreadable(f"{where or 'a receipt file'}: the receipt has no {', '.join(missing)}")
    row = {column: receipt.get(column) for column in RECEIPT_COLUMNS}
    row.update(store=store, version=version)
    if not isinstance(row["checks"], str):
        row["checks"] = json.dumps(row["checks"], sort_keys=True)
    if not isinstance(row["tags"], str):
        row["tags"] = json.dumps(list(row["tags"]))
    return row


def inspect_spooling(path: Path, spool_file: Path) -> dict[str, Any]:
    """What is found in the received file at ``path`` (exchange/foreign.py: digests, versions, software, a WACZ's
    package and signature; ``pages``: how many), its pages written to ``spool_file`` as JSON lines as they are
    found: a crawl of a million pages stays in bounded memory, and goes into the index with its receipt, in one
    transaction (``index_spooled``). ``path``'s name is the one the pages' WARC is named by."""
    from archiver.exchange import foreign   # the reading of foreign files: only receiving and reindex need it
    pages = 0

    def spool(page: Any) -> None:
        nonlocal pages
        pages += 1
        spooled.write(json.dumps(page.as_dict(), ensure_ascii=False).encode("utf-8") + b"\n")
    with open(spool_file, "w+b") as spooled:
        checks = {k: v for k, v in foreign.inspect(path, on_page=spool).as_dict().items() if k != "pages"}
    checks["pages"] = pages
    return checks


def index_spooled(index: Index, receipt_id: str, spool_file: Path, renamed: dict[str, str] | None = None) -> int:
    """The pages ``inspect_spooling`` wrote, indexed as the receipt's (store/received.py). Call inside the
    transaction that writes the receipt. ``renamed``: the WARC names the pages were spooled under -> the names the
    receipt gives them (the same bytes, handed over under another name). Returns how many."""
    with open(spool_file, "rb") as spooled:
        pages = (json.loads(line) for line in spooled)
        if renamed:
            pages = ({**page, "warc": renamed.get(page["warc"], page["warc"])} for page in pages)
        return received.insert_pages(index, receipt_id, pages)


def _timestamp(archive: Archive, index: Index, receipt_id: str) -> None:
    """Ask the TSAs for tokens of a receipt just recorded (timestamps.stamp_receipt, each request bounded by
    timestamp.timeout_seconds). Runs its own event loop: receive is called from synchronous code."""
    import asyncio
    try:
        asyncio.run(timestamps.stamp_receipt(index, archive.path, archive.settings, receipt_id))
    except Exception:  # as the worker after sealing: the receipt stands as recorded; its rows stay pending
        logs.event(log, logging.ERROR, "timestamp-error", f"internal error timestamping receipt {receipt_id}",
                   exc_info=True, receipt_id=receipt_id)


def _stamps(index: Index, receipt_id: str) -> list[dict[str, Any]]:
    return [{k: row[k] for k in timestamps.SHOWN_FIELDS} for row in timestamps.of_receipt(index.conn, receipt_id)]


def copy_hashing(src: BinaryIO, dest: Path) -> tuple[str, int]:
    """Stream ``src`` into ``dest`` (new), hashing what is written; fsync'd and made read-only."""
    digest = hashlib.sha256()
    size = 0
    with open(dest, "xb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, READ_ONLY_MODE)
    fsync_dir(dest.parent)
    return digest.hexdigest(), size


def _write_read_only(path: Path, data: bytes) -> None:
    with open(path, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, READ_ONLY_MODE)


def _sha256_of(path: Path) -> tuple[str, int]:
    from archiver.store.files import sha256_file
    return sha256_file(path)


def location(archive: Archive, row: dict[str, Any]) -> str:
    """Where a received file is, for people: a path under the archive, or the store's location of its key."""
    if not row.get("store"):
        return str(archive.path / row["path"])
    return receipts_store(archive).location(row["path"])
