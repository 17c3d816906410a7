"""Replay of an archived page, isolated from the workbench: ReplayWeb.page served by a second ASGI app on an origin
of its own, embedded by the workbench in a sandboxed iframe.

Why a second origin: an archived page is hostile content, and replaying it runs its scripts. They must never run
with the workbench's authority (its cookies, its token, its API). Browsers isolate scripts by origin, but cookies by
host alone (not port), so the replay origin differs from the workbench's in its *host* (and port).

Why a subdomain of the workbench's host: ReplayWeb.page replays through a service worker, and Chromium refuses a
service worker to a *cross-site* iframe whenever third-party cookies are blocked ("The user denied permission to use
Service Worker": Debian's Chromium 156 blocks them by default, as Incognito windows and other browsers do). A
same-site iframe keeps it. So the replay origin is ``replay.<workbench host>``: same site, another origin. On loopback
that means opening the workbench by a name under ``localhost`` (Chromium resolves every ``*.localhost`` to loopback
itself): the workbench at ``http://archive.localhost:8080``, the replay at ``http://replay.archive.localhost:8081``
(``loopback_origins``). A workbench opened as ``http://127.0.0.1:8080`` cannot embed the replay (an IP address has
no subdomains). Service workers also need a secure context (https, or a loopback host), in every frame above them:
beyond loopback both origins are https, e.g. ``https://archive.example.org`` and ``https://replay.archive.example.org``
behind a TLS proxy. ``check_origins`` refuses anything else with one line.

What same-site costs, and what the workbench must therefore do (the integrator's checklist):
- its cookies are host-only (no ``Domain`` attribute) so the replay host never gets them; with https, named
  ``__Host-...``, which no other host can set (a replayed page cannot toss a cookie into the workbench);
- requests from the replay origin to the workbench are same-site, so SameSite does not stop them: wrap the
  workbench app in ``ReplayFence`` (403 to any request marked ``Sec-Fetch-Site: same-site`` or whose Origin is
  the replay origin). ReplayWeb.page's service worker already gives every replayed page a CSP of its own
  (``default-src 'self' ...``: it reaches nothing but the replay origin) and the iframe sandbox (no
  allow-top-navigation, no allow-popups) keeps it from navigating the workbench's window; the fence is the third
  wall, the one the workbench owns;
- its pages send ``frame-src <replay origin>`` (``frame_src``) and embed ``iframe_src`` with ``IFRAME_SANDBOX``.

Interface, for the workbench app (archiver/web/app.py) and ``archiver serve``::

    from archiver.web.replay import (replay_app, iframe_src, frame_src, IFRAME_SANDBOX, check_origins,
                                     loopback_origins, ReplayFence)
    workbench_origin, replay_origin = loopback_origins(8080, 8081)   # or both from settings (https)
    check_origins(replay_origin, workbench_origin)                    # ConfigError: one line, exit 2
    replay = replay_app(archive, index, replay_origin=..., workbench_origin=...)  # serve on the replay port
    workbench = ReplayFence(workbench_app, replay_origin)
    # the capture page:  <iframe sandbox="{{ IFRAME_SANDBOX }}" src="{{ iframe_src(replay_origin, c.id) }}">
    # the workbench's CSP gains:  frame-src {{ frame_src(replay_origin) }}

Grants: the replay origin gets none of the workbench's cookies (that is the point), so it cannot ask who is looking.
Instead the workbench, which has checked the viewer, hands each replay iframe a grant for that capture (``Grants``:
an HMAC of the capture ID and an expiry under a key that lives in the serving process only); the embed page and the
WARC answer only with a valid grant for that very capture. A capture ID alone (it appears in reports and exports)
opens nothing, whoever can reach the replay port.

The replay app's routes (every response: ``frame-ancestors`` the workbench's origin only, nosniff, no referrer, no
cookie ever set; a Cookie header sent to it is dropped before any route sees it; a request for another Host than
the replay origin's is refused, 421, so a DNS-rebinding page cannot read it through its own name):

- ``GET /capture/{id}/?grant=G`` -- the embed page: ``<replay-web-page>`` over that capture's WARC, showing its URL
  (``embed="replayonly"``). Its own script (``/embed.js``) registers ReplayWeb.page's service worker and waits
  until it is active before the component loads (on a first visit ReplayWeb.page 2.5.3 races the worker and may
  stay blank: tests/test_replay_wacz.py).
- ``GET|HEAD /capture/{id}/{G}/{id}.warc.gz`` -- the sealed WARC as stored, with byte ranges, read through the
  capture's store (a local directory or S3). Only a capture the index holds, by its exact ID; its place comes
  from the index. ReplayWeb.page (wabac.js) loads a WARC under 25 MB whole into the browser's storage; a larger
  one, since this route answers ranges, it indexes in one streaming pass and then reads each record by range, so
  the browser never holds it. Measured (loopback, the machine shared): a capture holding a 40 MB video replays
  after 1.2 s, 400 MB after 3.6 s, 1.2 GB after 23 s (that one pass), with Chromium's memory the same for all
  three. A WACZ built from the records table would skip the pass (its CDX tells ReplayWeb.page where each record
  is); exchange/wacz.py makes one, but signing and custody entries belong to an export, not a view.
- ``GET /received/{receipt id}/?grant=G&page=P`` and ``GET|HEAD /received/{receipt id}/{G}/{receipt id}.{format}`` --
  the same for a file received from others (``archiver receive``): ReplayWeb.page over the file exactly as received
  (a WARC, a gzipped WARC or a WACZ, whose name tells ReplayWeb.page how to read it: a WACZ by ranges, through its
  own index), opened at received page P's URL and time. Its grant is for the receipt (``received_iframe_src``),
  made under a name no capture's grant can have, so neither opens the other. Its first read is ledgered as a
  capture's is (``accessed``, what=replay, with the receipt).
- ``/ui.js``, ``/replay/ui.js``, ``/replay/sw.js`` -- ReplayWeb.page as ``make setup`` vendored it
  (``<venv>/replaywebpage``).

Nothing live is fetched during replay: ReplayWeb.page reads the WARC alone (no live proxy is configured).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from archiver.errors import ConfigError, NotFound
from archiver.store.archive import warc_key
from archiver.store.blobs import StorageError
from archiver.store.payload import Unreadable, read_sealed
from archiver.web.auth import is_loopback_host
from archiver.web.media import CAPTURE_ID, SECURITY_HEADERS, exact_capture
from archiver.web.ranges import ranged_response

__all__ = ["replay_app", "Grants", "iframe_src", "received_iframe_src", "frame_src", "check_origins", "loopback_origins", "ReplayFence", "rwp_dir",
           "IFRAME_SANDBOX", "LOOPBACK_NAME", "ReplayUnavailable"]

# What the workbench puts on the iframe: scripts (ReplayWeb.page is a script) in an origin of their own
# (allow-same-origin keeps the *replay* origin, which the service worker needs), forms; no top navigation, no popups
# escaping the sandbox, no modals.
IFRAME_SANDBOX = "allow-scripts allow-same-origin allow-forms"

EMBED_JS = """\
// Registers ReplayWeb.page's service worker and waits for it before the component is made (archiver/web/replay.py).
// ui.js itself is loaded by the page: it waits for the window's load event, which a script added later never sees.
(async () => {
  const holder = document.getElementById("replay");
  try {
    const reg = await navigator.serviceWorker.register("/replay/sw.js?serveIndex=1", {scope: "/replay/"});
    const worker = reg.installing || reg.waiting || reg.active;
    if (worker.state !== "activated") {
      await new Promise(ok => worker.addEventListener("statechange", () => worker.state === "activated" && ok()));
    }
  } catch (error) {
    holder.textContent = "Replay needs a service worker, which this browser refused here: " + error;
    return;
  }
  const player = document.createElement("replay-web-page");
  for (const name of ["source", "url", "ts", "embed", "replaybase"]) {
    if (holder.dataset[name]) player.setAttribute(name, holder.dataset[name]);
  }
  holder.replaceWith(player);
})();
"""

EMBED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Replay of {title}</title>
<style>html,body{{margin:0;height:100%}} replay-web-page{{display:block;height:100vh}}</style>
<script src="/ui.js"></script><script src="/embed.js" defer></script></head>
<body><div id="replay" data-source="{source}" data-url="{url}" data-ts="{ts}" data-embed="replayonly" data-replaybase="/replay/">
Loading the archived page...</div></body></html>
"""


