"""Broadcasts and video end to end through the CLI: X broadcasts, Periscope broadcasts read through X's broadcast
path (yt-dlp has no Periscope extractor since 2026.11), X events, live streams and caps — and the rule that a
platform URL is captured by its platform's own path or is not ok. The fixture world answers by the real host
names through the proxy (tests/conftest.py: world_cli)."""
from __future__ import annotations

import subprocess

import pytest

from conftest import capture_and_show as _capture, sealed_warc
from warcutil import read_records


GRAPHQL_BROADCAST = "/i/api/graphql/0THBwNgta8LrS-cno61adw/BroadcastQuery?variables=%7B%22id%22%3A%22{}%22%7D"


@pytest.mark.contract("periscope")
def test_periscope_broadcast_through_the_x_broadcast_path_with_its_page(world_cli, site):
    """yt-dlp has no Periscope extractor since 2026.11: the broadcast id is the X broadcast id, read through X's
    BroadcastQuery, while the periscope.tv page is rendered around it, in the same WARC."""
    site.reset_proxy_log()
    result, [outcome], [show] = _capture(world_cli, "https://www.periscope.tv/w/1OdKrBXvMbLKX")
    assert result.code == 0 and outcome["status"] == "ok", outcome
    assert show["key"] == "periscope:1OdKrBXvMbLKX"
    assert show["kind"] == "video" and show["video"]["extractor"] == "TwitterBroadcast"
    assert show["video"]["media_bytes"] > 10_000 and show["video"]["title"]
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["extractor"], platform["id"], platform["match"]) == (
        "periscope", "TwitterBroadcast", "1OdKrBXvMbLKX", True)
    assert platform["engine"] == "yt-dlp" and platform["engine_version"]
    types = {(r["type"], (r["uri"] or "").split(":")[0]) for r in show["records"]}
    assert ("metadata", "urn") in types and ("resource", "urn") in types
    assert any(r["type"] == "response" and r["uri"] == "https://www.periscope.tv/w/1OdKrBXvMbLKX"
               for r in show["records"])  # the page around the video
    video = show["provenance"]["video"]
    assert video["yt_dlp"]["version"] and "-bitexact" in str(video["yt_dlp"]["options"])
    log = site.proxy_log
    assert ("GET", "x.com", GRAPHQL_BROADCAST.format("1OdKrBXvMbLKX")) in log
    assert any(e.host == "api.x.com" and e.path == "/1.1/live_video_stream/status/28_809698290183311361" for e in log)
    assert any(e.host == "prod-video-eu-central-1.pscp.tv" and e.path.endswith("/chunk_2.ts") for e in log)
    assert not any(e.host == "api.periscope.tv" for e in log)
    # The same source gives the same bytes (ffmpeg runs bit-exact).
    again = world_cli("capture", "https://pscp.tv/w/1OdKrBXvMbLKX", "--json").json()[0]
    second = world_cli("show", again["capture_id"], "--json").json()
    digest = lambda s: [r["payload_digest"] for r in s["records"] if (r["uri"] or "").startswith("urn:video:")]
    assert digest(show) == digest(second) and digest(show)


