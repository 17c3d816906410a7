"""Files received from others in the workbench (issue 15), in Debian's Chromium against a real `archiver serve`: their
pages are found beside our captures and marked received (never as a capture of ours), their view shows the receipt
and what was found on receipt, the file downloads exactly as received (ledgered), replays in ReplayWeb.page at the
page's URL, and the screenshots a capture tool put in it are shown, read from the file. A partner's WARC is written
here with warcio (no corpus needed); Scoop's and py-wacz's packages are the real ones in ../shared/corpus/warc/."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from conftest import CLI, index_conn, made_archive
from test_receive import WARCS, needs_corpus
from test_receive_index import _partner_warc
from test_web_core import Workbench, chromium, csrf_of, watched_page  # noqa: F401 - chromium is a fixture

TIMEOUT_MS = 45_000


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (what a screenshot record holds)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


SHOT = _png(320, 200, (200, 30, 30))
# Declared a PNG, holding a script: what a hostile sender could put in a package.
FAKE_SHOT = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"><script>alert(1)</script></svg>'


def _partner_package(path: Path) -> Path:
    """A partner's WARC of three pages, and the screenshots its crawler took (Browsertrix's urn:view:), one of them
    a script declared as a PNG."""
    _partner_warc(path, [
        ("https://partner.example/convoy", "Convoy report", "the convoy crossed Ramouseh at dawn"),
        ("https://partner.example/shelling", "Shelling in Bustan al-Qasr", "witnesses describe the shelling"),
        ("https://partner.example/about", "About the partner", "an independent newsroom")])
    with open(path, "ab") as out:   # one gzip member per record: appended records are the same file's
        writer = WARCWriter(out, gzip=True)
        for url, body in (("https://partner.example/convoy", SHOT), ("https://partner.example/shelling", FAKE_SHOT)):
            writer.write_record(writer.create_warc_record(f"urn:view:{url}", "resource", payload=io.BytesIO(body),
                                                          warc_content_type="image/png"))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An archive of 2 captures of our own (scripts/make-index: archiver's write path) and, received after them,
    the partner's package."""
    root = tmp_path_factory.mktemp("received-web")
    cli = made_archive(root / "archive", 2)
    package = _partner_package(root / "partner-crawl.warc.gz")
    [outcome] = cli("receive", str(package), "--from", "Partner newsroom", "--by", "Hadi", "--note",
                    "handed over on a USB stick", "--tag", "partner", "--json").json()
    return {"cli": cli, "outcome": outcome, "package": package}


def _accessed(archive: Path, what: str) -> list[dict]:
    """The `accessed` entries of ``what``: their detail, with the entry's URL as ``entry_url``."""
    with index_conn(archive) as conn:
        rows = conn.execute("SELECT detail, url FROM ledger WHERE event = 'accessed' ORDER BY seq").fetchall()
    details = [{**(json.loads(d) if isinstance(d, str) else d), "entry_url": u} for (d, u) in rows]
    return [d for d in details if d["what"] == what]


def _replayed(page):
    return (page.frame_locator("iframe#replay").frame_locator("replay-web-page iframe")
            .frame_locator("iframe.iframe-main"))


