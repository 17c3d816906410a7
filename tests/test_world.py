"""The fixture world behind the demo server's proxy: twitter/x, t.co, twimg and Periscope under their real host
names, reached by the real clients (httpx, Chromium, yt-dlp) through a forward proxy and a test CA."""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import demo_server

WORLD = demo_server.WORLD_ROOT
TWEETS = {k: v for k, v in json.loads((WORLD / "tweets.json").read_text()).items() if not k.startswith("_")}
STORED = {p.stem: json.loads(p.read_text()) for p in sorted((WORLD / "syndication").glob("*.json"))}

TEXT_TWEET = "809711419431133184"
PHOTO_TWEET = "809735236813459457"  # its created_at is 3 hours later than its snowflake, on purpose
VIDEO_TWEET = "809745591946145792"
QUOTE_TWEET = "809754111092273152"
HLS_TWEET = "809698357346996224"
DELETED_TWEET = "809760211384950784"
EMPTY_TWEET = "809768512188825600"
NOT_FOUND_TWEET = "809771205913751552"

BROADCAST = "1OdKrBXvMbLKX"
GONE_BROADCAST = "1gqxvQWbXrAJB"
VIDEO_MASTER = "https://video.twimg.com/ext_tw_video/809745523581321216/pu/pl/Nh5sQe8VbT1yZr3K.m3u8?tag=12"

SNOWFLAKE_EPOCH_MS = 1288834974657

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def world():
    server = demo_server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(world):
    context = ssl.create_default_context(cafile=world.ca_file)
    with httpx.Client(proxy=world.proxy_url, verify=context, timeout=20) as c:
        yield c


def syndication_url(tweet_id: str, token: str | None = None) -> str:
    token = TWEETS[tweet_id]["token"] if token is None else token
    return f"https://cdn.syndication.twimg.com/tweet-result?id={tweet_id}&token={token}&lang=en"


def snowflake_time(tweet_id: str) -> datetime.datetime:
    ms = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out)


# ---- the fixture data agrees with itself ------------------------------------------------------------------


def test_stored_tweets_are_consistent_with_their_ids():
    assert set(STORED) == {t for t, v in TWEETS.items() if v["state"] == "available"}
    for tweet_id, data in STORED.items():
        assert data["__typename"] == "Tweet" and data["id_str"] == tweet_id
        created = datetime.datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
        drift = (created - snowflake_time(tweet_id)).total_seconds()
        if tweet_id == PHOTO_TWEET:
            assert 3 * 3600 - 1 < drift <= 3 * 3600  # the one the archiver's cross-check has to catch
        else:
            assert -1 < drift <= 0  # created_at is the snowflake time truncated to the second
    assert STORED[QUOTE_TWEET]["quoted_tweet"]["id_str"] == PHOTO_TWEET
    assert STORED[QUOTE_TWEET]["quoted_tweet"]["created_at"] == STORED[PHOTO_TWEET]["created_at"]


@pytest.mark.parametrize("tweet_id", sorted(STORED))
def test_entity_indices_point_into_the_text(tweet_id):
    data = STORED[tweet_id]
    for tweet in (data, data.get("quoted_tweet")):
        if tweet is None:
            continue
        text = tweet["text"]
        entities = tweet["entities"]
        for tag in entities["hashtags"]:
            assert text[slice(*tag["indices"])] == "#" + tag["text"]
        for link in entities["urls"] + entities.get("media", []):
            assert text[slice(*link["indices"])] == link["url"]
        for media in tweet.get("mediaDetails", []):
            assert text[slice(*media["indices"])] == media["url"]
        assert 0 <= tweet["display_text_range"][0] <= tweet["display_text_range"][1] <= len(text)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_stored_tokens_are_the_widget_formula():
    ids = sorted(TWEETS)
    script = ("const ids=" + json.dumps(ids) + ";console.log(JSON.stringify(ids.map(id=>"
              "((Number(id)/1e15)*Math.PI).toString(36).replace(/(0+|\\.)/g,''))))")
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [TWEETS[i]["token"] for i in ids]


def test_binary_fixtures_stay_small():
    total = sum(p.stat().st_size for p in WORLD.rglob("*") if p.is_file() and p.suffix in (".jpg", ".mp4", ".ts"))
    assert total < 3_000_000


# ---- httpx through the proxy --------------------------------------------------------------------------------


