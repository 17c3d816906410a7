"""An export loads in ReplayWeb.page, offline, as a person would open it: a page embedding
`<replay-web-page source="case.wacz">` with the ui.js and sw.js that `make setup` fetched (the version pinned in
the Makefile), served from 127.0.0.1 (a secure context, so the service worker runs), in Debian's Chromium.

Asserted is what ReplayWeb.page shows or decides: the archived page, with the text its own JavaScript fetched at
capture time, rendered from the WACZ alone (the live site gets no request); the package hash and public key in
its archive-info panel; and the verdict its service worker (wabac.js) reached on the package signature. That
verdict is kept in the collection's "verification" store and is not shown as such: ReplayWeb.page 2.5.3's
"Validation" line counts the signature entry as verified whatever the check said (and, without its useHashCheck
option, counts pages.jsonl as invalid), so it reads "1 hashes verified, 1 invalid" for a sound package and a
tampered one alike. The tampered package (a WARC byte changed, datapackage.json re-hashed to match, the digest
not re-signed) is therefore judged by the verdict itself."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

import demo_server
from archiver.capture.browser import DEBIAN_WRAPPER, resolve_executable
from conftest import CLI
from test_wacz import TAMPERED, _members, _relisted, _rezip

RWP = Path(sys.executable).parent.parent / "replaywebpage"   # where `make setup` puts it, inside .venv
TIMEOUT_MS = 30_000
# What ReplayWeb.page 2.5.3's panel says of a sound package and of a tampered one alike (see above).
VALIDATION_LINE = "1 hashes verified, 1 invalid"
# The checks wabac.js (ReplayWeb.page's service worker) made on the package, as it records them in the
# collection's "verification" store, by id; "signature" is its ECDSA verdict. Polled in the page until that entry
# is there, for at most the given milliseconds (null if it never comes).
VERIFICATION = """async (ms) => {
  const read = async () => {
    for (const {name} of await indexedDB.databases()) {
      const db = await new Promise((ok, fail) => {
        const req = indexedDB.open(name); req.onsuccess = () => ok(req.result); req.onerror = fail; });
      try {
        if (![...db.objectStoreNames].includes("verification")) continue;
        const rows = await new Promise((ok, fail) => {
          const req = db.transaction("verification").objectStore("verification").getAll();
          req.onsuccess = () => ok(req.result); req.onerror = fail; });
        if (rows.some(r => r.id === "signature")) return Object.fromEntries(rows.map(r => [r.id, r]));
      } finally { db.close(); }
    }
    return null;
  };
  for (const end = Date.now() + ms; ; await new Promise(wake => setTimeout(wake, 100))) {
    const found = await read();
    if (found || Date.now() > end) return found;
  }
}"""


# Registers the worker as <replay-web-page> does (same script URL and scope), and waits until it is activated.
SERVICE_WORKER = """async (ms) => {
  const reg = await navigator.serviceWorker.register("./replay/sw.js?serveIndex=1", {scope: "./replay/"});
  const worker = reg.installing || reg.waiting || reg.active;
  await Promise.race([
    new Promise(ok => { if (worker.state === "activated") ok();
                        worker.addEventListener("statechange", () => worker.state === "activated" && ok()); }),
    new Promise((_, fail) => setTimeout(() => fail(new Error(`service worker not activated in ${ms} ms`)), ms))]);
}"""


class ReplaySite:
    """127.0.0.1 serving ReplayWeb.page's embed page for one WACZ (byte ranges honoured, as wabac.js reads the
    zip by ranges); ``requests`` lists the paths asked for."""

    def __init__(self, wacz: Path, url: str) -> None:
        ui, sw = (RWP / "ui.js").read_bytes(), (RWP / "sw.js").read_bytes()
        index = ('<!doctype html><html><head><meta charset="utf-8"><script src="ui.js"></script></head>'
                 '<body style="margin:0;height:100vh"><replay-web-page source="case.wacz" embed="replay-with-info" '
                 f'url="{url}"></replay-web-page></body></html>').encode()
        js = "application/javascript"
        # The embed registers replay/sw.js; the app page that worker serves loads ./ui.js beside it.
        html = "text/html; charset=utf-8"
        files = {"/": (index, html), "/blank": (b"<!doctype html><title>blank</title>", html),
                 "/ui.js": (ui, js), "/replay/ui.js": (ui, js),
                 "/replay/sw.js": (sw, js), "/case.wacz": (wacz.read_bytes(), "application/wacz")}
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self.answer(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self.answer(head=False)

            def answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                owner.requests.append(path)
                if path not in files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, kind = files[path]
                wanted = demo_server._byte_range(self.headers.get("Range"), len(body))
                status, headers = 200, {"Accept-Ranges": "bytes", "Content-Type": kind, "Cache-Control": "no-store"}
                if wanted == "unsatisfiable":
                    status, body, headers["Content-Range"] = 416, b"", f"bytes */{len(body)}"
                elif isinstance(wanted, tuple):
                    first, last = wanted
                    status, body = 206, body[first:last + 1]
                    headers["Content-Range"] = f"bytes {first}-{last}/{len(files[path][0])}"
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, site) -> dict[str, Any]:
    """A browser capture of the live blog (whose updates only its JavaScript fetches), exported; and the same
    package with one WARC byte changed, datapackage.json re-hashed to match and the digest not re-signed."""
    if not (RWP / "ui.js").is_file() or not (RWP / "sw.js").is_file():
        pytest.fail(f"ReplayWeb.page is not in {RWP}; run `make setup`")
    root = tmp_path_factory.mktemp("rwp")
    cli = CLI(root / "archive")
    captured = cli("capture", site.article_url, "--json")
    assert captured.code == 0, captured.err
    capture_id = captured.json()[0]["capture_id"]
    wacz = root / "case.wacz"
    result = cli("export", capture_id, "-o", str(wacz), "--json")
    assert result.code == 0, result.err
    members = _members(wacz)
    warc = TAMPERED.format(id=capture_id)
    forged, middle = bytearray(members[warc]), len(members[warc]) // 2
    forged[middle] ^= 1
    # The byte falls in the page's screenshot (most of the WARC), so the page itself still replays.
    rows = [json.loads(line.split(" ", 2)[2]) for line in members["indexes/index.cdxj"].decode().splitlines()]
    [hit] = [r["url"] for r in rows if int(r["offset"]) <= middle < int(r["offset"]) + int(r["length"])]
    assert hit.startswith("urn:screenshot:"), hit
    tampered = _rezip(wacz, root / "tampered.wacz", _relisted(members, {warc: bytes(forged)}))
    return {"wacz": wacz, "tampered": tampered, "url": site.article_url, "members": members,
            "key": cli("key", "--json").json()["wacz_key"]}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = resolve_executable(DEBIAN_WRAPPER)
    if not os.path.exists(executable):
        pytest.fail("Chromium is not installed; run `make setup`")
    args = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            browser.close()


def _open(chromium, wacz: Path, url: str) -> tuple[Any, ReplaySite, Any]:
    """A fresh profile (no service worker or IndexedDB from another test) on a page embedding the package, its
    service worker already running, as on a second visit. On a first visit ReplayWeb.page 2.5.3 races it: now and
    then the worker takes over the app frame just after that frame was fetched without it, and the embed stays
    blank until reloaded."""
    served = ReplaySite(wacz, url)
    context = chromium.new_context(service_workers="allow")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(served.url + "blank")
    page.evaluate(SERVICE_WORKER, TIMEOUT_MS)
    page.goto(served.url)
    return context, served, page


def _replayed(page) -> Any:
    """The archived page as ReplayWeb.page shows it: the embed's iframe (the app, in the shadow root of
    <replay-web-page>), then the app's replay iframe (in the shadow roots of its own components)."""
    return page.frame_locator("replay-web-page iframe").frame_locator("iframe.iframe-main")


