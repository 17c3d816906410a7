"""Telegram public posts: the post widget (``t.me/<channel>/<id>?embed=1&mode=tme``, the page telegram-widget.js
frames) and the channel's public preview (``t.me/s/<channel>/<id>``) as received, the post's photos and videos from
Telegram's CDN, and the widget rendered in the browser for a screenshot — all in one WARC.

Telegram has no public JSON for a post: the widget's HTML is its answer, and it is read here by its classes
(``tgme_widget_message_*``), as yt-dlp's telegram extractor and every public scraper read it. Telegram says what is
gone in words inside a 200 ("Post not found", a channel "violated local laws"...), never with a status, so:

* a widget that carries a post (``data-post``) is the post, whatever its prose says;
* a widget that carries Telegram's error (``.tgme_widget_message_error``) is a finding, classified by its words;
* anything else — another status, an empty body, a challenge page — is ``unknown-answer`` and retried: never
  taken for a deletion.

"Post not found" is all the widget says both for a deleted post and for a channel that does not exist (or went
private: its public name is then free); the preview tells them apart, as ``/s/`` of a name that is no channel
redirects to the name's landing page ("Telegram: Contact @name").
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from archiver.capture import network, platforms
from archiver.capture.base import CaptureResult, charset_of, header_value
from archiver.capture.fingerprint import telegram_fingerprint
from archiver.capture.http import answer_provenance, fetch_chain, fetch_media
from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc

PATH = "telegram"  # platforms.PATHS row
# The widget as telegram-widget.js?22 frames it; mode=tme is the t.me page's own embed (the same post markup).
WIDGET_URL = "https://t.me/{channel}/{post}?embed=1&mode=tme"
PREVIEW_URL = "https://t.me/s/{channel}/{post}"

# Telegram's words in .tgme_widget_message_error -> the failure class (first match wins; lowercase).
TOMBSTONES = [
    ("post not found", "not-found"),
    ("in your country", "withheld"),
    ("local laws", "withheld"),
    ("withheld", "withheld"),
    ("channel is private", "private"),
    ("is inaccessible", "private"),
    ("username not found", "channel-not-found"),
    ("channel not found", "channel-not-found"),
    ("not occupied", "channel-not-found"),
    ("terms of service", "removed"),
    ("pornographic", "removed"),
    ("copyright", "removed"),
    ("violated", "removed"),
]
UNAVAILABLE = {"not-found", "withheld", "private", "channel-not-found", "removed", "unavailable"}

_BACKGROUND = re.compile(r"background-image\s*:\s*url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", re.I)
_POST_LINK = re.compile(r"^/(?:s/)?[A-Za-z][A-Za-z0-9_]{2,31}/(\d{1,12})/?$")
_CONTACT_TITLE = re.compile(r"<title>\s*Telegram:\s*Contact\s+@", re.I)
_VIEWS = re.compile(r"^\s*([\d.,]+)\s*([KM]?)\s*$", re.I)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}


@dataclass
class Widget:
    """What one post's widget shows (the first message block of an answer)."""
    post: str | None = None                # data-post, as Telegram spells it: "EvacWatch/115"
    channel_title: str | None = None       # .tgme_widget_message_owner_name
    channel_url: str | None = None
    signature: str | None = None           # .tgme_widget_message_from_author: the channel's post signature
    text: str | None = None                # .js-message_text (the post itself, not a replied-to post's quote)
    posted_at: str | None = None           # <time datetime> of .tgme_widget_message_date
    views: str | None = None               # as shown: "48.2K"
    reply_to: str | None = None            # the URL of the post this one answers
    forwarded_from: str | None = None      # the URL (or name) of the post's origin
    photos: list[tuple[str, str | None]] = field(default_factory=list)   # (URL, item id from its ?single link)
    videos: list[tuple[str, str | None]] = field(default_factory=list)
    posters: list[str] = field(default_factory=list)
    grouped: bool = False                  # an album (.tgme_widget_message_grouped_wrap)
    album: list[str] = field(default_factory=list)  # the album's post ids, in order
    links: list[str] = field(default_factory=list)  # the links in the post's text
    error: str | None = None               # .tgme_widget_message_error, Telegram's words
    error_block: bool = False              # the error stands in a message block marked err_message, as t.me's do

    @property
    def username(self) -> str | None:
        return self.post.split("/", 1)[0] if self.post and "/" in self.post else None

    @property
    def post_id(self) -> str | None:
        return self.post.rsplit("/", 1)[1] if self.post and "/" in self.post else None


