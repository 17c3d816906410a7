"""The workbench's pages: log in and out, search (the CLI's search and list with filters), one capture (with its
screenshot from the WARC and "verify now")."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from archiver.custody import keys, ledger
from archiver.errors import NotFound
from archiver.store import details, readback
from archiver.web import auth, query
from archiver.web.common import BadRequest, archive_of, capture_id, index_of, render, verified_view
from archiver.web.media import media_url, playable_records
from archiver.web.replay import IFRAME_SANDBOX, iframe_src

IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


# ---- logging in ----------------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (never //elsewhere or a scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_as(request: Request, token: str, next_url: str) -> Response:
    found = request.app.state.auth.check_token(token)
    if found is None:
        return render(request, "login.html", {"message": "that token is not valid", "next": next_url}, status=401)
    sid = request.app.state.auth.new_session(found["name"], found["role"], "session")
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.headers["set-cookie"] = auth.session_cookie(sid, request.app.state.auth.secure)
    return response


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", {"message": None, "next": _safe_next(request.query_params.get("next"))})
    form = await request.form()
    # No session yet, so no CSRF token to check: the origin must be ours (a foreign page must not log a browser in
    # as someone else).
    if not auth.same_origin(request.scope):
        raise auth.Denied(403, "cross-site login refused")
    return _login_as(request, str(form.get("token") or ""), _safe_next(str(form.get("next") or "/")))


async def logout(request: Request) -> Response:
    form = await request.form()
    auth.check_csrf(request, form)
    request.app.state.auth.end_session(getattr(request.state, "session_id", None))
    response = RedirectResponse("/login", status_code=303)
    response.headers["set-cookie"] = auth.session_cookie("", request.app.state.auth.secure, max_age=0)
    return response


# ---- search ----------------------------------------------------------------------------------------------------

def search(request: Request) -> Response:
    token = request.query_params.get("token")
    if token is not None:   # a ?token= link: set the cookie once, and drop the token from the address bar
        return _login_as(request, token, auth.without_token(request.url.path, request.url.query))
    auth.require(request, "viewer")
    filters = query.Filters.from_query(request.query_params)
    with index_of(request) as index:
        page = query.find(archive_of(request), index, filters)
        receipts = query.receipts_of(index, page.rows)
    next_url = ("/?" + urlencode(filters.as_params(before=page.next_before))) if page.next_before else None
    return render(request, "search.html", {"f": filters, "page": page, "next_url": next_url, "receipts": receipts,
                                           "statuses": query.STATUSES, "states": query.STATES})


# ---- one capture -------------------------------------------------------------------------------------------------

def _signature_state(archive: Any, cap: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the provenance record's signature, as sealed in the WARC, holds."""
    sig = next((r for r in records if r["type"] == "metadata" and r["uri"] == f"urn:signature:{cap['id']}"), None)
    prov = next((r for r in records if r["type"] == "metadata" and r["uri"] == f"urn:provenance:{cap['id']}"), None)
    if sig is None or prov is None:
        return {"state": "absent", "detail": "no signature record" if sig is None else "no provenance record"}
    try:
        record = json.loads(readback.record_payload(archive, cap, sig))
        if not isinstance(record, dict):
            raise ValueError("not an object")
        problem = keys.check_signature(record, readback.record_payload(archive, cap, prov))
    except readback.Unreadable as exc:
        return {"state": "unreadable", "detail": str(exc)}
    except ValueError:
        return {"state": "unreadable", "detail": "the signature record is not JSON"}
    return {"state": "holds" if problem is None else "broken", "detail": problem,
            "key": record.get("key_fingerprint")}


def _capture_context(request: Request, ident: str) -> dict[str, Any]:
    archive = archive_of(request)
    with index_of(request) as index:
        cap = index.find_capture(capture_id(ident))
        data = details.capture_details(archive, index, cap)
        entries = ledger.entries(index.conn, capture_id=cap["id"], job_id=cap.get("job_id"))
        playable = playable_records(index.capture_records(cap["id"]))   # with their seq, which media URLs name
    shot = next((r for r in data["records"] if r["type"] == "resource"
                 and (r["uri"] or "").startswith("urn:screenshot:")), None)
    main = (data["provenance"] or {}).get("main") or {}
    for e in entries:
        e["detail"] = json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"]
    replay = request.app.state.replay
    return {"c": data, "main": main, "tls": main.get("tls") or {}, "screenshot": shot is not None,
            "signature": _signature_state(archive, cap, data["records"]),
            "ledger": entries, "warc_at": archive.stored_at(cap), "verify": None,
            # The archived audio and video, played from the WARC with byte ranges (web/media.py).
            "media": [{"src": media_url(cap["id"], r["seq"]), "type": (r["content_type"] or "").split(";")[0],
                       "tag": "audio" if (r["content_type"] or "").startswith("audio/") else "video",
                       "uri": r["uri"]} for r in playable],
            # The archived page, replayed on its own origin in a sandboxed frame (web/replay.py).
            "replay_src": iframe_src(replay.origin, cap["id"], replay.grants, request.state.identity,
                                     request.state.client) if replay else None,
            # Opened by another name than the workbench's origin (127.0.0.1 for archive.localhost), the replay's
            # origin is another site and the browser refuses its service worker: say where it works.
            "replay_elsewhere": (replay.workbench_origin if replay and request.url.netloc !=
                                 replay.workbench_origin.split("//", 1)[1] else None),
            "replay_sandbox": IFRAME_SANDBOX}


def capture(request: Request) -> Response:
    auth.require(request, "viewer")
    return render(request, "capture.html", _capture_context(request, request.path_params["ident"]))


async def verify_now(request: Request) -> Response:
    return await verified_view(request, run_verify, _capture_context, "capture.html")


def run_verify(request: Request, ident: str) -> dict[str, Any]:
    """``archiver verify ID`` for one capture: the report as ``verify --json`` gives it, recorded in the ledger."""
    from archiver.custody.verify import Report, record_verification, verify
    archive = archive_of(request)
    report = Report(keep=100)
    with index_of(request) as index:
        verify(archive.path, index, [ident], settings=archive.settings, report=report)
        record_verification(index, report, [ident])
    return report.as_dict()


def screenshot(request: Request) -> Response:
    """The capture's screenshot, from its urn:screenshot: record in the sealed WARC, checked against its digest."""
    auth.require(request, "viewer")
    archive = archive_of(request)
    with index_of(request) as index:
        cap = index.find_capture(capture_id(request.path_params["ident"]))
        records = index.capture_records(cap["id"])
    row = next((r for r in records if r["type"] == "resource" and (r["uri"] or "").startswith("urn:screenshot:")),
               None)
    if row is None:
        raise NotFound(f"capture {cap['id']} has no screenshot")
    content_type = (row["content_type"] or "").split(";")[0].strip().lower()
    try:
        data = readback.record_payload(archive, cap, row)
    except readback.Unreadable as exc:
        raise BadRequest(f"the screenshot cannot be read back: {exc}") from None
    if content_type not in IMAGE_MAGIC or not data.startswith(IMAGE_MAGIC[content_type]):
        raise BadRequest(f"the screenshot record is not a {content_type or 'typed'} image as declared")
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


routes = [
    Route("/", search, name="search"),
    Route("/login", login, methods=["GET", "POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/capture/{ident}", capture, name="capture"),
    Route("/capture/{ident}/screenshot", screenshot, name="screenshot"),
    Route("/capture/{ident}/verify", verify_now, methods=["POST"], name="verify"),
]
