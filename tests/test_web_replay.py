"""Replay isolated from the workbench (archiver/web/replay.py), in Debian's Chromium, offline.

The workbench is stood in for by ``Workbench``: a minimal app on the workbench's origin (127.0.0.1) whose page holds
an HttpOnly and a readable cookie and a token in a JavaScript variable, embeds the replay iframe exactly as the
workbench must (``IFRAME_SANDBOX``, ``iframe_src``, a CSP with ``frame_src``), and answers /api/..., /collect and
/pwned while logging every request. The integrator points the same tests at the real workbench.

The workbench is opened as http://archive.localhost:PORT and the replay app runs on http://replay.archive.localhost:PORT2
(another host and port, the same site: archiver/web/replay.py says why; Chromium resolves *.localhost to loopback). Asserted: the archived live blog replays
with the text its JavaScript fetched at capture time, and the live site gets no request; a hostile archived page
(scripts/demo_site/hostile/replay-escape.html) whose script tries to read the workbench's cookies and token, call
its API, send what it found away and navigate its window, achieves none of it, though its script runs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

import httpx
import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from conftest import CLI, open_test_archive
from test_replay_wacz import RWP, chromium  # noqa: F401 (chromium: a fixture)
from test_web_media import LiveApp

TIMEOUT_MS = 30_000
SECRETS = ("SECRET-HTTPONLY-COOKIE", "SECRET-VISIBLE-COOKIE", "SECRET-TOKEN")
WORKBENCH_NAME = "archive.localhost"
REPLAY_NAME = "replay.archive.localhost"
PARENT_PATHS = {"/parent", "/parent.js", "/favicon.ico"}

PARENT_JS = b"""window.workbenchToken = "SECRET-TOKEN";
localStorage.setItem("token", "SECRET-TOKEN");
document.cookie = "__Host-wb_visible=SECRET-VISIBLE-COOKIE; Path=/; Secure; SameSite=Lax";
"""


class Workbench:
    """The workbench's origin, as far as these tests need it: /parent (the page embedding a capture's replay),
    /api/... (answers the token to a request with the session cookie), /collect and /pwned. ``app.log``: every
    request it got."""

    def __init__(self) -> None:
        from archiver.web.replay import ReplayFence
        self.replay_origin = ""
        self.grants: Any = None

        def parent(request: Request) -> Response:
            from archiver.web.replay import IFRAME_SANDBOX, frame_src, iframe_src
            src = iframe_src(self.replay_origin, request.query_params["capture"], self.grants)
            page = (f'<!doctype html><html><head><meta charset="utf-8"><title>workbench</title>'
                    f'<script src="/parent.js"></script></head><body><h1>Capture</h1>'
                    f'<iframe id="replay" sandbox="{IFRAME_SANDBOX}" src="{src}" '
                    f'width="1000" height="700"></iframe></body></html>')
            csp = (f"default-src 'self'; script-src 'self'; frame-src {frame_src(self.replay_origin)}; "
                   "frame-ancestors 'none'")
            answer = HTMLResponse(page, headers={"Content-Security-Policy": csp})
            # Host-only, HttpOnly, and __Host-: no other host (the replay's) can set a cookie of that name.
            answer.set_cookie("__Host-wb_session", "SECRET-HTTPONLY-COOKIE", httponly=True, secure=True,
                              samesite="lax")
            return answer

        def script(request: Request) -> Response:
            return Response(PARENT_JS, media_type="application/javascript")

        def api(request: Request) -> Response:
            if request.cookies.get("__Host-wb_session") == "SECRET-HTTPONLY-COOKIE":
                return JSONResponse({"token": "SECRET-TOKEN"})
            return JSONResponse({"error": "no session"}, 401)

        def sink(request: Request) -> Response:
            return PlainTextResponse("ok")

        app = Starlette(routes=[
            Route("/parent", parent), Route("/parent.js", script), Route("/api/{rest:path}", api, methods=["GET", "POST"]),
            Route("/collect", sink, methods=["GET", "POST"]), Route("/pwned", sink)])
        self.fence = _Late()   # the workbench behind ReplayFence, once the replay origin is known
        self.fence.app = app
        self.wrap = lambda replay_origin: setattr(self.fence, "app", ReplayFence(app, replay_origin))
        self.app = LiveApp(self.fence, "127.0.0.1", WORKBENCH_NAME)
        self.origin = self.app.origin

    def close(self) -> None:
        self.app.close()


class _Late:
    """An ASGI app filled in after its server is bound (the replay app needs its own origin, port included)."""

    app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture
def workbench() -> Iterator[Workbench]:
    bench = Workbench()
    try:
        yield bench
    finally:
        bench.close()


def _replayed(page) -> Any:
    """The archived page: the workbench's iframe, ReplayWeb.page's iframe (in <replay-web-page>'s shadow root),
    then its replay iframe."""
    return (page.frame_locator("iframe#replay").frame_locator("replay-web-page iframe")
            .frame_locator("iframe.iframe-main"))


def _explain(page, replay: LiveApp) -> None:
    """What the page's frames logged and show, and what the replay app answered: printed when a test fails."""
    print("\n".join(page.console_lines), [(e["path"], e["range"], e["status"]) for e in replay.log])
    for frame in page.frames:
        try:
            print(frame.url, frame.evaluate("document.body && document.body.innerText.slice(0, 500)"))
        except Exception as exc:   # a frame gone or cross-process mid-way: say so, keep the rest
            print(frame.url, exc)


@contextmanager
def browsing(chromium, workbench: Workbench, capture_id: str, replay: LiveApp) -> Iterator[tuple[Any, Any]]:
    """(context, page): a fresh Chromium profile on the workbench's page for a capture; what its frames logged is
    printed if the test fails inside, and the profile closed whatever happens."""
    context = chromium.new_context(service_workers="allow")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda message: page.console_lines.append(f"{message.type}: {message.text}"))
    context.on("weberror", lambda error: page.console_lines.append(f"error: {error.error}"))
    try:
        page.goto(f"{workbench.origin}/parent?capture={capture_id}")
        yield context, page
    except AssertionError:
        _explain(page, replay)
        raise
    finally:
        context.close()


