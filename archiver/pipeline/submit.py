"""Asking for captures: URLs checked and queued, watched and unwatched, for ``archiver add``/``capture``/``watch``/
``unwatch`` and the workbench's submit form alike, with the same checks and the same messages.

A list is all or nothing: every URL that cannot be captured is named (one message each, as ``urls.parse`` words
it), and then nothing of the list is queued or watched. ``submit``/``watch``/``unwatch`` take a list of URL strings
and give back either what was done or the per-URL errors (``Submitted``); ``queue_stream`` is ``add -f``'s way, a
stream of any length queued a chunk at a time in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from archiver import urls
from archiver.errors import BadURL, UserError
from archiver.pipeline import queue, schedule
from archiver.urls import ParsedURL

if TYPE_CHECKING:
    from archiver.store.archive import Archive
    from archiver.store.index import Index

NO_URLS = "no URLs given (pass URLs as arguments, or -f FILE with one URL per line, or -f - for stdin)"
# Words that turn a watch's liveness checks off (--check-every none).
NO_CHECKS = ("", "none", "0", "off")


@dataclass
class Request:
    """Who asks, and how: what every job or watch of one submission carries."""
    requested_by: str | None = None        # None: archive.operator, or the login name
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    priority: int = 0
    no_browser: bool = False
    follow: bool = False
    depth: int = 1

    def options(self) -> dict[str, Any]:
        """The job's options as the queue stores them."""
        options: dict[str, Any] = {}
        if self.no_browser:
            options["no_browser"] = True
        if self.follow:
            options["follow"] = self.depth
        return options


@dataclass
class Submitted:
    """What a submission did: ``done`` (jobs, watches, or watches stopped), or ``errors`` (one per bad URL:
    ``{"url", "error"}``) and ``message`` saying why nothing was done; ``missing``: URLs unwatch found no watch of
    (the others were stopped)."""
    done: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.message is None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "done": self.done, "errors": self.errors, "message": self.message,
                "missing": self.missing}


class BadList(queue.NothingQueued):
    """A list with URLs that cannot be captured: ``errors`` names each (``{"url", "error"}``); nothing was done."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(len(errors))
        self.errors = errors


def clean_lines(lines: Iterable[str]) -> Iterator[str]:
    """The URLs of a list as ``-f FILE`` reads it: each line stripped, blank lines and ``#`` comments skipped
    (lines end where ``str.splitlines`` ends them)."""
    for physical in lines:
        for line in physical.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                yield line.strip()


def parse_urls(items: Iterable[str]) -> tuple[list[ParsedURL], list[dict[str, str]]]:
    """Every URL parsed, and an error ``{"url", "error"}`` for each that cannot be captured."""
    parsed, errors = [], []
    for item in items:
        try:
            parsed.append(urls.parse(item))
        except BadURL as exc:
            errors.append({"url": item, "error": str(exc)})
    return parsed, errors


def checked_list(url_list: list[str]) -> list[ParsedURL]:
    """Every URL of a list parsed: BadList naming each bad one, or UserError for an empty list."""
    if not url_list:
        raise UserError(NO_URLS)
    parsed, errors = parse_urls(url_list)
    if errors:
        raise BadList(errors)
    return parsed


def platform_keys(archive: Archive, parsed: list[ParsedURL]) -> list[ParsedURL]:
    """The URLs keyed as the item they name, where that takes the network: a Bluesky handle spelling is keyed by
    the DID it resolves to now, so that both spellings are one item (capture/bluesky.py says why here)."""
    if not any(p.platform == "bluesky" for p in parsed):
        return parsed
    from archiver.capture.bluesky import resolve_keys
    return resolve_keys(parsed, archive.settings)


def _checked_or_refused(url_list: list[str]) -> tuple[list[ParsedURL], Submitted | None]:
    """``checked_list``, or the Submitted that says why nothing was done."""
    try:
        return checked_list(url_list), None
    except BadList as exc:
        return [], Submitted(errors=exc.errors, message=str(exc))
    except UserError as exc:
        return [], Submitted(message=str(exc))


def _keyed_or_refused(archive: Archive, url_list: list[str]) -> tuple[list[ParsedURL], Submitted | None]:
    """``_checked_or_refused``, each good URL keyed as the item it names (``platform_keys``)."""
    parsed, refusal = _checked_or_refused(url_list)
    return (parsed, refusal) if refusal else (platform_keys(archive, parsed), None)


def job_summary(e: queue.Enqueued) -> dict[str, Any]:
    """A queued (or already pending) job as ``add --json`` prints it."""
    j = e.job
    return {"job_id": j["id"], "url": j["url"], "canonical_url": j["canonical_url"], "kind": j["kind"],
            "key": j["key"], "state": j["state"], "created": e.created}


def _enqueue_all(archive: Archive, index: Index, items: Iterable[ParsedURL | BadURL], request: Request,
                 on_error: Callable[[BadURL], None] | None = None) -> queue.Batch:
    return queue.enqueue_all(index, items, requested_by=archive.operator(request.requested_by),
                             tags=list(request.tags), note=request.note, priority=request.priority,
                             max_attempts=archive.settings["queue"]["max_attempts"], options=request.options(),
                             on_error=on_error)


def queue_stream(archive: Archive, index: Index, lines: Iterable[str], request: Request,
                 on_error: Callable[[BadURL], None] | None = None) -> queue.Batch:
    """Queue a stream of URLs of any length in one transaction (``queue.enqueue_all``): every bad one goes to
    ``on_error`` and then ``queue.NothingQueued`` is raised, with nothing queued. Read the outcomes with
    ``queue.batch_results``."""
    return _enqueue_all(archive, index, urls.parse_each(lines), request, on_error)


def submit(archive: Archive, url_list: list[str], request: Request) -> Submitted:
    """Queue a list of URLs for capture, as ``archiver add`` does: ``done`` holds each URL's job (``job_summary``:
    a new one, or the same item's job already pending), or ``errors`` each bad URL, with nothing queued."""
    parsed, refusal = _keyed_or_refused(archive, url_list)
    if refusal:
        return refusal
    index = archive.index()
    try:
        batch = _enqueue_all(archive, index, parsed, request)
        return Submitted(done=[job_summary(e) for e in queue.batch_results(index, batch)])
    finally:
        index.close()


