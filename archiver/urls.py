"""URLs: validate what people paste, normalise it to a canonical form, classify its kind, and guard targets.

The canonical form decides whether two requests are "the same URL"; the URL as given is always kept beside
it, because it is part of the provenance. For the platforms we capture specially (tweets, broadcasts,
videos, Telegram posts) a *platform key* such as ``twitter:809711419431133184`` names the item itself, so
every spelling of it -- x.com or twitter.com, a mirror, an embed, a share link -- is queued once.

Platform URLs are recognised by a small table of patterns, one or a few per platform, in the spirit of
yt-dlp's ``_VALID_URL``: each pairs the domains it serves with a regular expression over the path.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import posixpath
import re
import socket
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from archiver.errors import BadURL, CaptureFailed, ConfigError

# Query parameters that only say how a reader arrived; they never change what a page shows.
TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid", "rb_clickid",
    "s_cid", "ncid", "cmpid", "spm",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")

# Extensions whose targets are not HTML documents: fetched directly and recorded raw, no browser needed.
FILE_EXTENSIONS = {
    ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".bmp", ".tif", ".tiff", ".ico",
    ".json", ".xml", ".rss", ".atom", ".csv", ".txt", ".zip", ".gz", ".tgz", ".7z", ".rar",
    ".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".wav", ".flac",
    ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".epub",
}

DEFAULT_PORTS = {"http": 80, "https": 443}

# "post": a post of a platform captured by its own answer beyond X (Mastodon, Bluesky, Telegram...).
KINDS = ("page", "file", "tweet", "video", "post")

# Twitter's own onion service (yt-dlp's Twitter extractors list it beside twitter.com and x.com) serves the same
# paths and the same items; as for mirrors, the canonical URL stays on x.com.
TWITTER_ONION = "twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion"
TWITTER_DOMAINS = ("twitter.com", "x.com", TWITTER_ONION)
# Front-ends that show a tweet under the same /<user>/status/<id> path: fxtwitter-style embed fixers and
# nitter instances. People paste these instead of the original, and a mirror's link is still that tweet.
TWITTER_MIRROR_DOMAINS = frozenset({
    "fxtwitter.com", "fixupx.com", "vxtwitter.com", "fixvx.com", "twittpr.com", "twxtter.com",
    "nitter.net", "xcancel.com", "nitter.poast.org", "nitter.privacydev.net", "nitter.lacontrevoie.fr",
    "nitter.1d4.us", "nitter.kavin.rocks", "nitter.it", "nitter.cz", "nitter.nl", "nitter.unixfox.eu",
    "nitter.fdn.fr", "nitter.pussthecat.org", "nitter.moomoo.me", "nitter.tiekoetter.com", "nitter.d420.de",
    "nitter.woodland.cafe", "nitter.esmailelbob.xyz", "nitter.mint.lgbt", "nitter.space", "twitt.re",
})


@dataclass(frozen=True)
class ParsedURL:
    url: str                     # as given (whitespace trimmed)
    canonical_url: str           # normalised; for a platform item, that platform's own URL for it
    kind: str                    # "page" (browser), "file" (fetched directly), "tweet", "video" or "post"
    key: str | None              # platform key ("twitter:<id>"); None for a plain page or file
    platform: str | None = None  # "twitter", "youtube", ...: the part of ``key`` before the colon
    item_id: str | None = None   # the part of ``key`` after the colon
    # The host of ``url`` as given (lowercase): the job's host for per-host politeness (queue.job_host).
    host: str | None = field(default=None, compare=False)

    @property
    def dedup_key(self) -> str:
        """What makes two requests the same: the platform key when there is one, else the canonical URL."""
        return self.key if self.key is not None else self.canonical_url

    def as_dict(self) -> dict[str, str | None]:
        return {"url": self.url, "canonical_url": self.canonical_url, "kind": self.kind, "key": self.key}


def keyed_as(parsed: ParsedURL, key: str) -> ParsedURL:
    """``parsed`` under the key an item was stored with (a watch's, an item's): a key may have needed the network
    when it was made (a Bluesky handle resolved to its DID), so it is not computed again from the URL."""
    return parsed if parsed.dedup_key == key else replace(parsed, key=key)


@dataclass(frozen=True)
class PlatformMatch:
    """A URL recognised as one item on a platform."""
    platform: str
    kind: str
    item_id: str
    canonical_url: str

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.item_id}"


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def _ascii_host(host: str) -> str:
    """Lowercase host in its IDNA (punycode) form, as it goes on the wire.

    Hosts are compared in this form, so a Unicode spelling of a name (full-width letters, say) is the same
    host, and a look-alike with a Cyrillic letter is visibly a different one.
    """
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:  # not encodable: parse() refuses such hosts; normalise() alone keeps them as they are
        return host


def normalise(url: str) -> str:
    """Canonical form: lowercase scheme and IDNA host, no default port, no fragment, no tracking parameters.

    A ``#!`` fragment is kept: with "hashbang" routing (old Twitter, ``#!/user/status/1``) it carries the
    path of what the page shows, so dropping it would make different items one URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "at":  # an AT URI's authority is a DID or a handle, not a host and port: nothing to normalise
        return url
    host = _ascii_host(parts.hostname or "")
    if ":" in host:  # IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host
    port = parts.port
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    if "@" in parts.netloc and (parts.username or parts.password):
        userinfo = quote(parts.username or "", safe="%!$&'()*+,;=")
        if parts.password:
            userinfo += ":" + quote(parts.password, safe="%!$&'()*+,;=")
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not _is_tracking(k)]
        # Rebuild the query only when something was dropped, so that unusual but meaningful encodings survive.
        if len(kept) != len(pairs):
            query = urlencode(kept, doseq=True)
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    return urlunsplit((scheme, netloc, path, query, fragment))


