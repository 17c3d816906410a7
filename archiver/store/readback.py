"""Reading back from the sealed WARCs what the index does not copy (schema 6): a capture's provenance record and
its visible text, for show, report, export and search's snippets.

The WARC is the evidence and the index a view of it (design.md principle 1), so the index keeps the records'
places and digests and leaves their bodies in the file. What is read here is one gzip member per record, at the
offset and length the index holds, and checked before it is used: the record must be the one the index names
(its WARC-Target-URI) and hash to the payload digest the index recorded when it was sealed. A file that is
missing, unreadable or altered gives a reason, never a traceback and never unchecked bytes.

Records are read through the store that holds the WARC (``Archive.store_of``): a file in <archive>/warcs read at
its offset, or a range read of the object on S3, pinned to the version sealed.

Light on purpose (zlib and hashlib, not warcio; boto3 only for a capture that is on S3): ``show`` and ``search``
import it.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from archiver.store.index import Index

if TYPE_CHECKING:
    from archiver.store.archive import Archive

# Our provenance and text records are a few kilobytes to a few megabytes; a record claiming more than this in
# the index is not read into memory here.
MAX_RECORD_BYTES = 64 * 1024 * 1024


class Unreadable(Exception):
    """The record is not in the file as the index says (missing file, another record, altered bytes)."""


def _read(archive: Archive | Path, capture: Mapping[str, Any] | str, offset: int, length: int) -> bytes:
    """Bytes of a capture's WARC, through its store. ``archive`` may also be the archive's directory and
    ``capture`` a warc_path (a WARC in <archive>/warcs), as callers from before stores gave them."""
    from archiver.store.archive import warc_key
    from archiver.store.blobs import NotStored, StorageError
    if isinstance(capture, str):
        capture = {"warc_path": capture}
    if isinstance(archive, Path):
        where = str(archive / capture["warc_path"])
        reader = lambda: _read_file(archive / capture["warc_path"], offset, length)  # noqa: E731
    else:
        where = archive.stored_at(capture)
        store = archive.store_of(capture)
        reader = lambda: store.read_range(warc_key(capture["warc_path"]), offset, length,  # noqa: E731
                                          capture.get("warc_version"))
    try:
        return reader()
    except FileNotFoundError:
        raise Unreadable(f"the sealed WARC {where} is not there") from None
    except NotStored:
        raise Unreadable(f"the sealed WARC {where} is not there") from None
    except StorageError as exc:
        raise Unreadable(f"cannot read {where}: {exc}") from None
    except OSError as exc:
        raise Unreadable(f"cannot read {where}: {exc.strerror or exc}") from None


def _read_file(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def record_payload(archive: Archive | Path, capture: Mapping[str, Any] | str, record: dict[str, Any]) -> bytes:
    """The payload of a ``resource`` or ``metadata`` record (its whole block) of the capture's WARC, read at the
    record's indexed offset and length and checked against its indexed URI and payload digest. Raises
    ``Unreadable``."""
    offset, length = record["offset"], record["length"]
    if length > MAX_RECORD_BYTES:
        raise Unreadable(f"the record at offset {offset} is {length:,} bytes, more than is read back here")
    member = _read(archive, capture, offset, length)
    try:
        inflater = zlib.decompressobj(wbits=31)   # one gzip member per record
        data = inflater.decompress(member, MAX_RECORD_BYTES + 65536)
    except zlib.error as exc:
        raise Unreadable(f"the record at offset {offset} is not a gzip member ({exc})") from None
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"WARC/"):
        raise Unreadable(f"no WARC record at offset {offset}")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    uri = headers.get("warc-target-uri") or ""
    if uri != (record.get("uri") or ""):
        raise Unreadable(f"the record at offset {offset} is {uri or 'another record'!r}, not {record.get('uri')!r} "
                         f"as the index says")
    try:
        size = int(headers.get("content-length", ""))
    except ValueError:
        raise Unreadable(f"the record at offset {offset} has no Content-Length") from None
    payload = rest[:size]
    if len(payload) != size:
        raise Unreadable(f"the record at offset {offset} is cut short")
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    if record.get("payload_digest") and digest != record["payload_digest"]:
        raise Unreadable(f"the record at offset {offset} hashes to {digest}, the index recorded "
                         f"{record['payload_digest']} (run archiver verify)")
    return payload


def provenance(archive: Archive | Path, capture: dict[str, Any], records: list[dict[str, Any]]
               ) -> tuple[dict[str, Any] | None, str | None]:
    """The capture's provenance record as sealed: (document, None), or (None, why it cannot be read)."""
    uri = f"urn:provenance:{capture['id']}"
    row = next((r for r in records if r["type"] == "metadata" and r["uri"] == uri), None)
    if row is None:
        return None, f"the index lists no {uri} record"
    try:
        document = json.loads(record_payload(archive, capture, row))
    except Unreadable as exc:
        return None, str(exc)
    except ValueError:
        return None, f"the {uri} record is not JSON"
    if not isinstance(document, dict):
        return None, f"the {uri} record is not a JSON object"
    return document, None


