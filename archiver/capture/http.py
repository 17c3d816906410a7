"""Direct HTTP capture with httpx: documents, images, JSON, media — and HTML pages with --no-browser.

The body is recorded exactly as it came over the wire (still gzip'd if the server gzip'd it; httpx's
``aiter_raw`` does not decode), streamed to a temporary file so that a large file never sits in memory.
Each redirect hop is fetched and recorded by us, not followed silently by the client.

Against hostile servers every fetch is bounded: the header block in time (network.header_timeout_seconds) and
size (network.max_header_bytes), the body in bytes (the caller's limit and capture.max_capture_bytes), in time
(capture.timeout_seconds) and in rate (network.min_bytes_per_second), and inflating a compressed body to read
its text stops at capture.max_decoded_bytes. A cut body is recorded as far as it came, marked WARC-Truncated.
"""
from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
import zlib
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc
from archiver.capture import network
from archiver.capture.base import (CaptureResult, DripGuard, SlowDrip, charset_of, header_block_size, header_value,
                                   is_html, status_failure, stored_headers, truncation_class)

TEXT_LIMIT = 5 * 1024 * 1024  # bytes of an HTML/text body we parse for title, text and links
INFLATE_STEP = 64 * 1024      # compressed bytes fed to a decoder at a time (with an output cap per step)
BROTLI_STEP = 16              # brotli has no output cap, and a few input bytes may inflate to megabytes


class TextExtractor(HTMLParser):
    """Title, visible text and links of an HTML document, without a browser."""

    SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self, base_url: str):
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.title = ""
        self.parts: list[str] = []
        self.links: list[dict[str, str]] = []
        self._seen: set[str] = set()
        self._skip = 0
        self._in_title = False
        self._link: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        elif tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base_url = urljoin(self.base_url, href)
        elif tag in ("a", "area"):
            href = dict(attrs).get("href")
            if href:
                url = urljoin(self.base_url, href.strip()).split("#", 1)[0]
                if url.startswith(("http://", "https://")) and url not in self._seen:
                    self._seen.add(url)
                    self._link = {"url": url, "text": ""}
                    self.links.append(self._link)
        if tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag in ("a", "area"):
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)
            if self._link is not None and len(self._link["text"]) < 300:
                self._link["text"] = (self._link["text"] + data).strip()[:300]

    def text(self) -> str:
        joined = "".join(self.parts)
        return "\n".join(line.strip() for line in joined.splitlines() if line.strip())


def _classify_httpx(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectError):
        if "name or service" in text or "nodename" in text or "temporary failure in name" in text:
            return "dns"
        if "ssl" in text or "certificate" in text:
            return "tls"
        return "refused"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.LocalProtocolError)):
        if "receive buffer too long" in text:
            return "too-large"  # h11 refuses a header block over httpcore's 100 KiB
        return "reset" if "disconnected" in text or "closed" in text else "protocol"
    if isinstance(exc, httpx.ReadError):
        return "reset"
    return "network"


