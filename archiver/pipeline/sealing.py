"""Sealing a capture into the store ``[storage] url`` names (team mode: S3 with Object Lock), and settling a seal
whose runner stopped half-way.

The local seal (warc.py) makes the WARC durable, hashed and read-only in ``tmp/``; then, in this order:

0. **name**: the WARC's path is written on its job (``jobs.storing``, schema 8), under the job's lease
   (``queue.note_storing``; a runner that lost its lease stores nothing).
1. **put**: ``BlobStore.put_file`` create-only (If-None-Match), with the sealed SHA-256 as ChecksumSHA256 and
   Object Lock retention on the write itself; the server's checksum is compared with ours (s3.py).
2. **index**: one transaction holds the capture row with where it lives (``warc_store``, ``warc_version``:
   schema 7), its ``captured`` and ``sealed`` ledger entries, its timestamps queued and the job's outcome
   (``commit_capture``, the same body the local seal uses).
3. **release**: the local file is removed.

The object is put before the capture is indexed because the row names the version written, and a capture row is
never changed. A runner killed between the put and the index leaves an object that only ``jobs.storing`` names:
whichever runner takes the job next, on any host, indexes that object from the store as the job's capture
(``settle_storing``) instead of capturing the page again -- so a host lost with its tmp/ leaves no object the index
does not know, and no second capture. On the host itself, a runner killed at any step leaves one of these, which
the next runner there settles (``settle_temp_files``; the supervisor does it at once for a worker it saw die):

- a file still being written (writable): removed, and the job is captured again, as before team mode;
- a sealed file (read-only) not in the store and not indexed: stored and indexed if its job is still the dead
  runner's, else removed (the job went on without it: another runner has it);
- a file in the store but not indexed: indexed from the file (reindex.read_capture: the WARC holds every fact the
  row does), as its job's capture if the job is still the dead runner's, else as evidence of its own -- an object
  in the store is locked for years and must never be a capture the index does not know;
- a file indexed already: only the local copy is removed.

A store that does not answer for ``storage.retry_seconds`` fails the attempt with class ``storage`` (retried later,
without using up the job's attempts), and the sealed file is kept as ``tmp/<capture id>.<job id>.warc.gz.unstored``:
the job's next attempt on this host stores that file instead of capturing again (``take_unstored``), so a
storage outage delays a capture and never loses one. Meanwhile the job stays reserved for this host (its lease
kept on the queued job and renewed by the host's runners while the file waits: queue.not_reserved), so no runner
elsewhere captures the page a second time; if the host is lost, the reservation runs out and any runner captures
the page again (settling first from the store, in case the put did land and only its answer was lost). Each step is
idempotent -- a put of the same bytes answers with the object there, a capture indexed already is not indexed
twice -- so two runners settling the same file agree.

``ARCHIVER_FAULT_KILL_AT=<step>[:host]`` makes a worker SIGKILL itself at that step (prepared, stored, indexed,
released): how the tests prove the list above with real processes.
"""
from __future__ import annotations

import logging
import os
import signal
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from archiver import logs
from archiver.custody import keys, ledger, timestamps
from archiver.errors import BadURL
from archiver.pipeline import queue
from archiver.store.archive import Archive, warc_key
from archiver.store.index import Index, now_iso
from archiver.store.warc import TMP_DIR, WARC_DIR, finish_seal, sha256_file
from archiver.urls import keyed_as, parse as parse_url

if TYPE_CHECKING:
    from archiver.store.blobs import StoredObject

log = logging.getLogger("archiver.pipeline.sealing")

KILL_AT_ENV = "ARCHIVER_FAULT_KILL_AT"
UNSTORED_SUFFIX = ".warc.gz.unstored"
STORAGE_FAILURE = "storage"


def fault_point(step: str) -> None:
    """Die here, as a kill -9 would, when the tests ask for it: ``ARCHIVER_FAULT_KILL_AT=<step>`` kills this
    worker (its supervisor sees it die and settles at once); ``<step>:host`` kills the process that started it
    first, as a host that loses power would (the next runner to start settles)."""
    wanted, _, scope = os.environ.get(KILL_AT_ENV, "").partition(":")
    if wanted != step:
        return
    if scope == "host":
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


