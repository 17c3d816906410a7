"""Watches: scheduled re-captures and liveness checks of an item, kept in the index.

Every runner (`archiver run`, `archiver run --once` from cron, on any host sharing the archive) calls
``enqueue_due``. A due watch is taken with a conditional UPDATE (``WHERE next_capture_at = <the value we
read>``) in the same transaction that queues the job, so two runners, two hosts or two overlapping cron runs
never queue the same re-capture twice: the loser's UPDATE changes no row and it queues nothing. Checks are
claimed the same way, one at a time, by ``claim_due_check``.

``now`` is a parameter everywhere so that a month of schedules can be tested with a fake clock.
"""
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any


from archiver.pipeline import queue
from archiver.errors import UserError
from archiver.store.index import Index
from archiver.urls import ParsedURL

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_interval(text: str, what: str = "--every") -> int:
    """Seconds in "90s", "30m", "6h", "1d", "2w" or "1h30m"."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+)([smhdw])", cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise UserError(f"{what} {text!r}: expected an interval such as 30m, 6h, 1d or 1h30m")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UserError(f"{what} {text!r}: the interval must be longer than zero")
    return seconds


def check_cron(expression: str) -> str:
    from croniter import croniter  # here, not at the top: `show` reads watches and needs no cron parser
    expression = " ".join(expression.split())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise UserError(f"--cron {expression!r}: expected a five-field cron expression in UTC, "
                        f"such as \"0 */6 * * *\" (minute hour day month weekday)")
    return expression


def format_interval(seconds: int | None) -> str:
    if not seconds:
        return "-"
    out = ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def next_capture(watch: dict[str, Any], after: datetime, now: datetime) -> datetime:
    """The first scheduled time after ``now``, keeping an interval's phase (a runner that was down for a day
    resumes the schedule, it does not queue a day of missed captures)."""
    if watch.get("cron"):
        from croniter import croniter
        return croniter(watch["cron"], now).get_next(datetime)
    step = timedelta(seconds=watch["every_seconds"])
    nxt = after + step
    if nxt <= now:
        missed = (now - after) // step
        nxt = after + step * (missed + 1)
    return nxt


@dataclass
class WatchResult:
    watch: dict[str, Any]
    created: bool


def add(index: Index, parsed: ParsedURL, *, every_seconds: int | None, cron: str | None,
        check_every_seconds: int | None, created_by: str, tags: list[str], note: str | None,
        options: dict[str, Any], now: datetime | None = None) -> WatchResult:
    """Watch an item, or change the schedule of the watch it already has. The first re-capture is due at
    once unless a complete capture newer than one interval is already held."""
    now = now or utcnow()
    if bool(every_seconds) == bool(cron):
        raise UserError("give exactly one of --every INTERVAL or --cron \"EXPRESSION\"")
    with index.transaction() as conn:
        last_ok = conn.execute("SELECT MAX(started_at) FROM captures WHERE key = ? AND status = 'ok'",
                               (parsed.dedup_key,)).fetchone()[0]
        draft = {"every_seconds": every_seconds, "cron": cron}
        first = now
        if last_ok:  # held already: the next capture is one interval after it
            first = max(now, next_capture(draft, parse_iso(last_ok), parse_iso(last_ok)))
        next_check = iso(now + timedelta(seconds=check_every_seconds)) if check_every_seconds else None
        existing = conn.execute("SELECT id FROM watches WHERE key = ? AND active = 1", (parsed.dedup_key,)).fetchone()
        if existing:
            row = conn.execute(
                "UPDATE watches SET every_seconds = ?, cron = ?, check_every_seconds = ?, next_capture_at = ?, "
                "next_check_at = ?, tags = ?, note = COALESCE(?, note), options = ? WHERE id = ? RETURNING *",
                (every_seconds, cron, check_every_seconds, iso(first), next_check, json.dumps(tags), note,
                 json.dumps(options), existing[0])).fetchone()
            return WatchResult(_decode(row), created=False)
        row = conn.execute(
            "INSERT INTO watches (url, canonical_url, key, kind, every_seconds, cron, check_every_seconds, "
            "next_capture_at, next_check_at, created_by, created_at, tags, note, options) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (parsed.url, parsed.canonical_url, parsed.dedup_key, parsed.kind, every_seconds, cron,
             check_every_seconds, iso(first), next_check, created_by, iso(now), json.dumps(tags), note,
             json.dumps(options))).fetchone()
        return WatchResult(_decode(row), created=True)


def remove(index: Index, key: str, removed_by: str, now: datetime | None = None) -> dict[str, Any] | None:
    """Stop watching an item. The watch row stays (inactive) as the record of what was watched, when."""
    with index.transaction() as conn:
        row = conn.execute("UPDATE watches SET active = 0, removed_at = ?, removed_by = ? "
                           "WHERE key = ? AND active = 1 RETURNING *",
                           (iso(now or utcnow()), removed_by, key)).fetchone()
    return _decode(row) if row else None


def list_watches(index: Index, include_removed: bool = False) -> list[dict[str, Any]]:
    sql = ("SELECT w.*, i.state, i.state_class, i.state_since, i.last_seen_live, i.last_ok_capture_id "
           "FROM watches w LEFT JOIN items i ON i.key = w.key")
    if not include_removed:
        sql += " WHERE w.active = 1"
    return [_decode(r) for r in index.conn.execute(sql + " ORDER BY w.id")]


def enqueue_due(index: Index, *, max_attempts: int, now: datetime | None = None) -> list[int]:
    """Queue a re-capture for every watch that is due; returns the ids of jobs created.

    Each watch is taken in its own short transaction with a conditional UPDATE: whoever moves
    next_capture_at first queues the job; everyone else sees zero rows changed and moves on."""
    now = now or utcnow()
    due = index.conn.execute("SELECT * FROM watches WHERE active = 1 AND next_capture_at <= ? ORDER BY next_capture_at",
                             (iso(now),)).fetchall()
    created: list[int] = []
    for row in due:
        watch = _decode(row)
        nxt = next_capture(watch, parse_iso(watch["next_capture_at"]), now)
        with index.transaction() as conn:
            taken = conn.execute("UPDATE watches SET next_capture_at = ?, last_enqueued_at = ? "
                                 "WHERE id = ? AND active = 1 AND next_capture_at = ?",
                                 (iso(nxt), iso(now), watch["id"], watch["next_capture_at"])).rowcount
            if not taken:
                continue
            job_id = _enqueue_watch(conn, watch, max_attempts, f"scheduled re-capture (watch {watch['id']})")
            conn.execute("UPDATE watches SET last_job_id = ? WHERE id = ?", (job_id, watch["id"]))
            if job_id is not None:
                created.append(job_id)
    return created


def _enqueue_watch(conn: sqlite3.Connection, watch: dict[str, Any], max_attempts: int, note: str) -> int | None:
    """Queue a capture of a watched item in the caller's transaction; None if one is already pending."""
    from archiver.urls import keyed_as, parse as parse_url
    # The watch's own key, not one computed again from the URL: a key may have needed the network when the watch
    # was made (a Bluesky handle resolved to its DID).
    parsed = keyed_as(parse_url(watch["url"]), watch["key"])
    enqueued = queue.enqueue_in(conn, [parsed], requested_by=watch["created_by"],
                                tags=watch["tags"], note=note, priority=0, max_attempts=max_attempts,
                                options=watch["options"])
    return enqueued[0].job["id"] if enqueued[0].created else None


