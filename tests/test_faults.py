"""Faults a pipeline must hold through: a capture stuck beyond any in-process timeout, a full disk, and the
logs that explain both the morning after."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from archiver.pipeline import proctree
from conftest import CLI, index_conn


def _db(archive: Path):
    return index_conn(archive)


def _log_events(archive: Path) -> list[dict[str, Any]]:
    lines = [line for f in sorted((archive / "logs").glob("archiver-*.jsonl")) for line in f.read_text().splitlines()]
    return [json.loads(line) for line in lines]


def _wait_for(condition, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded poll: the condition depends on another process
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- the hard timeout ---------------------------------------------------------------------------------

def test_kill_tree_reaches_a_grandchild_in_its_own_session():
    # As Playwright does with Chromium: the grandchild leaves the process group (setsid), so killpg would
    # miss it; only the parent chain finds it.
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        # Both children must have become `sleep`: until its exec, setsid(1) may not have left the group yet.
        def settled() -> list[proctree.Proc] | None:
            procs = proctree.tree(parent.pid)
            return procs if sum(p.name == "sleep" for p in procs) == 2 else None
        procs = _wait_for(settled, 10, "the tree")
        assert len({p.pgid for p in procs}) == 2, "the setsid grandchild should have its own group"
        killed = proctree.kill_tree(parent.pid)
        assert {p.pid for p in procs} <= {p.pid for p in killed}
        parent.wait(timeout=10)
        _wait_for(lambda: not proctree.still_running(procs), 10, "the killed processes to be gone")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _is_chromium(name: str) -> bool:
    """A Chromium process by its kernel name: "chromium", or "chromium-headle" (the headless shell, cut to 15)."""
    return name.startswith("chromium")


def _worker_of(runner_pid: int) -> int | None:
    """The runner's worker process that has a Chromium below it, once it has one."""
    for child in proctree.children(runner_pid):
        if any(_is_chromium(p.name) for p in proctree.descendants(child.pid)):
            return child.pid
    return None


def _wedge_worker_mid_capture(proc: subprocess.Popen, archive: Path, timeout: float) -> tuple[str, str, list]:
    """Stop (SIGSTOP) the runner's worker once it is capturing in Chromium, as a wedged process is stopped, and
    wait for the runner to end. Returns its stdout, stderr and the worker's process tree as it was."""
    try:
        worker = _wait_for(lambda: _worker_of(proc.pid), 60, "the worker to start Chromium")
        _wait_for(lambda: list((archive / "tmp").glob("*.part")), 30, "the temporary WARC")
        doomed = proctree.tree(worker)
        assert any(_is_chromium(p.name) for p in doomed)
        os.kill(worker, signal.SIGSTOP)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, err, doomed


def test_hard_timeout_kills_the_worker_and_its_chromium_then_a_fresh_worker_goes_on(cli, site):
    # Hard limit 8 + 1 s. The capture's own limit (8 s) would end a merely slow page; the worker is instead
    # stopped mid-capture (SIGSTOP), as a wedged process is, so nothing inside it can run any timeout at all.
    env = {"ARCHIVER_CAPTURE_TIMEOUT_SECONDS": "8", "ARCHIVER_CAPTURE_HARD_TIMEOUT_GRACE_SECONDS": "1"}
    hanging = site.url + "/test/hanging-subresource/?seconds=60"
    after = site.url + "/test/pages/77"
    assert cli("add", "--priority", "1", hanging).code == 0
    assert cli("add", "--no-browser", after).code == 0
    runner = cli.popen("run", "--once", env=env)
    out, err, doomed = _wedge_worker_mid_capture(runner, cli.archive, 90)
    assert runner.returncode == 0, err
    assert "hard timeout" in err

    # Nothing of that worker is left: not the worker, not its Playwright driver, not one Chromium process.
    assert proctree.still_running(doomed) == []
    assert not list((cli.archive / "tmp").glob("*.part"))

    with _db(cli.archive) as conn:
        jobs = {r["url"]: dict(r) for r in conn.execute("SELECT * FROM jobs")}
        attempts = {r["job_id"]: dict(r) for r in conn.execute("SELECT * FROM attempts")}
        captured = {r["job_id"] for r in conn.execute("SELECT job_id FROM captures")}
    stuck, next_one = jobs[hanging], jobs[after]
    attempt = attempts[stuck["id"]]
    assert attempt["outcome"] == "failed" and attempt["failure_class"] == "timeout"
    assert re.fullmatch(r"hard timeout: killed after \d+ s", attempt["message"]), attempt["message"]
    assert int(attempt["message"].split()[-2]) >= 9
    # Retryable: back in the queue with a backoff, nothing sealed for it.
    assert stuck["state"] == "queued" and stuck["last_failure_class"] == "timeout"
    assert stuck["next_attempt_at"] > attempt["finished_at"] and stuck["id"] not in captured
    # The next job was captured by a fresh worker, not the killed one.
    assert next_one["state"] == "done" and next_one["id"] in captured
    assert attempts[next_one["id"]]["worker"] != attempt["worker"]

    kills = [e for e in _log_events(cli.archive) if e["event"] == "hard-timeout"]
    assert len(kills) == 1 and kills[0]["job_id"] == stuck["id"] and kills[0]["class"] == "timeout"
    assert any(_is_chromium(name) for name in kills[0]["processes"])
    assert cli("verify").code == 0