def test_syndication_answers_a_tweet(client, world):
    res = client.get(syndication_url(TEXT_TWEET))
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("application/json")
    assert res.headers["access-control-allow-origin"] == "*"
    data = res.json()
    assert data["__typename"] == "Tweet" and data["user"]["screen_name"] == "evac_watch_demo"
    assert data["entities"]["urls"][0]["url"] == "https://t.co/Rb8cKq2xQm"
    assert ("GET", "cdn.syndication.twimg.com", f"/tweet-result?id={TEXT_TWEET}&token=1yns7chsuw&lang=en") \
        in world.proxy_log
    assert ("CONNECT", "cdn.syndication.twimg.com", "") in world.proxy_log


@pytest.mark.parametrize("token", ["wrongtoken", ""])
def test_syndication_checks_the_token(client, token):
    res = client.get(syndication_url(TEXT_TWEET, token))
    assert res.status_code == 400
    assert res.json() == {"error": "Invalid token"}


def test_syndication_tombstones_empty_and_not_found(client):
    deleted = client.get(syndication_url(DELETED_TWEET))
    assert deleted.status_code == 200
    assert deleted.json() == {"__typename": "TweetTombstone", "tombstone": {"text": {
        "text": "This Post was deleted by the Post author. Learn more",
        "entities": [{"from_index": 40, "to_index": 50, "ref": {
            "__typename": "TimelineUrl", "url": "https://help.x.com/rules-and-policies/notices-on-x",
            "url_type": "ExternalUrl"}}],
        "rtl": False}}}
    texts = {state: client.get(syndication_url(tweet_id)).json()["tombstone"]["text"]["text"]
             for tweet_id, state in ((t, v["state"]) for t, v in TWEETS.items())
             if state in ("suspended", "protected", "age-restricted")}
    assert texts["suspended"] == "This Post is from a suspended account. Learn more"
    assert texts["protected"].startswith("You’re unable to view this Post")
    assert texts["age-restricted"].startswith("Age-restricted adult content.")
    empty = client.get(syndication_url(EMPTY_TWEET))
    assert (empty.status_code, empty.headers["content-type"], empty.content) == (200, "application/json;charset=utf-8",
                                                                                 b"{}")
    missing = client.get(syndication_url(NOT_FOUND_TWEET))
    assert (missing.status_code, missing.content) == (404, b"")


def test_a_tweet_can_turn_into_a_tombstone(client, world):
    try:
        world.set_tweet_state(TEXT_TWEET, "deleted")
        assert client.get(syndication_url(TEXT_TWEET)).json()["__typename"] == "TweetTombstone"
        page = client.get(f"https://x.com/evac_watch_demo/status/{TEXT_TWEET}")
        assert "This Post was deleted by the Post author." in page.text
        world.set_tweet_state(TEXT_TWEET, "available")
        assert client.get(syndication_url(TEXT_TWEET)).json()["__typename"] == "Tweet"
        world.set_tweet_state(DELETED_TWEET, "not-found")
        assert client.get(syndication_url(DELETED_TWEET)).status_code == 404
    finally:
        world.reset_tweet_states()
    assert client.get(syndication_url(DELETED_TWEET)).json()["__typename"] == "TweetTombstone"
    with pytest.raises(ValueError):
        world.set_tweet_state(DELETED_TWEET, "available")  # nothing stored to show
    with pytest.raises(KeyError):
        world.set_tweet_state("1", "deleted")


def test_tco_redirects(client):
    res = client.get("https://t.co/Rb8cKq2xQm")
    assert res.status_code == 301
    assert res.headers["location"] == "https://www.levantledger.example/2016/12/16/evacuation-suspended/"
    assert client.get("https://t.co/4HqLmT0sVe").headers["location"] == "https://www.periscope.tv/w/1OdKrBXvMbLKX"
    assert client.get("https://t.co/NoSuchCode").status_code == 404


def test_photos_in_every_size(client):
    orig = client.get("https://pbs.twimg.com/media/Cz0uXgDWIAAhR3k.jpg?name=orig")
    assert orig.status_code == 200 and orig.headers["content-type"] == "image/jpeg"
    assert orig.content == (WORLD / "pbs.twimg.com/media/Cz0uXgDWIAAhR3k/orig.jpg").read_bytes()
    assert orig.content.startswith(b"\xff\xd8")
    same = [client.get("https://pbs.twimg.com/media/Cz0uXgDWIAAhR3k?format=jpg&name=orig").content,
            client.get("https://pbs.twimg.com/media/Cz0uXgDWIAAhR3k.jpg:orig").content]
    assert same == [orig.content, orig.content]
    small = client.get("https://pbs.twimg.com/media/Cz0uXgDWIAAhR3k?format=jpg&name=small")
    assert small.status_code == 200 and small.content.startswith(b"\xff\xd8") and len(small.content) < len(orig.content)
    assert client.get("https://pbs.twimg.com/media/Cz0uXgDWIAAhR3k.jpg?name=bogus").status_code == 404
    assert client.get("https://pbs.twimg.com/media/NoSuchKey.jpg?name=orig").status_code == 404


