"""Issue 14's whole path through one article: an article that embeds one post of each platform (a tweet, an X Space,
a Mastodon status, a Telegram post, a Bluesky post), captured with --follow, gives each its own capture with the
platform's answer, its media and its rendered view; each then deleted in the fixture world is classified by
`archiver check` as the platform says it and shows in `list --gone`."""
from __future__ import annotations

import pytest

ARTICLE_PATH = "/2026/11/30/one-convoy-five-platforms/"
TWEET, SPACE = "twitter:809735236813459457", "x-space:1OwxWwQOPlNxQ"
STATUS, TELEGRAM = "fedi:mastodon.social/117670651069203633", "telegram:evacwatch/113"
BLUESKY = "bluesky:did:plc:evacwatchlevantledger7qq/3lbq2evac7k2a"
# What each capture must hold beside its rendered view: (record type, a part of its URI) of the platform's answer.
ANSWERS = {
    TWEET: ("response", "cdn.syndication.twimg.com/tweet-result"),
    SPACE: ("metadata", "urn:"),   # yt-dlp's info JSON (AudioSpaceById, the stream status)
    STATUS: ("response", "mastodon.social/api/v1/statuses/117670651069203633"),
    TELEGRAM: ("response", "t.me/evacwatch/113?embed=1"),
    BLUESKY: ("response", "public.api.bsky.app/xrpc/app.bsky.feed.getPostThread"),
}


@pytest.fixture
def roundup(world_cli, site):
    result = world_cli("capture", "--follow", site.url + ARTICLE_PATH, "--json")
    assert result.code == 0, result.err
    outcomes = result.json()
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    children = {c["key"]: c for c in article["children"]}
    yield article, children
    site.reset_tweet_states()   # tweets, Telegram posts, X Spaces and Bluesky posts
    site.reset_status_states()


def test_each_platforms_post_is_captured_with_its_answer_media_and_view(world_cli, roundup):
    article, children = roundup
    assert set(ANSWERS) <= set(children), sorted(children)
    for key, (record_type, uri_part) in ANSWERS.items():
        show = world_cli("show", children[key]["capture_id"], "--json").json()
        assert show["status"] == "ok", (key, show["status"], show.get("failure_message"))
        assert show["parent"]["capture_id"] == article["id"]
        records = show["records"]
        assert any(r["type"] == record_type and uri_part in (r["uri"] or "") for r in records), (
            key, [(r["type"], r["uri"]) for r in records])
        # Rendered: a screenshot of the public view.
        assert any((r["uri"] or "").startswith("urn:screenshot:") for r in records), key
        # Media: a photo, a video or the audio, stored as received.
        media = [r for r in records if (r["content_type"] or "").startswith(("image/jpeg", "image/png", "video/",
                                                                               "audio/"))
                 and not (r["uri"] or "").startswith("urn:screenshot:")]
        assert media, (key, [(r["uri"], r["content_type"]) for r in records])
    # The posts beyond X have their searchable row.
    status = world_cli("show", children[STATUS]["capture_id"], "--json").json()
    assert status["post"]["author"] == "levantwatch@mastodon.social"
    telegram = world_cli("show", children[TELEGRAM]["capture_id"], "--json").json()
    assert telegram["post"]["platform"] == "telegram" and telegram["post"]["text"]
    bluesky = world_cli("show", children[BLUESKY]["capture_id"], "--json").json()
    assert bluesky["post"]["author"] == "evacwatch.bsky.social" and bluesky["post"]["media_count"] == 2


def test_deleting_each_is_classified_by_check_and_listed_as_gone(world_cli, site, roundup):
    _, children = roundup
    site.set_tweet_state("809735236813459457", "deleted")
    site.set_space_state("1OwxWwQOPlNxQ", "replay-disabled")
    site.set_status_state("mastodon.social/117670651069203633", "deleted")
    site.set_telegram_state("evacwatch/113", "deleted")
    site.set_bluesky_state("3lbq2evac7k2a", "deleted")
    urls = [children[k]["url"] for k in ANSWERS]
    checked = {o["key"]: o for o in world_cli("check", *urls, "--json").json()}
    # Each as its platform says it: X names a deletion; Mastodon and Telegram answer a deleted post as one not
    # found (404 "Record not found"; "Post not found" inside a 200); a Space's recording taken down is replay-disabled;
    # Bluesky's NotFound, its author's profile still there, is a deletion.
    assert {k: (checked[k]["result"], checked[k]["result_class"]) for k in ANSWERS} == {
        TWEET: ("gone", "deleted"), SPACE: ("gone", "replay-disabled"), STATUS: ("gone", "not-found"),
        TELEGRAM: ("gone", "not-found"), BLUESKY: ("gone", "deleted")}
    gone = {i["key"]: i["state_class"] for i in world_cli("list", "--gone", "--json").json()}
    assert {k: gone.get(k) for k in ANSWERS} == {TWEET: "deleted", SPACE: "replay-disabled", STATUS: "not-found",
                                                 TELEGRAM: "not-found", BLUESKY: "deleted"}
