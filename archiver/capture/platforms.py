"""The platform paths: one row per way archiver captures a platform's items, the single source of truth for

* which extractor may produce a capture of that platform (anything else is ``partial``, class
  ``extractor-mismatch``: a platform URL captured by a generic fallback or as another item is never ok),
* the URL yt-dlp is given for an item (a Periscope broadcast is read through X's broadcast API),
* ``archiver platforms`` (the support matrix) and the README's table, which is generated from it,
* the contract tests' names (``@pytest.mark.contract("<path name>")``) that ``make update-extractors`` reports on.

Data only, cheap to import: ``archiver platforms`` must not load the capture stack (yt-dlp, Playwright).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

# The failure class of a capture made by something other than the platform's own path.
MISMATCH = "extractor-mismatch"


@dataclass(frozen=True)
class PlatformPath:
    name: str                    # contract-test name and the row's id: "x-broadcast"
    platform: str                # the key's prefix (urls.py): "broadcast"
    label: str                   # for people: "X broadcast (live or replay)"
    examples: tuple[str, ...]    # URL spellings that take this path
    captures: tuple[str, ...]    # what goes into the WARC
    tombstones: tuple[str, ...]  # failure classes that mean "gone", as the platform says it
    liveness: str                # how `watch`/`check` asks whether it is still there
    engine: str                  # "archiver" (our own client) or "yt-dlp"
    extractors: tuple[str, ...] = ()   # yt-dlp extractor keys that are this platform's own path
    # The URL yt-dlp is given for (item id, canonical URL); None: the canonical URL itself.
    ytdlp_url: Callable[[str, str], str] | None = field(default=None, compare=False)
    # Whether yt-dlp's id must equal the key's id (False where the key names a short link, not the item).
    id_in_key: Callable[[str], bool] = field(default=lambda item_id: True, compare=False)
    # The field of yt-dlp's info that holds the key's id: "id", or "display_id" where the key names a page that
    # leads to the item (an X event's broadcast has an id of its own).
    id_field: str = "id"
    note: str = ""
    # Whether the fixture world models this platform, so that contract tests (``pytest -m contract``) pin the
    # path end to end; where it does not, a yt-dlp update is checked only by the extractor rule at capture time.
    fixture_world: bool = False

    def media_url(self, item_id: str, canonical_url: str) -> str:
        return self.ytdlp_url(item_id, canonical_url) if self.ytdlp_url else canonical_url

    def relies_on(self) -> str:
        if self.engine == "yt-dlp":
            return f"yt-dlp {_version('yt-dlp')} ({', '.join(self.extractors)})"
        return f"archiver {_version('archiver')} (own client)"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "label": self.label, "examples": list(self.examples),
                "captures": list(self.captures), "tombstones": list(self.tombstones), "liveness": self.liveness,
                "engine": self.engine, "extractors": list(self.extractors),
                "engine_version": _version("yt-dlp" if self.engine == "yt-dlp" else "archiver"),
                "relies_on": self.relies_on(), "fixture_world": self.fixture_world, "note": self.note}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _tiktok_url(item_id: str, canonical: str) -> str:
    # The key's own canonical form for an embed (/embed/v2/<id>) is one yt-dlp's TikTok extractor does not
    # take (it would fall back to the generic one); /embed/<id> is the same video, and it does.
    return canonical if "/@" in canonical else f"https://www.tiktok.com/embed/{item_id}"


_VIDEO_TOMBSTONES = ("gone", "protected", "age-restricted")
_YTDLP_MEDIA = ("yt-dlp info JSON (the platform's answer as yt-dlp read it)", "media at the best format",
                "thumbnail", "subtitles", "rendered page (screenshot, DOM)")

PATHS: tuple[PlatformPath, ...] = (
    PlatformPath(
        "tweet", "twitter", "X/Twitter post",
        ("https://x.com/<user>/status/<id>", "twitter.com, mobile., mirrors (fxtwitter, nitter...), embeds"),
        ("syndication answer (post JSON) as received", "photos at original size", "videos (best MP4, or HLS read by yt-dlp)",
         "quoted post", "embed rendered (screenshot, DOM)"),
        ("deleted", "suspended", "protected", "age-restricted", "account-deleted", "withheld", "removed",
         "not-found", "unavailable"),
        "syndication answer", "archiver", fixture_world=True,
        note="the answer must be for the requested id; an empty answer is never taken for a deletion"),
    PlatformPath(
        "fediverse", "fedi", "Mastodon status (any instance)",
        ("https://<instance>/@<user>/<id>", "/@<user>@<origin host>/<id>, /web/statuses/<id>, "
         "/users/<user>/statuses/<id>, /@<user>/<id>/embed"),
        ("/api/v1/statuses/<id> as received", "edit history (/history) when edited", "media at original size",
         "card and poll (in the answer)", "public page or embed rendered (screenshot, DOM)"),
        ("not-found", "deleted", "suspended"),
        "/api/v1/statuses/<id>", "archiver", fixture_world=True,
        note="the key holds the instance (a status id is its own); an answer that is not Mastodon's is never ok "
             "and never a deletion"),
    PlatformPath(
        "telegram", "telegram", "Telegram public post",
        ("https://t.me/<channel>/<id>", "https://t.me/s/<channel>/<id>", "?embed=1, ?single, telegram.me, telegram.dog"),
        ("post widget (t.me/<channel>/<id>?embed=1) as received", "channel preview (t.me/s/) as received",
         "photos and videos as Telegram's CDN serves them (album items too)", "widget rendered (screenshot, DOM)"),
        ("not-found", "channel-not-found", "private", "withheld", "removed", "unavailable"),
        "post widget", "archiver", fixture_world=True,
        note="Telegram says what is gone in words inside a 200; a status or an empty answer is never a deletion"),
    PlatformPath(
        "bluesky", "bluesky", "Bluesky post",
        ("https://bsky.app/profile/<handle or did>/post/<rkey>", "at://<handle or did>/app.bsky.feed.post/<rkey>",
         "embed.bsky.app iframes, main.bsky.dev"),
        ("getPostThread answer (post JSON, labels) as received", "handle -> DID resolution", "DID document",
         "images and video blobs as uploaded (from the author's PDS, checked against their CIDs)",
         "video HLS (video.bsky.app, read by yt-dlp)", "quoted post", "bsky.app post page rendered (screenshot, DOM)"),
        ("deleted", "not-found", "removed", "suspended", "deactivated", "account-deleted", "unavailable"),
        "getPostThread (getProfile when gone)", "archiver", fixture_world=True,
        note="keyed by DID: a handle is resolved when the URL is added; the answer must be for the requested "
             "at:// URI"),
    PlatformPath(
        "x-broadcast", "broadcast", "X broadcast (live or replay)",
        ("https://x.com/i/broadcasts/<id>",),
        ("BroadcastQuery and stream status (in yt-dlp's info JSON)", "HLS replay, or a live stream up to "
         "video.max_seconds", "thumbnail", "x.com page rendered (screenshot, DOM)"),
        _VIDEO_TOMBSTONES, "yt-dlp metadata (BroadcastQuery)", "yt-dlp", ("TwitterBroadcast",), fixture_world=True),
    PlatformPath(
        "periscope", "periscope", "Periscope broadcast (through X)",
        ("https://www.pscp.tv/w/<id>", "https://www.periscope.tv/<user>/<id>", "/w/<early base64 token>"),
        ("the periscope.tv page rendered (screenshot, DOM)", "the broadcast through X's broadcast API: "
         "BroadcastQuery, HLS replay", "thumbnail"),
        _VIDEO_TOMBSTONES, "yt-dlp metadata (BroadcastQuery)", "yt-dlp", ("TwitterBroadcast",),
        ytdlp_url=lambda item_id, canonical: f"https://x.com/i/broadcasts/{item_id}", fixture_world=True,
        note="a Periscope broadcast id is the X broadcast id; yt-dlp has no Periscope extractor since 2026.11"),
    PlatformPath(
        "x-event", "x-event", "X event (its broadcast)",
        ("https://x.com/i/events/<id>",),
        ("event timeline and broadcast (in yt-dlp's info JSON)", "HLS replay", "x.com page rendered"),
        _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("TwitterBroadcast",), id_field="display_id",
        fixture_world=True,
        note="the event id is not the broadcast id: yt-dlp's display_id must be the event"),
    PlatformPath(
        "x-space", "x-space", "X Space (audio, live or replay)",
        ("https://x.com/i/spaces/<id>", "twitter.com, /peek"),
        ("AudioSpaceById and stream status (in yt-dlp's info JSON: title, host, speakers, state, times)",
         "audio: the replay (packed-audio HLS), or a live Space up to video.max_seconds", "host avatar",
         "x.com page rendered (screenshot, DOM)"),
        ("gone", "replay-disabled"), "yt-dlp metadata (AudioSpaceById)", "yt-dlp", ("TwitterSpaces",),
        fixture_world=True,
        note="a Space that ended without a recording is replay-disabled; one not started yet is retried "
             "(not-started), one whose recording is being made too (not-yet-available)"),
    PlatformPath(
        "youtube", "youtube", "YouTube video", ("https://www.youtube.com/watch?v=<id>", "youtu.be, shorts, embeds"),
        _YTDLP_MEDIA, _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("Youtube",)),
    PlatformPath(
        "vimeo", "vimeo", "Vimeo video", ("https://vimeo.com/<id>", "channels, groups, showcases, player"),
        _YTDLP_MEDIA, _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("Vimeo",), fixture_world=True),
    PlatformPath(
        "tiktok", "tiktok", "TikTok video", ("https://www.tiktok.com/@<user>/video/<id>", "embeds"),
        _YTDLP_MEDIA, _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("TikTok",), ytdlp_url=_tiktok_url,
        fixture_world=True),
    PlatformPath(
        "instagram", "instagram", "Instagram post or reel", ("https://www.instagram.com/p/<shortcode>/", "reel, tv"),
        _YTDLP_MEDIA, _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("Instagram",), fixture_world=True),
    PlatformPath(
        "facebook", "facebook", "Facebook video", ("https://www.facebook.com/watch/?v=<id>", "videos, reels, fb.watch"),
        _YTDLP_MEDIA, _VIDEO_TOMBSTONES, "yt-dlp metadata", "yt-dlp", ("Facebook",),
        # fb.watch codes are short links, not video ids: only the extractor can be checked for them.
        id_in_key=lambda item_id: item_id.isdigit(), fixture_world=True),
)

BY_PLATFORM: dict[str, PlatformPath] = {p.platform: p for p in PATHS}
BY_NAME: dict[str, PlatformPath] = {p.name: p for p in PATHS}


def for_key(key: str | None) -> PlatformPath | None:
    """The platform path a key (``broadcast:1YqKDqDXRRvxV``) takes, or None for a page, a file or t.co."""
    if not key or ":" not in key:
        return None
    return BY_PLATFORM.get(key.split(":", 1)[0])


def video_target(key: str | None, canonical_url: str, url: str) -> tuple[PlatformPath | None, str | None, str]:
    """(path, item id, the URL yt-dlp is given) for a video item; without a platform path, ``url`` as given."""
    path = for_key(key)
    if path is None or key is None:
        return None, None, url
    item_id = key.split(":", 1)[1]
    return path, item_id, path.media_url(item_id, canonical_url)


@dataclass(frozen=True)
class Verdict:
    """Whether a capture was produced by its platform's own path, for provenance and the capture's status."""
    path: str
    engine: str
    engine_version: str | None
    extractor: str | None
    expected_extractors: tuple[str, ...]
    item_id: str | None
    expected_id: str
    ok: bool
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "engine": self.engine, "engine_version": self.engine_version,
                "extractor": self.extractor, "expected_extractors": list(self.expected_extractors),
                "id": self.item_id, "expected_id": self.expected_id, "match": self.ok, "message": self.message}


def judge_ytdlp(path: PlatformPath, expected_id: str, info: dict[str, Any] | None) -> Verdict:
    """The verdict on yt-dlp's info dict for an item of ``path``: right extractor, right item."""
    info = info or {}
    extractor = info.get("extractor_key")
    got_id = info.get(path.id_field)
    got_id = str(got_id) if got_id is not None else None
    message = None
    if extractor not in path.extractors:
        message = (f"yt-dlp's {extractor or 'unknown'} extractor produced this, not the {path.label} path "
                   f"({', '.join(path.extractors)}): a fallback is not the item")
    elif path.id_in_key(expected_id) and got_id != expected_id:
        message = (f"yt-dlp returned {path.id_field} {got_id or 'none'}, not the requested {expected_id}: "
                   "another item is not the item")
    return Verdict(path.name, "yt-dlp", _version("yt-dlp"), extractor, path.extractors,
                   str(info["id"]) if info.get("id") is not None else None, expected_id, message is None, message)


