"""`archiver migrate`: an embedded archive (<archive>/index.db and <archive>/warcs) moved to team backends -- its
index into a PostgreSQL database, its sealed WARCs and their RFC 3161 tokens into an S3 bucket with Object Lock --
verified, recorded in the ledger, and safe to run again after an interruption.

Why in custody/: moving evidence is a change of its custody. Like ``reindex`` and ``verify`` it reads the whole
archive through the index and store interfaces, proves that what arrived is what was sealed, and says so in the
ledger; the store and index engines it writes through stay unaware of it.

In this order, and why:

1. Refusals (``MigrationRefused``: one line, exit 2), before anything is written: an archive already in team mode;
   a URL that is malformed or holds a password; runners at work (a job ``running`` under an unexpired lease: the
   copy would miss what they do); a received file without its receipt row (a receive stopped half-way: it would be
   left behind); a database that holds another archive, or a newer schema; a bucket without Object Lock.
2. The ledger first, verbatim (seq, times, details, hashes): its first entry names the archive, so that a second
   run knows a database that holds it as this archive's, part-copied, and a database holding another archive is
   refused.
3. Jobs, before the captures that name them.
4. Captures, a batch at a time. Each WARC is hashed here and must be what the index sealed (altered bytes are never
   put into a bucket that would keep them for years); then put create-only with that SHA-256 (an object already
   there with the same bytes is a resumed run, not an error); read back from the store and re-hashed as it streams;
   then its row is written with its new place (``warc_store``, ``warc_version``) with its records, outlinks,
   references, tweet and video rows and its full-text entry -- title and visible text, the text read back from the
   WARC's text record, as the index keeps none since schema 6 -- in one transaction per batch: a batch is there
   whole or not at all.
5. Files received from others (archiver receive), each with its ``.receipt.json`` as written, put into the bucket
   under the same key the same way (checked against the SHA-256 of its receipt), then its receipt row inserted with
   its new place (receipts are recorded once: inserted, never updated; their ``received`` ledger entries came with
   the ledger); then timestamps, of captures and of receipts (each granted token and its sidecar put first beside
   its WARC, or beside its receipt file, in the bucket, the same way; after the receipts, which their rows name);
   then attempts, watches, checks, items, transitions, host slots, and the pages of received files with their
   full-text entries (title and kept text, as on receipt), a batch per transaction. Rows that change state (jobs,
   timestamps, watches, checks, items, host slots) are upserted, so a later run brings what changed since up to
   date; the others are inserted when missing. The tallies are kept by the target's triggers, and compared.
6. The identity sequences set past the copied ids.
7. Verified: every table counted on both sides, the tallies equal, the target's chain walked whole and intact with
   its head the source's, every object asked again for its size, SHA-256 and version.
8. One ``migrated`` ledger entry appended to the target chain (from where to where, the counts, the source's head,
   by whom); then ``[index] url`` and ``[storage] url`` written into archiver.toml, the rest of it as it was: from
   then on the archive opens in team mode.

Nothing of the source is changed: index.db, warcs/ and received/ stay as they are (evidence is never deleted).
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from archiver import config
from archiver.custody import ledger
from archiver.errors import ArchiverError, ConfigError, UserError
from archiver.store import readback
from archiver.store.archive import Archive, warc_key
from archiver.store.files import sha256_file
from archiver.store.index import SCHEMA_VERSION, Index, now_iso

if TYPE_CHECKING:
    from archiver.store.blobs import BlobStore
    from archiver.store.engines.postgres import PostgresConnection, PostgresIndex

T = TypeVar("T")
R = TypeVar("R")

# Captures per transaction (each with its records: ~15 rows apiece), and rows of the other tables.
CAPTURE_BATCH = 100
ROW_BATCH = 2000
# Objects put (or asked about) at once: each waits on the store's answers far more than on this machine.
PARALLEL = 4
# Seconds between two progress lines of one step.
PROGRESS_SECONDS = 2.0
# A test kills the run after N objects: ARCHIVER_FAULT_KILL_AT=migrate-object-<N> (pipeline/sealing.fault_point).
FAULT_STEP = "migrate-object-{}"

# The tables other than ledger, captures and what hangs off captures, in the order they are copied: (table, key,
# whether its rows change state after they are written: then upserted).
TABLES: list[tuple[str, str, bool]] = [
    ("attempts", "id", False),
    ("watches", "id", True),
    ("checks", "id", True),
    ("items", "key", True),
    ("transitions", "id", False),
    ("host_slots", "host", True),
    # The pages of received files, after the receipts they belong to (their full-text entries with them).
    ("received_pages", "id", False),
]
# Every table compared at the end, as (name, SQL on the source, SQL on the target).
COUNTED: list[tuple[str, str, str]] = [
    (name, f"SELECT COUNT(*) FROM {table}", f"SELECT COUNT(*) FROM {table}") for name, table in (
        ("ledger", "ledger"), ("jobs", "jobs"), ("attempts", "attempts"), ("captures", "captures"),
        ("records", "records_packed"), ("outlinks", "outlinks"), ("refs", "refs"), ("tweets", "tweets"),
        ("posts", "posts"), ("videos", "videos"), ("search", "captures_fts"), ("timestamps", "timestamps"), ("watches", "watches"),
        ("checks", "checks"), ("items", "items"), ("transitions", "transitions"), ("host_slots", "host_slots"),
        ("receipts", "receipts"), ("received_pages", "received_pages"), ("received_search", "received_fts"))]


class MigrationRefused(UserError):
    """The migration cannot start (exit 2): what is wrong, in one line, and nothing was written."""


class MigrationFailed(ArchiverError):
    """The migration stopped: a sealed file is not what the index says, an object would not store as sealed, or
    the copy does not verify. What was copied stays; the archive keeps opening as it did (exit 1)."""

    exit_code = 1


@dataclass
class Report:
    """What a migration did (or, with ``dry_run``, would do)."""
    archive: str
    source_index: str
    source_storage: str
    target_index: str
    target_storage: str
    dry_run: bool = False
    already: bool = False            # migrated before: nothing to do
    resumed: bool = False            # the database held part of this archive already
    warcs: int = 0                   # WARC objects in the store for the migrated captures
    tokens: int = 0                  # timestamp tokens put beside them, or beside receipts (each with its sidecar)
    received: int = 0                # files received from others put into the store (each with its receipt file)
    stored: int = 0                  # objects put by this run
    already_stored: int = 0          # objects this run found in the store with the same bytes
    bytes: int = 0                   # bytes of the objects put or found by this run
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    settings_file: str | None = None
    left_untouched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, "archive": self.archive, "dry_run": self.dry_run, "already_migrated": self.already,
                "resumed": self.resumed,
                "from": {"index": self.source_index, "storage": self.source_storage},
                "to": {"index": self.target_index, "storage": self.target_storage},
                "objects": {"warcs": self.warcs, "tokens": self.tokens, "received": self.received,
                            "stored": self.stored,
                            "already_stored": self.already_stored, "bytes": self.bytes},
                "tables": self.tables, "ledger": self.ledger, "settings_file": self.settings_file,
                "left_untouched": self.left_untouched, "notes": self.notes}


# ---- the arguments --------------------------------------------------------------------------------------------

def check_urls(index_url: str, storage_url: str) -> None:
    """``--index`` a postgresql:// URL without a password, ``--storage`` an s3://bucket[/prefix] URL; else
    MigrationRefused naming the option."""
    from archiver.store import blobs
    check_index_url(index_url, "--index", "move the index into")
    if not storage_url.startswith("s3://"):
        raise MigrationRefused(f"--storage must be an s3://bucket or s3://bucket/prefix URL (a bucket with Object "
                               f"Lock), got {storage_url!r}")
    try:
        blobs.check_settings({"url": storage_url})
    except ConfigError as exc:
        raise MigrationRefused(str(exc).replace("setting storage.url", "--storage")) from None


def check_index_url(index_url: str, option: str, purpose: str) -> None:
    """``option`` names a postgresql:// URL without a password (libpq finds it); else MigrationRefused naming the
    option. ``purpose``: what the database is for, in the line that asks for one."""
    if not index_url:
        raise MigrationRefused(f"{option}: give the PostgreSQL database to {purpose} (postgresql://host/db)")
    try:
        config.check_index_url(index_url)
    except ConfigError as exc:
        raise MigrationRefused(str(exc).replace("setting index.url", option)) from None


# ---- the target database, before anything is written ----------------------------------------------------------

@dataclass
class Target:
    """What the target database holds: nothing (``empty``), part or all of this archive's copy (``partial``), or that
    and the ``migrated`` entry that closes it (``recorded``)."""
    state: str
    ledger_entries: int = 0
    migrated: dict[str, Any] | None = None


def inspect_target(conn: PostgresConnection, source: Index, where: str) -> Target:
    """Whether the database at ``where`` may receive this archive's index. Reads only (a dry run creates nothing).
    MigrationRefused for another archive's database, a newer schema or tables that are not an index."""
    entries = _ledger_entries(conn, where, "--index")
    if not entries:
        return _empty_or_refused(conn, where)
    first = conn.execute("SELECT hash FROM ledger WHERE seq = 1").fetchone()
    ours = source.conn.execute("SELECT hash FROM ledger WHERE seq = 1").fetchone()
    if first is None or ours is None or first[0] != ours[0]:
        raise MigrationRefused(f"the database {where} holds another archive (its ledger begins with entry "
                               f"{_short(first[0] if first else None)}, this archive's with "
                               f"{_short(ours[0] if ours else None)}): give an empty database")
    head = ledger.head(source.conn)
    newest = conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0]
    common = min(newest, head["seq"])
    theirs = conn.execute("SELECT hash FROM ledger WHERE seq = ?", (common,)).fetchone()
    if theirs is None or theirs[0] != ledger.entry_at(source.conn, common)["hash"]:
        raise MigrationRefused(f"the database {where} holds a ledger that parts from this archive's at or before "
                               f"entry {common}: it is not a copy of this archive; give an empty database")
    if newest <= head["seq"]:
        return Target("partial", entries)
    extra = conn.execute("SELECT * FROM ledger WHERE seq > ? ORDER BY seq LIMIT 2", (head["seq"],)).fetchall()
    closing = dict(extra[0])
    if len(extra) == 1 and closing["event"] == "migrated":
        detail = _json(closing["detail"])
        if (detail.get("source_ledger") or {}).get("head") == head["hash"]:
            return Target("recorded", entries, closing)
    raise MigrationRefused(f"the database {where} has {newest - head['seq']} ledger entries after this archive's "
                           f"newest ({head['seq']}): it has been written to since (runners in team mode?); this "
                           f"archive changed after its copy was made, or the copy is in use. Nothing was written")