# ---- the transaction that makes a sealed capture part of the index ----------------------------------------------

def record_custody(conn: Any, job: dict[str, Any], capture: dict[str, Any], owner: str, key_fingerprint: str) -> None:
    """The ledger entries of a sealed capture, in the transaction that indexes it: what the attempt found
    (``captured``), then the file that holds it (``sealed``: with the store and version, when not in warcs/)."""
    common = {"capture_id": capture["id"], "job_id": job["id"], "url": capture["url"]}
    ledger.append(conn, "captured", at=capture["finished_at"], **common,
                  detail={"attempt": job["attempts"], "worker": owner, "method": capture["method"],
                          "status": capture["status"], "failure_class": capture["failure_class"],
                          "http_status": capture["http_status"], "final_url": capture["final_url"],
                          "started_at": capture["started_at"], "finished_at": capture["finished_at"]})
    sealed = {"warc_path": capture["warc_path"], "warc_sha256": capture["warc_sha256"],
              "warc_size": capture["warc_size"], "record_count": capture["record_count"],
              "signed_by": key_fingerprint}
    if capture.get("warc_store"):
        sealed.update(warc_store=capture["warc_store"], warc_version=capture.get("warc_version"))
    ledger.append(conn, "sealed", **common, detail=sealed)


def enqueue_children(index: Index, conn: Any, job: dict[str, Any], capture_id: str,
                     discovered: list[dict[str, Any]], follow: int) -> list[int]:
    """Queue the evidence a capture references, in the transaction that indexes the capture."""
    if not discovered or follow <= 0:
        return []
    parsed, where = [], []
    for item in discovered:
        if index.captured_ok(item["key"]):
            # Already held (cited again by another article): the refs row links it; re-checking an item
            # on a schedule is what `watch` is for, not what following does.
            continue
        try:
            parsed.append(keyed_as(parse_url(item["url"]), item["key"]))  # a resolved Bluesky handle keeps its DID
            where.append({"found_in": item.get("found_in"), "source": item.get("source"), "via": item.get("via")})
        except BadURL:
            continue
    options = {"follow": follow - 1} if follow > 1 else {}
    if job["options"].get("no_browser"):
        options["no_browser"] = True
    enqueued = queue.enqueue_in(conn, parsed, requested_by=job["requested_by"], tags=job["tags"],
                                note=f"found in capture {capture_id}", priority=job["priority"],
                                max_attempts=job["max_attempts"], options=options,
                                parent_capture_id=capture_id, found_in=where)
    return [e.job["id"] for e in enqueued if e.created]


def commit_capture(index: Index, conn: Any, job: dict[str, Any], owner: str, capture: dict[str, Any],
                   records: list[dict[str, Any]], outlinks: list[dict[str, Any]], *, started_at: str,
                   backoff: dict[str, float], key_fingerprint: str, tsa_urls: Iterable[str],
                   discovered: list[dict[str, Any]], follow: int, finish_job: bool = True) -> tuple[str, list[int]]:
    """Index a sealed capture with its custody entries, timestamps queued, children queued and (``finish_job``)
    its job's outcome. Call inside ``index.transaction()``; the caller has checked the lease. Returns the job's
    state and the children queued."""
    index.insert_capture(capture, records, outlinks)
    record_custody(conn, job, capture, owner, key_fingerprint)
    timestamps.queue_capture(conn, capture["id"], capture["warc_sha256"], tsa_urls)
    children = enqueue_children(index, conn, job, capture["id"], discovered, follow)
    if not finish_job:
        return job["state"], children
    if capture["status"] == "failed":
        from archiver.errors import is_retryable
        state = queue.fail_in(conn, job, owner, started_at, capture["failure_class"], capture["failure_message"],
                              is_retryable(capture["failure_class"]), capture_id=capture["id"], **backoff)
    else:
        queue.mark_captured(conn, job, owner, started_at, capture["id"], capture["status"],
                            capture["failure_class"], capture["failure_message"])
        state = "done"
    return state, children


