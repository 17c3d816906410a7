"""`archiver receive`: WARC and WACZ files made by other tools taken into custody byte for byte, with a receipt, a
`received` ledger entry and what was found in them, checked again by `verify`. The files are the real ones in
../shared/corpus/warc/ (Heritrix, wget, wpull, warcprox, Webrecorder, ArchiveWeb.page, Scoop, Puppeteer, py-wacz),
read at test time and never copied into the project."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

from conftest import CLI, index_conn
from warcutil import partner_crawl

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or REPO.parent / "shared" / "corpus")
WARCS = CORPUS / "warc"
FILES = sorted(WARCS.glob("*")) if WARCS.is_dir() else []
needs_corpus = pytest.mark.skipif(not FILES, reason=f"no corpus of foreign WARC/WACZ files: {WARCS} does not exist "
                                                    "(set ARCHIVER_CORPUS to the folder that holds warc/)")
# An uncompressed WARC by wget, whose records carry SHA-1 block and payload digests: one byte of a payload flipped is
# a record whose digests no longer hold.
WGET_WARC = WARCS / "webarchive-commons__IAH-urls-wget.warc"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _received_entries(archive: Path) -> list[dict]:
    with index_conn(archive) as conn:
        return [json.loads(d) if isinstance(d, str) else d
                for (d,) in conn.execute("SELECT detail FROM ledger WHERE event = 'received' ORDER BY seq")]


def _local(location: str) -> Path | None:
    """The received file's path when it is kept under the archive directory (not in a bucket: team mode)."""
    return Path(location) if location.startswith("/") else None


@needs_corpus
def test_every_corpus_file_is_received_as_it_was_handed_over(tmp_path):
    cli = CLI(tmp_path / "archive")
    result = cli("receive", *map(str, FILES), "--from", "Partner newsroom (shared drive)", "--by", "Hadi",
                 "--note", "handed over on a USB stick", "--tag", "partner", "--json")
    assert result.code == 0, result.err
    outcomes = result.json()
    assert len(outcomes) == len(FILES) == 18
    for source, outcome in zip(FILES, outcomes):
        assert outcome["outcome"] == "received" and outcome["sha256"] == _sha256(source), source.name
        assert outcome["size"] == source.stat().st_size
        kept = _local(outcome["location"])
        if kept is not None:   # byte for byte, read-only, with its receipt beside it
            assert kept.read_bytes() == source.read_bytes()
            assert not kept.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
            receipt = json.loads(Path(str(kept) + ".receipt.json").read_text())["receipt"]
            assert receipt["sha256"] == outcome["sha256"] and receipt["received_from"].startswith("Partner")
    formats = {Path(o["source"]).name: o["format"] for o in outcomes}
    assert formats["py-wacz__valid_signed_example_1.wacz"] == "wacz"
    # A .warc name on gzipped bytes: the format is read from the bytes, not the name.
    assert formats["py-wacz__example-collection-with-lists.warc"] == "warc.gz"
    assert formats["webarchive-commons__IAH-urls-wget.warc"] == "warc"
    heritrix = next(o for o in outcomes if "blackbook" in o["source"])
    assert heritrix["checks"]["warc_versions"] == ["WARC/0.17"]
    entries = _received_entries(cli.archive)
    assert len(entries) == 18
    assert {(e["from"], e["by"], e["note"]) for e in entries} == {
        ("Partner newsroom (shared drive)", "Hadi", "handed over on a USB stick")}
    assert sorted(e["original_name"] for e in entries) == sorted(f.name for f in FILES)
    verified = cli("verify")
    assert verified.code == 0, verified.out + verified.err
    assert "18 received file(s)" in verified.out


