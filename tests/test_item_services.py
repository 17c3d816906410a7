"""The services behind the workbench's item page, dashboards and submit form, and the commands that print from
them: an item's timeline (and its drawing), the text difference of two captures, the dashboards' data, and
submitting URLs -- on a real archive made by the real CLI, on either backend (SQLite or team mode)."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from typing import Iterator

import pytest

from archiver.pipeline import queue, submit
from archiver.store import overview, textdiff, timeline
from archiver.urls import parse
from archiver.web.timeline_svg import timeline_svg

from conftest import open_test_archive, team_index_url
from loopback import LoopbackPage

SVG = "{http://www.w3.org/2000/svg}"


class _Story(LoopbackPage):
    """A loopback story whose count of the dead the test changes, then takes down."""

    def story(self, count: str, extra: str = "") -> None:
        self.status = 200
        self.body = (f"<!doctype html><html><head><title>Convoy</title></head><body><article>"
                     f"<h1>Evacuation convoy</h1><p>Updated 16 December 2016</p>"
                     f"<p>{count} killed in the evacuation convoy</p><p>Buses wait at the crossing.</p>{extra}"
                     f"</article></body></html>")


@pytest.fixture
def story() -> Iterator[_Story]:
    server = _Story()
    yield server
    server.close()


@pytest.fixture
def history(cli, story):
    """A watched story captured, changed and captured again, then taken down (404) and captured as gone."""
    story.story("12")
    assert cli("watch", story.url, "--every", "6h", "--check-every", "1h", "--no-browser", "--tag", "convoy").code == 0
    first = cli("run", "--once")
    assert first.code == 0, first.err
    story.story("15")
    [o] = cli("check", story.url, "--json").json()
    assert o["state_after"] == "changed" and o["job_id"], o
    assert cli("run", "--once").code == 0
    story.status, story.body = 404, "<p>Not found</p>"
    [o] = cli("check", story.url, "--json").json()
    assert o["state_after"] == "gone", o
    cli("run", "--once")
    captures = cli("list", "--json").json()
    assert [c["status"] for c in captures] == ["failed", "ok", "ok"], captures
    return {"url": story.url, "key": parse(story.url).dedup_key, "captures": captures[::-1]}


def test_an_items_timeline_as_data_and_as_a_drawing(cli, history):
    archive = open_test_archive(cli.archive)
    index = archive.index()
    try:
        tl = timeline.item_timeline(index, history["key"])
    finally:
        index.close()
    data = tl.as_dict()
    json.dumps(data)   # JSON-ready as it is
    events = data["events"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert [e["capture_id"] for e in events if e["event"] == "capture"] == [c["id"] for c in history["captures"]]
    assert [(e["from"], e["to"]) for e in events if e["event"] == "transition"] == [
        (None, "live"), ("live", "changed"), ("changed", "live"), ("live", "gone")]
    checks = [e for e in events if e["event"] == "check"]
    assert [c["result"] for c in checks] == ["live", "gone"] and all(c["fingerprint"] or c["result"] == "gone"
                                                                     for c in checks)
    assert len({e["anchor"] for e in events}) == len(events)
    assert data["item"]["state"] == "gone" and data["schedule"] == "every 6h"
    assert all(e["count"] == 1 for e in data["folded"] if e["event"] == "check")
    # show --json carries the same events (without the anchors the service adds for pages).
    shown = cli("show", history["url"], "--json").json()
    assert [{k: v for k, v in e.items() if k != "anchor"} for e in events] == shown["timeline"]

    svg = timeline_svg(events, href=lambda e: f"/captures/{e['capture_id']}" if e["event"] == "capture" else None)
    assert svg == timeline_svg(events, href=lambda e: f"/captures/{e['capture_id']}" if e["event"] == "capture"
                               else None), "the same events give the same bytes"
    root = ET.fromstring(svg)
    marks = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("mark ")]
    assert len(marks) == len(events)
    assert [g.get("id") for g in marks] == [f"tl-{e['anchor']}" for e in events]
    assert all(g.find(f"{SVG}title") is not None or g.find(f"{SVG}a/{SVG}title") is not None for g in marks)
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links == [f"/captures/{c['id']}" for c in history["captures"]]
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for words in ("capture", "check", "state change", "live", "gone", "changes", "UTC"):
        assert words in texts
    assert "<script" not in svg and "href=\"http" not in svg and "xlink" not in svg and "style" not in svg


def test_the_text_difference_of_two_captures(cli, history):
    first, second, gone = history["captures"]
    result = cli("diff", first["id"], second["id"])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"--- {first['id']}  {history['url']}  captured {first['started_at']}"
    assert lines[1] == f"+++ {second['id']}  {history['url']}  captured {second['started_at']}"
    assert "-12 killed in the evacuation convoy" in lines and "+15 killed in the evacuation convoy" in lines
    assert " Buses wait at the crossing." in lines, "context around the change"

    data = cli("diff", first["id"], second["id"], "--json").json()
    assert (data["a"]["id"], data["b"]["id"], data["identical"], data["truncated"]) == (
        first["id"], second["id"], False, False)
    [changed] = [h for h in data["hunks"] if h["op"] != "equal"]
    assert changed["op"] == "replace" and "12 killed" in changed["a_text"] and "15 killed" in changed["b_text"]
    assert [(w["a_text"], w["b_text"]) for w in changed["words"] if w["op"] != "equal"] == [("12", "15")]
    assert data["stats"]["replaced_a"] == data["stats"]["replaced_b"] == 1

    # The service reads the same through the archive's store (a bucket in team mode).
    archive = open_test_archive(cli.archive)
    index = archive.index()
    try:
        assert textdiff.diff_captures(archive, index, first["id"], second["id"]) == data
        newest = textdiff.diff_captures(archive, index, first["id"], history["url"])   # a URL: its newest capture
        assert newest["b"]["id"] == gone["id"] and newest["b"]["status"] == "failed"
    finally:
        index.close()

    same = cli("diff", second["id"], second["id"])
    assert same.code == 0 and same.out.splitlines()[2] == "no difference in the visible text"
    unknown = cli("diff", first["id"], "01NOSUCHCAPTURE0000000000")
    assert unknown.code == 1 and unknown.err.count("\n") == 1 and "no capture" in unknown.err
    usage = cli("diff", first["id"])
    assert usage.code == 2 and usage.err.count("\n") == 1


def test_dashboards_hold_what_status_list_gone_and_watch_list_show(cli, history):
    archive = open_test_archive(cli.archive)
    index = archive.index()
    try:
        board = overview.dashboard(index, archive.settings)
    finally:
        index.close()
    json.dumps(board)
    status = cli("status", "--json").json()
    assert board["queue"] == status
    assert board["failure_classes"] == [{"class": "http-4xx", "jobs": 1}]
    [gone] = board["gone"]["items"]
    assert {k: v for k, v in gone.items() if k not in ("held", "last_good_capture")} == \
        cli("list", "--gone", "--json").json()[0]
    first, second, _ = history["captures"]
    assert gone["last_good_capture"]["id"] == second["id"] and gone["held"] == f"2 ok, newest {second['id']}"
    assert gone["last_good_capture"]["started_at"] == second["started_at"] and not board["gone"]["more"]
    assert [i["key"] for i in board["changed"]["items"]] == [history["key"]]
    [watch] = board["watches"]
    assert {k: v for k, v in watch.items() if k not in ("schedule", "checks")} == cli("watch", "--list", "--json").json()[0]
    assert (watch["schedule"], watch["checks"], watch["state"]) == ("every 6h", "every 1h", "gone")
    assert watch["next_capture_at"] and watch["next_check_at"]


def test_submitting_a_list_queues_all_or_names_every_bad_url(cli):
    archive = open_test_archive(cli.archive)
    bad = ["https://ok.example/a", "ftp://files.example/x", "example.com/page", "http://"]
    refused = submit.submit(archive, bad, submit.Request(requested_by="desk", tags=["t"]))
    said = cli("add", *bad)
    assert said.code == 2
    # The same messages as the command's, one per bad URL, each with the URL as given.
    assert [f"archiver: error: {e['error']}" for e in refused.errors] + [f"archiver: error: {refused.message}"] == \
        said.err.strip().splitlines()
    assert [e["url"] for e in refused.errors] == bad[1:] and not refused.ok and not refused.done
    assert refused.message == "3 URLs are not valid; nothing was queued"
    index = archive.index()
    try:
        assert queue.status(index)["queued"] == 0
    finally:
        index.close()
    assert submit.submit(archive, [], submit.Request()).message.startswith("no URLs given")

    good = ["https://example.com/story?utm_source=tw", "https://x.com/evac_watch_demo/status/809711419431133184"]
    done = submit.submit(archive, good, submit.Request(requested_by="desk", tags=["aleppo"], note="from the blog",
                                                      no_browser=True))
    assert done.ok and [j["created"] for j in done.done] == [True, True]
    assert cli("add", good[0], "--json").json() == [{**done.done[0], "created": False}]
    json.dumps(done.as_dict())
    job = cli("show", good[1], "--json").json()["jobs"][0]
    assert job["requested_by"] == "desk"

    when = submit.watch_schedule("6h", None, None, archive.settings["watch"]["check_every"])
    watched = submit.watch(archive, [good[0], "notaurl"], when, submit.Request())
    assert [e["url"] for e in watched.errors] == ["notaurl"] and cli("watch", "--list", "--json").json() == []
    watched = submit.watch(archive, [good[0]], when, submit.Request(requested_by="desk"))
    assert watched.ok and watched.done[0]["created"] and watched.done[0]["every_seconds"] == 6 * 3600
    with pytest.raises(Exception) as caught:
        submit.watch_schedule("6h", "0 * * * *", None, "1h")
    assert str(caught.value) == "give one of --every or --cron, not both"
    stopped = submit.unwatch(archive, [good[0], good[1]], "desk")
    assert [w["canonical_url"] for w in stopped.done] == ["https://example.com/story"]
    assert stopped.missing == [good[1]] and stopped.message.startswith("not watched: ")


def test_a_drawn_timeline_keeps_hostile_strings_inert():
    hostile = "<script>alert(document.cookie)</script>\"' onload=alert(1) &amp; ]]> \x00\x1b[31m\ud800"
    events = [
        {"event": "capture", "at": "2026-11-01T05:30:00.000000Z", "capture_id": hostile, "result": "ok",
         "class": None, "http_status": 200, "anchor": f"capture-{hostile}"},
        {"event": "transition", "at": "2026-11-01T05:30:00.000000Z", "from": None, "to": hostile, "class": hostile,
         "source": "capture", "anchor": "state-1"},
        {"event": "check", "at": "2026-11-02T05:30:00.000000Z", "until": "2026-11-09T05:30:00.000000Z", "count": 169,
         "result": "live", "class": None, "http_status": 200, "state": "live", "job_id": None, "message": hostile,
         "check_id": 2, "anchor": "check-2"},
        {"event": "check", "at": "not a time", "result": "gone", "class": hostile, "http_status": None,
         "state": "gone", "job_id": None, "message": None, "check_id": 3, "anchor": "check-3"},
    ]
    svg = timeline_svg(events, href=lambda e: "/captures/" + e["capture_id"] if e["event"] == "capture" else None,
                       title=hostile)
    root = ET.fromstring(svg)   # well-formed, whatever the archive held
    assert not [el for el in root.iter() if el.tag.split("}")[-1] in ("script", "foreignObject", "style", "image")]
    assert not [name for el in root.iter() for name in el.attrib if name.lower().startswith("on")]
    assert root.find(f"{SVG}title").text == hostile.replace("\x00", "").replace("\x1b", "").replace("\ud800", "")
    ids = [g.get("id") for g in root.iter(f"{SVG}g") if g.get("id")]
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") for i in ids)
    marks = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("mark ")]
    assert len(marks) == 3, "an event without a readable time is not drawn, and said so"
    assert "1 event(s) without a readable time" in svg
    with pytest.raises(ValueError):
        timeline_svg(events, href=lambda e: "javascript:alert(1)")
    with pytest.raises(ValueError):
        timeline_svg(events, href=lambda e: "//evil.example/")
    empty = ET.fromstring(timeline_svg([]))
    assert "no captures, checks or state changes" in "".join(empty.itertext())


def test_text_differences_stay_bounded():
    a = "\n".join(f"line {i} of the old text" for i in range(textdiff.MAX_LINES))
    b = "\n".join(f"line {i} of the new text" if i % 3 else f"line {i} of the old text"
                  for i in range(textdiff.MAX_LINES))
    started = time.monotonic()
    result = textdiff.diff_texts(a, b)
    assert time.monotonic() - started < 10
    assert result["stats"]["equal"] == len(range(0, textdiff.MAX_LINES, 3))
    # Every line of both texts is in exactly one hunk, in order.
    assert "\n".join(h["a_text"] for h in result["hunks"] if h["a_end"] > h["a_start"]) == a
    assert "\n".join(h["b_text"] for h in result["hunks"] if h["b_end"] > h["b_start"]) == b
    long_replace = textdiff.diff_texts("x " * 5000, "y " * 5000)
    assert long_replace["hunks"][0]["op"] == "replace" and long_replace["hunks"][0]["words"] is None
    # The matcher's worst case for words (one word repeated throughout, every other one changed) stays bounded.
    started = time.monotonic()
    words = textdiff.diff_texts("the " * 499, " ".join("the" if i % 2 else "a" for i in range(499)))
    assert time.monotonic() - started < 10 and words["hunks"][0]["words"] is not None


def test_a_long_text_is_cut_and_the_diff_says_so(cli, story):
    story.story("12", "".join(f"<p>paragraph {i} {'word ' * 20}</p>" for i in range(6000)))
    assert cli("capture", story.url, "--no-browser").code == 0
    story.story("15", "".join(f"<p>paragraph {i} {'word ' * 20}</p>" for i in range(6000)))
    assert cli("capture", story.url, "--no-browser").code == 0
    new, old = cli("list", "--json").json()
    result = cli("diff", old["id"], new["id"], "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["truncated"] and data["a"]["truncated"] and data["a"]["text_chars"] <= textdiff.MAX_TEXT_CHARS
    assert "only its beginning is compared" in result.err
    assert [(w["a_text"], w["b_text"]) for h in data["hunks"] if h["op"] == "replace" for w in h["words"]
            if w["op"] != "equal"] == [("12", "15")]


def test_diff_the_dashboards_and_the_drawing_load_no_capture_stack(cli, history, tmp_path):
    from test_imports import _capture_only, _loaded, _modules_after_importing
    first, second, _ = history["captures"]
    team = bool(team_index_url(cli.archive))
    for args in (["diff", first["id"], second["id"]], ["diff", first["id"], second["id"], "--json"],
                 ["watch", "--list"], ["show", history["url"]]):
        code, modules = _loaded(tmp_path, cli, *args)
        assert code == 0 and _capture_only(modules, team) == [], (args, _capture_only(modules, team))
    for module in ("archiver.store.overview", "archiver.store.textdiff", "archiver.store.timeline",
                   "archiver.pipeline.submit", "archiver.web.timeline_svg"):
        assert _capture_only(_modules_after_importing(module), False) == [], module