# ---- putting a sealed file ---------------------------------------------------------------------------------------

def put_sealed(archive: Archive, rel_path: str, path: Path, sha256: str) -> StoredObject:
    """Step 1: the sealed file into the archive's store, create-only, checked, locked. Raises StorageError (its
    StorageUnavailable when the store did not answer within storage.retry_seconds)."""
    return archive.store().put_file(warc_key(rel_path), path, sha256)


def placed(capture: dict[str, Any], archive: Archive, stored: StoredObject) -> dict[str, Any]:
    """The capture row with where its WARC lives (schema 7)."""
    return {**capture, "warc_store": archive.store().url, "warc_version": stored.version_id}


def keep_unstored(archive_dir: Path, tmp_path: Path, capture_id: str, job_id: int) -> Path:
    """A sealed file the store would not take now: kept for the job's next attempt (``take_unstored``)."""
    kept = archive_dir / TMP_DIR / f"{capture_id}.{job_id}{UNSTORED_SUFFIX}"
    os.rename(tmp_path, kept)
    return kept


def unstored_of(archive_dir: Path, job_id: int | None = None) -> list[Path]:
    tmp_dir = archive_dir / TMP_DIR
    if not tmp_dir.is_dir():
        return []
    pattern = f"*.{job_id}{UNSTORED_SUFFIX}" if job_id is not None else f"*{UNSTORED_SUFFIX}"
    return sorted(tmp_dir.glob(pattern))


# ---- settling --------------------------------------------------------------------------------------------------

def _rel_path(archive: Archive, capture_id: str) -> str:
    """Where a capture whose writer is gone is (or goes) in the store: its day is the one of its ULID's time, or
    the next (the writer read the clock again just after making the ID, maybe past midnight)."""
    from archiver.store.blobs import NotStored
    millis = int.from_bytes(_ulid_bytes(capture_id), "big") >> 80
    day = datetime.fromtimestamp(millis / 1000, timezone.utc)
    candidates = [f"{WARC_DIR}/{d:%Y/%m/%d}/{capture_id}.warc.gz" for d in (day, day + timedelta(days=1))]
    store = archive.store()
    for rel in candidates:
        try:
            store.head(warc_key(rel))
            return rel
        except NotStored:
            continue
    return candidates[0]


def _ulid_bytes(capture_id: str) -> bytes:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for char in capture_id:
        value = (value << 5) | alphabet.index(char)
    return value.to_bytes(17, "big")


def settle_temp_files(archive: Archive, index: Index, paths: Iterable[Path], remove_unindexed: bool = True,
                      live_tags: set[str] | None = None) -> int:
    """Temporary WARCs whose writer is gone. One the index does not hold was never sealed: removed (its job
    is captured again) -- or, when the archive seals to a store, finished if it was sealed (see the module's
    list). One it holds was indexed just before its writer died: the move into warcs/ is finished (the local
    copy removed, for a capture in a store). Returns how many files were settled.

    ``remove_unindexed=False`` is for imports in progress (ingest.py), which hold no lease that would tell
    a live importer from a dead one: only their indexed files are finished."""
    settled = 0
    for path in paths:
        capture_id = path.name.split(".", 1)[0]
        row = index.conn.execute("SELECT job_id, url, warc_path, warc_store FROM captures WHERE id = ?",
                                 (capture_id,)).fetchone()
        if row is None:
            if remove_unindexed:
                if not (archive.seals_to_store and _finish_stored_seal(archive, index, path, capture_id)):
                    path.unlink(missing_ok=True)
                settled += 1
            continue
        if row["warc_store"]:
            path.unlink(missing_ok=True)   # stored and indexed: the local copy was all that was left
            logs.event(log, logging.WARNING, "seal-finished", f"removed the local copy of capture {capture_id}, "
                       f"stored and indexed before its writer stopped", job_id=row["job_id"], url=row["url"],
                       capture_id=capture_id)
        elif finish_seal(path, archive.path / row["warc_path"]):
            logs.event(log, logging.WARNING, "seal-finished", f"moved capture {capture_id} into warcs/: its writer "
                       f"stopped after indexing it", job_id=row["job_id"], url=row["url"], capture_id=capture_id)
        settled += 1
    return settled