def test_capture_in_the_foreground_has_the_same_hard_timeout(cli, site):
    # `archiver capture` runs its jobs under the same supervisor as `run`: a wedged worker is killed with its
    # Chromium, the rest of the URLs given are captured by a fresh worker, and the exit status says not all ok.
    env = {"ARCHIVER_CAPTURE_TIMEOUT_SECONDS": "8", "ARCHIVER_CAPTURE_HARD_TIMEOUT_GRACE_SECONDS": "1"}
    hanging = site.url + "/test/hanging-subresource/?seconds=60"
    after = site.url + "/test/pages/78"
    capture = cli.popen("capture", "--json", hanging, after, env=env)
    out, err, doomed = _wedge_worker_mid_capture(capture, cli.archive, 120)
    assert capture.returncode == 1, err
    outcomes = {o["url"]: o for o in json.loads(out)}
    assert (outcomes[hanging]["status"], outcomes[hanging]["failure_class"]) == ("failed", "timeout")
    assert "hard timeout" in outcomes[hanging]["message"]
    assert outcomes[after]["status"] == "ok" and outcomes[after]["capture_id"]
    assert proctree.still_running(doomed) == []
    assert [e["job_id"] for e in _log_events(cli.archive) if e["event"] == "hard-timeout"] == \
        [outcomes[hanging]["job_id"]]
    assert cli("verify").code == 0


def test_a_worker_wedged_after_the_second_signal_is_killed_and_its_job_released(cli, site):
    from archiver.pipeline.supervisor import ABANDON_GRACE_SECONDS
    slow = site.url + "/test/slow?seconds=60"
    assert cli("add", "--no-browser", slow).code == 0
    runner = cli.popen("run")
    try:
        with _db(cli.archive) as conn:
            _wait_for(lambda: conn.execute("SELECT state FROM jobs").fetchone()[0] == "running", 30, "the claim")
        [worker] = [p for p in proctree.children(runner.pid) if proctree.descendants(p.pid) == []
                    and (Path(f"/proc/{p.pid}/cmdline").read_bytes().find(b"spawn_main") >= 0)]
        doomed = proctree.tree(worker.pid)
        os.kill(worker.pid, signal.SIGSTOP)  # it can no longer hear the signals it is sent
        started = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        # Two signals sent at once can arrive as one (the kernel keeps one pending per kind): send the second
        # once the first has been taken.
        _wait_for(lambda: any(e["event"] == "signal" for e in _log_events(cli.archive)), 10, "the first signal")
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, err
    assert ABANDON_GRACE_SECONDS <= time.monotonic() - started < ABANDON_GRACE_SECONDS + 10
    assert proctree.still_running(doomed) == []
    with _db(cli.archive) as conn:
        job = conn.execute("SELECT state, attempts FROM jobs").fetchone()
        outcomes = [r[0] for r in conn.execute("SELECT outcome FROM attempts")]
    assert tuple(job) == ("queued", 0) and outcomes == ["released"]
    assert not list((cli.archive / "tmp").glob("*.part"))


def _archive_with_one_page_queued(tmp_path: Path, url: str, monkeypatch) -> tuple[Any, Any]:
    """An archive (opened in this process, for runners called in-process) with ``url`` queued --no-browser."""
    from archiver.pipeline import queue
    from archiver import urls
    from archiver.store.archive import Archive

    monkeypatch.setenv("ARCHIVER_NETWORK_ALLOW_PRIVATE", "true")
    archive = Archive.open(tmp_path / "archive")
    index = archive.index()
    queue.enqueue(index, [urls.parse(url)], requested_by="t", tags=[], note=None, priority=0, max_attempts=3,
                  options={"no_browser": True})
    return archive, index


