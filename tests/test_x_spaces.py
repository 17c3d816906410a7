"""X Spaces through yt-dlp's twitter:spaces extractor and the fixture world (x_spaces.json): a Space with its
recording is captured with its audio and page; one that ended without a recording, one not started yet and one X
no longer has are each classified as X says it, never as a network failure, and never taken for one another."""
from __future__ import annotations

import pytest

from archiver import urls
from archiver.capture.video import classify_error
from archiver.store.items import observe_answer
from conftest import capture_and_show as _capture

RECORDED, NO_REPLAY, SCHEDULED, MISSING = "1OwxWwQOPlNxQ", "1vAxRAVQWONJl", "1eaKbrQbjoRKX", "1ZZZZZZZZZZZZ"
GRAPHQL = "AudioSpaceById"


@pytest.mark.parametrize("spelling", [
    f"https://x.com/i/spaces/{RECORDED}", f"https://twitter.com/i/spaces/{RECORDED}/",
    f"https://mobile.twitter.com/i/spaces/{RECORDED}?s=20", f"https://x.com/i/spaces/{RECORDED}/peek",
    f"https://www.x.com/i/spaces/{RECORDED}#listen",
])
def test_every_spelling_of_a_space_is_one_item(spelling):
    parsed = urls.parse(spelling)
    assert (parsed.kind, parsed.key, parsed.canonical_url) == (
        "video", f"x-space:{RECORDED}", f"https://x.com/i/spaces/{RECORDED}")


@pytest.mark.parametrize("not_a_space", [
    "https://x.com/i/spaces/", "https://x.com/i/spaces/short", "https://example.org/i/spaces/1OwxWwQOPlNxQ",
])
def test_what_is_not_a_space_is_not_keyed_as_one(not_a_space):
    assert urls.parse(not_a_space).key is None


@pytest.mark.parametrize("message, cls, retry, observed", [
    ("[twitter:spaces] 1vAxRAVQWONJl: Twitter Space ended and replay is disabled", "replay-disabled", False, "gone"),
    ("[twitter:spaces] 1eaKbrQbjoRKX: Twitter Space not started yet", "not-started", True, None),
    ("[twitter:spaces] 1vAxRAVQWONJl: Twitter Space ended but not downloadable yet", "not-yet-available", True, None),
    ("[twitter:spaces] 1ZZZZZZZZZZZZ: Twitter Space not found", "gone", False, "gone"),
])
def test_what_yt_dlp_says_of_a_space_is_classified(message, cls, retry, observed):
    assert classify_error(message) == (cls, retry)
    # A Space not started yet says nothing about whether the item is live, changed or gone.
    assert observe_answer("failed", cls, None, None).result == observed


@pytest.mark.contract("x-space")
def test_a_space_with_its_recording_is_captured_with_its_audio_and_page(world_cli, site):
    site.reset_proxy_log()
    result, [outcome], [show] = _capture(world_cli, f"https://twitter.com/i/spaces/{RECORDED}/peek")
    assert result.code == 0 and outcome["status"] == "ok", outcome
    assert show["key"] == f"x-space:{RECORDED}" and show["kind"] == "video"
    video = show["video"]
    assert video["extractor"] == "TwitterSpaces" and video["video_id"] == RECORDED
    assert video["title"] == "Eastern Aleppo evacuation: voices from the convoy route"
    assert video["uploader"] == "Aleppo Desk (demo)" and video["media_bytes"] > 20_000
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["extractor"], platform["match"]) == ("x-space", "TwitterSpaces", True)
    audio = [r for r in show["records"] if (r["uri"] or "").startswith("urn:video:")
             and (r["content_type"] or "").startswith("audio/")]
    assert audio, [(r["uri"], r["content_type"]) for r in show["records"]]
    assert any(r["type"] == "response" and r["uri"] == f"https://twitter.com/i/spaces/{RECORDED}/peek"
               for r in show["records"])   # the page as asked for, rendered beside the audio
    log = site.proxy_log
    assert any(e.host == "x.com" and f"/{GRAPHQL}?" in e.path for e in log)
    assert any(e.host == "api.x.com" and e.path == "/1.1/live_video_stream/status/28_1666866681451225088" for e in log)
    assert sum(e.host == "prod-fastly-eu-west-3.video.pscp.tv" and e.path.endswith("_a.aac") for e in log) == 3
    # Searchable by what the Space was called.
    [hit] = world_cli("search", "convoy route", "--json").json()
    assert hit["id"] == show["id"]
    [check] = world_cli("check", f"https://x.com/i/spaces/{RECORDED}", "--json").json()
    assert (check["result"], check["state_after"]) == ("live", "live"), check


@pytest.mark.contract("x-space")
def test_a_space_without_a_recording_is_replay_disabled_and_gone_from_the_web(world_cli):
    result, [outcome], [show] = _capture(world_cli, f"https://x.com/i/spaces/{NO_REPLAY}")
    assert result.code == 1
    assert (outcome["failure_class"], outcome["job_state"]) == ("replay-disabled", "failed"), outcome
    assert "replay is disabled" in outcome["message"]
    # What x.com shows of it (title, host, "no recording") is sealed beside the verdict.
    assert any(r["type"] == "response" and r["uri"] == f"https://x.com/i/spaces/{NO_REPLAY}" and r["http_status"] == 200
               for r in show["records"])
    [item] = world_cli("list", "--gone", "--json").json()
    assert (item["key"], item["state_class"]) == (f"x-space:{NO_REPLAY}", "replay-disabled")


@pytest.mark.contract("x-space")
def test_a_space_not_started_is_retried_and_one_x_no_longer_has_is_gone(world_cli):
    _, [scheduled], _ = _capture(world_cli, f"https://x.com/i/spaces/{SCHEDULED}")
    assert scheduled["failure_class"] == "not-started" and scheduled["job_state"] == "queued", scheduled
    _, [missing], _ = _capture(world_cli, f"https://x.com/i/spaces/{MISSING}")
    assert (missing["failure_class"], missing["job_state"]) == ("gone", "failed"), missing
    gone = {i["key"]: i["state_class"] for i in world_cli("list", "--gone", "--json").json()}
    assert gone == {f"x-space:{MISSING}": "gone"}