def test_every_media_url_in_the_fixtures_is_served(client):
    urls = set()
    for data in STORED.values():
        urls.add(data["user"]["profile_image_url_https"])
        for tweet in (data, data.get("quoted_tweet") or {}):
            for media in tweet.get("mediaDetails", []):
                urls.add(media["media_url_https"] + ("?name=orig" if media["type"] == "photo" else ""))
                for variant in (media.get("video_info") or {}).get("variants", []):
                    urls.add(variant["url"])
        for photo in data.get("photos", []):
            urls.add(photo["url"])
        if "video" in data:
            urls.add(data["video"]["poster"])
            urls.update(v["src"] for v in data["video"]["variants"])
    types = {".jpg": "image/jpeg", ".mp4": "video/mp4", ".m3u8": "application/x-mpegURL"}
    for url in sorted(urls):
        res = client.get(url)
        assert res.status_code == 200, url
        assert res.headers["content-type"] == types[Path(httpx.URL(url).path).suffix], url
    # Segments named in every playlist exist too.
    playlists = [u for u in urls if ".m3u8" in u]
    assert playlists
    for url in playlists:
        for line in client.get(url).text.splitlines():
            if line and not line.startswith("#"):
                assert client.head(httpx.URL(url).join(line)).status_code == 200, line


def test_mp4_range_requests(client):
    url = STORED[VIDEO_TWEET]["mediaDetails"][0]["video_info"]["variants"][-1]["url"]
    full = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(full)}"
    assert part.content == full[100:200]
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full[-10:]
    assert client.get(url, headers={"Range": f"bytes={len(full)}-"}).status_code == 416
    assert ffprobe_duration_bytes(full) == pytest.approx(4.0, abs=0.2)
    sizes = {len(client.get(v["url"]).content)
             for v in STORED[VIDEO_TWEET]["mediaDetails"][0]["video_info"]["variants"] if v.get("bitrate")}
    assert len(sizes) == 3 and sum(sizes) < 1_500_000


def ffprobe_duration_bytes(data: bytes) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-"],
                         input=data, capture_output=True, check=True).stdout
    return float(out)


def test_status_pages_and_periscope_pages(client):
    page = client.get(f"https://twitter.com/evac_watch_demo/status/{TEXT_TWEET}")
    assert page.status_code == 200
    assert "<title>Evacuation Watch (demo) on X: &quot;Regime-allied fighters" in page.text
    assert '<meta property="og:title" content="Evacuation Watch (demo) on X">' in page.text
    assert client.get(f"https://x.com/evac_watch_demo/status/{PHOTO_TWEET}/photo/1").status_code == 200
    broadcast = client.get(f"https://www.periscope.tv/w/{BROADCAST}")
    assert broadcast.status_code == 200
    assert '<meta property="og:title" content="@Mr.Alhamdo (@Mr_Alhamdo) on Periscope">' in broadcast.text
    assert "https://prod-video-eu-central-1.pscp.tv/" in broadcast.text and "playlist.m3u8" in broadcast.text
    assert client.get(f"https://pscp.tv/w/{BROADCAST}").status_code == 200
    gone = client.get(f"https://www.periscope.tv/w/{GONE_BROADCAST}")
    assert gone.status_code == 404 and "This broadcast has been deleted" in gone.text
    # No supported path calls Periscope's API any more (yt-dlp 2026.11 dropped PeriscopeIE): the world refuses it.
    with pytest.raises(httpx.ProxyError, match="502"):
        client.get(f"https://api.periscope.tv/api/v2/accessVideoPublic?broadcast_id={GONE_BROADCAST}")


def test_the_news_site_is_also_a_world_host(client, world):
    article = client.get("https://www.levantledger.example/2016/12/16/aleppo-live/")
    assert article.status_code == 200 and "The Levant" in article.text
    plain = client.get("http://www.levantledger.example/static/site.css")
    assert plain.status_code == 200
    # The site's own loopback address through the proxy (Chromium with <-loopback> sends it there).
    direct = client.get(world.article_url)
    assert direct.status_code == 200 and direct.text == article.text


