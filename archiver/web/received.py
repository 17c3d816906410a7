"""The workbench's pages of files received from others (``archiver receive``): a receipt, and a received page,
each at ``/received/{ID}`` -- never shown as a capture of ours: who handed the file over, who took it in and when,
its name, size and SHA-256 as received, what was found in it on receipt, its pages, its screenshots, the received
file to download exactly as received, "verify now" (re-hashed against the receipt), and its replay.

Every hand-out is ledgered as a capture's is (web/downloads.py ``record_access``): the file (what=received), an
image read from it (what=received-image, once per viewer, address and image for the life of the serving process,
as media is), its replay (web/replay.py, once per grant), its report (exchange/report_received.py: HTML, or PDF;
what=report / report-pdf, naming the receipt). Images are read from the file by their place, checked
(exchange/received_file.py), and served as the image type they are, with nosniff and a sandboxing CSP. Video and
audio in it (an attachment, or an MP4 a crawl fetched) are played from the file with byte ranges (web/ranges.py),
streamed, checked as images are, typed from an allow-list (received_file.MEDIA_MAGIC), with the same headers as our
own captures' media (web/media.py); ledgered what=media naming the receipt, once per viewer and record.

Only a receipt's or a received page's exact ID opens any of these (never a prefix or a URL, which ``show`` takes):
anything else is answered 404, as an unknown ID is."""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Iterator, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from archiver.custody import ledger, timestamps
from archiver.errors import NotFound
from archiver.exchange import received_file as kept
from archiver.store import received
from archiver.web import auth
from archiver.store.archive import Archive
from archiver.store.index import Index
from archiver.web.common import CAPTURE_ID, BadRequest, archive_of, index_of, render, verified_view
from archiver.web.downloads import Report, record_access, report_download, report_pdf_download, streamed
from archiver.web.media import SANDBOX_CSP, SECURITY_HEADERS
from archiver.web.ranges import ranged_response
from archiver.web.replay import IFRAME_SANDBOX, received_iframe_src

PAGES_SHOWN = 50
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_witnessed: set[tuple[Any, ...]] = set()
_witness_lock = threading.Lock()
T = TypeVar("T")


def received_id(value: str) -> str:
    """A path's receipt or received page ID: a full ULID, else NotFound (a prefix names nothing here, as an unknown
    ID does not; the 404 page says so rather than "bad request")."""
    ident = value.upper()
    if not CAPTURE_ID.fullmatch(ident):
        raise NotFound(f"no received file or received page {value[:40]!r} (a receipt's or a received page's full "
                       "ID: `archiver list --status received`)")
    return ident


