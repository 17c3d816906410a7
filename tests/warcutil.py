"""Read a WARC the way an outside checker would: member by member, record by record."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator


@dataclass
class Rec:
    type: str
    headers: dict[str, str]
    http_status_line: str | None
    http_headers: list[tuple[str, str]]
    payload: bytes
    offset: int


def read_records(path: Path) -> list[Rec]:
    out = []
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        for record in it:
            http_line, http_headers = None, []
            if record.http_headers is not None:
                http_line = record.http_headers.protocol + " " + record.http_headers.statusline
                http_headers = list(record.http_headers.headers)
            payload = record.raw_stream.read()
            out.append(Rec(record.rec_type, dict(record.rec_headers.headers), http_line, http_headers, payload,
                           it.get_record_offset()))
    return out


def gzip_members(path: Path) -> int:
    """How many gzip members the file holds (one per record is the WARC convention)."""
    data = path.read_bytes()
    count = 0
    while data:
        d = zlib.decompressobj(31)
        d.decompress(data)
        data = d.unused_data
        count += 1
    return count


def header(rec: Rec, name: str) -> str | None:
    lower = name.lower()
    return next((v for n, v in rec.http_headers if n.lower() == lower), None)


def responses(recs: list[Rec], uri: str) -> list[Rec]:
    return [r for r in recs if r.type == "response" and r.headers.get("WARC-Target-URI") == uri]
