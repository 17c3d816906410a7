"""The workbench (`archiver serve`, issue 13): a real server in a subprocess, driven by real Chromium and by httpx.
Search -> a capture -> its screenshot from the WARC; downloads leave an `accessed` ledger entry and `archiver verify`
stays clean; the JSON API speaks the CLI's --json field names. Takes the README's screenshots (docs/workbench-*.png, with
ARCHIVER_DOCS_SCREENSHOTS=1).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import CLI, index_conn
from test_replay_wacz import chromium  # noqa: F401 - the module's Chromium (Debian's, offline), shared

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The README's screenshots are rewritten only when asked (`ARCHIVER_DOCS_SCREENSHOTS=1 make test`): each run's IDs,
# ports and times differ, and a test run must leave the working tree as it found it.
WRITE_DOCS = os.environ.get("ARCHIVER_DOCS_SCREENSHOTS") == "1"


def screenshot_path(name: str, tmp_path: Path) -> str:
    """Where a view's screenshot goes: docs/ when the README's are being retaken, else the test's own folder."""
    folder = DOCS if WRITE_DOCS else tmp_path
    folder.mkdir(exist_ok=True)
    return str(folder / name)
BIN = Path(sys.executable).parent
VIEWPORT = {"width": 1280, "height": 860}


class Workbench:
    """`archiver serve` on a free port, for one test; ``stop()`` sends SIGTERM and checks it ended cleanly."""

    def __init__(self, cli: CLI, *args: str, env: dict[str, str] | None = None):
        self.proc = cli.popen("serve", "--port", "0", *args, env=env)
        line = self.proc.stdout.readline()
        match = re.search(r"http://(\S+?)/ ", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"no address printed: {line!r} {self.proc.stderr.read()}")
        # The origin it prints (on loopback: http://archive.localhost:PORT, a name Chromium resolves itself and
        # the one the replay needs), and the address this process reaches it at (Python does not resolve *.localhost).
        self.origin = f"http://{match.group(1)}"
        self.port = int(match.group(1).rsplit(":", 1)[1])
        host = match.group(1).rsplit(":", 1)[0]
        self.url = f"http://127.0.0.1:{self.port}" if host.endswith(".localhost") else self.origin

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the workbench did not stop on SIGTERM")
        self.proc.stdout.close()
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err


@contextmanager
def watched_page(chromium: Any) -> Iterator[Any]:
    """A page in a fresh Chromium context whose dialogs are recorded and dismissed; on leaving, none may have
    opened (a payload in archived content that ran would alert())."""
    dialogs: list[str] = []
    context = chromium.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        yield page
    finally:
        context.close()
    assert dialogs == []


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def served(article_capture) -> Iterator[tuple[Workbench, dict[str, Any]]]:
    bench = Workbench(article_capture["cli"])
    try:
        yield bench, article_capture
    finally:
        bench.stop()


def test_search_then_a_capture_shows_its_screenshot_from_the_warc(served, chromium, tmp_path):
    bench, article = served
    show = article["show"]
    context = chromium.new_context(viewport=VIEWPORT, offline=False)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{bench.url}/?q=evacuated&tag=aleppo")
        link = page.locator(f'a.title[href="/capture/{show["id"]}"]')
        assert link.inner_text() == show["title"]
        page.screenshot(path=screenshot_path("workbench-search.png", tmp_path))
        link.click()
        page.wait_for_url(f"**/capture/{show['id']}")
        shot = page.locator("img#screenshot")
        shot.wait_for()
        page.wait_for_function("() => document.getElementById('screenshot').complete")
        assert shot.evaluate("img => img.naturalWidth") > 0
        text = page.locator("main").inner_text()
        for expected in (show["warc_sha256"], show["url"], "holds", "tester", "aleppo"):
            assert expected in text, expected
        page.screenshot(path=screenshot_path("workbench-capture.png", tmp_path))
    finally:
        context.close()
    # The same screenshot bytes as the urn:screenshot: record's payload digest in the index.
    [record] = [r for r in show["records"] if (r["uri"] or "").startswith("urn:screenshot:")]
    with httpx.Client(base_url=bench.url) as client:
        answer = client.get(f"/capture/{show['id']}/screenshot")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == record["payload_digest"]


