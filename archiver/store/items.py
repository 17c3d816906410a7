"""The state of each item (a tweet, a video, a page — one dedup key): live, changed, gone or unreachable.

Captures and liveness checks are both observations of an item. Each observation moves the item's state and,
when the state (or the reason for it) changes, leaves a row in ``transitions``: the item's timeline.

- live: the web shows it, and it matches the newest capture we hold.
- changed: the web shows something different from our newest capture (a re-capture is queued).
- gone: the web answered that it is not there any more (deleted, suspended, 404, 410, removed video...).
- unreachable: no answer we can read (DNS, refused, timeout, 5xx...). Transient: one failure never makes an
  item gone. Only a run of them, over a long enough time, does (settings watch.unreachable_gone_*), with the
  class ``unreachable`` so it is never mistaken for a deletion the platform announced.

Failures on our side (blocked by our own policy, internal errors, a full disk, a browser crash) say nothing
about the web and leave the state alone. Nothing here ever removes a capture: gone is a finding.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archiver.store.engines import IndexConnection

STATES = ("live", "changed", "gone", "unreachable")

# Answers from the platform or server that the item is no longer there.
GONE_CLASSES = {"deleted", "suspended", "protected", "age-restricted", "account-deleted", "withheld", "removed",
                "not-found", "unavailable", "gone", "http-404", "http-410", "http-451",
                # An X Space that ended without a recording: what it said is not on the web, and never will be.
                "replay-disabled",
                "deactivated"}  # a Bluesky account its owner deactivated (AccountDeactivated): gone until reactivated
# The item is there but has nothing to take yet (an X Space not started, its recording not ready): says nothing
# about whether it changed or went.
WAITING_CLASSES = {"not-started", "not-yet-available"}
# Telegram's own words for a post that is gone with its channel: no channel of that name, or one gone private.
GONE_CLASSES |= {"channel-not-found", "private"}
# Our side, not the web's: no observation at all.
OWN_CLASSES = {"blocked", "internal", "disk-full", "browser-crash", "unsupported", "extractor"}


@dataclass
class Observation:
    result: str | None             # live | gone | unreachable | None (says nothing about the web)
    result_class: str | None       # why (gone/unreachable), e.g. deleted, http-404, dns
    fingerprint: str | None = None


def observe_answer(status: str, failure_class: str | None, http_status: int | None,
                   fingerprint: str | None) -> Observation:
    """An Observation from an outcome (ok|partial|failed) and its class, as captures and checks report them."""
    if status in ("ok", "partial"):
        return Observation("live", None, fingerprint)
    if failure_class in ("http-4xx", "http-5xx", "http-429") and http_status:
        specific = f"http-{http_status}"
        if specific in GONE_CLASSES:
            return Observation("gone", specific)
        return Observation("unreachable", specific)
    if failure_class in GONE_CLASSES:
        return Observation("gone", failure_class)
    if failure_class in OWN_CLASSES or failure_class in WAITING_CLASSES or failure_class is None:
        return Observation(None, failure_class)
    return Observation("unreachable", failure_class)


@dataclass
class Transition:
    before: str | None
    after: str
    state_class: str | None


def apply(conn: IndexConnection, *, key: str, url: str, kind: str, obs: Observation, at: str, source: str,
          unreachable_gone: tuple[int, float], check_id: int | None = None, capture_id: str | None = None,
          capture_ok: bool = False) -> Transition | None:
    """Fold one observation into the item's state; returns the transition if the state changed.

    ``source`` is "capture" or "check". A capture that recorded the content becomes the new reference for
    change detection; a check only compares against it. Call inside the caller's write transaction.
    """
    row = conn.execute("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
    prev = dict(row) if row else None
    if obs.result is None:
        # Says nothing about the web; a capture is still the newest capture.
        if prev and capture_id:
            conn.execute("UPDATE items SET last_capture_id = ?, updated_at = ? WHERE key = ?", (capture_id, at, key))
        return None
    before = prev["state"] if prev else None
    before_class = prev["state_class"] if prev else None
    fingerprint = prev["fingerprint"] if prev else None
    unreachable_count = 0
    last_seen_live = prev["last_seen_live"] if prev else None
    if obs.result == "live":
        last_seen_live = at
        if source == "capture":
            state, state_class = "live", None
            fingerprint = obs.fingerprint or fingerprint
        elif obs.fingerprint and fingerprint and obs.fingerprint != fingerprint:
            state, state_class = "changed", None
        else:
            state, state_class = "live", None
    elif obs.result == "gone":
        state, state_class = "gone", obs.result_class
    else:
        unreachable_count = (prev["unreachable_count"] if prev else 0) + 1
        state, state_class = "unreachable", obs.result_class
        if before == "gone":
            # A gone item that now does not answer at all is still gone; it did not come back.
            state, state_class = "gone", before_class
        elif _long_unreachable(conn, key, unreachable_count, at, unreachable_gone):
            state, state_class = "gone", "unreachable"
    since = at if (state, state_class) != (before, before_class) or prev is None else prev["state_since"]
    if before == "unreachable" and state == "unreachable":
        since = prev["state_since"]  # a different transient error is the same outage
    values = {
        "key": key, "url": url, "kind": kind, "state": state, "state_class": state_class, "state_since": since,
        "last_seen_live": last_seen_live,
        "last_checked_at": at if source == "check" else (prev["last_checked_at"] if prev else None),
        "last_capture_id": capture_id or (prev["last_capture_id"] if prev else None),
        "last_ok_capture_id": capture_id if capture_ok else (prev["last_ok_capture_id"] if prev else None),
        "fingerprint": fingerprint, "unreachable_count": unreachable_count, "updated_at": at,
    }
    columns = ", ".join(values)
    # An upsert (both engines' spelling of it) rather than INSERT OR REPLACE, which PostgreSQL does not have.
    updates = ", ".join(f"{name} = excluded.{name}" for name in values if name != "key")
    conn.execute(f"INSERT INTO items ({columns}) VALUES ({', '.join('?' * len(values))}) "
                 f"ON CONFLICT (key) DO UPDATE SET {updates}", list(values.values()))
    if before == state and (before_class == state_class or state == "unreachable"):
        return None
    conn.execute("INSERT INTO transitions (key, at, state_before, state_after, state_class, source, check_id, "
                 "capture_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (key, at, before, state, state_class, source, check_id, capture_id))
    return Transition(before, state, state_class)


def _long_unreachable(conn: IndexConnection, key: str, count: int, at: str,
                      unreachable_gone: tuple[int, float]) -> bool:
    """A run of unreachable observations long enough (in number and in time) to call the item gone."""
    needed, hours_needed = unreachable_gone
    if needed <= 0 or count < needed:
        return False
    row = conn.execute("SELECT state_since FROM items WHERE key = ? AND state = 'unreachable'", (key,)).fetchone()
    if row is None:
        return False
    hours = (_parse(at) - _parse(row[0])).total_seconds() / 3600
    return hours >= hours_needed


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def observe_capture(conn: IndexConnection, capture: dict[str, Any], provenance: dict[str, Any],
                    unreachable_gone: tuple[int, float]) -> Transition | None:
    """A sealed capture as an observation of its item (called where the capture is indexed)."""
    obs = observe_answer(capture["status"], capture.get("failure_class"), capture.get("http_status"),
                         provenance.get("fingerprint"))
    return apply(conn, key=capture["key"], url=capture["url"], kind=capture["kind"], obs=obs,
                 at=capture["started_at"], source="capture", unreachable_gone=unreachable_gone, capture_id=capture["id"],
                 capture_ok=capture["status"] == "ok")


def get(conn: IndexConnection, key: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
    return dict(row) if row else None
