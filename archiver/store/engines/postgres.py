"""The PostgreSQL engine (team mode, ``[index] url = "postgresql://…"``): several capture hosts share one index.

What it keeps from the SQLite engine: the same tables and columns (schema 6), the same SQL from every caller (the
connection below takes SQLite's ``?`` and ``:name`` placeholders), the same guarantees. How it keeps them:

- Write transactions (``Index.transaction()``) hold a transaction-scoped advisory lock from their start, as SQLite's
  BEGIN IMMEDIATE holds its write lock: appends to the ledger stay one hash chain, and ids given as MAX()+1 stay
  unique, under any number of writers on any number of hosts. Claims and lease renewals (``serial=False``) do not
  take it: a claim locks its job row with ``FOR UPDATE SKIP LOCKED``, so runners never wait on one another.
- UPDATE, DELETE and TRUNCATE of the evidence tables (ledger, captures, their records) are refused by triggers,
  for every role; the runner role (``archiver_runner``, when the database has one) is granted SELECT and INSERT,
  and UPDATE only on the tables whose rows change state (jobs, items, watches, timestamps, checks, host_slots).
- Search: a ``tsvector`` per capture with a GIN index, written from FTS5's own tokens (``fulltext.py``).
- A connection lost (the server restarted) is made again at the next statement. A read is retried on the new
  one; a write transaction is retried whole by ``Index.write`` when it had not reached COMMIT (the server rolled it
  back), and never when its COMMIT may have happened (``IndexUnavailable.commit_unknown``).
- Idle runners LISTEN on ``archiver_jobs``; queueing a job NOTIFYs it (at commit).

Credentials come from libpq (PGPASSWORD, ~/.pgpass, PGSERVICE), never from the settings (config.check_index_url).
"""
from __future__ import annotations

import functools
import re
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

from archiver.errors import IndexUnavailable, IntegrityConflict, UserError
from archiver.store import index as index_module
from archiver.store.engines import fulltext
from archiver.store.index import Index, fts5_snippets, literal_query, search_sql, unbounded

T = TypeVar("T")

# Advisory lock keys (pg_advisory_xact_lock(CLASS, n)): "arch" and what the lock serializes.
LOCK_CLASS = 0x61726368
LEDGER_LOCK = 1      # write transactions: the ledger's head, MAX()+1 ids (held like SQLite's write lock)
POLITE_LOCK = 2      # claims under per-host limits, which count the host's running jobs before taking one
SCHEMA_LOCK = 3      # creating or upgrading the schema
JOBS_CHANNEL = "archiver_jobs"
RUNNER_ROLE = "archiver_runner"
# Rows a server-side cursor (``PostgresConnection.stream``) fetches at a time: a reader of an unbounded result holds
# this many rows, whatever the archive's size.
STREAM_ROWS = 1000
# How long a statement or transaction waits for the server to come back (a restart) before giving up; and how long
# a command waits for it when it starts (a person at the terminal, a cron job: not a minute).
RECONNECT_SECONDS = 60.0
FIRST_CONNECT_SECONDS = 5.0


# ---- SQL: SQLite's placeholders to psycopg's ---------------------------------------------------------------------