def require_empty(conn: PostgresConnection, where: str, option: str) -> None:
    """The database at ``where`` (given as ``option``) holds nothing, or an archiver index without a row: a new index
    may be written into it (``archiver reindex --into``). Reads only. MigrationRefused otherwise -- an archive's
    index (this archive's too: a rebuild never writes over an index), other tables, a newer schema."""
    entries = _ledger_entries(conn, where, option)
    if entries:
        raise MigrationRefused(f"the database {where} holds an archive's index ({entries:,} ledger entries): "
                               f"give an empty database (CREATE DATABASE … OWNER …)")
    _empty_or_refused(conn, where)


def _ledger_entries(conn: PostgresConnection, where: str, option: str) -> int:
    """How many ledger entries the database's index holds (0: none, or no index at all). MigrationRefused for tables
    that are not an index, a role that does not own the index, or a schema newer than this archiver's."""
    if not conn.execute("SELECT to_regclass('index_schema') IS NOT NULL").fetchone()[0]:
        others = conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        if others:
            raise MigrationRefused(f"the database {where} holds {others} table(s) and no archiver index: give an "
                                   f"empty database (CREATE DATABASE … OWNER …)")
        return 0
    owner = conn.execute("SELECT current_user, tableowner, pg_has_role(current_user, tableowner, 'USAGE') FROM "
                         "pg_tables WHERE schemaname = current_schema() AND tablename = 'index_schema'").fetchone()
    if owner is not None and not owner[2]:
        # A runner's role may add rows, not keep ids and sequences as they were: the copy is the owner's work.
        raise MigrationRefused(f"{option}: connect as the role that owns the index ({owner[1]}), not {owner[0]}")
    row = conn.execute("SELECT version FROM index_schema").fetchone()
    version = row[0] if row else 0
    if version > SCHEMA_VERSION:
        raise MigrationRefused(f"the database {where} has index schema version {version}, newer than this archiver "
                               f"({SCHEMA_VERSION}): upgrade archiver first")
    if version < 6:
        return 0
    return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def _empty_or_refused(conn: PostgresConnection, where: str) -> Target:
    """An index without a ledger entry: empty, or holding rows that are none of this archive's."""
    for table in ("jobs", "captures", "watches", "checks", "items"):
        if conn.execute(f"SELECT to_regclass('{table}') IS NOT NULL").fetchone()[0] and \
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
            raise MigrationRefused(f"the database {where} holds an archiver index with rows in {table} and an empty "
                                   f"ledger: not this archive's; give an empty database")
    return Target("empty")


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "(none)"