@contextmanager
def replaying(archive_dir: Path, workbench: Workbench) -> Iterator[LiveApp]:
    """The replay app for ``archive_dir`` on replay.archive.localhost (a free port), wired to ``workbench`` (which
    it puts behind ReplayFence); stopped, and its index closed, on the way out."""
    from archiver.web.replay import Grants, replay_app
    archive = open_test_archive(archive_dir)
    index = archive.index()
    late = _Late()   # the app needs its origin, port included, and the port is known once bound
    served = LiveApp(late, "127.0.0.1", REPLAY_NAME)
    try:
        workbench.grants = served.grants = Grants()
        late.app = replay_app(archive, index, replay_origin=served.origin, workbench_origin=workbench.origin,
                              grants=served.grants)
        workbench.replay_origin = served.origin
        workbench.wrap(served.origin)
        yield served
    finally:
        served.close()
        index.close()


def test_the_article_replays_on_its_own_origin_offline(article_capture, chromium, site, workbench):
    capture_id = article_capture["show"]["id"]
    with replaying(article_capture["archive"], workbench) as replay:
        hits_before = dict(site.hits)
        with browsing(chromium, workbench, capture_id, replay) as (context, page):
            replayed = _replayed(page)
            expect(replayed.locator("h1.headline")).to_contain_text(
                "Russia Claims All Women And Children Evacuated", timeout=TIMEOUT_MS)
            # Inserted by the page's script from /api/updates.json at capture time: replayed from the WARC.
            expect(replayed.locator("#latest-updates[data-loaded=true]")).to_contain_text(
                "Ramouseh checkpoint convoy turned back", timeout=TIMEOUT_MS)
    assert dict(site.hits) == hits_before   # offline: the live site got no request
    assert any(e["path"].startswith(f"/capture/{capture_id}/") and e["path"].endswith(f"/{capture_id}.warc.gz")
               and e["status"] in (200, 206) for e in replay.log), replay.log
    # The replay never got the workbench's cookies.
    assert not any("cookie" in e["headers"] for e in replay.log)


