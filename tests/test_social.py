"""Social evidence end to end, through the CLI, reaching the fixture world by the real host names and URL
shapes (twitter.com, cdn.syndication.twimg.com, periscope.tv, t.co...) via the proxy and CA bundle settings
— the same code paths a newsroom behind an inspecting proxy would use."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import capture_and_show as _capture, sealed_warc, stored_warcs
from warcutil import read_records

ARTICLE = "https://www.levantledger.example/2016/12/16/aleppo-live/"


@pytest.mark.contract("tweet")
def test_text_tweet_from_any_spelling(world_cli, site):
    result, [outcome], [show] = _capture(world_cli, "https://mobile.twitter.com/evac_watch_demo/status/"
                                                    "809711419431133184/photo/1?s=20&t=abc")
    assert result.code == 0, outcome
    tweet = show["tweet"]
    assert (tweet["availability"], tweet["screen_name"], tweet["time_check"]) == (
        "available", "evac_watch_demo", "consistent")
    assert "rubble" in tweet["text"].lower() and tweet["snowflake_time"].startswith("2016-12-16T10:47:00")
    uris = [r["uri"] for r in show["records"]]
    syndication = [u for u in uris if u and u.startswith("https://cdn.syndication.twimg.com/tweet-result?")]
    assert syndication and "token=1yns7chsuw" in syndication[0] and "id=809711419431133184" in syndication[0]
    assert any(u and u.startswith("urn:screenshot:https://platform.twitter.com/embed/Tweet.html?id=809711419431133184")
               for u in uris)
    # The syndication answer is stored raw, as the endpoint sent it.
    recs = read_records(sealed_warc(world_cli.archive, show))
    [answer] = [r for r in recs if r.type == "response" and r.headers["WARC-Target-URI"] == syndication[0]]
    assert b'"__typename":"Tweet"' in answer.payload.replace(b" ", b"")
    # Searchable by its text; the same tweet under another spelling is the same item.
    assert world_cli("search", "rubble", "--json").json()[0]["id"] == show["id"]
    assert world_cli("show", "https://x.com/i/web/status/809711419431133184", "--json").json()["id"] == show["id"]
    assert any(e.host == "cdn.syndication.twimg.com" for e in site.proxy_log)


@pytest.mark.contract("tweet")
def test_photo_tweet_keeps_originals_and_flags_an_inconsistent_time(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://twitter.com/i/status/809735236813459457")
    assert result.code == 0, outcome
    assert show["tweet"]["time_check"] == "inconsistent" and show["tweet"]["media_count"] == 2
    photos = [r for r in show["records"] if r["type"] == "response" and "pbs.twimg.com/media/" in (r["uri"] or "")
              and "name=orig" in r["uri"]]
    assert len(photos) == 2  # full size, besides the small copies the embed page itself displayed
    assert all(r["content_type"].startswith("image/") and r["http_status"] == 200 for r in photos)


@pytest.mark.contract("tweet")
def test_video_tweet_keeps_the_best_variant(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://x.com/evac_watch_demo/status/809745591946145792")
    assert result.code == 0, outcome
    videos = [r for r in show["records"] if r["type"] == "response" and (r["uri"] or "").endswith(".mp4?tag=12")
              or (r["uri"] or "").split("?")[0].endswith(".mp4") and r["type"] == "response"]
    assert videos, [r["uri"] for r in show["records"]]
    assert all("1280x720" in r["uri"] for r in videos)


@pytest.mark.contract("tweet")
def test_hls_only_video_tweet_goes_through_yt_dlp(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://twitter.com/x/status/809698357346996224")
    assert result.code == 0, outcome
    media = [r for r in show["records"] if r["type"] == "resource" and (r["uri"] or "").startswith("urn:video:")]
    assert media and media[0]["content_type"] == "video/mp4"
    assert any(r["type"] == "metadata" and (r["uri"] or "").startswith("urn:yt-dlp:info:") for r in show["records"])


@pytest.mark.contract("tweet")
def test_quote_tweet_records_the_quoted_tweet_too(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://twitter.com/x/status/809754111092273152")
    assert result.code == 0, outcome
    assert show["tweet"]["quoted_id"] == "809735236813459457"
    uris = [r["uri"] or "" for r in show["records"]]
    assert any("tweet-result?id=809735236813459457" in u for u in uris)
    assert sum("pbs.twimg.com/media/" in u for u in uris) >= 2


@pytest.mark.contract("tweet")
@pytest.mark.parametrize("tweet_id,cls", [
    ("809760211384950784", "deleted"),
    ("809762874117455872", "suspended"),
    ("809764918052040704", "protected"),
    ("809766390034722816", "age-restricted"),
    ("809771205913751552", "not-found"),
])
def test_unavailable_tweets_are_classified_findings(world_cli, tweet_id, cls):
    result, [outcome], [show] = _capture(world_cli, f"https://twitter.com/someone/status/{tweet_id}")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"], outcome["job_state"]) == ("failed", cls, "failed")
    assert show["tweet"]["availability"] == cls  # the tombstone is sealed: evidence of when it was gone


@pytest.mark.contract("tweet")
def test_an_answer_for_another_tweet_is_partial_never_ok(world_cli, site):
    """The syndication answer must be for the requested id: another tweet's is kept as received, not described,
    its media not fetched as this tweet's, and the capture is partial with class extractor-mismatch."""
    site.answer_tweet_as("809711419431133184", "809735236813459457")
    result, [outcome], [show] = _capture(world_cli, "https://x.com/evac_watch_demo/status/809711419431133184")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    assert "809735236813459457" in outcome["message"]
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["id"], platform["expected_id"], platform["match"]) == (
        "tweet", "809735236813459457", "809711419431133184", False)
    tweet = show["tweet"]
    assert (tweet["tweet_id"], tweet["availability"], tweet["screen_name"]) == (
        "809711419431133184", "unknown-answer", None)
    assert show["provenance"]["tweet"]["media"] == []
    assert any((r["uri"] or "").startswith("https://cdn.syndication.twimg.com/tweet-result?") for r in show["records"])


