"""Sealing to S3 (issue 12, Part 2), through the CLI as a user runs it, against moto's S3 server with Object Lock
behind the recording proxy (tests/backends.py): the object is put create-only with its SHA-256 and its lock, the
capture indexed with where it lives, the local file gone; a runner killed at any step of a seal loses nothing and
indexes nothing twice; a store answering 503 delays a capture and never loses it."""
from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, index_conn, local_storage

PAGE = "/2016/12/16/evacuation-suspended/"


def s3_cli(cli: CLI, s3: Any, **settings: str) -> tuple[CLI, str]:
    """The CLI on an archive sealing into a fresh prefix of the fixture bucket: (cli, prefix)."""
    prefix = s3.new_prefix()
    cli.env.update({"ARCHIVER_STORAGE_URL": f"s3://{s3.bucket}/{prefix}", "ARCHIVER_STORAGE_ENDPOINT_URL": s3.proxy.url,
                    "ARCHIVER_STORAGE_REGION": s3.region, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"})
    cli.env.update({f"ARCHIVER_STORAGE_{k.upper()}": v for k, v in settings.items()})
    return cli, prefix


def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    client = s3.client(via_proxy=False)
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: client.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def rows(archive: Path, sql: str, *args: Any) -> list[Any]:
    with index_conn(archive) as conn:
        return conn.execute(sql, args).fetchall()


def local_warcs(archive: Path) -> list[Path]:
    return [p for p in archive.rglob("*") if p.is_file() and ".warc.gz" in p.name]


def test_a_capture_is_sealed_into_the_bucket_locked_and_checked(cli, site, s3):
    cli, prefix = s3_cli(cli, s3)
    result = cli("capture", "--no-browser", site.url + PAGE, "--json")
    assert result.code == 0, result.err
    [outcome] = result.json()
    [row] = rows(cli.archive, "SELECT * FROM captures")
    assert row["id"] == outcome["capture_id"] and row["warc_store"] == f"s3://{s3.bucket}/{prefix}"
    key = row["warc_path"].removeprefix("warcs/")
    stored = objects(s3, prefix)
    assert list(stored) == [key] and hashlib.sha256(stored[key]).hexdigest() == row["warc_sha256"]
    assert row["warc_version"] and row["warc_size"] == len(stored[key])
    assert local_warcs(cli.archive) == []   # nothing left on this host
    # At the wire: create-only, our SHA-256 for the server to check, COMPLIANCE retention on the write itself.
    [put] = [r for r in s3.proxy.find("PUT", key) if "retention" not in r.path]
    sha_b64 = base64.b64encode(bytes.fromhex(row["warc_sha256"])).decode()
    assert put.headers["if-none-match"] == "*" and put.headers["x-amz-checksum-sha256"] == sha_b64
    assert put.headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    until = put.headers["x-amz-object-lock-retain-until-date"]
    assert until[:4] >= str(int(row["finished_at"][:4]) + 9)
    # The ledger says where the sealed file went.
    [sealed] = rows(cli.archive, "SELECT detail FROM ledger WHERE event = 'sealed'")
    detail = json.loads(sealed["detail"])
    assert (detail["warc_store"], detail["warc_version"]) == (row["warc_store"], row["warc_version"])


def test_storage_url_empty_keeps_sealing_into_warcs(cli, site):
    cli = local_storage(cli)
    assert cli("capture", "--no-browser", site.url + PAGE).code == 0
    [row] = rows(cli.archive, "SELECT warc_path, warc_store, warc_version FROM captures")
    assert (cli.archive / row["warc_path"]).is_file() and row["warc_store"] is None and row["warc_version"] is None
    shown = cli("show", "--json", rows(cli.archive, "SELECT id FROM captures")[0]["id"]).json()
    assert "warc_store" not in shown and "warc_version" not in shown   # show --json as before schema 7


# ---- a kill at every step ---------------------------------------------------------------------------------------

def _settled_once(cli: CLI, s3: Any, prefix: str) -> None:
    """Exactly one capture, indexed once with its object in the bucket; no local copy; the job done; verify clean."""
    captures = rows(cli.archive, "SELECT id, warc_path, warc_sha256, warc_version FROM captures")
    assert len(captures) == 1, [dict(c) for c in captures]
    [capture] = captures
    stored = objects(s3, prefix)
    key = capture["warc_path"].removeprefix("warcs/")
    assert [k for k in stored if k.endswith(".warc.gz")] == [key]
    assert hashlib.sha256(stored[key]).hexdigest() == capture["warc_sha256"]
    assert [tuple(j) for j in rows(cli.archive, "SELECT state, capture_id FROM jobs")] == [("done", capture["id"])]
    assert local_warcs(cli.archive) == []
    sealed = rows(cli.archive, "SELECT COUNT(*) FROM ledger WHERE event = 'sealed' AND capture_id = ?", capture["id"])
    assert sealed[0][0] == 1
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out + verified.err


@pytest.mark.parametrize("step", ["prepared", "stored", "indexed", "released"])
def test_a_worker_killed_at_each_step_of_a_seal_is_settled_by_its_supervisor(cli, site, s3, step):
    cli, prefix = s3_cli(cli, s3)
    result = cli("capture", "--no-browser", site.url + PAGE, env={"ARCHIVER_FAULT_KILL_AT": step})
    assert "Traceback" not in result.err
    if rows(cli.archive, "SELECT state FROM jobs")[0][0] != "done":
        assert cli("run", "--once").code == 0
    _settled_once(cli, s3, prefix)


@pytest.mark.parametrize("step", ["prepared", "stored", "indexed", "released"])
def test_a_host_killed_at_each_step_of_a_seal_is_settled_by_the_next_runner(cli, site, s3, step):
    # The supervisor dies with its worker (a power cut): nothing settles until the next runner starts, after the
    # dead runner's lease has run out.
    cli, prefix = s3_cli(cli, s3)
    cli.env["ARCHIVER_QUEUE_LEASE_SECONDS"] = "2"
    proc = cli.popen("capture", "--no-browser", site.url + PAGE, env={"ARCHIVER_FAULT_KILL_AT": f"{step}:host"})
    proc.communicate(timeout=120)
    assert proc.returncode == -9
    indexed = step in ("indexed", "released")
    assert rows(cli.archive, "SELECT state FROM jobs")[0][0] == ("done" if indexed else "running")
    assert bool(local_warcs(cli.archive)) == (step != "released")   # the local copy, until released
    time.sleep(2.5)
    ran = cli("run", "--once")
    assert ran.code == 0, ran.err
    _settled_once(cli, s3, prefix)
    if step != "prepared":   # settled, not captured again: one attempt only, the one that sealed it
        assert rows(cli.archive, "SELECT COUNT(*) FROM attempts")[0][0] == 1


# ---- the store away ------------------------------------------------------------------------------------------------

def test_503_for_longer_than_the_retry_bound_delays_the_capture_and_loses_nothing(cli, site, s3):
    cli, prefix = s3_cli(cli, s3, retry_seconds="2")
    s3.proxy.fail_for(8)
    result = cli("capture", "--no-browser", site.url + PAGE, "--json")
    assert result.code == 1
    [outcome] = result.json()
    assert outcome["failure_class"] == "storage" and outcome["job_state"] == "queued"
    assert "Traceback" not in result.err and rows(cli.archive, "SELECT COUNT(*) FROM captures")[0][0] == 0
    [kept] = list((cli.archive / "tmp").glob("*.unstored"))
    job = rows(cli.archive, "SELECT attempts FROM jobs")[0]
    assert job["attempts"] == 0   # the store's fault, not the target's: no attempt used up
    time.sleep(max(0.0, s3.proxy.fault.until - time.monotonic()) + 0.5)
    again = cli("capture", "--no-browser", site.url + PAGE, "--json")   # the job's next attempt
    assert again.code == 0, again.err
    [capture] = rows(cli.archive, "SELECT id FROM captures")
    assert capture["id"] == kept.name.split(".")[0]   # the capture sealed before the outage, not a new one
    _settled_once(cli, s3, prefix)


# ---- every command reads through the store --------------------------------------------------------------------------

def test_show_search_report_export_verify_and_reindex_read_from_the_bucket(cli, site, s3, tmp_path):
    cli, prefix = s3_cli(cli, s3)
    result = cli("capture", "--no-browser", site.url + PAGE, site.url + "/test/pages/3", "--json")
    assert result.code == 0, result.err
    ids = sorted(o["capture_id"] for o in result.json())
    assert local_warcs(cli.archive) == []
    s3.proxy.reset()
    shown = cli("show", ids[0], "--json")
    assert shown.code == 0 and "provenance_error" not in shown.json() and "text_error" not in shown.json()
    assert shown.json()["provenance"]["capture_id"] == ids[0] and shown.json()["warc_store"].startswith("s3://")
    # Read back by range, the record alone, the version sealed.
    gets = s3.proxy.find("GET", ids[0])
    assert gets and all("range" in g.headers and "versionId=" in g.path for g in gets)
    human = cli("show", ids[0])
    assert f"s3://{s3.bucket}/{prefix}/" in human.out and "(version " in human.out
    hits = cli("search", "evacuation", "--json").json()
    assert hits and all("snippet_error" not in h for h in hits) and any(h["snippet"] for h in hits)

    report = cli("report", ids[0], "-o", str(tmp_path / "report.html"))
    assert report.code == 0, report.err
    html = (tmp_path / "report.html").read_text()
    assert f"s3://{s3.bucket}/{prefix}/" in html and " s3api get-object " in html

    wacz = tmp_path / "out.wacz"
    exported = cli("export", *ids, "-o", str(wacz))
    assert exported.code == 0, exported.err
    checked = cli("verify", "--wacz", str(wacz))
    assert checked.code == 0, checked.out + checked.err

    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["captures"] == 2

    rebuilt = cli("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert rebuilt.json()["captures"] == 2 and rebuilt.json()["skipped"] == []
    columns = "id, url, status, warc_path, warc_sha256, warc_size, warc_store, warc_version, record_count"
    old = [tuple(r) for r in rows(cli.archive, f"SELECT {columns} FROM captures ORDER BY id")]
    new = sqlite3.connect(tmp_path / "rebuilt.db").execute(f"SELECT {columns} FROM captures ORDER BY id").fetchall()
    assert new == old



def test_report_fetch_command_names_the_endpoint_and_region(cli, site, s3, tmp_path):
    """The report's "How to check this" fetches the WARC with the AWS CLI. It used to name only bucket, key and
    version: on any endpoint but AWS's default (moto, MinIO, a gateway) the command asked AWS and failed."""
    import html as html_lib
    import shlex
    cli, _ = s3_cli(cli, s3)
    captured = cli("capture", "--no-browser", site.url + PAGE, "--json")
    assert captured.code == 0, captured.err
    capture_id = captured.json()[0]["capture_id"]
    assert cli("report", capture_id, "-o", str(tmp_path / "r.html")).code == 0
    section = (tmp_path / "r.html").read_text().split("How to check this", 1)[1]
    howto = html_lib.unescape(section.split("<pre>", 1)[1].split("</pre>", 1)[0])
    fetch = next(line for line in howto.splitlines() if "s3api get-object" in line)
    argv = shlex.split(fetch)
    opts = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == "aws" and opts["--endpoint-url"] == s3.proxy.url and opts["--region"] == s3.region
    # Do what the command does (aws-cli is not ours to ship): its options alone reach the version sealed.
    import boto3
    body = boto3.session.Session().client("s3", endpoint_url=opts["--endpoint-url"], region_name=opts["--region"]) \
        .get_object(Bucket=opts["--bucket"], Key=opts["--key"], VersionId=opts["--version-id"])["Body"].read()
    assert argv[-1] == f"{capture_id}.warc.gz"
    assert f"expect {hashlib.sha256(body).hexdigest()}" in howto


def test_a_flipped_byte_or_a_missing_lock_in_the_bucket_is_reported_by_verify(cli, site, s3):
    cli, prefix = s3_cli(cli, s3)
    assert cli("capture", "--no-browser", site.url + PAGE).code == 0
    [capture] = rows(cli.archive, "SELECT id, warc_path, warc_size FROM captures")
    key = capture["warc_path"].removeprefix("warcs/")
    s3.proxy.flip_byte_in_gets = (key, capture["warc_size"] // 2)
    verified = cli("verify", "--json")
    assert verified.code == 1
    kinds = {p["problem"] for p in verified.json()["problems"]}
    assert "altered" in kinds, verified.out
    s3.proxy.reset()
    assert cli("verify").code == 0
    # Settings that demand more than the object has: reported as a lock problem, never silently passed.
    stricter = cli("verify", "--json", env={"ARCHIVER_STORAGE_RETENTION_DAYS": "4000"})
    assert stricter.code == 1 and {p["problem"] for p in stricter.json()["problems"]} == {"unlocked"}


def test_an_unindexed_object_is_named_and_a_capture_is_read_where_it_was_stored(cli, site, s3):
    cli, prefix = s3_cli(cli, s3)
    assert cli("capture", "--no-browser", site.url + PAGE).code == 0
    [capture] = rows(cli.archive, "SELECT id, warc_path FROM captures")
    client = s3.client(via_proxy=False)
    client.put_object(Bucket=s3.bucket, Key=f"{prefix}/2020/01/01/01E0000000000000000000000X.warc.gz", Body=b"x")
    verified = cli("verify", "--json")
    assert verified.code == 1
    assert [p["problem"] for p in verified.json()["problems"]] == ["unindexed"]
    other = cli("verify", "--json", env={"ARCHIVER_STORAGE_URL": f"s3://{s3.bucket}/{s3.new_prefix()}"})
    # The capture's own place (warc_store) is where it is read, whatever the settings say now.
    assert [p["problem"] for p in other.json()["problems"]] == []


@pytest.mark.slow
def test_503_for_20_seconds_during_a_capture_delays_it_and_captures_once(cli, site, s3):
    cli, prefix = s3_cli(cli, s3)
    s3.proxy.fail_for(20)
    started = time.monotonic()
    result = cli("capture", "--no-browser", site.url + PAGE, "--json")
    assert result.code == 0, result.err
    assert time.monotonic() - started >= 19 and s3.proxy.fault.count > 3
    _settled_once(cli, s3, prefix)
    assert rows(cli.archive, "SELECT COUNT(*) FROM attempts")[0][0] == 1


def test_timestamp_tokens_go_beside_the_warc_in_the_bucket(cli, site, s3, tmp_path):
    from tsa_server import LoopbackTSA
    cli, prefix = s3_cli(cli, s3)
    tsa = LoopbackTSA(tmp_path / "tsa")
    cli.env.update({"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url]),
                    "ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)})
    try:
        result = cli("capture", "--no-browser", site.url + PAGE, "--json")
    finally:
        tsa.close()
    assert result.code == 0, result.err
    [capture] = rows(cli.archive, "SELECT id, warc_path, warc_sha256 FROM captures")
    [stamp] = rows(cli.archive, "SELECT state, token_path, token_sha256 FROM timestamps")
    assert stamp["state"] == "done"
    day = capture["warc_path"].removeprefix("warcs/").rsplit("/", 1)[0]
    stored = objects(s3, prefix)
    assert sorted(stored) == sorted([f"{day}/{capture['id']}.warc.gz", f"{day}/{capture['id']}.1.tsr",
                                     f"{day}/{capture['id']}.1.tsr.json"])
    assert hashlib.sha256(stored[f"{day}/{capture['id']}.1.tsr"]).hexdigest() == stamp["token_sha256"]
    assert [p for p in cli.archive.rglob("*") if p.is_file() and ".tsr" in p.name] == []   # none kept here
    # And people are told where it is: `show` and `timestamp` named warcs/..., a path no host has in team mode.
    token_at = f"s3://{s3.bucket}/{prefix}/{day}/{capture['id']}.1.tsr"
    for said in (cli("show", capture["id"]), cli("timestamp", capture["id"])):
        assert said.code == 0 and token_at in said.out and stamp["token_path"] not in said.out, said.out + said.err
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["timestamps"]["verified"] == 1
    wacz = tmp_path / "stamped.wacz"
    assert cli("export", capture["id"], "-o", str(wacz)).code == 0
    checked = cli("verify", "--wacz", str(wacz), "--json")
    assert checked.code == 0, checked.out
    rebuilt = cli("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    assert rebuilt.code == 0 and rebuilt.json()["timestamps"] == 1, rebuilt.out
    # A store that refuses to be read (credentials missing or wrong on this host): verify names each object it
    # could not read, the token too, and goes on to its summary; it never stops at the first one.
    s3.proxy.fail_for(60, status=403, code="AccessDenied")
    try:
        refused = cli("verify", capture["id"], "--json")
    finally:
        s3.proxy.fail_for(0)
    assert refused.code == 1 and "Traceback" not in refused.err, refused.err
    report = refused.json()
    kinds = {(p["problem"], p["path"].rsplit(".", 2)[-2] if p["path"].endswith(".tsr") else "warc")
             for p in report["problems"]}
    assert {("unreadable", "warc"), ("unreadable", "1")} <= kinds, report["problems"]
    assert report["problem_count"] == len(report["problems"])


def test_a_runner_that_lost_its_lease_after_storing_indexes_its_capture_without_the_job(tmp_path, site, s3,
                                                                                        monkeypatch):
    # Stalled past its lease with the object already in the bucket (locked for years): the capture must be in the
    # index -- never an object the index does not know -- but the job stays the other runner's.
    from archiver import urls
    from archiver.custody.verify import verify
    from archiver.pipeline import queue, worker as worker_module
    from archiver.store.archive import Archive

    prefix = s3.new_prefix()
    for name, value in {"NETWORK_ALLOW_PRIVATE": "true", "STORAGE_URL": f"s3://{s3.bucket}/{prefix}",
                        "STORAGE_ENDPOINT_URL": s3.proxy.url, "STORAGE_REGION": s3.region}.items():
        monkeypatch.setenv(f"ARCHIVER_{name}", value)
    archive = Archive.open(tmp_path / "archive")
    index = archive.index()
    queue.enqueue(index, [urls.parse(site.url + "/test/pages/6")], requested_by="t", tags=[], note=None, priority=0,
                  max_attempts=3, options={"no_browser": True})
    real_put = worker_module.Worker._put

    def taken_over_meanwhile(self, job, warc, row):
        placed = real_put(self, job, warc, row)
        with index.transaction() as conn:   # what another runner's claim after our lease expired leaves
            conn.execute("UPDATE jobs SET lease_owner = 'other-runner'")
        return placed

    monkeypatch.setattr(worker_module.Worker, "_put", taken_over_meanwhile)
    [outcome] = worker_module.run_worker(archive, once=True, handle_signals=False).outcomes
    assert outcome.status == "released" and outcome.capture_id is not None
    [row] = index.conn.execute("SELECT id, warc_store FROM captures").fetchall()
    assert row["id"] == outcome.capture_id and row["warc_store"] == f"s3://{s3.bucket}/{prefix}"
    assert tuple(index.conn.execute("SELECT state, lease_owner FROM jobs").fetchone()) == ("running", "other-runner")
    assert not list((archive.path / "tmp").glob("*.warc.gz*"))
    assert verify(archive.path, index, settings=archive.settings).ok
    index.close()


# ---- two hosts sharing nothing but PostgreSQL and S3 ----------------------------------------------------------------

def _hosts(tmp_path: Path, team_db: Any, s3: Any, *names: str, **env: str) -> tuple[CLI, list[CLI], str]:
    """The archive's owner and runners on separate "hosts" (directories: own settings, keys and tmp/), all sealing
    into one prefix of the bucket and indexing into one database: (owner, runners, prefix). The owner makes the
    archive's keys; each runner host holds a copy of them, as a team's do (keys.py: none signs with a key of its
    own)."""
    import shutil
    prefix = s3.new_prefix()
    clis = []
    for name, url in [("owner", team_db.owner_url)] + [(n, team_db.runner_url) for n in names]:
        cli = CLI(tmp_path / name)
        cli.env.update(ARCHIVER_INDEX_URL=url, **env)
        clis.append(s3_cli(cli, s3)[0])
        cli.env["ARCHIVER_STORAGE_URL"] = f"s3://{s3.bucket}/{prefix}"
    assert clis[0]("status").code == 0 and clis[0]("key").code == 0
    for runner in clis[1:]:
        shutil.copytree(clis[0].archive / "keys", runner.archive / "keys")
    return clis[0], clis[1:], prefix


def _team_rows(team_db: Any, sql: str) -> list[tuple]:
    import psycopg
    with psycopg.connect(team_db.owner_url) as conn:
        return conn.execute(sql).fetchall()


def test_a_host_lost_after_storing_is_settled_from_the_store_by_a_runner_on_another_host(tmp_path, site, s3,
                                                                                         team_db):
    # Killed between the PUT and the index, with its tmp/ gone with the host: the object is in the bucket (locked
    # for years) and only the job's `storing` names it. The next runner, elsewhere, indexes that object as the
    # job's capture instead of capturing the page a second time (which would leave an object no index row names).
    owner, (lost, other), prefix = _hosts(tmp_path, team_db, s3, "lost", "other", ARCHIVER_QUEUE_LEASE_SECONDS="2")
    assert owner("add", "--no-browser", site.url + PAGE).code == 0
    proc = lost.popen("run", "--once", env={"ARCHIVER_FAULT_KILL_AT": "stored:host"})
    proc.communicate(timeout=120)
    assert proc.returncode == -9
    [stored] = [k for k in objects(s3, prefix) if k.endswith(".warc.gz")]
    assert _team_rows(team_db, "SELECT state, storing FROM jobs") == [("running", "warcs/" + stored)]
    time.sleep(2.5)   # the lost host's lease runs out
    ran = other("run", "--once")
    assert ran.code == 0, ran.err
    assert "from the store" in ran.err
    assert _team_rows(team_db, "SELECT id, warc_path FROM captures") == [(stored.rsplit("/", 1)[1].split(".")[0],
                                                                          "warcs/" + stored)]
    assert _team_rows(team_db, "SELECT state, storing FROM jobs") == [("done", None)]
    assert [k for k in objects(s3, prefix) if k.endswith(".warc.gz")] == [stored]   # captured once
    assert _team_rows(team_db, "SELECT outcome, worker LIKE '%' FROM attempts") == [("ok", True)]
    verified = other("verify", "--json")
    assert verified.code == 0 and verified.json()["ok"], verified.out


def test_a_capture_waiting_for_the_store_on_one_host_is_not_captured_again_on_another(tmp_path, site, s3, team_db):
    # S3 away for longer than storage.retry_seconds: host A's capture is sealed and kept in its tmp/, and the job is
    # reserved for A's next attempt. Host B leaves it alone (no second capture of the page); A stores it once the
    # store is back. Had A been lost, the reservation would run out and B capture the page: nothing is lost.
    owner, (a, b), prefix = _hosts(tmp_path, team_db, s3, "a", "b", ARCHIVER_STORAGE_RETRY_SECONDS="1",
                                   ARCHIVER_QUEUE_BACKOFF_SECONDS="4")
    assert owner("add", "--no-browser", site.url + PAGE, site.url + "/test/pages/3").code == 0
    s3.proxy.fail_for(30)
    first = a("run", "--once")   # both sealed, neither stored; their retries not due yet, so it stops
    assert "Traceback" not in first.err
    kept = sorted(p.name for p in (a.archive / "tmp").glob("*.unstored"))
    assert len(kept) == 2 and _team_rows(team_db, "SELECT COUNT(*) FROM captures") == [(0,)]
    s3.proxy.fail_for(0)
    time.sleep(4.5)   # the store is back; the backoff has passed
    assert b("run", "--once").code == 0
    assert _team_rows(team_db, "SELECT COUNT(*) FROM captures") == [(0,)]   # B left A's jobs to A
    again = a("run", "--once")
    assert again.code == 0, again.err
    captured = sorted(r[0] for r in _team_rows(team_db, "SELECT id FROM captures"))
    assert captured == sorted(k.split(".")[0] for k in kept)   # the captures sealed during the outage, no others
    assert _team_rows(team_db, "SELECT DISTINCT state FROM jobs") == [("done",)]
    assert len([k for k in objects(s3, prefix) if k.endswith(".warc.gz")]) == 2
    assert not list((a.archive / "tmp").glob("*.warc.gz*"))
    verified = b("verify", "--json")
    assert verified.code == 0 and verified.json()["ok"], verified.out


def test_a_reservation_runs_out_when_its_host_is_lost_and_another_host_captures_the_page(tmp_path, site, s3,
                                                                                        team_db):
    owner, (a, b), prefix = _hosts(tmp_path, team_db, s3, "a", "b", ARCHIVER_STORAGE_RETRY_SECONDS="1",
                                   ARCHIVER_QUEUE_BACKOFF_SECONDS="1", ARCHIVER_QUEUE_LEASE_SECONDS="2")
    assert owner("add", "--no-browser", site.url + PAGE).code == 0
    s3.proxy.fail_for(30)
    assert "Traceback" not in a("run", "--once").err
    assert len(list((a.archive / "tmp").glob("*.unstored"))) == 1
    s3.proxy.fail_for(0)
    time.sleep(3.5)   # A is gone: nothing renews its reservation
    ran = b("run", "--once")
    assert ran.code == 0, ran.err
    assert _team_rows(team_db, "SELECT state FROM jobs") == [("done",)]
    assert _team_rows(team_db, "SELECT COUNT(*) FROM captures") == [(1,)]
    assert b("verify", "--json").json()["ok"]
