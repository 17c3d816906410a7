"""Rebuild the index from the WARCs alone (design.md principle 1: the WARC is the evidence, the index a view).

Every sealed WARC under ``warcs/`` is read once, streaming: its records (offsets, lengths, types, URIs,
digests) as the file holds them, its provenance record (what the capture was: URL, times, outcome, tweet and
video facts, discovered evidence, the content fingerprint), its text record, and the file's SHA-256 and size.
From these the capture, its records, outlinks, references, tweet/video rows and the item's state are written
into a NEW database -- never over the existing index, which the operator swaps in once satisfied -- with the
same code that indexes a capture when it is sealed (``Index.insert_capture``), so both paths give the same rows.
The new database is a SQLite file, or (team mode, ``--into``) an empty PostgreSQL database, refused as ``migrate``
refuses a target (migrate.check_index_url, migrate.require_empty): a URL with a password, a database holding an
index or other tables.

What the WARCs do not hold is not invented: jobs are recreated only as far as the provenance describes them
(one ``done`` or ``failed`` job per job id), and watches, liveness checks and the old ledger are index-only
history, not rebuilt. The new ledger starts with one ``reindexed`` entry per capture, recording the file's
hash as found. Timestamp tokens stored beside the WARCs are restored (timestamps.restore_from_files): a token
says itself which hash it vouches for, and its sidecar which TSA gave it. Files received from others are
restored from the receipts kept beside them, their pages indexed by reading them again (exchange/restore.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from archiver.custody import ledger, timestamps
from archiver.errors import UserError
from archiver.store.index import Index
from archiver.pipeline.queue import job_host
from archiver.store.files import HashingReader
from archiver.store.warc import WARC_DIR


class ReindexError(UserError):
    """The rebuild cannot start (the target exists, or is not writable)."""


@dataclass
class Skipped:
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class ReindexReport:
    target: Path | str          # the SQLite file, or the PostgreSQL database's URL (without a password)
    captures: int = 0
    records: int = 0
    bytes: int = 0
    timestamps: int = 0
    receipts: int = 0           # files received from others, their receipts restored (exchange/restore.py)
    received_pages: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "target": str(self.target), "captures": self.captures, "records": self.records,
                "bytes": self.bytes, "timestamps": self.timestamps, "receipts": self.receipts,
                "received_pages": self.received_pages, "skipped": [s.as_dict() for s in self.skipped]}


@dataclass
class ReadCapture:
    """What one sealed WARC says about its capture."""
    row: dict[str, Any]
    records: list[dict[str, Any]]
    outlinks: list[dict[str, str]]
    provenance: dict[str, Any]


class NotACapture(Exception):
    """A WARC under warcs/ that is not one of ours (no provenance record), or cannot be read."""


def read_capture(path: Path, rel: str) -> ReadCapture:
    """Read one sealed WARC into the rows the index holds for it, as if it were at ``rel`` in the archive.
    Streams; only the provenance and text records are kept in memory."""
    try:
        with open(path, "rb") as fh:
            return read_capture_from(fh, rel)
    except OSError as exc:
        raise NotACapture(f"cannot be read: {exc.strerror or exc}") from None


def read_capture_from(stream: BinaryIO, rel: str) -> ReadCapture:
    """``read_capture`` of a stream (an object in a store as it comes in), read once: parsed and hashed."""
    records: list[dict[str, Any]] = []
    provenance: dict[str, Any] | None = None
    text: str | None = None
    fh = HashingReader(stream)
    try:
        iterator = ArchiveIterator(fh, check_digests=False)
        for record in iterator:
            headers = record.rec_headers
            uri = headers.get_header("WARC-Target-URI")
            rec_type = record.rec_type
            keep = rec_type in ("metadata", "resource") and (uri or "").startswith(("urn:provenance:", "urn:text:"))
            payload = record.content_stream().read() if keep else None
            if not keep:
                raw = record.raw_stream
                while raw.read(1 << 16):
                    pass
            http = record.http_headers if rec_type in ("response", "request") else None
            if http is not None:
                content_type = http.get_header("Content-Type") if rec_type == "response" else None
            else:
                content_type = headers.get_header("Content-Type")
            records.append({
                "seq": len(records), "record_id": headers.get_header("WARC-Record-ID"), "type": rec_type,
                "uri": uri, "offset": iterator.get_record_offset(), "length": iterator.get_record_length(),
                "http_status": int(http.get_statuscode()) if http is not None and rec_type == "response" else None,
                "content_type": content_type,
                "payload_digest": headers.get_header("WARC-Payload-Digest") if rec_type != "warcinfo" else None,
            })
            if payload is not None and uri.startswith("urn:provenance:"):
                provenance = json.loads(payload.decode("utf-8"))
            elif payload is not None:
                text = payload.decode("utf-8")
        digest, size = fh.drain()
    except (ArchiveLoadFailed, OSError, EOFError, ValueError) as exc:
        raise NotACapture(f"cannot be read: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    if provenance is None:
        raise NotACapture("has no provenance record (not written by archiver)")
    p = provenance
    row = {
        "id": p["capture_id"], "job_id": p["job_id"], "url": p["url"], "canonical_url": p["canonical_url"],
        "final_url": p["final_url"], "key": p["key"], "kind": p["kind"], "method": p["method"],
        "status": p["outcome"], "failure_class": p["failure_class"], "failure_message": p["failure_message"],
        "http_status": p["http_status"], "content_type": p["content_type"], "started_at": p["started_at"],
        "finished_at": p["finished_at"], "requested_by": p["requested_by"], "requested_at": p["requested_at"],
        "tags": json.dumps(p.get("tags") or []), "note": p["note"], "warc_path": rel, "warc_sha256": digest,
        "warc_size": size, "record_count": len(records), "title": p["title"], "text": text,
        "provenance": provenance,
    }
    return ReadCapture(row, records, p.get("outlinks") or [], provenance)


def _job_row(p: dict[str, Any], state: str) -> dict[str, Any]:
    """The job a capture came from, as far as its provenance describes it."""
    return {
        "id": p["job_id"], "url": p["url"], "canonical_url": p["canonical_url"], "key": p["key"], "kind": p["kind"],
        "state": state, "priority": 0, "attempts": p.get("attempt") or 1, "max_attempts": p.get("attempt") or 1,
        "next_attempt_at": p["finished_at"], "requested_by": p["requested_by"], "requested_at": p["requested_at"],
        "tags": json.dumps(p.get("tags") or []), "note": p["note"], "options": json.dumps({}),
        "parent_capture_id": p.get("parent_capture_id"), "capture_id": p["capture_id"], "updated_at": p["finished_at"],
        "host": job_host(p["url"]),
    }


def reindex(archive_dir: Path, target: Path | str, unreachable_gone: tuple[int, float] = (4, 24.0),
            progress: Callable[[str], None] | None = None, store: Any = None,
            on_open: Callable[[Index], None] | None = None) -> ReindexReport:
    """Rebuild the index of ``archive_dir`` from its WARCs into ``target``: a new database file (a Path), or an empty
    PostgreSQL database (its postgresql:// URL). From the WARCs in its warcs/ directory, and with ``store`` (the
    archive's [storage], team mode) every WARC object in that store. ``on_open``: called with the new index before
    anything is written into it (team mode records the archive's keys there)."""
    index = _open_target(archive_dir, target, unreachable_gone)
    report = ReindexReport(target if isinstance(target, Path) else _redact(target))
    try:
        if on_open is not None:
            on_open(index)
        # Oldest first (capture IDs are time-sortable ULIDs), as the captures were first indexed.
        paths = sorted((archive_dir / WARC_DIR).rglob("*.warc.gz"), key=lambda p: p.name)
        sources: list[tuple[str, Any]] = [(p.name, p) for p in paths]
        if store is not None:
            # Listed page by page, then taken in ID order with the local ones (a key is a few dozen bytes).
            # Files received from others (received/...) are not captures: they have receipts of their own.
            sources += [(item.key.rsplit("/", 1)[-1], item.key) for item in store.list()
                        if item.key.endswith(".warc.gz") and not item.key.startswith("received/")]
            sources.sort(key=lambda source: source[0])
        for _, source in sources:
            if isinstance(source, Path):
                rel = source.relative_to(archive_dir).as_posix()
                try:
                    capture = read_capture(source, rel)
                except NotACapture as exc:
                    report.skipped.append(Skipped(rel, str(exc)))
                    continue
                report.skipped.extend(_insert(index, archive_dir, capture))
            else:
                rel = WARC_DIR + "/" + source
                try:
                    capture = read_object(store, source, rel)
                except NotACapture as exc:
                    report.skipped.append(Skipped(store.location(source), str(exc)))
                    continue
                report.skipped.extend(_insert(index, archive_dir, capture, store))
            report.timestamps += timestamps.count_done(index.conn, capture.row["id"])
            report.captures += 1
            report.records += len(capture.records)
            report.bytes += capture.row["warc_size"]
            if progress:
                progress(f"{capture.row['id']}  {capture.row['status']:<7}  {capture.row['url']}")
        # Files received from others, after the captures: their receipts, and their pages read again.
        from archiver.exchange.restore import restore_receipts
        restored = restore_receipts(index, archive_dir, store)
        report.receipts, report.received_pages = restored.receipts, restored.pages
        report.timestamps += restored.timestamps
        report.skipped.extend(Skipped(where, why) for where, why in restored.skipped)
    finally:
        index.close()
    return report


def _open_target(archive_dir: Path, target: Path | str, unreachable_gone: tuple[int, float]) -> Index:
    """The new, empty index ``target`` names, made: the file, or the schema in the empty database. ReindexError
    (exit 2) for a file that exists, a directory that cannot be written, or a database migrate would refuse."""
    from archiver.store.engines import open_index
    if isinstance(target, Path):
        if target.exists():
            raise ReindexError(f"{target} already exists; reindex writes a new database (give another -o FILE, or "
                               f"remove it)")
        if not os.access(target.parent if target.parent.exists() else archive_dir, os.W_OK):
            raise ReindexError(f"cannot write {target}: its directory is not writable")
        return open_index("", target, unreachable_gone)
    from archiver.custody import migrate
    try:
        migrate.check_index_url(target, "--into", "rebuild the index into")
        conn = migrate.connect(target)
        try:
            migrate.require_empty(conn, _redact(target), "--into")
        finally:
            conn.close()
    except migrate.MigrationRefused as exc:
        raise ReindexError(str(exc)) from None
    return open_index(target, archive_dir / "index.db", unreachable_gone)


def _redact(url: str) -> str:
    from archiver.store.engines.postgres import redact
    return redact(url)


def read_object(store: Any, key: str, rel: str) -> ReadCapture:
    """A WARC object read once as it streams in, with where it lives (the version read, pinned). NotACapture if it
    cannot be read (a store that does not answer: its StorageError is the cause)."""
    from archiver.store.blobs import StorageError
    try:
        version = store.head(key).version_id
        with store.open(key, version) as stream:
            capture = read_capture_from(stream, rel)
    except StorageError as exc:
        raise NotACapture(f"cannot be read: {exc}") from exc
    capture.row.update(warc_store=store.url, warc_version=version)
    return capture


def insert_read_capture(conn: Any, index: Index, capture: ReadCapture, event: str = "reindexed",
                        source: dict[str, Any] | None = None) -> None:
    """Index a capture read from its WARC, with the ledger entry that says where the row came from
    (``reindexed``; ``imported`` with its ``source``). Call inside a transaction.

    Reindexing recreates the capture's job as far as the provenance describes it. An imported capture's job
    belongs to the archive it came from (its id would collide with ours), so it is indexed without one;
    its provenance still names the original job."""
    row, p = capture.row, capture.provenance
    if event == "imported":
        row = {**row, "job_id": None}
    else:
        _recreate_job(conn, p, "done" if row["status"] in ("ok", "partial") else "failed", row)
    index.insert_capture(row, capture.records, capture.outlinks)
    place = {"warc_store": row["warc_store"], "warc_version": row.get("warc_version")} if row.get("warc_store") else {}
    ledger.append(conn, event, capture_id=row["id"], job_id=row["job_id"], url=row["url"],
                  detail={"warc_path": row["warc_path"], "warc_sha256": row["warc_sha256"],
                          "warc_size": row["warc_size"], "record_count": row["record_count"],
                          "status": row["status"], "sealed_at": row["finished_at"], **place, **(source or {})})


def _recreate_job(conn: Any, p: dict[str, Any], state: str, row: dict[str, Any]) -> None:
    job = _job_row(p, state)
    if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (p["job_id"],)).fetchone() is None:
        conn.execute(f"INSERT INTO jobs ({', '.join(job)}) VALUES ({', '.join('?' * len(job))})", list(job.values()))
    else:
        # A later capture of the same job (a retry after a sealed failure): the job ends as its last capture.
        # CASE, not SQLite's two-argument MAX(), which PostgreSQL spells GREATEST.
        conn.execute("UPDATE jobs SET state = ?, attempts = CASE WHEN attempts > ? THEN attempts ELSE ? END, "
                     "max_attempts = CASE WHEN max_attempts > ? THEN max_attempts ELSE ? END, "
                     "capture_id = ?, updated_at = ? WHERE id = ?",
                     (state, job["attempts"], job["attempts"], job["attempts"], job["attempts"], row["id"],
                      row["finished_at"], p["job_id"]))


def _insert(index: Index, archive_dir: Path, capture: ReadCapture, store: Any = None) -> list[Skipped]:
    """Index one capture and the timestamp tokens beside its WARC (in ``store`` when it is an object there); the
    tokens that could not be restored."""
    with index.transaction() as conn:
        insert_read_capture(conn, index, capture)
        restored = timestamps.restore_from_files(conn, archive_dir, capture.row, store)
    return [Skipped(path, why) for path, why in restored.skipped]
