"""The run loop: claim -> capture -> seal -> index, with a lease kept alive while capturing.

One worker is one process with one Chromium (started on first need). `archiver run` runs workers under a
supervisor (supervisor.py) that kills a capture stuck beyond its hard limit; `archiver capture` runs one in
the foreground. Signals: the first SIGINT/SIGTERM stops claiming and lets the capture in hand finish (it is
bounded by capture.timeout_seconds); a second one abandons it and gives the job back to the queue. After
SIGKILL the lease simply expires and another runner takes the job. Claims keep per-host politeness.
Once a capture is sealed and its outcome reported, the configured TSAs are asked to timestamp it
(timestamps.py); those that do not answer are retried when no capture is due.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from archiver.pipeline import queue, schedule, sealing
from archiver.pipeline.sealing import settle_temp_files  # noqa: F401  (the supervisor's, and tests', name for it)
from archiver.custody import keys, timestamps
from archiver import logs
from archiver.capture import auth, platforms
from archiver.config import AUTH_SECTION
from archiver.store.archive import Archive, new_capture_id, software_versions
from archiver.capture.base import CaptureResult
from archiver.capture.discover import discover
from archiver.capture.fingerprint import of_result as content_fingerprint
from archiver.capture.http import capture_http
from archiver.errors import CaptureFailed, IndexUnavailable
from archiver.store.index import Index, now_iso
from archiver.urls import check_target
from archiver.store.warc import CaptureWarc, DiskFull, importing_files, owner_tag, stale_temp_files

if TYPE_CHECKING:
    from archiver.capture.browser import BrowserSession

# The browser (Playwright), the tweet and video paths (yt-dlp) and the liveness checks are imported when a job
# first needs them, not when a runner starts: together they are most of a runner's start-up (~0.5 s of 2 cores'
# time, paid by the supervisor and again by each worker process), and a `--no-browser` run needs none of them.

log = logging.getLogger("archiver.pipeline.worker")

EventHook = Callable[[str, dict[str, Any]], None]
# How often a runner looks again when every due job is held back by politeness: a host frees up when a
# capture of it ends or when politeness.delay_seconds have passed, both usually within a second or two.
HELD_POLL_SECONDS = 0.25


@dataclass
class Outcome:
    job_id: int
    url: str
    status: str                      # ok | partial | failed | released
    capture_id: str | None = None
    failure_class: str | None = None
    message: str | None = None
    job_state: str | None = None
    seconds: float = 0.0
    records: int = 0
    size: int = 0
    title: str | None = None
    children: list[int] = field(default_factory=list)  # jobs queued for evidence this capture references


@dataclass
class RunStats:
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None         # why the runner stopped early (the index could not be written)

    @property
    def all_ok(self) -> bool:
        return all(o.status == "ok" for o in self.outcomes)


class Worker:
    def __init__(self, archive: Archive, on_event: EventHook | None = None):
        self.archive = archive
        self.settings = archive.settings
        self.owner = queue.make_owner()
        self.politeness = queue.Politeness.from_settings(archive.settings)
        self.index: Index = archive.index()
        # Team mode: the key the shared index records for the archive, or none (keys.KeyNotHeld).
        self.key = keys.load_or_create(archive.path, archive.settings, self.index)
        self.tsa_urls = timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls
        self.browser: BrowserSession | None = None
        self.stopping = False          # no new claims
        self.abandon = False           # give back the job in hand now
        self.lease_lost = False        # another runner took over the job in hand
        self._reserved_renewed = 0.0   # when the reservations of the jobs in holding() were last renewed
        self._current: asyncio.Task | None = None
        self.on_event = on_event or (lambda kind, data: None)

    # -- lifecycle ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if self.stopping:
            self.abandon = True
            logs.event(log, logging.WARNING, "signal", "second stop signal: giving the capture in hand back to "
                       "the queue", action="abandon")
            if self._current is not None:
                self._current.cancel()
        else:
            logs.event(log, logging.INFO, "signal", "stop signal: no new claims; finishing the capture in hand",
                       action="stop")
        self.stopping = True

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    def remove_stale_files(self) -> int:
        """Temporary WARCs of runners that died mid-capture (see ``settle_temp_files``), and the timestamp tokens
        of imports that stopped after indexing them (ingest.settle_imported_tokens)."""
        from archiver.exchange.ingest import settle_imported_tokens  # import reads packages: not needed for most runs
        live = {owner_tag(o) for o in queue.live_owners(self.index)}
        settled = settle_temp_files(self.archive, self.index, stale_temp_files(self.archive.path, live)) + \
            settle_temp_files(self.archive, self.index, importing_files(self.archive.path), remove_unindexed=False) + \
            settle_imported_tokens(self.archive.path, self.index)
        if self.archive.seals_to_store:
            settled += sealing.settle_unstored(self.archive, self.index)
        return settled

    async def close(self) -> None:
        if self.browser is not None:
            await self.browser.close()
            self.browser = None
        self.index.close()

    async def run(self, once: bool, job_ids: list[int] | None = None) -> RunStats:
        """Capture due jobs until the queue is empty (``once``) or until stopped."""
        stats = RunStats()
        self.remove_stale_files()
        poll = self.settings["queue"]["poll_seconds"]
        # Jobs named by a person (`archiver capture`) are each tried once now, whatever their schedule.
        remaining = list(job_ids) if job_ids is not None else None
        try:
            while not self.stopping and remaining != []:
                try:
                    self._renew_reservations()
                    queue.fail_exhausted_leases(self.index)
                    if remaining is None:
                        # Watches: queue the re-captures that are due (idempotent across runners and hosts).
                        schedule.enqueue_due(self.index, max_attempts=self.settings["queue"]["max_attempts"])
                    job = queue.claim(self.index, self.owner, self.settings["queue"]["lease_seconds"], remaining,
                                      ignore_schedule=remaining is not None, politeness=self.politeness,
                                      holding=self.holding())
                except (sqlite3.OperationalError, IndexUnavailable) as exc:
                    # A full disk, a lock held for over a minute, a database server away for as long: nothing was
                    # claimed, nothing is lost.
                    stats.error = f"the index cannot be written: {exc}"
                    logs.event(log, logging.ERROR, "index-unwritable", f"{stats.error}; stopping",
                               **{"class": "disk-full" if _is_full(exc) else "index"})
                    break
                if job is None:
                    if remaining is None and await self._run_due_check():
                        continue  # captures first; checks fill the time when no capture is due
                    if remaining is None and await self._run_due_timestamp():
                        continue  # and timestamps a TSA could not give when their capture was sealed
                    if queue.held_back(self.index, remaining, ignore_schedule=remaining is not None,
                                       holding=self.holding()):
                        # Work is due but its host is busy or was just visited: wait for it rather than leave it.
                        await self._sleep(HELD_POLL_SECONDS)
                        continue
                    if once:
                        break
                    await self._sleep(poll, wake=self.index.job_waiter())
                    continue
                logs.event(log, logging.INFO, "claim", f"claimed job {job['id']} {job['url']}", job_id=job["id"],
                           url=job["url"], host=job.get("host"), attempt=job["attempts"], owner=self.owner)
                if remaining is not None:
                    remaining.remove(job["id"])
                outcome = await self.process(job)
                stats.outcomes.append(outcome)
                if remaining is not None:
                    remaining.extend(outcome.children)  # `capture --follow`: the evidence too, now
        finally:
            await self.close()
        return stats

    async def _run_due_check(self) -> bool:
        """Run one due liveness check of a watched item; False when none is due."""
        watch = schedule.claim_due_check(self.index)
        if watch is None:
            return False
        target = {"url": watch["url"], "key": watch["key"], "kind": watch["kind"]}
        from archiver.pipeline import checks
        outcome = await checks.run_check(self.index, target, self.settings, worker=self.owner)
        self.on_event("check", {"outcome": outcome})
        return True

    async def _run_due_timestamp(self) -> bool:
        """Retry one due pending timestamp; False when none is due (or the index cannot be written now)."""
        if not self.tsa_urls:
            return False
        try:
            return bool(await timestamps.stamp_due(self.index, self.archive.path, self.settings))
        except Exception:  # a timestamp is never worth stopping a runner for; the row comes due again
            logs.event(log, logging.ERROR, "timestamp-error", "internal error retrying a timestamp", exc_info=True)
            return False

    async def _timestamp(self, capture_id: str) -> None:
        """Ask the TSAs for a token of a capture just sealed. Runs after the job's outcome is reported, outside
        the capture's hard limit and lease (the job is finished): a TSA that is slow or down delays the next
        claim by at most timestamp.timeout_seconds, and never changes the capture's outcome."""
        if not self.tsa_urls:
            return
        try:
            await timestamps.stamp_capture(self.index, self.archive.path, self.settings, capture_id)
        except Exception:  # the row stays pending and is retried; the capture stands as sealed
            logs.event(log, logging.ERROR, "timestamp-error", f"internal error timestamping capture {capture_id}",
                       exc_info=True, capture_id=capture_id)

    async def _sleep(self, seconds: float, wake: Callable[[float], bool] | None = None) -> None:
        """Wait, until stopped; or, given ``wake`` (the index's job waiter), until a job is queued."""
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            if wake is None:
                await asyncio.sleep(min(0.2, end - time.monotonic()))
            elif await asyncio.to_thread(wake, max(0.0, min(0.5, end - time.monotonic()))):
                return

    # -- one job --------------------------------------------------------------------------------------

    async def process(self, job: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        started_at = now_iso()
        # started_at: the supervisor records a hard-timeout kill as this attempt, with this start time.
        self.on_event("start", {"job": job, "started_at": started_at})
        self._current = asyncio.ensure_future(self._capture_job(job, started_at))
        renewer = asyncio.ensure_future(self._keep_lease(job))
        self.lease_lost = False
        try:
            outcome = await self._current
        except asyncio.CancelledError:
            if self.lease_lost:
                # The job is another runner's now; whatever we had written was discarded, unsealed.
                outcome = Outcome(job["id"], job["url"], "released", message="lease lost to another runner")
            else:
                queue.release(self.index, job, self.owner, started_at, "runner stopped by a second signal")
                outcome = Outcome(job["id"], job["url"], "released", message="given back to the queue")
        finally:
            renewer.cancel()
            self._current = None
        outcome.seconds = time.monotonic() - started
        _log_outcome(job, outcome)
        self.on_event("done", {"job": job, "outcome": outcome})
        if outcome.capture_id is not None and outcome.status != "released":
            await self._timestamp(outcome.capture_id)
        return outcome

    def holding(self) -> list[int]:
        """The jobs whose sealed captures wait in this archive's tmp/ for the store (sealing.keep_unstored): reserved
        for this host (queue.not_reserved), whichever of its processes sealed them."""
        if not self.archive.seals_to_store:
            return []
        return [int(p.name.split(".")[1]) for p in sealing.unstored_of(self.archive.path)]

    def _renew_reservations(self) -> None:
        """Keep the reservations of the jobs in ``holding()``, every third of a lease: they run out only when no
        runner of this host is left to store their captures."""
        lease = self.settings["queue"]["lease_seconds"]
        if time.monotonic() - self._reserved_renewed < lease / 3:
            return
        queue.renew_reserved(self.index, self.holding(), lease)
        self._reserved_renewed = time.monotonic()

    async def _keep_lease(self, job: dict[str, Any]) -> None:
        lease = self.settings["queue"]["lease_seconds"]
        while True:
            await asyncio.sleep(max(0.5, lease / 3))
            try:
                self._renew_reservations()
                held = queue.renew(self.index, job["id"], self.owner, lease)
            except IndexUnavailable as exc:
                # The index server is away for longer than a reconnect waits: try again next turn rather than end
                # this task (which would leave the lease to lapse while the capture goes on). The transaction that
                # indexes the capture checks the lease in any case (queue.hold_lease).
                logs.event(log, logging.WARNING, "lease-unrenewed", f"could not renew the lease on job {job['id']}: "
                           f"{exc}; trying again", job_id=job["id"], url=job["url"], owner=self.owner)
                continue
            if not held:
                logs.event(log, logging.WARNING, "lease-lost", f"lost the lease on job {job['id']} to another "
                           f"runner; abandoning it", job_id=job["id"], url=job["url"], owner=self.owner)
                self.lease_lost = True
                if self._current is not None:
                    self._current.cancel()
                return

    async def _capture_job(self, job: dict[str, Any], started_at: str) -> Outcome:
        qs = self.settings["queue"]
        backoff = {"backoff_base": qs["backoff_seconds"], "backoff_cap": qs["backoff_max_seconds"]}
        try:
            return await self._capture_and_seal(job, started_at, backoff)
        except CaptureFailed as failure:
            if isinstance(failure, DiskFull):
                logs.event(log, logging.ERROR, "disk-full", f"{failure.message}; job {job['id']} stays queued",
                           job_id=job["id"], url=job["url"], **{"class": "disk-full"})
            # A capture sealed but not stored waits here for the job's next attempt: the job is reserved for it.
            keeps = failure.failure_class == sealing.STORAGE_FAILURE and self.archive.seals_to_store and \
                bool(sealing.unstored_of(self.archive.path, job["id"]))
            state = self._record_failure(job, started_at, failure.failure_class, failure.message, failure.retryable,
                                         backoff, reserve=keeps)
            return Outcome(job["id"], job["url"], "failed", failure_class=failure.failure_class,
                           message=failure.message, job_state=state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a hostile input must not kill the worker; the job is retried
            logs.event(log, logging.ERROR, "internal-error", f"internal error capturing job {job['id']}",
                       exc_info=True, job_id=job["id"], url=job["url"], **{"class": "internal"})
            message = f"internal error: {type(exc).__name__}: {exc}"
            state = self._record_failure(job, started_at, "internal", message, True, backoff)
            return Outcome(job["id"], job["url"], "failed", failure_class="internal", message=message,
                           job_state=state)

    def _record_failure(self, job: dict[str, Any], started_at: str, failure_class: str, message: str,
                        retryable: bool, backoff: dict[str, float], reserve: bool = False) -> str:
        """The failed attempt into the index; if the index itself cannot be written (full disk), say so and
        leave the job to its lease: it is retried when the lease expires, nothing is lost. ``reserve``: the job
        stays this worker's for its next attempt (a sealed capture waits in tmp/ for the store)."""
        lease = self.settings["queue"]["lease_seconds"]
        try:
            return queue.mark_failed(self.index, job, self.owner, started_at, failure_class, message, retryable,
                                     reserve_seconds=lease if reserve else None, **backoff)
        except (sqlite3.OperationalError, IndexUnavailable) as exc:
            logs.event(log, logging.ERROR, "index-unwritable", f"cannot record the failure of job {job['id']} "
                       f"({failure_class}): {exc}; it is retried when its lease expires", job_id=job["id"],
                       url=job["url"], **{"class": failure_class})
            return "running"

    async def _capture_and_seal(self, job: dict[str, Any], started_at: str, backoff: dict[str, float]) -> Outcome:
        settings = self.settings
        capture_id = new_capture_id()
        started_dt = datetime.now(timezone.utc)
        url = job["url"]
        check_target(url, settings["network"]["allow_private"], via_proxy=bool(settings["network"]["proxy"]),
                     allowed=settings["network"]["allow_addresses"])
        if self.archive.seals_to_store:
            kept = sealing.unstored_of(self.archive.path, job["id"])
            if kept:
                # Sealed by an earlier attempt that the store would not take: store that, do not capture again.
                return self._store_unstored(job, kept[0], started_at, backoff)
            settled = self._settle_storing(job, started_at, backoff)
            if settled is not None:
                return settled
        kind = job["kind"]
        # Tweets, posts and videos get their page (or embed) rendered too, for the screenshot and the context.
        use_browser = kind in ("page", "tweet", "video", "post") and not job["options"].get("no_browser")
        if use_browser and self.browser is None:
            from archiver.capture.browser import BrowserSession
            self.browser = BrowserSession(settings)
            try:
                await self.browser.start()
            except CaptureFailed:
                self.browser = None
                raise
            except Exception as exc:
                self.browser = None
                raise CaptureFailed("browser-crash", f"Chromium did not start: {exc}") from None
        with CaptureWarc(self.archive.path, capture_id, owner_tag(self.owner), started_dt) as warc:
            versions = software_versions()
            if use_browser:
                versions.update(self.browser.versions)
            warc.write_warcinfo(_warcinfo(capture_id, job, versions, settings, self.archive.operator(
                job["requested_by"])))
            site = _site_credentials(settings, url)
            if site is not None:
                # Set-Cookie answers that hand the session back lose their value in the records (store/warc.py).
                warc.secret_cookie_names = site.secret_names
            try:
                with auth.using(site):
                    result = await self._dispatch(job, url, warc, use_browser)
            except CaptureFailed:
                raise
            except Exception as exc:
                if use_browser and self.browser is not None and not self.browser.alive():
                    raise CaptureFailed("browser-crash", f"Chromium crashed: {exc}") from None
                raise
            follow = int(job["options"].get("follow") or 0)
            discovered: list[dict[str, Any]] = []
            if follow > 0:
                try:
                    discovered = await discover(result, warc, settings)
                except CaptureFailed as exc:
                    result.details.setdefault("notes", []).append(f"discovery failed: {exc.message}")
            if result.text and settings["capture"]["save_text"]:
                _seal_search_text(warc, result.text, result.final_url or url)
            finished_at = now_iso()
            provenance = _provenance(capture_id, job, result, started_at, finished_at, warc, versions, use_browser)
            provenance["discovered"] = discovered
            provenance["follow_depth"] = follow
            if site is not None:
                provenance["auth"] = {**auth.provenance(site), "redacted_requests": len(warc.redacted_requests)}
            provenance_bytes = json.dumps(provenance, indent=1, ensure_ascii=False).encode("utf-8")
            provenance_id = warc.write_metadata(f"urn:provenance:{capture_id}", "application/json", provenance_bytes,
                                                refers_to=result.main_record_id, refers_to_uri=result.final_url)
            # The provenance record lists every record's SHA-256, so signing it signs the capture (keys.py).
            signature = keys.signature_record(self.key, capture_id, provenance_bytes, provenance_id)
            warc.write_metadata(f"urn:signature:{capture_id}", "application/json",
                                json.dumps(signature, indent=1).encode("utf-8"), refers_to=provenance_id,
                                refers_to_uri=f"urn:provenance:{capture_id}")
            # Durable, hashed and read-only, but still in tmp/ until the index holds it (warc.py: sealing).
            sealed = warc.prepare_seal()
            sealing.fault_point("prepared")
            capture_row = {
                "id": capture_id, "job_id": job["id"], "url": url, "canonical_url": job["canonical_url"],
                "final_url": result.final_url, "key": job["key"], "kind": job["kind"],
                "method": "browser" if use_browser else "http", "status": result.status,
                "failure_class": result.failure_class, "failure_message": result.failure_message,
                "http_status": result.http_status, "content_type": result.content_type, "started_at": started_at,
                "finished_at": finished_at, "requested_by": job["requested_by"],
                "requested_at": job["requested_at"], "tags": job["tags"], "note": job["note"],
                "warc_path": sealed.rel_path, "warc_sha256": sealed.sha256, "warc_size": sealed.size,
                "record_count": len(warc.records), "title": result.title,
                # With capture.save_text off the text is neither sealed nor searchable.
                "text": result.text if settings["capture"]["save_text"] else None,
                "provenance": provenance,
            }
            if self.archive.seals_to_store:
                if not self._note_storing(job, sealed.rel_path):
                    # Never stored: discarded on the way out; the runner holding the job now captures it.
                    logs.event(log, logging.WARNING, "lease-lost", f"lost the lease on job {job['id']} before "
                               f"storing its capture; the capture is discarded", job_id=job["id"], url=url,
                               owner=self.owner)
                    return Outcome(job["id"], url, "released", message="lease lost to another runner")
                capture_row = self._put(job, warc, capture_row)
            commit = dict(job=job, owner=self.owner, capture=capture_row, records=warc.records,
                          outlinks=result.outlinks, started_at=started_at, backoff=backoff,
                          key_fingerprint=self.key.fingerprint, tsa_urls=self.tsa_urls, discovered=discovered,
                          follow=follow)
            def index_capture(conn: Any) -> tuple[str, list[int]]:
                queue.hold_lease(conn, job["id"], self.owner)
                return sealing.commit_capture(self.index, conn, **commit)

            try:
                # write(): on an engine that can lose its connection, run again on a new one if it was rolled back.
                state, children = self.index.write(index_capture)
            except queue.LeaseLost as exc:
                if self.archive.seals_to_store:
                    # Stored already, and locked: evidence the index must know, though the job is another's now.
                    with self.index.transaction() as conn:
                        sealing.commit_capture(self.index, conn, **{**commit, "finish_job": False})
                    self._release_local(warc)
                    logs.event(log, logging.WARNING, "lease-lost", f"{exc}; this runner's capture, stored already, "
                               f"is indexed without finishing the job", job_id=job["id"], url=url, owner=self.owner,
                               capture_id=capture_id)
                    return Outcome(job["id"], url, "released", capture_id=capture_id,
                                   message="lease lost to another runner")
                # Another runner holds the job now and seals its own capture; ours, never moved into warcs/, is
                # discarded on the way out, so the job is captured once.
                logs.event(log, logging.WARNING, "lease-lost", f"{exc}; this runner's capture is discarded",
                           job_id=job["id"], url=url, owner=self.owner)
                return Outcome(job["id"], url, "released", message="lease lost to another runner")
            except IndexUnavailable as exc:
                if exc.commit_unknown or self.archive.seals_to_store:
                    # The index may hold the capture now, or the store does: the file stays in tmp/ for the next
                    # runner to settle, as after a kill at this step; never discarded while either may name it.
                    warc.sealed = warc.prepared
                raise CaptureFailed("index-unavailable", f"the index could not be written ({exc}); the job is "
                                    f"retried", retryable=True) from None
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                # The transaction rolled back: the index is as it was, and the file, never moved into warcs/,
                # is discarded on the way out. The job is retried when there is space.
                raise DiskFull(f"index.db could not be written ({exc}); nothing was sealed") from None
            sealing.fault_point("indexed")
            if self.archive.seals_to_store:
                self._release_local(warc)
            else:
                self._commit_local(warc, job, capture_id, url)
        return Outcome(job["id"], url, result.status, capture_id=capture_id, failure_class=result.failure_class,
                       message=result.failure_message, job_state=state, records=len(warc.records),
                       size=sealed.size, title=result.title, children=children)

    def _commit_local(self, warc: CaptureWarc, job: dict[str, Any], capture_id: str, url: str) -> None:
        try:
            warc.commit_seal()
        except OSError as exc:
            # Indexed already, so the file stays in tmp/ and the next runner to start moves it into place.
            logs.event(log, logging.ERROR, "seal-unfinished", f"capture {capture_id} is indexed but could not "
                       f"be moved into warcs/ ({exc}); the next runner finishes the move", job_id=job["id"],
                       url=url, capture_id=capture_id)

    def _put(self, job: dict[str, Any], warc: CaptureWarc, capture_row: dict[str, Any]) -> dict[str, Any]:
        """Step 1 of sealing to a store (sealing.py): the row, with where the WARC now lives. A store that will not
        take it now fails the attempt with class "storage" and keeps the sealed file for the job's next attempt."""
        from archiver.store.blobs import StorageError
        sealed = warc.prepared
        try:
            stored = sealing.put_sealed(self.archive, sealed.rel_path, warc.tmp_path, sealed.sha256)
        except StorageError as exc:
            warc.sealed = sealed   # never discarded now: it is the capture, waiting for the store
            kept = sealing.keep_unstored(self.archive.path, warc.tmp_path, warc.capture_id, job["id"])
            raise CaptureFailed(sealing.STORAGE_FAILURE, f"sealed, but not stored: {exc} (kept as {kept.name}; "
                                f"stored at the job's next attempt)", retryable=True) from None
        sealing.fault_point("stored")
        return sealing.placed(capture_row, self.archive, stored)

    def _note_storing(self, job: dict[str, Any], rel_path: str) -> bool:
        """Name the WARC on its job before it is put (queue.note_storing): False if the lease is lost."""
        try:
            return queue.note_storing(self.index, job["id"], self.owner, rel_path,
                                      self.settings["queue"]["lease_seconds"])
        except IndexUnavailable as exc:
            # Nothing stored yet: the sealed file is discarded on the way out and the job retried.
            raise CaptureFailed("index-unavailable", f"the index could not be written ({exc}); the job is "
                                f"retried", retryable=True) from None

    def _settle_storing(self, job: dict[str, Any], started_at: str, backoff: dict[str, float]) -> Outcome | None:
        """A capture the job's last runner stored and never indexed (sealing.settle_storing): indexed, as this
        attempt's outcome; None when there is none and the job is to be captured."""
        from archiver.store.blobs import StorageError
        try:
            row = sealing.settle_storing(self.archive, self.index, job, self.owner, started_at, backoff)
        except StorageError as exc:
            raise CaptureFailed(sealing.STORAGE_FAILURE, f"whether the last attempt's capture "
                                f"{job['storing']} was stored is unknown: {exc}", retryable=True) from None
        if row is None:
            return None
        return self._settled_outcome(job, row)

    def _release_local(self, warc: CaptureWarc) -> None:
        """Step 3 of sealing to a store: stored and indexed, the local file goes."""
        warc.sealed = warc.prepared
        warc.tmp_path.unlink(missing_ok=True)
        sealing.fault_point("released")

    def _store_unstored(self, job: dict[str, Any], path: Path, started_at: str,
                        backoff: dict[str, float]) -> Outcome:
        """The job's earlier attempt sealed a capture that the store did not take: store and index that one."""
        from archiver.store.blobs import StorageError
        capture_id = path.name.split(".", 1)[0]
        try:
            row = sealing.index_from_file(self.archive, self.index, path, sealing._rel_path(self.archive, capture_id),
                                          owner=self.owner, started_at=started_at, backoff=backoff)
        except StorageError as exc:
            raise CaptureFailed(sealing.STORAGE_FAILURE, f"sealed, but not stored: {exc} (kept as {path.name})",
                                retryable=True) from None
        return self._settled_outcome(job, row)

    def _settled_outcome(self, job: dict[str, Any], row: dict[str, Any]) -> Outcome:
        """The outcome of an attempt that indexed an earlier attempt's sealed capture (``row``) instead of capturing."""
        state = queue.get_job(self.index, job["id"])["state"]
        return Outcome(job["id"], job["url"], row["status"], capture_id=row["id"], failure_class=row["failure_class"],
                       message=row["failure_message"], job_state=state, records=row["record_count"],
                       size=row["warc_size"], title=row["title"])

    async def _dispatch(self, job: dict[str, Any], url: str, warc: CaptureWarc, use_browser: bool) -> CaptureResult:
        """The way of capturing that fits the job's kind (design.md: one module per way)."""
        browser = self.browser if use_browser else None
        kind, key = job["kind"], job["key"]
        if kind == "tweet" and key.startswith("twitter:"):
            from archiver.capture.tweet import capture_tweet
            from archiver.capture.video import record_video
            return await capture_tweet(key.split(":", 1)[1], url, warc, self.settings, browser,
                                       lambda media_url, w: record_video(media_url, w, self.settings))
        if kind == "post" and key:
            from archiver.capture.posts import capture_post
            return await capture_post(key, url, warc, self.settings, browser)
        if kind == "video":
            from archiver.capture.video import capture_video
            path, item_id, media_url = platforms.video_target(key, job["canonical_url"], url)
            return await capture_video(url, warc, self.settings, browser, path, item_id, media_url)
        if browser is not None:
            return await browser.capture(url, warc)
        return await capture_http(url, warc, self.settings)


def _site_credentials(settings: Any, url: str) -> auth.SiteAuth | None:
    """The credentials a capture of ``url`` is made with ([auth] settings), read now; a credential file gone or
    spoilt since the settings were read fails the attempt (never a capture silently made logged out)."""
    try:
        site = auth.for_url(settings[AUTH_SECTION], url)
        return auth.read_profile_cookies(site) if site is not None else None
    except auth.CredentialError as exc:
        raise CaptureFailed("credentials", str(exc), retryable=False) from None


def _warcinfo(capture_id: str, job: dict[str, Any], versions: dict[str, str], settings: Any,
              operator: str) -> dict[str, Any]:
    shaping = {section: settings[section] for section in ("capture", "browser", "network", "twitter", "video")}
    return {
        "software": f"archiver/{versions.get('archiver')}",
        "software-versions": json.dumps(versions, sort_keys=True),
        "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        "hostname": socket.gethostname(),
        "operator": operator,
        "capture-id": capture_id,
        "job-id": job["id"],
        "requested-url": job["url"],
        "robots": "ignore (evidence capture of a single URL, requested by a person)",
        "settings": json.dumps(shaping, sort_keys=True),
    }


def _provenance(capture_id: str, job: dict[str, Any], result: CaptureResult, started_at: str, finished_at: str,
                warc: CaptureWarc, versions: dict[str, str], use_browser: bool) -> dict[str, Any]:
    return {
        "capture_id": capture_id,
        "job_id": job["id"],
        "url": job["url"],
        "canonical_url": job["canonical_url"],
        "key": job["key"],
        "kind": job["kind"],
        "final_url": result.final_url,
        "method": "browser" if use_browser else "http",
        "requested_by": job["requested_by"],
        "requested_at": job["requested_at"],
        "tags": job["tags"],
        "note": job["note"],
        "parent_capture_id": job.get("parent_capture_id"),
        "attempt": job["attempts"],
        "started_at": started_at,
        "finished_at": finished_at,
        "outcome": result.status,
        "failure_class": result.failure_class,
        "failure_message": result.failure_message,
        "http_status": result.http_status,
        "content_type": result.content_type,
        "title": result.title,
        "hostname": socket.gethostname(),
        "software": versions,
        "main_response_record_id": result.main_record_id,
        # What the item showed, normalised: later liveness checks compare against it (capture/fingerprint.py).
        "fingerprint": content_fingerprint(result),
        **{k: v for k, v in result.details.items() if k != "method"},
        "outlinks": result.outlinks,
        "records": [{"record_id": r["record_id"], "type": r["type"], "uri": r["uri"],
                     "payload_digest": r["payload_digest"]} for r in warc.records],
    }


def _seal_search_text(warc: CaptureWarc, text: str, url: str) -> None:
    """The text the index searches, sealed as the capture's last ``urn:text:`` record, so that reindex reads
    back exactly what was indexed. Not written twice: a page's rendered text (written by the browser) usually
    is the indexed text; a tweet's or a video's indexed text is composed from several sources."""
    data = text.encode("utf-8")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    texts = [r for r in warc.records if (r["uri"] or "").startswith("urn:text:")]
    if not texts or texts[-1]["payload_digest"] != digest:
        warc.write_resource(f"urn:text:{url}", "text/plain; charset=utf-8", data)


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _log_outcome(job: dict[str, Any], o: Outcome) -> None:
    what = o.capture_id or (f"{o.failure_class}: {o.message}" if o.failure_class else o.message or "")
    logs.event(log, logging.INFO, "capture", f"{o.status} job {job['id']} {job['url']} {what}", job_id=o.job_id,
               url=o.url, host=job.get("host"), status=o.status, capture_id=o.capture_id,
               **{"class": o.failure_class}, failure=o.message if o.failure_class else None,
               job_state=o.job_state, seconds=o.seconds, records=o.records or None, bytes=o.size or None)


# -- running workers ------------------------------------------------------------------------------------

def run_worker(archive: Archive, once: bool, job_ids: list[int] | None = None,
               on_event: EventHook | None = None, handle_signals: bool = True,
               on_ready: Callable[[Worker], None] | None = None) -> RunStats:
    """One worker in this process (`archiver capture`, and each process of `archiver run`). ``on_ready`` is
    called once signal handlers are in place, before the first claim."""
    async def main() -> RunStats:
        worker = Worker(archive, on_event)
        if handle_signals:
            worker.install_signal_handlers()
        if on_ready is not None:
            on_ready(worker)
        return await worker.run(once, job_ids)
    return asyncio.run(main())


def run_pool(archive: Archive, config_file: str | None, workers: int, once: bool,
             on_event: EventHook | None = None, job_ids: list[int] | None = None) -> Any:
    """``workers`` worker processes under a supervisor (supervisor.py) until they finish (``once``) or a
    signal stops them (with ``job_ids``: until those are done); returns the supervisor's result (outcomes
    and exit code)."""
    from archiver.pipeline.supervisor import supervise  # the supervisor imports this module: import it when needed
    return supervise(archive, config_file, workers, once, on_event, job_ids)
