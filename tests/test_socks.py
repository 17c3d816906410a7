"""``network.proxy = socks5://…`` / ``socks5h://…`` (how investigators route through Tor), end to end through
the CLI, for every fetcher: httpx, Chromium, the tweet path (httpx + Chromium) and yt-dlp.

A SOCKS5 relay (``socks_relay.py``) sits in front of the fixture world's HTTP proxy; it records every CONNECT
request exactly as the client sent it, so the tests prove that the traffic went through SOCKS and that the
host *name* reached the proxy (remote resolution: no local DNS lookup that would leak around Tor, and none
that could succeed here — the world's names do not resolve locally).
"""
from __future__ import annotations

import socket
import ssl
import struct

import httpx
import pytest

import socks_relay

ARTICLE = "https://www.levantledger.example/2016/12/16/evacuation-suspended/"
TWEET = "https://twitter.com/evac_watch_demo/status/809711419431133184"
PERISCOPE = "https://www.periscope.tv/w/1OdKrBXvMbLKX"

SPELLINGS = ["socks5", "socks5h"]


@pytest.fixture
def relay(site):
    with socks_relay.start(site.proxy_url) as running:
        yield running


@pytest.fixture(params=SPELLINGS)
def socks_cli(request, cli, site, relay):
    """The CLI with network.proxy set to the relay, spelled socks5:// or socks5h://."""
    proxy = relay.url if request.param == "socks5" else relay.socks5h_url
    cli.env["ARCHIVER_NETWORK_PROXY"] = proxy
    cli.env["ARCHIVER_NETWORK_CA_BUNDLE"] = str(site.ca_file)
    site.reset_tweet_states()
    cli.proxy = proxy
    return cli


def _capture_ok(cli, *args):
    result = cli("capture", *args, "--json")
    assert result.code == 0, result.err[-3000:]
    [outcome] = result.json()
    assert outcome["status"] == "ok", outcome
    shown = cli("show", outcome["capture_id"], "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def _assert_by_name(relay, *hosts):
    requests = relay.requests
    for host in hosts:
        assert (host, 443) in requests, requests
    # Nothing was resolved locally and sent as an address: every request named its host.
    assert not [r for r in requests if socks_relay.is_address(r.host)], requests


def _assert_network(provenance, key, fetcher, proxy):
    described = provenance[key]
    assert described["fetcher"] == fetcher and described["proxy"] == proxy, described
    assert described["ca_bundle"] and described["ca_bundle_sha256"]


def test_httpx_through_socks(socks_cli, relay):
    show = _capture_ok(socks_cli, "--no-browser", ARTICLE)
    _assert_by_name(relay, "www.levantledger.example")
    assert {r.host for r in relay.requests} == {"www.levantledger.example"}
    _assert_network(show["provenance"], "network", "http", socks_cli.proxy)


def test_chromium_through_socks(socks_cli, relay):
    show = _capture_ok(socks_cli, ARTICLE)
    # Chromium resolves names at a SOCKS5 proxy (--proxy-server=socks5://; socks5h:// is rewritten to it).
    _assert_by_name(relay, "www.levantledger.example")
    assert any(r["type"] == "resource" and (r["uri"] or "").startswith("urn:screenshot:" + ARTICLE)
               for r in show["records"])
    _assert_network(show["provenance"], "network", "browser", socks_cli.proxy)


def test_tweet_through_socks(socks_cli, relay):
    show = _capture_ok(socks_cli, TWEET)
    # The syndication answer comes through httpx; the embed page and its images through Chromium.
    _assert_by_name(relay, "cdn.syndication.twimg.com", "platform.twitter.com")
    assert show["tweet"]["availability"] == "available"
    provenance = show["provenance"]
    assert provenance["embed"]["status"] == "ok", provenance["embed"]
    assert any((r["uri"] or "").startswith("urn:screenshot:https://platform.twitter.com/embed/Tweet.html")
               for r in show["records"])
    # A tweet's provenance describes one network path, the httpx one (the embed's browser shares the proxy).
    _assert_network(provenance, "network", "http", socks_cli.proxy)


def test_ytdlp_through_socks(socks_cli, relay):
    show = _capture_ok(socks_cli, "--no-browser", PERISCOPE)
    # yt-dlp resolves at the proxy for socks5h://, and treats socks5:// as socks5h:// (its compat rule).
    _assert_by_name(relay, "x.com", "api.x.com", "prod-video-eu-central-1.pscp.tv")
    assert any(r["type"] == "resource" and (r["uri"] or "").startswith("urn:video:") for r in show["records"])
    provenance = show["provenance"]
    _assert_network(provenance, "network", "video", socks_cli.proxy)
    _assert_network(provenance, "video_network", "video", socks_cli.proxy)


# ---- the relay itself -------------------------------------------------------------------------------


def _negotiate(relay, request: bytes, methods: bytes = b"\x00") -> tuple[bytes, socket.socket]:
    sock = socket.create_connection((relay.host, relay.port), timeout=10)
    sock.sendall(bytes([5, len(methods)]) + methods)
    choice = sock.recv(2)
    if choice != b"\x05\x00":
        return choice, sock
    sock.sendall(request)
    reply = b""
    while len(reply) < 10:
        chunk = sock.recv(10 - len(reply))
        if not chunk:
            break
        reply += chunk
    return reply, sock


def test_relay_protocol(site, relay):
    """Method and command refusals, the three address types, and the plain-HTTP path for ports other than
    443 (the world proxy CONNECTs to 443 only, so the relay rewrites requests to absolute form instead)."""
    reply, sock = _negotiate(relay, b"", methods=b"\x02")  # username/password only
    assert reply == b"\x05\xff"
    sock.close()
    reply, sock = _negotiate(relay, b"\x05\x02\x00\x03\x07example\x01\xbb")  # BIND
    assert reply[:2] == b"\x05\x07"
    sock.close()
    reply, sock = _negotiate(relay, b"\x05\x01\x00\x04" + socket.inet_pton(socket.AF_INET6, "::1") + b"\x01\xbb")
    assert reply[:2] == b"\x05\x04"  # the world proxy answers 502 for [::1]:443: host unreachable
    sock.close()
    request = b"\x05\x01\x00\x01" + socket.inet_aton(site.host) + struct.pack("!H", site.port)
    reply, sock = _negotiate(relay, request)
    assert reply[:2] == b"\x05\x00"
    with sock:
        sock.sendall(b"GET /2016/12/16/evacuation-suspended/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"evacuation" in answer.lower()
    assert relay.requests[-2:] == [("::1", 443), (site.host, site.port)]

    ca = ssl.create_default_context(cafile=site.ca_file)
    with httpx.Client(proxy=relay.url, verify=ca) as client:  # keep-alive on the rewritten plain-HTTP path
        for path in ("/2016/12/16/aleppo-live/", "/2016/12/16/evacuation-suspended/"):
            assert client.get("http://www.levantledger.example" + path).status_code == 200
        assert client.get("https://www.levantledger.example/2016/12/16/aleppo-live/").status_code == 200
        assert client.get("http://nowhere.example/").status_code == 502
    # A name the world proxy refuses (502 to CONNECT): host unreachable. (Checked over a raw socket: httpcore
    # leaves its socket unclosed when a SOCKS proxy refuses, which would trip ResourceWarning checks.)
    reply, sock = _negotiate(relay, b"\x05\x01\x00\x03\x0fnowhere.example\x01\xbb")
    assert reply[:2] == b"\x05\x04"
    sock.close()
    assert [r for r in relay.requests if r.port == 80].count(("www.levantledger.example", 80)) == 1
