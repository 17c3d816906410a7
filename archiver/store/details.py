"""Everything known about one capture, as one object: what ``archiver show --json`` prints and what the
workbench's capture page and ``/api/show`` give. One place builds it, so the CLI and the web speak the same field
names (design.md: the CLI and the web app hold no logic a service test could not reach)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from archiver.custody import timestamps
from archiver.pipeline import queue, schedule
from archiver.store import readback
from archiver.store.index import Index

if TYPE_CHECKING:
    from archiver.store.archive import Archive

JOB_FIELDS = ("id", "state", "attempts", "max_attempts", "last_failure_class", "last_failure", "parent_capture_id")


def login_of(provenance: dict[str, Any] | None) -> str | None:
    """How a capture was logged in, in one line (None: logged out): the account its site credentials name and the
    SHA-256 of the credential file (capture/auth.py), never a secret. For `show`, the report and exports."""
    login = (provenance or {}).get("auth")
    if not isinstance(login, dict):
        return None
    return (f"authenticated as {login.get('authenticated_as') or '?'} on {login.get('site') or '?'} "
            f"({login.get('credentials') or 'credentials'} {login.get('credential_file') or ''}, SHA-256 "
            f"{login.get('credential_sha256') or '?'}); credentials redacted from "
            f"{login.get('redacted_requests', 0)} request record(s)")


def parent_of(job: dict[str, Any] | None, found_in: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The capture this one was followed from (or, failing that, the first that references it)."""
    if job and job.get("parent_capture_id"):
        where = json.loads(job["found_in"]) if job.get("found_in") else {}
        return {"capture_id": job["parent_capture_id"], **where}
    if found_in:
        return {"capture_id": found_in[0]["capture_id"], "found_in": found_in[0]["found_in"]}
    return None


def capture_details(archive: Archive, index: Index, cap: dict[str, Any]) -> dict[str, Any]:
    """The capture row ``cap`` (``Index.find_capture``) with its records, provenance and visible text read back
    from the sealed WARC (``provenance_error`` / ``text_error`` say why one cannot be), outlinks, job, parent,
    children, tweet, video, RFC 3161 timestamps, other captures of the same item, the item, its watch and timeline.
    """
    cap = dict(cap)
    cap.pop("provenance", None)   # read back from the WARC below, never taken from the row
    records = index.capture_records(cap["id"])
    prov, unreadable = readback.provenance(archive, cap, records)
    text_record = next((r for r in reversed(records) if r["type"] == "resource"
                        and (r["uri"] or "").startswith("urn:text:")), None)
    cap["text"], text_unreadable = readback.text(archive, cap, text_record)
    if text_unreadable:
        cap["text_error"] = text_unreadable
    if unreadable:
        cap["provenance_error"] = unreadable
    job = queue.get_job(index, cap["job_id"]) if cap.get("job_id") else None
    found_in = index.referenced_by(cap["key"])
    tsa_urls = timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls
    stamps = [{**{k: t[k] for k in timestamps.SHOWN_FIELDS}, "tsa_configured": t["tsa_url"] in tsa_urls}
              for t in timestamps.of_capture(index.conn, cap["id"])]
    return {**cap, "captured_at": cap["started_at"], "records": [
        {"type": r["type"], "uri": r["uri"], "offset": r["offset"], "length": r["length"],
         "http_status": r["http_status"], "content_type": r["content_type"], "payload_digest": r["payload_digest"],
         "record_id": r["record_id"]} for r in records],
        "outlinks": index.capture_outlinks(cap["id"]), "provenance": prov or {}, "logged_in": login_of(prov),
        "job": {k: job[k] for k in JOB_FIELDS} if job else None,
        "parent": parent_of(job, found_in),
        "found_in": found_in,
        "children": index.children(cap["id"]),
        "tweet": index.tweet_of(cap["id"]),
        "post": index.post_of(cap["id"]),
        "video": index.video_of(cap["id"]),
        "timestamps": stamps,
        "other_captures": [o for o in index.captures_of_key(cap["key"]) if o["id"] != cap["id"]],
        "item": index.item(cap["key"]), "watch": schedule.watch_of(index, cap["key"]),
        "timeline": index.timeline(cap["key"])}
