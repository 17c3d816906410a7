"""The SQLite engine, the embedded default: its connection (sqlite3's own, rows are ``sqlite3.Row``) with the few
pieces of SQL that SQLite spells its own way, and its schema -- the migrations that bring an index.db of any earlier
version to ``index.SCHEMA_VERSION``, in one write transaction. The queries both engines share are
``archiver.store.index.Index``'s; PostgreSQL's engine is ``postgres.py``."""
from __future__ import annotations

import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from archiver.custody import ledger
from archiver.errors import UserError


class SQLiteConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=SQLiteConnection)``: execute, executemany and rows exactly as sqlite3 gives
    them, plus the dialect methods every engine's connection has (archiver/store/engines/__init__.py)."""

    @staticmethod
    def sql_indexed_by(index: str) -> str:
        """Force an index where SQLite's planner, without statistics, would walk another."""
        return f" INDEXED BY {index}"

    @staticmethod
    def sql_json_has(column: str) -> str:
        """A condition: the JSON array in ``column`` holds the string bound to the one ``?`` it contains."""
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)"

    @staticmethod
    def sql_json_text(column: str, key: str) -> str:
        """The text of top-level ``key`` of the JSON object in ``column``."""
        return f"json_extract({column}, '$.{key}')"

    def stream(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """The rows of a read that may return any number of them: sqlite3's cursor steps through them as they are
        read, holding one at a time."""
        return self.execute(sql, params)

    # BEGIN IMMEDIATE already holds the one write lock: claims and ledger appends need nothing more.
    sql_skip_locked = ""

    def lock_ledger(self) -> None:
        """Serialize ledger appends: the write transaction (BEGIN IMMEDIATE) already does, on SQLite."""

    def lock_politeness(self) -> None:
        """Serialize claims under per-host limits: the write transaction already does, on SQLite."""

    def notify_jobs(self) -> None:
        """Wake idle runners: on SQLite they poll (queue.poll_seconds)."""


# ---- the schema ------------------------------------------------------------------------------------------------

# The triggers that keep the timestamps' tallies (schema 6), made again when schema 13 rebuilds the table.
TIMESTAMPS_TALLY_TRIGGERS = """
    CREATE TRIGGER timestamps_tally_insert AFTER INSERT ON timestamps
    BEGIN UPDATE tallies SET n = n + 1 WHERE name = 'timestamps:' || new.state; END;
    CREATE TRIGGER timestamps_tally_update AFTER UPDATE OF state ON timestamps WHEN new.state IS NOT old.state
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'timestamps:' || old.state;
          UPDATE tallies SET n = n + 1 WHERE name = 'timestamps:' || new.state; END;
    CREATE TRIGGER timestamps_tally_delete AFTER DELETE ON timestamps
    BEGIN UPDATE tallies SET n = n - 1 WHERE name = 'timestamps:' || old.state; END;
"""

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
    # make the new tables; migrate_to_6 fills them, in the same transaction.
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
    """ + TIMESTAMPS_TALLY_TRIGGERS,
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
    # 9: the archive's keys, by fingerprint (team mode, custody/keys.py): recorded by the first host that creates or
    # uses them, so that a host with another key (or none: an empty keys/) refuses to sign instead of signing the
    # archive's captures with a key of its own. Written once, never changed: a row is the archive's key.
    """
    CREATE TABLE archive_keys (
        name TEXT PRIMARY KEY,             -- archive (Ed25519: signs captures) | wacz (ECDSA P-384: signs exports)
        algorithm TEXT NOT NULL,
        fingerprint TEXT NOT NULL,         -- sha256:<hex>, as `archiver key` prints it
        recorded_at TEXT NOT NULL,
        host TEXT NOT NULL                 -- where it was recorded: the host to copy keys/ from
    );
    CREATE TRIGGER archive_keys_update BEFORE UPDATE ON archive_keys
    BEGIN SELECT RAISE(ABORT, 'an archive key is recorded once: it cannot be changed'); END;
    CREATE TRIGGER archive_keys_delete BEFORE DELETE ON archive_keys
    BEGIN SELECT RAISE(ABORT, 'an archive key is recorded once: it cannot be deleted'); END;
    """,
    # 10: the changes of state to "changed": `list --changed` and the workbench's dashboard group them by item,
    # newest first, and without this each read the whole transitions table (1.3 s at a million captures, ~900 000
    # transitions, where every other read command takes under 0.2 s). Partial, so it holds only those; by (key,
    # at), so it covers the grouping and SQLite's planner takes it over transitions_key.
    """
    CREATE INDEX transitions_changed ON transitions(key, at) WHERE state_after = 'changed';
    """,
    # 11: posts of the platforms captured by their own answers beyond X (Mastodon, Bluesky, Telegram...), one row
    # per capture, derived from provenance["post"] like tweets from provenance["tweet"] (reindex rebuilds it).
    # One table for all of them, so that `search --author`, `show` and the workbench read one shape; what is a
    # platform's own (Bluesky labels, a Mastodon edit history, Telegram views) stays in the provenance record.
    """
    CREATE TABLE posts (
        capture_id TEXT PRIMARY KEY REFERENCES captures(id),
        platform TEXT NOT NULL,            -- the key's prefix: mastodon, bluesky, telegram...
        post_id TEXT NOT NULL,             -- the key's id part: <host>/<id>, <did>/<rkey>, <channel>/<id>
        availability TEXT NOT NULL,        -- available | deleted | suspended | not-found | withheld | ...
        author TEXT,                       -- the handle as the platform spells it (user@host, handle, channel)
        author_name TEXT,                  -- the display name
        text TEXT,                         -- the post's text as plain text
        posted_at TEXT,                    -- ISO 8601, as the platform says
        edited_at TEXT,
        lang TEXT,
        media_count INTEGER,
        reply_to TEXT,                     -- the URL or id of the post it answers, if any
        quoted TEXT,                       -- the URL or id of the post it quotes, if any
        url TEXT                           -- where the post is shown on the web
    );
    CREATE INDEX posts_post_id ON posts(platform, post_id);
    CREATE INDEX posts_author ON posts(author);
    """,
    # 12: files received from others (archiver receive: a partner's WACZ, a wget WARC...), kept as received beside
    # our captures and never confused with them. One row per distinct file (by SHA-256); each handing-over is a
    # `received` ledger entry. The file's receipt is also written beside it (``<key>.receipt.json``), so that
    # reindex can rebuild this table from the store alone. ``path`` below says received/YYYY/MM/DD/<id>.<format>:
    # files received since are keyed by their SHA-256 instead, received/<xx>/<sha256>.<format> (exchange/receive.py
    # says why); those received before keep their keys, and the row names each. (The SQL is left as it was made:
    # an old migration is never changed.)
    """
    CREATE TABLE receipts (
        id TEXT PRIMARY KEY,               -- a ULID, like a capture ID
        sha256 TEXT NOT NULL UNIQUE,       -- of the file as received (hex)
        size INTEGER NOT NULL,
        format TEXT NOT NULL,              -- warc | warc.gz | wacz
        original_name TEXT NOT NULL,       -- the file's name as handed over
        received_from TEXT NOT NULL,       -- who handed it over, as typed
        received_by TEXT NOT NULL,         -- who took it in
        received_at TEXT NOT NULL,
        note TEXT,
        tags TEXT NOT NULL DEFAULT '[]',   -- JSON array
        path TEXT NOT NULL,                -- its key in the store: received/YYYY/MM/DD/<id>.<format>
        store TEXT,                        -- the store's URL; NULL: under the archive directory
        version TEXT,                      -- the object version in a store that keeps them
        checks TEXT NOT NULL               -- JSON: what was found on receipt (digests, versions, software, WACZ)
    );
    CREATE INDEX receipts_received_at ON receipts(received_at);
    CREATE TRIGGER receipts_update BEFORE UPDATE ON receipts
    BEGIN SELECT RAISE(ABORT, 'a receipt is recorded once: it cannot be changed'); END;
    CREATE TRIGGER receipts_delete BEFORE DELETE ON receipts
    BEGIN SELECT RAISE(ABORT, 'a receipt is recorded once: it cannot be deleted'); END;
    """,
    # 13: the pages of received files (a WACZ's pages.jsonl, else each HTML response), searchable beside our
    # captures and never confused with them: a table of their own, and a full-text index of their own whose rowids
    # are made as the captures' are (fts_key), so that search and list merge the two newest first. The text is kept
    # (a received file is read once, on receipt; reading it back for a snippet would mean reading a crawl again).
    # Derived from the received file alone: reindex rebuilds these rows by reading it again.
    """
    CREATE TABLE received_pages (
        rowid INTEGER PRIMARY KEY,         -- fts_key(id), or the next free: rowid order is ID order
        id TEXT NOT NULL UNIQUE,           -- a ULID: the receipt's ID plus seq (received.page_id)
        receipt_id TEXT NOT NULL REFERENCES receipts(id),
        seq INTEGER NOT NULL,              -- the page's place in the file: 1, 2...
        url TEXT NOT NULL,
        captured_at TEXT,                  -- when the other tool captured it, as the file says (UTC)
        http_status INTEGER,
        content_type TEXT,
        title TEXT,
        warc TEXT NOT NULL,                -- the WARC holding it; in a WACZ, its path inside the zip
        "offset" INTEGER NOT NULL,         -- its response record's offset in that WARC; -1: listed, no record
        text_source TEXT NOT NULL,         -- package (the WACZ's own text) | html (extracted here) | none
        text TEXT                          -- the visible text indexed (at most 100 000 characters)
    );
    CREATE INDEX received_pages_receipt ON received_pages(receipt_id, seq);
    CREATE INDEX received_pages_url ON received_pages(url);
    CREATE VIRTUAL TABLE received_fts USING fts5(title, text, tokenize='unicode61 remove_diacritics 2',
                                                  content='');
    CREATE TRIGGER received_pages_update BEFORE UPDATE ON received_pages
    BEGIN SELECT RAISE(ABORT, 'a received page is recorded once: it cannot be changed'); END;
    CREATE TRIGGER received_pages_delete BEFORE DELETE ON received_pages
    BEGIN SELECT RAISE(ABORT, 'a received page is recorded once: it cannot be deleted'); END;
    """,
    # 14: RFC 3161 timestamps of receipts too (issue 15): a receipt file names the received file's SHA-256, who
    # handed it over, who took it in and when, so one token dates all of that. A row is of one capture or of one
    # receipt, never both; the rest (states, retries, tallies, tokens beside the file) is as for captures.
    # SQLite cannot drop a NOT NULL in place, so the table is rebuilt with the same ids (foreign keys are off
    # during migrations) and its indexes and tally triggers, which went with the old table, are made again. The
    # rows copied are counted already: the new table has no triggers while they are copied.
    """
    CREATE TABLE timestamps_v14 (
        id INTEGER PRIMARY KEY,
        capture_id TEXT REFERENCES captures(id),   -- the capture whose sealed WARC is timestamped, or
        receipt_id TEXT REFERENCES receipts(id),   -- the receipt whose <key>.receipt.json is
        tsa_url TEXT NOT NULL,
        digest TEXT NOT NULL,              -- the SHA-256 (hex) sent: the sealed WARC's, or the receipt file's
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        token_path TEXT,                   -- beside the WARC (relative to the archive) or the receipt (its key)
        token_sha256 TEXT,
        gen_time TEXT,                     -- the time the TSA vouches for (UTC)
        serial TEXT,
        tsa_name TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (capture_id, tsa_url),
        UNIQUE (receipt_id, tsa_url),
        CHECK ((capture_id IS NULL) <> (receipt_id IS NULL))
    );
    INSERT INTO timestamps_v14 (id, capture_id, tsa_url, digest, state, token_path, token_sha256, gen_time, serial,
        tsa_name, attempts, next_attempt_at, last_error, created_at, updated_at)
        SELECT id, capture_id, tsa_url, digest, state, token_path, token_sha256, gen_time, serial, tsa_name, attempts,
        next_attempt_at, last_error, created_at, updated_at FROM timestamps;
    DROP TABLE timestamps;
    ALTER TABLE timestamps_v14 RENAME TO timestamps;
    CREATE INDEX timestamps_due ON timestamps(state, next_attempt_at);
    """ + TIMESTAMPS_TALLY_TRIGGERS,
]

# Migration 6, once migrate_to_6 has filled the new tables: they take the old ones' places.
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


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on any exception (as ``Index.transaction``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the SQLite index at ``path`` (open on ``conn``) to SCHEMA_VERSION, in one write transaction; UserError
    for a file newer than this archiver."""
    from archiver.store.index import SCHEMA_VERSION
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise UserError(f"{path} has schema version {version}, newer than this archiver "
                        f"({SCHEMA_VERSION}); upgrade archiver")
    if version == SCHEMA_VERSION:
        return
    # Migration 6 replaces tables that others reference. Foreign keys cannot be switched off inside a
    # transaction, so they are off for the migration's (every row it copies keeps its key) and on after it.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with _write_transaction(conn):
            # Re-read under the lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in split_sql(MIGRATIONS[number]):
                    conn.execute(statement)
                if number == 0:
                    enable_fts(conn)
                if number == 4:
                    backfill_ledger(conn)
                if number == 5:
                    migrate_to_6(conn, path)
                conn.execute(f"PRAGMA user_version = {number + 1}")
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def backfill_ledger(conn: sqlite3.Connection) -> None:
    """Captures sealed before the ledger existed get one entry each, saying so, with the facts the sealed
    file had when the ledger began (so later changes to them still show)."""
    for row in conn.execute("SELECT id, job_id, url, warc_path, warc_sha256, warc_size, status, "
                            "finished_at FROM captures ORDER BY id").fetchall():
        ledger.append(conn, "backfilled", capture_id=row["id"], job_id=row["job_id"], url=row["url"],
                      detail={"warc_path": row["warc_path"], "warc_sha256": row["warc_sha256"],
                              "warc_size": row["warc_size"], "status": row["status"],
                              "sealed_at": row["finished_at"]})


def enable_fts(conn: sqlite3.Connection) -> None:
    # Schema 1's full-text index, as sqlite-utils' enable_fts made it (content in captures, kept in step by
    # triggers); migration 6 replaces it.
    conn.execute('CREATE VIRTUAL TABLE "captures_fts" USING FTS5 ("title", "text", '
                 'tokenize=\'unicode61 remove_diacritics 2\', content="captures")')
    conn.execute('CREATE TRIGGER "captures_ai" AFTER INSERT ON "captures" BEGIN INSERT INTO "captures_fts" '
                 '(rowid, "title", "text") VALUES (new.rowid, new."title", new."text"); END')
    conn.execute('CREATE TRIGGER "captures_ad" AFTER DELETE ON "captures" BEGIN INSERT INTO "captures_fts" '
                 '("captures_fts", rowid, "title", "text") VALUES(\'delete\', old.rowid, old."title", '
                 'old."text"); END')
    conn.execute('CREATE TRIGGER "captures_au" AFTER UPDATE ON "captures" BEGIN INSERT INTO "captures_fts" '
                 '("captures_fts", rowid, "title", "text") VALUES(\'delete\', old.rowid, old."title", '
                 'old."text"); INSERT INTO "captures_fts" (rowid, "title", "text") VALUES (new.rowid, '
                 'new."title", new."text"); END')


def migrate_to_6(conn: sqlite3.Connection, path: Path) -> None:
    """Fill migration 6's tables from schema 5's, in the migration's one transaction: a kill at any point
    leaves the index at schema 5, as it was. Captures are copied in ID order, each with its rowid
    (fts_key, made strictly increasing) and its title and text indexed; the text and the provenance stay in
    the WARCs only. Prints its progress: on a million captures this takes minutes."""
    from archiver.store.index import fts_key, pack_digest, pack_record_id   # index.py imports this module
    total = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    say = _notice if total else (lambda message: None)
    started = time.monotonic()
    say(f"upgrading {path} to schema 6: {total:,} captures, in one transaction (if interrupted, the "
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
    for statement in split_sql(SCHEMA_6_AFTER):
        conn.execute(statement)
    free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    say(f"upgraded to schema 6 in {time.monotonic() - started:.0f} s; {free / 1e6:,.0f} MB of {path.name} "
        f"are free space now, which new captures reuse (`sqlite3 {path} VACUUM` would give it back to "
        f"the disk; it needs that much free disk space and holds the archive's write lock meanwhile)")


def _notice(message: str) -> None:
    """A line for the person waiting (a schema upgrade), on stderr: stdout may be a script's JSON."""
    print(f"archiver: {message}", file=sys.stderr, flush=True)


def split_sql(script: str) -> list[str]:
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
