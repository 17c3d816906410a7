"""The team backends the tests start (tests/backends.py): PostgreSQL from Debian's package run as an unprivileged
user, with an owner role and a runner role that cannot UPDATE or DELETE, restartable under a client; and nothing
left behind by a test run that is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

import backends


def test_postgres_runs_unprivileged_on_loopback(postgres):
    status = Path(f"/proc/{postgres.proc.pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert uid != 0 and (os.geteuid() != 0 or uid == __import__("pwd").getpwnam("postgres").pw_uid)
    with psycopg.connect(postgres.dsn(backends.OWNER_ROLE)) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (backends.OWNER_ROLE, "archiver")
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    assert (postgres.socket_dir / f".s.PGSQL.{postgres.port}").exists()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.dsn(backends.RUNNER_ROLE).replace(postgres.passwords[backends.RUNNER_ROLE], "wrong"))


def test_runner_role_cannot_update_or_delete_evidence(postgres):
    name = postgres.new_database()
    with psycopg.connect(postgres.dsn(backends.OWNER_ROLE, name), autocommit=True) as owner:
        owner.execute("CREATE TABLE captures (id bigserial PRIMARY KEY, url text NOT NULL, sha256 text NOT NULL)")
        owner.execute(f"GRANT SELECT, INSERT ON captures TO {backends.RUNNER_ROLE}")
        owner.execute(f"GRANT USAGE ON SEQUENCE captures_id_seq TO {backends.RUNNER_ROLE}")
        owner.execute("INSERT INTO captures (url, sha256) VALUES ('https://a.example/', 'aa')")
    with psycopg.connect(postgres.dsn(backends.RUNNER_ROLE, name), autocommit=True) as runner:
        runner.execute("INSERT INTO captures (url, sha256) VALUES ('https://b.example/', 'bb')")
        assert runner.execute("SELECT count(*) FROM captures").fetchone() == (2,)
        for statement in ("UPDATE captures SET sha256 = 'forged'", "DELETE FROM captures", "TRUNCATE captures",
                          "CREATE TABLE mine (x int)", "DROP TABLE captures"):
            with pytest.raises(errors.InsufficientPrivilege):
                runner.execute(statement)
        assert runner.execute("SELECT url, sha256 FROM captures ORDER BY id").fetchall() == [
            ("https://a.example/", "aa"), ("https://b.example/", "bb")]


def test_postgres_restarts_under_a_client(postgres):
    name = postgres.new_database()
    dsn = postgres.dsn(backends.OWNER_ROLE, name)
    port, data_dir = postgres.port, postgres.data_dir
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("CREATE TABLE jobs (id int PRIMARY KEY)")
    conn.execute("INSERT INTO jobs VALUES (1)")
    postgres.restart()
    assert (postgres.port, postgres.data_dir) == (port, data_dir) and postgres.running
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # the server ended this session: a client must reconnect
    conn.close()
    with psycopg.connect(dsn, autocommit=True) as again:
        again.execute("INSERT INTO jobs VALUES (2)")
    # As after a crash: no checkpoint, recovery from WAL at the next start; committed rows are there.
    postgres.restart(mode="immediate")
    with psycopg.connect(dsn) as again:
        assert again.execute("SELECT id FROM jobs ORDER BY id").fetchall() == [(1,), (2,)]


def test_a_killed_test_run_leaves_no_server_behind(tmp_path):
    reason = backends.postgres_missing()
    if reason:
        pytest.skip(reason)
    tests_dir = Path(__file__).resolve().parent
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); import backends; "
         "pg = backends.PostgresServer(); print(pg.proc.pid, pg.root, flush=True); time.sleep(120)", str(tests_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        pid, root = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The kernel ends the postmaster when the process that started it dies (setpriv --pdeathsig).
    deadline = time.monotonic() + 10
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid))
    # Its directory is swept by the next run: the owning process is gone.
    assert Path(root) in backends.sweep_stale_postgres()
    assert not Path(root).exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_s3_proxy_passes_requests_on_and_fails_on_demand(s3):
    client = s3.client()
    prefix = s3.new_prefix()
    client.put_object(Bucket=s3.bucket, Key=f"{prefix}/a", Body=b"abc")
    assert client.get_object(Bucket=s3.bucket, Key=f"{prefix}/a")["Body"].read() == b"abc"
    assert [(r.method, r.status) for r in s3.proxy.requests] == [("PUT", 200), ("GET", 200)]
    s3.proxy.fail_for(0.5)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as failed:
        client.head_object(Bucket=s3.bucket, Key=f"{prefix}/a")
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    time.sleep(0.6)
    assert client.head_object(Bucket=s3.bucket, Key=f"{prefix}/a")["ContentLength"] == 3
