"""Content fingerprints: has what a URL shows changed since we captured it?

A fingerprint is the SHA-256 of a normalised view of the content, computed the same way from a capture and
from a later liveness check, so that equal fingerprints mean "nothing an investigator cares about changed".

- Pages: the visible text of the HTML as the server sent it, plus the media it shows (img/video/audio/source
  URLs without their query strings). Left out, so that they do not count as changes: scripts, styles, iframes
  (ads and widgets live there), elements whose class or id says ad/sponsor/promo/cookie banner, <time>
  elements, clock times, dates and relative ages ("5 minutes ago"). Other numbers are kept: a casualty count
  going from 12 to 15 IS a change.
- Tweets: the text and the media of the syndication answer (not the like or reply counts).
- Bluesky posts: the record's text, its blobs' CIDs and the URI it quotes (not counts, labels or CDN URLs).
- Telegram posts: the widget's text and its media by kind and album item (not views, not the signed CDN URLs).
- Videos: the extractor's id, title, description and duration (not view counts).
- Posts of other platforms: their words and media as the platform's module reads them (post_fingerprint).

Checks fetch the HTML without running scripts, so a page whose text is drawn by JavaScript changes here only
when its HTML does; scheduled re-captures (in the browser) are what catch the rest.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from html.parser import HTMLParser
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

VERSION = "fp1"  # stored with each fingerprint; a new normalisation gets a new version, never a silent mismatch

# Elements whose content is never part of what a page "shows" for our purposes.
_SKIP_TAGS = {"script", "style", "noscript", "template", "iframe", "svg", "head", "time", "canvas", "object",
              "embed"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
         "wbr"}
_AD_WORDS = re.compile(r"(?:^|[\s_-])(ad|ads|advert\w*|adslot|ad-slot|dfp|gpt|sponsor\w*|promo\w*|banner|"
                       r"cookie\w*|consent|gdpr|newsletter|outbrain|taboola|paywall)(?:$|[\s_-])", re.I)
_MEDIA_ATTRS = {"img": ("src",), "video": ("src", "poster"), "audio": ("src",), "source": ("src",)}

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
           r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAYS = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
# Order matters: whole date-times first, then their parts.
_VOLATILE = [re.compile(p, re.I) for p in (
    r"\b\d{4}-\d{2}-\d{2}[t ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?\b",   # ISO date-time
    r"\b\d{4}-\d{2}-\d{2}\b",                                                              # ISO date
    r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b",                                                  # 16/12/2016
    rf"\b(?:{_DAYS},?\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{4}}\b",           # 16 December 2016
    rf"\b(?:{_DAYS},?\s+)?{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",           # December 16, 2016
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\b",                                          # 16 December
    rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b",                                       # Dec 16
    r"\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?(?:\s*(?:utc|gmt|[a-z]{2,4}t))?\b",      # 14:59, 2:59 pm GMT
    r"\b\d+\s*(?:s|sec|secs|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|mo|months?|y|yrs?|years?)"
    r"\s+ago\b",                                                                           # 5 minutes ago
    r"\b(?:updated|published|posted|last modified)\b[:\s]*",                              # their labels
    rf"\b{_DAYS}\b",
)]


class _Visible(HTMLParser):
    """Visible text and shown media of an HTML document, minus the parts that change by themselves."""

    def __init__(self, base_url: str):
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.text: list[str] = []
        self.media: set[str] = set()
        self._stack: list[tuple[str, bool]] = []   # (tag, hidden) of open elements
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "base" and a.get("href"):
            self.base_url = urljoin(self.base_url, a["href"])
        hidden = (tag in _SKIP_TAGS or "hidden" in a or a.get("aria-hidden") == "true"
                  or bool(_AD_WORDS.search(a.get("class", ""))) or bool(_AD_WORDS.search(a.get("id", ""))))
        if not self._hidden and tag in _MEDIA_ATTRS:
            for name in _MEDIA_ATTRS[tag]:
                if a.get(name) and not a[name].startswith("data:"):
                    parts = urlsplit(urljoin(self.base_url, a[name].strip()))
                    self.media.add(f"{parts.netloc.lower()}{parts.path}")
        if tag in _VOID:
            return
        self._stack.append((tag, hidden))
        self._hidden += hidden
        if tag in ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "article"):
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open tag (HTML in the wild leaves tags unclosed).
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for _, hidden in self._stack[i:]:
                    self._hidden -= hidden
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def normalise_text(text: str) -> str:
    """Lower-case, Unicode-normalised text without dates, times and ages, one line per non-empty line."""
    text = unicodedata.normalize("NFKC", text).lower()
    for pattern in _VOLATILE:
        text = pattern.sub(" ", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line.strip(" .,:;|-–—·"))


def _plain(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _digest(kind: str, text: str, media: Iterable[str]) -> str:
    body = f"{kind}\n{text}\n--media--\n" + "\n".join(sorted(set(media)))
    return f"{VERSION}:{kind}:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def page_view(html: str, base_url: str) -> tuple[str, list[str]]:
    """(normalised visible text, sorted media) — what a page fingerprint covers, for showing a difference."""
    parser = _Visible(base_url)
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup the stdlib parser gives up on: use what it read
        pass
    return normalise_text("".join(parser.text)), sorted(parser.media)


def page_fingerprint(html: str, base_url: str) -> str:
    text, media = page_view(html, base_url)
    return _digest("page", text, media)


def tweet_fingerprint(data: dict[str, Any]) -> str:
    """From a syndication answer: the text and the media (photos, video variants' paths), nothing counted."""
    media = []
    for detail in data.get("mediaDetails") or []:
        if detail.get("media_url_https"):
            parts = urlsplit(detail["media_url_https"])
            media.append(f"{parts.netloc.lower()}{parts.path}")
    quoted = data.get("quoted_tweet") or {}
    # A tweet's own words are all content (a date in them is part of what it says): only spacing is normalised.
    text = _plain(data.get("text") or "") + ("\n--quoted--\n" + _plain(quoted.get("text") or "") if quoted else "")
    return _digest("tweet", text, media)


def post_fingerprint(platform: str, text: str, media: Iterable[str]) -> str:
    """For a platform post (Mastodon, Bluesky, Telegram...): its own words and its media (host and path of each file,
    no query), already read from the platform's answer; like a tweet's, the words are content (dates in them too)."""
    return _digest(platform, _plain(text), media)


def telegram_fingerprint(text: str | None, media: list[tuple[str, str | None]]) -> str:
    """From a Telegram post widget: the text and what media it shows, by kind and album item. Not the CDN's URLs,
    which Telegram signs per page view (a video's ?token=, the file names themselves), and not the view count."""
    return post_fingerprint("telegram", text or "", [f"{kind}:{item or '-'}:{n}" for n, (kind, item) in enumerate(media)])


def bluesky_fingerprint(post: dict[str, Any]) -> str:
    """From a Bluesky post view: the record's text, the blobs it cites (by CID: the bytes themselves) and what
    it quotes, nothing counted (likes, reposts) and nothing the AppView adds (CDN URLs, labels)."""
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
    media: list[str] = []
    for part in (embed, embed.get("media") if isinstance(embed.get("media"), dict) else {}):
        blobs = [i.get("image") for i in part.get("images") or [] if isinstance(i, dict)] + [part.get("video")]
        media += [f"blob:{b['ref']['$link']}" for b in blobs
                  if isinstance(b, dict) and isinstance(b.get("ref"), dict) and isinstance(b["ref"].get("$link"), str)]
    quoted = (embed.get("record") or {}) if isinstance(embed.get("record"), dict) else {}
    quoted = quoted.get("record") if isinstance(quoted.get("record"), dict) else quoted
    text = record.get("text") if isinstance(record.get("text"), str) else ""
    if isinstance(quoted.get("uri"), str):
        text += "\n--quoted--\n" + quoted["uri"]
    return post_fingerprint("bluesky", text, media)


def video_fingerprint(info: dict[str, Any]) -> str:
    """From yt-dlp's info: what the video is (id, title, description, duration to the second)."""
    duration = info.get("duration")
    # A live stream's duration grows while it runs; only an ended video's length is part of what it shows.
    if info.get("is_live"):
        duration = None
    text = "\n".join([f"{info.get('extractor_key') or info.get('extractor') or ''}:{info.get('id') or ''}",
                      _plain(info.get("title") or ""), _plain(info.get("description") or ""),
                      str(round(duration)) if isinstance(duration, (int, float)) else ""])
    return _digest("video", text, [])


def of_result(result: Any) -> str | None:
    """The fingerprint of what a capture recorded (None when it recorded no content to compare)."""
    if result.status not in ("ok", "partial"):
        return None
    details = result.details or {}
    tweet = details.get("tweet") or {}
    if tweet.get("fingerprint"):
        return tweet["fingerprint"]
    post = details.get("post") or {}
    if post.get("fingerprint"):
        return post["fingerprint"]
    video = details.get("video") or {}
    if video.get("id"):
        return video_fingerprint(video)
    html = next((text for source, text in result.documents if source == "html"), None)
    if html is not None:
        return page_fingerprint(html, result.final_url or "")
    return None
