"""Fixity: re-hash every sealed WARC and every record's payload against the index, check each capture's
signature and RFC 3161 timestamp tokens (timestamps.py), and find WARCs that the index does not know.

Memory use grows neither with file size nor with the size of the archive: files are hashed in chunks, captures
are read from the index a page at a time, the files in warcs/ are looked up in the index one by one as the
directory is read, and problems are counted and handed on as they are found (``Report.on_problem``), keeping only
the first few (``Report.keep``)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from archiver.custody import keys, ledger, timestamps
from archiver.store.index import Index
from archiver.store.blobs import Stores
from archiver.store.files import HashingReader
from archiver.store.warc import WARC_DIR, sha256_file


@dataclass
class Problem:
    kind: str                 # missing | altered | record-altered | unreadable | unindexed | ledger-broken |
                              # ledger-missing | index-altered | signature-invalid | timestamp-missing |
                              # timestamp-altered | timestamp-invalid | timestamp-unindexed |
                              # received-missing | received-altered | received-unindexed (a file received from
                              # others, archiver receive; its receipt's timestamps have the timestamp-* kinds, with
                              # no capture_id)
    path: str                 # relative to the archive
    capture_id: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"problem": self.kind, "path": self.path, "capture_id": self.capture_id, "detail": self.detail}


@dataclass
class Report:
    captures: int = 0
    records: int = 0
    bytes: int = 0
    ledger_entries: int = 0
    signed: int = 0
    unsigned: int = 0
    received: int = 0         # files received from others (archiver receive), re-hashed against their receipts
    timestamps: dict[str, int] = field(default_factory=lambda: {"verified": 0, "pending": 0, "failed": 0})
    # The problems kept: all of them, or the first ``keep`` (every one is counted in ``problem_count`` and handed to
    # ``on_problem`` as it is found, so that a damaged archive of a million captures is reported whole without
    # being held in memory).
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    keep: int | None = None
    on_problem: Callable[[Problem], None] | None = field(default=None, repr=False, compare=False)
    # The key each capture found signed was signed with (capture id -> fingerprint): who made it, for import.
    # Not kept by a verification of the whole archive (``keep_signers``), where it would grow with it.
    signers: dict[str, str] = field(default_factory=dict)
    keep_signers: bool = True
    # What the check of the ledger covered (``as_dict``'s "ledger"; see ``verify``).
    ledger: dict[str, Any] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if self.keep is None or len(self.problems) < self.keep:
            self.problems.append(problem)
        if self.on_problem is not None:
            self.on_problem(problem)

    @property
    def ok(self) -> bool:
        return not self.problem_count and not self.problems

    def as_dict(self, problems: bool = True) -> dict[str, Any]:
        data = {"ok": self.ok, "captures": self.captures, "records": self.records, "bytes": self.bytes,
                "ledger_entries": self.ledger_entries, "signed": self.signed, "unsigned": self.unsigned,
                "received": self.received,
                "timestamps": dict(self.timestamps), "problem_count": max(self.problem_count, len(self.problems)),
                "ledger": dict(self.ledger)}
        if problems:
            data["problems"] = [p.as_dict() for p in self.problems]
        return data


# Records whose payload verify also reads (both small JSON documents written by us): the signed provenance
# and its signature.
SIGNED_PREFIXES = ("urn:provenance:", "urn:signature:")


# Bytes of a payload hashed at a time: large reads keep Python's per-call cost out of the hashing rate.
READ_SIZE = 1 << 20
# Compressed bytes warcio reads and inflates at a time (its default is 16 KiB). Larger is faster, but warcio
# inflates a block whole, and a block of a hostile (altered) file may inflate ~1000-fold: 64 KiB bounds one
# step at ~64 MiB.
INFLATE_BLOCK = 1 << 16
# Files from this size on are hashed in threads (verify_capture); below it, starting them costs more than it saves.
PARALLEL_MIN = 16 << 20


def _payload_digest(record: Any, keep: bool = False, pool: Executor | None = None,
                    rehash: bool = True) -> tuple[str, bytes | None]:
    """The payload's SHA-256 (streamed), and the payload itself when ``keep``. With ``pool``, each chunk is hashed
    there while the next one is read and inflated here; one chunk at a time is in flight, so memory stays
    bounded (hashlib and zlib release the GIL, so the two really run at once on two cores). ``rehash=False``: the
    record's own WARC-Payload-Digest, the payload read through but not hashed."""
    kept = bytearray() if keep else None
    stream = record.raw_stream
    if not rehash:
        # Read through (the next record starts after it), keeping only what the signature check needs.
        while chunk := stream.read(READ_SIZE):
            if kept is not None:
                kept += chunk
        declared = record.rec_headers.get_header("WARC-Payload-Digest") or ""
        return declared, bytes(kept) if kept is not None else None
    h = hashlib.sha256()
    pending: Future[None] | None = None
    while chunk := stream.read(READ_SIZE):
        if pending is not None:
            pending.result()
        if pool is not None:
            pending = pool.submit(h.update, chunk)
        else:
            h.update(chunk)
        if kept is not None:
            kept += chunk
    if pending is not None:
        pending.result()
    return "sha256:" + h.hexdigest(), bytes(kept) if kept is not None else None


