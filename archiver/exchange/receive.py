"""Evidence received from others: a partner's WACZ, a reporter's ArchiveWeb.page package, a wget or Heritrix WARC,
taken into custody as it was handed over (``archiver receive``).

A received file is never ours and never becomes ours: it is kept byte for byte, read-only, beside our captures
(``received/YYYY/MM/DD/<receipt id>.<format>`` in the archive's store: ``<archive>/received/`` or the bucket), with a
receipt saying who handed it over, who took it in, when, under which name, its size and SHA-256, and what was found
in it on receipt (exchange/foreign.py: every record's digests, the WARC versions, the producing software, a WACZ's
datapackage and signature). Its pages are indexed with the receipt (store/received.py), searchable beside our
captures and marked as received. What is found is recorded, never "fixed": a file whose records do not match their
digests is kept as received, with those records named.

Order, so that nothing is half-taken: the file is copied into ``<archive>/tmp`` while it is hashed (the copy is what
is kept: the original may change after), checked, its receipt written beside it, both put create-only into the
store, and only then the receipt row and its ``received`` ledger entry are written, in one transaction. The same
bytes handed over again are recognised by their SHA-256: no second copy and no second receipt, but a ``received``
ledger entry saying who handed them over this time (custody records every handing-over).

The receipt file (``<id>.receipt.json``, read-only beside the received file) holds the receipt row, so the table can
be rebuilt from the store alone.

When TSAs are configured (``timestamp.tsa_urls``), the receipt file is timestamped (custody/timestamps.py): its rows
are queued in the transaction that records the receipt, then each TSA is asked at once, within
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
from typing import Any, BinaryIO

from archiver import logs
from archiver.custody import ledger, timestamps
from archiver.errors import UserError
from archiver.store.archive import Archive, new_capture_id
from archiver.store.files import fsync_dir
from archiver.store import received
from archiver.store.index import Index
from archiver.store.local import READ_ONLY_MODE, LocalStore

__all__ = ["receive", "Received", "NotEvidenceFile", "sniff_format", "check_sources", "receipts_store",
           "RECEIPT_SUFFIX", "location",
           "inspect_spooling", "index_spooled", "copy_hashing"]

CHUNK = 1 << 20
RECEIPT_SUFFIX = ".receipt.json"
FORMATS = ("warc", "warc.gz", "wacz")
log = logging.getLogger("archiver.exchange.receive")


class NotEvidenceFile(UserError):
    """The file is not a WARC, a gzipped WARC or a WACZ (exit 2): nothing of it is kept."""


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


def receive(archive: Archive, index: Index, source: Path, *, received_from: str, received_by: str | None = None,
            note: str | None = None, tags: list[str] | None = None) -> Received:
    """Take ``source`` into custody (see the module's docstring). Raises NotEvidenceFile (nothing kept) for a file
    that is not a WARC or a WACZ."""
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
        held = index.conn.execute("SELECT * FROM receipts WHERE sha256 = ?", (sha256,)).fetchone()
        if held is not None:
            held = dict(held)
            with index.transaction() as conn:
                ledger.append(conn, "received", url=None, detail={
                    "receipt": held["id"], "again": True, "from": received_from, "by": by,
                    "original_name": source.name, "size": size, "sha256": sha256, "note": note})
            return Received("already", held["id"], str(source), sha256, size, held["format"],
                            json.loads(held["checks"]), held["received_at"], location(archive, held),
                            _stamps(index, held["id"]))
        checks = inspect_spooling(copy, spool_file)
        key = f"received/{at[:4]}/{at[5:7]}/{at[8:10]}/{receipt_id}.{fmt}"
        store = receipts_store(archive)
        row = {"id": receipt_id, "sha256": sha256, "size": size, "format": fmt, "original_name": source.name,
               "received_from": received_from, "received_by": by, "received_at": at, "note": note,
               "tags": json.dumps(list(tags or [])), "path": key,
               "store": store.url if archive.seals_to_store else None, "version": None,
               "checks": json.dumps(checks, sort_keys=True)}
        _write_read_only(receipt_file, json.dumps({"receipt": {**row, "checks": checks}}, indent=1,
                                                  sort_keys=True).encode("utf-8"))
        stored = store.put_file(key, copy, sha256)
        receipt_sha, _ = _sha256_of(receipt_file)
        store.put_file(key + RECEIPT_SUFFIX, receipt_file, receipt_sha, content_type="application/json")
        row["version"] = getattr(stored, "version_id", None)
        with index.transaction() as conn:
            conn.execute(f"INSERT INTO receipts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
            index_spooled(index, receipt_id, spool_file)
            ledger.append(conn, "received", detail={
                "receipt": receipt_id, "from": received_from, "by": by, "original_name": source.name,
                "size": size, "sha256": sha256, "format": fmt, "path": key, "note": note,
                "problems": len(checks.get("problems") or []) + len((checks.get("wacz") or {}).get("datapackage") or [])})
            # In the same transaction: a receipt is never recorded without its timestamps queued.
            queued = timestamps.queue_receipt(
                conn, receipt_id, receipt_sha, timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls)
        if queued:
            _timestamp(archive, index, receipt_id)
        return Received("received", receipt_id, str(source), sha256, size, fmt, checks, at, location(archive, row),
                        _stamps(index, receipt_id))
    finally:
        for leftover in (copy, receipt_file, spool_file):
            leftover.unlink(missing_ok=True)
        receiving.rmdir()


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


def index_spooled(index: Index, receipt_id: str, spool_file: Path) -> int:
    """The pages ``inspect_spooling`` wrote, indexed as the receipt's (store/received.py). Call inside the
    transaction that writes the receipt. Returns how many."""
    with open(spool_file, "rb") as spooled:
        return received.insert_pages(index, receipt_id, (json.loads(line) for line in spooled))


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
