"""Unbounded reads on PostgreSQL stream (issue 12, Part 2): `list --all` and `search --all` read their rows from a
server-side cursor a page at a time (``PostgresConnection.stream``), never the whole result at once; shown on a few
thousand captures with a small fetch size, the cursor seen from the server's side while the rows are read."""
from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from conftest import CLI

N = 3000


@pytest.fixture
def big_index(team_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A team index holding N captures (rows written by SQL: what is read here is the index, not the WARCs), each
    with the word "common" in its full-text entry; the stream's fetch size 100."""
    from archiver.store.engines import fulltext, postgres
    monkeypatch.setattr(postgres, "STREAM_ROWS", 100)
    index = postgres.PostgresIndex(team_db.owner_url)
    doc = fulltext.tsvector("A common title", "common words")
    with index.transaction() as conn:
        conn.execute(
            "INSERT INTO captures (rowid, id, url, canonical_url, key, kind, method, status, started_at, finished_at, "
            "warc_path, warc_sha256, warc_size, record_count, title) "
            "SELECT n, '01J' || lpad(n::text, 23, '0'), 'https://example.org/' || n, 'https://example.org/' || n, "
            "'https://example.org/' || n, 'page', 'http', 'ok', '2026-01-01T00:00:00.000000Z', "
            "'2026-01-01T00:00:01.000000Z', 'warcs/2026/01/01/' || n || '.warc.gz', repeat('0', 64), 100, 3, "
            "'A common title' FROM generate_series(1, ?) AS n", (N,))
        conn.execute("INSERT INTO captures_fts (rowid, doc) SELECT n, ?::tsvector FROM generate_series(1, ?) AS n",
                     (doc, N))
    try:
        yield index
    finally:
        index.close()


def _stream_fetches(url: str) -> list[str]:
    """What the stream's connection last sent, as the server shows it."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT query FROM pg_stat_activity WHERE application_name = "
                                           "'archiver-stream' AND datname = current_database()")]


def test_list_all_and_search_all_read_a_page_at_a_time_from_a_server_side_cursor(big_index, team_db):
    ids = [f"01J{n:023d}" for n in range(N, 0, -1)]
    rows = big_index.iter_captures()
    first = next(rows)
    # The server holds the cursor; the client has fetched one page of 100 rows of the 3000.
    assert _stream_fetches(team_db.owner_url) == ['FETCH FORWARD 100 FROM "archiver_stream"']
    listed = [first["id"]] + [r["id"] for r in rows]
    assert listed == ids
    assert _stream_fetches(team_db.owner_url) == []   # read to the end: its connection is closed

    query, hits = big_index.search("common", limit=None)
    first = next(hits)
    assert _stream_fetches(team_db.owner_url) == ['FETCH FORWARD 100 FROM "archiver_stream"']
    assert [first["id"]] + [h["id"] for h in hits] == ids
    # A page of the usual size is one plain query, as before.
    assert [r["id"] for r in big_index.iter_captures(limit=50)] == ids[:50]
    assert _stream_fetches(team_db.owner_url) == []

    # Dropped half-way (a reader that stops): the cursor and its connection go with it.
    rows = big_index.iter_captures(before=ids[10])
    assert next(rows)["id"] == ids[11]
    rows.close()
    assert _stream_fetches(team_db.owner_url) == []


def test_the_commands_stream_every_row(big_index, team_db, tmp_path):
    cli = CLI(tmp_path / "archive")
    cli.env.update({"ARCHIVER_INDEX_URL": team_db.owner_url, "PGPASSFILE": os.environ["PGPASSFILE"]})
    listed = cli("list", "--all", "--json")
    assert listed.code == 0, listed.err
    assert len(listed.json()) == N
    found = cli("search", "common", "--all", "--json")
    assert found.code == 0, found.err
    assert len(found.json()) == N
