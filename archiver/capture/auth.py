"""Per-site credentials: logged-in capture that never leaks them.

Settings name a site and where its login comes from (config/default.toml, ``[auth]``)::

    [auth."x.com"]
    cookies = "/secure/x-cookies.txt"      # a Netscape cookies.txt (what browser extensions and yt-dlp export)
    label = "@newsdesk_research"           # the account, as provenance names it

    [auth."instagram.com"]
    profile = "/secure/chromium-ig"        # or: a Chromium profile directory that is logged in
    label = "newsdesk.research"

A capture whose URL's host is the site or one of its subdomains is made logged in; any other capture is not.
Within a logged-in capture the credentials go to the site's own hosts (the site and its subdomains) and to no
other: not to embedded third parties, not to a host a redirect leads to. Each fetcher gets them its own way,
from this module: Chromium as cookies of its fresh context (``playwright_cookies``; a profile is opened as a
persistent context, browser.py), httpx as a Cookie header added per request for the site's hosts only
(``cookie_header``), yt-dlp as a cookie file holding the site's cookies only (``write_cookie_file``).

Secrets never reach the evidence: request records carry no Cookie or Authorization value (store/warc.py
redacts them, and names what it redacted), Set-Cookie answers that would hand the session back carry no value
for the credential's cookie names (``secret_names``), and provenance says "authenticated as <label>" with the
SHA-256 of the credential file (``provenance``), never its content.

The credentials of the capture being made are this module's ``current()``: the worker sets them for the capture
(``using``) and every fetcher reads them, so no capture module's signature carries a secret around (a context
variable, which asyncio tasks and ``asyncio.to_thread`` inherit). Nothing here imports more than the standard
library: settings are checked with it (config.py) by every command.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from archiver.errors import ConfigError

# The keys a site's table may hold; exactly one of cookies/profile, and a label.
SITE_KEYS = ("cookies", "profile", "label")
# A site is a host name: letters, digits, hyphens, dots (no scheme, port or path).
_SITE = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
# Where a Chromium profile keeps its cookie database (Chromium 96+ moved it under Network/).
PROFILE_COOKIE_FILES = ("Default/Network/Cookies", "Default/Cookies", "Network/Cookies", "Cookies")
# The prefix curl and browser exporters give a cookies.txt line of an HttpOnly cookie.
HTTP_ONLY_PREFIX = "#HttpOnly_"
# What a copy of a profile leaves out: caches, which are large and hold no login.
PROFILE_SKIP = ("Cache", "Code Cache", "GPUCache", "GrShaderCache", "ShaderCache", "CacheStorage", "Crashpad",
                "component_crx_cache", "Singleton*")


class CredentialError(ConfigError):
    """A site's credentials cannot be used: a missing or unreadable file, no cookie for the site, ..."""


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str
    domain: str          # without a leading dot
    host_only: bool      # sent to ``domain`` itself only (cookies.txt flag FALSE), else to its subdomains too
    path: str
    secure: bool
    http_only: bool
    expires: int | None  # Unix time; None: a session cookie

    def sent_to(self, host: str, path: str, https: bool) -> bool:
        """Whether a browser would send this cookie with a request to ``host``/``path`` (RFC 6265 5.4)."""
        host = host.lower().rstrip(".")
        if self.host_only:
            if host != self.domain:
                return False
        elif not _within(host, self.domain):
            return False
        if self.secure and not https:
            return False
        if not (path == self.path or path.startswith(self.path.rstrip("/") + "/") or self.path == "/"):
            return False
        return self.expires is None or self.expires > time.time()


@dataclass(frozen=True)
class SiteAuth:
    """The credentials of one site, read for one capture."""

    site: str
    label: str
    kind: str                 # "cookies" (a cookies.txt) or "profile" (a Chromium profile directory)
    source: Path              # the cookies.txt, or the profile directory
    credential_file: Path     # the file hashed for provenance: the cookies.txt, or the profile's cookie database
    sha256: str
    cookies: tuple[Cookie, ...]

    def covers(self, host: str | None) -> bool:
        """Whether ``host`` is the site or one of its subdomains: the only hosts the credentials go to."""
        return bool(host) and _within(host.lower().rstrip("."), self.site)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.cookies)

    @property
    def secret_values(self) -> frozenset[str]:
        return frozenset(c.value for c in self.cookies if c.value)


