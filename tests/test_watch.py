"""Watching: schedules (fake clock), idempotent enqueue from concurrent runners, liveness checks, item
states and their timeline — through the services and through the CLI as a user runs it."""
from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from archiver.pipeline import checks, schedule
from archiver.store import items
from archiver.capture.fingerprint import page_fingerprint
from archiver.capture.liveness import CheckResult
from archiver.config import load as load_settings
from archiver.store.index import Index
from archiver.urls import parse

from conftest import ROOT, base_env, open_test_index
from loopback import LoopbackPage

T0 = datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)
URL = "https://news.example/2016/12/16/aleppo"


def _index(tmp_path: Path) -> Index:
    return Index(tmp_path / "index.db")


def _add(index: Index, url: str = URL, **kw) -> dict:
    defaults = dict(every_seconds=6 * 3600, cron=None, check_every_seconds=3600, created_by="tester", tags=[],
                    note=None, options={}, now=T0)
    defaults.update(kw)
    return schedule.add(index, parse(url), **defaults).watch


def _finish_jobs(index: Index) -> None:
    with index.transaction() as conn:
        conn.execute("UPDATE jobs SET state = 'done'")


# ---- schedules ------------------------------------------------------------------------------------------

def test_interval_watch_is_due_at_once_then_every_interval_keeping_its_phase(tmp_path):
    index = _index(tmp_path)
    w = _add(index)
    assert schedule.parse_iso(w["next_capture_at"]) == T0
    first = schedule.enqueue_due(index, max_attempts=3, now=T0)
    assert len(first) == 1
    assert schedule.enqueue_due(index, max_attempts=3, now=T0 + timedelta(hours=5, minutes=59)) == []
    _finish_jobs(index)
    assert len(schedule.enqueue_due(index, max_attempts=3, now=T0 + timedelta(hours=6))) == 1
    _finish_jobs(index)
    # The runner was down for three days: one capture now, not twelve, and the schedule keeps its phase.
    late = T0 + timedelta(days=3, hours=1)
    assert len(schedule.enqueue_due(index, max_attempts=3, now=late)) == 1
    watch = schedule.list_watches(index)[0]
    assert schedule.parse_iso(watch["next_capture_at"]) == T0 + timedelta(days=3, hours=6)
    job = index.conn.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
    assert job["note"].startswith("scheduled re-capture") and job["requested_by"] == "tester"


def test_a_due_watch_whose_capture_is_still_pending_is_not_queued_twice(tmp_path):
    index = _index(tmp_path)
    _add(index)
    assert len(schedule.enqueue_due(index, max_attempts=3, now=T0)) == 1
    # Six hours later the first job has not run yet (runners were busy): still one pending job.
    assert schedule.enqueue_due(index, max_attempts=3, now=T0 + timedelta(hours=6)) == []
    assert index.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1


def test_cron_watch_follows_the_expression(tmp_path):
    index = _index(tmp_path)
    _add(index, every_seconds=None, cron=schedule.check_cron("0 */6 * * *"))
    assert len(schedule.enqueue_due(index, max_attempts=3, now=T0)) == 1
    watch = schedule.list_watches(index)[0]
    assert schedule.parse_iso(watch["next_capture_at"]) == datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc)


def test_a_watch_on_an_item_held_recently_waits_one_interval(tmp_path):
    index = _index(tmp_path)
    with index.transaction() as conn:  # an ok capture of the item two hours ago
        conn.execute("INSERT INTO captures (id, url, canonical_url, key, kind, method, status, started_at, "
                     "finished_at, warc_path, warc_sha256, warc_size, record_count) VALUES "
                     "('01X', ?, ?, ?, 'page', 'http', 'ok', ?, ?, 'w', 's', 1, 1)",
                     (URL, URL, parse(URL).dedup_key, schedule.iso(T0 - timedelta(hours=2)), schedule.iso(T0)))
    w = _add(index)
    assert schedule.parse_iso(w["next_capture_at"]) == T0 + timedelta(hours=4)


def _enqueue_many(db: str, rounds: int, barrier) -> int:
    index = Index(Path(db))
    barrier.wait()
    created = 0
    for _ in range(rounds):
        created += len(schedule.enqueue_due(index, max_attempts=3, now=T0 + timedelta(minutes=1)))
    index.close()
    return created


def test_two_concurrent_runners_queue_each_due_watch_exactly_once(tmp_path):
    index = _index(tmp_path)
    for n in range(40):
        _add(index, url=f"https://news.example/story/{n}")
    index.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(3)
    with ctx.Pool(3) as pool:
        results = pool.starmap(_enqueue_many, [(str(tmp_path / "index.db"), 3, barrier)] * 3)
    assert sum(results) == 40, results
    index = _index(tmp_path)
    rows = index.conn.execute("SELECT key, COUNT(*) FROM jobs GROUP BY key").fetchall()
    assert len(rows) == 40 and all(n == 1 for _, n in rows)


