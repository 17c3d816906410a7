"""The workbench with hostile evidence and strangers: captured markup renders inert in Chromium; beyond loopback
nothing is served without a token (and the server will not start without one); a viewer cannot submit; no
state-changing request goes through without the session's CSRF token from this origin; bad options end in one
line, exit 2."""
from __future__ import annotations

import re
import socket
from typing import Any, Iterator

import httpx
import pytest

from archiver.web import auth
from test_report import HOSTILE_TITLE, hostile  # noqa: F401 - a loopback page whose <title> is markup
from test_web_core import Workbench, chromium, csrf_of, watched_page  # noqa: F401 - chromium is a fixture

HOSTILE_NOTE = '<img src=x onerror=alert(3)><script>alert(4)</script> javascript:alert(5)'


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent: a UDP socket only picks the source)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_captured_markup_in_title_url_and_note_renders_inert(cli, hostile, chromium):
    result = cli("capture", hostile.url + "?q=<script>alert(6)</script>", "--note", HOSTILE_NOTE,
                 "--tag", "<b>tag</b>", "--json")
    assert result.code in (0, 1), result.err
    capture_id = result.json()[0]["capture_id"]
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.goto(f"{bench.url}/?q=Evacuation")
            link = page.locator(f'a.title[href="/capture/{capture_id}"]')
            assert link.inner_text() == HOSTILE_TITLE
            page.goto(f"{bench.url}/capture/{capture_id}")
            page.locator("img#screenshot").wait_for()
            assert page.locator("h1.capture-title").inner_text() == HOSTILE_TITLE
            assert page.locator(".note-text").inner_text() == HOSTILE_NOTE
            assert "<script>alert(6)</script>" in page.locator("main").inner_text() or \
                "%3Cscript%3E" in page.locator("main").inner_text()
            assert page.title().startswith(HOSTILE_TITLE)
            # Nothing of the payloads became an element: the only image is the screenshot, no script but ours.
            assert page.locator("img").count() == 1
            assert page.locator("main script, main a[href^='//'], main b").count() == 0
            assert page.evaluate("() => [...document.scripts].map(s => s.getAttribute('src'))") == \
                ["/static/workbench.js"]
            page.wait_for_timeout(500)
    finally:
        bench.stop()


def test_beyond_loopback_the_server_refuses_to_start_without_a_token(cli, site):
    assert cli("status").code == 0
    result = cli("serve", "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "token add" in line and "refusing" in line


def test_bad_options_end_in_one_line(cli):
    assert cli("status").code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), timeout=60)
        # The replay's port taken: named as such.
        replay = cli("serve", "--port", "0", "--replay-port", str(port), timeout=60)
    assert result.code == 2 and "in use" in result.err and len(result.err.strip().splitlines()) == 1
    assert replay.code == 2 and "--replay-port" in replay.err and len(replay.err.strip().splitlines()) == 1, replay.err
    result = cli("serve", "--host", "no-such-host.invalid", "--port", "0", timeout=60)
    assert result.code == 2 and "--host" in result.err and len(result.err.strip().splitlines()) == 1
    for args, words in ((["--origin", "https://archive.example.org"], "both --origin and --replay-origin"),
                        (["--origin", "https://archive.example.org", "--replay-origin", "https://replay.example.org"],
                         "subdomain")):
        refused = cli("serve", "--port", "0", *args, timeout=60)
        assert refused.code == 2 and words in refused.err and len(refused.err.strip().splitlines()) == 1, refused.err


def test_tokens_are_shown_once_and_kept_as_hashes(cli):
    assert cli("status").code == 0
    made = cli("token", "add", "alice", "--role", "viewer")
    assert made.code == 0
    token = made.out.strip()
    stored = (cli.archive / auth.TOKENS_FILE)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert token not in stored.read_text() and auth.digest(token) in stored.read_text()
    assert cli("token", "add", "alice").code == 2
    assert [t["name"] for t in cli("token", "list", "--json").json()] == ["alice"]
    assert cli("token", "remove", "alice").code == 0 and cli("token", "list", "--json").json() == []