@needs_corpus
def test_the_same_file_received_twice_is_kept_once(tmp_path):
    cli = CLI(tmp_path / "archive")
    source = WARCS / "pywb__example-wget-1-14.warc.gz"
    [first] = cli("receive", str(source), "--from", "Reporter A", "--json").json()
    copy = tmp_path / "renamed.warc.gz"
    copy.write_bytes(source.read_bytes())
    [again] = cli("receive", str(copy), "--from", "Reporter B", "--json").json()
    assert (first["outcome"], again["outcome"]) == ("received", "already")
    assert again["receipt_id"] == first["receipt_id"]
    with index_conn(cli.archive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 1
    if _local(first["location"]):
        kept = [p for p in (cli.archive / "received").rglob("*") if p.is_file() and not p.name.endswith(".json")]
        assert len(kept) == 1
    # Each handing-over is in the ledger, the second naming the receipt it matched.
    second = _received_entries(cli.archive)[1]
    assert second["again"] is True and second["receipt"] == first["receipt_id"] and second["from"] == "Reporter B"


@needs_corpus
def test_a_flipped_byte_is_kept_as_received_with_its_record_named(tmp_path):
    data = bytearray(WGET_WARC.read_bytes())
    at = data.index(b"<html") + 40   # inside the first HTML response's payload
    data[at] ^= 0x20
    altered = tmp_path / "IAH-urls-wget-altered.warc"
    altered.write_bytes(bytes(data))
    cli = CLI(tmp_path / "archive")
    result = cli("receive", str(altered), "--from", "Unknown sender", "--json")
    assert result.code == 0, result.err
    [outcome] = result.json()
    assert outcome["outcome"] == "received" and outcome["sha256"] == hashlib.sha256(bytes(data)).hexdigest()
    problems = outcome["checks"]["problems"]
    assert len(problems) >= 1 and {p["problem"] for p in problems} <= {"block-digest", "payload-digest"}
    start = bytes(data).rfind(b"WARC/1.0", 0, at)   # the record the byte is in
    assert {p["offset"] for p in problems} == {start}, problems
    human = cli("receive", str(altered), "--from", "Unknown sender")
    assert "already" in human.out
    # Kept as received: verify finds the file as it was received (its digests were recorded, not "fixed").
    assert cli("verify").code == 0


@needs_corpus
def test_verify_names_a_received_file_changed_or_gone_after_receipt(tmp_path):
    cli = CLI(tmp_path / "archive")
    [outcome] = cli("receive", str(WARCS / "perma__archive.warc.gz"), "--from", "Perma.cc", "--json").json()
    kept = _local(outcome["location"])
    if kept is None:
        pytest.skip("the received file is in a bucket with Object Lock (team mode): it cannot be changed")
    os.chmod(kept, 0o644)
    with open(kept, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    result = cli("verify", "--json")
    assert result.code == 1
    assert [p["problem"] for p in result.json()["problems"]] == ["received-altered"]
    kept.unlink()
    result = cli("verify", "--json")
    assert [p["problem"] for p in result.json()["problems"]] == ["received-missing"]


def test_what_is_not_a_warc_or_wacz_is_refused_and_nothing_is_kept(tmp_path):
    cli = CLI(tmp_path / "archive")
    assert cli("status").code == 0
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n")
    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    for args, words in (([str(text), "--from", "X"], "notes.txt: neither a WARC"),
                        ([str(empty), "--from", "X"], "empty.warc: empty"),
                        ([str(tmp_path / "nowhere.wacz"), "--from", "X"], "no such file"),
                        ([str(text), "--from", "  "], "neither a WARC")):
        result = cli("receive", *args)
        assert result.code == 2, (args, result.out, result.err)
        assert words in result.err and "Traceback" not in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    missing_from = cli("receive", str(text))
    assert missing_from.code == 2 and "--from" in missing_from.err
    with index_conn(cli.archive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 0
    assert not (cli.archive / "received").exists()
    assert not list((cli.archive / "tmp").glob("*")) if (cli.archive / "tmp").exists() else True
    assert _received_entries(cli.archive) == []


@pytest.mark.sqlite_only   # migrate moves an embedded archive
def test_migrate_refuses_an_archive_holding_a_received_file_without_its_row(tmp_path):
    """Received files move with their rows (tests/test_migrate_to_team.py); one without a row would be left behind."""
    cli = CLI(tmp_path / "archive")
    crawl = partner_crawl(tmp_path / "crawl.warc", 2)
    assert cli("receive", str(crawl), "--from", "Partner", env={"ARCHIVER_FAULT_KILL_AT": "receive-stored"}).code == -9
    result = cli("migrate", "--index", "postgresql://archiver@127.0.0.1:9/none", "--storage", "s3://bucket/prefix")
    assert result.code == 2 and "1 received file(s) have no receipt row" in result.err, result.err
    assert "receive the same files again" in result.err and "Traceback" not in result.err


# ---- the same bytes at once; a receive stopped half-way (corpus-free: a partner's crawl made here) ----------------

def _stored_received(archive: Path) -> list[str]:
    """Every key under received/ where the archive keeps received files (its directory, or its bucket)."""
    from conftest import open_test_archive
    from archiver.exchange.receive import receipts_store
    return [item.key for item in receipts_store(open_test_archive(archive)).list("received/")]


def test_two_hosts_receiving_the_same_bytes_at_once_keep_one_copy_and_one_receipt(tmp_path):
    from conftest import open_test_index
    crawl = partner_crawl(tmp_path / "crawl.warc", 20)
    cli = CLI(tmp_path / "archive")
    assert cli("status").code == 0
    index = open_test_index(cli.archive / "index.db")
    tmp = cli.archive / "tmp"
    try:
        # The index's write lock held (SQLite's, or PostgreSQL's ledger lock) while both run: neither can write its
        # row until both have looked for one, found none, checked the file and put it -- the race, every time.
        with index.transaction():
            procs = [cli.popen("receive", str(crawl), "--from", who, "--json") for who in ("Desk A", "Desk B")]
            deadline = time.monotonic() + 120
            while len(list(tmp.glob("*.receipt.json"))) < 2:
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                assert time.monotonic() < deadline, "the two receives did not both get as far as their receipts"
                time.sleep(0.02)
    finally:
        index.close()
    ended = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, ended):
        assert proc.returncode == 0 and "Traceback" not in err, err
    outcomes = [json.loads(out)[0] for out, _ in ended]
    assert sorted(o["outcome"] for o in outcomes) == ["already", "received"]
    first = next(o for o in outcomes if o["outcome"] == "received")
    assert {o["receipt_id"] for o in outcomes} == {first["receipt_id"]}
    with index_conn(cli.archive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 1
        assert [tuple(r) for r in conn.execute("SELECT receipt_id, COUNT(*) FROM received_pages GROUP BY receipt_id")] \
            == [(first["receipt_id"], 20)]
    # One copy and one receipt in the store (an object there cannot be taken back): both put the same object under
    # its SHA-256, and the first receipt put is the one.
    key = f"received/{first['sha256'][:2]}/{first['sha256']}.warc"
    assert _stored_received(cli.archive) == [key, key + ".receipt.json"]
    # Each handing-over in the ledger: the receipt's, and the other's naming it, found by its receipt in the store.
    taken, again = _received_entries(cli.archive)
    assert "again" not in taken and taken["receipt"] == first["receipt_id"]
    assert again["again"] is True and again["receipt"] == first["receipt_id"] and again["matched_in"] == "store"
    assert {taken["from"], again["from"]} == {"Desk A", "Desk B"}
    assert not list(tmp.glob("*"))
    verified = cli("verify", "--json")
    assert verified.code == 0 and verified.json()["received"] == 1, verified.out


@pytest.mark.parametrize("step", ["receive-stored", "receive-file-stored"])
def test_a_receive_killed_after_the_put_is_named_by_verify_and_the_same_bytes_again_keep_one_copy(tmp_path, step):
    crawl = partner_crawl(tmp_path / "crawl.warc", 3)
    sha256 = _sha256(crawl)
    key = f"received/{sha256[:2]}/{sha256}.warc"
    cli = CLI(tmp_path / "archive")
    killed = cli("receive", str(crawl), "--from", "Reporter A", env={"ARCHIVER_FAULT_KILL_AT": step})
    assert killed.code == -9, killed.err
    receipted = step == "receive-stored"   # killed after the receipt's put, or after the file's and before it
    assert _stored_received(cli.archive) == [key, key + ".receipt.json"][:2 if receipted else 1]
    with index_conn(cli.archive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 0
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    [problem] = result.json()["problems"]
    assert problem["problem"] == "received-unindexed" and problem["path"].endswith(key), problem
    assert ("`archiver reindex` restores it" in problem["detail"]) == receipted, problem
    assert "receiving the same file again" in problem["detail"].lower()

    # Handed over again under another name: the receipt keeps the first name, and so do its pages.
    renamed = tmp_path / "crawl-from-reporter-b.warc"
    renamed.write_bytes(crawl.read_bytes())
    [again] = cli("receive", str(renamed), "--from", "Reporter B", "--json").json()
    # No second copy: the same object and, when there was one, the receipt of the receive that was killed.
    assert _stored_received(cli.archive) == [key, key + ".receipt.json"]
    entries = _received_entries(cli.archive)
    if receipted:
        assert again["outcome"] == "already"
        restored, handed = entries
        assert restored["receipt"] == again["receipt_id"] and restored["from"] == "Reporter A"
        assert restored["from_receipt_file"] is True and "again" not in restored
        assert handed["again"] is True and handed["from"] == "Reporter B" and handed["matched_in"] == "store"
    else:
        assert again["outcome"] == "received"
        [taken] = entries
        assert taken["from"] == "Reporter B" and "from_receipt_file" not in taken
    named = "crawl.warc" if receipted else renamed.name
    with index_conn(cli.archive) as conn:
        assert [tuple(r) for r in conn.execute("SELECT id, path, original_name FROM receipts")] == \
            [(again["receipt_id"], key, named)]
        # Its pages indexed once, with the row, naming the WARC as the receipt does.
        assert [tuple(r) for r in conn.execute("SELECT receipt_id, warc, COUNT(*) FROM received_pages GROUP BY "
                                               "receipt_id, warc")] == [(again["receipt_id"], named, 3)]
    assert cli("search", "convoy", "--json").code == 0
    assert cli("verify").code == 0
