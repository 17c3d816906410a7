"""An item's timeline as data: its state, its watch, and every capture, check and state change in time order, for
``archiver show`` and the workbench's item page alike (what they print or draw is theirs; what happened is here).

Events keep the field names of ``show --json``'s ``timeline`` (``event``: capture | check | transition, ``at``,
``result``, ``class``, ``http_status``, ``capture_id``, ``check_id``, ``fingerprint``, ``state``, ``job_id``,
``from``, ``to``, ``source``...), and each gets ``anchor``: a name unique in the item's timeline, stable from one
reading to the next, that a page can link to. A capture's fingerprint is in its provenance record, not in the
index: its event says what it was through ``result`` and ``class``; a check's event carries the fingerprint it saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archiver.pipeline import schedule
from archiver.store.index import Index


@dataclass
class ItemTimeline:
    key: str
    item: dict[str, Any] | None        # the items row: state, state_class, state_since, last_seen_live...
    watch: dict[str, Any] | None       # the newest watch of the item (active first), or None
    events: list[dict[str, Any]]       # oldest first

    @property
    def empty(self) -> bool:
        return not self.item and not self.watch and not self.events

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "item": self.item, "watch": self.watch,
                "schedule": watch_schedule(self.watch) if self.watch else None,
                "events": self.events, "folded": fold_checks(self.events)}


def item_timeline(index: Index, key: str) -> ItemTimeline:
    """The item's state, watch and events (``Index.timeline``, each with its ``anchor``)."""
    events = index.timeline(key)
    transitions = 0
    for e in events:
        if e["event"] == "capture":
            e["anchor"] = f"capture-{e['capture_id']}"
        elif e["event"] == "check":
            e["anchor"] = f"check-{e['check_id']}"
        else:
            # Transitions have no id of their own in the index; their order in the item's history is stable.
            transitions += 1
            e["anchor"] = f"state-{transitions}"
    return ItemTimeline(key, index.item(key), schedule.watch_of(index, key), events)


def _check_signature(e: dict[str, Any]) -> tuple[Any, ...]:
    return e["result"], e["class"], e["http_status"], e["state"]


def fold_checks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with each run of equal checks (same answer, same state, none queueing a capture) folded into its
    first, which gets ``count`` (how many) and ``until`` (the time of the last): a month of hourly checks reads as
    a few lines or marks. Every check carries ``count`` and ``until``; other events are as given."""
    folded: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []

    def flush() -> None:
        if run:
            folded.append({**run[0], "count": len(run), "until": run[-1]["at"]})
            run.clear()

    for e in events:
        if e["event"] == "check":
            same = run and _check_signature(run[-1]) == _check_signature(e) and not run[-1]["job_id"] \
                and not e["job_id"]
            if not same:
                flush()
            run.append(e)
            continue
        flush()
        folded.append(e)
    flush()
    return folded


def watch_schedule(watch: dict[str, Any]) -> str:
    """How often a watch re-captures, in words: ``every 6h`` or ``cron "0 */6 * * *"``."""
    if watch["every_seconds"]:
        return f"every {schedule.format_interval(watch['every_seconds'])}"
    return f"cron \"{watch['cron']}\""