def judge_own(path: PlatformPath, expected_id: str, got_id: str | None, what: str) -> Verdict:
    """The verdict on one of our own clients' answers (``what`` names it): it must be for the requested id."""
    message = None
    if got_id is not None and got_id != expected_id:
        message = f"the {what} is for {got_id}, not the requested {expected_id}: another item is not the item"
    return Verdict(path.name, "archiver", _version("archiver"), what, (what,), got_id, expected_id,
                   message is None, message)


def answer_outcome(verdict: Verdict | None, availability: str, refusals: Any, message: str | None,
                   problems: list[str], rendered: Any, rendered_name: str) -> tuple[str, str | None, str | None]:
    """(status, failure class, message) of a capture made from a platform's own answer (a tweet's syndication
    answer, a Mastodon status, a Bluesky thread, a Telegram widget), the same rule for each:

    - an answer for another item is ``partial``, class extractor-mismatch (recorded, never the item);
    - an availability in ``refusals`` (the platform's own words for gone, withheld, login needed...) is ``failed``
      with that class; any other that is not "available" is ``failed``, ``unknown-answer`` (retried; an empty or
      unreadable answer is never taken for a deletion);
    - available, but with ``problems`` (media not fetched...) or its rendered view (``rendered``: the browser's
      CaptureResult, None without a browser) not ok, ``partial``, ``incomplete``; else ``ok``."""
    if verdict is not None and not verdict.ok:
        return "partial", MISMATCH, verdict.message
    if availability in refusals:
        return "failed", availability, message
    if availability != "available":
        return "failed", "unknown-answer", message
    if problems or (rendered is not None and rendered.status != "ok"):
        return "partial", "incomplete", "; ".join(problems) or f"{rendered_name}: {rendered.failure_message}"
    return "ok", None, None


# --- the support matrix ------------------------------------------------------------------------------------

def markdown_table() -> str:
    """The README's platform table (``archiver platforms --markdown``); versions are left out so that the README
    does not change with every yt-dlp update (``archiver platforms`` prints them)."""
    lines = ["| path | URLs | captures | gone when | liveness check | relies on | contract tests |",
             "|---|---|---|---|---|---|---|"]
    for p in PATHS:
        relies = f"yt-dlp: {', '.join(p.extractors)}" if p.engine == "yt-dlp" else "archiver's own client"
        cells = [f"`{p.name}` {p.label}", "<br>".join(f"`{e}`" if "/" in e else e for e in p.examples),
                 "; ".join(p.captures), ", ".join(p.tombstones), p.liveness,
                 relies + (f" ({p.note})" if p.note else ""),
                 "fixture world" if p.fixture_world else "none yet (no fixture world)"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
