"""Files received from others (``archiver receive``) in a WACZ export, and their check by ``archiver verify --wacz``.

A received file travels in our package as evidence someone else made and handed over, never as a capture of ours:

    archive/received-<receipt>.warc.gz     a received WARC (``.warc`` when it came uncompressed), byte for byte: the
                                           bytes the receipt's SHA-256 covers, and what replay reads (CDXJ lines and
                                           pages of its own, titled "[received] ...")
    received/<receipt>.wacz                a received WACZ, whole and byte for byte (stored, not deflated): the
                                           receipt's SHA-256 covers the whole file, and its own datapackage.json and
                                           signature can be checked only in it
    archive/received-<receipt>-<name>      and each WARC member of that WACZ, copied byte for byte, so that it
                                           replays: replay tools do not read a zip inside a zip
    received/<receipt>.receipt.json        the receipt as the archive keeps it beside the file (who handed it over,
                                           who took it in, when, its name, size, SHA-256, what was found on receipt)
    received/<receipt>.receipt.json.<n>.tsr  the receipt's RFC 3161 tokens (of the receipt file's SHA-256), with
                                           their ``.tsr.json`` notes, as a capture's travel in provenance/; checked
                                           by ``verify --wacz`` as a capture's are (wacz._PackageCheck._timestamps)

The ``received`` ledger entries of each receipt are in ``provenance/ledger.jsonl`` with the captures' entries, and
``provenance/export.json`` lists the received files (``received``); datapackage.json lists every member, so the
package signature covers them all. A received WACZ travels twice over (whole, and its WARCs): the price of keeping
both what the receipt's hash covers and what replay can read. ``verify --wacz`` checks that the copies are the
members of the whole file.

What was found in a received file on receipt (record digests that did not hold) is the receipt's finding, not a
fault of the package: a received file is checked against its receipt (the same bytes that were handed over), not
against its own record digests, and never against our archive key, which did not sign it.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import shutil
import tempfile
import zipfile
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Iterator

from archiver.store import received
from archiver.store.blobs import StorageError

if TYPE_CHECKING:
    from archiver.exchange.wacz import WaczReport, _Package

RECEIVED_DIR = "received"
ARCHIVE_PREFIX = "archive/received-"
RECEIPT_SUFFIX = ".receipt.json"
WARC_SUFFIXES = (".warc.gz", ".warc")
CHUNK = 1 << 20
PAGE_MARK = "[received] "


class ReceivedAltered(Exception):
    """A selected received file no longer hashes as its receipt says, or its receipt file is not the receipt: the
    export would pass on something other than what was handed over. Turned into EvidenceAltered by the caller."""


# ---- selecting -----------------------------------------------------------------------------------------------------

def find_receipt(index: Any, ident: str) -> dict[str, Any]:
    """The receipt an ID names: a receipt's own ID, or a received page's ID (its whole file), as ``show`` takes
    them. NotFound otherwise (its message names captures and received files)."""
    return received.find(index, ident)[1]


def receipts_tagged(index: Any, tag: str | None, since: str | None) -> list[dict[str, Any]]:
    """The receipts ``list --tag/--since`` shows pages of: with the tag, received since then."""
    where, params = [], []
    if tag:
        where.append(index.conn.sql_json_has("tags"))
        params.append(tag)
    if since:
        where.append("received_at >= ?")
        params.append(since)
    sql = "SELECT id FROM receipts" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    return [received.receipt(index, row[0]) or {} for row in index.conn.execute(sql, params).fetchall()]


def receiving_entries(conn: Any, receipt_ids: list[str]) -> list[dict[str, Any]]:
    """The ``received`` ledger entries of the receipts (the first handing-over and every one after it), and the
    ``timestamped`` entries of their receipts' tokens."""
    if not receipt_ids:
        return []
    marks = ", ".join("?" * len(receipt_ids))
    rows = conn.execute(f"SELECT * FROM ledger WHERE event IN ('received', 'timestamped') AND "
                        f"{conn.sql_json_text('detail', 'receipt')} IN ({marks}) ORDER BY seq",
                        tuple(receipt_ids)).fetchall()
    return [dict(r) for r in rows]


# ---- writing -------------------------------------------------------------------------------------------------------

@dataclass
class ReceivedMembers:
    """What one received file put into the package: its manifest entry, CDXJ lines and pages."""
    entry: dict[str, Any]
    cdx: list[str] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)   # its receipt's timestamp tokens (wacz.PackagedToken)


