"""Bring sealed captures made elsewhere into this archive: the WARCs of a WACZ export, or bare WARC files.

This is the receiving end of a chain of custody: an investigator gets ``case.wacz`` and wants it in an archive
of their own, verified. Each WARC is copied (streamed) into ``tmp/``, hashed, checked against the hash the
package lists for it, read like reindex reads a WARC (it must be an archiver capture: provenance and
signature records), made read-only, indexed with an ``imported`` ledger entry naming where it came from, and
only then moved into ``warcs/`` -- the same sealing order as a capture (warc.py), so a crash leaves nothing
the next runner cannot settle. Captures already held are left as they are. The bytes are never changed:
the imported file hashes as it did in the package, and its signature (by the exporting archive's key) still
verifies.

The RFC 3161 tokens a WACZ carries for a capture (``provenance/<capture-id>.<n>.tsr``, with the ``.tsr.json``
note naming the TSA) come with it: each must be listed in datapackage.json with the hash it has, vouch for the
WARC's SHA-256 and have a signature openssl accepts (with the certificates it carries; whether that TSA is
trusted is for ``archiver verify`` and ``timestamp.ca_bundle``). A token that fails is named in the report and
nothing of it is kept; the capture, which holds on its own, is still imported. The tokens kept follow the WARC's
order: written read-only under their archive names in a staging folder in ``tmp/``
(``<capture-id>.import<pid>.tsr.importing/warcs/YYYY/MM/DD/``), indexed in the capture's transaction
(timestamps.restore_from_files: the rows and ``timestamped`` entries reindex makes), then moved beside the WARC.
So a token is never beside a WARC the index does not hold, and one the index holds is either in place or in a
staging folder that the next import or runner empties (``settle_imported_tokens``). A capture already held keeps
its own timestamps: none of the package's are added to it.

An archive that seals to a store (``[storage] url``, team mode) gets each imported WARC and its tokens as a capture
of its own gets them (pipeline/sealing.py): the WARC put create-only with its SHA-256 and the store's lock, the
server's checksum compared (``sealing.put_sealed``), then its tokens and notes beside it the same way, then the
capture indexed with where it lives (``warc_store``, ``warc_version``), then the local files removed -- nothing is
left in a local warcs/. A kill before the index leaves objects the index does not know (``verify`` names them) and
nothing half-indexed: the same import again finds the same bytes in the store and indexes them.

With ``expect_key`` (a fingerprint: ``archiver import --expect-key``) a WACZ must be signed by that archive key
-- its package signature, the key binding and the key it names (wacz.package_origin) -- or nothing of it is
imported; and every capture, from a WACZ or a bare WARC, must be signed by that key.

Files an archive received from others travel in its exports with their receipts (wacz_received). They are not
imported: each is named once, ``skipped``, with the command that takes it into custody here. Import takes what an
archive sealed and signed itself -- every fact of a capture is in its WARC, under the exporting archive's key -- while
a receipt says who handed a file to *that* archive, vouched for by nothing inside the file. Re-creating the receipt
here would have this archive assert a handing-over it never witnessed; ``archiver receive`` of the package records
the handing-over that did happen (from that archive, as its export), and keeps the package, receipts and all, whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from archiver.custody import timestamps
from archiver.store.archive import Archive
from archiver.store.index import Index
from archiver.custody.reindex import NotACapture, ReadCapture, insert_read_capture, read_capture
from archiver.custody.verify import Report as VerifyReport, verify_capture
from archiver.exchange.wacz import PROVENANCE_DIR, package_origin
from archiver.store.blobs import AlreadyStored
from archiver.store.warc import IMPORTING_SUFFIX, TMP_DIR, finish_seal, importing_files

CHUNK = 1 << 20
# A folder in tmp/ holding the tokens of one capture being imported, laid out as under the archive.
TOKENS_SUFFIX = ".tsr.importing"
# A token is a few kilobytes, its note less: a member claiming more is not one (and is not read whole).
MAX_TOKEN_BYTES = timestamps.MAX_REPLY_BYTES


class IngestError(Exception):
    """The input is not something that can be imported (not a zip/WACZ or WARC, unreadable)."""


@dataclass
class RefusedToken:
    path: str                 # the member of the package
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Imported:
    name: str                 # the member or file it came from
    capture_id: str | None
    outcome: str              # imported | held | refused
    detail: str = ""
    tokens: int = 0           # timestamp tokens imported with the capture
    refused_tokens: list[RefusedToken] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.name, "capture_id": self.capture_id, "outcome": self.outcome, "detail": self.detail,
                "tokens": self.tokens, "refused_tokens": [t.as_dict() for t in self.refused_tokens]}


@dataclass
class IngestReport:
    source: str
    source_sha256: str
    items: list[Imported] = field(default_factory=list)
    archive_key: str | None = None         # the archive key a WACZ names
    package_signature: str | None = None   # "holds", or why not; None for a bare WARC
    refused: str | None = None             # why nothing of the package was imported (--expect-key)

    @property
    def ok(self) -> bool:
        return self.refused is None and all(i.outcome != "refused" and not i.refused_tokens for i in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "source_sha256": self.source_sha256,
                "archive_key": self.archive_key, "package_signature": self.package_signature,
                "refused": self.refused, "items": [i.as_dict() for i in self.items]}


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _PackagedToken:
    """A token of the package and its note, as read from the zip (not yet checked)."""
    n: int
    path: str
    data: bytes
    listed: str | None
    note_path: str | None = None
    note: bytes | None = None
    note_listed: str | None = None


class _Source:
    """What is imported: a WACZ (its WARCs, the hashes it lists, its timestamp tokens) or one WARC file."""

    def __init__(self, path: Path):
        self.path = path
        self.zf: zipfile.ZipFile | None = None
        self.hashes: dict[str, str | None] = {}
        self.received: list[dict[str, Any]] = []   # the received files an export lists (not imported)
        if not zipfile.is_zipfile(path):
            if not path.name.endswith((".warc.gz", ".warc")):
                raise IngestError(f"{path} is neither a WACZ (zip) nor a WARC file")
            return
        try:
            self.zf = zipfile.ZipFile(path)
            package = json.loads(self.zf.read("datapackage.json"))
        except KeyError:
            self.close()
            raise IngestError(f"{path} is a zip without datapackage.json: not a WACZ") from None
        except (ValueError, zipfile.BadZipFile) as exc:
            self.close()
            raise IngestError(f"{path}: datapackage.json cannot be read ({exc})") from None
        if not isinstance(package, dict):
            self.close()
            raise IngestError(f"{path}: datapackage.json is not a JSON object")
        self.hashes = {r.get("path"): r.get("hash") for r in package.get("resources") or [] if isinstance(r, dict)}
        self.received = _received_of(self.zf)

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()

    def warcs(self) -> Iterator[tuple[str, IO[bytes], str | None]]:
        """(name, stream, expected "sha256:<hex>" or None) for each WARC of a WACZ, or the file itself."""
        if self.zf is None:
            with open(self.path, "rb") as fh:
                yield self.path.name, fh, None
            return
        received = {w.get("path") for r in self.received for w in r.get("warcs") or [] if isinstance(w, dict)}
        for info in self.zf.infolist():
            if info.filename in received:
                continue
            if info.filename.startswith("archive/") and info.filename.endswith((".warc.gz", ".warc")):
                with self.zf.open(info) as member:
                    yield info.filename, member, self.hashes.get(info.filename)

    def tokens_of(self, capture_id: str) -> tuple[list[_PackagedToken], list[RefusedToken]]:
        """The package's tokens of one capture (``provenance/<id>.<n>.tsr``, as export names them) in order of
        n; and those that cannot even be read as such."""
        if self.zf is None:
            return [], []
        found: list[_PackagedToken] = []
        refused: list[RefusedToken] = []
        members = {i.filename: i for i in self.zf.infolist()}
        prefix = f"{PROVENANCE_DIR}/{capture_id}."
        pattern = re.compile(re.escape(prefix) + r"([1-9][0-9]{0,5})" + re.escape(timestamps.TOKEN_SUFFIX))
        for name in sorted(m for m in members if m.startswith(prefix) and m.endswith(timestamps.TOKEN_SUFFIX)):
            match = pattern.fullmatch(name)
            if match is None:
                refused.append(RefusedToken(name, f"is not named as a token of {capture_id} "
                                                  f"(<capture-id>.<n>{timestamps.TOKEN_SUFFIX})"))
                continue
            data = self._small(members[name])
            if data is None:
                refused.append(RefusedToken(name, f"claims over {MAX_TOKEN_BYTES} bytes or cannot be read from "
                                                  "the zip: not a timestamp token"))
                continue
            token = _PackagedToken(int(match.group(1)), name, data, self.hashes.get(name))
            note = timestamps.sidecar_of(name)
            if note in members:
                token.note_path, token.note, token.note_listed = note, self._small(members[note]), \
                    self.hashes.get(note)
            found.append(token)
        return sorted(found, key=lambda t: t.n), refused

    def _small(self, info: zipfile.ZipInfo) -> bytes | None:
        if self.zf is None or info.file_size > MAX_TOKEN_BYTES:
            return None
        try:
            with self.zf.open(info) as member:
                return member.read(MAX_TOKEN_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            return None


def ingest(archive: Archive, index: Index, source: Path, expect_key: str | None = None) -> IngestReport:
    """Import every capture in ``source`` (a WACZ or a WARC file) that this archive does not hold yet, with its
    timestamp tokens. With ``expect_key``, only what that archive key signed (see the module docstring)."""
    archive_dir = archive.path
    if not source.is_file():
        raise IngestError(f"{source} is not a file")
    report = IngestReport(str(source), _sha256_path(source))
    tmp_dir = archive_dir / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_imports(index, importing_files(archive_dir))
    settle_imported_tokens(archive_dir, index, remove_dead_unindexed=True)
    package = _Source(source)
    try:
        if package.zf is not None:
            origin = package_origin(source, expect_key)
            report.archive_key = origin.archive_key
            problems = origin.origin_problems()
            report.package_signature = "holds" if not problems else f"{problems[0].path} {problems[0].detail}"
            if expect_key is not None and problems:
                # Its WARCs may each hold on their own, but the person asked for that archive's package and no
                # other: a package it did not sign is not taken in part.
                report.refused = f"not signed by the expected archive key: {problems[0].path} {problems[0].detail}"
                return report
        for held in package.received:
            report.items.append(Imported(
                str(held.get("file")), None, "skipped",
                f"received by the exporting archive from {held.get('received_from')} (receipt {held.get('receipt')}, "
                f"{held.get('original_name')}), not captured by it: not imported; to keep it here, take the package "
                f"into custody: archiver receive {source.name} --from 'the archive that exported it'"))
        for name, stream, expected in package.warcs():
            # Not a runner's temporary name (*.part): a runner starting now must not take it for a dead writer's.
            tmp = tmp_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.import{os.getpid()}{IMPORTING_SUFFIX}"
            try:
                report.items.append(_ingest_one(archive, index, package, name, stream, expected, tmp,
                                                report.source_sha256, expect_key))
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        package.close()
    return report


def _received_of(zf: zipfile.ZipFile) -> list[dict[str, Any]]:
    """The received files an export's provenance/export.json lists (exchange/wacz_received.py); none when it has no
    such list or cannot be read (its WARCs are then each read as a capture, and those not captures are refused)."""
    from archiver.exchange.wacz import MANIFEST_PATH
    try:
        manifest = json.loads(zf.read(MANIFEST_PATH))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError):
        return []
    held = manifest.get("received") if isinstance(manifest, dict) else None
    return [r for r in held if isinstance(r, dict)] if isinstance(held, list) else []


def _remove_dead_imports(index: Index, paths: list[Path]) -> None:
    """Unindexed files of imports whose process is gone (on this host) are nobody's: remove them. Indexed
    ones are left for a runner to move into place (worker.settle_temp_files)."""
    for path in paths:
        pid = _import_pid(path.name) if path.name.count(".") >= 4 else None
        if pid is None or _alive(pid):
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


def _import_pid(name: str) -> int | None:
    """The pid in a temporary import name (``<x>.import<pid>.<rest>``), if it is one."""
    tag = name.split(".")[1] if name.count(".") >= 2 else ""
    return int(tag[6:]) if tag.startswith("import") and tag[6:].isdigit() else None


def _unlisted_record(capture: ReadCapture) -> str | None:
    """The first record the signed provenance lists with another payload digest than the file's header states
    (verify_capture has checked each payload against its header): so an edited record whose digests were
    recomputed is caught by the signature, as ``verify --wacz`` catches it."""
    found = {r["record_id"]: r["payload_digest"] for r in capture.records}
    for item in capture.provenance.get("records") or []:
        if isinstance(item, dict) and item.get("payload_digest") and \
                found.get(item.get("record_id")) != item["payload_digest"]:
            return f"the {item.get('type')} record {item.get('uri')} is not in the file as its signed provenance " \
                   "lists it"
    return None


def _ingest_one(archive: Archive, index: Index, package: _Source, name: str, stream: IO[bytes],
                expected: str | None, tmp: Path, source_sha256: str, expect_key: str | None) -> Imported:
    archive_dir = archive.path
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
    if capture_id in checked.signers and (why := _unlisted_record(capture)) is not None:
        return Imported(name, capture_id, "refused", f"record-altered: {why}")
    signer = checked.signers.get(capture_id)
    if expect_key is not None and signer != expect_key:
        return Imported(name, capture_id, "refused", f"signed by the archive key {signer}, not the expected "
                        f"{expect_key}" if signer else f"not signed (sealed before archiver signed captures), so "
                        f"not by the expected archive key {expect_key}")
    if index.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone():
        packaged, _ = package.tokens_of(capture_id)
        return Imported(name, capture_id, "held", "this archive already holds this capture" + (
            f"; it keeps its own timestamps (the package's {len(packaged)} token(s) of it were not added)"
            if packaged else ""))
    day = capture.row["started_at"][:10].replace("-", "/")
    rel = f"warcs/{day}/{capture_id}.warc.gz"
    final = archive_dir / rel
    if not archive.seals_to_store and final.exists():
        return Imported(name, capture_id, "refused", f"{rel} exists but the index does not hold it (run verify)")
    capture.row.update(warc_path=rel)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    # Named by its capture id, so that if we die after the index commit the next runner to start finds it
    # and finishes the move (worker.settle_temp_files); an unindexed one it leaves alone.
    named = tmp.with_name(f"{capture_id}.{tmp.name.split('.', 1)[1]}")
    os.rename(tmp, named)
    staging = tmp.with_name(f"{capture_id}.import{os.getpid()}{TOKENS_SUFFIX}")
    try:
        refused = _stage_tokens(archive_dir, package, capture_id, digest, rel, staging, archive.seals_to_store)
        if archive.seals_to_store:
            try:
                _store(archive, capture, named, digest, staging)
            except AlreadyStored as exc:
                named.unlink(missing_ok=True)
                shutil.rmtree(staging, ignore_errors=True)
                return Imported(name, capture_id, "refused", f"{exc} (the index does not hold it: run verify)")
        with index.transaction() as conn:
            insert_read_capture(conn, index, capture, event="imported",
                                source={"imported_from": name, "package_sha256": source_sha256,
                                        "signed": bool(checked.signed)})
            # The staging folder is laid out as the archive is, so the rows name the tokens' places beside the WARC.
            restored = timestamps.restore_from_files(conn, staging, capture.row)
    except BaseException:
        named.unlink(missing_ok=True)   # not indexed: not ours to keep
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if archive.seals_to_store:
        # Stored and indexed: the local copies were all that was left (a runner removes them if this stops here).
        named.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        return Imported(name, capture_id, "imported", archive.stored_at(capture.row), tokens=restored.rows,
                        refused_tokens=refused + [RefusedToken(f"{PROVENANCE_DIR}/{Path(token_rel).name}", why)
                                                  for token_rel, why in restored.skipped])
    # Indexed: from here the files are kept whatever happens; if a move fails, the next runner finishes it.
    for token_rel, why in restored.skipped:     # not indexed (a second token from one TSA): not kept
        refused.append(RefusedToken(f"{PROVENANCE_DIR}/{Path(token_rel).name}", why))
        for path in (staging / token_rel, staging / timestamps.sidecar_of(token_rel)):
            path.unlink(missing_ok=True)
    _place_tokens(archive_dir, staging)
    finish_seal(named, final)
    return Imported(name, capture_id, "imported", rel, tokens=restored.rows, refused_tokens=refused)


def _store(archive: Archive, capture: ReadCapture, path: Path, sha256: str, staging: Path) -> None:
    """The sealed WARC into the archive's store as a capture's seal puts it (sealing.put_sealed: create-only, its
    SHA-256 checked by the store, locked), its row told where it lives; then its staged tokens and notes beside it the
    same way, before the index names them. Raises StorageError (AlreadyStored: other bytes under its key)."""
    from archiver.pipeline import sealing
    stored = sealing.put_sealed(archive, capture.row["warc_path"], path, sha256)
    capture.row.update(sealing.placed(capture.row, archive, stored))
    for staged in sorted(p for p in staging.rglob("*") if p.is_file()):
        sealing.put_sealed(archive, staged.relative_to(staging).as_posix(), staged, _sha256_path(staged))


def _check_token(token: _PackagedToken, warc_sha256: str) -> tuple[timestamps.Token | None, str | None]:
    """The token read, or why it is not kept: it must be the file the package lists, vouch for this WARC, and its
    note (if any) must be the one listed too."""
    actual = "sha256:" + hashlib.sha256(token.data).hexdigest()
    if token.listed is None:
        return None, "is not listed in datapackage.json: nothing vouches for its bytes"
    if token.listed != actual:
        return None, f"hashes to {actual}, the package lists {token.listed}"
    if token.note_path is not None:
        if token.note is None:
            return None, f"its note {token.note_path} cannot be read from the zip"
        noted = "sha256:" + hashlib.sha256(token.note).hexdigest()
        if token.note_listed != noted:
            return None, f"its note {token.note_path} hashes to {noted}, the package lists {token.note_listed}"
    try:
        parsed = timestamps.parse_reply(token.data)
    except timestamps.TimestampError as exc:
        return None, f"is not a readable timestamp token: {exc}"
    if parsed.digest != warc_sha256:
        return None, f"vouches for SHA-256 {parsed.digest}, not this capture's WARC ({warc_sha256})"
    return parsed, None


def _stage_tokens(archive_dir: Path, package: _Source, capture_id: str, warc_sha256: str, warc_rel: str,
                  staging: Path, to_store: bool = False) -> list[RefusedToken]:
    """Write the capture's good tokens (and notes), byte for byte and read-only, under ``staging`` as they will
    lie in the archive; the tokens refused. ``to_store``: they go into the archive's store (whose create-only put
    refuses other bytes), not beside the WARC here; and a second token from one TSA, which the index would not
    take, is refused here, before anything of it is stored."""
    tokens, refused = package.tokens_of(capture_id)
    tsas: set[str] = set()
    for token in tokens:
        token_rel = timestamps.token_rel_path(warc_rel, capture_id, token.n)
        parsed, why = _check_token(token, warc_sha256)
        if parsed is not None and not to_store and ((archive_dir / token_rel).exists() or
                                                    (archive_dir / timestamps.sidecar_of(token_rel)).exists()):
            why = f"{token_rel} exists but the index does not hold it (run verify)"
        tsa = _noted_tsa(token.note) or f"unknown:{Path(token_rel).name}"
        if parsed is not None and why is None and to_store and tsa in tsas:
            why = f"a second token from {tsa} for this capture"
        if parsed is None or why is not None:
            refused.append(RefusedToken(token.path, why or "not kept"))
            continue
        target = staging / token_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        timestamps.write_readonly(target, token.data)
        try:
            # Signature only, with the certificates the token carries (as verify --wacz checks it): whether
            # that TSA is trusted is for `archiver verify` and timestamp.ca_bundle.
            why = timestamps.openssl_verify(target, warc_sha256, parsed, None)
        except timestamps.OpensslMissing as exc:
            why = f"cannot be checked: {exc}"
        if why is not None:
            target.unlink()
            refused.append(RefusedToken(token.path, why))
            continue
        if token.note is not None:
            timestamps.write_readonly(staging / timestamps.sidecar_of(token_rel), token.note)
        tsas.add(tsa)
    return refused


def _noted_tsa(note: bytes | None) -> str | None:
    """The TSA URL a token's note names (what restore_from_files records it under), if it can be read."""
    try:
        loaded = json.loads(note.decode("utf-8")) if note is not None else None
    except ValueError:
        return None
    return loaded.get("tsa_url") if isinstance(loaded, dict) else None