class Inflater:
    """Inflates a compressed body step by step, never producing more than ``cap`` bytes from one step: the
    defence against a small body that inflates to gigabytes. Unknown encodings inflate to nothing."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._zlib: Any = None
        self._brotli: Any = None
        self._started = False  # a step already inflated: a zlib error now is corruption, not raw deflate
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)  # zlib-wrapped, as RFC 9110 says; raw is retried
        elif encoding == "br":
            try:
                import brotli  # optional, as for httpx itself (brotlipy or Google's brotli)
            except ImportError:
                return
            decompressor = brotli.Decompressor()
            self._brotli = getattr(decompressor, "decompress", None) or decompressor.process

    def feed(self, data: bytes, cap: int) -> list[bytes]:
        """Inflate ``data``; once ``cap`` bytes came out the rest is dropped (the caller stops there)."""
        if self._zlib is not None:
            try:
                # With a cap, zlib stops there and leaves the input it did not need in unconsumed_tail.
                piece = self._zlib.decompress(data, cap)
            except zlib.error:
                if self.encoding != "deflate" or self._started:
                    raise
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
                piece = self._zlib.decompress(data, cap)
            self._started = True
            return [piece]
        out: list[bytes] = []
        if self._brotli is not None:
            made = 0
            for i in range(0, len(data), BROTLI_STEP):
                out.append(self._brotli(data[i:i + BROTLI_STEP]))
                made += len(out[-1])
                if made >= cap:
                    break
        return out


def _text_sample(spool: Any, headers: list[tuple[str, str]], keep: int, max_decoded: int) -> tuple[bytes, bool]:
    """The first ``keep`` bytes of a body as text would read it (inflated if it is compressed), and whether it
    inflates to more than ``max_decoded`` bytes. Only for title, text and links: the record keeps the raw bytes.
    Reads the spool from its start, in steps, so neither the raw nor the inflated body is ever held whole."""
    encoding = (header_value(headers, "content-encoding") or "").strip().lower()
    spool.seek(0)
    if encoding in ("", "identity"):
        return spool.read(keep), False
    inflater = Inflater(encoding)
    kept: list[bytes] = []
    kept_len = total = 0
    try:
        while total <= max_decoded and (raw := spool.read(INFLATE_STEP)):
            for piece in inflater.feed(raw, max_decoded + 1 - total):
                total += len(piece)
                if kept_len < keep:
                    kept.append(piece[: keep - kept_len])
                    kept_len += len(kept[-1])
    except Exception:
        pass  # a corrupt or truncated stream: text from what did inflate
    return b"".join(kept), total > max_decoded


async def fetch_chain(client: httpx.AsyncClient, url: str, warc: CaptureWarc, settings: Settings, *,
                      limit: int, deadline: float, follow: bool = True,
                      limit_name: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Fetch ``url`` and every redirect hop after it (only the first when ``follow`` is false), each
    recorded as its own request/response pair. Each body is cut at ``limit`` bytes (the setting named
    ``limit_name``), and all of them together at capture.max_capture_bytes.

    Returns (hops, problem): ``problem`` says why the chain stopped early (a later hop failed). Raises
    CaptureFailed when not even the first response arrived, or on a redirect loop.
    """
    net = settings["network"]
    hops: list[dict[str, Any]] = []
    current = url
    budget = settings["capture"]["max_capture_bytes"]
    for _ in range(net["max_redirects"] + 1):
        spent = sum(h["length"] for h in hops)
        cap, cap_name = (limit, limit_name) if limit <= budget - spent else (budget - spent,
                                                                              "capture.max_capture_bytes")
        try:
            # Private-network targets, this hop's included, are refused by the client itself (guard.py), on
            # the address it connects to.
            result = await _fetch_one(client, current, warc, settings, max(0, cap), cap_name, deadline)
        except CaptureFailed as exc:
            if not hops:
                raise
            if exc.failure_class == "blocked":
                # A redirect into a private network fails the fetch as blocked; it is not a chain cut short.
                raise CaptureFailed("blocked", f"redirect from {hops[-1]['url']}: {exc.message}",
                                    retryable=False) from None
            return hops, f"redirect to {current} failed: {exc.message}"
        hops.append(result)
        location = header_value(result["headers"], "location")
        if follow and 300 <= result["status"] < 400 and location:
            current = urljoin(current, location)
            continue
        return hops, None
    raise CaptureFailed("redirect-loop", f"more than {net['max_redirects']} redirects from {url}")


async def fetch_media(client: httpx.AsyncClient, kind: str, url: str, warc: CaptureWarc, settings: Settings, *,
                      deadline: float) -> tuple[dict[str, Any] | None, str | None]:
    """Fetch one media file of a post into ``warc``, streamed, at most video.max_bytes: (what was recorded, or None
    when nothing answered; the problem to report, or None when the file arrived whole)."""
    try:
        hops, problem = await fetch_chain(client, url, warc, settings, limit=settings["video"]["max_bytes"],
                                          deadline=deadline)
    except CaptureFailed as exc:
        return None, f"{url}: {exc.message}"
    last = hops[-1]
    record = {"kind": kind, "url": url, "status": last["status"], "truncated": last["truncated"]}
    if problem or last["truncated"] or last["status"] >= 400:
        return record, f"{url}: " + (problem or last["truncated_message"] or f"HTTP {last['status']}")
    return record, None


def answer_provenance(answer: dict[str, Any], embed: CaptureResult | None, settings: Settings) -> dict[str, Any]:
    """What provenance says of a platform answer fetched by our own client (``answer``, fetch_chain's last hop) and
    of the embed the browser rendered beside it: where each came from and through what network."""
    return {
        "embed": {"url": embed.final_url, "status": embed.status, "record_id": embed.main_record_id}
        if embed else None,
        "network": network.describe(settings, "http"),
        "embed_network": (embed.details.get("network") if embed else None),
        "main": {"url": answer["url"], "status": answer["status"], "ip": answer["ip"],
                 "protocol": answer["protocol"], "tls": answer["tls"], "certificate_chain_pem": answer["certificate_pem"]},
    }


