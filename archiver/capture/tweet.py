"""Tweets: the syndication answer (what the embed widget reads, no login needed), the media at full size,
the quoted tweet, and the embed page rendered in the browser for a screenshot — all in one WARC.

Unavailability is a finding, not an error: a tombstone (deleted, suspended, protected, age-restricted...)
or a 404 is recorded and classified. An empty or unreadable answer is never taken for a deletion: it is
classified ``unknown-answer`` and retried.
"""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from yt_dlp.jsinterp import js_number_to_string

from archiver.capture import platforms
from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc
from archiver.capture import network
from archiver.capture.base import CaptureResult, header_value
from archiver.capture.fingerprint import tweet_fingerprint
from archiver.capture.http import answer_provenance, fetch_chain, fetch_media

TWITTER_EPOCH_MS = 1288834974657
# Snowflake ids (with a timestamp in their top bits) began in November 2010; older ids carry no time.
FIRST_SNOWFLAKE_ID = 29700859247
# created_at and the snowflake time are the same instant; more than this apart means one of them lies.
TIME_TOLERANCE_SECONDS = 2.0

# Tombstone texts (X's wording, which changed from "Tweet" to "Post" in 2023; both are matched).
TOMBSTONES = [
    ("deleted by the", "deleted"),
    ("suspended account", "suspended"),
    ("limits who can view", "protected"),
    ("protected", "protected"),
    ("age-restricted", "age-restricted"),
    ("no longer exists", "account-deleted"),
    ("withheld", "withheld"),
    ("violated", "removed"),
]
UNAVAILABLE = {"deleted", "suspended", "protected", "age-restricted", "account-deleted", "withheld", "removed",
               "not-found", "unavailable"}


def syndication_token(tweet_id: str) -> str:
    """The token the embed widget sends: ((Number(id) / 1e15) * Math.PI).toString(36) without 0s and dots.

    Number(id) is a float64, so the id loses precision exactly as in JavaScript; yt-dlp's port of V8's
    radix conversion reproduces the digits."""
    return js_number_to_string((int(tweet_id) / 1e15) * math.pi, 36).translate(str.maketrans("", "", "0."))


def snowflake_time(tweet_id: str) -> datetime | None:
    value = int(tweet_id)
    if value < FIRST_SNOWFLAKE_ID:
        return None
    return datetime.fromtimestamp(((value >> 22) + TWITTER_EPOCH_MS) / 1000, timezone.utc)


def classify_answer(status: int, body: bytes, content_type: str | None) -> tuple[str, dict[str, Any] | None, str]:
    """(availability, tweet JSON or None, human message) for one syndication answer."""
    if status == 404:
        return "not-found", None, "the syndication endpoint answered 404: no such tweet (or deleted)"
    if status != 200:
        return "unknown-answer", None, f"the syndication endpoint answered HTTP {status}"
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "unknown-answer", None, f"the syndication answer is not JSON ({content_type or 'no content type'})"
    if not isinstance(data, dict) or not data:
        return "unknown-answer", None, "the syndication endpoint gave an empty answer (not taken for a deletion)"
    typename = data.get("__typename")
    if typename == "TweetTombstone" or "tombstone" in data:
        text = (((data.get("tombstone") or {}).get("text") or {}).get("text") or "").strip()
        lowered = text.lower()
        cls = next((c for needle, c in TOMBSTONES if needle in lowered), "unavailable")
        return cls, data, text.removesuffix(" Learn more") or "tombstone without text"
    if typename == "TweetUnavailable":
        return "unavailable", data, f"tweet unavailable: {data.get('reason') or 'no reason given'}"
    if data.get("id_str") and "text" in data:
        return "available", data, "available"
    return "unknown-answer", None, "the syndication answer has no tweet in it"


