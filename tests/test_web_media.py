"""The workbench's media endpoint (archiver/web/media.py): an archived video, captured through the fixture world by
the real CLI, served from its sealed WARC (through the archive's store: a directory, or S3 in team mode) with byte
ranges, played and sought in Debian's Chromium, and its range edge cases asked over real HTTP.

``LiveApp`` (an ASGI app served by uvicorn on a loopback address in a thread, with a log of what it answered) is
used by tests/test_web_replay.py too."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from conftest import CLI, open_test_archive
from test_replay_wacz import chromium  # noqa: F401 (a fixture: Debian's Chromium, launched once a module)

WORLD = Path(__file__).resolve().parent.parent / "scripts" / "demo_site" / "world"
TWEET_MP4 = WORLD / "video.twimg.com/ext_tw_video/809745523581321216/pu/vid/1280x720/Kp2mRc9Xz4LuA7Gw.mp4"
VIDEO_TWEET = "https://x.com/evac_watch_demo/status/809745591946145792"
HLS_TWEET = "https://twitter.com/x/status/809698357346996224"
TIMEOUT_MS = 30_000


class LiveApp:
    """An ASGI app served by uvicorn on ``host`` (a free port), in a thread; ``log`` holds one entry per request
    answered (method, path, query, Range header, status, request headers). ``close()`` stops it and joins the
    thread. ``name``: the host name a browser reaches it by (a ``*.localhost`` name, which Chromium resolves to
    loopback itself), for ``origin``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", name: str | None = None) -> None:
        self.log: list[dict[str, Any]] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        self.port = sock.getsockname()[1]
        self.address = f"http://{host}:{self.port}"   # to reach it from this process
        self.origin = f"http://{name or host}:{self.port}"   # as a browser names it (``name``: *.localhost)
        self.server = uvicorn.Server(uvicorn.Config(self._logged(app), log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        self._sock = sock

    def _logged(self, app: Any) -> Any:
        async def logged(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            entry = {"method": scope["method"], "path": scope["path"], "query": scope.get("query_string", b"").decode(),
                     "range": dict(scope["headers"]).get(b"range", b"").decode() or None, "status": None,
                     "headers": {k.decode(): v.decode() for k, v in scope["headers"]}}
            self.log.append(entry)

            async def send_logged(message: dict) -> None:
                if message["type"] == "http.response.start":
                    entry["status"] = message["status"]
                await send(message)
            await app(scope, receive, send_logged)
        return logged

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self._sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


def world_cli(root: Path, site: Any) -> CLI:
    cli = CLI(root / "archive")
    cli.env.update({"ARCHIVER_NETWORK_PROXY": site.proxy_url, "ARCHIVER_NETWORK_CA_BUNDLE": str(site.ca_file)})
    return cli


def captured(cli: CLI, url: str) -> dict[str, Any]:
    """`archiver capture URL`, then its `show --json`."""
    result = cli("capture", url, "--json")
    assert result.code == 0, result.err + result.out
    shown = cli("show", result.json()[0]["capture_id"], "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def long_video(path: Path, seconds: int = 120) -> Path:
    """A test pattern with a tone (H.264 + AAC, playable by Chromium), its index (moov) at the end of the file as
    ffmpeg writes it without +faststart: a player must ask for a range near the end before it can play."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=15:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "30", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-shortest", str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def media_world(tmp_path_factory: pytest.TempPathFactory, site) -> Iterator[dict[str, Any]]:
    """One archive holding: a video tweet (its MP4 as an HTTP response record), an HLS-only tweet (yt-dlp's merged
    file as a resource record), and a two-minute video fetched as a file; served by the media endpoint."""
    from archiver.web.media import media_routes
    root = tmp_path_factory.mktemp("media")
    cli = world_cli(root, site)
    shows = {"tweet": captured(cli, VIDEO_TWEET), "hls": captured(cli, HLS_TWEET)}
    movie = long_video(root / "long.mp4")
    site.set_media(movie)
    try:
        shows["long"] = captured(cli, site.url + "/test/media.mp4")
    finally:
        site.set_media(None)
    archive = open_test_archive(cli.archive)
    index = archive.index()
    for show in shows.values():   # as the workbench has them: the index's rows, with their seq
        show["records"] = index.capture_records(show["id"])
    served = LiveApp(Starlette(routes=[Mount("/media", routes=media_routes(archive, index))]))
    try:
        yield {"cli": cli, "shows": shows, "archive": archive, "index": index, "app": served, "movie": movie}
    finally:
        served.close()
        index.close()


def _record(show: dict[str, Any], predicate) -> dict[str, Any]:
    found = [r for r in show["records"] if predicate(r)]
    assert found, [(r["type"], r["uri"], r["content_type"]) for r in show["records"]]
    return found[0]


def _url(world: dict[str, Any], show: dict[str, Any], record: dict[str, Any]) -> str:
    from archiver.web.media import media_url
    return world["app"].origin + media_url(show["id"], record["seq"])


def tweet_video(world: dict[str, Any]) -> tuple[str, bytes]:
    show = world["shows"]["tweet"]
    record = _record(show, lambda r: r["type"] == "response" and "1280x720" in (r["uri"] or "")
                     and (r["uri"] or "").split("?")[0].endswith(".mp4"))
    return _url(world, show, record), TWEET_MP4.read_bytes()


def long_media(world: dict[str, Any]) -> tuple[str, bytes]:
    show = world["shows"]["long"]
    record = _record(show, lambda r: r["type"] in ("response", "resource")
                     and (r["uri"] or "").endswith("/test/media.mp4") and r["content_type"] == "video/mp4")
    return _url(world, show, record), world["movie"].read_bytes()


# ---- over HTTP ---------------------------------------------------------------------------------------------------

def test_a_whole_video_and_its_headers(media_world):
    url, body = tweet_video(media_world)
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == body
    h = answer.headers
    assert (h["content-type"], h["accept-ranges"], h["content-length"]) == ("video/mp4", "bytes", str(len(body)))
    assert h["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in h  # a known media type; anything else is sandboxed (below)
    head = httpx.head(url)
    assert (head.status_code, head.headers["content-length"], head.content) == (200, str(len(body)), b"")


def test_a_merged_video_from_yt_dlp_is_served_from_its_resource_record(media_world):
    from archiver.web.media import playable_records
    show = media_world["shows"]["hls"]
    [record] = [r for r in playable_records(show["records"]) if r["type"] == "resource"]
    assert record["uri"].startswith("urn:video:")
    answer = httpx.get(_url(media_world, show, record), headers={"Range": "bytes=0-7"})
    assert answer.status_code == 206 and answer.headers["content-type"] == "video/mp4"
    assert answer.content[4:8] == b"ftyp"


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-", 0, None), ("bytes=100-199", 100, 199), ("bytes=-500", -500, None), ("bytes=1000-", 1000, None),
    ("bytes=0-99999999", 0, None), ("bytes=-99999999", 0, None), ("bytes= 5 - 9", 5, 9)])
def test_ranges(media_world, header, first, last):
    url, body = long_media(media_world)
    size = len(body)
    first = size + first if first < 0 else first
    last = size - 1 if last is None else last
    answer = httpx.get(url, headers={"Range": header})
    assert answer.status_code == 206, answer.text
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.content == body[first:last + 1]


def test_a_range_near_the_end_of_the_video(media_world):
    url, body = long_media(media_world)
    answer = httpx.get(url, headers={"Range": f"bytes={len(body) - 70_000}-{len(body) - 3}"})
    assert answer.status_code == 206 and answer.content == body[-70_000:-2]


def test_if_range_with_our_etag_keeps_the_range_and_anything_else_gets_the_whole_body(media_world):
    url, body = tweet_video(media_world)
    etag = httpx.head(url).headers["etag"]
    kept = httpx.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert (kept.status_code, kept.content) == (206, body[10:20])
    for other in ['"sha256:0000"', "Sun, 06 Dec 2026 10:00:00 GMT"]:
        whole = httpx.get(url, headers={"Range": "bytes=10-19", "If-Range": other})
        assert (whole.status_code, whole.content) == (200, body)


@pytest.mark.parametrize("header", ["bytes=99999999-", "bytes=-0", "bytes=99999999-99999999"])
def test_unsatisfiable_ranges(media_world, header):
    url, body = long_media(media_world)
    answer = httpx.get(url, headers={"Range": header})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{len(body)}"
    assert answer.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "items=0-5", "bytes=9-2", "bytes=abc", "bytes=-"])
def test_several_ranges_or_nonsense_get_the_whole_body(media_world, header):
    # RFC 9110 lets a server ignore a Range header; several ranges are not served as multipart/byteranges.
    url, body = tweet_video(media_world)
    answer = httpx.get(url, headers={"Range": header})
    assert answer.status_code == 200 and answer.content == body and "content-range" not in answer.headers


def test_only_records_of_indexed_captures_are_reachable(media_world):
    origin, show = media_world["app"].origin, media_world["shows"]["tweet"]
    records = {r["seq"]: r for r in show["records"]}
    request = next(r for r in show["records"] if r["type"] == "request")
    metadata = next(r for r in show["records"] if r["type"] in ("metadata", "warcinfo"))
    for path in [f"/media/{show['id']}/{max(records) + 1}", f"/media/{show['id']}/{request['seq']}",
                 f"/media/{show['id']}/{metadata['seq']}", f"/media/{show['id'][:10]}/1",
                 f"/media/{show['id'].lower()}/1", "/media/01ARZ3NDEKTSV4RRFFQ69G5FAV/1",
                 "/media/..%2F..%2Findex.db/1", "/media/%2e%2e/%2e%2e/index.db", f"/media/{show['id']}/-1",
                 "/media/" + show["warc_path"]]:
        answer = httpx.get(origin + path)
        assert answer.status_code == 404, (path, answer.status_code)
    # Paths the route does not match are the app's own 404; the route's are sent as archived bytes are.
    answer = httpx.get(f"{origin}/media/01ARZ3NDEKTSV4RRFFQ69G5FAV/1")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"


def test_what_is_not_a_media_type_is_sandboxed(media_world):
    # The tweet capture's syndication answer (JSON) and the embed page's HTML are archived bytes like the video.
    show = media_world["shows"]["tweet"]
    for record in [r for r in show["records"] if r["type"] == "response"
                   and (r["content_type"] or "").startswith(("text/html", "application/json"))][:3]:
        answer = httpx.get(_url(media_world, show, record))
        assert answer.status_code == 200, record
        assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert answer.headers["content-disposition"] == "attachment"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_random_ranges_of_stored_and_deflated_members(media_world):
    """Ranges read in process (store/payload.py) against the bytes captured: the long video (stored blocks,
    walked, the later ranges from checkpoints) and the article-like HTML of the tweet's embed (deflated, inflated)."""
    import random
    from archiver.store.payload import _CHECKPOINTS, open_payload
    archive, index = media_world["archive"], media_world["index"]
    show = media_world["shows"]["long"]
    capture = index.find_capture(show["id"])
    record = _record(show, lambda r: r["type"] == "response" and (r["uri"] or "").endswith("/test/media.mp4"))
    payload = open_payload(archive, capture, record)
    body = media_world["movie"].read_bytes()
    assert payload.stored and payload.length == len(body)
    rng = random.Random(13)
    for _ in range(40):
        first = rng.randrange(len(body))
        last = min(len(body) - 1, first + rng.choice([0, 1, 100, 40_000, 70_000, 1 << 20]))
        assert b"".join(payload.read(first, last)) == body[first:last + 1], (first, last)
    assert b"".join(payload.read()) == body
    assert any(key[-1] == record["offset"] and len(points[0]) > 2 for key, points in _CHECKPOINTS.items())

    tweet = media_world["shows"]["tweet"]
    capture = index.find_capture(tweet["id"])
    html = _record(tweet, lambda r: r["type"] == "response" and (r["content_type"] or "").startswith("text/html")
                   and r["length"] > 2000)
    page = open_payload(archive, capture, html)
    whole = b"".join(page.read())
    assert not page.stored and len(whole) == page.length
    for first, last in [(0, 0), (10, 500), (page.length - 7, page.length - 1), (100, page.length * 2)]:
        assert b"".join(page.read(first, last)) == whole[first:last + 1]


def test_a_store_opens_a_stream_from_an_offset(media_world):
    """``BlobStore.open_range``: the sealed WARC from an offset to its end, as one stream (one GET on S3)."""
    from archiver.store.archive import warc_key
    from conftest import sealed_warc_bytes
    archive, show = media_world["archive"], media_world["shows"]["long"]
    capture = media_world["index"].find_capture(show["id"])
    whole = sealed_warc_bytes(media_world["cli"].archive, capture)
    store = archive.store_of(capture)
    for offset in (0, 1, len(whole) // 2, len(whole) - 1):
        with store.open_range(warc_key(capture["warc_path"]), offset, capture.get("warc_version")) as stream:
            assert stream.read() == whole[offset:], offset


# ---- in Chromium ------------------------------------------------------------------------------------------------

# Plays the page's <video> of that src (a received file's view has one), or one it makes.
PLAY = """async ([src, ms]) => {
  let video = document.querySelector(`video[src="${src}"]`);
  if (!video) { video = document.createElement("video"); video.src = src; document.body.append(video); }
  video.muted = true;
  const wait = (what, test) => new Promise((ok, fail) => {
    const end = Date.now() + ms;
    const poll = () => test() ? ok() : Date.now() > end ? fail(new Error(what + ": " + video.currentTime + " "
        + (video.error && video.error.message))) : setTimeout(poll, 50);
    poll(); });
  await video.play();
  await wait("currentTime never advanced", () => video.currentTime > 0.5);
  const played = video.currentTime;
  const duration = video.duration;
  video.currentTime = duration - 1.5;
  await wait("seek did not land near the end", () => !video.seeking && video.currentTime >= duration - 1.5);
  await wait("playback after the seek", () => video.currentTime > duration - 1.3 || video.ended);
  return {played, duration, after: video.currentTime, error: video.error && video.error.message};
}"""


def test_videos_play_and_seek_in_chromium(media_world, chromium):
    app = media_world["app"]
    for url, expected_duration in [(tweet_video(media_world)[0], 4.0), (long_media(media_world)[0], 120.0)]:
        del app.log[:]
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.goto(app.origin + "/nothing-here")
            result = page.evaluate(PLAY, [url, TIMEOUT_MS])
        finally:
            context.close()
        assert result["error"] is None and result["played"] > 0.5, result
        assert abs(result["duration"] - expected_duration) < 0.2, result
        path = url[len(app.origin):]
        served = [e for e in app.log if e["path"] == path]
        assert served and all(e["status"] in (200, 206) for e in served), served
        if expected_duration > 100:
            # The moov is at the end, and the seek lands 1.5 s before it: both are ranges far from byte 0.
            size = len(media_world["movie"].read_bytes())
            late = [e for e in served if e["range"] and e["status"] == 206
                    and int(e["range"].split("=")[1].split("-")[0] or 0) > size // 2]
            assert late, served


# ---- memory ----------------------------------------------------------------------------------------------------

MEASURE = """
import sys, time

def hwm_kib():   # this process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the forking parent)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])

from archiver.store.archive import Archive
from archiver.store.payload import open_payload
archive = Archive.open({archive!r})   # its index and store as the environment names them (team mode too)
index = archive.index()
capture = index.find_capture({capture_id!r})
record = [r for r in index.capture_records(capture["id"]) if r["offset"] == {offset}][0]
before = hwm_kib()
started = time.monotonic()
payload = open_payload(archive, capture, record)
got = sum(len(piece) for piece in payload.read(payload.length - (1 << 20)))
first = time.monotonic() - started
started = time.monotonic()   # a second seek, a little before the first: from the checkpoint before it
again = sum(len(piece) for piece in payload.read(payload.length - (3 << 20), payload.length - (2 << 20) - 1))
import json
print(json.dumps({{"size": payload.length, "got": got, "stored": payload.stored, "first_seek_s": first,
                   "again": again, "second_seek_s": time.monotonic() - started,
                   "rss_before_kib": before, "rss_after_kib": hwm_kib()}}))
"""


def test_a_range_at_the_end_of_a_large_body_is_read_in_bounded_memory(tmp_path, site, served_media):
    """The last MiB of a large body (ARCHIVER_TEST_MEDIA_MIB, default 256 MiB of random bytes, which gzip level 0
    stores), read in a process of its own: its peak RSS grows by a few MiB, not by the body's size."""
    size = int(os.environ.get("ARCHIVER_TEST_MEDIA_MIB", "256")) << 20
    cli = CLI(tmp_path / "archive")
    served_media(size)
    show = captured(cli, site.url + "/test/media.mp4")
    record = _record(show, lambda r: r["type"] == "response" and (r["uri"] or "").endswith("/test/media.mp4"))
    code = MEASURE.format(archive=str(cli.archive), capture_id=show["id"],
                          offset=record["offset"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli.env, timeout=600)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    print("large body, last MiB:", measured)
    assert measured["size"] == size and measured["got"] == measured["again"] == 1 << 20
    assert measured["stored"] is True   # random bytes do not compress: written at gzip level 0
    # Bounded: a few CHUNKs and the S3 client's buffers, whatever the size (+0.4 MiB on a local file at 1 GiB).
    assert measured["rss_after_kib"] - measured["rss_before_kib"] < 32 * 1024, measured
    assert measured["second_seek_s"] < 2, measured
