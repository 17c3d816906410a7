"""Evidence leaving the archive through the workbench: a capture's WARC as sealed (streamed from its store), its
capture report (HTML, or PDF printed by the capture's Chromium), and a signed WACZ of a selection. Each hand-out appends an ``accessed`` entry to the custody
ledger before the first byte leaves: who (token name or local user), what (capture, file, hash), from which
address. A WACZ export also appends ``exported``, as ``archiver export`` does."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from archiver.custody import ledger
from archiver.store.archive import warc_key
from archiver.store.index import Index
from archiver.web import auth
from archiver.web.common import BadRequest, archive_of, capture_id, index_of

CHUNK = 1 << 20
MAX_SELECTION = 1000
EXPORTS = "exports/workbench"


def record_access(index: Index, request: Request, what: str, *, capture_id: str | None = None,
                  url: str | None = None, **detail: Any) -> dict[str, Any]:
    """Append an ``accessed`` ledger entry: ``what`` was handed to the identity acting, at its address."""
    state = request.state
    body = {"what": what, "by": state.identity, "role": state.role, "via": state.via, "from": state.client,
            **detail}
    with index.transaction() as conn:
        return ledger.append(conn, "accessed", capture_id=capture_id, url=url, detail=body)


def streamed(stream: Any) -> Iterator[bytes]:
    """A stream of a store, CHUNK bytes at a time, closed at its end (or when the client goes)."""
    try:
        while data := stream.read(CHUNK):
            yield data
    finally:
        stream.close()


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'


def warc(request: Request) -> Response:
    auth.require(request, "viewer")
    archive = archive_of(request)
    with index_of(request) as index:
        cap = index.find_capture(capture_id(request.path_params["ident"]))
        store = archive.store_of(cap)
        stream = store.open(warc_key(cap["warc_path"]), cap.get("warc_version"))
        try:
            record_access(index, request, "warc", capture_id=cap["id"], url=cap["url"],
                          sha256=cap["warc_sha256"], bytes=cap["warc_size"])
        except BaseException:
            stream.close()
            raise
    return StreamingResponse(streamed(stream), media_type="application/warc", headers={
        "Content-Disposition": _attachment(f"{cap['id']}.warc.gz"), "Content-Length": str(cap["warc_size"]),
        "X-WARC-SHA256": cap["warc_sha256"]})


def report(request: Request) -> Response:
    """The capture report (exchange/report.py) as one self-contained HTML file, downloaded."""
    from archiver.exchange.report import CSP as REPORT_CSP, gather, render_html
    auth.require(request, "viewer")
    archive = archive_of(request)
    with index_of(request) as index:
        data = gather(archive, index, capture_id(request.path_params["ident"]))
        body = render_html(data).encode("utf-8")
        record_access(index, request, "report", capture_id=data.capture["id"], url=data.capture["url"],
                      bytes=len(body))
    # The report's own policy (inline styles, a data: screenshot, nothing fetched), should a browser open it.
    return Response(body, media_type="text/html; charset=utf-8", headers={
        "Content-Disposition": _attachment(f"{data.capture['id']}-report.html"), "Content-Security-Policy": REPORT_CSP})


async def report_pdf(request: Request) -> Response:
    """The capture report printed to PDF (A4, every page footed with the capture's ID), as `archiver report --pdf`
    makes it: by the same Chromium captures use, with scripts off and every request refused. Chromium is started
    for this download only, so the workbench itself never loads the capture stack."""
    from archiver.exchange.report import ReportError, gather, render_html, render_pdf, utc
    auth.require(request, "viewer")
    archive = archive_of(request)
    ident = capture_id(request.path_params["ident"])

    def _gather() -> Any:
        with index_of(request) as index:
            return gather(archive, index, ident)
    data = await run_in_threadpool(_gather)
    footer = f"archiver capture report {data.capture['id']}, made {utc(data.made_at)}"
    try:
        body = await render_pdf(render_html(data), archive.settings, footer)
    except ReportError as exc:
        return Response(f"{exc}\n", status_code=503, media_type="text/plain; charset=utf-8")

    def _record() -> None:
        with index_of(request) as index:
            record_access(index, request, "report-pdf", capture_id=data.capture["id"], url=data.capture["url"],
                          bytes=len(body))
    # Recorded before the first byte leaves, as every hand-out is.
    await run_in_threadpool(_record)
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": _attachment(f"{data.capture['id']}-report.pdf")})


async def export(request: Request) -> Response:
    """A signed WACZ of the captures checked on the search page (``id`` fields) or of one capture."""
    form = await request.form()
    auth.require(request, "viewer", form)
    ids = [capture_id(str(v)) for v in form.getlist("id")]
    if not ids:
        raise BadRequest("select at least one capture to export")
    if len(ids) > MAX_SELECTION:
        raise BadRequest(f"at most {MAX_SELECTION} captures in one export (use `archiver export` for more)")
    path, result = await run_in_threadpool(_export, request, sorted(set(ids)))

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while data := fh.read(CHUNK):
                yield data
    return StreamingResponse(chunks(), media_type="application/wacz", headers={
        "Content-Disposition": _attachment(path.name), "Content-Length": str(result.bytes),
        "X-WACZ-SHA256": result.sha256})


def _export(request: Request, ids: list[str]) -> tuple[Any, Any]:
    from archiver.exchange.wacz import export_wacz
    archive = archive_of(request)
    folder = archive.path / EXPORTS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    # Kept where the ``exported`` entry says it is: the ledger never names a file that is not there.
    path = folder / f"{stamp}-{len(ids)}.wacz"
    with index_of(request) as index:
        result = export_wacz(archive.path, archive.settings, index, path, ids=ids,
                             title=f"workbench export of {len(ids)} capture(s) for {request.state.identity}")
        record_access(index, request, "wacz", sha256=result.sha256, bytes=result.bytes, captures=result.captures,
                      exported_entry=result.ledger_seq)
    return path, result


routes = [
    Route("/capture/{ident}/warc", warc, name="warc"),
    Route("/capture/{ident}/report", report, name="report"),
    Route("/capture/{ident}/report.pdf", report_pdf, name="report_pdf"),
    Route("/export", export, methods=["POST"], name="export"),
]
