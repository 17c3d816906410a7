"""The JSON API: what ``archiver search|list|show|verify --json`` print, with their field names, under /api/.
Same auth as the pages (Bearer token, or a session cookie with CSRF for POST). Pages of captures carry the next
page's address in a ``Link: <...>; rel="next"`` header (the CLI's ``--before`` cursor)."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.errors import NotFound
from archiver.store import details
from archiver.web import auth, query
from archiver.web.common import BadRequest, archive_of, capture_id, index_of
from archiver.web.pages import run_verify


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        # As the CLI prints it: non-ASCII kept, dates and the like as text.
        return json.dumps(content, ensure_ascii=False, default=str).encode("utf-8")


def _paged(request: Request, filters: query.Filters, rows: list[dict[str, Any]], next_before: str | None) -> Response:
    headers = {}
    if next_before:
        headers["Link"] = f'<{request.url.path}?{urlencode(filters.as_params(before=next_before))}>; rel="next"'
    return JSON(rows, headers=headers)


def search(request: Request) -> Response:
    """``archiver search Q --json`` (with the search page's filters); without ``q``, ``archiver list --json``."""
    auth.require(request, "viewer")
    filters = query.Filters.from_query(request.query_params)
    with index_of(request) as index:
        page = query.find(archive_of(request), index, filters)
    return _paged(request, filters, page.rows, page.next_before)


def list_(request: Request) -> Response:
    """``archiver list --json``; ``state=gone|changed|unreachable|live`` lists items as ``list --gone`` does."""
    auth.require(request, "viewer")
    filters = query.Filters.from_query(request.query_params)
    if filters.q:
        raise BadRequest("list takes no words: use /api/search?q=...")
    if filters.state:
        if filters.before:
            raise BadRequest("before pages captures, not items")
        since = query.parse_day(filters.since, "since") if filters.since else None
        with index_of(request) as index:
            return JSON(index.list_items(state=filters.state, since=since, limit=filters.limit))
    with index_of(request) as index:
        page = query.find(archive_of(request), index, filters)
    return _paged(request, filters, page.rows, page.next_before)


def show(request: Request) -> Response:
    """``archiver show ID --json``."""
    auth.require(request, "viewer")
    ident = capture_id(request.path_params["ident"])
    with index_of(request) as index:
        try:
            cap = index.find_capture(ident)
        except NotFound:
            # A receipt or a received page: what `archiver show ID --json` prints of it.
            from archiver.exchange import received_file
            try:
                return JSON(received_file.shown(*received_file.details(archive_of(request), index, ident)))
            except NotFound:
                pass
            raise
        return JSON(details.capture_details(archive_of(request), index, cap))


async def verify(request: Request) -> Response:
    """``archiver verify ID --json`` for one capture (recorded in the ledger as ``verified``)."""
    form = await request.form() if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")) else None
    auth.require(request, "viewer", form)
    report = await run_in_threadpool(run_verify, request, capture_id(request.path_params["ident"]))
    return JSON(report)   # a check that ran: "ok" says what it found


routes = [
    Route("/api/search", search),
    Route("/api/list", list_),
    Route("/api/show/{ident}", show),
    Route("/api/verify/{ident}", verify, methods=["POST"]),
]
