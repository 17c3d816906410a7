"""Hostile servers (tests/hostile_server.py): every limit holds, every failure is classified, and the worker
carries on.

One `archiver run --once` per way of capturing (the browser, and --no-browser) takes every hostile URL, each
followed by a good one that must still be captured ok. The run is measured from outside (wall time, and the
peak memory of the largest process it started, Chromium included), and the archive must verify clean with
nothing half-written left in it. Limits are set small through ARCHIVER_* variables so the file stays fast.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

import hostile_server
from archiver import config
from archiver.capture.base import DripGuard, SlowDrip
from conftest import CLI, sealed_warc, stored_object, stored_warcs
from warcutil import Rec, header, read_records, responses

MAX_RESOURCE = 256 * 1024         # capture.max_resource_bytes: the browser stores bodies inflated, cut here
MAX_DOWNLOAD = 16 * 1024 * 1024   # capture.max_download_bytes: above the bomb's ~10.6 MB on the wire
MAX_DECODED = 4 * 1024 * 1024     # capture.max_decoded_bytes: the direct fetcher inflates no further
MAX_REDIRECTS = 5

HOSTILE_ENV = {
    "ARCHIVER_QUEUE_MAX_ATTEMPTS": "1",             # a retryable failure is final: one run shows every outcome
    "ARCHIVER_CAPTURE_TIMEOUT_SECONDS": "30",
    "ARCHIVER_CAPTURE_LOAD_TIMEOUT_SECONDS": "4",
    "ARCHIVER_CAPTURE_NETWORK_IDLE_SECONDS": "1",
    "ARCHIVER_CAPTURE_SCROLL_SECONDS": "1",
    "ARCHIVER_CAPTURE_MAX_RESOURCE_BYTES": str(MAX_RESOURCE),
    "ARCHIVER_CAPTURE_MAX_DOWNLOAD_BYTES": str(MAX_DOWNLOAD),
    "ARCHIVER_CAPTURE_MAX_DECODED_BYTES": str(MAX_DECODED),
    "ARCHIVER_NETWORK_TIMEOUT_SECONDS": "10",
    "ARCHIVER_NETWORK_HEADER_TIMEOUT_SECONDS": "3",
    "ARCHIVER_NETWORK_MIN_BYTES_PER_SECOND": "8192",
    "ARCHIVER_NETWORK_SLOW_WINDOW_SECONDS": "2",
    "ARCHIVER_NETWORK_MAX_REDIRECTS": str(MAX_REDIRECTS),
}
if "politeness" in config.load(environ={}).as_dict():
    # Every URL here is on one host; waiting between its captures would only slow this file down.
    HOSTILE_ENV["ARCHIVER_POLITENESS_DELAY_SECONDS"] = "0"

# What each hostile URL ends as, per way of capturing: (status, failure class). "failed" means nothing sealed.
CASES: dict[str, tuple[str, dict[str, tuple[str, str | None]]]] = {
    "slowloris-headers": ("/slowloris/headers", {"browser": ("failed", "timeout"), "http": ("failed", "timeout")}),
    "slowloris-body": ("/slowloris/body", {"browser": ("partial", "timeout"), "http": ("partial", "timeout")}),
    "gzip-bomb": ("/gzip-bomb", {"browser": ("partial", "too-large"), "http": ("partial", "too-large")}),
    "redirect-loop": ("/redirect-loop/a", {"browser": ("failed", "redirect-loop"),
                                           "http": ("failed", "redirect-loop")}),
    "huge-length-fast": ("/huge-length/fast", {"browser": ("partial", "too-large"), "http": ("partial", "too-large")}),
    "huge-length-stall": ("/huge-length/stall", {"browser": ("partial", "timeout"), "http": ("partial", "timeout")}),
    "huge-headers": ("/huge-headers", {"browser": ("failed", "too-large"), "http": ("failed", "too-large")}),
    "reset-mid-body": ("/reset-mid-body", {"browser": ("partial", "reset"), "http": ("partial", "reset")}),
    "invalid-utf8": ("/invalid-utf8", {"browser": ("ok", None), "http": ("ok", None)}),
    # The direct fetcher loads no subresources: for it the document is complete.
    "never-loads-subresource": ("/never-loads/subresource", {"browser": ("partial", "timeout"), "http": ("ok", None)}),
    "never-loads-document": ("/never-loads/document", {"browser": ("partial", "timeout"),
                                                       "http": ("partial", "timeout")}),
}
MODES = ("browser", "http")
# The whole run of one mode, and the largest process it started (Chromium's included), must stay within these.
RUN_SECONDS = {"browser": 100.0, "http": 45.0}
MAX_RSS_MIB = 1024


@dataclass
class Measured:
    code: int
    out: str
    err: str
    seconds: float
    max_rss_mib: float   # peak resident memory of the largest process of the run (reaped descendants included)


@dataclass
class ModeRun:
    mode: str
    archive: Path
    cli: CLI
    run: Measured
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)   # by URL
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)   # by URL: failed with nothing sealed

    def outcome(self, url: str) -> tuple[str, str | None]:
        if url in self.captures:
            return self.captures[url]["status"], self.captures[url]["failure_class"]
        if url in self.failures:
            return "failed", self.failures[url]["failure_class"]
        return "missing", None

    def records(self, url: str) -> list[Rec]:
        return read_records(sealed_warc(self.archive, self.captures[url]))

    def response(self, url: str) -> Rec:
        [rec] = responses(self.records(url), url)
        return rec


def run_measured(cli: CLI, *args: str, env: dict[str, str], timeout: float = 240) -> Measured:
    """Run the CLI and reap it with wait4, which reports the peak RSS of the largest process of the run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "archiver", "--archive", str(cli.archive), *args],
                                stdout=out, stderr=err, env={**cli.env, **env}, cwd=cli.archive.parent)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read().decode(), err.read().decode(), seconds, usage.ru_maxrss / 1024)