def test_world_files_are_not_served_by_the_news_site(world):
    assert httpx.get(world.url + "/world/tweets.json").status_code == 404
    assert httpx.get(world.url + "/world/pbs.twimg.com/media/Cz0uXgDWIAAhR3k/orig.jpg").status_code == 404


def test_the_article_links_the_world_but_loads_nothing_from_it(world):
    page = httpx.get(world.article_url).text
    for link in ("https://t.co/Rb8cKq2xQm", f"https://www.periscope.tv/w/{BROADCAST}",
                 f"https://pscp.tv/w/{GONE_BROADCAST}", f"/status/{PHOTO_TWEET}", f"/status/{DELETED_TWEET}"):
        assert f'href="{link}' in page or link in page, link
    # No widgets.js, no external iframe, image or stylesheet: the article is captured without the proxy too.
    assert not re.search(r"""<(?:script|iframe|img|video|source|link)\b[^>]*(?:src|href)=["']?(?:https?:)?//""", page)


# ---- the proxy never leaves the world -------------------------------------------------------------------------


def test_unknown_hosts_get_502_and_nothing_is_forwarded(world, client):
    res = client.get("http://example.com/")
    assert res.status_code == 502 and b"nothing was forwarded" in res.content
    with pytest.raises(httpx.ProxyError):
        client.get("https://example.com/")
    assert ("CONNECT", "example.com", "") in world.proxy_log
    # Another loopback port is not the site: refused, not connected to.
    other = client.get(f"http://127.0.0.1:{world.proxy_port}/")
    assert other.status_code == 502
    # A world host on a port it does not serve.
    with pytest.raises(httpx.ProxyError):
        client.get("https://t.co:8443/Rb8cKq2xQm")


def test_a_client_that_does_not_trust_the_ca_fails_tls(world):
    with httpx.Client(proxy=world.proxy_url, verify=ssl.create_default_context(), timeout=10) as untrusting:
        with pytest.raises(httpx.ConnectError):
            untrusting.get("https://t.co/Rb8cKq2xQm")


def test_certificates_name_the_host_and_chain_to_the_ca(world):
    with socket.create_connection(("127.0.0.1", world.proxy_port), timeout=10) as raw:
        raw.sendall(b"CONNECT pbs.twimg.com:443 HTTP/1.1\r\nHost: pbs.twimg.com:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=world.ca_file)
        with context.wrap_socket(raw, server_hostname="pbs.twimg.com") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            chain = tls.getpeercert()
            assert ("DNS", "pbs.twimg.com") in chain["subjectAltName"]
    pem = Path(world.ca_file).read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    pub = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", world.ca_file], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    assert world.ca_spki_sha256 == base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_stop_is_quick_with_an_open_tunnel():
    server = demo_server.start()
    raw = socket.create_connection(("127.0.0.1", server.proxy_port), timeout=10)
    try:
        raw.sendall(b"CONNECT t.co:443 HTTP/1.1\r\nHost: t.co:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        tls = ssl.create_default_context(cafile=server.ca_file).wrap_socket(raw, server_hostname="t.co")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        tls.close()
    finally:
        raw.close()


# ---- Chromium -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(world):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--proxy-server={world.proxy_url}",
            f"--ignore-certificate-errors-spki-list={world.ca_spki_sha256}"])
        try:
            yield chromium
        finally:
            chromium.close()


def embed(browser, tweet_id: str):
    page = browser.new_page()
    page.goto(f"https://platform.twitter.com/embed/Tweet.html?id={tweet_id}")
    page.wait_for_selector("html[data-tweet-state]", timeout=20000)
    return page


def test_chromium_renders_the_embed(browser, world):
    page = embed(browser, TEXT_TWEET)
    try:
        assert page.get_attribute("html", "data-tweet-state") == "rendered"
        text = page.inner_text("body")
        assert "Regime-allied fighters piling rubble across the road" in text
        assert "Evacuation Watch (demo)" in text and "@evac_watch_demo" in text
        assert "10:47 AM · Dec 16, 2016" in text
        # The token was computed in the browser, by the widget formula, for every fixture id.
        tokens = page.evaluate("ids => ids.map(id => ((Number(id) / 1e15) * Math.PI).toString(36)"
                               ".replace(/(0+|\\.)/g, ''))", sorted(TWEETS))
        assert tokens == [TWEETS[i]["token"] for i in sorted(TWEETS)]
    finally:
        page.close()
    assert ("GET", "cdn.syndication.twimg.com", f"/tweet-result?id={TEXT_TWEET}&token=1yns7chsuw&lang=en") \
        in world.proxy_log