# Roles of the elements whose content is read; the innermost open one decides where text goes.
_ROLES = (("tgme_widget_message_error", "error"), ("tgme_widget_message_reply", "reply"),
          ("tgme_widget_message_owner_name", "owner"), ("tgme_widget_message_from_author", "signature"),
          ("tgme_widget_message_forwarded_from_name", "forwarded"), ("js-message_text", "text"),
          ("tgme_widget_message_views", "views"), ("tgme_widget_message_date", "date"),
          ("tgme_widget_message_link_preview", "preview"), ("tgme_widget_message_user", "user"))


class _WidgetParser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.widget = Widget()
        self._stack: list[tuple[str, str | None]] = []
        self._message_depth: int | None = None  # stack depth of the message block being read
        self._done = False
        self._item: str | None = None  # the post id of the photo or video player being read
        self._text: list[str] = []
        self._parts: dict[str, list[str]] = {"error": [], "owner": [], "signature": [], "views": [], "forwarded": []}

    def _inside(self, role: str) -> bool:
        return any(r == role for _, r in self._stack)

    def _url(self, raw: str | None) -> str | None:
        return urljoin(self.base, raw.strip()) if raw and raw.strip() else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        a = {k: v or "" for k, v in attrs}
        classes = set(a.get("class", "").split())
        if tag == "br" and self._inside("text") and not self._inside("reply"):
            self._text.append("\n")
        role = next((r for cls, r in _ROLES if cls in classes), None)
        w = self.widget
        if "tgme_widget_message" in classes and self._message_depth is None and (a.get("data-post") or
                                                                                   "err_message" in classes):
            w.post = a.get("data-post") or None
            w.error_block = "err_message" in classes
            role, self._message_depth = "message", len(self._stack)
        in_message = self._message_depth is not None or role == "error"
        quoted = self._inside("reply") or self._inside("preview") or self._inside("user")
        if in_message and not quoted:
            self._media(tag, a, classes)
            if role == "owner" and not w.channel_url:
                w.channel_url = self._url(a.get("href"))
            elif role == "forwarded":
                w.forwarded_from = self._url(a.get("href")) or w.forwarded_from
            elif role == "reply" and not w.reply_to:
                w.reply_to = self._url(a.get("href"))
            elif tag == "time" and a.get("datetime") and self._inside("date") and not w.posted_at:
                w.posted_at = a["datetime"]
            elif tag == "a" and self._inside("text") and a.get("href"):
                w.links.append(self._url(a["href"]) or "")
        if tag not in _VOID:
            self._stack.append((tag, role))

    def _media(self, tag: str, a: dict[str, str], classes: set[str]) -> None:
        w = self.widget
        if "tgme_widget_message_grouped_wrap" in classes:
            w.grouped = True
        if "tgme_widget_message_photo_wrap" in classes or "tgme_widget_message_video_player" in classes:
            # The post a photo or video is: its link (an album item's is its own id, with ?single).
            link = _POST_LINK.match(urlsplit(self._url(a.get("href")) or "").path or "")
            self._item = link.group(1) if link else None
            if w.grouped and self._item and self._item not in w.album:
                w.album.append(self._item)
        background = _BACKGROUND.search(a.get("style", ""))
        if "tgme_widget_message_photo_wrap" in classes and background:
            w.photos.append((self._url(background.group(1)) or "", self._item))
        elif "tgme_widget_message_video_thumb" in classes and background:
            w.posters.append(self._url(background.group(1)) or "")
        elif tag == "video" and "tgme_widget_message_video" in classes and a.get("src"):
            w.videos.append((self._url(a["src"]) or "", self._item))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                if self._message_depth is not None and len(self._stack) <= self._message_depth:
                    self._done = True  # the first message block is read: the rest (a preview's others) is not it
                return

    def handle_data(self, data: str) -> None:
        if self._done:
            return
        if self._inside("reply") or self._inside("preview"):
            return
        if self._inside("text"):
            self._text.append(data)
            return
        for role in ("error", "owner", "signature", "views", "forwarded"):
            if self._inside(role):
                self._parts[role].append(data)
                return

    def finish(self) -> Widget:
        w = self.widget

        def joined(role: str) -> str | None:
            return " ".join("".join(self._parts[role]).split()) or None

        text = "".join(self._text)
        w.text = "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip() or None
        w.error, w.channel_title, w.signature, w.views = (joined("error"), joined("owner"), joined("signature"),
                                                          joined("views"))
        if w.forwarded_from is None:
            w.forwarded_from = joined("forwarded")
        return w


