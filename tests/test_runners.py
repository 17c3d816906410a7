"""Several runners on one archive, signals, and a runner killed mid-capture."""
from __future__ import annotations

import json
import signal
import time

from conftest import index_conn


def _db(cli):
    return index_conn(cli.archive, named_rows=False)


def _log_events(cli) -> list[dict]:
    return [json.loads(line) for f in sorted((cli.archive / "logs").glob("*.jsonl"))
            for line in f.read_text().splitlines()]


def test_two_concurrent_runners_capture_each_job_once(cli, site):
    urls = [f"{site.url}/test/pages/{n}" for n in range(1, 13)]
    assert cli("add", "--no-browser", *urls).code == 0
    # No delay between starts on the one host, so that both runners contend for every claim.
    env = {"ARCHIVER_POLITENESS_DELAY_SECONDS": "0"}
    first, second = cli.popen("run", "--once", env=env), cli.popen("run", "--once", env=env)
    outs = [p.communicate(timeout=180) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    for _, err in outs:
        assert "database is locked" not in err and "Traceback" not in err
    with _db(cli) as conn:
        per_job = conn.execute("SELECT job_id, COUNT(*) FROM captures GROUP BY job_id").fetchall()
        states = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    assert len(per_job) == 12 and all(n == 1 for _, n in per_job)
    assert states == [("done", 12)]
    for n in range(1, 13):
        assert site.hits[f"/test/pages/{n}"] >= 1
    assert cli("verify").code == 0


def test_sigterm_finishes_the_capture_in_hand_then_exits(cli, site):
    assert cli("add", "--no-browser", site.url + "/test/slow?seconds=2", site.url + "/test/pages/500").code == 0
    runner = cli.popen("run")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded wait for the runner to claim the slow job
        with _db(cli) as conn:
            if conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()[0]:
                break
        time.sleep(0.1)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    with _db(cli) as conn:
        rows = dict(conn.execute("SELECT url, state FROM jobs").fetchall())
    assert rows[site.url + "/test/slow?seconds=2"] == "done"
    # It stopped claiming: the second job is still queued, not lost, not half-done.
    assert rows[site.url + "/test/pages/500"] == "queued"
    assert not list((cli.archive / "tmp").glob("*.part"))


def _wait_running(cli, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded wait for the runner's workers to claim
        with _db(cli) as conn:
            if conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()[0] >= n:
                return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} jobs running after {timeout}s")


def test_second_signal_gives_the_capture_in_hand_back(cli, site):
    slow = site.url + "/test/slow?seconds=30"
    assert cli("add", "--no-browser", slow).code == 0
    runner = cli.popen("run")
    _wait_running(cli, 1)
    started = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    # Two signals sent at once can arrive as one (the kernel keeps one pending per kind): send the second
    # once the worker has logged taking the first.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(e["event"] == "signal" and e["worker"] == "w1"
                                                  for e in _log_events(cli)):
        time.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert time.monotonic() - started < 15, "the second signal should not wait for the 30 s page"
    with _db(cli) as conn:
        job = conn.execute("SELECT state, attempts FROM jobs").fetchone()
        attempts = conn.execute("SELECT outcome FROM attempts").fetchall()
        captures = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    assert job == ("queued", 0) and attempts == [("released",)] and captures == 0
    assert not list((cli.archive / "tmp").glob("*.part"))


def test_sigterm_under_load_loses_nothing(cli, site):
    urls = [f"{site.url}/test/slow?seconds=1.5&n={n}" for n in range(10)]
    assert cli("add", "--no-browser", *urls).code == 0
    runner = cli.popen("run", "--workers", "2", env={"ARCHIVER_POLITENESS_DELAY_SECONDS": "0"})
    _wait_running(cli, 2)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert "Traceback" not in err
    with _db(cli) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        captures = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    # The two captures in hand were finished, the rest left queued for the next run: none running, none lost.
    assert states.get("done", 0) >= 2 and states.get("queued", 0) >= 1, states
    assert set(states) <= {"done", "queued"} and sum(states.values()) == 10
    assert captures == states["done"]
    assert not list((cli.archive / "tmp").glob("*.part"))
    assert cli("verify").code == 0


def test_sigkill_mid_capture_is_recaptured_after_lease_expiry(cli, site):
    env = {"ARCHIVER_QUEUE_LEASE_SECONDS": "3"}
    assert cli("add", "--no-browser", site.url + "/test/slow?seconds=6").code == 0
    victim = cli.popen("run", env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded: wait until the victim is writing its temporary WARC
        if list((cli.archive / "tmp").glob("*.part")):
            break
        time.sleep(0.05)
    assert list((cli.archive / "tmp").glob("*.part")), "the runner should be mid-capture"
    victim.kill()
    victim.wait(timeout=10)
    with _db(cli) as conn:
        assert conn.execute("SELECT state FROM jobs").fetchone()[0] == "running"
        assert conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0] == 0
    time.sleep(3.5)  # the victim's 3 s lease must run out; nothing else can tell us it has
    rescue = cli("run", "--once", env=env)
    assert rescue.code == 0, rescue.err
    with _db(cli) as conn:
        state, attempts = conn.execute("SELECT state, attempts FROM jobs").fetchone()
        captures = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    assert (state, attempts, captures) == ("done", 2, 1)
    # The dead runner's temporary file is gone and nothing unsealed sits in warcs/.
    assert not list((cli.archive / "tmp").glob("*.part"))
    assert cli("verify").code == 0
