"""Bring sealed captures made elsewhere into this archive: the WARCs of a WACZ export, or bare WARC files.

This is the receiving end of a chain of custody: an investigator gets ``case.wacz`` and wants it in an archive
of their own, verified. Each WARC is copied (streamed) into ``tmp/``, hashed, checked against the hash the
package lists for it, read like reindex reads a WARC (it must be an archiver capture: provenance and
signature records), made read-only, indexed with an ``imported`` ledger entry naming where it came from, and
only then moved into ``warcs/`` -- the same sealing order as a capture (warc.py), so a crash leaves nothing
the next runner cannot settle. Captures already held are left as they are. The bytes are never changed:
the imported file hashes as it did in the package, and its signature (by the exporting archive's key) still
verifies.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from .index import Index
from .reindex import NotACapture, insert_read_capture, read_capture
from .verify import Report as VerifyReport, verify_capture
from .warc import IMPORTING_SUFFIX, TMP_DIR, finish_seal, importing_files

CHUNK = 1 << 20


class IngestError(Exception):
    """The input is not something that can be imported (not a zip/WACZ or WARC, unreadable)."""


@dataclass
class Imported:
    name: str                 # the member or file it came from
    capture_id: str | None
    outcome: str              # imported | held | refused
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.name, "capture_id": self.capture_id, "outcome": self.outcome, "detail": self.detail}


@dataclass
class IngestReport:
    source: str
    source_sha256: str
    items: list[Imported] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.outcome != "refused" for i in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "source_sha256": self.source_sha256,
                "items": [i.as_dict() for i in self.items]}


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _warcs_in(path: Path) -> Iterator[tuple[str, IO[bytes], str | None]]:
    """(name, stream, expected "sha256:<hex>" or None) for each WARC of a WACZ, or the file itself."""
    if not zipfile.is_zipfile(path):
        if path.name.endswith((".warc.gz", ".warc")):
            with open(path, "rb") as fh:
                yield path.name, fh, None
            return
        raise IngestError(f"{path} is neither a WACZ (zip) nor a WARC file")
    with zipfile.ZipFile(path) as zf:
        try:
            package = json.loads(zf.read("datapackage.json"))
        except KeyError:
            raise IngestError(f"{path} is a zip without datapackage.json: not a WACZ") from None
        except ValueError as exc:
            raise IngestError(f"{path}: datapackage.json is not JSON ({exc})") from None
        hashes = {r.get("path"): r.get("hash") for r in package.get("resources") or [] if isinstance(r, dict)}
        for info in zf.infolist():
            if info.filename.startswith("archive/") and info.filename.endswith((".warc.gz", ".warc")):
                with zf.open(info) as member:
                    yield info.filename, member, hashes.get(info.filename)


def ingest(archive_dir: Path, index: Index, source: Path) -> IngestReport:
    """Import every capture in ``source`` (a WACZ or a WARC file) that this archive does not hold yet."""
    if not source.is_file():
        raise IngestError(f"{source} is not a file")
    report = IngestReport(str(source), _sha256_path(source))
    tmp_dir = archive_dir / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_imports(index, importing_files(archive_dir))
    for name, stream, expected in _warcs_in(source):
        # Not a runner's temporary name (*.part): a runner starting now must not take it for a dead writer's.
        tmp = tmp_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.import{os.getpid()}{IMPORTING_SUFFIX}"
        try:
            report.items.append(_ingest_one(archive_dir, index, name, stream, expected, tmp, report.source_sha256))
        finally:
            tmp.unlink(missing_ok=True)
    return report


def _remove_dead_imports(index: Index, paths: list[Path]) -> None:
    """Unindexed files of imports whose process is gone (on this host) are nobody's: remove them. Indexed
    ones are left for a runner to move into place (worker.settle_temp_files)."""
    for path in paths:
        tag = path.name.split(".")[1] if path.name.count(".") >= 4 else ""
        if not tag.startswith("import") or not tag[6:].isdigit() or _alive(int(tag[6:])):
            continue
        if index.conn.execute("SELECT 1 FROM captures WHERE id = ?", (path.name.split(".", 1)[0],)).fetchone() is None:
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ingest_one(archive_dir: Path, index: Index, name: str, stream: IO[bytes], expected: str | None, tmp: Path,
                source_sha256: str) -> Imported:
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        while chunk := stream.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    if expected is not None and expected != f"sha256:{digest}":
        return Imported(name, None, "refused", f"hashes to sha256:{digest}, the package lists {expected}")
    try:
        capture = read_capture(tmp, "")
    except NotACapture as exc:
        return Imported(name, None, "refused", f"{exc}")
    capture_id = capture.row["id"]
    # Every record's payload against the digest its header states, and the provenance against its signature:
    # a package whose hashes were recomputed after an edit is still refused here.
    checked = VerifyReport()
    verify_capture(tmp.parent, {"id": capture_id, "warc_path": tmp.name, "warc_sha256": digest}, capture.records,
                   checked)
    if checked.problems:
        return Imported(name, capture_id, "refused", "; ".join(f"{p.kind}: {p.detail}" for p in checked.problems))
    if index.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone():
        return Imported(name, capture_id, "held", "this archive already holds this capture")
    day = capture.row["started_at"][:10].replace("-", "/")
    rel = f"warcs/{day}/{capture_id}.warc.gz"
    final = archive_dir / rel
    if final.exists():
        return Imported(name, capture_id, "refused", f"{rel} exists but the index does not hold it (run verify)")
    capture.row.update(warc_path=rel)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    # Named by its capture id, so that if we die after the index commit the next runner to start finds it
    # and finishes the move (worker.settle_temp_files); an unindexed one it leaves alone.
    named = tmp.with_name(f"{capture_id}.{tmp.name.split('.', 1)[1]}")
    os.rename(tmp, named)
    try:
        with index.transaction() as conn:
            insert_read_capture(conn, index, capture, event="imported",
                                source={"imported_from": name, "package_sha256": source_sha256,
                                        "signed": bool(checked.signed)})
    except BaseException:
        named.unlink(missing_ok=True)   # not indexed: not ours to keep
        raise
    # Indexed: from here the file is kept whatever happens; if the move fails, the next runner finishes it.
    finish_seal(named, final)
    return Imported(name, capture_id, "imported", rel)
