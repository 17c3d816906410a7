"""Jobs in the index DB: enqueue, claim with a lease, renew, finish, retry with backoff, release.

Claiming is one conditional UPDATE ... RETURNING inside a write transaction, so two runners (processes or
hosts sharing the index) can never take the same job; a job whose lease expired because its runner died is
claimable again. On SQLite the transaction holds the one write lock (BEGIN IMMEDIATE); on PostgreSQL the claim
locks the job's row with FOR UPDATE SKIP LOCKED, so runners pass each other's claims instead of waiting. Every write
transaction is short, so runners wait on the lock for milliseconds, not minutes. Queueing a job wakes idle runners
on an engine that can (PostgreSQL's NOTIFY).

Politeness is kept in that same UPDATE, so it holds across every runner sharing the file: a job is not
claimable while its host already has ``max_per_host`` captures under a live lease, or while the last capture
of its host started less than ``delay_seconds`` ago (``host_slots``, written by the claim itself).
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

from archiver.custody import ledger
from archiver.errors import BadURL, UserError
from archiver.store.engines import IndexConnection
from archiver.store.index import Index, iso_after, now_iso
from archiver.urls import ParsedURL

JOB_STATES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Politeness:
    """Per-host limits every claim keeps (settings [politeness]); 0 switches a limit off."""
    max_per_host: int = 0
    delay_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Any) -> "Politeness":
        conf = settings["politeness"]
        return cls(max(0, conf["max_per_host"]), max(0.0, conf["delay_seconds"]))


NO_LIMITS = Politeness()


@dataclass
class Enqueued:
    job: dict[str, Any]
    created: bool  # False: the same URL was already pending, and that job is returned


def job_host(url: str) -> str:
    """The host a job fetches first (lower-case, no port): the unit of per-host politeness."""
    return (urlsplit(url).hostname or "").lower()


def make_owner() -> str:
    """A lease owner name that is unique across hosts and process restarts, and readable in `status`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def enqueue(index: Index, urls: Iterable[ParsedURL], *, requested_by: str, tags: list[str], note: str | None,
            priority: int, max_attempts: int, options: dict[str, Any] | None = None,
            parent_capture_id: str | None = None, found_in: list[dict[str, Any]] | None = None) -> list[Enqueued]:
    """Queue each URL unless it is already pending. All in one transaction: all are queued, or none.

    ``parent_capture_id`` and ``found_in`` (one entry per URL) record where followed evidence was found.
    """
    with index.transaction() as conn:
        return enqueue_in(conn, urls, requested_by=requested_by, tags=tags, note=note, priority=priority,
                          max_attempts=max_attempts, options=options, parent_capture_id=parent_capture_id,
                          found_in=found_in)


