"""Platform keys for URL spellings nobody here wrote: the URLs of yt-dlp's own tests, with the ids yt-dlp
expects for them (``url_spellings.json`` in the acceptance corpus).

The corpus lives beside the project, not in it (design.md: test against it, never copy it in). It is read at
test time from ``$ARCHIVER_CORPUS`` or ``<repo>/../shared/corpus``; where it is not there, these tests skip
and say where they looked.

Which entries are checked, and against what:

* **Keyed items.** An entry is checked for its key when its extractor yields one item of a platform we key
  (``ITEM_EXTRACTORS``), its URL is an http(s) URL (yt-dlp's tests also feed it bare ids, ``ytuser:`` and
  ``:ytfav`` shorthands, which are nobody's link), and the corpus says which item that is:

  - a tweet: ``status_id_in_url`` (yt-dlp's id there is the video's, not the tweet's); a tweet yt-dlp
    treats as a playlist of its videos is still one tweet;
  - an X event (``/i/events/<id>``): the event id, see ``expected_key``;
  - a Telegram post: yt-dlp's id is the post number (``<channel>-<post>`` for a post of several media,
    which is still one post); the channel, which our key also names, is read from the URL;
  - any other: yt-dlp's id, when it has one, and the entry is not a playlist. ``only_matching`` entries
    carry no id, so there is nothing to hold their key against.

  ``RESOLVES_ELSEWHERE`` lists the entries whose yt-dlp id is what the URL turns into at capture time
  rather than what it names.

* **Lists.** Playlists, channels, showcases/albums, users, tags, feeds (``LIST_EXTRACTORS``, and whatever
  else yt-dlp marks as a playlist) never get a single-item key. The one exception is a URL that names a
  video as well as a list (``watch?v=<id>&list=...``, ``/embed/<id>?list=...``): it keys as that video, as a
  watch link with a list does in tests/test_platform_urls.py.

Everything else (Spaces, cards, amplify videos, TikTok short links and lives, Douyin, Bluesky, Vimeo review,
on-demand and event pages, YouTube clips and mirrors) is not keyed by a rule here, and not checked.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from archiver import urls

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or REPO.parent / "shared" / "corpus")
SPELLINGS = CORPUS / "url_spellings.json"

pytestmark = pytest.mark.skipif(
    not SPELLINGS.is_file(),
    reason=f"no URL corpus: {SPELLINGS} does not exist (set ARCHIVER_CORPUS to the folder that holds "
           "url_spellings.json)")

# How many entries of url_spellings.json (yt-dlp @ 81ecd58b1394) each selection holds: a selection that
# comes out empty or short (a renamed field, another corpus) fails instead of passing on nothing.
KEYED_COUNT = 129
LIST_COUNT = 113

# Extractors (yt-dlp's IE_NAME) whose result is one item of a platform we key, and that platform.
ITEM_EXTRACTORS = {
    "twitter": "twitter",
    "twitter:broadcast": "broadcast",
    "twitter:event": "x-event",      # newer yt-dlp's name for /i/events/; the corpus's lists them as broadcasts
    "twitter:spaces": "x-space",
    "periscope": "periscope",
    "youtube": "youtube",
    "YoutubeYtBe": "youtube",        # youtu.be/<id>?list=...: the video, seen from a playlist
    "vimeo": "vimeo",
    "TikTok": "tiktok",
    "Instagram": "instagram",
    "telegram:embed": "telegram",
}

# Extractors whose result is a list of items.
LIST_EXTRACTORS = {
    "youtube:tab", "youtube:playlist", "youtube:user", "youtube:favorites", "youtube:watchlater",
    "YoutubeRecommended", "YoutubeSubscriptions", "YoutubeHistory", "youtube:shorts:pivot:audio",
    "instagram:user", "instagram:tag", "instagram:story", "periscope:user",
    "tiktok:user", "tiktok:sound", "tiktok:effect", "tiktok:tag", "tiktok:collection",
    "vimeo:channel", "vimeo:user", "vimeo:album", "vimeo:group", "vimeo:likes", "vimeo:watchlater",
}

# (extractor, yt-dlp's id) -> our key, where yt-dlp's id is what the URL resolves to when fetched, not the
# item it names. The key names what was asked for; the capture records what came back.
RESOLVES_ELSEWHERE = {
    ("youtube", "uGpuVWrhIzE"): "youtube:yYr8q0y5Jfg",  # a rental's watch URL: yt-dlp gets its free trailer
}


def _load() -> dict[str, dict[str, Any]]:
    if not SPELLINGS.is_file():
        return {}
    entries = json.loads(SPELLINGS.read_text(encoding="utf-8"))
    entries.pop("_about", None)
    return entries


def _is_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def expected_key(url: str, entry: dict[str, Any]) -> str | None:
    """The key the URL must get, by the rule in the module docstring; None when the entry is not checked."""
    extractor = entry["extractor"]
    platform = ITEM_EXTRACTORS.get(extractor)
    if platform is None or not _is_url(url):
        return None
    if extractor.startswith("twitter") and urlsplit(url).path.startswith("/i/events/"):
        # yt-dlp's id for an event is the broadcast it resolves to when X is asked (display_id is then the
        # event's), or the event's own id when it resolves to a list of tweets. The broadcast id cannot be
        # the key: nothing in the URL leads to it, and X may point the event elsewhere later.
        return f"x-event:{entry.get('display_id') or entry['id']}"
    if extractor == "twitter":
        return f"twitter:{entry['status_id_in_url']}" if entry.get("status_id_in_url") else None
    if extractor == "telegram:embed" and entry.get("id"):
        channel = urlsplit(url).path.strip("/").split("/")[-2].lower()
        return f"telegram:{channel}/{str(entry['id']).rpartition('-')[2]}"
    if not entry.get("id") or entry.get("playlist"):
        return None
    return RESOLVES_ELSEWHERE.get((extractor, entry["id"]), f"{platform}:{entry['id']}")


def _video_named(url: str) -> str | None:
    """The YouTube video a list URL also names (``v=`` or ``/embed/<id>``), read here independently of
    archiver.urls."""
    parts = urlsplit(url)
    video = parse_qs(parts.query).get("v", [None])[0]
    if video is None:
        m = re.fullmatch(r"/embed/([A-Za-z0-9_-]{11})/?", parts.path)
        video = m.group(1) if m and m.group(1) != "videoseries" else None
    return f"youtube:{video}" if video else None


ENTRIES = _load()
KEYED = sorted((url, key) for url, entry in ENTRIES.items() if (key := expected_key(url, entry)) is not None)
LISTS = sorted(url for url, entry in ENTRIES.items()
               if _is_url(url) and expected_key(url, entry) is None
               and (entry.get("playlist") or entry["extractor"] in LIST_EXTRACTORS))


def _id(url: str) -> str:
    entry = ENTRIES[url]
    return f"{Path(entry['source_file']).stem}:{entry['line']}"


def test_the_selections_hold_what_the_corpus_holds():
    assert (len(KEYED), len(LISTS)) == (KEYED_COUNT, LIST_COUNT)


@pytest.mark.parametrize("url, key", KEYED, ids=[_id(url) for url, _ in KEYED])
def test_every_keyed_spelling_gets_the_key_of_its_item(url, key):
    parsed = urls.parse(url)
    assert parsed.key == key, f"{ENTRIES[url]['extractor']} test at {_id(url)}"
    # The canonical URL is itself a spelling of the same item.
    assert urls.parse(parsed.canonical_url).key == key


@pytest.mark.parametrize("url", LISTS, ids=[_id(url) for url in LISTS])
def test_no_list_gets_a_single_item_key(url):
    key = urls.parse(url).key
    assert key is None or key == _video_named(url), f"{ENTRIES[url]['extractor']} test at {_id(url)}"