def verify_stored(store: Any, capture: dict[str, Any], records: list[dict[str, Any]], report: Report,
                  storage: Any = None) -> None:
    """``verify_capture`` for a capture whose WARC is an object in a store (schema 7's ``warc_store``): the object
    re-hashed as it streams in while its records are checked, and its Object Lock against ``storage`` (the
    [storage] settings): the retention mode asked for, until no earlier than retention_days after the capture."""
    from archiver.store.archive import warc_key
    from archiver.store.blobs import NotStored, StorageError
    rel, key, version = capture["warc_path"], warc_key(capture["warc_path"]), capture.get("warc_version")
    report.captures += 1
    try:
        info = store.head(key, version)
    except NotStored:
        report.add(Problem("missing", rel, capture["id"], f"the sealed object {store.location(key)}"
                           + (f" (version {version})" if version else "") + " is not there"))
        return
    except StorageError as exc:
        report.add(Problem("unreadable", rel, capture["id"], f"cannot read the WARC: {exc}"))
        return
    _check_lock(info, capture, storage, report)
    found: list[Problem] = []
    try:
        with store.open(key, version) as stream:
            hashing = HashingReader(stream)
            signed = _check_records_in(lambda: contextlib.nullcontext(hashing), capture, records, report, found, None)
            digest, size = hashing.drain()
    except StorageError as exc:
        report.add(Problem("unreadable", rel, capture["id"], f"cannot read the WARC: {exc}"))
        return
    _conclude(capture, "object", digest, size, found, signed, report)


def _check_lock(info: Any, capture: dict[str, Any], storage: Any, report: Report) -> None:
    mode = getattr(storage, "retention_mode", "") if storage is not None else ""
    if not mode:
        return
    from datetime import datetime, timedelta
    sealed_at = datetime.fromisoformat(capture["finished_at"].replace("Z", "+00:00"))
    # The lock is set at the put, just after the capture finished: it must reach at least this far (S3 keeps the
    # date to the second).
    wanted = (sealed_at + timedelta(days=storage.retention_days)).replace(microsecond=0)
    if info.lock_mode != mode or info.locked_until is None or info.locked_until < wanted:
        report.add(Problem("unlocked", capture["warc_path"], capture["id"],
                           f"the object is under {info.lock_mode or 'no'} retention until "
                           f"{info.locked_until.isoformat() if info.locked_until else '-'}; the settings demand "
                           f"{mode} until at least {wanted.isoformat()}"))


def verify_capture(archive_dir: Path, capture: dict[str, Any], records: list[dict[str, Any]], report: Report) -> None:
    rel = capture["warc_path"]
    path = archive_dir / rel
    report.captures += 1
    if not path.is_file():
        report.add(Problem("missing", rel, capture["id"], "the sealed WARC is not there"))
        return
    # The file's own problem comes first in the report, then its records' (found while the file is hashed).
    found: list[Problem] = []
    try:
        if path.stat().st_size < PARALLEL_MIN:
            digest, size = sha256_file(path)
            signed = _check_records(path, capture, records, report, found, None)
        else:
            # A large file (a video): its SHA-256 is computed in a second thread while this one reads its records
            # through, checking each record's recorded payload digest against the index without hashing the
            # payload again. When the file's SHA-256 is the sealed one, every byte is as sealed, so hashing each
            # payload a second time can find nothing more: it would double the work (verify ran at ~0.74x
            # `openssl dgst -sha256` with it, two SHA-256 passes on two cores). When the file is altered, it is read
            # again with every payload re-hashed, in two threads, to name the records that changed.
            pool = ThreadPoolExecutor(2, thread_name_prefix="verify-hash")
            try:
                file_hash = pool.submit(sha256_file, path)
                records_before = report.records
                signed = _check_records(path, capture, records, report, found, None, rehash=False)
                digest, size = file_hash.result()
                if digest != capture["warc_sha256"]:
                    found.clear()
                    report.records = records_before
                    signed = _check_records(path, capture, records, report, found, pool)
            finally:
                pool.shutdown(cancel_futures=True)
    except OSError as exc:   # a file there that cannot be read (permissions, a failing disk): named, and go on
        report.add(Problem("unreadable", rel, capture["id"], f"cannot read the WARC: {exc.strerror or exc}"))
        return
    _conclude(capture, "file", digest, size, found, signed, report)