def store_of(archive_dir: Path, stores: Any, row: dict[str, Any]) -> Any:
    from archiver.store.local import LocalStore
    return stores.of(row["store"]) if row.get("store") and stores is not None else LocalStore(archive_dir,
                                                                                                read_only=True)


@contextmanager
def _seekable(store: Any, key: str, version: str | None, tmp_dir: Path) -> Iterator[BinaryIO]:
    """The stored object as a seekable file: a received WACZ is read as a zip. A stream that cannot seek (an
    object in a bucket) is spooled to ``tmp_dir`` first."""
    try:
        stream = store.open(key, version)
    except StorageError:
        raise ReceivedAltered(f"{store.location(key)} is not there") from None
    with stream:
        if stream.seekable():
            yield stream
            return
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=tmp_dir) as spool:
            shutil.copyfileobj(stream, spool, CHUNK)
            spool.seek(0)
            yield spool


def member_name(receipt_id: str, member: str | None, fmt: str) -> str:
    """The name in archive/ of a received WARC (``member`` None) or of a WARC member of a received WACZ."""
    if member is None:
        return f"received-{receipt_id}.{fmt}"
    inner = member[len("archive/"):] if member.startswith("archive/") else member
    # Frictionless (wacz validate) wants resource names of [-a-z0-9._/]; py-wacz matches by the last two parts.
    return f"received-{receipt_id}-{re.sub(r'[^A-Za-z0-9._-]', '-', inner)}"


def add_received(package: "_Package", archive_dir: Path, stores: Any, index: Any, row: dict[str, Any]
                 ) -> ReceivedMembers:
    """Put one received file, its receipt and its pages into the package (see the module doc). Raises
    ReceivedAltered when the file or its receipt file is not as received."""
    from archiver.exchange.wacz import cdxj_lines, granted_tokens, packaged_tokens, token_reader
    rid, fmt = row["id"], row["format"]
    store = store_of(archive_dir, stores, row)
    receipt_bytes = _receipt_file(store, row)
    entry: dict[str, Any] = {
        "receipt": rid, "format": fmt, "original_name": row["original_name"], "received_from": row["received_from"],
        "received_by": row["received_by"], "received_at": row["received_at"], "sha256": row["sha256"],
        "size": row["size"], "receipt_file": f"{RECEIVED_DIR}/{rid}{RECEIPT_SUFFIX}", "warcs": []}
    out = ReceivedMembers(entry)
    if fmt == "wacz":
        entry["file"] = f"{RECEIVED_DIR}/{rid}.wacz"
        with _seekable(store, row["path"], row.get("version"), archive_dir / "tmp") as fh:
            sha256, size = package.add_stream(entry["file"], fh, row["size"])
            _same_as_receipt(row, sha256, size)
            for member, name, scan in _copy_members(package, fh, rid, fmt, out.warnings):
                entry["warcs"].append({"path": f"archive/{name}", "member": member, "sha256": scan.sha256})
                out.cdx += cdxj_lines(name, scan)
    else:
        name = member_name(rid, None, fmt)
        entry["file"] = f"archive/{name}"
        try:
            size = store.head(row["path"], row.get("version")).size
        except StorageError as exc:   # NotStored too: the file is not where the receipt says
            raise ReceivedAltered(f"{store.location(row['path'])} cannot be read ({exc})") from None
        scan = package.add_warc(entry["file"], lambda: store.open(row["path"], row.get("version")), [], size)
        _same_as_receipt(row, scan.sha256, scan.size)
        entry["warcs"].append({"path": entry["file"], "member": None, "sha256": scan.sha256})
        out.cdx += cdxj_lines(name, scan)
    package.add_bytes(entry["receipt_file"], receipt_bytes)
    # The receipt's RFC 3161 tokens date the receipt file (its SHA-256), so they travel beside it, named by the
    # receipt as it is: received/<receipt>.receipt.json.<n>.tsr, with their .tsr.json notes.
    kept_as, granted = row["path"] + RECEIPT_SUFFIX, granted_tokens(index.conn, "receipt_id", rid)
    receipt_sha256 = hashlib.sha256(receipt_bytes).hexdigest()
    for stamp in granted:
        if stamp.get("digest") != receipt_sha256:
            # Who handed it over, or when, would not be what the TSA dated: the receipt file changed since.
            raise ReceivedAltered(f"its receipt file hashes to {receipt_sha256}; its timestamp from "
                                  f"{stamp.get('tsa_url')} dates {stamp.get('digest')}")
    entry["timestamps"], out.tokens = packaged_tokens(
        granted, token_reader(archive_dir, store),
        lambda rel: entry["receipt_file"] + (rel[len(kept_as):] if rel.startswith(kept_as) else "." + Path(rel).name),
        lambda rel: f"received file {rid}: timestamp token {rel} is missing; not exported (run `archiver "
                    f"verify`)", out.warnings)
    for page in received.pages_of(index, rid):
        item: dict[str, Any] = {"id": page["id"], "url": page["url"],
                                "ts": page["captured_at"] or row["received_at"],
                                "title": PAGE_MARK + (page["title"] or page["url"]), "received": rid}
        out.pages.append(item)
    entry["pages"] = len(out.pages)
    return out


