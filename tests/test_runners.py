"""Several runners on one archive, signals, and a runner killed mid-capture."""
from __future__ import annotations

import signal
import sqlite3
import time



def _db(cli):
    return sqlite3.connect(cli.archive / "index.db")


def test_two_concurrent_runners_capture_each_job_once(cli, site):
    urls = [f"{site.url}/test/pages/{n}" for n in range(1, 13)]
    assert cli("add", "--no-browser", *urls).code == 0
    first, second = cli.popen("run", "--once"), cli.popen("run", "--once")
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