def test_a_received_page_is_found_marked_shown_downloaded_replayed_and_verified(mixed, chromium):
    cli, outcome = mixed["cli"], mixed["outcome"]
    receipt_id = outcome["receipt_id"]
    [hit] = cli("search", "Ramouseh", "--json").json()
    ours = cli("list", "--status", "ok", "--json").json()
    assert len(ours) == 2
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.set_default_timeout(TIMEOUT_MS)
            # Search: the received page, marked, from whom, linking to its own view (never /capture/).
            page.goto(f"{bench.origin}/?q=Ramouseh")
            row = page.locator("tr.received-row")
            expect(row).to_have_count(1)
            assert row.locator("span.status").inner_text() == "received"
            assert "received from Partner newsroom" in row.inner_text()
            assert "not captured by this archive" in row.inner_text()
            assert row.locator("a.title").get_attribute("href") == f"/received/{hit['id']}"
            assert row.locator("input[name=id]").get_attribute("value") == hit["id"]   # exports its whole file
            # The list: ours and theirs, each as it is; the filters keep them apart.
            page.goto(f"{bench.origin}/")
            assert page.locator("tr.received-row").count() == 3
            assert page.locator("span.status.ok").count() == 2
            page.goto(f"{bench.origin}/?status=received")
            assert page.locator("tr.received-row").count() == 3 and page.locator("span.status.ok").count() == 0
            page.goto(f"{bench.origin}/?status=ok")
            assert page.locator("tr.received-row").count() == 0 and page.locator("span.status.ok").count() == 2
            page.goto(f"{bench.origin}/?q=the&kind=received")
            assert page.locator("tr.received-row").count() == 3 and page.locator("span.status.ok").count() == 0
            page.goto(f"{bench.origin}/?q=the&tag=partner")
            assert page.locator("tr.received-row").count() == 3

            # Its view: the page, the receipt, what was found, its screenshot from the file.
            page.goto(f"{bench.origin}/?q=Ramouseh")
            page.locator("tr.received-row a.title").click()
            page.wait_for_url(f"**/received/{hit['id']}")
            text = page.locator("main").inner_text()
            for expected in ("Received from others, not captured by this archive", "Partner newsroom", "Hadi",
                             "handed over on a USB stick", outcome["sha256"], "partner-crawl.warc.gz",
                             "PartnerCrawler/2.1", "every digest holds", "https://partner.example/convoy",
                             "Convoy report", "1 of 3 in the file"):
                assert expected in text, expected
            assert "Capture " not in text.split("Receipt")[0]
            shot = page.locator("img.received-image")
            expect(shot).to_have_count(1)
            page.wait_for_function("() => document.querySelector('img.received-image').complete")
            assert shot.evaluate("img => img.naturalWidth") == 320
            # Replay: the received file, in ReplayWeb.page on its own origin, at this page.
            expect(_replayed(page).locator("body")).to_contain_text("the convoy crossed Ramouseh at dawn",
                                                                    timeout=TIMEOUT_MS)
            assert page.url == f"{bench.origin}/received/{hit['id']}"
            # The script declared a PNG is not shown: the page of the shelling shows a refused image, no alert.
            shelling = next(p for p in cli("list", "--status", "received", "--json").json()
                            if p["url"].endswith("/shelling"))
            page.goto(f"{bench.origin}/received/{shelling['id']}")
            page.wait_for_function("() => document.querySelector('img.received-image').complete")
            assert page.locator("img.received-image").evaluate("img => img.naturalWidth") == 0
            # Verify now: the file re-hashed against its receipt.
            page.goto(f"{bench.origin}/received/{receipt_id}")
            assert "Pages in the file (3)" in page.locator("main").inner_text()
            page.click("#verify-now")
            expect(page.locator("#verify-result")).to_contain_text("as received")
            assert outcome["sha256"] in page.locator("#verify-result").inner_text()

        with httpx.Client(base_url=bench.url) as client:
            # The file exactly as received.
            got = client.get(f"/received/{receipt_id}/file")
            assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == outcome["sha256"]
            assert got.content == mixed["package"].read_bytes()
            assert got.headers["content-disposition"].startswith("attachment")
            # The image served is the one in the file, as an image; the script declared a PNG is refused.
            [convoy_shot, _] = [a for a in client.get(f"/api/show/{receipt_id}").json()["receipt"]["checks"]
                                ["attachments"]]
            image = client.get(f"/received/{receipt_id}/image/0")
            assert image.status_code == 200 and image.content == SHOT and image.headers["content-type"] == "image/png"
            assert image.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in image.headers["content-security-policy"]
            fake = client.get(f"/received/{receipt_id}/image/1")
            assert fake.status_code == 400 and "not a image/png image" in fake.text
            assert "<svg" not in fake.text and fake.headers["content-type"].startswith("text/html")
            assert client.get(f"/received/{receipt_id}/image/7").status_code == 404
            assert convoy_shot["uri"] == "urn:view:https://partner.example/convoy"
            # The JSON API speaks the CLI's JSON: search, list and show.
            assert client.get("/api/search", params={"q": "Ramouseh"}).json() == cli(
                "search", "Ramouseh", "--json").json()
            assert client.get("/api/list", params={"limit": "4"}).json() == cli("list", "--limit", "4", "--json").json()
            assert client.get("/api/list", params={"status": "received"}).json() == cli(
                "list", "--status", "received", "--json").json()
            for ident in (hit["id"], receipt_id):
                assert client.get(f"/api/show/{ident}").json() == cli("show", ident, "--json").json()
    finally:
        bench.stop()
    # Custody: the download, the replay and the image each left an `accessed` entry naming the receipt, and
    # the verification a `verified` one; the archive verifies clean.
    archive = cli.archive
    [download] = _accessed(archive, "received")
    assert download["receipt"] == receipt_id and download["sha256"] == outcome["sha256"]
    assert download["bytes"] == outcome["size"] and download["original_name"] == "partner-crawl.warc.gz"
    # One per grant, before the file's first byte left: the convoy's replay (and the shelling's, had its frame
    # read the file before the test went on).
    replays = _accessed(archive, "replay")
    assert 1 <= len(replays) <= 2 and replays[0]["entry_url"] is None, replays
    assert all(r["receipt"] == receipt_id and r["via"] == "replay grant" and r["sha256"] == outcome["sha256"]
               for r in replays), replays
    images = _accessed(archive, "received-image")
    assert [i["entry_url"] for i in images] == ["urn:view:https://partner.example/convoy"], images   # once per viewer
    with index_conn(archive) as conn:
        verified = [json.loads(d) if isinstance(d, str) else d for (d,) in conn.execute(
            "SELECT detail FROM ledger WHERE event = 'verified'").fetchall()]
    assert [(v["receipt"], v["ok"]) for v in verified if "receipt" in v] == [(receipt_id, True)]
    assert cli("verify").code == 0


