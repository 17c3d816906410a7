#!/usr/bin/env python3
"""Loopback HTTP server for the archiver's self-contained demo news site.

The site (``scripts/demo_site/``) is modelled on a 2016 live blog about the
Aleppo evacuation and exercises what real evidence pages do: a stylesheet
that pulls in its own image, a lazy image far below the fold, JavaScript that
fetches JSON and writes it into the DOM (served gzip-compressed), an embedded
tweet, a same-origin iframe, a redirecting outbound link, an ISO-8859-1 page
and a PDF. Nothing on it loads from any other host.

The same server provides routes for tests and benchmarks under ``/test/``:
arbitrary status codes, slow responses, redirect chains, a response that
never finishes, a page with a hanging image, 100,000 generated pages and a
plain-text file.

Standard library only, so it runs anywhere the tests run::

    python scripts/demo_server.py [--host 127.0.0.1] [--port 0] [--verbose]

prints ``serving http://127.0.0.1:PORT`` once listening and serves until
SIGTERM or SIGINT. Tests import it by path and call :func:`start`.
"""

from __future__ import annotations

import argparse
import gzip
import html
import http.server
import math
import signal
import socket
import sys
import threading
import types
import urllib.parse
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Callable

SITE_ROOT = Path(__file__).resolve().parent / "demo_site"

ARTICLE_PATH = "/2016/12/16/aleppo-live/"
SECOND_ARTICLE_PATH = "/2016/12/16/evacuation-suspended/"

# Upper bound for every deliberate delay, so a forgotten client can never pin
# a thread (or a CI job) for longer than this.
MAX_DELAY_SECONDS = 120.0
HANGING_IMAGE_DEFAULT_SECONDS = 60.0
BENCH_PAGE_COUNT = 100_000
MAX_REDIRECT_CHAIN = 1000
# Idle keep-alive connections are dropped after this long so handler threads
# do not accumulate when browsers hold sockets open.
IDLE_CONNECTION_TIMEOUT = 30.0

HTML_TYPE = "text/html; charset=utf-8"

CONTENT_TYPES: dict[str, str] = {
    ".html": HTML_TYPE,
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
}

# Files whose bytes are not UTF-8: the header must say so, and the bytes are
# served exactly as stored so archivers see the legacy encoding.
CONTENT_TYPE_OVERRIDES: dict[str, str] = {
    "/archive/1998/communique.html": "text/html; charset=ISO-8859-1",
}

# Only JavaScript is compressed, so captures contain both encoded and
# identity responses and the archiver has to handle Content-Encoding.
GZIP_SUFFIXES = frozenset({".js"})

REDIRECTS: dict[str, str] = {
    "/go/evacuation-suspended": SECOND_ARTICLE_PATH,
}

NO_BODY_STATUSES = frozenset({204, 304})

# Static files answered after a short delay. The avatar inside the Periscope
# embed stands in for a slow third-party CDN, and because it is inside the
# iframe it holds back the article's load event until live.js has long
# since inserted /api/updates.json. `chromium --dump-dom` snapshots the DOM
# right at the load event, so without this the JS-added text is a race.
SLOW_STATIC_SECONDS: dict[str, float] = {
    "/static/img/alhamdo-avatar.png": 0.25,
}


# --------------------------------------------------------------------------
# Content helpers
# --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _read_site_file(path: Path) -> bytes:
    """Return a site file's bytes; the site is tiny and immutable at run time."""
    return path.read_bytes()


@lru_cache(maxsize=None)
def _gzipped(path: Path) -> bytes:
    # mtime=0 keeps the compressed bytes identical across runs, which makes
    # payload digests in WARC records reproducible.
    return gzip.compress(_read_site_file(path), compresslevel=9, mtime=0)


def _accepts_gzip(header: str | None) -> bool:
    """True if an Accept-Encoding header allows gzip (honours ``q=0``)."""
    if not header:
        return False
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _resolve_site_path(url_path: str) -> Path | None:
    """Map a URL path to a file or directory inside SITE_ROOT, or None."""
    rel = urllib.parse.unquote(url_path).lstrip("/")
    if "\x00" in rel:
        return None
    try:
        candidate = (SITE_ROOT / rel).resolve()
    except (OSError, ValueError):  # e.g. a name longer than the OS allows
        return None
    # resolve() collapses "..", so this containment check blocks traversal.
    if candidate != SITE_ROOT and SITE_ROOT not in candidate.parents:
        return None
    if any(part.startswith(".") for part in candidate.relative_to(SITE_ROOT).parts):
        return None
    try:
        return candidate if candidate.exists() else None
    except OSError:
        return None


