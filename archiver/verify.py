"""Fixity: re-hash every sealed WARC and every record's payload against the index, check each capture's
signature and RFC 3161 timestamp tokens (timestamps.py), and find WARCs that the index does not know. Streams
everything in chunks, so memory use does not grow with file size."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from . import keys, ledger, timestamps
from .index import Index
from .warc import WARC_DIR, sha256_file


@dataclass
class Problem:
    kind: str                 # missing | altered | record-altered | unreadable | unindexed | ledger-broken |
                              # ledger-missing | index-altered | signature-invalid | timestamp-missing |
                              # timestamp-altered | timestamp-invalid | timestamp-unindexed
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
    timestamps: dict[str, int] = field(default_factory=lambda: {"verified": 0, "pending": 0, "failed": 0})
    problems: list[Problem] = field(default_factory=list)
    # The key each capture found signed was signed with (capture id -> fingerprint): who made it, for import.
    signers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "captures": self.captures, "records": self.records, "bytes": self.bytes,
                "ledger_entries": self.ledger_entries, "signed": self.signed, "unsigned": self.unsigned,
                "timestamps": dict(self.timestamps), "problems": [p.as_dict() for p in self.problems]}


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


def _payload_digest(record: Any, keep: bool = False, pool: Executor | None = None) -> tuple[str, bytes | None]:
    """The payload's SHA-256 (streamed), and the payload itself when ``keep``. With ``pool``, each chunk is hashed
    there while the next one is read and inflated here; one chunk at a time is in flight, so memory stays
    bounded (hashlib and zlib release the GIL, so the two really run at once on two cores)."""
    h = hashlib.sha256()
    kept = bytearray() if keep else None
    stream = record.raw_stream
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


def verify_capture(archive_dir: Path, capture: dict[str, Any], records: list[dict[str, Any]], report: Report) -> None:
    rel = capture["warc_path"]
    path = archive_dir / rel
    report.captures += 1
    if not path.is_file():
        report.problems.append(Problem("missing", rel, capture["id"], "the sealed WARC is not there"))
        return
    first = len(report.problems)
    if path.stat().st_size < PARALLEL_MIN:
        digest, size = sha256_file(path)
        _check_records(path, capture, records, report, None)
    else:
        # The whole file's SHA-256 is computed in a second thread while this one reads the records (two passes
        # over the file at once rather than one after the other), and each payload's SHA-256 in a third: so a
        # large file is verified at about `openssl dgst -sha256`'s speed on two cores.
        pool = ThreadPoolExecutor(2, thread_name_prefix="verify-hash")
        try:
            file_hash = pool.submit(sha256_file, path)
            _check_records(path, capture, records, report, pool)
            digest, size = file_hash.result()
        finally:
            pool.shutdown(cancel_futures=True)
    report.bytes += size
    # The file's own problem comes first in the report, whichever finished first.
    if digest != capture["warc_sha256"]:
        report.problems.insert(first, Problem("altered", rel, capture["id"],
                                              f"file SHA-256 is {digest}, the index recorded {capture['warc_sha256']}"))


def _check_records(path: Path, capture: dict[str, Any], records: list[dict[str, Any]], report: Report,
                   pool: Executor | None) -> None:
    """Every record's payload in the file against the index, then the capture's signature."""
    rel = capture["warc_path"]
    expected = {r["offset"]: r for r in records}
    signed: dict[str, bytes] = {}   # "provenance" / "signature" -> payload
    seen = 0
    try:
        with open(path, "rb") as fh:
            iterator = ArchiveIterator(fh, check_digests=False, block_size=INFLATE_BLOCK)
            for record in iterator:
                uri = record.rec_headers.get_header("WARC-Target-URI") or record.rec_type
                # Read the payload first: asking for the offset makes warcio skip past the record.
                got, payload = _payload_digest(record, keep=uri.startswith(SIGNED_PREFIXES), pool=pool)
                if payload is not None:
                    signed[uri.split(":", 2)[1]] = payload
                offset = iterator.get_record_offset()
                want = expected.get(offset)
                if want is None:
                    report.problems.append(Problem("record-altered", rel, capture["id"],
                                                   f"unindexed record at offset {offset} ({uri})"))
                elif want["payload_digest"] and got != want["payload_digest"]:
                    report.problems.append(Problem("record-altered", rel, capture["id"],
                                                   f"payload of {want['type']} record {uri} at offset {offset} "
                                                   f"hashes to {got}, the index recorded {want['payload_digest']}"))
                seen += 1
                report.records += 1
    except (ArchiveLoadFailed, OSError, EOFError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        report.problems.append(Problem("unreadable", rel, capture["id"],
                                       f"cannot read the WARC after {seen} record(s): {reason.encode('ascii', 'replace').decode()}"))
        return
    if seen != len(records):
        report.problems.append(Problem("record-altered", rel, capture["id"],
                                       f"{seen} records in the file, {len(records)} in the index"))
    _check_signature(capture, signed, report)


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
        report.problems.append(Problem("signature-invalid", capture["warc_path"], capture["id"], why))
    else:
        report.signed += 1
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
        report.problems.append(Problem("ledger-missing", capture["warc_path"], capture["id"],
                                       "the ledger has no entry for the sealing of this capture"))
        return
    sealed = json.loads(row["detail"])
    differing = [f for f in SEALED_FACTS if sealed.get(f) != capture[f]]
    if differing:
        report.problems.append(Problem("index-altered", capture["warc_path"], capture["id"],
                                       f"the index row's {', '.join(differing)} differ from ledger entry "
                                       f"{row['seq']}, made when the file was sealed"))


def check_timestamps(archive_dir: Path, conn: Any, capture: dict[str, Any], ca_bundle: Path | None,
                     report: Report) -> None:
    """Each granted timestamp of the capture: its token file as indexed, vouching for this WARC's SHA-256, with a
    signature openssl accepts (and a chain to ``ca_bundle`` when set), as the ledger recorded it. Pending and
    given-up timestamps are counted, not failed: no token is no claim."""
    for row in timestamps.of_capture(conn, capture["id"]):
        if row["state"] != "done":
            report.timestamps[row["state"]] = report.timestamps.get(row["state"], 0) + 1
            continue
        found = timestamps.check_token(archive_dir, row, capture["warc_sha256"], ca_bundle, conn)
        entry = conn.execute("SELECT seq, detail FROM ledger WHERE capture_id = ? AND event = 'timestamped' "
                             "AND json_extract(detail, '$.token_path') = ? ORDER BY seq LIMIT 1",
                             (capture["id"], row["token_path"])).fetchone()
        if entry is not None and json.loads(entry["detail"]).get("token_sha256") != row["token_sha256"]:
            found.append(timestamps.TokenProblem("index-altered", row["token_path"], f"the timestamp row's token "
                                                 f"SHA-256 differs from ledger entry {entry['seq']}"))
        for p in found:
            report.problems.append(Problem(p.kind, p.path, capture["id"], p.detail))
        if not found:
            report.timestamps["verified"] += 1


def verify(archive_dir: Path, index: Index, ids: list[str] | None = None, settings: Any = None) -> Report:
    """Check the given captures (all when ``ids`` is empty; then also look for unindexed files), their index
    rows against the ledger, their timestamps (chains against ``timestamp.ca_bundle`` of ``settings``), and the
    ledger's whole chain."""
    report = Report()
    ca_bundle = timestamps.TimestampSettings.from_settings(settings).ca_bundle if settings is not None else None
    report.ledger_entries, broken = ledger.check_chain(index.conn)
    if broken is not None:
        report.problems.append(Problem("ledger-broken", "index.db", None,
                                       f"ledger entry {broken.seq} {broken.reason}"))
    captures = index.all_captures_for_verify(ids)
    for capture in captures:
        verify_capture(archive_dir, capture, index.capture_records(capture["id"]), report)
        check_against_ledger(index.conn, capture, report)
        check_timestamps(archive_dir, index.conn, capture, ca_bundle, report)
    if not ids:
        find_unindexed(archive_dir, {c["warc_path"] for c in captures}, timestamps.token_paths(index.conn), report)
    return report


