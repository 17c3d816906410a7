"""The index: one interface (``Index``) for both engines, its version (``SCHEMA_VERSION``), writes of sealed captures,
and the queries behind list/show/search. Each engine's schema and migrations are its own module's
(``engines/sqlite.py``, ``engines/postgres.py``).

The index is a view of the WARCs (design.md principle 1): every capture row is derived from a sealed WARC
whose provenance record holds the same facts. The SQLite file opens in Datasette as it is. ``Index`` is the
embedded engine and holds the queries both engines share; ``engines/postgres.py`` (``PostgresIndex``) overrides what
PostgreSQL does its own way: connecting, its schema, transactions, full-text search. ``engines.open_index`` chooses.
"""
from __future__ import annotations

import json
import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from archiver.store import items
from archiver.errors import BadURL, NotFound, UserError
from archiver.store.engines import sqlite as sqlite_engine
from archiver.store.engines.sqlite import SQLiteConnection
from archiver.urls import normalise, parse as parse_url

SCHEMA_VERSION = 14
T = TypeVar("T")


def now_iso() -> str:
    """UTC time as fixed-width ISO 8601, so that text comparison in SQL is time comparison."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_after(seconds: float) -> str:
    ts = datetime.now(timezone.utc).timestamp() + seconds
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    # Whether several hosts share this index (team mode): then it records the archive's keys (custody/keys.py).
    shared = False

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
        """Bring index.db to SCHEMA_VERSION (engines/sqlite.py: its migrations, in one write transaction)."""
        sqlite_engine.migrate(self.conn, self.path)

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

    def _free_rowid(self, capture_id: str, table: str = "captures") -> int:
        """fts_key of the ID, or the next free rowid above it (two IDs of one millisecond can share their top
        bits); for an ID that is not a ULID, the next rowid after the largest (as SQLite would choose).
        ``table``: captures, or received_pages (whose rowids are made the same way)."""
        key = fts_key(capture_id)
        while key is not None and self.conn.execute(f"SELECT 1 FROM {table} WHERE rowid = ?", (key,)).fetchone():
            key = key + 1 if key < MAX_ROWID else None
        if key is None:
            key = self.conn.execute(f"SELECT COALESCE(MAX(rowid), 0) + 1 FROM {table}").fetchone()[0]
        return key

    def _index_text(self, rowid: int, title: str | None, text: str | None, fts: str = "captures_fts") -> None:
        """Title and visible text into the full-text index ``fts`` (captures_fts, contentless: the WARC keeps the
        text; or received_fts)."""
        self.conn.execute(f"INSERT INTO {fts} (rowid, title, text) VALUES (?, ?, ?)", (rowid, title, text))

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
        post = provenance.get("post")
        if post:
            self.conn.execute(
                "INSERT INTO posts (capture_id, platform, post_id, availability, author, author_name, text, "
                "posted_at, edited_at, lang, media_count, reply_to, quoted, url) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (capture_id, post["platform"], post["id"], post["availability"], post.get("author"),
                 post.get("author_name"), post.get("text"), post.get("posted_at"), post.get("edited_at"),
                 post.get("lang"), post.get("media_count"), post.get("reply_to"), post.get("quoted"),
                 post.get("url")))
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
        conditions = [("id < ?", before), (self.conn.sql_json_has("captures.tags"), tag), ("kind = ?", kind),
                      ("status = ?", status), ("started_at >= ?", since)]
        table = "captures"
        if since:
            # Walking the IDs down finds recent captures at once, but walks the whole table for an old --since
            # that few captures match; then the started_at index takes them directly (and sorts them: few).
            few = self.conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM captures WHERE started_at >= ? LIMIT 5000) AS recent",
                                    (since,)).fetchone()[0]
            if few < 5000:
                table = "captures" + self.conn.sql_indexed_by("captures_started")
        for row in self.listing(f"SELECT {self.LISTED} FROM {table}", conditions, "id DESC", limit):
            yield without_local_place(_decode(dict(row)))

    def listing(self, select: str, conditions: list[tuple[str, Any]], order: str, limit: int | None
                ) -> Iterator[Any]:
        """Rows of ``select`` where every condition whose value is given holds (each a ``?`` for that value), in
        ``order``, at most ``limit``: streamed when the read is large (``unbounded``)."""
        given = [(sql, value) for sql, value in conditions if value]
        sql = select + (" WHERE " + " AND ".join(c for c, _ in given) if given else "") + f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        yield from (self.conn.stream if unbounded(limit) else self.conn.execute)(sql, [v for _, v in given])

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

    def post_of(self, capture_id: str) -> dict[str, Any] | None:
        """The post a capture holds (Mastodon, Bluesky, Telegram...: ``posts``), or None."""
        row = self.conn.execute("SELECT * FROM posts WHERE capture_id = ?", (capture_id,)).fetchone()
        return dict(row) if row else None

    def video_of(self, capture_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM videos WHERE capture_id = ?", (capture_id,)).fetchone()
        return dict(row) if row else None

    def search(self, query: str, limit: int | None = 50, before: str | None = None, table: str = "captures"
               ) -> tuple[str, Iterator[dict[str, Any]]]:
        """Full-text search over title and visible text, newest first: (the FTS5 query run, its hits). The
        query is FTS5 syntax; one FTS5 cannot parse is searched as plain words. Hits come straight off the
        full-text index in rowid (= ID) order, so the first page costs the same for a word in every capture as
        for a rare one. ``before``: hits older than this capture ID (the last one of the page before).
        Snippets: ``snippets``, given the texts (readback.py reads them from the WARCs). ``table``: captures, or
        received_pages (the pages of files received from others: store/received.py)."""
        bound = self._rowid_before(before, table) if before else None
        sql = search_sql("{fts} MATCH ?", bound, limit, table)
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
        """A ``--before`` cursor: a capture ID the index holds, or any ULID (a received page's ID, a capture since
        deleted from a copy, or not yet made). Raises ``UserError`` for anything else."""
        if self.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone():
            return capture_id
        if fts_key(capture_id.upper()) is None:
            raise UserError(f"--before {capture_id!r}: not a capture ID (give the ID of the last one shown: the "
                            f"next page starts after it)")
        return capture_id.upper()

    def _rowid_before(self, capture_id: str, table: str = "captures") -> int:
        capture_id = self.check_cursor(capture_id)
        row = self.conn.execute(f"SELECT rowid FROM {table} WHERE id = ?", (capture_id,)).fetchone()
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


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("rowid", None)
    for field in ("tags", "provenance", "options"):
        if isinstance(row.get(field), str):
            row[field] = json.loads(row[field])
    return row


# Past this many rows a read is streamed (``conn.stream``: a server-side cursor on PostgreSQL) rather than fetched whole.
STREAM_PAST = 1000


def unbounded(limit: int | None) -> bool:
    """Whether a read of at most ``limit`` rows (None: all) is one to stream."""
    return limit is None or limit > STREAM_PAST


# What a search hit holds, by the table searched; and that table's full-text index.
_HIT_COLUMNS = {
    "captures": "c.status, c.started_at, c.warc_path, c.warc_store, c.warc_version",
    # A received page: its status is "received" (never ok/partial/failed: those are our captures'), its time the
    # other tool's; the text is kept in the row, for the snippet.
    "received_pages": "'received' AS status, c.captured_at AS started_at, c.receipt_id, c.text",
}
_FTS_OF = {"captures": "captures_fts", "received_pages": "received_fts"}


def search_sql(match: str, bound: int | None, limit: int | None, table: str = "captures") -> str:
    """The query behind ``search`` on either engine, given the engine's full-text condition (one ``?`` for the
    query; ``{fts}`` stands for the full-text table): hits straight off the full-text index in rowid (= ID)
    order, joined to their rows in ``table`` (captures or received_pages); a second ``?`` for ``bound`` (hits
    older than that rowid) when it is given."""
    fts = _FTS_OF[table]
    return (f"SELECT c.rowid, c.id, c.url, c.title, {_HIT_COLUMNS[table]} FROM ("
            f"SELECT rowid FROM {fts} WHERE {match.format(fts=fts)}"
            + (" AND rowid < ?" if bound is not None else "") + " ORDER BY rowid DESC"
            + (f" LIMIT {int(limit)}" if limit is not None else "") + ") f "
            f"JOIN {table} c ON c.rowid = f.rowid ORDER BY f.rowid DESC")


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
