"""The index's side of files received from others (``archiver receive``): their receipts and their pages, read
beside our own captures and never confused with them.

A received file's pages (a WACZ's pages.jsonl, else each HTML response: exchange/foreign.py finds them) are rows
of ``received_pages``, with a full-text index of their own (``received_fts``). A page's ID is a ULID: its
receipt's ID plus its place in the file (``page_id``), so that reading the file again (reindex) gives the same
IDs, and pages sort after their receipt and before anything received later. Its rowid is made as a capture's is
(``fts_key``: the millisecond), so that ``list`` and ``search`` merge captures and received pages newest first,
one ``--before`` cursor paging both.

What marks a received page everywhere it is shown: status ``received`` (our captures are ok, partial or failed),
kind ``received``, and its receipt (who handed the file over, when, its SHA-256).
"""
from __future__ import annotations

import heapq
import json
from typing import Any, Iterable, Iterator

from archiver.errors import NotFound
from archiver.store.index import Index, fts_key

__all__ = ["page_id", "insert_pages", "index_text", "iter_pages", "iter_listed", "find", "receipt", "pages_of", "receipt_of_page",
           "KIND", "STATUS", "PAGE_COLUMNS"]

KIND = "received"
STATUS = "received"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(_CROCKFORD)}
PAGE_COLUMNS = ("id", "receipt_id", "seq", "url", "captured_at", "http_status", "content_type", "title", "warc",
                "offset", "text_source")
# What list shows of a received page, in the shape of a capture's row (store/index.py: Index.LISTED), plus what
# says it is received and from whom.
_LISTED = ("p.id, p.url, p.captured_at, p.http_status, p.content_type, p.title, p.receipt_id, p.seq, "
           "r.received_from, r.received_at, r.sha256 AS receipt_sha256, r.original_name, r.tags")


def page_id(receipt_id: str, seq: int) -> str:
    """The ID of the ``seq``-th page (1, 2...) of a receipt: the receipt's ULID plus ``seq``, as a ULID."""
    value = 0
    for char in receipt_id.upper():
        value = (value << 5) | _VALUE[char]
    value += seq
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def insert_pages(index: Index, receipt_id: str, pages: Iterable[dict[str, Any]]) -> int:
    """The pages of a receipt (dicts as foreign.Page.as_dict gives them, in the file's order) into
    received_pages and received_fts. Call inside the transaction that writes the receipt. Returns how many."""
    seq = 0
    rowid = None
    for page in pages:
        seq += 1
        ident = page_id(receipt_id, seq)
        # The first takes its millisecond's rowid (or the next free); the rest follow it, in the file's order.
        rowid = index._free_rowid(ident, "received_pages") if rowid is None else rowid + 1
        index.conn.execute(
            'INSERT INTO received_pages (rowid, id, receipt_id, seq, url, captured_at, http_status, content_type, '
            'title, warc, "offset", text_source, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (rowid, ident, receipt_id, seq, page["url"], page.get("ts") or None, page.get("status"),
             page.get("mime"), page.get("title"), page["warc"], page["offset"], page.get("text_source") or "none",
             page.get("text") or None))
        index_text(index, rowid, page.get("title"), page.get("text"))
    return seq


def index_text(index: Index, rowid: int, title: str | None, text: str | None) -> None:
    """A received page's full-text entry (``received_fts``, under its rowid), as ``insert_pages`` makes it; also for
    a page row copied into another index (migrate), whose engine makes its own entries (they are not rows to copy)."""
    index._index_text(rowid, title, text, "received_fts")


