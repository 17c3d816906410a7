"""Captured WARCs replay in pywb, the reference replay tool: what it serves back is what we received."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import sealed_warc
from warcutil import read_records, responses

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pywb(tmp_path: Path, warcs: list[Path]):
    if not (BIN / "wayback").exists():
        pytest.fail("pywb is a test dependency; run `make setup`")
    root = tmp_path / "pywb"
    root.mkdir()
    subprocess.run([str(BIN / "wb-manager"), "init", "case"], cwd=root, check=True, capture_output=True)
    for warc in warcs:
        warc_copy = tmp_path / warc.name
        shutil.copy(warc, warc_copy)
        subprocess.run([str(BIN / "wb-manager"), "add", "case", str(warc_copy)], cwd=root, check=True,
                       capture_output=True)
    # wayback takes a port number, not 0: a port found free can be taken by a test running in parallel before
    # pywb binds it, and pywb then exits. A fresh port is tried then, a few times at most.
    for _ in range(3):
        port = _port()
        proc = subprocess.Popen([str(BIN / "wayback"), "-p", str(port), "-b", "127.0.0.1"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:  # bounded: wait for pywb to listen
            try:
                if "pywb" in httpx.get(base + "/", timeout=1).text.lower():  # pywb's home page, no one else's
                    return base, proc
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        proc.kill()
        err = proc.communicate(timeout=10)[1].decode(errors="replace")
    pytest.fail(f"pywb did not start: {err[-2000:]}")


@pytest.fixture
def pywb(tmp_path, article_capture):
    base, proc = _pywb(tmp_path, [article_capture["warc"]])
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def test_pywb_replays_the_article_byte_for_byte(pywb, article_capture, site):
    recs = read_records(article_capture["warc"])
    cdx = httpx.get(f"{pywb}/case/cdx", params={"url": site.article_url, "output": "json"}, timeout=30)
    assert cdx.status_code == 200 and site.article_url in cdx.text
    # id_ mode serves the archived payload unmodified.
    for path in ("/2016/12/16/aleppo-live/", "/static/site.css", "/api/updates.json"):
        [original] = responses(recs, site.url + path)
        replayed = httpx.get(f"{pywb}/case/id_/{site.url}{path}", timeout=30)
        assert replayed.status_code == 200, path
        assert replayed.content == original.payload, path
    # The rewritten page replays too, with the JavaScript-added text reachable by its fetch.
    page = httpx.get(f"{pywb}/case/mp_/{site.article_url}", timeout=30)
    assert page.status_code == 200 and "Aleppo" in page.text


def test_pywb_replays_a_tweet_capture(tmp_path, world_cli):
    result = world_cli("capture", "https://twitter.com/x/status/809735236813459457", "--json")
    assert result.code == 0, result.err
    show = world_cli("show", result.json()[0]["capture_id"], "--json").json()
    warc = sealed_warc(world_cli.archive, show)
    base, proc = _pywb(tmp_path, [warc])
    try:
        recs = read_records(warc)
        uris = [r["uri"] for r in show["records"] if r["type"] == "response"
                and ("tweet-result" in r["uri"] or "name=orig" in r["uri"])]
        # The syndication answer (fetched by us, and again by the embed page's script) and two photos.
        assert len(uris) >= 3 and sum("name=orig" in u for u in uris) == 2
        for uri in set(uris):
            replayed = httpx.get(f"{base}/case/id_/{uri}", timeout=30)
            assert replayed.status_code == 200, uri
            assert replayed.content in [r.payload for r in responses(recs, uri)], uri
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pywb_replays_a_stored_media_record_byte_for_byte(tmp_path, cli, site, served_media):
    # A body that does not compress is written as stored gzip blocks (WARC-Gzip-Level: 0): still one member, and
    # replayed as received.
    body = served_media(2 << 20)
    result = cli("capture", "--no-browser", site.url + "/test/media.mp4", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    warc = sealed_warc(cli.archive, show)
    [media] = responses(read_records(warc), site.url + "/test/media.mp4")
    assert media.headers["WARC-Gzip-Level"] == "0"
    base, proc = _pywb(tmp_path, [warc])
    try:
        replayed = httpx.get(f"{base}/case/id_/{site.url}/test/media.mp4", timeout=60)
        assert replayed.status_code == 200
        assert replayed.content == body.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
