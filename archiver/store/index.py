"""The index: one interface (``Index``) for both engines, its SQLite engine's schema and migrations, writes of sealed
captures, and the queries behind list/show/search.

The index is a view of the WARCs (design.md principle 1): every capture row is derived from a sealed WARC
whose provenance record holds the same facts. The SQLite file opens in Datasette as it is. ``Index`` is the
embedded engine and holds the queries both engines share; ``engines/postgres.py`` (``PostgresIndex``) overrides what
PostgreSQL does its own way: connecting, its schema, transactions, full-text search. ``engines.open_index`` chooses.
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from archiver.store import items
from archiver.custody import ledger
from archiver.errors import BadURL, NotFound, UserError
from archiver.store.engines.sqlite import SQLiteConnection
from archiver.urls import normalise, parse as parse_url

SCHEMA_VERSION = 8
T = TypeVar("T")


def now_iso() -> str:
    """UTC time as fixed-width ISO 8601, so that text comparison in SQL is time comparison."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_after(seconds: float) -> str:
    ts = datetime.now(timezone.utc).timestamp() + seconds
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


MIGRATIONS: list[str] = [
    # 1: jobs, attempts, captures, records, outlinks, full-text search.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,                 -- as given by the requester
        canonical_url TEXT NOT NULL,
        key TEXT NOT NULL,                 -- identity for de-duplication
        kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires TEXT,
        next_attempt_at TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',   -- JSON array
        note TEXT,
        options TEXT NOT NULL DEFAULT '{}',-- JSON: how to capture (e.g. {"no_browser": true})
        parent_capture_id TEXT,
        follow INTEGER NOT NULL DEFAULT 0,
        capture_id TEXT,                   -- the latest capture made for this job
        last_failure_class TEXT,
        last_failure TEXT,
        updated_at TEXT NOT NULL
    );
    -- The same URL is never pending twice; once captured it may be queued again (a re-capture).
    CREATE UNIQUE INDEX jobs_one_pending ON jobs(key) WHERE state IN ('queued', 'running');
    CREATE INDEX jobs_due ON jobs(state, next_attempt_at);

    -- Every attempt, whatever its outcome: failures are data.
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        attempt INTEGER NOT NULL,
        worker TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'partial', 'failed', 'released')),
        failure_class TEXT,
        message TEXT,
        capture_id TEXT
    );
    CREATE INDEX attempts_job ON attempts(job_id);

    CREATE TABLE captures (
        id TEXT PRIMARY KEY,               -- ULID: time-sortable, unique across machines
        job_id INTEGER REFERENCES jobs(id),
        url TEXT NOT NULL,                 -- as requested
        canonical_url TEXT NOT NULL,
        final_url TEXT,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,              -- browser | http
        status TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'failed')),
        failure_class TEXT,
        failure_message TEXT,
        http_status INTEGER,
        content_type TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        requested_by TEXT,
        requested_at TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        note TEXT,
        warc_path TEXT NOT NULL UNIQUE,    -- relative to the archive directory
        warc_sha256 TEXT NOT NULL,
        warc_size INTEGER NOT NULL,
        record_count INTEGER NOT NULL,
        title TEXT,
        text TEXT,
        provenance TEXT NOT NULL           -- JSON, the same document as the WARC's provenance record
    );
    CREATE INDEX captures_key ON captures(key, started_at);
    CREATE INDEX captures_started ON captures(started_at);

    CREATE TABLE records (
        capture_id TEXT NOT NULL REFERENCES captures(id),
        seq INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        type TEXT NOT NULL,
        uri TEXT,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        http_status INTEGER,
        content_type TEXT,
        payload_digest TEXT,
        PRIMARY KEY (capture_id, seq)
    );
    CREATE INDEX records_uri ON records(uri);

    CREATE TABLE outlinks (
        capture_id TEXT NOT NULL REFERENCES captures(id),
        url TEXT NOT NULL,
        text TEXT
    );
    CREATE INDEX outlinks_capture ON outlinks(capture_id);
    CREATE INDEX outlinks_url ON outlinks(url);
    """,
    # 2: social evidence — tweets and videos as captured, and where a followed child was found.
    """
    ALTER TABLE jobs ADD COLUMN found_in TEXT;   -- JSON: where in the parent capture the URL was found
    CREATE INDEX jobs_parent ON jobs(parent_capture_id);

    CREATE TABLE tweets (
        capture_id TEXT PRIMARY KEY REFERENCES captures(id),
        tweet_id TEXT NOT NULL,
        availability TEXT NOT NULL,        -- available | deleted | suspended | protected | ...
        screen_name TEXT,
        name TEXT,
        text TEXT,
        created_at TEXT,
        snowflake_time TEXT,               -- the time encoded in the id itself
        time_check TEXT,                   -- consistent | inconsistent | unknown
        lang TEXT,
        media_count INTEGER,
        reply_to TEXT,
        quoted_id TEXT,
        urls TEXT                          -- JSON array of expanded URLs
    );
    CREATE INDEX tweets_tweet_id ON tweets(tweet_id);
    CREATE INDEX tweets_screen_name ON tweets(screen_name);

    -- Evidence a capture references (embedded tweets, linked broadcasts...), followed or not.
    CREATE TABLE refs (
        capture_id TEXT NOT NULL REFERENCES captures(id),
        url TEXT NOT NULL,                 -- as found (a t.co link resolved to its target)
        key TEXT NOT NULL,                 -- platform key, e.g. twitter:809711419431133184
        kind TEXT NOT NULL,
        found_in TEXT,                     -- where in the page: blockquote.twitter-tweet a[href], iframe[src]...
        source TEXT,                       -- html (as received) | dom (as rendered) | tweet.entities
        via TEXT                           -- the short link it was found behind, if any
    );
    CREATE INDEX refs_capture ON refs(capture_id);
    CREATE INDEX refs_key ON refs(key);

    CREATE TABLE videos (
        capture_id TEXT PRIMARY KEY REFERENCES captures(id),
        extractor TEXT,
        video_id TEXT,
        title TEXT,
        uploader TEXT,
        upload_date TEXT,
        duration REAL,
        is_live INTEGER,
        webpage_url TEXT,
        media_bytes INTEGER,
        cut TEXT                           -- too-large | timeout when the download was cut off
    );
    """,
    # 3: watching — schedules, liveness checks, the state of each watched or captured item; politeness.
    """
    -- The host a job fetches, so that runners can keep to per-host concurrency and delay.
    ALTER TABLE jobs ADD COLUMN host TEXT;
    CREATE INDEX jobs_host ON jobs(host, state);

    -- One schedule per item (key): re-capture every N seconds or on a cron expression, check in between.
    CREATE TABLE watches (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        canonical_url TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        every_seconds INTEGER,             -- re-capture interval, or
        cron TEXT,                         -- a cron expression (UTC)
        check_every_seconds INTEGER,       -- liveness checks between captures (NULL: none)
        next_capture_at TEXT NOT NULL,
        next_check_at TEXT,
        last_enqueued_at TEXT,
        last_job_id INTEGER,
        last_checked_at TEXT,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        note TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        active INTEGER NOT NULL DEFAULT 1,
        removed_at TEXT,
        removed_by TEXT
    );
    CREATE UNIQUE INDEX watches_one_active ON watches(key) WHERE active = 1;
    CREATE INDEX watches_due ON watches(active, next_capture_at);

    -- Every liveness check: what the URL answered, and the item's state after it.
    CREATE TABLE checks (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        url TEXT NOT NULL,
        checked_at TEXT NOT NULL,
        method TEXT NOT NULL,              -- http | syndication | yt-dlp
        result TEXT NOT NULL,              -- live | gone | unreachable
        result_class TEXT,                 -- deleted, suspended, http-404, dns, timeout, ...
        http_status INTEGER,
        final_url TEXT,
        redirects TEXT,                    -- JSON: [[status, url], ...]
        fingerprint TEXT,                  -- normalised content fingerprint (text + media), if live
        message TEXT,
        seconds REAL,
        state_before TEXT,
        state_after TEXT NOT NULL,
        job_id INTEGER,                    -- capture queued because of this check
        worker TEXT
    );
    CREATE INDEX checks_key ON checks(key, checked_at);

    -- The current state of each item we hold or watch: live | changed | gone | unreachable.
    CREATE TABLE items (
        key TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('live', 'changed', 'gone', 'unreachable')),
        state_class TEXT,                  -- why: deleted, http-404, dns, ...
        state_since TEXT NOT NULL,         -- when the item entered this state
        last_seen_live TEXT,
        last_checked_at TEXT,
        last_capture_id TEXT,              -- newest capture
        last_ok_capture_id TEXT,           -- newest complete capture: the evidence we hold
        fingerprint TEXT,                  -- of the newest capture that showed content
        unreachable_count INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX items_state ON items(state, state_since);

    -- State changes, from checks and from captures: the item's timeline.
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at TEXT NOT NULL,
        state_before TEXT,
        state_after TEXT NOT NULL,
        state_class TEXT,
        source TEXT NOT NULL,              -- check | capture
        check_id INTEGER,
        capture_id TEXT
    );
    CREATE INDEX transitions_key ON transitions(key, at);
    """,
    # 4: per-host politeness across runners — when a capture of each host last started (queue.claim).
    """
    CREATE TABLE host_slots (
        host TEXT PRIMARY KEY,
        last_started_at TEXT NOT NULL      -- set by the claim that starts a capture of this host
    );
    """,
    # 5: chain of custody — the hash-chained ledger (ledger.py), RFC 3161 timestamps of sealed WARCs, and
    # triggers that make the ledger and sealed captures append-only.
    """
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY,           -- 1, 2, 3... without gaps: a gap is a deleted entry
        at TEXT NOT NULL,
        event TEXT NOT NULL,               -- queued | captured | sealed | checked | verified | exported | ...
        capture_id TEXT,
        job_id INTEGER,
        url TEXT,
        detail TEXT NOT NULL DEFAULT '{}', -- canonical JSON (ledger.canonical)
        prev_hash TEXT NOT NULL,           -- the previous entry's hash; 64 zeros for entry 1
        hash TEXT NOT NULL UNIQUE          -- ledger.entry_hash of this entry
    );
    CREATE INDEX ledger_capture ON ledger(capture_id);
    CREATE INDEX ledger_job ON ledger(job_id);
    CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: its entries cannot be changed'); END;
    CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: its entries cannot be deleted'); END;
    CREATE TRIGGER captures_sealed_update BEFORE UPDATE ON captures
    BEGIN SELECT RAISE(ABORT, 'a sealed capture cannot be changed; capture again instead'); END;
    CREATE TRIGGER captures_sealed_delete BEFORE DELETE ON captures
    BEGIN SELECT RAISE(ABORT, 'a sealed capture cannot be deleted'); END;
    CREATE TRIGGER records_sealed_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be changed'); END;
    CREATE TRIGGER records_sealed_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be deleted'); END;

    CREATE TABLE timestamps (
        id INTEGER PRIMARY KEY,
        capture_id TEXT NOT NULL REFERENCES captures(id),
        tsa_url TEXT NOT NULL,
        digest TEXT NOT NULL,              -- the SHA-256 (hex) sent: the sealed WARC's
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        token_path TEXT,                   -- relative to the archive: beside the WARC
        token_sha256 TEXT,
        gen_time TEXT,                     -- the time the TSA vouches for (UTC)
        serial TEXT,
        tsa_name TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (capture_id, tsa_url)
    );
    CREATE INDEX timestamps_due ON timestamps(state, next_attempt_at);
    """,
    # 6: half the bytes, and reads whose cost does not grow with the archive (issue 12). The statements below
    # make the new tables; Index._migrate_to_6 fills them, in the same transaction.
    # - captures keeps neither the visible text nor the provenance JSON: both are records of the sealed WARC
    #   (urn:text:, urn:provenance:), which show, report and search read back, checked against their indexed
    #   digest (readback.py). Only the full-text index of the text stays, contentless.
    # - captures.rowid is declared, so that VACUUM can never renumber it under the full-text index, and is the
    #   millisecond of the capture's ULID (fts_key): rowid order is ID order, so search takes the newest hits
    #   straight off the full-text index, however many there are.
    # - the records are stored in records_packed, keyed by (capture_id, seq) alone (WITHOUT ROWID: no second
    #   copy of the key), with the record ID (a UUID) and the SHA-256 payload digest as bytes when they have
    #   their usual form (and as written otherwise); records is a view that reads them exactly as written.
    #   records_uri, which no query used, is gone.
    # - lookups by URL (show URL) and by key (a URL's jobs and watch, a capture's children) get indexes:
    #   partial ones where the column usually repeats another that is indexed already.
    # - tallies: how many jobs and timestamps are in each state, and how many captures there are, kept by
    #   triggers, so that `status` reads eight numbers instead of counting a million rows. (Change those rows
    #   with INSERT, UPDATE and DELETE: INSERT OR REPLACE deletes without firing the delete trigger.)
    """
    DROP TRIGGER captures_ai;
    DROP TRIGGER captures_ad;
    DROP TRIGGER captures_au;
    DROP TABLE captures_fts;
    DROP TRIGGER captures_sealed_update;
    DROP TRIGGER captures_sealed_delete;
    DROP TRIGGER records_sealed_update;
    DROP TRIGGER records_sealed_delete;
    CREATE TABLE captures_v6 (
        rowid INTEGER PRIMARY KEY,         -- fts_key(id): the full-text index's key; rowid order is ID order
        id TEXT NOT NULL UNIQUE,           -- ULID: time-sortable, unique across machines
        job_id INTEGER REFERENCES jobs(id),
        url TEXT NOT NULL,                 -- as requested
        canonical_url TEXT NOT NULL,
        final_url TEXT,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,              -- browser | http
        status TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'failed')),
        failure_class TEXT,
        failure_message TEXT,
        http_status INTEGER,
        content_type TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        requested_by TEXT,
        requested_at TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        note TEXT,
        warc_path TEXT NOT NULL UNIQUE,    -- relative to the archive directory
        warc_sha256 TEXT NOT NULL,
        warc_size INTEGER NOT NULL,
        record_count INTEGER NOT NULL,
        title TEXT
    );
    -- Title and visible text (the WARC's last urn:text: record), indexed but not stored: search reads its
    -- snippets back from the WARCs (readback.py). In Datasette:
    -- /index/captures?_where=rowid in (select rowid from captures_fts where captures_fts match 'word')
    CREATE VIRTUAL TABLE captures_fts USING fts5(title, text, tokenize='unicode61 remove_diacritics 2',
                                                 content='');
    CREATE TABLE records_packed (
        capture_id TEXT NOT NULL REFERENCES captures(id),
        seq INTEGER NOT NULL,
        record_id NOT NULL,                -- 16 bytes for '<urn:uuid:...>' in lowercase; else the text as written
        type TEXT NOT NULL,
        uri TEXT,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        http_status INTEGER,
        content_type TEXT,
        payload_digest,                    -- 32 bytes for 'sha256:<64 lowercase hex>'; else the text as written
        PRIMARY KEY (capture_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX jobs_key ON jobs(key);
    CREATE INDEX watches_key ON watches(key);

    CREATE TABLE tallies (
        name TEXT PRIMARY KEY,             -- jobs:<state>, timestamps:<state>, captures
        n INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO tallies (name, n) SELECT 'jobs:' || s, (SELECT COUNT(*) FROM jobs WHERE state = s)
        FROM (SELECT 'queued' AS s UNION ALL SELECT 'running' UNION ALL SELECT 'done' UNION ALL SELECT 'failed');
    INSERT INTO tallies (name, n) SELECT 'timestamps:' || s, (SELECT COUNT(*) FROM timestamps WHERE state = s)
        FROM (SELECT 'pending' AS s UNION ALL SELECT 'done' UNION ALL SELECT 'failed');
    INSERT INTO tallies (name, n) VALUES ('captures', (SELECT COUNT(*) FROM captures));
    CREATE TRIGGER jobs_tally_insert AFTER INSERT ON jobs
    BEGIN UPDATE tallies SET n = n + 1 WHERE name = 'jobs:' || new.state; END;
    CREATE TRIGGER jobs_tally_update AFTER UPDATE OF state ON jobs WHEN new.state IS NOT old.state
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'jobs:' || old.state;
          UPDATE tallies SET n = n + 1 WHERE name = 'jobs:' || new.state; END;
    CREATE TRIGGER jobs_tally_delete AFTER DELETE ON jobs
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'jobs:' || old.state; END;
    CREATE TRIGGER timestamps_tally_insert AFTER INSERT ON timestamps
    BEGIN UPDATE tallies SET n = n + 1 WHERE name = 'timestamps:' || new.state; END;
    CREATE TRIGGER timestamps_tally_update AFTER UPDATE OF state ON timestamps WHEN new.state IS NOT old.state
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'timestamps:' || old.state;
          UPDATE tallies SET n = n + 1 WHERE name = 'timestamps:' || new.state; END;
    CREATE TRIGGER timestamps_tally_delete AFTER DELETE ON timestamps
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'timestamps:' || old.state; END;
    """,
    # 7: where a sealed WARC lives when it is not in the archive's own warcs/ directory (issue 12: sealing to S3).
    # NULL in both for every capture sealed into <archive>/warcs, which is all of them before schema 7. Otherwise
    # warc_store is the store's URL (s3://bucket/prefix) and the object's key in it is warc_path without its
    # "warcs/" (archive.warc_key); warc_version is the object version the seal wrote (S3 versioning, which Object
    # Lock requires), so reads are pinned to the bytes sealed. Known at insert: the object is stored before the
    # capture is indexed (pipeline/sealing.py), so the row never needs the UPDATE its trigger refuses.
    """
    ALTER TABLE captures ADD COLUMN warc_store TEXT;
    ALTER TABLE captures ADD COLUMN warc_version TEXT;
    """,
    # 8: the WARC a job's runner is putting into the store (its warc_path), written under the job's lease before
    # the PUT (pipeline/sealing.py). A runner killed between the PUT and the index (a host lost with its tmp/)
    # leaves an object only this names: whoever takes the job next, on any host, indexes that object instead of
    # capturing the page again. NULL for every job of an archive sealing into its own warcs/.
    """
    ALTER TABLE jobs ADD COLUMN storing TEXT;
    """,
]

# Migration 6, once Index._migrate_to_6 has filled the new tables: they take the old ones' places.
SCHEMA_6_AFTER = """
    DROP TABLE captures;
    ALTER TABLE captures_v6 RENAME TO captures;
    DROP TABLE records;
    -- The records as written in the WARC (what every reader uses: show, verify, export, report).
    CREATE VIEW records AS SELECT capture_id, seq,
        CASE WHEN typeof(record_id) = 'blob' THEN '<urn:uuid:' || lower(substr(hex(record_id), 1, 8) || '-' ||
            substr(hex(record_id), 9, 4) || '-' || substr(hex(record_id), 13, 4) || '-' ||
            substr(hex(record_id), 17, 4) || '-' || substr(hex(record_id), 21)) || '>' ELSE record_id END
            AS record_id,
        type, uri, offset, length, http_status, content_type,
        CASE WHEN typeof(payload_digest) = 'blob' THEN 'sha256:' || lower(hex(payload_digest))
            ELSE payload_digest END AS payload_digest
        FROM records_packed;
    CREATE INDEX captures_key ON captures(key, started_at);
    CREATE INDEX captures_started ON captures(started_at);
    -- show URL: any capture whose key, canonical URL, URL or final URL it is (Index.find_capture). Each column is
    -- indexed only where it differs from the one before it, which is indexed already.
    CREATE INDEX captures_canonical_url ON captures(canonical_url) WHERE canonical_url <> key;
    CREATE INDEX captures_url ON captures(url) WHERE url <> canonical_url;
    CREATE INDEX captures_final_url ON captures(final_url) WHERE final_url <> url;
    CREATE TRIGGER captures_tally_insert AFTER INSERT ON captures
    BEGIN UPDATE tallies SET n = n + 1 WHERE name = 'captures'; END;
    CREATE TRIGGER captures_sealed_update BEFORE UPDATE ON captures
    BEGIN SELECT RAISE(ABORT, 'a sealed capture cannot be changed; capture again instead'); END;
    CREATE TRIGGER captures_sealed_delete BEFORE DELETE ON captures
    BEGIN SELECT RAISE(ABORT, 'a sealed capture cannot be deleted'); END;
    CREATE TRIGGER records_sealed_update BEFORE UPDATE ON records_packed
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be changed'); END;
    CREATE TRIGGER records_sealed_delete BEFORE DELETE ON records_packed
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be deleted'); END;
    CREATE TRIGGER records_view_sealed_update INSTEAD OF UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be changed'); END;
    CREATE TRIGGER records_view_sealed_delete INSTEAD OF DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'the records of a sealed capture cannot be deleted'); END;
"""

_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
MAX_ROWID = (1 << 63) - 1
_UUID_ID = re.compile(r"<urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})>")
_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


def pack_record_id(value: str) -> str | bytes:
    """A WARC record ID as records_packed holds it; the records view gives back exactly ``value``."""
    match = _UUID_ID.fullmatch(value) if isinstance(value, str) else None
    return bytes.fromhex("".join(match.groups())) if match else value


def pack_digest(value: str | None) -> str | bytes | None:
    match = _SHA256.fullmatch(value) if isinstance(value, str) else None
    return bytes.fromhex(match.group(1)) if match else value


def fts_key(capture_id: str) -> int | None:
    """The rowid a capture gets: the millisecond its ULID begins with, so that rowid order is ID order (captures
    of one millisecond take the next free numbers). Not more of the ULID: the full-text index stores rowid
    differences, and milliseconds keep them small. None for an ID that is not a ULID (the row then takes the
    next rowid after the largest)."""
    if len(capture_id) != 26:
        return None
    value = 0
    for char in capture_id:
        digit = _CROCKFORD.get(char)
        if digit is None:
            return None
        value = (value << 5) | digit
    return value >> 80 if value >> 128 == 0 else None


class Index:
    """One connection to ``<archive>/index.db``. Cheap to open; open one per process or thread."""

    def __init__(self, path: Path, unreachable_gone: tuple[int, float] = (4, 24.0)):
        self.path = path
        # How many unreachable observations, over how many hours, make an item gone (settings [watch]).
        self.unreachable_gone = unreachable_gone
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the lock up front and
        # waits (busy_timeout) instead of failing half-way with "database is locked".
        self.conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False,
                                    factory=SQLiteConnection)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed index row survives power loss, as the sealed file it describes does.
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, serial: bool = True) -> Iterator[Any]:
        """A short write transaction that holds the write lock from its start. ``serial=False``: one that appends
        nothing to the ledger and queues nothing, which an engine with row locks may run beside others (claims,
        leases); on SQLite every write transaction holds the one write lock."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def write(self, work: Callable[[Any], T], serial: bool = True) -> T:
        """``work(conn)`` in one write transaction (see ``transaction``). An engine that can lose its connection
        (PostgreSQL restarted) runs it again on a new one when the first try was rolled back, and never when its
        commit may have happened: ``work`` must only write through ``conn``."""
        with self.transaction(serial) as conn:
            return work(conn)

    def job_waiter(self) -> "Callable[[float], bool] | None":
        """A function that waits up to N seconds for a job to be queued (True: one was), for an engine that can
        tell; None: poll."""
        return None

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.path} has schema version {version}, newer than this archiver "
                            f"({SCHEMA_VERSION}); upgrade archiver")
        if version == SCHEMA_VERSION:
            return
        # Migration 6 replaces tables that others reference. Foreign keys cannot be switched off inside a
        # transaction, so they are off for the migration's (every row it copies keeps its key) and on after it.
        self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with self.transaction():
                # Re-read under the lock: another process may have migrated meanwhile.
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                for number in range(version, SCHEMA_VERSION):
                    for statement in _split_sql(MIGRATIONS[number]):
                        self.conn.execute(statement)
                    if number == 0:
                        self._enable_fts()
                    if number == 4:
                        self._backfill_ledger()
                    if number == 5:
                        self._migrate_to_6()
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    def _backfill_ledger(self) -> None:
        """Captures sealed before the ledger existed get one entry each, saying so, with the facts the sealed
        file had when the ledger began (so later changes to them still show)."""
        for row in self.conn.execute("SELECT id, job_id, url, warc_path, warc_sha256, warc_size, status, "
                                     "finished_at FROM captures ORDER BY id").fetchall():
            ledger.append(self.conn, "backfilled", capture_id=row["id"], job_id=row["job_id"], url=row["url"],
                          detail={"warc_path": row["warc_path"], "warc_sha256": row["warc_sha256"],
                                  "warc_size": row["warc_size"], "status": row["status"],
                                  "sealed_at": row["finished_at"]})

    def _enable_fts(self) -> None:
        # Schema 1's full-text index, as sqlite-utils' enable_fts made it (content in captures, kept in step by
        # triggers); migration 6 replaces it.
        self.conn.execute('CREATE VIRTUAL TABLE "captures_fts" USING FTS5 ("title", "text", '
                          'tokenize=\'unicode61 remove_diacritics 2\', content="captures")')
        self.conn.execute('CREATE TRIGGER "captures_ai" AFTER INSERT ON "captures" BEGIN INSERT INTO "captures_fts" '
                          '(rowid, "title", "text") VALUES (new.rowid, new."title", new."text"); END')
        self.conn.execute('CREATE TRIGGER "captures_ad" AFTER DELETE ON "captures" BEGIN INSERT INTO "captures_fts" '
                          '("captures_fts", rowid, "title", "text") VALUES(\'delete\', old.rowid, old."title", '
                          'old."text"); END')
        self.conn.execute('CREATE TRIGGER "captures_au" AFTER UPDATE ON "captures" BEGIN INSERT INTO "captures_fts" '
                          '("captures_fts", rowid, "title", "text") VALUES(\'delete\', old.rowid, old."title", '
                          'old."text"); INSERT INTO "captures_fts" (rowid, "title", "text") VALUES (new.rowid, '
                          'new."title", new."text"); END')

    def _migrate_to_6(self) -> None:
        """Fill migration 6's tables from schema 5's, in the migration's one transaction: a kill at any point
        leaves the index at schema 5, as it was. Captures are copied in ID order, each with its rowid
        (fts_key, made strictly increasing) and its title and text indexed; the text and the provenance stay in
        the WARCs only. Prints its progress: on a million captures this takes minutes."""
        conn = self.conn
        total = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
        say = _notice if total else (lambda message: None)
        started = time.monotonic()
        say(f"upgrading {self.path} to schema 6: {total:,} captures, in one transaction (if interrupted, the "
            f"index stays as it was and the upgrade starts again the next time it is opened)")
        columns = [r[1] for r in conn.execute("PRAGMA table_info(captures_v6)") if r[1] != "rowid"]
        listed = ", ".join(columns)
        insert_capture = f"INSERT INTO captures_v6 (rowid, {listed}) VALUES (?{', ?' * len(columns)})"
        insert_text = "INSERT INTO captures_fts (rowid, title, text) VALUES (?, ?, ?)"
        cursor = conn.execute(f"SELECT {listed}, text FROM captures ORDER BY id")
        last, done = 0, 0
        while batch := cursor.fetchmany(2000):
            rows, texts = [], []
            for row in batch:
                key = fts_key(row["id"])
                last = key if key is not None and key > last else last + 1
                rows.append((last, *tuple(row)[:-1]))
                texts.append((last, row["title"], row["text"]))
            conn.executemany(insert_capture, rows)
            conn.executemany(insert_text, texts)
            done += len(batch)
            if done % 100_000 < len(batch) and done < total:
                say(f"  {done:,} of {total:,} captures ({time.monotonic() - started:.0f} s)")
        records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        say(f"  {total:,} captures copied; now their {records:,} records ({time.monotonic() - started:.0f} s)")
        cursor = conn.execute("SELECT capture_id, seq, record_id, type, uri, offset, length, http_status, "
                              "content_type, payload_digest FROM records ORDER BY capture_id, seq")
        done = 0
        while batch := cursor.fetchmany(10_000):
            conn.executemany("INSERT INTO records_packed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [(r[0], r[1], pack_record_id(r[2]), *tuple(r)[3:9], pack_digest(r[9])) for r in batch])
            done += len(batch)
            if done % 1_000_000 < len(batch) and done < records:
                say(f"  {done:,} of {records:,} records ({time.monotonic() - started:.0f} s)")
        for statement in _split_sql(SCHEMA_6_AFTER):
            conn.execute(statement)
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        say(f"upgraded to schema 6 in {time.monotonic() - started:.0f} s; {free / 1e6:,.0f} MB of {self.path.name} "
            f"are free space now, which new captures reuse (`sqlite3 {self.path} VACUUM` would give it back to "
            f"the disk; it needs that much free disk space and holds the archive's write lock meanwhile)")

    # ---- writes -------------------------------------------------------------------------------------

    def insert_capture(self, capture: dict[str, Any], records: list[dict[str, Any]],
                       outlinks: list[dict[str, str]]) -> None:
        """Insert one sealed capture with its records and outlinks. Call inside ``transaction()``.

        ``capture`` holds the captures row, plus ``text`` (indexed for search, not stored: the WARC's last
        urn:text: record holds it) and ``provenance`` (the WARC's provenance record, dict or JSON, from which the
        tweet, video, reference and item rows derive)."""
        row = {k: v for k, v in capture.items() if k not in ("text", "provenance", "rowid")}
        if not isinstance(row.get("tags"), str):
            row["tags"] = json.dumps(row.get("tags") or [], ensure_ascii=False)
        columns = ", ".join(row)
        rowid = self._free_rowid(capture["id"])
        self.conn.execute(f"INSERT INTO captures (rowid, {columns}) VALUES (?{', ?' * len(row)})",
                          [rowid, *row.values()])
        self._index_text(rowid, capture.get("title"), capture.get("text"))
        self._insert_records(capture["id"], records)
        self.conn.executemany("INSERT INTO outlinks (capture_id, url, text) VALUES (?, ?, ?)",
                              [(capture["id"], o["url"], o.get("text")) for o in outlinks])
        provenance = capture.get("provenance")
        if not isinstance(provenance, dict):
            provenance = json.loads(provenance or "{}")
        self._insert_platform_rows(capture["id"], provenance)
        items.observe_capture(self.conn, capture, provenance, self.unreachable_gone)

    def insert_copied(self, row: dict[str, Any], records: list[dict[str, Any]], text: str | None) -> None:
        """A captures row copied from another index as it is there (its ``rowid``, its place), with its records and
        its title and ``text`` indexed for search, each the way this engine stores them: what ``archiver migrate``
        writes, where ``insert_capture`` derives every row from a sealed capture. Call inside ``transaction()``."""
        columns = ", ".join(f'"{name}"' for name in row)
        self.conn.execute(f"INSERT INTO captures ({columns}) VALUES (?{', ?' * (len(row) - 1)})", list(row.values()))
        self._index_text(row["rowid"], row.get("title"), text)
        self._insert_records(row["id"], records)

    def _free_rowid(self, capture_id: str) -> int:
        """fts_key of the ID, or the next free rowid above it (two IDs of one millisecond can share their top
        bits); for an ID that is not a ULID, the next rowid after the largest (as SQLite would choose)."""
        key = fts_key(capture_id)
        while key is not None and self.conn.execute("SELECT 1 FROM captures WHERE rowid = ?", (key,)).fetchone():
            key = key + 1 if key < MAX_ROWID else None
        if key is None:
            key = self.conn.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM captures").fetchone()[0]
        return key

    def _index_text(self, rowid: int, title: str | None, text: str | None) -> None:
        """Title and visible text into the full-text index (contentless: the WARC keeps the text)."""
        self.conn.execute("INSERT INTO captures_fts (rowid, title, text) VALUES (?, ?, ?)", (rowid, title, text))

    def _insert_records(self, capture_id: str, records: list[dict[str, Any]]) -> None:
        self.conn.executemany(
            'INSERT INTO records_packed (capture_id, seq, record_id, type, uri, "offset", length, http_status, '
            "content_type, payload_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(capture_id, r["seq"], pack_record_id(r["record_id"]), r["type"], r["uri"], r["offset"],
              r["length"], r.get("http_status"), r.get("content_type"), pack_digest(r.get("payload_digest")))
             for r in records])

    def _insert_platform_rows(self, capture_id: str, provenance: dict[str, Any]) -> None:
        """Tweet and video facts, derived from the provenance record (so reindex can rebuild them)."""
        tweet = provenance.get("tweet")
        if tweet:
            self.conn.execute(
                "INSERT INTO tweets (capture_id, tweet_id, availability, screen_name, name, text, created_at, "
                "snowflake_time, time_check, lang, media_count, reply_to, quoted_id, urls) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (capture_id, tweet["id"], tweet["availability"], tweet.get("screen_name"), tweet.get("name"),
                 tweet.get("text"), tweet.get("created_at"), tweet.get("snowflake_time"), tweet.get("time_check"),
                 tweet.get("lang"), tweet.get("media_count"), tweet.get("reply_to"), tweet.get("quoted_id"),
                 json.dumps(tweet.get("urls") or [])))
        self.conn.executemany(
            "INSERT INTO refs (capture_id, url, key, kind, found_in, source, via) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(capture_id, r["url"], r["key"], r["kind"], r.get("found_in"), r.get("source"), r.get("via"))
             for r in provenance.get("discovered") or []])
        video = provenance.get("video")
        if video and video.get("extractor"):
            media_bytes = sum(f["bytes"] for f in video.get("files", []) if f["kind"] == "media")
            self.conn.execute(
                "INSERT INTO videos (capture_id, extractor, video_id, title, uploader, upload_date, duration, "
                "is_live, webpage_url, media_bytes, cut) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (capture_id, video.get("extractor"), video.get("id"), video.get("title"), video.get("uploader"),
                 video.get("upload_date"), video.get("duration"), int(bool(video.get("is_live"))),
                 video.get("webpage_url"), media_bytes, video.get("cut")))

    # ---- reads --------------------------------------------------------------------------------------

    # warc_store and warc_version (schema 7) say where a WARC is when it is not in <archive>/warcs: listed then, as
    # show --json lists them, and left out for a local capture (without_local_place), as before schema 7.
    LISTED = ("id, url, final_url, kind, method, status, failure_class, http_status, title, started_at, "
              "finished_at, warc_path, warc_sha256, warc_size, record_count, tags, requested_by, warc_store, "
              "warc_version")

    def list_captures(self, *, tag: str | None = None, kind: str | None = None, status: str | None = None,
                      since: str | None = None, limit: int | None = None, before: str | None = None
                      ) -> list[dict[str, Any]]:
        return list(self.iter_captures(tag=tag, kind=kind, status=status, since=since, limit=limit, before=before))

    def iter_captures(self, *, tag: str | None = None, kind: str | None = None, status: str | None = None,
                      since: str | None = None, limit: int | None = None, before: str | None = None
                      ) -> Iterator[dict[str, Any]]:
        """Captures, newest (highest ID) first, one row at a time: ``before`` an ID (the cursor of the page
        before), at most ``limit`` (None: all)."""
        where, params = [], []
        if before:
            where.append("id < ?")
            params.append(before)
        if tag:
            where.append(self.conn.sql_json_has("captures.tags"))
            params.append(tag)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if status:
            where.append("status = ?")
            params.append(status)
        table = "captures"
        if since:
            where.append("started_at >= ?")
            params.append(since)
            # Walking the IDs down finds recent captures at once, but walks the whole table for an old --since
            # that few captures match; then the started_at index takes them directly (and sorts them: few).
            few = self.conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM captures WHERE started_at >= ? LIMIT 5000) AS recent",
                                    (since,)).fetchone()[0]
            if few < 5000:
                table = "captures" + self.conn.sql_indexed_by("captures_started")
        sql = f"SELECT {self.LISTED} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self.conn.execute(sql, params):
            yield without_local_place(_decode(dict(row)))

    def find_capture(self, ident: str) -> dict[str, Any]:
        """A capture by ID (or unique ID prefix), or the newest capture of a URL (its key, canonical URL, URL as
        requested or final URL). Every way costs a few index lookups, whatever the archive's size."""
        row = self.conn.execute("SELECT * FROM captures WHERE id = ?", (ident,)).fetchone()
        if row is None and len(ident) >= 6 and "/" not in ident:
            prefix = ident.upper()
            rows = self.conn.execute("SELECT * FROM captures WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                     (prefix, prefix + "\U0010ffff")).fetchall()
            if len(rows) == 1:
                row = rows[0]
        if row is None and "://" in ident:
            try:
                key = parse_url(ident).dedup_key  # any spelling of the same tweet or video finds it
            except BadURL:
                key = normalise(ident)
            row = self._newest_of_url(key, normalise(ident), ident)
        if row is None:
            raise NotFound(f"no capture with ID or URL {ident!r} (see `archiver list`)")
        return without_local_place(_decode(dict(row)))

    def _newest_of_url(self, key: str, canonical: str, url: str) -> sqlite3.Row | None:
        """The newest capture with ``key = key OR canonical_url = canonical OR url = url OR final_url = url``.
        Each column is indexed only where it differs from the one before it (schema 6), so the candidates come
        from five index lookups, then that condition is applied to them as it reads."""
        return self.conn.execute(
            "SELECT * FROM captures WHERE rowid IN ("
            "  SELECT rowid FROM captures WHERE key = :key"
            "  UNION ALL SELECT rowid FROM captures WHERE key IN (:canonical, :url) AND canonical_url = key"
            "  UNION ALL SELECT rowid FROM captures WHERE canonical_url IN (:canonical, :url) AND canonical_url <> key"
            "  UNION ALL SELECT rowid FROM captures WHERE url = :url AND url <> canonical_url"
            "  UNION ALL SELECT rowid FROM captures WHERE final_url = :url AND final_url <> url"
            ") AND (key = :key OR canonical_url = :canonical OR url = :url OR final_url = :url) "
            "ORDER BY id DESC LIMIT 1", {"key": key, "canonical": canonical, "url": url}).fetchone()

    def capture_records(self, capture_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            'SELECT seq, record_id, type, uri, "offset", length, http_status, content_type, payload_digest '
            
            "FROM records WHERE capture_id = ? ORDER BY seq", (capture_id,))]

    def capture_outlinks(self, capture_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT url, text FROM outlinks WHERE capture_id = ? ORDER BY rowid", (capture_id,))]

    def captures_of_key(self, key: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT id, status, started_at, warc_path FROM captures WHERE key = ? ORDER BY id", (key,))]

    def children(self, capture_id: str) -> list[dict[str, Any]]:
        """Evidence this capture references, each with the state of its newest job and capture."""
        return [dict(r) for r in self.conn.execute(
            "SELECT r.url, r.key, r.kind, r.found_in, r.source, r.via, "
            "  (SELECT j.id FROM jobs j WHERE j.key = r.key ORDER BY j.id DESC LIMIT 1) AS job_id, "
            "  (SELECT j.state FROM jobs j WHERE j.key = r.key ORDER BY j.id DESC LIMIT 1) AS job_state, "
            "  (SELECT c.id FROM captures c WHERE c.key = r.key ORDER BY c.id DESC LIMIT 1) AS capture_id, "
            "  (SELECT c.status FROM captures c WHERE c.key = r.key ORDER BY c.id DESC LIMIT 1) AS capture_status "
            "FROM refs r WHERE r.capture_id = ? ORDER BY r.rowid", (capture_id,))]

    def captured_ok(self, key: str) -> bool:
        """Whether a complete capture of this item is already held."""
        return self.conn.execute("SELECT 1 FROM captures WHERE key = ? AND status = 'ok' LIMIT 1",
                                 (key,)).fetchone() is not None

    def referenced_by(self, key: str) -> list[dict[str, Any]]:
        """Captures that reference this item: where it was found."""
        return [dict(r) for r in self.conn.execute(
            "SELECT r.capture_id, c.url, r.found_in, c.started_at FROM refs r JOIN captures c ON c.id = r.capture_id "
            "WHERE r.key = ? ORDER BY r.capture_id", (key,))]

    def tweet_of(self, capture_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM tweets WHERE capture_id = ?", (capture_id,)).fetchone()
        return dict(row) if row else None

    def video_of(self, capture_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM videos WHERE capture_id = ?", (capture_id,)).fetchone()
        return dict(row) if row else None

    def search(self, query: str, limit: int | None = 50, before: str | None = None
               ) -> tuple[str, Iterator[dict[str, Any]]]:
        """Full-text search over title and visible text, newest first: (the FTS5 query run, its hits). The
        query is FTS5 syntax; one FTS5 cannot parse is searched as plain words. Hits come straight off the
        full-text index in rowid (= ID) order, so the first page costs the same for a word in every capture as
        for a rare one. ``before``: hits older than this capture ID (the last one of the page before).
        Snippets: ``snippets``, given the texts (readback.py reads them from the WARCs)."""
        bound = self._rowid_before(before) if before else None
        sql = search_sql("captures_fts MATCH ?", bound, limit)
        params: list[Any] = [] if bound is None else [bound]
        try:
            cursor = self.conn.execute(sql, [query, *params])
            first = cursor.fetchone()
        except sqlite3.OperationalError:
            # Not valid FTS5 syntax (an unbalanced quote, a stray operator): search for the words literally.
            query = literal_query(query)
            cursor = self.conn.execute(sql, [query, *params])
            first = cursor.fetchone()

        def rows() -> Iterator[dict[str, Any]]:
            row = first
            while row is not None:
                yield dict(row)
                row = cursor.fetchone()
        return query, rows()

    def tallies(self) -> dict[str, int]:
        """Jobs and timestamps by state, and captures: ``{"jobs:queued": n, ..., "captures": n}`` (schema 6's
        tallies, kept by triggers: constant time at any size)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT name, n FROM tallies")}

    def check_cursor(self, capture_id: str) -> str:
        """A ``--before`` cursor: a capture ID the index holds, or any ULID (a capture since deleted from a copy,
        or not yet made). Raises ``UserError`` for anything else."""
        if self.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone():
            return capture_id
        if fts_key(capture_id.upper()) is None:
            raise UserError(f"--before {capture_id!r}: not a capture ID (give the ID of the last one shown: the "
                            f"next page starts after it)")
        return capture_id.upper()

    def _rowid_before(self, capture_id: str) -> int:
        capture_id = self.check_cursor(capture_id)
        row = self.conn.execute("SELECT rowid FROM captures WHERE id = ?", (capture_id,)).fetchone()
        return row[0] if row is not None else fts_key(capture_id)

    def snippets(self, query: str, docs: list[tuple[int, str | None, str | None]]) -> dict[int, str]:
        """FTS5's snippet of each (rowid, title, text) for ``query``, as the full-text index would give it had it
        kept the text: the few documents go into a temporary FTS5 table with the same tokenizer."""
        return fts5_snippets(self.conn, query, docs)

    def text_record(self, capture_id: str) -> dict[str, Any] | None:
        """The capture's last urn:text: record: exactly the text the full-text index holds for it."""
        row = self.conn.execute(
            'SELECT seq, type, uri, "offset", length, payload_digest FROM records WHERE capture_id = ? '
            
            "AND type = 'resource' AND uri LIKE 'urn:text:%' ORDER BY seq DESC LIMIT 1", (capture_id,)).fetchone()
        return dict(row) if row else None

    # ---- items, checks, timelines ---------------------------------------------------------------------

    def list_items(self, *, state: str, since: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Items in a state (gone, unreachable, changed...), with the evidence held: newest state first.

        For "changed", every item that changed (since ``since``) is listed, also those re-captured since:
        what an investigator asks is "what changed", not only "what is different right now"."""
        held = ("(SELECT COUNT(*) FROM captures c WHERE c.key = i.key AND c.status = 'ok') AS ok_captures, "
                "(SELECT COUNT(*) FROM checks k WHERE k.key = i.key) AS check_count, "
                "(SELECT MIN(c.started_at) FROM captures c WHERE c.key = i.key) AS first_captured")
        params: list[Any] = []
        if state == "changed":
            sql = (f"SELECT i.*, t.last_change AS changed_at, t.changes, {held} FROM items i JOIN ("
                   "SELECT key, MAX(at) AS last_change, COUNT(*) AS changes FROM transitions "
                   "WHERE state_after = 'changed'" + (" AND at >= ?" if since else "") +
                   " GROUP BY key) t ON t.key = i.key ORDER BY t.last_change DESC")
            params += [since] if since else []
        else:
            sql = f"SELECT i.*, {held} FROM items i WHERE i.state = ?" + (" AND i.state_since >= ?" if since else "")
            sql += " ORDER BY i.state_since DESC"
            params += [state] + ([since] if since else [])
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [dict(r) for r in self.conn.execute(sql, params)]

    def item(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def timeline(self, key: str) -> list[dict[str, Any]]:
        """Captures, checks and state transitions of one item, oldest first."""
        events: list[dict[str, Any]] = []
        for r in self.conn.execute("SELECT id, started_at, status, failure_class, http_status FROM captures "
                                   "WHERE key = ?", (key,)):
            events.append({"at": r["started_at"], "event": "capture", "capture_id": r["id"], "result": r["status"],
                           "class": r["failure_class"], "http_status": r["http_status"]})
        for r in self.conn.execute("SELECT id, checked_at, result, result_class, http_status, fingerprint, "
                                   "state_after, job_id, message FROM checks WHERE key = ?", (key,)):
            events.append({"at": r["checked_at"], "event": "check", "check_id": r["id"], "result": r["result"],
                           "class": r["result_class"], "http_status": r["http_status"],
                           "fingerprint": r["fingerprint"], "state": r["state_after"], "job_id": r["job_id"],
                           "message": r["message"]})
        for r in self.conn.execute("SELECT at, state_before, state_after, state_class, source, check_id, capture_id "
                                   "FROM transitions WHERE key = ?", (key,)):
            events.append({"at": r["at"], "event": "transition", "from": r["state_before"], "to": r["state_after"],
                           "class": r["state_class"], "source": r["source"], "check_id": r["check_id"],
                           "capture_id": r["capture_id"]})
        order = {"capture": 0, "check": 0, "transition": 1}
        return sorted(events, key=lambda e: (e["at"], order[e["event"]]))

    def all_captures_for_verify(self, ids: list[str] | None = None, page: int = 500) -> Iterator[dict[str, Any]]:
        """The captures to verify (the named ones, or all in id order), with only what verify reads of them: a
        page at a time by id, each page its own short read, so memory and the WAL stay small at any size."""
        if ids:
            yield from (self.find_capture(i) for i in ids)
            return
        after = ""
        while rows := self.conn.execute(
                "SELECT id, job_id, url, finished_at, warc_path, warc_sha256, warc_size, warc_store, warc_version "
                "FROM captures WHERE id > ? ORDER BY id LIMIT ?", (after, page)).fetchall():
            yield from (without_local_place(dict(r)) for r in rows)
            after = rows[-1]["id"]


def fts5_snippets(conn: sqlite3.Connection, query: str, docs: list[tuple[int, str | None, str | None]]
                  ) -> dict[int, str]:
    """FTS5's snippets of (rowid, title, text) documents for an FTS5 ``query``, through a temporary FTS5 table on
    ``conn`` (any SQLite connection: PostgreSQL's engine uses one in memory, so snippets read the same)."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.snippets USING fts5(title, text, "
                 "tokenize='unicode61 remove_diacritics 2')")
    conn.execute("DELETE FROM temp.snippets")
    conn.executemany("INSERT INTO temp.snippets (rowid, title, text) VALUES (?, ?, ?)", docs)
    return {r[0]: r[1] for r in conn.execute(
        "SELECT rowid, snippet(snippets, -1, '[', ']', '…', 16) FROM temp.snippets WHERE snippets MATCH ?",
        (query,))}


def _notice(message: str) -> None:
    """A line for the person waiting (a schema upgrade), on stderr: stdout may be a script's JSON."""
    print(f"archiver: {message}", file=sys.stderr, flush=True)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("rowid", None)
    for field in ("tags", "provenance", "options"):
        if isinstance(row.get(field), str):
            row[field] = json.loads(row[field])
    return row


def search_sql(match: str, bound: int | None, limit: int | None) -> str:
    """The query behind ``search`` on either engine, given the engine's full-text condition on ``captures_fts``
    (one ``?`` for the query): hits straight off the full-text index in rowid (= ID) order, joined to their
    captures; a second ``?`` for ``bound`` (hits older than that rowid) when it is given."""
    return ("SELECT c.rowid, c.id, c.url, c.title, c.status, c.started_at, c.warc_path, c.warc_store, "
            "c.warc_version FROM ("
            f"SELECT rowid FROM captures_fts WHERE {match}"
            + (" AND rowid < ?" if bound is not None else "") + " ORDER BY rowid DESC"
            + (f" LIMIT {int(limit)}" if limit is not None else "") + ") f "
            "JOIN captures c ON c.rowid = f.rowid ORDER BY f.rowid DESC")


def literal_query(query: str) -> str:
    """A query neither engine's parser reads, as its words searched literally (each a quoted phrase)."""
    literal = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
    if not literal:
        raise UserError("empty search query")
    return literal


def without_local_place(row: dict[str, Any]) -> dict[str, Any]:
    """A capture row without schema 7's place columns when they are empty (a WARC in <archive>/warcs): what
    show --json prints of a local capture stays as it was; ``row.get("warc_store")`` reads either."""
    for name in ("warc_store", "warc_version"):
        if row.get(name, "") is None:
            del row[name]
    return row


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would COMMIT the surrounding transaction)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