def _conclude(capture: dict[str, Any], what: str, digest: str, size: int, found: list[Problem],
              signed: dict[str, bytes] | None, report: Report) -> None:
    """A WARC read through (a file or an object): its own problem first, then its records', then its signature."""
    report.bytes += size
    if digest != capture["warc_sha256"]:
        report.add(Problem("altered", capture["warc_path"], capture["id"],
                           f"{what} SHA-256 is {digest}, the index recorded {capture['warc_sha256']}"))
    for problem in found:
        report.add(problem)
    if signed is not None:
        _check_signature(capture, signed, report)


def _check_records(path: Path, capture: dict[str, Any], records: list[dict[str, Any]], report: Report,
                   found: list[Problem], pool: Executor | None, rehash: bool = True) -> dict[str, bytes] | None:
    """Every record's payload in the file against the index, problems into ``found``. Returns the signed
    payloads (provenance and signature) for the signature check, or None when the file cannot be read through.
    ``rehash=False``: each record's recorded WARC-Payload-Digest is compared instead of its payload re-hashed (for
    a file whose own SHA-256 is checked against the seal beside it: verify_capture)."""
    return _check_records_in(lambda: open(path, "rb"), capture, records, report, found, pool, rehash)


def _check_records_in(opener: Callable[[], Any], capture: dict[str, Any], records: list[dict[str, Any]],
                      report: Report, found: list[Problem], pool: Executor | None,
                      rehash: bool = True) -> dict[str, bytes] | None:
    """``_check_records`` of the stream ``opener()`` opens (a file, or an object as it streams in)."""
    rel = capture["warc_path"]
    expected = {r["offset"]: r for r in records}
    signed: dict[str, bytes] = {}   # "provenance" / "signature" -> payload
    seen = 0
    try:
        with opener() as fh:
            iterator = ArchiveIterator(fh, check_digests=False, block_size=INFLATE_BLOCK)
            for record in iterator:
                uri = record.rec_headers.get_header("WARC-Target-URI") or record.rec_type
                # Read the payload first: asking for the offset makes warcio skip past the record.
                got, payload = _payload_digest(record, keep=uri.startswith(SIGNED_PREFIXES), pool=pool,
                                               rehash=rehash)
                if payload is not None:
                    signed[uri.split(":", 2)[1]] = payload
                offset = iterator.get_record_offset()
                want = expected.get(offset)
                if want is None:
                    found.append(Problem("record-altered", rel, capture["id"],
                                         f"unindexed record at offset {offset} ({uri})"))
                elif want["payload_digest"] and got != want["payload_digest"]:
                    found.append(Problem("record-altered", rel, capture["id"],
                                         f"payload of {want['type']} record {uri} at offset {offset} "
                                         f"hashes to {got}, the index recorded {want['payload_digest']}"))
                seen += 1
                report.records += 1
    except (ArchiveLoadFailed, OSError, EOFError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        found.append(Problem("unreadable", rel, capture["id"],
                             f"cannot read the WARC after {seen} record(s): {reason.encode('ascii', 'replace').decode()}"))
        return None
    if seen != len(records):
        found.append(Problem("record-altered", rel, capture["id"],
                             f"{seen} records in the file, {len(records)} in the index"))
    return signed


def _check_signature(capture: dict[str, Any], signed: dict[str, bytes], report: Report) -> None:
    """The provenance record against the capture's signature record (captures sealed before signing began
    have none; they are counted, not failed)."""
    if "signature" not in signed:
        report.unsigned += 1
        return
    try:
        record = json.loads(signed["signature"])
    except ValueError:
        record = {}
    why = keys.check_signature(record, signed.get("provenance", b""))
    if why is not None:
        report.add(Problem("signature-invalid", capture["warc_path"], capture["id"], why))
    else:
        report.signed += 1
        if report.keep_signers:
            report.signers[capture["id"]] = record["key_fingerprint"]


# What the index says about a sealed file, and what the ledger recorded when it was sealed: they must agree.
SEALED_FACTS = ("warc_path", "warc_sha256", "warc_size")
# The ledger events that record a sealed file coming into the index: sealed here, found by the ledger's
# first run (backfilled), rebuilt (reindexed) or brought from elsewhere (imported).
SEALING_EVENTS = "'sealed', 'backfilled', 'reindexed', 'imported'"


def check_against_ledger(conn: Any, capture: dict[str, Any], report: Report) -> None:
    """The capture's index row against its ``sealed`` (or ``backfilled``) ledger entry: an index row edited
    after sealing (a hash replaced to match a replaced file) shows here even when the file verifies."""
    row = conn.execute(f"SELECT seq, detail FROM ledger WHERE capture_id = ? AND event IN ({SEALING_EVENTS}) "
                       "ORDER BY seq LIMIT 1", (capture["id"],)).fetchone()
    if row is None:
        report.add(Problem("ledger-missing", capture["warc_path"], capture["id"],
                                       "the ledger has no entry for the sealing of this capture"))
        return
    sealed = json.loads(row["detail"])
    differing = [f for f in SEALED_FACTS if sealed.get(f) != capture[f]]
    if differing:
        report.add(Problem("index-altered", capture["warc_path"], capture["id"],
                                       f"the index row's {', '.join(differing)} differ from ledger entry "
                                       f"{row['seq']}, made when the file was sealed"))


def check_timestamps(archive_dir: Path, conn: Any, capture: dict[str, Any], ca_bundle: Path | None,
                     report: Report, store: Any = None) -> None:
    """Each granted timestamp of the capture: its token file as indexed, vouching for this WARC's SHA-256, with a
    signature openssl accepts (and a chain to ``ca_bundle`` when set), as the ledger recorded it. Pending and
    given-up timestamps are counted, not failed: no token is no claim."""
    _check_rows(archive_dir, conn, timestamps.of_capture(conn, capture["id"]), capture["warc_sha256"], ca_bundle,
                report, store, capture["id"], lambda rel: rel)


def check_receipt_timestamps(archive_dir: Path, conn: Any, receipt: dict[str, Any], ca_bundle: Path | None,
                             report: Report, store: Any) -> None:
    """Each granted timestamp of a receipt, as ``check_timestamps`` checks a capture's, against the SHA-256 of the
    receipt file as it is in ``store`` now (a receipt file changed since it was timestamped shows as tokens that
    no longer vouch for it). ``receipt``: its row (id, sha256, path, store)."""
    from archiver.exchange.receive import RECEIPT_SUFFIX
    rows = timestamps.of_receipt(conn, receipt["id"])
    digest = None
    if any(row["state"] == "done" for row in rows):
        try:
            digest = hashlib.sha256(timestamps.receipt_file(store, receipt)).hexdigest()
        except timestamps.ReceiptFileError as exc:
            report.add(Problem("timestamp-invalid", store.location(receipt["path"] + RECEIPT_SUFFIX), None,
                               f"receipt {receipt['id']}: its timestamp token(s) cannot be checked: {exc}"))
            rows = [row for row in rows if row["state"] != "done"]
    where = (lambda rel: store.location(rel)) if receipt["store"] else (lambda rel: rel)
    _check_rows(archive_dir, conn, rows, digest or "", ca_bundle, report, store, None, where)


def _check_rows(archive_dir: Path, conn: Any, rows: list[dict[str, Any]], digest: str, ca_bundle: Path | None,
                report: Report, store: Any, capture_id: str | None, where: Callable[[str], str]) -> None:
    """The timestamps ``rows`` of one capture (``capture_id``) or receipt (None), each ``done`` one's token
    against ``digest`` and its ``timestamped`` ledger entry; ``where`` names a token's path for people."""
    for row in rows:
        if row["state"] != "done":
            report.timestamps[row["state"]] = report.timestamps.get(row["state"], 0) + 1
            continue
        found = timestamps.check_token(archive_dir, row, digest, ca_bundle, conn, store)
        # A receipt's entries have no capture_id: found by the token's path among the entries without one (few
        # beside the captures').
        entry = conn.execute("SELECT seq, detail FROM ledger WHERE "
                             + ("capture_id = ?" if capture_id else "capture_id IS NULL")
                             + f" AND event = 'timestamped' AND {conn.sql_json_text('detail', 'token_path')} = ? "
                             "ORDER BY seq LIMIT 1", (*([capture_id] if capture_id else []), row["token_path"])
                             ).fetchone()
        if entry is not None and json.loads(entry["detail"]).get("token_sha256") != row["token_sha256"]:
            found.append(timestamps.TokenProblem("index-altered", row["token_path"], f"the timestamp row's token "
                                                 f"SHA-256 differs from ledger entry {entry['seq']}"))
        for p in found:
            report.add(Problem(p.kind, where(p.path), capture_id, p.detail))
        if not found:
            report.timestamps["verified"] += 1


# A verify of named captures walks the entries appended since the last whole-chain walk when there are at most
# this many (about 0.1 s); beyond that it says which it left to a full `archiver verify`.
FORWARD_WALK_LIMIT = 10_000


def verify(archive_dir: Path, index: Index, ids: list[str] | None = None, settings: Any = None,
           report: Report | None = None) -> Report:
    """Check the given captures (all when ``ids`` is empty; then also look for unindexed files), their index
    rows against the ledger, their timestamps (chains against ``timestamp.ca_bundle`` of ``settings``), and the
    ledger: its whole chain, or for named captures their own entries where they stand in it (``check_ledger_of``).
    ``report`` says how problems are kept and handed on; by default all are kept."""
    report = report if report is not None else Report()
    ca_bundle = timestamps.TimestampSettings.from_settings(settings).ca_bundle if settings is not None else None
    if ids:
        # Every ID is resolved before anything is checked: an unknown one is named, and nothing else is said.
        captures: Any = [index.find_capture(i) for i in ids]
        check_ledger_of(index.conn, captures, report)
    else:
        report.keep_signers = False
        check_whole_ledger(index.conn, report)
        captures = index.all_captures_for_verify()
    stores = Stores(archive_dir, settings)
    for capture in captures:
        if capture.get("warc_store"):
            verify_stored(stores.of(capture["warc_store"]), capture, index.capture_records(capture["id"]), report,
                          stores.storage)
        else:
            verify_capture(archive_dir, capture, index.capture_records(capture["id"]), report)
        check_against_ledger(index.conn, capture, report)
        check_timestamps(archive_dir, index.conn, capture, ca_bundle, report,
                         stores.of(capture["warc_store"]) if capture.get("warc_store") else None)
    if not ids:
        verify_received(archive_dir, index, settings, report)
        find_unindexed(archive_dir, index.conn, report)
        from archiver.store.local import LocalStore
        find_unindexed_received(LocalStore(archive_dir, read_only=True), index.conn, report)
        if settings is not None and settings["storage"]["url"]:
            find_unindexed_objects(stores.of(settings["storage"]["url"]), index.conn, report)
            find_unindexed_received(stores.of(settings["storage"]["url"]), index.conn, report)
    return report


def verify_received(archive_dir: Path, index: Index, settings: Any, report: Report) -> None:
    """Every file received from others (archiver receive) re-hashed, streaming, against its receipt: as received,
    or ``received-missing`` / ``received-altered``. What was found in it on receipt (digests that did not hold) is
    the receipt's, not a problem of the archive's: it was received so. The receipt's timestamps are checked as a
    capture's are (``check_receipt_timestamps``)."""
    from archiver.store.blobs import NotStored, StorageError
    from archiver.store.local import LocalStore
    stores = Stores(archive_dir, settings) if settings is not None else None
    ca_bundle = timestamps.TimestampSettings.from_settings(settings).ca_bundle if settings is not None else None
    for receipt in index.conn.execute("SELECT id, sha256, size, path, store, version FROM receipts ORDER BY id"
                                      ).fetchall():
        receipt = dict(receipt)
        store = stores.of(receipt["store"]) if receipt["store"] and stores else LocalStore(archive_dir, read_only=True)
        where = store.location(receipt["path"])
        try:
            digest, size = store.sha256_of(receipt["path"], receipt["version"])
        except (NotStored, FileNotFoundError):
            report.add(Problem("received-missing", where, None, f"received file {receipt['id']} is not there"))
        except (StorageError, OSError) as exc:
            report.add(Problem("unreadable", where, None, f"received file {receipt['id']}: {exc}"))
        else:
            report.received += 1
            report.bytes += size
            if digest != receipt["sha256"] or size != receipt["size"]:
                report.add(Problem("received-altered", where, None,
                                   f"received file {receipt['id']}: SHA-256 {digest} ({size} bytes), received as "
                                   f"{receipt['sha256']} ({receipt['size']} bytes)"))
        check_receipt_timestamps(archive_dir, index.conn, receipt, ca_bundle, report, store)


def find_unindexed_received(store: Any, conn: Any, report: Report) -> None:
    """Files received from others (``received/`` in ``store``: the archive directory, or the bucket) that no receipts
    row names (``received-unindexed``): a receive stopped after it put the file (and its receipt beside it), before
    its row was written. Such an object cannot be removed from a bucket with Object Lock, and must not go unexplained:
    each is named, with what restores it -- ``archiver reindex`` from its receipt, or receiving the same bytes again
    (which puts no second copy). Keys are listed in order, so a file and its ``.receipt.json`` come together; each
    is looked up in the index by its name (the SHA-256 the key is named by, or the receipt ID of a key from before
    content keys), in constant memory. A receipt's RFC 3161 tokens beside it (``.receipt.json.<n>.tsr`` and their
    ``.tsr.json`` sidecars) are not received files: each is looked up among the timestamps rows instead
    (``timestamp-unindexed`` when none names it, as a token in warcs/)."""
    from archiver.exchange.receive import RECEIPT_SUFFIX
    from archiver.store.blobs import StorageError

    def judge(base: str, keys: set[str]) -> None:
        stem = base.rsplit("/", 1)[-1].split(".", 1)[0]
        if conn.execute("SELECT 1 FROM receipts WHERE (sha256 = ? OR id = ?) AND path = ?",
                        (stem, stem, base)).fetchone() is not None:
            return
        if base + RECEIPT_SUFFIX not in keys:
            why = ("a file received from others with no receipt beside it and no receipts row: its receive stopped "
                   "after putting it, before its receipt; receiving the same file again records it (one copy is kept)")
        elif base not in keys:
            why = (f"a receipt ({base}{RECEIPT_SUFFIX}) with no received file beside it and no receipts row: the file "
                   f"it names is not there")
        else:
            why = (f"a file received from others, with its receipt ({base}{RECEIPT_SUFFIX}), that no receipts row "
                   f"names: its receive stopped before indexing it; `archiver reindex` restores it from the receipt "
                   f"(so does receiving the same file again, keeping one copy)")
        report.add(Problem("received-unindexed", store.location(base), None, why))

    base, keys = None, set()
    try:
        for item in store.list("received/"):
            if item.key.endswith((timestamps.TOKEN_SUFFIX, timestamps.SIDECAR_SUFFIX)):
                if conn.execute("SELECT 1 FROM timestamps WHERE token_path = ?",
                                (timestamps.token_of(item.key),)).fetchone() is None:
                    report.add(Problem("timestamp-unindexed", store.location(item.key), None,
                                       "a receipt's timestamp token (or its sidecar) that no index row names"))
                continue
            this = item.key[:-len(RECEIPT_SUFFIX)] if item.key.endswith(RECEIPT_SUFFIX) else item.key
            if this != base:
                if base is not None:
                    judge(base, keys)
                base, keys = this, set()
            keys.add(item.key)
        if base is not None:
            judge(base, keys)
    except StorageError as exc:
        report.add(Problem("unreadable", store.url, None, f"cannot list the received files in the store: {exc}"))


def find_unindexed_objects(store: Any, conn: Any, report: Report) -> None:
    """Objects in the archive's store that no index row names: WARCs (``unindexed``) -- e.g. one stored by a runner
    that stopped before indexing it, which the next runner on its host settles -- and timestamp tokens."""
    from archiver.store.blobs import StorageError
    try:
        for item in store.list():
            if item.key.startswith("received/"):   # files received from others: verify_received checks them
                continue
            rel = "warcs/" + item.key
            if item.key.endswith(".warc.gz"):
                if conn.execute("SELECT 1 FROM captures WHERE warc_path = ?", (rel,)).fetchone() is None:
                    report.add(Problem("unindexed", store.location(item.key), None,
                                       "an object in the store that the index does not know"))
            elif item.key.endswith((timestamps.TOKEN_SUFFIX, timestamps.SIDECAR_SUFFIX)):
                if conn.execute("SELECT 1 FROM timestamps WHERE token_path = ?",
                                (timestamps.token_of(rel),)).fetchone() is None:
                    report.add(Problem("timestamp-unindexed", store.location(item.key), None,
                                       "a timestamp token (or its sidecar) in the store that no index row names"))
    except StorageError as exc:
        report.add(Problem("unreadable", store.url, None, f"cannot list the store: {exc}"))


def check_whole_ledger(conn: Any, report: Report) -> None:
    """Walk the whole chain (``ledger.walk``): the first broken entry is a problem."""
    walked = ledger.walk(conn)
    report.ledger_entries = walked.entries
    report.ledger = {"scope": "chain", "entries": walked.entries, "intact": walked.broken is None,
                     "walked": {"from": walked.first, "to": walked.last} if walked.entries else None}
    if walked.broken is not None:
        report.ledger_entries = ledger_size(conn)
        report.ledger["entries"] = report.ledger_entries
        report.ledger["broken"] = walked.broken.as_dict()
        report.add(Problem("ledger-broken", "index.db", None, f"ledger entry {walked.broken.seq} {walked.broken.reason}"))
    else:
        report.ledger["to_hash"] = walked.last_hash


def ledger_size(conn: Any) -> int:
    """The seq of the newest entry: the length of an intact chain (gaps are the walk's to find)."""
    return conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0] or 0