def describe_tweet(data: dict[str, Any], tweet_id: str) -> dict[str, Any]:
    """The indexed facts of a tweet answer, with created_at checked against the snowflake id."""
    user = data.get("user") or {}
    created = data.get("created_at")
    created_dt = None
    if created:
        try:
            created_dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            try:  # the older API's form: "Fri Dec 16 14:59:19 +0000 2016"
                created_dt = datetime.strptime(created, "%a %b %d %H:%M:%S %z %Y")
            except ValueError:
                created_dt = None
    snow = snowflake_time(tweet_id)
    delta = (created_dt - snow).total_seconds() if created_dt and snow else None
    check = "unknown" if delta is None else ("consistent" if abs(delta) <= TIME_TOLERANCE_SECONDS else "inconsistent")
    media = (data.get("mediaDetails") or [])
    quoted = data.get("quoted_tweet") or {}
    return {
        "id": data.get("id_str") or tweet_id,
        "screen_name": user.get("screen_name"),
        "name": user.get("name"),
        "text": data.get("text"),
        "created_at": created,
        "snowflake_time": snow.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if snow else None,
        "time_check": check,
        "time_delta_seconds": delta,
        "lang": data.get("lang"),
        "media_count": len(media),
        "reply_to": data.get("in_reply_to_status_id_str"),
        "quoted_id": quoted.get("id_str"),
        "urls": [u.get("expanded_url") for u in (data.get("entities") or {}).get("urls") or [] if u.get("expanded_url")],
        "possibly_sensitive": data.get("possibly_sensitive"),
    }


def _media_urls(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, URL) of every media file worth keeping, at the best quality the answer offers."""
    out: list[tuple[str, str]] = []
    for detail in data.get("mediaDetails") or []:
        base = detail.get("media_url_https")
        if detail.get("type") == "photo" and base:
            out.append(("photo", base + ("&" if "?" in base else "?") + "name=orig"))
            continue
        variants = ((detail.get("video_info") or {}).get("variants")) or []
        mp4 = [v for v in variants if v.get("content_type") == "video/mp4" and v.get("url")]
        if mp4:
            out.append(("video", max(mp4, key=lambda v: v.get("bitrate") or 0)["url"]))
        else:
            hls = [v["url"] for v in variants if "mpegurl" in (v.get("content_type") or "").lower() and v.get("url")]
            if hls:
                out.append(("hls", hls[0]))
        if base:
            out.append(("poster", base))
    return out


def syndication_url(tweet_id: str, settings: Settings) -> str:
    """The URL the embed widget asks for a tweet's data."""
    query = urlencode({"id": tweet_id, "lang": "en", "token": syndication_token(tweet_id)})
    return f"{settings['twitter']['syndication_url']}?{query}"


async def _fetch_answer(client: Any, tweet_id: str, warc: CaptureWarc, settings: Settings,
                        deadline: float) -> tuple[dict[str, Any], str | None, str, dict[str, Any] | None, str]:
    """Fetch and record one syndication answer: (last hop, problem, availability, tweet JSON, message)."""
    hops, problem = await fetch_chain(client, syndication_url(tweet_id, settings), warc, settings,
                                      limit=settings["capture"]["max_resource_bytes"], deadline=deadline)
    answer = hops[-1]
    availability, data, message = classify_answer(answer["status"], answer["sample"] or b"",
                                                  header_value(answer["headers"], "content-type"))
    return answer, problem, availability, data, message