def test_intervals_and_cron_expressions_are_validated():
    assert schedule.parse_interval("1h30m") == 5400
    assert schedule.parse_interval("2w") == 1209600
    for bad in ("6", "6x", "h", "-1h", "0m", "1h 2q"):
        with pytest.raises(Exception) as exc:
            schedule.parse_interval(bad)
        assert "--every" in str(exc.value)
    with pytest.raises(Exception):
        schedule.check_cron("61 * * * *")
    with pytest.raises(Exception):
        schedule.check_cron("* * *")


def test_watch_cli_rejects_bad_schedules_with_one_line_and_keeps_nothing(cli):
    for args in (["watch", URL], ["watch", URL, "--every", "6x"], ["watch", URL, "--cron", "not cron"],
                 ["watch", URL, "--every", "6h", "--cron", "0 * * * *"], ["watch", "notaurl", "--every", "1h"],
                 ["watch", URL, "--every", "1h", "--check-every", "soon"]):
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert r.err.startswith("archiver: error:") and "Traceback" not in r.err, r.err
    listed = cli("watch", "--list", "--json")
    assert listed.code == 0 and listed.json() == []


def test_watch_list_and_unwatch_through_the_cli(cli):
    r = cli("watch", URL, "https://x.com/evac_watch_demo/status/809711419431133184", "--every", "6h",
            "--check-every", "30m", "--tag", "aleppo")
    assert r.code == 0, r.err
    assert r.out.count("watching") == 2
    again = cli("watch", "https://twitter.com/evac_watch_demo/status/809711419431133184?s=20", "--cron", "0 */6 * * *")
    assert again.code == 0 and again.out.startswith("updated"), again.out  # another spelling, same item
    rows = cli("watch", "--list", "--json").json()
    assert len(rows) == 2
    tweet = next(w for w in rows if w["kind"] == "tweet")
    assert tweet["cron"] == "0 */6 * * *" and tweet["every_seconds"] is None
    assert cli("unwatch", URL).code == 0
    assert [w["kind"] for w in cli("watch", "--list", "--json").json()] == ["tweet"]
    assert len(cli("watch", "--list", "--all", "--json").json()) == 2  # the removed watch is still on record
    missing = cli("unwatch", URL)
    assert missing.code == 1 and "not watched" in missing.err


# ---- states over a month of cron runs (fake clock) ---------------------------------------------------------

def _check(index: Index, settings, at: datetime, status: str, cls: str | None = None, http: int | None = 200,
           fp: str | None = None) -> checks.CheckOutcome:
    result = CheckResult("http", status, cls, http, URL, [], fp, None)
    target = {"url": URL, "key": parse(URL).dedup_key, "kind": "page"}
    return asyncio.run(checks.run_check(index, target, settings, worker="test", now=at, result=result))


