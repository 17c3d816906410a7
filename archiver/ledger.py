"""The custody ledger: an append-only, hash-chained record of what happened to the evidence.

Each entry says what happened (``queued``, ``captured``, ``sealed``, ``checked``, ``verified``, ``exported``,
``timestamped``, ``backfilled``), when, to which job or capture, with a JSON ``detail``; and each entry's hash covers
the previous entry's hash, so changing, removing or reordering any entry breaks every hash after it. SQLite
triggers refuse UPDATE and DELETE on the ledger (and on sealed captures and their records), so a change needs
someone to drop the triggers first -- which the chain then shows.

The hash of an entry, for anyone checking with other tools (VERIFY.txt in an export says the same):

    sha256( UTF-8 of the JSON object {"seq", "at", "event", "capture_id", "job_id", "url", "detail", "prev"}
            with keys sorted, no spaces (separators "," and ":"), non-ASCII kept as is )

where ``prev`` is the previous entry's hash (64 zeros for entry 1) and ``detail`` is the JSON object itself.
Entries are appended inside the transaction that makes the change they record (BEGIN IMMEDIATE holds the
write lock), so two runners can never both extend the chain from the same entry.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

GENESIS = "0" * 64
EVENTS = ("queued", "captured", "sealed", "checked", "verified", "exported", "timestamped", "backfilled",
          "reindexed", "imported")


class LedgerError(Exception):
    """An append that cannot be made (an unknown event: a programming error, never user input)."""


@dataclass(frozen=True)
class Broken:
    """The first entry at which the chain does not hold, and why."""
    seq: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> str:
    """The one JSON spelling of a value that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash of an entry (a row of the ledger table, ``detail`` as stored text or as an object)."""
    detail = entry["detail"]
    body = {"seq": entry["seq"], "at": entry["at"], "event": entry["event"], "capture_id": entry["capture_id"],
            "job_id": entry["job_id"], "url": entry["url"],
            "detail": json.loads(detail) if isinstance(detail, str) else detail, "prev": entry["prev_hash"]}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


_INSERT = ("INSERT INTO ledger (seq, at, event, capture_id, job_id, url, detail, prev_hash, hash) "
           "VALUES (:seq, :at, :event, :capture_id, :job_id, :url, :detail, :prev_hash, :hash)")


def _last(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the newest entry; (0, GENESIS) for an empty ledger."""
    last = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return (last[0], last[1]) if last else (0, GENESIS)


def _make(last: tuple[int, str], event: str, capture_id: str | None, job_id: int | None, url: str | None,
          detail: dict[str, Any] | None, at: str | None) -> dict[str, Any]:
    """The entry that follows ``last``: the one place an entry and its hash are made."""
    if event not in EVENTS:
        raise LedgerError(f"unknown ledger event {event!r}")
    entry = {"seq": last[0] + 1, "at": at or _now(), "event": event, "capture_id": capture_id,
             "job_id": job_id, "url": url, "detail": canonical(detail or {}), "prev_hash": last[1]}
    entry["hash"] = entry_hash(entry)
    return entry


def append(conn: sqlite3.Connection, event: str, *, capture_id: str | None = None, job_id: int | None = None,
           url: str | None = None, detail: dict[str, Any] | None = None, at: str | None = None) -> dict[str, Any]:
    """Append one entry. Call inside the caller's write transaction (``Index.transaction``)."""
    entry = _make(_last(conn), event, capture_id, job_id, url, detail, at)
    conn.execute(_INSERT, entry)
    return entry


class Appender:
    """Many entries in one write transaction (``add -f`` of 100 000 URLs): the head is read once and carried
    from entry to entry, and the rows are inserted in batches. Each entry is made exactly as ``append`` makes it
    (``_make``: the next seq, the previous entry's hash as ``prev``, ``entry_hash``), so the chain is the one
    ``append`` would have made, entry for entry.

    Use it as a context manager inside the caller's transaction (BEGIN IMMEDIATE: no other writer can append
    meanwhile); what is still buffered is inserted on leaving. Append nothing through ``append`` on the same
    connection while it is open: the insert of a second entry with the same seq would fail (seq is the primary
    key), never fork the chain, and the transaction would roll back whole."""

    BATCH = 1000

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._last = _last(conn)
        self._rows: list[dict[str, Any]] = []

    def append(self, event: str, *, capture_id: str | None = None, job_id: int | None = None, url: str | None = None,
               detail: dict[str, Any] | None = None, at: str | None = None) -> dict[str, Any]:
        entry = _make(self._last, event, capture_id, job_id, url, detail, at)
        self._last = (entry["seq"], entry["hash"])
        self._rows.append(entry)
        if len(self._rows) >= self.BATCH:
            self.flush()
        return entry

    def flush(self) -> None:
        if self._rows:
            self.conn.executemany(_INSERT, self._rows)
            self._rows = []

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if kind is None:
            self.flush()


def entries(conn: sqlite3.Connection, capture_id: str | None = None, job_id: int | None = None) -> list[dict[str, Any]]:
    """Entries in order; only those of one capture (and of the job it came from) when asked."""
    if capture_id is None and job_id is None:
        rows = conn.execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    else:
        rows = conn.execute("SELECT * FROM ledger WHERE capture_id = ? OR job_id = ? ORDER BY seq",
                            (capture_id, job_id)).fetchall()
    return [dict(r) for r in rows]


def _walk(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM ledger ORDER BY seq")
    while rows := cursor.fetchmany(1000):
        for row in rows:
            yield dict(row)


def check_chain(conn: sqlite3.Connection) -> tuple[int, Broken | None]:
    """Walk the whole chain: (entries in the ledger, the first broken entry or None). Streams; constant memory."""
    expected_seq, prev, count = 1, GENESIS, 0
    for entry in _walk(conn):
        count += 1
        if entry["seq"] != expected_seq:
            return _total(conn), Broken(expected_seq, f"is missing (the entry after it is {entry['seq']}): deleted")
        if entry["prev_hash"] != prev:
            return _total(conn), Broken(entry["seq"], "does not follow from the entry before it (prev_hash differs): "
                                               "an entry before it was changed, removed or inserted")
        try:
            recomputed = entry_hash(entry)
        except (ValueError, TypeError) as exc:
            return _total(conn), Broken(entry["seq"], f"cannot be read ({exc})")
        if recomputed != entry["hash"]:
            return _total(conn), Broken(entry["seq"], "has content that does not match its hash: it was changed")
        prev, expected_seq = entry["hash"], expected_seq + 1
    return count, None


def _total(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def head(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest entry (its hash stands for the whole chain up to it)."""
    row = conn.execute("SELECT * FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return dict(row) if row else None
