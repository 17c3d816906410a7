"""The archived video (or any record's payload) served to the workbench's pages, with byte ranges, so a
``<video>`` element plays it and seeks in it.

Interface, for the workbench app (archiver/web/app.py) to mount::

    from archiver.web.media import media_routes, media_url, playable_records
    routes = [..., Mount("/media", routes=media_routes(archive, index))]
    # on a capture page: one <video src="{{ media_url(c.id, r.seq) }}"> per record of playable_records(records)

``media_routes(archive, index, witness)`` gives one route, ``GET|HEAD /{capture_id}/{seq}``: the payload of record ``seq``
of that capture's sealed WARC -- a ``resource`` record (yt-dlp's file, merged or remuxed, as capture/video.py
writes it) or a ``response`` record (a video fetched as one HTTP stream, a tweet's MP4) -- read through the
capture's store (a local directory or S3, store/payload.py), streamed, never held in memory whole.

What reaches a file: only a capture the index holds, named by its exact ID (26 Crockford base32 characters, not
a prefix or URL), and a record the index lists for it (type response or resource). The WARC's place comes from
the index row, never from the request; so no request names a path.

Responses: 200 (whole), 206 + Content-Range (one range; archiver/web/ranges.py), 416 + ``Content-Range: bytes
*/size``; Accept-Ranges, Content-Length, the record's own Content-Type (a value that is not a media type becomes
application/octet-stream), an ETag (the payload digest the index holds), ``X-Content-Type-Options: nosniff``,
``Cache-Control: private``. Archived bytes are hostile: anything not a known audio, video or raster image type is
also sent with ``Content-Security-Policy: sandbox; default-src 'none'`` and as an attachment, so opening it never
runs it in the workbench's origin. 404 for an unknown capture or record, 409 when the sealed bytes are not as the
index says (missing, altered: run ``archiver verify``).

Custody: the first time an identity (from an address) is served a record, ``witness(index, request, capture,
record)`` is called under the index lock, and the app writes an ``accessed`` ledger entry (what=media) with it; a
player's later range requests for the same record are not entered again (a video is dozens of them), for the life
of the serving process. An entry that cannot be written refuses the media (500): nothing is handed out unrecorded.

Memory and time (store/payload.py): a range is streamed from the store in 256 KiB pieces, never held whole. A
video's record is stored blocks (gzip level 0), walked by their headers with checkpoints kept in memory, so the
first seek near the end of a video costs one pass and later ones one read; measured for the last MiB of a 1 GiB
body: on a local file 0.12 s then 0.4 ms, peak RSS +0.5 MiB; on S3 (moto behind the test proxy) 5.0 s then 0.6 s,
+28 MiB (the S3 client, the same at 256 MiB). Other records are inflated from their start. No decompressed copy
is cached on disk: the checkpoints made it needless. The index lookups are serialized by a lock (the index's
connection is shared with the app).
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Iterator, Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from archiver.errors import NotFound
from archiver.store.payload import Unreadable, open_payload
from archiver.web.ranges import ranged_response

__all__ = ["media_routes", "media_url", "playable_records", "is_media_type", "exact_capture", "CAPTURE_ID",
           "SECURITY_HEADERS", "SANDBOX_CSP"]

CAPTURE_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "private, max-age=0"}
SANDBOX_CSP = "sandbox; default-src 'none'"
# What a browser renders as a media element or an image and nothing else (no SVG, no HTML, no XML).
_MEDIA_TYPE = re.compile(r"(video|audio)/[a-z0-9][a-z0-9.+-]*|image/(png|jpeg|gif|webp|avif)")
_ANY_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
SERVED_TYPES = ("response", "resource")


def media_url(capture_id: str, seq: int, prefix: str = "/media") -> str:
    """Where the workbench serves record ``seq`` of a capture (with the Mount prefix it chose)."""
    return f"{prefix}/{capture_id}/{int(seq)}"


def is_media_type(content_type: str | None) -> bool:
    return bool(content_type) and bool(_MEDIA_TYPE.fullmatch(_bare(content_type)))


def playable_records(records: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of a capture (``Index.capture_records``) a ``<video>``/``<audio>`` element can be given: audio
    and video payloads of response (status 200) and resource records, in WARC order."""
    return [r for r in records if r["type"] in SERVED_TYPES and _bare(r.get("content_type") or "")
            .startswith(("video/", "audio/")) and r.get("http_status") in (None, 200)]