def _within(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


# ---- settings ------------------------------------------------------------------------------------------------

def check_table(sites: Any, source: str, base: Path | None) -> dict[str, dict[str, str]]:
    """The ``[auth]`` table of one settings file, checked for shape: {site: {cookies|profile, label}}. Relative
    paths are made absolute from ``base`` (the directory of the file that gave them), since a relative path in
    the archive's archiver.toml means one beside it whatever directory a command runs from."""
    if not isinstance(sites, dict):
        raise ConfigError(f"{source}: [auth] must hold one table per site, e.g. [auth.\"x.com\"]")
    out: dict[str, dict[str, str]] = {}
    for site, table in sites.items():
        where = f'[auth."{site}"] in {source}'
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table with cookies = \"FILE\" or profile = \"DIR\", and label")
        if not _SITE.fullmatch(site):
            raise ConfigError(f"{where}: the site must be a host name such as \"x.com\" (no scheme, port or path)")
        unknown = sorted(set(table) - set(SITE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(SITE_KEYS)})")
        for key, value in table.items():
            if not isinstance(value, str):
                raise ConfigError(f"setting auth.\"{site}\".{key} in {source} must be a string, got {value!r}")
        entry = dict(table)
        for key in ("cookies", "profile"):
            if entry.get(key) and base is not None and not Path(entry[key]).expanduser().is_absolute():
                entry[key] = str(base / entry[key])
        out[site] = entry
    return out


def check_settings(sites: dict[str, dict[str, str]]) -> None:
    """Every site's credentials can be used: one source, a label, a file that is there and holds cookies for the
    site. Raises CredentialError (one line, naming the site) otherwise; never says anything of the secrets."""
    for site in sites:
        load_site(site, sites[site])


def load_site(site: str, entry: dict[str, str]) -> SiteAuth:
    """Read ``site``'s credentials from its settings entry."""
    where = f'[auth."{site}"]'
    cookies_file, profile = entry.get("cookies", "").strip(), entry.get("profile", "").strip()
    label = entry.get("label", "").strip()
    if cookies_file and profile:
        raise CredentialError(f"{where} has both cookies and profile: give one")
    if not cookies_file and not profile:
        raise CredentialError(f"{where} needs cookies = \"FILE\" (a Netscape cookies.txt) or profile = \"DIR\" "
                              f"(a Chromium profile directory)")
    if not label:
        raise CredentialError(f"{where} needs a label naming the account (provenance says \"authenticated as "
                              f"<label>\")")
    if cookies_file:
        path = Path(cookies_file).expanduser()
        cookies = read_cookies_txt(path, where)
        kind, credential_file = "cookies", path
    else:
        path = Path(profile).expanduser()
        credential_file = profile_cookie_file(path, where)
        cookies = None   # read when a capture needs them (read_profile_cookies): that takes yt-dlp's reader
        kind = "profile"
    try:
        digest = hashlib.sha256(credential_file.read_bytes()).hexdigest()
    except OSError as exc:
        raise CredentialError(f"{where}: cannot read {credential_file}: {exc.strerror or exc}") from None
    if cookies is not None:
        cookies = tuple(c for c in cookies if _within(c.domain, site))
        if not cookies:
            raise CredentialError(f"{where}: {path} holds no cookie for {site} or its subdomains")
    return SiteAuth(site=site, label=label, kind=kind, source=path, credential_file=credential_file,
                    sha256=digest, cookies=cookies or ())


def read_cookies_txt(path: Path, where: str) -> list[Cookie]:
    """The cookies of a Netscape cookies.txt (expired ones left out). CredentialError for a missing, unreadable
    or malformed file; the error names the line, never its content (which is a secret)."""
    if not path.is_file():
        raise CredentialError(f"{where}: cookies file not found: {path}")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"{where}: cannot read cookies file {path}: "
                              f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    now = time.time()
    cookies = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith(HTTP_ONLY_PREFIX)
        if http_only:
            line = line[len(HTTP_ONLY_PREFIX):]
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) == 6:
            fields.append("")   # a cookie without a value, as some exporters write it
        if (len(fields) != 7 or fields[1].upper() not in ("TRUE", "FALSE") or fields[3].upper() not in ("TRUE", "FALSE")
                or not re.fullmatch(r"-?\d+(\.\d+)?", fields[4].strip() or "0") or not fields[0] or not fields[5]):
            raise CredentialError(f"{where}: {path} is not a Netscape cookies.txt (line {number}: want 7 tab-separated "
                                  f"fields: domain, subdomains TRUE/FALSE, path, secure TRUE/FALSE, expiry, name, "
                                  f"value)")
        domain, subdomains, cookie_path, secure, expires, name, value = fields
        expiry = int(float(expires.strip() or 0)) or None
        if expiry is not None and expiry <= now:
            continue
        cookies.append(Cookie(name=name, value=value, domain=domain.lstrip(".").lower(),
                              host_only=subdomains.upper() == "FALSE" and not domain.startswith("."),
                              path=cookie_path or "/", secure=secure.upper() == "TRUE", http_only=http_only,
                              expires=expiry))
    return cookies


