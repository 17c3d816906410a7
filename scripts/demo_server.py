#!/usr/bin/env python3
"""Loopback HTTP server for the archiver's self-contained demo news site.

The site (``scripts/demo_site/``) is modelled on a 2016 live blog about the
Aleppo evacuation and exercises what real evidence pages do: a stylesheet
that pulls in its own image, a lazy image far below the fold, JavaScript that
fetches JSON and writes it into the DOM (served gzip-compressed), an embedded
tweet, a same-origin iframe, a redirecting outbound link, an ISO-8859-1 page
and a PDF. Nothing on it loads from any other host.

The same server provides routes for tests and benchmarks under ``/test/``:
arbitrary status codes, slow responses, redirect chains, a response that
never finishes, a page with a hanging image, 100,000 generated pages and a
plain-text file.

Standard library only (plus the ``openssl`` CLI for the proxy's certificates), so it runs anywhere
the tests run::

    python scripts/demo_server.py [--host 127.0.0.1] [--port 0] [--proxy-port 0] [--verbose]

prints ``serving http://127.0.0.1:PORT`` once listening (then ``proxy URL``,
``ca-file PATH`` and ``ca-spki-sha256 HASH`` lines) and serves until
SIGTERM or SIGINT. Tests import it by path and call :func:`start`.

The fixture world
-----------------
Beside the news site, :func:`start` runs a forward proxy (``DemoServer.proxy_url``) that stands in for
the platforms the article cites, under their real host names and URL shapes, so that httpx, Chromium
and yt-dlp configured with a proxy and a CA take their production code paths unchanged:

* ``www.levantledger.example`` — the news site again (also ``127.0.0.1``/``localhost`` at its port);
* ``cdn.syndication.twimg.com/tweet-result`` — the tweet embed API, token-checked, answers from
  ``demo_site/world/syndication/`` or a tombstone (:meth:`DemoServer.set_tweet_state` changes them);
* ``pbs.twimg.com``, ``video.twimg.com`` — photos (``name=orig|small``), posters, avatars, MP4s with
  Range support, HLS playlists and segments;
* ``platform.twitter.com/embed/Tweet.html?id=`` — an embed page that computes the token in JavaScript
  and renders the tweet from the syndication API;
* ``twitter.com``/``x.com`` (and www./mobile.) ``/<user>/status/<id>`` — a logged-out status page;
* ``t.co/<code>`` — 301 to the expanded URL;
* ``www.periscope.tv``/``pscp.tv`` ``/w/<id>`` — Periscope pages (the broadcasts are X broadcasts: below);
* ``api.x.com``/``api.twitter.com`` ``/1.1/guest/activate.json`` (POST), ``x.com/i/api/graphql/<query id>/
  BroadcastQuery``, ``api.x.com/1.1/live_video_stream/status/<media_key>`` and ``prod-video-eu-central-1.pscp.tv``
  — X broadcasts (``x.com/i/broadcasts/<id>``, Periscope ids included) as yt-dlp 2026.11's twitter:broadcast
  extractor reads them, from ``demo_site/world/x_broadcasts.json``; ``api.x.com/1.1/live_event/1/<id>/
  timeline.json`` — X events (``x.com/i/events/<id>``), from ``x_events.json``; ``x.com/i/api/graphql/<query id>/
  AudioSpaceById`` with the same status endpoint and ``prod-fastly-eu-west-3.video.pscp.tv`` (packed-audio HLS) —
  X Spaces (``x.com/i/spaces/<id>``: one with its replay, one whose replay is disabled, one not started yet) as
  yt-dlp 2026.11's twitter:spaces extractor reads them, from ``x_spaces.json``;
* ``vimeo.com`` (``www.`` redirects), ``player.vimeo.com/video/<id>/config``, ``i.vimeocdn.com`` and the HLS CDNs
  ``vod-adaptive-ak.vimeocdn.com``/``skyfire.vimeocdn.com`` — Vimeo videos as yt-dlp 2026.11's vimeo extractor reads
  them (clip page, player config, HLS with separate audio), from ``demo_site/world/vimeo.json``;
* ``www.tiktok.com`` (``tiktok.com``/``m.`` redirect) ``/@<user>/video/<id>``, the video CDN
  ``v16-``/``v19-webapp-prime.tiktok.com`` (wants the page's ``tt_chain_token`` cookie), ``sf16-ies-music-va.tiktokcdn.com``
  and ``p16-sign-va.tiktokcdn.com`` — TikTok videos as yt-dlp 2026.11's TikTok extractor reads them (the page's
  rehydration data), from ``demo_site/world/tiktok.json``;
* ``www.instagram.com`` (``instagram.com`` redirects): the home page (LSD token, csrftoken), ``/api/v1/web/
  get_ruling_for_content/`` and post pages (``/p|reel|tv/<shortcode>``) with their prefetched media item, and
  ``scontent-lhr8-1.cdninstagram.com`` — Instagram posts as yt-dlp 2026.11's Instagram extractor reads them logged out,
  from ``demo_site/world/instagram.json``;
* ``www.facebook.com`` (``facebook.com``/``m.``/``web.`` redirect): video pages (``/watch/?v=<id>``, ``/<page>/videos/
  <id>``, ``/reel/<id>``) with their prefetched Video, the ``/video/tahoe/async/<id>/`` POST fallback (404, as it is gone
  from Facebook), and ``video.flhr8-1.fna.fbcdn.net``/``scontent.flhr8-1.fna.fbcdn.net`` (signed URLs, ``oh=`` checked) —
  Facebook videos as yt-dlp 2026.11's facebook extractor reads them logged out, from ``demo_site/world/facebook.json``;
* ``mastodon.social`` and ``infosec.exchange`` (two instances: a status id is its instance's own) and
  ``files.mastodon.social``: ``/api/v1/statuses/<id>`` (and ``/history``), ``/api/v1/accounts/lookup``, the status
  pages and ``/embed`` views, ``/media_proxy/`` and ``embed.js`` — Mastodon 4.x as a logged-out reader sees it, from
  ``demo_site/world/mastodon/`` (:meth:`DemoServer.set_status_state` deletes a status, suspends its author...);
* ``t.me`` (``telegram.me``/``telegram.dog`` redirect): post widgets (``/<channel>/<id>?embed=1``, ``&single``), channel
  previews (``/s/<channel>[/<id>]``), post and landing pages, Telegram's refusals in words inside a 200 (:meth:`DemoServer.
  set_telegram_state` changes a post's); ``telegram.org/js/telegram-widget.js`` and ``cdn4.telesco.pe`` (media) — Telegram
  public posts as its widget shows them, from ``demo_site/world/telegram/posts.json`` (modelled on the widget's known
  markup: the corpus holds no Telegram answer);
* ``members.levantledger.example`` ``/dispatch/<slug>/`` — the news site's members-only dispatches behind a login
  (``demo_site/world/members.json``): without a valid ``ll_session`` cookie a redirect to ``/login``; with one the page
  (images from www.levantledger.example and pbs.twimg.com, an embedded tweet) and the session handed back in a
  Set-Cookie; ``/go/<slug>`` redirects to the dispatch's source on x.com. ``DemoServer.credential_log`` lists the
  Cookie and Authorization every host of the world received, so tests prove where site credentials went;
* ``public.api.bsky.app`` (resolveHandle, getPostThread, getProfile), ``bsky.app`` post pages, ``embed.bsky.app``
  (embed.js and the embed iframe), ``plc.directory`` (DID documents), two data servers
  ``morel.us-east.host.bsky.network``/``shiitake.us-west.host.bsky.network`` (getBlob: the blobs as uploaded),
  ``cdn.bsky.app`` (re-encoded copies) and ``video.bsky.app`` (HLS) — Bluesky posts as the public AppView serves them,
  from ``demo_site/world/bluesky/`` (:meth:`DemoServer.set_bluesky_state` deletes them, takes accounts down...);
* ``timestamp.demo-tsa.example`` (POST, plain http as real TSAs are) — an RFC 3161 time-stamping authority:
  the query is relayed to the loopback TSA set with ``DemoServer.set_tsa`` (scripts/tsa_server.py), so that
  timestamp requests take the proxy path real ones take; 502 while none is set.

``CONNECT host:443`` is answered by terminating TLS with a certificate for that host, signed by a test
CA made per process with the ``openssl`` CLI (``DemoServer.ca_file``; ``DemoServer.ca_spki_sha256`` is
its key hash for Chromium's ``--ignore-certificate-errors-spki-list``). Any other host gets 502: the
proxy never connects anywhere. ``DemoServer.proxy_log`` lists what went through it.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import datetime
import gzip
import hashlib
import html
import http.cookies
import http.server
import json
import math
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, NamedTuple

SITE_ROOT = Path(__file__).resolve().parent / "demo_site"

ARTICLE_PATH = "/2016/12/16/aleppo-live/"
SECOND_ARTICLE_PATH = "/2016/12/16/evacuation-suspended/"

# Upper bound for every deliberate delay, so a forgotten client can never pin
# a thread (or a CI job) for longer than this.
MAX_DELAY_SECONDS = 120.0
HANGING_IMAGE_DEFAULT_SECONDS = 60.0
BENCH_PAGE_COUNT = 100_000
MAX_REDIRECT_CHAIN = 1000
# Idle keep-alive connections are dropped after this long so handler threads
# do not accumulate when browsers hold sockets open.
IDLE_CONNECTION_TIMEOUT = 30.0

HTML_TYPE = "text/html; charset=utf-8"

CONTENT_TYPES: dict[str, str] = {
    ".html": HTML_TYPE,
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
}

# Files whose bytes are not UTF-8: the header must say so, and the bytes are
# served exactly as stored so archivers see the legacy encoding.
CONTENT_TYPE_OVERRIDES: dict[str, str] = {
    "/archive/1998/communique.html": "text/html; charset=ISO-8859-1",
}

# Only JavaScript is compressed, so captures contain both encoded and
# identity responses and the archiver has to handle Content-Encoding.
GZIP_SUFFIXES = frozenset({".js"})

REDIRECTS: dict[str, str] = {
    "/go/evacuation-suspended": SECOND_ARTICLE_PATH,
}

NO_BODY_STATUSES = frozenset({204, 304})

# Static files answered after a short delay. The avatar inside the Periscope
# embed stands in for a slow third-party CDN, and because it is inside the
# iframe it holds back the article's load event until live.js has long
# since inserted /api/updates.json. `chromium --dump-dom` snapshots the DOM
# right at the load event, so without this the JS-added text is a race.
SLOW_STATIC_SECONDS: dict[str, float] = {
    "/static/img/alhamdo-avatar.png": 0.25,
}


# --------------------------------------------------------------------------
# Content helpers
# --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _read_site_file(path: Path) -> bytes:
    """Return a site file's bytes; the site is tiny and immutable at run time."""
    return path.read_bytes()


@lru_cache(maxsize=None)
def _gzipped(path: Path) -> bytes:
    # mtime=0 keeps the compressed bytes identical across runs, which makes
    # payload digests in WARC records reproducible.
    return gzip.compress(_read_site_file(path), compresslevel=9, mtime=0)


def _accepts_gzip(header: str | None) -> bool:
    """True if an Accept-Encoding header allows gzip (honours ``q=0``)."""
    if not header:
        return False
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _resolve_site_path(url_path: str) -> Path | None:
    """Map a URL path to a file or directory inside SITE_ROOT, or None."""
    rel = urllib.parse.unquote(url_path).lstrip("/")
    if "\x00" in rel:
        return None
    try:
        candidate = (SITE_ROOT / rel).resolve()
    except (OSError, ValueError):  # e.g. a name longer than the OS allows
        return None
    # resolve() collapses "..", so this containment check blocks traversal.
    if candidate != SITE_ROOT and SITE_ROOT not in candidate.parents:
        return None
    if any(part.startswith(".") for part in candidate.relative_to(SITE_ROOT).parts):
        return None
    if candidate == WORLD_ROOT or WORLD_ROOT in candidate.parents:
        return None  # the fixture world's files are served only under their own host names
    try:
        return candidate if candidate.exists() else None
    except OSError:
        return None