def test_a_capture_indexed_but_not_yet_moved_into_warcs_is_moved_by_the_next_runner(tmp_path, site, monkeypatch):
    # The index is the commit point of a seal (warc.py): a runner stopped between indexing a capture and moving
    # its file into warcs/ leaves the file in tmp/, and the next runner finishes the move instead of removing it.
    from archiver.store import warc
    from archiver.custody.verify import verify
    from archiver.pipeline.worker import run_worker

    archive, index = _archive_with_one_page_queued(tmp_path, site.url + "/test/pages/5", monkeypatch)
    real_finish_seal = warc.finish_seal

    def stopped_here(tmp: Path, final: Path) -> bool:
        raise OSError(errno.EIO, "the runner stopped between indexing and moving")

    monkeypatch.setattr(warc, "finish_seal", stopped_here)
    [outcome] = run_worker(archive, once=True, handle_signals=False).outcomes
    assert outcome.status == "ok" and outcome.job_state == "done"
    warc_path = index.conn.execute("SELECT warc_path FROM captures").fetchone()[0]
    assert not (archive.path / warc_path).exists() and len(list((archive.path / "tmp").glob("*.part"))) == 1

    monkeypatch.setattr(warc, "finish_seal", real_finish_seal)
    run_worker(archive, once=True, handle_signals=False)  # the next runner to start settles tmp/
    assert (archive.path / warc_path).is_file() and not list((archive.path / "tmp").glob("*"))
    assert verify(archive.path, index).ok
    assert index.conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0] == 1
    index.close()


def test_a_runner_that_lost_its_lease_before_committing_discards_its_capture(tmp_path, site, monkeypatch):
    # A runner stalled past its lease wakes up with a finished capture before its lease renewer has noticed that
    # another runner took the job over: it must not index a second capture of the job.
    from archiver.pipeline import worker as worker_module
    from archiver.custody.verify import verify
    from archiver.pipeline.worker import run_worker

    archive, index = _archive_with_one_page_queued(tmp_path, site.url + "/test/pages/6", monkeypatch)
    real_capture_http = worker_module.capture_http

    async def taken_over_meanwhile(url, warc, settings):
        result = await real_capture_http(url, warc, settings)
        with index.transaction() as conn:  # what another runner's claim after our lease expired leaves
            conn.execute("UPDATE jobs SET lease_owner = 'other-runner'")
        return result

    monkeypatch.setattr(worker_module, "capture_http", taken_over_meanwhile)
    [outcome] = run_worker(archive, once=True, handle_signals=False).outcomes
    assert outcome.status == "released" and outcome.capture_id is None
    assert index.conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0] == 0
    assert not list((archive.path / "warcs").rglob("*.warc.gz")) and not list((archive.path / "tmp").glob("*"))
    job = index.conn.execute("SELECT state, lease_owner FROM jobs").fetchone()
    assert tuple(job) == ("running", "other-runner")   # still the other runner's to finish
    assert verify(archive.path, index).ok
    index.close()


def test_a_lease_renewal_that_finds_the_index_away_is_tried_again(tmp_path, site, monkeypatch):
    # The index server away for longer than a reconnect waits (PostgreSQL restarting slowly) makes one renewal
    # raise. The renewer must go on renewing -- had it ended, the lease would lapse under a capture still running,
    # and another runner would take the job and capture the page a second time.
    from archiver.errors import IndexUnavailable
    from archiver.pipeline import queue
    from archiver.pipeline.worker import run_worker

    monkeypatch.setenv("ARCHIVER_QUEUE_LEASE_SECONDS", "2")   # a renewal every 0.67 s
    archive, index = _archive_with_one_page_queued(tmp_path, site.url + "/test/slow?seconds=3", monkeypatch)
    real_renew, calls = queue.renew, []

    def away_once(*args: Any, **kwargs: Any) -> bool:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise IndexUnavailable("the index server is away")
        return real_renew(*args, **kwargs)

    monkeypatch.setattr(queue, "renew", away_once)
    [outcome] = run_worker(archive, once=True, handle_signals=False).outcomes
    assert outcome.status == "ok" and outcome.job_state == "done"
    assert len(calls) >= 3   # renewed after the failure, through the rest of the capture
    index.close()


# ---- full disk ----------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs), so ENOSPC comes from the kernel as it would on a full archive disk."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; test_disk_full_injected_* covers the same path")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
                    "test_disk_full_injected_* covers the same path")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def _integrity(archive: Path) -> str:
    with index_conn(archive, named_rows=False) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.sqlite_only   # the index's own file on the full disk
