"""What the workbench's route modules share: the archive, an index per request, templates, and answers to errors.

Routes are plain functions (Starlette runs ``def`` routes in its thread pool, so blocking reads of the index and
the store never stall the server); each opens the index for the request and closes it (``index_of``)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from archiver.errors import NotFound, UserError
from archiver.store.archive import Archive
from archiver.store.index import Index
from archiver.web import auth
from archiver.web.auth import Denied

# A capture ID as the index makes them (a ULID); also the only shape a path parameter may take before it reaches
# the index or a file name.
CAPTURE_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


class BadRequest(UserError):
    """Input the workbench cannot use: answered 400 with its message."""


def archive_of(request: Request) -> Archive:
    return request.app.state.archive


@contextmanager
def index_of(request: Request) -> Iterator[Index]:
    index = archive_of(request).index()
    try:
        yield index
    finally:
        index.close()


def capture_id(value: str) -> str:
    """A path's capture ID, checked: only a full ULID goes further (never a URL, a prefix or a path)."""
    value = value.upper()
    if not CAPTURE_ID.fullmatch(value):
        raise BadRequest(f"{value[:40]!r} is not a capture ID")
    return value


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, {**(context or {})}, status_code=status)


async def verified_view(request: Request, run: Callable[[Request, str], dict[str, Any]],
                        context_of: Callable[[Request, str], dict[str, Any]], template: str,
                        checked: Callable[[str], str] = capture_id) -> Response:
    """A "verify now" button's answer: ``run`` (which verifies the ID in the path, as ``checked`` lets it through,
    and ledgers it) and the view of that ID again (``context_of``), with the outcome as ``verify``. Both block: run
    in the thread pool."""
    form = await request.form()
    auth.require(request, "viewer", form)
    ident = checked(request.path_params["ident"])
    result = await run_in_threadpool(run, request, ident)
    context = await run_in_threadpool(context_of, request, ident)
    context["verify"] = result
    return render(request, template, context)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, message: str) -> Response:
    if wants_json(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)
    if status == 401:
        return render(request, "login.html", {"message": message, "next": _local_next(request)}, status=401)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def _local_next(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def on_denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Denied)
    return error_response(request, exc.status, exc.message)


async def on_user_error(request: Request, exc: Exception) -> Response:
    return error_response(request, 404 if isinstance(exc, NotFound) else 400, str(exc))


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)
