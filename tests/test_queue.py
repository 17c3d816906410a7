"""The queue's guarantees, tested on the service directly: one claim per job, leases, backoff."""
from __future__ import annotations

import threading
from pathlib import Path

from archiver.pipeline import queue
from archiver import urls
from archiver.store.index import Index
from conftest import open_test_index


def _enqueue(index: Index, n: int) -> list[int]:
    parsed = [urls.parse(f"https://example.org/story/{i}") for i in range(n)]
    done = queue.enqueue(index, parsed, requested_by="t", tags=[], note=None, priority=0, max_attempts=3)
    return [e.job["id"] for e in done]


def test_concurrent_claims_never_share_a_job(tmp_path: Path):
    db = tmp_path / "index.db"
    ids = _enqueue(open_test_index(db), 60)
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[Exception] = []

    def runner() -> None:
        index = open_test_index(db)  # one connection per runner, as separate processes would have
        try:
            while (job := queue.claim(index, queue.make_owner(), 60)) is not None:
                with lock:
                    claimed.append(job["id"])
        except Exception as exc:  # "database is locked" would land here
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(claimed) == sorted(ids)


def test_expired_lease_is_claimed_again(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    [job_id] = _enqueue(index, 1)
    first = queue.claim(index, "dead-runner", lease_seconds=-1)  # a lease that has already run out
    assert first["id"] == job_id
    second = queue.claim(index, "live-runner", lease_seconds=60)
    assert second["id"] == job_id and second["attempts"] == 2 and second["lease_owner"] == "live-runner"
    # The dead runner can no longer renew or finish it.
    assert queue.renew(index, job_id, "dead-runner", 60) is False
    assert queue.claim(index, "third", lease_seconds=60) is None


def test_backoff_and_bounded_attempts(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    [job_id] = _enqueue(index, 1)
    assert queue.backoff_seconds(1, 60, 3600) == 60
    assert queue.backoff_seconds(3, 60, 3600) == 240
    assert queue.backoff_seconds(10, 60, 3600) == 3600
    job = queue.claim(index, "w", 60)
    state = queue.mark_failed(index, job, "w", job["updated_at"], "timeout", "slow", True, backoff_base=60,
                              backoff_cap=3600)
    assert state == "queued"
    assert queue.claim(index, "w", 60) is None  # not due for a minute
    row = queue.get_job(index, job_id)
    assert row["next_attempt_at"] > row["updated_at"] and row["last_failure_class"] == "timeout"
    # `archiver capture` may take it now; the third failure is final.
    for _ in range(2):
        job = queue.claim(index, "w", 60, job_ids=[job_id], ignore_schedule=True)
        state = queue.mark_failed(index, job, "w", job["updated_at"], "timeout", "slow", True, backoff_base=0,
                                  backoff_cap=0)
    assert state == "failed" and queue.get_job(index, job_id)["attempts"] == 3


def test_released_job_is_due_again_and_attempt_not_counted(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    [job_id] = _enqueue(index, 1)
    job = queue.claim(index, "w", 60)
    queue.release(index, job, "w", job["updated_at"], "shutdown")
    again = queue.claim(index, "w2", 60)
    assert again["id"] == job_id and again["attempts"] == 1


def test_exhausted_lease_fails_instead_of_looping(tmp_path: Path):
    index = open_test_index(tmp_path / "index.db")
    [job_id] = _enqueue(index, 1)
    for _ in range(3):
        assert queue.claim(index, "crashing-runner", lease_seconds=-1)["id"] == job_id
    assert queue.fail_exhausted_leases(index) == 1
    row = queue.get_job(index, job_id)
    assert row["state"] == "failed" and row["last_failure_class"] == "lease-expired"


def test_a_job_whose_sealed_capture_waits_for_the_store_is_reserved_for_the_host_holding_it(tmp_path: Path):
    # A storage outage: runner A sealed the capture and keeps it in its tmp/ for the job's next attempt. Runner B
    # capturing the page meanwhile would make a second capture; only a host that holds the file may take the job,
    # until the reservation runs out (that host is gone, and its file with it).
    index = open_test_index(tmp_path / "index.db")
    [job_id] = _enqueue(index, 1)
    job = queue.claim(index, "runner-a", 60)
    assert queue.mark_failed(index, job, "runner-a", job["updated_at"], "storage", "503", True, backoff_base=0,
                             backoff_cap=0, reserve_seconds=60) == "queued"
    assert queue.claim(index, "runner-b", 60) is None
    assert queue.held_back(index) is False            # nothing for B to wait for: the job is A's host's to finish
    assert queue.renew_reserved(index, [job_id], 60) == 1
    again = queue.claim(index, "runner-a2", 60, holding=[job_id])   # any process of A's host: it has the file
    assert again["id"] == job_id and again["attempts"] == 1          # a storage failure used up no attempt
    assert queue.renew_reserved(index, [job_id], 60) == 0            # running now: a lease, not a reservation
    assert queue.mark_failed(index, again, "runner-a2", again["updated_at"], "storage", "503", True, backoff_base=0,
                             backoff_cap=0, reserve_seconds=-1) == "queued"   # ... and A's host is gone since
    taken = queue.claim(index, "runner-b", 60)
    assert taken["id"] == job_id and taken["lease_owner"] == "runner-b"
