"""Mastodon statuses end to end, through the CLI and the fixture world's instances (mastodon.social,
infosec.exchange, files.mastodon.social) reached by their real names through the proxy: capture, show, search,
tombstones, liveness checks and discovery in articles."""
from __future__ import annotations

import json

import pytest

from conftest import capture_and_show as _capture, sealed_warc
from warcutil import read_records

S1 = "117670651069203633"   # levantwatch: photo, edited (two versions)
S2 = "117671078598279545"   # levantwatch: poll and card
S3 = "117671462170399034"   # rami@infosec.exchange as mastodon.social shows it: a reply with remote video
S4 = "117671562799349858"   # convoywitness: quotes S1
ARTICLE = "https://www.levantledger.example/2026/mastodon-embed.html"


def _uris(show: dict) -> list[str]:
    return [r["uri"] or "" for r in show["records"]]


@pytest.mark.contract("fediverse")
def test_a_status_with_a_photo_and_an_edit_history(world_cli, site):
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/users/levantwatch/statuses/{S1}")
    assert result.code == 0, outcome
    assert (outcome["status"], show["key"], show["kind"]) == ("ok", f"fedi:mastodon.social/{S1}", "post")
    post = show["post"]
    assert (post["platform"], post["post_id"], post["availability"], post["author"], post["author_name"]) == (
        "fedi", f"mastodon.social/{S1}", "available", "levantwatch@mastodon.social", "Levant Watch (demo)")
    assert (post["posted_at"], post["edited_at"], post["lang"], post["media_count"]) == (
        "2026-11-24T09:14:03.512Z", "2026-11-24T09:31:40.118Z", "en", 1)
    assert "14 trucks" in post["text"] and "<p>" not in post["text"]
    uris = _uris(show)
    # The API answer raw, as the instance sent it, and its edit history.
    records = read_records(sealed_warc(world_cli.archive, show))
    [answer] = [r for r in records if r.type == "response"
                and r.headers["WARC-Target-URI"] == f"https://mastodon.social/api/v1/statuses/{S1}"]
    assert json.loads(answer.payload)["id"] == S1
    assert f"https://mastodon.social/api/v1/statuses/{S1}/history" in uris
    edits = show["provenance"]["post"]["edits"]
    assert [("12 trucks" in e["text"], "14 trucks" in e["text"]) for e in edits] == [(True, False), (False, True)]
    # The photo at original size (the embed shows the small copy), and the embed rendered for a screenshot.
    assert any("/original/3f1c9a2e7b5d4086.jpg" in u for u in uris)
    assert any(u.startswith(f"urn:screenshot:https://mastodon.social/@levantwatch/{S1}/embed") for u in uris)
    assert show["provenance"]["platform"]["match"] is True
    # Searchable by its words and its author; every spelling is the same item.
    assert world_cli("search", "Bab al-Nasr", "--json").json()[0]["id"] == show["id"]
    assert world_cli("show", f"https://mastodon.social/@levantwatch/{S1}/embed", "--json").json()["id"] == show["id"]
    assert world_cli("show", f"https://mastodon.social/web/statuses/{S1}", "--json").json()["id"] == show["id"]
    assert any(e.host == "mastodon.social" for e in site.proxy_log)


@pytest.mark.contract("fediverse")
def test_poll_and_card_are_kept_in_the_details(world_cli):
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/@levantwatch/{S2}")
    assert result.code == 0, outcome
    post = show["provenance"]["post"]
    assert [o["title"] for o in post["poll"]["options"]] == ["Crossing reopens today", "Tomorrow", "Not this week"]
    assert post["card"]["url"] == "https://www.levantledger.example/2016/12/16/aleppo-live/"
    assert "[poll] Not this week" in show["post"]["text"]
    # Not edited: no history asked for.
    assert not any(u.endswith("/history") for u in _uris(show))


@pytest.mark.contract("fediverse")
def test_a_remote_status_as_an_instance_shows_it(world_cli):
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/@rami@infosec.exchange/{S3}")
    assert result.code == 0, outcome
    post = show["post"]
    assert (post["author"], post["reply_to"], post["url"]) == (
        "rami@infosec.exchange", f"mastodon.social/{S1}", "https://infosec.exchange/@rami/117671453130752000")
    responses = [r for r in show["records"] if r["type"] == "response"]
    # The instance's media proxy redirects to its cached copy: both hops recorded, the video whole.
    hops = [r for r in responses if r["uri"].endswith("/media_proxy/117671462300221184/original")]
    assert hops and {r["http_status"] for r in hops} == {302}
    assert any(r["uri"].endswith("a8d2e41f09c37b65.mp4") and (r["http_status"], r["content_type"]) == (200, "video/mp4")
               for r in responses)
    assert show["provenance"]["post"]["media_files"] == [
        {"kind": "video", "url": "https://mastodon.social/media_proxy/117671462300221184/original", "status": 200,
         "truncated": None}]
    # An instance embeds only its own users' statuses: the web page is what is rendered.
    assert any(u == f"urn:screenshot:https://mastodon.social/@rami@infosec.exchange/{S3}" for u in _uris(show))


@pytest.mark.contract("fediverse")
def test_a_quote_records_the_quoted_status_and_its_media(world_cli):
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/web/statuses/{S4}")
    assert result.code == 0, outcome
    assert show["post"]["quoted"] == f"mastodon.social/{S1}"
    assert show["provenance"]["post"]["quoted_status"]["author"] == "levantwatch@mastodon.social"
    assert any("/original/3f1c9a2e7b5d4086.jpg" in u for u in _uris(show))


