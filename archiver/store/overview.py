"""The archive at a glance, for ``status``, ``list --gone`` (and the other item states), ``watch --list`` and the
workbench's dashboards: the queue by state and its failures, items the web no longer shows (or shows changed)
with the evidence we hold, and the watches with when they next run. Rows keep the field names of those
commands' ``--json``; what a dashboard adds (the newest good capture, failures by class, schedules in words) is
added by ``dashboard`` only, so the commands print what they always printed.

Every read here costs the same at any size of archive: tallies kept by triggers, indexed states, pages of
rows (issue 12's targets: status and list --gone within 0.3 s at a million captures).
"""
from __future__ import annotations

from typing import Any

from archiver.config import Settings
from archiver.custody import timestamps
from archiver.pipeline import queue, schedule
from archiver.store.index import Index
from archiver.store.timeline import watch_schedule

# How many items of each state a dashboard shows (newest first); ``items_in_state`` takes any limit.
DASHBOARD_ROWS = 50


def queue_status(index: Index, settings: Settings) -> dict[str, Any]:
    """What ``status --json`` prints: jobs by state, captures, the oldest queued job, running jobs with their
    lease, recent failures with their class, and timestamps by state."""
    tsa_urls = timestamps.TimestampSettings.from_settings(settings).tsa_urls
    return {**queue.status(index), "timestamps": timestamps.summary(index.conn, tsa_urls)}


def failure_classes(index: Index) -> list[dict[str, Any]]:
    """Jobs that failed for good, by the class of their last failure: ``[{"class", "jobs"}]``, most first."""
    return [{"class": r[0], "jobs": r[1]} for r in index.conn.execute(
        "SELECT last_failure_class, COUNT(*) AS n FROM jobs WHERE state = 'failed' GROUP BY last_failure_class "
        "ORDER BY n DESC, last_failure_class")]


def items_in_state(index: Index, state: str, since: str | None = None, limit: int | None = None
                   ) -> list[dict[str, Any]]:
    """What ``list --gone`` (``--changed``, ``--unreachable``, ``--live``) prints with --json: the items in that
    state (for changed: that changed, since ``since``), newest first, each with the evidence held
    (``ok_captures``, ``last_ok_capture_id``, ``check_count``, ``first_captured``)."""
    return index.list_items(state=state, since=since, limit=limit)


def evidence_held(item: dict[str, Any]) -> str:
    """The evidence held of an item, in words: ``2 ok, newest <id>``, or ``NONE``."""
    if not item["ok_captures"]:
        return "NONE"
    return f"{item['ok_captures']} ok" + (f", newest {item['last_ok_capture_id']}" if item["last_ok_capture_id"]
                                          else "")


def watches(index: Index, include_removed: bool = False) -> list[dict[str, Any]]:
    """What ``watch --list --json`` prints: the active watches (and the removed ones too), each with its next
    capture and check and its item's state."""
    return schedule.list_watches(index, include_removed)


def _last_good(index: Index, item: dict[str, Any]) -> dict[str, Any] | None:
    if not item.get("last_ok_capture_id"):
        return None
    row = index.conn.execute("SELECT id, url, final_url, title, started_at FROM captures WHERE id = ?",
                             (item["last_ok_capture_id"],)).fetchone()
    return dict(row) if row else None


def dashboard(index: Index, settings: Settings, rows: int = DASHBOARD_ROWS) -> dict[str, Any]:
    """Everything the dashboards show, JSON-ready: ``queue`` (``queue_status``), ``failure_classes``, ``gone``
    and ``changed`` (``items_in_state``, newest ``rows`` of each, and whether there are ``more``), each item with
    ``held`` (``evidence_held``) and ``last_good_capture`` (id, url, final_url, title, started_at), and
    ``watches`` (active), each with ``schedule`` and ``checks`` in words."""
    out: dict[str, Any] = {"queue": queue_status(index, settings), "failure_classes": failure_classes(index)}
    for state in ("gone", "changed"):
        found = items_in_state(index, state, limit=rows + 1)
        for item in found[:rows]:
            item["held"] = evidence_held(item)
            item["last_good_capture"] = _last_good(index, item)
        out[state] = {"items": found[:rows], "more": len(found) > rows}
    out["watches"] = [{**w, "schedule": watch_schedule(w),
                       "checks": f"every {schedule.format_interval(w['check_every_seconds'])}"
                       if w["check_every_seconds"] else "none"} for w in watches(index)]
    return out
