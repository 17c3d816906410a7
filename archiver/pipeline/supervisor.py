"""`archiver run`: worker processes under a supervisor that enforces a hard time limit on every capture.

capture.timeout_seconds is kept inside the worker, by the capture code itself. It cannot help when the worker
is stuck where no such check runs: an await without a bound, a blocking call, a wedged Chromium or ffmpeg, a
process stopped by the machine. So ``archiver run`` (any ``--workers N``, 1 included) runs each worker as a
child process that reports on a pipe when it starts and ends a job. If a job runs past its hard limit
(``hard_limit``), the supervisor kills the worker with everything below it (proctree.kill_tree: Chromium is
launched detached by Playwright, so its process group alone would miss it), settles the worker's temporary
WARC (removed, or moved into place if the index already holds it: warc.py, sealing), records the attempt as failed with class ``timeout`` (retryable, with backoff) through the
queue functions, and starts a fresh worker.

Signals: the first SIGINT/SIGTERM is forwarded once to every worker (stop claiming, finish the capture in
hand); a second is forwarded again (give the capture in hand back to the queue). A worker that has not
exited ABANDON_GRACE_SECONDS after the second signal is killed and its job released by the supervisor.
Workers run in their own process groups, so a Ctrl-C at the terminal reaches the supervisor only and
counts once; they die with the supervisor (PR_SET_PDEATHSIG), so a `kill -9` of the runner leaves no
worker capturing unsupervised: its lease expires and another runner takes the job.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from archiver import logs
from archiver.errors import IndexUnavailable
from archiver.pipeline import proctree, queue
from archiver.store.archive import Archive
from archiver.config import Settings
from archiver.store.index import now_iso
from archiver.store.warc import owner_tag, temp_files_of
from archiver.pipeline.worker import EventHook, Outcome, Worker, run_worker, settle_temp_files

log = logging.getLogger("archiver.pipeline.supervisor")

# A worker still running this long after the second stop signal is killed and its job released.
ABANDON_GRACE_SECONDS = 10.0
# Longest the loop sleeps: how late a signal, a deadline or an exit can be noticed.
TICK_SECONDS = 0.5
# How often dead processes handed to us as subreaper (Chromium's crash handlers, mostly) are collected.
REAP_EVERY_SECONDS = 5.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
# Job kinds whose capture may download video for up to video.max_seconds (yt-dlp, ffmpeg).
VIDEO_KINDS = ("video", "tweet", "post")
# Chromium's crash handler double-forks away from its browser by design and exits with it (proctree.py).
_SELF_EXITING = ("chrome_crashpad",)


def hard_limit(settings: Settings, job: dict[str, Any]) -> float:
    """Seconds a capture of ``job`` may run before its worker is killed."""
    cap = settings["capture"]
    limit = cap["timeout_seconds"] + cap["hard_timeout_grace_seconds"]
    if job["kind"] in VIDEO_KINDS:
        limit += settings["video"]["max_seconds"]
    return limit


@dataclass
class SuperviseResult:
    outcomes: list[Outcome] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class _Slot:
    """One worker position: its process, its pipe, and the job in hand (as the worker reported it)."""
    number: int
    process: BaseProcess
    conn: Connection
    owner: str | None = None
    ready: bool = False                  # signal handlers installed; before that a signal would kill it
    pending_signals: list[int] = field(default_factory=list)
    pipe_open: bool = True
    job: dict[str, Any] | None = None
    job_started_at: str = ""
    job_started: float = 0.0             # monotonic
    limit: float = 0.0
    killed: bool = False                 # by the supervisor; the job in hand is already accounted for
    finished: bool = False


class Supervisor:
    def __init__(self, archive: Archive, config_file: str | None, workers: int, once: bool,
                 on_event: EventHook | None = None, job_ids: list[int] | None = None):
        self.archive = archive
        self.settings = archive.settings
        self.config_file = config_file
        self.workers = workers
        self.once = once
        self.on_event = on_event or _print_line
        # `archiver capture`: only these jobs (and the evidence they lead to, with --follow), each tried once.
        # Kept here as well as in the worker so that a worker started after a kill goes on with the rest.
        self.job_ids = list(job_ids) if job_ids is not None else None
        self.result = SuperviseResult()
        self.slots: dict[int, _Slot] = {}
        self.signals: list[int] = []     # received, not yet logged (logging is not safe in a signal handler)
        self.stop_requests = 0
        self.abandon_at: float | None = None
        self.spared: set[int] = set()   # our own helpers (multiprocessing's resource tracker): never orphans
        self._ctx = multiprocessing.get_context("spawn")

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> SuperviseResult:
        proctree.become_subreaper()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        logs.event(log, logging.INFO, "run.start", f"run started: {self.workers} worker(s)"
                   f"{', --once' if self.once else ''}", workers=self.workers, once=self.once)
        started = time.monotonic()
        try:
            for number in range(1, self.workers + 1):
                self._start(number)
            reaped = time.monotonic()
            while not all(slot.finished for slot in self.slots.values()):
                self._note_signals()
                self._wait()
                self._enforce_deadlines()
                self._enforce_abandon()
                if time.monotonic() - reaped > REAP_EVERY_SECONDS:
                    self._reap_orphans()
                    reaped = time.monotonic()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots.values():  # only on an error in the supervisor itself: leave nothing behind
                if not slot.finished and slot.process.pid:
                    proctree.kill_tree(slot.process.pid)
        counts: dict[str, int] = {}
        for o in self.result.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        logs.event(log, logging.INFO, "run.stop", "run finished: " + (
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing due"),
            seconds=time.monotonic() - started, exit_code=self.result.exit_code, **counts)
        return self.result

    def _start(self, number: int) -> None:
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=worker_main, name=f"archiver-w{number}", daemon=False,
                                    args=(str(self.archive.path), self.config_file, self.once, sender, number,
                                          os.getpid(), self.job_ids))
        first = not self.slots
        # Stop signals wait while a worker starts: our handler must find its slot to forward them, and the worker
        # (which inherits the mask) takes them only once its own handlers are in place; before that they would
        # kill it outright.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
            sender.close()  # the worker holds the only write end, so its death shows as EOF here
            self.slots[number] = _Slot(number, process, receiver)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if first:
            # Our children besides the first worker are not a worker's leftovers: multiprocessing's resource
            # tracker (started with the first worker), or whatever the caller ran before us.
            self.spared = {p.pid for p in proctree.children(os.getpid())} - {process.pid}
        logs.event(log, logging.INFO, "worker.start", f"worker {number} started (pid {process.pid})",
                   worker_number=number, worker_pid=process.pid)

    def _wait(self) -> None:
        live = [s for s in self.slots.values() if not s.finished]
        waitables: list[Any] = [s.conn for s in live if s.pipe_open] + [s.process.sentinel for s in live]
        now = time.monotonic()
        timeout = TICK_SECONDS
        for slot in live:
            if slot.job is not None and not slot.killed:
                timeout = min(timeout, max(0.0, slot.job_started + slot.limit - now))
        ready = wait(waitables, timeout)
        for slot in live:
            if slot.pipe_open and slot.conn in ready:
                self._drain(slot)
            if slot.process.sentinel in ready:
                self._exited(slot)

    def _drain(self, slot: _Slot) -> None:
        try:
            while slot.pipe_open and slot.conn.poll():
                kind, data = slot.conn.recv()
                self._message(slot, kind, data)
        except (EOFError, OSError):
            slot.pipe_open = False

    def _message(self, slot: _Slot, kind: str, data: dict[str, Any]) -> None:
        if kind == "hello":
            slot.owner, slot.ready = data["owner"], True
            for signum in slot.pending_signals:
                _kill(slot.process.pid, signum)
            slot.pending_signals.clear()
            return
        if kind == "start":
            slot.job, slot.job_started_at = data["job"], data.get("started_at") or now_iso()
            slot.job_started, slot.limit = time.monotonic(), hard_limit(self.settings, data["job"])
            if self.job_ids is not None and data["job"]["id"] in self.job_ids:
                self.job_ids.remove(data["job"]["id"])
        elif kind == "done":
            slot.job = None
            self.result.outcomes.append(data["outcome"])
            if self.job_ids is not None:
                self.job_ids.extend(data["outcome"].children)
        self.on_event(kind, data)

    # -- signals --------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Runs between two bytecodes of the loop: record and forward only (os.kill is safe here, logging is not).
        self.signals.append(signum)
        self.stop_requests += 1
        for slot in self.slots.values():
            if slot.finished:
                continue
            if slot.ready:
                _kill(slot.process.pid, signum)
            else:
                slot.pending_signals.append(signum)

    def _note_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            name = signal.Signals(signum).name
            if self.stop_requests >= 2 and self.abandon_at is None:
                self.abandon_at = time.monotonic() + ABANDON_GRACE_SECONDS
                logs.event(log, logging.WARNING, "signal", f"{name} again: captures in hand go back to the queue",
                           signal=name, action="abandon")
            elif self.stop_requests == 1:
                logs.event(log, logging.WARNING, "signal", f"{name}: no new captures; finishing those in hand "
                           f"(send it again to give them back to the queue)", signal=name, action="stop")

    @property
    def stopping(self) -> bool:
        return self.stop_requests > 0

    def _enforce_abandon(self) -> None:
        if self.abandon_at is None or time.monotonic() < self.abandon_at:
            return
        for slot in self.slots.values():
            if slot.finished or slot.killed:
                continue
            killed = self._kill(slot)
            if slot.job is not None:
                self._release(slot, "runner stopped by a second signal; worker killed")
            logs.event(log, logging.WARNING, "worker.killed", f"worker {slot.number} had not stopped "
                       f"{ABANDON_GRACE_SECONDS:.0f} s after the second signal: killed ({len(killed)} processes)",
                       worker_number=slot.number, worker_pid=slot.process.pid)
            self._exited(slot)

    # -- the hard limit -------------------------------------------------------------------------------

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.finished or slot.killed or slot.job is None or now < slot.job_started + slot.limit:
                continue
            self._drain(slot)  # the "done" may be waiting in the pipe: then there is nothing to kill
            if slot.job is not None:
                self._hard_kill(slot)

    def _hard_kill(self, slot: _Slot) -> None:
        job = slot.job
        assert job is not None
        elapsed = time.monotonic() - slot.job_started
        killed = self._kill(slot)
        message = f"hard timeout: killed after {elapsed:.0f} s"
        state = self._record_failure(slot, "timeout", message)
        names = sorted({p.name for p in killed})
        logs.event(log, logging.ERROR, "hard-timeout",
                   f"{message}: job {job['id']} {job['url']} (worker {slot.number}, limit {slot.limit:.0f} s; "
                   f"killed {len(killed)} processes: {', '.join(names)})",
                   job_id=job["id"], url=job["url"], host=job.get("host"), **{"class": "timeout"},
                   seconds=elapsed, limit=slot.limit, worker_number=slot.number, worker_pid=slot.process.pid,
                   killed=len(killed), processes=names, job_state=state)
        outcome = Outcome(job["id"], job["url"], "failed", failure_class="timeout", message=message,
                          job_state=state, seconds=elapsed)
        slot.job = None
        self.result.outcomes.append(outcome)
        self.on_event("done", {"job": job, "outcome": outcome})
        self._exited(slot)

    def _kill(self, slot: _Slot) -> list[proctree.Proc]:
        """Kill the worker's whole tree, wait for it, and settle the temporary WARC it can no longer finish."""
        slot.killed = True
        killed = proctree.kill_tree(slot.process.pid) if slot.process.pid else []
        slot.process.join(timeout=10)
        self._reap_orphans()
        self._settle_temp_files(slot)
        return killed

    def _settle_temp_files(self, slot: _Slot) -> None:
        """The dead worker's temporary WARC: removed, or moved into place if it was indexed already."""
        paths = temp_files_of(self.archive.path, owner_tag(slot.owner)) if slot.owner else []
        if not paths:
            return
        try:
            index = self.archive.index()
            try:
                settle_temp_files(self.archive, index, paths)
            finally:
                index.close()
        except (sqlite3.Error, IndexUnavailable) as exc:
            # Left for the next worker to start, which settles every temporary file without a live writer.
            logs.event(log, logging.ERROR, "index-unreadable", f"cannot settle {len(paths)} temporary file(s) "
                       f"of worker {slot.number}: {exc}")

    def _record_failure(self, slot: _Slot, failure_class: str, message: str) -> str:
        qs = self.settings["queue"]
        try:
            index = self.archive.index()
            try:
                return queue.mark_failed(index, slot.job, slot.owner or "", slot.job_started_at, failure_class,
                                         message, True, backoff_base=qs["backoff_seconds"],
                                         backoff_cap=qs["backoff_max_seconds"])
            finally:
                index.close()
        except (sqlite3.Error, IndexUnavailable) as exc:
            logs.event(log, logging.ERROR, "index-unwritable", f"cannot record {failure_class} of job "
                       f"{slot.job['id']}: {exc}; it is retried when its lease expires", job_id=slot.job["id"])
            return "running"

    def _release(self, slot: _Slot, reason: str) -> None:
        try:
            index = self.archive.index()
            try:
                queue.release(index, slot.job, slot.owner or "", slot.job_started_at, reason)
            finally:
                index.close()
        except (sqlite3.Error, IndexUnavailable) as exc:
            logs.event(log, logging.ERROR, "index-unwritable", f"cannot release job {slot.job['id']}: {exc}; "
                       f"it is retried when its lease expires", job_id=slot.job["id"])
        outcome = Outcome(slot.job["id"], slot.job["url"], "released", message="given back to the queue")
        self.result.outcomes.append(outcome)
        self.on_event("done", {"job": slot.job, "outcome": outcome})
        slot.job = None

    # -- exits ----------------------------------------------------------------------------------------

    def _exited(self, slot: _Slot) -> None:
        if slot.finished:
            return
        self._drain(slot)
        slot.process.join(timeout=10)
        slot.finished = True
        code = slot.process.exitcode
        self._kill_orphans()
        if slot.killed:
            pass  # the kill was accounted for by whoever killed it
        elif slot.job is not None:
            # Died in the middle of a capture (a crash, the OOM killer).
            self._settle_temp_files(slot)
            message = f"worker process died during the capture (exit code {code})"
            state = self._record_failure(slot, "internal", message)
            logs.event(log, logging.ERROR, "worker.died", f"{message}: job {slot.job['id']} {slot.job['url']}",
                       job_id=slot.job["id"], url=slot.job["url"], worker_number=slot.number, exit_code=code,
                       **{"class": "internal"})
            outcome = Outcome(slot.job["id"], slot.job["url"], "failed", failure_class="internal",
                              message=message, job_state=state)
            self.result.outcomes.append(outcome)
            self.on_event("done", {"job": slot.job, "outcome": outcome})
            slot.job = None
        elif code not in (0, None):
            # Failed outside any capture (e.g. the index could not be written): restarting would fail the same.
            self.result.exit_code = 1
            logs.event(log, logging.ERROR, "worker.exit", f"worker {slot.number} exited with code {code}",
                       worker_number=slot.number, exit_code=code)
            return
        else:
            logs.event(log, logging.INFO, "worker.stop", f"worker {slot.number} finished", worker_number=slot.number,
                       exit_code=code)
            return
        if not self.stopping and self.job_ids != []:
            self._start(slot.number)

    def _reap_orphans(self) -> None:
        """Collect dead processes that were handed to us as subreaper (only those pids: never the workers,
        whose exit status multiprocessing collects)."""
        workers = {s.process.pid for s in self.slots.values()}
        for proc in proctree.children(os.getpid()):
            if proc.pid not in workers and not proc.running:
                proctree.reap(proc.pid)

    def _kill_orphans(self) -> None:
        """After a worker is gone, whatever it started that outlived it was handed to us: kill it."""
        live = {s.process.pid for s in self.slots.values() if not s.finished}
        dead_workers = {s.process.pid for s in self.slots.values() if s.finished}
        for proc in proctree.children(os.getpid()):
            if proc.pid in live or proc.pid in dead_workers or proc.pid in self.spared or not proc.running:
                continue
            if proc.name.startswith(_SELF_EXITING):
                continue
            killed = proctree.kill_tree(proc.pid)
            logs.event(log, logging.WARNING, "orphans", f"killed {len(killed)} process(es) left by a worker: "
                       f"{', '.join(sorted({p.name for p in killed}))}", killed=len(killed))
        self._reap_orphans()


