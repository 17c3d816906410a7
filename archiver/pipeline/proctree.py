"""Process trees on Linux, read from /proc: what a worker started, and killing all of it at once.

A worker's process group is not enough: Playwright launches Chromium detached (its own session and group),
Chromium forks zygotes and renderers under it, and yt-dlp runs ffmpeg. What ties them together is the parent
chain, so the tree is found through each process's parent in ``/proc/<pid>/stat``. Killing a tree while it
runs races with it (a child forks, a parent dies and its children move to another parent), so ``kill_tree``
first stops every member with SIGSTOP, looks again until no new member appears (a stopped process cannot
fork), and only then sends SIGKILL to all of them.

Chromium's crash handler (``chrome_crashpad_handler``) double-forks away from the tree by design; it exits
by itself as soon as the browser it watches is gone.
"""
from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str          # R, S, D, T (stopped), Z (zombie: dead, waiting to be reaped) ...
    name: str           # the kernel's short name (comm), e.g. "chromium", "ffmpeg", "node-MainThread"
    start_time: int     # clock ticks after boot: with the pid, names one process even if the pid is reused

    @property
    def running(self) -> bool:
        """Alive in any sense that matters: a zombie holds no memory, files or sockets."""
        return self.state not in ("Z", "X")


def read(pid: int) -> Proc | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name is in parentheses and may itself contain spaces and parentheses: split at the last ")".
    head, _, rest = raw.rpartition(")")
    name = head.split("(", 1)[1]
    fields = rest.split()
    return Proc(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), state=fields[0], name=name,
                start_time=int(fields[19]))


def snapshot() -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read(int(entry.name))
            if proc is not None:
                table[proc.pid] = proc
    return table


def children(pid: int) -> list[Proc]:
    """The direct children of ``pid``: from /proc/<pid>/task/*/children where the kernel offers it (cheap),
    else by scanning every process."""
    try:
        pids = {int(n) for f in (PROC / str(pid) / "task").glob("*/children") for n in f.read_text().split()}
    except OSError:
        return [p for p in snapshot().values() if p.ppid == pid]
    if not (PROC / str(pid) / "task" / str(pid) / "children").exists():
        return [p for p in snapshot().values() if p.ppid == pid]
    found = (read(n) for n in sorted(pids))
    return [p for p in found if p is not None and p.ppid == pid]


def descendants(root: int, table: dict[int, Proc] | None = None) -> list[Proc]:
    """Every process below ``root`` (children, their children...), zombies included."""
    table = snapshot() if table is None else table
    children: dict[int, list[Proc]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def tree(root: int) -> list[Proc]:
    """``root`` and its descendants, as they are now."""
    table = snapshot()
    top = table.get(root)
    return ([top] if top else []) + descendants(root, table)


def still_running(procs: list[Proc]) -> list[Proc]:
    """Those of ``procs`` still running (same pid *and* start time, not a zombie)."""
    out = []
    for proc in procs:
        now = read(proc.pid)
        if now is not None and now.start_time == proc.start_time and now.running:
            out.append(now)
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(root: int, max_rounds: int = 50) -> list[Proc]:
    """SIGKILL ``root``, everything below it and their process groups; return the processes killed.

    Freeze first, then kill: see the module docstring. The process groups of the frozen processes are killed
    too (never our own), which catches a member that left the tree but stayed in its group.
    """
    frozen: dict[int, Proc] = {}
    for _ in range(max_rounds):
        new = [p for p in tree(root) if p.pid not in frozen and p.running]
        if not new:
            break
        for proc in new:
            _signal(proc.pid, signal.SIGSTOP)
            frozen[proc.pid] = proc
    own_group = os.getpgrp()
    for proc in frozen.values():
        _signal(proc.pid, signal.SIGKILL)
    for pgid in {p.pgid for p in frozen.values()} - {own_group, 0, 1}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return list(frozen.values())


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphans of our descendants (e.g. a browser whose driver died) become our children instead of init's,
    so they can still be found, killed and reaped. Linux only; False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (a worker never outlives its
    supervisor, even one killed with SIGKILL). False where unsupported."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def reap(pid: int) -> bool:
    """Collect the exit status of a child that has died (only that pid: never steal another waiter's child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid
