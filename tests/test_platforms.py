"""The platform paths (archiver/capture/platforms.py): one source for the extractor rule, `archiver platforms` and the
README's support matrix."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from archiver.capture import platforms
from archiver import urls

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_video_platform_the_urls_key_has_a_path():
    video_platforms = {rule.platform for rule in urls.RULES if rule.kind == "video"}
    assert video_platforms <= set(platforms.BY_PLATFORM), video_platforms - set(platforms.BY_PLATFORM)
    assert platforms.for_key("twitter:1").name == "tweet"
    assert platforms.for_key("https://example.org/") is None and platforms.for_key(None) is None


@pytest.mark.parametrize("key,canonical,expected", [
    ("periscope:1OdKrBXvMbLKX", "https://www.pscp.tv/w/1OdKrBXvMbLKX", "https://x.com/i/broadcasts/1OdKrBXvMbLKX"),
    ("broadcast:1YqKDqDXRRvxV", "https://x.com/i/broadcasts/1YqKDqDXRRvxV", "https://x.com/i/broadcasts/1YqKDqDXRRvxV"),
    # yt-dlp's TikTok extractor does not take the /embed/v2/ spelling: it would fall back to the generic one.
    ("tiktok:7042692929109986561", "https://www.tiktok.com/embed/v2/7042692929109986561",
     "https://www.tiktok.com/embed/7042692929109986561"),
])
def test_the_url_yt_dlp_is_given(key, canonical, expected):
    path = platforms.for_key(key)
    assert path.media_url(key.split(":", 1)[1], canonical) == expected


@pytest.mark.parametrize("url", [
    "https://www.pscp.tv/w/1OdKrBXvMbLKX", "https://x.com/i/broadcasts/1YqKDqDXRRvxV",
    "https://x.com/i/events/1910629646300762112", "https://youtu.be/dQw4w9WgXcQ", "https://vimeo.com/119195465",
    "https://player.vimeo.com/video/76979871?h=a1b2c3d4e5",
    "https://www.tiktok.com/embed/v2/7042692929109986561", "https://www.tiktok.com/@x/video/7042692929109986561",
    "https://www.instagram.com/p/BNpLF8LD0GD/", "https://www.facebook.com/watch/?v=10153231379946729",
])
def test_the_platform_extractor_claims_the_url_it_is_given(url):
    """The installed yt-dlp has an extractor of the path's own for the URL archiver gives it: a registry drift,
    like PeriscopeIE's removal, fails here before it degrades a capture."""
    from yt_dlp.extractor import gen_extractor_classes
    parsed = urls.parse(url)
    path = platforms.for_key(parsed.key)
    media_url = path.media_url(parsed.item_id, parsed.canonical_url)
    claimed = [ie.ie_key() for ie in gen_extractor_classes() if ie.ie_key() != "Generic" and ie.suitable(media_url)]
    # An X event is claimed by yt-dlp's event extractor, which hands the broadcast to TwitterBroadcast.
    assert claimed and claimed[0] in (*path.extractors, "TwitterEvent"), (media_url, claimed)


def test_judge_a_generic_fallback_and_another_id():
    path = platforms.BY_NAME["x-broadcast"]
    good = platforms.judge_ytdlp(path, "1YqKDqDXRRvxV", {"extractor_key": "TwitterBroadcast", "id": "1YqKDqDXRRvxV"})
    assert good.ok and good.message is None and good.engine_version
    generic = platforms.judge_ytdlp(path, "1YqKDqDXRRvxV", {"extractor_key": "HTML5MediaEmbed", "id": "x"})
    assert not generic.ok and "HTML5MediaEmbed" in generic.message
    other = platforms.judge_ytdlp(path, "1BdxYEMOnQNxX", {"extractor_key": "TwitterBroadcast", "id": "1YqKDqDXRRvxV",
                                                          "display_id": "1BdxYEMOnQNxX"})
    assert not other.ok and "1YqKDqDXRRvxV" in other.message  # display_id echoes the URL: not evidence of the item
    # An X event's broadcast has its own id; the event is the display_id.
    event = platforms.judge_ytdlp(platforms.BY_NAME["x-event"], "1910629646300762112",
                                  {"extractor_key": "TwitterBroadcast", "id": "1LyxBWDRNqyKN",
                                   "display_id": "1910629646300762112"})
    assert event.ok
    # fb.watch codes are short links: only the extractor can be judged.
    assert platforms.judge_ytdlp(platforms.BY_NAME["facebook"], "AbCd1234",
                                 {"extractor_key": "Facebook", "id": "10153231379946729"}).ok
    assert not platforms.judge_ytdlp(platforms.BY_NAME["facebook"], "10153231379946720",
                                     {"extractor_key": "Facebook", "id": "10153231379946729"}).ok


def test_platforms_command_json_and_table(cli):
    rows = cli("platforms", "--json")
    assert rows.code == 0, rows.err
    data = rows.json()
    assert [r["name"] for r in data] == [p.name for p in platforms.PATHS]
    periscope = next(r for r in data if r["name"] == "periscope")
    assert periscope["extractors"] == ["TwitterBroadcast"] and re.fullmatch(r"\d{4}\.\d+\.\d+(\.\d+)?",
                                                                           periscope["engine_version"])
    assert "yt-dlp " + periscope["engine_version"] in periscope["relies_on"]
    text = cli("platforms")
    assert text.code == 0 and "periscope" in text.out and "relies on" in text.out


def test_the_readme_table_is_generated_from_the_same_source(cli):
    """README.md holds `archiver platforms --markdown` verbatim between its markers; regenerate it with
    `archiver platforms --markdown` when platforms.py changes."""
    readme = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- platforms:begin[^>]*-->\n(.*?)<!-- platforms:end -->", readme, re.S)
    assert match, "README.md has no <!-- platforms:begin --> ... <!-- platforms:end --> block"
    generated = cli("platforms", "--markdown")
    assert generated.code == 0, generated.err
    assert match.group(1) == generated.out, "README's platform table is stale: paste `archiver platforms --markdown`"