def _finish_stored_seal(archive: Archive, index: Index, path: Path, capture_id: str) -> bool:
    """A dead writer's unindexed file, in an archive that seals to a store: True if it was sealed and is now
    stored and indexed (and removed), False if it is to be removed (never sealed, or its job went on without it).
    A store that does not answer leaves the file for the next runner (True: not removed)."""
    from archiver.store.blobs import NotStored, StorageError
    try:
        sealed = not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    except FileNotFoundError:
        return True
    if not sealed:
        return False
    tag = path.name.split(".")[1] if path.name.endswith(".part") else None
    try:
        rel = _rel_path(archive, capture_id)
        try:
            archive.store().head(warc_key(rel))
            in_store = True
        except NotStored:
            in_store = False
        job_id = _job_of(path)
        job = _job(index, job_id) if job_id is not None else None
        ours = job is not None and job["state"] == "running" and tag is not None and \
            job["lease_owner"] is not None and _tag(job["lease_owner"]) == tag
        if not in_store and not ours and tag is not None:
            return False   # never stored, and the job went on without it
        index_from_file(archive, index, path, rel, owner=job["lease_owner"] if ours else None)
    except StorageError as exc:
        logs.event(log, logging.ERROR, "seal-unsettled", f"capture {capture_id}: sealed but the store did not take "
                   f"it ({exc}); left in {path.parent} for the next runner", capture_id=capture_id)
        return True
    return True


def _tag(owner: str) -> str:
    from archiver.store.warc import owner_tag
    return owner_tag(owner)


def _job_of(path: Path) -> int | None:
    """The job a sealed file was captured for: its provenance says, but the name of an unstored file too."""
    if path.name.endswith(UNSTORED_SUFFIX):
        return int(path.name.split(".")[1])
    from archiver.custody.reindex import NotACapture, read_capture
    try:
        return read_capture(path, path.name).provenance.get("job_id")
    except NotACapture:
        return None


def _job(index: Index, job_id: int) -> dict[str, Any] | None:
    try:
        return queue.get_job(index, job_id)
    except Exception:   # a job this index does not know (an archive rebuilt since): index without it
        return None


def index_from_file(archive: Archive, index: Index, path: Path, rel: str, *, owner: str | None,
                    started_at: str | None = None, backoff: dict[str, float] | None = None) -> dict[str, Any]:
    """Put a sealed file (idempotent: the same bytes already there are success) and index it from the WARC
    itself, then remove it. ``owner``: the runner whose job this capture finishes (a dead runner's name, or ours
    for an unstored file taken up by the job's next attempt); None: indexed as evidence without touching the job.
    Returns the capture row."""
    from archiver.custody.reindex import read_capture
    digest, _ = sha256_file(path)
    stored = put_sealed(archive, rel, path, digest)
    capture = read_capture(path, rel)
    row = _index_read(archive, index, capture, placed(capture.row, archive, stored), owner=owner,
                      started_at=started_at, backoff=backoff)
    path.unlink(missing_ok=True)
    logs.event(log, logging.WARNING, "seal-finished", f"stored and indexed capture {row['id']}, sealed before it "
               f"could be stored or indexed", capture_id=row["id"], url=row["url"], job_id=row["job_id"])
    return row


