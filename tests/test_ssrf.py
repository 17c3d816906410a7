"""Private by default (design.md principle 6): with network.allow_private off, no fetcher — Chromium, httpx,
yt-dlp, the tweet path — connects to a loopback, private, link-local or multicast address, whether the URL
names it, a redirect leads to it, or a host name resolves to it.

The loopback servers here count every connection they accept: a refused target must see none (refused before
connecting, not after). Offline there is no public first hop, so redirects start from an "entry" server on
127.0.0.3 that network.allow_addresses lets through, and lead to a "victim" on 127.0.0.1 (and [::1]), which it
does not. Each refusal test has a twin that allows the victim and must reach it, so that a refusal cannot
come from a broken fixture instead of the guard.
"""
from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import socks_relay

from archiver import config
from archiver.capture.video import record_video
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc
from conftest import stored_warcs

ROOT = Path(__file__).resolve().parent.parent
WORLD = ROOT / "scripts/demo_site/world"
CLIP = WORLD / "video.twimg.com/ext_tw_video/809745523581321216/pu/vid/320x180/W4pZx1Lr7kQm0NaC.mp4"
PNG = ROOT / "scripts/demo_site/static/img/alhamdo-avatar.png"
TWEET = "https://twitter.com/evac_watch_demo/status/809711419431133184"
PERISCOPE = "https://www.periscope.tv/w/1OdKrBXvMbLKX"
HOW_TO_ALLOW = "ARCHIVER_NETWORK_ALLOW_PRIVATE=true"
OFF = {"ARCHIVER_NETWORK_ALLOW_PRIVATE": "false"}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_CountingServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)  # absolute-form too: the victim also stands in for a rogue proxy
        query = parse_qs(parts.query)
        self.server.note(parts.path)
        if parts.path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": query["to"][0]})
        elif parts.path.endswith(".png"):
            self._send(200, PNG.read_bytes(), "image/png")
        elif parts.path == "/clip.mp4":
            self._send(200, CLIP.read_bytes(), "video/mp4")
        elif parts.path == "/master.m3u8":
            body = f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=320x180\n{query['variant'][0]}\n"
            self._send(200, body.encode(), "application/vnd.apple.mpegurl")
        else:
            images = "".join(f'<img src="{src}" width="10" height="10">' for src in query.get("img", []))
            body = f"<!doctype html><title>page {parts.path}</title><p>served by {self.server.name}</p>{images}"
            self._send(200, body.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, name: str):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.name = name
        self.connections = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        super().__init__((host, 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # browsers hang up on keep-alive connections; that is not a test failure

    def verify_request(self, request: object, client_address: object) -> bool:
        with self._lock:  # every accepted TCP connection, whether or not a request follows
            self.connections += 1
        return True

    def note(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    def reset(self) -> None:
        with self._lock:
            self.connections, self.paths = 0, []


@dataclass
class Servers:
    entry: _CountingServer      # 127.0.0.3, allowed through network.allow_addresses
    victim: _CountingServer     # 127.0.0.1, never allowed unless a test says so
    victim6: _CountingServer    # ::1
    threads: list[threading.Thread] = field(default_factory=list)

    def url(self, server: _CountingServer, path: str) -> str:
        host = server.server_address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{server.server_address[1]}{path}"

    @property
    def victim_port(self) -> int:
        return self.victim.server_address[1]

    @property
    def victim_connections(self) -> int:
        return self.victim.connections + self.victim6.connections


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    running = Servers(_CountingServer("127.0.0.3", "entry"), _CountingServer("127.0.0.1", "victim"),
                      _CountingServer("::1", "victim6"))
    for server in (running.entry, running.victim, running.victim6):
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.threads.append(thread)
    yield running
    for server in (running.entry, running.victim, running.victim6):
        server.shutdown()
        server.server_close()


@pytest.fixture
def fresh(servers: Servers) -> Servers:
    for server in (servers.entry, servers.victim, servers.victim6):
        server.reset()
    return servers


def _only_entry(*more: str) -> dict[str, str]:
    return {**OFF, "ARCHIVER_NETWORK_ALLOW_ADDRESSES": ",".join(["127.0.0.3/32", *more])}


def _redirect(servers: Servers, target: str) -> str:
    return servers.url(servers.entry, "/redirect?to=" + quote(target, safe=""))


def _assert_blocked(outcome: dict, *named: str) -> None:
    assert outcome["status"] == "failed", outcome
    assert outcome["failure_class"] == "blocked" and outcome["job_state"] == "failed", outcome
    assert outcome["capture_id"] is None, outcome  # nothing sealed
    for text in (*named, HOW_TO_ALLOW, "network.allow_addresses"):
        assert text in outcome["message"], outcome


def _loopback_spellings(port: int) -> dict[str, str]:
    """URL -> what the refusal must say (the host as asked for, the address refused, its kind)."""
    return {
        f"http://127.0.0.1:{port}/": "127.0.0.1: a loopback",
        f"http://localhost:{port}/": "localhost (127.0.0.1): a loopback",
        f"http://{socket.gethostname()}:{port}/": f"{socket.gethostname()} (",  # the machine's name, /etc/hosts
        f"http://2130706433:{port}/": "2130706433 (127.0.0.1): a loopback",
        f"http://0x7f.1:{port}/": "0x7f.1 (127.0.0.1): a loopback",
        f"http://127.1:{port}/": "127.1 (127.0.0.1): a loopback",
        f"http://[::1]:{port}/": "::1: a loopback",
        f"http://[::ffff:127.0.0.1]:{port}/": "::ffff:7f00:1: a loopback",
        f"http://0.0.0.0:{port}/": "0.0.0.0: an unspecified",
    }


OTHER_PRIVATE = {
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254: a link-local",   # cloud credentials
    "http://224.0.0.1/": "224.0.0.1: a multicast",
    "http://10.0.0.1/": "10.0.0.1: a private",
    "http://[fe80::1]/": "fe80::1: a link-local",
    "http://100.64.0.1/": "100.64.0.1: a reserved",                                # carrier-grade NAT
}


# ---- the target itself ------------------------------------------------------------------------------------


def test_private_targets_are_refused_in_every_spelling(cli, fresh):
    """Refused before the capture starts (the worker resolves the URL's host); the same spellings behind a
    redirect, below, reach the checks each fetcher makes when it connects."""
    targets = _loopback_spellings(fresh.victim_port) | OTHER_PRIVATE
    result = cli("capture", "--no-browser", *targets, "--json", env=OFF)
    assert result.code == 1, result.err
    outcomes = result.json()
    assert [o["url"] for o in outcomes] == list(targets)
    for outcome in outcomes:
        _assert_blocked(outcome, targets[outcome["url"]])
    assert fresh.victim_connections == 0
    assert stored_warcs(cli.archive) == []
    status = cli("status", "--json").json()
    assert status["failed"] == len(targets) and status["queued"] == 0  # final: blocked is never retried


# ---- httpx: redirects and names resolving into the private network ---------------------------------------


def test_httpx_refuses_redirects_into_private_networks(cli, fresh):
    """The checks of the guarded httpx client: literal addresses before sending, names on the address the
    connection would go to."""
    targets = _loopback_spellings(fresh.victim_port) | {
        fresh.url(fresh.victim6, "/"): "::1: a loopback",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254: a link-local",
    }
    urls = {_redirect(fresh, target): named for target, named in targets.items()}
    result = cli("capture", "--no-browser", *urls, "--json", env=_only_entry())
    assert result.code == 1, result.err
    for outcome in result.json():
        _assert_blocked(outcome, urls[outcome["url"]], "redirect from")
    assert fresh.entry.paths.count("/redirect") == len(urls)   # the first hop was fetched...
    assert fresh.victim_connections == 0                          # ...the private one never connected to


def test_httpx_follows_the_same_redirect_when_the_range_is_allowed(cli, fresh):
    url = _redirect(fresh, f"http://localhost:{fresh.victim_port}/allowed")
    result = cli("capture", "--no-browser", url, "--json", env=_only_entry("127.0.0.0/8", "::1"))
    assert result.code == 0, result.err
    assert result.json()[0]["status"] == "ok"
    assert fresh.victim.paths == ["/allowed"]


# ---- Chromium -----------------------------------------------------------------------------------------------


def test_browser_refuses_private_redirects_and_subresources(cli, fresh):
    port = fresh.victim_port
    images = [f"http://127.0.0.1:{port}/a.png", f"http://{socket.gethostname()}:{port}/b.png",
              f"http://0x7f.1:{port}/c.png", fresh.url(fresh.victim6, "/d.png"),
              f"http://0.0.0.0:{port}/e.png"]
    page = fresh.url(fresh.entry, "/page?" + "&".join("img=" + quote(i, safe="") for i in images))
    redirected = _redirect(fresh, f"http://localhost:{port}/secret")
    result = cli("capture", page, redirected, "--json", env=_only_entry())
    assert result.code == 1, result.err
    with_images, via_redirect = result.json()
    _assert_blocked(via_redirect, "localhost (127.0.0.1)")
    # The page itself is evidence; what it asked of the private network is listed, not fetched.
    assert with_images["status"] == "ok", with_images
    shown = cli("show", with_images["capture_id"], "--json").json()
    unrecorded = {u["url"]: u["reason"] for u in shown["provenance"]["unrecorded"]}
    for image in images:
        canonical = image.replace("0x7f.1", "127.0.0.1")  # Chromium's spelling of the same address
        assert unrecorded.get(canonical, "").startswith("blocked: refused target"), (canonical, unrecorded)
    assert not [r for r in shown["records"] if urlsplit(r["uri"] or "").path.endswith(".png")]
    assert fresh.victim_connections == 0
    assert fresh.entry.paths.count("/redirect") == 1


def test_browser_loads_the_same_subresource_when_the_range_is_allowed(cli, fresh):
    image = f"http://127.0.0.1:{fresh.victim_port}/a.png"
    page = fresh.url(fresh.entry, "/page?img=" + quote(image, safe=""))
    result = cli("capture", page, "--json", env=_only_entry("127.0.0.1"))
    assert result.code == 0, result.err
    shown = cli("show", result.json()[0]["capture_id"], "--json").json()
    assert any(r["uri"] == image for r in shown["records"])
    assert "/a.png" in fresh.victim.paths


def test_browser_does_not_record_a_response_from_a_refused_address(cli, fresh):
    """The second line of the browser guard: the address a response actually came from. Here Chromium is
    sent through a proxy that archiver does not know about (browser.extra_args, not network.proxy) on a
    loopback address: the request for an allowed host goes out, but its answer came from 127.0.0.1."""
    rogue_proxy = f"--proxy-server=http://127.0.0.1:{fresh.victim_port}"
    extra = f'["{rogue_proxy}", "--proxy-bypass-list=<-loopback>"]'
    result = cli("capture", fresh.url(fresh.entry, "/page"), "--json",
                 env={**_only_entry(), "ARCHIVER_BROWSER_EXTRA_ARGS": extra})
    assert result.code == 1, result.err
    _assert_blocked(result.json()[0], "refused response from 127.0.0.3 (127.0.0.1)")
    assert fresh.victim.paths and not fresh.entry.paths  # it went to the rogue proxy, and was not kept
    assert stored_warcs(cli.archive) == []


# ---- the tweet path and the configured proxy --------------------------------------------------------------


def test_tweet_syndication_on_a_private_address_is_refused(world_cli, fresh):
    syndication = f"http://127.0.0.1:{fresh.victim_port}/tweet-result"
    result = world_cli("capture", TWEET, "--json", env={**OFF, "ARCHIVER_TWITTER_SYNDICATION_URL": syndication})
    assert result.code == 1, result.err
    _assert_blocked(result.json()[0], "127.0.0.1")
    assert fresh.victim_connections == 0


@pytest.mark.parametrize("kind", ["http", "socks5h"])
def test_the_configured_proxy_stays_allowed(world_cli, site, kind):
    """network.proxy on 127.0.0.1 is how a Tor user works: with allow_private off, every fetcher still goes
    through it (the tweet: httpx and Chromium; Periscope: yt-dlp), and names are resolved at the proxy."""
    with socks_relay.start(site.proxy_url) as relay:
        proxy = relay.socks5h_url if kind == "socks5h" else site.proxy_url
        env = {**OFF, "ARCHIVER_NETWORK_PROXY": proxy}
        site.reset_proxy_log()
        for args in ([TWEET], ["--no-browser", PERISCOPE]):
            result = world_cli("capture", *args, "--json", env=env)
            assert result.code == 0, result.err
            assert result.json()[0]["status"] == "ok", result.json()
    hosts = {entry.host for entry in site.proxy_log}
    assert {"cdn.syndication.twimg.com", "platform.twitter.com", "api.x.com"} <= hosts, hosts
    if kind == "socks5h":
        assert ("cdn.syndication.twimg.com", 443) in relay.requests and ("api.x.com", 443) in relay.requests


# ---- yt-dlp (in-process: offline, no video URL reaches yt-dlp except through the proxy) ------------------


def _record_video(tmp_path: Path, url: str, allowed: str) -> dict:
    settings = config.load(environ={**OFF, "ARCHIVER_NETWORK_ALLOW_ADDRESSES": allowed,
                                    "ARCHIVER_VIDEO_MAX_SECONDS": "30"})
    with CaptureWarc(tmp_path, "01TESTSSRF", "test", datetime.now(timezone.utc)) as warc:
        return asyncio.run(record_video(url, warc, settings))


@pytest.mark.parametrize("target", ["redirect", "name"])
def test_ytdlp_refuses_connections_into_private_networks(tmp_path, fresh, target):
    clip = f"http://{socket.gethostname()}:{fresh.victim_port}/clip.mp4"  # a name that resolves to loopback
    url = _redirect(fresh, f"http://127.0.0.1:{fresh.victim_port}/clip.mp4") if target == "redirect" else clip
    with pytest.raises(CaptureFailed) as refused:
        _record_video(tmp_path, url, "127.0.0.3/32")
    assert refused.value.failure_class == "blocked" and not refused.value.retryable
    assert "127.0.0.1" in refused.value.message and HOW_TO_ALLOW in refused.value.message
    assert fresh.victim_connections == 0


def test_ytdlp_refuses_formats_before_ffmpeg_or_anything_fetches_them(tmp_path, fresh):
    variant = f"http://{socket.gethostname()}:{fresh.victim_port}/media.m3u8"
    master = fresh.url(fresh.entry, "/master.m3u8?variant=" + quote(variant, safe=""))
    with pytest.raises(CaptureFailed) as refused:
        _record_video(tmp_path, master, "127.0.0.3/32")
    # Named by host: refused by the check of the formats, before the download (not by a connect).
    assert refused.value.failure_class == "blocked"
    assert f"{socket.gethostname()} (127.0.0.1)" in refused.value.message
    assert set(fresh.entry.paths) == {"/master.m3u8"} and fresh.victim_connections == 0


def test_ytdlp_downloads_through_the_same_redirect_when_the_range_is_allowed(tmp_path, fresh):
    url = _redirect(fresh, f"http://127.0.0.1:{fresh.victim_port}/clip.mp4")
    video = _record_video(tmp_path, url, "127.0.0.3/32,127.0.0.1/32")
    assert [f["kind"] for f in video["files"]] == ["media"] and not video["refused"]
    assert set(fresh.victim.paths) == {"/clip.mp4"}