LOOPBACK_NAME = "archive.localhost"


class ReplayUnavailable(ConfigError):
    """ReplayWeb.page is not where ``make setup`` puts it."""


def rwp_dir() -> Path:
    """Where ``make setup`` vendors ReplayWeb.page: ``<venv>/replaywebpage``."""
    return Path(sys.prefix) / "replaywebpage"


def replay_target(capture: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The URL to open in the replay: the page as requested if the WARC holds it (an archived redirect replays as
    one), else the final URL, else the first HTML page answered 200 -- for a tweet, the embed page the capture
    rendered (its requested and final URLs were answered by the syndication API, not as pages)."""
    answered = {r["uri"]: r for r in records if r["type"] == "response"}
    for url in (capture["url"], capture.get("final_url")):
        if url and url in answered:
            return url
    html_pages = [r["uri"] for r in records if r["type"] == "response" and r.get("http_status") == 200
                  and (r.get("content_type") or "").lower().startswith("text/html")]
    return html_pages[0] if html_pages else capture["url"]


class Grants:
    """Short-lived grants to replay one capture, made by the workbench for a viewer it has checked and accepted by
    the replay app: ``<expiry>.<HMAC-SHA256 of "capture-id.expiry">``, under a key made at start and never written
    anywhere (a restart ends every grant)."""

    def __init__(self, seconds: int = 12 * 3600) -> None:
        self._key = secrets.token_bytes(32)
        self.seconds = seconds
        # Who each grant was made for, until its WARC is first read: custody records that hand-out (``first_use``).
        self._issued: dict[str, tuple[str, str, int]] = {}
        self._lock = threading.Lock()

    def _mac(self, capture_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{capture_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def grant(self, capture_id: str, identity: str = "", client: str = "") -> str:
        """A grant to replay ``capture_id``, made for ``identity`` (who the workbench let see it) at ``client``."""
        expires = int(time.time()) + self.seconds
        value = f"{expires}.{self._mac(capture_id, expires)}"
        with self._lock:
            now = time.time()
            for old in [g for g, (_, _, until) in self._issued.items() if until < now]:
                del self._issued[old]
            self._issued[value] = (identity, client, expires)
        return value

    def first_use(self, grant: str) -> tuple[str, str] | None:
        """(identity, client) the grant was made for, the first time its WARC is read; None after (or for a grant
        this process did not make)."""
        with self._lock:
            found = self._issued.pop(grant, None)
        return (found[0], found[1]) if found else None

    def check(self, capture_id: str, grant: str | None) -> bool:
        expires, _, mac = (grant or "").partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(mac, self._mac(capture_id, int(expires)))


def iframe_src(replay_origin: str, capture_id: str, grants: Grants, identity: str = "", client: str = "") -> str:
    """The src of the workbench's replay iframe for a capture, with a grant for it made for ``identity``."""
    if not CAPTURE_ID.fullmatch(capture_id):
        raise ValueError(f"not a capture ID: {capture_id!r}")
    return f"{replay_origin.rstrip('/')}/capture/{capture_id}/?grant={grants.grant(capture_id, identity, client)}"


def received_iframe_src(replay_origin: str, receipt_id: str, page_id: str, grants: Grants, identity: str = "",
                        client: str = "") -> str:
    """The src of the replay iframe for a received page: its receipt's file, opened at the page (a grant for the
    receipt, under a name of its own: ``received_grant_name``)."""
    for value in (receipt_id, page_id):
        if not CAPTURE_ID.fullmatch(value):
            raise ValueError(f"not an ID: {value!r}")
    grant = grants.grant(received_grant_name(receipt_id), identity, client)
    return f"{replay_origin.rstrip('/')}/received/{receipt_id}/?grant={grant}&page={page_id}"


def received_grant_name(receipt_id: str) -> str:
    """What a receipt's grant is made for: never a capture ID, so a capture's grant opens no receipt's file and a
    receipt's no capture's (their IDs are both ULIDs)."""
    return f"received:{receipt_id}"


def rwp_timestamp(iso: str | None) -> str:
    """An ISO time as ReplayWeb.page's ``ts`` (YYYYMMDDhhmmss); "" when there is none."""
    digits = "".join(c for c in (iso or "") if c.isdigit())[:14]
    return digits if len(digits) == 14 else ""


def frame_src(replay_origin: str) -> str:
    """The value of the ``frame-src`` directive the workbench's CSP must carry for the replay iframe to load."""
    parts = urlsplit(replay_origin)
    return f"{parts.scheme}://{parts.netloc}"


def _origin(url: str, setting: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or port < 0 \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{setting} must be an origin such as http://replay.archive.localhost:8081 (scheme, host, "
                          f"port; no path), got {url!r}")
    return parts.scheme, parts.hostname.lower(), port


def check_origins(replay_origin: str, workbench_origin: str) -> None:
    """ConfigError (one line) unless replaying under ``replay_origin`` is isolated from a workbench at
    ``workbench_origin`` (another host) and can run ReplayWeb.page's service worker (same site: a subdomain of the
    workbench's host, same scheme; a secure context: https, or loopback)."""
    r_scheme, r_host, _ = _origin(replay_origin, "the replay origin")
    w_scheme, w_host, _ = _origin(workbench_origin, "the workbench origin")
    if r_host == w_host:
        raise ConfigError(f"the replay origin {replay_origin} must be on another host than the workbench "
                          f"{workbench_origin}: browsers share cookies between ports of one host")
    if not r_host.endswith("." + w_host) or r_scheme != w_scheme:
        raise ConfigError(f"the replay origin {replay_origin} must be a subdomain of the workbench's host with its "
                          f"scheme (e.g. {w_scheme}://replay.{w_host}): browsers that block third-party cookies "
                          f"refuse the replay's service worker to a cross-site frame (an IP address has no "
                          f"subdomains: open the workbench as http://archive.localhost:PORT)")
    if w_scheme != "https" and not is_loopback_host(w_host):
        raise ConfigError(f"the workbench {workbench_origin} and its replay origin must be https beyond loopback: "
                          f"browsers run the replay's service worker only in a secure context")


def loopback_origins(port: int, replay_port: int, name: str = LOOPBACK_NAME) -> tuple[str, str]:
    """(workbench origin, replay origin) for a workbench bound to loopback: ``http://archive.localhost:PORT`` and
    ``http://replay.archive.localhost:REPLAY_PORT``, names Chromium resolves to loopback itself."""
    return f"http://{name}:{port}", f"http://replay.{name}:{replay_port}"


def replay_app(archive: Any, index: Any, *, replay_origin: str, workbench_origin: str, grants: Grants,
               rwp: Path | None = None) -> Any:
    """The replay app (ASGI): serve it on ``replay_origin``'s host and port. ``archive``/``index``: the opened
    archive and its index (shared with the workbench; lookups here hold a lock). ``rwp``: ReplayWeb.page's
    directory (default ``rwp_dir()``). ``grants``: the workbench's, which the embed page and the WARC require. Raises ConfigError (``check_origins``) or ReplayUnavailable."""
    check_origins(replay_origin, workbench_origin)
    rwp = rwp or rwp_dir()
    try:
        ui, sw = (rwp / "ui.js").read_bytes(), (rwp / "sw.js").read_bytes()
    except OSError:
        raise ReplayUnavailable(f"ReplayWeb.page is not in {rwp}; run `make setup`") from None
    workbench = frame_src(workbench_origin)
    lock = threading.Lock()
    common = {**SECURITY_HEADERS, "Cross-Origin-Resource-Policy": "same-origin"}
    framed = {**common, "Content-Security-Policy": f"frame-ancestors {workbench}"}
    # The embed page runs our script and ReplayWeb.page's, from this origin only.
    page_csp = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                "connect-src 'self'; frame-src 'self'; worker-src 'self'; font-src 'self' data:; "
                f"media-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors {workbench}")

    def capture_of(request: Request) -> dict[str, Any]:
        return exact_capture(index, request.path_params["capture_id"], lock)

    def refused() -> Response:
        return PlainTextResponse("no valid grant for this capture: open it from the workbench", 403, headers=framed)

    def embed(request: Request) -> Response:
        try:
            capture = capture_of(request)
        except NotFound as exc:
            return PlainTextResponse(str(exc), 404, headers=framed)
        grant = request.query_params.get("grant")
        if not grants.check(capture["id"], grant):
            return refused()
        with lock:
            records = index.capture_records(capture["id"])
        url = replay_target(capture, records)
        return embedded(f"/capture/{capture['id']}/{grant}/{capture['id']}.warc.gz", url, "")

    def embedded(source: str, url: str, ts: str) -> Response:
        page = EMBED_PAGE.format(title=html.escape(url), url=html.escape(url, quote=True), ts=html.escape(ts),
                                 source=html.escape(source, quote=True))
        return Response(page, 200, {**common, "Content-Security-Policy": page_csp}, media_type="text/html")

    def receipt_of(request: Request) -> dict[str, Any]:
        from archiver.store import received
        receipt_id = request.path_params["receipt_id"]
        with lock:
            held = received.receipt(index, receipt_id) if CAPTURE_ID.fullmatch(receipt_id) else None
        if held is None:
            raise NotFound(f"no received file {receipt_id!r}")
        return held

    def received_embed(request: Request) -> Response:
        from archiver.store import received
        try:
            held = receipt_of(request)
            page_id = request.query_params.get("page") or ""
            with lock:
                found = received.receipt_of_page(index, page_id) if CAPTURE_ID.fullmatch(page_id) else None
            if found is None or found[0]["receipt_id"] != held["id"]:
                raise NotFound(f"received file {held['id']} has no page {page_id[:40]!r}")
        except NotFound as exc:
            return PlainTextResponse(str(exc), 404, headers=framed)
        grant = request.query_params.get("grant")
        if not grants.check(received_grant_name(held["id"]), grant):
            return refused()
        page = found[0]
        return embedded(f"/received/{held['id']}/{grant}/{held['id']}.{held['format']}", page["url"],
                        rwp_timestamp(page["captured_at"]))

    def granted_file(request: Request, row_of: Callable[[Request], dict[str, Any]],
                     name_of: Callable[[dict[str, Any]], str], granted_for: Callable[[dict[str, Any]], str]
                     ) -> tuple[dict[str, Any], Response | None]:
        """The row (a capture's, a receipt's) a file route names, and None; or the answer when its name or its
        grant is not that row's (404, 403)."""
        try:
            row = row_of(request)
            if request.path_params["name"] != name_of(row):
                raise NotFound("no such file")
        except NotFound as exc:
            return {}, PlainTextResponse(str(exc), 404, headers=framed)
        if not grants.check(granted_for(row), request.path_params["grant"]):
            return {}, refused()
        return row, None

    def received_file(request: Request) -> Response:
        from archiver.exchange import received_file as kept
        held, answer = granted_file(request, receipt_of, lambda r: f"{r['id']}.{r['format']}",
                                    lambda r: received_grant_name(r["id"]))
        if answer is not None:
            return answer
        return served(request, kept.placed(archive, held), "the received file", kept.media_type(held),
                      held["sha256"], held["size"], {"receipt": held["id"]})

    def warc(request: Request) -> Response:
        capture, answer = granted_file(request, capture_of, lambda c: f"{c['id']}.warc.gz", lambda c: c["id"])
        if answer is not None:
            return answer
        return served(request, capture, "the sealed WARC", "application/warc", capture["warc_sha256"],
                      capture["warc_size"], {}, capture_id=capture["id"], url=capture["url"])

    def served(request: Request, where: dict[str, Any], what: str, media: str, sha256: str, size: int,
               detail: dict[str, Any], capture_id: str | None = None, url: str | None = None) -> Response:
        """A file (a capture's sealed WARC, or a received file: ``where`` places it as a capture row does), with
        byte ranges, its hand-out ledgered once per grant."""
        if request.method == "GET":
            handed = grants.first_use(request.path_params["grant"])
            if handed is not None:
                identity, granted_to = handed
                _record(capture_id, url, {**detail, "by": identity, "via": "replay grant",
                                          "from": (request.client.host if request.client else "") or granted_to,
                                          "sha256": sha256, "bytes": size})
        try:   # a file that is gone is said before any header promises its bytes
            archive.store_of(where).head(warc_key(where["warc_path"]), where.get("warc_version"))
        except StorageError as exc:
            return PlainTextResponse(f"{what} cannot be served: {exc} (run archiver verify)", 409, headers=framed)

        def read(first: int, last: int) -> Iterator[bytes]:
            try:
                yield from read_sealed(archive, where, first, last)
            except Unreadable:
                return   # the body ends short: the client sees a broken transfer, not other bytes

        headers = {**framed, "Content-Type": media, "ETag": f'"{sha256}"'}
        return ranged_response(request.headers.get("range"), size, read, headers, method=request.method,
                               if_range=request.headers.get("if-range"))

    def _record(capture_id: str | None, url: str | None, detail: dict[str, Any]) -> None:
        # Custody includes who saw what: the file handed to a browser for replay is recorded as a download is
        # (web/downloads.py), once per grant, before its first byte leaves.
        from archiver.custody import ledger
        with lock, index.transaction() as conn:
            ledger.append(conn, "accessed", capture_id=capture_id, url=url, detail={"what": "replay", **detail})

    def script(body: bytes) -> Any:
        def serve(request: Request) -> Response:
            return Response(body, 200, {**common, "Cache-Control": "no-cache"}, media_type="application/javascript")
        return serve

    routes = [Route("/capture/{capture_id}/", embed, methods=["GET", "HEAD"]),
              Route("/capture/{capture_id}/{grant}/{name}", warc, methods=["GET", "HEAD"]),
              Route("/received/{receipt_id}/", received_embed, methods=["GET", "HEAD"]),
              Route("/received/{receipt_id}/{grant}/{name}", received_file, methods=["GET", "HEAD"]),
              Route("/embed.js", script(EMBED_JS.encode()), methods=["GET", "HEAD"]),
              Route("/ui.js", script(ui), methods=["GET", "HEAD"]),
              Route("/replay/ui.js", script(ui), methods=["GET", "HEAD"]),
              Route("/replay/sw.js", script(sw), methods=["GET", "HEAD"])]

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found", 404, headers=framed)

    _, host, port = _origin(replay_origin, "the replay origin")
    hosts = {f"{host}:{port}"} | ({host} if port == (443 if replay_origin.startswith("https:") else 80) else set())
    return _Guarded(Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}), framed, hosts)