@pytest.mark.contract("fediverse")
def test_the_same_id_on_two_instances_is_two_statuses(world_cli):
    here = world_cli("capture", f"https://mastodon.social/@levantwatch/{S1}", "--json").json()[0]
    there = world_cli("capture", f"https://infosec.exchange/@rami/{S1}", "--json").json()[0]
    assert here["status"] == there["status"] == "ok" and here["capture_id"] != there["capture_id"]
    shown = world_cli("show", there["capture_id"], "--json").json()
    assert shown["key"] == f"fedi:infosec.exchange/{S1}" and shown["post"]["author"] == "rami@infosec.exchange"
    assert "EXIF" in shown["post"]["text"]
    assert world_cli("show", here["capture_id"], "--json").json()["key"] == f"fedi:mastodon.social/{S1}"


@pytest.mark.contract("fediverse")
@pytest.mark.parametrize("state,cls,job_state", [
    ("deleted", "not-found", "failed"),       # Mastodon's 404 "Record not found"
    ("suspended", "suspended", "failed"),     # 404, and the account lookup says suspended
    ("gone", "deleted", "failed"),            # 410
    ("login-required", "login-required", "failed"),
    ("unavailable", "unknown-answer", "queued"),  # a 503 error page: not a deletion, retried
])
def test_unavailable_statuses_are_classified(world_cli, site, state, cls, job_state):
    site.set_status_state(f"mastodon.social/{S4}", state)
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/@convoywitness/{S4}")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"], outcome["job_state"]) == ("failed", cls, job_state), outcome
    assert show["provenance"]["post"]["availability"] == (cls if cls != "unknown-answer" else "unknown-answer")
    assert show["post"]["availability"] == show["provenance"]["post"]["availability"]
    if state == "suspended":
        assert any("/api/v1/accounts/lookup?acct=convoywitness" in u for u in _uris(show))
    # The page a reader would have seen is recorded too.
    assert any(u.startswith("urn:screenshot:https://mastodon.social/@convoywitness/") for u in _uris(show))


@pytest.mark.contract("fediverse")
def test_an_answer_for_another_status_is_partial_never_ok(world_cli, site):
    site.answer_status_as(f"mastodon.social/{S4}", S2)
    result, [outcome], [show] = _capture(world_cli, f"https://mastodon.social/@convoywitness/{S4}")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["id"], platform["expected_id"], platform["match"]) == ("fediverse", S2, S4, False)
    assert show["provenance"]["post"]["media_files"] == [] and show["post"]["author"] is None


def test_a_host_that_is_not_an_instance_is_never_ok(world_cli):
    """The news site has a page at /@desk/<a snowflake-sized number>: recognised by its shape, but the host answers
    the status API with an HTML 404 -- not a deletion, and the capture is the page, partial."""
    url = f"https://www.levantledger.example/@desk/{S1}"
    result, [outcome], [show] = _capture(world_cli, url)
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    assert "did not answer as a Mastodon instance" in outcome["message"]
    assert show["provenance"]["post"]["availability"] == "not-fediverse"
    assert show["title"].startswith("From the desk")
    [o] = world_cli("check", url, "--json").json()
    assert o["result"] != "gone" and o["result_class"] == "unknown-answer", o


@pytest.mark.contract("fediverse")
def test_a_status_that_is_deleted_is_seen_gone(world_cli, site):
    url = f"https://mastodon.social/@convoywitness/{S4}"
    key = f"mastodon.social/{S4}"
    assert world_cli("capture", url).code == 0
    [o] = world_cli("check", url, "--json").json()
    assert (o["result"], o["state_after"], o["job_id"]) == ("live", "live", None), o
    site.set_status_state(key, "deleted")
    [o] = world_cli("check", url, "--json").json()
    assert (o["result"], o["result_class"], o["state_after"]) == ("gone", "not-found", "gone"), o
    assert o["job_id"], "the disappearance is captured as evidence"
    assert "not-found" in world_cli("run", "--once").err
    [item] = world_cli("list", "--gone", "--json").json()
    assert item["state_class"] == "not-found" and item["ok_captures"] == 1
    # A network failure is not a deletion: an instance down for maintenance makes nothing gone.
    site.set_status_state(key, "unavailable")
    [o] = world_cli("check", url, "--json").json()
    assert o["result_class"] == "unknown-answer" and o["result"] != "gone", o
    site.set_status_state(key, "available")
    [o] = world_cli("check", url, "--json").json()
    assert o["state_after"] == "live", o


def test_follow_an_article_to_its_embedded_statuses(world_cli):
    result = world_cli("capture", "--follow", ARTICLE, "--json")
    outcomes = result.json()
    assert outcomes[0]["url"] == ARTICLE and outcomes[0]["status"] == "ok", outcomes[0]
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    children = {c["key"]: c for c in article["children"]}
    expected = {f"fedi:mastodon.social/{S1}": "iframe.mastodon-embed",
                f"fedi:mastodon.social/{S4}": "blockquote.mastodon-embed",
                "fedi:infosec.exchange/117671453130752000": "a[href]"}
    for key, found_in in expected.items():
        assert key in children and children[key]["capture_id"], sorted(children)
        assert children[key]["found_in"] == found_in
    child = world_cli("show", children[f"fedi:mastodon.social/{S1}"]["capture_id"], "--json").json()
    assert child["status"] == "ok" and child["post"]["author"] == "levantwatch@mastodon.social"
    assert child["parent"]["capture_id"] == article["id"]


def test_platforms_lists_the_path(cli):
    rows = {r["name"]: r for r in cli("platforms", "--json").json()}
    row = rows["fediverse"]
    assert (row["platform"], row["engine"], row["fixture_world"]) == ("fedi", "archiver", True)
    assert {"not-found", "deleted", "suspended"} <= set(row["tombstones"])