@pytest.mark.contract("tweet")
def test_empty_answer_is_not_a_deletion_and_is_retried(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://twitter.com/someone/status/809768512188825600")
    assert result.code == 1
    assert outcome["failure_class"] == "unknown-answer" and outcome["job_state"] == "queued"
    assert show["tweet"]["availability"] == "unknown-answer"


def test_follow_the_live_blog_to_its_evidence(world_cli, site):
    result = world_cli("capture", "--follow", ARTICLE, "--json")
    outcomes = result.json()
    assert outcomes[0]["url"] == ARTICLE and outcomes[0]["status"] == "ok"
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    children = {c["key"]: c for c in article["children"]}
    for key in ("twitter:809711419431133184", "twitter:809735236813459457", "twitter:809760211384950784",
                "periscope:1OdKrBXvMbLKX", "periscope:1gqxvQWbXrAJB"):
        assert key in children, sorted(children)
        assert children[key]["capture_id"], key
    # The t.co link was resolved through its recorded redirect, into the article's own WARC.
    assert any(c["via"] == "https://t.co/Rb8cKq2xQm" for c in article["children"])
    assert any(r["uri"] == "https://t.co/Rb8cKq2xQm" and r["http_status"] == 301 for r in article["records"])
    # A child shows its parent and where it was found.
    tweet = world_cli("show", children["twitter:809711419431133184"]["capture_id"], "--json").json()
    assert tweet["parent"]["capture_id"] == article["id"]
    assert tweet["parent"]["found_in"].startswith("blockquote.twitter-tweet")
    # One level deep by default: the tweet's own links were not followed further.
    assert tweet["provenance"]["follow_depth"] == 0 and tweet["children"] == []
    # The t.co link in the article led to the second story, captured as a child.
    assert any(o["url"] == "https://www.levantledger.example/2016/12/16/evacuation-suspended/" for o in outcomes)
    assert world_cli("verify").code == 0
    warcs = [sealed_warc(world_cli.archive, c) for c in world_cli("list", "--all", "--json").json()]
    assert len(warcs) == len(stored_warcs(world_cli.archive)) >= 7
    proc = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", *map(str, warcs)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_a_tweets_own_links_are_followed_one_level_further(world_cli):
    result = world_cli("capture", "--follow", "--depth", "1", "https://twitter.com/evac_watch_demo/status/809711419431133184",
                       "--json")
    outcomes = result.json()
    assert result.code == 0, outcomes
    urls = [o["url"] for o in outcomes]
    # entities.urls: the t.co link in the tweet, resolved, and the story it points to captured.
    assert urls == ["https://twitter.com/evac_watch_demo/status/809711419431133184",
                    "https://www.levantledger.example/2016/12/16/evacuation-suspended/"]
    tweet = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    [child] = tweet["children"]
    assert child["found_in"] == "entities.urls" and child["source"] == "tweet.entities"
    assert child["capture_id"] == outcomes[1]["capture_id"]


def test_evidence_already_held_is_linked_not_captured_again(world_cli):
    tweet_url = "https://twitter.com/evac_watch_demo/status/809711419431133184"
    first = world_cli("capture", tweet_url, "--json").json()[0]
    assert first["status"] == "ok"
    outcomes = world_cli("capture", "--follow", ARTICLE, "--json").json()
    assert tweet_url not in [o["url"] for o in outcomes[1:]]
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    held = next(c for c in article["children"] if c["key"] == "twitter:809711419431133184")
    assert held["capture_id"] == first["capture_id"]