def test_disk_full_on_a_real_small_filesystem(small_disk, site):
    cli = CLI(small_disk / "archive")
    # A backoff short enough to retry within the test, long enough that the first run does not retry at once.
    cli.env["ARCHIVER_QUEUE_BACKOFF_SECONDS"] = "30"
    assert cli("add", site.article_url).code == 0
    # Room for the index's write-ahead log, not for the article's WARC (about 1.9 MB with its screenshot).
    filler = _fill(small_disk, leave=384 * 1024)
    result = cli("run", "--once")
    assert result.code == 0, result.err

    with _db(cli.archive) as conn:
        job = dict(conn.execute("SELECT * FROM jobs").fetchone())
        attempt = dict(conn.execute("SELECT * FROM attempts").fetchone())
        assert conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0] == 0
    assert job["state"] == "queued" and job["last_failure_class"] == "disk-full"
    assert job["attempts"] == 0   # the machine's fault, not the target's: a night of full disk fails no job
    assert attempt["outcome"] == "failed" and attempt["failure_class"] == "disk-full"
    assert "disk full while writing" in attempt["message"]
    # Nothing half-sealed, nothing left behind, the index intact.
    assert not list((cli.archive / "warcs").rglob("*.warc.gz"))
    assert not list((cli.archive / "tmp").glob("*"))
    assert _integrity(cli.archive) == "ok"
    assert cli("verify").code == 0
    logged = [e for e in _log_events(cli.archive) if e.get("class") == "disk-full"]
    assert {"disk-full", "capture"} <= {e["event"] for e in logged}

    # With space again, the same job is captured (the person asking now does not wait for the backoff).
    filler.unlink()
    again = cli("capture", site.article_url, "--json")
    assert again.code == 0, again.err
    assert again.json()[0]["job_id"] == job["id"] and again.json()[0]["status"] == "ok"
    assert _integrity(cli.archive) == "ok"
    assert cli("verify").code == 0


class _FullDisk(io.FileIO):
    """A file on a disk with ``budget`` bytes left: writes beyond it fail with ENOSPC, as the kernel's do."""
    budget = 4096

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        return super().write(data)


def test_disk_full_injected_at_the_warc_file(tmp_path, site, monkeypatch):
    # Runs everywhere (no mount needed), in-process so that warc._open_temp can be replaced: see its docstring.
    from archiver.pipeline import queue
    from archiver import urls
    from archiver.store import warc
    from archiver.store.archive import Archive
    from archiver.pipeline.worker import run_worker

    monkeypatch.setenv("ARCHIVER_NETWORK_ALLOW_PRIVATE", "true")
    # A large buffer, so ENOSPC comes at flush time with bytes still buffered, and again when the file is closed.
    monkeypatch.setattr(warc, "_open_temp", lambda path: io.BufferedWriter(_FullDisk(path, "xb"), 1 << 20))
    archive = Archive.open(tmp_path / "archive")
    index = archive.index()
    # A 60 KB image: far past the 4 KB left on the "disk".
    [queued] = queue.enqueue(index, [urls.parse(site.url + "/static/img/evacuation-route-map.png")],
                             requested_by="t", tags=[], note=None, priority=0, max_attempts=3)
    stats = run_worker(archive, once=True, handle_signals=False)
    [outcome] = stats.outcomes
    assert (outcome.status, outcome.failure_class, outcome.job_state) == ("failed", "disk-full", "queued")
    assert "bytes free" in outcome.message
    assert queue.get_job(index, queued.job["id"])["state"] == "queued"
    assert not list((archive.path / "tmp").glob("*")) and not list((archive.path / "warcs").rglob("*.warc.gz"))
    assert index.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    index.close()


# ---- logs ---------------------------------------------------------------------------------------------

def test_a_failed_capture_is_logged_as_json_with_its_class(cli):
    with socket.socket() as s:  # a port nobody listens on: the capture fails with "refused"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gone"
    assert cli("add", "--no-browser", url).code == 0
    result = cli("run", "--once", env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"})
    assert result.code == 0, result.err
    events = _log_events(cli.archive)
    for e in events:
        assert {"ts", "level", "event", "pid", "worker", "message"} <= e.keys()
    [failed] = [e for e in events if e["event"] == "capture"]
    assert failed["url"] == url and failed["status"] == "failed" and failed["class"] == "refused"
    assert failed["job_id"] == 1 and failed["worker"] == "w1" and failed["seconds"] >= 0
    assert {"run.start", "worker.start", "claim", "capture", "run.stop"} <= {e["event"] for e in events}
    assert "{" not in result.err  # people get lines, not JSON
