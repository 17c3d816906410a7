"""`archiver migrate` (issue 12, Part 2): an embedded archive made through the CLI against the loopback demo site --
a page, a document, a tweet, a watched page, a failed job, a timestamp -- moved into a fresh PostgreSQL database of
the test server and a fresh prefix of moto's bucket with Object Lock (tests/backends.py), verified; read the same
afterwards; a second run a no-op; a run killed after N objects completed by the next, as one run would have done;
and every refusal one line with exit 2, nothing written."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, ROOT, local_storage

SETTINGS = """# The newsroom's archive. This comment stays.
[archive]
operator = "newsroom-desk"   # who, when nobody says

[index]
# empty: index.db
url = ""
"""
PAGE = "/2016/12/16/evacuation-suspended/"
TWEET = "https://twitter.com/evac_watch_demo/status/809711419431133184"
PLACE = ("warc_store", "warc_version")


def index_db(archive: Path) -> sqlite3.Connection:
    """The embedded index itself, closed on leaving (a closed connection has checkpointed what it wrote)."""
    return contextlib.closing(sqlite3.connect(archive / "index.db", isolation_level=None))  # type: ignore[return-value]


def embedded_cli(archive: Path) -> CLI:
    """The CLI on an embedded archive (index.db and warcs/), whatever engine the test run gives new archives."""
    existed = (archive / "archiver.toml").exists()
    cli = local_storage(CLI(archive))
    cli.env.pop("ARCHIVER_INDEX_URL", None)
    if not existed:
        (archive / "archiver.toml").unlink(missing_ok=True)
    return cli


@dataclass
class Source:
    archive: Path
    ids: list[str]
    listed: str
    searches: dict[str, Any]
    shows: dict[str, dict[str, Any]]


def views(cli: CLI, ids: list[str]) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """What a reader sees: `list --json --all`, `search --json` of a few queries, `show --json` of every capture."""
    listed = cli("list", "--json", "--all")
    assert listed.code == 0, listed.err
    searches = {}
    for query in ("Ramouseh", "evacuation", "convoy OR statement", "evac*"):
        found = cli("search", query, "--json", "--all")
        assert found.code == 0, found.err
        searches[query] = found.json()
    shows = {}
    for capture_id in ids:
        shown = cli("show", capture_id, "--json")
        assert shown.code == 0, shown.err
        shows[capture_id] = shown.json()
    return listed.out, searches, shows


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, site: Any) -> Source:
    from tsa_server import LoopbackTSA
    root = tmp_path_factory.mktemp("migrate-source")
    archive = root / "archive"
    archive.mkdir()
    (archive / "archiver.toml").write_text(SETTINGS)
    cli = embedded_cli(archive)
    tsa = LoopbackTSA(root / "tsa")
    stamped = {"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url]), "ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)}
    try:   # a document, timestamped by a loopback TSA
        done = cli("capture", "--no-browser", site.url + "/docs/icrc-statement.pdf", "--tag", "docs", env=stamped)
        assert done.code == 0, done.err
    finally:
        tsa.close()
    done = cli("capture", site.article_url, "--tag", "aleppo", "--by", "tester")   # a page, in Chromium
    assert done.code == 0, done.err
    failed = cli("capture", "--no-browser", site.url + "/test/status/404")          # a failed job
    assert failed.code == 1, failed.err
    site.reset_tweet_states()
    world = {"ARCHIVER_NETWORK_PROXY": site.proxy_url, "ARCHIVER_NETWORK_CA_BUNDLE": str(site.ca_file)}
    done = cli("capture", "--no-browser", TWEET, env=world)                           # a tweet
    assert done.code == 0, done.err
    watched = cli("watch", "--no-browser", site.url + PAGE, "--every", "6h", "--check-every", "none")
    assert watched.code == 0, watched.err
    ran = cli("run", "--once")                                                       # the watch's first capture
    assert ran.code == 0, ran.err
    with index_db(archive) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM captures ORDER BY id")]
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'failed'").fetchone()[0] >= 1
        assert conn.execute("SELECT COUNT(*) FROM timestamps WHERE state = 'done'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM watches").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM tweets").fetchone()[0] == 1
    listed, searches, shows = views(cli, ids)
    assert searches["Ramouseh"] and searches["evacuation"]
    return Source(archive, ids, listed, searches, shows)


def copy_of(source: Source, where: Path) -> CLI:
    """A copy of the source archive of its own (a migration writes its settings file)."""
    shutil.copytree(source.archive, where / "archive", symlinks=True)
    return embedded_cli(where / "archive")


def team_env(cli: CLI, s3: Any) -> CLI:
    """Where the bucket's endpoint is and the credentials boto3 and libpq find; never the two URLs themselves."""
    cli.env.update({"ARCHIVER_STORAGE_ENDPOINT_URL": s3.proxy.url, "ARCHIVER_STORAGE_REGION": s3.region,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_EC2_METADATA_DISABLED": "true", "PGPASSFILE": os.environ["PGPASSFILE"]})
    return cli


def files_of(archive: Path) -> dict[str, tuple[str, int]]:
    """Every file of the archive's index and warcs/, by path: (SHA-256, mode)."""
    out = {}
    for path in sorted([archive / "index.db", *(archive / "warcs").rglob("*")]):
        if path.is_file():
            out[str(path.relative_to(archive))] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return out


def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    client = s3.client(via_proxy=False)
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: client.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def dump(url: str) -> dict[str, list[tuple]]:
    """Every table of a migrated index in key order, without what differs between two migrations of the same archive
    by nature: each capture's place (another prefix) and the closing `migrated` entry (its time, its target)."""
    import psycopg
    keys = {"ledger": "seq", "jobs": "id", "attempts": "id", "captures": "id", "records_packed": "capture_id, seq",
            "outlinks": "rowid", "refs": "rowid", "tweets": "capture_id", "posts": "capture_id",
            "videos": "capture_id",
            "captures_fts": "rowid", "timestamps": "id", "watches": "id", "checks": "id", "items": "key",
            "transitions": "id", "host_slots": "host", "tallies": "name"}
    out: dict[str, list[tuple]] = {}
    with psycopg.connect(url) as conn:
        for table, key in keys.items():
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
            names = [c.name for c in cur.description]
            rows = [tuple(None if n in PLACE else (str(v) if n == "doc" else v) for n, v in zip(names, row))
                    for row in cur.fetchall()]
            if table == "ledger":
                assert rows[-1][names.index("event")] == "migrated"
                rows = rows[:-1]
            out[table] = rows
        out["sequences"] = conn.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall()
    return out


def migrated_entries(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM ledger WHERE event = 'migrated' ORDER BY seq").fetchall()


# ---- the migration --------------------------------------------------------------------------------------------

def test_migrate_moves_the_archive_verified_and_it_reads_the_same(source, tmp_path, team_db, s3):
    cli = team_env(copy_of(source, tmp_path), s3)
    prefix = s3.new_prefix()
    bucket_url = f"s3://{s3.bucket}/{prefix}"
    before = files_of(cli.archive)
    args = ("migrate", "--index", team_db.owner_url, "--storage", bucket_url)

    dry = cli(*args, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert plan["dry_run"] and plan["ledger"]["target_state"] == "empty"
    assert plan["objects"]["warcs"] == len(source.ids) and plan["objects"]["tokens"] == 1
    assert objects(s3, prefix) == {} and (cli.archive / "archiver.toml").read_text() == SETTINGS

    done = cli(*args, "--json")
    assert done.code == 0, done.err
    report = done.json()
    assert all(n["source"] == n["target"] for n in report["tables"].values()), report["tables"]
    assert report["tables"]["captures"]["source"] == len(source.ids)
    # Every WARC and the token with its sidecar, stored once, checked, locked, create-only.
    assert report["objects"] == {**report["objects"], "warcs": len(source.ids), "tokens": 1, "stored": len(source.ids) + 2,
                                 "already_stored": 0}
    stored = objects(s3, prefix)
    with index_db(cli.archive) as conn:
        sealed = dict(conn.execute("SELECT warc_path, warc_sha256 FROM captures"))
    for path, sha256 in sealed.items():
        key = path.removeprefix("warcs/")
        assert hashlib.sha256(stored[key]).hexdigest() == sha256
        [put] = [r for r in s3.proxy.find("PUT", key) if "retention" not in r.path]
        assert put.headers["if-none-match"] == "*" and put.headers["x-amz-object-lock-mode"] == "COMPLIANCE"
        assert "x-amz-checksum-sha256" in put.headers
    assert sorted(k.rsplit("/", 1)[1].split(".", 1)[1] for k in stored if not k.endswith(".warc.gz")) == \
        ["1.tsr", "1.tsr.json"]
    # progress on stderr as it goes
    assert "migrate: captures:" in done.err and "migrate: ledger:" in done.err

    # One `migrated` entry closes the chain, naming the source's head.
    [entry] = migrated_entries(team_db.owner_url)
    detail = json.loads(entry["detail"])
    assert entry["seq"] == report["ledger"]["migrated_entry"] == report["ledger"]["entries"] + 1
    assert detail["source_ledger"]["head"] == report["ledger"]["head"] and detail["by"] == "newsroom-desk"
    assert detail["to"] == {"index": team_db.owner_url, "storage": bucket_url}
    assert detail["counts"]["captures"] == len(source.ids)
    # The archive's key is recorded in the team index, so that no runner host signs with another.
    import psycopg
    with psycopg.connect(team_db.owner_url) as conn:
        recorded = dict(conn.execute("SELECT name, fingerprint FROM archive_keys").fetchall())
    assert recorded["archive"] == cli("key", "--json").json()["fingerprint"]

    # The settings file: the two URLs set, everything else as it was, comments included.
    text = (cli.archive / "archiver.toml").read_text()
    assert text.startswith("# The newsroom's archive. This comment stays.\n[archive]\noperator = \"newsroom-desk\"   #")
    assert f'[index]\n# empty: index.db\nurl = "{team_db.owner_url}"\n' in text
    assert f'[storage]\nurl = "{bucket_url}"\n' in text
    # The evidence left where it was, byte for byte, and said so.
    assert files_of(cli.archive) == before
    assert str(cli.archive / "index.db") in report["left_untouched"]

    # The archive now opens in team mode: verify is clean, and readers see what they saw.
    assert cli("status").code == 0
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["captures"] == len(source.ids) and verified.json()["timestamps"]["verified"] == 1
    listed, searches, shows = views(cli, source.ids)
    # The same rows, each now saying where its WARC is (as show does).
    rows = json.loads(listed)
    assert all(row["warc_store"] == bucket_url and row["warc_version"] for row in rows)
    assert [{k: v for k, v in row.items() if k not in PLACE} for row in rows] == json.loads(source.listed)
    assert searches == source.searches
    for capture_id, shown in shows.items():
        assert shown["warc_store"] == bucket_url and shown["warc_version"]
        assert {k: v for k, v in shown.items() if k not in PLACE} == source.shows[capture_id]

    # Again: nothing to do, nothing written.
    s3.proxy.reset()
    again = cli(*args)
    assert again.code == 0, again.err
    assert "already migrated" in again.out
    assert not s3.proxy.find("PUT") and len(migrated_entries(team_db.owner_url)) == 1


def test_received_files_move_into_the_bucket_with_their_receipts_and_verify(tmp_path, team_db, s3):
    """Files received from others (archiver receive) move as WARCs do: each, with its receipt file as written, put
    create-only into the bucket, checked by SHA-256; its receipt row inserted with its new place; its ledger entry
    with the ledger; its receipt's RFC 3161 token and sidecar beside the receipt file; its pages searchable (their
    full-text entries made on the target). Then verify in team mode re-hashes it and checks the token from the
    bucket."""
    import psycopg
    from psycopg.rows import dict_row
    from tsa_server import LoopbackTSA
    from warcutil import partner_crawl
    cli = team_env(embedded_cli(tmp_path / "archive"), s3)
    crawl = partner_crawl(tmp_path / "partner-crawl.warc", 3)
    tsa = LoopbackTSA(tmp_path / "tsa")
    stamped = {"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url]), "ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)}
    try:
        taken = cli("receive", str(crawl), "--from", "Partner newsroom", "--by", "Hadi", "--json", env=stamped)
    finally:
        tsa.close()
    assert taken.code == 0, taken.err
    [receipt] = taken.json()
    [stamp] = receipt["timestamps"]
    assert stamp["state"] == "done", stamp
    searched = cli("search", "checkpoint", "--json", "--all")
    assert searched.code == 0, searched.err
    assert len(searched.json()) == 3
    kept = Path(receipt["location"])
    assert kept.is_file() and kept.read_bytes() == crawl.read_bytes()
    with index_db(cli.archive) as conn:
        conn.row_factory = sqlite3.Row
        [source_row] = [dict(r) for r in conn.execute("SELECT * FROM receipts")]
    key = source_row["path"]
    prefix = s3.new_prefix()
    bucket_url = f"s3://{s3.bucket}/{prefix}"
    args = ("migrate", "--index", team_db.owner_url, "--storage", bucket_url, "--json")

    plan = cli(*args, "--dry-run").json()
    assert plan["objects"]["received"] == 1 and plan["tables"]["receipts"] == {"source": 1}
    assert plan["objects"]["tokens"] == 1
    done = cli(*args, env={"ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)})
    assert done.code == 0, done.err
    report = done.json()
    assert report["objects"] == {**report["objects"], "received": 1, "warcs": 0, "tokens": 1, "stored": 4,
                                 "already_stored": 0}
    assert report["tables"]["receipts"] == {"source": 1, "target": 1}
    assert report["tables"]["received_pages"] == report["tables"]["received_search"] == {"source": 3, "target": 3}
    assert all(n["source"] == n["target"] for n in report["tables"].values()), report["tables"]
    # The file, its receipt file and the receipt's token with its sidecar in the bucket as they were kept, put
    # create-only under Object Lock, the token beside the receipt file.
    stored = objects(s3, prefix)
    token = key + ".receipt.json.1.tsr"
    assert sorted(stored) == [key, key + ".receipt.json", token, token + ".json"]
    assert stored[key] == crawl.read_bytes()
    for name in (".receipt.json", ".receipt.json.1.tsr", ".receipt.json.1.tsr.json"):
        assert stored[key + name] == Path(str(kept) + name).read_bytes()
    for name in stored:
        [put] = [r for r in s3.proxy.find("PUT", name) if "retention" not in r.path and r.path.endswith(name)]
        assert put.headers["if-none-match"] == "*" and put.headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    # The row inserted with its new place, the rest as received; its ledger entry came with the ledger.
    with psycopg.connect(team_db.owner_url, row_factory=dict_row) as conn:
        [row] = conn.execute("SELECT * FROM receipts").fetchall()
        entries = conn.execute("SELECT detail FROM ledger WHERE event = 'received'").fetchall()
    assert row["store"] == bucket_url and row["version"]
    assert {k: v for k, v in row.items() if k not in ("store", "version")} == \
        {k: v for k, v in source_row.items() if k not in ("store", "version")}
    assert [json.loads(e["detail"])["receipt"] for e in entries] == [receipt["receipt_id"]]

    # Team mode: verify re-hashes it and checks its token from the bucket; its pages are found as before; the same
    # bytes received again are recognised there.
    cli.env["ARCHIVER_TIMESTAMP_CA_BUNDLE"] = str(tsa.ca_file)
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["received"] == 1 and verified.json()["timestamps"]["verified"] == 1
    assert {r["id"] for r in cli("search", "checkpoint", "--json", "--all").json()} == \
        {r["id"] for r in searched.json()}
    [again] = cli("receive", str(crawl), "--from", "Another desk", "--json").json()
    assert again["outcome"] == "already" and again["receipt_id"] == receipt["receipt_id"]
    assert again["location"] == f"{bucket_url}/{key}" or again["location"].endswith(key)
    assert [t["token_path"] for t in again["timestamps"]] == [token]
    assert sorted(objects(s3, prefix)) == [key, key + ".receipt.json", token, token + ".json"]


def test_a_migration_killed_after_some_objects_completes_on_rerun_as_one_run_would(source, tmp_path, postgres,
                                                                                     pg_passfile, s3):
    from conftest import backends
    urls = [f"postgresql://{backends.OWNER_ROLE}@127.0.0.1:{postgres.port}/{postgres.new_database()}" for _ in "ab"]
    prefixes = [s3.new_prefix(), s3.new_prefix()]
    killed_cli = team_env(copy_of(source, tmp_path / "a"), s3)
    whole_cli = team_env(copy_of(source, tmp_path / "b"), s3)
    args = [("migrate", "--index", url, "--storage", f"s3://{s3.bucket}/{prefix}", "--json")
            for url, prefix in zip(urls, prefixes)]

    killed = killed_cli(*args[0], env={"ARCHIVER_FAULT_KILL_AT": "migrate-object-2"})
    assert killed.code == -9, killed.err
    # Killed after its second object (those put beside it at the same time may be there too), before any
    # settings changed.
    assert 2 <= len(objects(s3, prefixes[0])) < len(source.ids) + 2
    assert (killed_cli.archive / "archiver.toml").read_text() == SETTINGS   # still embedded: nothing half-switched
    assert cli_status_is_embedded(killed_cli)

    resumed = killed_cli(*args[0])
    assert resumed.code == 0, resumed.err
    report = resumed.json()
    assert report["resumed"] and report["objects"]["already_stored"] >= 1
    assert all(n["source"] == n["target"] for n in report["tables"].values())

    whole = whole_cli(*args[1])
    assert whole.code == 0, whole.err
    assert dump(urls[0]) == dump(urls[1])
    assert objects(s3, prefixes[0]) == objects(s3, prefixes[1])
    assert killed_cli("verify").code == 0

    # Killed after the `migrated` entry and before the settings were written: the next run writes them, and appends
    # no second entry.
    (whole_cli.archive / "archiver.toml").write_text(SETTINGS)
    finished = whole_cli(*args[1])
    assert finished.code == 0, finished.err
    assert finished.json()["resumed"] and finished.json()["objects"]["stored"] == 0
    assert [e["seq"] for e in migrated_entries(urls[1])] == [whole.json()["ledger"]["migrated_entry"]]
    assert "postgresql://" in (whole_cli.archive / "archiver.toml").read_text()


def cli_status_is_embedded(cli: CLI) -> bool:
    status = cli("status", "--json")
    return status.code == 0 and not (cli.archive / "archiver.toml").read_text().count("postgresql://")


# ---- refusals: one line, exit 2, nothing written ---------------------------------------------------------------------

def refused(result: Any, *words: str) -> None:
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archiver: error: "), result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_migrate_refuses_what_it_must_and_writes_nothing(source, tmp_path, postgres, pg_passfile, team_db, s3):
    import psycopg
    from conftest import backends
    cli = team_env(copy_of(source, tmp_path), s3)
    bucket_url = f"s3://{s3.bucket}/{s3.new_prefix()}"
    target = team_db.owner_url
    before = files_of(cli.archive)

    refused(cli("migrate", "--index", "postgresql://archiver_owner:secret@127.0.0.1/db", "--storage",
                bucket_url), "--index must not hold a password")
    refused(cli("migrate", "--index", "mysql://127.0.0.1/db", "--storage", bucket_url), "--index")
    refused(cli("migrate", "--index", "postgresql://127.0.0.1:port/db", "--storage", bucket_url), "--index")
    refused(cli("migrate", "--index", target, "--storage", str(tmp_path / "elsewhere")), "--storage must be an s3://")
    refused(cli("migrate", "--index", target, "--storage", "s3://Not_A_Bucket/x"), "--storage")
    refused(cli("migrate", "--index", target, "--storage", bucket_url,
                env={"ARCHIVER_STORAGE_URL": f"s3://{s3.bucket}/other"}), "already in team mode")
    refused(embedded_cli(tmp_path / "nothing")("migrate", "--index", target, "--storage", bucket_url), "no archive")

    # A bucket without Object Lock, and no bucket at all.
    plain = f"plain-{s3.bucket}"
    s3.client(via_proxy=False).create_bucket(Bucket=plain)
    refused(cli("migrate", "--index", target, "--storage", f"s3://{plain}/x"), "no Object Lock")
    refused(cli("migrate", "--index", target, "--storage", f"s3://missing-{s3.bucket}/x"), "--storage")

    # Runners at work: a job held under a lease that has not run out.
    with index_db(cli.archive) as conn:
        [last_job] = conn.execute("SELECT MAX(id) FROM jobs").fetchone()
    added = cli("add", "--no-browser", "https://example.org/held")
    assert added.code == 0, added.err
    with index_db(cli.archive) as conn:
        conn.execute("UPDATE jobs SET state = 'running', lease_owner = 'host-b:4242:w1', "
                     "lease_expires = '2999-01-01T00:00:00.000000Z' WHERE id > ?", (last_job,))
    refused(cli("migrate", "--index", target, "--storage", bucket_url), "runners are at work", "host-b:4242:w1",
            "stop them")
    with index_db(cli.archive) as conn:   # the runner stopped; its lease ran out
        conn.execute("UPDATE jobs SET lease_expires = '2000-01-01T00:00:00.000000Z' WHERE id > ?", (last_job,))
    before = files_of(cli.archive)

    # A database holding another archive, or a newer schema, or tables of something else.
    other = embedded_cli(tmp_path / "other")
    assert other("add", "https://example.org/another-archive").code == 0
    team_env(other, s3)
    moved = other("migrate", "--index", target, "--storage", f"s3://{s3.bucket}/{s3.new_prefix()}")
    assert moved.code == 0, moved.err
    refused(cli("migrate", "--index", target, "--storage", bucket_url), "holds another archive")
    refused(cli("migrate", "--index", team_db.runner_url, "--storage", bucket_url), "connect as the role that owns")
    server = f"postgresql://{backends.OWNER_ROLE}@127.0.0.1:{postgres.port}"
    newer = f"{server}/{postgres.new_database()}"
    with psycopg.connect(newer) as conn:
        conn.execute("CREATE TABLE index_schema (version bigint NOT NULL)")
        conn.execute("INSERT INTO index_schema VALUES (99)")
    refused(cli("migrate", "--index", newer, "--storage", bucket_url), "schema version 99", "upgrade archiver")
    foreign = f"{server}/{postgres.new_database()}"
    with psycopg.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id bigint)")
    refused(cli("migrate", "--index", foreign, "--storage", bucket_url), "no archiver index")

    assert files_of(cli.archive) == before
    assert (cli.archive / "archiver.toml").read_text() == SETTINGS
    assert objects(s3, bucket_url.rsplit("/", 1)[1]) == {}


# ---- the demo archive -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_demo_archive_migrates_and_verifies(tmp_path, team_db, s3):
    demo = ROOT / "demo-archive"
    if not (demo / "index.db").is_file():
        pytest.skip("no demo-archive: run `make demo` first")
    shutil.copytree(demo, tmp_path / "archive", symlinks=True, ignore=shutil.ignore_patterns("receiving-archive"))
    cli = team_env(embedded_cli(tmp_path / "archive"), s3)
    before = cli("list", "--json", "--all").out
    bucket_url = f"s3://{s3.bucket}/{s3.new_prefix()}"
    done = cli("migrate", "--index", team_db.owner_url, "--storage", bucket_url)
    assert done.code == 0, done.err
    verified = cli("verify")
    assert verified.code == 0, verified.out + verified.err
    # The same rows, each now saying where its WARC is.
    rows = cli("list", "--json", "--all").json()
    assert all(row["warc_store"] == bucket_url and row["warc_version"] for row in rows)
    assert [{k: v for k, v in row.items() if k not in PLACE} for row in rows] == json.loads(before)


def test_a_runner_host_set_up_as_the_readme_says_opens_the_archive(source, tmp_path, team_db, s3):
    """README, Running as a team: each runner host needs the archive's keys/ and archiver.toml. A host holding just
    those (no warcs/ yet) was told "no archive at ...; `archiver status` starts an empty archive" by `archiver key`."""
    cli = team_env(copy_of(source, tmp_path / "first"), s3)
    assert cli("migrate", "--index", team_db.owner_url, "--storage", f"s3://{s3.bucket}/{s3.new_prefix()}").code == 0
    fingerprint = cli("key", "--json").json()["fingerprint"]
    host = tmp_path / "second" / "archive"
    host.mkdir(parents=True)
    shutil.copytree(cli.archive / "keys", host / "keys")
    settings = (cli.archive / "archiver.toml").read_text().replace(team_db.owner_url, team_db.runner_url)
    (host / "archiver.toml").write_text(settings)
    second = team_env(embedded_cli(host), s3)
    shown = second("key", "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["fingerprint"] == fingerprint
    assert second("status").code == 0
    # A mistyped directory is still refused, team mode or not: no new key is made there.
    stray = team_env(embedded_cli(tmp_path / "typo"), s3)
    stray.env["ARCHIVER_INDEX_URL"] = team_db.runner_url
    missing = stray("key")
    assert missing.code == 2 and "no archive at" in missing.err and not (tmp_path / "typo").exists()


# ---- the settings file -------------------------------------------------------------------------------------------------

def test_settings_are_set_in_place_keeping_the_rest_of_the_file(tmp_path):
    from archiver import config
    from archiver.errors import ConfigError
    path = tmp_path / "archiver.toml"
    config.set_in_file(path, {("index", "url"): "postgresql://db/a", ("storage", "url"): "s3://bucket-b/p"})
    assert path.read_text() == '[index]\nurl = "postgresql://db/a"\n\n[storage]\nurl = "s3://bucket-b/p"\n'

    path.write_text('# top\n[storage]  # where\nregion = "eu-west-1"\n[index]\nurl = ""   # old\n# after\n'
                    '[queue]\nlease_seconds = 60')
    config.set_in_file(path, {("index", "url"): 'postgresql://db/"b"', ("storage", "url"): "s3://bucket-b/p"})
    assert path.read_text() == ('# top\n[storage]  # where\nurl = "s3://bucket-b/p"\nregion = "eu-west-1"\n[index]\n'
                                'url = "postgresql://db/\\"b\\""\n# after\n[queue]\nlease_seconds = 60\n')
    assert config.load(tmp_path)["index"]["url"] == 'postgresql://db/"b"'

    path.write_text('index = { url = "" }\n')   # a spelling this edit does not follow: left as it is
    with pytest.raises(ConfigError, match="set them by hand"):
        config.set_in_file(path, {("index", "url"): "postgresql://db/a"})
    assert path.read_text() == 'index = { url = "" }\n'
    assert [p.name for p in tmp_path.iterdir()] == ["archiver.toml"]
