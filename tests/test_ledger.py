"""The custody ledger: what it records, that SQLite refuses to change it, and that verify names each tampering."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from archiver.custody import ledger
from archiver.errors import IntegrityConflict
from conftest import index_conn, local_storage, open_test_index, tamper_index
from schema5 import as_schema_5


def _db(archive: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(archive / "index.db", isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _capture(cli, site, path="/2016/12/16/evacuation-suspended/") -> dict:
    result = cli("capture", "--no-browser", site.url + path, "--json")
    assert result.code == 0, result.err
    return result.json()[0]


def _problems(cli) -> list[dict]:
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    return result.json()["problems"]


def test_a_capture_is_recorded_in_the_chain_and_verifies(cli, site):
    first = _capture(cli, site)
    second = _capture(cli, site, "/archive/1998/communique.html")
    with index_conn(cli.archive) as conn:
        rows = [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY seq")]
        capture = dict(conn.execute("SELECT * FROM captures WHERE id = ?", (first["capture_id"],)).fetchone())
    assert [(r["event"], r["job_id"]) for r in rows] == [
        ("queued", first["job_id"]), ("captured", first["job_id"]), ("sealed", first["job_id"]),
        ("queued", second["job_id"]), ("captured", second["job_id"]), ("sealed", second["job_id"])]
    sealed = json.loads(rows[2]["detail"])
    assert sealed["warc_sha256"] == capture["warc_sha256"] and sealed["warc_path"] == capture["warc_path"]
    # The chain as documented: anyone can recompute it with sha256 over canonical JSON.
    prev = "0" * 64
    for row in rows:
        body = {"seq": row["seq"], "at": row["at"], "event": row["event"], "capture_id": row["capture_id"],
                "job_id": row["job_id"], "url": row["url"], "detail": json.loads(row["detail"]), "prev": prev}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert row["prev_hash"] == prev and row["hash"] == hashlib.sha256(text.encode()).hexdigest()
        prev = row["hash"]

    result = cli("verify")
    assert result.code == 0 and "ledger of 6 entries: all intact" in result.out
    with index_conn(cli.archive) as conn:
        last = conn.execute("SELECT event, detail FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    assert last["event"] == "verified" and json.loads(last["detail"])["ok"] is True


@pytest.mark.parametrize("statement", [
    "UPDATE ledger SET detail = '{}' WHERE seq = 1",
    "DELETE FROM ledger WHERE seq = 1",
    "UPDATE captures SET warc_sha256 = 'x'",
    "DELETE FROM captures",
    "UPDATE records SET payload_digest = 'x'",
    "DELETE FROM records",
])
def test_the_index_refuses_to_change_the_ledger_or_a_sealed_capture(cli, site, statement):
    _capture(cli, site)
    with index_conn(cli.archive) as conn, pytest.raises((sqlite3.IntegrityError, IntegrityConflict),
                                                        match="cannot be"):
        conn.execute(statement)


def test_an_altered_index_row_is_named(cli, site):
    first = _capture(cli, site)
    _capture(cli, site, "/archive/1998/communique.html")
    tamper_index(cli.archive, f"UPDATE captures SET warc_sha256 = '{'0' * 64}' WHERE id = '{first['capture_id']}'")
    problems = {(p["problem"], p["capture_id"]) for p in _problems(cli)}
    # The file no longer matches the row, and the row no longer matches what the ledger recorded at sealing.
    assert ("index-altered", first["capture_id"]) in problems and ("altered", first["capture_id"]) in problems
    assert all(capture_id == first["capture_id"] for _, capture_id in problems)


def test_a_deleted_ledger_entry_is_named(cli, site):
    _capture(cli, site)
    _capture(cli, site, "/archive/1998/communique.html")
    tamper_index(cli.archive, "DELETE FROM ledger WHERE seq = 3")
    result = cli("verify")
    assert result.code == 1 and "ledger entry 3 is missing" in result.out
    kinds = {p["problem"] for p in _problems(cli)}
    assert "ledger-broken" in kinds and "ledger-missing" in kinds   # entry 3 was the first capture's sealing


def test_an_edited_ledger_entry_is_named_even_with_its_hash_recomputed(cli, site):
    _capture(cli, site)
    _capture(cli, site, "/archive/1998/communique.html")
    with index_conn(cli.archive) as conn:
        row = dict(conn.execute("SELECT * FROM ledger WHERE seq = 2").fetchone())
    row["detail"] = ledger.canonical({**json.loads(row["detail"]), "status": "failed"})
    forged = ledger.entry_hash(row)
    # Only the content: the entry's own hash check fails.
    tamper_index(cli.archive, f"UPDATE ledger SET detail = '{row['detail']}' WHERE seq = 2")
    [problem] = _problems(cli)
    assert problem["problem"] == "ledger-broken" and "entry 2" in problem["detail"] and "changed" in problem["detail"]
    # With the hash recomputed too, the next entry no longer follows from it.
    tamper_index(cli.archive, f"UPDATE ledger SET hash = '{forged}' WHERE seq = 2")
    [problem] = _problems(cli)
    assert problem["problem"] == "ledger-broken" and "ledger entry 3 does not follow" in problem["detail"]


@pytest.mark.sqlite_only
def test_an_archive_from_before_the_ledger_is_backfilled(cli, site):
    cli = local_storage(cli)   # schema 4 kept every WARC in <archive>/warcs: there was nowhere else
    first = _capture(cli, site)
    # Take the database back to schema 4: as schema 5 held it (tests/schema5.py), without the ledger, its
    # triggers and the timestamps.
    as_schema_5(cli.archive)
    with _db(cli.archive) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                    "(name LIKE '%sealed%' OR name LIKE 'ledger%')").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE ledger")
        conn.execute("DROP TABLE timestamps")
        conn.execute("PRAGMA user_version = 4")
    result = cli("verify")
    assert result.code == 0, result.out
    with _db(cli.archive) as conn:
        rows = [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY seq")]
    assert [r["event"] for r in rows] == ["backfilled", "verified"]
    assert rows[0]["capture_id"] == first["capture_id"]


def test_batched_appends_make_the_chain_single_appends_make(tmp_path):
    """ledger.Appender (add -f) carries the head in memory and inserts in batches: entry for entry, the same
    rows as one ``append`` each, across batch boundaries; and an ``append`` slipped in beside it on the same
    connection cannot fork the chain (its seq is taken): the transaction fails whole."""
    made = [{"job_id": n, "url": f"https://e.example/{n}", "at": f"2026-12-06T00:00:{n % 60:02d}.000000Z",
             "detail": {"canonical_url": f"https://e.example/{n}", "kind": "page", "tags": ["é", n], "note": None}}
            for n in range(2 * ledger.Appender.BATCH + 7)]
    one, batched = open_test_index(tmp_path / "one.db"), open_test_index(tmp_path / "batched.db")
    for index in (one, batched):
        with index.transaction() as conn:
            ledger.append(conn, "verified", at="2026-12-05T00:00:00.000000Z", detail={"ok": True})
    with one.transaction() as conn:
        for entry in made:
            ledger.append(conn, "queued", **entry)
    with batched.transaction() as conn, ledger.Appender(conn) as appender:
        for entry in made:
            appender.append("queued", **entry)
    rows = [[dict(r) for r in index.conn.execute("SELECT * FROM ledger ORDER BY seq")] for index in (one, batched)]
    assert rows[0] == rows[1] and len(rows[0]) == len(made) + 1
    assert ledger.check_chain(batched.conn) == (len(made) + 1, None)

    with pytest.raises((sqlite3.IntegrityError, IntegrityConflict)):
        with batched.transaction() as conn, ledger.Appender(conn) as appender:
            appender.append("queued", job_id=1)
            ledger.append(conn, "queued", job_id=2)   # takes the seq the appender is holding
    assert ledger.check_chain(batched.conn) == (len(made) + 1, None)
