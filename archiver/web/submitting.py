"""Submitting from the workbench (a submitter token): paste URLs with tags, a note and who asks, to capture them
or to watch or unwatch them; and the same as JSON under /api/. The same validation as ``archiver add`` /
``watch`` / ``unwatch`` (pipeline/submit.py): one message per bad URL, and nothing queued or watched when any is
bad.

Who asked is the requester typed in the form (by default the identity logged in); when it names someone else, the
job says both, ``"<requester> (via <identity>)"``, so the queue's ``queued`` ledger entry always names the token
that submitted."""
from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.errors import UserError
from archiver.pipeline import submit
from archiver.web import auth
from archiver.web.common import BadRequest, archive_of, render

ACTIONS = ("capture", "watch", "unwatch")
MAX_URLS = 10_000
MAX_FIELD = 2_000
MAX_BODY = 4 << 20


def _requester(identity: str, requester: str) -> str:
    requester = requester.strip()
    if not requester or requester == identity:
        return identity
    return f"{requester} (via {identity})"


def _field(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    value = "" if value is None else str(value)
    if len(value) > MAX_FIELD:
        raise BadRequest(f"{name}: at most {MAX_FIELD} characters")
    return value.strip()


def _tags(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").replace("\n", ",").split(",")
    tags = [str(t).strip() for t in items if str(t).strip()]
    if any(len(t) > 200 for t in tags):
        raise BadRequest("a tag is at most 200 characters")
    return tags


def _urls(value: Any) -> list[str]:
    lines = value if isinstance(value, list) else str(value or "").splitlines()
    found = list(submit.clean_lines(str(v) for v in lines))
    if len(found) > MAX_URLS:
        raise BadRequest(f"at most {MAX_URLS} URLs at a time (use `archiver add -f FILE` for more)")
    return found


def perform(request: Request, values: dict[str, Any]) -> submit.Submitted:
    """The submission in ``values`` (the form's fields, or the JSON body's), done as the CLI would do it."""
    action = _field(values, "action") or "capture"
    if action not in ACTIONS:
        raise BadRequest(f"action {action!r}: one of {', '.join(ACTIONS)}")
    archive = archive_of(request)
    url_list = _urls(values.get("urls"))
    who = _requester(request.state.identity, _field(values, "requester"))
    if action == "unwatch":
        return submit.unwatch(archive, url_list, removed_by=who)
    asked = submit.Request(requested_by=who, tags=_tags(values.get("tags")), note=_field(values, "note") or None,
                           no_browser=_flag(values.get("no_browser")), follow=_flag(values.get("follow")))
    if action == "watch":
        try:
            when = submit.watch_schedule(_field(values, "every") or None, _field(values, "cron") or None,
                                         values.get("check_every") if values.get("check_every") not in (None, "")
                                         else None, archive.settings["watch"]["check_every"])
        except UserError as exc:
            return submit.Submitted(message=str(exc))
        return submit.watch(archive, url_list, when, asked)
    return submit.submit(archive, url_list, asked)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "on", "true", "yes")


async def _body_size_ok(request: Request) -> None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise BadRequest(f"a submission is at most {MAX_BODY >> 20} MB")


async def page(request: Request) -> Response:
    if request.method == "GET":
        auth.require(request, "submitter")
        return render(request, "submit.html", {"values": {"action": request.query_params.get("action", "capture"),
                                                          "requester": request.state.identity}, "result": None})
    await _body_size_ok(request)
    form = await request.form()
    auth.require(request, "submitter", form)
    values = {k: form.get(k) for k in ("action", "urls", "tags", "note", "requester", "every", "cron",
                                        "check_every", "follow", "no_browser")}
    result = await run_in_threadpool(perform, request, values)
    return render(request, "submit.html", {"values": values if not result.ok else
                                           {"action": values["action"], "requester": values["requester"]},
                                           "result": result, "action": values.get("action") or "capture"},
                  status=200 if result.ok else 400)


async def api(request: Request) -> Response:
    """POST /api/submit: a JSON object {action, urls: [...], tags: [...], note, requester, every, cron,
    check_every, follow, no_browser}; answers ``Submitted.as_dict()`` (400 with ``errors`` when nothing was done)."""
    auth.require(request, "submitter")
    await _body_size_ok(request)
    try:
        values = json.loads(await request.body())
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(values, dict):
        raise BadRequest("the body must be a JSON object")
    result = await run_in_threadpool(perform, request, values)
    return JSONResponse(result.as_dict(), status_code=200 if result.ok else 400)


routes = [
    Route("/submit", page, methods=["GET", "POST"], name="submit"),
    Route("/api/submit", api, methods=["POST"], name="api_submit"),
]