def _found(index: Any, ident: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(receipt, page or None) for a receipt's or a received page's exact ID; NotFound otherwise."""
    ident = received_id(ident)
    held = received.receipt(index, ident)
    if held is not None:
        return held, None
    found = received.receipt_of_page(index, ident)
    if found is None:
        raise NotFound(f"no received file or received page {ident}")
    page, held = found
    return held, page


def _receipt(index: Any, ident: str) -> dict[str, Any]:
    """The receipt with exactly this ID (the file, its images: a receipt's, never a page's); NotFound otherwise."""
    held = received.receipt(index, received_id(ident))
    if held is None:
        raise NotFound(f"no received file {ident.upper()} (a received page's file is at its receipt's ID)")
    return held


def _context(request: Request, ident: str) -> dict[str, Any]:
    from archiver.exchange.receive import location
    archive = archive_of(request)
    with index_of(request) as index:
        held, page = _found(index, ident)
        pages = received.pages_of(index, held["id"], limit=PAGES_SHOWN)
        entries = kept.ledger_of(index, held["id"])
        stamps = timestamps.of_receipt(index.conn, held["id"])
    checks = held["checks"] or {}
    replay = request.app.state.replay
    replay_src = None
    if replay and page is not None:
        replay_src = received_iframe_src(replay.origin, held["id"], page["id"], replay.grants,
                                         request.state.identity, request.state.client)
    return {"r": held, "page": page, "pages": pages, "pages_total": checks.get("pages", len(pages)),
            "checks": checks, "wacz": checks.get("wacz") or {}, "location": location(archive, held),
            "attachments": kept.attachments(held, page), "ledger": entries, "timestamps": stamps, "verify": None,
            "replay_src": replay_src, "replay_sandbox": IFRAME_SANDBOX,
            "replay_elsewhere": (replay.workbench_origin if replay and request.url.netloc !=
                                 replay.workbench_origin.split("//", 1)[1] else None)}


def view(request: Request) -> Response:
    auth.require(request, "viewer")
    return render(request, "received.html", _context(request, request.path_params["ident"]))


def download(request: Request) -> Response:
    """The received file exactly as received, streamed from where it is kept, ledgered before its first byte."""
    auth.require(request, "viewer")
    archive = archive_of(request)
    with index_of(request) as index:
        held = _receipt(index, request.path_params["ident"])
        try:
            stream = kept.open_file(archive, held)
        except kept.Unreadable as exc:
            raise BadRequest(f"the received file cannot be read: {exc} (run archiver verify)") from None
        try:
            record_access(index, request, "received", receipt=held["id"], sha256=held["sha256"], bytes=held["size"],
                          original_name=held["original_name"], received_from=held["received_from"])
        except BaseException:
            stream.close()
            raise
    name = _UNSAFE_NAME.sub("_", held["original_name"]).strip("._")[:120] or f"received.{held['format']}"
    return StreamingResponse(streamed(stream), media_type=kept.media_type(held), headers={
        "Content-Disposition": f'attachment; filename="{held["id"]}-{name}"', "Content-Length": str(held["size"]),
        "X-Received-SHA256": held["sha256"], "Content-Security-Policy": SANDBOX_CSP})


def _handed_out(request: Request, what: str, read: Callable[[Archive, dict[str, Any], int], T],
                size: Callable[[T], int], refused: str) -> tuple[dict[str, Any], int, T]:
    """(receipt, n, what ``read`` gave) for attachment ``n`` of the receipt the path names, read from the file and
    checked (``refused``: the 400's words when it is not as the receipt says); ledgered as ``what`` the first time
    this viewer (from this address) is handed it in the life of the serving process: a player's later range
    requests are not entered again."""
    auth.require(request, "viewer")
    archive = archive_of(request)
    n = request.path_params["n"]
    with index_of(request) as index:
        held = _receipt(index, request.path_params["ident"])
        try:
            got = read(archive, held, n)
        except kept.Unreadable as exc:
            raise BadRequest(f"{refused}: {exc}") from None
        state = request.state
        seen = (archive.path, what, state.identity, state.client, held["id"], n)
        with _witness_lock:
            if seen not in _witnessed:
                found = kept.attachments(held)[n]
                record_access(index, request, what, url=found["uri"], receipt=held["id"], warc=found["warc"],
                              offset=found["offset"], bytes=size(got))
                _witnessed.add(seen)
    return held, n, got


def image(request: Request) -> Response:
    """An image the received file holds (a screenshot a capture tool put in it), read by its place and checked."""
    _, _, (media, data) = _handed_out(request, "received-image", kept.read_image, lambda got: len(got[1]),
                                      "the image cannot be shown")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600",
                                                     "Content-Security-Policy": SANDBOX_CSP})


def media(request: Request) -> Response:
    """A video or an audio the received file holds, read by its place and checked, by byte ranges."""
    held, n, payload = _handed_out(request, "media", kept.open_media, lambda got: got.length,
                                   "the video or audio cannot be played")
    mime = kept.attachments(held)[n]["mime"]   # one of MEDIA_MAGIC's, and what the record declares
    headers = {**SECURITY_HEADERS, "Content-Type": mime, "Content-Security-Policy": SANDBOX_CSP,
               "ETag": f'"{held["sha256"][:32]}-{n}"'}   # a received file never changes

    def read(first: int, last: int) -> Iterator[bytes]:
        try:
            yield from payload.read(first, last)
        except kept.Unreadable:
            return   # headers are gone already: a body ended short is a broken transfer to the player

    return ranged_response(request.headers.get("range"), payload.length, read, headers, method=request.method,
                           if_range=request.headers.get("if-range"))


async def verify_now(request: Request) -> Response:
    """The received file re-hashed against its receipt, now; recorded in the ledger (``verified``)."""
    return await verified_view(request, _verify, _context, "received.html", received_id)


def _verify(request: Request, ident: str) -> dict[str, Any]:
    archive = archive_of(request)
    with index_of(request) as index:
        held, _ = _found(index, ident)
        result = kept.rehash(archive, held)
        with index.transaction() as conn:
            ledger.append(conn, "verified", detail={
                "ok": result["ok"], "receipt": held["id"], "received": 1, "by": request.state.identity,
                "via": request.state.via, "sha256": result.get("sha256"), "bytes": result.get("size"),
                "problems": [] if result["ok"] else [{"problem": result["problem"], "path": result["where"]}]})
    return result


def received_report(archive: Archive, index: Index, ident: str) -> Report:
    """The report on the received file (a receipt's ID) or on one of its pages (a page's ID), headed as received
    from others; its ``accessed`` entry names the receipt (and the page)."""
    from archiver.exchange import report_received
    held, page = _found(index, ident)
    data = report_received.gather(archive, index, page["id"] if page else held["id"])
    names: dict[str, Any] = {"receipt": held["id"], "sha256": held["sha256"]}
    if page is not None:
        names["page"] = page["id"]
    return Report(report_received.render_html(data), data.footer,
                  f"{page['id'] if page else held['id']}-received-report", names)


def report(request: Request) -> Response:
    return report_download(request, received_report)


async def report_pdf(request: Request) -> Response:
    return await report_pdf_download(request, received_report)


routes = [
    Route("/received/{ident}", view, name="received"),
    Route("/received/{ident}/report", report, name="received_report"),
    Route("/received/{ident}/report.pdf", report_pdf, name="received_report_pdf"),
    Route("/received/{ident}/file", download, name="received_file"),
    Route("/received/{ident}/image/{n:int}", image, name="received_image"),
    Route("/received/{ident}/media/{n:int}", media, methods=["GET", "HEAD"], name="received_media"),
    Route("/received/{ident}/verify", verify_now, methods=["POST"], name="received_verify"),
]