def good_url(server: hostile_server.HostileServer, case: str, mode: str) -> str:
    return f"{server.url}/good?after={case}&mode={mode}"


@pytest.fixture(scope="module")
def hostile() -> Iterator[hostile_server.HostileServer]:
    server = hostile_server.start()
    try:
        yield server
    finally:
        leaked = server.stop()
        assert leaked == [], f"serving threads still alive after stop(): {leaked}"


def _capture_everything(archive: Path, server: hostile_server.HostileServer, mode: str) -> ModeRun:
    cli = CLI(archive)
    cli.env.update(HOSTILE_ENV)
    urls: list[str] = []
    for case, (path, _) in CASES.items():
        urls += [server.url + path, good_url(server, case, mode)]
    options = ["--no-browser"] if mode == "http" else []
    added = cli("add", *options, *urls)
    assert added.code == 0, added.err
    run = run_measured(cli, "run", "--once", env={})
    result = ModeRun(mode, archive, cli, run)
    listed = cli("list", "--json", "--limit", "1000")
    assert listed.code == 0, listed.err
    result.captures = {c["url"]: c for c in listed.json()}
    status = cli("status", "--json").json()
    result.failures = {f["url"]: f for f in status["recent_failures"] if f["url"] not in result.captures}
    return result


@pytest.fixture(scope="module", params=MODES)
def mode_run(request: pytest.FixtureRequest, hostile: hostile_server.HostileServer,
             tmp_path_factory: pytest.TempPathFactory) -> ModeRun:
    return _capture_everything(tmp_path_factory.mktemp(f"hostile-{request.param}") / "archive", hostile,
                               request.param)


# -- every case, on both paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_hostile_url_is_classified_and_the_next_good_url_is_captured(mode_run: ModeRun, hostile, case: str):
    path, expected = CASES[case]
    url = hostile.url + path
    assert mode_run.outcome(url) == expected[mode_run.mode], (
        mode_run.captures.get(url) or mode_run.failures.get(url), mode_run.run.err[-3000:])
    good = mode_run.captures.get(good_url(hostile, case, mode_run.mode))
    assert good is not None and good["status"] == "ok", (good, mode_run.run.err[-3000:])
    assert good["title"] == hostile_server.GOOD_TITLE
    if expected[mode_run.mode][0] == "failed":
        assert url not in mode_run.captures  # nothing sealed for an attempt that recorded no response


def test_run_finished_in_bounded_time_and_memory(mode_run: ModeRun):
    run = mode_run.run
    assert run.code == 0, run.err[-3000:]
    assert "Traceback" not in run.err and "internal error" not in run.err, run.err[-3000:]
    assert len(mode_run.captures) + len(mode_run.failures) == 2 * len(CASES)
    assert run.seconds < RUN_SECONDS[mode_run.mode], run.err[-3000:]
    # A 10 GiB gzip bomb and a 10 GB body went through this run: memory must not have followed them.
    assert run.max_rss_mib < MAX_RSS_MIB, f"peak RSS {run.max_rss_mib:.0f} MiB"