def _index_read(archive: Archive, index: Index, capture: Any, row: dict[str, Any], *, owner: str | None,
                started_at: str | None, backoff: dict[str, float] | None) -> dict[str, Any]:
    """Index a stored capture read back from its WARC (``row``: its row, with where it is stored), unless the index
    holds it already; its job finished by ``owner`` if that runner holds the job (see ``index_from_file``)."""
    p = capture.provenance
    settings = archive.settings
    qs = settings["queue"]
    backoff = backoff or {"backoff_base": qs["backoff_seconds"], "backoff_cap": qs["backoff_max_seconds"]}
    key = keys.load_or_create(archive.path, settings, index)
    tsa_urls = timestamps.TimestampSettings.from_settings(settings).tsa_urls
    with index.transaction() as conn:
        if conn.execute("SELECT 1 FROM captures WHERE id = ?", (row["id"],)).fetchone() is None:
            job = _job(index, p["job_id"]) or {"id": p["job_id"], "attempts": p.get("attempt"), "state": None,
                                               "options": {}, "requested_by": p.get("requested_by"), "tags": [],
                                               "priority": 0, "max_attempts": 1}
            finish = owner is not None and job.get("lease_owner") == owner and job.get("state") == "running"
            if job.get("state") is None:
                row = {**row, "job_id": None}
            commit_capture(index, conn, job, owner or job.get("lease_owner") or "settled", row, capture.records,
                           capture.outlinks, started_at=started_at or p.get("started_at") or now_iso(),
                           backoff=backoff, key_fingerprint=key.fingerprint, tsa_urls=tsa_urls,
                           discovered=p.get("discovered") or [], follow=int(p.get("follow_depth") or 0),
                           finish_job=finish)
    return row


def settle_storing(archive: Archive, index: Index, job: dict[str, Any], owner: str, started_at: str,
                   backoff: dict[str, float]) -> dict[str, Any] | None:
    """Before a job is captured: the WARC its last runner named as being put into the store (``jobs.storing``,
    written before the PUT), if that runner stopped before indexing it. Stored: indexed from the store, read back
    as reindex reads it, as this attempt's capture (the row; no second capture of the page). Not stored, or
    indexed already: None, capture as usual. The store not answering raises StorageUnavailable: whether the
    object is there is unknown, so the page is not captured again yet.

    This is what lets any runner settle a seal whose host is lost with its tmp/: the object alone suffices."""
    from archiver.custody.reindex import NotACapture, read_object
    from archiver.store.blobs import NotStored, StorageUnavailable
    rel = job.get("storing")
    if not rel:
        return None
    capture_id = Path(rel).name.split(".", 1)[0]
    if index.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone() is not None:
        return None
    try:
        archive.store().head(warc_key(rel))
    except NotStored:
        return None   # the runner stopped before (or during) the PUT: nothing was stored
    try:
        capture = read_object(archive.store(), warc_key(rel), rel)
    except NotACapture as exc:
        if isinstance(exc.__cause__, StorageUnavailable):
            raise exc.__cause__ from None
        # Unreadable, or not one of ours: verify names the object; the job is captured again.
        logs.event(log, logging.ERROR, "seal-unsettled", f"capture {capture_id} of job {job['id']} is in the store "
                   f"but cannot be indexed ({exc}); capturing the job again", job_id=job["id"], capture_id=capture_id)
        return None
    row = _index_read(archive, index, capture, capture.row, owner=owner, started_at=started_at, backoff=backoff)
    logs.event(log, logging.WARNING, "seal-finished", f"indexed capture {row['id']} from the store: its runner "
               f"stored it and stopped before indexing it", capture_id=row["id"], url=row["url"], job_id=job["id"])
    return row


def settle_unstored(archive: Archive, index: Index) -> int:
    """Unstored files (a storage outage) whose job is no longer waiting for them -- captured by a runner on
    another host meanwhile, or given up: stored and indexed as evidence of their own. Those whose job is queued
    wait for its next attempt here (``take_unstored``). Returns how many were stored."""
    from archiver.store.blobs import StorageError
    done = 0
    for path in unstored_of(archive.path):
        job = _job(index, int(path.name.split(".")[1]))
        if job is not None and job["state"] in ("queued", "running"):
            continue
        try:
            index_from_file(archive, index, path, _rel_path(archive, path.name.split(".", 1)[0]), owner=None)
            done += 1
        except StorageError:
            return done   # the store is still away; try again later
    return done
