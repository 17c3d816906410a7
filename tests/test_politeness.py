"""Per-host politeness, kept by the claim itself so that every runner sharing index.db keeps it."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from archiver.pipeline import queue
from archiver import urls
from archiver.store.index import Index
from conftest import index_conn, open_test_index
from archiver.pipeline.queue import Politeness


def _enqueue(index: Index, *found: str) -> dict[str, int]:
    done = queue.enqueue(index, [urls.parse(u) for u in found], requested_by="t", tags=[], note=None,
                         priority=0, max_attempts=3)
    return {e.job["url"]: e.job["id"] for e in done}


def _finish(index: Index, job: dict) -> None:
    with index.transaction() as conn:
        queue.mark_captured(conn, job, job["lease_owner"], job["updated_at"], f"cap-{job['id']}", "ok", None, None)


def test_max_per_host_holds_a_busy_host_and_not_the_others(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    ids = _enqueue(index, "https://a.example/1", "https://a.example/2", "https://b.example/1")
    one = Politeness(max_per_host=1)
    first = queue.claim(index, "w1", 60, politeness=one)
    assert first["id"] == ids["https://a.example/1"] and first["host"] == "a.example"
    # a.example is busy: the next claim skips its second job and takes b.example's.
    assert queue.claim(index, "w2", 60, politeness=one)["id"] == ids["https://b.example/1"]
    assert queue.claim(index, "w3", 60, politeness=one) is None
    assert queue.held_back(index) is True  # due, but held: a --once runner waits instead of leaving it
    assert queue.claim(index, "w3", 60) is not None  # without limits it would have been taken
    index.close()


def test_a_dead_runners_expired_lease_does_not_hold_its_host(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    ids = _enqueue(index, "https://a.example/1", "https://a.example/2")
    one = Politeness(max_per_host=1)
    assert queue.claim(index, "dead", lease_seconds=-1, politeness=one)["id"] == ids["https://a.example/1"]
    # The lease ran out: that job is claimable again, and it no longer counts against a.example.
    again = queue.claim(index, "live", 60, politeness=one)
    assert again["id"] == ids["https://a.example/1"] and again["lease_owner"] == "live"
    assert queue.claim(index, "other", 60, politeness=one) is None
    index.close()


def test_delay_between_starts_on_one_host(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    ids = _enqueue(index, "https://a.example/1", "https://a.example/2", "https://b.example/1")
    slow = Politeness(delay_seconds=0.6)
    first = queue.claim(index, "w", 60, politeness=slow)
    _finish(index, first)
    # a.example is free but was visited 0.6 s ago at most: b.example goes first, then nothing is claimable.
    assert queue.claim(index, "w", 60, politeness=slow)["id"] == ids["https://b.example/1"]
    assert queue.claim(index, "w", 60, politeness=slow) is None
    time.sleep(0.7)  # the delay itself: nothing but the clock can release a.example
    assert queue.claim(index, "w", 60, politeness=slow)["id"] == ids["https://a.example/2"]
    index.close()


def _when(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def test_two_workers_keep_one_capture_at_a_time_and_the_delay_on_a_host(cli, site):
    other = site.url.replace("127.0.0.1", "localhost")  # another host to politeness, the same server
    # The first busy page takes 3 s: long enough for the second worker process to have started and claimed the
    # other host's page meanwhile even on a loaded machine (the last assertion), which 0.4 s was not.
    busy = [f"{site.url}/test/slow?seconds={3.0 if n == 0 else 0.4}&n={n}" for n in range(4)]
    free = [f"{other}/test/pages/{n}" for n in range(1, 4)]
    assert cli("add", "--no-browser", *busy, *free).code == 0
    env = {"ARCHIVER_POLITENESS_MAX_PER_HOST": "1", "ARCHIVER_POLITENESS_DELAY_SECONDS": "1.0"}
    result = cli("run", "--once", "--workers", "2", env=env)
    assert result.code == 0, result.err
    with index_conn(cli.archive) as conn:
        rows = conn.execute("SELECT j.host, j.state, a.started_at, a.finished_at, a.outcome FROM attempts a "
                            "JOIN jobs j ON j.id = a.job_id ORDER BY a.started_at").fetchall()
    assert len(rows) == 7 and all(r[1] == "done" and r[4] == "ok" for r in rows)
    by_host: dict[str, list[tuple[float, float]]] = {}
    for host, _, started, finished, _ in rows:
        by_host.setdefault(host, []).append((_when(started), _when(finished)))
    assert set(by_host) == {"127.0.0.1", "localhost"}
    for host, spans in by_host.items():
        for (start, end), (next_start, _) in zip(spans, spans[1:]):
            assert next_start >= end, f"two captures of {host} overlapped"
            # Measured at the claim; the attempt's start is a few ms later, hence the small allowance.
            assert next_start - start >= 1.0 - 0.05, f"captures of {host} started {next_start - start:.2f}s apart"
    # The other host was not held up by the busy one: it was captured while the first slow page was in flight.
    first_busy_end = by_host["127.0.0.1"][0][1]
    assert by_host["localhost"][0][0] < first_busy_end
