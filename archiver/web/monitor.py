"""The workbench's monitoring pages: an item (one dedup key: a tweet, a video, a page) with its timeline drawn and
the difference between the visible text of any two of its captures, and the dashboard (what we hold that the web
no longer shows or shows changed, the queue and its failures by class, the watches and when they next run).

What they show comes from the services the CLI prints from (store/timeline.py, store/textdiff.py,
store/overview.py); these routes only choose, escape and lay out. The timeline is drawn server-side as SVG
(web/timeline_svg.py: every archived string XML-escaped, no script, links only to this workbench)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archiver.errors import NotFound
from archiver.store import overview, textdiff, timeline
from archiver.urls import BadURL, parse as parse_url
from archiver.web import auth
from archiver.web.api import JSON
from archiver.web.common import BadRequest, archive_of, capture_id, index_of, render
from archiver.web.timeline_svg import timeline_svg

MAX_KEY = 4096


def item_key(request: Request) -> str:
    """The item asked for: ``key=`` (as the index spells it) or ``url=`` (any spelling of it: the same key the queue
    gives it, so a tweet's twitter.com, x.com and mobile URLs open one item)."""
    key, url = request.query_params.get("key"), request.query_params.get("url")
    if key:
        if len(key) > MAX_KEY:
            raise BadRequest("that item key is too long")
        return key
    if url:
        try:
            return parse_url(url).dedup_key
        except BadURL as exc:
            raise BadRequest(f"{url[:200]}: {exc}") from None
    raise BadRequest("say which item: ?url=URL or ?key=KEY")


def item_href(key: str) -> str:
    return "/item?" + urlencode({"key": key})


def _event_href(event: dict[str, Any]) -> str | None:
    if event.get("capture_id"):
        return f"/capture/{event['capture_id']}"
    return f"#ev-{event['anchor']}" if event.get("anchor") else None


def item_data(request: Request, key: str) -> dict[str, Any]:
    with index_of(request) as index:
        found = timeline.item_timeline(index, key)
        captures = index.captures_of_key(key)   # oldest first (IDs are ULIDs)
    if found.empty and not captures:
        raise NotFound(f"no item {key[:200]!r} in this archive (nothing captured, checked or watched under that key)")
    data = found.as_dict()
    data["captures"] = captures
    return data


def item(request: Request) -> Response:
    auth.require(request, "viewer")
    key = item_key(request)
    data = item_data(request, key)
    svg = timeline_svg(data["folded"], href=_event_href, id_prefix="tl-", title=f"Timeline of {key}")
    diff = None
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if a or b:
        diff = _diff(request, a, b)
    elif len(data["captures"]) >= 2:
        a, b = data["captures"][-2]["id"], data["captures"][-1]["id"]   # the newest two, until others are chosen
    return render(request, "item.html", {"key": key, "t": data, "svg": svg, "diff": diff, "a": a, "b": b,
                                         "item_href": item_href(key)})


def _diff(request: Request, a: str | None, b: str | None) -> dict[str, Any]:
    if not a or not b:
        raise BadRequest("choose two captures to compare (a and b)")
    with index_of(request) as index:
        return textdiff.diff_captures(archive_of(request), index, capture_id(a), capture_id(b))


def diff(request: Request) -> Response:
    """The difference between any two captures' visible text (also of two items: a page and its mirror)."""
    auth.require(request, "viewer")
    result = _diff(request, request.query_params.get("a"), request.query_params.get("b"))
    return render(request, "diff.html", {"diff": result})


def dashboard_data(request: Request) -> dict[str, Any]:
    archive = archive_of(request)
    with index_of(request) as index:
        return overview.dashboard(index, archive.settings)


async def dashboard(request: Request) -> Response:
    auth.require(request, "viewer")
    data = await run_in_threadpool(dashboard_data, request)
    return render(request, "dashboard.html", {"d": data, "item_href": item_href})


def api_item(request: Request) -> Response:
    """The item's state, watch and timeline (``events``, and ``folded``: runs of equal checks as one), and its
    captures: ``show <url> --json``'s ``item``, ``watch`` and ``timeline``."""
    auth.require(request, "viewer")
    return JSON(item_data(request, item_key(request)))


def api_diff(request: Request) -> Response:
    """``archiver diff A B --json``."""
    auth.require(request, "viewer")
    return JSON(_diff(request, request.query_params.get("a"), request.query_params.get("b")))


async def api_dashboard(request: Request) -> Response:
    """What the dashboard shows (store/overview.py ``dashboard``)."""
    auth.require(request, "viewer")
    return JSON(await run_in_threadpool(dashboard_data, request))


routes = [
    Route("/api/item", api_item, name="api_item"),
    Route("/api/diff", api_diff, name="api_diff"),
    Route("/api/dashboard", api_dashboard, name="api_dashboard"),
    Route("/item", item, name="item"),
    Route("/diff", diff, name="diff"),
    Route("/dashboard", dashboard, name="dashboard"),
]