def claim_due_check(index: Index, now: datetime | None = None) -> dict[str, Any] | None:
    """Take one watch whose liveness check is due, moving its next check forward under the write lock (so no
    other runner takes it). A check due within a minute of the next re-capture is skipped: the capture will
    tell more."""
    now = now or utcnow()
    while True:
        with index.transaction() as conn:
            row = conn.execute("SELECT * FROM watches WHERE active = 1 AND check_every_seconds IS NOT NULL "
                               "AND next_check_at <= ? ORDER BY next_check_at LIMIT 1", (iso(now),)).fetchone()
            if row is None:
                return None
            nxt = iso(now + timedelta(seconds=row["check_every_seconds"]))
            taken = conn.execute("UPDATE watches SET next_check_at = ?, last_checked_at = ? "
                                 "WHERE id = ? AND next_check_at = ?",
                                 (nxt, iso(now), row["id"], row["next_check_at"])).rowcount
        if taken and parse_iso(row["next_capture_at"]) > now + timedelta(minutes=1):
            return _decode(row)


def watch_of(index: Index, key: str) -> dict[str, Any] | None:
    row = index.conn.execute("SELECT * FROM watches WHERE key = ? ORDER BY active DESC, id DESC LIMIT 1",
                             (key,)).fetchone()
    return _decode(row) if row else None


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    watch = dict(row)
    watch["tags"] = json.loads(watch.get("tags") or "[]")
    watch["options"] = json.loads(watch.get("options") or "{}")
    return watch
