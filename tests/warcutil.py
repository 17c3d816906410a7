"""Read a WARC the way an outside checker would: member by member, record by record; and write one the way another
tool would (``partner_crawl``: for tests of files received from others that need no corpus)."""
from __future__ import annotations

import hashlib
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


def partner_crawl(path: Path, pages: int) -> Path:
    """A WARC/1.1 of ``pages`` HTML responses, as a partner's crawler might write it, with SHA-256 digests."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8"
    with open(path, "wb") as out:
        for n in range(pages):
            body = b"<html><head><title>Partner page %d</title></head><body>" % n + \
                b"<p>Shelling reported near the old city; the convoy waits at the checkpoint.</p>" * 40 + b"</body></html>"
            block = head + b"\r\n\r\n" + body
            out.write((f"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{hashlib.md5(block).hexdigest()}>"
                       f"\r\nWARC-Target-URI: https://partner.example/2016/12/16/page-{n}\r\n"
                       f"WARC-Date: 2016-12-16T10:{n // 60 % 60:02d}:{n % 60:02d}Z\r\n"
                       f"Content-Type: application/http; msgtype=response\r\n"
                       f"WARC-Payload-Digest: sha256:{hashlib.sha256(body).hexdigest()}\r\n"
                       f"WARC-Block-Digest: sha256:{hashlib.sha256(block).hexdigest()}\r\n"
                       f"Content-Length: {len(block)}\r\n\r\n").encode() + block + b"\r\n\r\n")
    return path
