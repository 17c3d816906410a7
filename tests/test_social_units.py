"""The rules that turn platform answers into findings: tokens, tombstones, snowflake times, discovery."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from archiver.capture import discover, tweet, video

# Computed with node: ((Number(id) / 1e15) * Math.PI).toString(36).replace(/(0+|\.)/g, '')
WIDGET_TOKENS = {
    "809711419431133184": "1yns7chsuw",
    "809698357346996224": "1ynqq5xi4fz",
    "809735236813459457": "1ynuwbi91u3",
    "809760211384950784": "1ynxq4t8y",
    "809771205913751552": "1ynyyrnaqgb",
    "20": "6dq1a2xwd93",
    "1": "bhi2ay3f28n",
}


@pytest.mark.parametrize("tweet_id,token", sorted(WIDGET_TOKENS.items()))
def test_syndication_token_matches_the_widget(tweet_id, token):
    assert tweet.syndication_token(tweet_id) == token


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_syndication_token_agrees_with_javascript_on_many_ids():
    ids = [str(809711419431133184 + n * 7919_0000_0000_13) for n in range(40)] + ["1499213495063236608", "2"]
    script = ("const ids=" + json.dumps(ids) + ";console.log(JSON.stringify(ids.map(id=>"
              "((Number(id)/1e15)*Math.PI).toString(36).replace(/(0+|\\.)/g,''))))")
    expected = json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout)
    assert [tweet.syndication_token(i) for i in ids] == expected


def _tomb(text: str) -> bytes:
    return json.dumps({"__typename": "TweetTombstone", "tombstone": {"text": {"text": text, "entities": [],
                                                                             "rtl": False}}}).encode()


@pytest.mark.parametrize("status,body,expected", [
    (200, _tomb("This Post was deleted by the Post author. Learn more"), "deleted"),
    (200, _tomb("This Tweet was deleted by the Tweet author. Learn more"), "deleted"),
    (200, _tomb("This Post is from a suspended account. Learn more"), "suspended"),
    (200, _tomb("You’re unable to view this Post because this account owner limits who can view their Posts. "
                "Learn more"), "protected"),
    (200, _tomb("Age-restricted adult content. This content might not be appropriate for people under 18 years "
                "old. To view this media, you’ll need to log in to X. Learn more"), "age-restricted"),
    (200, _tomb("This Post is from an account that no longer exists. Learn more"), "account-deleted"),
    (404, b"", "not-found"),
    (200, b"{}", "unknown-answer"),
    (200, b"", "unknown-answer"),
    (200, b"<html>rate limited</html>", "unknown-answer"),
    (503, b"", "unknown-answer"),
    (200, json.dumps({"__typename": "Tweet", "id_str": "1", "text": "hi"}).encode(), "available"),
])
def test_syndication_answers_are_classified(status, body, expected):
    availability, _, message = tweet.classify_answer(status, body, "application/json")
    assert availability == expected
    assert message
    assert "Learn more" not in message


def test_empty_answer_is_never_a_deletion_and_is_retried():
    from archiver.errors import is_retryable
    availability, _, _ = tweet.classify_answer(200, b"{}", "application/json")
    assert availability not in tweet.UNAVAILABLE and is_retryable(availability)


def test_created_at_cross_checked_against_snowflake():
    tid = "809711419431133184"
    snow = tweet.snowflake_time(tid)
    good = tweet.describe_tweet({"id_str": tid, "text": "x", "created_at": snow.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                 "user": {"screen_name": "a", "name": "A"}}, tid)
    assert good["time_check"] == "consistent" and good["snowflake_time"].startswith("2016-12-16T")
    bad = tweet.describe_tweet({"id_str": tid, "text": "x", "created_at": "2016-12-16T18:00:00.000Z"}, tid)
    assert bad["time_check"] == "inconsistent" and abs(bad["time_delta_seconds"]) > 60
    legacy = tweet.describe_tweet({"id_str": "20", "text": "just setting up my twttr",
                                   "created_at": "Tue Mar 21 20:50:14 +0000 2006"}, "20")
    assert legacy["snowflake_time"] is None and legacy["time_check"] == "unknown"


def test_best_media_variants_are_chosen():
    data = {"mediaDetails": [
        {"type": "photo", "media_url_https": "https://pbs.twimg.com/media/Cz1K3xX.jpg"},
        {"type": "video", "media_url_https": "https://pbs.twimg.com/ext_tw_video_thumb/1/pu/img/p.jpg",
         "video_info": {"variants": [
             {"bitrate": 256000, "content_type": "video/mp4", "url": "https://video.twimg.com/a/320x180/l.mp4"},
             {"content_type": "application/x-mpegURL", "url": "https://video.twimg.com/a/pl/p.m3u8"},
             {"bitrate": 2176000, "content_type": "video/mp4", "url": "https://video.twimg.com/a/1280x720/h.mp4"},
         ]}},
        {"type": "video", "video_info": {"variants": [
            {"content_type": "application/x-mpegURL", "url": "https://video.twimg.com/b/pl/only.m3u8"}]}},
    ]}
    assert tweet._media_urls(data) == [
        ("photo", "https://pbs.twimg.com/media/Cz1K3xX.jpg?name=orig"),
        ("video", "https://video.twimg.com/a/1280x720/h.mp4"),
        ("poster", "https://pbs.twimg.com/ext_tw_video_thumb/1/pu/img/p.jpg"),
        ("hls", "https://video.twimg.com/b/pl/only.m3u8"),
    ]


ARTICLE = """<html><body>
<blockquote class="twitter-tweet"><p lang="en">Rubble on the road</p>&mdash; Watch (@w)
 <a href="https://twitter.com/evac_watch_demo/status/809711419431133184?ref_src=twsrc%5Etfw">December 16, 2016</a>