def test_archive_verifies_and_nothing_half_written_is_left(mode_run: ModeRun):
    verified = mode_run.cli("verify")
    assert verified.code == 0, verified.out + verified.err
    assert "all intact" in verified.out
    leftovers = [p for p in mode_run.archive.rglob("*")
                 if p.is_file() and (p.suffix in (".tmp", ".part") or mode_run.archive / "tmp" in p.parents)]
    assert leftovers == []
    assert len(stored_warcs(mode_run.archive)) == len(mode_run.captures)
    # Read-only where they are kept: files' modes in <archive>/warcs, objects' locks in a bucket.
    assert all(stored_object(mode_run.archive, c).read_only for c in mode_run.captures.values())


def test_serving_threads_end_with_their_clients(mode_run: ModeRun, hostile):
    # Every hostile connection (stalls included) ends once the capturing process is gone.
    deadline = time.monotonic() + 10
    while hostile.live_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hostile.live_threads() == 0


# -- what the records say -----------------------------------------------------------------------------------

def _assert_cut(rec: Rec, reason: str) -> None:
    """A truncated record says so, and its headers describe the bytes it holds, never the ones announced."""
    assert rec.headers.get("WARC-Truncated") == reason
    assert header(rec, "Content-Length") == str(len(rec.payload))


def test_gzip_bomb(mode_run: ModeRun, hostile):
    url = hostile.url + "/gzip-bomb"
    rec = mode_run.response(url)
    if mode_run.mode == "http":
        # The wire bytes are all there, still compressed, and the record is whole; what was bounded is how
        # far they were inflated to read them.
        assert "WARC-Truncated" not in rec.headers
        assert len(rec.payload) == hostile.bomb.length and rec.payload[:2] == b"\x1f\x8b"
        assert header(rec, "Content-Encoding") == "gzip"
        shown = mode_run.cli("show", mode_run.captures[url]["id"], "--json").json()
        assert "max_decoded_bytes" in shown["failure_message"]
    else:
        # Chromium hands bodies over inflated: cut at max_resource_bytes, never inflated whole.
        _assert_cut(rec, "length")
        assert rec.payload == bytes(MAX_RESOURCE)
        assert header(rec, "X-Orig-Content-Encoding") == "gzip" and header(rec, "Content-Encoding") is None


def test_ten_gigabyte_content_length(mode_run: ModeRun, hostile):
    rec = mode_run.response(hostile.url + "/huge-length/fast")
    _assert_cut(rec, "length")
    assert len(rec.payload) == (MAX_DOWNLOAD if mode_run.mode == "http" else MAX_RESOURCE)
    assert header(rec, "X-Orig-Content-Length") == str(hostile_server.HUGE_LENGTH)


def test_ten_gigabyte_content_length_that_stalls_keeps_every_byte_received(mode_run: ModeRun, hostile):
    rec = mode_run.response(hostile.url + "/huge-length/stall")
    _assert_cut(rec, "time")
    assert rec.payload == hostile_server.STALL_BODY


def test_slowloris_body_is_cut_off_and_kept_as_far_as_it_came(mode_run: ModeRun, hostile):
    url = hostile.url + "/slowloris/body"
    rec = mode_run.response(url)
    _assert_cut(rec, "time")
    assert rec.payload.startswith(b"<!doctype html><title>Slowloris</title><p>")
    capture = mode_run.captures[url]
    # Cut by the slow-drip guard (2 s windows), long before capture.timeout_seconds (30 s).
    assert _seconds(capture) < 15


def test_connection_reset_mid_body_is_never_passed_as_whole(mode_run: ModeRun, hostile):
    rec = mode_run.response(hostile.url + "/reset-mid-body")
    _assert_cut(rec, "disconnect")
    assert rec.payload == hostile_server.RESET_BODY
    assert header(rec, "X-Orig-Content-Length") == "100000"


def test_invalid_utf8_is_captured_byte_for_byte(mode_run: ModeRun, hostile):
    url = hostile.url + "/invalid-utf8"
    rec = mode_run.response(url)
    assert "WARC-Truncated" not in rec.headers
    assert rec.payload == hostile_server.INVALID_UTF8_BODY


def test_document_that_never_ends(mode_run: ModeRun, hostile):
    url = hostile.url + "/never-loads/document"
    rec = mode_run.response(url)
    _assert_cut(rec, "time")
    assert rec.payload == hostile_server.NEVER_ENDS_HEAD
    assert _seconds(mode_run.captures[url]) < 15


