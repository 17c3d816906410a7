"""The workbench as an investigator uses it, end to end, in Debian's Chromium against a real `archiver serve`
(issue 13's test): search -> open a capture -> its screenshot is visible -> the archived page replays, with the text
its JavaScript added at capture time, offline, on its own origin -> a tweet's video plays from the WARC (its
currentTime advances) -> the two captures, checked on the search page, export as a WACZ that `wacz validate`
accepts. Takes the README's screenshot of a capture's replay (with ARCHIVER_DOCS_SCREENSHOTS=1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

from conftest import index_conn
from test_web_core import Workbench, chromium, screenshot_path, watched_page  # noqa: F401 - chromium is a fixture

ARTICLE = "https://www.levantledger.example/2016/12/16/aleppo-live/"
VIDEO_TWEET = "https://x.com/aleppo_desk_demo/status/809745591946145792"
TIMEOUT_MS = 45_000


def test_search_capture_replay_video_and_export(world_cli, site, chromium, tmp_path):
    for url in (ARTICLE, VIDEO_TWEET):
        result = world_cli("capture", url, "--tag", "aleppo", "--json")
        assert result.code == 0, result.err
    article, tweet = (world_cli("show", url, "--json").json() for url in (ARTICLE, VIDEO_TWEET))
    bench = Workbench(world_cli)
    try:
        assert bench.origin.startswith("http://archive.localhost:")
        with watched_page(chromium) as page:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{bench.origin}/?q=Ramouseh")
            page.locator(f'a.title[href="/capture/{article["id"]}"]').click()
            page.wait_for_url(f"**/capture/{article['id']}")
            page.wait_for_function("() => document.getElementById('screenshot').complete")
            assert page.locator("img#screenshot").evaluate("img => img.naturalWidth") > 1000
            # The replay: the workbench's sandboxed frame, ReplayWeb.page inside it, the archived page inside that.
            hits_before = dict(site.hits)
            replayed = (page.frame_locator("iframe#replay").frame_locator("replay-web-page iframe")
                        .frame_locator("iframe.iframe-main"))
            expect(replayed.locator("#latest-updates[data-loaded=true]")).to_contain_text(
                "Ramouseh checkpoint convoy turned back", timeout=TIMEOUT_MS)
            assert dict(site.hits) == hits_before   # offline: the live site got nothing
            assert page.url == f"{bench.origin}/capture/{article['id']}"
            page.locator("section.replay-section").screenshot(path=screenshot_path("workbench-replay.png", tmp_path))

            page.goto(f"{bench.origin}/capture/{tweet['id']}")
            # A tweet replays as the capture rendered it (its embed page), not as a page the WARC does not hold.
            replayed = (page.frame_locator("iframe#replay").frame_locator("replay-web-page iframe")
                        .frame_locator("iframe.iframe-main"))
            expect(replayed.locator("body")).to_contain_text("crowds run from the evacuation point",
                                                             timeout=TIMEOUT_MS)
            video = page.locator("figure.media video").first
            assert video.get_attribute("src").startswith(f"/media/{tweet['id']}/")
            video.evaluate("v => { v.muted = true; return v.play(); }")
            page.wait_for_function("() => document.querySelector('figure.media video').currentTime > 0.5",
                                   timeout=TIMEOUT_MS)
            # Seeking asks for more ranges of the same record: still one ledger entry for this viewer.
            video.evaluate("v => { v.currentTime = v.duration - 0.5; }")
            page.wait_for_function("() => document.querySelector('figure.media video').currentTime > 1",
                                   timeout=TIMEOUT_MS)

            page.goto(f"{bench.origin}/?tag=aleppo")
            for capture in (article, tweet):
                page.check(f'input[name=id][value="{capture["id"]}"]')
            with page.expect_download() as download:
                page.click("button[name=export]")
            package = tmp_path / "selection.wacz"
            download.value.save_as(package)
    finally:
        bench.stop()
    checked = subprocess.run([str(Path(sys.executable).parent / "wacz"), "validate", "-f", str(package)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ids = world_cli("verify", "--wacz", str(package), "--json").json()
    assert ids["ok"], ids
    # Custody: the WARC handed to the browser for the replay is recorded once (per grant, not per range read), as
    # the export is; the chain stays whole.
    with index_conn(world_cli.archive) as conn:
        accessed = [json.loads(d) if isinstance(d, str) else d for (d,) in conn.execute(
            "SELECT detail FROM ledger WHERE event = 'accessed' AND capture_id = ?", (article["id"],)).fetchall()]
    assert [a["what"] for a in accessed] == ["replay"], accessed
    assert accessed[0]["via"] == "replay grant" and accessed[0]["by"] and accessed[0]["from"] == "127.0.0.1"
    # The video played from the tweet's WARC is recorded once per viewer and record, however many ranges it took.
    with index_conn(world_cli.archive) as conn:
        played = [(json.loads(d) if isinstance(d, str) else d, u) for (d, u) in conn.execute(
            "SELECT detail, url FROM ledger WHERE event = 'accessed' AND capture_id = ?", (tweet["id"],)).fetchall()]
    media = [(d, u) for d, u in played if d["what"] == "media"]
    assert len(media) == 1, played
    assert media[0][0]["via"] == "local" and media[0][0]["payload_digest"].startswith("sha256:")
    assert media[0][1].startswith("https://video.twimg.com/")
    assert world_cli("verify").code == 0


def test_a_hostile_archived_page_replayed_in_the_workbench_reaches_nothing(cli, site, chromium):
    """scripts/demo_site/hostile/replay-escape.html, captured and then replayed on a real `archiver serve` to an
    investigator logged in with a submitter token: its script tries to read the workbench's cookies, call its API
    (submit a URL), toss a cookie into it, navigate its window and open popups. None of it gets through."""
    assert cli("status").code == 0
    submitter = cli("token", "add", "desk", "--role", "submitter").out.strip()
    bench = Workbench(cli)
    try:
        result = cli("capture", f"{site.url}/hostile/replay-escape.html?target={bench.origin}", "--json")
        assert result.code == 0, result.err
        capture_id = result.json()[0]["capture_id"]
        with watched_page(chromium) as page:
            page.set_default_timeout(TIMEOUT_MS)
            # A link with the token, once: a session cookie, and the same page without the token in its address.
            page.goto(f"{bench.origin}/capture/{capture_id}?token={submitter}")
            page.wait_for_url(f"{bench.origin}/capture/{capture_id}")
            session = {c["name"]: c["value"] for c in page.context.cookies()}
            assert "archiver_session" in session and "desk (submitter)" in page.locator("header").inner_text()
            hits_before = dict(site.hits)
            loot = (page.frame_locator("iframe#replay").frame_locator("replay-web-page iframe")
                    .frame_locator("iframe.iframe-main").locator("#loot[data-done=true]"))
            expect(loot).to_contain_text('"ran":true', timeout=TIMEOUT_MS)
            found = json.loads(loot.text_content())
            page.wait_for_timeout(3000)   # bounded: let what its script started (navigation, popup, beacon) land
            assert page.url == f"{bench.origin}/capture/{capture_id}"
            assert len(page.context.pages) == 1   # no popup
            after = {c["name"]: c["value"] for c in page.context.cookies()}
            assert dict(site.hits) == hits_before   # offline
        assert after["archiver_session"] == session["archiver_session"]
        assert found["framed"] is True, found
        for name in ("realTopCookie", "realTopToken", "realTopNavigation", "realTopHref"):
            assert found[name] == "blocked: SecurityError", (name, found)
        assert session["archiver_session"] not in json.dumps(found) and submitter not in json.dumps(found)
    finally:
        bench.stop()
    # Its call to submit a URL with the investigator's session queued nothing.
    status = cli("status", "--json").json()
    assert status["queued"] == 0 and status["done"] == 1, status