class _Guarded:
    """The replay app as an ASGI app that answers only requests for its own Host (421 otherwise: a DNS-rebinding
    page reaching it under another name), never sees a Cookie header, never sends Set-Cookie, and gives every
    response the headers ``defaults`` names unless the route set them (so Starlette's own answers carry them)."""

    def __init__(self, app: Any, defaults: dict[str, str], hosts: set[str]) -> None:
        self.app = app
        self.defaults = [(k.lower().encode(), v.encode()) for k, v in defaults.items()]
        self.hosts = hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if headers.get(b"host", b"").decode("latin-1").lower() not in self.hosts:
            return await PlainTextResponse("misdirected request", 421, headers={
                k.decode(): v.decode() for k, v in self.defaults})(scope, receive, send)
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"cookie"]}

        async def send_clean(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"set-cookie"]
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.defaults if k not in have]
                message = {**message, "headers": headers}
            await send(message)
        await self.app(scope, receive, send_clean)


class ReplayFence:
    """Wrap the *workbench* app in this: a request that comes from the replay origin (``Origin`` is it) or from any
    other site's page on the same site (``Sec-Fetch-Site: same-site``: only the replay is one) gets 403 before the
    workbench sees it. Same-site requests carry SameSite cookies, so this is what keeps a replayed page that got
    past ReplayWeb.page's CSP from calling the workbench with the investigator's session."""

    def __init__(self, app: Any, replay_origin: str) -> None:
        self.app = app
        self.replay_origin = frame_src(replay_origin).encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"sec-fetch-site") == b"same-site" or headers.get(b"origin") == self.replay_origin:
                return await PlainTextResponse("refused: a request from the replay of archived content", 403,
                                               headers={"X-Content-Type-Options": "nosniff"})(scope, receive, send)
        await self.app(scope, receive, send)