_PIECES = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|::|\?|:[A-Za-z_][A-Za-z0-9_]*|%|[^'"?:%]+|.""", re.S)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite's ``?`` and ``:name`` placeholders as psycopg's ``%s`` and ``%(name)s``; a literal ``%`` doubled
    (psycopg reads it everywhere, quoted or not). Quoted strings and identifiers are left as they are."""
    out = []
    for piece in _PIECES.findall(sql):
        if piece == "?":
            out.append("%s")
        elif piece.startswith(":") and piece != "::" and len(piece) > 1:
            out.append(f"%({piece[1:]})s")
        elif piece.startswith("'"):
            out.append(piece.replace("%", "%%"))
        elif piece == "%":
            out.append("%%")
        else:
            out.append(piece)
    return "".join(out)


# ---- rows: by name and by position, as sqlite3.Row -----------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type:
    positions = {name: i for i, name in enumerate(names)}

    class Row(tuple):
        """A result row: ``row[0]``, ``row["name"]``, ``dict(row)``, unpacking, equality with a tuple."""
        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, positions[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(column.name for column in description))


class Cursor:
    """What ``execute`` returns: the rows fetched, and how many rows the statement changed."""

    def __init__(self, rows: list[Any], rowcount: int):
        self._rows = rows
        self._at = 0
        self.rowcount = rowcount
        self.lastrowid = None

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows = self._rows[self._at:self._at + size]
        self._at += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._at:]
        self._at = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row


def _lost(exc: BaseException, conn: psycopg.Connection | None) -> bool:
    """Whether an error means the connection is gone (server restarted or unreachable), not the statement."""
    return conn is None or conn.closed or conn.broken or isinstance(exc, pg_errors.AdminShutdown)


def _is_read(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in ("SELECT", "WITH", "SHOW") and " FOR UPDATE" not in sql.upper()


class PostgresConnection:
    """A psycopg connection that takes the SQL the SQLite engine takes (see ``translate``), returns rows that read
    like ``sqlite3.Row``, raises the engine-neutral ``IntegrityConflict`` and ``IndexUnavailable``, and makes itself
    again when the server went away. Autocommit outside the transactions ``begin`` starts, as sqlite3's
    ``isolation_level=None``."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.Connection | None = None
        self.in_transaction = False
        self._connect(time.monotonic() + FIRST_CONNECT_SECONDS, first=True)

    # -- connecting

    def _connect(self, deadline: float, first: bool = False) -> None:
        while True:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory,
                                             connect_timeout=10, application_name="archiver")
                return
            except psycopg.OperationalError as exc:
                if first and not _transient(exc):
                    raise IndexUnavailable(f"cannot connect to the index database {redact(self.url)}: "
                                           f"{_first_line(exc)}") from None
                if time.monotonic() >= deadline:
                    raise IndexUnavailable(f"the index database {redact(self.url)} is unreachable: "
                                           f"{_first_line(exc)}") from None
                time.sleep(0.5)

    def _ensure(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._close_quietly()
            self._connect(time.monotonic() + RECONNECT_SECONDS)
        assert self._conn is not None
        return self._conn

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def close(self) -> None:
        self._close_quietly()

    # -- statements

    def _in_use(self) -> psycopg.Connection:
        """The connection to send on: made again if lost, unless a transaction was open on the one lost (the server
        rolled it back: its statements cannot go on on another)."""
        if not self.in_transaction:
            return self._ensure()
        if self._conn is None or self._conn.closed or self._conn.broken:
            raise IndexUnavailable("the connection to the index database was lost; the change being made was not "
                                   "committed")
        return self._conn

    def executescript(self, sql: str) -> None:
        """Several statements as they are (no placeholders): the schema, in the caller's transaction."""
        try:
            self._in_use().execute(sql)  # type: ignore[arg-type]  (a script of our own, not user input)
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(f"the index database cannot be written: {_first_line(exc)}") from None

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        if isinstance(params, tuple):
            params = list(params)
        query = translate(sql)
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            conn = self._in_use()
            try:
                cur = conn.execute(query, params if params is not None else [])
                rows = cur.fetchall() if cur.description is not None else []
                return Cursor(rows, cur.rowcount)
            except (pg_errors.IntegrityError, pg_errors.RaiseException) as exc:
                raise IntegrityConflict(_first_line(exc)) from None
            except pg_errors.InsufficientPrivilege as exc:
                raise _refused(exc) from None
            except psycopg.OperationalError as exc:
                if not _lost(exc, conn):
                    raise IndexUnavailable(f"the index database cannot be used: {_first_line(exc)}") from None
                self._close_quietly()
                # Nothing of a read is lost by asking again; a write may have been done: never twice.
                if self.in_transaction or not _is_read(sql) or time.monotonic() >= deadline:
                    raise IndexUnavailable(f"the connection to the index database was lost "
                                           f"({_first_line(exc)}); the change being made was not committed") from None

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """The rows of a read that may return any number of them (``list --all``, ``search --all``), fetched
        STREAM_ROWS at a time from a server-side cursor, where ``execute`` fetches a result whole. The cursor lives in
        a read-only transaction on a connection of its own, so this one stays free for the reads and writes the
        caller makes meanwhile; closed when the rows are all read or the iterator is dropped."""
        if isinstance(params, tuple):
            params = list(params)
        try:
            conn = psycopg.connect(self.url, row_factory=_row_factory, connect_timeout=10,
                                   application_name="archiver-stream")
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(f"the index database {redact(self.url)} is unreachable: {_first_line(exc)}") from None
        try:
            conn.read_only = True
            with conn.cursor(name="archiver_stream") as cur:
                cur.itersize = STREAM_ROWS
                cur.execute(translate(sql), params)
                yield from cur
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(f"the index database cannot be read: {_first_line(exc)}") from None
        finally:
            conn.close()

    def executemany(self, sql: str, rows: Any) -> Cursor:
        rows = [list(r) if isinstance(r, tuple) else r for r in rows]
        if not rows:
            return Cursor([], 0)
        conn = self._in_use()
        try:
            with conn.cursor() as cur:
                cur.executemany(translate(sql), rows)
                return Cursor([], cur.rowcount)
        except (pg_errors.IntegrityError, pg_errors.RaiseException) as exc:
            raise IntegrityConflict(_first_line(exc)) from None
        except pg_errors.InsufficientPrivilege as exc:
            raise _refused(exc) from None
        except psycopg.OperationalError as exc:
            if _lost(exc, conn):
                self._close_quietly()
            raise IndexUnavailable(f"the index database cannot be written: {_first_line(exc)}") from None

    # -- transactions

    def begin(self, lock: int | None) -> None:
        """BEGIN, holding advisory lock ``lock`` (if any) to the end of the transaction. Nothing was sent before
        this, so a lost connection is made again and the BEGIN retried."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            conn = self._ensure()
            try:
                conn.execute("BEGIN")
                self.in_transaction = True
                if lock is not None:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, lock])
                return
            except psycopg.OperationalError as exc:
                self.in_transaction = False
                if not _lost(exc, conn) or time.monotonic() >= deadline:
                    raise IndexUnavailable(f"the index database cannot be used: {_first_line(exc)}") from None
                self._close_quietly()

    def commit(self) -> None:
        conn = self._conn
        try:
            assert conn is not None
            conn.execute("COMMIT")
        except psycopg.OperationalError as exc:
            self._close_quietly()
            raise IndexUnavailable(f"the connection to the index database was lost while committing "
                                   f"({_first_line(exc)}): the change may or may not have been made",
                                   commit_unknown=True) from None
        except (pg_errors.IntegrityError, pg_errors.RaiseException) as exc:
            raise IntegrityConflict(_first_line(exc)) from None
        finally:
            self.in_transaction = False

    def rollback(self) -> None:
        self.in_transaction = False
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._close_quietly()   # the server ended the transaction with the connection
            return
        try:
            self._conn.execute("ROLLBACK")
        except psycopg.Error:
            self._close_quietly()

    # -- what PostgreSQL spells its own way (the SQLite engine's connection has the same methods)

    @staticmethod
    def sql_indexed_by(index: str) -> str:
        return ""   # PostgreSQL's planner keeps statistics (ANALYZE, autovacuum): no index is forced

    @staticmethod
    def sql_json_has(column: str) -> str:
        return f"(({column})::jsonb @> jsonb_build_array(?::text))"

    @staticmethod
    def sql_json_text(column: str, key: str) -> str:
        return f"(({column})::jsonb ->> '{key}')"

    sql_skip_locked = " FOR UPDATE SKIP LOCKED"

    def lock_ledger(self) -> None:
        """Serialize ledger appends across every connection: held to the end of the transaction (a second take in
        a transaction that holds it already is free)."""
        self.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, LEDGER_LOCK))

    def lock_politeness(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, POLITE_LOCK))

    def notify_jobs(self) -> None:
        """Wake the runners LISTENing for jobs, when this transaction commits."""
        self.execute(f"NOTIFY {JOBS_CHANNEL}")


def _transient(exc: BaseException) -> bool:
    """A connection refused or reset (a server restarting) rather than refused for good (password, database)."""
    text = str(exc).lower()
    return any(word in text for word in ("connection refused", "starting up", "shutting down", "timeout expired",
                                         "server closed the connection", "no such file or directory",
                                         "the database system is"))


def _refused(exc: BaseException) -> UserError:
    """A statement this role may not run: the settings name a role without the rights (a runner's for an owner's
    work), which is the person's to change, not a failure of the index."""
    return UserError(f"the index database refused this role: {_first_line(exc)} (runners may add and claim; "
                     f"creating the schema and changing evidence are refused)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def redact(url: str) -> str:
    """The URL to show: without a password, should one have come in another way than the settings."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# ---- the schema: SQLite's schema 6, in PostgreSQL's types ------------------------------------------------------------

# Text compares byte by byte, as in SQLite (ULIDs and ISO times sort as text; ID prefixes are ranges of text).
_TEXT = 'text COLLATE "C"'

# Which rows are evidence, and what refusing a change to them says (the same words as SQLite's triggers).
_EVIDENCE = [("ledger", "ledger_append_only", "BEFORE", "the ledger is append-only: its entries cannot be {}"),
             ("captures", "captures_sealed", "BEFORE", "a sealed capture cannot be {}"),
             ("records_packed", "records_sealed", "BEFORE", "the records of a sealed capture cannot be {}"),
             ("records", "records_view_sealed", "INSTEAD OF", "the records of a sealed capture cannot be {}")]


def _refusal_triggers() -> str:
    statements = []
    for table, name, when, message in _EVIDENCE:
        changed = message.format("changed") + ("; capture again instead" if table == "captures" else "")
        statements += [
            f"CREATE TRIGGER {name}_update {when} UPDATE ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION archiver_refuse('{changed}');",
            f"CREATE TRIGGER {name}_delete {when} DELETE ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION archiver_refuse('{message.format('deleted')}');"]
        if when == "BEFORE":   # a view has no TRUNCATE
            statements.append(f"CREATE TRIGGER {name}_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
                              f"EXECUTE FUNCTION archiver_refuse('{message.format('deleted')}');")
    return "\n".join(statements)


_REFUSE_CHANGES = _refusal_triggers()

SCHEMA_6 = f"""
CREATE TABLE jobs (
    id bigint PRIMARY KEY,               -- given by enqueue: MAX(id) + 1 under the write lock, as SQLite gives it
    url {_TEXT} NOT NULL,
    canonical_url {_TEXT} NOT NULL,
    key {_TEXT} NOT NULL,
    kind {_TEXT} NOT NULL,
    state {_TEXT} NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    priority bigint NOT NULL DEFAULT 0,
    attempts bigint NOT NULL DEFAULT 0,
    max_attempts bigint NOT NULL,
    lease_owner {_TEXT},
    lease_expires {_TEXT},
    next_attempt_at {_TEXT} NOT NULL,
    requested_by {_TEXT} NOT NULL,
    requested_at {_TEXT} NOT NULL,
    tags {_TEXT} NOT NULL DEFAULT '[]',
    note {_TEXT},
    options {_TEXT} NOT NULL DEFAULT '{{}}',
    parent_capture_id {_TEXT},
    follow bigint NOT NULL DEFAULT 0,
    capture_id {_TEXT},
    last_failure_class {_TEXT},
    last_failure {_TEXT},
    updated_at {_TEXT} NOT NULL,
    found_in {_TEXT},
    host {_TEXT}
);
CREATE UNIQUE INDEX jobs_one_pending ON jobs(key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_due ON jobs(state, next_attempt_at);
CREATE INDEX jobs_parent ON jobs(parent_capture_id);
CREATE INDEX jobs_host ON jobs(host, state);
CREATE INDEX jobs_key ON jobs(key);

CREATE TABLE attempts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES jobs(id),
    attempt bigint NOT NULL,
    worker {_TEXT} NOT NULL,
    started_at {_TEXT} NOT NULL,
    finished_at {_TEXT} NOT NULL,
    outcome {_TEXT} NOT NULL CHECK (outcome IN ('ok', 'partial', 'failed', 'released')),
    failure_class {_TEXT},
    message {_TEXT},
    capture_id {_TEXT}
);
CREATE INDEX attempts_job ON attempts(job_id);

CREATE TABLE captures (
    -- fts_key(id): the full-text index's key; rowid order is ID order. Index.insert_capture always gives it; the
    -- default is for rows written by hand (as SQLite would number them).
    rowid bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id {_TEXT} NOT NULL UNIQUE,
    job_id bigint REFERENCES jobs(id),
    url {_TEXT} NOT NULL,
    canonical_url {_TEXT} NOT NULL,
    final_url {_TEXT},
    key {_TEXT} NOT NULL,
    kind {_TEXT} NOT NULL,
    method {_TEXT} NOT NULL,
    status {_TEXT} NOT NULL CHECK (status IN ('ok', 'partial', 'failed')),
    failure_class {_TEXT},
    failure_message {_TEXT},
    http_status bigint,
    content_type {_TEXT},
    started_at {_TEXT} NOT NULL,
    finished_at {_TEXT} NOT NULL,
    requested_by {_TEXT},
    requested_at {_TEXT},
    tags {_TEXT} NOT NULL DEFAULT '[]',
    note {_TEXT},
    warc_path {_TEXT} NOT NULL UNIQUE,
    warc_sha256 {_TEXT} NOT NULL,
    warc_size bigint NOT NULL,
    record_count bigint NOT NULL,
    title {_TEXT}
);
CREATE INDEX captures_key ON captures(key, started_at);
CREATE INDEX captures_started ON captures(started_at);
CREATE INDEX captures_canonical_url ON captures(canonical_url) WHERE canonical_url <> key;
CREATE INDEX captures_url ON captures(url) WHERE url <> canonical_url;
CREATE INDEX captures_final_url ON captures(final_url) WHERE final_url <> url;

-- Title and visible text, indexed but not stored (as SQLite's contentless FTS5 table): FTS5's tokens
-- (engines/fulltext.py), so that search finds what it finds on SQLite.
CREATE TABLE captures_fts (
    rowid bigint PRIMARY KEY,
    doc tsvector NOT NULL
);
CREATE INDEX captures_fts_doc ON captures_fts USING gin (doc);

-- The records, a UUID record ID and a SHA-256 digest kept in 16 and 32 bytes when they have their usual form (as
-- records_packed on SQLite); records reads them as written.
CREATE TABLE records_packed (
    capture_id {_TEXT} NOT NULL REFERENCES captures(id),
    seq bigint NOT NULL,
    record_uuid uuid,
    record_id {_TEXT},
    type {_TEXT} NOT NULL,
    uri {_TEXT},
    "offset" bigint NOT NULL,
    length bigint NOT NULL,
    http_status bigint,
    content_type {_TEXT},
    payload_sha256 bytea,
    payload_digest {_TEXT},
    PRIMARY KEY (capture_id, seq)
);
CREATE VIEW records AS SELECT capture_id, seq,
    COALESCE('<urn:uuid:' || record_uuid::text || '>', record_id) AS record_id,
    type, uri, "offset", length, http_status, content_type,
    COALESCE('sha256:' || encode(payload_sha256, 'hex'), payload_digest) AS payload_digest
    FROM records_packed;

CREATE TABLE outlinks (
    rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the order they were found in (SQLite's rowid)
    capture_id {_TEXT} NOT NULL REFERENCES captures(id),
    url {_TEXT} NOT NULL,
    text {_TEXT}
);
CREATE INDEX outlinks_capture ON outlinks(capture_id);
CREATE INDEX outlinks_url ON outlinks(url);

CREATE TABLE tweets (
    capture_id {_TEXT} PRIMARY KEY REFERENCES captures(id),
    tweet_id {_TEXT} NOT NULL,
    availability {_TEXT} NOT NULL,
    screen_name {_TEXT},
    name {_TEXT},
    text {_TEXT},
    created_at {_TEXT},
    snowflake_time {_TEXT},
    time_check {_TEXT},
    lang {_TEXT},
    media_count bigint,
    reply_to {_TEXT},
    quoted_id {_TEXT},
    urls {_TEXT}
);
CREATE INDEX tweets_tweet_id ON tweets(tweet_id);
CREATE INDEX tweets_screen_name ON tweets(screen_name);

CREATE TABLE refs (
    rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    capture_id {_TEXT} NOT NULL REFERENCES captures(id),
    url {_TEXT} NOT NULL,
    key {_TEXT} NOT NULL,
    kind {_TEXT} NOT NULL,
    found_in {_TEXT},
    source {_TEXT},
    via {_TEXT}
);
CREATE INDEX refs_capture ON refs(capture_id);
CREATE INDEX refs_key ON refs(key);

CREATE TABLE videos (
    capture_id {_TEXT} PRIMARY KEY REFERENCES captures(id),
    extractor {_TEXT},
    video_id {_TEXT},
    title {_TEXT},
    uploader {_TEXT},
    upload_date {_TEXT},
    duration double precision,
    is_live bigint,
    webpage_url {_TEXT},
    media_bytes bigint,
    cut {_TEXT}
);

CREATE TABLE watches (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    url {_TEXT} NOT NULL,
    canonical_url {_TEXT} NOT NULL,
    key {_TEXT} NOT NULL,
    kind {_TEXT} NOT NULL,
    every_seconds bigint,
    cron {_TEXT},
    check_every_seconds bigint,
    next_capture_at {_TEXT} NOT NULL,
    next_check_at {_TEXT},
    last_enqueued_at {_TEXT},
    last_job_id bigint,
    last_checked_at {_TEXT},
    created_by {_TEXT} NOT NULL,
    created_at {_TEXT} NOT NULL,
    tags {_TEXT} NOT NULL DEFAULT '[]',
    note {_TEXT},
    options {_TEXT} NOT NULL DEFAULT '{{}}',
    active bigint NOT NULL DEFAULT 1,
    removed_at {_TEXT},
    removed_by {_TEXT}
);
CREATE UNIQUE INDEX watches_one_active ON watches(key) WHERE active = 1;
CREATE INDEX watches_due ON watches(active, next_capture_at);
CREATE INDEX watches_key ON watches(key);

CREATE TABLE checks (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    key {_TEXT} NOT NULL,
    url {_TEXT} NOT NULL,
    checked_at {_TEXT} NOT NULL,
    method {_TEXT} NOT NULL,
    result {_TEXT} NOT NULL,
    result_class {_TEXT},
    http_status bigint,
    final_url {_TEXT},
    redirects {_TEXT},
    fingerprint {_TEXT},
    message {_TEXT},
    seconds double precision,
    state_before {_TEXT},
    state_after {_TEXT} NOT NULL,
    job_id bigint,
    worker {_TEXT}
);
CREATE INDEX checks_key ON checks(key, checked_at);

CREATE TABLE items (
    key {_TEXT} PRIMARY KEY,
    url {_TEXT} NOT NULL,
    kind {_TEXT} NOT NULL,
    state {_TEXT} NOT NULL CHECK (state IN ('live', 'changed', 'gone', 'unreachable')),
    state_class {_TEXT},
    state_since {_TEXT} NOT NULL,
    last_seen_live {_TEXT},
    last_checked_at {_TEXT},
    last_capture_id {_TEXT},
    last_ok_capture_id {_TEXT},
    fingerprint {_TEXT},
    unreachable_count bigint NOT NULL DEFAULT 0,
    updated_at {_TEXT} NOT NULL
);
CREATE INDEX items_state ON items(state, state_since);

CREATE TABLE transitions (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    key {_TEXT} NOT NULL,
    at {_TEXT} NOT NULL,
    state_before {_TEXT},
    state_after {_TEXT} NOT NULL,
    state_class {_TEXT},
    source {_TEXT} NOT NULL,
    check_id bigint,
    capture_id {_TEXT}
);
CREATE INDEX transitions_key ON transitions(key, at);

CREATE TABLE host_slots (
    host {_TEXT} PRIMARY KEY,
    last_started_at {_TEXT} NOT NULL
);

CREATE TABLE ledger (
    seq bigint PRIMARY KEY,
    at {_TEXT} NOT NULL,
    event {_TEXT} NOT NULL,
    capture_id {_TEXT},
    job_id bigint,
    url {_TEXT},
    detail {_TEXT} NOT NULL DEFAULT '{{}}',
    prev_hash {_TEXT} NOT NULL,
    hash {_TEXT} NOT NULL UNIQUE
);
CREATE INDEX ledger_capture ON ledger(capture_id);
CREATE INDEX ledger_job ON ledger(job_id);

CREATE TABLE timestamps (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    capture_id {_TEXT} NOT NULL REFERENCES captures(id),
    tsa_url {_TEXT} NOT NULL,
    digest {_TEXT} NOT NULL,
    state {_TEXT} NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    token_path {_TEXT},
    token_sha256 {_TEXT},
    gen_time {_TEXT},
    serial {_TEXT},
    tsa_name {_TEXT},
    attempts bigint NOT NULL DEFAULT 0,
    next_attempt_at {_TEXT},
    last_error {_TEXT},
    created_at {_TEXT} NOT NULL,
    updated_at {_TEXT} NOT NULL,
    UNIQUE (capture_id, tsa_url)
);
CREATE INDEX timestamps_due ON timestamps(state, next_attempt_at);

-- Evidence is never changed or deleted, whoever asks (the owner too): a change needs the triggers dropped first,
-- which the hash chain then shows.
CREATE FUNCTION archiver_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END $$;
{_REFUSE_CHANGES}

-- Jobs and timestamps by state, and captures, kept by triggers: `status` reads a few numbers. SECURITY DEFINER:
-- the runner role keeps the counts without the right to change them itself.
CREATE TABLE tallies (
    name {_TEXT} PRIMARY KEY,
    n bigint NOT NULL
);
INSERT INTO tallies (name, n) VALUES ('jobs:queued', 0), ('jobs:running', 0), ('jobs:done', 0), ('jobs:failed', 0),
    ('timestamps:pending', 0), ('timestamps:done', 0), ('timestamps:failed', 0), ('captures', 0);
CREATE FUNCTION archiver_tally() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE tallies SET n = n - 1 WHERE name = TG_ARGV[0] || COALESCE(OLD.state, '');
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE tallies SET n = n + 1 WHERE name = TG_ARGV[0] || COALESCE(NEW.state, '');
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION archiver_tally_captures() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public AS $$
BEGIN
    UPDATE tallies SET n = n + 1 WHERE name = 'captures';
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_tally_insert AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION archiver_tally('jobs:');
CREATE TRIGGER jobs_tally_update AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION archiver_tally('jobs:');
CREATE TRIGGER jobs_tally_delete AFTER DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION archiver_tally('jobs:');
CREATE TRIGGER timestamps_tally_insert AFTER INSERT ON timestamps FOR EACH ROW
    EXECUTE FUNCTION archiver_tally('timestamps:');
CREATE TRIGGER timestamps_tally_update AFTER UPDATE OF state ON timestamps FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION archiver_tally('timestamps:');
CREATE TRIGGER timestamps_tally_delete AFTER DELETE ON timestamps FOR EACH ROW
    EXECUTE FUNCTION archiver_tally('timestamps:');
CREATE TRIGGER captures_tally_insert AFTER INSERT ON captures FOR EACH ROW EXECUTE FUNCTION archiver_tally_captures();
"""

# What runners need and no more: read everything; add evidence; change only rows that move through states.
RUNNER_GRANTS = """
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
GRANT INSERT ON jobs, attempts, captures, captures_fts, records_packed, outlinks, tweets, posts, refs, videos, watches,
    checks, items, receipts, received_pages, received_fts, transitions, host_slots, ledger, timestamps, archive_keys TO {role};
GRANT UPDATE ON jobs, watches, checks, items, host_slots, timestamps TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
"""

def _recorded_once(table: str, what: str) -> str:
    """Triggers that refuse any change to ``table``'s rows once written (``what``: how the refusal names a row)."""
    refuse = "EXECUTE FUNCTION archiver_refuse('{} is recorded once: it cannot be {}')"
    return (f"CREATE TRIGGER {table}_update BEFORE UPDATE ON {table} FOR EACH ROW {refuse.format(what, 'changed')};\n"
            f"    CREATE TRIGGER {table}_delete BEFORE DELETE ON {table} FOR EACH ROW {refuse.format(what, 'deleted')};\n"
            f"    CREATE TRIGGER {table}_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
            f"{refuse.format(what, 'deleted')};")


# Schema versions as on SQLite (index.SCHEMA_VERSION): a new database is made at the newest at once; each later
# version adds its statements here, run in order in one transaction.
PG_MIGRATIONS: dict[int, str] = {
    6: SCHEMA_6,
    # 7: where a sealed WARC lives when not in the archive's warcs/ (sqlite.py's migration 7 says what each means).
    7: "ALTER TABLE captures ADD COLUMN warc_store text; ALTER TABLE captures ADD COLUMN warc_version text;",
    # 8: the WARC a job's runner is putting into the store, named before the PUT (sqlite.py's migration 8).
    8: "ALTER TABLE jobs ADD COLUMN storing text;",
    # 9: the archive's keys by fingerprint, recorded once (sqlite.py's migration 9).
    9: f"""CREATE TABLE archive_keys (
        name {_TEXT} PRIMARY KEY,
        algorithm {_TEXT} NOT NULL,
        fingerprint {_TEXT} NOT NULL,
        recorded_at {_TEXT} NOT NULL,
        host {_TEXT} NOT NULL
    );
    {_recorded_once("archive_keys", "an archive key")}""",
    # 10: the changes of state to "changed", by time (sqlite.py's migration 10).
    10: "CREATE INDEX transitions_changed ON transitions(key, at) WHERE state_after = 'changed';",
    # 11: posts beyond X, one row per capture (sqlite.py's migration 11).
    11: f"""CREATE TABLE posts (
        capture_id {_TEXT} PRIMARY KEY REFERENCES captures(id),
        platform {_TEXT} NOT NULL,
        post_id {_TEXT} NOT NULL,
        availability {_TEXT} NOT NULL,
        author {_TEXT},
        author_name {_TEXT},
        text {_TEXT},
        posted_at {_TEXT},
        edited_at {_TEXT},
        lang {_TEXT},
        media_count bigint,
        reply_to {_TEXT},
        quoted {_TEXT},
        url {_TEXT}
    );
    CREATE INDEX posts_post_id ON posts(platform, post_id);
    CREATE INDEX posts_author ON posts(author);""",
    # 12: files received from others (sqlite.py's migration 12).
    12: f"""CREATE TABLE receipts (
        id {_TEXT} PRIMARY KEY,
        sha256 {_TEXT} NOT NULL UNIQUE,
        size bigint NOT NULL,
        format {_TEXT} NOT NULL,
        original_name {_TEXT} NOT NULL,
        received_from {_TEXT} NOT NULL,
        received_by {_TEXT} NOT NULL,
        received_at {_TEXT} NOT NULL,
        note {_TEXT},
        tags {_TEXT} NOT NULL DEFAULT '[]',
        path {_TEXT} NOT NULL,
        store {_TEXT},
        version {_TEXT},
        checks {_TEXT} NOT NULL
    );
    CREATE INDEX receipts_received_at ON receipts(received_at);
    {_recorded_once("receipts", "a receipt")}""",
    # 13: the pages of received files, searchable (sqlite.py's migration 13); their full text as captures_fts.
    13: f"""CREATE TABLE received_pages (
        rowid bigint PRIMARY KEY,
        id {_TEXT} NOT NULL UNIQUE,
        receipt_id {_TEXT} NOT NULL REFERENCES receipts(id),
        seq bigint NOT NULL,
        url {_TEXT} NOT NULL,
        captured_at {_TEXT},
        http_status bigint,
        content_type {_TEXT},
        title {_TEXT},
        warc {_TEXT} NOT NULL,
        "offset" bigint NOT NULL,
        text_source {_TEXT} NOT NULL,
        text {_TEXT}
    );
    CREATE INDEX received_pages_receipt ON received_pages(receipt_id, seq);
    CREATE INDEX received_pages_url ON received_pages(url);
    CREATE TABLE received_fts (
        rowid bigint PRIMARY KEY,
        doc tsvector NOT NULL
    );
    CREATE INDEX received_fts_doc ON received_fts USING gin (doc);
    {_recorded_once("received_pages", "a received page")}""",
    # 14: timestamps of receipts too, a row being of one capture or of one receipt (sqlite.py's migration 14).
    14: f"""ALTER TABLE timestamps ALTER COLUMN capture_id DROP NOT NULL;
    ALTER TABLE timestamps ADD COLUMN receipt_id {_TEXT} REFERENCES receipts(id);
    ALTER TABLE timestamps ADD CONSTRAINT timestamps_receipt_id_tsa_url_key UNIQUE (receipt_id, tsa_url);
    ALTER TABLE timestamps ADD CONSTRAINT timestamps_one_subject CHECK ((capture_id IS NULL) <> (receipt_id IS NULL));""",
}


class PostgresIndex(Index):
    """The index in a PostgreSQL database (team mode): ``Index``'s queries, on ``PostgresConnection``."""

    shared = True

    def __init__(self, url: str, unreachable_gone: tuple[int, float] = (4, 24.0)):
        self.url = url
        self.path = None
        self.unreachable_gone = unreachable_gone
        self.conn = PostgresConnection(url)
        self._listener: psycopg.Connection | None = None
        self._snippet_db: sqlite3.Connection | None = None
        self._migrate()

    def __repr__(self) -> str:
        return f"PostgresIndex({redact(self.url)!r})"

    def close(self) -> None:
        self.conn.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._snippet_db is not None:
            self._snippet_db.close()
            self._snippet_db = None

    @contextmanager
    def transaction(self, serial: bool = True) -> Iterator[PostgresConnection]:
        self.conn.begin(LEDGER_LOCK if serial else None)
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def write(self, work: Callable[[Any], T], serial: bool = True) -> T:
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            try:
                with self.transaction(serial) as conn:
                    return work(conn)
            except IndexUnavailable as exc:
                if exc.commit_unknown or time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)   # rolled back with the lost connection: nothing was written; try it again

    def job_waiter(self) -> Callable[[float], bool]:
        try:
            self._listen()   # from now: a job queued after the caller found none wakes it
        except psycopg.Error:
            pass
        return self._wait_for_job

    def _listen(self) -> psycopg.Connection:
        if self._listener is None or self._listener.closed or self._listener.broken:
            self._listener = None
            listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                       application_name="archiver-listen")
            listener.execute(f"LISTEN {JOBS_CHANNEL}")
            self._listener = listener
        return self._listener

    def _wait_for_job(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a NOTIFY on the jobs channel (a job queued or given back)."""
        try:
            for _ in self._listen().notifies(timeout=seconds, stop_after=1):
                return True
            return False
        except psycopg.Error:
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(seconds)   # the server is away: the runner's poll finds the jobs when it is back
            return False

    # -- schema

    def _migrate(self) -> None:
        conn = self.conn
        if self._version() == index_module.SCHEMA_VERSION:
            return
        with self.transaction(serial=False):
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, SCHEMA_LOCK))
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS index_schema (version bigint NOT NULL)")
            except UserError:   # refused: a runner's role cannot create tables
                raise UserError(f"the index database {redact(self.url)} has no archiver schema, and this role "
                                f"may not create one: open it once as the database's owner") from None
            row = conn.execute("SELECT version FROM index_schema").fetchone()
            version = row[0] if row else 0
            if version > index_module.SCHEMA_VERSION:
                raise UserError(f"the index database {redact(self.url)} has schema version {version}, newer than "
                                f"this archiver ({index_module.SCHEMA_VERSION}); upgrade archiver")
            for number in sorted(PG_MIGRATIONS):
                if number <= version:
                    continue
                conn.executescript(PG_MIGRATIONS[number])
            if not row:
                conn.execute("INSERT INTO index_schema (version) VALUES (?)", (index_module.SCHEMA_VERSION,))
            else:
                conn.execute("UPDATE index_schema SET version = ?", (index_module.SCHEMA_VERSION,))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (RUNNER_ROLE,)).fetchone():
                conn.executescript(RUNNER_GRANTS.format(role=RUNNER_ROLE))

    def _version(self) -> int:
        row = self.conn.execute("SELECT to_regclass('index_schema') IS NOT NULL").fetchone()
        if not row[0]:
            return 0
        found = self.conn.execute("SELECT version FROM index_schema").fetchone()
        return found[0] if found else 0

    # -- what PostgreSQL stores its own way

    def _index_text(self, rowid: int, title: str | None, text: str | None, fts: str = "captures_fts") -> None:
        self.conn.execute(f"INSERT INTO {fts} (rowid, doc) VALUES (?, ?::tsvector)",
                          (rowid, fulltext.tsvector(title, text)))

    def _insert_records(self, capture_id: str, records: list[dict[str, Any]]) -> None:
        rows = []
        for r in records:
            packed_id = index_module.pack_record_id(r["record_id"])
            packed_digest = index_module.pack_digest(r.get("payload_digest"))
            rows.append((capture_id, r["seq"],
                         packed_id.hex() if isinstance(packed_id, bytes) else None,
                         None if isinstance(packed_id, bytes) else packed_id,
                         r["type"], r["uri"], r["offset"], r["length"], r.get("http_status"), r.get("content_type"),
                         packed_digest if isinstance(packed_digest, bytes) else None,
                         None if isinstance(packed_digest, bytes) else packed_digest))
        self.conn.executemany(
            'INSERT INTO records_packed (capture_id, seq, record_uuid, record_id, type, uri, "offset", length, '
            "http_status, content_type, payload_sha256, payload_digest) "
            "VALUES (?, ?, ?::uuid, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def search(self, query: str, limit: int | None = 50, before: str | None = None, table: str = "captures"
               ) -> tuple[str, Iterator[dict[str, Any]]]:
        """As ``Index.search``: the same query syntax (FTS5's), the same hits, newest first."""
        bound = self._rowid_before(before, table) if before else None
        try:
            tsquery = fulltext.tsquery(query)
        except fulltext.QuerySyntax:
            query = literal_query(query)
            tsquery = fulltext.tsquery(query)
        if tsquery is None:
            return query, iter(())
        sql = search_sql("doc @@ ?::tsquery", bound, limit, table)
        params = [tsquery] + ([bound] if bound is not None else [])
        rows = self.conn.stream(sql, params) if unbounded(limit) else self.conn.execute(sql, params)
        return query, (dict(row) for row in rows)

    def snippets(self, query: str, docs: list[tuple[int, str | None, str | None]]) -> dict[int, str]:
        # FTS5's own snippets, from an in-memory SQLite: the same text as on the SQLite engine.
        if self._snippet_db is None:
            self._snippet_db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            return fts5_snippets(self._snippet_db, query, docs)
        except sqlite3.OperationalError:
            return {}   # a query FTS5 cannot read (one this engine's parser accepts): hits without snippets
