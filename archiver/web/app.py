"""The workbench's ASGI application: routes gathered from the route modules, templates, static files, and the
auth layer around all of it.

To add a module: give it a ``routes`` list (Starlette ``Route``s) and name it in ``ROUTE_MODULES``; its templates
``{% extends "base.html" %}`` and fill ``title``, ``content`` (and ``head``/``scripts`` for a stylesheet or a script
of its own from /static/); its routes call ``auth.require(request, role[, form])`` and read ``request.state`` as
archiver/web/auth.py documents. Every answer gets the strict CSP and the other security headers on the way out.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from archiver.errors import ArchiverError
from archiver.store.archive import Archive
from archiver.web import common
from archiver.web.auth import Authenticator, AuthMiddleware, Denied

HERE = Path(__file__).parent
# The route modules, in order (the first route matching a path answers it).
ROUTE_MODULES = ["archiver.web.pages", "archiver.web.downloads", "archiver.web.api", "archiver.web.monitor",
                 "archiver.web.submitting"]


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


def create_app(archive: Archive, loopback_bind: bool, modules: list[str] | None = None) -> Starlette:
    """The workbench on ``archive``. ``loopback_bind``: whether the server listens on loopback only (then a local
    browser needs no token)."""
    routes = gather_routes(modules or ROUTE_MODULES)
    routes.append(Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"))
    authenticator = Authenticator(archive.path, loopback_bind)
    app = Starlette(routes=routes, middleware=[Middleware(AuthMiddleware, authenticator=authenticator)],
                    exception_handlers={Denied: common.on_denied, ArchiverError: common.on_user_error})
    app.state.archive = archive
    app.state.templates = templates()
    app.state.auth = authenticator
    return app