def parse_widget(html: str, base: str = "https://t.me/") -> Widget:
    """The first post (or Telegram's error) in a widget or preview answer. Hostile markup yields what was read."""
    parser = _WidgetParser(base)
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - markup the stdlib parser gives up on: what was read so far stands
        pass
    return parser.finish()


def views_count(shown: str | None) -> int | None:
    """Telegram rounds views ("48.2K", "1.1M"): an estimate, never more exact than what was shown."""
    m = _VIEWS.match(shown or "")
    if not m:
        return None
    try:
        number = float(m.group(1).replace(",", ""))
    except ValueError:
        return None
    return round(number * {"": 1, "K": 1_000, "M": 1_000_000}[m.group(2).upper()])


def tombstone_class(error: str) -> str:
    lowered = error.lower()
    return next((cls for needle, cls in TOMBSTONES if needle in lowered), "unavailable")


def classify_widget(status: int, html: str | None) -> tuple[str, Widget | None, str]:
    """(availability, widget or None, human message) for one widget answer."""
    if status != 200:
        # Telegram refuses with a 200 and words: another status (429, 5xx, a proxy's 404) says nothing about the post.
        return "unknown-answer", None, f"t.me answered HTTP {status} for the widget (not taken for a deletion)"
    if not html or not html.strip():
        return "unknown-answer", None, "t.me gave an empty widget answer (not taken for a deletion)"
    widget = parse_widget(html)
    if widget.post:
        return "available", widget, "available"
    # An error in t.me's error block is Telegram's word, whatever it says; a stray error element elsewhere only when
    # it says a known thing (a page that merely looks like one is no finding).
    if widget.error and (widget.error_block or tombstone_class(widget.error) != "unavailable"):
        return tombstone_class(widget.error), widget, f"Telegram's widget says: {widget.error}"
    return "unknown-answer", None, ("the widget answer holds neither a post nor Telegram's error (a challenge page?): "
                                    "not taken for a deletion")


def channel_absent(hops: list[dict[str, Any]]) -> bool:
    """Whether the preview's answer says there is no channel of that name: /s/ redirected to the name's landing
    page, which offers to "Contact @name" (a user, or nobody) instead of a channel to view."""
    if len(hops) < 2 or not 300 <= hops[0]["status"] < 400 or hops[-1]["status"] != 200:
        return False
    landing = urlsplit(hops[-1]["url"]).path
    return not landing.startswith("/s/") and bool(_CONTACT_TITLE.search(_text_of(hops[-1]) or ""))


def _text_of(hop: dict[str, Any]) -> str | None:
    body = hop["text_sample"] if hop["text_sample"] is not None else hop["sample"]
    if not body:
        return None
    return body.decode(charset_of(header_value(hop["headers"], "content-type"), body), errors="replace")