def _kill(pid: int | None, signum: int) -> None:
    if pid:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _print_line(kind: str, data: dict[str, Any]) -> None:
    """Progress with several workers: one line per finished job or check."""
    if kind == "check":
        c = data["outcome"]
        print(f"[check] {c.result} {c.url}", file=sys.stderr, flush=True)
        return
    if kind != "done":
        return
    o: Outcome = data["outcome"]
    detail = o.capture_id or ""
    if o.failure_class:
        detail += f" [{o.failure_class}: {o.message}]"
    print(f"{o.status:<8} {o.url} {detail} ({o.seconds:.1f}s)", file=sys.stderr, flush=True)


def supervise(archive: Archive, config_file: str | None, workers: int, once: bool,
              on_event: EventHook | None = None, job_ids: list[int] | None = None) -> SuperviseResult:
    """Run ``workers`` supervised worker processes until they finish (``once``) or a signal stops them;
    with ``job_ids``, only those jobs and the children they lead to (``archiver capture``)."""
    return Supervisor(archive, config_file, workers, once, on_event, job_ids).run()


# -- the worker's side ----------------------------------------------------------------------------------

def worker_main(archive_path: str, config_file: str | None, once: bool, conn: Connection, number: int,
                supervisor_pid: int, job_ids: list[int] | None = None) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, nothing inherited but the pipe)."""
    # Own process group: a Ctrl-C at the terminal reaches the supervisor only, which forwards it once.
    os.setpgrp()
    proctree.die_with_parent()
    if os.getppid() != supervisor_pid:
        return  # the supervisor died before we could ask to die with it
    archive = Archive.open(archive_path, config_file)
    logs.setup(archive.path, archive.settings, worker=f"w{number}")

    def send(kind: str, data: dict[str, Any]) -> None:
        try:
            conn.send((kind, data))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the supervisor is gone, and PR_SET_PDEATHSIG ends this process

    def ready(worker: Worker) -> None:
        # Handlers are in place: stop signals, blocked since the supervisor started us, may come in now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        send("hello", {"owner": worker.owner})
        logs.event(log, logging.INFO, "worker.ready", f"worker {number} ready as {worker.owner}", owner=worker.owner)

    stats = run_worker(archive, once, job_ids=job_ids, on_event=send, on_ready=ready)
    conn.close()
    if stats.error:
        sys.exit(1)