def _shows(locator, text: str) -> None:
    """Waits, up to TIMEOUT_MS, for the element to show the text (as a person waits for a page to load)."""
    expect(locator).to_contain_text(text, timeout=TIMEOUT_MS)


def _receipt(page) -> Any:
    """The embed's archive-info panel, opened as a person would, by its button."""
    app = page.frame_locator("replay-web-page iframe")
    app.get_by_role("button", name="This embed is part of a web archive").click()
    return app.locator("rwp-embed-receipt #embed-dropdown")


def _signature_verdict(page) -> dict[str, Any]:
    verdict = page.evaluate(VERIFICATION, TIMEOUT_MS)
    assert verdict, f"ReplayWeb.page recorded no signature check within {TIMEOUT_MS} ms"
    return verdict


def test_export_replays_in_replaywebpage_with_its_signature_verified(exported, chromium, site):
    hits_before = dict(site.hits)
    context, served, page = _open(chromium, exported["wacz"], exported["url"])
    try:
        replayed = _replayed(page)
        _shows(replayed.locator("h1.headline"), "Russia Claims All Women And Children Evacuated")
        # Inserted by the page's script from /api/updates.json: the replay ran it against the archived JSON.
        _shows(replayed.locator("#latest-updates[data-loaded=true]"), "Ramouseh checkpoint convoy turned back")

        verdict = _signature_verdict(page)
        digest = json.loads(exported["members"]["datapackage-digest.json"])
        assert verdict["signature"]["matched"] is True, verdict
        assert verdict["datapackageHash"]["expected"] == digest["hash"]
        assert verdict["publicKey"]["expected"] == digest["signedData"]["publicKey"]

        # The archive-info panel a person opens above the replay names the package and the key that signed it.
        receipt = _receipt(page)
        _shows(receipt, digest["hash"])
        _shows(receipt, digest["signedData"]["publicKey"])
        _shows(receipt, VALIDATION_LINE)
        spki = base64.b64decode(digest["signedData"]["publicKey"])
        assert exported["key"]["fingerprint"] == "sha256:" + hashlib.sha256(spki).hexdigest()
    finally:
        context.close()
        served.close()
    # All of it came out of the package: not one request reached the live site.
    assert "/case.wacz" in served.requests
    assert dict(site.hits) == hits_before


def test_tampered_export_is_not_verified_by_replaywebpage(exported, chromium):
    context, served, page = _open(chromium, exported["tampered"], exported["url"])
    try:
        # ReplayWeb.page still shows the page (the changed byte is in its screenshot) ...
        _shows(_replayed(page).locator("h1.headline"), "Russia Claims All Women And Children")
        # ... but its service worker's check of the signature over the re-hashed datapackage.json fails.
        verdict = _signature_verdict(page)
        digest = json.loads(_members(exported["tampered"])["datapackage-digest.json"])
        assert verdict["datapackageHash"]["expected"] == digest["hash"] != \
            json.loads(exported["members"]["datapackage-digest.json"])["hash"]
        assert verdict["signature"]["matched"] is False, verdict
        # Its panel reads as for the sound package: the verdict is the only place the failure shows.
        _shows(_receipt(page), VALIDATION_LINE)
    finally:
        context.close()
        served.close()