def test_a_hostile_archived_page_cannot_reach_the_workbench(tmp_path, chromium, site, workbench):
    cli = CLI(tmp_path / "archive")
    hostile_url = f"{site.url}/hostile/replay-escape.html?target={workbench.origin}"
    result = cli("capture", hostile_url, "--json")
    assert result.code == 0, result.err + result.out
    capture_id = result.json()[0]["capture_id"]
    # Captured, not sandboxed, its script did reach the workbench's origin (without the investigator's cookies).
    reached = {e["path"] for e in workbench.app.log}
    assert {"/api/captures", "/collect"} <= reached, reached
    del workbench.app.log[:]

    with replaying(cli.archive, workbench) as replay:
        hits_before = dict(site.hits)
        with browsing(chromium, workbench, capture_id, replay) as (context, page):
            parent_url = page.url
            # The premise: the investigator's page holds both cookies and the token.
            held = {(c["name"], c["value"]) for c in context.cookies()}
            assert held == {("__Host-wb_session", "SECRET-HTTPONLY-COOKIE"),
                            ("__Host-wb_visible", "SECRET-VISIBLE-COOKIE")}, held
            assert page.evaluate("window.workbenchToken") == "SECRET-TOKEN"
            loot = _replayed(page).locator("#loot[data-done=true]")
            expect(loot).to_contain_text('"ran":true', timeout=TIMEOUT_MS)
            found = json.loads(loot.text_content())
            time.sleep(3)   # let any navigation, beacon or image the script started arrive, if it could
            assert page.url == parent_url
            assert page.evaluate("window.workbenchToken") == "SECRET-TOKEN"   # the workbench's page is still there
            assert len(context.pages) == 1   # no popup
            cookies_after = context.cookies()
    # The workbench's cookies are as it set them. The replay's host *can* set a cookie for the workbench's domain
    # (same site: "wb_visible=TOSSED; Domain=archive.localhost" gets through), which is why the workbench's cookies
    # must be __Host- ones: none of those can be set from another host, and it reads no other.
    assert {(c["name"], c["value"]) for c in cookies_after if c["name"].startswith("__Host-")} == held
    tossed = [c for c in cookies_after if c["value"] == "TOSSED"]
    assert not any(c["name"].startswith("__Host-") for c in tossed), tossed
    print("cookies tossed by the replayed page:", tossed)
    text = json.dumps(found)
    assert not any(secret in text for secret in SECRETS), found
    assert found["framed"] is True, found   # it found the real window above it, and tried to navigate it
    # The real top window is the workbench's: another origin, so each read of it throws.
    for name in ("realTopCookie", "realTopToken", "realTopStorage"):
        assert found[name] == "blocked: SecurityError", (name, found)
    # And the sandbox (no allow-top-navigation) refuses to let it navigate that window.
    for name in ("realTopNavigation", "realTopHref"):
        assert found[name] == "blocked: SecurityError", (name, found)
    # What its calls to the workbench's API got is the answer archived when it was captured (no session then).
    assert found["api"] == found["xhr"] == '401 {"error":"no session"}', found
    # The workbench's origin got nothing from the replay: no API call, no loot, no navigation; only its own page.
    assert {e["path"] for e in workbench.app.log} <= PARENT_PATHS, workbench.app.log
    assert not any(e["headers"].get("origin", "").startswith(replay.origin) for e in workbench.app.log), \
        workbench.app.log
    assert dict(site.hits) == hits_before   # offline: the live site got nothing either
    # The replay app never got the workbench's cookies (only, at most, what the replayed page set on its own host,
    # which it drops unread).
    assert not any(secret in e["headers"].get("cookie", "") for e in replay.log for secret in SECRETS)
    print("what the hostile script got:", found)


