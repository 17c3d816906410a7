"""Video inside a file received from others (issue 15), played in the workbench: a partner's crawl that fetched an
MP4 (written here with warcio: gzipped per record, and the same records as a plain WARC), received, its page's
view played and sought in Debian's Chromium against a real `archiver serve`, the MP4 served from the file by byte
ranges, the ranges asked over real HTTP (of the .warc.gz, the plain WARC and a WACZ holding it) and compared with
the video's bytes; a script declared video/mp4 is never
served as one; the viewer's access ledgered once per record."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from conftest import CLI, index_conn
from test_web_core import Workbench, chromium, watched_page  # noqa: F401 - chromium is a fixture
from test_web_media import PLAY, long_video

TIMEOUT_MS = 45_000
PAGE = "https://partner.example/convoy-video"
CLIP = "https://cdn.partner.example/media/convoy.mp4"
TRAP = "https://cdn.partner.example/media/trap.mp4"
# Declared an MP4, holding a page with a script: what a hostile sender could put in a package.
TRAP_BODY = b"<html><body><script>alert(document.cookie)</script><img src=x onerror=alert(2)></body></html>"


def _response(writer: WARCWriter, url: str, body: bytes, content_type: str) -> None:
    headers = StatusAndHeaders("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                               protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers))


def _crawl(path: Path, movie: bytes, gzip: bool) -> Path:
    """A partner's crawl: the page, the MP4 its <video> played (fetched whole, as crawlers refetch a video), and
    the script declared an MP4."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=gzip)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "PartnerCrawler/2.1"}))
        _response(writer, PAGE, (f'<html><head><title>Convoy video</title></head><body><p>the convoy filmed at '
                                 f'Ramouseh</p><video src="{CLIP}"></video></body></html>').encode(),
                  "text/html; charset=utf-8")
        _response(writer, CLIP, movie, "video/mp4")
        _response(writer, TRAP, TRAP_BODY, "video/mp4")
    return path