def _payload_of(package: Path, member: str, uri: str) -> bytes:
    """The HTTP body of the response for ``uri`` in a WACZ, read here with zipfile and by hand (independently of
    the code under test)."""
    with zipfile.ZipFile(package) as zf, zf.open(member) as warc:
        for record in ArchiveIterator(warc):
            if record.rec_headers.get_header("WARC-Target-URI") == uri:
                return record.raw_stream.read().split(b"\r\n\r\n", 1)[1]
    raise AssertionError(f"{uri} not in {package}")


@needs_corpus
def test_scoops_screenshot_and_a_signed_wacz_in_the_workbench(tmp_path, chromium):
    cli = CLI(tmp_path / "archive")
    scoop, signed = WARCS / "scoop__example.com.wacz", WARCS / "py-wacz__valid_signed_example_1.wacz"
    outcomes = cli("receive", str(scoop), str(signed), "--from", "Perma.cc", "--json").json()
    scoop_receipt, signed_receipt = (o["receipt_id"] for o in outcomes)
    hits = cli("search", "illustrative", "--all", "--json").json()
    [scoop_page] = [h for h in hits if h["receipt_id"] == scoop_receipt and h["url"] == "https://example.com/"]
    [signed_page] = [h for h in hits if h["receipt_id"] == signed_receipt]
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{bench.origin}/?q=illustrative")
            assert page.locator("tr.received-row").count() == len(hits)
            page.goto(f"{bench.origin}/received/{scoop_page['id']}")
            text = page.locator("main").inner_text()
            assert "Perma.cc" in text and "Scoop @ Harvard Library Innovation Lab" in text
            # Scoop's screenshot, an HTTP response record under file:///screenshot.png in the WACZ.
            page.wait_for_function("() => document.querySelector('img.received-image').complete")
            assert page.locator("img.received-image").evaluate("img => img.naturalWidth") > 1000
            assert "file:///screenshot.png" in page.locator("figure.received-shot").inner_text()
            assert "file:///pdf-snapshot.pdf" in page.locator("#other-attachments").inner_text()
            # The WACZ replays as received, read by ReplayWeb.page through its own index, at the page.
            expect(_replayed(page).locator("body")).to_contain_text("for use in illustrative examples",
                                                                    timeout=TIMEOUT_MS)
            # A domain-signed WACZ: its signature and signer as found on receipt.
            page.goto(f"{bench.origin}/received/{signed_page['id']}")
            signature = page.locator("#wacz-signature").inner_text()
            assert "valid" in signature and "btrix-sign-test.webrecorder.net" in signature
            assert page.locator("img.received-image").count() == 0
        with httpx.Client(base_url=bench.url) as client:
            [shot] = [a for a in client.get(f"/api/show/{scoop_receipt}").json()["receipt"]["checks"]["attachments"]
                      if a["uri"] == "file:///screenshot.png"]
            image = client.get(f"/received/{scoop_receipt}/image/0")
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert image.content == _payload_of(scoop, shot["warc"], "file:///screenshot.png")
            got = client.get(f"/received/{signed_receipt}/file")
            assert got.content == signed.read_bytes()
    finally:
        bench.stop()
    # The scoop page's replay read the file (and the signed page's too, had its frame got that far before the test
    # went on): one entry per grant.
    replayed = [d["receipt"] for d in _accessed(cli.archive, "replay")]
    assert replayed[0] == scoop_receipt and replayed[1:] in ([], [signed_receipt]), replayed
    assert cli("verify").code == 0


