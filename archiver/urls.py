"""URLs: validate what people paste, normalise it to a canonical form, classify its kind, and guard targets.

The canonical form decides whether two requests are "the same URL" (the queue will not hold it twice);
the URL as given is always kept beside it, because it is part of the provenance.
"""
from __future__ import annotations

import ipaddress
import posixpath
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .errors import BadURL, CaptureFailed

# Query parameters that only say how a reader arrived; they never change what a page shows.
TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid", "rb_clickid",
    "s_cid", "ncid", "cmpid", "spm",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")

# Extensions whose targets are not HTML documents: fetched directly and recorded raw, no browser needed.
FILE_EXTENSIONS = {
    ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".bmp", ".tif", ".tiff", ".ico",
    ".json", ".xml", ".rss", ".atom", ".csv", ".txt", ".zip", ".gz", ".tgz", ".7z", ".rar",
    ".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".wav", ".flac",
    ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".epub",
}

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ParsedURL:
    url: str            # as given (whitespace trimmed)
    canonical_url: str  # normalised
    kind: str           # "page" (rendered in the browser) or "file" (fetched directly)
    key: str            # identity for de-duplication; the canonical URL until platform keys exist

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "canonical_url": self.canonical_url, "kind": self.kind, "key": self.key}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def normalise(url: str) -> str:
    """Canonical form: lowercase scheme and host, no default port, no fragment, no tracking parameters."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{parts.port}"
    if parts.username or parts.password:
        userinfo = quote(parts.username or "", safe="%!$&'()*+,;=")
        if parts.password:
            userinfo += ":" + quote(parts.password, safe="%!$&'()*+,;=")
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    query_pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    # Rebuild the query only when something was dropped, so that unusual but meaningful encodings survive.
    if len(query_pairs) == len(parse_qsl(parts.query, keep_blank_values=True)):
        query = parts.query
    else:
        query = urlencode(query_pairs, doseq=True)
    return urlunsplit((scheme, netloc, path, query, ""))


def classify(canonical_url: str) -> str:
    """The kind of capture a URL needs: "file" for obvious non-HTML targets, otherwise "page"."""
    path = urlsplit(canonical_url).path
    ext = posixpath.splitext(path.lower())[1]
    return "file" if ext in FILE_EXTENSIONS else "page"


def parse(raw: str) -> ParsedURL:
    """Validate one URL as typed or pasted. Raises BadURL with a one-line reason that names it."""
    url = raw.strip()
    if not url:
        raise BadURL("empty URL")
    if any(ch.isspace() for ch in url):
        raise BadURL(f"{url!r}: URL contains whitespace (quote it, or percent-encode spaces as %20)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise BadURL(f"{url!r}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not parts.scheme or "." in parts.scheme:
            raise BadURL(f"{url!r}: not an absolute URL; did you mean https://{url}?")
        raise BadURL(f"{url!r}: only http:// and https:// URLs can be captured (got {parts.scheme}:)")
    if not parts.hostname:
        raise BadURL(f"{url!r}: URL has no host")
    host = parts.hostname
    if not _valid_host(host):
        raise BadURL(f"{url!r}: {host!r} is not a valid host name")
    canonical = normalise(url)
    return ParsedURL(url=url, canonical_url=canonical, kind=classify(canonical), key=canonical)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return all(0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels)


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified)


def check_target(url: str, allow_private: bool) -> list[str]:
    """Resolve the URL's host; refuse private-network targets unless allowed.

    Returns the resolved addresses. Raises CaptureFailed("dns") when the name does not resolve and
    CaptureFailed("blocked") when any address is private, loopback, link-local or multicast.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CaptureFailed("dns", f"cannot resolve {host}: {exc.strerror}") from None
    addresses = sorted({info[4][0] for info in infos})
    if not allow_private:
        bad = [a for a in addresses if _forbidden(a)]
        if bad:
            raise CaptureFailed("blocked", f"{host} resolves to a private/loopback address ({', '.join(bad)}); "
                                           f"set network.allow_private = true to capture it")
    return addresses
