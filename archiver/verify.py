"""Fixity: re-hash every sealed WARC and every record's payload against the index, and find WARCs that
the index does not know. Streams everything in chunks, so memory use does not grow with file size."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from .index import Index
from .warc import WARC_DIR, sha256_file


@dataclass
class Problem:
    kind: str                 # missing | altered | record-altered | unreadable | unindexed
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
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "captures": self.captures, "records": self.records, "bytes": self.bytes,
                "problems": [p.as_dict() for p in self.problems]}


def _payload_digest(record: Any) -> str:
    h = hashlib.sha256()
    stream = record.raw_stream
    while chunk := stream.read(1 << 16):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def verify_capture(archive_dir: Path, capture: dict[str, Any], records: list[dict[str, Any]], report: Report) -> None:
    rel = capture["warc_path"]
    path = archive_dir / rel
    report.captures += 1
    if not path.is_file():
        report.problems.append(Problem("missing", rel, capture["id"], "the sealed WARC is not there"))
        return
    digest, size = sha256_file(path)
    report.bytes += size
    if digest != capture["warc_sha256"]:
        report.problems.append(Problem("altered", rel, capture["id"],
                                       f"file SHA-256 is {digest}, the index recorded {capture['warc_sha256']}"))
    expected = {r["offset"]: r for r in records}
    seen = 0
    try:
        with open(path, "rb") as fh:
            iterator = ArchiveIterator(fh, check_digests=False)
            for record in iterator:
                # Read the payload first: asking for the offset makes warcio skip past the record.
                got = _payload_digest(record)
                offset = iterator.get_record_offset()
                want = expected.get(offset)
                uri = record.rec_headers.get_header("WARC-Target-URI") or record.rec_type
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


def verify(archive_dir: Path, index: Index, ids: list[str] | None = None) -> Report:
    """Check the given captures (all when ``ids`` is empty; then also look for unindexed files)."""
    report = Report()
    captures = index.all_captures_for_verify(ids)
    for capture in captures:
        verify_capture(archive_dir, capture, index.capture_records(capture["id"]), report)
    if not ids:
        known = {c["warc_path"] for c in captures}
        for path in sorted((archive_dir / WARC_DIR).rglob("*.warc.gz")):
            rel = path.relative_to(archive_dir).as_posix()
            if rel not in known:
                report.problems.append(Problem("unindexed", rel, None, "a WARC in warcs/ that the index does not know"))
    return report