def _json(text: str) -> dict[str, Any]:
    import json
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def connect(index_url: str) -> PostgresConnection:
    from archiver.store.engines.postgres import PostgresConnection
    return PostgresConnection(index_url)


# ---- the run ------------------------------------------------------------------------------------------------------

def migrate(archive: Archive, index_url: str, storage_url: str, *, by: str | None = None, dry_run: bool = False,
            progress: Callable[[str], None] | None = None) -> Report:
    """Move ``archive`` (embedded) to the PostgreSQL database ``index_url`` and the bucket ``storage_url``; see the
    module's docstring. Raises MigrationRefused before writing anything, MigrationFailed when it stops."""
    from archiver.store import blobs
    from archiver.store.engines.postgres import redact
    check_urls(index_url, storage_url)
    say = progress or (lambda line: None)
    store = blobs.from_url(storage_url, archive.settings, archive_dir=archive.path)
    report = Report(archive=str(archive.path), source_index=str(archive.index_path),
                    source_storage=str(archive.path / "warcs"), target_index=redact(index_url),
                    target_storage=store.url, dry_run=dry_run)
    if archive.index_url or archive.storage_url:
        return _already(archive, index_url, store, report)
    if not archive.index_path.is_file():
        raise MigrationRefused(f"no archive at {archive.path} (no index.db): give --archive DIR")
    source = archive.index()
    try:
        _refuse_if_runners(source)
        _refuse_if_unindexed_received(archive, source)
        _check_store(store)
        conn = connect(index_url)
        try:
            target = inspect_target(conn, source, report.target_index)
        finally:
            conn.close()
        report.resumed = target.state != "empty"
        if dry_run:
            return _plan(archive, source, target, report)
        from archiver.store.engines.postgres import PostgresIndex
        copy = _Copy(archive, source, PostgresIndex(index_url, archive.unreachable_gone), store, report, say)
        try:
            copy.run(by=archive.operator(by))
        finally:
            copy.target.close()
    finally:
        source.close()
    _write_settings(archive, index_url, store.url, report)
    return report


def _already(archive: Archive, index_url: str, store: BlobStore, report: Report) -> Report:
    """An archive in team mode: migrated already to these same places (a no-op), or refused."""
    said = f"[index] url = {archive.index_url!r}" if archive.index_url else f"[storage] url = {archive.storage_url!r}"
    if archive.index_url == index_url and archive.storage_url == store.url:
        conn = connect(index_url)
        try:
            row = conn.execute("SELECT seq, detail FROM ledger WHERE event = 'migrated' ORDER BY seq DESC LIMIT 1"
                               ).fetchone() if conn.execute("SELECT to_regclass('ledger') IS NOT NULL"
                                                            ).fetchone()[0] else None
        finally:
            conn.close()
        if row is not None and (_json(row["detail"]).get("to") or {}).get("storage") == store.url:
            report.already = True
            report.ledger = {"migrated_entry": row["seq"]}
            return report
    raise MigrationRefused(f"{archive.path} is already in team mode ({said}): migrate moves an embedded archive "
                           f"(index.db and warcs/)")