def test_page_whose_subresource_never_loads(mode_run: ModeRun, hostile):
    url = hostile.url + "/never-loads/subresource"
    records = mode_run.records(url)
    [page] = responses(records, url)
    assert "WARC-Truncated" not in page.headers  # the document itself came whole
    if mode_run.mode == "browser":
        assert any(r.headers.get("WARC-Target-URI", "").startswith("urn:screenshot:") for r in records)
        assert not responses(records, hostile.url + "/never-loads/hanging.png")  # no answer, no record
        assert _seconds(mode_run.captures[url]) < 20  # capture.load_timeout_seconds (4 s), not the 30 s budget


def _seconds(capture: dict[str, Any]) -> float:
    from datetime import datetime
    started = datetime.fromisoformat(capture["started_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(capture["finished_at"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


# -- limits lowered below their defaults -------------------------------------------------------------------

def test_lowered_capture_byte_budget_and_header_limit_hold_on_both_paths(tmp_path: Path, hostile):
    cli = CLI(tmp_path / "archive")
    cli.env.update(HOSTILE_ENV)
    budget, most_header_bytes = 100_000, 20_000
    urls = {mode: {"budget": f"{hostile.url}/huge-length/fast?via={mode}",
                   "headers": f"{hostile.url}/big-headers?via={mode}",
                   "good": good_url(hostile, "lowered-limits", mode)} for mode in MODES}
    assert cli("add", *urls["browser"].values()).code == 0
    assert cli("add", "--no-browser", *urls["http"].values()).code == 0
    run = run_measured(cli, "run", "--once", env={"ARCHIVER_CAPTURE_MAX_CAPTURE_BYTES": str(budget),
                                                  "ARCHIVER_NETWORK_MAX_HEADER_BYTES": str(most_header_bytes)})
    assert run.code == 0, run.err
    captures = {c["url"]: c for c in cli("list", "--json").json()}
    failures = {f["url"]: f for f in cli("status", "--json").json()["recent_failures"]}
    for mode in MODES:
        capture = captures[urls[mode]["budget"]]
        assert (capture["status"], capture["failure_class"]) == ("partial", "too-large"), mode
        shown = cli("show", capture["id"], "--json").json()
        assert "max_capture_bytes" in (shown.get("failure_message") or ""), mode
        recs = read_records(sealed_warc(cli.archive, capture))
        assert sum(len(r.payload) for r in recs if r.type == "response") <= budget
        [rec] = responses(recs, urls[mode]["budget"])
        _assert_cut(rec, "length")
        # 50 kB of headers: under Chromium's and httpx's own ceilings, over the lowered setting.
        assert urls[mode]["headers"] not in captures, mode
        failure = failures[urls[mode]["headers"]]
        assert failure["failure_class"] == "too-large" and "max_header_bytes" in failure["message"], mode
        assert captures[urls[mode]["good"]]["status"] == "ok", mode
    assert cli("verify").code == 0


# -- the slow-drip rule itself, on a fake clock -------------------------------------------------------------

def test_drip_guard_cuts_a_window_that_comes_up_short():
    now = [0.0]
    guard = DripGuard(100, 2.0, clock=lambda: now[0])   # 200 bytes in every 2 s, judged from 2 s on
    slack = 2.0 / DripGuard.BUCKETS
    assert guard.wait_limit() == 2.0                     # nothing yet: the first window is given in full
    now[0] = 1.0
    guard.add(150)
    assert guard.wait_limit() == 1.0                     # at 2 s only 150 bytes would be in the window
    now[0] = 1.5
    guard.add(60)
    assert guard.wait_limit() == pytest.approx(1.5 + slack)   # enough until those 150 leave it, at 3 s
    now[0] = 3.0
    guard.add(10)
    assert guard.wait_limit() == 0.0                     # (1 s, 3 s] brought 70 bytes: cut off now
    assert isinstance(guard.cut_off(), SlowDrip)


def test_drip_guard_lets_a_slow_but_steady_body_through():
    now = [0.0]
    guard = DripGuard(100, 2.0, clock=lambda: now[0])
    for _ in range(100):                                 # 120 bytes a second for 100 s
        now[0] += 1.0
        guard.add(120)
        assert guard.wait_limit() > 0
    assert DripGuard(0, 2.0).wait_limit() is None        # 0 switches the guard off


def test_the_bomb_is_a_valid_gzip_stream():
    import gzip
    bomb = hostile_server.GzipBomb(blocks=3)
    data = b"".join(bomb.chunks())
    assert len(data) == bomb.length and gzip.decompress(data) == bytes(3 * hostile_server.BOMB_BLOCK)