def answer_id(widget: Widget, requested: str) -> str | None:
    """The post id the answer is for: its data-post, or the requested id when that is an item of its album
    (an album's widget carries the first item's id, and its other items only as ?single links)."""
    if widget.grouped and requested in widget.album:
        return requested
    return widget.post_id


def describe(widget: Widget, item_id: str) -> dict[str, Any]:
    """The posts row (posts.py's common keys) of an available post."""
    username = widget.username
    media = len(widget.photos) + len(widget.videos)
    # Where the post is shown: under its own id, also when it is an item of an album that answered for it.
    shown = answer_id(widget, item_id.rpartition("/")[2])
    return {
        "platform": "telegram", "id": item_id, "availability": "available",
        "author": username, "author_name": widget.channel_title, "text": widget.text,
        "posted_at": widget.posted_at, "edited_at": None, "lang": None, "media_count": media,
        "reply_to": widget.reply_to, "quoted": widget.forwarded_from,
        "url": f"https://t.me/{username}/{shown}" if username and shown else None,
        "fingerprint": telegram_fingerprint(widget.text, [("photo", i) for _, i in widget.photos]
                                            + [("video", i) for _, i in widget.videos]),
    }


def _media_urls(widget: Widget) -> list[tuple[str, str]]:
    """(kind, URL) of every file worth keeping. "Original size" on Telegram's CDN is the file the widget shows:
    a photo is served only as the largest rendition Telegram keeps of it (a photo sent as a photo is recompressed on
    upload, at most 2560 px on its long side; the file as uploaded is kept only for one sent as a document), and the
    CDN has no size parameter to ask for more (unlike pbs.twimg.com's name=orig). A video's <video src> is the file
    itself. Posters are kept too: they are what the widget showed before the video played."""
    wanted = [("photo", url) for url, _ in widget.photos] + [("video", url) for url, _ in widget.videos]
    wanted += [("poster", url) for url in widget.posters]
    out: list[tuple[str, str]] = []
    for kind, url in wanted:
        if url and url not in {u for _, u in out}:
            out.append((kind, url))
    return out