def _refuse_if_runners(source: Index, error: type[ArchiverError] = MigrationRefused) -> None:
    held = source.conn.execute("SELECT id, url, lease_owner, lease_expires FROM jobs WHERE state = 'running' AND "
                               "lease_expires > ? ORDER BY id", (now_iso(),)).fetchall()
    if held:
        first = held[0]
        more = f" and {len(held) - 1} more job(s)" if len(held) > 1 else ""
        raise error(f"runners are at work: job {first['id']} ({first['url']}) is held by {first['lease_owner']} until "
                    f"{first['lease_expires']}{more}; stop them (`archiver run`, `archiver capture`, the cron "
                    f"wrapper) and run migrate again")


def _refuse_if_unindexed_received(archive: Archive, source: Index) -> None:
    """A received file in <archive>/received that no receipt row names (a receive stopped after its put) would be
    left behind by a copy that goes by the rows: refused, saying what restores it first."""
    from archiver.custody.verify import Problem, Report, find_unindexed_received
    from archiver.store.local import LocalStore
    unindexed: list[Problem] = []

    def seen(problem: Problem) -> None:
        # Only received files: a receipt's token no row names is not left behind by a copy of the rows any more
        # than one in warcs/ is (verify names both).
        if problem.kind == "received-unindexed":
            unindexed.append(problem)
    find_unindexed_received(LocalStore(archive.path, read_only=True), source.conn, Report(keep=0, on_problem=seen))
    if unindexed:
        raise MigrationRefused(f"{len(unindexed)} received file(s) have no receipt row, {unindexed[0].path} first (a "
                               f"receive stopped half-way; `archiver verify` names them): receive the same files "
                               f"again, which records them, and migrate then")


def _check_store(store: BlobStore) -> None:
    from archiver.store.blobs import StorageError, StorageUnavailable
    try:
        locked = store.write_once()
    except StorageUnavailable:
        raise
    except StorageError as exc:
        raise MigrationRefused(f"--storage: {exc}") from None
    if locked is False:
        raise MigrationRefused(f"{store.url}: the bucket has no Object Lock, so nothing would keep its evidence from "
                               f"being changed or deleted: create one with it (aws s3api create-bucket "
                               f"--object-lock-enabled-for-bucket …) and migrate into that")


def _plan(archive: Archive, source: Index, target: Target, report: Report) -> Report:
    """What a run would do, from the source's counts and the target's state."""
    for name, sql, _ in COUNTED:
        report.tables[name] = {"source": source.conn.execute(sql).fetchone()[0]}
    c = source.conn
    report.warcs = c.execute("SELECT COUNT(*) FROM captures WHERE warc_store IS NULL").fetchone()[0]
    report.tokens = c.execute("SELECT COUNT(*) FROM timestamps t LEFT JOIN captures c ON c.id = t.capture_id LEFT "
                              "JOIN receipts r ON r.id = t.receipt_id WHERE t.state = 'done' AND t.token_path IS NOT "
                              "NULL AND COALESCE(c.warc_store, r.store) IS NULL").fetchone()[0]
    report.bytes = c.execute("SELECT COALESCE(SUM(warc_size), 0) FROM captures WHERE warc_store IS NULL").fetchone()[0]
    report.received = c.execute("SELECT COUNT(*) FROM receipts WHERE store IS NULL").fetchone()[0]
    report.bytes += c.execute("SELECT COALESCE(SUM(size), 0) FROM receipts WHERE store IS NULL").fetchone()[0]
    head = ledger.head(c)
    report.ledger = {"source_entries": head["seq"] if head else 0, "source_head": head["hash"] if head else None,
                     "target_state": target.state, "target_entries": target.ledger_entries}
    report.settings_file = str(archive.path / "archiver.toml")
    return report


def _write_settings(archive: Archive, index_url: str, storage_url: str, report: Report) -> None:
    path = archive.path / "archiver.toml"
    config.set_in_file(path, {("index", "url"): index_url, ("storage", "url"): storage_url})
    settings = config.load(archive.path)   # what the next command will read
    if settings["index"]["url"] != index_url or settings["storage"]["url"] != storage_url:
        raise MigrationFailed(f"{path} was written, but the settings read back say [index] url = "
                              f"{settings['index']['url']!r}, [storage] url = {settings['storage']['url']!r} "
                              f"(the environment overrides them?)")
    report.settings_file = str(path)
    kept = [str(archive.index_path)] + [str(p) for p in (archive.path / "index.db-wal", archive.path / "index.db-shm")
                                        if p.exists()] + [str(archive.path / "warcs")] + \
        [str(p) for p in (archive.path / "received",) if p.exists()]
    report.left_untouched = kept
    from_env = sorted({s.split()[1] for s in archive.settings.sources if s.startswith("env ARCHIVER_STORAGE_")})
    if from_env:
        report.notes.append(f"{', '.join(from_env)} came from the environment: keep them set for every command on "
                            f"this archive, or write them into {path}")


