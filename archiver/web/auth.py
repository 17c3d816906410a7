"""Who is asking, and may they: access tokens, browser sessions, CSRF and the security headers of every answer.

Tokens (``archiver token add NAME --role viewer|submitter``) are shown once and kept only as their SHA-256, with
name, role and creation time, in ``<archive>/web-tokens.json`` (mode 0600). A request proves a token with
``Authorization: Bearer <token>`` (scripts, the API) or once through ``/login`` (or ``?token=``), which gives the
browser a session cookie (HttpOnly, SameSite=Strict) instead of keeping the token.

Without a token, only a request from this machine to a server bound to loopback is let in, as a viewer acting as
the local OS user; its ``Host`` must name loopback too, so that a web page on another site that rebinds its own name
to 127.0.0.1 is still a stranger. Anything else without a valid token gets 401. Submitting always needs a token
with the submitter role (403 for a viewer).

State-changing requests (anything but GET/HEAD/OPTIONS) made with a session cookie must carry the session's CSRF
token (form field ``csrf`` or header ``X-CSRF-Token``) and come from this origin (Sec-Fetch-Site, else Origin, else
Referer). A Bearer
request carries no ambient credential a foreign page could borrow, so it needs neither.

What ``AuthMiddleware`` puts on ``request.state`` for every route (the workbench's modules rely on it):

    ``identity``   str | None   who acts: the token's name, or the local OS user; None when not authenticated
    ``role``       str | None   "viewer" or "submitter"; None when not authenticated
    ``via``        str | None   "local" (loopback, no token), "bearer", "session"
    ``csrf_token`` str | None   the value to put in every form's ``csrf`` field (browser sessions only)
    ``client``     str          the peer address, for the ledger ("from which address")

Routes call ``require(request, role)`` (401/403) rather than reading the fields themselves.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import parse_qsl, urlencode

from archiver.errors import UserError

TOKENS_FILE = "web-tokens.json"
ROLES = ("viewer", "submitter")
RANK = {"viewer": 1, "submitter": 2}
SESSION_COOKIE = "archiver_session"
# Served as https (--origin https://...): the cookie is Secure and carries the __Host- prefix, which a browser only
# accepts from this very host with no Domain: the replay's subdomain can neither read nor overwrite it.
SECURE_SESSION_COOKIE = "__Host-archiver_session"
SESSION_SECONDS = 12 * 3600
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin")]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class TokenError(UserError):
    """A token that cannot be added or removed as asked."""


# ---- the token file ----------------------------------------------------------------------------------------

def tokens_path(archive_dir: Path) -> Path:
    return archive_dir / TOKENS_FILE


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(archive_dir: Path) -> list[dict[str, str]]:
    """The tokens configured (name, role, sha256, created); [] when there is no file."""
    path = tokens_path(archive_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise TokenError(f"{path}: cannot read the token file ({exc})") from None
    return [t for t in data.get("tokens", []) if isinstance(t, dict) and t.get("role") in ROLES]


def _save(archive_dir: Path, tokens: list[dict[str, str]]) -> None:
    path = tokens_path(archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    # Created 0600 from the start: the digests are not secrets, but who may do what is nobody else's business.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"tokens": tokens}, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def add_token(archive_dir: Path, name: str, role: str) -> str:
    """Make a token for ``name`` with ``role``; return it (the only time it is seen: only its hash is kept)."""
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r}: use letters, digits and . _ @ - (at most 64)")
    if role not in ROLES:
        raise TokenError(f"--role {role!r}: one of {', '.join(ROLES)}")
    tokens = load_tokens(archive_dir)
    if any(t["name"] == name for t in tokens):
        raise TokenError(f"a token named {name!r} exists; remove it first (`archiver token remove {name}`)")
    token = "arch_" + secrets.token_urlsafe(32)
    tokens.append({"name": name, "role": role, "sha256": digest(token),
                   "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    _save(archive_dir, tokens)
    return token


def remove_token(archive_dir: Path, name: str) -> None:
    tokens = load_tokens(archive_dir)
    kept = [t for t in tokens if t["name"] != name]
    if len(kept) == len(tokens):
        raise TokenError(f"no token named {name!r} (see `archiver token list`)")
    _save(archive_dir, kept)


def is_loopback_host(host: str) -> bool:
    """Whether a bind address (or a Host header's name) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- sessions ------------------------------------------------------------------------------------------------

@dataclass
class Session:
    identity: str
    role: str
    via: str
    csrf: str
    expires: float


class Authenticator:
    """Tokens (re-read when the file changes, so `archiver token remove` takes effect on a running server) and the
    browser sessions this process has handed out (in memory: a restart asks everyone to log in again)."""

    def __init__(self, archive_dir: Path, loopback_bind: bool, secure: bool = False):
        self.archive_dir = archive_dir
        self.loopback_bind = loopback_bind
        self.secure = secure   # served as https (behind a TLS proxy): Secure, __Host- cookies
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._tokens: list[dict[str, str]] = []
        self._stamp: tuple[float, int] | None = None
        self.local_user = _os_user()

    def tokens(self) -> list[dict[str, str]]:
        path = tokens_path(self.archive_dir)
        try:
            st = path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._tokens, self._stamp = (load_tokens(self.archive_dir) if stamp else []), stamp
        return self._tokens

    def check_token(self, token: str) -> dict[str, str] | None:
        wanted = digest(token)
        for t in self.tokens():
            if hmac.compare_digest(t["sha256"], wanted):
                return t
        return None

    def new_session(self, identity: str, role: str, via: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            for old in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[old]
            self._sessions[sid] = Session(identity, role, via, secrets.token_urlsafe(32), now + SESSION_SECONDS)
        return sid

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            found = self._sessions.get(sid)
        if found is None or found.expires < time.time():
            return None
        if found.via == "session" and found.identity not in {t["name"] for t in self.tokens()}:
            return None   # its token was removed meanwhile
        return found

    def end_session(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def local_allowed(self, scope: Scope) -> bool:
        """A request that needs no token: to a loopback-bound server, from loopback, naming loopback in Host."""
        if not self.loopback_bind:
            return False
        client = scope.get("client") or ("", 0)
        host = _header(scope, b"host").rsplit(":", 1)[0] if _header(scope, b"host") else ""
        if host.startswith("[") and not host.endswith("]"):   # "[::1]:8080" split above keeps "[::1]"
            host = _header(scope, b"host")
        return is_loopback_host(client[0] or "") and is_loopback_host(host)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope: Scope, name: str) -> str | None:
    for part in _header(scope, b"cookie").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def cookie_name(secure: bool) -> str:
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


def session_cookie(sid: str, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """The session cookie: host-only (no Domain), HttpOnly, SameSite=Strict; Secure and __Host- under https."""
    return (f"{cookie_name(secure)}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
            + ("; Secure" if secure else ""))


def same_origin(scope: Scope) -> bool:
    """Whether the request comes from a page of this server's own origin. A browser says so in Sec-Fetch-Site;
    under our ``Referrer-Policy: no-referrer`` it sends ``Origin: null`` and no Referer with a form, so Origin and
    Referer are what is checked only where Sec-Fetch-Site is absent (older browsers, other clients). Nothing given:
    not proven."""
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site:
        return fetch_site == "same-origin"
    host = _header(scope, b"host")
    origin = _header(scope, b"origin")
    if not origin or origin == "null":
        referer = _header(scope, b"referer")
        if not referer:
            return False
        origin = "/".join(referer.split("/", 3)[:3])
    scheme = scope.get("scheme", "http")
    return bool(host) and hmac.compare_digest(origin.lower(), f"{scheme}://{host}".lower())


# ---- the middleware ------------------------------------------------------------------------------------------

class AuthMiddleware:
    """Pure ASGI (streamed answers, range reads of video, pass through untouched): sets ``request.state``, adds
    the security headers to every answer, and issues a session to a local browser that has none."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, frame_src: str | None = None):
        self.app = app
        self.auth = authenticator
        # The replay's origin, the one frame the workbench's pages may embed (web/replay.py).
        self.csp = (CSP + f"; frame-src {frame_src}" if frame_src else CSP).encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and await self._token_link(scope, send):
            return
        state = scope.setdefault("state", {})
        client = scope.get("client") or ("", 0)
        state.update(identity=None, role=None, via=None, csrf_token=None, client=client[0] or "")
        set_cookie: str | None = None
        bearer = _header(scope, b"authorization")
        if bearer.lower().startswith("bearer "):
            token = self.auth.check_token(bearer[7:].strip())
            if token is not None:
                state.update(identity=token["name"], role=token["role"], via="bearer")
        else:
            sid = _cookie(scope, cookie_name(self.auth.secure))
            session = self.auth.session(sid)
            if session is None and self.auth.local_allowed(scope):
                sid = self.auth.new_session(self.auth.local_user, "viewer", "local")
                session = self.auth.session(sid)
                set_cookie = session_cookie(sid, self.auth.secure)
            if session is not None:
                state.update(identity=session.identity, role=session.role, via=session.via,
                             csrf_token=session.csrf, session_id=sid)
            elif self.auth.local_allowed(scope):
                state.update(identity=self.auth.local_user, role="viewer", via="local")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp))
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))   # evidence pages stay out of shared caches
                if set_cookie and b"set-cookie" not in names:
                    headers.append((b"set-cookie", set_cookie.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


    async def _token_link(self, scope: Scope, send: Any) -> bool:
        """A link carrying ``?token=`` (any page): a valid token becomes a session cookie and the browser is sent to
        the same page without it, so the token never stays in the address bar or the history. An invalid one goes
        on to the page, which asks for a login as without it."""
        query = scope.get("query_string", b"").decode("latin-1")
        if "token=" not in query:
            return False
        token = dict(parse_qsl(query, keep_blank_values=True)).get("token")
        found = self.auth.check_token(token) if token else None
        if found is None:
            return False
        sid = self.auth.new_session(found["name"], found["role"], "session")
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", without_token(scope["path"], query).encode("latin-1")),
            (b"set-cookie", session_cookie(sid, self.auth.secure).encode()),
            (b"content-length", b"0"), (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"),
            *[h for h in SECURITY_HEADERS if h[0] != b"referrer-policy"]]})
        await send({"type": "http.response.body", "body": b""})
        return True


# ---- what routes call ------------------------------------------------------------------------------------------

class Denied(Exception):
    """401 (not authenticated) or 403 (authenticated, not allowed); the app answers it as JSON or a page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def require(request: Any, role: str = "viewer", form: Any = None) -> str:
    """The identity acting, if it holds ``role`` (or better); raises ``Denied`` (401/403) otherwise. For a
    state-changing request also checks CSRF (``check_csrf``; ``form``: the request's form, already read)."""
    state = request.state
    if not getattr(state, "role", None):
        raise Denied(401, "a token is needed: log in at /login, or send Authorization: Bearer <token>")
    if RANK[state.role] < RANK[role]:
        raise Denied(403, f"this needs a {role} token; {state.identity} holds a {state.role} one")
    if request.method not in SAFE_METHODS:
        check_csrf(request, form)
    return state.identity


def check_csrf(request: Any, form: Any = None) -> None:
    """A state-changing request made on a browser session must come from this origin and carry the session's CSRF
    token (form field ``csrf`` or header ``X-CSRF-Token``). Bearer requests carry no ambient credential."""
    state = request.state
    if state.via == "bearer":
        return
    if not same_origin(request.scope):
        raise Denied(403, "cross-site request refused (Origin/Referer is not this workbench)")
    given = request.headers.get("x-csrf-token") or (form.get("csrf") if form is not None else None) or ""
    if not state.csrf_token or not hmac.compare_digest(str(given), state.csrf_token):
        raise Denied(403, "missing or wrong CSRF token: reload the page and try again")


def without_token(path: str, query: str) -> str:
    """The URL a ``?token=`` link redirects to once its cookie is set: the same, without the token."""
    rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    return path + (("?" + urlencode(rest)) if rest else "")