def iter_pages(index: Index, *, tag: str | None = None, since: str | None = None, before: str | None = None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Received pages as ``list`` shows them, newest (highest ID) first: ``since`` a time they were received,
    ``tag`` one of their receipt's tags, ``before`` an ID."""
    conditions = [("p.id < ?", before), (index.conn.sql_json_has("r.tags"), tag), ("r.received_at >= ?", since)]
    for row in index.listing(f"SELECT {_LISTED} FROM received_pages p JOIN receipts r ON r.id = p.receipt_id",
                             conditions, "p.id DESC", limit):
        yield _listed(dict(row))


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    """A received page's list row: a capture row's fields where they mean the same, and ``received``."""
    tags = row.pop("tags")
    return {"id": row["id"], "url": row["url"], "kind": KIND, "status": STATUS, "http_status": row["http_status"],
            "title": row["title"], "started_at": row["captured_at"], "content_type": row["content_type"],
            "tags": json.loads(tags) if isinstance(tags, str) else tags,
            "received": {"receipt_id": row["receipt_id"], "page": row["seq"], "from": row["received_from"],
                         "received_at": row["received_at"], "file": row["original_name"],
                         "sha256": row["receipt_sha256"]}}


def iter_listed(index: Index, *, tag: str | None = None, kind: str | None = None, status: str | None = None,
                since: str | None = None, limit: int | None = None, before: str | None = None
                ) -> Iterator[dict[str, Any]]:
    """What ``list`` shows: our captures and received pages, newest first by ID, merged. ``kind``/``status``
    ``received`` keep only received pages; any other kind or status only captures."""
    streams = []
    if kind in (None, KIND) and status in (None, STATUS):
        streams.append(iter_pages(index, tag=tag, since=since, before=before, limit=limit))
    if kind != KIND and status != STATUS:
        streams.append(index.iter_captures(tag=tag, kind=kind, status=status, since=since, limit=limit,
                                           before=before))
    merged = heapq.merge(*streams, key=lambda row: row["id"], reverse=True)
    for n, row in enumerate(merged):
        if limit is not None and n >= limit:
            return
        yield row


def receipt(index: Index, receipt_id: str) -> dict[str, Any] | None:
    """A receipt row, with its checks and tags read, or None."""
    row = index.conn.execute("SELECT * FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    for name in ("checks", "tags"):
        if isinstance(out[name], str):
            out[name] = json.loads(out[name])
    return out


def pages_of(index: Index, receipt_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A receipt's pages in the file's order (without their text)."""
    sql = (f"SELECT {', '.join(_quoted(c) for c in PAGE_COLUMNS)} FROM received_pages WHERE receipt_id = ? "
           f"ORDER BY seq" + (f" LIMIT {int(limit)}" if limit is not None else ""))
    return [dict(r) for r in index.conn.execute(sql, (receipt_id,))]


def receipt_of_page(index: Index, ident: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(page, its receipt) for a received page's ID, or None."""
    row = index.conn.execute(f"SELECT {', '.join(_quoted(c) for c in PAGE_COLUMNS)}, text FROM received_pages "
                             f"WHERE id = ?", (ident,)).fetchone()
    if row is None:
        return None
    page = dict(row)
    held = receipt(index, page["receipt_id"])
    assert held is not None   # received_pages.receipt_id references receipts
    return page, held


def find(index: Index, ident: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """What ``show`` shows for an ID or URL that is no capture of ours: ("receipt", receipt, None) for a receipt's
    ID, ("page", receipt, page) for a received page's ID (or unique ID prefix), or the newest received page of a
    URL. NotFound otherwise."""
    ident = ident.strip()
    upper = ident.upper()
    if fts_key(upper) is not None:
        held = receipt(index, upper)
        if held is not None:
            return "receipt", held, None
    found = receipt_of_page(index, upper) if fts_key(upper) is not None else None
    if found is None and len(ident) >= 6 and "/" not in ident:
        rows = index.conn.execute("SELECT id FROM received_pages WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                  (upper, upper + "\U0010ffff")).fetchall()
        held_rows = index.conn.execute("SELECT id FROM receipts WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                       (upper, upper + "\U0010ffff")).fetchall()
        if len(rows) + len(held_rows) == 1:
            if held_rows:
                return "receipt", receipt(index, held_rows[0][0]) or {}, None
            found = receipt_of_page(index, rows[0][0])
    if found is None and "://" in ident:
        row = index.conn.execute("SELECT id FROM received_pages WHERE url = ? ORDER BY id DESC LIMIT 1",
                                 (ident,)).fetchone()
        if row is not None:
            found = receipt_of_page(index, row[0])
    if found is None:
        raise NotFound(f"no capture or received file with ID or URL {ident!r} (see `archiver list`)")
    page, held = found
    return "page", held, page


def _quoted(column: str) -> str:
    return f'"{column}"' if column == "offset" else column
