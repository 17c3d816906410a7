"""Direct HTTP capture with httpx: documents, images, JSON, media — and HTML pages with --no-browser.

The body is recorded exactly as it came over the wire (still gzip'd if the server gzip'd it; httpx's
``aiter_raw`` does not decode), streamed to a temporary file so that a large file never sits in memory.
Each redirect hop is fetched and recorded by us, not followed silently by the client.
"""
from __future__ import annotations

import ssl
import tempfile
import time
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ..config import Settings
from ..errors import CaptureFailed
from ..urls import check_target
from ..warc import CaptureWarc
from . import network
from .base import CaptureResult, charset_of, header_value, is_html, status_failure, stored_headers

TEXT_LIMIT = 5 * 1024 * 1024  # bytes of an HTML/text body we parse for title, text and links


class _TextExtractor(HTMLParser):
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
        return "reset" if "disconnected" in text or "closed" in text else "protocol"
    if isinstance(exc, httpx.ReadError):
        return "reset"
    return "network"


def _decode_body(raw: bytes, headers: list[tuple[str, str]]) -> bytes:
    """The decoded bytes, only for extracting text for search (the record keeps the raw bytes)."""
    encoding = (header_value(headers, "content-encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate", "br", "zstd"):
        decoder = httpx.Response(200, headers={"content-encoding": encoding}, content=raw)
        try:
            return decoder.content
        except httpx.DecodingError:
            return b""
    return raw


async def fetch_chain(client: httpx.AsyncClient, url: str, warc: CaptureWarc, settings: Settings, *,
                      limit: int, deadline: float, follow: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """Fetch ``url`` and every redirect hop after it (only the first when ``follow`` is false), each
    recorded as its own request/response pair.

    Returns (hops, problem): ``problem`` says why the chain stopped early (a later hop failed). Raises
    CaptureFailed when not even the first response arrived, or on a redirect loop.
    """
    net = settings["network"]
    hops: list[dict[str, Any]] = []
    current = url
    for hop in range(net["max_redirects"] + 1):
        try:
            if hop:
                check_target(current, net["allow_private"], via_proxy=bool(net["proxy"]))
            result = await _fetch_one(client, current, warc, limit, deadline)
        except CaptureFailed as exc:
            if not hops:
                raise
            return hops, f"redirect to {current} failed: {exc.message}"
        hops.append(result)
        location = header_value(result["headers"], "location")
        if follow and 300 <= result["status"] < 400 and location:
            current = urljoin(current, location)
            continue
        return hops, None
    raise CaptureFailed("redirect-loop", f"more than {net['max_redirects']} redirects from {url}")


async def capture_http(url: str, warc: CaptureWarc, settings: Settings) -> CaptureResult:
    """Fetch ``url`` directly, following and recording each redirect hop. Raises CaptureFailed when no
    response at all was recorded."""
    cap = settings["capture"]
    deadline = time.monotonic() + cap["timeout_seconds"]
    async with network.httpx_client(settings) as client:
        hops, truncated_reason = await fetch_chain(client, url, warc, settings, limit=cap["max_download_bytes"],
                                                   deadline=deadline)
    main_record_id = hops[-1]["record_id"]
    main = hops[-1]
    content_type = header_value(main["headers"], "content-type")
    title = text = None
    outlinks: list[dict[str, str]] = []
    documents: list[tuple[str, str]] = []
    if main["sample"] is not None and (is_html(content_type) or (content_type or "").startswith("text/")):
        body = _decode_body(main["sample"], main["headers"])
        decoded = body.decode(charset_of(content_type, body), errors="replace")
        if is_html(content_type):
            parser = _TextExtractor(main["url"])
            parser.feed(decoded)
            parser.close()
            title, text, outlinks = parser.title.strip() or None, parser.text(), parser.links
            documents = [("html", decoded)]
        else:
            text = decoded
    failure_class, failure_message = status_failure(main["status"])
    status = "failed" if failure_class else "ok"
    if not failure_class and (main["truncated"] or truncated_reason):
        status = "partial"
        failure_class = "too-large" if main["truncated"] == "length" else "timeout"
        failure_message = main["truncated_message"] or truncated_reason
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


async def _fetch_one(client: httpx.AsyncClient, url: str, warc: CaptureWarc, limit: int,
                     deadline: float) -> dict[str, Any]:
    request = client.build_request("GET", url)
    sent_at = datetime.now(timezone.utc)
    spool = tempfile.TemporaryFile()
    truncated = truncated_message = None
    try:
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise CaptureFailed(_classify_httpx(exc), f"{type(exc).__name__}: {exc or 'no answer'} at {url}") from None
        received_at = datetime.now(timezone.utc)
        try:
            stream = response.extensions.get("network_stream")
            server = stream.get_extra_info("server_addr") if stream else None
            ssl_object: ssl.SSLObject | None = stream.get_extra_info("ssl_object") if stream else None
            total = 0
            try:
                async for chunk in response.aiter_raw():
                    if total + len(chunk) > limit:
                        spool.write(chunk[: limit - total])
                        truncated, truncated_message = "length", f"body exceeds capture.max_download_bytes ({limit})"
                        break
                    spool.write(chunk)
                    total += len(chunk)
                    if time.monotonic() > deadline:
                        truncated, truncated_message = "time", "body still arriving at capture.timeout_seconds"
                        break
            except httpx.HTTPError as exc:
                # The server stopped mid-body: what arrived is recorded, marked truncated, never passed as whole.
                truncated = "disconnect"
                truncated_message = f"{type(exc).__name__} while reading the body: {exc}"
        finally:
            await response.aclose()
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
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
        return {"url": url, "status": response.status_code, "headers": raw_headers, "record_id": record_id,
                "ip": server[0] if server else None, "protocol": response.http_version.lower(), "tls": tls,
                "certificate_pem": certificate_pem, "truncated": truncated, "truncated_message": truncated_message,
                "sample": sample}
    finally:
        spool.close()