def profile_cookie_file(profile: Path, where: str) -> Path:
    """The cookie database of a Chromium profile directory (the user data directory, or a profile inside it)."""
    if not profile.is_dir():
        raise CredentialError(f"{where}: profile directory not found: {profile}")
    for name in PROFILE_COOKIE_FILES:
        if (profile / name).is_file():
            return profile / name
    raise CredentialError(f"{where}: {profile} is not a Chromium profile (no Cookies database in it: open it once "
                          f"with chromium --user-data-dir={profile} --password-store=basic and log in)")


def read_profile_cookies(auth: SiteAuth) -> SiteAuth:
    """``auth`` with the cookies of its profile for its site, read from the profile's cookie database (decrypted
    as Chromium itself does; yt-dlp's reader, which knows every version of that database)."""
    if auth.kind != "profile" or auth.cookies:
        return auth
    from yt_dlp.cookies import extract_cookies_from_browser  # late: only a profile's captures need it
    from yt_dlp.utils import YoutubeDLError

    class _Quiet:
        def debug(self, message: str) -> None: ...
        def info(self, message: str) -> None: ...
        def warning(self, message: str, only_once: bool = False) -> None: ...
        def error(self, message: str) -> None: ...
        @contextlib.contextmanager
        def progress_bar(self) -> Iterator[Any]:
            class _Bar:
                def print(self, message: str) -> None: ...
            yield _Bar()

    try:
        jar = extract_cookies_from_browser("chromium", str(auth.source), _Quiet())
    except (YoutubeDLError, OSError, ValueError) as exc:
        raise CredentialError(f'[auth."{auth.site}"]: cannot read the cookies of profile {auth.source}: {exc}') \
            from None
    now = time.time()
    cookies = tuple(Cookie(name=c.name, value=c.value or "", domain=c.domain.lstrip(".").lower(),
                           host_only=not c.domain.startswith("."), path=c.path or "/", secure=bool(c.secure),
                           http_only=bool(c.has_nonstandard_attr("HttpOnly")), expires=_unix_time(c.expires))
                    for c in jar if _within(c.domain.lstrip(".").lower(), auth.site))
    cookies = tuple(c for c in cookies if c.expires is None or c.expires > now)
    if not cookies:
        raise CredentialError(f'[auth."{auth.site}"]: profile {auth.source} holds no cookie for {auth.site} (is it '
                              f'logged in? Made with --password-store=basic?)')
    return SiteAuth(**{**auth.__dict__, "cookies": cookies})


def _unix_time(expires: int | None) -> int | None:
    """A cookie's expiry as Unix time: Chromium's database counts microseconds since 1601 (which yt-dlp's reader
    passes on as they are), a cookies.txt seconds since 1970."""
    if not expires:
        return None
    if expires > 10 ** 12:
        return int(expires / 1_000_000 - 11_644_473_600)
    return int(expires)


def for_url(sites: dict[str, dict[str, str]], url: str) -> SiteAuth | None:
    """The credentials a capture of ``url`` is made with: those of the most specific site covering its host."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    matches = sorted((s for s in sites if _within(host, s)), key=len, reverse=True)
    return load_site(matches[0], sites[matches[0]]) if matches else None


# ---- the capture being made ----------------------------------------------------------------------------------

_CURRENT: contextvars.ContextVar[SiteAuth | None] = contextvars.ContextVar("archiver_site_auth", default=None)


def current() -> SiteAuth | None:
    """The credentials of the capture being made in this task (None: logged out)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(auth: SiteAuth | None) -> Iterator[SiteAuth | None]:
    """Make ``auth`` the credentials of what runs inside (a capture); None: logged out."""
    token = _CURRENT.set(auth)
    try:
        yield auth
    finally:
        _CURRENT.reset(token)


# ---- what each fetcher gets ----------------------------------------------------------------------------------

def cookie_header(auth: SiteAuth | None, url: str) -> str | None:
    """The Cookie header value for a request to ``url``: the site's cookies a browser would send there; None for
    any host outside the site."""
    if auth is None:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not auth.covers(host):
        return None
    sent = [c for c in read_profile_cookies(auth).cookies
            if c.sent_to(host, parts.path or "/", parts.scheme.lower() == "https")]
    return "; ".join(f"{c.name}={c.value}" for c in sent) or None


