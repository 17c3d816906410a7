"""A browser capture of the demo live blog: every exchange recorded, as received, in a WARC that outside
tools accept."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import sealed_warc, stored_object
from warcutil import gzip_members, header, read_records, responses


def test_warcio_check_passes(article_capture):
    proc = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v", str(article_capture["warc"])],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "digest pass" in proc.stdout and "fail" not in proc.stdout


def test_one_gzip_member_per_record(article_capture):
    recs = read_records(article_capture["warc"])
    assert len(recs) > 10
    assert gzip_members(article_capture["warc"]) == len(recs)


def test_sealed_file_is_read_only_and_hash_matches(article_capture):
    import hashlib
    warc = article_capture["warc"]
    # Read-only where it is kept: a file's mode in <archive>/warcs, an object's lock in a bucket.
    assert stored_object(article_capture["archive"], article_capture["show"]).read_only
    assert hashlib.sha256(warc.read_bytes()).hexdigest() == article_capture["show"]["warc_sha256"]
    assert article_capture["show"]["warc_path"].startswith("warcs/")
    assert warc.name == article_capture["show"]["id"] + ".warc.gz"


def test_structure_of_every_record(article_capture):
    recs = read_records(article_capture["warc"])
    assert recs[0].type == "warcinfo"
    warcinfo_id = recs[0].headers["WARC-Record-ID"]
    ids = {r.headers["WARC-Record-ID"]: r for r in recs}
    for rec in recs:
        assert rec.headers["WARC-Block-Digest"].startswith("sha256:")
        if rec.type != "warcinfo":
            assert rec.headers["WARC-Warcinfo-ID"] == warcinfo_id
            assert rec.headers["WARC-Payload-Digest"].startswith("sha256:")
        if rec.type == "response":
            assert rec.http_status_line.startswith(("HTTP/1.1 ", "HTTP/1.0 ")), rec.http_status_line
            assert rec.headers.get("WARC-IP-Address") == "127.0.0.1"
            assert rec.headers.get("WARC-Protocol") == "http/1.1"
            # Content-Length describes exactly the stored body.
            assert header(rec, "Content-Length") == str(len(rec.payload))
            # A Content-Encoding header only where the stored body really is encoded.
            encoding = header(rec, "Content-Encoding")
            if encoding:
                assert encoding == "gzip" and rec.payload[:2] == b"\x1f\x8b"
            assert header(rec, "Transfer-Encoding") is None
        if rec.type == "request":
            target = ids.get(rec.headers["WARC-Concurrent-To"])
            assert target is not None and target.type == "response"
            assert target.headers["WARC-Target-URI"] == rec.headers["WARC-Target-URI"]
        if "WARC-Refers-To" in rec.headers:
            assert rec.headers["WARC-Refers-To"] in ids
    # every response has its request
    concurrent = {r.headers["WARC-Concurrent-To"] for r in recs if r.type == "request"}
    assert {r.headers["WARC-Record-ID"] for r in recs if r.type == "response"} <= concurrent


def test_subresources_xhr_and_iframe_recorded(article_capture, site):
    recs = read_records(article_capture["warc"])
    uris = {r.headers.get("WARC-Target-URI") for r in recs if r.type == "response"}
    for path in ("/2016/12/16/aleppo-live/", "/static/site.css", "/static/live.js", "/api/updates.json",
                 "/embed/periscope-card.html"):
        assert site.url + path in uris, path
    images = [u for u in uris if u.endswith((".png", ".jpg", ".jpeg"))]
    assert len(images) >= 2
    # Everything the page loaded was recorded (CDP can report a paused response before its request).
    assert article_capture["show"]["provenance"]["unrecorded"] == []


def test_gzipped_script_stored_so_headers_describe_bytes(article_capture, site):
    recs = read_records(article_capture["warc"])
    [js] = responses(recs, site.url + "/static/live.js")
    # The browser hands over decoded bytes: the encoding header is renamed, the body is plain JavaScript.
    assert header(js, "Content-Encoding") is None
    assert header(js, "X-Orig-Content-Encoding") == "gzip"
    assert js.payload[:2] != b"\x1f\x8b"
    assert b"updates.json" in js.payload
    on_disk = (Path(__file__).resolve().parent.parent / "scripts/demo_site/static/live.js").read_bytes()
    assert js.payload == on_disk


def test_javascript_added_text_is_recorded_and_searchable(article_capture):
    recs = read_records(article_capture["warc"])
    dom = next(r for r in recs if r.type == "resource" and r.headers["WARC-Target-URI"].startswith("urn:dom:"))
    assert b"Ramouseh checkpoint convoy turned back" in dom.payload
    result = article_capture["cli"]("search", "Ramouseh", "--json")
    assert result.code == 0
    hits = result.json()
    assert [h["id"] for h in hits] == [article_capture["show"]["id"]]
    assert "Ramouseh" in hits[0]["snippet"]


def test_screenshot_dom_text_resources(article_capture):
    recs = read_records(article_capture["warc"])
    url = article_capture["show"]["final_url"]
    by_uri = {r.headers.get("WARC-Target-URI"): r for r in recs}
    shot = by_uri[f"urn:screenshot:{url}"]
    assert shot.type == "resource" and shot.headers["Content-Type"] == "image/png"
    assert shot.payload.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(shot.payload[16:20], "big")
    height = int.from_bytes(shot.payload[20:24], "big")
    assert width >= 1000 and height > 900  # full page, not just the viewport
    assert by_uri[f"urn:dom:{url}"].payload.lstrip().lower().startswith(b"<!doctype html")
    assert b"Aleppo" in by_uri[f"urn:text:{url}"].payload


def test_lazy_image_loaded_by_scrolling(article_capture, site):
    recs = read_records(article_capture["warc"])
    html = responses(recs, site.article_url)[0].payload.decode()
    import re
    lazy = re.search(r'<img[^>]+loading="lazy"[^>]*src="([^"]+)"|<img[^>]+src="([^"]+)"[^>]*loading="lazy"', html)
    assert lazy, "the demo article has a lazy image"
    src = lazy.group(1) or lazy.group(2)
    from urllib.parse import urljoin
    assert responses(recs, urljoin(site.article_url, src)), "scrolling should have loaded the lazy image"


def test_provenance_record_is_last_but_its_signature_and_complete(article_capture):
    recs = read_records(article_capture["warc"])
    prov_rec, sig_rec = recs[-2], recs[-1]
    assert prov_rec.type == "metadata" and prov_rec.headers["Content-Type"] == "application/json"
    assert sig_rec.type == "metadata" and sig_rec.headers["WARC-Target-URI"] == f"urn:signature:{article_capture['show']['id']}"
    assert sig_rec.headers["WARC-Refers-To"] == prov_rec.headers["WARC-Record-ID"]
    prov = json.loads(prov_rec.payload)
    show = article_capture["show"]
    assert prov["capture_id"] == show["id"]
    assert prov["requested_by"] == "tester" and prov["tags"] == ["aleppo"]
    assert prov["outcome"] == "ok" and prov["final_url"] == show["final_url"]
    main = next(r for r in recs if r.headers.get("WARC-Record-ID") == prov_rec.headers["WARC-Refers-To"])
    assert main.type == "response" and main.headers["WARC-Target-URI"] == show["final_url"]
    digests = {r["record_id"]: r["payload_digest"] for r in prov["records"]}
    assert len(digests) == len(recs) - 2
    for rec in recs[1:-2]:
        assert digests[rec.headers["WARC-Record-ID"]] == rec.headers["WARC-Payload-Digest"]
    info = recs[0].payload.decode()
    for needle in ("software: archiver/", "chromium", "playwright", "warcio", "httpx", "operator: tester",
                   "hostname: "):
        assert needle in info


def test_show_json_contract(article_capture):
    show = article_capture["show"]
    for key in ("id", "url", "final_url", "status", "captured_at", "warc_path", "warc_sha256", "records"):
        assert key in show
    assert show["status"] == "ok"
    offsets = [r["offset"] for r in show["records"]]
    assert offsets == sorted(offsets) and offsets[0] == 0
    for r in show["records"]:
        assert {"type", "uri", "offset", "length", "payload_digest"} <= set(r)
    recs = read_records(article_capture["warc"])
    assert [r.offset for r in recs] == offsets
    assert show["title"] and "Aleppo" in show["title"]
    assert len(show["outlinks"]) > 3


def test_redirect_hop_recorded_with_status(cli, site):
    result = cli("capture", site.url + "/go/evacuation-suspended", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    recs = read_records(sealed_warc(cli.archive, show))
    [hop] = responses(recs, site.url + "/go/evacuation-suspended")
    assert hop.http_status_line.startswith("HTTP/1.1 302")
    assert header(hop, "Location") == "/2016/12/16/evacuation-suspended/"
    assert header(hop, "Content-Length") == str(len(hop.payload))
    [final] = responses(recs, site.url + "/2016/12/16/evacuation-suspended/")
    assert final.http_status_line.startswith("HTTP/1.1 200")
    assert show["final_url"] == site.url + "/2016/12/16/evacuation-suspended/"
    assert show["provenance"]["redirects"][0]["status"] == 302


def test_iso_8859_1_page_stored_byte_for_byte(cli, site):
    result = cli("capture", site.url + "/archive/1998/communique.html", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    recs = read_records(sealed_warc(cli.archive, show))
    [page] = responses(recs, site.url + "/archive/1998/communique.html")
    on_disk = (Path(__file__).resolve().parent.parent / "scripts/demo_site/archive/1998/communique.html").read_bytes()
    assert page.payload == on_disk
    assert "é".encode("latin-1") in page.payload and "é".encode("utf-8") not in page.payload
    assert "iso-8859-1" in header(page, "Content-Type").lower()
    # The index holds the text decoded correctly.
    assert cli("search", "Comité", "--json").json()[0]["id"] == show["id"]


def test_gzip_never_leaks_into_stored_body_of_second_capture(article_capture):
    """A sanity check on the decoded-body rule: gzip magic never appears under a plain header."""
    for rec in read_records(article_capture["warc"]):
        if rec.type == "response" and rec.payload[:2] == b"\x1f\x8b":
            assert header(rec, "Content-Encoding") == "gzip"
            gzip.decompress(rec.payload)


def test_cross_site_iframe_and_its_subresources_recorded(cli, site):
    port = site.url.rsplit(":", 1)[1]
    result = cli("capture", site.url + "/test/cross-site-frame", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    uris = {r["uri"] for r in show["records"] if r["type"] == "response"}
    assert f"http://localhost:{port}/embed/periscope-card.html" in uris
    assert f"http://localhost:{port}/static/img/alhamdo-avatar.png" in uris


def test_warcinfo_names_the_chromium_binary_that_captured(article_capture):
    """browser.executable = "auto" (the default) captures with Debian's headless shell when it is installed, and the
    capture says so: which binary rendered the page is part of its provenance."""
    from archiver.capture.browser import HEADLESS_SHELL_BINARY
    info = read_records(article_capture["warc"])[0].payload.decode()
    versions = json.loads(next(line for line in info.splitlines() if line.startswith("software-versions: "))
                          .split(": ", 1)[1])
    expected = HEADLESS_SHELL_BINARY if os.access(HEADLESS_SHELL_BINARY, os.X_OK) else "/usr/lib/chromium/chromium"
    assert versions["chromium-executable"] == expected


def test_auto_executable_is_the_headless_shell_only_without_a_window(tmp_path):
    from archiver.capture.browser import (AUTO, DEBIAN_BINARY, HEADLESS_SHELL_BINARY, HEADLESS_SHELL_WRAPPER,
                                          resolve_executable)
    if not os.access(HEADLESS_SHELL_BINARY, os.X_OK):
        pytest.skip("Debian's chromium-headless-shell is not installed (make setup installs it)")
    assert resolve_executable(AUTO, headless=True) == HEADLESS_SHELL_BINARY
    assert resolve_executable(AUTO, headless=False) == DEBIAN_BINARY  # the shell has no window to show
    assert resolve_executable(HEADLESS_SHELL_WRAPPER) == HEADLESS_SHELL_BINARY
    own = tmp_path / "my-chromium"
    assert resolve_executable(str(own)) == str(own)  # a path of the user's is used as given
