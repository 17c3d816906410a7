"""Each record's gzip member is written at a level chosen for it, and says which (WARC-Gzip-Level).

What a user relies on: a capture holding a large incompressible media body and a text page is still one gzip
member per record, standard tools read it, verify passes, the media comes back byte for byte, and the level a
record names is the level its member was really written with."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from archiver.store import warc as warcmod
from conftest import sealed_warc, sealed_warc_bytes, tamper_warc
from warcutil import read_records, responses

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("<p>Aleppo, 16 December 2016: the evacuation convoy was turned back at the checkpoint.</p>\n" * 4000).encode()


def members(path: Path) -> list[bytes]:
    """The file's gzip members, each as its bytes in the file."""
    data = path.read_bytes()
    out = []
    while data:
        d = zlib.decompressobj(31)
        d.decompress(data)
        assert d.eof, "a gzip member is cut short"
        size = len(data) - len(d.unused_data)
        out.append(data[:size])
        data = d.unused_data
    return out


def stored_blocks_only(member: bytes) -> bool:
    """True when the member's deflate stream is made of stored blocks only (what level 0 writes)."""
    assert member[:3] == b"\x1f\x8b\x08" and member[3] == 0, "a plain gzip header, no optional fields"
    pos = 10
    while True:
        bfinal, btype = member[pos] & 1, (member[pos] >> 1) & 3
        if btype != 0:
            return False
        # A stored block starts on a byte: LEN, then its one's complement, then LEN bytes as they are.
        length = int.from_bytes(member[pos + 1:pos + 3], "little")
        assert length ^ 0xFFFF == int.from_bytes(member[pos + 3:pos + 5], "little")
        pos += 5 + length
        if bfinal:
            return len(member) - pos == 8  # CRC32 and size follow


def written_at(member: bytes, level: int) -> bool:
    """Whether the member is what zlib writes at ``level``: stored blocks for 0; otherwise deflate is
    deterministic, so compressing the member's content again at that level gives the same bytes."""
    if level == 0:
        return stored_blocks_only(member)
    again = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    return again.compress(zlib.decompress(member, 31)) + again.flush() == member


def record_level(member: bytes) -> int:
    head = zlib.decompressobj(31).decompress(member, 4096).split(b"\r\n\r\n", 1)[0].decode()
    [value] = [line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.startswith("WARC-Gzip-Level:")]
    return int(value)


# ---- choosing the level -------------------------------------------------------------------------------

def test_incompressible_body_is_stored_and_text_is_deflated():
    assert warcmod.gzip_level(io.BytesIO(os.urandom(4 << 20)), 4 << 20) == warcmod.STORED_LEVEL
    assert warcmod.gzip_level(io.BytesIO(TEXT), len(TEXT)) == warcmod.DEFLATE_LEVEL


def test_small_bodies_are_deflated_without_a_probe():
    # Under PROBE_MIN compressing costs next to nothing, whatever the bytes.
    small = os.urandom(warcmod.PROBE_MIN)
    assert warcmod.gzip_level(io.BytesIO(small), len(small)) == warcmod.DEFLATE_LEVEL


def test_a_compressible_header_does_not_make_a_video_deflated():
    # An MP4 written for streaming starts with its index (the moov box), which compresses; its frames do not.
    body = TEXT[:256 * 1024] + os.urandom(16 << 20)
    assert warcmod.gzip_level(io.BytesIO(body), len(body)) == warcmod.STORED_LEVEL


def test_the_probe_leaves_the_stream_at_its_start():
    stream = io.BytesIO(os.urandom(1 << 20))
    warcmod.gzip_level(stream, 1 << 20)
    assert stream.tell() == 0


# ---- a capture, end to end ------------------------------------------------------------------------------

@pytest.fixture
def media(served_media):
    return served_media(3 << 20)