def _place_tokens(archive_dir: Path, staging: Path) -> None:
    """Move staged (indexed) tokens and notes beside their WARC, never over a file; then drop the folder."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        finish_seal(path, archive_dir / path.relative_to(staging))
    shutil.rmtree(staging, ignore_errors=True)


def settle_imported_tokens(archive_dir: Path, index: Index, remove_dead_unindexed: bool = False) -> int:
    """Staging folders of imports that stopped after the index commit: the tokens the index holds are moved
    into place as the importer would have, the rest removed. A folder whose capture is not indexed is an import
    in progress, or a dead one: removed only with ``remove_dead_unindexed`` once its process is gone (ingest
    does; a runner holds no lease telling it so). Returns how many folders were settled."""
    tmp_dir = archive_dir / TMP_DIR
    if not tmp_dir.is_dir():
        return 0
    settled = 0
    for staging in sorted(tmp_dir.glob(f"*{TOKENS_SUFFIX}")):
        capture_id = staging.name.split(".", 1)[0]
        if index.conn.execute("SELECT 1 FROM captures WHERE id = ?", (capture_id,)).fetchone() is None:
            pid = _import_pid(staging.name)
            if remove_dead_unindexed and pid is not None and not _alive(pid):
                shutil.rmtree(staging, ignore_errors=True)
                settled += 1
            continue
        if index.conn.execute("SELECT warc_store FROM captures WHERE id = ?", (capture_id,)).fetchone()[0]:
            shutil.rmtree(staging, ignore_errors=True)   # its tokens went into the store before it was indexed
            settled += 1
            continue
        indexed = {row[0] for row in index.conn.execute(
            "SELECT token_path FROM timestamps WHERE capture_id = ? AND token_path IS NOT NULL", (capture_id,))}
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            rel = path.relative_to(staging).as_posix()
            if timestamps.token_of(rel) in indexed:
                finish_seal(path, archive_dir / rel)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        settled += 1
    return settled