async def capture(item_id: str, url: str, warc: CaptureWarc, settings: Settings, browser: Any) -> CaptureResult:
    """Capture one public post, ``item_id`` being ``<channel>/<id>`` (the key's id: the channel in lowercase)."""
    channel, _, post = item_id.partition("/")
    cap = settings["capture"]
    deadline = time.monotonic() + cap["timeout_seconds"]
    widget_url = WIDGET_URL.format(channel=channel, post=post)
    preview_url = PREVIEW_URL.format(channel=channel, post=post)
    problems: list[str] = []
    media_records: list[dict[str, Any]] = []
    async with network.httpx_client(settings) as client:
        hops, problem = await fetch_chain(client, widget_url, warc, settings, limit=cap["max_resource_bytes"],
                                          deadline=deadline)
        answer = hops[-1]
        if problem:
            problems.append(problem)
        availability, widget, message = classify_widget(answer["status"], _text_of(answer))
        preview: dict[str, Any] | None = None
        try:
            p_hops, p_problem = await fetch_chain(client, preview_url, warc, settings,
                                                  limit=cap["max_resource_bytes"], deadline=deadline)
            preview = {"url": p_hops[-1]["url"], "status": p_hops[-1]["status"],
                       "redirects": [[h["status"], h["url"]] for h in p_hops[:-1]]}
            if p_problem:
                problems.append(f"preview: {p_problem}")
            if availability == "not-found" and channel_absent(p_hops):
                availability = "channel-not-found"
                message = (f"Telegram's widget says: Post not found; and t.me has no channel @{channel} (its preview "
                           "leads to a page offering to contact that name): the channel is gone or went private")
        except CaptureFailed as exc:
            problems.append(f"preview {preview_url}: {exc.message}")
        verdict = None
        if availability == "available" and widget is not None:
            got = answer_id(widget, post)
            verdict = platforms.judge_own(platforms.BY_NAME[PATH], item_id,
                                          f"{(widget.username or '').lower()}/{got}" if got else None, "widget answer")
        info: dict[str, Any] = {"platform": "telegram", "id": item_id, "availability": availability}
        extras: dict[str, Any] = {"message": message, "widget_url": widget_url, "preview": preview,
                                  "error": widget.error if widget else None}
        if verdict is not None and not verdict.ok:
            # Another post's widget: kept as received, but neither described nor its media fetched as this post's.
            info["availability"] = "unknown-answer"
            extras.update(answer_post=widget.post if widget else None, message=verdict.message)
        elif availability == "available" and widget is not None:
            info.update(describe(widget, item_id))
            extras.update(views=widget.views, views_estimate=views_count(widget.views), album=widget.album,
                          grouped=widget.grouped, signature=widget.signature, channel_url=widget.channel_url,
                          links=widget.links)
            for kind, media_url in _media_urls(widget):
                record, m_problem = await fetch_media(client, kind, media_url, warc, settings, deadline=deadline)
                media_records.extend([record] if record else [])
                problems.extend([m_problem] if m_problem else [])
    extras["media"] = media_records

    embed = None
    if browser is not None:
        try:
            embed = await browser.capture(widget_url, warc)
        except CaptureFailed as exc:
            problems.append(f"widget {widget_url}: {exc.message}")

    status, failure_class, failure_message = platforms.answer_outcome(verdict, availability, UNAVAILABLE, message,
                                                                      problems, embed, "widget")
    title = f"Telegram post {item_id} ({info['availability']})"
    text = message
    if failure_class == platforms.MISMATCH:
        title, text = f"Telegram post {item_id} (the answer was for {widget.post if widget else '?'})", None
    elif availability == "available":
        title = f"{info['author_name'] or info['author']} (@{info['author']}): {(info['text'] or '')[:100]}"
        text = "\n".join(p for p in (info["author_name"], info["text"]) if p)
    details = {
        "post": info,
        "telegram": extras,
        "platform": verdict.as_dict() if verdict is not None else None,
        "problems": problems,
        **answer_provenance(answer, embed, settings),
    }
    final_url = info.get("url") or f"https://t.me/{item_id}"
    outlinks = [{"url": link, "text": "post text"} for link in extras.get("links") or [] if link]
    return CaptureResult(status=status, final_url=final_url, main_record_id=answer["record_id"],
                         http_status=answer["status"], content_type=header_value(answer["headers"], "content-type"),
                         failure_class=failure_class, failure_message=failure_message, title=title, text=text,
                         outlinks=outlinks, details=details)


async def check(item_id: str, settings: Settings) -> Any:
    """Liveness: the widget answer alone (available, or which of Telegram's words)."""
    from archiver.capture.liveness import CheckResult, _get  # the liveness module's one bounded GET

    channel, _, post = item_id.partition("/")
    url = WIDGET_URL.format(channel=channel, post=post)
    async with network.httpx_client(settings) as client:
        response, body = await _get(client, url, settings)
    content_type = response.headers.get("content-type")
    html = body.decode(charset_of(content_type, body), errors="replace") if body else ""
    availability, widget, message = classify_widget(response.status_code, html)
    if availability == "available" and widget is not None:
        got = answer_id(widget, post)
        verdict = platforms.judge_own(platforms.BY_NAME[PATH], item_id,
                                      f"{(widget.username or '').lower()}/{got}" if got else None, "widget answer")
        if not verdict.ok:
            return CheckResult(PATH, "failed", platforms.MISMATCH, response.status_code, url, [], None,
                               verdict.message)
        return CheckResult(PATH, "ok", None, response.status_code, url, [], describe(widget, item_id)["fingerprint"],
                           message)
    cls = availability if availability in UNAVAILABLE else "unknown-answer"
    return CheckResult(PATH, "failed", cls, response.status_code, url, [], None, message)
