"""The search page's one query: the CLI's ``search`` (full text) or ``list`` (no words), newest first, narrowed by
filters, a page at a time with the CLI's ``--before`` cursor.

The rows come from the same services the CLI uses (``readback.search``, ``received.iter_listed``); the filters the
index cannot apply in those queries (item state, author, captured before, and tag/kind/status on full-text hits)
are applied to the rows as they stream by, looking each capture up by its ID. A rare filter could walk far; a page
stops after ``MAX_SCAN`` rows and says where to go on from (``next_before``), so no request runs away.

The pages of files received from others come among our captures, as in the CLI, with status and kind
``received``: those filters keep only them, any other status or kind only captures; item state and author are our
captures' (a received page has neither), so either leaves received pages out; tag and "since" are their receipt's
(its tags, when it was received), as ``list`` has them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

from archiver.errors import NotFound, UserError
from archiver.store import readback, received
from archiver.store.archive import Archive
from archiver.store.index import Index

PAGE_SIZE = 50
MAX_PAGE = 500
MAX_SCAN = 2000
STATUSES = ("ok", "partial", "failed", received.STATUS)
STATES = ("live", "gone", "changed", "unreachable")


@dataclass
class Filters:
    """One view of the search page; every field is a GET parameter of the same name (a shareable URL)."""
    q: str = ""
    tag: str = ""
    kind: str = ""
    status: str = ""
    state: str = ""
    since: str = ""
    until: str = ""
    author: str = ""
    before: str = ""
    limit: int = PAGE_SIZE

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "Filters":
        """From a query string; a value that cannot be used raises ``UserError`` (a 400 with its message)."""
        values = {f.name: (params.get(f.name) or "").strip() for f in fields(cls) if f.name != "limit"}
        out = cls(**values)
        raw = (params.get("limit") or "").strip()
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
                raise UserError(f"limit {raw!r}: a number from 1 to {MAX_PAGE}")
            out.limit = int(raw)
        if out.status and out.status not in STATUSES:
            raise UserError(f"status {out.status!r}: one of {', '.join(STATUSES)}")
        if out.state and out.state not in STATES:
            raise UserError(f"state {out.state!r}: one of {', '.join(STATES)}")
        out.author = out.author.lstrip("@")
        return out

    def as_params(self, **changes: Any) -> dict[str, str]:
        """The non-empty parameters of this view (with ``changes``), for links to it and its next page."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)} | changes
        return {k: str(v) for k, v in merged.items() if v not in ("", None) and not (k == "limit" and v == PAGE_SIZE)}

    @property
    def narrowing(self) -> bool:
        return any((self.tag, self.kind, self.status, self.state, self.since, self.until, self.author))


@dataclass
class Page:
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_before: str | None = None      # the cursor of the next page, when there may be more
    scanned_out: bool = False           # the page stopped at MAX_SCAN rows looked at, not at its size


def find(archive: Archive, index: Index, filters: Filters) -> Page:
    """One page of captures for ``filters``: search hits (with ``snippet``) when there are words, else the list."""
    since = parse_day(filters.since, "since") if filters.since else None
    until = parse_day(filters.until, "until", end=True) if filters.until else None
    before = index.check_cursor(filters.before) if filters.before else None
    if filters.q:
        rows: Iterator[dict[str, Any]] = readback.search(index, archive, filters.q, before=before, limit=None)
        exact = False
    else:
        rows = received.iter_listed(index, tag=filters.tag or None, kind=filters.kind or None,
                                    status=filters.status or None, since=since, before=before, limit=None)
        exact = True
    page = Page()
    scanned = 0
    receipts: dict[str, dict[str, Any]] = {}
    for row in rows:
        scanned += 1
        if _keep(index, row, filters, since, until, exact, receipts):
            page.rows.append(row)
            if len(page.rows) >= filters.limit:
                page.next_before = row["id"]
                break
        if scanned >= MAX_SCAN:
            page.next_before, page.scanned_out = row["id"], True
            break
    if hasattr(rows, "close"):
        rows.close()   # a streamed cursor is let go at once
    return page


def parse_day(value: str, name: str, end: bool = False) -> str:
    """A date (what a date field sends: 2016-12-16) or an ISO date-time, as the index's fixed-width UTC text. A
    date ``until`` means to the end of that day."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{name} {value!r}: give a date (2016-12-16) or a date-time (2016-12-16T06:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if end and len(value) == 10:
        when += timedelta(days=1) - timedelta(microseconds=1)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def receipts_of(index: Index, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The receipts of the received pages among ``rows`` (search hits name theirs by ``receipt_id``), by ID: what
    the search page says of each (from whom)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        receipt_id = row.get("receipt_id") or (row.get("received") or {}).get("receipt_id")
        if receipt_id and receipt_id not in out:
            out[receipt_id] = received.receipt(index, receipt_id) or {}
    return out


def _keep(index: Index, row: dict[str, Any], f: Filters, since: str | None, until: str | None, exact: bool,
          receipts: dict[str, dict[str, Any]]) -> bool:
    if until and (row["started_at"] or "") > until:
        return False
    if row["status"] == received.STATUS:
        return _keep_received(index, row, f, since, until, exact, receipts)
    if not exact:
        if f.status and row["status"] != f.status:
            return False
        if since and row["started_at"] < since:
            return False
    if not (f.state or f.author or (not exact and (f.tag or f.kind))):
        return True
    try:
        cap = index.find_capture(row["id"])
    except NotFound:
        return False
    if not exact and ((f.tag and f.tag not in (cap.get("tags") or [])) or (f.kind and cap["kind"] != f.kind)):
        return False
    if f.state:
        item = index.item(cap["key"])
        if (item["state"] if item else None) != f.state:
            return False
    if f.author:
        tweet, post = index.tweet_of(cap["id"]) or {}, index.post_of(cap["id"]) or {}
        # A fediverse handle is user@host; "@user" and "user" find it as well as the whole handle.
        handle = post.get("author") or ""
        names = {tweet.get("screen_name"), tweet.get("name"), handle, handle.split("@", 1)[0],
                 post.get("author_name")}
        if f.author.lower() not in {n.lower() for n in names if n}:
            return False
    return True


def _keep_received(index: Index, row: dict[str, Any], f: Filters, since: str | None, until: str | None,
                   exact: bool, receipts: dict[str, dict[str, Any]]) -> bool:
    """A received page's row (the module's docstring says how each filter reads it)."""
    if f.state or f.author or (until and not row["started_at"]):
        return False
    if exact:
        return True   # received.iter_listed applied tag, kind, status and since
    if (f.kind and f.kind != received.KIND) or (f.status and f.status != received.STATUS):
        return False
    if f.tag or since:
        if row["receipt_id"] not in receipts:
            receipts[row["receipt_id"]] = received.receipt(index, row["receipt_id"]) or {}
        held = receipts[row["receipt_id"]]
        if (f.tag and f.tag not in (held.get("tags") or [])) or (since and (held.get("received_at") or "") < since):
            return False
    return True
