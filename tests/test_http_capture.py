"""Direct captures (non-HTML targets, --no-browser) and how failures are recorded."""
from __future__ import annotations

import gzip
import socket
from pathlib import Path
from typing import Iterator

import pytest

from conftest import sealed_warc, stored_warcs
from warcutil import header, read_records, responses

ROOT = Path(__file__).resolve().parent.parent


def _show(cli, result):
    assert result.code in (0, 1), result.err
    outcome = result.json()[0]
    return outcome, (cli("show", outcome["capture_id"], "--json").json() if outcome["capture_id"] else None)


def test_pdf_is_fetched_directly_and_stored_raw(cli, site):
    dry = cli("add", "--dry-run", "--json", site.url + "/docs/icrc-statement.pdf").json()
    assert dry[0]["kind"] == "file"
    outcome, show = _show(cli, cli("capture", site.url + "/docs/icrc-statement.pdf", "--json"))
    assert outcome["status"] == "ok"
    assert show["method"] == "http" and show["content_type"] == "application/pdf"
    recs = read_records(sealed_warc(cli.archive, show))
    [pdf] = responses(recs, site.url + "/docs/icrc-statement.pdf")
    assert pdf.payload == (ROOT / "scripts/demo_site/docs/icrc-statement.pdf").read_bytes()
    assert pdf.payload.startswith(b"%PDF-")
    [req] = [r for r in recs if r.type == "request"]
    assert req.headers["WARC-Concurrent-To"] == pdf.headers["WARC-Record-ID"]
    assert not any(r.headers.get("WARC-Target-URI", "").startswith("urn:screenshot:") for r in recs)


def test_no_browser_keeps_gzip_encoding_as_received(cli, site):
    outcome, show = _show(cli, cli("capture", "--no-browser", site.url + "/static/live.js", "--json"))
    assert outcome["status"] == "ok"
    recs = read_records(sealed_warc(cli.archive, show))
    [js] = responses(recs, site.url + "/static/live.js")
    # httpx asked for gzip and we store the wire bytes: still compressed, header kept, length true.
    assert header(js, "Content-Encoding") == "gzip"
    assert js.payload[:2] == b"\x1f\x8b"
    assert gzip.decompress(js.payload) == (ROOT / "scripts/demo_site/static/live.js").read_bytes()
    assert header(js, "Content-Length") == str(len(js.payload))


def test_no_browser_html_is_indexed_for_search(cli, site):
    outcome, show = _show(cli, cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/",
                                   "--json"))
    assert outcome["status"] == "ok" and show["method"] == "http"
    assert show["title"]
    hits = cli("search", "blasts", "--json").json()
    assert hits and hits[0]["id"] == show["id"]


def test_http_404_is_sealed_as_failed_evidence(cli, site):
    result = cli("capture", site.url + "/test/status/404", "--json")
    assert result.code == 1
    outcome, show = _show(cli, result)
    assert outcome["status"] == "failed" and outcome["failure_class"] == "http-4xx"
    assert show["http_status"] == 404 and show["status"] == "failed"
    status = cli("status", "--json").json()
    assert status["failed"] == 1 and status["recent_failures"][0]["failure_class"] == "http-4xx"


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test: bound, never listening. Held, not merely
    found free, as a server of a test running in parallel could otherwise bind it in between."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_refused_connection_fails_cleanly_and_leaves_nothing(cli, refusing_port):
    url = f"http://127.0.0.1:{refusing_port}/gone"
    result = cli("capture", url, "--json", env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"})
    assert result.code == 1
    outcome = result.json()[0]
    assert outcome["status"] == "failed" and outcome["failure_class"] == "refused"
    assert outcome["capture_id"] is None
    assert not list((cli.archive / "warcs").rglob("*")) and stored_warcs(cli.archive) == []
    assert not list((cli.archive / "tmp").glob("*"))
    status = cli("status", "--json").json()
    assert status["failed"] == 1 and status["recent_failures"][0]["failure_class"] == "refused"


def test_retryable_failure_goes_back_to_the_queue_with_backoff(cli, refusing_port):
    url = f"http://127.0.0.1:{refusing_port}/later"
    result = cli("capture", url, "--json", env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "3"})
    assert result.code == 1 and result.json()[0]["job_state"] == "queued"
    # Not due yet: a cron run does nothing now.
    run = cli("run", "--once")
    assert run.code == 0 and "nothing due" in run.err
    status = cli("status", "--json").json()
    assert status["queued"] == 1 and status["recent_failures"][0]["failure_class"] == "refused"


