"""Evidence leaving the archive through the workbench: a capture's WARC as sealed (streamed from its store), a
report (a capture's, or a received file's: HTML, or PDF printed by the capture's Chromium), and a signed WACZ of a
selection of captures and files received from others. Each hand-out appends an ``accessed`` entry to the custody
ledger before the first byte leaves: who (token name or local user), what (capture or receipt, file, hash), from
which address. A WACZ export also appends ``exported``, as ``archiver export`` does."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from archiver.custody import ledger
from archiver.store.archive import Archive, warc_key
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


@dataclass
class Report:
    """A report made for a download: its HTML, the footer every PDF page carries, the name it downloads as, and what
    its ``accessed`` entry names (a capture, or a receipt)."""
    html: str
    footer: str
    name: str
    names: dict[str, Any]


def capture_report(archive: Archive, index: Index, ident: str) -> Report:
    """The capture report (exchange/report.py) of the capture with the path's ID ``ident``."""
    from archiver.exchange.report import gather, render_html, utc
    data = gather(archive, index, capture_id(ident))
    cap = data.capture
    return Report(render_html(data), f"archiver capture report {cap['id']}, made {utc(data.made_at)}",
                  f"{cap['id']}-report", {"capture_id": cap["id"], "url": cap["url"]})


def report_download(request: Request, make: Callable[[Archive, Index, str], Report]) -> Response:
    """A report (``make``: a capture's, a received file's, of the ID in the path, which it checks) as one
    self-contained HTML file, downloaded, ledgered (what=report) before it leaves."""
    from archiver.exchange.report import CSP as REPORT_CSP
    auth.require(request, "viewer")
    archive = archive_of(request)
    with index_of(request) as index:
        made = make(archive, index, request.path_params["ident"])
        body = made.html.encode("utf-8")
        record_access(index, request, "report", bytes=len(body), **made.names)
    # The report's own policy (inline styles, a data: screenshot, nothing fetched), should a browser open it.
    return Response(body, media_type="text/html; charset=utf-8", headers={
        "Content-Disposition": _attachment(f"{made.name}.html"), "Content-Security-Policy": REPORT_CSP})


async def report_pdf_download(request: Request, make: Callable[[Archive, Index, str], Report]) -> Response:
    """A report printed to PDF (A4, every page footed with what it is a report on), as `archiver report --pdf`
    makes it: by the same Chromium captures use, with scripts off and every request refused. Chromium is started
    for this download only, so the workbench itself never loads the capture stack. Ledgered as what=report-pdf."""
    from archiver.exchange.report import ReportError, render_pdf
    auth.require(request, "viewer")
    archive = archive_of(request)

    def _make() -> Report:
        with index_of(request) as index:
            return make(archive, index, request.path_params["ident"])
    made = await run_in_threadpool(_make)
    try:
        body = await render_pdf(made.html, archive.settings, made.footer)
    except ReportError as exc:
        return Response(f"{exc}\n", status_code=503, media_type="text/plain; charset=utf-8")

    def _record() -> None:
        with index_of(request) as index:
            record_access(index, request, "report-pdf", bytes=len(body), **made.names)
    # Recorded before the first byte leaves, as every hand-out is.
    await run_in_threadpool(_record)
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": _attachment(f"{made.name}.pdf")})


def report(request: Request) -> Response:
    return report_download(request, capture_report)


async def report_pdf(request: Request) -> Response:
    return await report_pdf_download(request, capture_report)


async def export(request: Request) -> Response:
    """A signed WACZ of what is checked on the search page (``id`` fields), or of one capture or received file:
    captures' IDs, and receipts' or received pages' IDs (a received page takes its whole file, with its receipt, as
    ``archiver export`` takes them)."""
    form = await request.form()
    auth.require(request, "viewer", form)
    ids = [capture_id(str(v)) for v in form.getlist("id")]
    if not ids:
        raise BadRequest("select at least one capture or received file to export")
    if len(ids) > MAX_SELECTION:
        raise BadRequest(f"at most {MAX_SELECTION} captures or received pages in one export (use `archiver export` "
                         "for more)")
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
                             title=f"workbench export of {len(ids)} checked item(s) for {request.state.identity}")
        record_access(index, request, "wacz", sha256=result.sha256, bytes=result.bytes, captures=result.captures,
                      receipts=result.receipts, exported_entry=result.ledger_seq)
    return path, result


routes = [
    Route("/capture/{ident}/warc", warc, name="warc"),
    Route("/capture/{ident}/report", report, name="report"),
    Route("/capture/{ident}/report.pdf", report_pdf, name="report_pdf"),
    Route("/export", export, methods=["POST"], name="export"),
]