def text(archive: Archive | Path, capture: Mapping[str, Any] | str, record: dict[str, Any] | None
         ) -> tuple[str | None, str | None]:
    """The visible text the full-text index holds (the capture's last urn:text: record, as
    ``Index.text_record`` finds it): (text, None), (None, None) when there is none, or (None, why)."""
    if record is None:
        return None, None
    try:
        return record_payload(archive, capture, record).decode("utf-8"), None
    except Unreadable as exc:
        return None, str(exc)
    except UnicodeDecodeError:
        return None, "the text record is not UTF-8"


def search(index: Index, archive: Archive, query: str, *, limit: int | None = 50, before: str | None = None,
           page: int = 50) -> Iterator[dict[str, Any]]:
    """Hits of ``Index.search``, newest first, each with its snippet (``snippet``; None, with ``snippet_error``,
    when its text cannot be read back). Streams: snippets are made ``page`` hits at a time. A query or cursor
    that cannot be used raises ``UserError`` here, before any hit is read.

    The pages of files received from others (store/received.py) are searched too and merged in by rowid (both
    tables make theirs from the ID's millisecond), each with status ``received`` and its ``receipt_id``."""
    effective, hits = index.search(query, limit, before)
    _, received = index.search(query, limit, before, table="received_pages")
    merged = heapq.merge(hits, received, key=lambda hit: (hit["rowid"], hit["id"]), reverse=True)
    return _snippeted(index, archive, effective, itertools.islice(merged, limit), page)


def _snippeted(index: Index, archive: Archive, effective: str, hits: Iterator[dict[str, Any]], page: int
               ) -> Iterator[dict[str, Any]]:
    batch: list[dict[str, Any]] = []
    for hit in hits:
        batch.append(hit)
        if len(batch) >= page:
            yield from _with_snippets(index, archive, effective, batch)
            batch = []
    if batch:
        yield from _with_snippets(index, archive, effective, batch)


def _with_snippets(index: Index, archive: Archive, query: str, hits: list[dict[str, Any]]
                   ) -> Iterator[dict[str, Any]]:
    # Documents are numbered by their place in the batch: a capture and a received page can share a rowid.
    docs, problems = [], {}
    for n, hit in enumerate(hits):
        if "receipt_id" in hit:   # a received page: its text is in the index (read once, on receipt)
            body, problem = hit.pop("text"), None
        else:
            body, problem = text(archive, hit, index.text_record(hit["id"]))
        docs.append((n, hit["title"], body))
        if problem:
            problems[n] = problem
    snippets = index.snippets(query, docs)
    for n, hit in enumerate(hits):
        hit.pop("rowid")
        for name in ("warc_path", "warc_store", "warc_version"):
            hit.pop(name, None)
        hit["snippet"] = snippets.get(n)
        if n in problems:
            hit["snippet_error"] = problems[n]
        yield hit
