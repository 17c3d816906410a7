"""Foreign WARC and WACZ files (archiver/exchange/foreign.py): every real file made by another tool in the
acceptance corpus is read and checked, and what was altered is named.

The corpus lives beside the project, not in it (design.md: test against it, never copy it in). It is read at
test time from ``$ARCHIVER_CORPUS`` or ``<repo>/../shared/corpus``; where it is not there, the tests that need
it skip and say where they looked. Altered copies are written to tmp_path; generated WARCs are built here.

Where ``warcio check`` and we disagree, we are right and the tests say why:

- puppeteer-warc ``data:`` records and Scoop ``file:///screenshot.png`` / ``pdf-snapshot.pdf`` /
  ``provenance-summary.html`` records are ``application/http`` responses; warcio only looks for HTTP headers
  under http(s) URIs, hashes the whole block as payload and reports their payload digests failed. They hold.
- Webrecorder Platform 4.4.0 (netpreserve-twitter) wrote the payload's digest as WARC-Block-Digest too (for
  revisits: the digest of their empty payload). warcio flags 30 of them and skips the revisits; we report all
  42 as quirks, not problems: the stated value is exactly the digest of the bytes after the HTTP headers.

And one real file truly does not hold together: Scoop's example.wacz (js-wacz 0.0.6) lists a SHA-256 for
archive/data.warc.gz that matches neither the stored bytes nor their decompression -- harvard-lil/js-wacz
issue #127 ("addFileToZip records a stale sha256"). Every record inside it holds its digests.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from archiver.exchange.foreign import MAX_TEXT, ForeignFileError, Inspection, inspect

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or REPO.parent / "shared" / "corpus")
WARCS = CORPUS / "warc"
needs_corpus = pytest.mark.skipif(not WARCS.is_dir(), reason=f"no WARC corpus: {WARCS} does not exist (set "
                                  "ARCHIVER_CORPUS to the folder that holds warc/)")

# file -> (format, WARC versions, a software string found, a word in its pages' text)
EXPECTED = {
    "ipwb__IAH-20080430204825-00000-blackbook.warc.gz": ("warc.gz", ["WARC/0.17"], "Heritrix/@VERSION@",
                                                         "Internet Archive"),
    "ipwb__froggie.warc.gz": ("warc.gz", ["WARC/1.0"], "Wget/1.18", "ServiceWorkers"),
    "ipwb__sample-1.warc.gz": ("warc.gz", ["WARC/1.0"], "Heritrix/3.1.2", "Bitch"),
    "jwarc__cc.warc.gz": ("warc.gz", ["WARC/1.0"], None, "Common Crawl"),
    "perma__archive.warc.gz": ("warc.gz", ["WARC/1.0"], "warcprox", "Example Domain"),
    "puppeteer-warc__wwwgooglecom.warc.gz": ("warc.gz", ["WARC/1.1"], "puppeteer-warcio-archiver", "Google"),
    # gzipped content despite its .warc name: the format is what the bytes are
    "py-wacz__example-collection-with-lists.warc": ("warc.gz", ["WARC/1.0"], "Webrecorder Platform v4.9.0",
                                                    "IANA"),
    "py-wacz__valid_signed_example_1.wacz": ("wacz", ["WARC/1.0"], "py-wacz 0.4.0", "Example Domain"),
    "pywb__example-wget-1-14.warc.gz": ("warc.gz", ["WARC/1.0"], "Wget/1.14 (linux-gnu)", "Example Domain"),
    "pywb__example-wpull.warc.gz": ("warc.gz", ["WARC/1.0"], "Wpull/1.0", "Example Domain"),
    "pywb__iana.warc.gz": ("warc.gz", ["WARC/1.0"], "LiveWeb Warc Writer 1.0", "IANA"),
    "replayweb.page__embed-test.warc": ("warc.gz", ["WARC/1.0"], None, "archival embeds"),
    "replayweb.page__example.wacz": ("wacz", ["WARC/1.1"], "ArchiveWeb.page 0.8.1", "Webrecorder"),
    "replayweb.page__netpreserve-twitter.warc": ("warc.gz", ["WARC/1.0"], "Webrecorder Platform v4.4.0",
                                                 "NetPreserve"),
    "scoop__example.com.wacz": ("wacz", ["WARC/1.1"], "Scoop @ Harvard Library Innovation Lab v0.0.1",
                                "Example Domain"),
    "scoop__example.wacz": ("wacz", ["WARC/1.1"], "@harvard-lil/js-wacz 0.0.6", "Library Innovation Lab"),
    "warcio__example-iana.org-chunked.warc": ("warc", ["WARC/1.0"], "webrecorder.io 2.0", "IANA"),
    "webarchive-commons__IAH-urls-wget.warc": ("warc", ["WARC/1.0"], "Wget/1.14 (darwin", "Internet Archive"),
}
QUIRKY = {"replayweb.page__netpreserve-twitter.warc": 42}
DATAPACKAGE_PROBLEMS = {"scoop__example.wacz": "archive/data.warc.gz hashes to sha256:6a54851630e0"}

_cache: dict[str, Inspection] = {}


def _inspected(name: str) -> Inspection:
    if name not in _cache:
        _cache[name] = inspect(WARCS / name)
    return _cache[name]


@needs_corpus
def test_the_corpus_holds_what_this_test_expects():
    assert sorted(p.name for p in WARCS.iterdir() if p.is_file()) == sorted(EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_file_reads_checks_and_has_searchable_pages(name):
    fmt, versions, software, word = EXPECTED[name]
    result = _inspected(name)
    assert result.format == fmt
    assert result.warc_versions == versions
    if software is not None:
        assert any(software in s for s in result.software), result.software
    assert result.records > 0 and result.checked > 0
    assert result.problems == [], [p.as_dict() for p in result.problems[:3]]
    assert len(result.quirks) == QUIRKY.get(name, 0)
    assert result.pages, "no page found"
    assert any(word in page.text for page in result.pages), f"{word!r} in no page's text"
    for page in result.pages:
        assert page.ts.endswith("Z") and page.ts[:2] in ("19", "20")
        assert len(page.text) <= MAX_TEXT
        assert page.offset >= 0 and page.warc
    assert len({(p.url, p.ts) for p in result.pages}) == len(result.pages)
    if fmt == "wacz":
        assert result.wacz is not None
        expected_problem = DATAPACKAGE_PROBLEMS.get(name)
        if expected_problem is None:
            assert result.wacz.datapackage == []
        else:
            assert len(result.wacz.datapackage) == 1 and result.wacz.datapackage[0].startswith(expected_problem)
    else:
        assert result.wacz is None


@needs_corpus
def test_heritrix_2008_warc_0_17_reads_to_the_end():
    result = _inspected("ipwb__IAH-20080430204825-00000-blackbook.warc.gz")
    assert result.records == 822                  # as the MANIFEST counts them
    assert "user agent: Mozilla/5.0 (compatible; heritrix/1.14.0 +http://crawler.archive.org)" in result.software
    assert any(p.url == "http://www.archive.org/index.php" and p.title == "Internet Archive" for p in result.pages)


@needs_corpus
def test_records_warcio_calls_failed_hold():
    """application/http records under data: and file: URIs: their payload starts after the HTTP headers."""
    google = _inspected("puppeteer-warc__wwwgooglecom.warc.gz")
    assert google.checked == 80 and google.problems == []
    scoop = _inspected("scoop__example.com.wacz")
    assert scoop.problems == []
    shots = [p for p in scoop.pages if p.url == "file:///screenshot.png"]
    assert shots and shots[0].mime == "image/png" and shots[0].status == 200


@needs_corpus
def test_webrecorder_block_digest_quirk_is_explained_not_called_altered():
    result = _inspected("replayweb.page__netpreserve-twitter.warc")
    assert result.problems == []
    assert {q.problem for q in result.quirks} == {"block-digest"}
    assert {q.type for q in result.quirks} == {"response", "revisit"}
    assert all("the digest of the bytes after its HTTP headers alone" in q.detail for q in result.quirks)
    assert any(p.url == "https://twitter.com/netpreserve" and "IIPC" in (p.title or "") for p in result.pages)


@needs_corpus
def test_chunked_response_kept_as_received_holds():
    """warcprox 1.4 hashed the chunked bytes as stored (sha1, in hex); the record is correct."""
    result = _inspected("warcio__example-iana.org-chunked.warc")
    assert result.problems == [] and result.checked == 2
    page = next(p for p in result.pages if p.url == "http://www.iana.org/")
    assert page.title == "Internet Assigned Numbers Authority" and "Domain Names" in page.text


@needs_corpus
def test_wacz_pages_come_from_pages_jsonl_with_the_package_text():
    signed = _inspected("py-wacz__valid_signed_example_1.wacz")
    [page] = signed.pages
    assert (page.url, page.ts, page.status, page.mime, page.text_source) == \
        ("https://example.com/", "2022-01-18T19:00:09Z", 200, "text/html", "package")
    assert page.warc.startswith("archive/rec-20220118190009690949") and page.offset == 0
    scoop = _inspected("scoop__example.wacz")     # Scoop's pages.jsonl has no text: it is read from the HTML
    main = next(p for p in scoop.pages if p.url == "https://lil.law.harvard.edu/projects/")
    assert main.text_source == "html" and "Library Innovation Lab" in main.text


@needs_corpus
def test_signatures_in_both_forms():
    domain = _inspected("py-wacz__valid_signed_example_1.wacz").wacz
    assert (domain.signature, domain.signature_kind, domain.signer) == \
        ("valid", "domain", "btrix-sign-test.webrecorder.net")
    assert domain.signed_at == "2022-01-18T19:00:12Z"
    assert "authsigner 0.3.0" in domain.signature_detail
    assert any("ISRG Root X1" in t for t in domain.trust) or not Path("/etc/ssl/certs/ca-certificates.crt").exists()
    anonymous = _inspected("replayweb.page__example.wacz").wacz
    assert (anonymous.signature, anonymous.signature_kind) == ("valid", "anonymous")
    assert anonymous.signer == "sha256:0df677b63ae382bfb785701dd4c3374a61c4e3035252cc1ee89d68087ae2e5b5"
    assert _inspected("scoop__example.com.wacz").wacz.signature == "absent"


# ---- altered copies ---------------------------------------------------------------------------------------

def _record_at(data: bytes, uri: bytes) -> tuple[int, int]:
    """(offset of the response record of ``uri``, offset of its payload) in an uncompressed WARC."""
    at = 0
    while True:
        at = data.index(b"WARC-Target-URI: " + uri + b"\r\n", at + 1)
        start = data.rindex(b"WARC/1.", 0, at)
        head_end = data.index(b"\r\n\r\n", at)
        if b"WARC-Type: response\r\n" in data[start:head_end]:
            return start, data.index(b"\r\n\r\n", head_end + 4) + 4


@needs_corpus
def test_one_flipped_byte_in_a_plain_warc_names_that_record(tmp_path):
    data = bytearray((WARCS / "webarchive-commons__IAH-urls-wget.warc").read_bytes())
    start, payload = _record_at(bytes(data), b"https://archive.org/")
    data[payload + 500] ^= 0x01
    copy = tmp_path / "received.warc"
    copy.write_bytes(bytes(data))
    result = inspect(copy)
    assert {(p.offset, p.problem) for p in result.problems} == {(start, "payload-digest"), (start, "block-digest")}
    assert all(p.uri == "https://archive.org/" and p.type == "response" and p.warc == "received.warc"
               for p in result.problems)
    assert "the record states sha1:" in result.problems[0].detail


@needs_corpus
def test_one_flipped_byte_in_a_gzipped_warc_names_that_record(tmp_path):
    original = (WARCS / "pywb__example-wget-1-14.warc.gz").read_bytes()
    response_offset = 792                      # the example.com response (warcio's offset of its gzip member)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    member = bytearray(inflater.decompress(original[response_offset:]))
    member_end = len(original) - len(inflater.unused_data)
    assert member.startswith(b"WARC/1.0") and b"WARC-Type: response" in member[:400]
    body = member.index(b"\r\n\r\n", member.index(b"\r\n\r\n") + 4) + 4
    member[body + 10] ^= 0x20
    copy = tmp_path / "received.warc.gz"
    copy.write_bytes(original[:response_offset] + gzip.compress(bytes(member)) + original[member_end:])
    result = inspect(copy)
    assert result.records == 6
    assert {(p.offset, p.problem) for p in result.problems} == \
        {(response_offset, "payload-digest"), (response_offset, "block-digest")}


@needs_corpus
def test_a_flipped_byte_in_compressed_bytes_names_the_member_unreadable(tmp_path):
    data = bytearray((WARCS / "pywb__example-wget-1-14.warc.gz").read_bytes())
    data[792 + 300] ^= 0x10                    # inside the deflate stream of the response's gzip member
    copy = tmp_path / "received.warc.gz"
    copy.write_bytes(bytes(data))
    [problem] = inspect(copy).problems
    assert (problem.offset, problem.problem) == (792, "unreadable")


def _rewrite_zip(source: Path, target: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change.get(info.filename, zin.read(info.filename)), compress_type=info.compress_type)


@needs_corpus
def test_a_wacz_with_a_changed_file_names_it(tmp_path):
    source = WARCS / "replayweb.page__example.wacz"
    with zipfile.ZipFile(source) as zf:
        pages = zf.read("pages/pages.jsonl")
    copy = tmp_path / "received.wacz"
    _rewrite_zip(source, copy, {"pages/pages.jsonl": pages.replace(b"Webrecorder", b"Webrecordex", 1)})
    result = inspect(copy)
    assert len(result.wacz.datapackage) == 1
    assert result.wacz.datapackage[0].startswith("pages/pages.jsonl hashes to sha256:")
    assert result.wacz.signature == "valid"        # datapackage.json itself is as signed; the file is not
    assert result.problems == []


@needs_corpus
def test_a_wacz_whose_warc_was_changed_names_the_record(tmp_path):
    source = WARCS / "scoop__example.com.wacz"
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("archive/data.warc")       # stored, and an uncompressed WARC
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    warc = bytes(data[start:start + info.compress_size])
    _, payload = _record_at(warc, b"https://example.com/")
    data[start + payload + 100] ^= 0x20                 # inside the gzip'd HTML, as the server sent it
    copy = tmp_path / "received.wacz"
    copy.write_bytes(bytes(data))
    result = inspect(copy)
    assert {(p.warc, p.uri, p.problem) for p in result.problems} == \
        {("archive/data.warc", "https://example.com/", "payload-digest"),
         ("archive/data.warc", "https://example.com/", "block-digest")}
    assert any(d.startswith("archive/data.warc hashes to sha256:") for d in result.wacz.datapackage)
    assert any("CRC-32" in d for d in result.wacz.datapackage)


def _with_signed_data(source: Path, target: Path, edit) -> None:
    with zipfile.ZipFile(source) as zf:
        digest = json.loads(zf.read("datapackage-digest.json"))
    edit(digest["signedData"])
    _rewrite_zip(source, target, {"datapackage-digest.json": json.dumps(digest).encode()})


def _flip_base64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@needs_corpus
@pytest.mark.parametrize("name, field, kind, why", [
    ("py-wacz__valid_signed_example_1.wacz", "signature", "domain", "signature does not match"),
    ("py-wacz__valid_signed_example_1.wacz", "timeSignature", "domain", "timeSignature"),
    ("replayweb.page__example.wacz", "signature", "anonymous", "signature does not match"),
])
def test_an_altered_signature_is_invalid(tmp_path, name, field, kind, why):
    copy = tmp_path / "received.wacz"
    _with_signed_data(WARCS / name, copy, lambda s: s.update({field: _flip_base64(s[field])}))
    check = inspect(copy).wacz
    assert (check.signature, check.signature_kind) == ("invalid", kind)
    assert why in check.signature_detail


@needs_corpus
def test_a_changed_datapackage_breaks_the_signature(tmp_path):
    """datapackage.json edited and its digest recomputed: the signature still signs the old one."""
    source = WARCS / "replayweb.page__example.wacz"
    with zipfile.ZipFile(source) as zf:
        package = zf.read("datapackage.json").replace(b'"title"', b'"title" ', 1)
        digest = json.loads(zf.read("datapackage-digest.json"))
    digest["hash"] = "sha256:" + hashlib.sha256(package).hexdigest()
    copy = tmp_path / "received.wacz"
    _rewrite_zip(source, copy, {"datapackage.json": package, "datapackage-digest.json": json.dumps(digest).encode()})
    check = inspect(copy).wacz
    assert check.signature == "invalid" and "signs another package" in check.signature_detail


# ---- generated WARCs ------------------------------------------------------------------------------------------

def _b32(algorithm: str, data: bytes) -> str:
    return f"{algorithm}:" + base64.b32encode(hashlib.new(algorithm, data).digest()).decode()


def _response(uri: str, http_head: bytes, body: bytes, payload_digest: str | None = None) -> bytes:
    block = http_head + b"\r\n\r\n" + body
    headers = (f"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{hashlib.md5(block).hexdigest()}>\r\n"
               f"WARC-Target-URI: {uri}\r\nWARC-Date: 2026-01-02T03:04:05Z\r\n"
               f"Content-Type: application/http; msgtype=response\r\n"
               f"WARC-Payload-Digest: {payload_digest or _b32('sha1', body)}\r\n"
               f"WARC-Block-Digest: sha256:{hashlib.sha256(block).hexdigest()}\r\n"
               f"Content-Length: {len(block)}\r\n\r\n")
    return headers.encode() + block + b"\r\n\r\n"


def test_a_payload_digest_over_the_dechunked_body_holds(tmp_path):
    """The spec's reading (the entity body, de-chunked) and the stored bytes' are both accepted."""
    body = b"<html><title>Chunked</title><p>dechunked words</p></html>"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked"
    path = tmp_path / "chunked.warc"
    path.write_bytes(_response("https://example.org/a", head, chunked, _b32("sha1", body)) +
                     _response("https://example.org/b", head, chunked, _b32("sha1", chunked)) +
                     _response("https://example.org/c", head, chunked, _b32("sha1", body + b"x")))
    result = inspect(path)
    assert [(p.uri, p.problem) for p in result.problems] == [("https://example.org/c", "payload-digest")]
    assert "de-chunked" in result.problems[0].detail
    assert [p.text for p in result.pages if p.url.endswith("/a")] == ["dechunked words"]


def test_digests_in_every_encoding_and_an_unreadable_tail(tmp_path):
    body = b"plain"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain"
    sha256 = hashlib.sha256(body).digest()
    spellings = [f"sha256:{sha256.hex()}", f"sha-256:{sha256.hex().upper()}",
                 "sha256:" + base64.b32encode(sha256).decode(), "sha256:" + base64.b64encode(sha256).decode(),
                 "md5:" + base64.b64encode(hashlib.md5(body).digest()).decode(), _b32("sha1", body)]
    data = b"".join(_response(f"https://example.org/{n}", head, body, s) for n, s in enumerate(spellings))
    path = tmp_path / "encodings.warc"
    path.write_bytes(data + b"WARC/1.1\r\nWARC-Type: resp")       # cut off in the middle of a header
    result = inspect(path)
    assert result.checked == len(spellings)
    assert [p.problem for p in result.problems] == ["unreadable"]
    assert result.problems[0].offset == len(data)


def test_what_is_no_warc_is_named_not_raised(tmp_path):
    empty, garbage, zipped = tmp_path / "empty.warc", tmp_path / "garbage.warc.gz", tmp_path / "other.wacz"
    empty.write_bytes(b"")
    garbage.write_bytes(gzip.compress(b"<html>not a WARC</html>"))
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("readme.txt", "no datapackage here")
    assert [(p.problem, p.detail) for p in inspect(empty).problems] == [("unreadable", "the file holds no WARC record")]
    [problem] = inspect(garbage).problems
    assert (problem.problem, problem.offset) == ("unreadable", 0)
    result = inspect(zipped)
    assert result.format == "wacz" and result.wacz.signature == "absent"
    assert "datapackage.json is missing: nothing vouches for the files" in result.wacz.datapackage
    with pytest.raises(ForeignFileError):
        inspect(tmp_path / "absent.warc")


@needs_corpus
def test_pages_can_be_streamed_instead_of_kept():
    streamed: list = []
    result = inspect(WARCS / "pywb__iana.warc.gz", on_page=streamed.append)
    assert result.pages == [] and [p.url for p in streamed] == [p.url for p in _inspected("pywb__iana.warc.gz").pages]


def _big_warc(path: Path, target_bytes: int) -> None:
    image = os.urandom(1 << 21)
    image_head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg"
    image_digest = _b32("sha1", image)
    html_body = b"<html><head><title>Huge</title></head><body>" + b"<p>needle haystack words</p>\n" * 1_500_000 + \
        b"</body></html>"
    with open(path, "wb") as out:
        out.write(_response("https://example.org/huge.html", b"HTTP/1.1 200 OK\r\nContent-Type: text/html",
                            html_body))
        n = 0
        while out.tell() < target_bytes:
            out.write(_response(f"https://example.org/img/{n}.jpg", image_head, image, image_digest))
            n += 1


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so the child would report this test's own peak.
_MEASURE = """
import json, re, sys
from pathlib import Path
from archiver.exchange.foreign import inspect
result = inspect(Path(sys.argv[1]))
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"records": result.records, "problems": len(result.problems), "pages": len(result.pages),
                  "text": len(result.pages[0].text) if result.pages else 0, "rss_kib": peak}))
"""


def test_a_300_mb_warc_inspects_in_bounded_memory(tmp_path):
    path = tmp_path / "big.warc"
    _big_warc(path, 300 << 20)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    elapsed = time.monotonic() - started
    found = json.loads(proc.stdout)
    assert found["problems"] == 0 and found["records"] > 100 and found["pages"] == 1
    assert found["text"] == MAX_TEXT
    assert found["rss_kib"] < 100 * 1024, f"peak RSS {found['rss_kib'] // 1024} MiB"
    assert elapsed < 120