def enqueue(archive: Archive, url_list: list[str], request: Request) -> list[queue.Enqueued]:
    """Queue a list of URLs and return their jobs whole (``archiver capture`` runs them next); BadList (nothing
    queued) when any URL is bad."""
    parsed = platform_keys(archive, checked_list(url_list))
    index = archive.index()
    try:
        return queue.enqueue(index, parsed, requested_by=archive.operator(request.requested_by),
                             tags=list(request.tags), note=request.note, priority=request.priority,
                             max_attempts=archive.settings["queue"]["max_attempts"], options=request.options())
    finally:
        index.close()


@dataclass
class Schedule:
    every_seconds: int | None
    cron: str | None
    check_every_seconds: int | None


def watch_schedule(every: str | None, cron: str | None, check_every: str | None, default_check_every: str
                   ) -> Schedule:
    """A watch's schedule from its words (``--every 6h`` or ``--cron "0 */6 * * *"``, ``--check-every 1h|none``,
    by default ``watch.check_every``); UserError saying what is wrong."""
    if not every and not cron:
        raise UserError("say how often: --every 6h, or --cron \"0 */6 * * *\" (or --list to see the watches)")
    if every and cron:
        raise UserError("give one of --every or --cron, not both")
    every_seconds = schedule.parse_interval(every) if every else None
    cron_expr = schedule.check_cron(cron) if cron else None
    check_text = check_every if check_every is not None else default_check_every
    check_seconds = None if check_text.strip().lower() in NO_CHECKS else \
        schedule.parse_interval(check_text, "--check-every")
    return Schedule(every_seconds, cron_expr, check_seconds)


def watch(archive: Archive, url_list: list[str], when: Schedule, request: Request) -> Submitted:
    """Watch each URL on ``when`` (or change the schedule of its watch): ``done`` holds each watch with ``created``
    (False: an existing watch updated), or ``errors`` each bad URL, with nothing watched."""
    parsed, refusal = _keyed_or_refused(archive, url_list)
    if refusal:
        return refusal
    index = archive.index()
    try:
        results = [schedule.add(index, p, every_seconds=when.every_seconds, cron=when.cron,
                                check_every_seconds=when.check_every_seconds,
                                created_by=archive.operator(request.requested_by), tags=list(request.tags),
                                note=request.note, options=request.options()) for p in parsed]
    finally:
        index.close()
    return Submitted(done=[{**r.watch, "created": r.created} for r in results])


def unwatch(archive: Archive, url_list: list[str], removed_by: str | None = None) -> Submitted:
    """Stop watching each URL: ``done`` holds each watch stopped, ``missing`` the URLs with no watch to stop (and
    ``message`` names them); a bad URL stops nothing (``errors``)."""
    parsed, refusal = _keyed_or_refused(archive, url_list)
    if refusal:
        return refusal
    index = archive.index()
    done, missing = [], []
    try:
        for p in parsed:
            removed = schedule.remove(index, p.dedup_key, archive.operator(removed_by))
            if removed:
                done.append(removed)
            else:
                missing.append(p.url)
    finally:
        index.close()
    return Submitted(done=done, missing=missing,
                     message=f"not watched: {', '.join(missing)} (see `archiver watch --list`)" if missing else None)
