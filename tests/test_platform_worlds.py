"""The yt-dlp platform paths whose fixture worlds stand in for the platform itself — Vimeo, TikTok, Instagram,
Facebook — end to end through the CLI: a public video is captured ok by the path's own extractor, with the platform's own
calls in the proxy log and real media in the WARC; an item the platform says is gone is failed, class gone.

What yt-dlp asks each platform, in order, is pinned in tests/test_world.py (``test_ytdlp_reads_*``)."""
from __future__ import annotations

import pytest

from conftest import sealed_warc
from warcutil import read_records


def _capture(cli, url):
    result = cli("capture", url, "--json")
    assert result.code in (0, 1), result.err
    [outcome] = result.json()
    show = cli("show", outcome["capture_id"], "--json").json() if outcome["capture_id"] else None
    return result, outcome, show


def _assert_captured_by_its_path(cli, outcome, show, path, extractor, item_id, min_bytes=20_000):
    """ok, from the path's own extractor and item, with the media as a urn:video: resource of real size."""
    assert outcome["status"] == "ok", outcome
    assert show["kind"] == "video" and show["video"]["extractor"] == extractor
    platform = show["provenance"]["platform"]
    assert (platform["path"], platform["extractor"], platform["id"], platform["match"]) == (
        path, extractor, item_id, True)
    assert platform["engine"] == "yt-dlp" and platform["engine_version"]
    records = read_records(sealed_warc(cli.archive, show))
    media = [r for r in records if r.type == "resource"
             and r.headers["WARC-Target-URI"].startswith("urn:video:")]
    assert media and max(len(r.payload) for r in media) >= min_bytes, [
        (r.headers["WARC-Target-URI"], len(r.payload)) for r in media]
    assert not any(r.headers.get("WARC-Truncated") for r in media)
    # The platform's thumbnail is kept beside the video.
    assert "thumbnail" in {f["kind"] for f in show["provenance"]["video"]["files"]}
    return platform


def _assert_gone(cli, url, page_status):
    """failed, class gone, with what the platform answers for ``url`` now (``page_status``) sealed beside the verdict."""
    result, outcome, show = _capture(cli, url)
    assert result.code == 1
    assert (outcome["job_state"], outcome["failure_class"]) == ("failed", "gone"), outcome
    assert any(r["type"] == "response" and r["uri"] == url and r["http_status"] == page_status
               for r in show["records"]), [(r["type"], r["uri"], r["http_status"]) for r in show["records"]]
    return outcome


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
    _assert_gone(world_cli, f"https://vimeo.com/{VIMEO_GONE}", 404)


# ---- TikTok ---------------------------------------------------------------------------------------------------

TIKTOK_VIDEO = "7106594312292453675"
TIKTOK_GONE = "7106609871234567891"


@pytest.mark.contract("tiktok")
def test_tiktok_video_is_captured_from_its_page_data(world_cli, site):
    """The video page's rehydration data holds the post; its video comes from TikTok's CDN with the page's cookie,
    its ASR captions as subtitles."""
    site.reset_proxy_log()
    result, outcome, show = _capture(world_cli, f"https://www.tiktok.com/@evac.watch/video/{TIKTOK_VIDEO}?lang=en")
    assert result.code == 0, outcome
    assert show["key"] == f"tiktok:{TIKTOK_VIDEO}"
    _assert_captured_by_its_path(world_cli, outcome, show, "tiktok", "TikTok", TIKTOK_VIDEO)
    assert show["video"]["title"].startswith("Six years ago today: the evacuation buses turned back")
    # The captions, as a resource record at the URL TikTok serves them from.
    assert any(r["type"] == "resource" and "mime_type=video_subtitle" in (r["uri"] or "") for r in show["records"]), [
        (r["type"], r["uri"]) for r in show["records"]]
    log = [(e.method, e.host, e.path.split("?")[0]) for e in site.proxy_log]
    assert ("GET", "www.tiktok.com", f"/@evac.watch/video/{TIKTOK_VIDEO}") in log
    assert any(host.endswith("-webapp-prime.tiktok.com") and p.endswith("/oQAzEfB9IgDvhQnMfRAbCe0qEeJIgT2WAkhnpD/")
               for _, host, p in log)