@pytest.mark.contract("periscope")
def test_deleted_broadcast_is_gone_not_a_crash(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://pscp.tv/w/1gqxvQWbXrAJB")
    assert result.code == 1
    assert outcome["failure_class"] == "gone" and outcome["job_state"] == "failed"
    # What periscope.tv says now is sealed beside the verdict.
    assert any(r["type"] == "response" and r["uri"] == "https://pscp.tv/w/1gqxvQWbXrAJB" and r["http_status"] == 404
               for r in show["records"])


@pytest.mark.contract("periscope")
@pytest.mark.parametrize("setting,value,cls", [
    ("ARCHIVER_VIDEO_MAX_BYTES", "20000", "too-large"),
    ("ARCHIVER_VIDEO_MAX_SECONDS", "0.01", "timeout"),
])
def test_video_caps_give_partial_never_silent_truncation(world_cli, setting, cls, value):
    result = world_cli("capture", "--no-browser", "https://www.periscope.tv/w/1OdKrBXvMbLKX", "--json",
                       env={setting: value})
    assert result.code == 1
    [outcome] = result.json()
    assert (outcome["status"], outcome["failure_class"]) == ("partial", cls)
    show = world_cli("show", outcome["capture_id"], "--json").json()
    recs = read_records(sealed_warc(world_cli.archive, show))
    media = [r for r in recs if r.type == "resource" and r.headers["WARC-Target-URI"].startswith("urn:video:")]
    for r in media:  # whatever arrived is kept, and marked as cut
        assert r.headers.get("WARC-Truncated") in ("length", "time")
    assert world_cli("verify").code == 0


@pytest.mark.contract("periscope")
def test_live_broadcast_is_recorded_up_to_the_time_cap(world_cli):
    """A live stream never ends: it is recorded until video.max_seconds, kept, and marked partial."""
    result = world_cli("capture", "--no-browser", "https://www.periscope.tv/w/1vOGwkLRXmnJB", "--json",
                       env={"ARCHIVER_VIDEO_MAX_SECONDS": "5"}, timeout=90)
    assert result.code == 1, result.err
    [outcome] = result.json()
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "timeout")
    assert outcome["seconds"] < 40
    show = world_cli("show", outcome["capture_id"], "--json").json()
    assert show["video"]["is_live"] == 1 and show["video"]["cut"] == "timeout"
    recs = read_records(sealed_warc(world_cli.archive, show))
    [media] = [r for r in recs if r.type == "resource" and r.headers["WARC-Target-URI"].startswith("urn:video:")]
    assert media.headers["WARC-Truncated"] == "time" and len(media.payload) > 10_000
    # ffmpeg was asked to finish, not killed: what was recorded is a playable file of a few seconds.
    recorded = world_cli.archive.parent / "live.mp4"
    recorded.write_bytes(media.payload)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(recorded)], capture_output=True, text=True)
    assert probe.returncode == 0 and float(probe.stdout.strip()) > 1.0, probe.stdout + probe.stderr
    # The info JSON is kept even though the download was cut.
    assert any(r.type == "metadata" and r.headers["WARC-Target-URI"].startswith("urn:yt-dlp:info:") for r in recs)


@pytest.mark.contract("x-broadcast")
def test_x_broadcast_through_yt_dlp(world_cli, site):
    """An ended X broadcast: guest token, BroadcastQuery, live_video_stream/status, then the replay's HLS."""
    site.reset_proxy_log()
    result, [outcome], [show] = _capture(world_cli, "https://x.com/i/broadcasts/1YqKDqDXRRvxV")
    assert result.code == 0 and outcome["status"] == "ok", outcome
    assert show["kind"] == "video" and show["video"]["extractor"] == "TwitterBroadcast"
    assert show["video"]["media_bytes"] > 10_000
    assert show["video"]["title"] == "Aleppo: evacuation convoy turned back — live from the checkpoint"
    assert show["provenance"]["platform"]["match"] is True
    assert any(r["type"] == "resource" and (r["uri"] or "").startswith("urn:video:") for r in show["records"])
    log = site.proxy_log
    assert ("POST", "api.x.com", "/1.1/guest/activate.json") in log
    assert ("GET", "x.com", GRAPHQL_BROADCAST.format("1YqKDqDXRRvxV")) in log
    assert ("GET", "api.x.com", "/1.1/live_video_stream/status/28_809761034716487680") in log
    assert any(e.host == "prod-video-eu-central-1.pscp.tv" and e.path.endswith("chunk_2.ts") for e in log)


