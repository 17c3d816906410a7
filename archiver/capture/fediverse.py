"""Mastodon and the fediverse: a status as its instance's API gives it, in one WARC.

- ``/api/v1/statuses/<id>`` as received (the JSON the instance's own web app reads; no login needed for a public
  status), and ``/api/v1/statuses/<id>/history`` when the status says it was edited;
- its media at original size (each attachment's ``url``, not the preview), its quoted status's too;
- its public page rendered in the browser for a screenshot: the ``/embed`` view for a status of the instance's own
  users, the web page for one the instance shows from elsewhere (an instance embeds only its own users' statuses).

The key is ``fedi:<host>/<id>``: a status id is the instance's own, so the host is part of it (the same post seen on
two instances has two ids). Unavailability is a finding: Mastodon answers 404 "Record not found" for a status that
was deleted, never existed, is not public or whose author is suspended; the account lookup then tells a suspension
apart, as the API says it (``"suspended": true``). A 410 is a deletion the server states. An answer that is not
Mastodon's (an HTML page from a host that only looks like an instance, a 5xx, an empty body) is never a deletion and
never ok.
"""
from __future__ import annotations

import io
import json
import time
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from archiver import urls
from archiver.capture import network, platforms
from archiver.capture.base import CaptureResult, header_value
from archiver.capture.fingerprint import post_fingerprint
from archiver.capture.http import TEXT_LIMIT, _text_sample, fetch_chain
from archiver.config import Settings
from archiver.errors import BadURL, CaptureFailed
from archiver.store.warc import CaptureWarc

if TYPE_CHECKING:  # liveness loads yt-dlp: a capture does not need it
    from archiver.capture.liveness import CheckResult

PLATFORM = "fedi"
# What the instance says, as failure classes: each is in store/items.GONE_CLASSES.
UNAVAILABLE = {"not-found", "deleted", "suspended"}
# An instance that lets no one read its API without logging in (authorized-fetch / limited-federation mode).
LOGIN_REQUIRED = "login-required"
# An answer that is not a Mastodon API answer at all: the host may not be an instance.
NOT_FEDIVERSE = "not-fediverse"


class BadItem(CaptureFailed):
    """A ``fedi:`` key whose id part is not ``<host>/<status id>``."""

    def __init__(self, item_id: str) -> None:
        super().__init__("unsupported-platform", f"{item_id!r} is not <host>/<status id>", retryable=False)


def split_item(item_id: str) -> tuple[str, str]:
    """(host, status id) of a key's id part."""
    host, _, status_id = item_id.rpartition("/")
    if not host or "/" in host or not status_id.isdigit():
        raise BadItem(item_id)
    return host, status_id


def api_url(host: str, status_id: str, what: str = "") -> str:
    return f"https://{host}/api/v1/statuses/{status_id}{what}"


# --- reading answers ---------------------------------------------------------------------------------------

def _json(body: bytes, content_type: str | None) -> Any:
    """The JSON of a body, or None when it is none (HTML, empty, undecodable)."""
    if not body.strip() or (content_type or "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None


def is_status(data: Any) -> bool:
    """Whether ``data`` has the shape of a Mastodon Status entity (what /api/v1/statuses/<id> answers)."""
    return (isinstance(data, dict) and isinstance(data.get("id"), str) and isinstance(data.get("account"), dict)
            and isinstance(data.get("content"), str) and isinstance(data.get("created_at"), str))


def classify_answer(status: int, body: bytes, content_type: str | None) -> tuple[str, dict[str, Any] | None, str]:
    """(availability, status JSON or None, human message) for one /api/v1/statuses/<id> answer."""
    data = _json(body, content_type)
    error = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), str) else None
    kind = content_type or "no content type"
    if status == 200:
        if is_status(data):
            return "available", data, "available"
        if data is None:
            return NOT_FEDIVERSE, None, f"the answer is not Mastodon's JSON ({kind}): the host may not be an instance"
        return "unknown-answer", None, "the answer has no status in it (not taken for a deletion)"
    if status == 404 and error is not None:
        # Mastodon's one answer for deleted, never posted, not public and suspended-author statuses alike.
        return "not-found", None, f"the instance answered 404 {error!r}: deleted, never public, or hidden"
    if status == 410 and (error is not None or not body.strip()):
        return "deleted", None, f"the instance answered 410 Gone{f' ({error!r})' if error else ''}: deleted"
    if status in (401, 403) and error is not None:
        return LOGIN_REQUIRED, None, f"the instance answered {status} {error!r}: its API needs a logged-in account"
    if status in (404, 410) or (400 <= status < 500 and status != 429 and data is None):
        # A 404 page that is not Mastodon's JSON says nothing about the status: the host may not be an instance.
        return NOT_FEDIVERSE, None, f"HTTP {status} that is not a Mastodon answer ({kind})"
    return "unknown-answer", None, f"the instance answered HTTP {status}" + (f" ({error!r})" if error else "")