def _ledger_after(archive: Path, seq: int) -> list[dict]:
    """The ledger's entries after ``seq``: event, capture and URL, and detail."""
    with index_conn(archive) as conn:
        rows = conn.execute("SELECT seq, event, capture_id, url, detail FROM ledger WHERE seq > ? ORDER BY seq",
                            (seq,)).fetchall()
    return [{"seq": s, "event": e, "capture_id": c, "url": u, "detail": json.loads(d) if isinstance(d, str) else d}
            for (s, e, c, u, d) in rows]


def test_a_received_pages_report_and_an_export_of_it_with_a_capture_of_ours(mixed, chromium, tmp_path):
    cli, outcome = mixed["cli"], mixed["outcome"]
    receipt_id, archive = outcome["receipt_id"], cli.archive
    [hit] = cli("search", "Ramouseh", "--json").json()
    ours = cli("list", "--status", "ok", "--json").json()[0]
    with index_conn(archive) as conn:
        [(before,)] = conn.execute("SELECT max(seq) FROM ledger").fetchall()
    bench = Workbench(cli)
    try:
        with watched_page(chromium) as page:
            page.set_default_timeout(TIMEOUT_MS)
            # The received page's report, HTML and PDF, from its view: headed as received, on this page.
            page.goto(f"{bench.origin}/received/{hit['id']}")
            # (Its "export" button exports the whole file: its receipt's ID, through the route tested below.)
            assert page.locator("form:has(#export-received) input[name=id]").get_attribute("value") == receipt_id
            with page.expect_download() as got:
                page.click("#received-report")
            html = tmp_path / "report.html"
            got.value.save_as(html)
            assert got.value.suggested_filename == f"{hit['id']}-received-report.html"
            report = html.read_text()
            assert "<h1>Received from others — not captured by this archive</h1>" in report
            for expected in (hit["id"], receipt_id, outcome["sha256"], "Partner newsroom", "Convoy report",
                             "https://partner.example/convoy", "the convoy crossed Ramouseh at dawn"):
                assert expected in report, expected
            assert "capture report" not in report.lower()
            with page.expect_download() as got:
                page.click("#received-report-pdf")
            pdf = tmp_path / "report.pdf"
            got.value.save_as(pdf)
            assert pdf.read_bytes().startswith(b"%PDF-") and got.value.suggested_filename.endswith(".pdf")

            # The search page: a received page is checked as its whole file, beside a capture of ours.
            page.goto(f"{bench.origin}/")
            box = page.locator(f'tr.received-row input[name=id][value="{hit["id"]}"]')
            assert "whole received file partner-crawl.warc.gz" in box.get_attribute("aria-label")
            assert "the whole file exports with its receipt" in page.locator("tr.received-row").first.inner_text()
            box.check()
            page.check(f'input[name=id][value="{ours["id"]}"]')
            with page.expect_download() as got:
                page.click("button[name=export]")
            package = tmp_path / "selection.wacz"
            got.value.save_as(package)

        with httpx.Client(base_url=bench.url) as client:
            # Only a receipt's or a received page's full ID opens anything: a prefix or an unknown ID is a 404 page.
            for path in (f"/received/{hit['id'][:12]}", f"/received/{hit['id'][:12]}/report",
                         f"/received/{receipt_id[:10]}/file", f"/received/{ours['id']}",
                         f"/received/{ours['id']}/report.pdf", f"/received/{hit['id']}/file"):
                answer = client.get(path)
                assert answer.status_code == 404, (path, answer.status_code)
                assert "Traceback" not in answer.text and "no received file" in answer.text, path
            csrf = csrf_of(client.get(f"/received/{receipt_id}").text)
            assert client.post(f"/received/{receipt_id[:8]}/verify", data={"csrf": csrf},
                               headers={"Origin": bench.url}).status_code == 404
    finally:
        bench.stop()

    # The package: intact by `verify --wacz`, our capture and the received file whole, as received.
    checked = cli("verify", "--wacz", str(package), "--json")
    assert checked.code == 0, checked.out
    assert checked.json()["ok"] and checked.json()["received"] == 1 and checked.json()["captures"] == 1
    with zipfile.ZipFile(package) as zf:
        kept = zf.read(f"archive/received-{receipt_id}.warc.gz")
        receipt = json.loads(zf.read(f"received/{receipt_id}.receipt.json"))["receipt"]
        manifest = json.loads(zf.read("provenance/export.json"))
    assert hashlib.sha256(kept).hexdigest() == outcome["sha256"] == receipt["sha256"]
    assert kept == mixed["package"].read_bytes()
    assert [c["id"] for c in manifest["captures"]] == [ours["id"]]
    assert [r["receipt"] for r in manifest["received"]] == [receipt_id]

    # Custody: the report and its PDF ledgered naming the receipt and the page; the export as `exported` and as
    # `accessed` naming the capture and the receipt; the archive still verifies clean.
    entries = _ledger_after(archive, before)
    # (The view itself read its screenshot and, in the frame, replayed the file: entries of their own, tested above.)
    handed = [e for e in entries if e["event"] == "accessed"
              and e["detail"]["what"] not in ("received-image", "replay")]
    assert [e["detail"]["what"] for e in handed] == ["report", "report-pdf", "wacz"], entries
    for e in handed[:2]:
        assert (e["detail"]["receipt"], e["detail"]["page"], e["detail"]["sha256"]) == (
            receipt_id, hit["id"], outcome["sha256"])
        assert e["capture_id"] is None and e["detail"]["bytes"] > 1000 and e["detail"]["from"] == "127.0.0.1"
    wacz = handed[2]["detail"]
    assert wacz["captures"] == [ours["id"]] and wacz["receipts"] == [receipt_id]
    assert wacz["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    [exported] = [e for e in entries if e["event"] == "exported"]
    assert wacz["exported_entry"] == exported["seq"]
    assert cli("verify").code == 0