@pytest.mark.contract("tiktok")
def test_tiktok_embed_is_read_as_the_video(world_cli, site):
    """An embed's canonical form is one yt-dlp's TikTok extractor does not take: archiver hands it /embed/<id>,
    which the extractor reads as the video's page."""
    site.reset_proxy_log()
    result, outcome, show = _capture(world_cli, f"https://www.tiktok.com/embed/v2/{TIKTOK_VIDEO}")
    assert result.code == 0, outcome
    _assert_captured_by_its_path(world_cli, outcome, show, "tiktok", "TikTok", TIKTOK_VIDEO)
    assert ("GET", "www.tiktok.com", f"/@_/video/{TIKTOK_VIDEO}") in site.proxy_log


@pytest.mark.contract("tiktok")
def test_removed_tiktok_video_is_gone(world_cli):
    """TikTok answers a removed video's page with statusCode 10204; yt-dlp words it as an IP block."""
    result, outcome, show = _capture(world_cli, f"https://www.tiktok.com/@evac.watch/video/{TIKTOK_GONE}")
    assert result.code == 1
    assert (outcome["job_state"], outcome["failure_class"]) == ("failed", "gone"), outcome
    assert "blocked from accessing this post" in outcome["message"]


# ---- Instagram ------------------------------------------------------------------------------------------------

INSTAGRAM_REEL = "CmOs4ZTnHmh"
INSTAGRAM_GONE = "CmRRrRTnHhd"


@pytest.mark.contract("instagram")
def test_instagram_reel_is_captured_from_its_post_page(world_cli, site):
    """Logged out: a session from the home page, the post's accessibility ruling, then the post page's prefetched
    media item, whose DASH manifest gives separate video and audio (merged)."""
    site.reset_proxy_log()
    result, outcome, show = _capture(world_cli, f"https://www.instagram.com/reel/{INSTAGRAM_REEL}/?igsh=MWQ1ZGUxMzBkMA==")
    assert result.code == 0, outcome
    assert show["key"] == f"instagram:{INSTAGRAM_REEL}"
    _assert_captured_by_its_path(world_cli, outcome, show, "instagram", "Instagram", INSTAGRAM_REEL)
    assert show["video"]["title"] == "Video by evac.watch" and show["video"]["uploader"] == "Evac Watch"
    log = [(e.method, e.host, e.path.split("?")[0]) for e in site.proxy_log]
    assert ("GET", "www.instagram.com", "/api/v1/web/get_ruling_for_content/") in log
    assert ("GET", "www.instagram.com", f"/p/{INSTAGRAM_REEL}") in log
    assert sum(1 for _, host, p in log if host == "scontent-lhr8-1.cdninstagram.com" and "/m78/" in p) == 2


@pytest.mark.contract("instagram")
def test_removed_instagram_post_is_gone(world_cli):
    _assert_gone(world_cli, f"https://www.instagram.com/p/{INSTAGRAM_GONE}/", 404)


# ---- Facebook -------------------------------------------------------------------------------------------------

FACEBOOK_VIDEO = "10153231379946729"
FACEBOOK_GONE = "10153231412281735"


@pytest.mark.contract("facebook")
def test_facebook_video_is_captured_from_its_page_data(world_cli, site):
    """A page's video URL is captured as /watch/?v=<id>: logged out, the page's prefetched GraphQL answer holds the
    Video, whose DASH manifest gives separate video and audio from fbcdn (merged)."""
    site.reset_proxy_log()
    result, outcome, show = _capture(world_cli, f"https://www.facebook.com/EvacWatch/videos/{FACEBOOK_VIDEO}/")
    assert result.code == 0, outcome
    assert show["key"] == f"facebook:{FACEBOOK_VIDEO}"
    _assert_captured_by_its_path(world_cli, outcome, show, "facebook", "Facebook", FACEBOOK_VIDEO)
    assert show["video"]["title"].endswith("Six years ago today the evacuation buses were turned back at the Ramouseh "
                                           "checkpoint | By Evac Watch")
    assert show["video"]["uploader"] == "Evac Watch"
    log = [(e.method, e.host, e.path.split("?")[0]) for e in site.proxy_log]
    assert ("GET", "www.facebook.com", "/watch/") in log
    fbcdn = [p for method, host, p in log if method == "GET" and host == "video.flhr8-1.fna.fbcdn.net"]
    assert len(fbcdn) == 2 and all(p.startswith("/v/t39.25447-2/") for p in fbcdn), fbcdn


@pytest.mark.contract("facebook")
def test_removed_facebook_video_is_gone(world_cli):
    """Facebook's page of a removed video is 200 but has no video in it; yt-dlp's fallback (the tahoe endpoint)
    answers 404."""
    outcome = _assert_gone(world_cli, f"https://www.facebook.com/watch/?v={FACEBOOK_GONE}", 200)
    assert "HTTP Error 404" in outcome["message"]