async def capture_http(url: str, warc: CaptureWarc, settings: Settings) -> CaptureResult:
    """Fetch ``url`` directly, following and recording each redirect hop. Raises CaptureFailed when no
    response at all was recorded."""
    cap = settings["capture"]
    deadline = time.monotonic() + cap["timeout_seconds"]
    async with network.httpx_client(settings) as client:
        hops, truncated_reason = await fetch_chain(client, url, warc, settings, limit=cap["max_download_bytes"],
                                                   deadline=deadline, limit_name="capture.max_download_bytes")
    main_record_id = hops[-1]["record_id"]
    main = hops[-1]
    content_type = header_value(main["headers"], "content-type")
    title = text = None
    outlinks: list[dict[str, str]] = []
    documents: list[tuple[str, str]] = []
    if main["text_sample"] is not None:
        body = main["text_sample"]
        decoded = body.decode(charset_of(content_type, body), errors="replace")
        if is_html(content_type):
            parser = TextExtractor(main["url"])
            parser.feed(decoded)
            parser.close()
            title, text, outlinks = parser.title.strip() or None, parser.text(), parser.links
            documents = [("html", decoded)]
        else:
            text = decoded
    failure_class, failure_message = status_failure(main["status"])
    status = "failed" if failure_class else "ok"
    if status == "ok":
        status, failure_class, failure_message = _incompleteness(main, truncated_reason, cap["max_decoded_bytes"])
    details = {
        "method": "http",
        "redirects": [{"url": h["url"], "status": h["status"], "location": header_value(h["headers"], "location")}
                      for h in hops[:-1]],
        "main": {"url": main["url"], "status": main["status"], "ip": main["ip"], "protocol": main["protocol"],
                 "tls": main["tls"], "certificate_chain_pem": main["certificate_pem"]},
        "exchanges": len(hops),
        "network": network.describe(settings, "http"),
    }
    return CaptureResult(status=status, final_url=main["url"], main_record_id=main_record_id,
                         http_status=main["status"], content_type=content_type, failure_class=failure_class,
                         failure_message=failure_message, title=title, text=text, outlinks=outlinks,
                         details=details, documents=documents)


def _incompleteness(main: dict[str, Any], chain_problem: str | None,
                    max_decoded: int) -> tuple[str, str | None, str | None]:
    """(status, failure class, message) of a capture whose main response was a success: ok, or partial and why."""
    if main["truncated"]:
        return "partial", truncation_class(main["truncated"]), main["truncated_message"]
    if chain_problem:
        return "partial", "timeout", chain_problem
    if main["decoded_over"]:
        # The record holds every byte that came (still compressed, not truncated); what is incomplete is what
        # could be read from it: a decompression bomb is not inflated to find out where it ends.
        return "partial", "too-large", (f"the body inflates to more than capture.max_decoded_bytes ({max_decoded}); "
                                        f"stored whole as received, its text read only that far")
    return "ok", None, None


def _textual(content_type: str | None) -> bool:
    return is_html(content_type) or (content_type or "").startswith("text/")


async def _send_for_headers(client: httpx.AsyncClient, request: httpx.Request, url: str, settings: Settings,
                            deadline: float) -> httpx.Response:
    """Send ``request`` and wait for the whole header block, within network.header_timeout_seconds: a server
    that trickles its headers resets httpx's per-read timeout with every byte and would hold us forever."""
    wait = min(settings["network"]["header_timeout_seconds"], max(0.0, deadline - time.monotonic()))
    try:
        return await asyncio.wait_for(client.send(request, stream=True), wait)
    except asyncio.TimeoutError:
        raise CaptureFailed("timeout", f"no complete response headers from {url} within {wait:g}s "
                                       f"(network.header_timeout_seconds)") from None
    except httpx.HTTPError as exc:
        failure_class = _classify_httpx(exc)
        message = f"{type(exc).__name__}: {exc or 'no answer'} at {url}"
        if failure_class == "too-large":
            message = f"response headers from {url} exceed httpx's ceiling of 100 KiB (network.max_header_bytes)"
        raise CaptureFailed(failure_class, message) from None


def _check_header_size(headers: list[tuple[str, str]], url: str, settings: Settings) -> None:
    size, most = header_block_size(headers), settings["network"]["max_header_bytes"]
    if size > most:
        raise CaptureFailed("too-large", f"response headers from {url} are {size} bytes, more than "
                                         f"network.max_header_bytes ({most})")


