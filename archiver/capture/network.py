"""Network settings every fetcher honours: proxy, extra CA bundle, user agents — for httpx, Chromium and
yt-dlp alike, so that a capture routed through Tor or a newsroom's inspecting proxy is routed the same way
whichever tool fetched it. ``describe`` is what goes into provenance.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
import ssl
import tempfile
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from archiver.config import Settings
from archiver.errors import ConfigError
from archiver.capture import auth, guard

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


@functools.cache
def default_http_user_agent() -> str:
    return f"archiver/{package_version('archiver')} (+evidence capture; httpx/{httpx.__version__})"


def _proxy(settings: Settings) -> str | None:
    proxy = settings["network"]["proxy"].strip()
    if not proxy:
        return None
    scheme = urlsplit(proxy).scheme.lower()
    if scheme not in PROXY_SCHEMES or not urlsplit(proxy).hostname:
        raise ConfigError(f"network.proxy {proxy!r} must be http://, https:// or socks5://host:port")
    return proxy


def _ca_bundle(settings: Settings) -> Path | None:
    bundle = settings["network"]["ca_bundle"].strip()
    if not bundle:
        return None
    path = Path(bundle).expanduser()
    if not path.is_file():
        raise ConfigError(f"network.ca_bundle {bundle!r}: no such file")
    return path


# The last context made, by what it was made from: parsing the system's trust store costs ~0.1 s of CPU, which
# every fetch paid again (most of a --no-browser capture's own time).
_CONTEXT: tuple[tuple[Any, ...], ssl.SSLContext] | None = None


def _file_stamp(path: str | Path | None) -> tuple[Any, ...]:
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino) if st else (str(path),)


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system's trust store plus ``network.ca_bundle`` (a newsroom proxy's CA is added, not substituted).

    Made once and shared by every client of this process (an SSLContext serves any number of connections), and
    made again whenever the bundle or the system's CA file changes (a new path, a rewritten file)."""
    global _CONTEXT
    bundle = _ca_bundle(settings)
    made_from = (_file_stamp(bundle), _file_stamp(ssl.get_default_verify_paths().cafile))
    if _CONTEXT is None or _CONTEXT[0] != made_from:
        context = ssl.create_default_context()
        if bundle:
            context.load_verify_locations(cafile=str(bundle))
        _CONTEXT = (made_from, context)
    return _CONTEXT[1]


def httpx_client(settings: Settings) -> httpx.AsyncClient:
    net = settings["network"]
    proxy = _proxy(settings)
    if proxy and proxy.startswith("socks5h"):
        proxy = "socks5" + proxy[len("socks5h"):]  # httpx resolves through the SOCKS proxy either way
    client = httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(net["timeout_seconds"]),
                               headers={"User-Agent": net["http_user_agent"] or default_http_user_agent()},
                               verify=ssl_context(settings), proxy=proxy)
    site = auth.current()
    if site is not None:
        _send_site_cookies(client, site)
    # Every httpx fetch goes through here, so this is where private-network targets are refused (guard.py).
    return guard.guard_httpx(client, guard.Policy.from_settings(settings))


def _send_site_cookies(client: httpx.AsyncClient, site: auth.SiteAuth) -> None:
    """The capture's site credentials on each request to the site's own hosts, decided per request: redirects are
    fetched one hop at a time (http.fetch_chain), so a hop to another host goes without them."""

    async def add_cookies(request: httpx.Request) -> None:
        ours = auth.cookie_header(site, str(request.url))
        if ours:
            request.headers["Cookie"] = auth.merge_cookie_header(request.headers.get("Cookie"), ours)
        elif "Cookie" in request.headers:
            # A header carried over from another host (a redirect followed by httpx itself): never our secrets.
            kept = auth.without_secrets(site, request.headers["Cookie"])
            if kept:
                request.headers["Cookie"] = kept
            else:
                del request.headers["Cookie"]

    hooks = client.event_hooks
    hooks["request"] = [*hooks.get("request", []), add_cookies]
    client.event_hooks = hooks


def _spki_hashes(bundle: Path) -> list[str]:
    """Base64 SHA-256 of each certificate's SubjectPublicKeyInfo, the form Chromium's SPKI list takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    hashes = []
    for cert in x509.load_pem_x509_certificates(bundle.read_bytes()):
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        hashes.append(base64.b64encode(hashlib.sha256(spki).digest()).decode())
    return hashes


def chromium_args(settings: Settings) -> list[str]:
    """Switches that make Chromium use the proxy and accept chains that include a configured CA.

    Chromium on Linux reads trust from an NSS database, not from a file; accepting certificate chains that
    contain one of the bundle's keys (--ignore-certificate-errors-spki-list) is the file-based equivalent.
    """
    args = []
    proxy = _proxy(settings)
    if proxy:
        args.append(f"--proxy-server={proxy.replace('socks5h://', 'socks5://')}")
        # Resolve names at the proxy too, so a Tor user's DNS does not leak around it.
        args.append("--proxy-bypass-list=<-loopback>")
    bundle = _ca_bundle(settings)
    if bundle:
        args.append(f"--ignore-certificate-errors-spki-list={','.join(_spki_hashes(bundle))}")
    return args


def ytdlp_options(settings: Settings) -> dict[str, Any]:
    """yt-dlp parameters for the same proxy, CA and user agent."""
    net = settings["network"]
    opts: dict[str, Any] = {"socket_timeout": net["timeout_seconds"]}
    proxy = _proxy(settings)
    if proxy:
        opts["proxy"] = proxy
    if net["video_user_agent"]:
        opts["http_headers"] = {"User-Agent": net["video_user_agent"]}
    if _ca_bundle(settings):
        # yt-dlp loads certifi unless told to use the system store, which honours SSL_CERT_FILE (see
        # ytdlp_ca_file); the combined file keeps the system roots and adds the configured CA.
        opts["compat_opts"] = ["no-certifi"]
    return opts


def ytdlp_ca_file(settings: Settings) -> str | None:
    """A PEM file with the system roots plus ``network.ca_bundle``, for yt-dlp (via SSL_CERT_FILE)."""
    bundle = _ca_bundle(settings)
    if bundle is None:
        return None
    system = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    handle, path = tempfile.mkstemp(prefix="archiver-ca-", suffix=".pem")
    with os.fdopen(handle, "wb") as out:
        if system and os.path.isfile(system):
            out.write(Path(system).read_bytes() + b"\n")
        out.write(bundle.read_bytes())
    return path


def describe(settings: Settings, fetcher: str) -> dict[str, Any]:
    """What shaped the network path of a fetch, for provenance."""
    net = settings["network"]
    agents = {"http": net["http_user_agent"] or default_http_user_agent(),
              "browser": net["browser_user_agent"] or "(Chromium default)",
              "video": net["video_user_agent"] or "(yt-dlp default)"}
    bundle = _ca_bundle(settings)
    return {
        "fetcher": fetcher,
        "proxy": _proxy(settings),
        "ca_bundle": str(bundle) if bundle else None,
        "ca_bundle_sha256": hashlib.sha256(bundle.read_bytes()).hexdigest() if bundle else None,
        "user_agent": agents[fetcher],
    }
