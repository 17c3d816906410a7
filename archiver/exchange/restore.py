"""Receipts restored from the store alone (``archiver reindex``): what ``archiver receive`` wrote beside each
received file, read back, and the file's pages indexed again by reading the file again.

Every ``received/.../<key>.receipt.json`` (under the archive directory, and in team mode in the bucket) is read in
the order of the receipt IDs inside them, the order they were received: a received file's key is its SHA-256
(``received/<xx>/<sha256>.<format>``), which says nothing of when, so the receipts are read a first time for their
IDs alone (only the IDs are kept, not the receipts' checks) and again, one by one, as each is restored. Its receipt
is inserted as it was recorded, facts and checks unchanged: the receipt says what was received and what was found in
it then, which no later reading may rewrite. The received file is then hashed
as it streams into a working copy (named as it was handed over, so that its pages name their WARC as on receipt):

- it matches the receipt's SHA-256 and size: its pages are indexed again (exchange/foreign.py, as on receipt),
  with a ``reindexed`` ledger entry naming the receipt;
- it does not, or is not there: the receipt is restored without pages (it is still the record of a handing-over)
  and the file is reported as skipped; ``verify`` names it ``received-altered`` or ``received-missing``.

The receipt's RFC 3161 tokens, kept beside its receipt file, are restored with it
(timestamps.restore_receipt_tokens: each must vouch for the receipt file as it is).

A receipt file that cannot be read as one, or a second receipt for bytes already restored, is skipped and
reported, never guessed at.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.custody import ledger, timestamps
from archiver.exchange.receive import (RECEIPT_COLUMNS, RECEIPT_SUFFIX, ReceiptUnreadable, copy_hashing,
                                      index_spooled, inspect_spooling, read_receipt, receipt_row)
from archiver.store.blobs import StorageError
from archiver.store.index import Index
from archiver.store.local import LocalStore

__all__ = ["restore_receipts", "RestoredReceipts"]


@dataclass
class RestoredReceipts:
    receipts: int = 0
    pages: int = 0
    timestamps: int = 0      # RFC 3161 tokens of receipts, restored from beside their receipt files
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (where, why)


def restore_receipts(index: Index, archive_dir: Path, store: Any = None) -> RestoredReceipts:
    """Restore into ``index`` (new, with the captures already in it) every receipt under ``archive_dir``'s
    received/ and, with ``store`` (team mode), in that store. See the module's docstring."""
    result = RestoredReceipts()
    stores: list[tuple[Any, bool]] = [(LocalStore(archive_dir, read_only=True), False)]
    if store is not None:
        stores.append((store, True))
    sources: list[tuple[str, str, Any, bool]] = []    # (receipt ID, its key, its store, in the bucket)
    for where, in_bucket in stores:
        for item in where.list("received/"):
            if item.key.endswith(RECEIPT_SUFFIX):
                try:
                    sources.append((_read(where, item.key)["id"], item.key, where, in_bucket))
                except _Skip as skip:
                    result.skipped.append((where.location(item.key), str(skip)))
    sources.sort(key=lambda source: source[0])   # by receipt ID (a ULID): the order they were received
    work = archive_dir / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    for _, key, where, in_bucket in sources:
        try:
            _restore_one(index, where, key, in_bucket, work, result)
        except _Skip as skip:
            result.skipped.append((where.location(key), str(skip)))
    return result


class _Skip(Exception):
    """A receipt file, or its received file, that cannot be restored as it is: reported, never guessed at."""


def _restore_one(index: Index, store: Any, receipt_key: str, in_bucket: bool, work: Path,
                 result: RestoredReceipts) -> None:
    row = _read(store, receipt_key)
    file_key = receipt_key[:-len(RECEIPT_SUFFIX)]
    if row["path"] != file_key:
        raise _Skip(f"the receipt names {row['path']}, but is kept beside {file_key}")
    held = index.conn.execute("SELECT id FROM receipts WHERE sha256 = ?", (row["sha256"],)).fetchone()
    if held is not None:
        raise _Skip(f"the same bytes (SHA-256 {row['sha256']}) were restored as receipt {held[0]}")
    if in_bucket:
        row["store"] = store.url
        try:
            row["version"] = store.head(file_key).version_id
        except StorageError:
            row["version"] = None
    copy_dir = work / f"{row['id']}.reindexing"
    shutil.rmtree(copy_dir, ignore_errors=True)
    copy_dir.mkdir()
    spool = copy_dir / ".pages.jsonl"
    try:
        intact, why = _working_copy(store, file_key, row, copy_dir / Path(row["original_name"]).name)
        checks = inspect_spooling(copy_dir / Path(row["original_name"]).name, spool) if intact else None
        with index.transaction() as conn:
            conn.execute(f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(RECEIPT_COLUMNS))})", [row[c] for c in RECEIPT_COLUMNS])
            pages = index_spooled(index, row["id"], spool) if checks is not None else 0
            tokens = timestamps.restore_receipt_tokens(conn, store, row)
            ledger.append(conn, "reindexed", detail={
                "receipt": row["id"], "sha256": row["sha256"], "size": row["size"], "path": file_key,
                "pages": pages, "file": "as received" if intact else why})
    finally:
        shutil.rmtree(copy_dir, ignore_errors=True)
    result.receipts += 1
    result.pages += pages
    result.timestamps += tokens.rows
    result.skipped.extend(tokens.skipped)
    if not intact:
        result.skipped.append((store.location(file_key), f"receipt {row['id']} restored without its pages: {why}"))


def _read(store: Any, key: str) -> dict[str, Any]:
    """The receipts row a receipt file holds (as recorded: kept under the archive directory, no store or version;
    ``_restore_one`` places one in a bucket). _Skip when it cannot be read as one."""
    try:
        document, _ = read_receipt(store, key)
        return receipt_row(document, store=None, version=None, where=store.location(key))
    except (StorageError, OSError, ReceiptUnreadable) as exc:
        raise _Skip(f"not a readable receipt: {exc}") from None


def _working_copy(store: Any, key: str, row: dict[str, Any], dest: Path) -> tuple[bool, str]:
    """The received file streamed into ``dest`` while hashed: (whether it is as received, why not)."""
    try:
        with store.open(key) as stream:
            sha256, size = copy_hashing(stream, dest)
    except (StorageError, OSError) as exc:
        return False, f"the received file cannot be read ({exc})"
    if (sha256, size) != (row["sha256"], row["size"]):
        return False, (f"the received file hashes to {sha256} ({size} bytes), not to the receipt's "
                       f"{row['sha256']} ({row['size']} bytes)")
    return True, ""