def _page(title: str, body_html: str) -> bytes:
    """Small HTML5 document for generated pages, using the shared stylesheet."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="/favicon.ico">\n'
        '<link rel="stylesheet" href="/static/site.css">\n'
        f"</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    ).encode("utf-8")


def _simple_page(title: str, text: str) -> bytes:
    body = (
        '<div class="page single"><main>'
        f'<h1 class="headline">{html.escape(title)}</h1>'
        f"<p>{html.escape(text)}</p>"
        '<p><a href="/">Home</a> &middot; <a href="/test/">Test routes</a></p>'
        "</main></div>"
    )
    return _page(title, body)


def _parse_seconds(query: dict[str, list[str]], default: float) -> float | None:
    """Parse ``seconds`` from a query string, clamped to [0, MAX_DELAY_SECONDS]."""
    raw = query.get("seconds", [None])[0]
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    if math.isnan(value):
        return None
    return min(max(value, 0.0), MAX_DELAY_SECONDS)


# Words for the generated benchmark pages: a deterministic per-page pick makes
# each page's text differ beyond its number, so dedup by content cannot cheat.
_BENCH_WORDS = (
    "convoy checkpoint evacuation ceasefire statement witness corridor "
    "negotiation ambulance district shelter broadcast archive verification "
    "footage correspondent bulletin barricade crossing dispatch"
).split()


def _bench_page(n: int) -> bytes:
    words = [_BENCH_WORDS[(n * 7 + i * 13 + (n >> i)) % len(_BENCH_WORDS)] for i in range(12)]
    links = []
    if n > 1:
        links.append(f'<a rel="prev" href="/test/pages/{n - 1}">Previous: bench page {n - 1}</a>')
    if n < BENCH_PAGE_COUNT:
        links.append(f'<a rel="next" href="/test/pages/{n + 1}">Next: bench page {n + 1}</a>')
    body = (
        '<div class="page single bench"><main><article>'
        f'<h1 class="headline">Bench page {n}</h1>'
        '<figure><img src="/static/img/bench-figure.png" width="320" height="180" '
        'alt="Bar chart used on every bench page"></figure>'
        f"<p>This is generated benchmark article number {n} of {BENCH_PAGE_COUNT}. "
        f"Its keywords are {' '.join(words)}. Page {n} links to its neighbours so a "
        f"crawler can walk the sequence; the marker for this page is bench-{n:06d}.</p>"
        f"<p>{' &middot; '.join(links)}</p>"
        "</article></main></div>"
    )
    return _page(f"Bench page {n}", body)


_NEVER_FINISHES_HEAD = (
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>Never-finishing page</title>\n"
    '<link rel="icon" href="/favicon.ico">\n'
    "</head>\n<body>\n<h1>This response never finishes</h1>\n"
    "<p>The server sent this first part and then keeps the connection open "
    "without sending anything else.</p>\n"
    # Padding past 1 KiB so browsers commit and render the partial document
    # instead of waiting for more bytes to sniff.
    f"<!-- {'padding ' * 160}-->\n"
).encode("utf-8")
_NEVER_FINISHES_TAIL = b"<p>Gave up waiting; closing.</p>\n</body>\n</html>\n"


def _test_index() -> bytes:
    items = [
        ("/test/status/404", "any status code"),
        ("/test/slow?seconds=2", "slow response"),
        ("/test/redirect-chain?n=3", "redirect chain"),
        ("/test/never-finishes", "response that never finishes"),
        ("/test/hanging-subresource/", "page with a hanging image"),
        ("/test/pages/1", "benchmark pages 1..100000"),
        ("/test/plain.txt", "plain text"),
        ("/test/document", "a PDF at a URL without an extension"),
        ("/test/cross-site-frame", "a page embedding a cross-site iframe"),
    ]
    lis = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a> — {d}</li>' for u, d in items)
    return _page("Test routes", f'<div class="page single"><main><h1 class="headline">Test routes</h1><ul>{lis}</ul></main></div>')


# --------------------------------------------------------------------------
# The fixture world: platform hosts behind the forward proxy
# --------------------------------------------------------------------------

WORLD_ROOT = SITE_ROOT / "world"

# The news site's name in the fixture world, so the article has a realistic URL through the proxy.
NEWS_HOST = "www.levantledger.example"

SYNDICATION_HOST = "cdn.syndication.twimg.com"
PSCP_VIDEO_HOST = "prod-video-eu-central-1.pscp.tv"
SPACES_AUDIO_HOST = "prod-fastly-eu-west-3.video.pscp.tv"
TWITTER_HOSTS = frozenset({
    "twitter.com", "www.twitter.com", "mobile.twitter.com", "x.com", "www.x.com", "mobile.x.com",
})
PERISCOPE_HOSTS = frozenset({"www.periscope.tv", "periscope.tv", "pscp.tv", "www.pscp.tv"})
X_API_HOSTS = frozenset({"api.x.com", "api.twitter.com"})
TSA_HOST = "timestamp.demo-tsa.example"
# What x.com shows for a status, broadcast or event it does not have.
X_NOT_FOUND = "Hmm...this page doesn’t exist. Try searching for something else."
# What X's REST API answers (404) for a path or an item it does not have.
X_API_NOT_FOUND = {"errors": [{"code": 34, "message": "Sorry, that page does not exist."}]}
VIMEO_HOSTS = frozenset({"vimeo.com", "www.vimeo.com"})
VIMEO_CDN_HOST = "vod-adaptive-ak.vimeocdn.com"
TIKTOK_HOSTS = frozenset({"www.tiktok.com", "tiktok.com", "m.tiktok.com"})
TIKTOK_VIDEO_HOST = "v16-webapp-prime.tiktok.com"
# The cookie tiktok.com sets on every page and its video CDN wants (403 without it), as TikTok's does.
TIKTOK_CHAIN_TOKEN = "nHpm9Kf3xQ2bL7vR0tWs8eYdC4gJ1aZu"
INSTAGRAM_HOSTS = frozenset({"www.instagram.com", "instagram.com"})
INSTAGRAM_WEB_APP_ID = "936619743392459"
FACEBOOK_HOSTS = frozenset({"www.facebook.com", "facebook.com", "m.facebook.com", "web.facebook.com"})
# Facebook's CDN: videos and pictures, from the London edge (as yt-dlp's _TESTS record fitm1-1 and the like).
FACEBOOK_CDN_HOSTS = frozenset({"video.flhr8-1.fna.fbcdn.net", "scontent.flhr8-1.fna.fbcdn.net"})
# Telegram: t.me answers; telegram.me and telegram.dog are its older names and redirect there.
TELEGRAM_HOSTS = frozenset({"t.me", "telegram.me", "www.telegram.me", "telegram.dog"})
TELEGRAM_CDN_HOSTS = frozenset({"cdn4.telesco.pe", "cdn4.cdn-telegram.org"})
TELEGRAM_STATES = ("available", "deleted", "withheld", "removed", "channel-gone", "empty")
# The news site's members-only dispatches, behind a login (members.json; _world_members).
MEMBERS_HOST = "members.levantledger.example"
# Hosts that serve another host's stored files: a platform's second CDN answers the same paths as its first.
MEDIA_MIRRORS: dict[str, str] = {"skyfire.vimeocdn.com": VIMEO_CDN_HOST, "v19-webapp-prime.tiktok.com": TIKTOK_VIDEO_HOST}
# Image hosts that resize on request: (path pattern, stored file as a match template) per host.
IMAGE_VARIANTS: dict[str, tuple[str, str]] = {
    "i.vimeocdn.com": (r"/video/([0-9]{1,20})(?:[-_][0-9a-z_x-]*)?(?:\.(?:jpg|webp))?", r"/video/\1.jpg"),
    "p16-sign-va.tiktokcdn.com": (r"/obj/(tos-[a-z0-9-]+)/([A-Za-z0-9]{20,64})~[^/]+\.(?:jpeg|image|webp)",
                                  r"/obj/\1/\2.jpeg"),
}
# The fixture world's Mastodon instances (world/mastodon/): two, so that tests show the host is part of a status's key.
MASTODON_HOSTS = ("mastodon.social", "infosec.exchange")
# Bluesky: the AppView, the app (and its embeds), the PLC directory, two data servers (PDS), the CDN, the video host.
BLUESKY_ROUTES: dict[str, str] = {
    "public.api.bsky.app": "_world_bluesky_appview", "bsky.app": "_world_bluesky_app",
    "embed.bsky.app": "_world_bluesky_app", "plc.directory": "_world_bluesky_plc",
    "morel.us-east.host.bsky.network": "_world_bluesky_pds", "shiitake.us-west.host.bsky.network": "_world_bluesky_pds",
    "cdn.bsky.app": "_world_bluesky_cdn", "video.bsky.app": "_world_bluesky_video",
}
# Post states DemoServer.set_bluesky_state takes: of the post itself, or (the last three) of its author's account.
BLUESKY_POST_STATES = ("available", "deleted", "not-found-view", "blocked", "labelled-takedown", "empty", "unavailable")
BLUESKY_ACCOUNT_STATES = ("taken-down", "deactivated", "account-deleted")
# What embed.bsky.app/static/embed.js does: each blockquote.bluesky-embed becomes an iframe of the post's embed page.
_BLUESKY_EMBED_JS = """(function () {
  document.querySelectorAll('blockquote.bluesky-embed[data-bluesky-uri]').forEach(function (q) {
    var m = /^at:\\/\\/([^/]+)\\/app\\.bsky\\.feed\\.post\\/([^/]+)$/.exec(q.getAttribute('data-bluesky-uri'));
    if (!m) return;
    var f = document.createElement('iframe');
    f.src = 'https://embed.bsky.app/embed/' + m[1] + '/app.bsky.feed.post/' + m[2] + '?id=' + Math.floor(Math.random() * 1e9);
    f.width = '550'; f.height = '420'; f.style.border = '0';
    q.replaceWith(f);
  });
})();
"""


def _bluesky_page(title: str, head: str, body: str) -> bytes:
    """A bsky.app page: its own look, nothing loaded from the news site."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>{head}'
            '<style>body{font-family:system-ui,sans-serif;max-width:600px;margin:2em auto;color:#0b0f14}'
            'article{border:1px solid #d4dbe2;border-radius:8px;padding:1em}img,video{max-width:100%;display:block;'
            'margin:.5em 0}.quote{border:1px solid #d4dbe2;border-radius:6px;padding:.5em;margin:.5em 0}'
            f'</style></head><body><main class="bsky">{body}</main></body></html>').encode()


# Host -> handler method. Hosts not listed here (and not NEWS_HOST) are refused with 502.
WORLD_ROUTES: dict[str, str] = {
    SYNDICATION_HOST: "_world_syndication",
    "pbs.twimg.com": "_world_pbs",
    "video.twimg.com": "_world_media_file",
    PSCP_VIDEO_HOST: "_world_media_file",
    SPACES_AUDIO_HOST: "_world_media_file",
    "platform.twitter.com": "_world_platform",
    "t.co": "_world_tco",
    **{host: "_world_x_api" for host in X_API_HOSTS},
    **{host: "_world_twitter" for host in TWITTER_HOSTS},
    **{host: "_world_periscope" for host in PERISCOPE_HOSTS},
    TSA_HOST: "_world_tsa",
    **{host: "_world_vimeo" for host in VIMEO_HOSTS},
    "player.vimeo.com": "_world_vimeo_player",
    "i.vimeocdn.com": "_world_image_variants",
    VIMEO_CDN_HOST: "_world_media_file",
    "skyfire.vimeocdn.com": "_world_media_file",
    **{host: "_world_tiktok" for host in TIKTOK_HOSTS},
    TIKTOK_VIDEO_HOST: "_world_tiktok_video",
    "v19-webapp-prime.tiktok.com": "_world_tiktok_video",
    "sf16-ies-music-va.tiktokcdn.com": "_world_media_file",
    "p16-sign-va.tiktokcdn.com": "_world_image_variants",
    **{host: "_world_instagram" for host in INSTAGRAM_HOSTS},
    "scontent-lhr8-1.cdninstagram.com": "_world_media_file",
    **{host: "_world_facebook" for host in FACEBOOK_HOSTS},
    **{host: "_world_facebook_cdn" for host in FACEBOOK_CDN_HOSTS},
    **{host: "_world_mastodon" for host in MASTODON_HOSTS},
    **{f"files.{host}": "_world_mastodon_files" for host in MASTODON_HOSTS},
    **{host: "_world_telegram" for host in TELEGRAM_HOSTS},
    "telegram.org": "_world_telegram_org",
    **{host: "_world_telegram_cdn" for host in TELEGRAM_CDN_HOSTS},
    MEMBERS_HOST: "_world_members",

    **BLUESKY_ROUTES,
}
WORLD_HOSTS = frozenset(WORLD_ROUTES) | {NEWS_HOST}

WORLD_CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".mp4": "video/mp4",
    ".m3u8": "application/x-mpegURL",
    ".ts": "video/MP2T",
    ".m4s": "video/iso.segment",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",   # an X Space's packed-audio chunks
    ".html": HTML_TYPE,
}
JSON_TYPE = "application/json;charset=utf-8"

# pbs.twimg.com ``name=`` values and which stored variant answers them ("small" fits 680 px).
PBS_SMALL_NAMES = frozenset({"small", "thumb", "120x120", "240x240", "360x360"})
PBS_ORIG_NAMES = frozenset({"orig", "large", "medium", "4096x4096", "900x900"})

TLS_HANDSHAKE_TIMEOUT = 10.0
CERT_DAYS = 30


class ProxyRequest(NamedTuple):
    """One entry of ``DemoServer.proxy_log``: CONNECT tunnels have an empty path."""

    method: str
    host: str
    path: str


class CredentialSeen(NamedTuple):
    """One entry of ``DemoServer.credential_log``: what a request to any host of the world carried."""

    host: str
    path: str
    cookie: str | None
    authorization: str | None


@lru_cache(maxsize=None)
def _world_json(name: str) -> Any:
    return json.loads(_read_site_file(WORLD_ROOT / name))


def _relay_prefetched_sjs(preloader: str, data: dict[str, Any]) -> str:
    """The ``<script data-sjs>`` in which Meta's web apps (Facebook, Instagram) ship a prefetched GraphQL answer:
    a ScheduledServerJS blob whose RelayPrefetchedStreamCache entry holds ``data`` for the preloader."""
    prefetched = ["RelayPrefetchedStreamCache", "next", [], [
        preloader, {"__bbox": {"complete": True, "result": {"data": data, "extensions": {"is_final": True}},
                               "sequence_number": 0}}]]
    sjs = {"require": [["ScheduledServerJS", "handle", None, [{"__bbox": {"require": [prefetched]}}]]]}
    script = _compact_json(sjs).decode("utf-8").replace("</", "<\\/")
    return f'<script type="application/json" data-content-len="{len(script)}" data-sjs>{script}</script>'


def _compact_json(value: Any) -> bytes:
    # Platform APIs answer compact JSON; the fixture files are indented for people.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _resolve_under(root: Path, url_path: str) -> Path | None:
    """A file (not a directory) under ``root`` for a URL path, or None; blocks traversal and dot-files."""
    rel = urllib.parse.unquote(url_path).lstrip("/")
    if not rel or "\x00" in rel:
        return None
    try:
        candidate = (root / rel).resolve()
    except (OSError, ValueError):
        return None
    if root not in candidate.parents or any(part.startswith(".") for part in candidate.relative_to(root).parts):
        return None
    try:
        return candidate if candidate.is_file() else None
    except OSError:
        return None


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Parse a single-range ``Range: bytes=`` header: (first, last), "unsatisfiable", or None (send all)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units and multipart ranges: answer with the whole body, as RFC 9110 allows
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # suffix range: the last N bytes
        n = int(last_text)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(size - n, 0), size - 1
    first = int(first_text)
    if last_text and not last_text.isdigit():
        return None
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size:
        return "unsatisfiable"
    if last < first:
        return None
    return first, last


class _CertAuthority:
    """A throwaway CA for the proxy's TLS interception, made with the openssl CLI.

    One per process (see :func:`_cert_authority`), in a temp dir removed at exit. Leaf certificates share
    one key and are made on first use per host; the handshake sends leaf + CA.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="demo-world-ca-"))
        atexit.register(shutil.rmtree, self.dir, True)
        self.ca_file = self.dir / "ca.pem"
        self._ca_key = self.dir / "ca.key"
        self._leaf_key = self.dir / "leaf.key"
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        config = self.dir / "openssl.cnf"
        config.write_text(
            "[req]\ndistinguished_name = dn\n[dn]\n"
            "[ca_ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
            "subjectKeyIdentifier = hash\n"
        )
        self._openssl("req", "-x509", "-config", str(config), "-extensions", "ca_ext",
                      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", str(self._ca_key), "-out", str(self.ca_file), "-days", str(CERT_DAYS),
                      "-subj", "/O=archiver demo world/CN=archiver demo world test CA")
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(self._leaf_key))
        self._csr_config = config
        # The PEM "PUBLIC KEY" block is the DER SubjectPublicKeyInfo, base64-encoded.
        pubkey_pem = self._openssl("x509", "-in", str(self.ca_file), "-noout", "-pubkey").decode("ascii")
        der = base64.b64decode("".join(line for line in pubkey_pem.splitlines() if not line.startswith("-----")))
        self.spki_sha256 = base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")

    @staticmethod
    def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True, timeout=30).stdout

    def context_for(self, host: str) -> ssl.SSLContext:
        """Server-side TLS context presenting a certificate for ``host`` (made once, then cached)."""
        with self._lock:
            context = self._contexts.get(host)
            if context is None:
                context = self._contexts[host] = self._make_context(host)
            return context

    def _make_context(self, host: str) -> ssl.SSLContext:
        ext = self.dir / f"{host}.ext"
        ext.write_text(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n"
            f"authorityKeyIdentifier = keyid:always\nsubjectAltName = DNS:{host}\n"
        )
        csr = self._openssl("req", "-new", "-config", str(self._csr_config), "-key", str(self._leaf_key),
                            "-subj", f"/CN={host}")
        leaf = self._openssl("x509", "-req", "-CA", str(self.ca_file), "-CAkey", str(self._ca_key),
                             "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS),
                             "-extfile", str(ext), stdin=csr)
        chain = self.dir / f"{host}.chain.pem"
        chain.write_bytes(leaf + self.ca_file.read_bytes())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, self._leaf_key)
        context.set_alpn_protocols(["http/1.1"])
        return context


_CA: _CertAuthority | None = None
_CA_LOCK = threading.Lock()


def _cert_authority() -> _CertAuthority:
    global _CA
    with _CA_LOCK:
        if _CA is None:
            _CA = _CertAuthority()
        return _CA


class _World:
    """Run-time state of the fixture world, shared by the site and proxy listeners of one DemoServer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proxy_log: list[ProxyRequest] = []
        self.tweet_states: dict[str, str] = {}
        self.fedi_states: dict[str, str] = {}   # "<host>/<status id>" -> state (DemoServer.set_status_state)
        self.telegram_states: dict[str, str] = {}  # "<channel>/<id>" -> a state of world/telegram/posts.json
        self.space_states: dict[str, str] = {}   # X Space id -> "gone" | "replay-disabled" (DemoServer.set_space_state)
        self.bluesky_states: dict[str, str] = {}  # post rkey or account DID -> state (DemoServer.set_bluesky_state)
        self.tsa_url: str | None = None    # where timestamp.demo-tsa.example relays to
        self.media_file: Path | None = None  # what /test/media.mp4 streams (DemoServer.set_media)
        self.credential_log: list[CredentialSeen] = []   # DemoServer.credential_log

    def log(self, method: str, host: str, path: str) -> None:
        with self.lock:
            self.proxy_log.append(ProxyRequest(method, host, path))

    def log_credentials(self, host: str, path: str, headers: Any) -> None:
        with self.lock:
            self.credential_log.append(CredentialSeen(host, path, headers.get("Cookie"), headers.get("Authorization")))

    def tweet_state(self, tweet_id: str) -> str:
        with self.lock:
            override = self.tweet_states.get(tweet_id)
        return override or _world_json("tweets.json")[tweet_id]["state"]


    def fedi_state(self, key: str) -> str | None:
        with self.lock:
            return self.fedi_states.get(key)