def classify_account(status: int, body: bytes, content_type: str | None) -> str | None:
    """From /api/v1/accounts/lookup: "suspended" when the API says the account is, else None."""
    data = _json(body, content_type)
    if status == 200 and isinstance(data, dict) and data.get("suspended") is True:
        return "suspended"
    return None


class _Text(HTMLParser):
    """Plain text of a status's HTML content: paragraphs as blank lines, <br> as a line break, links in full (the
    "invisible" spans Mastodon hides a long link's middle in are part of its text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def content_text(content: str) -> str:
    parser = _Text()
    try:
        parser.feed(content or "")
        parser.close()
    except (AssertionError, ValueError):  # markup the parser gives up on: what it read
        pass
    return "".join(parser.parts).strip()


def _str(value: Any) -> str | None:
    """A field the index stores as text: a string, or None for anything else a hostile server sends there."""
    return value if isinstance(value, str) and value else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _local_id(host: str, value: Any) -> str | None:
    return f"{host}/{value}" if isinstance(value, (str, int)) and str(value).isdigit() else None


def handle(account: dict[str, Any], host: str) -> str | None:
    """``user@host`` for an account: ``acct`` is bare for the instance's own users."""
    acct = _str(account.get("acct")) or _str(account.get("username"))
    if acct is None:
        return None
    return acct if "@" in acct else f"{acct}@{host}"