def test_a_month_of_checks_reads_as_a_timeline(tmp_path, cli):
    """Hourly checks for a month: a change, a short outage, a long DNS outage, a return, then a 404."""
    settings = load_settings(tmp_path)
    archive = cli.archive
    archive.mkdir(parents=True)
    index = open_test_index(archive / "index.db")
    key = parse(URL).dedup_key
    fp_a, fp_b = page_fingerprint("<p>12 killed</p>", URL), page_fingerprint("<p>15 killed</p>", URL)
    with index.transaction() as conn:  # the first capture, as insert_capture folds it in
        items.apply(conn, key=key, url=URL, kind="page", obs=items.Observation("live", None, fp_a),
                    at=schedule.iso(T0), source="capture", unreachable_gone=index.unreachable_gone,
                    capture_id="01FIRST", capture_ok=True)
    hour = timedelta(hours=1)
    states = []
    for h in range(1, 30 * 24):
        at = T0 + h * hour
        day = h / 24
        if day < 10:
            o = _check(index, settings, at, "ok", fp=fp_a)
        elif h == 240:
            o = _check(index, settings, at, "ok", fp=fp_b)          # the text changed
            assert o.state_after == "changed" and o.job_id
            with index.transaction() as conn:                       # ... and was re-captured an hour later
                items.apply(conn, key=key, url=URL, kind="page", obs=items.Observation("live", None, fp_b),
                            at=schedule.iso(at + hour / 2), source="capture",
                            unreachable_gone=index.unreachable_gone, capture_id="01SECOND", capture_ok=True)
                conn.execute("UPDATE jobs SET state = 'done'")
        elif day < 12:
            o = _check(index, settings, at, "ok", fp=fp_b)
        elif day < 12 + 3 / 24:
            o = _check(index, settings, at, "failed", "http-5xx", 503)  # three hours of 503: unreachable
        elif day < 20:
            o = _check(index, settings, at, "ok", fp=fp_b)
        elif day < 21.5:
            o = _check(index, settings, at, "failed", "dns", None)      # 36 hours without DNS: gone at 24 h
        elif day < 25:
            o = _check(index, settings, at, "ok", fp=fp_b)              # back
        else:
            o = _check(index, settings, at, "failed", "http-4xx", 404)  # deleted
        states.append((day, o.state_after))
    assert dict(states)[12 + 1 / 24] == "unreachable"
    assert dict(states)[12 + 4 / 24] == "live", "three failed checks must not make an item gone"
    gone_dns = [d for d, s in states if 20 <= d < 21.5 and s == "gone"]
    assert gone_dns and 20.99 < gone_dns[0] < 21.05, "gone after 24 hours of DNS failures, not before"
    assert states[-1][1] == "gone"
    transitions = [(r["state_before"], r["state_after"], r["state_class"]) for r in index.conn.execute(
        "SELECT * FROM transitions ORDER BY id")]
    assert transitions == [(None, "live", None), ("live", "changed", None), ("changed", "live", None),
                           ("live", "unreachable", "http-503"), ("unreachable", "live", None),
                           ("live", "unreachable", "dns"), ("unreachable", "gone", "unreachable"),
                           ("gone", "live", None), ("live", "gone", "http-404")]
    assert index.conn.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 30 * 24 - 1
    index.close()

    gone = cli("list", "--gone", "--json")
    assert gone.code == 0, gone.err
    [row] = gone.json()
    assert row["state_class"] == "http-404" and row["last_ok_capture_id"] == "01SECOND"
    assert row["state_since"].startswith("2026-11-26T")
    assert cli("list", "--gone", "--since", "2026-11-27", "--json").json() == []
    changed = cli("list", "--changed", "--json").json()
    assert [r["key"] for r in changed] == [key]
    shown = cli("show", URL)
    assert shown.code == 0, shown.err
    timeline = shown.out.split("timeline:")[1].strip().splitlines()
    # A month of hourly checks folds into a page a person can read, transitions in order.
    assert len(timeline) < 40, shown.out
    state_lines = [line for line in timeline if " STATE " in line]
    assert [line.split("STATE")[1].split("(by")[0].strip() for line in state_lines] == [
        "new -> live", "live -> changed", "changed -> live", "live -> unreachable (http-503)", "unreachable -> live",
        "live -> unreachable (dns)", "unreachable -> gone (unreachable)", "gone -> live", "live -> gone (http-404)"]
    assert any("check     live HTTP 200  x" in line for line in timeline)
    assert "state: gone (http-404) since 2026-11-26" in shown.out


# ---- checks against real servers, through the CLI ------------------------------------------------------

class _Mutable(LoopbackPage):
    """A loopback page whose status and body the test changes between checks."""

    def page(self, dateline: str, count: str, ad: str) -> None:
        self.body = (f"<!doctype html><html><head><title>Aleppo</title></head><body><article>"
                     f"<p class=dateline>Updated {dateline}</p><p>{count} killed in the evacuation convoy</p>"
                     f"<img src=\"/photo.jpg?cache={dateline}\"></article>"
                     f"<div class=\"ad-slot\">{ad}</div></body></html>")


@pytest.fixture
def mutable() -> Iterator[_Mutable]:
    server = _Mutable()
    yield server
    server.close()