# --- platform patterns -------------------------------------------------------------------------------------

# A builder turns a pattern's named groups and the URL's query into (item id, canonical URL), or None when
# the match turns out not to name an item after all (a query id of the wrong shape, a zero id).
_Builder = Callable[[dict[str, str], dict[str, str]], tuple[str, str] | None]


@dataclass(frozen=True)
class _Rule:
    platform: str
    kind: str
    domains: frozenset[str]  # a host matches when it is one of these or a true subdomain of one
    path: re.Pattern[str]    # must match the whole path
    build: _Builder


def _number(digits: str | None) -> str | None:
    """A numeric id without leading zeros (they spell the same id); None for a missing or zero id."""
    if not digits or not digits.isdigit() or len(digits) > 20 or int(digits) == 0:
        return None
    return str(int(digits))


def _tweet(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    tweet_id = _number(groups.get("id") or query.get("id"))
    if tweet_id is None:
        return None
    user = groups.get("user")
    if user and user.lower() != "i":  # /i/... is Twitter's own namespace, not a user called "i"
        return tweet_id, f"https://x.com/{user}/status/{tweet_id}"
    return tweet_id, f"https://x.com/i/web/status/{tweet_id}"


def _broadcast(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    return groups["id"], f"https://x.com/i/broadcasts/{groups['id']}"


def _x_space(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    return groups["id"], f"https://x.com/i/spaces/{groups['id']}"


def _x_event(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    # An event resolves, when captured, to one broadcast or to a list of tweets, and only X's answer says
    # which: nothing in the URL leads to the broadcast id, so the event is keyed as an item of its own.
    event_id = _number(groups["id"])
    return None if event_id is None else (event_id, f"https://x.com/i/events/{event_id}")


# Early Periscope tokens are 44 characters and more; 24 leaves room for a short user id and still keeps
# every broadcast id (13 characters) out.
_PSCP_TOKEN_MIN = 24
# Inside an early Periscope token: a few binary bytes, "<user id>|<broadcast id>" in ASCII, then a binary
# signature. Broadcast ids of that time were numeric; later ones have the 13-character shape. The signature
# directly follows the id, so a numeric id is read as the run of digits there (in the tokens we know of the
# signature begins with a letter or a byte outside ASCII).
_PSCP_TOKEN_BODY = re.compile(
    rb".{0,8}?\d{1,20}\|(?:(?P<id>(?=[0-9]*[A-Za-z])[A-Za-z0-9]{13})(?![A-Za-z0-9])|(?P<numeric>\d{1,20}))", re.S)


def periscope_token_broadcast(token: str) -> str | None:
    """The broadcast id inside an early Periscope ``/w/<token>`` link, or None when ``token`` is not such a
    token (a broadcast id itself, or a token of another shape)."""
    if len(token) < _PSCP_TOKEN_MIN:  # 13-character ids are ids, even the ones that happen to be base64
        return None
    data = token.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
    m = _PSCP_TOKEN_BODY.match(raw)
    if m is None:
        return None
    if m.group("id"):
        return m.group("id").decode("ascii")
    return _number(m.group("numeric").decode("ascii"))


def _periscope(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    given = groups.get("wid") or groups["uid"]
    # A Periscope broadcast id is the X broadcast id, so a token link keys as the broadcast it carries; a
    # token that does not decode to that shape is all there is to name the item by.
    broadcast_id = periscope_token_broadcast(given) or given
    return broadcast_id, f"https://www.pscp.tv/w/{broadcast_id}"


_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")


def _youtube(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    video_id = groups.get("id") or query.get("v", "")
    if not _YOUTUBE_ID.fullmatch(video_id):
        return None
    return video_id, f"https://www.youtube.com/watch?v={video_id}"


def _telegram(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    post = _number(groups["post"])
    if post is None:
        return None
    channel = groups["channel"].lower()  # Telegram usernames are case-insensitive
    return f"{channel}/{post}", f"https://t.me/{channel}/{post}"


# AT Protocol identifiers (atproto.com/specs): a handle is a domain name (case-insensitive), a DID is
# ``did:<method>:<id>`` (case-sensitive), a record key is 1-512 characters of [A-Za-z0-9._:~-] but not "." or "..".
_BSKY_HANDLE = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_BSKY_DID = r"did:[a-z]+:[A-Za-z0-9._:%-]{1,2000}"
# What a URL may spell an actor with (a DID's colons may come percent-encoded); bluesky_post_id says which it is.
_BSKY_ACTOR = r"[A-Za-z0-9._:%-]{1,2048}"
_BSKY_RKEY = r"(?!\.{1,2}(?:/|$))[A-Za-z0-9._:~-]{1,512}"
BLUESKY_APP = "https://bsky.app"


def bluesky_post_id(actor: str, rkey: str) -> tuple[str, str] | None:
    """(item id, canonical URL) of the post ``rkey`` of ``actor`` (a DID, or a handle: lower-cased, as handles are
    case-insensitive). The id is ``<did>/<rkey>`` when the spelling holds the DID; a handle spelling keys as
    ``<handle>/<rkey>`` until it is resolved (pipeline/submit.py resolves it when the URL is added)."""
    actor = unquote(actor)
    if re.fullmatch(_BSKY_DID, actor):
        actor = actor if not actor.startswith("did:web:") else actor.lower()  # did:web is a host name
    elif re.fullmatch(_BSKY_HANDLE, actor):
        actor = actor.lower()
    else:
        return None
    return f"{actor}/{rkey}", f"{BLUESKY_APP}/profile/{actor}/post/{rkey}"


def _bluesky(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    return bluesky_post_id(groups["actor"], groups["rkey"])


_AT_POST = re.compile(r"at://(?P<actor>" + _BSKY_ACTOR + r")/app\.bsky\.feed\.post/(?P<rkey>"
                      + _BSKY_RKEY + r")/?")


def _at_uri(url: str) -> ParsedURL:
    """An ``at://`` URI names a record in its author's repository, not a host: only Bluesky posts are taken."""
    m = _AT_POST.fullmatch("at://" + url[5:])  # the scheme is case-insensitive; the URI as given is kept
    built = bluesky_post_id(m.group("actor"), m.group("rkey")) if m else None
    if built is None:
        raise BadURL(f"{url!r}: an at:// URI is captured only when it names a Bluesky post "
                     "(at://<handle or did>/app.bsky.feed.post/<rkey>)")
    item_id, canonical = built
    # The host the capture asks first (the public AppView): the job's host for per-host politeness.
    return ParsedURL(url=url, canonical_url=canonical, kind="post", key=f"bluesky:{item_id}", platform="bluesky",
                     item_id=item_id, host="public.api.bsky.app")


def _instagram(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    return groups["id"], f"https://www.instagram.com/p/{groups['id']}/"


_VIMEO_HASH = re.compile(r"[0-9a-f]{10}")  # Vimeo's unlisted hashes, as its player and yt-dlp take them


def _vimeo(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    video_id = _number(groups["id"])
    if video_id is None:
        return None
    # An unlisted video's hash (in the path, or ?h= on the player) is not part of the key -- the id names the
    # video -- but it stays in the canonical URL: without it Vimeo shows the video to nobody, yt-dlp included.
    unlisted = groups.get("hash") or query.get("h", "")
    if _VIMEO_HASH.fullmatch(unlisted):
        return video_id, f"https://vimeo.com/{video_id}/{unlisted}"
    return video_id, f"https://vimeo.com/{video_id}"


def _tiktok(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    video_id = _number(groups["id"])
    if video_id is None:
        return None
    if groups.get("user"):
        return video_id, f"https://www.tiktok.com/@{groups['user']}/video/{video_id}"
    return video_id, f"https://www.tiktok.com/embed/v2/{video_id}"


def _facebook(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str] | None:
    video_id = _number(groups.get("id") or query.get("v"))
    return None if video_id is None else (video_id, f"https://www.facebook.com/watch/?v={video_id}")


def _fb_watch(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    # fb.watch codes are a separate namespace from numeric video ids; only a redirect links the two.
    return groups["code"], f"https://fb.watch/{groups['code']}/"


def _tco(groups: dict[str, str], query: dict[str, str]) -> tuple[str, str]:
    return groups["code"], f"https://t.co/{groups['code']}"


def _rule(platform: str, kind: str, domains: frozenset[str] | tuple[str, ...], path: str, build: _Builder,
          flags: int = 0) -> _Rule:
    return _Rule(platform, kind, frozenset(domains), re.compile(path, flags), build)


_TWITTER_USER = r"(?P<user>[A-Za-z0-9_]{1,20})"
# X broadcast ids, which are also Periscope's: 13 base-62 characters such as 1OdKrBXvMbLKX.
_BROADCAST_ID = r"[A-Za-z0-9]{13}"
# Early Periscope links carried a base64url token (with or without its "=" padding) instead of an id.
_PSCP_TOKEN = r"[A-Za-z0-9_-]{%d,}={0,2}" % _PSCP_TOKEN_MIN
# In /<user>/<id> the id must hold a capital or a digit, so that all-lowercase page names of 13 letters
# (/<user>/notifications) are not ids. Numeric ids, of broadcasts from Periscope's first year, are only ever
# spelt /w/<id>: that is the canonical URL of a token link, and no other link had them.
_PSCP_ID = r"(?:" + _BROADCAST_ID + "|" + _PSCP_TOKEN + ")"

RULES: tuple[_Rule, ...] = (
    # Twitter/X statuses, on the site itself and on mirrors. The keywords are matched case-insensitively
    # because Twitter routes them so; ids are digits, so case cannot matter there.
    _rule("twitter", "tweet", TWITTER_DOMAINS + tuple(TWITTER_MIRROR_DOMAINS),
          r"/(?:i/web/status|i/status|statuses|" + _TWITTER_USER + r"/status(?:es)?)/(?P<id>\d{1,20})"
          r"(?:/(?:photo|video)/\d{1,2}|/analytics)?/?", _tweet, re.IGNORECASE),
    # Embedded tweets and the JSON the embeds load: the id is in the query.
    _rule("twitter", "tweet", ("platform.twitter.com",), r"/embed/(?:Tweet|index)\.html", _tweet, re.IGNORECASE),
    _rule("twitter", "tweet", ("syndication.twitter.com", "syndication.twimg.com"), r"/(?:[^/]+/)*tweet[^/]*",
          _tweet, re.IGNORECASE),
    _rule("broadcast", "video", TWITTER_DOMAINS, r"/i/broadcasts/(?P<id>" + _BROADCAST_ID + r")/?", _broadcast),
    _rule("x-event", "video", TWITTER_DOMAINS, r"/i/events/(?P<id>\d{1,20})/?", _x_event),
    # X Spaces: ids of 13 base-62 characters (yt-dlp's twitter:spaces takes 13 and more); /peek is the preview
    # X links to from a tweet's card, the same Space.
    _rule("x-space", "video", TWITTER_DOMAINS, r"/i/spaces/(?P<id>[0-9a-zA-Z]{13,20})(?:/peek)?/?", _x_space),
    _rule("periscope", "video", ("periscope.tv", "pscp.tv"),
          r"/(?:w/(?P<wid>" + _PSCP_ID + r"|\d{1,20})|[A-Za-z0-9_]{1,20}/(?P<uid>(?=[A-Za-z0-9_=-]*[A-Z0-9])" +
          _PSCP_ID + r"))/?", _periscope),
    # YouTube: "videoseries" and "live_stream" are 11 characters long but name a playlist and a channel's
    # live slot, not a video. /v/<id>&hl=en is how old Flash embeds spelt their options.
    _rule("youtube", "video", ("youtube.com", "youtube-nocookie.com"),
          r"/(?:embed|shorts|live|v|e)/(?P<id>(?!videoseries|live_stream)[A-Za-z0-9_-]{11})(?:&[^/]*)?/?",
          _youtube),
    _rule("youtube", "video", ("youtube.com",), r"/watch/?", _youtube),
    _rule("youtube", "video", ("youtu.be",), r"/(?P<id>[A-Za-z0-9_-]{11})/?", _youtube),
    # Telegram public posts; /s/ is the web preview of the same post (?embed=1 its widget, ?single one album item).
    _rule("telegram", "post", ("t.me", "telegram.me", "telegram.dog"),
          r"/(?:s/)?(?P<channel>[A-Za-z][A-Za-z0-9_]{2,31})/(?P<post>\d{1,12})/?", _telegram),
    # Bluesky posts: bsky.app (main.bsky.dev is its staging copy) by handle or DID, and the embed's iframe.
    _rule("bluesky", "post", ("bsky.app", "main.bsky.dev"),
          r"/profile/(?P<actor>" + _BSKY_ACTOR + r")/post/(?P<rkey>" + _BSKY_RKEY + r")/?",
          _bluesky),
    _rule("bluesky", "post", ("embed.bsky.app",),
          r"/embed/(?P<actor>" + _BSKY_DID + r")/app\.bsky\.feed\.post/(?P<rkey>" + _BSKY_RKEY + r")/?", _bluesky),
    _rule("instagram", "video", ("instagram.com", "instagr.am"),
          r"(?:/[A-Za-z0-9_.]{1,30})?/(?:p|tv|reels?)/(?P<id>[A-Za-z0-9_-]{5,64})(?:/embed(?:/captioned)?)?/?",
          _instagram),
    # Vimeo: an unlisted video's link carries a hash after the id; the id alone still names the video. A video
    # seen in a showcase (once called an album) is still that video; the showcase alone is a list, no item.
    _rule("vimeo", "video", ("vimeo.com",),
          r"/(?:video/|channels/[^/]+/|groups/[^/]+/videos/|(?:album|showcase)/\d{1,20}/video/)?(?P<id>\d{1,20})"
          r"(?:/(?P<hash>[0-9a-f]{6,}))?/?", _vimeo),
    # TikTok: the user part is a name, a numeric user id or a "MS4wLjABAAAA..." secure user id, or empty; it
    # does not change which video the id names. /share/video/ is how the app's share links spell it.
    _rule("tiktok", "video", ("tiktok.com", "tiktokv.com"),
          r"/(?:@(?P<user>[A-Za-z0-9_.-]{1,128})?|share)/video/(?P<id>\d{1,20})/?", _tiktok),
    _rule("tiktok", "video", ("tiktok.com",), r"/embed(?:/v2)?/(?P<id>\d{1,20})/?", _tiktok),
    # Facebook: /<page>/videos/<id>, the older /<page>/videos/<slug or vb.page>/<id>, and reels.
    _rule("facebook", "video", ("facebook.com", "fb.com"), r"/[^/]+/videos/(?:[^/]+/)?(?P<id>\d{1,20})/?",
          _facebook),
    _rule("facebook", "video", ("facebook.com", "fb.com"), r"/reel/(?P<id>\d{1,20})/?", _facebook),
    _rule("facebook", "video", ("facebook.com", "fb.com"), r"/(?:watch(?:/live)?/?|video\.php)", _facebook),
    _rule("facebook", "video", ("fb.watch",), r"/(?P<code>[A-Za-z0-9_-]{4,32})/?", _fb_watch),
    # t.co is a redirect; the code is what identifies it until the redirect is followed.
    _rule("tco", "page", ("t.co",), r"/(?P<code>[A-Za-z0-9]{1,32})/?", _tco),
)


# --- the fediverse: any host can be a Mastodon instance -------------------------------------------------------

# No list of domains can hold the fediverse, so a Mastodon status is recognised by its path alone, and only on a host
# that no rule above serves (x.com/@a/<id> is not a status of an instance called x.com). Why that is safe: the shapes
# are Mastodon's own -- /@<user>/<id>, /@<user>@<host>/<id> (a remote status as an instance shows it), /@<user>/<id>
# /embed, /web/statuses/<id>, /users/<user>/statuses/<id> (ActivityPub) -- and where a shape is common elsewhere
# (/@<user>/<something>: Medium, YouTube, TikTok, Substack...) the id must be a Mastodon snowflake: all digits, 17 or
# 18 of them, their top bits a millisecond time between 2016 and 2100. Medium's /@user/<slug-hex>, YouTube's
# /@handle/videos and TikTok's /@user/video/<id> never are. The two longer shapes take any id (statuses older than
# Mastodon 2.0 kept their small sequential ids). A wrong guess is never taken for evidence: the capture asks the host's
# /api/v1/statuses/<id>, and an answer that is not Mastodon's is classified so (capture/fediverse.py), never ok and
# never a deletion. Pleroma's /notice/<flake id>, Misskey's /notes/<id> and GoToSocial's ULIDs are not recognised yet.
_FEDI_USER = r"(?P<user>[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?)"
_FEDI_PATHS = (
    (re.compile(r"/(?:web/)?@" + _FEDI_USER + r"(?:@(?P<domain>[A-Za-z0-9.-]{1,253}))?"
                r"/(?P<id>0{0,3}[1-9]\d{16,17})(?:/embed)?/?"), True),
    (re.compile(r"/users/" + _FEDI_USER + r"/statuses/(?P<id>\d{1,19})(?:/activity)?/?"), False),
    (re.compile(r"/web/statuses/(?P<id>\d{1,19})/?"), False),
)
# Snowflake ids are (milliseconds since 1970 << 16) + a sequence: 2016-01-01 and 2100-01-01 as ids.
_FEDI_SNOWFLAKES = (95132477030400000, 268857822412800000)


def _fediverse(host: str, path: str) -> PlatformMatch | None:
    """A Mastodon status on ``host`` (key ``fedi:<host>/<id>``: a status id is the instance's own), or None."""
    if "/@" not in path and "/statuses/" not in path:
        return None
    if "." not in host or literal_addresses(host) is not None or ":" in host:
        return None  # an instance has a public name; an address or a one-label name is some other service
    for pattern, snowflake in _FEDI_PATHS:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        status_id = _number(m.group("id"))
        if status_id is None or (snowflake and not _FEDI_SNOWFLAKES[0] <= int(status_id) < _FEDI_SNOWFLAKES[1]):
            return None
        user = m.groupdict().get("user")
        domain = (m.groupdict().get("domain") or "").lower().rstrip(".")
        if user and _FEDI_SNOWFLAKES[0] <= int(status_id) < _FEDI_SNOWFLAKES[1]:
            canonical = f"https://{host}/@{user}" + (f"@{domain}" if domain else "") + f"/{status_id}"
        elif user:  # an old id: only this longer shape is recognised with it
            canonical = f"https://{host}/users/{user}/statuses/{status_id}"
        else:
            canonical = f"https://{host}/web/statuses/{status_id}"
        return PlatformMatch("fedi", "post", f"{host}/{status_id}", canonical)
    return None


def _rules_by_domain(rules: tuple[_Rule, ...]) -> dict[str, tuple[int, ...]]:
    by_domain: dict[str, list[int]] = {}
    for n, rule in enumerate(rules):
        for domain in rule.domains:
            by_domain.setdefault(domain, []).append(n)
    return {domain: tuple(ns) for domain, ns in by_domain.items()}


# Domain -> the rules (by position in RULES) that serve it. A host is on a domain when it is the domain or a true
# subdomain of it (``mobile.twitter.com`` is Twitter, ``evil-twitter.com`` and ``twitter.com.evil.net`` are not):
# when the domain is the host or one of its suffixes that start after a dot. Looking up those few suffixes finds
# the rules without trying every pattern on every URL (``add -f`` of 100 000 URLs).
_RULES_BY_DOMAIN = _rules_by_domain(RULES)


def _rules_for(host: str) -> list[_Rule]:
    """The rules whose domains the host is on, in RULES order (the first rule that matches wins)."""
    found: set[int] = set()
    start = 0
    while True:
        found.update(_RULES_BY_DOMAIN.get(host[start:], ()))
        dot = host.find(".", start)
        if dot < 0:
            break
        start = dot + 1
    return [RULES[n] for n in sorted(found)]


def match_platform(url: str) -> PlatformMatch | None:
    """Recognise a normalised URL as one item on a platform (a tweet, a video, a post), or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in DEFAULT_PORTS:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    # A platform answers on its default port; anything else is some other service on that name.
    if port is not None and port != DEFAULT_PORTS[parts.scheme.lower()]:
        return None
    host = _ascii_host(parts.hostname or "")
    path, query = parts.path or "/", parts.query
    if parts.fragment.startswith("!") and path == "/":
        # Hashbang link (twitter.com/#!/user/status/1): the fragment is the real path and query.
        path, _, query = parts.fragment[1:].partition("?")
        path = "/" + path.lstrip("/")
    rules = _rules_for(host)
    if not rules:
        return _fediverse(host, path)
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)  # the first of a repeated parameter is the one sites read
    for rule in rules:
        m = rule.path.fullmatch(path)
        if m is None:
            continue
        built = rule.build({k: v for k, v in m.groupdict().items() if v is not None}, params)
        if built is not None:
            item_id, canonical = built
            return PlatformMatch(rule.platform, rule.kind, item_id, canonical)
    return None


def _plain_kind(canonical_url: str) -> str:
    path = urlsplit(canonical_url).path
    ext = posixpath.splitext(path.lower())[1]
    return "file" if ext in FILE_EXTENSIONS else "page"


def classify(canonical_url: str) -> str:
    """The kind of capture a URL needs: the platform's kind ("tweet", "video", ...) for a recognised item,
    "file" for obvious non-HTML targets, otherwise "page"."""
    match = match_platform(canonical_url)
    return match.kind if match is not None else _plain_kind(canonical_url)


def parse(raw: str) -> ParsedURL:
    """Validate one URL as typed or pasted. Raises BadURL with a one-line reason that names it."""
    url = raw.strip()
    if not url:
        raise BadURL("empty URL")
    if _WHITESPACE.search(url):
        raise BadURL(f"{url!r}: URL contains whitespace (quote it, or percent-encode spaces as %20)")
    if url[:5].lower() == "at://":
        return _at_uri(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise BadURL(f"{url!r}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not parts.scheme or "." in parts.scheme:
            raise BadURL(f"{url!r}: not an absolute URL; did you mean https://{url}?")
        raise BadURL(f"{url!r}: only http://, https:// and at:// (Bluesky post) URLs can be captured "
                     f"(got {parts.scheme}:)")
    host = parts.hostname
    if not host:
        raise BadURL(f"{url!r}: URL has no host")
    if not _valid_host(host):
        raise BadURL(f"{url!r}: {host!r} is not a valid host name")
    canonical = normalise(url)
    # The canonical URL's host is _ascii_host of this one: a host no platform rule serves needs no matching.
    ascii_host = _ascii_host(host)
    maybe_fedi = "/@" in parts.path or "/statuses/" in parts.path  # urls._fediverse's cheap first test
    match = match_platform(canonical) if _rules_for(ascii_host) or maybe_fedi else None
    if match is not None:
        return ParsedURL(url=url, canonical_url=match.canonical_url, kind=match.kind, key=match.key,
                         platform=match.platform, item_id=match.item_id, host=host)
    return ParsedURL(url=url, canonical_url=canonical, kind=_plain_kind(canonical), key=None, host=host)


# str.isspace() and the regular expression's \s are the same Unicode test (Py_UNICODE_ISSPACE).
_WHITESPACE = re.compile(r"\s")
# An ASCII host name as _valid_host accepts it: labels of 1 to 63 letters, digits, "-" or "_", and at most one
# trailing dot (the IDNA codec refuses an empty label anywhere else, so "a.b.." is no host).
_ASCII_HOST = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


def parse_each(lines: Iterable[str]) -> Iterator[ParsedURL | BadURL]:
    """Each URL of a stream parsed, or the BadURL saying why it cannot be: a list of any length is read once,
    and every bad line in it can be named."""
    for line in lines:
        try:
            yield parse(line)
        except BadURL as exc:
            yield exc


def _valid_host(host: str) -> bool:
    # An IP literal has a colon (IPv6) or only digits and dots (IPv4): anything else is not worth asking
    # ipaddress about (its ValueError is most of the cost of checking a name).
    if ":" in host or host.replace(".", "").isdigit():
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            pass
    if host.isascii():
        # The same verdict as the IDNA encoding below, whose ASCII path changes nothing and only refuses empty
        # and over-long labels.
        return _ASCII_HOST.fullmatch(host) is not None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return all(0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels)


# --- private-network targets (design.md principle 6) --------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where IPv6 addresses carry an IPv4 one that the packets really go to: 6to4 and NAT64's well-known prefix
# (::ffff:0:0/96, IPv4-mapped, is handled by ``ipv4_mapped``).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# The names RFC 6761 reserves for this machine: Chromium answers them with loopback without asking DNS.
LOOPBACK_ADDRESSES = ["127.0.0.1", "::1"]

HOW_TO_ALLOW = ("set network.allow_private = true (env ARCHIVER_NETWORK_ALLOW_PRIVATE=true) to capture private-"
                "network targets, or list the range in network.allow_addresses")


class BlockedAddress(CaptureFailed):
    """A connection refused because its address is in a private network (class ``blocked``, never retried)."""

    def __init__(self, host: str, address: str, kind: str, *, what: str = "target"):
        self.host, self.address, self.kind = host, address, kind
        named = address if _same_address(host, address) else f"{host} ({address})"
        article = "an" if kind[0] in "aeiou" else "a"
        super().__init__("blocked", f"refused {what} {named}: {article} {kind} address; {HOW_TO_ALLOW}",
                         retryable=False)


def _same_address(host: str, address: str) -> bool:
    try:
        return parse_ip(host) == parse_ip(address)
    except ValueError:
        return False


def parse_ip(address: str) -> IPAddress:
    """An address as sockets, Chromium and URLs spell it: brackets and an IPv6 zone (``%eth0``) are dropped."""
    return ipaddress.ip_address(address.strip("[]").split("%", 1)[0])


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(address: str) -> str | None:
    """Why an address is not on the public internet ("loopback", "private", "link-local", "multicast",
    "unspecified", "reserved"), or None for a public one. An IPv6 address that carries an IPv4 one (mapped,
    6to4, NAT64) is judged by that IPv4 address, so ``::ffff:127.0.0.1`` is loopback."""
    ip = parse_ip(address)
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return address_kind(str(inner))  # the packets go to the IPv4 address
    if ip.is_unspecified:
        return "unspecified"   # 0.0.0.0 and :: reach this machine on Linux and in Chromium
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"    # 169.254.169.254 is where cloud machines keep their credentials
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"      # shared (100.64.0.0/10, carrier-grade NAT), documentation, benchmarking...
    return None


def parse_networks(ranges: list[str] | tuple[str, ...],
                   source: str = "network.allow_addresses") -> tuple[IPNetwork, ...]:
    """CIDR ranges from settings ("10.20.0.0/16", "127.0.0.1/32", a bare address means just that address)."""
    networks = []
    for item in ranges:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{source}: {item!r} is not an address range such as 10.20.0.0/16") from None
    return tuple(networks)


def refused_kind(address: str, allow_private: bool, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """The kind of private address this is, when the settings refuse it; None when it may be connected to."""
    if allow_private:
        return None
    ip = parse_ip(address)
    inner = _embedded_ipv4(ip)
    if any(ip in net or (inner is not None and inner in net) for net in allowed):
        return None
    return address_kind(address)


def literal_addresses(host: str) -> list[str] | None:
    """The addresses a host names without asking DNS: an IP literal, or loopback for ``localhost`` and
    ``*.localhost``; None for any other name."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return [str(parse_ip(host))]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return list(LOOPBACK_ADDRESSES)
    return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses a connection to ``host`` may go to, in the resolver's order. Raises socket.gaierror."""
    literal = literal_addresses(host)
    if literal is not None:
        return literal
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_addresses(host: str, addresses: list[str], allow_private: bool, allowed: tuple[IPNetwork, ...] = (),
                    what: str = "target") -> None:
    """Raise BlockedAddress for the first address the settings refuse. A name with one private address among
    public ones is refused too: which of them a client connects to is not ours to choose."""
    for address in addresses:
        kind = refused_kind(address, allow_private, allowed)
        if kind is not None:
            raise BlockedAddress(host, address, kind, what=what)


def check_target(url: str, allow_private: bool, via_proxy: bool = False,
                 allowed: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Resolve the URL's host; refuse private-network targets unless allowed.

    Returns the resolved addresses. Raises CaptureFailed("dns") when the name does not resolve and
    BlockedAddress (class "blocked") when any address is private, loopback, link-local, multicast or otherwise
    not public, unless ``allow_private`` or the ranges in ``allowed`` (network.allow_addresses) permit it.
    ``via_proxy``: names are resolved by the proxy, not here (a local lookup would leak the target around a
    Tor proxy, and fails on a machine whose only way out is the proxy); only address literals and localhost
    names are checked.

    This is the check before a capture starts; the fetchers check again on the address they actually connect
    to (capture/guard.py), after DNS and after every redirect.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() == "at":
        # An at:// URI names a record, not a host: the capture fetches it from the AppView and the author's
        # server, each fetch checked by the guard on the address it connects to.
        return []
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    if via_proxy:
        addresses = literal_addresses(host) or []
    else:
        try:
            addresses = resolve(host, port)
        except socket.gaierror as exc:
            raise CaptureFailed("dns", f"cannot resolve {host}: {exc.strerror}") from None
    check_addresses(host, addresses, allow_private, parse_networks(tuple(allowed)))
    return addresses