</blockquote>
<div data-tweet-id="809735236813459457"></div>
<iframe src="https://platform.twitter.com/embed/Tweet.html?id=809754111092273152"></iframe>
<iframe src="//www.youtube-nocookie.com/embed/dQw4w9WgXcQ"></iframe>
<iframe src="https://player.vimeo.com/video/76979871"></iframe>
<a href="https://www.periscope.tv/w/1OdKrBXvMbLKX">@Mr_Alhamdo on Periscope</a>
<a href="https://www.periscope.tv/w/aJUQnjY3MjA3ODF8NTYxMDIyMDl2zCg2pECBgwTqRpQuQD352EMPTKQjT4uqlM3cgWFA-g==">2015</a>
<a href="https://x.com/i/events/1910629646300762112?s=20">watch live on X</a>
<a href="https://t.co/Rb8cKq2xQm">https://t.co/Rb8cKq2xQm</a>
<a href="https://www.reuters.com/article/aleppo">Reuters</a>
<blockquote class="instagram-media" data-instgrm-permalink="https://www.instagram.com/p/BOFt0cXgx3S/"></blockquote>
<blockquote class="tiktok-embed" cite="https://www.tiktok.com/@u/video/7106594312292453675"></blockquote>
<script async src="https://telegram.org/js/telegram-widget.js" data-telegram-post="aleppo24/1234"></script>
<iframe src="https://www.facebook.com/plugins/video.php?href=https%3A%2F%2Fwww.facebook.com%2Fhalab%2Fvideos%2F10154%2F"></iframe>
<textarea>&lt;blockquote class="twitter-tweet"&gt;&lt;a href="https://twitter.com/x/status/809760211384950784"&gt;
Dec 16&lt;/a&gt;&lt;/blockquote&gt;</textarea>
</body></html>"""


def test_discovery_finds_every_kind_of_embed_once():
    refs = discover.scan_html(ARTICLE, "https://news.example/live/", "html")
    found = {parsed.dedup_key: ref.found_in for parsed, ref in discover.evidence(refs)}
    assert found["twitter:809711419431133184"] == "blockquote.twitter-tweet a[href]"
    assert found["twitter:809735236813459457"] == "data-tweet-id"
    assert found["twitter:809754111092273152"] in ("iframe.twitter-widget", "iframe[src]")
    assert found["twitter:809760211384950784"].startswith("escaped ")
    assert found["youtube:dQw4w9WgXcQ"] == "iframe[src]"
    assert found["vimeo:76979871"] == "iframe[src]"
    assert found["periscope:1OdKrBXvMbLKX"] == "a[href]"
    assert found["periscope:56102209"] == "a[href]"  # an early link: the broadcast id is inside its token
    assert found["x-event:1910629646300762112"] == "a[href]"
    assert found["tco:Rb8cKq2xQm"] == "a[href]"
    assert found["instagram:BOFt0cXgx3S"] == "blockquote.instagram-media"
    assert found["tiktok:7106594312292453675"] == "blockquote.tiktok-embed"
    assert found["telegram:aleppo24/1234"] == "script[data-telegram-post]"
    assert found["facebook:10154"] == "iframe.facebook-plugin"
    assert not any("reuters" in k for k in found)  # an ordinary link is not evidence to follow


@pytest.mark.parametrize("message,expected", [
    ("ERROR: [Periscope] 1gqxvQWbXrAJB: This broadcast has been deleted", ("gone", False)),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", ("gone", False)),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access", ("protected", False)),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate", ("age-restricted", False)),
    ("ERROR: Unsupported URL: https://example.com/", ("unsupported", False)),
    ("ERROR: Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution>",
     ("network", True)),
    ("ERROR: [generic] Read timed out.", ("timeout", True)),
    # yt-dlp 2026.11's words for TikTok's statusCode 10204, which TikTok answers for a removed video.
    ("ERROR: [TikTok] 7106609871234567891: Your IP address is blocked from accessing this post", ("gone", False)),
    ("ERROR: [vimeo] 196071120: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: "
     "Not Found>)", ("gone", False)),
])
def test_yt_dlp_errors_are_classified(message, expected):
    assert video.classify_error(message) == expected


def test_gone_x_broadcast_message_is_gone():
    assert video.classify_error("ERROR: [twitter:broadcast] 1ZkJzbdvXbmJv: Broadcast no longer exists") == ("gone", False)
