"""Capture a page in Chromium (Debian's, driven by Playwright) and record every exchange through CDP.

Why CDP and not Playwright's response events: we need what went over the wire. The Fetch domain, paused at
the Response stage, hands us each body (redirect hops included) before the page sees it; the Network domain
gives the raw header block (``headersText``), the remote IP, the protocol and the TLS details. One Chromium
per worker process; a fresh context per capture so no cookie, cache or storage leaks between captures.

Bodies come from Chromium inflated, so their size is bounded here: only a body whose inflated size is known to
be small (a Content-Length, uncompressed or gzip/deflate) is taken whole with Fetch.getResponseBody, which
Chromium buffers entirely; any other is read as a stream, cut at the size, time and rate limits, recorded as
far as it came and handed to the page with Fetch.fulfillRequest. Chromium then reports no server address for
that response (listed in provenance as ``streamed``).
"""
from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Error as PlaywrightError, Playwright, async_playwright

from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc
from archiver.capture import auth, network
from archiver.capture.base import (CaptureResult, DripGuard, charset_of, classify_net_error, header_block_size,
                                   header_value, is_html, status_failure, stored_headers, truncation_class)
from archiver.capture.guard import BrowserGate, browser_gate

# Without these, Chromium keeps calling Google services (and stalls on a closed network); the site-isolation
# switches keep cross-site iframes in the page's process so the page's CDP session sees their requests.
CHROMIUM_ARGS = [
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-extensions", "--disable-component-extensions-with-background-pages", "--disable-field-trial-config",
    "--no-pings", "--metrics-recording-only", "--no-default-browser-check",
    # Chromium honours only the last --disable-features, so this one must repeat what Playwright disables
    # (network-time queries to clients2.google.com, search preconnects, CORS redirect aborts under Fetch
    # interception...) besides what we add (site isolation off, translation, autofill and CT updates).
    "--disable-features=" + ",".join([
        "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
        "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
        "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints",
        "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch",
        "IsolateOrigins", "site-per-process", "Translate", "InterestFeedContentSuggestions",
        "AutofillServerCommunication", "CertificateTransparencyComponentUpdater",
    ]),
    "--disable-site-isolation-trials", "--disable-breakpad", "--password-store=basic", "--use-mock-keychain",
    "--disable-gpu",
    # Chromium's own service calls that no flag above stops (seen through a logging proxy with Chromium 156):
    # sign-in at accounts.google.com and an on-demand component (the optimization guide's on-device model
    # manifest) from update.googleapis.com. Pointing those services at 0.0.0.0 (never connectable) keeps them
    # home; a page that itself loads accounts.google.com is unaffected (it names the URL, not the service).
    # Not 127.0.0.1: the GAIA origin is always process-isolated, which would isolate loopback pages too.
    "--gaia-url=http://0.0.0.0:9", "--google-apis-url=http://0.0.0.0:9",
    "--component-updater=url-source=http://0.0.0.0:9/",
]
# Debian's /usr/bin/chromium is a shell wrapper that sources /etc/chromium.d: it exports Google API keys
# (which switch on sign-in calls to accounts.google.com) and adds --enable-remote-extensions (extension
# update checks). Captures must make no call the user did not ask for, so the binary is launched directly.
DEBIAN_WRAPPER = "/usr/bin/chromium"
DEBIAN_BINARY = "/usr/lib/chromium/chromium"
# Debian's chromium-headless-shell: the same Blink and V8 as chromium (one source package, one version), without
# the desktop browser around them (no profile services, extensions, sign-in or sync), the "old headless" that
# Playwright itself runs for headless Chromium. Each capture gets a fresh browser context, and in the desktop
# browser every context costs a renderer whose start-up alone takes ~0.4 s of CPU besides ~0.2 s of per-profile
# services in the browser process; the shell does the same page in ~0.2 s of CPU all told (scripts/bench, README
# "Benchmark"), so a capture host keeps up with four times the pages. What it lacks is a desktop: it cannot run
# with a window (headless = false uses chromium) and it shows no plugins and no window.chrome to a page (both
# already say "HeadlessChrome" in their User-Agent).
HEADLESS_SHELL_WRAPPER = "/usr/bin/chromium-headless-shell"
HEADLESS_SHELL_BINARY = "/usr/lib/chromium/chromium-headless-shell"
AUTO = "auto"
# Variables that would give Chromium Google credentials, whatever launched us.
CREDENTIAL_ENV = ("GOOGLE_API_KEY", "GOOGLE_DEFAULT_CLIENT_ID", "GOOGLE_DEFAULT_CLIENT_SECRET")


def resolve_executable(configured: str, headless: bool = True) -> str:
    """The Chromium binary to run for ``browser.executable``: ``auto`` is Debian's headless shell when headless (and
    installed), else Debian's chromium; a Debian wrapper means its real binary; any other path is used as given."""
    if configured == AUTO:
        configured = HEADLESS_SHELL_WRAPPER if headless and os.access(HEADLESS_SHELL_BINARY, os.X_OK) \
            else DEBIAN_WRAPPER
    for wrapper, binary in ((DEBIAN_WRAPPER, DEBIAN_BINARY), (HEADLESS_SHELL_WRAPPER, HEADLESS_SHELL_BINARY)):
        if os.path.realpath(configured) == wrapper and os.access(binary, os.X_OK):
            return binary
    return configured

SCROLL_JS = """async ([deadlineMs, stepDelay]) => {
  const end = Date.now() + deadlineMs;
  let last = -1, steps = 0;
  // A document that fits in the window cannot scroll: a scroll would change nothing (no scroll event, nothing
  // new in view) and waiting a step after it would only cost time.
  const height = Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight);
  if (window.scrollY === 0 && height <= window.innerHeight) return 0;
  while (Date.now() < end && steps < 200) {
    const h = Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight);
    const y = window.scrollY + window.innerHeight;
    if (y >= h && h === last) break;
    last = h;
    window.scrollBy(0, Math.max(200, window.innerHeight * 0.8));
    steps++;
    await new Promise(r => setTimeout(r, stepDelay));
  }
  window.scrollTo(0, 0);
  return steps;
}"""

EXTRACT_JS = """() => {
  const links = [], seen = new Set();
  for (const a of document.querySelectorAll('a[href], area[href]')) {
    const href = a.href;
    if (!/^https?:/i.test(href) || seen.has(href)) continue;
    seen.add(href);
    links.push({url: href, text: (a.innerText || a.getAttribute('title') || '').trim().slice(0, 300)});
  }
  return {
    title: document.title || '',
    text: document.body ? document.body.innerText : '',
    outlinks: links,
    height: Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight),
    width: Math.max(document.body ? document.body.scrollWidth : 0, document.documentElement.scrollWidth),
  };
}"""