def test_page_checks_see_changes_but_not_timestamps_or_ads_then_a_404(cli, mutable):
    mutable.page("14:59 GMT, 16 December 2016", "12", "Buy a car")
    assert cli("watch", mutable.url, "--every", "6h", "--check-every", "1h").code == 0
    first = cli("run", "--once")
    assert first.code == 0 and "ok" in first.err, first.err
    mutable.page("15:30 GMT, 16 December 2016", "12", "Cheap flights")  # new time, new ad, new cache-buster
    r = cli("check", mutable.url, "--json")
    assert r.code == 0, r.err
    [o] = r.json()
    assert (o["result"], o["state_after"], o["transition"], o["job_id"]) == ("live", "live", False, None)
    mutable.page("15:30 GMT, 16 December 2016", "15", "Cheap flights")  # the count changed
    [o] = cli("check", mutable.url, "--json").json()
    assert (o["state_before"], o["state_after"]) == ("live", "changed") and o["job_id"]
    second = cli("run", "--once")
    assert "ok" in second.err, second.err
    mutable.status = 404
    mutable.body = "<p>Not found</p>"
    [o] = cli("check", mutable.url, "--json").json()
    assert (o["result"], o["result_class"], o["state_after"]) == ("gone", "http-404", "gone") and o["job_id"]
    third = cli("run", "--once")
    assert "failed" in third.err and "http-4xx" in third.err, third.err  # the 404 page, sealed as evidence
    [item] = cli("list", "--gone", "--json").json()
    captures = cli("list", "--json").json()
    assert [c["status"] for c in captures] == ["failed", "ok", "ok"]
    assert item["last_ok_capture_id"] == captures[1]["id"] and item["ok_captures"] == 2
    human = cli("list", "--gone")
    assert "http-404" in human.out and "2 ok, newest" in human.out
    shown = cli("show", mutable.url, "--json").json()
    moves = [(e["from"], e["to"]) for e in shown["timeline"] if e["event"] == "transition"]
    assert moves == [(None, "live"), ("live", "changed"), ("changed", "live"), ("live", "gone")]
    assert shown["item"]["state"] == "gone" and shown["watch"]["every_seconds"] == 6 * 3600
    assert cli("verify").code == 0


def test_a_tweet_that_turns_into_a_tombstone(world_cli, site):
    tweet = "809711419431133184"
    url = f"https://twitter.com/evac_watch_demo/status/{tweet}"
    try:
        assert world_cli("capture", url).code == 0
        [o] = world_cli("check", url, "--json").json()
        assert (o["result"], o["state_after"], o["job_id"]) == ("live", "live", None), o
        site.set_tweet_state(tweet, "deleted")
        [o] = world_cli("check", url, "--json").json()
        assert (o["result"], o["result_class"], o["state_after"]) == ("gone", "deleted", "gone"), o
        assert o["job_id"], "the tombstone is captured as evidence of the deletion"
        run = world_cli("run", "--once")
        assert "deleted" in run.err, run.err
        [item] = world_cli("list", "--gone", "--json").json()
        assert item["state_class"] == "deleted" and item["ok_captures"] == 1
        tombstone = world_cli("show", url, "--json").json()
        assert tombstone["tweet"]["availability"] == "deleted"
        assert [c["status"] for c in world_cli("list", "--json").json()] == ["failed", "ok"]
        # Re-checking what is gone: still gone, nothing new queued.
        [o] = world_cli("check", "--gone", "--json").json()
        assert (o["state_after"], o["transition"], o["job_id"]) == ("gone", False, None)
        site.set_tweet_state(tweet, "available")
        [o] = world_cli("check", "--gone", "--json").json()
        assert (o["state_before"], o["state_after"]) == ("gone", "live") and o["job_id"]
    finally:
        site.reset_tweet_states()


def test_runners_run_due_checks_between_captures(cli, mutable):
    mutable.page("14:59", "12", "ad")
    assert cli("watch", mutable.url, "--every", "1w", "--check-every", "1s").code == 0
    assert cli("run", "--once").code == 0            # the first capture (checks skip an item about to be captured)
    time.sleep(1.1)                                   # bounded: let the 1 s check interval pass once
    r = cli("run", "--once")
    assert "[check] live" in r.err, r.err
    shown = cli("show", mutable.url, "--json").json()
    assert [e["event"] for e in shown["timeline"]].count("check") >= 1


def test_cron_wrapper_runs_once_under_a_lock_and_logs(tmp_path, mutable):
    archive = tmp_path / "cron-archive"
    env = base_env()
    exe = str(ROOT / ".venv/bin/archiver")  # what the wrapper runs from a checkout (make setup installs it)
    mutable.page("1", "2", "3")
    added = subprocess.run([exe, "--archive", str(archive), "watch", mutable.url, "--every", "1d"],
                           env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    lock = open(archive / ".cron.lock", "w")
    import fcntl
    fcntl.flock(lock, fcntl.LOCK_EX)                  # a previous run still going
    skipped = subprocess.run([str(ROOT / "scripts/archiver-cron"), str(archive)], env=env, capture_output=True,
                             timeout=60)
    assert skipped.returncode == 0
    assert "skipped" in (archive / "logs/cron.log").read_text()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    ran = subprocess.run([str(ROOT / "scripts/archiver-cron"), str(archive), "--workers", "1"], env=env,
                         capture_output=True, timeout=120)
    log = (archive / "logs/cron.log").read_text()
    assert ran.returncode == 0, log
    assert "start: archiver run --once --workers 1" in log and "end: exit 0" in log and "ok" in log
    assert subprocess.run([str(ROOT / "scripts/archiver-cron")], env={k: v for k, v in env.items()
                                                                       if k != "ARCHIVER_HOME"},
                          capture_output=True).returncode == 2