def check_ledger_of(conn: Any, captures: list[dict[str, Any]], report: Report) -> None:
    """The ledger as it concerns named captures, in constant time at any length of ledger (no whole walk):

    * each capture's own entries (and its job's) against their hashes, each linked to the entries before and after
      it (``ledger.check_entries``): an entry changed, re-hashed, removed or inserted there shows;
    * the newest whole-chain walk on record (a ``verified`` entry of a full ``archiver verify``, which records
      how far it walked and that it was intact), and the entries appended since then, walked now from the head that
      walk reached, when there are at most FORWARD_WALK_LIMIT of them.

    So a court can be told which of these held now, and when the whole chain was last walked and found intact.
    Why not walk it all: at a million captures that is 3 million entries (a minute); a full ``archiver verify``
    does it, and records that it did, which is what this reads. What a partial check cannot see -- an entry far
    from these captures changed since the last full walk -- is said in the output (``ledger``: ``walked``)."""
    newest = ledger_size(conn)
    own = 0
    broken: ledger.Broken | None = None
    for capture in captures:
        entries = ledger.entries(conn, capture_id=capture["id"], job_id=capture.get("job_id"))
        own += len(entries)
        broken = broken or ledger.check_entries(conn, entries)
    last, searched_to = ledger.last_full_walk(conn)
    walked: dict[str, Any] | None = None
    start = None
    if last is not None:
        to_hash = last["to_hash"] or (ledger.entry_at(conn, last["to"]) or {}).get("hash")
        start = (last["to"], to_hash) if to_hash else None
    if broken is None and start is not None and newest - start[0] <= FORWARD_WALK_LIMIT:
        done = ledger.walk(conn, after=start)
        walked = {"from": start[0] + 1, "to": done.last if done.broken is None else None, "entries": done.entries}
        broken = done.broken
    report.ledger_entries = newest
    report.ledger = {"scope": "captures", "entries": newest, "intact": broken is None, "capture_entries": own,
                     "last_full_walk": last, "walked": walked,
                     "not_walked": _not_walked(newest, last, walked, searched_to)}
    if broken is not None:
        report.ledger["broken"] = broken.as_dict()
        report.add(Problem("ledger-broken", "index.db", None, f"ledger entry {broken.seq} {broken.reason}"))


