"""The custody ledger: an append-only, hash-chained record of what happened to the evidence.

Each entry says what happened (``queued``, ``captured``, ``sealed``, ``checked``, ``verified``, ``exported``,
``timestamped``, ``backfilled``, ``reindexed``, ``imported``, ``migrated``, ``accessed``: evidence handed out by the
workbench, to whom and from which address), when, to which job or capture, with a JSON ``detail``; and each entry's hash covers
the previous entry's hash, so changing, removing or reordering any entry breaks every hash after it. SQLite
triggers refuse UPDATE and DELETE on the ledger (and on sealed captures and their records), so a change needs
someone to drop the triggers first -- which the chain then shows.

The hash of an entry, for anyone checking with other tools (VERIFY.txt in an export says the same):

    sha256( UTF-8 of the JSON object {"seq", "at", "event", "capture_id", "job_id", "url", "detail", "prev"}
            with keys sorted, no spaces (separators "," and ":"), non-ASCII kept as is )

where ``prev`` is the previous entry's hash (64 zeros for entry 1) and ``detail`` is the JSON object itself.
Entries are appended inside the transaction that makes the change they record, holding the ledger's lock (SQLite:
BEGIN IMMEDIATE holds the write lock; PostgreSQL: a transaction-scoped advisory lock), so two runners can never
both extend the chain from the same entry.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from archiver.store.engines import IndexConnection

GENESIS = "0" * 64
EVENTS = ("queued", "captured", "sealed", "checked", "verified", "exported", "timestamped", "backfilled",
          "reindexed", "imported", "migrated", "accessed", "received")


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


# json.dumps with these arguments builds a new encoder per call; one kept encoder spells every value the same way.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    """The one JSON spelling of a value that hashes are computed over: ``json.dumps(value, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``."""
    return _CANONICAL.encode(value)


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash of an entry (a row of the ledger table, ``detail`` as stored text or as an object)."""
    detail = entry["detail"]
    body = {"seq": entry["seq"], "at": entry["at"], "event": entry["event"], "capture_id": entry["capture_id"],
            "job_id": entry["job_id"], "url": entry["url"],
            "detail": json.loads(detail) if isinstance(detail, str) else detail, "prev": entry["prev_hash"]}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


_INSERT = ("INSERT INTO ledger (seq, at, event, capture_id, job_id, url, detail, prev_hash, hash) "
           "VALUES (:seq, :at, :event, :capture_id, :job_id, :url, :detail, :prev_hash, :hash)")


def _last(conn: IndexConnection) -> tuple[int, str]:
    """(seq, hash) of the newest entry; (0, GENESIS) for an empty ledger. Takes the ledger's lock first (held to
    the end of the transaction), so that no other writer extends the chain from the same head meanwhile."""
    conn.lock_ledger()
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


def append(conn: IndexConnection, event: str, *, capture_id: str | None = None, job_id: int | None = None,
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

    def __init__(self, conn: IndexConnection):
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


def entries(conn: IndexConnection, capture_id: str | None = None, job_id: int | None = None) -> list[dict[str, Any]]:
    """Entries in order; only those of one capture (and of the job it came from) when asked."""
    if capture_id is None and job_id is None:
        rows = conn.execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    else:
        rows = conn.execute("SELECT * FROM ledger WHERE capture_id = ? OR job_id = ? ORDER BY seq",
                            (capture_id, job_id)).fetchall()
    return [dict(r) for r in rows]


# Entries read per query of a walk. Each page is its own short read, so a walk of millions of entries never holds
# one read transaction open for minutes (which would keep SQLite from checkpointing the WAL meanwhile).
PAGE = 2000


@dataclass(frozen=True)
class Walk:
    """What a walk of the chain covered: ``entries`` walked, from ``first`` to ``last`` (seq), the hash of the
    last one (``last_hash``: the head the walk reached when it ends intact), and the first broken entry."""
    entries: int
    first: int | None
    last: int | None
    last_hash: str | None
    broken: Broken | None


def _why_broken(entry: dict[str, Any], prev_hash: str) -> str | None:
    """Why an entry does not hold, given the hash of the entry before it (GENESIS for entry 1); None when it does."""
    if entry["prev_hash"] != prev_hash:
        return ("does not follow from the entry before it (prev_hash differs): an entry before it was changed, "
                "removed or inserted")
    try:
        recomputed = entry_hash(entry)
    except (ValueError, TypeError) as exc:
        return f"cannot be read ({exc})"
    if recomputed != entry["hash"]:
        return "has content that does not match its hash: it was changed"
    return None


def walk(conn: IndexConnection, after: tuple[int, str] | None = None) -> Walk:
    """Walk the chain from the entry after ``after`` ((seq, hash) of an entry taken as checked; None: from entry 1)
    to the newest, each entry against its hash and the one before it, in pages by seq: constant memory, and no
    read held open for the whole walk (entries appended meanwhile are walked too). Stops at the first broken one."""
    expected_seq, prev = (after[0] + 1, after[1]) if after else (1, GENESIS)
    first, count = None, 0
    while True:
        rows = conn.execute("SELECT * FROM ledger WHERE seq >= ? ORDER BY seq LIMIT ?", (expected_seq, PAGE)).fetchall()
        if not rows:
            return Walk(count, first, expected_seq - 1 if count else None, prev if count else None, None)
        for row in rows:
            entry = dict(row)
            if entry["seq"] != expected_seq:
                return Walk(count, first, None, None,
                            Broken(expected_seq, f"is missing (the entry after it is {entry['seq']}): deleted"))
            why = _why_broken(entry, prev)
            if why is not None:
                return Walk(count, first, None, None, Broken(entry["seq"], why))
            first = entry["seq"] if first is None else first
            count += 1
            prev, expected_seq = entry["hash"], expected_seq + 1


def check_chain(conn: IndexConnection) -> tuple[int, Broken | None]:
    """Walk the whole chain: (entries in the ledger, the first broken entry or None). Streams; constant memory."""
    done = walk(conn)
    return (_total(conn) if done.broken else done.entries), done.broken


def entry_at(conn: IndexConnection, seq: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM ledger WHERE seq = ?", (seq,)).fetchone()
    return dict(row) if row else None


def check_entries(conn: IndexConnection, own: list[dict[str, Any]]) -> Broken | None:
    """Some entries (a capture's own, ``entries(conn, capture_id, job_id)``) checked where they stand in the chain,
    without walking it: each against its hash and linked to both neighbours -- its ``prev_hash`` is the hash of the
    entry before it, itself intact, and the entry after it names its hash as ``prev_hash``, so an entry changed and
    re-hashed shows at its successor. Indexed lookups by seq: the same cost at any length of ledger. The first
    broken entry, or None."""
    newest = conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0] or 0
    seen: dict[int, dict[str, Any] | None] = {}

    def at(seq: int) -> dict[str, Any] | None:
        if seq not in seen:
            seen[seq] = entry_at(conn, seq)
        return seen[seq]

    for entry in sorted(own, key=lambda e: e["seq"]):
        seq = entry["seq"]
        before = at(seq - 1) if seq > 1 else None
        if seq > 1 and before is None:
            return Broken(seq - 1, f"is missing (the entry after it is {seq}): deleted")
        if before is not None:
            why = _why_broken(before, before["prev_hash"])
            if why is not None:
                return Broken(before["seq"], why)
        why = _why_broken(entry, before["hash"] if before is not None else GENESIS)
        if why is not None:
            return Broken(seq, why)
        if seq < newest:
            after = at(seq + 1)
            if after is None:
                return Broken(seq + 1, f"is missing (the entry before it is {seq}): deleted")
            why = _why_broken(after, entry["hash"])
            if why is not None:
                return Broken(seq + 1, why)
    return None


# How many entries without a job ``last_full_walk`` reads on its way back before it gives up (about 0.1 s).
LOOKBACK = 50_000


def last_full_walk(conn: IndexConnection, lookback: int = LOOKBACK) -> tuple[dict[str, Any] | None, int]:
    """The newest ``verified`` entry of a whole-archive verify that walked the chain and found it intact: its seq
    (``entry``), time, and the newest entry the walk reached (``to``, with that entry's hash as the walk read it,
    ``to_hash``; None in entries made before verify recorded it); None when there is none. And how far back it
    looked: 1 when it searched the whole ledger, else the oldest entry it reached.

    A ``verified`` entry has no job, so the search goes backwards through the index of entries by job (ledger_job)
    among those without one -- verifications, exports, checks that queued nothing, imports -- and never reads the
    millions of entries of jobs. Checks can be many (a watched archive makes thousands a day), so it stops after
    ``lookback`` of them."""
    examined = 0
    for seq, event in conn.execute("SELECT seq, event FROM ledger WHERE job_id IS NULL ORDER BY seq DESC"):
        if examined >= lookback:
            return None, seq + 1
        examined += 1
        if event != "verified":
            continue
        at, detail = conn.execute("SELECT at, detail FROM ledger WHERE seq = ?", (seq,)).fetchone()
        try:
            detail = json.loads(detail)
        except ValueError:
            continue
        if detail.get("only"):
            continue
        chain = detail.get("chain")
        if isinstance(chain, dict):
            if chain.get("intact") and isinstance(chain.get("to"), int):
                return {"entry": seq, "at": at, "to": chain["to"], "to_hash": chain.get("to_hash")}, seq
            continue
        # A verified entry from before "chain" was recorded: the walk was intact when no problem was the ledger's,
        # and then it covered entries 1..ledger_entries (every seq, no gap).
        problems = detail.get("problems") or []
        complete = detail.get("problem_count", len(problems)) <= len(problems)
        if complete and not any(p.get("problem") == "ledger-broken" for p in problems if isinstance(p, dict)) \
                and isinstance(detail.get("ledger_entries"), int) and detail["ledger_entries"] > 0:
            return {"entry": seq, "at": at, "to": detail["ledger_entries"], "to_hash": None}, seq
    return None, 1


def _total(conn: IndexConnection) -> int:
    return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def head(conn: IndexConnection) -> dict[str, Any] | None:
    """The newest entry (its hash stands for the whole chain up to it)."""
    row = conn.execute("SELECT * FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return dict(row) if row else None
