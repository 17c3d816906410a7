"""The yt-dlp platform paths whose fixture worlds stand in for the platform itself — Vimeo, TikTok, Instagram —
end to end through the CLI: a public video is captured ok by the path's own extractor, with the platform's own
calls in the proxy log and real media in the WARC; an item the platform says is gone is failed, class gone.

What yt-dlp asks each platform, in order, is pinned in tests/test_world.py (``test_ytdlp_reads_*``)."""
from __future__ import annotations

import pytest

from warcutil import read_records


def _capture(cli, url):
    result = cli("capture", url, "--json")
    assert result.code in (0, 1), result.err
    [outcome] = result.json()
    show = cli("show", outcome["capture_id"], "--json").json() if outcome["capture_id"] else None
    return result, outcome, show


def _assert_captured_by_its_path(cli, outcome, show, path, extractor, item_id, min_bytes=20_000):
    """ok, from the path's own extractor and item, with the merged media as a urn:video: resource of real size."""
    assert outcome["status"] == "ok", outcome
    assert show["kind"] == "video" and show["video"]["extractor"] == extractor
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["extractor"], platform["id"], platform["match"]) == (
        path, extractor, item_id, True)
    assert platform["engine"] == "yt-dlp" and platform["engine_version"]
    records = read_records(cli.archive / show["warc_path"])
    media = [r for r in records if r.type == "resource"
             and r.headers["WARC-Target-URI"].startswith("urn:video:")]
    assert media and max(len(r.payload) for r in media) >= min_bytes, [
        (r.headers["WARC-Target-URI"], len(r.payload)) for r in media]
    assert not any(r.headers.get("WARC-Truncated") for r in media)
    return platform


# ---- Vimeo ----------------------------------------------------------------------------------------------------

VIMEO_VIDEO = "196064873"
VIMEO_GONE = "196071120"


@pytest.mark.contract("vimeo")
def test_vimeo_video_is_captured_through_its_clip_page_and_player_config(world_cli, site):
    """vimeo.com/<id>: the clip page's clip_page_config names the player config, whose HLS CDNs give the video
    (separate audio and video renditions, merged)."""
    site.reset_proxy_log()
    result, outcome, show = _capture(world_cli, f"https://vimeo.com/channels/staffpicks/{VIMEO_VIDEO}")
    assert result.code == 0, outcome
    assert show["key"] == f"vimeo:{VIMEO_VIDEO}"
    _assert_captured_by_its_path(world_cli, outcome, show, "vimeo", "Vimeo", VIMEO_VIDEO)
    assert show["video"]["title"] == "Aleppo: the evacuation convoy turned back at the Ramouseh checkpoint"
    assert any(r["type"] == "response" and r["uri"] == f"https://vimeo.com/channels/staffpicks/{VIMEO_VIDEO}" and r["http_status"] == 200
               for r in show["records"])  # the clip page, rendered around the video
    log = [(e.method, e.host, e.path.split("?")[0]) for e in site.proxy_log]
    assert ("GET", "vimeo.com", f"/{VIMEO_VIDEO}") in log
    assert ("GET", "player.vimeo.com", f"/video/{VIMEO_VIDEO}/config") in log
    assert any(host.endswith(".vimeocdn.com") and p.endswith("/segment-1.m4s") for _, host, p in log)


@pytest.mark.contract("vimeo")
def test_removed_vimeo_video_is_gone(world_cli):
    result, outcome, show = _capture(world_cli, f"https://vimeo.com/{VIMEO_GONE}")
    assert result.code == 1
    assert (outcome["job_state"], outcome["failure_class"]) == ("failed", "gone"), outcome
    # What vimeo.com answers now is sealed beside the verdict.
    assert any(r["type"] == "response" and r["uri"] == f"https://vimeo.com/{VIMEO_GONE}" and r["http_status"] == 404
               for r in show["records"])