@pytest.mark.contract("x-broadcast")
def test_gone_x_broadcast_is_classified(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://x.com/i/broadcasts/1ZkJzbdvXbmJv")
    assert result.code == 1
    assert outcome["failure_class"] == "gone" and outcome["job_state"] == "failed", repr(outcome)


@pytest.mark.contract("x-broadcast")
def test_an_answer_for_another_broadcast_is_partial_never_ok(world_cli):
    """X answers 1BdxYEMOnQNxX with broadcast 1YqKDqDXRRvxV: recorded, kept, and never passed off as the item."""
    result, [outcome], [show] = _capture(world_cli, "https://x.com/i/broadcasts/1BdxYEMOnQNxX")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    assert "1YqKDqDXRRvxV" in outcome["message"] and "1BdxYEMOnQNxX" in outcome["message"]
    platform = show["provenance"]["platform"]
    assert (platform["extractor"], platform["id"], platform["expected_id"], platform["match"]) == (
        "TwitterBroadcast", "1YqKDqDXRRvxV", "1BdxYEMOnQNxX", False)
    assert show["video"]["media_bytes"] > 10_000  # what was recorded is kept


HIJACK_PLUGIN = """
from yt_dlp.extractor.common import InfoExtractor


class HijackBroadcastIE(InfoExtractor):
    # A yt-dlp plugin on the capture host that hands X broadcasts to the generic extractor, as yt-dlp itself
    # did with Periscope pages when it dropped PeriscopeIE.
    _VALID_URL = r'https://x\\.com/i/broadcasts/(?P<id>\\w+)'

    def _real_extract(self, url):
        return self.url_result('https://www.periscope.tv/w/1OdKrBXvMbLKX', 'Generic')
"""


def _hijack_plugin(root):
    """A yt-dlp plugin where yt-dlp looks for them (under $XDG_CONFIG_HOME): the environment that loads it."""
    package = root / "config" / "yt-dlp" / "plugins" / "hijack" / "yt_dlp_plugins" / "extractor"
    package.mkdir(parents=True)
    (package / "hijack.py").write_text(HIJACK_PLUGIN)
    return {"XDG_CONFIG_HOME": str(root / "config")}


@pytest.mark.contract("x-broadcast")
def test_a_generic_extractor_fallback_is_partial_never_ok(world_cli, tmp_path):
    """Forced: a yt-dlp plugin, allowed by video.plugins, sends the broadcast to yt-dlp's generic extractor, which
    finds a video on a page. The capture keeps what was recorded, is partial with class extractor-mismatch, and
    names the extractor and the plugin."""
    result = world_cli("capture", "--no-browser", "https://x.com/i/broadcasts/1YqKDqDXRRvxV", "--json",
                       env={**_hijack_plugin(tmp_path), "ARCHIVER_VIDEO_PLUGINS": "true"})
    [outcome] = result.json()
    assert result.code == 1, outcome
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    show = world_cli("show", outcome["capture_id"], "--json").json()
    platform = show["provenance"]["platform"]
    assert platform["extractor"] not in ("TwitterBroadcast", None) and platform["match"] is False
    assert platform["extractor"] in outcome["message"]
    assert show["video"]["media_bytes"] > 10_000  # the fallback's video is kept, as evidence of what happened
    # Provenance names the plugin that was loaded on the capture host.
    assert "HijackBroadcast" in " ".join(show["provenance"]["video"]["yt_dlp"]["plugins"])


@pytest.mark.contract("x-broadcast")
def test_yt_dlp_plugins_on_the_host_are_not_loaded_by_default(world_cli, tmp_path):
    """The same plugin on the host, video.plugins left off: the locked yt-dlp alone runs, and the capture is ok."""
    result = world_cli("capture", "--no-browser", "https://x.com/i/broadcasts/1YqKDqDXRRvxV", "--json",
                       env=_hijack_plugin(tmp_path))
    [outcome] = result.json()
    assert result.code == 0 and outcome["status"] == "ok", outcome
    show = world_cli("show", outcome["capture_id"], "--json").json()
    assert show["provenance"]["platform"]["extractor"] == "TwitterBroadcast"
    assert show["provenance"]["video"]["yt_dlp"]["plugins"] == {}


@pytest.mark.contract("x-event")
def test_an_x_event_is_captured_as_its_broadcast(world_cli, site):
    """x.com/i/events/<id>: the event's timeline names its broadcast, read through the X broadcast path; the
    event is yt-dlp's display_id, the broadcast its id."""
    site.reset_proxy_log()
    result, [outcome], [show] = _capture(world_cli, "https://x.com/i/events/809690118522216448")
    assert result.code == 0 and outcome["status"] == "ok", outcome
    assert show["key"] == "x-event:809690118522216448"
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["extractor"], platform["id"], platform["match"]) == (
        "x-event", "TwitterBroadcast", "1YqKDqDXRRvxV", True)
    assert show["video"]["media_bytes"] > 10_000
    assert any(e.host == "api.x.com" and e.path == "/1.1/live_event/1/809690118522216448/timeline.json"
               for e in site.proxy_log)
    assert any(r["type"] == "response" and r["uri"] == "https://x.com/i/events/809690118522216448"
               for r in show["records"])  # the event's page, rendered around the broadcast


@pytest.mark.contract("x-broadcast")
def test_a_liveness_check_never_takes_another_broadcast_for_the_item(world_cli):
    """`archiver check` reads a broadcast as a capture does: the answer for another broadcast says nothing about
    this one, so the item is not live (and not gone either)."""
    [good] = world_cli("check", "https://x.com/i/broadcasts/1YqKDqDXRRvxV", "--json").json()
    assert (good["result"], good["state_after"]) == ("live", "live"), good
    [other] = world_cli("check", "https://x.com/i/broadcasts/1BdxYEMOnQNxX", "--json").json()
    assert other["result"] != "live" and other["result_class"] == "extractor-mismatch", other
    assert other["state_after"] != "gone" and "1YqKDqDXRRvxV" in other["message"]
    # A Periscope id is checked through X's broadcast path too.
    [periscope] = world_cli("check", "https://www.pscp.tv/w/1OdKrBXvMbLKX", "--json").json()
    assert periscope["result"] == "live", periscope