def test_private_targets_refused_by_default(cli, site):
    before = site.hits.get("/2016/12/16/aleppo-live/", 0)
    result = cli("capture", site.article_url, "--json", env={"ARCHIVER_NETWORK_ALLOW_PRIVATE": "false"})
    assert result.code == 1
    outcome = result.json()[0]
    assert outcome["failure_class"] == "blocked" and outcome["job_state"] == "failed"
    assert "allow_private" in outcome["message"]
    assert stored_warcs(cli.archive) == []
    assert site.hits.get("/2016/12/16/aleppo-live/", 0) == before  # refused before any request was sent


def test_partial_when_page_never_finishes_loading(cli, site):
    result = cli("capture", site.url + "/test/hanging-subresource/", "--json",
                 env={"ARCHIVER_CAPTURE_TIMEOUT_SECONDS": "8"})
    assert result.code == 1
    outcome, show = _show(cli, result)
    assert outcome["status"] == "partial" and outcome["failure_class"] == "timeout"
    assert show["status"] == "partial"
    uris = [r["uri"] for r in show["records"]]
    assert site.url + "/test/hanging-subresource/" in uris
    assert any((u or "").startswith("urn:screenshot:") for u in uris)


def test_non_html_target_found_by_the_browser_is_streamed_not_rendered(cli, site):
    """A URL that looks like a page but answers with a PDF: recorded raw, no screenshot of a viewer."""
    assert cli("add", "--dry-run", "--json", site.url + "/test/document").json()[0]["kind"] == "page"
    outcome, show = _show(cli, cli("capture", site.url + "/test/document", "--json"))
    assert outcome["status"] == "ok", outcome
    assert show["method"] == "browser" and show["content_type"] == "application/pdf"
    recs = read_records(sealed_warc(cli.archive, show))
    [pdf] = responses(recs, site.url + "/test/document")
    assert pdf.payload == (ROOT / "scripts/demo_site/docs/icrc-statement.pdf").read_bytes()
    assert header(pdf, "Content-Length") == str(len(pdf.payload))


def test_main_document_that_never_finishes_is_a_classified_failure(cli, site):
    result = cli("capture", site.url + "/test/never-finishes?seconds=60", "--json",
                 env={"ARCHIVER_CAPTURE_TIMEOUT_SECONDS": "6", "ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"})
    assert result.code == 1
    outcome = result.json()[0]
    assert outcome["failure_class"] == "timeout" and outcome["status"] in ("failed", "partial")
    assert outcome["seconds"] < 30
    # Whatever the outcome, nothing unsealed is left behind and the archive verifies.
    assert not list((cli.archive / "tmp").glob("*.part"))
    assert cli("verify").code == 0


def test_oversized_resource_is_truncated_marked_and_partial(cli, site):
    result = cli("capture", site.article_url, "--json", env={"ARCHIVER_CAPTURE_MAX_RESOURCE_BYTES": "20000"})
    assert result.code == 1
    outcome, show = _show(cli, result)
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "too-large")
    recs = read_records(sealed_warc(cli.archive, show))
    cut = [r for r in recs if r.type == "response" and r.headers.get("WARC-Truncated")]
    assert cut and all(r.headers["WARC-Truncated"] == "length" for r in cut)
    for r in cut:  # never a silent truncation: the header keeps the size the server announced
        assert header(r, "Content-Length") == str(len(r.payload))
        assert int(header(r, "X-Orig-Content-Length")) > 20000


def test_oversized_download_is_cut_and_partial(cli, site):
    result = cli("capture", site.url + "/docs/icrc-statement.pdf", "--json",
                 env={"ARCHIVER_CAPTURE_MAX_DOWNLOAD_BYTES": "500"})
    assert result.code == 1
    outcome, show = _show(cli, result)
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "too-large")
    [pdf] = responses(read_records(sealed_warc(cli.archive, show)), site.url + "/docs/icrc-statement.pdf")
    assert len(pdf.payload) == 500 and pdf.headers["WARC-Truncated"] == "length"


def test_show_url_that_never_sealed_lists_its_failed_job(cli, refusing_port):
    url = f"http://127.0.0.1:{refusing_port}/deleted-post"
    assert cli("capture", url, env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"}).code == 1
    data = cli("show", url, "--json").json()
    assert data["captures"] == [] and data["jobs"][0]["state"] == "failed"
    assert data["jobs"][0]["last_failure_class"] == "refused"
    human = cli("show", url)
    assert human.code == 0 and "refused" in human.out
    assert cli("show", "http://never-requested.example/").code == 1
