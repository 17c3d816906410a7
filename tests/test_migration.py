"""An archive indexed at schema 5 upgrades to schema 6 in place, the first time any command opens it, keeping
every fact: the same rows, the same search hits and snippets, the same `show`, and `verify` still clean."""
from __future__ import annotations

import sqlite3

import pytest

from archiver.store import index as index_module
from archiver.store.engines import sqlite as sqlite_engine
from conftest import local_storage
from schema5 import as_schema_5 as _as_schema_5, facts as _facts, search_at_schema_5 as _search_at_schema_5

# SQLite's own schema upgrades, of the file index.db.
pytestmark = pytest.mark.sqlite_only

ARTICLE = "https://www.levantledger.example/2016/12/16/aleppo-live/"
QUERIES = ["evacuation", "Aleppo", '"the convoy"', "evacu*", "rubble OR convoy", "Ramouseh", '"unbalanced']
def test_a_schema_5_archive_upgrades_in_place_keeping_every_fact(world_cli, site):
    cli = local_storage(world_cli)   # schema 5 kept every WARC in <archive>/warcs: there was nowhere else
    # Pages, what the live blog cites (tweets, broadcasts: their tables and references), a 404 sealed as evidence.
    assert len(cli("capture", "--no-browser", "--follow", ARTICLE, "--json").json()) >= 5
    assert cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/?utm_source=tw").code == 0
    assert cli("capture", "--no-browser", site.url + "/no-such-page").code == 1
    db = cli.archive / "index.db"
    facts = _facts(db)
    ids = [c["id"] for c in facts["captures"]]
    shown = {i: cli("show", i, "--json").json() for i in ids}
    found = {q: cli("search", q, "--json", "--all").json() for q in QUERIES}
    assert any(found.values()) and all(c["rowid"] for c in facts["captures"])

    _as_schema_5(cli.archive)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
    at_5 = {q: _search_at_schema_5(db, q) for q in QUERIES}
    assert {q: [(h["id"], h["snippet"]) for h in hits] for q, hits in at_5.items()} == \
        {q: [(h["id"], h["snippet"]) for h in hits] for q, hits in found.items()}

    upgraded = cli("status")
    assert upgraded.code == 0 and "upgrading" in upgraded.err and "upgraded to schema 6" in upgraded.err
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == index_module.SCHEMA_VERSION
    after = _facts(db)
    for table in facts:
        assert after[table] == facts[table], table
    assert {i: cli("show", i, "--json").json() for i in ids} == shown
    assert {q: cli("search", q, "--json", "--all").json() for q in QUERIES} == found
    assert cli("status").err == ""        # upgraded once
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.out


def test_an_interrupted_upgrade_leaves_schema_5_as_it_was(cli, site, monkeypatch, tmp_path):
    cli = local_storage(cli)   # schema 5 kept every WARC in <archive>/warcs: there was nowhere else
    assert cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/").code == 0
    _as_schema_5(cli.archive)
    db = cli.archive / "index.db"
    before = (db.read_bytes(), sqlite3.connect(db).execute("SELECT COUNT(*) FROM captures").fetchone()[0])

    def killed(conn) -> None:
        raise KeyboardInterrupt   # as a kill in the middle of copying the records would leave it
    monkeypatch.setattr(sqlite_engine, "migrate_to_6", lambda conn, path: (
        conn.execute("INSERT INTO captures_v6 (id, url, canonical_url, key, kind, method, status, started_at, "
                          "finished_at, warc_path, warc_sha256, warc_size, record_count) SELECT id, url, "
                          "canonical_url, key, kind, method, status, started_at, finished_at, warc_path, warc_sha256, "
                          "warc_size, record_count FROM captures"), killed(conn)))
    try:
        index_module.Index(db)
    except KeyboardInterrupt:
        pass
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0] == before[1]
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} >= {"captures_fts", "records"}
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%v6' OR name = 'records_packed'"
                                ).fetchall()
    monkeypatch.undo()
    assert cli("status").code == 0 and cli("verify").code == 0