def find_unindexed(archive_dir: Path, warcs: set[str], tokens: set[str], report: Report) -> None:
    """Files in warcs/ that no index row names: WARCs (``unindexed``), and timestamp tokens or their sidecars
    (``timestamp-unindexed``) -- a token nobody recorded is a claim nobody checks."""
    for path in sorted((archive_dir / WARC_DIR).rglob("*")):
        rel = path.relative_to(archive_dir).as_posix()
        if not path.is_file():
            continue
        if rel.endswith(".warc.gz") and rel not in warcs:
            report.problems.append(Problem("unindexed", rel, None, "a WARC in warcs/ that the index does not know"))
        elif rel.endswith((timestamps.TOKEN_SUFFIX, timestamps.SIDECAR_SUFFIX)) and \
                timestamps.token_of(rel) not in tokens:
            report.problems.append(Problem("timestamp-unindexed", rel, None,
                                           "a timestamp token (or its sidecar) in warcs/ that no index row names"))


def record_verification(index: Index, report: Report, ids: list[str]) -> bool:
    """Append the outcome of a verification to the ledger (``verified``). False when the index cannot be
    written (an archive on read-only media, as a third party may hold it): verifying needs no write."""
    problems = [{"problem": p.kind, "capture_id": p.capture_id, "path": p.path} for p in report.problems]
    try:
        with index.transaction() as conn:
            ledger.append(conn, "verified", detail={"ok": report.ok, "captures": report.captures,
                                                    "records": report.records, "bytes": report.bytes,
                                                    "ledger_entries": report.ledger_entries, "only": ids or None,
                                                    "problems": problems[:100], "problem_count": len(problems)})
    except sqlite3.OperationalError:
        return False
    return True