def enqueue_in(conn: IndexConnection, urls: Iterable[ParsedURL], *, requested_by: str, tags: list[str],
               note: str | None, priority: int, max_attempts: int, options: dict[str, Any] | None = None,
               parent_capture_id: str | None = None, found_in: list[dict[str, Any]] | None = None) -> list[Enqueued]:
    """``enqueue`` inside the caller's transaction (a parent capture and its children commit together)."""
    outcomes: list[tuple[int, int]] = []
    with _Enqueuer(conn, requested_by=requested_by, tags=tags, note=note, priority=priority,
                   max_attempts=max_attempts, options=options, parent_capture_id=parent_capture_id) as enqueuer:
        items = zip(urls, found_in) if found_in else ((parsed, None) for parsed in urls)
        for chunk in _chunks(items, _Enqueuer.CHUNK):
            outcomes += enqueuer.add(chunk)
    jobs = {}
    for chunk in _chunks(list(dict.fromkeys(job_id for job_id, _ in outcomes)), _MAX_PARAMS):
        jobs.update((row["id"], _decode(row)) for row in conn.execute(
            f"SELECT * FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
    return [Enqueued(jobs[job_id], created=code == CREATED) for job_id, code in outcomes]


# What enqueue did with a URL: queued a new job, or found the same item's job pending (queued, or running).
CREATED, ALREADY_QUEUED, ALREADY_RUNNING = 0, 1, 2
_PENDING_CODES = {"queued": ALREADY_QUEUED, "running": ALREADY_RUNNING}
# Bound parameters per statement: well under SQLite's limit (32 766 since 3.32; 999 before).
_MAX_PARAMS = 500


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Enqueuer:
    """Queues URLs a chunk at a time inside the caller's write transaction: one query finds the jobs already
    pending for a chunk's items, one statement inserts its new jobs, and their ``queued`` entries go to the
    ledger through a ``ledger.Appender`` (the same entries, in the same chain, as one ``append`` each).

    Job ids are given here, as SQLite would give them (the largest id plus one, for an INTEGER PRIMARY KEY without
    AUTOINCREMENT), so that the ledger entry can name its job before the row is written; the write lock the
    transaction holds means nobody else inserts meanwhile."""

    CHUNK = 500

    def __init__(self, conn: IndexConnection, *, requested_by: str, tags: list[str], note: str | None,
                 priority: int, max_attempts: int, options: dict[str, Any] | None,
                 parent_capture_id: str | None):
        self.conn = conn
        self.now = now_iso()
        self.next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetchone()[0]
        self.requested_by, self.tags, self.note, self.priority = requested_by, tags, note, priority
        self.max_attempts, self.parent_capture_id = max_attempts, parent_capture_id
        self.tags_json, self.options_json = json.dumps(tags), json.dumps(options or {})
        self.ledger = ledger.Appender(conn)
        self.created = 0

    def __enter__(self) -> "_Enqueuer":
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.ledger.__exit__(kind, *exc)
        if kind is None and self.created:
            self.conn.notify_jobs()

    def _pending(self, keys: list[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for part in _chunks(keys, _MAX_PARAMS):
            # INDEXED BY: with hundreds of keys and no statistics, SQLite's planner prefers walking every pending
            # job by state (jobs_due) to looking each key up in the index that makes a key pending only once.
            for key, job_id, state in self.conn.execute(
                    f"SELECT key, id, state FROM jobs{self.conn.sql_indexed_by('jobs_one_pending')} "
                    f"WHERE state IN ('queued', 'running') AND key IN ({', '.join('?' * len(part))})", part):
                found[key] = (job_id, _PENDING_CODES[state])
        return found

    def add(self, chunk: list[tuple[ParsedURL, dict[str, Any] | None]]) -> list[tuple[int, int]]:
        """Queue a chunk: (job id, CREATED or the state code of the job already pending) for each item."""
        pending = self._pending(list(dict.fromkeys(parsed.dedup_key for parsed, _ in chunk)))
        rows: list[tuple[Any, ...]] = []
        outcomes: list[tuple[int, int]] = []
        for parsed, where in chunk:
            hit = pending.get(parsed.dedup_key)
            if hit is not None:
                outcomes.append(hit)
                continue
            job_id = self.next_id
            self.next_id += 1
            pending[parsed.dedup_key] = (job_id, ALREADY_QUEUED)   # the same item again later in this chunk
            rows.append((job_id, parsed.url, parsed.canonical_url, parsed.dedup_key, parsed.kind, self.priority,
                         self.max_attempts, self.now, self.requested_by, self.now, self.tags_json, self.note,
                         self.options_json, self.parent_capture_id, json.dumps(where) if where else None,
                         self.now, parsed.host if parsed.host is not None else job_host(parsed.url)))
            self.ledger.append("queued", job_id=job_id, url=parsed.url, at=self.now,
                               detail={"canonical_url": parsed.canonical_url, "kind": parsed.kind,
                                       "requested_by": self.requested_by, "tags": self.tags, "note": self.note,
                                       "parent_capture_id": self.parent_capture_id})
            outcomes.append((job_id, CREATED))
            self.created += 1
        self.conn.executemany(
            "INSERT INTO jobs (id, url, canonical_url, key, kind, state, priority, attempts, max_attempts, "
            "next_attempt_at, requested_by, requested_at, tags, note, options, parent_capture_id, found_in, "
            "updated_at, host) VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return outcomes


class NothingQueued(UserError):
    """Some URLs of a batch are not valid: each was named, and none of the batch was queued."""

    def __init__(self, bad: int):
        noun = "URL is" if bad == 1 else "URLs are"
        super().__init__(f"{bad} {noun} not valid; nothing was queued")
        self.bad = bad


@dataclass
class Batch:
    """What ``enqueue_all`` did with each URL, in the order given: 9 bytes a URL, whatever its length."""
    job_ids: array = field(default_factory=lambda: array("q"))
    codes: bytearray = field(default_factory=bytearray)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def created(self) -> int:
        return self.codes.count(CREATED)


def enqueue_all(index: Index, items: Iterable[ParsedURL | BadURL], *, requested_by: str, tags: list[str],
                note: str | None, priority: int, max_attempts: int, options: dict[str, Any] | None = None,
                on_error: Callable[[BadURL], None] | None = None) -> Batch:
    """Queue a stream of URLs of any length (``add -f``) in one transaction, holding only a chunk at a time.

    ``items`` are parsed URLs, or the BadURL each unreadable line gave (``urls.parse_each``): every one goes to
    ``on_error``, the stream is read to its end so that all are named, and then NothingQueued is raised and the
    transaction rolled back. All are queued, or none. Each is queued unless the same item is already pending
    (also earlier in the stream): then that job is the outcome. Read the outcomes with ``batch_results``."""
    batch = Batch()
    bad = 0
    with index.transaction() as conn, _Enqueuer(
            conn, requested_by=requested_by, tags=tags, note=note, priority=priority, max_attempts=max_attempts,
            options=options, parent_capture_id=None) as enqueuer:
        chunk: list[tuple[ParsedURL, None]] = []
        for item in items:
            if isinstance(item, BadURL):
                bad += 1
                if on_error is not None:
                    on_error(item)
                continue
            if bad:
                continue   # nothing will be queued: only look for more bad lines
            chunk.append((item, None))
            if len(chunk) >= _Enqueuer.CHUNK:
                _record(batch, enqueuer.add(chunk))
                chunk = []
        if chunk and not bad:
            _record(batch, enqueuer.add(chunk))
        if bad:
            raise NothingQueued(bad)
    return batch


def _record(batch: Batch, outcomes: list[tuple[int, int]]) -> None:
    for job_id, code in outcomes:
        batch.job_ids.append(job_id)
        batch.codes.append(code)


def batch_results(index: Index, batch: Batch) -> Iterator[Enqueued]:
    """The outcome of each URL of a batch, in order, read back a chunk at a time: the job (its id, URL as first
    requested, canonical URL, kind, key) and its state when the URL was given."""
    states = {CREATED: "queued", ALREADY_QUEUED: "queued", ALREADY_RUNNING: "running"}
    for start in range(0, len(batch), _MAX_PARAMS):
        ids = batch.job_ids[start:start + _MAX_PARAMS]
        jobs = {row["id"]: dict(row) for row in index.conn.execute(
            "SELECT id, url, canonical_url, key, kind FROM jobs "
            f"WHERE id IN ({', '.join('?' * len(set(ids)))})", list(dict.fromkeys(ids)))}
        for job_id, code in zip(ids, batch.codes[start:start + _MAX_PARAMS]):
            yield Enqueued({**jobs[job_id], "state": states[code]}, created=code == CREATED)


def claim(index: Index, owner: str, lease_seconds: float, job_ids: list[int] | None = None,
          ignore_schedule: bool = False, politeness: Politeness = NO_LIMITS,
          holding: Iterable[int] = ()) -> dict[str, Any] | None:
    """Take the most urgent due job (or one of ``job_ids``) with a lease. None when nothing is due, or when
    everything due is held back by ``politeness`` (see ``held_back``).

    ``ignore_schedule``: a person asked for these jobs now (`archiver capture`), so a retry backoff does
    not make them wait. Politeness still applies: it protects the site, not the queue. ``holding``: the jobs
    whose sealed captures wait in this runner's tmp/ for the store, which it may take though they are reserved.
    """
    now = now_iso()
    due = "9999" if ignore_schedule else now
    restrict = f" AND id IN ({', '.join('?' * len(job_ids))})" if job_ids else ""
    # Hosts that may not start a capture now. Computed once per claim (not per candidate row), and NULL hosts
    # (jobs queued before schema 3) are never held: `x NOT IN (..., NULL)` would hold every job.
    held: list[str] = []
    held_args: list[Any] = []
    if politeness.max_per_host > 0:
        held.append("SELECT host FROM jobs WHERE state = 'running' AND lease_expires >= ? AND host IS NOT NULL "
                    "GROUP BY host HAVING COUNT(*) >= ?")
        held_args += [now, politeness.max_per_host]
    if politeness.delay_seconds > 0:
        held.append("SELECT host FROM host_slots WHERE last_started_at > ?")
        held_args.append(iso_after(-politeness.delay_seconds))
    polite = f" AND (host IS NULL OR host NOT IN ({' UNION '.join(held)}))" if held else ""
    unreserved, unreserved_args = not_reserved(now, holding)

    def take(conn: Any) -> Any:
        if held:
            # Per-host limits count what other runners hold: those claims take turns (a lock that only claims
            # under limits take; on SQLite the write lock already does this).
            conn.lock_politeness()
        # The subquery locks the row it picks, skipping rows other claims hold (on engines with row locks), and
        # the UPDATE re-checks its condition on the row as committed: one job, one runner.
        row = conn.execute(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?, attempts = attempts + 1, "
            "updated_at = ? WHERE id = ("
            "  SELECT id FROM jobs WHERE ((state = 'queued' AND next_attempt_at <= ?" + unreserved + ") "
            "                           OR (state = 'running' AND lease_expires < ?))" + restrict + polite +
            "  ORDER BY priority DESC, next_attempt_at, id LIMIT 1" + conn.sql_skip_locked + ") "
            "RETURNING *",
            [owner, iso_after(lease_seconds), now, due] + unreserved_args + [now] + list(job_ids or []) + held_args,
        ).fetchone()
        if row is not None and row["host"] and politeness.delay_seconds > 0:
            conn.execute("INSERT INTO host_slots (host, last_started_at) VALUES (?, ?) "
                         "ON CONFLICT (host) DO UPDATE SET last_started_at = excluded.last_started_at",
                         (row["host"], now))
        return row

    row = index.write(take, serial=False)
    return _decode(row) if row is not None else None


def held_back(index: Index, job_ids: list[int] | None = None, ignore_schedule: bool = False,
              holding: Iterable[int] = ()) -> bool:
    """True when a job is due (the same choice as ``claim``) but was not claimable: politeness is holding its
    host for now. A runner with ``--once`` waits for it instead of exiting with work left (but not for a job
    reserved for another runner: that one is the other runner's to finish)."""
    now = now_iso()
    due = "9999" if ignore_schedule else now
    restrict = f" AND id IN ({', '.join('?' * len(job_ids))})" if job_ids else ""
    unreserved, unreserved_args = not_reserved(now, holding)
    row = index.conn.execute(
        "SELECT 1 FROM jobs WHERE ((state = 'queued' AND next_attempt_at <= ?" + unreserved + ") "
        "                        OR (state = 'running' AND lease_expires < ?))" + restrict + " LIMIT 1",
        [due] + unreserved_args + [now] + list(job_ids or [])).fetchone()
    return row is not None


def not_reserved(now: str, holding: Iterable[int]) -> tuple[str, list[Any]]:
    """The condition (and its parameters) a queued job meets when it is not reserved for another runner.

    A queued job may still carry a lease: the runner that sealed its capture but could not store it (a storage
    outage) keeps the sealed file in its tmp/ and reserves the job for the job's next attempt there (fail_in's
    ``reserve_seconds``), renewing the reservation while the file waits (``renew_reserved``). Another runner
    capturing the page meanwhile would make a second capture of it; once the reservation runs out (that host is
    gone, and its file with it), anyone may. Whoever holds the file (``holding``: any process on that host) may
    take the job at any time."""
    ids = sorted(set(holding))
    mine = f" OR id IN ({', '.join('?' * len(ids))})" if ids else ""
    return f" AND (lease_owner IS NULL OR lease_expires < ?{mine})", [now] + ids


def renew(index: Index, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend a lease we hold. False means we lost it (it expired and another runner took the job)."""
    return index.write(lambda conn: conn.execute(
        "UPDATE jobs SET lease_expires = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
        (iso_after(lease_seconds), now_iso(), job_id, owner)).rowcount == 1, serial=False)


def renew_reserved(index: Index, holding: Iterable[int], lease_seconds: float) -> int:
    """Extend the reservations of the queued jobs whose sealed captures wait in this runner's tmp/ (``not_reserved``),
    by whichever process of this host holds them now: how many are still reserved."""
    ids = sorted(set(holding))
    if not ids:
        return 0
    return index.write(lambda conn: conn.execute(
        f"UPDATE jobs SET lease_expires = ? WHERE id IN ({', '.join('?' * len(ids))}) AND state = 'queued' "
        "AND lease_owner IS NOT NULL", [iso_after(lease_seconds)] + ids).rowcount, serial=False)


def note_storing(index: Index, job_id: int, owner: str, warc_path: str, lease_seconds: float) -> bool:
    """Name the sealed WARC about to be put into the store on its job, under the lease (False: the lease is lost,
    so nothing may be put). Written before the PUT: a runner that dies after it, whatever its host, leaves a job
    whose next runner finds that object (sealing.settle_storing) rather than capturing the page twice."""
    return index.write(lambda conn: conn.execute(
        "UPDATE jobs SET storing = ?, lease_expires = ?, updated_at = ? WHERE id = ? AND lease_owner = ? "
        "AND state = 'running'", (warc_path, iso_after(lease_seconds), now_iso(), job_id, owner)).rowcount == 1,
        serial=False)


def _record_attempt(conn: IndexConnection, job: dict[str, Any], owner: str, started_at: str, outcome: str,
                    failure_class: str | None, message: str | None, capture_id: str | None) -> None:
    conn.execute("INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, failure_class, "
                 "message, capture_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (job["id"], job["attempts"], owner, started_at, now_iso(), outcome, failure_class, message,
                  capture_id))


class LeaseLost(Exception):
    """The job is no longer this runner's: its lease expired and another runner claimed it."""


def hold_lease(conn: IndexConnection, job_id: int, owner: str) -> None:
    """Raise LeaseLost unless ``owner`` still holds the job. Called first in the transaction that indexes a
    capture: a runner stalled past its lease (stopped, swapped out) may wake up just before committing, before
    its lease renewer notices, while another runner is capturing the same job. Only one of them may commit."""
    row = conn.execute("SELECT lease_owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None or row[0] != owner:
        raise LeaseLost(f"job {job_id} was taken over by another runner ({row[0] if row else 'gone'})")


def mark_captured(conn: IndexConnection, job: dict[str, Any], owner: str, started_at: str, capture_id: str,
                  outcome: str, failure_class: str | None, message: str | None) -> bool:
    """Finish a job with a sealed capture. Call inside the transaction that indexes the capture."""
    cur = conn.execute("UPDATE jobs SET state = 'done', capture_id = ?, lease_owner = NULL, lease_expires = NULL, "
                       "storing = NULL, last_failure_class = ?, last_failure = ?, updated_at = ? "
                       "WHERE id = ? AND lease_owner = ?",
                       (capture_id, failure_class, message, now_iso(), job["id"], owner))
    _record_attempt(conn, job, owner, started_at, outcome, failure_class, message, capture_id)
    return cur.rowcount == 1


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempts``: base, 2*base, 4*base, ... never more than cap."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def mark_failed(index: Index, job: dict[str, Any], owner: str, started_at: str, failure_class: str, message: str,
                retryable: bool, *, backoff_base: float, backoff_cap: float,
                reserve_seconds: float | None = None) -> str:
    """Record a failed attempt that indexed nothing. Returns the job's new state."""
    return index.write(lambda conn: fail_in(conn, job, owner, started_at, failure_class, message, retryable,
                                            backoff_base=backoff_base, backoff_cap=backoff_cap,
                                            reserve_seconds=reserve_seconds), serial=False)


# Failures of this machine, not of the target: they never use up a job's attempts, so a disk that stays full
# all night leaves every job queued (retried after the backoff) rather than failed for good.
# "storage": the store of sealed files did not take one (team mode: S3 down beyond storage.retry_seconds);
# "index-unavailable": the index server did not answer (team mode: PostgreSQL restarting).
NOT_THE_TARGETS_FAULT = {"disk-full", "index-unavailable", "storage"}


def fail_in(conn: IndexConnection, job: dict[str, Any], owner: str, started_at: str, failure_class: str,
            message: str, retryable: bool, *, backoff_base: float, backoff_cap: float,
            capture_id: str | None = None, reserve_seconds: float | None = None) -> str:
    """Record a failed attempt inside the caller's transaction. Retryable failures go back to the queue with
    exponential backoff until attempts run out; final ones fail the job.

    ``capture_id`` is set when the failure itself was sealed as evidence (an HTTP error page is what the URL
    showed), so the capture is indexed in the same transaction. ``reserve_seconds``: this runner keeps the
    attempt's sealed capture for the job's next attempt (see NOT_RESERVED), so the queued job stays reserved
    for it that long.
    """
    ours = failure_class in NOT_THE_TARGETS_FAULT
    final = not ours and (not retryable or job["attempts"] >= job["max_attempts"])
    state = "failed" if final else "queued"
    delay = 0.0 if final else backoff_seconds(job["attempts"], backoff_base, backoff_cap)
    reserved = reserve_seconds is not None and state == "queued"
    conn.execute("UPDATE jobs SET state = ?, next_attempt_at = ?, lease_owner = ?, lease_expires = ?, "
                 "last_failure_class = ?, last_failure = ?, capture_id = COALESCE(?, capture_id), "
                 "attempts = attempts - ?, updated_at = ? WHERE id = ? AND lease_owner = ?",
                 (state, iso_after(delay), owner if reserved else None,
                  iso_after(delay + reserve_seconds) if reserved else None, failure_class, message, capture_id,
                  int(ours), now_iso(), job["id"], owner))
    _record_attempt(conn, job, owner, started_at, "failed", failure_class, message, capture_id)
    return state


def release(index: Index, job: dict[str, Any], owner: str, started_at: str, reason: str) -> None:
    """Give a job back untouched (shutdown): it is due again at once and the attempt does not count."""
    def give_back(conn: Any) -> None:
        # CASE, not SQLite's two-argument MAX(), which PostgreSQL spells GREATEST.
        conn.execute("UPDATE jobs SET state = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 "
                     "END, lease_owner = NULL, lease_expires = NULL, next_attempt_at = ?, updated_at = ? "
                     "WHERE id = ? AND lease_owner = ?", (now_iso(), now_iso(), job["id"], owner))
        _record_attempt(conn, job, owner, started_at, "released", None, reason, None)
        conn.notify_jobs()
    index.write(give_back, serial=False)


def fail_exhausted_leases(index: Index) -> int:
    """Jobs whose runner died on their last allowed attempt would be claimed forever: fail them instead."""
    return index.write(lambda conn: conn.execute(
        "UPDATE jobs SET state = 'failed', last_failure_class = 'lease-expired', "
        "last_failure = 'the runner holding this job stopped (killed or crashed) on its last attempt', "
        "lease_owner = NULL, lease_expires = NULL, updated_at = ? "
        "WHERE state = 'running' AND lease_expires < ? AND attempts >= max_attempts",
        (now_iso(), now_iso())).rowcount, serial=False)


def live_owners(index: Index) -> set[str]:
    """Owners holding unexpired leases: their temporary files are still being written."""
    return {r[0] for r in index.conn.execute(
        "SELECT lease_owner FROM jobs WHERE state = 'running' AND lease_expires >= ?", (now_iso(),))}


def counts(index: Index) -> dict[str, int]:
    tallies = index.tallies()   # kept by triggers: no count of every job
    return {state: tallies.get(f"jobs:{state}", 0) for state in JOB_STATES}


def status(index: Index, recent: int = 10) -> dict[str, Any]:
    conn = index.conn
    oldest = conn.execute("SELECT id, url, requested_at FROM jobs WHERE state = 'queued' "
                          "ORDER BY requested_at LIMIT 1").fetchone()
    failures = conn.execute(
        "SELECT a.job_id, j.url, a.finished_at, a.failure_class, a.message, j.state FROM attempts a "
        "JOIN jobs j ON j.id = a.job_id WHERE a.outcome = 'failed' ORDER BY a.id DESC LIMIT ?", (recent,)).fetchall()
    running = conn.execute("SELECT id, url, lease_owner, lease_expires FROM jobs WHERE state = 'running' "
                           "ORDER BY id").fetchall()
    return {
        **counts(index),
        "oldest_queued": dict(oldest) if oldest else None,
        "running_jobs": [dict(r) for r in running],
        "recent_failures": [dict(r) for r in failures],
        "captures": index.tallies()["captures"],
    }


def get_job(index: Index, job_id: int) -> dict[str, Any]:
    row = index.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise UserError(f"no job {job_id}")
    return _decode(row)


def jobs_for_url(index: Index, key: str) -> list[dict[str, Any]]:
    return [_decode(r) for r in index.conn.execute("SELECT * FROM jobs WHERE key = ? ORDER BY id", (key,))]


def _decode(row: Any) -> dict[str, Any]:
    job = dict(row)
    job["tags"] = json.loads(job.get("tags") or "[]")
    job["options"] = json.loads(job.get("options") or "{}")
    return job