Witness = Callable[[Any, Request, Mapping[str, Any], Mapping[str, Any]], Any]


def media_routes(archive: Any, index: Any, witness: Witness | None = None) -> list[Route]:
    """The media endpoint's routes, to mount under a prefix (``media_url``'s). ``archive``: the opened
    ``Archive``; ``index``: its opened index (shared with the app; lookups here hold a lock); ``witness``: records
    the first access of each identity to each record (see the module's docstring)."""
    lock = threading.Lock()
    witnessed: set[tuple[Any, ...]] = set()

    def witness_once(request: Request, capture: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        state = request.state
        seen = (getattr(state, "identity", None), getattr(state, "client", None), capture["id"], record["seq"])
        with lock:
            if seen in witnessed:
                return
            witness(index, request, capture, record)
            witnessed.add(seen)

    def lookup(capture_id: str, seq: int) -> tuple[dict[str, Any], dict[str, Any]]:
        capture = exact_capture(index, capture_id, lock)
        with lock:
            records = index.capture_records(capture_id)
        record = next((r for r in records if r["seq"] == seq), None)
        if record is None or record["type"] not in SERVED_TYPES:
            raise NotFound(f"capture {capture_id} has no response or resource record {seq}")
        return capture, record

    def serve(request: Request) -> Response:
        try:
            capture, record = lookup(request.path_params["capture_id"], request.path_params["seq"])
        except NotFound as exc:
            return _plain(str(exc), 404)
        try:
            payload = open_payload(archive, capture, record)
        except Unreadable as exc:
            return _plain(f"the archived record cannot be served: {exc} (run archiver verify)", 409)
        if witness is not None:
            witness_once(request, capture, record)
        content_type = _bare(payload.content_type or "")
        headers = dict(SECURITY_HEADERS)
        if not _ANY_TYPE.fullmatch(content_type):
            content_type = "application/octet-stream"
        headers["Content-Type"] = content_type
        if not is_media_type(content_type):
            headers["Content-Security-Policy"] = SANDBOX_CSP
            headers["Content-Disposition"] = "attachment"
        if record.get("payload_digest"):
            headers["ETag"] = f'"{record["payload_digest"]}"'

        def read(first: int, last: int) -> Iterator[bytes]:
            try:
                yield from payload.read(first, last)
            except Unreadable:
                # Headers are gone already; ending the body short makes the client see a broken transfer.
                return

        return ranged_response(request.headers.get("range"), payload.length, read, headers, method=request.method,
                               if_range=request.headers.get("if-range"))

    return [Route("/{capture_id}/{seq:int}", serve, methods=["GET", "HEAD"], name="media")]


def exact_capture(index: Any, capture_id: str, lock: threading.Lock) -> dict[str, Any]:
    """The index row of the capture with exactly this ID (not a prefix or a URL, which ``find_capture`` also
    takes), looked up under ``lock``; NotFound otherwise. What keeps a request from naming anything but a capture
    the index holds: the WARC's place then comes from this row."""
    if not CAPTURE_ID.fullmatch(capture_id):
        raise NotFound(f"{capture_id!r} is not a capture ID")
    with lock:
        capture = index.find_capture(capture_id)
    if capture["id"] != capture_id:
        raise NotFound(f"no capture {capture_id}")
    return capture


def _bare(content_type: str) -> str:
    """``video/mp4; codecs=...`` -> ``video/mp4`` (lower case, no parameters)."""
    return content_type.split(";", 1)[0].strip().lower()


def _plain(text: str, status: int) -> Response:
    return PlainTextResponse(text, status, headers={**SECURITY_HEADERS, "Content-Security-Policy": SANDBOX_CSP})