async def capture_tweet(tweet_id: str, url: str, warc: CaptureWarc, settings: Settings, browser: Any,
                        video_capture: Any) -> CaptureResult:
    """Capture one tweet. ``browser`` renders the embed page (None: no screenshot); ``video_capture`` is the
    coroutine function that records an HLS-only video through yt-dlp."""
    tw, cap = settings["twitter"], settings["capture"]
    deadline = time.monotonic() + cap["timeout_seconds"]
    problems: list[str] = []
    media_records: list[dict[str, Any]] = []
    async with network.httpx_client(settings) as client:
        answer, problem, availability, data, message = await _fetch_answer(client, tweet_id, warc, settings, deadline)
        if problem:
            problems.append(problem)
        info: dict[str, Any] = {"id": tweet_id, "availability": availability, "message": message,
                                "syndication_url": answer["url"]}
        quoted_info = None
        verdict = None
        if availability == "available" and data is not None:
            verdict = platforms.judge_own(platforms.BY_NAME["tweet"], tweet_id, str(data.get("id_str")),
                                          "syndication answer")
        if verdict is not None and not verdict.ok:
            # Another tweet's answer (a redirecting endpoint, a cache mixing ids): recorded as received, but
            # neither described, nor its media fetched, as the requested tweet.
            info.update(answer_id=verdict.item_id, availability="unknown-answer", message=verdict.message)
        elif availability == "available" and data is not None:
            info.update(describe_tweet(data, tweet_id))
            info["fingerprint"] = tweet_fingerprint(data)
            to_fetch = _media_urls(data)
            quoted = data.get("quoted_tweet") or {}
            if quoted.get("id_str"):
                to_fetch += _media_urls(quoted)
                if tw["fetch_quoted"]:
                    try:
                        _, _, q_av, q_data, q_msg = await _fetch_answer(client, quoted["id_str"], warc, settings,
                                                                         deadline)
                        quoted_info = {"id": quoted["id_str"], "availability": q_av, "message": q_msg}
                        if q_data and q_av == "available":
                            quoted_info.update(describe_tweet(q_data, quoted["id_str"]))
                    except CaptureFailed as exc:
                        problems.append(f"quoted tweet {quoted['id_str']}: {exc.message}")
            seen: set[str] = set()
            for kind, media_url in to_fetch:
                if media_url in seen:
                    continue
                seen.add(media_url)
                if kind == "hls":
                    try:
                        video = await video_capture(media_url, warc)
                        media_records.append(video)
                        # Fragments the private-network guard refused: the video is incomplete.
                        problems.extend(f"{media_url}: {refused}" for refused in video.get("refused") or [])
                    except CaptureFailed as exc:
                        problems.append(f"{media_url}: {exc.message}")
                    continue
                record, m_problem = await fetch_media(client, kind, media_url, warc, settings, deadline=deadline)
                media_records.extend([record] if record else [])
                problems.extend([m_problem] if m_problem else [])
    info["media"] = media_records
    if quoted_info:
        info["quoted"] = quoted_info

    embed = None
    if browser is not None:
        embed_url = f"{tw['embed_url']}?{urlencode({'id': tweet_id})}"
        try:
            embed = await browser.capture(embed_url, warc)
        except CaptureFailed as exc:
            problems.append(f"embed page {embed_url}: {exc.message}")

    text_parts = [info.get("text") or "", (quoted_info or {}).get("text") or ""]
    if availability != "available":
        text_parts = [message]
    title = (f"@{info['screen_name']}: {(info.get('text') or '')[:100]}" if info.get("screen_name")
             else f"tweet {tweet_id} ({availability})")
    outlinks = [{"url": u, "text": "entities.urls"} for u in info.get("urls", [])]
    status, failure_class, failure_message = platforms.answer_outcome(verdict, availability, UNAVAILABLE, message,
                                                                      problems, embed, "embed page")
    if failure_class == platforms.MISMATCH and verdict is not None:
        title = f"tweet {tweet_id} (the answer was for {verdict.item_id})"
        text_parts = []
    details = {
        "tweet": info,
        "platform": verdict.as_dict() if verdict is not None else None,
        "problems": problems,
        **answer_provenance(answer, embed, settings),
    }
    # Where the tweet lives (the answer itself is the main record, under its own URL).
    tweet_url = (f"https://x.com/{info['screen_name']}/status/{tweet_id}" if info.get("screen_name")
                 else f"https://x.com/i/web/status/{tweet_id}")
    return CaptureResult(status=status, final_url=tweet_url, main_record_id=answer["record_id"],
                         http_status=answer["status"], content_type=header_value(answer["headers"], "content-type"),
                         failure_class=failure_class, failure_message=failure_message, title=title,
                         text="\n".join(p for p in text_parts if p), outlinks=outlinks, details=details)