def test_media_and_text_captures_record_the_level_of_every_member(cli, site, media):
    media_url = site.url + "/test/media.mp4"
    page_url = site.url + "/2016/12/16/evacuation-suspended/"
    result = cli("capture", "--no-browser", media_url, page_url, "--json")
    assert result.code == 0, result.err
    outcomes = result.json()
    assert [o["status"] for o in outcomes] == ["ok", "ok"]
    levels: dict[str, int] = {}
    for outcome in outcomes:
        show = cli("show", outcome["capture_id"], "--json").json()
        path = sealed_warc(cli.archive, show)
        recs = read_records(path)
        parts = members(path)
        assert len(parts) == len(recs) == len(show["records"]), "one gzip member per record"
        for rec, member in zip(recs, parts):
            level = int(rec.headers["WARC-Gzip-Level"])
            assert level == record_level(member)
            assert written_at(member, level), f"{rec.type} {rec.headers.get('WARC-Target-URI')} says level {level}"
            if rec.type == "response":
                levels[rec.headers["WARC-Target-URI"]] = level
        check = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v", str(path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    assert levels == {media_url: warcmod.STORED_LEVEL, page_url: warcmod.DEFLATE_LEVEL}

    [video] = responses(read_records(sealed_warc(cli.archive, cli("show", outcomes[0]["capture_id"], "--json").json())),
                        media_url)
    assert video.payload == media.read_bytes()
    verified = cli("verify", "--json")
    assert verified.code == 0 and verified.json()["ok"], verified.out


def test_a_stored_member_altered_in_place_is_found_by_verify(cli, site, media):
    # Stored blocks keep the body's bytes as they are inside the file: flipping one changes the file's hash and
    # the member's CRC, and verify must say so (never read past it).
    result = cli("capture", "--no-browser", site.url + "/test/media.mp4", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    at = sealed_warc_bytes(cli.archive, show).find(media.read_bytes()[1 << 20:(1 << 20) + 64])
    assert at > 0, "the body is stored as it is"
    tamper_warc(cli.archive, show, at)
    verified = cli("verify", "--json")
    assert verified.code == 1
    kinds = {p["problem"] for p in verified.json()["problems"]}
    assert "altered" in kinds and kinds & {"record-altered", "unreadable"}, verified.out


# ---- the benchmark --------------------------------------------------------------------------------------

def test_bench_sections_run_at_small_size(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench"), "capture", "seal", "--pages", "2",
                          "--modes", "chromium,no-browser,wget", "--body-mib", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert [r["mode"] for r in out["capture"]["results"]] == ["chromium", "no-browser", "wget"]
    assert set(out["capture"]["ratios"]) == {"no_browser_vs_wget", "no_browser_vs_wget_after_startup"}
    seal = out["seal"]
    assert seal["body_bytes"] == 2 << 20 and seal["write_seal"]["gzip_level"] == 0
    assert seal["capture"]["peak_rss_mib"] > 0 and seal["capture"]["warc_bytes"] > 2 << 20
    assert seal["hashing"]["verify_vs_openssl"] > 0


def test_verify_hashes_a_large_file_in_threads_and_still_finds_an_alteration(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from archiver.custody import verify as verifymod

    body = os.urandom(verifymod.PARALLEL_MIN + (1 << 20))
    with warcmod.CaptureWarc(tmp_path, "01TESTLARGE", "t", datetime.now(timezone.utc)) as w:
        w.write_warcinfo({"software": "test"})
        w.write_response("http://example.org/v.mp4", 200, None, [("Content-Type", "video/mp4")], body)
        w.write_resource("urn:text:http://example.org/", "text/plain", TEXT)
        sealed = w.seal()
    capture = {"id": "01TESTLARGE", "warc_path": sealed.rel_path, "warc_sha256": sealed.sha256}
    report = verifymod.Report()
    verifymod.verify_capture(tmp_path, capture, w.records, report)
    assert report.ok and report.records == 3 and report.bytes == sealed.size

    # A byte of the stored body flipped: the file's hash and that record's payload both differ, file first.
    data = bytearray(sealed.path.read_bytes())
    data[data.find(body[1 << 20:(1 << 20) + 64])] ^= 0xFF
    os.chmod(sealed.path, 0o644)
    sealed.path.write_bytes(bytes(data))
    report = verifymod.Report()
    verifymod.verify_capture(tmp_path, capture, w.records, report)
    kinds = [p.kind for p in report.problems]
    assert kinds[0] == "altered" and set(kinds[1:]) <= {"record-altered", "unreadable"} and len(kinds) > 1, kinds
