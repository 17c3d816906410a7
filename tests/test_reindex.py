"""`archiver reindex` rebuilds the index from the WARCs alone, equal to the original on every evidence field."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import CLI, put_stray, sealed_warc, sealed_warc_bytes, stored_warcs

ARTICLE = "https://www.levantledger.example/2016/12/16/aleppo-live/"

# Every table the WARCs are the source of, with the columns that identify a row. Everything else in the
# index (the queue's jobs and attempts, watches, checks, the ledger's history) is the index's own.
EVIDENCE = {
    "captures": "id",
    "records": "capture_id, seq",
    "outlinks": "capture_id, url, text",
    "refs": "capture_id, url, found_in, source",
    "tweets": "capture_id",
    "posts": "capture_id",
    "videos": "capture_id",
}


def _rows(db: Path, table: str, order: str) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    finally:
        conn.close()
    for row in rows:
        row.pop("id", None) if table != "captures" else None   # surrogate keys of child tables
    return rows


def capture_every_kind(cli: CLI, site_url: str) -> None:
    """Evidence of every kind an index holds a table for: the live blog and everything it cites (pages, tweets,
    one deleted, Periscope broadcasts, one gone, a PDF); one post of each platform beyond X (Mastodon, Telegram,
    Bluesky: the posts table) and an X Space; a document without the browser; and a 404, sealed as evidence."""
    followed = cli("capture", "--follow", ARTICLE, "--json")
    assert len(followed.json()) >= 7, followed.err
    roundup = cli("capture", "--follow", site_url + "/2026/11/30/one-convoy-five-platforms/", "--json")
    assert roundup.code == 0 and len(roundup.json()) == 5, roundup.err   # its tweet is held already
    assert cli("capture", "--no-browser", site_url + "/archive/1998/communique.html").code == 0
    assert cli("capture", site_url + "/no-such-page").code == 1


@pytest.mark.sqlite_only   # puts the rebuilt SQLite file in index.db's place
def test_reindex_equals_the_original_on_every_evidence_field(world_cli, site, tmp_path):
    cli = world_cli
    capture_every_kind(cli, site.url)
    original = cli.archive / "index.db"

    target = tmp_path / "rebuilt.db"
    result = cli("reindex", "-o", str(target), "--json")
    assert result.code == 0, result.err
    report = result.json()
    captured = _rows(original, "captures", "id")
    assert report["ok"] and report["captures"] == len(captured) >= 9
    for table, order in EVIDENCE.items():
        before, after = _rows(original, table, order), _rows(target, table, order)
        assert before, table
        assert len(after) == len(before), table
        for old, new in zip(before, after):
            differing = {k: (old[k], new.get(k)) for k in old if old[k] != new.get(k)}
            assert not differing, f"{table}: {differing}"
    # Items (what was live, what is gone) follow from the captures alone.
    assert _rows(target, "items", "key") and \
        [(r["key"], r["state"], r["state_class"]) for r in _rows(target, "items", "key")] == \
        [(r["key"], r["state"], r["state_class"]) for r in _rows(original, "items", "key") if r["last_capture_id"]]

    # The rebuilt index verifies as the original does, and says where each capture came from.
    moved = cli.archive / "index.db"
    moved.rename(tmp_path / "original.db")
    for suffix in ("-wal", "-shm"):
        (cli.archive / f"index.db{suffix}").unlink(missing_ok=True)
    target.rename(cli.archive / "index.db")
    verified = cli("verify", "--json").json()
    assert verified["ok"], verified["problems"]


def test_reindex_never_overwrites_and_names_what_it_cannot_read(cli, site, tmp_path):
    assert cli("capture", "--no-browser", site.url + "/archive/1998/communique.html").code == 0
    existing = tmp_path / "exists.db"
    existing.write_text("keep me")
    result = cli("reindex", "-o", str(existing))
    assert result.code == 2 and "already exists" in result.err and existing.read_text() == "keep me"

    stray = put_stray(cli.archive, "stray.warc.gz", b"not a warc at all")
    result = cli("reindex", "-o", str(tmp_path / "new.db"))
    assert result.code == 1 and f"SKIPPED  {stray}" in result.out
    assert "reindexed 1 capture(s)" in result.out


def test_import_brings_a_capture_from_another_archive_checked_and_signed(cli, site, tmp_path):
    result = cli("capture", "--no-browser", site.url + "/archive/1998/communique.html", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    warc = sealed_warc(cli.archive, show)

    other = CLI(tmp_path / "other")
    imported = other("import", str(warc), "--json")
    assert imported.code == 0, imported.err
    [item] = imported.json()[0]["items"]
    assert (item["outcome"], item["capture_id"]) == ("imported", show["id"])
    there = other("show", show["id"], "--json").json()
    assert there["warc_sha256"] == show["warc_sha256"] and there["url"] == show["url"]
    assert sealed_warc_bytes(other.archive, there) == warc.read_bytes()
    verified = other("verify", "--json").json()
    assert verified["ok"] and verified["signed"] == 1, verified["problems"]
    assert other("import", str(warc), "--json").json()[0]["items"][0]["outcome"] == "held"

    # A copy with one payload byte changed (and hashed afresh, as a forger would) is refused, nothing kept.
    forged = tmp_path / "forged.warc.gz"
    import gzip
    records = show["records"]
    data = bytearray(warc.read_bytes())
    [response] = [r for r in records if r["type"] == "response"]
    member = gzip.decompress(bytes(data[response["offset"]:response["offset"] + response["length"]]))
    body = member.index(b"\r\n\r\n", member.index(b"HTTP/1.1")) + 4   # after the WARC and HTTP headers
    member = member[:body + 10] + bytes([member[body + 10] ^ 0x20]) + member[body + 11:]
    data[response["offset"]:response["offset"] + response["length"]] = gzip.compress(member)
    forged.write_bytes(bytes(data))
    third = CLI(tmp_path / "third")
    refused = third("import", str(forged))
    assert refused.code == 1 and refused.out.startswith("refused") and "record-altered" in refused.out
    assert stored_warcs(third.archive) == [] and not list((third.archive / "tmp").glob("*"))
    assert third("import", str(tmp_path / "nothing.wacz")).code == 2
