"""`archiver reindex` in team mode (issue 12, Part 2): the index of an archive on PostgreSQL + S3 rebuilt from the
bucket alone into an empty PostgreSQL database (``--into``), equal to the original on every evidence field (the same
comparison as test_reindex.py's on SQLite), with a ``reindexed`` entry per capture and the archive's keys recorded;
the targets `migrate` refuses refused the same way; ``-o FILE`` still a SQLite file, said to be an offline check."""
from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conftest import CLI
from test_migrate_to_team import refused
from test_reindex import EVIDENCE, capture_every_kind

PAGE = "/2016/12/16/evacuation-suspended/"


def team_cli(cli: CLI, s3: Any, index_url: str) -> CLI:
    """The CLI on an archive whose index is ``index_url`` and whose WARCs go to a fresh prefix of the bucket."""
    cli.env.update({"ARCHIVER_INDEX_URL": index_url, "PGPASSFILE": os.environ["PGPASSFILE"],
                    "ARCHIVER_STORAGE_URL": f"s3://{s3.bucket}/{s3.new_prefix()}",
                    "ARCHIVER_STORAGE_ENDPOINT_URL": s3.proxy.url, "ARCHIVER_STORAGE_REGION": s3.region,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_EC2_METADATA_DISABLED": "true"})
    return cli


def pg_rows(url: str, table: str, order: str) -> list[dict]:
    """A table of a PostgreSQL index in ``order``, without the surrogate keys of child tables (as test_reindex)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    for row in rows:
        if table != "captures":
            row.pop("id", None)
            row.pop("rowid", None)
    return rows


def new_database(postgres: Any) -> str:
    from conftest import backends
    return f"postgresql://{backends.OWNER_ROLE}@127.0.0.1:{postgres.port}/{postgres.new_database()}"


def test_reindex_into_postgres_equals_the_original_on_every_evidence_field(world_cli, site, s3, team_db, postgres):
    cli = team_cli(world_cli, s3, team_db.owner_url)
    capture_every_kind(cli, site.url)   # as test_reindex.py does
    assert not (cli.archive / "warcs").is_dir() or not list((cli.archive / "warcs").rglob("*.warc.gz"))
    fingerprint = cli("key", "--json").json()["fingerprint"]

    target = new_database(postgres)
    result = cli("reindex", "--into", target, "--json")
    assert result.code == 0, result.err
    report = result.json()
    captured = pg_rows(team_db.owner_url, "captures", "id")
    assert report["ok"] and report["captures"] == len(captured) >= 9 and report["target"] == target
    for table, order in EVIDENCE.items():
        before, after = pg_rows(team_db.owner_url, table, order), pg_rows(target, table, order)
        assert before, table
        assert len(after) == len(before), table
        for old, new in zip(before, after):
            differing = {k: (old[k], new.get(k)) for k in old if old[k] != new.get(k)}
            assert not differing, f"{table}: {differing}"
    assert [(r["key"], r["state"], r["state_class"]) for r in pg_rows(target, "items", "key")] == \
        [(r["key"], r["state"], r["state_class"]) for r in pg_rows(team_db.owner_url, "items", "key")
         if r["last_capture_id"]]
    # One `reindexed` entry per capture, as on SQLite, naming the object and version it was read from.
    entries = pg_rows(target, "ledger", "seq")
    reindexed = [e for e in entries if e["event"] == "reindexed"]
    assert sorted(e["capture_id"] for e in reindexed) == [c["id"] for c in captured]
    assert all('"warc_store":"s3://' in e["detail"] for e in reindexed)
    # The archive's key is recorded in the new index as in the one it replaces.
    assert {r["name"]: r["fingerprint"] for r in pg_rows(target, "archive_keys", "name")}["archive"] == fingerprint

    # The rebuilt index verifies as the original does, once the archive points at it.
    cli.env["ARCHIVER_INDEX_URL"] = target
    verified = cli("verify", "--json")
    assert verified.code == 0 and verified.json()["ok"], verified.out
    assert verified.json()["captures"] == len(captured)


def test_reindex_into_refuses_what_migrate_refuses_and_says_how_to_switch(cli, site, s3, team_db, postgres,
                                                                          tmp_path):
    cli = team_cli(cli, s3, team_db.owner_url)
    assert cli("capture", "--no-browser", site.url + PAGE).code == 0

    # What migrate refuses as a target, --into refuses, in one line, exit 2.
    refused(cli("reindex", "--into", "postgresql://archiver_owner:secret@127.0.0.1/db"),
            "--into must not hold a password")
    refused(cli("reindex", "--into", "mysql://127.0.0.1/db"), "--into")
    refused(cli("reindex", "--into", team_db.owner_url), "holds an archive's index", "give an empty database")
    other = new_database(postgres)
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (line text)")
    refused(cli("reindex", "--into", other), "1 table(s) and no archiver index")
    refused(cli("reindex", "--into", new_database(postgres), "-o", str(tmp_path / "x.db")), "not both")
    embedded = CLI(tmp_path / "embedded")
    embedded.env.pop("ARCHIVER_INDEX_URL", None)
    refused(embedded("reindex", "--into", new_database(postgres)), "archiver migrate")

    # Into an empty database: how to switch to it, in team mode's words.
    target = new_database(postgres)
    done = cli("reindex", "--into", target)
    assert done.code == 0, done.err
    assert "reindexed 1 capture(s)" in done.out and f"into {target}" in done.out
    assert f'stop every runner and cron job, keep the old database, then set [index] url = "{target}"' in done.out

    # -o FILE in team mode: a SQLite file rebuilt from the bucket, an offline check, and said so.
    copy = tmp_path / "check.db"
    checked = cli("reindex", "-o", str(copy))
    assert checked.code == 0, checked.err
    assert copy.is_file() and "is an offline check" in checked.out and "move" not in checked.out
