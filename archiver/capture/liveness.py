"""Liveness checks: a cheap look at whether an item is still there, and whether it changed, without a capture.

- pages: one GET (redirects followed and listed), the status, and a fingerprint of the HTML's visible text;
- tweets: the syndication answer (available, or which tombstone);
- videos: yt-dlp's metadata, nothing downloaded.
- posts (Mastodon, Bluesky, Telegram...): the platform's own answer, through its module (posts.py).

A check writes no WARC — it is an observation, stored in the index's ``checks`` history. When a check sees a
change or a disappearance, a full capture is queued, and that capture is the sealed evidence of it.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from archiver.capture import platforms
from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.urls import check_target, parse as parse_url
from archiver.capture import network
from archiver.capture.base import charset_of, header_value, is_html, status_failure
from archiver.capture.fingerprint import page_fingerprint, tweet_fingerprint, video_fingerprint
from archiver.capture.http import _classify_httpx as classify_httpx  # one mapping of httpx errors to classes
from archiver.capture.tweet import UNAVAILABLE, classify_answer, syndication_url
from archiver.capture.video import probe

READ_LIMIT = 5 * 1024 * 1024  # decoded bytes of a page read for its fingerprint


@dataclass
class CheckResult:
    method: str                      # http | syndication | yt-dlp
    status: str                      # ok | failed — as a capture would have ended
    failure_class: str | None = None
    http_status: int | None = None
    final_url: str | None = None
    redirects: list[list[Any]] = field(default_factory=list)  # [[status, url], ...] before the final answer
    fingerprint: str | None = None
    message: str | None = None
    seconds: float = 0.0


async def check(url: str, kind: str, key: str, settings: Settings) -> CheckResult:
    """Check one item; never raises for what the web answers (that is the result)."""
    started = time.monotonic()
    timeout = settings["watch"]["check_timeout_seconds"]
    method = {"tweet": "syndication", "video": "yt-dlp", "post": key.partition(":")[0]}.get(kind, "http")
    try:
        if kind == "tweet" and key.startswith("twitter:"):
            result = await asyncio.wait_for(_check_tweet(key.split(":", 1)[1], settings), timeout)
        elif kind == "post" and key:
            from archiver.capture.posts import check_post
            result = await asyncio.wait_for(check_post(key, settings), timeout)
        elif kind == "video":
            result = await asyncio.wait_for(asyncio.to_thread(_check_video, url, key, settings, timeout), timeout + 5)
        else:
            result = await asyncio.wait_for(_check_page(url, settings), timeout)
    except asyncio.TimeoutError:
        result = CheckResult(method, "failed", "timeout", message=f"no answer within {timeout:g} s")
    except CaptureFailed as exc:
        result = CheckResult(method, "failed", exc.failure_class, message=exc.message)
    result.seconds = time.monotonic() - started
    return result


async def _get(client: httpx.AsyncClient, url: str, settings: Settings) -> tuple[httpx.Response, bytes]:
    """One GET, reading at most READ_LIMIT decoded bytes (a gzip bomb stops there)."""
    net = settings["network"]
    check_target(url, net["allow_private"], via_proxy=bool(net["proxy"]), allowed=net["allow_addresses"])
    try:
        async with client.stream("GET", url) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= READ_LIMIT:
                    break
            return response, bytes(body[:READ_LIMIT])
    except httpx.HTTPError as exc:
        raise CaptureFailed(classify_httpx(exc), f"{type(exc).__name__}: {exc or 'no answer'} at {url}") from None


async def _check_page(url: str, settings: Settings) -> CheckResult:
    redirects: list[list[Any]] = []
    current = url
    async with network.httpx_client(settings) as client:
        for _ in range(settings["network"]["max_redirects"] + 1):
            response, body = await _get(client, current, settings)
            location = response.headers.get("location")
            if 300 <= response.status_code < 400 and location:
                redirects.append([response.status_code, current])
                current = urljoin(current, location)
                continue
            break
        else:
            return CheckResult("http", "failed", "redirect-loop", final_url=current, redirects=redirects,
                               message=f"more than {settings['network']['max_redirects']} redirects")
    failure_class, message = status_failure(response.status_code)
    content_type = response.headers.get("content-type")
    fingerprint = None
    if not failure_class and is_html(content_type):
        text = body.decode(charset_of(content_type, body), errors="replace")
        fingerprint = page_fingerprint(text, current)
    return CheckResult("http", "failed" if failure_class else "ok", failure_class, response.status_code, current,
                       redirects, fingerprint, message or f"HTTP {response.status_code}")


async def _check_tweet(tweet_id: str, settings: Settings) -> CheckResult:
    url = syndication_url(tweet_id, settings)
    async with network.httpx_client(settings) as client:
        response, body = await _get(client, url, settings)
    availability, data, message = classify_answer(response.status_code, body,
                                                  header_value(list(response.headers.items()), "content-type"))
    if availability == "available" and data is not None:
        return CheckResult("syndication", "ok", None, response.status_code, url, [], tweet_fingerprint(data),
                           message)
    cls = availability if availability in UNAVAILABLE else "unknown-answer"
    return CheckResult("syndication", "failed", cls, response.status_code, url, [], None, message)


def _check_video(url: str, key: str, settings: Settings, timeout: float) -> CheckResult:
    path, item_id, media_url = platforms.video_target(key, parse_url(url).canonical_url, url)
    info = probe(media_url, settings, timeout)
    if path is not None and item_id is not None:
        # A generic extractor's answer, or another item's, says nothing about whether this item is live.
        verdict = platforms.judge_ytdlp(path, item_id, info)
        if not verdict.ok:
            return CheckResult("yt-dlp", "failed", platforms.MISMATCH, None, media_url, [], None, verdict.message)
    return CheckResult("yt-dlp", "ok", None, None, info.get("webpage_url") or url, [], video_fingerprint(info),
                       f"{info.get('extractor_key')}: {info.get('title') or info.get('id')}")