def test_chromium_renders_photos_and_quotes(browser):
    page = embed(browser, QUOTE_TWEET)
    try:
        assert page.get_attribute("html", "data-tweet-state") == "rendered"
        assert "Buses of the halted evacuation convoy" in page.inner_text(".quote")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20000)
        widths = page.eval_on_selector_all(".media img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and all(w > 0 for w in widths)
    finally:
        page.close()


@pytest.mark.parametrize("tweet_id", [DELETED_TWEET, NOT_FOUND_TWEET, EMPTY_TWEET])
def test_chromium_shows_unavailable_tweets(browser, tweet_id):
    page = embed(browser, tweet_id)
    try:
        assert page.get_attribute("html", "data-tweet-state") == "unavailable"
        assert "This Post is unavailable." in page.inner_text("body")
    finally:
        page.close()


# ---- yt-dlp ---------------------------------------------------------------------------------------------------


def ytdlp(world, tmp_path: Path):
    import yt_dlp
    return yt_dlp.YoutubeDL({"proxy": world.proxy_url, "outtmpl": str(tmp_path / "%(id)s.%(ext)s"), "quiet": True,
                             "no_warnings": True, "noprogress": True, "cachedir": False,
                             "compat_opts": ["no-certifi"]})


@pytest.mark.contract("periscope")
def test_ytdlp_reads_the_periscope_broadcast_through_x(world, tmp_path, monkeypatch):
    """What yt-dlp 2026.11's twitter:broadcast extractor asks X, in order, for a Periscope broadcast id."""
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    world.reset_proxy_log()
    with ytdlp(world, tmp_path) as ydl:
        info = ydl.extract_info(f"https://x.com/i/broadcasts/{BROADCAST}", download=True)
    assert info["extractor_key"] == "TwitterBroadcast"
    assert info["id"] == BROADCAST and info["uploader_id"] == "Mr_Alhamdo"
    assert info["title"] == "Teacher, Activist and a reporter from inside Aleppo"
    assert info["live_status"] == "was_live" and info["timestamp"] == 1481906708
    files = list(tmp_path.glob(f"{BROADCAST}.*"))
    assert len(files) == 1 and files[0].suffix == ".mp4"
    assert ffprobe_duration(files[0]) == pytest.approx(5.0, abs=0.5)
    calls = [(e.method, e.host, e.path.split("?")[0]) for e in world.proxy_log if e.method != "CONNECT"]
    assert calls[:4] == [
        ("POST", "api.x.com", "/1.1/guest/activate.json"),
        ("GET", "x.com", "/i/api/graphql/0THBwNgta8LrS-cno61adw/BroadcastQuery"),
        ("POST", "api.x.com", "/1.1/guest/activate.json"),
        ("GET", "api.x.com", "/1.1/live_video_stream/status/28_809698290183311361"),
    ], calls
    assert any(e.host == "prod-video-eu-central-1.pscp.tv" and e.path.endswith("chunk_2.ts") for e in world.proxy_log)


def ytdlp_calls(world) -> list[tuple[str, str, str]]:
    """(method, host, path without query) of what went through the proxy, tunnels left out."""
    return [(e.method, e.host, e.path.split("?")[0]) for e in world.proxy_log if e.method != "CONNECT"]


VIMEO_MEDIA = ("/exp=1481943600~hmac=5ff3f9e75453c87655395f5ba82e5577974408252e9406226ec90077bc2536ad/"
               "aa3da87e-9682-40f1-9f97-313f3c3f1cff/v2")


@pytest.mark.contract("vimeo")
def test_ytdlp_reads_the_vimeo_clip_page_then_the_player_config(world, tmp_path, monkeypatch):
    """What yt-dlp 2026.11's vimeo extractor asks, in order, for https://vimeo.com/<id> logged out."""
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    world.reset_proxy_log()
    with ytdlp(world, tmp_path) as ydl:
        info = ydl.extract_info("https://vimeo.com/196064873", download=True)
    assert (info["extractor_key"], info["id"]) == ("Vimeo", "196064873")
    assert info["title"] == "Aleppo: the evacuation convoy turned back at the Ramouseh checkpoint"
    assert (info["uploader"], info["uploader_id"]) == ("Levant Ledger Video", "levantledger")
    assert info["timestamp"] == 1481902930 and info["duration"] == 4 and info["view_count"] == 1423
    # Separate audio and video renditions from one of the two CDNs, merged.
    assert "+" in info["format_id"] and "audio-high" in info["format_id"]
    [media] = tmp_path.glob("196064873.*")
    assert media.suffix == ".mp4" and ffprobe_duration(media) == pytest.approx(4.0, abs=0.5)
    calls = ytdlp_calls(world)
    assert calls[:4] == [
        ("GET", "vimeo.com", "/196064873"),
        ("GET", "player.vimeo.com", "/video/196064873/config"),
        ("GET", "vod-adaptive-ak.vimeocdn.com", VIMEO_MEDIA + "/playlist/av/primary/playlist.m3u8"),
        ("GET", "skyfire.vimeocdn.com", VIMEO_MEDIA + "/playlist/av/primary/playlist.m3u8"),
    ], calls
    cdn = info["format_id"].split("-")[1]
    host = {"akfire_interconnect_quic": "vod-adaptive-ak.vimeocdn.com", "fastly_skyfire": "skyfire.vimeocdn.com"}[cdn]
    assert {c[2].rsplit("/", 1)[1] for c in calls[4:] if c[1] == host} == {
        "media.m3u8", "init.mp4", "segment-0.m4s", "segment-1.m4s", "segment-2.m4s"}


TIKTOK_OBJECTS = "/video/tos/useast2a/tos-useast2a-ve-0068c001"


@pytest.mark.contract("tiktok")
@pytest.mark.parametrize("url,page", [
    ("https://www.tiktok.com/@evac.watch/video/7106594312292453675", "/@evac.watch/video/7106594312292453675"),
    # archiver's media_url for an embed: the extractor asks for the video's page under the user "_".
    ("https://www.tiktok.com/embed/7106594312292453675", "/@_/video/7106594312292453675"),
])
def test_ytdlp_reads_the_tiktok_page_data_then_the_cdn(world, tmp_path, monkeypatch, url, page):
    """What yt-dlp 2026.11's TikTok extractor asks, in order, for a video without app credentials: the page (whose
    rehydration data holds the post and which sets tt_chain_token), then the captions and the video from the CDN."""
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    world.reset_proxy_log()
    with ytdlp(world, tmp_path) as ydl:
        ydl.params.update({"writesubtitles": True, "subtitleslangs": ["all"]})
        info = ydl.extract_info(url, download=True)
    assert (info["extractor_key"], info["id"]) == ("TikTok", "7106594312292453675")
    assert (info["uploader"], info["uploader_id"], info["channel"]) == ("evac.watch", "6820838815978423302", "Evac Watch")
    assert info["channel_id"] == "MS4wLjABAAAAepiJKgwWhulvCpSuUVsp7sgVVsFJbbNaLeQ6OQ0oAJERGDUIXhb2yxxHZedsItgT"
    assert info["timestamp"] == 1654632927 and info["duration"] == 4
    assert (info["view_count"], info["like_count"], info["repost_count"]) == (24100, 1834, 212)
    assert info["track"] == "original sound - evac.watch" and info["artists"] == ["Evac Watch"]
    # The www.tiktok.com play URL is left out (yt-dlp#11034); the 360p H.264 variant comes from one of its two hosts.
    assert info["format_id"].startswith("h264_360p_63248") and (info["width"], info["height"]) == (360, 640)
    assert not any("www.tiktok.com" in f["url"] for f in info["formats"])
    assert {f["format_id"] for f in info["formats"]} >= {"audio", "download"}
    assert ffprobe_duration(tmp_path / "7106594312292453675.mp4") == pytest.approx(4.0, abs=0.5)
    assert (tmp_path / "7106594312292453675.eng-US.vtt").read_text().startswith("WEBVTT")
    calls = ytdlp_calls(world)
    assert calls == [
        ("GET", "www.tiktok.com", page),
        ("GET", "v16-webapp-prime.tiktok.com", TIKTOK_OBJECTS + "/oEkQfDbCIAgtMAuhrBJeDmZnQW4ofIzEdAQ8Sg/"),
        ("GET", info["url"].split("/")[2], TIKTOK_OBJECTS + "/oQAzEfB9IgDvhQnMfRAbCe0qEeJIgT2WAkhnpD/"),
    ], calls


def test_tiktok_cdn_wants_the_pages_cookie(client):
    """Without the tt_chain_token tiktok.com sets, the video CDN answers 403 (so a client that does not keep the
    page's cookies fails as it would against TikTok)."""
    video = json.loads((WORLD / "tiktok.json").read_text())["7106594312292453675"]["itemStruct"]["video"]
    client.cookies.clear()
    assert client.get(video["playAddr"]).status_code == 403
    page = client.get("https://www.tiktok.com/@evac.watch/video/7106594312292453675")
    assert page.status_code == 200 and "tt_chain_token" in client.cookies
    answer = client.get(video["playAddr"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    assert len(answer.content) == video["bitrateInfo"][0]["PlayAddr"]["DataSize"]
    client.cookies.clear()


@pytest.mark.contract("instagram")
def test_ytdlp_reads_the_instagram_post_page_logged_out(world, tmp_path, monkeypatch):
    """What yt-dlp 2026.11's Instagram extractor asks, in order, logged out and without impersonation (its GraphQL
    POST is made only with curl_cffi): a session from the home page (LSD token, csrftoken), the post's ruling, the
    post page's prefetched media item; then the DASH video and audio it chose."""
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    world.reset_proxy_log()
    with ytdlp(world, tmp_path) as ydl:
        info = ydl.extract_info("https://www.instagram.com/reel/CmOs4ZTnHmh/", download=True)
    assert (info["extractor_key"], info["id"]) == ("Instagram", "CmOs4ZTnHmh")
    assert (info["title"], info["channel"], info["uploader"]) == ("Video by evac.watch", "evac.watch", "Evac Watch")
    assert info["uploader_id"] == "52184936720" and info["timestamp"] == 1671195600
    assert (info["like_count"], info["comment_count"], info["duration"]) == (2418, 57, 4.023)
    assert info["description"].startswith("Six years ago today") and len(info["comments"]) == 1
    assert info["format_id"] == "dash-1187443625242760v+dash-1187443628576093a"
    assert ffprobe_duration(tmp_path / "CmOs4ZTnHmh.mp4") == pytest.approx(4.0, abs=0.5)
    calls = ytdlp_calls(world)
    assert calls == [
        ("GET", "www.instagram.com", "/"),
        ("GET", "www.instagram.com", "/api/v1/web/get_ruling_for_content/"),
        ("GET", "www.instagram.com", "/p/CmOs4ZTnHmh"),
        ("GET", "scontent-lhr8-1.cdninstagram.com", "/o1/v/t2/f2/m78/AQOv7Hk2Tq9XbL4mR8sN1cWd3eJyF6uZpA0gC5iV.mp4"),
        ("GET", "scontent-lhr8-1.cdninstagram.com", "/o1/v/t2/f2/m78/AQNa5Rj8Wd1YcM6kT3vP0bXe7sLqH2gZfU9nB4oE.mp4"),
    ], calls


FACEBOOK_VIDEO = "10153231379946729"


@pytest.mark.contract("facebook")
def test_ytdlp_reads_the_facebook_video_page_logged_out(world, tmp_path, monkeypatch):
    """What yt-dlp 2026.11's facebook extractor asks, in order, for https://www.facebook.com/watch/?v=<id> logged out:
    the page alone (its data-sjs RelayPrefetchedStreamCache holds the Video, whose delivery fields carry the DASH
    manifest inline), then the DASH video and audio it chose from fbcdn."""
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    world.reset_proxy_log()
    with ytdlp(world, tmp_path) as ydl:
        info = ydl.extract_info(f"https://www.facebook.com/watch/?v={FACEBOOK_VIDEO}", download=True)
    assert (info["extractor_key"], info["id"]) == ("Facebook", FACEBOOK_VIDEO)
    assert info["title"] == ("1.8K views \u00b7 212 reactions | Six years ago today the evacuation buses were turned "
                             "back at the Ramouseh checkpoint | By Evac Watch")
    assert (info["uploader"], info["uploader_id"]) == ("Evac Watch", "100064592087513")
    assert info["timestamp"] == 1671196020 and info["duration"] == 4.023 and info["view_count"] == 1843
    assert info["description"].startswith("Six years ago today")
    assert info["thumbnail"].startswith("https://scontent.flhr8-1.fna.fbcdn.net/v/t15.5256-10/")
    # DASH (separate video and audio, merged) before the progressive SD MP4, which both delivery fields name (so
    # twice); no HD encoding of a 360p upload.
    assert info["format_id"] == "1026479478726498v+1350721322716531a" and (info["width"], info["height"]) == (360, 640)
    assert [f["format_id"] for f in info["formats"]] == ["1350721322716531a", "sd-0", "sd-1", "1026479478726498v"]
    # yt-dlp fetches Facebook's media with a crawler's User-Agent (browsers' are rate limited).
    assert {f["http_headers"]["User-Agent"] for f in info["requested_formats"]} == {"facebookexternalhit/1.1"}
    assert ffprobe_duration(tmp_path / f"{FACEBOOK_VIDEO}.mp4") == pytest.approx(4.0, abs=0.5)
    assert ytdlp_calls(world) == [
        ("GET", "www.facebook.com", "/watch/"),
        ("GET", "video.flhr8-1.fna.fbcdn.net", "/v/t39.25447-2/319051337_1026479478726498_6392177441608013417_n.mp4"),
        ("GET", "video.flhr8-1.fna.fbcdn.net", "/v/t39.25447-2/319060482_1350721322716531_2871530094467781294_n.mp4"),
    ], ytdlp_calls(world)


def test_fbcdn_checks_the_url_signature(client):
    """fbcdn's URLs are signed: without the oh= Facebook issued, 403 (so a URL that was not the page's fails as it
    would against Facebook's CDN)."""
    url = next(iter(json.loads((WORLD / "facebook.json").read_text())["cdn"]))
    assert client.get(url).status_code == 200
    assert client.get(url.replace("&oh=00_", "&oh=01_")).status_code == 403


@pytest.mark.parametrize("url,error", [
    # Vimeo answers the clip page of a removed video with 404.
    pytest.param("https://vimeo.com/196071120", "HTTP Error 404", marks=pytest.mark.contract("vimeo")),
    # TikTok's statusCode 10204, in yt-dlp 2026.11's words.
    pytest.param("https://www.tiktok.com/@evac.watch/video/7106609871234567891", "blocked from accessing this post",
                 marks=pytest.mark.contract("tiktok")),
    # Instagram's post page of a removed post: 404, "Sorry, this page isn't available."
    pytest.param("https://www.instagram.com/p/CmRRrRTnHhd/", "HTTP Error 404", marks=pytest.mark.contract("instagram")),
    # Facebook's page of a removed video has no video in it; yt-dlp then asks the tahoe endpoint, which answers 404.
    pytest.param("https://www.facebook.com/watch/?v=10153231412281735", "HTTP Error 404",
                 marks=pytest.mark.contract("facebook")),
])
def test_ytdlp_reports_the_removed_video(world, tmp_path, monkeypatch, url, error):
    import yt_dlp
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    with ytdlp(world, tmp_path) as ydl:
        with pytest.raises(yt_dlp.utils.DownloadError, match=error):
            ydl.extract_info(url, download=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.contract("periscope")
def test_ytdlp_reports_the_deleted_broadcast(world, tmp_path, monkeypatch):
    import yt_dlp
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    with ytdlp(world, tmp_path) as ydl:
        with pytest.raises(yt_dlp.utils.DownloadError, match="no longer available"):
            ydl.extract_info(f"https://x.com/i/broadcasts/{GONE_BROADCAST}", download=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("headers,status", [
    ({}, 403),                                                       # no bearer token
    ({"Authorization": "Bearer AAAA"}, 403),                         # no guest token
    ({"Authorization": "Bearer AAAA", "x-guest-token": "1869283746512098304"}, 200),
])
def test_broadcast_query_wants_x_credentials(client, headers, status):
    url = ("https://x.com/i/api/graphql/0THBwNgta8LrS-cno61adw/BroadcastQuery?variables="
           f"%7B%22id%22%3A%22{BROADCAST}%22%7D")
    answer = client.get(url, headers=headers)
    assert answer.status_code == status
    if status == 200:
        broadcast = answer.json()["data"]["broadcast"]
        assert broadcast["broadcast_id"] == BROADCAST and broadcast["media_key"]


@pytest.mark.parametrize("url", [
    VIDEO_MASTER,
    STORED[HLS_TWEET]["mediaDetails"][0]["video_info"]["variants"][0]["url"],
])
def test_ytdlp_downloads_twitter_hls(world, tmp_path, monkeypatch, url):
    monkeypatch.setenv("SSL_CERT_FILE", world.ca_file)
    with ytdlp(world, tmp_path) as ydl:
        info = ydl.extract_info(url, download=True)
    assert info["extractor"] == "generic"
    files = [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    assert len(files) == 1
    assert ffprobe_duration(files[0]) == pytest.approx(4.0, abs=0.5)
