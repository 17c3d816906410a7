"""The SQLite index: schema, migrations, writes of sealed captures, and the queries behind list/show/search.

The index is a view of the WARCs (design.md principle 1): every capture row is derived from a sealed WARC
whose provenance record holds the same facts. It opens in Datasette as it is.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from . import items, ledger
from .errors import BadURL, NotFound, UserError
from .urls import normalise, parse as parse_url

SCHEMA_VERSION = 5


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
]


class Index:
    """One connection to ``<archive>/index.db``. Cheap to open; open one per process or thread."""

    def __init__(self, path: Path, unreachable_gone: tuple[int, float] = (4, 24.0)):
        self.path = path
        # How many unreachable observations, over how many hours, make an item gone (settings [watch]).
        self.unreachable_gone = unreachable_gone
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the lock up front and
        # waits (busy_timeout) instead of failing half-way with "database is locked".
        self.conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed index row survives power loss, as the sealed file it describes does.
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that holds the write lock from its start."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.path} has schema version {version}, newer than this archiver "
                            f"({SCHEMA_VERSION}); upgrade archiver")
        if version == SCHEMA_VERSION:
            return
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
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

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
        # sqlite-utils keeps captures_fts in step with captures through triggers; Datasette finds it by name.
        self.db["captures"].enable_fts(["title", "text"], fts_version="FTS5", create_triggers=True,
                                       tokenize="unicode61 remove_diacritics 2", replace=True)

    # ---- writes -------------------------------------------------------------------------------------

    def insert_capture(self, capture: dict[str, Any], records: list[dict[str, Any]],
                       outlinks: list[dict[str, str]]) -> None:
        """Insert one sealed capture with its records and outlinks. Call inside ``transaction()``."""
        row = dict(capture)
        for field in ("tags", "provenance"):
            if not isinstance(row.get(field), str):
                row[field] = json.dumps(row.get(field) or ([] if field == "tags" else {}), ensure_ascii=False)
        columns = ", ".join(row)
        self.conn.execute(f"INSERT INTO captures ({columns}) VALUES ({', '.join('?' * len(row))})",
                          list(row.values()))
        self.conn.executemany(
            "INSERT INTO records (capture_id, seq, record_id, type, uri, offset, length, http_status, "
            "content_type, payload_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(capture["id"], r["seq"], r["record_id"], r["type"], r["uri"], r["offset"], r["length"],
              r.get("http_status"), r.get("content_type"), r.get("payload_digest")) for r in records])
        self.conn.executemany("INSERT INTO outlinks (capture_id, url, text) VALUES (?, ?, ?)",
                              [(capture["id"], o["url"], o.get("text")) for o in outlinks])
        provenance = capture.get("provenance") if isinstance(capture.get("provenance"), dict) else json.loads(row["provenance"])
        self._insert_platform_rows(capture["id"], provenance)
        items.observe_capture(self.conn, capture, provenance, self.unreachable_gone)

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

    def list_captures(self, *, tag: str | None = None, kind: str | None = None, status: str | None = None,
                      since: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if tag:
            where.append("EXISTS (SELECT 1 FROM json_each(captures.tags) WHERE value = ?)")
            params.append(tag)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if status:
            where.append("status = ?")
            params.append(status)
        if since:
            where.append("started_at >= ?")
            params.append(since)
        sql = ("SELECT id, url, final_url, kind, method, status, failure_class, http_status, title, started_at, "
               "finished_at, warc_path, warc_sha256, warc_size, record_count, tags, requested_by FROM captures")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_decode(dict(r)) for r in self.conn.execute(sql, params)]

    def find_capture(self, ident: str) -> dict[str, Any]:
        """A capture by ID (or unique ID prefix), or the newest capture of a URL."""
        row = self.conn.execute("SELECT * FROM captures WHERE id = ?", (ident,)).fetchone()
        if row is None and len(ident) >= 6 and "/" not in ident:
            rows = self.conn.execute("SELECT * FROM captures WHERE id LIKE ? LIMIT 2", (ident.upper() + "%",)).fetchall()
            if len(rows) == 1:
                row = rows[0]
        if row is None and "://" in ident:
            try:
                key = parse_url(ident).dedup_key  # any spelling of the same tweet or video finds it
            except BadURL:
                key = normalise(ident)
            row = self.conn.execute(
                "SELECT * FROM captures WHERE key = ? OR canonical_url = ? OR url = ? OR final_url = ? "
                "ORDER BY id DESC LIMIT 1", (key, normalise(ident), ident, ident)).fetchone()
        if row is None:
            raise NotFound(f"no capture with ID or URL {ident!r} (see `archiver list`)")
        return _decode(dict(row))

    def capture_records(self, capture_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT seq, record_id, type, uri, offset, length, http_status, content_type, payload_digest "
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

    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Full-text search over title and visible text, newest first, with a snippet of the match."""
        sql = ("SELECT c.id, c.url, c.title, c.status, c.started_at, "
               "snippet(captures_fts, -1, '[', ']', '…', 16) AS snippet "
               "FROM captures_fts JOIN captures c ON c.rowid = captures_fts.rowid "
               "WHERE captures_fts MATCH ? ORDER BY c.id DESC LIMIT ?")
        try:
            rows = self.conn.execute(sql, (query, limit)).fetchall()
        except sqlite3.OperationalError:
            # Not valid FTS5 syntax (an unbalanced quote, a stray operator): search for the words literally.
            quoted = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
            if not quoted:
                raise UserError("empty search query") from None
            rows = self.conn.execute(sql, (quoted, limit)).fetchall()
        return [dict(r) for r in rows]

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
                "SELECT id, job_id, warc_path, warc_sha256, warc_size FROM captures WHERE id > ? ORDER BY id LIMIT ?",
                (after, page)).fetchall():
            yield from (dict(r) for r in rows)
            after = rows[-1]["id"]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for field in ("tags", "provenance", "options"):
        if isinstance(row.get(field), str):
            row[field] = json.loads(row[field])
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