async def _read_body(response: httpx.Response, spool: Any, limit: int, limit_name: str | None, deadline: float,
                     guard: DripGuard) -> tuple[str | None, str | None]:
    """Stream the raw body into ``spool``, at most ``limit`` bytes, until ``deadline``, cut off if it drips.
    Returns (WARC-Truncated reason, why) — (None, None) when the whole body arrived."""
    total = 0
    chunks = response.aiter_raw()
    try:
        while True:
            left = deadline - time.monotonic()
            drip_wait = guard.wait_limit()
            if left <= 0:
                return "time", "body still arriving at capture.timeout_seconds"
            try:
                chunk = await asyncio.wait_for(anext(chunks), left if drip_wait is None else min(left, drip_wait))
            except StopAsyncIteration:
                return None, None
            except asyncio.TimeoutError:
                if drip_wait is not None and drip_wait <= left:
                    raise guard.cut_off() from None
                return "time", "body still arriving at capture.timeout_seconds"
            if total + len(chunk) > limit:
                spool.write(chunk[: limit - total])
                return "length", f"body exceeds {limit_name or 'the limit for this fetch'} ({limit} bytes)"
            spool.write(chunk)
            total += len(chunk)
            guard.add(len(chunk))
    except SlowDrip as exc:
        return "time", str(exc)
    except httpx.TimeoutException as exc:
        return "time", f"no bytes for network.timeout_seconds while reading the body ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        # The server stopped mid-body: what arrived is recorded, marked truncated, never passed as whole.
        cause = str(exc) or repr(exc.__cause__ or exc.__context__ or "") or "no detail"
        return "disconnect", f"the connection broke after {total} bytes of the body ({type(exc).__name__}: {cause})"
    finally:
        try:
            await chunks.aclose()
        except Exception:
            pass  # a generator ended by a cancelled read is already closed


async def _fetch_one(client: httpx.AsyncClient, url: str, warc: CaptureWarc, settings: Settings, limit: int,
                     limit_name: str | None, deadline: float) -> dict[str, Any]:
    net = settings["network"]
    request = client.build_request("GET", url)
    sent_at = datetime.now(timezone.utc)
    spool = tempfile.TemporaryFile()
    try:
        response = await _send_for_headers(client, request, url, settings, deadline)
        received_at = datetime.now(timezone.utc)
        try:
            raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
            _check_header_size(raw_headers, url, settings)
            stream = response.extensions.get("network_stream")
            server = stream.get_extra_info("server_addr") if stream else None
            ssl_object: ssl.SSLObject | None = stream.get_extra_info("ssl_object") if stream else None
            truncated, truncated_message = await _read_body(
                response, spool, limit, limit_name, deadline,
                DripGuard(net["min_bytes_per_second"], net["slow_window_seconds"]))
        finally:
            await response.aclose()
        length = spool.tell()
        spool.seek(0)
        tls = certificate_pem = None
        if ssl_object is not None:
            # "TLS 1.3", the form Chromium reports, so that provenance reads the same whichever fetcher ran.
            tls = {"protocol": (ssl_object.version() or "").replace("TLSv", "TLS "),
                   "cipher": (ssl_object.cipher() or [None])[0]}
            der = ssl_object.getpeercert(binary_form=True)
            certificate_pem = ssl.DER_cert_to_PEM_cert(der) if der else None
        protocols = [response.http_version.lower()]
        if tls and tls["protocol"]:
            protocols.append(tls["protocol"].lower().replace(" ", "/"))
        record_id = warc.write_response(url, response.status_code, response.reason_phrase,
                                        stored_headers(raw_headers, length, decoded=False), spool,
                                        date=received_at, ip=server[0] if server else None,
                                        protocols=protocols, truncated=truncated)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        req_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        warc.write_request(url, "GET", target, req_headers, b"", concurrent_to=record_id, date=sent_at)
        spool.seek(0)
        sample = spool.read(TEXT_LIMIT) if length else b""
        text_sample, decoded_over = None, False
        if _textual(header_value(raw_headers, "content-type")):
            text_sample, decoded_over = _text_sample(spool, raw_headers, TEXT_LIMIT,
                                                     settings["capture"]["max_decoded_bytes"])
        return {"url": url, "status": response.status_code, "headers": raw_headers, "record_id": record_id,
                "ip": server[0] if server else None, "protocol": response.http_version.lower(), "tls": tls,
                "certificate_pem": certificate_pem, "truncated": truncated, "truncated_message": truncated_message,
                "length": length, "sample": sample, "text_sample": text_sample, "decoded_over": decoded_over}
    finally:
        spool.close()
