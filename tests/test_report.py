"""The capture report: one self-contained HTML page (and a PDF) that loads and runs nothing, shows the sealed
screenshot, the hashes, the signature verdict and the ledger, and escapes whatever the captured page said."""
from __future__ import annotations

import asyncio
import base64
import hashlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

import pytest

from archiver.config import load as load_settings
from archiver.exchange.report import render_pdf
from conftest import index_conn, open_test_archive, tamper_index
from loopback import LoopbackPage

HOSTILE_TITLE = '<script>alert(1)</script><img src=x onerror=alert(2)> "Aleppo" & <a href=//evil.example>'


class Page(HTMLParser):
    """Every element with its attributes, and the text, as a browser's parser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _report(cli, ident: str, out: Path) -> Page:
    result = cli("report", ident, "-o", str(out))
    assert result.code == 0, result.err
    assert out.is_file() and not list(out.parent.glob(".*.part"))  # written whole, nothing left behind
    return Page(out.read_text(encoding="utf-8"))


def _assert_loads_and_runs_nothing(page: Page) -> None:
    assert page.tags("script") == []
    for tag, attrs in page.elements:
        assert tag not in ("link", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"), tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "href" not in attrs, (tag, attrs)          # URLs are shown as text, never as links
        if "src" in attrs:
            assert (attrs["src"] or "").startswith("data:"), (tag, attrs["src"][:80])


def test_report_of_a_browser_capture_is_self_contained_and_complete(article_capture, tmp_path):
    run, show = article_capture["cli"], article_capture["show"]
    out = tmp_path / "report.html"
    page = _report(run, show["id"], out)
    html = out.read_text(encoding="utf-8")

    _assert_loads_and_runs_nothing(page)
    assert "url(" not in html.split("<body>")[0] and "@import" not in html   # no external fonts or styles
    [csp] = [m for m in page.tags("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp["content"] and "img-src data:" in csp["content"]

    # The screenshot is the sealed one: an inlined PNG whose bytes are the urn:screenshot: record's payload.
    [img] = page.tags("img")
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    png = base64.b64decode(img["src"][len(prefix):], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    [shot] = [r for r in show["records"] if (r["uri"] or "").startswith("urn:screenshot:")]
    assert "sha256:" + hashlib.sha256(png).hexdigest() == shot["payload_digest"]

    text = page.all_text
    # Where the WARC is kept: its path in <archive>/warcs, or its object's s3:// location.
    stored_at = open_test_archive(run.archive).stored_at(show)
    for fact in (show["id"], show["url"], show["warc_sha256"], stored_at, show["title"], "aleppo", "tester",
                 "127.0.0.1", "UTC"):
        assert fact in text, fact
    with index_conn(run.archive, named_rows=False) as conn:
        sealed = conn.execute("SELECT hash FROM ledger WHERE capture_id = ? AND event = 'sealed'",
                              (show["id"],)).fetchone()[0]
        queued = conn.execute("SELECT hash FROM ledger WHERE job_id = ? AND event = 'queued'",
                              (show["job"]["id"],)).fetchone()[0]
    assert sealed in text and queued in text   # the capture's entries and its job's

    fingerprint = run("key", "--json").json()["fingerprint"]
    assert f"Signed by key {fingerprint} Signature verifies" in text
    assert f"Archive key {fingerprint} (the key that signed this capture)" in text
    assert "Ledger chain intact" in text and "No RFC 3161 timestamp" in text
    # How to check it: the commands name this file (an object in a bucket: fetched first, the version sealed), its
    # offsets and the archive.
    warc = article_capture["warc"]
    if show.get("warc_store"):
        warc = f"{show['id']}.warc.gz"
        # The test bucket is on moto's loopback server: the command must name that endpoint, or the AWS CLI asks AWS.
        assert "aws --endpoint-url http://127.0.0.1:" in text and " s3api get-object --bucket " in text
        assert f"--version-id {show['warc_version']} {warc}" in text
    assert f"sha256sum {warc}" in text and f"verify {show['id']}" in text
    provenance = next(r for r in show["records"] if r["uri"] == f"urn:provenance:{show['id']}")
    assert f"extract --payload {warc} {provenance['offset']} > provenance.json" in text
    assert "openssl pkeyutl -verify" in text


@pytest.fixture
def hostile() -> Iterator[LoopbackPage]:
    """A loopback page whose title is markup: the report must show it as text."""
    page = LoopbackPage()
    page.body = (f"<!doctype html><html><head><title>{HOSTILE_TITLE}</title></head>"
                 "<body><h1>Evacuation convoy</h1><p>Buses left at 06:00.</p></body></html>")
    yield page
    page.close()


def test_captured_markup_in_title_note_and_tags_is_shown_as_text(cli, hostile, tmp_path):
    note = "<b onmouseover=alert(3)>call the desk</b>"
    result = cli("capture", hostile.url, "--note", note, "--tag", "<i>x</i>", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    assert cli("show", capture_id, "--json").json()["title"] == HOSTILE_TITLE

    out = tmp_path / "hostile.html"
    page = _report(cli, capture_id, out)
    _assert_loads_and_runs_nothing(page)
    assert page.tags("b") == [] and page.tags("i") == [] and page.tags("a") == []
    assert HOSTILE_TITLE in page.all_text and note in page.all_text and "<i>x</i>" in page.all_text
    raw = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw and "<script" not in raw.lower()
    [title] = [d for d in page.text if "alert(1)" in d and "Capture report" in d]
    assert title.endswith(HOSTILE_TITLE)   # the <title> element too


def test_pdf_is_printed_by_chromium(article_capture, tmp_path):
    run, show = article_capture["cli"], article_capture["show"]
    pdf, html = tmp_path / "report.pdf", tmp_path / "report.html"
    result = run("report", show["id"], "-o", str(html), "--pdf", str(pdf))
    assert result.code == 0, result.err
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert 20_000 < len(data) < 50_000_000
    assert b"/Subtype /Image" in data   # the screenshot made it into the print
    assert html.is_file()
    # --pdf alone is enough.
    only = tmp_path / "only.pdf"
    assert run("report", show["url"], "--pdf", str(only)).code == 0 and only.read_bytes().startswith(b"%PDF-")


def test_unknown_capture_and_bad_output_paths(article_capture, tmp_path):
    run, show = article_capture["cli"], article_capture["show"]
    missing = run("report", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "-o", str(tmp_path / "r.html"))
    assert missing.code == 1 and missing.err.count("\n") == 1 and "no capture" in missing.err
    assert not (tmp_path / "r.html").exists()
    for args in (["-o", str(tmp_path / "no" / "such" / "dir.html")], ["-o", str(tmp_path)], [],
                 ["-o", str(tmp_path / "same"), "--pdf", str(tmp_path / "same")]):
        bad = run("report", show["id"], *args)
        assert bad.code == 2 and bad.err.count("\n") == 1 and "Traceback" not in bad.err, (args, bad.err)
    assert list(tmp_path.iterdir()) == []


def test_timestamps_are_listed_and_a_capture_without_screenshot_says_so(cli, site, tmp_path):
    result = cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    show = cli("show", capture_id, "--json").json()
    token = show["warc_path"].replace(".warc.gz", ".freetsa.tsr")
    with index_conn(cli.archive, named_rows=False) as conn:
        conn.execute("INSERT INTO timestamps (capture_id, tsa_url, digest, state, token_path, token_sha256, gen_time, "
                     "serial, tsa_name, created_at, updated_at) VALUES (?, 'https://freetsa.example/tsr', ?, 'done', "
                     "?, 'ab12', '2026-11-25T01:02:03Z', '0x1f', 'CN=Free TSA', 'x', 'x')",
                     (capture_id, show["warc_sha256"], token))
        conn.execute("INSERT INTO timestamps (capture_id, tsa_url, digest, state, attempts, last_error, created_at, "
                     "updated_at) VALUES (?, 'https://tsa.example/', ?, 'failed', 3, 'HTTP 503 <from the TSA>', "
                     "'x', 'x')", (capture_id, show["warc_sha256"]))
    page = _report(cli, capture_id, tmp_path / "r.html")
    _assert_loads_and_runs_nothing(page)
    text = page.all_text
    assert "2026-11-25 01:02:03 UTC done https://freetsa.example/tsr CN=Free TSA 0x1f " + token + " ab12" in text
    assert "failed: HTTP 503 <from the TSA> https://tsa.example/" in text
    assert page.tags("img") == [] and "This capture has no screenshot (method http)" in text
    assert "Signature verifies" in text


def test_pdf_rendering_fetches_nothing_even_when_the_html_asks(hostile, tmp_path):
    # Belt and braces behind escaping and the CSP: the printing browser has no network and no JavaScript.
    html = (f'<html><head><link rel="stylesheet" href="{hostile.url}.css"><style>body {{ background: '
            f'url({hostile.url}.png) }}</style></head><body><img src="{hostile.url}.jpg">'
            f'<iframe src="{hostile.url}"></iframe><script>fetch("{hostile.url}.js")</script>report</body></html>')
    pdf = asyncio.run(render_pdf(html, load_settings(tmp_path / "archive")))
    assert pdf.startswith(b"%PDF-")
    assert hostile.requests == []


def test_ledger_is_checked_where_the_capture_stands_and_the_last_whole_walk_is_named(cli, site, tmp_path):
    """A report checks the chain as `archiver verify ID` does (its entries and their neighbours, and the newest
    whole walk on record), so it takes the same time at a million captures as at ten, and says what it covered."""
    result = cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    text = _report(cli, capture_id, tmp_path / "before.html").all_text
    assert "Ledger chain intact where this capture stands in it" in text
    assert "no `archiver verify` of the whole archive walked the chain" in text

    assert cli("verify").code == 0   # a whole walk, recorded in the ledger (`verified`)
    text = _report(cli, capture_id, tmp_path / "after.html").all_text
    assert "were walked in full and found intact at" in text

    with index_conn(cli.archive, named_rows=False) as conn:
        seq = conn.execute("SELECT seq FROM ledger WHERE capture_id = ? AND event = 'sealed'",
                           (capture_id,)).fetchone()[0]
    tamper_index(cli.archive, f"UPDATE ledger SET url = 'https://elsewhere.example/' WHERE seq = {seq}")
    text = _report(cli, capture_id, tmp_path / "tampered.html").all_text
    assert f"Ledger chain broken at entry {seq}" in text