class _Copy:
    """One run of the copy, its verification and its ledger entry (steps 2-8 of the module's docstring)."""

    def __init__(self, archive: Archive, source: Index, target: PostgresIndex, store: BlobStore, report: Report,
                 say: Callable[[str], None]) -> None:
        self.archive, self.source, self.target, self.store = archive, source, target, store
        self.report, self.say = report, say
        self.started = time.monotonic()
        self._counting = threading.Lock()   # the report's object counts, kept by the threads that put
        self._said_at = 0.0

    def _tell(self, line: str, last: bool) -> None:
        """A progress line: the last of a step, and otherwise one every PROGRESS_SECONDS (a ledger of millions of
        entries is copied in thousands of batches)."""
        now = time.monotonic()
        if last or now - self._said_at >= PROGRESS_SECONDS:
            self._said_at = now
            self.say(line)

    # -- the steps

    def run(self, by: str) -> None:
        from archiver.custody import keys
        # The keys the archive's captures are signed with, recorded before any runner could record another.
        keys.record_existing(self.archive.path, self.archive.settings, self.target)
        self._copy_ledger()
        self._copy_table("jobs", "id", mutable=True)
        self._copy_captures()
        self._copy_receipts()
        self._copy_timestamps()
        for table, key, mutable in TABLES:
            self._copy_table(table, key, mutable, also=self._received_fts if table == "received_pages" else None)
        self._set_sequences()
        verified = self._verify()
        self._record(verified, by)

    def _copy_ledger(self) -> None:
        src, dst = self.source.conn, self.target.conn
        total = src.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]
        # The entries already there were checked against the source's (inspect_target): go on after them.
        after = min(dst.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0], total)
        columns = ["seq", "at", "event", "capture_id", "job_id", "url", "detail", "prev_hash", "hash"]
        sql = (f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (seq) DO NOTHING")
        while rows := src.execute(f"SELECT {', '.join(columns)} FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
                                  (after, ROW_BATCH)).fetchall():
            with self.target.transaction() as conn:
                conn.executemany(sql, [tuple(r) for r in rows])
            after = rows[-1]["seq"]
            self._tell(f"ledger: {after:,} of {total:,} entries", after >= total)

    def _copy_table(self, table: str, key: str, mutable: bool, page: int = ROW_BATCH,
                    also: Callable[[list[Any]], None] | None = None) -> None:
        """Every row of ``table`` by ``key``, a page per transaction: inserted where missing and, for a table whose rows
        change state, brought up to date where they differ (an upsert that leaves equal rows alone). ``also``: what
        else each page writes, in its transaction (rows derived from it)."""
        columns = [r[1] for r in self.source.conn.execute(f"PRAGMA table_info({table})")]
        self._check_columns(table, columns)
        listed = ", ".join(f'"{c}"' for c in columns)
        sql = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(columns))}) ON CONFLICT (\"{key}\") "
        others = [c for c in columns if c != key]
        if mutable and others:
            sql += (f"DO UPDATE SET {', '.join(f'{q} = EXCLUDED.{q}' for q in map(_quote, others))} WHERE "
                    f"({', '.join(f'{table}.{_quote(c)}' for c in others)}) IS DISTINCT FROM "
                    f"({', '.join(f'EXCLUDED.{_quote(c)}' for c in others)})")
        else:
            sql += "DO NOTHING"
        total = self.source.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        after: Any = None
        done = 0
        if not mutable and key == "id":
            # Ids only grow (nothing is ever deleted): go on after the last one copied.
            after = self.target.conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0]
            if after is not None:
                done = self.source.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id <= ?", (after,)).fetchone()[0]
        while rows := self.source.conn.execute(
                f"SELECT {listed} FROM {table}" + (f' WHERE "{key}" > ?' if after is not None else "")
                + f' ORDER BY "{key}" LIMIT {page}', () if after is None else (after,)).fetchall():
            with self.target.transaction() as conn:
                conn.executemany(sql, [tuple(r) for r in rows])
                if also is not None:
                    also(rows)
            after = rows[-1][key]
            done += len(rows)
            self._tell(f"{table}: {done:,} of {total:,} rows", done >= total)

    def _received_fts(self, pages: list[Any]) -> None:
        """The full-text entries of received pages, made on the target from their title and kept text as on receipt
        (the engine's own full-text index: SQLite's FTS5 entries cannot be copied as rows)."""
        from archiver.store import received
        for page in pages:
            received.index_text(self.target, page["rowid"], page["title"], page["text"])

    def _check_columns(self, table: str, columns: list[str]) -> None:
        theirs = {r[0] for r in self.target.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND "
            "table_name = ?", (table,))}
        if set(columns) - theirs:
            raise MigrationFailed(f"the database's {table} table has no column {', '.join(sorted(set(columns) - theirs))}: "
                                  f"its schema is not this archiver's ({SCHEMA_VERSION})")

    def _batches_to_copy(self, table: str) -> Iterator[tuple[list[dict[str, Any]], int, int]]:
        """``table``'s rows in ``id`` order, CAPTURE_BATCH at a time, less those on the target already (copied by an
        earlier run): (the rows to copy, rows read so far, rows in all)."""
        src = self.source.conn
        total = src.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        after, done = "", 0
        while rows := src.execute(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                                  (after, CAPTURE_BATCH)).fetchall():
            after = rows[-1]["id"]
            there = {r[0] for r in self.target.conn.execute(f"SELECT id FROM {table} WHERE id >= ? AND id <= ?",
                                                            (rows[0]["id"], after))}
            done += len(rows)
            yield [dict(r) for r in rows if r["id"] not in there], done, total

    def _copy_captures(self) -> None:
        for todo, done, total in self._batches_to_copy("captures"):
            if todo:
                self._copy_capture_batch(todo)
            self._tell(f"captures: {done:,} of {total:,} ({self.report.stored:,} objects stored, "
                       f"{self.report.already_stored:,} there already, {self.report.bytes / 1e6:,.1f} MB, "
                       f"{time.monotonic() - self.started:.0f} s)", done >= total)

    def _copy_capture_batch(self, captures: list[dict[str, Any]]) -> None:
        texts = {}
        for row in captures:
            text, why = readback.text(self.archive, row, self.source.text_record(row["id"]))
            if why is not None:
                raise MigrationFailed(f"capture {row['id']}: its text cannot be read back from its WARC ({why}); run "
                                      f"`archiver verify {row['id']}`")
            texts[row["id"]] = text
        # Those in <archive>/warcs go into the store; one already in a store (warc_store) stays where it is.
        local = [row for row in captures if not row.get("warc_store")]
        versions = dict(zip([row["id"] for row in local], self._in_parallel(
            lambda row: self._put(warc_key(row["warc_path"]), self.archive.path / row["warc_path"],
                                  row["warc_sha256"], "WARC"), local)))
        self.report.warcs += len(local)
        placed = [({**row, "warc_store": self.store.url, "warc_version": versions[row["id"]]}
                   if row["id"] in versions else row, texts[row["id"]]) for row in captures]
        ids = [row["id"] for row, _ in placed]
        marks = ", ".join("?" * len(ids))
        src = self.source.conn
        records: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for r in src.execute(f"SELECT * FROM records WHERE capture_id IN ({marks}) ORDER BY capture_id, seq", ids):
            records[r["capture_id"]].append(dict(r))
        # Outlinks and references keep their rowids: their order is the order they were found in.
        outlinks = src.execute(f"SELECT rowid, capture_id, url, text FROM outlinks WHERE capture_id IN ({marks}) "
                               "ORDER BY rowid", ids).fetchall()
        refs = src.execute(f"SELECT rowid, capture_id, url, key, kind, found_in, source, via FROM refs WHERE "
                           f"capture_id IN ({marks}) ORDER BY rowid", ids).fetchall()
        tweets = src.execute(f"SELECT * FROM tweets WHERE capture_id IN ({marks})", ids).fetchall()
        posts = src.execute(f"SELECT * FROM posts WHERE capture_id IN ({marks})", ids).fetchall()
        videos = src.execute(f"SELECT * FROM videos WHERE capture_id IN ({marks})", ids).fetchall()
        with self.target.transaction() as conn:
            for row, text in placed:
                self.target.insert_copied(row, records[row["id"]], text)
            for table, rows in (("outlinks", outlinks), ("refs", refs), ("tweets", tweets), ("posts", posts),
                             ("videos", videos)):
                if rows:
                    names = rows[0].keys()
                    overriding = " OVERRIDING SYSTEM VALUE" if "rowid" in names else ""
                    conn.executemany(f"INSERT INTO {table} ({', '.join(map(_quote, names))}){overriding} VALUES "
                                     f"({', '.join('?' * len(names))})", [tuple(r) for r in rows])

    def _copy_timestamps(self) -> None:
        """Timestamps, each granted token (and its sidecar) put beside its WARC, or beside its receipt file (a
        receipt's), in the store before its row says so on the target: a token there is a row there."""
        from archiver.custody.timestamps import sidecar_of
        src = self.source.conn
        after = 0
        while rows := src.execute("SELECT t.*, COALESCE(c.warc_store, r.store) AS in_store FROM timestamps t LEFT "
                                  "JOIN captures c ON c.id = t.capture_id LEFT JOIN receipts r ON r.id = t.receipt_id "
                                  "WHERE t.id > ? ORDER BY t.id LIMIT ?", (after, ROW_BATCH)).fetchall():
            after = rows[-1]["id"]
            there = {r["id"]: r["token_sha256"] for r in self.target.conn.execute(
                "SELECT id, token_sha256 FROM timestamps WHERE state = 'done' AND id >= ? AND id <= ?",
                (rows[0]["id"], after))}
            for row in rows:
                if row["state"] != "done" or not row["token_path"] or row["in_store"]:
                    continue
                if there.get(row["id"]) == row["token_sha256"]:
                    continue   # put and re-hashed by an earlier run, before its row was written
                # A capture's token is kept as its WARC is (warcs/<key>: the key without "warcs/"), a receipt's
                # under the key its receipt file has (received/...), which is its path under the archive.
                key = _token_key(row)
                self._put(key, self.archive.path / row["token_path"], row["token_sha256"], "timestamp token")
                self.report.tokens += 1
                sidecar = self.archive.path / sidecar_of(row["token_path"])
                if sidecar.is_file():   # which TSA gave it: the one fact the token does not hold
                    self._put(sidecar_of(key), sidecar, sha256_file(sidecar)[0], "timestamp sidecar")
        self._copy_table("timestamps", "id", mutable=True)

    def _copy_receipts(self) -> None:
        """Files received from others: each (with its receipt file) into the store before its row is written on
        the target with its new place (``store``, ``version``), a batch per transaction. Receipt rows are recorded
        once: inserted where missing, never updated (a row there was copied by an earlier run, with its place)."""
        for todo, done, total in self._batches_to_copy("receipts"):
            # Those under <archive>/received go into the store; one already in a store stays where it is.
            local = [row for row in todo if not row["store"]]
            versions = dict(zip([row["id"] for row in local], self._in_parallel(self._put_received, local)))
            with self._counting:
                self.report.received += len(local)
            placed = [{**row, "store": self.store.url, "version": versions[row["id"]]} if row["id"] in versions
                      else row for row in todo]
            if placed:
                names = list(placed[0])
                with self.target.transaction() as conn:
                    conn.executemany(f"INSERT INTO receipts ({', '.join(map(_quote, names))}) VALUES "
                                     f"({', '.join('?' * len(names))}) ON CONFLICT (id) DO NOTHING",
                                     [tuple(row[n] for n in names) for row in placed])
            self._tell(f"received files: {done:,} of {total:,}", done >= total)

    def _put_received(self, row: dict[str, Any]) -> str | None:
        """A received file and its receipt file (as written: it says where the file was first kept) into the
        store under their keys. The file's version."""
        from archiver.exchange.receive import RECEIPT_SUFFIX
        version = self._put(row["path"], self.archive.path / row["path"], row["sha256"], "received file")
        receipt = self.archive.path / (row["path"] + RECEIPT_SUFFIX)
        try:
            receipt_sha, _ = sha256_file(receipt)
        except FileNotFoundError:
            raise MigrationFailed(f"the receipt file {receipt} of received file {row['id']} is not there: without it "
                                  f"the bucket could not restore its receipt; nothing of it was recorded") from None
        self._put(row["path"] + RECEIPT_SUFFIX, receipt, receipt_sha, "receipt file", content_type="application/json")
        return version

    def _put(self, key: str, path: Path, sha256: str, what: str, content_type: str | None = None) -> str | None:
        """One sealed file into the store: checked here against the SHA-256 it was sealed with, put create-only,
        then read back from the store and re-hashed as it streams. The version stored."""
        from archiver.pipeline.sealing import fault_point
        try:
            digest, size = sha256_file(path)
        except FileNotFoundError:
            raise MigrationFailed(f"the {what} {path} is not there; run `archiver verify` (nothing of it was "
                                  f"stored)") from None
        if digest != sha256:
            raise MigrationFailed(f"the {what} {path} hashes to {digest}, the index sealed it as {sha256}: it was "
                                  f"changed or damaged, so it is not stored; run `archiver verify`")
        stored = self.store.put_file(key, path, sha256, content_type=content_type)
        self.store.verify(key, sha256, stored.version_id)
        with self._counting:
            if stored.already_present:
                self.report.already_stored += 1
            else:
                self.report.stored += 1
            self.report.bytes += size
            handled = self.report.stored + self.report.already_stored
        fault_point(FAULT_STEP.format(handled))
        return stored.version_id

    def _in_parallel(self, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``work`` of each item, PARALLEL at a time, results in the items' order; the first failure is raised once
        the ones under way have ended (those not started are not)."""
        items = list(items)
        if len(items) <= 1:
            return [work(item) for item in items]
        pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="migrate")
        try:
            return list(pool.map(work, items))
        finally:
            pool.shutdown(cancel_futures=True)

    def _set_sequences(self) -> None:
        """Every identity column's sequence past the largest id copied, so that rows added in team mode follow."""
        for table, column in self.target.conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND is_identity = 'YES' ORDER BY table_name").fetchall():
            self.target.conn.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({_quote(column)}), 0) "
                                     f"+ 1, false) FROM {table}", (table, column))

    # -- verification

    def _verify(self) -> dict[str, Any]:
        """Counts, tallies, the chain and every object; MigrationFailed naming the first difference."""
        src, dst = self.source.conn, self.target.conn
        head = ledger.head(src)
        closing = _closing_entry(dst, head)
        for name, on_source, on_target in COUNTED:
            mine, theirs = src.execute(on_source).fetchone()[0], dst.execute(on_target).fetchone()[0]
            if name == "ledger" and closing is not None:
                theirs -= 1   # the migrated entry an earlier run appended
            self.report.tables[name] = {"source": mine, "target": theirs}
            if mine != theirs:
                raise MigrationFailed(f"{name}: {mine:,} rows in {self.report.source_index}, {theirs:,} in the "
                                      f"database after the copy (did the archive change meanwhile? stop every runner "
                                      f"and run migrate again)")
        mine, theirs = self.source.tallies(), self.target.tallies()
        if mine != theirs:
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise MigrationFailed(f"the tallies differ after the copy ({', '.join(differ)})")
        walked = ledger.walk(dst)
        if walked.broken is not None:
            raise MigrationFailed(f"the copied ledger does not hold: entry {walked.broken.seq} {walked.broken.reason}")
        theirs_at = ledger.entry_at(dst, head["seq"]) if head else None
        if head is not None and (theirs_at is None or theirs_at["hash"] != head["hash"]):
            raise MigrationFailed(f"the copied ledger's entry {head['seq']} is not the source's newest entry")
        self.say(f"ledger: {walked.entries:,} entries walked on the target, intact; entry {head['seq'] if head else 0} "
                 f"is the source's head")
        places = self._check_objects()
        return {"entries": head["seq"] if head else 0, "head": head["hash"] if head else None, "places": places}

    def _check_objects(self) -> str:
        """Every migrated capture's object (and token), and every received file (and its receipt file), as the store
        describes it now: there, of the size and SHA-256 sealed or received, the version the row names. The SHA-256
        of the list of places (capture, key, version; then "receipt", receipt, key, version), for the ``migrated``
        entry: a place changed in the index afterwards shows against it."""
        from archiver.custody.timestamps import of_capture, of_receipt, sidecar_of
        from archiver.exchange.receive import RECEIPT_SUFFIX
        digest = hashlib.sha256()
        after, checked = "", 0
        while rows := self.target.conn.execute(
                "SELECT id, warc_path, warc_sha256, warc_size, warc_store, warc_version FROM captures WHERE id > ? "
                "AND warc_store = ? ORDER BY id LIMIT ?", (after, self.store.url, CAPTURE_BATCH)).fetchall():
            tokens = {row["id"]: [warc_key(t["token_path"]) for t in of_capture(self.target.conn, row["id"])
                                  if t["state"] == "done" and t["token_path"]] for row in rows}
            self._in_parallel(lambda row: self._check_object(
                f"capture {row['id']}", warc_key(row["warc_path"]), row["warc_version"], row["warc_size"],
                row["warc_sha256"], tokens[row["id"]], "timestamp token"), rows)
            for row in rows:
                digest.update(f"{row['id']} {warc_key(row['warc_path'])} {row['warc_version'] or ''}\n".encode())
            checked += len(rows)
            after = rows[-1]["id"]
            self._tell(f"objects: {checked:,} checked in {self.store.url}", False)
        after = ""
        while rows := self.target.conn.execute(
                "SELECT id, path, sha256, size, version FROM receipts WHERE id > ? AND store = ? ORDER BY id LIMIT ?",
                (after, self.store.url, CAPTURE_BATCH)).fetchall():
            # Beside each: its receipt file, and its receipt's tokens with the sidecars the archive had for them.
            beside = {row["id"]: [row["path"] + RECEIPT_SUFFIX] + [
                key for t in of_receipt(self.target.conn, row["id"]) if t["state"] == "done" and t["token_path"]
                for key in (t["token_path"], sidecar_of(t["token_path"]))
                if key == t["token_path"] or (self.archive.path / key).is_file()] for row in rows}
            self._in_parallel(lambda row: self._check_object(
                f"received file {row['id']}", row["path"], row["version"], row["size"], row["sha256"],
                beside[row["id"]], "receipt file or timestamp token"), rows)
            for row in rows:
                digest.update(f"receipt {row['id']} {row['path']} {row['version'] or ''}\n".encode())
            checked += len(rows)
            after = rows[-1]["id"]
            self._tell(f"objects: {checked:,} checked in {self.store.url}", False)
        self._tell(f"objects: {checked:,} checked in {self.store.url}: each there, as sealed", True)
        return digest.hexdigest()

    def _check_object(self, what: str, key: str, version: str | None, size: int, sha256: str, beside: list[str],
                      beside_what: str) -> None:
        """An object as the store describes it (no bytes read): there, the size and SHA-256 its row says, the
        version its row names; and the objects kept ``beside`` it (a capture's tokens, a received file's receipt)
        there."""
        from archiver.store.blobs import NotStored
        try:
            info = self.store.head(key, version)
        except NotStored:
            raise MigrationFailed(f"{what}: {self.store.location(key)} (version {version}) is not there") from None
        if info.size != size or (info.sha256 is not None and info.sha256 != sha256) or \
                (version is not None and info.version_id not in (None, version)):
            raise MigrationFailed(f"{what}: {self.store.location(key)} is {info.size} bytes, SHA-256 "
                                  f"{info.sha256}, version {info.version_id}; the index says {size} bytes, "
                                  f"{sha256}, version {version}")
        for other in beside:
            try:
                self.store.head(other)
            except NotStored:
                raise MigrationFailed(f"the {beside_what} {other} of {what} is not in {self.store.url}") from None

    def _record(self, verified: dict[str, Any], by: str) -> None:
        """The one ``migrated`` entry closing the copied chain (kept if an earlier run appended it)."""
        counts = {name: n["source"] for name, n in self.report.tables.items()}
        detail = {
            "from": {"index": self.report.source_index, "storage": self.report.source_storage,
                     "host": socket.gethostname()},
            "to": {"index": self.report.target_index, "storage": self.store.url},
            "counts": counts,
            "source_ledger": {"entries": verified["entries"], "head": verified["head"]},
            "places_sha256": verified["places"],
            "by": by,
        }
        with self.target.transaction() as conn:
            # The source as verified, still: no runner started, no entry appended meanwhile (else this entry would
            # close a copy that misses them). Checked again here, where it is the last moment that counts.
            now = ledger.head(self.source.conn)
            if (now["hash"] if now else None) != verified["head"]:
                raise MigrationFailed(f"the archive changed during the migration (its ledger grew to "
                                      f"{now['seq'] if now else 0:,} entries after {verified['entries']:,} were "
                                      f"verified): stop every runner and cron job, and run migrate again")
            _refuse_if_runners(self.source, MigrationFailed)
            entry = _closing_entry(conn, now) or ledger.append(conn, "migrated", detail=detail)
        self.report.ledger = {"entries": verified["entries"], "head": verified["head"], "intact": True,
                              "migrated_entry": entry["seq"], "migrated_hash": entry["hash"]}


def _token_key(row: Any) -> str:
    """A timestamps row's token's key in the store: a capture's beside its WARC (``warc_key``), a receipt's beside
    its receipt file (its ``token_path`` is that key already)."""
    return row["token_path"] if row["receipt_id"] else warc_key(row["token_path"])


def _closing_entry(dst: Any, head: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``migrated`` entry right after the source's ``head`` on the target, naming that head: an earlier run
    verified the copy and recorded it (then killed before the settings were written). None if there is none."""
    newest = ledger.head(dst)
    if newest is None or newest["event"] != "migrated" or newest["seq"] != (head["seq"] if head else 0) + 1:
        return None
    named = (_json(newest["detail"]).get("source_ledger") or {}).get("head")
    return newest if named == (head["hash"] if head else None) else None


def _quote(name: str) -> str:
    return f'"{name}"'