@dataclass
class Exchange:
    """One HTTP request and its response: a redirect hop is an exchange of its own."""

    network_id: str
    url: str
    method: str
    resource_type: str
    frame_id: str | None
    request_headers: list[tuple[str, str]]
    post_data: bytes
    wall_time: float
    request_extra: bool = False
    status: int | None = None
    status_text: str | None = None
    response_headers: list[tuple[str, str]] | None = None
    raw_headers: bool = False          # response_headers came from the raw header block
    remote_ip: str | None = None
    protocol: str | None = None
    security: dict[str, Any] | None = None
    mime_type: str | None = None
    response_time: float | None = None
    body: Any = None                   # a temporary file with the body bytes, once we have them
    body_note: str | None = None       # why there is no (complete) body
    truncated: str | None = None       # WARC-Truncated reason
    failed: str | None = None          # net error text if the request failed
    finished: bool = False
    # Fetch.requestPaused can arrive before Network.requestWillBeSent; such an exchange is created from the
    # paused event and completed when the Network event comes.
    awaiting_network_event: bool = False
    # The body was taken as a stream (its size was not known to be within bounds) and the request answered with
    # it; Chromium then reports no server address for the response (Network.responseReceived of a fulfilled
    # request has an empty remoteIPAddress).
    streamed: bool = False


