"""The workbench's ASGI application: routes gathered from the route modules, templates, static files, and the
auth layer around all of it.

To add a module: give it a ``routes`` list (Starlette ``Route``s) and name it in ``ROUTE_MODULES``; its templates
``{% extends "base.html" %}`` and fill ``title``, ``content`` (and ``head``/``scripts`` for a stylesheet or a script
of its own from /static/); its routes call ``auth.require(request, role[, form])`` and read ``request.state`` as
archiver/web/auth.py documents. Every answer gets the strict CSP and the other security headers on the way out.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from archiver.errors import ArchiverError
from archiver.store.archive import Archive
from archiver.web import common
from archiver.web.auth import Authenticator, AuthMiddleware, Denied
from archiver.web.downloads import record_access
from archiver.web.media import media_routes
from archiver.web.replay import Grants, ReplayFence, frame_src

HERE = Path(__file__).parent
# The route modules, in order (the first route matching a path answers it).
ROUTE_MODULES = ["archiver.web.pages", "archiver.web.downloads", "archiver.web.api", "archiver.web.monitor",
                 "archiver.web.submitting", "archiver.web.received"]


def templates() -> Jinja2Templates:
    # Autoescape for every template whatever its name: every value from archived content is hostile.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             )
    return Jinja2Templates(env=env, context_processors=[_context])


def _context(request: Any) -> dict[str, Any]:
    state = request.state
    return {"who": getattr(state, "identity", None), "role": getattr(state, "role", None),
            "csrf": getattr(state, "csrf_token", None), "via": getattr(state, "via", None)}


def gather_routes(modules: list[str]) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in modules:
        routes += importlib.import_module(name).routes
    return routes


@dataclass
class Replay:
    """Where archived pages replay (web/replay.py: another origin, a subdomain of the workbench's) and the grants
    the workbench hands each replay iframe."""
    origin: str
    grants: Grants
    workbench_origin: str   # the workbench's own origin, the only one the replay may be framed by


def _media_witness(index: Any, request: Any, capture: Any, record: Any) -> None:
    """The ledger entry of a record's first playing by an identity (web/media.py calls it once per identity)."""
    record_access(index, request, "media", capture_id=capture["id"], url=record["uri"], record=record["seq"],
                  payload_digest=record.get("payload_digest"))


class ViewersOnly:
    """An ASGI app (the media endpoint, mounted under /media) answered only to a viewer or better: it reads the
    role AuthMiddleware put on the request, as every route's ``auth.require`` does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not (scope.get("state") or {}).get("role"):
            await PlainTextResponse("a token is needed: log in at /login", 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(archive: Archive, loopback_bind: bool, modules: list[str] | None = None,
               replay: Replay | None = None, secure: bool = False) -> Any:
    """The workbench on ``archive``. ``loopback_bind``: whether the server listens on loopback only (then a local
    browser needs no token). ``replay``: where captures replay (None: no replay, the capture page says why).
    ``secure``: served as https (behind a TLS proxy): Secure, __Host- session cookies."""
    routes = gather_routes(modules or ROUTE_MODULES)
    # The media endpoint reads through one index of its own, shared by its requests under a lock (web/media.py).
    media_index = archive.index()
    routes.append(Mount("/media", app=ViewersOnly(Router(routes=media_routes(archive, media_index, _media_witness))),
                        name="media"))
    routes.append(Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"))
    authenticator = Authenticator(archive.path, loopback_bind, secure)
    app = Starlette(routes=routes, middleware=[Middleware(AuthMiddleware, authenticator=authenticator,
                                                          frame_src=frame_src(replay.origin) if replay else None)],
                    exception_handlers={Denied: common.on_denied, ArchiverError: common.on_user_error})
    app.state.archive = archive
    app.state.templates = templates()
    app.state.auth = authenticator
    app.state.replay = replay
    app.state.media_index = media_index
    # Requests from the replay's site never reach the workbench (web/replay.py's ReplayFence).
    return ReplayFence(app, replay.origin) if replay else app