def _receipt_file(store: Any, row: dict[str, Any]) -> bytes:
    """The receipt file as kept beside the received file; it must be this receipt (timestamps.receipt_file)."""
    from archiver.custody.timestamps import ReceiptFileError, receipt_file
    try:
        return receipt_file(store, row)
    except ReceiptFileError as exc:
        raise ReceivedAltered(f"its receipt file is not as recorded: {exc}") from None


def _same_as_receipt(row: dict[str, Any], sha256: str, size: int) -> None:
    if sha256 != row["sha256"] or size != row["size"]:
        raise ReceivedAltered(f"its file hashes to {sha256} ({size} bytes); it was received as {row['sha256']} "
                              f"({row['size']} bytes)")


def _copy_members(package: "_Package", fh: BinaryIO, rid: str, fmt: str, warnings: list[str]
                  ) -> Iterator[tuple[str, str, Any]]:
    """Each WARC member of a received WACZ, copied into archive/ byte for byte (a stored member read from the file
    itself, so that bytes that fail the zip's CRC are still copied as they are)."""
    from archiver.exchange.wacz import data_offset, StoredMember
    fh.seek(0)
    try:
        inner = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError) as exc:
        warnings.append(f"received file {rid}: not a readable zip ({exc}); kept whole, its WARCs not copied out "
                        "for replay")
        return
    taken: set[str] = set()
    for info in inner.infolist():
        if not info.filename.startswith("archive/") or not info.filename.endswith(WARC_SUFFIXES):
            continue
        name = member_name(rid, info.filename, fmt)
        if name in taken:
            warnings.append(f"received file {rid}: {info.filename} has the name of another member once made safe; "
                            "not copied out for replay (the whole file holds it)")
            continue
        taken.add(name)
        if info.compress_type == zipfile.ZIP_STORED:
            start, local = data_offset(fh, info)
            if start is None or local != info.filename:
                warnings.append(f"received file {rid}: {info.filename} has no readable local header; not copied "
                                "out for replay (the whole file holds it)")
                continue
            opener = lambda start=start, info=info: nullcontext(StoredMember(fh, start, info.compress_size))
        else:
            opener = lambda info=info: inner.open(info)
        try:
            scan = package.add_warc(f"archive/{name}", opener, [], info.file_size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ReceivedAltered(f"{info.filename} cannot be read from the received WACZ ({exc})") from None
        yield info.filename, name, scan


# ---- VERIFY.txt ----------------------------------------------------------------------------------------------------

PY_RECEIPT = ("python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[\"receipt\"]; "
               "print(r[\"sha256\"], r[\"size\"], \"bytes, received from\", r[\"received_from\"], \"by\", "
               "r[\"received_by\"], \"at\", r[\"received_at\"], \"as\", r[\"original_name\"])'")


def verify_lines(manifest: dict[str, Any]) -> list[str]:
    """The VERIFY.txt section on received files (none when the package holds none)."""
    from archiver.exchange.wacz import LEDGER_PATH, token_lines
    held = manifest.get("received") or []
    if not held:
        return []
    out = ["6. Files received from others (not captured by this archive)", "",
           "This archive did not capture these: each was handed over to it, and it keeps each byte for byte with a",
           "receipt (who handed it over, who took it in, when, under which name, its size and SHA-256, and what was",
           "found in it on receipt). What they show is the word of whoever made them. The receipt is in",
           f"{RECEIVED_DIR}/<receipt>{RECEIPT_SUFFIX}, its 'received' entries in {LEDGER_PATH}; the file must hash to",
           "the receipt's SHA-256 (the first command prints it, the second the file's). A receipt timestamped by a",
           "time-stamping authority (TSA) travels with its tokens, beside it: each vouches for the SHA-256 of the",
           "receipt file, so for all it says, at the time the TSA states (the TSA's root: as in section 3):", ""]
    for r in held:
        # Names inside a received file are the sender's: quoted in commands, and kept to one printable line.
        out += [f"  receipt {r['receipt']}: {_line(r['original_name'])} ({r['format']}), from "
                f"{_line(r['received_from'])}, received {r['received_at']}:",
                f"    $ {PY_RECEIPT} {r['receipt_file']}",
                f"    $ sha256sum {r['file']}    # {r['sha256']}"]
        if r["format"] == "wacz":
            out.append("    its WARCs, copied into archive/ so that the package replays, are its members unchanged:")
            for w in r["warcs"]:
                out.append(f"    $ unzip -p {r['file']} {shlex.quote(w['member'])} | sha256sum; sha256sum {w['path']}")
            out.append(f"    its own datapackage.json and signature are checked in it: unzip -d checks/{r['receipt']} "
                       f"{r['file']}")
        out.append("")
        for stamp in r.get("timestamps") or []:
            # A token of the receipt file: it dates all the receipt says (the file's SHA-256, from whom, when).
            out += token_lines(f"receipt {r['receipt']}, timestamped", stamp,
                               f"\"$(sha256sum {r['receipt_file']} | cut -d' ' -f1)\"")
    out += ["The 'received' ledger entry of each states the SHA-256 the file was received with; grep for it in",
            f"{LEDGER_PATH}. `archiver verify --wacz` makes all these checks at once.", ""]
    return out


# ---- checking a package offline ------------------------------------------------------------------------------------

def _line(text: Any) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


def received_paths(manifest_bytes: bytes | None) -> set[str]:
    """The archive/ members provenance/export.json names as received files' (not captures: they carry no signature
    of ours). Empty when it cannot be read (the check of the manifest says so)."""
    try:
        manifest = json.loads(manifest_bytes or b"null")
    except (ValueError, UnicodeDecodeError):
        return set()
    if not isinstance(manifest, dict) or not isinstance(manifest.get("received"), list):
        return set()
    return {w.get("path") for r in manifest["received"] if isinstance(r, dict)
            for w in (r.get("warcs") or []) if isinstance(w, dict)}


class _Window(io.RawIOBase):
    """A seekable view of a stored zip member inside the package file: a received WACZ is read as a zip of its own
    without copying it out."""

    def __init__(self, fh: IO[bytes], start: int, length: int):
        self._fh, self._start, self._length, self._pos = fh, start, length, 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = max(0, self._length - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(size)
        self._pos += len(data)
        return data


def check_package(zf: zipfile.ZipFile, raw: IO[bytes], read: dict[str, bytes], listed: dict[str, dict[str, Any]],
                  warc_hashes: dict[str, str], ledger_hashes: dict[str, str], manifest: dict[str, Any],
                  report: "WaczReport") -> None:
    """Each received file of the package against its receipt: the receipt file is there and is this receipt; the
    file (a WARC in archive/, or a WACZ whole in received/) hashes to the receipt's SHA-256; a WACZ's copies in
    archive/ are its members; the ledger excerpt holds the ``received`` entry with that SHA-256."""
    from archiver.exchange.wacz import LEDGER_PATH, MANIFEST_PATH, data_offset
    entries = manifest.get("received") or []
    if not isinstance(entries, list):
        report.add("provenance", MANIFEST_PATH, "lists the received files in a form it cannot be read in")
        return
    named = {r.get("file") for r in entries if isinstance(r, dict)}
    for name in sorted(n for n in listed if n.startswith(f"{RECEIVED_DIR}/") and n.endswith(".wacz")):
        if name not in named:   # so never hashed against a receipt: say so rather than pass it unread
            report.add("received", name, f"is not a received file {MANIFEST_PATH} lists: nothing checks it")
    for r in entries:
        if not isinstance(r, dict):
            continue
        rid, kept = r.get("receipt"), r.get("file")
        data = read.get(str(r.get("receipt_file")))
        if data is None:
            report.add("received", str(r.get("receipt_file")), f"is missing: received file {rid} travels without "
                       "its receipt")
            continue
        try:
            receipt = json.loads(data)["receipt"]
            expected, size = receipt["sha256"], receipt["size"]
        except (ValueError, KeyError, TypeError):
            report.add("received", str(r.get("receipt_file")), "is not a receipt (no receipt with a SHA-256 in it)")
            continue
        if receipt.get("id") != rid or r.get("sha256") != expected:
            report.add("received", str(r.get("receipt_file")), f"is the receipt of {receipt.get('id')} for "
                       f"{expected}; {MANIFEST_PATH} lists receipt {rid} for {r.get('sha256')}")
        if not isinstance(kept, str) or kept not in listed:
            report.add("received", MANIFEST_PATH, f"names {kept} as received file {rid}, which the package does not "
                       "list")
            continue
        report.received += 1
        if kept.startswith("archive/"):
            found, found_size = warc_hashes.get(kept), None
        else:
            found, found_size, window = _hash_member(zf, raw, kept, report)
            if found is not None and listed[kept].get("hash") != f"sha256:{found}":
                report.add("altered", kept, f"hashes to sha256:{found}; datapackage.json lists "
                           f"{listed[kept].get('hash')}")
            if found is not None and window is not None:
                _check_copies(zf, raw, window, r, warc_hashes, report, data_offset)
        if found is not None and (found != expected or found_size not in (None, size)):
            report.add("received-altered", kept, f"hashes to sha256:{found}; its receipt says received file {rid} "
                       f"was received as sha256:{expected}: these are not the bytes that were handed over")
        if ledger_hashes.get(str(rid)) != expected:
            report.add("ledger", LEDGER_PATH, f"has no 'received' entry for receipt {rid} with sha256 {expected}")


def _hash_member(zf: zipfile.ZipFile, raw: IO[bytes], name: str, report: "WaczReport"
                 ) -> tuple[str | None, int | None, _Window | None]:
    """A received WACZ kept whole: its SHA-256 and size, streamed; and a view of it to read it as a zip (when
    stored, as export writes it)."""
    from archiver.exchange.wacz import data_offset, StoredMember
    info = zf.getinfo(name) if name in zf.namelist() else None
    if info is None:
        report.add("layout", name, "is listed in datapackage.json but not in the zip")
        return None, None, None
    digest, size = hashlib.sha256(), 0
    window = None
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            start, local = data_offset(raw, info)
            if start is None or local != name:
                report.add("layout", name, "its local zip header is missing or names another file")
                return None, None, None
            stream: Any = StoredMember(raw, start, info.compress_size)
            window = _Window(raw, start, info.compress_size)
        else:
            stream = zf.open(info)
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        report.add("received-altered", name, f"cannot be read from the zip ({exc})")
        return None, None, None
    return digest.hexdigest(), size, window


def _check_copies(zf: zipfile.ZipFile, raw: IO[bytes], window: _Window, r: dict[str, Any],
                  warc_hashes: dict[str, str], report: "WaczReport", data_offset: Any) -> None:
    """The WARCs copied out of a received WACZ are its members, byte for byte."""
    from archiver.exchange.wacz import StoredMember
    try:
        inner = zipfile.ZipFile(window)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add("received", r["file"], f"cannot be read as a zip ({exc}): its copies in archive/ cannot be "
                   "checked against it")
        return
    for w in r.get("warcs") or []:
        if not isinstance(w, dict) or not w.get("member"):
            continue
        copy = warc_hashes.get(str(w.get("path")))
        try:
            info = inner.getinfo(w["member"])
        except KeyError:
            report.add("received", str(w.get("path")), f"is named a copy of {w['member']}, which {r['file']} does "
                       "not hold")
            continue
        digest = hashlib.sha256()
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                start, _ = data_offset(window, info)
                stream: Any = StoredMember(window, start or 0, info.compress_size)
            else:
                stream = inner.open(info)
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            report.add("received", r["file"], f"{w['member']} cannot be read ({exc})")
            continue
        if copy != digest.hexdigest():
            report.add("received-altered", str(w.get("path")), f"is not {w['member']} of {r['file']} as received "
                       f"(it hashes to sha256:{copy}, the member to sha256:{digest.hexdigest()})")
