"""An index as archiver wrote it at schema 5 (before the text and the provenance moved out to the WARCs), made
from a current archive, for the tests of the upgrade (test_migration.py) and of older upgrades (test_ledger.py)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from archiver.store import readback
from archiver.store.engines import sqlite as sqlite_engine

# Tables whose rows schema 6 keeps as schema 5 had them (captures and records are compared as they read).
KEPT = ["jobs", "attempts", "outlinks", "refs", "tweets", "videos", "watches", "checks", "items", "transitions",
        "host_slots", "ledger", "timestamps"]


def facts(db: Path) -> dict[str, list[dict]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        facts = {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in KEPT}
        facts["captures"] = [dict(r) for r in conn.execute("SELECT * FROM captures ORDER BY id")]
        facts["records"] = [dict(r) for r in conn.execute("SELECT * FROM records ORDER BY capture_id, seq")]
    finally:
        conn.close()
    return facts


def as_schema_5(archive: Path) -> None:
    """Rewrite the archive's index as archiver wrote it at schema 5: the historical migrations 1 to 5 of
    engines/sqlite.py, then every row, with each capture's text and provenance in its row (read back from its WARC, as
    the worker once stored them) and its records in the records table."""
    db = archive / "index.db"
    old = sqlite3.connect(db)
    old.row_factory = sqlite3.Row
    v5 = archive / "index.v5.db"
    conn = sqlite3.connect(v5, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN")
    for number in range(5):
        for statement in sqlite_engine.split_sql(sqlite_engine.MIGRATIONS[number]):
            conn.execute(statement)
        if number == 0:
            sqlite_engine.enable_fts(conn)
    conn.execute("PRAGMA user_version = 5")
    for table in KEPT:
        # Columns later schemas added (schema 8's jobs.storing) did not exist yet.
        columns = [c["name"] for c in conn.execute(f"PRAGMA table_info({table})")]
        for row in old.execute(f"SELECT * FROM {table} ORDER BY rowid"):
            kept = [k for k in row.keys() if k in columns]
            conn.execute(f"INSERT INTO {table} ({', '.join(kept)}) VALUES ({', '.join('?' * len(kept))})",
                         tuple(row[k] for k in kept))
    for row in old.execute("SELECT * FROM captures ORDER BY rowid"):
        # Schema 7's place of a WARC (NULL: <archive>/warcs, as every capture at schema 5) did not exist yet.
        cap = {k: row[k] for k in row.keys() if k not in ("rowid", "warc_store", "warc_version")}
        records = [dict(r) for r in old.execute("SELECT * FROM records WHERE capture_id = ? ORDER BY seq",
                                                 (cap["id"],))]
        provenance, problem = readback.provenance(archive, cap, records)
        assert problem is None, problem
        text_record = next((r for r in reversed(records) if r["type"] == "resource"
                            and (r["uri"] or "").startswith("urn:text:")), None)
        text, problem = readback.text(archive, cap["warc_path"], text_record)
        assert problem is None, problem
        cap.update(text=text, provenance=json.dumps(provenance, ensure_ascii=False))
        conn.execute(f"INSERT INTO captures ({', '.join(cap)}) VALUES ({', '.join('?' * len(cap))})", tuple(cap.values()))
        conn.executemany(f"INSERT INTO records ({', '.join(records[0])}) VALUES ({', '.join('?' * len(records[0]))})",
                         [tuple(r.values()) for r in records])
    conn.execute("COMMIT")
    conn.close()
    old.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    v5.rename(db)


def search_at_schema_5(db: Path, query: str) -> list[dict]:
    """`archiver search --json` as schema 5 answered it (archiver/store/index.py at schema 5: snippets from the
    external-content full-text index; a query FTS5 cannot parse searched as plain words)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    sql = ("SELECT c.id, c.url, c.title, c.status, c.started_at, snippet(captures_fts, -1, '[', ']', '…', 16) AS snippet "
           "FROM captures_fts JOIN captures c ON c.rowid = captures_fts.rowid "
           "WHERE captures_fts MATCH ? ORDER BY c.id DESC LIMIT 50")
    try:
        try:
            return [dict(r) for r in conn.execute(sql, (query,))]
        except sqlite3.OperationalError:
            quoted = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
            return [dict(r) for r in conn.execute(sql, (quoted,))]
    finally:
        conn.close()