def _not_walked(newest: int, last: dict[str, Any] | None, walked: dict[str, Any] | None, searched_to: int) -> str:
    """The entries a verify of named captures did not walk now, in words."""
    if last is None:
        where = "on record" if searched_to <= 1 else f"since entry {searched_to} (the search stopped there)"
        return (f"entries 1-{newest} were not walked now, and no `archiver verify` of the whole archive walked the "
                f"chain and found it intact {where}; run one") if newest else ""
    since = f"; entries {last['to'] + 1}-{newest}, appended since, were not walked either" \
        if walked is None and newest > last["to"] else ""
    return (f"entries 1-{last['to']} were not walked now; they were walked in full and found intact at "
            f"{last['at']} (ledger entry {last['entry']}){since}")


def find_unindexed(archive_dir: Path, conn: Any, report: Report) -> None:
    """Files in warcs/ that no index row names: WARCs (``unindexed``), and timestamp tokens or their sidecars
    (``timestamp-unindexed``) -- a token nobody recorded is a claim nobody checks.

    The directory is read as it is walked, and each file looked up in the index (warc_path is unique, so indexed;
    a token is looked up among its capture's timestamps, whose id starts its name): constant memory at any size.
    A file is placed in warcs/ only after its row is committed, so a capture sealed meanwhile is found."""
    def unlistable(rel: str, exc: OSError) -> None:
        report.add(Problem("unreadable", rel, None, f"cannot list the directory ({exc.strerror or exc}): files in "
                                                   "it were not checked for an index row"))

    for path, rel in _walk_files(archive_dir / WARC_DIR, archive_dir, unlistable):
        if rel.endswith(".warc.gz"):
            if conn.execute("SELECT 1 FROM captures WHERE warc_path = ?", (rel,)).fetchone() is None:
                report.add(Problem("unindexed", rel, None, "a WARC in warcs/ that the index does not know"))
        elif rel.endswith((timestamps.TOKEN_SUFFIX, timestamps.SIDECAR_SUFFIX)):
            token = timestamps.token_of(rel)
            capture_id = token.rsplit("/", 1)[-1].split(".", 1)[0]
            if conn.execute("SELECT 1 FROM timestamps WHERE capture_id = ? AND token_path = ?",
                            (capture_id, token)).fetchone() is None and \
                    conn.execute("SELECT 1 FROM timestamps WHERE token_path = ?", (token,)).fetchone() is None:
                report.add(Problem("timestamp-unindexed", rel, None,
                                   "a timestamp token (or its sidecar) in warcs/ that no index row names"))