def test_beyond_loopback_a_request_needs_a_token_and_a_viewer_cannot_post(article_capture):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    run = article_capture["cli"]
    viewer = run("token", "add", "viewer-web", "--role", "viewer").out.strip()
    try:
        bench = Workbench(run, "--host", address)
        try:
            assert bench.url.startswith(f"http://{address}:")
            with httpx.Client(base_url=bench.url) as client:
                for path in ("/", "/api/search?q=evacuated", f"/capture/{article_capture['show']['id']}/warc"):
                    assert client.get(path).status_code == 401, path
                assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
                ok = client.get("/api/search", params={"q": "evacuated"},
                                headers={"Authorization": f"Bearer {viewer}"})
                assert ok.status_code == 200 and ok.json()[0]["id"] == article_capture["show"]["id"]
                # ?token= once: a cookie, and the token is gone from the address.
                first = client.get("/", params={"token": viewer, "tag": "aleppo"})
                assert first.status_code == 303 and first.headers["location"] == "/?tag=aleppo"
                cookie = first.headers["set-cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                page = client.get("/?tag=aleppo")
                assert page.status_code == 200 and "viewer-web" in page.text
        finally:
            bench.stop()
    finally:
        run("token", "remove", "viewer-web")


def test_a_viewer_cannot_submit_and_a_submitter_can_only_from_this_origin(cli, site):
    url = site.url + "/2016/12/16/evacuation-suspended/"
    assert cli("status").code == 0
    viewer = cli("token", "add", "v", "--role", "viewer").out.strip()
    submitter = cli("token", "add", "s", "--role", "submitter").out.strip()
    bench = Workbench(cli)
    try:
        with httpx.Client(base_url=bench.url) as client:
            # The local browser, with no token, is a viewer: it cannot even see the form.
            assert client.get("/submit").status_code == 403
            page = client.get("/")
            assert client.post("/submit", data={"csrf": csrf_of(page.text), "urls": url},
                               headers={"Origin": bench.url}).status_code == 403
            assert client.post("/api/submit", json={"urls": [url]},
                               headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
            assert client.post("/api/submit", json={"urls": [url]},
                               headers={"Authorization": "Bearer arch_forged"}).status_code == 401
        assert cli("status", "--json").json()["queued"] == 0
        with httpx.Client(base_url=bench.url) as browser:
            assert browser.get("/", params={"token": submitter}).status_code == 303   # a session cookie instead
            form = browser.get("/submit")
            assert form.status_code == 200 and "s (submitter)" in form.text
            csrf = csrf_of(form.text)
            same = {"Origin": bench.url}
            fields = {"action": "capture", "urls": url, "tags": "convoy"}
            assert browser.post("/submit", data=fields, headers=same).status_code == 403
            assert browser.post("/submit", data={**fields, "csrf": "forged"}, headers=same).status_code == 403
            assert browser.post("/submit", data={**fields, "csrf": csrf},
                                headers={"Origin": "https://evil.example"}).status_code == 403
            assert browser.post("/submit", data={**fields, "csrf": csrf},
                                headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
            assert cli("status", "--json").json()["queued"] == 0
            # A bad line: each is named, and the page says once that nothing was queued.
            bad = browser.post("/submit", data={**fields, "urls": f"{url}\nftp://x.example/", "csrf": csrf},
                               headers=same)
            assert bad.status_code == 400 and "only http://, https://" in bad.text, bad.text
            assert bad.text.lower().count("nothing was queued") == 1 and "1 URL is not valid." in bad.text
            assert cli("status", "--json").json()["queued"] == 0
            done = browser.post("/submit", data={**fields, "csrf": csrf}, headers=same)
            assert done.status_code == 200 and "1 URL queued" in done.text, done.text
            # A cross-site login form is refused too.
            assert browser.post("/login", data={"token": submitter},
                                headers={"Origin": "https://evil.example"}).status_code == 403
    finally:
        bench.stop()
    assert cli("status", "--json").json()["queued"] == 1


def test_csrf_on_a_local_server(served_bench):
    bench, show = served_bench
    with httpx.Client(base_url=bench.url) as client:
        page = client.get(f"/capture/{show['id']}")
        csrf = csrf_of(page.text)
        same = {"Origin": bench.url}
        assert client.post(f"/capture/{show['id']}/verify", headers=same).status_code == 403
        assert client.post(f"/capture/{show['id']}/verify", data={"csrf": "forged"}, headers=same).status_code == 403
        assert client.post(f"/capture/{show['id']}/verify", data={"csrf": csrf},
                           headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/export", data={"csrf": "forged", "id": show["id"]}, headers=same).status_code == 403
        assert client.post(f"/capture/{show['id']}/verify", data={"csrf": csrf}, headers=same).status_code == 200
    # Without the session cookie (another site's page posting to loopback): no CSRF token matches.
    with httpx.Client(base_url=bench.url) as stranger:
        assert stranger.post(f"/capture/{show['id']}/verify", data={"csrf": csrf}, headers=same).status_code == 403


def test_a_page_rebinding_its_name_to_loopback_is_a_stranger(served_bench):
    bench, show = served_bench
    with httpx.Client(base_url=bench.url) as client:
        assert client.get("/", headers={"Host": f"evil.example:{bench.port}"}).status_code == 401
        assert client.get("/", headers={"Host": f"localhost:{bench.port}"}).status_code == 200


def test_no_path_from_a_request_leaves_the_archive(served_bench):
    bench, show = served_bench
    with httpx.Client(base_url=bench.url) as client:
        for path in ("/capture/..%2F..%2Fetc%2Fpasswd/warc", "/capture/%2e%2e/screenshot",
                     f"/capture/{show['id'][:10]}/warc", "/capture/http:%2F%2Fexample.com/report",
                     "/static/../index.db", "/static/%2e%2e/auth.py", "/api/show/..%2F..%2Findex.db"):
            answer = client.get(path)
            assert answer.status_code in (400, 404), (path, answer.status_code)
            assert b"SQLite format" not in answer.content and b"def require" not in answer.content
        headers = client.get("/").headers
    # The workbench's policy, and one frame it may embed: the replay's origin (a subdomain: web/replay.py).
    replay_origin = bench.origin.replace("//archive.localhost:", "//replay.archive.localhost:").rsplit(":", 1)[0]
    assert headers["content-security-policy"].startswith(auth.CSP + f"; frame-src {replay_origin}:")
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


@pytest.fixture
def served_bench(article_capture) -> Iterator[tuple[Workbench, dict[str, Any]]]:
    bench = Workbench(article_capture["cli"])
    try:
        yield bench, article_capture["show"]
    finally:
        bench.stop()


def test_screenshot_answer_is_an_image_that_never_sniffs(served_bench):
    bench, show = served_bench
    answer = httpx.get(f"{bench.url}/capture/{show['id']}/screenshot")
    assert answer.headers["content-type"] == "image/png" and answer.headers["x-content-type-options"] == "nosniff"
    assert re.match(rb"\x89PNG", answer.content)


HOSTILE_TWEET = "809773998201348096"   # the fixture world's tweet whose text and author name are markup


def test_a_tweet_whose_text_and_author_are_markup_renders_inert(world_cli, chromium):
    result = world_cli("capture", f"https://twitter.com/halab_wire_demo/status/{HOSTILE_TWEET}", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    tweet = world_cli("show", capture_id, "--json").json()["tweet"]
    assert tweet["text"].startswith('<script>alert("tweet")</script>') and tweet["name"].startswith("<b ")
    bench = Workbench(world_cli)
    try:
        with watched_page(chromium) as page:
            page.goto(f"{bench.url}/capture/{capture_id}")
            page.locator("img#screenshot").wait_for()
            assert page.locator(".tweet-text").inner_text() == tweet["text"]
            assert f"@halab_wire_demo ({tweet['name']})" in page.locator(".tweet-head").inner_text()
            assert page.locator("main script, main b, main a[href^='//'], main img:not(#screenshot)").count() == 0
            page.goto(f"{bench.url}/?q=Ramouseh")
            assert page.locator(f'a.title[href="/capture/{capture_id}"]').count() == 1
            assert page.locator("main script, main b, main a[href^='//']").count() == 0
            page.wait_for_timeout(500)   # bounded: a payload that fired would have opened its dialog by now
            with httpx.Client(base_url=bench.url) as client:
                report = client.get(f"/capture/{capture_id}/report").text
            assert '<script>alert("tweet")' not in report and "&lt;script&gt;alert(" in report
            assert "<b onmouseover" not in report
    finally:
        bench.stop()