def media_urls(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, URL) of each attachment at original size: ``url`` (the instance's copy), else the origin's
    ``remote_url`` (a remote attachment the instance has not cached); never the preview."""
    out: list[tuple[str, str]] = []
    for item in _list(data.get("media_attachments")):
        if not isinstance(item, dict):
            continue
        target = item.get("url") or item.get("remote_url")
        if isinstance(target, str) and target.startswith(("https://", "http://")):
            out.append((str(item.get("type") or "unknown"), target))
    return out


def _quoted(data: dict[str, Any]) -> dict[str, Any] | None:
    quoted = _dict(data.get("quote")).get("quoted_status")
    return quoted if is_status(quoted) else None


def status_fingerprint(data: dict[str, Any]) -> str:
    """What a reader sees: content warning, text, poll options, media and the quoted status's words; no counts."""
    shown = data["reblog"] if is_status(data.get("reblog")) else data
    poll = _dict(shown.get("poll"))
    parts = [_str(shown.get("spoiler_text")) or "", content_text(shown["content"]),
             *[str(o.get("title") or "") for o in _list(poll.get("options")) if isinstance(o, dict)]]
    quoted = _quoted(shown)
    if quoted:
        parts.append("--quoted--\n" + content_text(quoted["content"]))
    media = []
    for _, url in media_urls(shown):
        split = urlsplit(url)
        media.append(f"{split.netloc.lower()}{split.path}")
    return post_fingerprint(PLATFORM, "\n".join(parts), media)


def describe_status(data: dict[str, Any], host: str) -> dict[str, Any]:
    """The indexed facts of a status answer (the posts row's fields) and Mastodon's own beside them. ``data`` passed
    is_status; every other field is checked for its type, as a hostile server may send anything there."""
    shown = data["reblog"] if is_status(data.get("reblog")) else data
    account = data["account"]
    spoiler = _str(shown.get("spoiler_text"))
    text = content_text(shown["content"])
    poll = shown.get("poll") if isinstance(shown.get("poll"), dict) else None
    if poll:
        text += "\n" + "\n".join(f"[poll] {o.get('title')}" for o in _list(poll.get("options")) if isinstance(o, dict))
    quoted = _quoted(shown)
    media = [m for m in _list(shown.get("media_attachments")) if isinstance(m, dict)]
    return {
        "platform": PLATFORM,
        "status_id": data["id"],
        "host": host,
        "author": handle(account, host),
        "author_name": _str(account.get("display_name")),
        "text": (f"CW: {spoiler}\n" if spoiler else "") + text.strip(),
        "posted_at": data["created_at"],
        "edited_at": _str(shown.get("edited_at")),
        "lang": _str(shown.get("language")),
        "media_count": len(media),
        "reply_to": _local_id(host, shown.get("in_reply_to_id")),
        "quoted": _local_id(host, quoted["id"]) if quoted else None,
        "url": _str(shown.get("url")) or _str(shown.get("uri")),
        # Mastodon's own.
        "uri": _str(shown.get("uri")),
        "visibility": _str(data.get("visibility")),
        "sensitive": shown.get("sensitive") if isinstance(shown.get("sensitive"), bool) else None,
        "spoiler_text": spoiler,
        "reblog_of": _local_id(host, shown["id"]) if shown is not data else None,
        "account": {k: account.get(k) for k in ("id", "username", "acct", "url", "bot", "locked", "created_at")
                    if k in account},
        "media": [{k: m.get(k) for k in ("id", "type", "url", "remote_url", "description") if k in m} for m in media],
        "card": shown.get("card") if isinstance(shown.get("card"), dict) else None,
        "poll": poll,
        "quoted_status": {"id": quoted["id"], "author": handle(_dict(quoted.get("account")), host),
                          "url": _str(quoted.get("url")), "text": content_text(quoted["content"])} if quoted else None,
        "tags": [t.get("name") for t in _list(shown.get("tags")) if isinstance(t, dict)],
        "mentions": [m.get("acct") for m in _list(shown.get("mentions")) if isinstance(m, dict)],
        "counts": {k: data.get(k) for k in ("replies_count", "reblogs_count", "favourites_count", "quotes_count")
                   if isinstance(data.get(k), int)},
    }


def describe_history(data: Any) -> list[dict[str, Any]] | None:
    """Each version of an edited status (/history: oldest first), or None when the answer is no such list."""
    if not isinstance(data, list) or not all(isinstance(v, dict) for v in data):
        return None
    return [{"created_at": _str(v.get("created_at")), "spoiler_text": _str(v.get("spoiler_text")),
             "text": content_text(_str(v.get("content")) or ""), "sensitive": v.get("sensitive") is True,
             "media_count": len(_list(v.get("media_attachments"))),
             "poll_options": [o.get("title") for o in _list(_dict(v.get("poll")).get("options"))
                              if isinstance(o, dict)] or None} for v in data]


def _body(hop: dict[str, Any], settings: Settings) -> bytes:
    """A recorded answer's body as JSON is read: inflated when the server compressed it (the record keeps it raw)."""
    raw = hop["sample"] or b""
    decoded, _ = _text_sample(io.BytesIO(raw), hop["headers"], TEXT_LIMIT, settings["capture"]["max_decoded_bytes"])
    return decoded


# --- capture -----------------------------------------------------------------------------------------------

def _user_of(url: str, host: str) -> str | None:
    """The account a status URL names on ``host`` (``user`` or ``user@domain``), for the suspension lookup."""
    try:
        parsed = urls.parse(url)
    except BadURL:
        return None
    split = urlsplit(parsed.canonical_url)
    path = split.path
    if (split.hostname or "") != host:
        return None
    if path.startswith("/@"):
        return path[2:].split("/", 1)[0] or None
    if path.startswith("/users/"):
        return path[len("/users/"):].split("/", 1)[0] or None
    return None


def page_url(host: str, status_id: str, author: str | None) -> str:
    """The public view to render: the embed for the instance's own user's status, the web page otherwise."""
    if author and author.endswith(f"@{host}"):
        return f"https://{host}/@{author.rsplit('@', 1)[0]}/{status_id}/embed"
    if author:
        return f"https://{host}/@{author}/{status_id}"
    return f"https://{host}/web/statuses/{status_id}"


async def capture(item_id: str, url: str, warc: CaptureWarc, settings: Settings, browser: Any) -> CaptureResult:
    """Capture the status ``item_id`` (``<host>/<status id>``); ``browser`` renders its public page (None: none)."""
    host, status_id = split_item(item_id)
    deadline = time.monotonic() + settings["capture"]["timeout_seconds"]
    problems: list[str] = []
    media_records: list[dict[str, Any]] = []
    info: dict[str, Any] = {"platform": PLATFORM, "id": item_id}
    history = None
    verdict = None
    async with network.httpx_client(settings) as client:
        hops, problem = await fetch_chain(client, api_url(host, status_id), warc, settings,
                                          limit=settings["capture"]["max_resource_bytes"], deadline=deadline)
        if problem:
            problems.append(problem)
        answer = hops[-1]
        availability, data, message = classify_answer(answer["status"], _body(answer, settings),
                                                      header_value(answer["headers"], "content-type"))
        if data is not None:
            verdict = platforms.judge_own(platforms.BY_NAME["fediverse"], status_id, str(data.get("id")),
                                          "status answer")
        if verdict is not None and not verdict.ok:
            # Another status's answer: recorded as received, neither described nor its media fetched as this one.
            availability, message = "unknown-answer", verdict.message or ""
            info["answer_id"] = verdict.item_id
        elif availability == "available" and data is not None:
            info.update(describe_status(data, host))
            info["fingerprint"] = status_fingerprint(data)
            if info.get("edited_at"):
                history = await _history(client, host, status_id, warc, settings, deadline, problems)
            shown = data["reblog"] if is_status(data.get("reblog")) else data
            quoted = _quoted(shown)
            to_fetch = media_urls(shown) + (media_urls(quoted) if quoted else [])
            for kind, media_url in dict((u, (k, u)) for k, u in to_fetch).values():
                media_records.append(await _media(client, kind, media_url, warc, settings, deadline, problems))
        elif availability == "not-found":
            user = _user_of(url, host)
            if user:
                availability, message = await _account_state(client, host, user, warc, settings, deadline,
                                                              availability, message, problems)
    info.update(availability=availability, message=message, api_url=answer["url"])
    info["media"] = info.get("media") or []
    info["media_files"] = media_records
    if history is not None:
        info["edits"] = history

    page = None
    target = page_url(host, status_id, info.get("author")) if availability == "available" else (
        urls.parse(url).canonical_url if _parses(url) else page_url(host, status_id, None))
    if browser is not None:
        try:
            page = await browser.capture(target, warc)
        except CaptureFailed as exc:
            problems.append(f"public page {target}: {exc.message}")
    page_ok = page is not None and page.status == "ok"

    status, failure_class, failure_message = platforms.answer_outcome(
        verdict, availability, UNAVAILABLE | {LOGIN_REQUIRED}, message, problems, page, "public page")
    if failure_class == "unknown-answer" and availability == NOT_FEDIVERSE and page_ok:
        # The page is recorded, but as a page: a host that does not answer as an instance gives no status.
        status, failure_class = "partial", platforms.MISMATCH
        failure_message = f"{host} did not answer as a Mastodon instance ({message}); only its page was captured"

    text = info.get("text") if availability == "available" else message
    title = (f"{info['author']}: {(info.get('text') or '')[:100]}" if availability == "available" and info.get("author")
             else f"Mastodon status {item_id} ({availability})")
    if availability == NOT_FEDIVERSE and page is not None:  # what the host showed, as a page shows it
        title, text = page.title or title, page.text or text
    card = info.get("card") if isinstance(info.get("card"), dict) else {}
    outlinks = [{"url": card["url"], "text": "card"}] if isinstance(card.get("url"), str) else []
    details = {
        "post": info,
        "platform": verdict.as_dict() if verdict is not None else None,
        "problems": problems,
        "page": {"url": page.final_url, "status": page.status, "record_id": page.main_record_id} if page else None,
        "network": network.describe(settings, "http"),
        "page_network": page.details.get("network") if page else None,
        "main": {"url": answer["url"], "status": answer["status"], "ip": answer["ip"], "protocol": answer["protocol"],
                 "tls": answer["tls"], "certificate_chain_pem": answer["certificate_pem"]},
    }
    final = page_url(host, status_id, info.get("author")).removesuffix("/embed")
    return CaptureResult(status=status, final_url=final, main_record_id=answer["record_id"],
                         http_status=answer["status"], content_type=header_value(answer["headers"], "content-type"),
                         failure_class=failure_class, failure_message=failure_message, title=title, text=text,
                         outlinks=outlinks, details=details,
                         documents=page.documents if page is not None and availability == NOT_FEDIVERSE else [])


def _parses(url: str) -> bool:
    try:
        urls.parse(url)
        return True
    except BadURL:
        return False


async def _history(client: Any, host: str, status_id: str, warc: CaptureWarc, settings: Settings, deadline: float,
                   problems: list[str]) -> list[dict[str, Any]] | None:
    """Fetch and record the edit history; its versions, or None (and a problem) when it could not be read."""
    target = api_url(host, status_id, "/history")
    try:
        hops, _ = await fetch_chain(client, target, warc, settings, limit=settings["capture"]["max_resource_bytes"],
                                    deadline=deadline)
    except CaptureFailed as exc:
        problems.append(f"edit history {target}: {exc.message}")
        return None
    last = hops[-1]
    versions = describe_history(_json(_body(last, settings), header_value(last["headers"], "content-type")))
    if last["status"] != 200 or versions is None:
        problems.append(f"edit history {target}: HTTP {last['status']}, no list of versions")
        return None
    return versions


async def _media(client: Any, kind: str, media_url: str, warc: CaptureWarc, settings: Settings, deadline: float,
                 problems: list[str]) -> dict[str, Any]:
    try:
        hops, problem = await fetch_chain(client, media_url, warc, settings, limit=settings["video"]["max_bytes"],
                                          deadline=deadline, limit_name="video.max_bytes")
    except CaptureFailed as exc:
        problems.append(f"{media_url}: {exc.message}")
        return {"kind": kind, "url": media_url, "status": None, "truncated": None}
    last = hops[-1]
    if problem or last["truncated"] or last["status"] >= 400:
        problems.append(f"{media_url}: " + (problem or last["truncated_message"] or f"HTTP {last['status']}"))
    return {"kind": kind, "url": media_url, "status": last["status"], "truncated": last["truncated"]}


async def _account_state(client: Any, host: str, user: str, warc: CaptureWarc, settings: Settings, deadline: float,
                         availability: str, message: str, problems: list[str]) -> tuple[str, str]:
    """A 404 for the status, then the author's account as the API sees it: a suspension is told apart."""
    target = f"https://{host}/api/v1/accounts/lookup?acct={quote(user, safe='@')}"
    try:
        hops, _ = await fetch_chain(client, target, warc, settings, limit=settings["capture"]["max_resource_bytes"],
                                    deadline=deadline)
    except CaptureFailed as exc:
        problems.append(f"account lookup {target}: {exc.message}")
        return availability, message
    last = hops[-1]
    if classify_account(last["status"], _body(last, settings), header_value(last["headers"], "content-type")):
        return "suspended", f"the status is not there and the instance says its author {user} is suspended"
    return availability, message


# --- liveness ----------------------------------------------------------------------------------------------

async def check(item_id: str, settings: Settings) -> CheckResult:
    """The status API answer again: available (with the fingerprint), or what the instance says instead. A check
    knows no author, so a suspension shows as not-found here; the capture a disappearance queues tells them apart."""
    from archiver.capture.liveness import CheckResult, _get as bounded_get
    host, status_id = split_item(item_id)
    target = api_url(host, status_id)
    async with network.httpx_client(settings) as client:
        response, body = await bounded_get(client, target, settings)
    availability, data, message = classify_answer(response.status_code, body, response.headers.get("content-type"))
    if availability == "available" and data is not None:
        if str(data.get("id")) != status_id:
            return CheckResult(PLATFORM, "failed", platforms.MISMATCH, response.status_code, target, [], None,
                               f"the status answer is for {data.get('id')}, not the requested {status_id}")
        return CheckResult(PLATFORM, "ok", None, response.status_code, target, [], status_fingerprint(data), message)
    cls = availability if availability in UNAVAILABLE or availability == LOGIN_REQUIRED else "unknown-answer"
    return CheckResult(PLATFORM, "failed", cls, response.status_code, target, [], None, message)