def _walk_files(top: Path, archive_dir: Path,
               on_error: Callable[[str, OSError], None]) -> Iterator[tuple[Path, str]]:
    """Every file below ``top`` (path, path relative to the archive), directory by directory in name order, the
    files of each as the directory lists them: only the names of directories are ever held (warcs/ has one per
    day, and a day may hold a million files). A directory that cannot be listed goes to ``on_error``."""
    if not top.is_dir():
        return
    stack = [top]
    while stack:
        directory = stack.pop()
        subdirectories = []
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        subdirectories.append(entry.name)
                    elif entry.is_file():
                        path = Path(entry.path)
                        yield path, path.relative_to(archive_dir).as_posix()
        except OSError as exc:
            on_error(directory.relative_to(archive_dir).as_posix(), exc)
        stack.extend(directory / name for name in sorted(subdirectories, reverse=True))


def record_verification(index: Index, report: Report, ids: list[str]) -> bool:
    """Append the outcome of a verification to the ledger (``verified``). False when the index cannot be
    written (an archive on read-only media, as a third party may hold it): verifying needs no write.

    ``chain`` says what the ledger check covered; for a whole-archive verify with the chain intact it records the
    newest entry walked and its hash, which a later verify of one capture reads (``ledger.last_full_walk``)."""
    problems = [{"problem": p.kind, "capture_id": p.capture_id, "path": p.path} for p in report.problems]
    chain: dict[str, Any] = {"intact": bool(report.ledger.get("intact"))}
    if report.ledger.get("scope") == "chain":
        walked = report.ledger.get("walked") or {}
        chain.update({"from": walked.get("from"), "to": walked.get("to"), "to_hash": report.ledger.get("to_hash")})
    else:
        walked = report.ledger.get("walked") or {}
        chain.update({"capture_entries": report.ledger.get("capture_entries"), "from": walked.get("from"),
                      "to": walked.get("to")})
    try:
        with index.transaction() as conn:
            ledger.append(conn, "verified", detail={"ok": report.ok, "captures": report.captures,
                                                    "records": report.records, "bytes": report.bytes,
                                                    "ledger_entries": report.ledger_entries, "only": ids or None,
                                                    "problems": problems[:100],
                                                    "problem_count": max(report.problem_count, len(problems)),
                                                    "chain": chain})
    except sqlite3.OperationalError:
        return False
    return True
