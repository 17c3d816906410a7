"""The workbench's monitoring pages on a real archive and a real server, in Chromium: the dashboard shows the item
that went from the web with the evidence held, the item page draws its timeline and shows what changed between
two captures; the JSON API gives what the CLI prints; hostile text in a difference renders inert; and submitting
(capture, watch, unwatch) validates as `archiver add` does, queueing nothing when any URL is bad. Takes the
README's screenshots of the item page and the dashboard (with ARCHIVER_DOCS_SCREENSHOTS=1)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from test_item_services import SVG, history, story  # noqa: F401 - fixtures: a watched story changed, then gone
from test_web_core import Workbench, chromium, screenshot_path, watched_page  # noqa: F401 - chromium is a fixture
from loopback import LoopbackPage


def test_dashboard_item_timeline_and_difference(cli, history, chromium, tmp_path):
    first, second, gone = history["captures"]
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.goto(f"{bench.url}/dashboard")
            row = page.locator("table.gone tbody tr")
            assert row.count() == 1
            assert "http-404" in row.inner_text()
            # The evidence held links to the newest complete capture, not to the capture of the 404.
            assert row.locator(f'a[href="/capture/{second["id"]}"]').count() == 1
            watches = page.locator("table.watches tbody tr")
            assert watches.count() == 1 and "every 6h" in watches.inner_text() and "gone" in watches.inner_text()
            assert page.locator("table.failures").count() == 1 or "No job has failed" in page.inner_text("main")
            page.screenshot(path=screenshot_path("workbench-dashboard.png", tmp_path), full_page=True)

            row.locator("a.mono").click()
            page.wait_for_url("**/item?key=*")
            assert history["key"] in page.locator("h1.item-title").inner_text()
            assert page.locator(".state.gone").first.inner_text() == "gone"
            svg = page.locator("figure.timeline svg")
            marks = svg.locator("g.mark")
            events = page.locator("table.events tbody tr")
            assert marks.count() == events.count() >= 7     # 3 captures, 2 checks, 4 changes of state
            # Each capture's mark links to that capture (so does a change of state a capture made).
            for capture in history["captures"]:
                assert svg.locator(f'g#tl-capture-{capture["id"]} a[href="/capture/{capture["id"]}"]').count() == 1
            # What changed: the newest two captures are compared until others are chosen; choose the two good ones.
            page.select_option("select[name=a]", first["id"])
            page.select_option("select[name=b]", second["id"])
            page.click("form.diffpick button")
            page.wait_for_url(f"**b={second['id']}*")
            diff = page.locator(".diff")
            assert diff.locator("del").first.inner_text() == "12" and diff.locator("ins").first.inner_text() == "15"
            assert "Buses wait at the crossing." in diff.locator("pre.eq").last.inner_text()
            page.screenshot(path=screenshot_path("workbench-item.png", tmp_path), full_page=True)
    finally:
        bench.stop()


def test_the_api_gives_what_the_cli_prints(cli, history):
    first, second, _ = history["captures"]
    bench = Workbench(cli)
    try:
        with httpx.Client(base_url=bench.url) as client:
            item = client.get("/api/item", params={"url": history["url"]}).json()
            diff = client.get("/api/diff", params={"a": first["id"], "b": second["id"]}).json()
            board = client.get("/api/dashboard").json()
            svg = client.get("/item", params={"key": history["key"]}).text
            unknown = client.get("/api/item", params={"key": "page:https://nowhere.example/"})
            bad = client.get("/api/diff", params={"a": "../../index.db", "b": second["id"]})
    finally:
        bench.stop()
    shown = cli("show", history["url"], "--json").json()
    assert [{k: v for k, v in e.items() if k != "anchor"} for e in item["events"]] == shown["timeline"]
    assert [c["id"] for c in item["captures"]] == [c["id"] for c in history["captures"]]
    assert diff == cli("diff", first["id"], second["id"], "--json").json()
    assert board["queue"] == cli("status", "--json").json()
    assert [i["key"] for i in board["gone"]["items"]] == [i["key"] for i in cli("list", "--gone", "--json").json()]
    assert [w["id"] for w in board["watches"]] == [w["id"] for w in cli("watch", "--list", "--json").json()]
    assert unknown.status_code == 404 and "no item" in unknown.json()["error"]
    assert bad.status_code == 400
    # The drawing inside the item page parses as SVG.
    drawing = svg[svg.index("<svg"):svg.index("</svg>") + len("</svg>")]
    assert ET.fromstring(drawing).tag == f"{SVG}svg"


HOSTILE_LINE = '<img src=x onerror=alert(7)><script>alert(8)</script>'


def test_hostile_text_in_a_difference_renders_inert(cli, chromium):
    page_server = LoopbackPage()
    try:
        page_server.body = "<!doctype html><title>Statement</title><p>The statement reads: calm.</p>"
        a = cli("capture", "--no-browser", page_server.url, "--json").json()[0]["capture_id"]
        escaped = HOSTILE_LINE.replace("<", "&lt;").replace(">", "&gt;")
        page_server.body = f"<!doctype html><title>Statement</title><p>The statement reads: {escaped}</p>"
        b = cli("capture", "--no-browser", page_server.url, "--json").json()[0]["capture_id"]
    finally:
        page_server.close()
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.goto(f"{bench.url}/diff?a={a}&b={b}")
            inserted = " ".join(page.locator(".diff ins").all_inner_texts())
            assert "<script>alert(8)</script>" in inserted and "onerror=alert(7)" in inserted
            assert page.locator("main img, main script").count() == 0
            page.wait_for_timeout(500)   # bounded: a payload that fired would have opened its dialog by now
    finally:
        bench.stop()


def test_submitting_validates_as_add_does_and_queues_nothing_when_any_url_is_bad(cli, site):
    good = site.url + "/2016/12/16/evacuation-suspended/"
    assert cli("status").code == 0   # an (empty) archive to hold the token
    submitter = cli("token", "add", "desk", "--role", "submitter").out.strip()
    bench = Workbench(cli)
    try:
        with httpx.Client(base_url=bench.url, headers={"Authorization": f"Bearer {submitter}"}) as api:
            refused = api.post("/api/submit", json={"urls": [good, "ftp://example.org/x", "not a url"]})
            assert refused.status_code == 400
            errors = refused.json()["errors"]
            assert [e["url"] for e in errors] == ["ftp://example.org/x", "not a url"]
            added = cli("add", good, "ftp://example.org/x", "not a url")
            assert added.code == 2
            assert [f"archiver: error: {e['error']}" for e in errors] == added.err.splitlines()[:2]
            assert cli("status", "--json").json()["queued"] == 0
            done = api.post("/api/submit", json={"urls": [good], "tags": ["convoy"], "note": "for the desk",
                                                 "requester": "Hadi"})
            assert done.status_code == 200, done.text
            [job] = done.json()["done"]
            assert job["created"] and job["state"] == "queued"
            watched = api.post("/api/submit", json={"action": "watch", "urls": [good], "every": "1d",
                                                    "check_every": "none"})
            assert watched.status_code == 200 and watched.json()["done"][0]["created"], watched.text
            no_schedule = api.post("/api/submit", json={"action": "watch", "urls": [good]})
            assert no_schedule.status_code == 400 and "--every" in no_schedule.json()["message"]
            stopped = api.post("/api/submit", json={"action": "unwatch", "urls": [good]})
            assert stopped.status_code == 200 and len(stopped.json()["done"]) == 1
    finally:
        bench.stop()
    jobs = cli("status", "--json").json()
    assert jobs["queued"] == 1
    # Who asked, as typed, and the token that submitted it.
    [queued] = cli("show", job["url"], "--json").json()["jobs"]
    assert queued["id"] == job["job_id"] and queued["requested_by"] == "Hadi (via desk)"
    assert cli("watch", "--list", "--json").json() == []