def _page(title: str, body_html: str) -> bytes:
    """Small HTML5 document for generated pages, using the shared stylesheet."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="/favicon.ico">\n'
        '<link rel="stylesheet" href="/static/site.css">\n'
        f"</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    ).encode("utf-8")


def _simple_page(title: str, text: str) -> bytes:
    body = (
        '<div class="page single"><main>'
        f'<h1 class="headline">{html.escape(title)}</h1>'
        f"<p>{html.escape(text)}</p>"
        '<p><a href="/">Home</a> &middot; <a href="/test/">Test routes</a></p>'
        "</main></div>"
    )
    return _page(title, body)


def _parse_seconds(query: dict[str, list[str]], default: float) -> float | None:
    """Parse ``seconds`` from a query string, clamped to [0, MAX_DELAY_SECONDS]."""
    raw = query.get("seconds", [None])[0]
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    if math.isnan(value):
        return None
    return min(max(value, 0.0), MAX_DELAY_SECONDS)


# Words for the generated benchmark pages: a deterministic per-page pick makes
# each page's text differ beyond its number, so dedup by content cannot cheat.
_BENCH_WORDS = (
    "convoy checkpoint evacuation ceasefire statement witness corridor "
    "negotiation ambulance district shelter broadcast archive verification "
    "footage correspondent bulletin barricade crossing dispatch"
).split()


def _bench_page(n: int) -> bytes:
    words = [_BENCH_WORDS[(n * 7 + i * 13 + (n >> i)) % len(_BENCH_WORDS)] for i in range(12)]
    links = []
    if n > 1:
        links.append(f'<a rel="prev" href="/test/pages/{n - 1}">Previous: bench page {n - 1}</a>')
    if n < BENCH_PAGE_COUNT:
        links.append(f'<a rel="next" href="/test/pages/{n + 1}">Next: bench page {n + 1}</a>')
    body = (
        '<div class="page single bench"><main><article>'
        f'<h1 class="headline">Bench page {n}</h1>'
        '<figure><img src="/static/img/bench-figure.png" width="320" height="180" '
        'alt="Bar chart used on every bench page"></figure>'
        f"<p>This is generated benchmark article number {n} of {BENCH_PAGE_COUNT}. "
        f"Its keywords are {' '.join(words)}. Page {n} links to its neighbours so a "
        f"crawler can walk the sequence; the marker for this page is bench-{n:06d}.</p>"
        f"<p>{' &middot; '.join(links)}</p>"
        "</article></main></div>"
    )
    return _page(f"Bench page {n}", body)


_NEVER_FINISHES_HEAD = (
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>Never-finishing page</title>\n"
    '<link rel="icon" href="/favicon.ico">\n'
    "</head>\n<body>\n<h1>This response never finishes</h1>\n"
    "<p>The server sent this first part and then keeps the connection open "
    "without sending anything else.</p>\n"
    # Padding past 1 KiB so browsers commit and render the partial document
    # instead of waiting for more bytes to sniff.
    f"<!-- {'padding ' * 160}-->\n"
).encode("utf-8")
_NEVER_FINISHES_TAIL = b"<p>Gave up waiting; closing.</p>\n</body>\n</html>\n"


def _test_index() -> bytes:
    items = [
        ("/test/status/404", "any status code"),
        ("/test/slow?seconds=2", "slow response"),
        ("/test/redirect-chain?n=3", "redirect chain"),
        ("/test/never-finishes", "response that never finishes"),
        ("/test/hanging-subresource/", "page with a hanging image"),
        ("/test/pages/1", "benchmark pages 1..100000"),
        ("/test/plain.txt", "plain text"),
        ("/test/document", "a PDF at a URL without an extension"),
        ("/test/cross-site-frame", "a page embedding a cross-site iframe"),
    ]
    lis = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a> — {d}</li>' for u, d in items)
    return _page("Test routes", f'<div class="page single"><main><h1 class="headline">Test routes</h1><ul>{lis}</ul></main></div>')


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    """Threaded server that counts hits and can cut waits short on stop."""

    daemon_threads = True  # a hung client must never keep the process alive
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.verbose = verbose
        self.hits: dict[str, int] = {}
        self.hits_lock = threading.Lock()
        # Set on stop(): slow and never-finishing handlers wait on it instead
        # of sleeping, so shutdown is immediate.
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def count_hit(self, path: str) -> None:
        with self.hits_lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def drop_connections(self) -> None:
        """Close every open client socket so clients see the server go away."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients aborting requests (browsers cancel slow images) are normal
        # here; only print tracebacks when asked to.
        if self.verbose:
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "LevantLedgerDemo/1.0"
    timeout = IDLE_CONNECTION_TIMEOUT

    # ---- plumbing -------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _handle(self, head: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path or "/"
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        # Count on arrival, so tests can see requests that never complete.
        self.server.count_hit(path)
        self._head = head
        try:
            self._route(path, query)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = HTML_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with an exact Content-Length."""
        # Codes outside http.HTTPStatus (e.g. 599) would get an empty reason
        # phrase, which some clients log oddly; name them explicitly.
        self.send_response(status, None if status in self.responses else "Unknown Status")
        if status not in NO_BODY_STATUSES:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self._head and status not in NO_BODY_STATUSES:
            self.wfile.write(body)

    def _not_found(self) -> None:
        self._send(404, _simple_page("404 Not Found", f"Nothing lives at {self.path}."))

    def _bad_request(self, why: str) -> None:
        self._send(400, _simple_page("400 Bad Request", why))

    def _redirect(self, location: str, status: int = 302) -> None:
        body = _simple_page("Moved", f"This page has moved to {location}.")
        self._send(status, body, headers={"Location": location})

    def _wait(self, seconds: float) -> bool:
        """Sleep, but return True at once if the server is stopping.

        Callers then drop the connection instead of answering, so a request
        cut short by stop() never looks like a completed response.
        """
        if self.server.stopping.wait(seconds):
            self.close_connection = True
            return True
        return False

    # ---- routing --------------------------------------------------------

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        if path in REDIRECTS:
            self._redirect(REDIRECTS[path])
            return
        if path == "/test" or path.startswith("/test/"):
            self._route_test(path, query)
            return
        self._serve_static(path)

    def _serve_static(self, path: str) -> None:
        target = _resolve_site_path(path)
        if target is None:
            self._not_found()
            return
        if path in SLOW_STATIC_SECONDS and self._wait(SLOW_STATIC_SECONDS[path]):
            return
        if target.is_dir():
            if not path.endswith("/"):
                # Same as any static host: directories live at a slash URL, so
                # relative links inside index.html resolve correctly.
                self._redirect(path + "/", 301)
                return
            target = target / "index.html"
            if not target.is_file():
                self._not_found()
                return
        content_type = CONTENT_TYPE_OVERRIDES.get(path) or CONTENT_TYPES.get(
            target.suffix.lower(), "application/octet-stream"
        )
        headers: dict[str, str] = {}
        if target.suffix.lower() in GZIP_SUFFIXES:
            headers["Vary"] = "Accept-Encoding"
            if _accepts_gzip(self.headers.get("Accept-Encoding")):
                headers["Content-Encoding"] = "gzip"
                self._send(200, _gzipped(target), content_type, headers)
                return
        if path == "/api/updates.json":
            # A live feed: clients must not reuse a stale copy.
            headers["Cache-Control"] = "no-cache"
        self._send(200, _read_site_file(target), content_type, headers)

    def _route_test(self, path: str, query: dict[str, list[str]]) -> None:
        routes: dict[str, Callable[[dict[str, list[str]]], None]] = {
            "/test/": lambda q: self._send(200, _test_index()),
            "/test/slow": self._test_slow,
            "/test/slow-image": self._test_slow_image,
            "/test/redirect-chain": self._test_redirect_chain,
            "/test/never-finishes": self._test_never_finishes,
            "/test/hanging-subresource/": self._test_hanging_subresource,
            "/test/plain.txt": self._test_plain,
            "/test/document": self._test_document,
            "/test/cross-site-frame": self._test_cross_site_frame,
        }
        if path in routes:
            routes[path](query)
        elif path in ("/test", "/test/hanging-subresource"):
            self._redirect(path + "/", 301)
        elif path.startswith("/test/status/"):
            self._test_status(path.removeprefix("/test/status/"))
        elif path.startswith("/test/pages/"):
            self._test_pages(path.removeprefix("/test/pages/"))
        else:
            self._not_found()

    # ---- test routes ----------------------------------------------------

    def _test_status(self, code_text: str) -> None:
        # Informational (1xx) codes are interim responses, not answers; a
        # client would wait forever for the final one, so they are refused.
        if not code_text.isdigit() or not 200 <= int(code_text) <= 599:
            self._not_found()
            return
        code = int(code_text)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Unknown Status"
        self._send(code, _simple_page(f"{code} {phrase}", f"This page answered with HTTP status {code}."))

    def _test_slow(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=1.0)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        if self._wait(seconds):
            return
        self._send(200, _simple_page("Slow page", f"This page took {seconds:g} seconds to answer."))

    def _test_slow_image(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=HANGING_IMAGE_DEFAULT_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        if self._wait(seconds):
            return
        image = _read_site_file(SITE_ROOT / "static" / "img" / "bench-figure.png")
        self._send(200, image, "image/png", {"Cache-Control": "no-store"})

    def _test_redirect_chain(self, query: dict[str, list[str]]) -> None:
        raw = query.get("n", ["3"])[0]
        if not raw.isdigit():
            self._bad_request("n must be a non-negative integer")
            return
        n = min(int(raw), MAX_REDIRECT_CHAIN)
        if n > 0:
            self._redirect(f"/test/redirect-chain?n={n - 1}")
        else:
            self._send(200, _simple_page("Redirect chain complete", "The end of the redirect chain."))

    def _test_never_finishes(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=MAX_DELAY_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        # No Content-Length: the body is delimited by closing the connection,
        # which is the only way a server can leave a response open-ended
        # without chunked encoding.
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", HTML_TYPE)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self._head:
            return
        self.wfile.write(_NEVER_FINISHES_HEAD)
        self.wfile.flush()
        if not self._wait(seconds):
            self.wfile.write(_NEVER_FINISHES_TAIL)

    def _test_hanging_subresource(self, query: dict[str, list[str]]) -> None:
        seconds = _parse_seconds(query, default=HANGING_IMAGE_DEFAULT_SECONDS)
        if seconds is None:
            self._bad_request("seconds must be a number")
            return
        body = (
            '<div class="page single"><main>'
            '<h1 class="headline">Page with a hanging subresource</h1>'
            "<p>The document itself loads at once; the image below takes "
            f"{seconds:g} seconds, so the network never goes idle before then.</p>"
            f'<img src="/test/slow-image?seconds={seconds:g}" width="320" height="180" alt="Slow image">'
            "<p>Text after the image.</p>"
            "</main></div>"
        )
        self._send(200, _page("Hanging subresource", body))

    def _test_pages(self, n_text: str) -> None:
        # Digits only, no leading zeros: one canonical URL per page.
        if not n_text.isdigit() or n_text.startswith("0"):
            self._not_found()
            return
        n = int(n_text)
        if not 1 <= n <= BENCH_PAGE_COUNT:
            self._not_found()
            return
        self._send(200, _bench_page(n))

    def _test_cross_site_frame(self, query: dict[str, list[str]]) -> None:
        # "localhost" and "127.0.0.1" are different sites to Chromium, so this iframe is cross-site
        # (an out-of-process frame under site isolation) while still served by this same server.
        port = self.server.server_address[1]
        body = (
            '<div class="page single"><main><h1 class="headline">Cross-site embed</h1>'
            f'<iframe src="http://localhost:{port}/embed/periscope-card.html" width="500" height="260"></iframe>'
            "</main></div>"
        )
        self._send(200, _page("Cross-site embed", body))

    def _test_document(self, query: dict[str, list[str]]) -> None:
        # The PDF at a URL with no telling extension, as document servers often do:
        # only the response's Content-Type says it is not a web page.
        pdf = _read_site_file(SITE_ROOT / "docs" / "icrc-statement.pdf")
        self._send(200, pdf, "application/pdf", {"Content-Disposition": 'inline; filename="statement.pdf"'})

    def _test_plain(self, query: dict[str, list[str]]) -> None:
        text = (
            "Plain text test file for the archiver.\n"
            "Aleppo, 16 December 2016: the evacuation convoy was turned back.\n"
            "Non-ASCII check: café, Zürich, ç, ©, « ».\n"
        )
        self._send(200, text.encode("utf-8"), "text/plain; charset=utf-8")


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


class DemoServer:
    """A running demo server; use as a context manager or call :meth:`stop`."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._stopped = False
        host, port = httpd.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self.url: str = f"http://{url_host}:{self.port}"
        self.article_url: str = self.url + ARTICLE_PATH
        # Shared with the handler threads, which increment under a lock.
        self.hits: dict[str, int] = httpd.hits

    def reset_hits(self) -> None:
        """Forget all counted requests (e.g. between test phases)."""
        with self._httpd.hits_lock:
            self.hits.clear()

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close client sockets."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.drop_connections()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<DemoServer {self.url}>"


def start(host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> DemoServer:
    """Start serving in a daemon thread; returns once the socket is listening."""
    # The constructor binds and listens, so connections made right after this
    # returns are queued even before serve_forever() runs.
    httpd = _Server((host, port), verbose)
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.05},  # short, so stop() returns quickly
        name=f"demo-server-{httpd.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return DemoServer(httpd, thread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the archiver demo news site on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: types.FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = start(args.host, args.port, verbose=args.verbose)
    print(f"serving {server.url}", flush=True)
    try:
        # wait() with a timeout keeps the main thread responsive to signals.
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