def merge_cookie_header(existing: str | None, ours: str) -> str:
    """``ours`` added to a Cookie header the client already made (from cookies the site set during the capture),
    without repeating a name the client already sends: the site's latest value for it wins."""
    if not existing:
        return ours
    have = {part.split("=", 1)[0].strip() for part in existing.split(";")}
    extra = [part.strip() for part in ours.split(";") if part.split("=", 1)[0].strip() not in have]
    return "; ".join([existing.strip(), *extra]) if extra else existing


def without_secrets(auth: SiteAuth, header: str) -> str:
    """A Cookie header without any pair that carries one of the credential's values."""
    values = auth.secret_values
    return "; ".join(p.strip() for p in header.split(";") if p.strip() and p.split("=", 1)[-1].strip() not in values)


# Keys under which a tool's own report (yt-dlp's info JSON: a format's "cookies", its "http_headers") repeats the
# credentials it was given.
SECRET_KEYS = frozenset({"cookie", "cookies", "authorization"})
REDACTED = "[redacted]"   # as store/warc.py writes it in request records


def scrub(value: Any, auth: SiteAuth | None) -> Any:
    """``value`` (decoded JSON) with the credentials taken out: the values of SECRET_KEYS, and any string holding
    one of the credential's cookie values has that value replaced by REDACTED. For what a tool reports of its
    own requests, which becomes evidence (a metadata record): the capture's secrets must not ride in with it."""
    if auth is None:
        return value
    secrets = sorted(auth.secret_values, key=len, reverse=True)

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: (REDACTED if isinstance(k, str) and k.lower() in SECRET_KEYS and isinstance(v, str) and v
                        else clean(v)) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v) for v in item]
        if isinstance(item, str):
            for secret in secrets:
                if secret in item:
                    item = item.replace(secret, REDACTED)
        return item

    return clean(value)


def playwright_cookies(auth: SiteAuth) -> list[dict[str, Any]]:
    """The site's cookies as Playwright's BrowserContext.add_cookies takes them. SameSite=Lax (a cookies.txt does
    not say): a browser then sends them to the site's own pages and requests, never from third-party frames."""
    out = []
    for c in read_profile_cookies(auth).cookies:
        cookie: dict[str, Any] = {"name": c.name, "value": c.value, "path": c.path, "secure": c.secure,
                                  "httpOnly": c.http_only, "sameSite": "Lax", "expires": c.expires or -1}
        if c.host_only:
            # Playwright makes a host-only cookie from a URL and a domain cookie from a domain.
            cookie["url"] = f"{'https' if c.secure else 'http'}://{c.domain}{c.path}"
            del cookie["path"]
        else:
            cookie["domain"] = "." + c.domain
        out.append(cookie)
    return out


def write_cookie_file(auth: SiteAuth, directory: Path) -> Path:
    """A Netscape cookies.txt in ``directory`` holding the site's cookies only, for yt-dlp's ``cookiefile`` (which
    yt-dlp rewrites when it is done: a copy per capture, removed with the capture's temporary directory)."""
    lines = ["# Netscape HTTP Cookie File", "# The credentials of one site for one capture (archiver)."]
    for c in read_profile_cookies(auth).cookies:
        domain = c.domain if c.host_only else "." + c.domain
        if c.http_only:
            domain = "#HttpOnly_" + domain
        lines.append("\t".join([domain, "FALSE" if c.host_only else "TRUE", c.path, "TRUE" if c.secure else "FALSE",
                                str(c.expires or 0), c.name, c.value]))
    path = directory / "site-cookies.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def profile_copy(auth: SiteAuth) -> Iterator[Path]:
    """A private copy of the site's profile directory for one capture's persistent context: the user's profile is
    never written to (Chromium rewrites its files as it runs), a desktop Chromium holding it open is no obstacle,
    and nothing one capture leaves in it (cache, cookies set, storage) reaches the next capture."""
    target = Path(tempfile.mkdtemp(prefix="archiver-profile-"))
    try:
        shutil.copytree(auth.source, target / "profile", ignore=shutil.ignore_patterns(*PROFILE_SKIP),
                        symlinks=True)
        yield target / "profile"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def provenance(auth: SiteAuth) -> dict[str, Any]:
    """What a capture's provenance says of its login: who, for which site, from which credential file (its
    SHA-256, so the file kept by the operator can be shown to be the one used) -- never a secret."""
    return {
        "authenticated_as": auth.label,
        "statement": f"authenticated as {auth.label}",
        "site": auth.site,
        "credentials": auth.kind,
        "credential_file": auth.credential_file.name,
        "credential_sha256": auth.sha256,
        "cookie_names": sorted(auth.secret_names),
        "sent_to": f"{auth.site} and its subdomains only",
    }