# ---- the replay app over HTTP -----------------------------------------------------------------------------------

def test_replay_app_headers_ranges_and_refusals(article_capture, workbench):
    capture_id = article_capture["show"]["id"]
    with replaying(article_capture["archive"], workbench) as replay, \
            httpx.Client(base_url=replay.address, headers={"Host": replay.origin.split("//")[1]}) as http, \
            httpx.Client(base_url=workbench.app.address, headers={"Host": workbench.origin.split("//")[1]}) as bench:
        # Both reached at 127.0.0.1 under their own names, as a browser asks for them.
        grant = replay.grants.grant(capture_id)
        page = http.get(f"/capture/{capture_id}/", params={"grant": grant}, headers={"Cookie": "__Host-wb_session=x"})
        assert page.status_code == 200 and "set-cookie" not in page.headers
        csp = page.headers["content-security-policy"]
        assert f"frame-ancestors {workbench.origin}" in csp and "script-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert f'data-source="/capture/{capture_id}/{grant}/{capture_id}.warc.gz"' in page.text
        warc = Path(article_capture["warc"]).read_bytes()
        whole = http.get(f"/capture/{capture_id}/{grant}/{capture_id}.warc.gz")
        assert whole.status_code == 200 and whole.content == warc
        assert whole.headers["content-security-policy"] == f"frame-ancestors {workbench.origin}"
        # A capture ID alone opens nothing: no grant, a forged one, or another capture's.
        other = replay.grants.grant("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        for bad in (None, "", "9999999999.forged", other, "1." + grant.split(".", 1)[1]):
            assert http.get(f"/capture/{capture_id}/", params={"grant": bad} if bad is not None else None
                            ).status_code == 403, bad
            assert http.get(f"/capture/{capture_id}/{bad or 'x'}/{capture_id}.warc.gz").status_code == 403, bad
        part = http.get(f"/capture/{capture_id}/{grant}/{capture_id}.warc.gz", headers={"Range": "bytes=-100"})
        assert part.status_code == 206 and part.content == warc[-100:]
        assert part.headers["content-range"] == f"bytes {len(warc) - 100}-{len(warc) - 1}/{len(warc)}"
        for path in [f"/capture/{capture_id[:12]}/", f"/capture/{capture_id}/index.db",
                     f"/capture/{capture_id}/..%2F..%2Findex.db", "/capture/01ARZ3NDEKTSV4RRFFQ69G5FAV/",
                     "/replay/../index.db", "/warcs/", "/index.db"]:
            answer = http.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-security-policy"] == f"frame-ancestors {workbench.origin}", path
        sw = http.get("/replay/sw.js")
        assert sw.status_code == 200 and sw.content == (RWP / "sw.js").read_bytes()
        assert sw.headers["content-type"].startswith("application/javascript")
        # Under any other name (a DNS-rebinding page's, or the bare address) it answers nothing.
        for host in ["127.0.0.1", "attacker.example", workbench.origin.split("//")[1]]:
            assert http.get(f"/capture/{capture_id}/", params={"grant": grant},
                            headers={"Host": host}).status_code == 421, host
        # The workbench refuses what comes from the replay's site or origin (the fence it wraps itself in).
        assert bench.get("/api/captures", headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
        assert bench.post("/api/submit", headers={"Origin": replay.origin}).status_code == 403
        assert bench.get("/api/captures", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 401


def test_origins_are_checked():
    from archiver.errors import ConfigError
    from archiver.web.replay import Grants, check_origins, frame_src, iframe_src, loopback_origins
    check_origins("http://replay.archive.localhost:8081", "http://archive.localhost:8080")
    check_origins("https://replay.archive.example.org", "https://archive.example.org")
    check_origins("https://replay.archive.example.org:8443", "https://archive.example.org")
    for replay, bench in [("http://archive.localhost:8081", "http://archive.localhost:8080"),   # ports share cookies
                          ("http://localhost:8081", "http://127.0.0.1:8080"),          # cross-site: no worker
                          ("http://127.0.0.2:8081", "http://127.0.0.1:8080"),
                          ("https://replay.example.org", "https://archive.example.org"),
                          ("http://replay.archive.example.org", "http://archive.example.org"),  # not secure
                          ("http://replay.archive.example.org", "https://archive.example.org"),  # cross-site
                          ("http://replay.archive.localhost:8081/replay", "http://archive.localhost:8080"),
                          ("javascript:alert(1)", "http://archive.localhost:8080"),
                          ("http://replay.archive.localhost:x", "http://archive.localhost:8080")]:
        with pytest.raises(ConfigError):
            check_origins(replay, bench)
    assert loopback_origins(8080, 8081) == ("http://archive.localhost:8080", "http://replay.archive.localhost:8081")
    check_origins(*reversed(loopback_origins(8080, 8081)))
    grants = Grants()
    src = iframe_src("http://replay.archive.localhost:8081", "01ARZ3NDEKTSV4RRFFQ69G5FAV", grants)
    assert src.startswith("http://replay.archive.localhost:8081/capture/01ARZ3NDEKTSV4RRFFQ69G5FAV/?grant=")
    assert grants.check("01ARZ3NDEKTSV4RRFFQ69G5FAV", src.split("=", 1)[1])
    assert not Grants().check("01ARZ3NDEKTSV4RRFFQ69G5FAV", src.split("=", 1)[1])   # another process's key
    assert frame_src("http://replay.archive.localhost:8081/") == "http://replay.archive.localhost:8081"
    with pytest.raises(ValueError):
        iframe_src("http://replay.archive.localhost:8081", "../../x", grants)


def test_the_embed_page_escapes_the_archived_url(cli, site, workbench):
    """The capture's URL (chosen by whoever asked, and the page's own in a redirect) is written into the embed page
    only escaped: an attribute value and a title, never markup."""
    hostile = f'{site.url}/test/document?q="><img/src=x/onerror=alert(1)>&r=</title><script>alert(2)</script>'
    result = cli("capture", hostile, "--no-browser", "--json")
    assert result.code in (0, 1), result.err
    capture_id = result.json()[0]["capture_id"]
    with replaying(cli.archive, workbench) as replay, \
            httpx.Client(base_url=replay.address, headers={"Host": replay.origin.split("//")[1]}) as http:
        page = http.get(f"/capture/{capture_id}/", params={"grant": replay.grants.grant(capture_id)}).text
    assert "<img" not in page and "<script>alert" not in page and "</title><" not in page, page
    assert 'data-url="' + hostile.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;") \
        .replace(">", "&gt;") + '"' in page, page


def test_a_warc_that_is_gone_is_a_clear_409_from_both_endpoints(cli, site, workbench):
    from starlette.routing import Mount
    from archiver.web.media import media_routes, media_url
    from conftest import remove_warc
    result = cli("capture", f"{site.url}/test/document?gone=1", "--no-browser", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    archive = open_test_archive(cli.archive)
    index = archive.index()
    try:
        capture = index.find_capture(capture_id)
        record = next(r for r in index.capture_records(capture_id) if r["type"] == "response")
        remove_warc(cli.archive, capture)
        media = LiveApp(Starlette(routes=[Mount("/media", routes=media_routes(archive, index))]))
        try:
            answer = httpx.get(media.address + media_url(capture_id, record["seq"]))
        finally:
            media.close()
        assert answer.status_code == 409 and "run archiver verify" in answer.text, answer.text
        with replaying(cli.archive, workbench) as replay, \
                httpx.Client(base_url=replay.address, headers={"Host": replay.origin.split("//")[1]}) as http:
            answer = http.get(f"/capture/{capture_id}/{replay.grants.grant(capture_id)}/{capture_id}.warc.gz")
        assert answer.status_code == 409 and "run archiver verify" in answer.text, answer.text
    finally:
        index.close()