def _headers_from_dict(d: dict[str, str] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in (d or {}).items():
        # CDP joins repeated headers (Set-Cookie) with newlines; they were separate lines on the wire.
        for part in str(value).split("\n"):
            out.append((name, part))
    return out


def _headers_from_text(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """Parse a raw HTTP/1.x response header block: (headers in wire order, reason phrase)."""
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    reason = parts[2] if len(parts) > 2 else None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return headers, reason


def _request_headers(headers: list[tuple[str, str]], url: str) -> list[tuple[str, str]]:
    """HTTP/2 and /3 requests carry pseudo-headers; a WARC request record is written as HTTP/1.1."""
    out, host = [], None
    for name, value in headers:
        if name == ":authority":
            host = value
        elif not name.startswith(":"):
            out.append((name, value))
    if not any(n.lower() == "host" for n, _ in out):
        out.insert(0, ("Host", host or urlsplit(url).netloc))
    return out


def _protocols(ex: Exchange) -> list[str]:
    out = []
    if ex.protocol:
        out.append(ex.protocol.lower())
    if ex.security and ex.security.get("protocol"):
        # "TLS 1.3" -> "tls/1.3", the form of the WARC-Protocol proposal (iipc/warc-specifications#42).
        out.append(ex.security["protocol"].lower().replace(" ", "/"))
    return out


# deflate (gzip, zlib) cannot inflate more than ~1032:1, so a compressed body of known length has a known bound.
# Bodies the browser may take whole (Fetch.getResponseBody) are only those whose inflated size is known to be
# within bounds: Chromium buffers the whole inflated body for that call, so a 10 MB gzip bomb would become
# 10 GB there. Others are read as a stream.
DEFLATE_MAX_RATIO = 1032
NO_BODY_STATUSES = (204, 304)   # answers without a body, whatever their Content-Length says
# After a request is answered, a read that was waiting for bytes returns what had arrived; this long at most.
PENDING_READ_GRACE = 2.0
# How often the navigation is looked at for response headers that do not come.
NAV_POLL_SECONDS = 0.1
CUT_NOTE = "body still arriving when the capture stopped waiting for it; truncated"
# Failure classes of a net error that, arriving after a body was taken, mean that body was cut short.
BODY_BREAKING = {"reset", "timeout", "protocol"}


@dataclass(frozen=True)
class BodyLimits:
    """Bounds against hostile servers, from settings (config/default.toml says why each exists)."""

    max_capture_bytes: int = 1 << 62     # capture.max_capture_bytes
    min_rate: float = 0.0                # network.min_bytes_per_second (0: no slow-drip cut-off)
    slow_window: float = 30.0            # network.slow_window_seconds
    max_redirects: int = 20              # network.max_redirects, for the page's own redirect chain
    max_header_bytes: int = 256 * 1024   # network.max_header_bytes, for the page's own response

    @classmethod
    def from_settings(cls, settings: Settings) -> "BodyLimits":
        net = settings["network"]
        return cls(max_capture_bytes=settings["capture"]["max_capture_bytes"],
                   min_rate=float(net["min_bytes_per_second"]), slow_window=net["slow_window_seconds"],
                   max_redirects=net["max_redirects"], max_header_bytes=net["max_header_bytes"])

    @property
    def read_size(self) -> int:
        """Bytes asked for per IO.read. Chromium answers a read only when that many bytes have arrived (or the
        body ended), so a read must be no larger than what an acceptably slow server sends in one window."""
        if self.min_rate <= 0 or self.slow_window <= 0:
            return 1 << 20
        return int(max(1, min(1 << 20, self.min_rate * self.slow_window)))

    def drip_guard(self) -> DripGuard:
        return DripGuard(self.min_rate, self.slow_window)


def _bodiless(ex: Exchange, status: int) -> bool:
    return status in NO_BODY_STATUSES or ex.method.upper() == "HEAD"


def _decoded_bound(status: int, headers: list[tuple[str, str]]) -> int | None:
    """An upper bound on the size of a response body once Chromium has inflated it; None if there is none
    (no Content-Length, or an encoding like br or zstd whose expansion is unbounded)."""
    declared = (header_value(headers, "content-length") or "").strip()
    if not declared.isdigit():
        return None
    encoding = (header_value(headers, "content-encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return int(declared)
    if encoding in ("gzip", "x-gzip", "deflate"):
        return int(declared) * DEFLATE_MAX_RATIO + 1024
    return None


def _short_of_length(headers: list[tuple[str, str]], received: int) -> bool:
    """True when an unencoded body is shorter than its Content-Length: the connection broke mid-body.
    (Chromium hands over what arrived without saying so, whether by getResponseBody or by stream.)"""
    declared = (header_value(headers, "content-length") or "").strip()
    encoding = (header_value(headers, "content-encoding") or "").strip().lower()
    return declared.isdigit() and encoding in ("", "identity") and received < int(declared)


class Recorder:
    """Collects exchanges from CDP events of one page and fetches bodies as responses are paused."""

    def __init__(self, cdp: Any, max_resource_bytes: int, max_download_bytes: int, deadline: float):
        self.cdp = cdp
        self.max_resource_bytes = max_resource_bytes
        self.max_download_bytes = max_download_bytes
        self.deadline = deadline  # time.monotonic() by which a streamed body must be complete
        self.exchanges: list[Exchange] = []
        self.by_id: dict[str, list[Exchange]] = {}
        self.pending_req_extra: dict[str, list[dict]] = {}
        self.pending_resp_extra: dict[str, list[dict]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.main_frame_id: str | None = None
        self.main_network_id: str | None = None
        self.inflight: set[str] = set()
        self.last_activity = time.monotonic()
        self.non_html_main = False
        self.frozen = False
        # The private-network guard (None: private targets allowed), and the requests it refused before they
        # were sent, by (network id, URL), with why.
        self.gate: BrowserGate | None = None
        self.blocked: dict[tuple[str, str], str] = {}
        self.limits = BodyLimits()
        self.recorded_bytes = 0                 # body bytes kept so far, for capture.max_capture_bytes
        self.redirect_loop: str | None = None   # why the page's redirect chain was stopped
        self.header_problem: str | None = None  # why the page's own response was refused (headers too large)
        self.cut = asyncio.Event()              # set: stop reading streamed bodies, keep what came

    def attach(self) -> None:
        on = self.cdp.on
        on("Network.requestWillBeSent", self._request_will_be_sent)
        on("Network.requestWillBeSentExtraInfo", self._request_extra)
        on("Network.responseReceived", self._response_received)
        on("Network.responseReceivedExtraInfo", self._response_extra)
        on("Network.loadingFinished", self._loading_finished)
        on("Network.loadingFailed", self._loading_failed)
        on("Fetch.requestPaused", self._spawn_paused)

    # -- Network events ---------------------------------------------------------------------------

    def _request_will_be_sent(self, ev: dict) -> None:
        rid = ev["requestId"]
        self.last_activity = time.monotonic()
        if ev.get("redirectResponse") and self.by_id.get(rid):
            self._apply_response(self.by_id[rid][-1], ev["redirectResponse"])
            self.by_id[rid][-1].finished = True
        req = ev["request"]
        early = self.by_id.get(rid, [])
        if early and early[-1].awaiting_network_event and early[-1].url == req["url"]:
            ex = early[-1]
            ex.awaiting_network_event = False
            ex.request_headers = ex.request_headers if ex.request_extra else _headers_from_dict(req.get("headers"))
            ex.frame_id, ex.resource_type = ev.get("frameId"), ev.get("type", ex.resource_type)
            ex.wall_time = ev.get("wallTime") or ex.wall_time
            self._note_main(ev, rid)
            return
        post = b""
        if req.get("postDataEntries"):
            post = b"".join(base64.b64decode(e.get("bytes", "")) for e in req["postDataEntries"])
        elif req.get("postData"):
            post = req["postData"].encode("utf-8")
        ex = Exchange(network_id=rid, url=req["url"],
                      method=req.get("method", "GET"), resource_type=ev.get("type", "Other"),
                      frame_id=ev.get("frameId"), request_headers=_headers_from_dict(req.get("headers")),
                      post_data=post, wall_time=ev.get("wallTime") or time.time())
        self._note_main(ev, rid)
        self._register(ex)

    def _note_main(self, ev: dict, rid: str) -> None:
        if (self.main_network_id is None and ev.get("type") == "Document"
                and (self.main_frame_id is None or ev.get("frameId") == self.main_frame_id)):
            self.main_network_id = rid

    def _register(self, ex: Exchange) -> None:
        rid = ex.network_id
        self.exchanges.append(ex)
        self.by_id.setdefault(rid, []).append(ex)
        self.inflight.add(rid)
        pending = self.pending_req_extra.get(rid)
        if pending:
            self._apply_request_extra(ex, pending.pop(0))

    def _apply_request_extra(self, ex: Exchange, ev: dict) -> None:
        ex.request_headers = _headers_from_dict(ev.get("headers"))
        ex.request_extra = True

    def _request_extra(self, ev: dict) -> None:
        rid = ev["requestId"]
        target = next((e for e in self.by_id.get(rid, []) if not e.request_extra), None)
        if target is None:
            self.pending_req_extra.setdefault(rid, []).append(ev)
        else:
            self._apply_request_extra(target, ev)

    def _response_extra(self, ev: dict) -> None:
        rid = ev["requestId"]
        target = next((e for e in self.by_id.get(rid, []) if not e.raw_headers), None)
        if target is None:
            self.pending_resp_extra.setdefault(rid, []).append(ev)
            return
        self._apply_response_extra(target, ev)

    def _apply_response_extra(self, ex: Exchange, ev: dict) -> None:
        if ev.get("headersText"):
            ex.response_headers, reason = _headers_from_text(ev["headersText"])
            ex.status_text = reason or ex.status_text
        else:
            ex.response_headers = _headers_from_dict(ev.get("headers"))
        ex.status = ev.get("statusCode") or ex.status
        ex.raw_headers = True

    def _apply_response(self, ex: Exchange, resp: dict) -> None:
        ex.status = resp.get("status", ex.status)
        ex.status_text = ex.status_text or resp.get("statusText")
        if not ex.raw_headers:
            pending = self.pending_resp_extra.get(ex.network_id)
            if pending:
                self._apply_response_extra(ex, pending.pop(0))
            elif ex.response_headers is None:
                ex.response_headers = _headers_from_dict(resp.get("headers"))
        ex.remote_ip = resp.get("remoteIPAddress") or ex.remote_ip
        ex.protocol = resp.get("protocol") or ex.protocol
        ex.security = resp.get("securityDetails") or ex.security
        ex.mime_type = resp.get("mimeType") or ex.mime_type
        ex.response_time = ex.response_time or time.time()

    def _response_received(self, ev: dict) -> None:
        self.last_activity = time.monotonic()
        hops = self.by_id.get(ev["requestId"])
        if hops:
            self._apply_response(hops[-1], ev["response"])

    def _loading_finished(self, ev: dict) -> None:
        self.last_activity = time.monotonic()
        self.inflight.discard(ev["requestId"])
        hops = self.by_id.get(ev["requestId"])
        if hops:
            hops[-1].finished = True

    def _loading_failed(self, ev: dict) -> None:
        self.last_activity = time.monotonic()
        self.inflight.discard(ev["requestId"])
        hops = self.by_id.get(ev["requestId"])
        if hops and not hops[-1].finished:
            ex = hops[-1]
            ex.failed = ev.get("errorText") or ev.get("blockedReason") or "failed"
            if ex.body is not None and not ex.truncated and classify_net_error(ex.failed) in BODY_BREAKING:
                # getResponseBody hands over what arrived before the connection broke without saying so; the
                # failure shows only here, once the body went on to the page.
                ex.truncated = "disconnect"
                ex.body_note = f"the connection broke before the body was complete ({ex.failed})"

    # -- Fetch: bodies ------------------------------------------------------------------------------

    def _spawn_paused(self, ev: dict) -> None:
        task = asyncio.ensure_future(self._paused(ev))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _find(self, ev: dict) -> Exchange:
        """The exchange a paused response belongs to; created here if its Network event is still to come."""
        rid = ev.get("networkId") or ev["requestId"]
        hops = self.by_id.get(rid, [])
        req = ev["request"]
        for ex in reversed(hops):
            if ex.url == req["url"] and ex.body is None and ex.body_note is None:
                return ex
        ex = Exchange(network_id=rid, url=req["url"], method=req.get("method", "GET"),
                      resource_type=ev.get("resourceType", "Other"), frame_id=ev.get("frameId"),
                      request_headers=_headers_from_dict(req.get("headers")), post_data=b"",
                      wall_time=time.time(), awaiting_network_event=True)
        self._register(ex)
        return ex

    async def _paused(self, ev: dict) -> None:
        fetch_id = ev["requestId"]
        if self.gate is not None and ev.get("responseStatusCode") is None and ev.get("responseErrorReason") is None:
            await self._gate_request(ev)  # paused at the Request stage: not sent yet
            return
        ex: Exchange | None = None
        try:
            status = ev.get("responseStatusCode")
            if status is not None and not ev.get("responseErrorReason"):
                ex = self._find(ev)
                if ex.status is None:
                    ex.status, ex.status_text = status, ev.get("responseStatusText")
                if ex.response_headers is None:
                    ex.response_headers = [(h["name"], h["value"]) for h in ev.get("responseHeaders") or []]
                if self.frozen:
                    # Nothing more is recorded; the body is not let through to a page about to be closed.
                    ex.body_note = "still loading when the capture ended"
                    await self._fail(fetch_id, "Aborted")
                    return
                if 300 <= status < 400 and any(h["name"].lower() == "location"
                                                 for h in ev.get("responseHeaders") or []):
                    if self._redirect_loop(ex):
                        await self._fail(fetch_id, "Failed")
                        return
                    # Chromium does not expose a redirect's body; the hop is recorded with its headers.
                    ex.body = _spool(b"")
                    ex.body_note = "redirect body not available from the browser"
                elif ex.network_id == self.main_network_id and self._headers_too_large(ex, _pairs(ev)):
                    await self._fail(fetch_id, "Failed")
                    return
                elif ex.network_id == self.main_network_id and not is_html(
                        header_value(_pairs(ev), "content-type") or "text/html"):
                    # The target is not an HTML page (PDF, media...): stream it to disk in constant memory and
                    # stop the browser from rendering or downloading it.
                    self.non_html_main = True
                    await self._stream_body(ex, fetch_id, ev, self.max_download_bytes, "capture.max_download_bytes",
                                            answer=self._abort)
                    return
                elif await self._get_body(ex, fetch_id, ev):
                    return  # answered while taking the body: not to be continued
        except Exception as exc:  # a body we could not get must never stop the page from loading
            if ex is not None and ex.body is None:
                ex.body_note = f"body not recorded: {exc}"
        try:
            await self.cdp.send("Fetch.continueRequest", {"requestId": fetch_id})
        except Exception:
            pass  # the request or the page is gone; nothing to continue

    async def _gate_request(self, ev: dict) -> None:
        """Send the request on, or refuse it (BlockedByClient) when its host is a private-network address."""
        url = ev["request"]["url"]
        try:
            refused = await self.gate.refusal(url)
        except Exception as exc:  # a check that could not be made must not let the request through
            refused = f"refused {url}: the private-network check failed ({type(exc).__name__}: {exc})"
        try:
            if refused:
                self.blocked[(ev.get("networkId") or ev["requestId"], url)] = refused
                await self.cdp.send("Fetch.failRequest",
                                    {"requestId": ev["requestId"], "errorReason": "BlockedByClient"})
            else:
                await self.cdp.send("Fetch.continueRequest", {"requestId": ev["requestId"]})
        except Exception:
            pass  # the request or the page is gone

    def refusal(self, ex: Exchange) -> str | None:
        """Why the guard keeps this exchange out of the evidence: refused before it was sent, or answered from
        a refused address (Network.responseReceived's remoteIPAddress: the address actually connected to)."""
        if self.gate is None:
            return None
        return self.blocked.get((ex.network_id, ex.url)) or self.gate.peer_refusal(ex.url, ex.remote_ip)

    def _redirect_loop(self, ex: Exchange) -> bool:
        """True (and why, in redirect_loop) when the page's own redirect chain passes network.max_redirects.
        Chromium stops only at 20, whatever the setting, and the direct fetcher must not differ."""
        if ex.network_id != self.main_network_id:
            return False
        hops = len(self.by_id.get(ex.network_id, []))
        if hops <= self.limits.max_redirects:
            return False
        first = self.by_id[ex.network_id][0].url
        self.redirect_loop = f"more than {self.limits.max_redirects} redirects from {first} (network.max_redirects)"
        return True

    def _headers_too_large(self, ex: Exchange, headers: list[tuple[str, str]]) -> bool:
        size = header_block_size(ex.response_headers or headers)
        if size <= self.limits.max_header_bytes:
            return False
        self.header_problem = (f"response headers from {ex.url} are {size} bytes, more than network.max_header_bytes "
                               f"({self.limits.max_header_bytes})")
        return True

    async def _fail(self, fetch_id: str, reason: str) -> None:
        try:
            await self.cdp.send("Fetch.failRequest", {"requestId": fetch_id, "errorReason": reason})
        except Exception:
            pass  # the request or the page is gone

    async def _abort(self, fetch_id: str, ev: dict, spool: Any) -> None:
        await self._fail(fetch_id, "Aborted")

    async def _fulfil(self, fetch_id: str, ev: dict, spool: Any) -> None:
        """Hand the page the body we kept. Headers as received, less those describing the wire bytes: the body
        is handed over inflated, and may have been cut short."""
        spool.seek(0)
        headers = [h for h in ev.get("responseHeaders") or []
                   if h["name"].lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        params = {"requestId": fetch_id, "responseCode": ev["responseStatusCode"], "responseHeaders": headers,
                  "body": base64.b64encode(spool.read()).decode("ascii")}
        if ev.get("responseStatusText"):
            params["responsePhrase"] = ev["responseStatusText"]
        try:
            await self.cdp.send("Fetch.fulfillRequest", params)
        except Exception:
            pass  # the request or the page is gone

    def _keep(self, ex: Exchange, spool: Any, data: bytes, kept: int, limit: int, limit_name: str) -> bool:
        """Write ``data`` after the ``kept`` bytes already in ``spool``, within ``limit`` and what is left of
        capture.max_capture_bytes. False, and the exchange marked truncated, when it did not all fit."""
        budget = self.limits.max_capture_bytes - self.recorded_bytes
        room = max(0, min(limit - kept, budget))
        piece = data[:room]
        spool.write(piece)
        self.recorded_bytes += len(piece)
        if len(data) <= room:
            return True
        ex.truncated = "length"
        ex.body_note = (f"body exceeds {limit_name} ({limit} bytes); truncated" if limit - kept <= budget else
                        f"capture.max_capture_bytes ({self.limits.max_capture_bytes}) reached; body truncated")
        return False

    async def _get_body(self, ex: Exchange, fetch_id: str, ev: dict) -> bool:
        """Record the body of a paused response. True when the request was answered here (fulfilled with the
        body, or failed), so that it must not be continued."""
        headers = _pairs(ev)
        bound = 0 if _bodiless(ex, ev["responseStatusCode"]) else _decoded_bound(ev["responseStatusCode"], headers)
        room = min(self.max_resource_bytes, self.limits.max_capture_bytes - self.recorded_bytes)
        if bound is not None and bound <= room:
            return await self._take_whole(ex, fetch_id, headers)
        # Size unknown or too large: read it as it comes, as far as the limits allow, then hand the page that.
        ex.streamed = True
        await self._stream_body(ex, fetch_id, ev, self.max_resource_bytes, "capture.max_resource_bytes",
                                answer=self._fulfil)
        return True

    async def _take_whole(self, ex: Exchange, fetch_id: str, headers: list[tuple[str, str]]) -> bool:
        """Fetch.getResponseBody, for a body known to be small enough. Nothing of it is seen until it is
        complete, so a dripping server is bounded by the time its Content-Length needs at the minimum rate."""
        declared = (header_value(headers, "content-length") or "").strip()
        wire = int(declared) if declared.isdigit() else 0
        wait = self.deadline - time.monotonic()
        if self.limits.min_rate > 0:
            wait = min(wait, self.limits.slow_window + wire / self.limits.min_rate)
        try:
            reply = await asyncio.wait_for(self.cdp.send("Fetch.getResponseBody", {"requestId": fetch_id}),
                                           max(0.0, wait))
        except asyncio.TimeoutError:
            ex.body, ex.truncated = _spool(b""), "time"
            ex.body_note = (f"body of {wire} bytes not complete after {max(0.0, wait):.0f}s (network.min_bytes_per_second"
                            f" or capture.timeout_seconds); not recorded")
            await self._fail(fetch_id, "TimedOut")
            return True
        except asyncio.CancelledError:
            ex.body_note = "still loading when the capture ended"
            raise
        data = base64.b64decode(reply["body"]) if reply.get("base64Encoded") else reply["body"].encode("utf-8")
        spool = _spool(b"")
        if self._keep(ex, spool, data, 0, self.max_resource_bytes, "capture.max_resource_bytes") and \
                not _bodiless(ex, ex.status or 0) and _short_of_length(headers, len(data)):
            ex.truncated = "disconnect"
            ex.body_note = (f"body ended after {len(data)} of the {header_value(headers, 'content-length')} bytes "
                            f"its Content-Length announced: the connection broke")
        spool.seek(0)
        ex.body = spool
        return False

    async def _stream_body(self, ex: Exchange, fetch_id: str, ev: dict, limit: int, limit_name: str,
                           answer: Any) -> None:
        """Take the body as a stream into a temporary file, as far as ``limit``, the capture's byte budget, the
        deadline and the slow-drip guard allow, then ``answer`` the request (fulfil it with what was kept, or
        abort it). Only one read is ever in memory."""
        reply = await self.cdp.send("Fetch.takeResponseBodyAsStream", {"requestId": fetch_id})
        handle = reply["stream"]
        spool = tempfile.TemporaryFile()
        pending: asyncio.Future | None = None
        try:
            pending = await self._read_stream(ex, handle, spool, _pairs(ev), limit, limit_name)
            await answer(fetch_id, ev, spool)
            if pending is not None:
                # A read still waiting for bytes holds those that did arrive; answering the request ends the
                # stream, and the read returns them.
                await self._collect(ex, pending, spool, limit, limit_name)
        except asyncio.CancelledError:
            if not ex.truncated:
                ex.truncated, ex.body_note = "time", "body still arriving when the capture ended; truncated"
            raise
        except Exception as exc:  # what was kept is recorded, never as the whole body
            if not ex.truncated:
                ex.truncated, ex.body_note = "unspecified", f"reading the body failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
            try:
                await self.cdp.send("IO.close", {"handle": handle})
            except Exception:
                pass  # already closed with the request, or the page is gone
            spool.seek(0)
            ex.body = spool

    async def _read_stream(self, ex: Exchange, handle: str, spool: Any, headers: list[tuple[str, str]], limit: int,
                           limit_name: str) -> asyncio.Future | None:
        """Read until the body ends or is cut off; returns the read still waiting when it was cut off by time."""
        guard = self.limits.drip_guard()
        kept = 0
        # Reads start at one byte and double while they fill: when a body stalls, a read waiting for bytes holds
        # those that came, and hands them over only once the page has been answered — so they are kept in the
        # record but miss the page. Small first reads keep that share small.
        want = 1
        cut = asyncio.ensure_future(self.cut.wait())
        try:
            while True:
                if self.cut.is_set():
                    ex.truncated, ex.body_note = "time", CUT_NOTE
                    return None
                room = max(0, min(limit - kept, self.limits.max_capture_bytes - self.recorded_bytes))
                size = max(1, min(want, self.limits.read_size, room + 1))  # room + 1: "more" or "the end"
                read = asyncio.ensure_future(self.cdp.send("IO.read", {"handle": handle, "size": size}))
                if not await self._read_arrived(ex, read, cut, guard):
                    return read
                try:
                    chunk = read.result()
                except Exception as exc:
                    ex.truncated, ex.body_note = "disconnect", f"reading the body failed after {kept} bytes: {exc}"
                    return None
                data = _chunk_bytes(chunk)
                if not self._keep(ex, spool, data, kept, limit, limit_name):
                    return None
                kept += len(data)
                if len(data) >= size:
                    want = min(want * 2, self.limits.read_size)
                guard.add(len(data))
                if chunk.get("eof"):
                    if _short_of_length(headers, kept):
                        ex.truncated = "disconnect"
                        ex.body_note = (f"body ended after {kept} of the {header_value(headers, 'content-length')} "
                                        f"bytes its Content-Length announced: the connection broke")
                    return None
        finally:
            cut.cancel()

    async def _read_arrived(self, ex: Exchange, read: asyncio.Future, cut: asyncio.Future, guard: DripGuard) -> bool:
        """Wait for a read; False (the exchange marked truncated, and why) when the body is cut off first: by
        the deadline, by the slow-drip guard, or because the capture stopped waiting (``cut``)."""
        left = self.deadline - time.monotonic()
        drip = guard.wait_limit()
        done, _ = await asyncio.wait({read, cut}, timeout=max(0.0, left if drip is None else min(left, drip)),
                                     return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            return True
        ex.truncated = "time"
        if cut in done:
            ex.body_note = CUT_NOTE
        elif drip is not None and drip <= left:
            ex.body_note = str(guard.cut_off())
        else:
            ex.body_note = "body still arriving at capture.timeout_seconds; truncated"
        return False

    async def _collect(self, ex: Exchange, pending: asyncio.Future, spool: Any, limit: int, limit_name: str) -> None:
        """Keep what a read cut off by time had received (the exchange stays marked truncated for time)."""
        done, _ = await asyncio.wait({pending}, timeout=PENDING_READ_GRACE)
        if not done or pending.cancelled() or pending.exception() is not None:
            return
        reason, note = ex.truncated, ex.body_note
        spool.seek(0, os.SEEK_END)
        self._keep(ex, spool, _chunk_bytes(pending.result()), spool.tell(), limit, limit_name)
        ex.truncated, ex.body_note = reason, note

    def main_exchange(self) -> Exchange | None:
        hops = self.by_id.get(self.main_network_id or "", [])
        return hops[-1] if hops else None

    def main_chain(self) -> list[Exchange]:
        return list(self.by_id.get(self.main_network_id or "", []))


def _pairs(ev: dict) -> list[tuple[str, str]]:
    """The response headers of a Fetch.requestPaused event as (name, value) pairs."""
    return [(h["name"], h["value"]) for h in ev.get("responseHeaders") or []]


def _chunk_bytes(chunk: dict) -> bytes:
    """The bytes of an IO.read answer."""
    return base64.b64decode(chunk["data"]) if chunk.get("base64Encoded") else chunk["data"].encode("utf-8")


def _spool(data: bytes) -> Any:
    spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)
    spool.write(data)
    spool.seek(0)
    return spool


class BrowserSession:
    """One Chromium for the life of a worker process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pw: Playwright | None = None
        self.browser: Browser | None = None

    async def start(self) -> None:
        conf = self.settings["browser"]
        executable = resolve_executable(conf["executable"], conf["headless"])
        if not os.path.exists(executable):
            raise CaptureFailed("browser-missing", f"Chromium not found at {executable} (run `make setup`, "
                                                   f"or set browser.executable)", retryable=False)
        args = list(CHROMIUM_ARGS)
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
        args.extend(network.chromium_args(self.settings))
        args.extend(conf["extra_args"])
        self.executable = executable
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
        self._launch = {"executable_path": self.executable, "headless": conf["headless"], "args": args, "env": env}
        self._pw = await async_playwright().start()
        self.browser = await self._pw.chromium.launch(**self._launch)

    @property
    def versions(self) -> dict[str, str]:
        return {"chromium": self.browser.version if self.browser else "", "playwright": package_version("playwright"),
                "chromium-executable": getattr(self, "executable", "")}

    async def close(self) -> None:
        try:
            if self.browser is not None:
                await self.browser.close()
        finally:
            if self._pw is not None:
                await self._pw.stop()
            self.browser = self._pw = None

    def alive(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    async def capture(self, url: str, warc: CaptureWarc) -> CaptureResult:
        if not self.alive():
            await self.close()
            await self.start()
        site = auth.current()
        if site is not None and site.kind == "profile":
            with auth.profile_copy(site) as profile_dir:
                context = await self._profile_context(profile_dir, site)
                return await _capture_page(self.browser, self.settings, url, warc, context=context)
        return await _capture_page(self.browser, self.settings, url, warc, site=site)

    async def _profile_context(self, profile_dir: Any, site: auth.SiteAuth) -> BrowserContext:
        """A persistent context over a copy of the site's profile (auth.profile_copy): the login as the browser
        that made it holds it (cookies, local storage), in a Chromium of its own, launched as the shared one is.
        Its cookies of other sites are dropped before anything loads: the credentials go to their site only."""
        context = await self._pw.chromium.launch_persistent_context(str(profile_dir), **self._launch,
                                                                    **_context_options(self.settings))
        try:
            kept = [c for c in await context.cookies() if site.covers(c.get("domain", "").lstrip("."))]
            await context.clear_cookies()
            if kept:
                await context.add_cookies(kept)
        except BaseException:
            await context.close()
            raise
        return context


def _context_options(settings: Settings) -> dict[str, Any]:
    """The options of every capture's browser context."""
    return {"service_workers": "block", "accept_downloads": False, "ignore_https_errors": False,
            "viewport": {"width": settings["browser"]["viewport_width"],
                         "height": settings["browser"]["viewport_height"]},
            "user_agent": settings["network"]["browser_user_agent"] or None}


async def _capture_page(browser: Browser, settings: Settings, url: str, warc: CaptureWarc, *,
                        site: auth.SiteAuth | None = None, context: BrowserContext | None = None) -> CaptureResult:
    """Capture ``url`` in a fresh context of ``browser`` (given ``site``, holding that site's cookies), or in
    ``context`` (a persistent context over a site's profile), which is closed afterwards either way."""
    cap, net = settings["capture"], settings["network"]
    started = time.monotonic()
    deadline = started + cap["timeout_seconds"]
    # Time kept back for the screenshot and DOM, so a slow page still yields a partial capture with them.
    reserve = min(15.0, cap["timeout_seconds"] * 0.25)

    def left(bound: float | None = None, keep: float = reserve) -> float:
        remaining = deadline - keep - time.monotonic()
        return max(0.0, remaining if bound is None else min(bound, remaining))

    load_by = started + cap["load_timeout_seconds"]

    def load_left() -> float:
        """Time left for the page to load: capture.load_timeout_seconds, within the capture's own budget."""
        return left(max(0.0, load_by - time.monotonic()))

    cookies = None
    if context is None:
        context = await browser.new_context(**_context_options(settings))
        # Cookies of the site's own domains only: Chromium sends each to the hosts its domain covers.
        cookies = auth.playwright_cookies(site) if site is not None else None
    notes: list[str] = []
    partial_reason: str | None = None
    recorder: Recorder | None = None
    try:
        if cookies:
            await context.add_cookies(cookies)
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        recorder = Recorder(cdp, cap["max_resource_bytes"], cap["max_download_bytes"], deadline - reserve)
        recorder.limits = BodyLimits.from_settings(settings)
        recorder.attach()
        tree = await cdp.send("Page.getFrameTree")
        recorder.main_frame_id = tree["frameTree"]["frame"]["id"]
        await cdp.send("Network.enable", {"maxPostDataSize": 1 << 20})
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        patterns = [{"urlPattern": "*", "requestStage": "Response"}]
        recorder.gate = browser_gate(settings)
        if recorder.gate is not None:
            # Paused before being sent as well, so a private-network target is refused, never fetched.
            patterns.insert(0, {"urlPattern": "*", "requestStage": "Request"})
        await cdp.send("Fetch.enable", {"patterns": patterns})

        nav_error = await _navigate(page, recorder, url, load_left(), net["header_timeout_seconds"])
        main = recorder.main_exchange()
        if recorder.redirect_loop or "ERR_TOO_MANY_REDIRECTS" in (nav_error or ""):
            raise CaptureFailed("redirect-loop", recorder.redirect_loop or f"{nav_error} (Chromium stops at 20)")
        if recorder.header_problem:
            raise CaptureFailed("too-large", recorder.header_problem)
        if nav_error is not None and main is not None and main.status is not None and main.body is None:
            # The page answered and its body is still coming: keep what came (a download of a non-HTML target
            # may go on to the capture's deadline, which its reading observes).
            if not recorder.non_html_main:
                recorder.cut.set()
            await _body_arrival(main, left(None, 0) if recorder.non_html_main else PENDING_READ_GRACE + 1.0)
        if recorder.non_html_main:
            nav_error = None  # we aborted the rendering of a non-HTML target ourselves
        elif nav_error is not None:
            if main is None or main.body is None:
                # Nothing of the page itself was recorded: this attempt failed.
                refused = recorder.refusal(main) if main is not None else None
                if refused:
                    raise CaptureFailed("blocked", refused, retryable=False)
                if "Timeout" in nav_error:
                    waited = time.monotonic() - started
                    if main is not None and main.status is not None:
                        raise CaptureFailed("timeout", f"{url} answered HTTP {main.status} but its body did not "
                                                       f"arrive within {waited:.0f}s (capture.load_timeout_seconds)")
                    raise CaptureFailed("timeout", f"no response within {waited:.0f}s: {url}")
                err = (main.failed if main and main.failed else nav_error)
                if "ERR_RESPONSE_HEADERS_TOO_BIG" in err:
                    raise CaptureFailed("too-large", f"response headers from {url} exceed Chromium's ceiling of "
                                                     f"256 KiB ({err})")
                raise CaptureFailed(classify_net_error(err.split("net::", 1)[-1] if "net::" in err else err),
                                    f"{err} at {url}")
            partial_reason = f"page did not finish loading: {nav_error}"

        if not recorder.non_html_main and partial_reason is None:
            try:
                await page.wait_for_load_state("load", timeout=load_left() * 1000 or 1)
            except PlaywrightError:
                partial_reason = (f"the page was still loading after {time.monotonic() - started:.0f}s "
                                  f"(capture.load_timeout_seconds)")
            if partial_reason is None:
                await _network_idle(recorder, left(cap["network_idle_seconds"]))
                seen = len(recorder.exchanges)
                if left(cap["scroll_seconds"]) > 0:
                    try:
                        await page.evaluate(SCROLL_JS, [int(left(cap["scroll_seconds"]) * 1000), 250])
                    except PlaywrightError as exc:
                        notes.append(f"scrolling failed: {exc}")
                # Wait again only if scrolling woke something up (lazy images, infinite scroll).
                if len(recorder.exchanges) != seen or recorder.inflight:
                    await _network_idle(recorder, left(cap["network_idle_seconds"]))

        title = text = None
        outlinks: list[dict[str, str]] = []
        screenshot = dom = None
        if not recorder.non_html_main:
            try:
                info = await asyncio.wait_for(page.evaluate(EXTRACT_JS), timeout=max(1.0, left(None, 0)))
                title, text, outlinks = info["title"], info["text"], info["outlinks"]
                screenshot = await _screenshot(page, settings, info["height"], max(1.0, left(None, 0)),
                                               width=info.get("width") or 0)
                dom = await asyncio.wait_for(page.content(), timeout=max(1.0, left(None, 0)))
            except (PlaywrightError, asyncio.TimeoutError) as exc:
                notes.append(f"page snapshot incomplete: {type(exc).__name__}: {str(exc)[:200]}")
                partial_reason = partial_reason or "screenshot or DOM could not be taken before the deadline"
        certificate_pem = await _certificate_chain(cdp, recorder.main_exchange())
        recorder.frozen = True
        # Bodies still being fetched get a short grace period; what is still missing is listed in provenance.
        if recorder.tasks:
            await asyncio.wait(list(recorder.tasks), timeout=max(0.5, min(5.0, left(None, 0))))
        # What is still being read is cut here: a stream keeps what it had (marked truncated), a whole-body
        # fetch is listed as unrecorded.
        recorder.cut.set()
        if recorder.tasks:
            await asyncio.wait(list(recorder.tasks), timeout=PENDING_READ_GRACE)
        for task in list(recorder.tasks):
            task.cancel()
        if recorder.tasks:
            await asyncio.wait(list(recorder.tasks), timeout=PENDING_READ_GRACE)
        try:
            await cdp.send("Fetch.disable")
        except PlaywrightError:
            pass
        return _write_records(warc, recorder, url, title, text, outlinks, screenshot, dom,
                              certificate_pem, partial_reason, notes, settings)
    finally:
        for ex in recorder.exchanges if recorder else []:
            if ex.body is not None:
                ex.body.close()
        await context.close()


async def _navigate(page: Any, recorder: Recorder, url: str, timeout: float, header_timeout: float) -> str | None:
    """page.goto(url) up to DOMContentLoaded within ``timeout`` seconds: None when it got there, else why not.

    Meanwhile it watches the page's own exchange: response headers not all in within ``header_timeout`` seconds
    of the request (a server trickling them byte by byte) fail the capture as a timeout; a main document whose
    connection broke after its body was recorded ends the wait (Chromium may keep the navigation pending).
    """
    asked = time.time()
    task = asyncio.ensure_future(page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000 or 1))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=NAV_POLL_SECONDS)
            if done:
                exc = task.exception()
                if exc is None:
                    return None
                if isinstance(exc, PlaywrightError):
                    return str(exc).splitlines()[0]
                raise exc
            main = recorder.main_exchange()
            if main is None or main.status is None:
                since = time.time() - (main.wall_time if main is not None else asked)
                if since > header_timeout:
                    raise CaptureFailed("timeout", f"no complete response headers from {main.url if main else url} "
                                                   f"within {header_timeout:g}s (network.header_timeout_seconds)")
            elif main.body is not None and main.failed:
                return f"the page's connection broke: {main.failed}"
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=PENDING_READ_GRACE)


async def _body_arrival(ex: Exchange, bound: float) -> bool:
    """Wait until the exchange's body has been recorded (whole or cut), at most ``bound`` seconds."""
    end = time.monotonic() + bound
    while ex.body is None and time.monotonic() < end:
        await asyncio.sleep(NAV_POLL_SECONDS)
    return ex.body is not None


async def _network_idle(recorder: Recorder, bound: float, quiet: float = 0.5) -> bool:
    """Wait until no request has been in flight for ``quiet`` seconds, at most ``bound`` seconds."""
    end = time.monotonic() + bound
    while (now := time.monotonic()) < end:
        quiet_for = now - recorder.last_activity
        if not recorder.inflight and quiet_for >= quiet:
            return True
        # Nothing in flight: sleep until the quiet period would be over (then look again: a request may have
        # come meanwhile), not in fixed steps that overshoot it by up to a step.
        await asyncio.sleep(min(end - now, 0.1 if recorder.inflight else max(0.01, quiet - quiet_for)))
    return False


async def _screenshot(page: Any, settings: Settings, height: int, timeout: float, width: int = 0) -> bytes:
    max_h = settings["capture"]["screenshot_max_height"]
    viewport = settings["browser"]["viewport_width"]
    # A page far wider than the window (one 100,000-character word) would make a full-page image of
    # gigapixels; it is cut at the window's width, as a page too long is cut at screenshot_max_height.
    if (height and height > max_h) or width > viewport:
        return await page.screenshot(full_page=True,
                                     clip={"x": 0, "y": 0, "width": viewport, "height": min(height or max_h, max_h)},
                                     timeout=timeout * 1000, animations="disabled")
    return await page.screenshot(full_page=True, timeout=timeout * 1000, animations="disabled")


async def _certificate_chain(cdp: Any, main: Exchange | None) -> str | None:
    if main is None or not main.url.startswith("https:"):
        return None
    parts = urlsplit(main.url)
    try:
        reply = await cdp.send("Network.getCertificate", {"origin": f"{parts.scheme}://{parts.netloc}"})
    except PlaywrightError:
        return None
    return "".join(ssl.DER_cert_to_PEM_cert(base64.b64decode(der)) for der in reply.get("tableNames", [])) or None


def _write_records(warc: CaptureWarc, recorder: Recorder, url: str, title: str | None,
                   text: str | None, outlinks: list[dict[str, str]], screenshot: bytes | None, dom: str | None,
                   certificate_pem: str | None, partial_reason: str | None, notes: list[str],
                   settings: Settings) -> CaptureResult:
    main = recorder.main_exchange()
    refused = recorder.refusal(main) if main is not None else None
    if refused:
        # Checked before anything is written: a tweet or video capture goes on writing into this WARC.
        raise CaptureFailed("blocked", refused, retryable=False)
    main_record_id = None
    unrecorded = []
    truncated = []
    missed = []  # responses the browser received but whose bodies we failed to record
    for ex in recorder.exchanges:
        refused = recorder.refusal(ex)
        if refused or ex.status is None or ex.body is None:
            reason = f"blocked: {refused}" if refused else ex.failed or ex.body_note or "no response before the end"
            unrecorded.append({"url": ex.url, "reason": reason})
            if (not refused and ex.status is not None and not ex.failed
                    and (ex.body_note or "").startswith("body not recorded")):
                missed.append(ex.url)
            continue
        body = ex.body
        body.seek(0, os.SEEK_END)
        length = body.tell()
        body.seek(0)
        headers = stored_headers(ex.response_headers or [], length, decoded=True)
        date = datetime.fromtimestamp(ex.response_time or ex.wall_time, timezone.utc)
        resp_id = warc.write_response(ex.url, ex.status, ex.status_text, headers, body, date=date,
                                      ip=ex.remote_ip, protocols=_protocols(ex), truncated=ex.truncated)
        parts = urlsplit(ex.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        warc.write_request(ex.url, ex.method, target, _request_headers(ex.request_headers, ex.url), ex.post_data,
                           concurrent_to=resp_id, date=datetime.fromtimestamp(ex.wall_time, timezone.utc))
        if ex is main:
            main_record_id = resp_id
        if ex.truncated:
            truncated.append({"url": ex.url, "reason": ex.body_note, "warc_truncated": ex.truncated})
    if main is None or main_record_id is None:
        raise CaptureFailed("timeout" if partial_reason else "network",
                            f"the main document of {url} was not recorded"
                            + (f" ({main.failed or main.body_note})" if main else ""))
    target_url = main.url
    if screenshot:
        warc.write_resource(f"urn:screenshot:{target_url}", "image/png", screenshot, concurrent_to=main_record_id)
    if dom is not None:
        warc.write_resource(f"urn:dom:{target_url}", "text/html; charset=utf-8", dom.encode("utf-8"),
                            concurrent_to=main_record_id)
    if text is not None and settings["capture"]["save_text"]:
        warc.write_resource(f"urn:text:{target_url}", "text/plain; charset=utf-8", text.encode("utf-8"),
                            concurrent_to=main_record_id)
    content_type = header_value(main.response_headers or [], "content-type")
    failure_class, failure_message = status_failure(main.status)
    status = "ok"
    if failure_class:
        status = "failed"
    elif main.truncated:
        # The page itself is cut short: why it was cut is the class (too-large, timeout, reset).
        status, failure_class, failure_message = "partial", truncation_class(main.truncated), main.body_note
    elif partial_reason:
        status, failure_class, failure_message = "partial", "timeout", partial_reason
    elif truncated:
        status, failure_class = "partial", truncation_class(truncated[0]["warc_truncated"])
        failure_message = f"{len(truncated)} response(s) truncated, first {truncated[0]['url']}: {truncated[0]['reason']}"
    elif missed:
        status, failure_class = "partial", "incomplete"
        failure_message = f"{len(missed)} response body(ies) could not be recorded: {', '.join(missed[:3])}"
    chain = recorder.main_chain()
    details = {
        "method": "browser",
        "redirects": [{"url": ex.url, "status": ex.status, "location": header_value(ex.response_headers or [],
                                                                                    "location")}
                      for ex in chain[:-1]],
        "main": {"url": main.url, "status": main.status, "ip": main.remote_ip, "protocol": main.protocol,
                 "tls": main.security, "certificate_chain_pem": certificate_pem},
        "exchanges": sum(1 for ex in recorder.exchanges if ex.status is not None and ex.body is not None),
        "unrecorded": unrecorded,
        "truncated": truncated,
        # Bodies read as a stream (size not known to be within bounds) and handed to the page by us: Chromium
        # reports no server address for these, so their records carry no WARC-IP-Address.
        "streamed": [ex.url for ex in recorder.exchanges if ex.streamed],
        "notes": notes,
        "network": network.describe(settings, "browser"),
    }
    if not recorder.non_html_main and not screenshot:
        notes.append("no screenshot")
    documents = []
    if is_html(content_type) and main.body is not None:
        main.body.seek(0)
        raw = main.body.read(5 * 1024 * 1024)
        documents.append(("html", raw.decode(charset_of(content_type, raw), errors="replace")))
    if dom is not None:
        documents.append(("dom", dom))
    return CaptureResult(status=status, final_url=main.url, main_record_id=main_record_id,
                         http_status=main.status, content_type=content_type, failure_class=failure_class,
                         failure_message=failure_message, title=title or None, text=text, outlinks=outlinks,
                         details=details, documents=documents)
