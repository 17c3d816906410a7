"""Liveness checks as a service: run a check, store it in the ``checks`` history, move the item's state, and
queue a capture when the item changed, disappeared or came back (that capture is the sealed evidence).

The fetching is in capture/liveness.py (no database there); the state rules are in items.py.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from archiver.store import items
from archiver.custody import ledger
from archiver.pipeline import queue, schedule
from archiver.capture.liveness import CheckResult, check
from archiver.config import Settings
from archiver.store.index import Index
from archiver.urls import keyed_as, parse as parse_url

RESULT_OF = {"live": "live", "gone": "gone", "unreachable": "unreachable", None: "unknown"}


@dataclass
class CheckOutcome:
    check_id: int
    url: str
    key: str
    checked_at: str
    result: str                      # live | gone | unreachable | unknown (our side failed: blocked, ...)
    result_class: str | None
    http_status: int | None
    state_before: str | None
    state_after: str | None
    transition: bool
    job_id: int | None               # capture queued because of what this check saw
    message: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def target_of(url: str) -> dict[str, str]:
    parsed = parse_url(url)
    return {"url": parsed.url, "key": parsed.dedup_key, "kind": parsed.kind}


async def run_check(index: Index, target: dict[str, Any], settings: Settings, *, worker: str,
                    now: datetime | None = None, result: CheckResult | None = None) -> CheckOutcome:
    """Check one item (``target``: url, key, kind) and record everything that follows from the answer.

    ``result`` lets a caller (a test with a fake clock) supply the observation instead of fetching it."""
    if result is None:
        result = await check(target["url"], target["kind"], target["key"], settings)
    at = schedule.iso(now or schedule.utcnow())
    obs = items.observe_answer(result.status, result.failure_class, result.http_status, result.fingerprint)
    with index.transaction() as conn:
        before = items.get(conn, target["key"])
        check_id = conn.execute(
            "INSERT INTO checks (key, url, checked_at, method, result, result_class, http_status, final_url, "
            "redirects, fingerprint, message, seconds, state_before, state_after, worker) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (target["key"], target["url"], at, result.method, RESULT_OF[obs.result], obs.result_class,
             result.http_status, result.final_url, json.dumps(result.redirects), result.fingerprint, result.message,
             round(result.seconds, 3), before["state"] if before else None,
             RESULT_OF[obs.result], worker)).fetchone()[0]  # state_after: set below, once applied
        transition = items.apply(conn, key=target["key"], url=target["url"], kind=target["kind"], obs=obs, at=at,
                                 source="check", unreachable_gone=index.unreachable_gone, check_id=check_id)
        after = items.get(conn, target["key"])
        job_id = None
        if transition and _worth_capturing(transition):
            job_id = _queue_capture(conn, target, settings, check_id, transition)
        conn.execute("UPDATE checks SET state_after = ?, job_id = ? WHERE id = ?",
                     (after["state"] if after else RESULT_OF[obs.result], job_id, check_id))
        ledger.append(conn, "checked", url=target["url"], job_id=job_id, at=at,
                      detail={"check_id": check_id, "key": target["key"], "method": result.method,
                              "result": RESULT_OF[obs.result], "class": obs.result_class,
                              "http_status": result.http_status, "fingerprint": result.fingerprint,
                              "state_before": before["state"] if before else None,
                              "state_after": after["state"] if after else None})
    return CheckOutcome(check_id, target["url"], target["key"], at, RESULT_OF[obs.result], obs.result_class,
                        result.http_status, before["state"] if before else None,
                        after["state"] if after else None, transition is not None, job_id, result.message,
                        result.seconds)


def _worth_capturing(t: items.Transition) -> bool:
    """Changed, gone (the tombstone or error page is the evidence of the disappearance) or back again."""
    return t.after in ("changed", "gone") and t.state_class != "unreachable" or (t.after == "live" and t.before == "gone")


def _queue_capture(conn: Any, target: dict[str, Any], settings: Settings, check_id: int,
                   t: items.Transition) -> int | None:
    watch = conn.execute("SELECT * FROM watches WHERE key = ? AND active = 1", (target["key"],)).fetchone()
    why = {"changed": "changed", "gone": f"gone ({t.state_class})", "live": "back online"}[t.after]
    # The item's own key (a Bluesky handle spelling was keyed by its DID when it was added).
    enqueued = queue.enqueue_in(
        conn, [keyed_as(parse_url(target["url"]), target["key"])],
        requested_by=watch["created_by"] if watch else "check", tags=json.loads(watch["tags"]) if watch else [],
        note=f"re-capture: {why}, seen by check {check_id}", priority=1,
        max_attempts=settings["queue"]["max_attempts"], options=json.loads(watch["options"]) if watch else {})
    return enqueued[0].job["id"] if enqueued[0].created else None


def targets(index: Index, urls_given: list[str], all_watched: bool, gone: bool) -> list[dict[str, str]]:
    """What `archiver check` looks at: the URLs given, every watched item, and/or every item now gone."""
    found: dict[str, dict[str, str]] = {}
    for url in urls_given:
        t = target_of(url)
        if t["key"].startswith("bluesky:") and not t["key"].startswith("bluesky:did:"):
            # A handle spelling is keyed offline by its handle; the item it was added as was keyed by its DID.
            row = index.conn.execute("SELECT url, key, kind FROM jobs WHERE url = ? AND key <> ? ORDER BY id DESC "
                                     "LIMIT 1", (t["url"], t["key"])).fetchone()
            t = dict(row) if row and not items.get(index.conn, t["key"]) else t
        found.setdefault(t["key"], t)
    if all_watched:
        for w in schedule.list_watches(index):
            found.setdefault(w["key"], {"url": w["url"], "key": w["key"], "kind": w["kind"]})
    if gone:
        for row in index.conn.execute("SELECT url, key, kind FROM items WHERE state = 'gone' ORDER BY key"):
            found.setdefault(row["key"], dict(row))
    return list(found.values())
