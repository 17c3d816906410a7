"""Referenced evidence inside captured HTML: embedded tweets, widget iframes, links to tweets, Periscope,
X broadcasts and events, YouTube/Vimeo/TikTok/Instagram/Telegram/Facebook embeds, Mastodon embeds (iframe or
blockquote.mastodon-embed) and links to statuses, Bluesky embeds (``blockquote.bluesky-embed``'s at:// URI,
embed.bsky.app iframes) and links, and t.co short links.

It reads both the HTML as the server sent it and the DOM as the browser rendered it (scripts insert embeds;
CMSs store embed markup HTML-escaped inside JSON or attributes). Each find says where it was found, because
"this tweet was embedded in that article" is itself provenance.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import time
from typing import Any

from archiver import urls
from archiver.config import Settings
from archiver.errors import BadURL, CaptureFailed
from archiver.store.warc import CaptureWarc
from archiver.capture import network
from archiver.capture.base import CaptureResult, header_value
from archiver.capture.http import fetch_chain

EVIDENCE_KINDS = ("tweet", "video", "post")


@dataclass(frozen=True)
class Reference:
    url: str
    found_in: str     # e.g. "blockquote.twitter-tweet", "iframe[src]", "a[href]", "data-tweet-id"
    source: str       # "html" (as received) or "dom" (as rendered) or "tweet.entities"


class _Scanner(HTMLParser):
    def __init__(self, base: str, source: str):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.source = source
        self.found: list[Reference] = []
        self._blockquote: list[str] = []   # class context of open blockquotes

    def _add(self, raw: str | None, where: str) -> None:
        if not raw:
            return
        raw = raw.strip()
        if raw.startswith("//"):
            raw = "https:" + raw
        url = urljoin(self.base, raw)
        if url.startswith(("http://", "https://")):
            self.found.append(Reference(url, where, self.source))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "blockquote":
            kind = next((c for c in classes if c in ("twitter-tweet", "twitter-video", "instagram-media",
                                                     "tiktok-embed", "mastodon-embed", "bluesky-embed")), "")
            self._blockquote.append(kind)
            if kind == "mastodon-embed":  # Mastodon 4.3's embed code: embed.js turns it into an iframe of this URL
                self._add(a.get("data-embed-url"), "blockquote.mastodon-embed")
            elif kind == "instagram-media":
                self._add(a.get("data-instgrm-permalink"), "blockquote.instagram-media")
            elif kind == "tiktok-embed":
                self._add(a.get("cite"), "blockquote.tiktok-embed")
        elif tag == "a":
            context = next((c for c in reversed(self._blockquote) if c), "")
            self._add(a.get("href"), f"blockquote.{context} a[href]" if context else "a[href]")
        elif tag in ("iframe", "embed"):
            src = a.get("src") or a.get("data-src")
            self._add(src, "iframe.mastodon-embed" if "mastodon-embed" in classes else f"{tag}[src]")
            if src:
                self._iframe_inner(src)
        elif tag == "video":
            self._add(a.get("src"), "video[src]")
        if a.get("data-tweet-id", "").isdigit():
            self._add(f"https://twitter.com/i/web/status/{a['data-tweet-id']}", "data-tweet-id")
        if tag == "blockquote" and "bluesky-embed" in classes:
            uri = a.get("data-bluesky-uri", "").strip()
            if uri.lower().startswith("at://"):  # an at:// URI is no http URL: kept as found, urls.parse reads it
                self.found.append(Reference(uri, "blockquote.bluesky-embed[data-bluesky-uri]", self.source))
        if a.get("data-telegram-post"):
            self._add(f"https://t.me/{a['data-telegram-post']}", "script[data-telegram-post]")

    def _iframe_inner(self, src: str) -> None:
        """Embeds that name their target in a query parameter (Twitter widget, Facebook plugins)."""
        parts = urlsplit(urljoin(self.base, src))
        query = parse_qs(parts.query)
        host = (parts.hostname or "").lower()
        if host.endswith("twitter.com") and "embed" in parts.path and query.get("id", [""])[0].isdigit():
            self._add(f"https://twitter.com/i/web/status/{query['id'][0]}", "iframe.twitter-widget")
        if host.endswith("facebook.com") and "/plugins/" in parts.path and query.get("href"):
            self._add(query["href"][0], "iframe.facebook-plugin")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote" and self._blockquote:
            self._blockquote.pop()


_ESCAPED_EMBED = re.compile(r"&lt;blockquote.{0,20000}?&lt;/blockquote&gt;", re.I | re.S)


def scan_html(text: str, base: str, source: str) -> list[Reference]:
    scanner = _Scanner(base, source)
    try:
        scanner.feed(text)
        scanner.close()
    except Exception:  # hostile markup must not stop discovery of what was found so far
        pass
    found = list(scanner.found)
    # Embed markup stored HTML-escaped (in JSON, in attributes, in <textarea>): unescape and scan again.
    for match in _ESCAPED_EMBED.finditer(text):
        inner = _Scanner(base, source)
        try:
            inner.feed(html.unescape(match.group(0)))
            inner.close()
        except Exception:
            pass
        found.extend(Reference(r.url, "escaped " + r.found_in, r.source) for r in inner.found)
    return found


def evidence(references: list[Reference]) -> list[tuple[urls.ParsedURL, Reference]]:
    """The references worth capturing as evidence of their own (tweets, videos, t.co), one per item."""
    out: list[tuple[urls.ParsedURL, Reference]] = []
    seen: set[str] = set()
    for ref in references:
        try:
            parsed = urls.parse(ref.url)
        except BadURL:
            continue
        cited = ref.source == "tweet.entities"  # what a tweet links to is part of what it says
        if not cited and (parsed.key is None or (parsed.kind not in EVIDENCE_KINDS
                                                 and not parsed.key.startswith(("tco:", "telegram:")))):
            continue
        if parsed.dedup_key in seen:
            continue
        seen.add(parsed.dedup_key)
        out.append((parsed, ref))
    return out


async def discover(result: CaptureResult, warc: CaptureWarc, settings: Settings) -> list[dict[str, Any]]:
    """Everything ``result`` references that is evidence of its own, t.co links resolved (and their
    redirects recorded into ``warc``). Each item: url, key, kind, found_in, source, via."""
    base = result.final_url or ""
    refs: list[Reference] = []
    for source, text in result.documents:
        refs.extend(scan_html(text, base, source))
    tweet = result.details.get("tweet") or {}
    refs.extend(Reference(u, "entities.urls", "tweet.entities") for u in tweet.get("urls") or [])
    found: list[dict[str, Any]] = []
    short: list[tuple[urls.ParsedURL, Reference]] = []
    handles: list[tuple[urls.ParsedURL, Reference]] = []
    for parsed, ref in evidence(refs):
        if (parsed.key or "").startswith("tco:"):
            short.append((parsed, ref))
        elif parsed.platform == "bluesky" and not (parsed.item_id or "").startswith("did:"):
            handles.append((parsed, ref))
        else:
            found.append(_item(parsed, ref))
    if handles:
        from archiver.capture.bluesky import resolve_recorded
        found.extend(_item(parsed, ref) for parsed, ref in await resolve_recorded(handles, warc, settings))
    if short:
        deadline = time.monotonic() + settings["capture"]["timeout_seconds"]
        async with network.httpx_client(settings) as client:
            for parsed, ref in short:
                item = _item(parsed, ref)
                try:
                    hops, _ = await fetch_chain(client, parsed.url, warc, settings, limit=1 << 20,
                                                deadline=deadline, follow=False)
                    location = header_value(hops[0]["headers"], "location")
                    if location:
                        target = urls.parse(urljoin(parsed.url, location))
                        item = _item(target, ref, via=parsed.url)
                except (CaptureFailed, BadURL) as exc:
                    item["note"] = f"short link not resolved: {exc}"
                found.append(item)
    unique: dict[str, dict[str, Any]] = {}
    for item in found:
        unique.setdefault(item["key"], item)
    return list(unique.values())


def _item(parsed: urls.ParsedURL, ref: Reference, via: str | None = None) -> dict[str, Any]:
    return {"url": parsed.url, "key": parsed.dedup_key, "kind": parsed.kind, "found_in": ref.found_in,
            "source": ref.source, "via": via}