def tweet_states() -> list[str]:
    """States a fixture tweet can be put in with :meth:`DemoServer.set_tweet_state`."""
    return ["available", *(k for k in _world_json("tombstones.json") if not k.startswith("_"))]


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    """Threaded server that counts hits and can cut waits short on stop."""

    daemon_threads = True  # a hung client must never keep the process alive
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], verbose: bool, proxy_for: _Server | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.verbose = verbose
        # The proxy listener serves the same site and world: it shares the
        # site listener's hit counts, stop event and world state.
        self.is_proxy = proxy_for is not None
        self.site_port: int = proxy_for.server_address[1] if proxy_for else 0
        self.hits: dict[str, int] = proxy_for.hits if proxy_for else {}
        self.hits_lock = proxy_for.hits_lock if proxy_for else threading.Lock()
        # Set on stop(): slow and never-finishing handlers wait on it instead
        # of sleeping, so shutdown is immediate.
        self.stopping = proxy_for.stopping if proxy_for else threading.Event()
        self.world = proxy_for.world if proxy_for else _World()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def count_hit(self, path: str) -> None:
        with self.hits_lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def drop_connections(self) -> None:
        """Close every open client socket so clients see the server go away."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients aborting requests (browsers cancel slow images) are normal
        # here; only print tracebacks when asked to.
        if self.verbose:
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "LevantLedgerDemo/1.0"
    timeout = IDLE_CONNECTION_TIMEOUT
    # Set on handlers that serve the inside of a CONNECT tunnel: the host the tunnel was opened to.
    tunnel_host: str | None = None

    # ---- plumbing -------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_POST(self) -> None:
        # Only the X API (guest/activate.json), Facebook (the tahoe endpoint) and the TSA take POSTs; always read
        # the body so keep-alive stays in step.
        self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._handle(head=False)

    def do_CONNECT(self) -> None:
        self._head = False
        try:
            self._connect()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            pass
        self.close_connection = True

    def _handle(self, head: bool) -> None:
        self._head = head
        try:
            routed = self._virtual_host()
            if routed is None:
                return
            host, target = routed
            parts = urllib.parse.urlsplit(target)
            path = parts.path or "/"
            # Every request's credentials, whichever host it is for: tests prove where site credentials went.
            self.server.world.log_credentials(host or NEWS_HOST, path, self.headers)
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
            if self.command == "POST" and host not in X_API_HOSTS and host != TSA_HOST and host not in FACEBOOK_HOSTS:
                self._send(405, b"Method not allowed.\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})
            elif host is None:
                # Count on arrival, so tests can see requests that never complete.
                self.server.count_hit(path)
                self._route(path, query)
            else:
                getattr(self, WORLD_ROUTES[host])(host, path, query)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    def _virtual_host(self) -> tuple[str | None, str] | None:
        """(world host or None for the news site, origin-form target); None when already answered."""
        if self.tunnel_host is not None:
            self.server.world.log(self.command, self.tunnel_host, self.path)
            return (None if self.tunnel_host == NEWS_HOST else self.tunnel_host), self.path
        if not self.server.is_proxy:
            # Direct requests: the Host header may name a world host (handy with curl -H);
            # anything else is the news site, as it always was.
            host = (urllib.parse.urlsplit("//" + self.headers.get("Host", "")).hostname or "").rstrip(".")
            return (host if host in WORLD_ROUTES else None), self.path
        parts = urllib.parse.urlsplit(self.path)
        try:
            port = parts.port
        except ValueError:
            port = -1
        host = (parts.hostname or "").rstrip(".")
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.server.world.log(self.command, host, target)
        if parts.scheme.lower() != "http" or not host:
            self._send(400, b"This is a forward proxy: send absolute-form http:// requests or CONNECT.\n",
                       "text/plain; charset=utf-8")
            return None
        if host in WORLD_HOSTS and port in (None, 80):
            return (None if host == NEWS_HOST else host), target
        if host in ("127.0.0.1", "localhost") and port == self.server.site_port:
            return None, target
        self._bad_gateway(f"{host}:{port or 80}")
        return None

    def _bad_gateway(self, authority: str) -> None:
        # Never a real outbound connection: unknown hosts end here.
        body = f"demo proxy: {authority} is not part of the fixture world; nothing was forwarded.\n"
        self.close_connection = True
        self._send(502, body.encode("utf-8"), "text/plain; charset=utf-8", {"Connection": "close"})

    def _connect(self) -> None:
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]").lower().rstrip(".")
        self.server.world.log("CONNECT", host, "")
        if not self.server.is_proxy:
            self._send(405, b"CONNECT is only served on the proxy port.\n", "text/plain; charset=utf-8",
                       {"Allow": "GET, HEAD"})
            return
        if host not in WORLD_HOSTS or port != "443":
            self._bad_gateway(f"{host}:{port}")
            return
        try:
            context = _cert_authority().context_for(host)
        except (OSError, subprocess.SubprocessError, ssl.SSLError) as exc:
            self._send(502, f"demo proxy: no certificate for {host}: {exc}\n".encode(), "text/plain; charset=utf-8")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        raw = self.connection
        raw.settimeout(TLS_HANDSHAKE_TIMEOUT)
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a client that does not trust the CA hangs up during the handshake
        # wrap_socket took over the file descriptor; the TLS socket is what stop() must close now.
        self.server.track(raw, False)
        try:
            _TunnelHandler(tls, self.client_address, self.server, host)
        except (ssl.SSLError, OSError):
            pass
        finally:
            tls.close()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = HTML_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with an exact Content-Length."""
        # Codes outside http.HTTPStatus (e.g. 599) would get an empty reason
        # phrase, which some clients log oddly; name them explicitly.
        self.send_response(status, None if status in self.responses else "Unknown Status")
        if status not in NO_BODY_STATUSES:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self._head and status not in NO_BODY_STATUSES:
            self.wfile.write(body)

    def _not_found(self) -> None:
        self._send(404, _simple_page("404 Not Found", f"Nothing lives at {self.path}."))

    def _bad_request(self, why: str) -> None:
        self._send(400, _simple_page("400 Bad Request", why))

    def _redirect(self, location: str, status: int = 302) -> None:
        body = _simple_page("Moved", f"This page has moved to {location}.")
        self._send(status, body, headers={"Location": location})

    def _wait(self, seconds: float) -> bool:
        """Sleep, but return True at once if the server is stopping.

        Callers then drop the connection instead of answering, so a request
        cut short by stop() never looks like a completed response.
        """
        if self.server.stopping.wait(seconds):
            self.close_connection = True
            return True
        return False

    # ---- routing --------------------------------------------------------

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        if path in REDIRECTS:
            self._redirect(REDIRECTS[path])
            return
        if path == "/test" or path.startswith("/test/"):
            self._route_test(path, query)
            return
        self._serve_static(path)

    def _serve_static(self, path: str) -> None:
        target = _resolve_site_path(path)
        if target is None:
            self._not_found()
            return
        if path in SLOW_STATIC_SECONDS and self._wait(SLOW_STATIC_SECONDS[path]):
            return
        if target.is_dir():
            if not path.endswith("/"):
                # Same as any static host: directories live at a slash URL, so
                # relative links inside index.html resolve correctly.
                self._redirect(path + "/", 301)
                return
            target = target / "index.html"
            if not target.is_file():
                self._not_found()
                return
        content_type = CONTENT_TYPE_OVERRIDES.get(path) or CONTENT_TYPES.get(
            target.suffix.lower(), "application/octet-stream"
        )
        headers: dict[str, str] = {}
        if target.suffix.lower() in GZIP_SUFFIXES:
            headers["Vary"] = "Accept-Encoding"
            if _accepts_gzip(self.headers.get("Accept-Encoding")):
                headers["Content-Encoding"] = "gzip"
                self._send(200, _gzipped(target), content_type, headers)
                return
        if path == "/api/updates.json":
            # A live feed: clients must not reuse a stale copy.
            headers["Cache-Control"] = "no-cache"
        self._send(200, _read_site_file(target), content_type, headers)

    def _route_test(self, path: str, query: dict[str, list[str]]) -> None:
        routes: dict[str, Callable[[dict[str, list[str]]], None]] = {
            "/test/": lambda q: self._send(200, _test_index()),
            "/test/slow": self._test_slow,
            "/test/slow-image": self._test_slow_image,
            "/test/redirect-chain": self._test_redirect_chain,
            "/test/never-finishes": self._test_never_finishes,
            "/test/hanging-subresource/": self._test_hanging_subresource,
            "/test/plain.txt": self._test_plain,
            "/test/document": self._test_document,
            "/test/cross-site-frame": self._test_cross_site_frame,
            "/test/media.mp4": self._test_media,
        }
        if path in routes:
            routes[path](query)
        elif path in ("/test", "/test/hanging-subresource"):
            self._redirect(path + "/", 301)
        elif path.startswith("/test/status/"):
            self._test_status(path.removeprefix("/test/status/"))
        elif path.startswith("/test/pages/"):
            self._test_pages(path.removeprefix("/test/pages/"))
        else:
            self._not_found()

    # ---- test routes ----------------------------------------------------

    def _test_status(self, code_text: str) -> None:
        # Informational (1xx) codes are interim responses, not answers; a
        # client would wait forever for the final one, so they are refused.
        if not code_text.isdigit() or not 200 <= int(code_text) <= 599:
            self._not_found()
            return
        code = int(code_text)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Unknown Status"
        self._send(code, _simple_page(f"{code} {phrase}", f"This page answered with HTTP status {code}."))

    def _test_slow(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=1.0)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        if self._wait(seconds):
            return
        self._send(200, _simple_page("Slow page", f"This page took {seconds:g} seconds to answer."))

    def _test_slow_image(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=HANGING_IMAGE_DEFAULT_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        if self._wait(seconds):
            return
        image = _read_site_file(SITE_ROOT / "static" / "img" / "bench-figure.png")
        self._send(200, image, "image/png", {"Cache-Control": "no-store"})

    def _test_redirect_chain(self, query: dict[str, list[str]]) -> None:
        raw = query.get("n", ["3"])[0]
        if not raw.isdigit():
            self._bad_request("n must be a non-negative integer")
            return
        n = min(int(raw), MAX_REDIRECT_CHAIN)
        if n > 0:
            self._redirect(f"/test/redirect-chain?n={n - 1}")
        else:
            self._send(200, _simple_page("Redirect chain complete", "The end of the redirect chain."))

    def _test_never_finishes(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=MAX_DELAY_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        # No Content-Length: the body is delimited by closing the connection,
        # which is the only way a server can leave a response open-ended
        # without chunked encoding.
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self._head:
            return
        self.wfile.write(_NEVER_FINISHES_HEAD)
        self.wfile.flush()
        if not self._wait(seconds):
            self.wfile.write(_NEVER_FINISHES_TAIL)

    def _test_hanging_subresource(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=HANGING_IMAGE_DEFAULT_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        body = (
            '<div class="page single"><main>'
            '<h1 class="headline">Page with a hanging subresource</h1>'
            "<p>The document itself loads at once; the image below takes "
            f"{seconds:g} seconds, so the network never goes idle before then.</p>"
            f'<img src="/test/slow-image?seconds={seconds:g}" width="320" height="180" alt="Slow image">'
            "<p>Text after the image.</p>"
            "</main></div>"
        )
        self._send(200, _page("Hanging subresource", body))

    def _test_pages(self, n_text: str) -> None:
        # Digits only, no leading zeros: one canonical URL per page.
        if not n_text.isdigit() or n_text.startswith("0"):
            self._not_found()
            return
        n = int(n_text)
        if not 1 <= n <= BENCH_PAGE_COUNT:
            self._not_found()
            return
        self._send(200, _bench_page(n))

    def _test_media(self, query: dict[str, list[str]]) -> None:
        # A large media body (the benchmark's seal section: any size, streamed from disk, never held in memory).
        with self.server.world.lock:
            media = self.server.world.media_file
        if media is None:
            self._not_found()
            return
        size = media.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self._head:
            return
        with open(media, "rb") as fh:
            shutil.copyfileobj(fh, self.wfile, 1 << 20)

    def _test_cross_site_frame(self, query: dict[str, list[str]]) -> None:
        # "localhost" and "127.0.0.1" are different sites to Chromium, so this iframe is cross-site
        # (an out-of-process frame under site isolation) while still served by this same server.
        port = self.server.server_address[1]
        body = (
            '<div class="page single"><main><h1 class="headline">Cross-site embed</h1>'
            f'<iframe src="http://localhost:{port}/embed/periscope-card.html" width="500" height="260"></iframe>'
            "</main></div>"
        )
        self._send(200, _page("Cross-site embed", body))

    def _test_document(self, query: dict[str, list[str]]) -> None:
        # The PDF at a URL with no telling extension, as document servers often do:
        # only the response's Content-Type says it is not a web page.
        pdf = _read_site_file(SITE_ROOT / "docs" / "icrc-statement.pdf")
        self._send(200, pdf, "application/pdf", {"Content-Disposition": 'inline; filename="statement.pdf"'})

    def _test_plain(self, query: dict[str, list[str]]) -> None:
        text = (
            "Plain text test file for the archiver.\n"
            "Aleppo, 16 December 2016: the evacuation convoy was turned back.\n"
            "Non-ASCII check: café, Zürich, ç, ©, « ».\n"
        )
        self._send(200, text.encode("utf-8"), "text/plain; charset=utf-8")

    # ---- the fixture world ----------------------------------------------

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, _compact_json(value), JSON_TYPE, headers)

    def _send_file(self, target: Path, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Send a stored file, honouring a single byte range (browsers and yt-dlp ask for them)."""
        body = _read_site_file(target)
        headers = {"Accept-Ranges": "bytes", **(headers or {})}
        wanted = _byte_range(self.headers.get("Range"), len(body))
        if wanted == "unsatisfiable":
            self._send(416, b"", content_type, {**headers, "Content-Range": f"bytes */{len(body)}"})
        elif isinstance(wanted, tuple):
            first, last = wanted
            self._send(206, body[first:last + 1], content_type,
                       {**headers, "Content-Range": f"bytes {first}-{last}/{len(body)}"})
        else:
            self._send(200, body, content_type, headers)

    def _world_not_found(self) -> None:
        self._send(404, _simple_page("404 Not Found", f"Nothing lives at {self.path}."))

    def _world_syndication(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # The real endpoint is fetched cross-origin by the embed iframe, so it allows any origin.
        cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}
        if path != "/tweet-result":
            self._send_empty(404, cors)
            return
        tweet_id = query.get("id", [""])[0]
        token = query.get("token", [""])[0]
        entry = _world_json("tweets.json").get(tweet_id) if tweet_id.isdigit() else None
        if entry is None:
            # Tokens are stored per fixture, not computed here: an unknown id cannot be checked.
            if token:
                self._send_empty(404, cors)
            else:
                self._send_json(400, {"error": "Invalid token"}, cors)
            return
        if token != entry["token"]:
            self._send_json(400, {"error": "Invalid token"}, cors)
            return
        state = self.server.world.tweet_state(tweet_id)
        if state == "available":
            self._send_json(200, _world_json(f"syndication/{tweet_id}.json"), cors)
            return
        if state.startswith("as:"):  # DemoServer.answer_tweet_as: another tweet's answer
            self._send_json(200, _world_json(f"syndication/{state[3:]}.json"), cors)
            return
        answer = _world_json("tombstones.json")[state]
        if answer["body"] is None:
            self._send_empty(answer["status"], cors)
        else:
            self._send_json(answer["status"], answer["body"], cors)

    def _send_empty(self, status: int, headers: dict[str, str]) -> None:
        """A response with no body and no Content-Type, as the syndication API's 404."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _world_pbs(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=604800, must-revalidate"}
        photo = re.fullmatch(r"/media/([A-Za-z0-9_-]+)(?:\.(jpg|jpeg|png))?(?::([a-z0-9x]+))?", path)
        if photo is None:
            if path.startswith("/media/"):
                self._world_not_found()
            else:
                self._world_media_file(host, path, query)
            return
        key, extension, legacy_name = photo.groups()
        fmt = query.get("format", [extension or "jpg"])[0]
        name = query.get("name", [legacy_name or "medium"])[0]
        variant = "small" if name in PBS_SMALL_NAMES else "orig" if name in PBS_ORIG_NAMES else None
        target = WORLD_ROOT / "pbs.twimg.com" / "media" / key / f"{variant}.jpg"
        if fmt not in ("jpg", "jpeg") or variant is None or not target.is_file():
            self._world_not_found()
            return
        self._send_file(target, "image/jpeg", cors)

    def _world_media_file(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """Files stored under world/<host>/ at their URL path (query strings such as ?tag=12 ignored)."""
        if host == PSCP_VIDEO_HOST and re.fullmatch(r"/live/[A-Za-z0-9]{13}/playlist\.m3u8", path):
            self._world_live_playlist()
            return
        target = _resolve_under(WORLD_ROOT / MEDIA_MIRRORS.get(host, host), path)
        if target is None or target.suffix not in WORLD_CONTENT_TYPES or target.suffix == ".html":
            self._world_not_found()
            return
        self._send_file(target, WORLD_CONTENT_TYPES[target.suffix],
                        {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=604800"})

    def _world_live_playlist(self) -> None:
        # A live broadcast: a sliding window of 2-second chunks that moves with the clock and never ends
        # (no #EXT-X-ENDLIST), made of the replay's chunks so that no more media needs to be stored.
        base = ("https://prod-video-eu-central-1.pscp.tv/Transcoding/v1/hls/wuU5JVHoGqCj1TF6eKKc3yN1fdDpdcmxCsXV3hHk2u4AF8"
                "pCbSBHVVs0Nh2e/non_transcode/eu-central-1/periscope-replay-direct-prod-eu-central-1-public/")
        sequence = int(time.time() / 2)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{sequence}"]
        for n in range(sequence, sequence + 3):
            lines += ["#EXT-X-DISCONTINUITY", "#EXTINF:2.000000,", f"{base}chunk_{n % 2}.ts"]
        self._send(200, ("\n".join(lines) + "\n").encode(), "application/x-mpegURL",
                   {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    def _world_platform(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        if path != "/embed/Tweet.html":
            self._world_not_found()
            return
        self._send(200, _read_site_file(WORLD_ROOT / host / "embed" / "Tweet.html"), HTML_TYPE)

    def _world_tco(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        code = path.strip("/")
        location = _world_json("tco.json").get(code) if re.fullmatch(r"[A-Za-z0-9]{1,20}", code) else None
        if location is None:
            self._world_not_found()
            return
        body = (f'<head><noscript><META http-equiv="refresh" content="0;URL={html.escape(location)}">'
                f"</noscript><title>{html.escape(location)}</title></head>").encode("utf-8")
        self._send(301, body, HTML_TYPE, {"Location": location, "Cache-Control": "private,max-age=300"})

    def _world_twitter(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        if path.startswith("/i/broadcasts/"):
            self._world_x_broadcast_page(path)
            return
        if path.startswith("/i/api/graphql/"):
            self._world_x_graphql(path, query)
            return
        if path.startswith("/i/events/"):
            self._world_x_event_page(path)
            return
        if path.startswith("/i/spaces/"):
            self._world_x_space_page(path)
            return
        match = re.fullmatch(r"/(?:[A-Za-z0-9_]{1,15}|i/web)/status(?:es)?/([0-9]{1,20})(?:/(?:photo|video)/[1-4])?/?",
                             path)
        if match is None:
            self._world_not_found()
            return
        tweet_id = match.group(1)
        entry = _world_json("tweets.json").get(tweet_id)
        state = self.server.world.tweet_state(tweet_id) if entry else "not-found"
        if state != "available" and not state.startswith("as:"):  # as:<id> changes the syndication answer only
            if state in ("not-found", "empty"):
                self._send_x_tombstone(X_NOT_FOUND)
            else:
                tomb = _world_json("tombstones.json")[state]["body"]["tombstone"]["text"]["text"]
                self._send_x_tombstone(tomb.removesuffix(" Learn more"))
            return
        data = _world_json(f"syndication/{tweet_id}.json")
        user = data["user"]
        url = f"https://x.com/{user['screen_name']}/status/{tweet_id}"
        media = data.get("mediaDetails") or []
        image = media[0]["media_url_https"] if media else user["profile_image_url_https"].replace("_normal", "")
        title = f"{user['name']} on X: \"{data['text']}\" / X"
        meta = {
            "og:site_name": "X (formerly Twitter)", "og:type": "article", "og:url": url,
            "og:title": f"{user['name']} on X", "og:description": f"\u201c{data['text']}\u201d", "og:image": image,
        }
        body = (
            f'<article class="tweet"><p><strong>{html.escape(user["name"])}</strong> @{html.escape(user["screen_name"])}</p>'
            f'<p class="text">{html.escape(data["text"])}</p>'
            f'<p><time datetime="{html.escape(data["created_at"])}">{html.escape(data["created_at"])}</time></p>'
            "</article>"
        )
        card = f'<meta name="twitter:card" content="{"summary_large_image" if media else "summary"}">\n'
        self._send_x_page(title, meta, url, body, card)

    def _send_x_tombstone(self, message: str) -> None:
        # x.com answers every status, broadcast or event URL with its app shell; the message is what a reader sees.
        body = f'<div class="page single"><main><p class="tombstone">{html.escape(message)}</p></main></div>'
        self._send(200, _page("X", body), headers={"Cache-Control": "no-cache"})

    def _send_x_page(self, title: str, meta: dict[str, str], url: str, body: str, extra_head: str = "") -> None:
        """A logged-out x.com page: og: metadata, canonical link, and the given body."""
        head = "".join(f'<meta property="{k}" content="{html.escape(v)}">\n' for k, v in meta.items())
        head += extra_head + f'<link rel="canonical" href="{html.escape(url)}">\n'
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n"
        )
        self._send(200, document.encode("utf-8"), headers={"Cache-Control": "no-cache"})

    def _world_x_broadcast_page(self, path: str) -> None:
        # x.com answers every /i/broadcasts/<id> with its app shell; one that is gone just says so.
        match = re.fullmatch(r"/i/broadcasts/([A-Za-z0-9]{13})/?", path)
        entry = _world_json("x_broadcasts.json").get(match.group(1)) if match else None
        broadcast = entry["broadcast"] if isinstance(entry, dict) else None
        if not broadcast:
            self._send_x_tombstone(X_NOT_FOUND)
            return
        user = broadcast["user_results"]["result"]["core"]
        url = f"https://x.com/i/broadcasts/{match.group(1)}"
        title = f"{user['name']} on X: \"{broadcast['status']}\" / X"
        meta = {
            "og:site_name": "X (formerly Twitter)", "og:type": "video.other", "og:url": url,
            "og:title": f"{user['name']} on X", "og:description": broadcast["status"],
            "og:image": broadcast["image_url"],
        }
        body = (
            f'<div class="broadcast"><h1>{html.escape(broadcast["status"])}</h1>'
            f'<p><strong>{html.escape(user["name"])}</strong> @{html.escape(user["screen_name"])}</p>'
            f'<img src="{html.escape(broadcast["image_url"])}" alt=""'
            f' width="{broadcast["width"]}" height="{broadcast["height"]}">'
            "</div>"
        )
        self._send_x_page(title, meta, url, body)

    def _world_x_event_page(self, path: str) -> None:
        match = re.fullmatch(r"/i/events/([0-9]{1,20})/?", path)
        timeline = _world_json("x_events.json").get(match.group(1)) if match else None
        if timeline is None:
            self._send_x_tombstone(X_NOT_FOUND)
            return
        event = timeline["twitter_objects"]["live_events"][match.group(1)]
        url = f"https://x.com/i/events/{match.group(1)}"
        meta = {"og:site_name": "X (formerly Twitter)", "og:type": "article", "og:url": url,
                "og:title": event["title"], "og:description": event["description"]}
        body = (f'<div class="event"><h1>{html.escape(event["title"])}</h1>'
                f'<p>{html.escape(event["description"])}</p></div>')
        self._send_x_page(f"{event['title']} / X", meta, url, body)

    def _x_space(self, space_id: str) -> dict[str, Any] | None:
        """A fixture X Space as it answers now (DemoServer.set_space_state), or None when X has none by that id."""
        entry = _world_json("x_spaces.json").get(space_id)
        if not isinstance(entry, dict) or space_id.startswith("_"):
            return None
        with self.server.world.lock:
            state = self.server.world.space_states.get(space_id, "available")
        if state == "gone":
            return None
        if state == "replay-disabled":
            entry = json.loads(json.dumps(entry))   # a copy: the stored world stays as it is
            entry["audioSpace"]["metadata"]["is_space_available_for_replay"] = False
            entry.pop("live_video_stream", None)
        return entry

    def _world_x_space_page(self, path: str) -> None:
        # x.com answers every /i/spaces/<id> with its app shell: a Space's title, host and state, or that it is gone.
        match = re.fullmatch(r"/i/spaces/([0-9a-zA-Z]{13,})(?:/peek)?/?", path)
        entry = self._x_space(match.group(1)) if match else None
        if entry is None:
            self._send_x_tombstone("This Space does not exist.")
            return
        meta_ = entry["audioSpace"]["metadata"]
        host = meta_["creator_results"]["result"]["core"]
        url = f"https://x.com/i/spaces/{match.group(1)}"
        state = {"Ended": "Ended", "Running": "Live", "NotStarted": "Scheduled"}.get(meta_["state"], meta_["state"])
        if meta_["state"] == "Ended" and not meta_["is_space_available_for_replay"]:
            state += " (no recording)"
        meta = {"og:site_name": "X (formerly Twitter)", "og:type": "website", "og:url": url,
                "og:title": meta_["title"], "og:description": f"Space hosted by {host['name']} · {state}"}
        speakers = entry["audioSpace"]["participants"]["admins"] + entry["audioSpace"]["participants"]["speakers"]
        body = (f'<div class="space"><h1>{html.escape(meta_["title"])}</h1>'
                f'<p><strong>{html.escape(host["name"])}</strong> @{html.escape(host["screen_name"])} · '
                f'<span class="state">{html.escape(state)}</span></p><ul class="speakers">'
                + "".join(f"<li>{html.escape(s['display_name'])} @{html.escape(s['twitter_screen_name'])}</li>"
                          for s in speakers) + "</ul></div>")
        self._send_x_page(f"{meta_['title']} / X", meta, url, body)

    def _world_x_graphql(self, path: str, query: dict[str, list[str]]) -> None:
        # x.com's GraphQL API as the logged-out web client (and yt-dlp) calls it: a query id and operation name
        # in the path, the variables as JSON in the query string, a bearer token and a guest token.
        headers = {"Cache-Control": "no-cache, no-store, max-age=0"}
        if not self._x_credentials_ok(headers):
            return
        match = re.fullmatch(r"/i/api/graphql/[A-Za-z0-9_-]{22}/(\w+)", path)
        if match is None or match.group(1) not in ("BroadcastQuery", "AudioSpaceById"):
            self._send_json(404, {"errors": [{"message": "Query not found", "code": 404}]}, headers)
            return
        try:
            variables = json.loads(query.get("variables", [""])[0])
            broadcast_id = str(variables["id"])
        except (ValueError, TypeError, KeyError):
            self._send_json(400, {"errors": [{"message": "Variable \"$id\" of required type \"String!\" was not "
                                              "provided.", "code": 366}]}, headers)
            return
        if match.group(1) == "AudioSpaceById":
            # A Space X does not have (deleted, or never there) is an empty audioSpace, not an error.
            entry = self._x_space(broadcast_id)
            space = entry["audioSpace"] if entry else {}
            self._send_json(200, {"data": {"audioSpace": space}}, headers)
            return
        entry = _world_json("x_broadcasts.json").get(broadcast_id)
        broadcast = entry["broadcast"] if isinstance(entry, dict) else {}
        self._send_json(200, {"data": {"broadcast": broadcast}}, headers)

    def _x_credentials_ok(self, headers: dict[str, str], guest: bool = True) -> bool:
        """X's APIs want a bearer token, and (but guest/activate.json itself) a guest token from guest/activate.json;
        answers 403 otherwise."""
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send_json(403, {"errors": [{"code": 99, "message": "Unable to verify your credentials"}]}, headers)
            return False
        if guest and self.headers.get("x-guest-token") != _world_json("x_broadcasts.json")["guest_token"]:
            self._send_json(403, {"errors": [{"code": 239, "message": "Bad guest token."}]}, headers)
            return False
        return True

    def _world_periscope(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        match = re.fullmatch(r"/(?:w|[A-Za-z0-9_]{1,20})/([A-Za-z0-9]{13})/?", path)
        broadcast = _world_json("periscope.json").get(match.group(1)) if match else None
        if broadcast is None:
            self._world_not_found()
            return
        page = broadcast["page"]
        if broadcast["state"] != "available":
            body = ('<div class="page single"><main><h1 class="headline">Broadcast not available</h1>'
                    f"<p>{html.escape(page['description'])}</p></main></div>")
            self._send(404, _page("Periscope", body))
            return
        url = f"https://www.periscope.tv/w/{match.group(1)}"
        meta = {
            "og:site_name": "Periscope", "og:type": "video.other", "og:url": url, "og:title": page["title"],
            "og:description": page["description"], "og:image": page["image"], "og:video": page["video"],
            "og:video:secure_url": page["video"], "og:video:type": "application/x-mpegURL",
        }
        head = "".join(f'<meta property="{k}" content="{html.escape(v)}">\n' for k, v in meta.items())
        body = (
            f'<div class="broadcast"><h1>{html.escape(page["title"])}</h1>'
            f'<p class="status">{html.escape(page["description"])}</p>'
            f'<video src="{html.escape(page["video"])}" poster="{html.escape(page["image"])}" controls preload="none"></video>'
            f'<p class="date">{html.escape(page["date"])}</p></div>'
        )
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(page['title'])}</title>\n{head}<link rel=\"canonical\" href=\"{url}\">\n"
            f"</head>\n<body>\n{body}\n</body>\n</html>\n"
        )
        self._send(200, document.encode("utf-8"))

    def _world_tsa(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        upstream = self.server.world.tsa_url
        if self.command != "POST" or upstream is None:
            self._send(405 if upstream else 502, b"timestamp queries only, by POST\n" if upstream else
                       b"demo proxy: no TSA is running in the fixture world\n", "text/plain; charset=utf-8")
            return
        request = urllib.request.Request(upstream, data=self._body, method="POST", headers={
            "Content-Type": self.headers.get("Content-Type", "")})
        try:
            # No proxy from the environment: the TSA is on loopback, and the proxy is us.
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
                status, body, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "text/plain")
        self._send(status, body, kind)

    def _world_x_api(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # The REST calls yt-dlp's twitter:broadcast extractor makes around BroadcastQuery: a guest token first,
        # then, with it, the stream's playlist URL by the broadcast's media_key.
        world = _world_json("x_broadcasts.json")
        headers = {"Cache-Control": "no-cache, no-store, max-age=0"}
        if path == "/1.1/guest/activate.json":
            if not self._x_credentials_ok(headers, guest=False):
                return
            if self.command != "POST":
                self._send_json(404, X_API_NOT_FOUND, headers)
            else:
                self._send_json(200, {"guest_token": world["guest_token"]}, headers)
            return
        if not self._x_credentials_ok(headers):
            return
        event = re.fullmatch(r"/1\.1/live_event/1/([0-9]{1,20})/timeline\.json", path)
        if event is not None:
            timeline = _world_json("x_events.json").get(event.group(1))
            if timeline is None:
                self._send_json(404, X_API_NOT_FOUND, headers)
            else:
                self._send_json(200, timeline, headers)
            return
        entries = {k: v for k, v in world.items() if not k.startswith("_") and isinstance(v, dict)}
        match = re.fullmatch(r"/1\.1/live_video_stream/status/([0-9]+_[0-9]+)", path)
        stream = next((e["live_video_stream"] for e in entries.values()
                       if match and e["broadcast"].get("media_key") == match.group(1)), None)
        # A Space's stream, by its media key: only one with a recording (or live) has one.
        spaces = (self._x_space(k) for k in _world_json("x_spaces.json") if match and not k.startswith("_"))
        stream = stream or next((e["live_video_stream"] for e in spaces if e and "live_video_stream" in e
                                 and e["audioSpace"]["metadata"]["media_key"] == match.group(1)), None)
        if stream is None:
            self._send_json(404, X_API_NOT_FOUND, headers)
            return
        self._send_json(200, stream, headers)


    def _redirected_to(self, canonical_host: str, host: str) -> bool:
        """Platforms answer their other host names (``www.``, bare, ``m.``) with a 301 to the canonical one."""
        if host == canonical_host:
            return False
        self._redirect(f"https://{canonical_host}{self.path}", 301)
        return True

    # ---- Vimeo --------------------------------------------------------------------------------------------

    def _world_vimeo(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # The clip page of a logged-out visitor: og: and JSON-LD metadata, and window.vimeo.clip_page_config, which
        # names the player's config URL (what yt-dlp reads the video from).
        if self._redirected_to("vimeo.com", host):
            return
        # A video seen in a channel is a page of its own around the same clip.
        match = re.fullmatch(r"/(?:channels/[A-Za-z0-9_-]{1,64}/)?([0-9]{1,20})/?", path)
        entry = _world_json("vimeo.json").get(match.group(1)) if match else None
        if not isinstance(entry, dict) or entry["state"] != "available":
            body = ('<main class="error"><h1>Sorry, we couldn’t find that page</h1>'
                    "<p>It may have been removed, or the link may be broken.</p></main>")
            self._send(404, _page("Vimeo / Page not found", body), headers={"Cache-Control": "no-store"})
            return
        page, video = entry["page"], entry["config"]["video"]
        clip, url = page["clip"], f"https://vimeo.com/{match.group(1)}"
        # clip_page_config's uploaded_on is UTC without a zone (yt-dlp reads it so); JSON-LD gives the same instant
        # in New York time with its offset.
        upload_date = (datetime.datetime.fromisoformat(clip["uploaded_on"] + "+00:00")
                       .astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat())
        json_ld = [{
            "@context": "http://schema.org", "@type": "VideoObject", "name": clip["title"], "url": url,
            "description": clip["description"], "embedUrl": f"https://player.vimeo.com/video/{clip['id']}?h=1b9f0c2d7e",
            "thumbnailUrl": video["thumbs"]["640"], "uploadDate": upload_date, "duration": "PT00H00M%02dS" % video["duration"],
            "width": video["width"], "height": video["height"], "isFamilyFriendly": True, "inLanguage": "en",
            "author": {"@type": "Person", "name": page["owner"]["display_name"], "url": page["owner"]["url"]},
            "commentCount": page["stats"]["comments"],
            "interactionStatistic": [
                {"@type": "InteractionCounter", "interactionType": "http://schema.org/WatchAction",
                 "userInteractionCount": page["stats"]["plays"]},
                {"@type": "InteractionCounter", "interactionType": "http://schema.org/LikeAction",
                 "userInteractionCount": page["stats"]["likes"]}],
        }]
        meta = {
            "og:site_name": "Vimeo", "og:url": url, "og:type": "video.other", "og:title": clip["title"],
            "og:description": clip["description"], "og:image": video["thumbs"]["1280"], "og:image:width": "1280",
            "og:image:height": "720", "og:video:url": f"https://player.vimeo.com/video/{clip['id']}?h=1b9f0c2d7e",
            "og:video:type": "text/html", "og:video:width": str(video["width"]), "og:video:height": str(video["height"]),
        }
        head = "".join(f'<meta property="{k}" content="{html.escape(v)}">\n' for k, v in meta.items())
        script_json = lambda value: _compact_json(value).decode("utf-8").replace("</", "<\\/")
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(clip['title'])} on Vimeo</title>\n"
            f'<meta name="description" content="{html.escape(clip["description"])}">\n{head}'
            f'<link rel="canonical" href="{url}">\n'
            f'<script type="application/ld+json">{script_json(json_ld)}</script>\n</head>\n<body>\n'
            f'<main class="clip"><img class="poster" src="{html.escape(page["player"]["poster"]["src"])}" alt=""'
            f' width="{video["width"]}" height="{video["height"]}">'
            f'<h1>{html.escape(clip["title"])}</h1>'
            f'<p class="byline">from <a href="{html.escape(page["owner"]["url"])}">{html.escape(page["owner"]["display_name"])}</a>'
            f' <time datetime="{upload_date}">{html.escape(clip["uploaded_on_full"])}</time></p>'
            f'<p class="description">{html.escape(clip["description"])}</p></main>\n'
            "<script>window.vimeo = window.vimeo || {};\n"
            f"window.vimeo.clip_page_config = {script_json(page)};\n</script>\n</body>\n</html>\n"
        )
        self._send(200, document.encode("utf-8"), headers={"Cache-Control": "no-store", "Vary": "Accept-Encoding"})

    def _world_vimeo_player(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        match = re.fullmatch(r"/video/([0-9]{1,20})/config", path)
        entry = _world_json("vimeo.json").get(match.group(1)) if match else None
        headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "private, no-store"}
        if not isinstance(entry, dict) or entry["state"] != "available":
            self._send_json(404, {"message": "Sorry, we couldn’t find that video.", "title": "Video not found",
                                  "view": 7}, headers)
            return
        self._send_json(200, entry["config"], headers)

    def _world_image_variants(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # Image CDNs that resize on request (Vimeo's _640.jpg/_1280x720, TikTok's ~tplv-... templates): every
        # variant of a picture is answered with its one stored JPEG (IMAGE_VARIANTS).
        pattern, stored = IMAGE_VARIANTS[host]
        match = re.fullmatch(pattern, path)
        target = _resolve_under(WORLD_ROOT / host, match.expand(stored)) if match else None
        if target is None:
            self._world_not_found()
            return
        self._send_file(target, "image/jpeg", {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=2592000"})

    # ---- TikTok -------------------------------------------------------------------------------------------

    def _world_tiktok(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # A video's page for a logged-out visitor: what the web app needs is in the __UNIVERSAL_DATA_FOR_REHYDRATION__
        # script, under __DEFAULT_SCOPE__["webapp.video-detail"] (yt-dlp reads nothing else). A removed video's page
        # is still 200; its statusCode (10204) says it is gone.
        if self._redirected_to("www.tiktok.com", host):
            return
        match = re.fullmatch(r"/(?:@[\w.-]{0,128}/video|embed(?:/v2)?)/([0-9]{1,20})/?", path)
        entry = _world_json("tiktok.json").get(match.group(1)) if match else None
        if not isinstance(entry, dict):
            self._world_not_found()
            return
        cookies = {"Set-Cookie": f"tt_chain_token={TIKTOK_CHAIN_TOKEN}; Max-Age=15552000; Domain=.tiktok.com; Path=/; "
                                 "Secure; HttpOnly", "Cache-Control": "no-cache, no-store"}
        context = {"language": "en", "region": "US", "appId": 1988, "appType": "m", "user": {},
                   "wid": "7106594501748622850", "webIdCreatedTime": "1654632998", "botType": "others",
                   "clusterRegion": "US", "host": "www.tiktok.com", "requestId": "20220607201527010190186144042E1C1F"}
        item = entry.get("itemStruct")
        if item is None:
            detail: dict[str, Any] = {"statusCode": 10204, "statusMsg": ""}
            title, description = "TikTok - Make Your Day", "Video currently unavailable"
            body = ('<main class="error"><p class="title">Video currently unavailable</p>'
                    f'<p>Sorry about that! Please try again later.</p><a href="/@{html.escape(entry["author"])}">'
                    "Watch more videos</a></main>")
        else:
            author = item["author"]
            share = {"title": f"{author['nickname']} on TikTok", "desc": item["desc"]}
            detail = {"itemInfo": {"itemStruct": item}, "shareMeta": share, "statusCode": 0, "statusMsg": ""}
            title = f"{item['desc'][:60]} | TikTok"
            description = (f"{item['stats']['diggCount']} Likes, {item['stats']['commentCount']} Comments. TikTok video "
                           f"from {author['nickname']} (@{author['uniqueId']}): \u201c{item['desc']}\u201d. "
                           f"{item['music']['title']}.")
            body = (f'<main class="video-detail"><img class="poster" src="{html.escape(item["video"]["cover"])}" alt=""'
                    f' width="{item["video"]["width"]}" height="{item["video"]["height"]}">'
                    f'<h1 data-e2e="browse-video-desc">{html.escape(item["desc"])}</h1>'
                    f'<p><a href="/@{html.escape(author["uniqueId"])}">{html.escape(author["nickname"])}</a>'
                    f' \u00b7 <span data-e2e="browser-nickname">@{html.escape(author["uniqueId"])}</span></p>'
                    f'<p class="music">\u266b {html.escape(item["music"]["title"])}</p></main>')
        data = {"__DEFAULT_SCOPE__": {"webapp.app-context": context, "webapp.biz-context": {"isMobile": False},
                                      "webapp.video-detail": detail, "seo.abtest": {"canonical": f"https://www.tiktok.com{path}"}}}
        script = _compact_json(data).decode("utf-8").replace("</", "<\\/")
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<meta name=\"description\" content=\"{html.escape(description)}\">\n"
            f'<meta property="og:site_name" content="TikTok">\n<meta property="og:title" content="{html.escape(title)}">\n'
            f'<meta property="og:description" content="{html.escape(description)}">\n</head>\n<body>\n{body}\n'
            f'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{script}</script>\n'
            "</body>\n</html>\n")
        self._send(200, document.encode("utf-8"), headers=cookies)

    def _world_tiktok_video(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # TikTok's CDN names objects by path (ending in "/"); the stored file has the object's name and its type's
        # extension. Without the tt_chain_token cookie the page set, it refuses.
        cookie = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        if cookie.get("tt_chain_token") is None or cookie["tt_chain_token"].value != TIKTOK_CHAIN_TOKEN:
            self._send(403, b"", "text/plain", {"Cache-Control": "no-store"})
            return
        kinds = {"video_mp4": (".mp4", "video/mp4"), "video_subtitle": (".vtt", "text/vtt; charset=utf-8")}
        kind = kinds.get(query.get("mime_type", [""])[0])
        target = (_resolve_under(WORLD_ROOT / MEDIA_MIRRORS.get(host, host), path.rstrip("/") + kind[0])
                  if kind and path.endswith("/") else None)
        if target is None:
            self._world_not_found()
            return
        self._send_file(target, kind[1], {"Cache-Control": "max-age=86400", "Access-Control-Allow-Origin": "*"})

    # ---- Instagram ----------------------------------------------------------------------------------------

    def _world_instagram(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        if self._redirected_to("www.instagram.com", host):
            return
        world = _world_json("instagram.json")
        if path == "/":
            self._world_instagram_home(world)
        elif path == "/api/v1/web/get_ruling_for_content/":
            self._world_instagram_ruling(world, query)
        else:
            match = re.fullmatch(r"(?:/[A-Za-z0-9_.]{1,30})?/(?:p|tv|reels?)/([A-Za-z0-9_-]{5,64})/?", path)
            entry = world.get(match.group(1)) if match else None
            if not isinstance(entry, dict) or entry["state"] != "available":
                body = ('<main class="error"><h2>Sorry, this page isn’t available.</h2><p>The link you followed may '
                        'be broken, or the page may have been removed. <a href="/">Go back to Instagram.</a></p></main>')
                self._send(404, _page("Instagram", body), headers={"Cache-Control": "private, no-cache, no-store"})
                return
            self._world_instagram_post(match.group(1), entry["xig_polaris_media"])

    def _instagram_cookies(self, world: dict[str, Any]) -> dict[str, str]:
        # Instagram sets csrftoken, mid, ig_did and datr on a logged-out visitor's first answer; only csrftoken, the
        # one yt-dlp reads, is modelled (_send takes one value per header name).
        return {"Set-Cookie": f"csrftoken={world['csrftoken']}; Domain=.instagram.com; expires=Sat, 16 Dec 2023 "
                              "13:00:00 GMT; Max-Age=31449600; Path=/; Secure",
                "Cache-Control": "private, no-cache, no-store, must-revalidate"}

    def _world_instagram_home(self, world: dict[str, Any]) -> None:
        # The logged-out home page: the LSD token the web app sends with its API calls is in <script id="__eqmc">.
        eqmc = {"u": "/ajax/qm/?__a=1&__user=0&__comet_req=7&jazoest=2882", "e": "AVqX7bN2kLwRz3sT",
                "s": "1ok9d2:x3m4p1:0q8w2e", "w": 0, "f": "AVqX7bN2kLw9F0", "l": world["lsd"]}
        document = ("<!DOCTYPE html>\n<html lang=\"en\" class=\"_9dls\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<title>Instagram</title>\n<meta name=\"description\" content=\"Create an account or log in to "
                    "Instagram - Share what you’re into with the people who get you.\">\n</head>\n<body>\n"
                    '<main class="login"><h1>Instagram</h1><p>Log in to see photos and videos from friends.</p></main>\n'
                    f'<script type="application/json" id="__eqmc">{_compact_json(eqmc).decode()}</script>\n'
                    "</body>\n</html>\n")
        self._send(200, document.encode("utf-8"), headers=self._instagram_cookies(world))

    def _world_instagram_ruling(self, world: dict[str, Any], query: dict[str, list[str]]) -> None:
        # Whether a logged-out viewer may see a media id: the web app asks before it loads the post.
        headers = {"Cache-Control": "private, no-cache, no-store, must-revalidate", "Vary": "Accept-Encoding"}
        if self.headers.get("X-IG-App-ID") != INSTAGRAM_WEB_APP_ID:
            self._send_json(400, {"message": "useragent mismatch", "status": "fail"}, headers)
            return
        if query.get("content_type", [""])[0] != "MEDIA" or not query.get("target_id", [""])[0].isdigit():
            self._send_json(400, {"message": "Invalid parameters", "status": "fail"}, headers)
            return
        self._send_json(200, {"status": "ok"}, headers)

    def _world_instagram_post(self, code: str, media: dict[str, Any]) -> None:
        # The post page carries the post as the web app's prefetched GraphQL answer, in a <script data-sjs>.
        item = media["if_not_gated_logged_out"]
        user, caption = item["user"], item["caption"]["text"]
        script = _relay_prefetched_sjs("adp_PolarisPostRootQueryRelayPreloader_6f3a1c2b9e8d7f0a5b4c3d2e1",
                                       {"xig_polaris_media": media})
        url = f"https://www.instagram.com/p/{code}/"
        title = f"{user['full_name']} on Instagram: “{caption}”"
        meta = {"og:site_name": "Instagram", "og:type": "video", "og:url": url, "og:title": title,
                "og:description": f"{item['like_count']:,} likes, {item['comment_count']} comments - {user['username']} "
                                  f"on December 16, 2022: “{caption}”",
                "og:image": item["image_versions2"]["candidates"][0]["url"]}
        head = "".join(f'<meta property="{k}" content="{html.escape(v)}">\n' for k, v in meta.items())
        poster = item["image_versions2"]["candidates"][0]
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n{head}<link rel=\"canonical\" href=\"{url}\">\n</head>\n<body>\n"
            f'<article class="post"><header><a href="/{html.escape(user["username"])}/">{html.escape(user["username"])}'
            f'</a></header><img src="{html.escape(poster["url"])}" alt="" width="{poster["width"]}" '
            f'height="{poster["height"]}"><p class="caption">{html.escape(caption)}</p></article>\n'
            f'{script}\n</body>\n</html>\n')
        self._send(200, document.encode("utf-8"), headers=self._instagram_cookies(_world_json("instagram.json")))


    # ---- Facebook -----------------------------------------------------------------------------------------

    def _world_facebook(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # A video's page for a logged-out visitor (/watch/?v=, /<page>/videos/<id>, /reel/<id>, video.php?v=): the
        # Comet shell, og: metadata, and the prefetched GraphQL answer for the video in a <script data-sjs>.
        if self._redirected_to("www.facebook.com", host):
            return
        world = _world_json("facebook.json")
        headers = {"Cache-Control": "private, no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                   "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
        if self.command == "POST":
            # The "tahoe" async video endpoint that yt-dlp falls back to when a page has no video: gone from
            # Facebook (yt-dlp's _TESTS note "falls back to tahoe API request and fails with 404 error").
            self._send(404, _simple_page("Page Not Found", "This page isn't available."), headers=headers)
            return
        match = (re.fullmatch(r"/(?:[\w.-]{1,80}/videos/(?:[^/]{1,200}/)?|reel/)([0-9]{1,20})/?", path)
                 or (re.fullmatch(r"/(?:watch/?|video\.php|video/video\.php)", path)
                     and re.fullmatch(r"([0-9]{1,20})", query.get("v", [""])[0])))
        entry = world.get(match.group(1)) if match else None
        if not isinstance(entry, dict) or "state" not in entry:
            self._world_not_found()
        elif entry["state"] != "available":
            # A deleted (or no longer shared) video: still 200, the Comet shell says so, and there is no video in it.
            body = ('<div role="main"><h2>This content isn\u2019t available right now</h2><p>When this happens, '
                    "it\u2019s usually because the owner only shared it with a small group of people, changed who can see it or "
                    "it\u2019s been deleted.</p><a href=\"/\">Go to News Feed</a></div>")
            document = ("<!DOCTYPE html>\n<html id=\"facebook\" lang=\"en\" dir=\"ltr\">\n<head>\n"
                        f"<meta charset=\"utf-8\">\n<title>Facebook</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
            self._send(200, document.encode("utf-8"), headers=headers)
        else:
            self._world_facebook_video(entry, headers)

    def _world_facebook_video(self, entry: dict[str, Any], headers: dict[str, str]) -> None:
        media = entry["video"]["creation_story"]["attachments"][0]["media"]
        video_id, description = media["id"], media["savable_description"]["text"]
        url = f"https://www.facebook.com/{entry['page']}/videos/{video_id}/"
        poster = media["preferred_thumbnail"]["image"]["uri"]
        meta = {"og:title": entry["og_title"], "og:description": description, "og:image": poster, "og:url": url,
                "og:type": "video.other", "og:video:width": str(media["width"]),
                "og:video:height": str(media["height"]),
                "twitter:card": "player", "twitter:title": entry["og_title"]}
        head = "".join(f'<meta property="{k}" content="{html.escape(v)}">\n' for k, v in meta.items())
        script = _relay_prefetched_sjs("adp_CometVideoHomeNewPermalinkHeroUnitQueryRelayPreloader_6757f3c1a2b4e5d0",
                                       {"video": entry["video"]})
        document = (
            "<!DOCTYPE html>\n<html id=\"facebook\" class=\"_9dls\" lang=\"en\" dir=\"ltr\">\n<head>\n"
            f'<meta charset="utf-8">\n<title>{html.escape(entry["og_title"])}</title>\n'
            f'<meta name="description" content="{html.escape(description)}">\n{head}'
            f'<link rel="canonical" href="{url}">\n</head>\n<body class="_6s5d _71pn system-fonts--body">\n'
            f'<div id="mount_0_0_Qx" role="main"><img src="{html.escape(poster)}" alt="" width="{media["width"]}" '
            f'height="{media["height"]}"><h2><a href="/{html.escape(entry["page"])}">'
            f'{html.escape(media["owner"]["name"])}</a></h2><p>{html.escape(description)}</p></div>\n{script}\n</body>\n</html>\n')
        self._send(200, document.encode("utf-8"), headers=headers)

    def _world_facebook_cdn(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        # fbcdn.net objects, by the URLs the pages give (world/facebook.json "cdn"), each served from a stored file.
        # The URLs are signed: without the oh= Facebook issued, fbcdn answers 403 "Bad URL hash".
        for url, stored in _world_json("facebook.json")["cdn"].items():
            parts = urllib.parse.urlsplit(url)
            if (parts.hostname, parts.path) != (host, path):
                continue
            if query.get("oh") != urllib.parse.parse_qs(parts.query)["oh"]:
                self._send(403, b"Bad URL hash", "text/plain")
                return
            target = _resolve_under(WORLD_ROOT, stored)
            if target is not None:
                self._send_file(target, WORLD_CONTENT_TYPES[target.suffix], {
                    "Access-Control-Allow-Origin": "*", "Timing-Allow-Origin": "*",
                    "Cache-Control": "max-age=1209600, no-transform"})
                return
        self._world_not_found()

    # ---- Mastodon instances (mastodon.social, infosec.exchange) and files.mastodon.social -----------------------

    def _world_mastodon(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """A Mastodon instance as a logged-out reader and client see it: /api/v1/statuses/<id> (and /history),
        /api/v1/accounts/lookup, the status pages (/@user/<id>, /@user@host/<id>, /web/statuses/<id>, /embed),
        /users/<user>/statuses/<id> (a browser is redirected to the page), /media_proxy/ and /embed.js."""
        if path.startswith("/api/"):
            self._world_mastodon_api(host, path, query)
            return
        if path == "/embed.js":
            self._send(200, _read_site_file(WORLD_ROOT / "mastodon" / "embed.js"), "text/javascript; charset=utf-8",
                       {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=3600, public"})
            return
        proxied = re.fullmatch(r"/media_proxy/(\d+)/original", path)
        if proxied:  # remote media, as the instance caches it: a redirect to its copy on files.<instance>
            stored = _world_json("mastodon/statuses.json")["media_proxy"].get(proxied.group(1))
            if stored is None or host != "mastodon.social":
                self._world_not_found()
            else:
                self._send(302, b"", "text/html; charset=utf-8", {"Location": f"https://files.{host}{stored}"})
            return
        activity = re.fullmatch(r"/users/([A-Za-z0-9_]+)/statuses/(\d+)/?", path)
        if activity:
            self._send(302, b"", "text/html; charset=utf-8",
                       {"Location": f"/@{activity.group(1)}/{activity.group(2)}", "Vary": "Accept"})
            return
        page = (re.fullmatch(r"/@([A-Za-z0-9_]+(?:@[A-Za-z0-9.-]+)?)/(\d+)(/embed)?/?", path)
                or re.fullmatch(r"/web/statuses/()(\d+)()/?", path))
        if page is None:
            self._send(404, _simple_page("The page you are looking for isn't here.", "Mastodon: 404"))
            return
        acct, status_id, embed = page.groups()
        self._world_mastodon_page(host, acct, status_id, bool(embed))

    def _mastodon_state(self, host: str, status_id: str) -> tuple[str, dict[str, Any] | None]:
        """(state, the status JSON when stored) of a fixture status; "missing" for an id the instance never had."""
        key = f"{host}/{status_id}"
        stored = _world_json("mastodon/statuses.json")["statuses"].get(key)
        state = self.server.world.fedi_state(key) or stored or "missing"
        target = WORLD_ROOT / "mastodon" / host / "statuses" / f"{status_id}.json"
        return state, (json.loads(_read_site_file(target)) if stored else None)

    def _world_mastodon_api(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        headers = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Vary": "Accept, Origin",
                   "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299", "Access-Control-Allow-Origin": "*"}
        not_found = {"error": "Record not found"}
        if path == "/api/v1/accounts/lookup":
            acct = query.get("acct", [""])[0].lstrip("@").lower()
            accounts = _world_json("mastodon/accounts.json").get(host, {})
            account = next((a for name, a in accounts.items() if name.lower() == acct), None)
            if account is None:
                self._send_json(404, not_found, headers)
                return
            states = _world_json("mastodon/statuses.json")["states"]
            suspended = any(states.get(self.server.world.fedi_state(key) or "", {}).get("account") == "suspended"
                            and self._mastodon_state(*key.split("/"))[1]["account"]["id"] == account["id"]
                            for key in _world_json("mastodon/statuses.json")["statuses"] if key.startswith(host + "/"))
            if suspended:  # REST::AccountSerializer empties a suspended account and says so
                account = {**account, "display_name": "", "note": "", "locked": False, "bot": False,
                           "discoverable": False, "emojis": [], "fields": [], "suspended": True}
            self._send_json(200, account, headers)
            return
        match = re.fullmatch(r"/api/v1/statuses/(\d+)(/history)?", path)
        if match is None:
            self._send_json(404, not_found, headers)
            return
        status_id, history = match.groups()
        state, data = self._mastodon_state(host, status_id)
        if state.startswith("as:"):  # DemoServer.answer_status_as: another status's answer
            state, data = self._mastodon_state(host, state[3:])
        if state == "missing" or data is None:
            self._send_json(404, not_found, headers)
            return
        if state != "available":
            answer = _world_json("mastodon/statuses.json")["states"][state]
            if answer["body"] is None:
                self._send(answer["status"], _simple_page("We're sorry, but something went wrong on our end.",
                                                          "Mastodon"), HTML_TYPE)
            else:
                self._send_json(answer["status"], answer["body"], headers)
            return
        if history:
            target = WORLD_ROOT / "mastodon" / host / "statuses" / f"{status_id}.history.json"
            if data.get("edited_at") and target.is_file():
                self._send_json(200, json.loads(_read_site_file(target)), headers)
            else:  # an unedited status's history is its one version
                self._send_json(200, [{k: data[k] for k in ("content", "spoiler_text", "sensitive", "created_at",
                                                            "account", "media_attachments", "emojis")}], headers)
            return
        self._send_json(200, data, headers)

    def _world_mastodon_page(self, host: str, acct: str, status_id: str, embed: bool) -> None:
        state, data = self._mastodon_state(host, status_id)
        if state.startswith("as:"):
            state = "available"
        named = data is not None and (not acct or acct.lower() == data["account"]["acct"].lower())
        if embed and named and "@" in data["account"]["acct"]:
            named = False  # an instance embeds only its own users' statuses
        if state != "available" or not named:
            code = _world_json("mastodon/statuses.json")["states"].get(state, {}).get("page", 404) if named else 404
            if code == 200 and data is not None:
                code = 404  # login-required: the page is there only for those logged in
            message = ("The page you are looking for isn't here anymore." if code == 410
                       else "The page you are looking for isn't here." if code == 404
                       else "We're sorry, but something went wrong on our end.")
            self._send(code, _simple_page(message, f"Mastodon: {code}"), HTML_TYPE)
            return
        account = data["account"]
        name, handle = account["display_name"], account["acct"] if "@" in account["acct"] else f"{account['acct']}@{host}"
        media = []
        for item in data["media_attachments"]:
            alt = html.escape(item.get("description") or "", quote=True)
            if item["type"] == "image":
                media.append(f'<a href="{html.escape(item["url"])}"><img src="{html.escape(item["preview_url"])}" '
                             f'alt="{alt}" width="320"></a>')
            else:
                media.append(f'<video src="{html.escape(item["url"])}" controls muted playsinline '
                             f'aria-label="{alt}" width="320"></video>')
        poll = data.get("poll") or {}
        options = "".join(f"<li>{html.escape(o['title'])} <span class=\"poll__votes\">{o['votes_count']}</span></li>"
                          for o in poll.get("options") or [])
        card = data.get("card") or {}
        quoted = ((data.get("quote") or {}).get("quoted_status") or {})
        body = (
            f'<div class="detailed-status" data-status-id="{status_id}">'
            f'<a class="detailed-status__display-name" href="{html.escape(account["url"])}"><strong>'
            f'{html.escape(name)}</strong> <span>@{html.escape(handle)}</span></a>'
            + (f'<p class="spoiler">CW: {html.escape(data["spoiler_text"])}</p>' if data["spoiler_text"] else "")
            + f'<div class="status__content" lang="{html.escape(data.get("language") or "")}">{data["content"]}</div>'
            + (f'<div class="media-gallery">{"".join(media)}</div>' if media else "")
            + (f'<ul class="poll">{options}</ul>' if options else "")
            + (f'<a class="status-card" href="{html.escape(card["url"])}"><strong>{html.escape(card["title"])}</strong>'
               f'<span>{html.escape(card["description"])}</span></a>' if card else "")
            + (f'<blockquote class="quoted-status"><a href="{html.escape(quoted["url"])}">'
               f'@{html.escape(quoted["account"]["acct"])}</a>{quoted["content"]}</blockquote>' if quoted else "")
            + f'<div class="detailed-status__meta"><a href="{html.escape(data["url"])}">'
            f'<time datetime="{data["created_at"]}">{data["created_at"][:16].replace("T", " ")}</time></a>'
            + (f' · edited <time datetime="{data["edited_at"]}">{data["edited_at"][:16].replace("T", " ")}</time>'
               if data.get("edited_at") else "")
            + "</div></div>")
        text = re.sub(r"<[^>]+>", "", data["content"])[:200]
        title = f"{name}: \"{text}\" - Mastodon"
        canonical = f"https://{host}/@{account['acct']}/{status_id}"
        head = (f'<meta property="og:site_name" content="{html.escape(host)}">\n<meta property="og:type" content="article">\n'
                f'<meta property="og:title" content="{html.escape(name)} (@{html.escape(handle)})">\n'
                f'<meta property="og:description" content="{html.escape(text)}">\n'
                f'<meta property="og:url" content="{html.escape(canonical)}">\n<link rel="canonical" href="{html.escape(canonical)}">\n'
                '<style>body{font-family:sans-serif;margin:0;padding:12px;background:#fff}.detailed-status{max-width:560px;'
                'border:1px solid #ccd;border-radius:8px;padding:14px}.status__content p{margin:8px 0}'
                '.media-gallery img,.media-gallery video{max-width:100%;border-radius:6px}.poll__votes{color:#667}'
                '.status-card,.quoted-status{display:block;border:1px solid #ddd;padding:8px;margin:8px 0}</style>\n')
        document = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
                    + ('<meta name="robots" content="noindex">\n' if embed else "") + head
                    + f'</head>\n<body class="{"embed" if embed else "app-body"}">\n{body}\n</body>\n</html>\n')
        headers = {"Cache-Control": "max-age=0, public", "Vary": "Accept, Accept-Language, Cookie"}
        if embed:  # the embed is made to be framed by other sites
            headers["Content-Security-Policy"] = "frame-ancestors *"
        self._send(200, document.encode("utf-8"), HTML_TYPE, headers)

    def _world_mastodon_files(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """An instance's media host: files stored under world/mastodon/<host>/ at their URL path."""
        target = _resolve_under(WORLD_ROOT / "mastodon" / host, path)
        if target is None or target.suffix not in WORLD_CONTENT_TYPES or target.suffix == ".html":
            self._world_not_found()
            return
        self._send_file(target, WORLD_CONTENT_TYPES[target.suffix],
                        {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=315576000, immutable"})

    # ---- Telegram (t.me, telegram.org, cdn4.telesco.pe): world/telegram/ ---------------------------------
    # t.me/<channel>/<id>?embed=1 is the post widget telegram-widget.js frames; t.me/s/<channel>[/<id>] the channel
    # preview; t.me/<channel>/<id> the post page and t.me/<channel> the landing page. Telegram answers refusals with
    # a 200 and words ("Post not found"), never with a status: so does this world.

    def _telegram_world(self) -> dict[str, Any]:
        return _world_json("telegram/posts.json")

    def _telegram_state(self, post: str) -> str:
        with self.server.world.lock:
            override = self.server.world.telegram_states.get(post)
        return override or self._telegram_world()["posts"][post]["state"]

    def _telegram_channel_gone(self, channel: str) -> bool:
        posts = self._telegram_world()["posts"]
        return channel not in self._telegram_world()["channels"] or any(
            self._telegram_state(key) == "channel-gone" for key in posts if key.split("/")[0] == channel)

    def _world_telegram(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        if host != "t.me":
            raw_query = urllib.parse.urlsplit(self.path).query  # as sent: "?single" stays "?single"
            target = path + ("?" + raw_query if raw_query else "")
            self._send(301, b"", HTML_TYPE, {"Location": "https://t.me" + target})
            return
        preview = re.fullmatch(r"/s/([A-Za-z][A-Za-z0-9_]{2,31})(?:/(\d{1,12}))?/?", path)
        post = re.fullmatch(r"/([A-Za-z][A-Za-z0-9_]{2,31})/(\d{1,12})/?", path)
        landing = re.fullmatch(r"/([A-Za-z][A-Za-z0-9_]{2,31})/?", path)
        if preview:
            self._world_telegram_preview(preview.group(1).lower())
        elif post and "embed" in query:
            self._world_telegram_widget(post.group(1).lower(), int(post.group(2)), "single" in query)
        elif post:
            self._world_telegram_post_page(post.group(1).lower(), int(post.group(2)))
        elif landing:
            self._world_telegram_landing(landing.group(1).lower())
        else:
            self._world_not_found()

    def _telegram_document(self, title: str, body_class: str, body: str, head: str = "") -> bytes:
        return ("<!DOCTYPE html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"
                f"    <title>{html.escape(title)}</title>\n"
                "    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0, minimum-scale=1.0, "
                "maximum-scale=1.0, user-scalable=no\" />\n    <meta name=\"robots\" content=\"noindex, nofollow\" />\n"
                f"{head}    <link href=\"https://telegram.org/css/widget-frame.css?71\" rel=\"stylesheet\" "
                f"media=\"screen\">\n  </head>\n  <body class=\"{body_class}\">\n{body}\n"
                "    <script src=\"https://telegram.org/js/widget-frame.js?63\"></script>\n"
                "    <script>document.addEventListener('DOMContentLoaded', function() { TWidgetPost.init(); });"
                "</script>\n  </body>\n</html>\n").encode("utf-8")

    def _telegram_media(self, channel: dict[str, Any], item_id: int, media: dict[str, Any], grouped: bool) -> str:
        cdn = "https://cdn4.telesco.pe/file/"
        href = f"https://t.me/{channel['username']}/{item_id}" + ("?single" if grouped else "")
        size = f"width:{media['width']}px;"
        group_class = " grouped_media_wrap blured" if grouped else ""
        if media["kind"] == "photo":
            ratio = round(media["height"] / media["width"] * 100, 3)
            return (f'<a class="tgme_widget_message_photo_wrap{group_class} js-message_photo" href="{href}" '
                    f"style=\"{size}background-image:url('{cdn}{media['file']}')\">"
                    f'<div class="tgme_widget_message_photo" style="padding-top:{ratio}%"></div></a>')
        # A video's file URL carries a token Telegram issues per page view; the CDN here ignores it.
        token = hashlib.sha256(media["file"].encode()).hexdigest()[:24]
        ratio = round(media["height"] / media["width"] * 100, 3)
        return (f'<a class="tgme_widget_message_video_player{group_class} js-message_video_player" href="{href}">'
                f"<i class=\"tgme_widget_message_video_thumb\" style=\"background-image:url('{cdn}{media['thumb']}')\"></i>"
                f'<div class="tgme_widget_message_video_wrap" style="{size}padding-top:{ratio}%">'
                f'<video src="{cdn}{media["file"]}?token={token}" class="tgme_widget_message_video js-message_video" '
                'width="100%" height="100%"></video></div><div class="message_video_play"></div>'
                f'<time class="message_video_duration js-message_video_duration">{media["duration"]}</time></a>')

    def _telegram_message(self, name: str, post_id: int, single: bool) -> str:
        """One post's tgme_widget_message block (an album's whole group unless ``single``)."""
        world = self._telegram_world()
        channel = world["channels"][name]
        entry = world["posts"][f"{name}/{post_id}"]
        album = [] if single else entry.get("album") or []
        first = world["posts"][f"{name}/{album[0]}"] if album else entry
        shown_id = album[0] if album else post_id
        user = channel["username"]
        parts = [f'<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" '
                 f'href="https://t.me/{user}"><span dir="auto">{html.escape(channel["title"])}</span></a></div>']
        if entry.get("reply_to"):
            other_name, _, other_id = entry["reply_to"].partition("/")
            other = world["posts"][entry["reply_to"]]
            parts.append(f'<a class="tgme_widget_message_reply" href="https://t.me/'
                         f'{world["channels"][other_name]["username"]}/{other_id}"><div class="tgme_widget_message_author '
                         f'accent_color"><span class="tgme_widget_message_author_name" dir="auto">'
                         f'{html.escape(world["channels"][other_name]["title"])}</span></div><div class="tgme_widget_'
                         f'message_metatext js-message_reply_text" dir="auto">{other["text"]}</div></a>')
        if album:
            items = "".join(self._telegram_media(channel, n, media, True) for n in album
                            for media in world["posts"][f"{name}/{n}"]["media"])
            parts.append('<div class="tgme_widget_message_grouped_wrap js-message_grouped_wrap" data-margin-w="2" '
                         'data-margin-h="2" style="width:453px;"><div class="tgme_widget_message_grouped js-message_'
                         'grouped"><div class="tgme_widget_message_grouped_layer js-message_grouped_layer">'
                         f"{items}</div></div></div>")
        else:
            parts.extend(self._telegram_media(channel, post_id, media, False) for media in entry["media"])
        if first["text"]:
            parts.append(f'<div class="tgme_widget_message_text js-message_text" dir="auto">{first["text"]}</div>')
        parts.append('<div class="tgme_widget_message_footer compact js-message_footer"><div class="tgme_widget_'
                     f'message_info short js-message_info"><span class="tgme_widget_message_views">{first["views"]}'
                     '</span><span class="copyonly"> views</span><span class="tgme_widget_message_meta"><a class='
                     f'"tgme_widget_message_date" href="https://t.me/{user}/{shown_id}"><time datetime="'
                     f'{first["date"]}" class="time">{first["date"][11:16]}</time></a></span></div></div>')
        peer = hashlib.sha256(name.encode()).hexdigest()
        return ('<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message '
                f'text_not_supported_wrap js-widget_message" data-post="{user}/{shown_id}" data-peer="c{int(peer[:8], 16)}'
                f'_{int(peer[8:24], 16)}" data-post-id="{shown_id}"><div class="tgme_widget_message_user"><a href='
                f'"https://t.me/{user}"><i class="tgme_widget_message_user_photo bgcolor1" data-content="'
                f'{html.escape(channel["title"][:1])}"><img src="https://cdn4.telesco.pe/file/{channel["avatar"]}">'
                '</i></a></div><div class="tgme_widget_message_bubble">' + "\n".join(parts) + "</div></div></div>")

    # The words the widget shows instead of a post (tgme_widget_message_error).
    TELEGRAM_ERRORS = {
        "deleted": "Post not found",
        "channel-gone": "Post not found",
        "withheld": "This post is unavailable in your country because it violated local laws.",
        "removed": "This channel can’t be displayed because it violated Telegram's Terms of Service.",
    }

    def _world_telegram_widget(self, name: str, post_id: int, single: bool) -> None:
        key = f"{name}/{post_id}"
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "ALLOWALL"}
        state = self._telegram_state(key) if key in self._telegram_world()["posts"] else "deleted"
        if name in self._telegram_world()["channels"] and self._telegram_channel_gone(name):
            state = "channel-gone"
        if state == "empty":
            self._send(200, b"", HTML_TYPE, headers)
            return
        if state == "available":
            body = self._telegram_message(name, post_id, single)
        else:
            body = ('<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message '
                    'text_not_supported_wrap js-widget_message err_message"><div class="tgme_widget_message_bubble">'
                    f'<div class="tgme_widget_message_error">{html.escape(self.TELEGRAM_ERRORS[state])}</div>'
                    "</div></div></div>")
        self._send(200, self._telegram_document(
            "Telegram Widget", "widget_frame_base tgme_widget body_widget_post emoji_image nodark", body), HTML_TYPE,
            headers)

    def _world_telegram_preview(self, name: str) -> None:
        world = self._telegram_world()
        if name not in world["channels"] or self._telegram_channel_gone(name):
            # Telegram's /s/ of a name that is no channel redirects to the bare name (manual, "surface map").
            self._send(302, b"", HTML_TYPE, {"Location": f"https://t.me/{name}"})
            return
        channel = world["channels"][name]
        shown: set[int] = set()
        blocks = []
        for key, entry in world["posts"].items():
            post_name, _, post_id = key.partition("/")
            if post_name != name or int(post_id) in shown or self._telegram_state(key) != "available":
                continue
            shown.update(entry.get("album") or [int(post_id)])
            blocks.append(self._telegram_message(name, int(post_id), False))
        header = (f'<header class="tgme_header"><div class="tgme_channel_info"><div class="tgme_channel_info_header_'
                  f'title"><span dir="auto">{html.escape(channel["title"])}</span></div><div class="tgme_channel_info_'
                  f'header_username"><a href="https://t.me/{channel["username"]}">@{channel["username"]}</a></div>'
                  f'<div class="tgme_channel_info_description">{html.escape(channel["description"])}</div><div class='
                  f'"tgme_channel_info_counter"><span class="counter_value">{channel["subscribers"].split()[0]}'
                  "</span> <span class=\"counter_type\">subscribers</span></div></div></header>")
        body = header + '<main class="tgme_main"><section class="tgme_channel_history js-message_history">' + \
            "\n".join(blocks) + "</section></main>"
        self._send(200, self._telegram_document(f"{channel['title']} – Telegram", "widget_frame_base tgme_widget "
                                                "body_widget_post emoji_image nodark", body), HTML_TYPE)

    def _world_telegram_landing(self, name: str) -> None:
        world = self._telegram_world()
        if name not in world["channels"] or self._telegram_channel_gone(name):
            body = (f'<div class="tgme_page_wrap"><div class="tgme_page"><div class="tgme_page_title"><span dir="auto">'
                    f'Telegram</span></div><div class="tgme_page_description">If you have <strong>Telegram</strong>, '
                    f'you can contact <a class="tgme_username_link" href="tg://resolve?domain={name}">@{name}</a> '
                    "right away.</div></div></div>")
            self._send(200, self._telegram_document(f"Telegram: Contact @{name}", "body_tgme", body), HTML_TYPE)
            return
        channel = world["channels"][name]
        body = (f'<div class="tgme_page_wrap"><div class="tgme_page"><div class="tgme_page_photo"><img class="tgme_page_'
                f'photo_image" src="https://cdn4.telesco.pe/file/{channel["avatar"]}"></div><div class="tgme_page_'
                f'title"><span dir="auto">{html.escape(channel["title"])}</span></div><div class="tgme_page_extra">'
                f'{channel["subscribers"]}</div><div class="tgme_page_description">{html.escape(channel["description"])}'
                f'</div><a class="tgme_action_button_new" href="/s/{channel["username"]}">Preview channel</a></div></div>')
        self._send(200, self._telegram_document(f"Telegram: View @{channel['username']}", "body_tgme", body),
                   HTML_TYPE)

    def _world_telegram_post_page(self, name: str, post_id: int) -> None:
        world = self._telegram_world()
        channel = world["channels"].get(name)
        key = f"{name}/{post_id}"
        if channel is None or self._telegram_channel_gone(name):
            self._world_telegram_landing(name)
            return
        entry = world["posts"].get(key) if self._telegram_state(key) == "available" else None
        head = (f'    <meta property="og:title" content="{html.escape(channel["title"])}">\n'
                f'    <meta property="og:description" content="{html.escape(re.sub("<[^>]+>", "", entry["text"]))}">\n'
                if entry else "")
        body = (f'<div class="tgme_page_wrap"><div class="tgme_page tgme_page_post"><div class="tgme_page_widget">'
                f'<script async src="https://telegram.org/js/telegram-widget.js?22" data-telegram-post="'
                f'{channel["username"]}/{post_id}" data-width="100%"></script></div></div></div>')
        self._send(200, self._telegram_document(f"Telegram: View @{channel['username']}", "body_tgme", body, head),
                   HTML_TYPE)

    def _world_telegram_org(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        types = {".js": "application/javascript", ".css": "text/css"}
        target = _resolve_under(WORLD_ROOT / "telegram" / "telegram.org", path)
        if target is None or target.suffix not in types:
            self._world_not_found()
            return
        self._send_file(target, types[target.suffix], {"Cache-Control": "max-age=3600"})

    def _world_telegram_cdn(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        target = _resolve_under(WORLD_ROOT / "telegram" / "cdn4.telesco.pe", path)
        if target is None or target.suffix not in (".jpg", ".mp4"):
            self._world_not_found()
            return
        self._send_file(target, WORLD_CONTENT_TYPES[target.suffix],
                        {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=2592000"})

    # ---- members.levantledger.example: a members-only news site (site credentials) ----------------------------

    def _world_members(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        world = _world_json("members.json")
        dispatch = re.fullmatch(r"/dispatch/([a-z0-9-]+)/?", path)
        go = re.fullmatch(r"/go/([a-z0-9-]+)", path)
        member = self._member(world)
        if path == "/login":
            body = ('<main><h1>Sign in to the Levant Ledger</h1><p>Members read our dispatches first.</p>'
                    '<form method="post" action="/login"><input name="email"><input name="password" type="password">'
                    '<button>Sign in</button></form></main>')
            self._send(200, _page("Sign in · The Levant Ledger", body), headers={"Cache-Control": "no-store"})
        elif dispatch and dispatch.group(1) in world["dispatches"]:
            if member is None:
                self._redirect(f"/login?next={urllib.parse.quote(path)}")
                return
            self._send_dispatch(world, dispatch.group(1), member)
        elif path.startswith("/static/") or path == "/favicon.ico":
            self._serve_static(path)   # the news site's stylesheet and icon, which its generated pages use
        elif go and go.group(1) in world["dispatches"]:
            # The members' "read the source" link: a redirect off the site, as link trackers answer.
            self._redirect(world["dispatches"][go.group(1)]["source"])
        else:
            self._world_not_found()

    def _member(self, world: dict[str, Any]) -> str | None:
        """The member a request's session cookie belongs to (None: not signed in)."""
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            return None
        session = jar.get(world["session_cookie"])
        return world["sessions"].get(session.value) if session is not None else None

    def _send_dispatch(self, world: dict[str, Any], slug: str, member: str) -> None:
        entry = world["dispatches"][slug]
        token = http.cookies.SimpleCookie(self.headers.get("Cookie") or "")[world["session_cookie"]].value
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in entry["paragraphs"])
        tweet = entry["tweet"]
        body = (
            f'<main class="members"><p class="account">Signed in as {html.escape(member)}</p>'
            f'<h1>{html.escape(entry["title"])}</h1>{paragraphs}'
            f'<img src="{html.escape(entry["image"])}" alt="The convoy halted" width="320">'
            f'<img src="{html.escape(entry["third_party_image"])}" alt="As posted on X" width="160">'
            f'<iframe src="https://platform.twitter.com/embed/Tweet.html?id={tweet}" width="550" height="400"></iframe>'
            f'<p><a href="/go/{slug}">Read the source</a></p></main>'
        )
        document = _page(f"{entry['title']} · The Levant Ledger", body)
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Content-Length", str(len(document)))
        self.send_header("Cache-Control", "private, no-store")
        # The session refreshed, as real sites do on each visit: the server hands the secret back.
        self.send_header("Set-Cookie", f"{world['session_cookie']}={token}; Domain=levantledger.example; Path=/; "
                                       f"Max-Age=2592000; Secure; HttpOnly; SameSite=Lax")
        self.send_header("Set-Cookie", "ll_seen=convoy-checkpoint; Path=/; Max-Age=86400; SameSite=Lax")
        self.end_headers()
        if not self._head:
            self.wfile.write(document)

    # --- Bluesky: the public AppView, bsky.app, the PLC directory, two data servers, the CDN and video host -------

    def _bluesky_account_state(self, did: str) -> str:
        with self.server.world.lock:
            return self.server.world.bluesky_states.get(did, "active")

    def _bluesky_post_state(self, rkey: str) -> str:
        with self.server.world.lock:
            return self.server.world.bluesky_states.get(rkey, "available")

    def _world_bluesky_appview(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """public.api.bsky.app's XRPC methods the archiver (and the bsky.app page) read, with their real errors."""
        world = _world_json("bluesky/bluesky.json")
        cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=5"}
        method = path.removeprefix("/xrpc/")
        arg = lambda name: query.get(name, [""])[0]  # noqa: E731
        if method == "com.atproto.identity.resolveHandle":
            handle = arg("handle").lower()
            did = next((d for d, a in world["accounts"].items() if a["handle"] == handle), None)
            if did is None or self._bluesky_account_state(did) == "account-deleted":
                self._send_json(400, {"error": "InvalidRequest", "message": "Unable to resolve handle"}, cors)
            else:
                self._send_json(200, {"did": did}, cors)
        elif method == "app.bsky.actor.getProfile":
            did = arg("actor")
            did = next((d for d, a in world["accounts"].items() if a["handle"] == did.lower()), did)
            account = world["accounts"].get(did)
            state = self._bluesky_account_state(did)
            if account is None or state == "account-deleted":
                self._send_json(400, {"error": "InvalidRequest", "message": "Profile not found"}, cors)
            elif state == "taken-down":
                self._send_json(400, {"error": "AccountTakedown", "message": "Account has been suspended"}, cors)
            elif state == "deactivated":
                self._send_json(400, {"error": "AccountDeactivated", "message": "Account is deactivated"}, cors)
            else:
                self._send_json(200, {"did": did, "handle": account["handle"], "displayName": account["displayName"],
                                      "description": account["description"], "createdAt": account["createdAt"],
                                      "indexedAt": account["createdAt"], "labels": [],
                                      "followersCount": 212, "followsCount": 48, "postsCount": 3}, cors)
        elif method == "app.bsky.feed.getPostThread":
            self._bluesky_thread(world, arg("uri"), cors)
        else:
            self._send_json(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}, cors)

    def _bluesky_thread(self, world: dict[str, Any], uri: str, cors: dict[str, str]) -> None:
        m = re.fullmatch(r"at://([^/]+)/app\.bsky\.feed\.post/([A-Za-z0-9._:~-]+)", uri)
        if m is None:
            self._send_json(400, {"error": "InvalidRequest", "message": "Error: uri must be a valid at-uri"}, cors)
            return
        did, rkey = m.groups()
        entry = world["posts"].get(rkey)
        not_found = {"error": "NotFound", "message": f"Post not found: {uri}"}
        if entry is None or entry["post"]["author"]["did"] != did or \
                self._bluesky_account_state(did) != "active":
            # The AppView answers the same NotFound for a deleted post and a taken-down or deactivated author.
            self._send_json(400, not_found, cors)
            return
        state = self._bluesky_post_state(rkey)
        post = json.loads(json.dumps(entry["post"]))
        if state == "deleted":
            self._send_json(400, not_found, cors)
        elif state == "not-found-view":
            self._send_json(200, {"thread": {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}},
                            cors)
        elif state == "blocked":
            self._send_json(200, {"thread": {"$type": "app.bsky.feed.defs#blockedPost", "uri": uri, "blocked": True,
                                             "author": {"did": did, "viewer": {"blockedBy": True}}}}, cors)
        elif state == "empty":
            self._send(200, b"", JSON_TYPE, cors)
        elif state == "unavailable":
            self._send_json(502, {"error": "UpstreamFailure", "message": "Upstream Failure"}, cors)
        else:
            if state.startswith("as:"):  # DemoServer.answer_bluesky_as: another post's thread
                post = json.loads(json.dumps(world["posts"][state[3:]]["post"]))
            if state == "labelled-takedown":
                post["labels"] = [{"src": "did:plc:ar7c4by46qjdydhdevvrndac", "uri": uri, "cid": post["cid"],
                                   "val": "!takedown", "cts": "2026-11-17T02:00:00.000Z"}]
            replies = [{"$type": "app.bsky.feed.defs#threadViewPost", "post": r, "replies": []}
                       for r in entry["replies"]]
            self._send_json(200, {"thread": {"$type": "app.bsky.feed.defs#threadViewPost", "post": post,
                                             "replies": replies}}, cors)

    def _world_bluesky_plc(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """plc.directory/<did>: the DID document, which names the account's data server."""
        did = path.lstrip("/")
        account = _world_json("bluesky/bluesky.json")["accounts"].get(did)
        if account is None:
            self._send(404, f"DID not registered: {did}".encode(), "text/plain; charset=utf-8")
            return
        self._send(200, _compact_json({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1",
                         "https://w3id.org/security/suites/secp256k1-2019/v1"],
            "id": did, "alsoKnownAs": [f"at://{account['handle']}"],
            "verificationMethod": [{"id": f"{did}#atproto", "type": "Multikey", "controller": did,
                                    "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"}],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": account["pds"]}]}), "application/did+ld+json",
            {"Access-Control-Allow-Origin": "*"})

    def _world_bluesky_pds(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """A data server's com.atproto.sync.getBlob: the blob as uploaded, with the errors a PDS gives."""
        if path != "/xrpc/com.atproto.sync.getBlob":
            self._send_json(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})
            return
        did, cid = query.get("did", [""])[0], query.get("cid", [""])[0]
        account = _world_json("bluesky/bluesky.json")["accounts"].get(did)
        if account is None or f"https://{host}" != account["pds"]:
            self._send_json(400, {"error": "RepoNotFound", "message": f"Could not find repo for DID: {did}"})
            return
        state = self._bluesky_account_state(did)
        if state in ("taken-down", "deactivated"):
            error = {"taken-down": "RepoTakendown", "deactivated": "RepoDeactivated"}[state]
            self._send_json(400, {"error": error, "message": f"Repo has been {state.replace('-', ' ')}: {did}"})
            return
        found = [p for p in (WORLD_ROOT / "bluesky" / "blobs").glob(f"{cid}.*")] if re.fullmatch(r"b[a-z2-7]{20,100}", cid) \
            else []
        if not found:
            self._send_json(400, {"error": "BlobNotFound", "message": "Blob not found"})
            return
        self._send_file(found[0], WORLD_CONTENT_TYPES.get(found[0].suffix, "application/octet-stream"),
                        {"Cache-Control": "private", "Content-Security-Policy": "default-src 'none'; sandbox",
                         "x-content-type-options": "nosniff"})

    def _world_bluesky_cdn(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """cdn.bsky.app/img/<preset>/plain/<did>/<cid>@jpeg: the AppView's re-encoded copies, not the blobs."""
        m = re.fullmatch(r"/img/(feed_fullsize|feed_thumbnail|avatar|avatar_thumbnail)/plain/(did:[a-z]+:[A-Za-z0-9.:-]+)/"
                         r"(b[a-z2-7]{20,100})@(jpeg|webp)", path)
        target = WORLD_ROOT / "bluesky" / "cdn" / f"{m.group(3)}.jpg" if m else None
        if target is None or not target.is_file():
            self._world_not_found()
            return
        self._send_file(target, "image/jpeg", {"Access-Control-Allow-Origin": "*",
                                               "Cache-Control": "public, max-age=604800"})

    def _world_bluesky_video(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """video.bsky.app/watch/<did, percent-encoded>/<cid>/...: the HLS rendition of a video blob."""
        m = re.fullmatch(r"/watch/did(?:%3A|:)[^/]+/(b[a-z2-7]{20,100})/((?:360p/)?[a-z0-9]+\.(?:m3u8|ts|jpg))", path)
        target = _resolve_under(WORLD_ROOT / "bluesky" / "video" / m.group(1), "/" + m.group(2)) if m else None
        if target is None or not target.is_file():
            self._world_not_found()
            return
        self._send_file(target, WORLD_CONTENT_TYPES.get(target.suffix, "image/jpeg"),
                        {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=604800"})

    def _world_bluesky_app(self, host: str, path: str, query: dict[str, list[str]]) -> None:
        """bsky.app/profile/<actor>/post/<rkey> and embed.bsky.app: the post page (for the screenshot), the embed
        iframe and embed.js. The real bsky.app is a React app that draws the post from the AppView; this one is drawn
        here from the same answer, and says "Post not found" (HTTP 200, as the app does) when it is gone."""
        if host == "embed.bsky.app" and path == "/static/embed.js":
            self._send(200, _BLUESKY_EMBED_JS.encode(), "text/javascript; charset=utf-8",
                       {"Access-Control-Allow-Origin": "*"})
            return
        m = re.fullmatch(r"/profile/([^/]+)/post/([A-Za-z0-9._:~-]+)/?", path) if host == "bsky.app" else \
            re.fullmatch(r"/embed/([^/]+)/app\.bsky\.feed\.post/([A-Za-z0-9._:~-]+)/?", path)
        if m is None:
            self._world_not_found()
            return
        world = _world_json("bluesky/bluesky.json")
        actor, rkey = urllib.parse.unquote(m.group(1)).lower(), m.group(2)
        entry = world["posts"].get(rkey)
        author = (entry or {}).get("post", {}).get("author", {})
        shown = entry is not None and actor in (author.get("did"), author.get("handle")) and \
            self._bluesky_account_state(author["did"]) == "active" and \
            self._bluesky_post_state(rkey) in ("available", "labelled-takedown")
        if not shown:
            self._send(200, _bluesky_page("Bluesky", "", '<p>Post not found</p><p>The post may have been deleted.</p>'),
                       HTML_TYPE)
            return
        post = entry["post"]
        record = post["record"]
        media = post.get("embed", {}).get("media", post.get("embed", {}))
        images = "".join(f'<img src="{html.escape(i["fullsize"])}" alt="{html.escape(i["alt"])}" width="480">'
                         for i in media.get("images", []))
        if media.get("$type") == "app.bsky.embed.video#view":
            images += f'<video poster="{html.escape(media["thumbnail"])}" width="480" controls></video>'
        quoted = post.get("embed", {}).get("record", {}).get("record")
        quote = (f'<blockquote class="quote"><b>{html.escape(quoted["author"]["displayName"])}</b> '
                 f'@{html.escape(quoted["author"]["handle"])}<p>{html.escape(quoted["value"]["text"])}</p></blockquote>'
                 if quoted else "")
        description = html.escape(record["text"])
        head = (f'<meta property="og:title" content="{html.escape(author["displayName"])} (@{author["handle"]})">'
                f'<meta property="og:description" content="{description}">'
                f'<link rel="alternate" href="{html.escape(post["uri"])}">')
        body = (f'<article><header><b>{html.escape(author["displayName"])}</b> '
                f'@{html.escape(author["handle"])}</header><p>{description}</p>{images}{quote}'
                f'<footer><time datetime="{record["createdAt"]}">{record["createdAt"]}</time> · '
                f'{post["likeCount"]} likes</footer></article>')
        self._send(200, _bluesky_page(f'{author["displayName"]}: "{record["text"][:60]}" — Bluesky', head, body),
                   HTML_TYPE)


class _TunnelHandler(_Handler):
    """Serves the HTTP/1.1 requests inside one CONNECT tunnel, after TLS was terminated as ``host``."""

    def __init__(self, request: ssl.SSLSocket, client_address: Any, server: _Server, host: str) -> None:
        self.tunnel_host = host
        super().__init__(request, client_address, server)

    def do_CONNECT(self) -> None:
        self.send_error(400, "CONNECT inside a tunnel")
        self.close_connection = True


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


class DemoServer:
    """A running demo server; use as a context manager or call :meth:`stop`."""

    def __init__(self, httpd: _Server, thread: threading.Thread,
                 proxyd: _Server, proxy_thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._proxyd = proxyd
        self._proxy_thread = proxy_thread
        self._stopped = False
        host, port = httpd.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self.url: str = f"http://{url_host}:{self.port}"
        self.article_url: str = self.url + ARTICLE_PATH
        # Shared with the handler threads, which increment under a lock.
        self.hits: dict[str, int] = httpd.hits
        # The forward proxy into the fixture world (see the module docstring).
        self.proxy_port: int = int(proxyd.server_address[1])
        self.proxy_url: str = f"http://{url_host}:{self.proxy_port}"
        # The article under its fixture-world name, for captures through the proxy.
        self.world_article_url: str = f"https://{NEWS_HOST}{ARTICLE_PATH}"
        self._world = httpd.world

    @property
    def proxy_log(self) -> list[ProxyRequest]:
        """(method, host, path) of every request the proxy received, oldest first (a snapshot)."""
        with self._world.lock:
            return list(self._world.proxy_log)

    def set_tsa(self, url: str | None) -> None:
        """Relay timestamp queries to ``http://timestamp.demo-tsa.example/`` to this loopback TSA (None: 502)."""
        with self._world.lock:
            self._world.tsa_url = url

    def set_media(self, path: Path | None) -> None:
        """Serve the file at ``path`` as ``/test/media.mp4`` (video/mp4); None: 404."""
        with self._world.lock:
            self._world.media_file = Path(path) if path is not None else None

    def reset_proxy_log(self) -> None:
        with self._world.lock:
            self._world.proxy_log.clear()
            self._world.credential_log.clear()

    @property
    def credential_log(self) -> list[CredentialSeen]:
        """(host, path, Cookie, Authorization) of every request any host of the world (news site included)
        answered, oldest first; cleared with the proxy log."""
        with self._world.lock:
            return list(self._world.credential_log)

    @property
    def ca_file(self) -> str:
        """PEM file of the test CA that signs the proxy's certificates (one CA per process)."""
        return str(_cert_authority().ca_file)

    @property
    def ca_spki_sha256(self) -> str:
        """Base64 SHA-256 of the CA's SubjectPublicKeyInfo, for --ignore-certificate-errors-spki-list."""
        return _cert_authority().spki_sha256

    def set_tweet_state(self, tweet_id: str | int, state: str) -> None:
        """Make a fixture tweet answer as ``state`` from now on: "available" or a tombstones.json key
        ("deleted", "suspended", "protected", "age-restricted", "empty", "not-found")."""
        tweet_id = str(tweet_id)
        if tweet_id not in _world_json("tweets.json") or not tweet_id.isdigit():
            raise KeyError(f"{tweet_id} is not a fixture tweet")
        if state not in tweet_states():
            raise ValueError(f"unknown tweet state {state!r}; one of {', '.join(tweet_states())}")
        if state == "available" and not (WORLD_ROOT / "syndication" / f"{tweet_id}.json").is_file():
            raise ValueError(f"{tweet_id} has no stored tweet to make available")
        with self._world.lock:
            self._world.tweet_states[tweet_id] = state

    def answer_tweet_as(self, tweet_id: str | int, other_id: str | int) -> None:
        """Make the syndication endpoint answer ``tweet_id`` with another stored tweet's answer, as a mixed-up
        cache or a redirecting endpoint would (reset with :meth:`reset_tweet_states`)."""
        tweet_id, other_id = str(tweet_id), str(other_id)
        if tweet_id not in _world_json("tweets.json"):
            raise KeyError(f"{tweet_id} is not a fixture tweet")
        if not (WORLD_ROOT / "syndication" / f"{other_id}.json").is_file():
            raise KeyError(f"{other_id} has no stored answer")
        with self._world.lock:
            self._world.tweet_states[tweet_id] = f"as:{other_id}"

    def set_bluesky_state(self, rkey: str, state: str) -> None:
        """Make a fixture Bluesky post answer as ``state`` from now on (reset with :meth:`reset_tweet_states`): one of
        BLUESKY_POST_STATES, or of BLUESKY_ACCOUNT_STATES (then its author's whole account is in that state), or
        "as:<rkey>" (the AppView answers with another post's thread)."""
        posts = _world_json("bluesky/bluesky.json")["posts"]
        if rkey not in posts:
            raise KeyError(f"{rkey} is not a fixture Bluesky post")
        if state not in BLUESKY_POST_STATES + BLUESKY_ACCOUNT_STATES and not (state.startswith("as:") and state[3:] in posts):
            raise ValueError(f"unknown Bluesky state {state!r}; one of {', '.join(BLUESKY_POST_STATES + BLUESKY_ACCOUNT_STATES)}")
        with self._world.lock:
            if state in BLUESKY_ACCOUNT_STATES:
                self._world.bluesky_states[posts[rkey]["post"]["author"]["did"]] = state
            else:
                self._world.bluesky_states[rkey] = state

    def reset_tweet_states(self) -> None:
        """Every fixture tweet (and Telegram and Bluesky post) back to the state tweets.json (telegram/posts.json,
        bluesky/bluesky.json) gives it."""
        with self._world.lock:
            self._world.tweet_states.clear()
            self._world.bluesky_states.clear()
            self._world.telegram_states.clear()
            self._world.space_states.clear()

    def set_telegram_state(self, post: str, state: str) -> None:
        """Make a fixture Telegram post ("<channel>/<id>", lowercase) answer as ``state`` from now on: "available",
        "deleted", "withheld", "removed", "channel-gone" (its channel's name is free) or "empty"."""
        if post not in _world_json("telegram/posts.json")["posts"]:
            raise KeyError(f"{post} is not a fixture Telegram post")
        if state not in TELEGRAM_STATES:
            raise ValueError(f"unknown Telegram post state {state!r}; one of {', '.join(TELEGRAM_STATES)}")
        with self._world.lock:
            self._world.telegram_states[post] = state

    def set_space_state(self, space_id: str, state: str) -> None:
        """Make a fixture X Space answer as ``state`` from now on: "available" (as x_spaces.json has it), "gone" (an
        empty audioSpace, as X answers for a deleted Space) or "replay-disabled" (its recording taken down)."""
        if space_id not in _world_json("x_spaces.json"):
            raise KeyError(f"{space_id} is not a fixture X Space")
        if state not in ("available", "gone", "replay-disabled"):
            raise ValueError(f"unknown X Space state {state!r}; one of available, gone, replay-disabled")
        with self._world.lock:
            self._world.space_states[space_id] = state

    def set_status_state(self, key: str, state: str) -> None:
        """Make a fixture Mastodon status ("<host>/<id>") answer as ``state`` from now on: "available" or a key of
        world/mastodon/statuses.json "states" ("deleted", "suspended", "gone", "login-required", "unavailable")."""
        world = _world_json("mastodon/statuses.json")
        if key not in world["statuses"]:
            raise KeyError(f"{key} is not a fixture status")
        if state != "available" and state not in world["states"]:
            raise ValueError(f"unknown status state {state!r}; one of available, {', '.join(world['states'])}")
        with self._world.lock:
            self._world.fedi_states[key] = state

    def answer_status_as(self, key: str, other_id: str) -> None:
        """Make a fixture status's API answer another stored status's (of the same instance), as a mixed-up cache."""
        with self._world.lock:
            self._world.fedi_states[key] = f"as:{other_id}"

    def reset_status_states(self) -> None:
        """Every fixture Mastodon status back to the state statuses.json gives it."""
        with self._world.lock:
            self._world.fedi_states.clear()

    def reset_hits(self) -> None:
        """Forget all counted requests (e.g. between test phases)."""
        with self._httpd.hits_lock:
            self.hits.clear()

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close client sockets."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.stopping.set()
        for server in (self._httpd, self._proxyd):
            server.shutdown()
            server.drop_connections()
            server.server_close()
        self._thread.join(timeout=5)
        self._proxy_thread.join(timeout=5)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<DemoServer {self.url}>"


def _serve_in_thread(server: _Server, name: str) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # short, so stop() returns quickly
        name=f"{name}-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return thread


def start(host: str = "127.0.0.1", port: int = 0, verbose: bool = False, proxy_port: int = 0) -> DemoServer:
    """Start the site and the fixture-world proxy in daemon threads; returns once both are listening."""
    # The constructor binds and listens, so connections made right after this
    # returns are queued even before serve_forever() runs.
    httpd = _Server((host, port), verbose)
    try:
        proxyd = _Server((host, proxy_port), verbose, proxy_for=httpd)
    except OSError:
        httpd.server_close()
        raise
    return DemoServer(httpd, _serve_in_thread(httpd, "demo-server"), proxyd, _serve_in_thread(proxyd, "demo-proxy"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the archiver demo news site on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--proxy-port", type=int, default=0, help="port of the fixture-world proxy; 0 picks a free one")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: types.FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = start(args.host, args.port, verbose=args.verbose, proxy_port=args.proxy_port)
    print(f"serving {server.url}", flush=True)
    print(f"proxy {server.proxy_url}", flush=True)
    print(f"ca-file {server.ca_file}", flush=True)
    print(f"ca-spki-sha256 {server.ca_spki_sha256}", flush=True)
    try:
        # wait() with a timeout keeps the main thread responsive to signals.
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