def _wacz(path: Path, warc: Path) -> Path:
    """The crawl as a WACZ: its WARC a stored member (as the spec keeps them), a page list and a datapackage."""
    members = {"archive/data.warc.gz": warc.read_bytes(), "pages/pages.jsonl": (
        json.dumps({"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}) + "\n"
        + json.dumps({"url": PAGE, "ts": "2024-05-01T10:00:00Z", "title": "Convoy video"}) + "\n").encode()}
    package = {"profile": "data-package", "wacz_version": "1.1.1", "resources": [
        {"name": name.rsplit("/", 1)[1], "path": name, "hash": "sha256:" + hashlib.sha256(data).hexdigest(),
         "bytes": len(data)} for name, data in members.items()]}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for name, data in {**members, "datapackage.json": json.dumps(package).encode()}.items():
            out.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def received_media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("received-media")
    movie = long_video(root / "convoy.mp4").read_bytes()   # 2 minutes, its moov at the end
    cli = CLI(root / "archive")
    out = {"cli": cli, "movie": movie}
    for name in ("gz", "plain", "wacz"):
        package = _crawl(root / f"partner-crawl.warc{'' if name == 'plain' else '.gz'}", movie, name != "plain")
        if name == "wacz":
            package = _wacz(root / "partner-crawl.wacz", package)
        done = cli("receive", str(package), "--from", "Partner newsroom", "--json")
        assert done.code == 0, done.err
        [outcome] = done.json()
        shown = cli("show", outcome["receipt_id"], "--json").json()
        by_uri = {a["uri"]: n for n, a in enumerate(shown["receipt"]["checks"]["attachments"])}
        out[name] = {"receipt": outcome["receipt_id"], "clip": by_uri[CLIP], "trap": by_uri[TRAP],
                     "page": next(p["id"] for p in shown["pages"] if p["url"] == PAGE)}
    return out


def _media_entries(archive: Path) -> list[dict]:
    with index_conn(archive) as conn:
        rows = conn.execute("SELECT detail, url FROM ledger WHERE event = 'accessed' ORDER BY seq").fetchall()
    details = [{**(json.loads(d) if isinstance(d, str) else d), "entry_url": u} for (d, u) in rows]
    return [d for d in details if d["what"] == "media"]


FAILS = """async ([selector, ms]) => {
  const video = document.querySelector(selector);
  video.muted = true;
  try { await video.play(); } catch (e) {}
  const end = Date.now() + ms;
  while (!video.error && Date.now() < end) await new Promise(ok => setTimeout(ok, 50));
  return {error: video.error && video.error.code, time: video.currentTime};
}"""


def test_a_received_crawls_video_plays_and_seeks_by_ranges_and_a_script_declared_mp4_is_not_served(
        received_media, chromium):
    cli, movie = received_media["cli"], received_media["movie"]
    gz = received_media["gz"]
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:   # on leaving: no dialog opened (no script of the trap ran)
            page.set_default_timeout(TIMEOUT_MS)
            answers: list[dict] = []
            page.on("response", lambda r: answers.append({"url": r.url, "status": r.status,
                                                          "range": r.headers.get("content-range")}))
            page.goto(f"{bench.origin}/received/{gz['page']}")
            clip_src = f"/received/{gz['receipt']}/media/{gz['clip']}"
            trap_src = f"/received/{gz['receipt']}/media/{gz['trap']}"
            clip, trap = f'video.received-video[src="{clip_src}"]', f'video.received-video[src="{trap_src}"]'
            assert page.locator(clip).count() == 1 and page.locator(trap).count() == 1
            assert CLIP in page.locator("section.shot").inner_text()
            result = page.evaluate(PLAY, [clip_src, TIMEOUT_MS])
            assert result["error"] is None and result["played"] > 0.5, result
            assert abs(result["duration"] - 120) < 0.5, result
            served = [a for a in answers if a["url"].endswith(clip_src)]
            assert served and all(a["status"] in (200, 206) for a in served), served
            # The moov is at the end and the seek lands 1.5 s before it: ranges far from byte 0, answered 206.
            late = [a for a in served if a["status"] == 206 and a["range"]
                    and int(a["range"].split()[1].split("-")[0]) > len(movie) // 2]
            assert late, served
            # The script declared an MP4: the player gets an error, not a video, and nothing of it runs.
            failed = page.evaluate(FAILS, [trap, TIMEOUT_MS])
            assert failed["error"] is not None, failed
            assert [a["status"] for a in answers if a["url"].endswith(trap_src)] and \
                all(a["status"] == 400 for a in answers if a["url"].endswith(trap_src))
            page.goto(f"{bench.origin}{trap_src}")   # opened as a page of its own: the workbench's refusal
            assert "alert(" not in page.content() and "is not a video/mp4 as it declares" in page.content()
            page.wait_for_timeout(500)

        with httpx.Client(base_url=bench.url) as client:
            for name in ("gz", "plain", "wacz"):
                held = received_media[name]
                src = f"/received/{held['receipt']}/media/{held['clip']}"
                whole = client.get(src)
                assert whole.status_code == 200 and whole.content == movie, name
                h = whole.headers
                assert (h["content-type"], h["accept-ranges"], h["x-content-type-options"]) == (
                    "video/mp4", "bytes", "nosniff")
                assert h["content-security-policy"] == "sandbox; default-src 'none'"
                size = len(movie)
                for first, last in ((0, 0), (0, 99), (size // 3, size // 3 + 70_000), (size - 5000, size - 1)):
                    part = client.get(src, headers={"Range": f"bytes={first}-{last}"})
                    assert part.status_code == 206 and part.content == movie[first:last + 1], (name, first, last)
                    assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
                assert client.get(src, headers={"Range": "bytes=-1000"}).content == movie[-1000:]
                assert client.get(src, headers={"Range": f"bytes={size}-"}).status_code == 416
                head = client.head(src)
                assert head.status_code == 200 and head.headers["content-length"] == str(size) and not head.content
                trap = client.get(f"/received/{held['receipt']}/media/{held['trap']}")
                assert trap.status_code == 400 and "is not a video/mp4 as it declares" in trap.text, trap.text
                assert b"<script>alert" not in trap.content
                assert client.get(f"/received/{held['receipt']}/media/9").status_code == 404
                # Only a receipt's exact ID names its file; a page's ID or a prefix names no media.
                assert client.get(f"/received/{held['page']}/media/{held['clip']}").status_code == 404
                assert client.get(f"/received/{held['receipt'][:20]}/media/{held['clip']}").status_code == 404
    finally:
        bench.stop()
    # Custody: one `accessed` entry per viewer and record (dozens of range requests, from Chromium and this
    # process alike, are one viewer at one address): each file's clip; the trap none.
    entries = _media_entries(cli.archive)
    assert sorted((e["receipt"], e["entry_url"]) for e in entries) == sorted(
        (received_media[name]["receipt"], CLIP) for name in ("gz", "plain", "wacz")), entries
    assert all(e["bytes"] == len(movie) for e in entries)
    assert cli("verify").code == 0