def test_an_empty_query_lists_captures_and_each_view_is_a_url(served):
    bench, article = served
    with httpx.Client(base_url=bench.url) as client:
        listed = client.get("/", params={"status": "ok", "tag": "aleppo"})
        assert listed.status_code == 200 and f'/capture/{article["show"]["id"]}' in listed.text
        none = client.get("/", params={"tag": "no-such-tag"})
        assert none.status_code == 200 and "/capture/" not in none.text
        bad = client.get("/", params={"since": "yesterday-ish"})
        assert bad.status_code == 400 and "since" in bad.text


def test_api_speaks_the_cli_json(served):
    bench, article = served
    cli, show = article["cli"], article["show"]
    with httpx.Client(base_url=bench.url) as client:
        api_show = client.get(f"/api/show/{show['id']}").json()
        hits = client.get("/api/search", params={"q": "evacuated"}).json()
        listed = client.get("/api/list", params={"limit": "1"}).json()
    assert set(api_show) == set(show) and api_show["warc_sha256"] == show["warc_sha256"]
    cli_hits = cli("search", "evacuated", "--json").json()
    assert [set(h) for h in hits] == [set(h) for h in cli_hits] and hits[0]["id"] == cli_hits[0]["id"]
    cli_list = cli("list", "--json", "--limit", "1").json()
    assert listed == cli_list


def test_downloads_are_recorded_in_the_ledger_and_verify_stays_clean(served):
    bench, article = served
    cli, show = article["cli"], article["show"]
    with httpx.Client(base_url=bench.url) as client:
        page = client.get(f"/capture/{show['id']}")
        warc = client.get(f"/capture/{show['id']}/warc")
        assert warc.status_code == 200
        assert hashlib.sha256(warc.content).hexdigest() == show["warc_sha256"]
        report = client.get(f"/capture/{show['id']}/report")
        assert report.status_code == 200 and "attachment" in report.headers["content-disposition"]
        assert show["warc_sha256"] in report.text
        pdf = client.get(f"/capture/{show['id']}/report.pdf", timeout=60)
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf", pdf.text
        assert pdf.content.startswith(b"%PDF-") and "attachment" in pdf.headers["content-disposition"]
        wacz = client.post("/export", data={"csrf": csrf_of(page.text), "id": show["id"]},
                           headers={"Origin": bench.url})
        assert wacz.status_code == 200, wacz.text
        assert hashlib.sha256(wacz.content).hexdigest() == wacz.headers["x-wacz-sha256"]
        assert "datapackage.json" in zipfile.ZipFile(io.BytesIO(wacz.content)).namelist()
    with index_conn(article["archive"]) as conn:
        rows = conn.execute("SELECT event, capture_id, detail FROM ledger WHERE event IN ('accessed', 'exported') "
                            "ORDER BY seq DESC LIMIT 5").fetchall()
    events = [(r[0], r[1]) for r in rows][::-1]
    assert events == [("accessed", show["id"])] * 3 + [("exported", None), ("accessed", None)]
    assert [json.loads(r[2])["what"] for r in rows[::-1] if r[0] == "accessed"] == ["warc", "report", "report-pdf",
                                                                                     "wacz"]
    assert all('"from":"127.0.0.1"' in r[2] and '"via":"local"' in r[2] for r in rows if r[0] == "accessed")
    verified = cli("verify")
    assert verified.code == 0, verified.out + verified.err


def test_wacz_of_a_selection_passes_wacz_validate(served, tmp_path):
    bench, article = served
    with httpx.Client(base_url=bench.url) as client:
        page = client.get("/", params={"q": "evacuated"})
        ids = re.findall(r'name="id" value="([0-9A-Z]{26})"', page.text)
        assert ids
        wacz = client.post("/export", data={"csrf": csrf_of(page.text), "id": ids},
                           headers={"Origin": bench.url})
    assert wacz.status_code == 200, wacz.text
    out = tmp_path / "selection.wacz"
    out.write_bytes(wacz.content)
    checked = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(out)], capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_verify_now_shows_the_result_and_records_it(served, chromium):
    bench, article = served
    context = chromium.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{bench.url}/capture/{article['show']['id']}")
        page.click("#verify-now")
        result = page.locator("#verify-result")
        result.wait_for()
        assert "intact" in result.inner_text()
    finally:
        context.close()
    with index_conn(article["archive"]) as conn:
        last = conn.execute("SELECT event, detail FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    assert last[0] == "verified" and article["show"]["id"] in last[1]
