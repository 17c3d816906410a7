"""The pages of received files are searchable beside our own captures and never confused with them: `search`,
`list` and `show` find them, marked "received", with the receipt that says who handed them over. The corpus
files are the real ones in ../shared/corpus/warc/, read at test time and never copied into the project; the rest
use a WARC written here with warcio, as a partner's tool would."""
from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from conftest import CLI, index_conn, local_storage, made_archive
from test_receive import FILES, WARCS, needs_corpus

# Words that appear in each corpus file's pages (read by a person from the pages themselves), and so must find
# one of that file's pages: whatever the tool that made it, the format (WARC 0.17 to 1.1, WACZ) and where the
# text comes from (the package's pages.jsonl, or the HTML).
WORDS = {
    "ipwb__IAH-20080430204825-00000-blackbook.warc.gz": '"Patron Info"',
    "ipwb__froggie.warc.gz": "ServiceWorkers",
    "ipwb__sample-1.warc.gz": "Musgraves",
    "jwarc__cc.warc.gz": '"Common Crawl"',
    "perma__archive.warc.gz": '"established to be used"',
    "puppeteer-warc__wwwgooglecom.warc.gz": "Gmail",
    "py-wacz__example-collection-with-lists.warc": '"Protocol Registries"',
    "py-wacz__valid_signed_example_1.wacz": "illustrative",
    "pywb__example-wget-1-14.warc.gz": "illustrative",
    "pywb__example-wpull.warc.gz": "illustrative",
    "pywb__iana.warc.gz": '"Assigned Numbers"',
    "replayweb.page__embed-test.warc": '"modern web publishing"',
    "replayweb.page__example.wacz": '"Web archiving for all"',
    "replayweb.page__netpreserve-twitter.warc": '"Web Archive Datasets"',
    "scoop__example.com.wacz": "illustrative",
    "scoop__example.wacz": '"Provenance Summary"',
    "warcio__example-iana.org-chunked.warc": '"global coordination"',
    "webarchive-commons__IAH-urls-wget.warc": "OpenLibrary",
}


def _partner_warc(path: Path, pages: list[tuple[str, str, str]], gzip: bool = True) -> Path:
    """A WARC as a partner's crawler writes it: a warcinfo naming the software, then one HTML response per page
    (url, title, body words); gzipped per record unless ``gzip`` is False."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=gzip)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "PartnerCrawler/2.1"}))
        for url, title, words in pages:
            body = f"<html><head><title>{title}</title></head><body><p>{words}</p></body></html>".encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                                  ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                                          http_headers=headers))
    return path


@needs_corpus
def test_every_corpus_file_is_searchable_by_words_in_its_pages(tmp_path):
    assert sorted(WORDS) == sorted(f.name for f in FILES)
    cli = CLI(tmp_path / "archive")
    received = cli("receive", *map(str, FILES), "--from", "Partners", "--json")
    assert received.code == 0, received.err
    receipt_of = {Path(o["source"]).name: o["receipt_id"] for o in received.json()}
    for name, words in WORDS.items():
        hits = cli("search", words, "--all", "--json")
        assert hits.code == 0, hits.err
        mine = [h for h in hits.json() if h.get("receipt_id") == receipt_of[name]]
        assert mine, f"{name}: no page found by {words}"
        assert all(h["status"] == "received" for h in mine)
        assert any(h["snippet"] and "[" in h["snippet"] for h in mine), mine
    assert cli("verify").code == 0
    # Every page listed once, marked, with its receipt.
    listed = cli("list", "--all", "--json").json()
    with index_conn(cli.archive) as conn:
        pages = conn.execute("SELECT COUNT(*) FROM received_pages").fetchone()[0]
    assert len(listed) == pages > 18
    assert {r["kind"] for r in listed} == {r["status"] for r in listed} == {"received"}
    assert {r["received"]["receipt_id"] for r in listed} == set(receipt_of.values())


@needs_corpus
def test_a_signed_wacz_page_shows_its_receipt_and_what_was_found(tmp_path):
    cli = CLI(tmp_path / "archive")
    signed = WARCS / "py-wacz__valid_signed_example_1.wacz"
    [outcome] = cli("receive", str(signed), "--from", "Webrecorder test suite", "--json").json()
    [hit] = cli("search", "illustrative", "--json").json()
    shown = cli("show", hit["id"])
    assert shown.code == 0, shown.err
    assert "RECEIVED from others, not captured by this archive" in shown.out
    assert "Webrecorder test suite" in shown.out and outcome["sha256"] in shown.out
    assert "the package's own text" in shown.out            # pages.jsonl's text, not re-extracted
    assert "signature valid (domain, btrix-sign-test.webrecorder.net)" in shown.out
    as_json = cli("show", hit["id"], "--json").json()
    assert as_json["received_page"]["url"] == "https://example.com/"
    assert as_json["receipt"]["id"] == outcome["receipt_id"]
    assert as_json["receipt"]["checks"]["wacz"]["signature"] == "valid"
    # The receipt itself: its pages listed.
    receipt = cli("show", outcome["receipt_id"])
    assert receipt.code == 0 and "pages (1)" in receipt.out and hit["id"] in receipt.out
    # A URL only received pages hold shows the newest of them.
    assert hit["id"] in cli("show", "https://example.com/").out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[CLI, dict]:
    """An archive of 5 captures of our own (scripts/make-index: archiver's write path, real WARCs) and, received
    after them, a partner's WARC of 3 pages."""
    root = tmp_path_factory.mktemp("mixed")
    cli = made_archive(root / "archive", 5)
    warc = _partner_warc(root / "partner-crawl.warc.gz", [
        ("https://partner.example/convoy", "Convoy report", "the convoy crossed Ramouseh at dawn"),
        ("https://partner.example/shelling", "Shelling in Bustan al-Qasr", "witnesses describe the shelling"),
        ("https://partner.example/about", "About the partner", "an independent newsroom")])
    [outcome] = cli("receive", str(warc), "--from", "Partner newsroom", "--tag", "partner", "--json").json()
    return cli, outcome


def test_list_shows_received_pages_beside_captures_marked_and_pages_through_both(mixed):
    cli, outcome = mixed
    rows = cli("list", "--all", "--json").json()
    assert len(rows) == 8
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    received = [r for r in rows if r["status"] == "received"]
    ours = [r for r in rows if r["status"] != "received"]
    assert len(received) == 3 and len(ours) == 5
    assert all(r["received"]["from"] == "Partner newsroom" and r["received"]["receipt_id"] == outcome["receipt_id"]
               for r in received)
    assert not any("received" in r for r in ours)
    # Received after the captures: newest first, they come first.
    assert [r["status"] for r in rows[:3]] == ["received"] * 3
    # Paged three at a time with --before, every row once, across both tables.
    seen, before = [], None
    while True:
        page = cli("list", "--limit", "3", "--json", *(["--before", before] if before else [])).json()
        if not page:
            break
        seen += [r["id"] for r in page]
        before = page[-1]["id"]
    assert seen == [r["id"] for r in rows]
    # The filters never mix them up.
    assert len(cli("list", "--status", "received", "--json").json()) == 3
    assert len(cli("list", "--kind", "received", "--json").json()) == 3
    assert all(r["status"] == "ok" for r in cli("list", "--status", "ok", "--json").json())
    assert len(cli("list", "--tag", "partner", "--json").json()) == 3
    human = cli("list").out
    assert human.count("received") == 3 and "https://partner.example/convoy" in human


def test_search_finds_received_pages_with_snippets_and_ours_alike(mixed):
    cli, outcome = mixed
    hits = cli("search", "Ramouseh", "--json").json()
    assert [(h["url"], h["status"], h["receipt_id"]) for h in hits] == [
        ("https://partner.example/convoy", "received", outcome["receipt_id"])]
    assert hits[0]["snippet"] == "the convoy crossed [Ramouseh] at dawn"
    human = cli("search", "shelling")
    assert "received https://partner.example/shelling" in human.out
    # A word in every capture of ours and in every received page: both kinds, newest first, each marked as it is.
    both = cli("search", "the", "--all", "--json").json()
    ours = [h for h in both if h["status"] != "received"]
    assert {h["id"] for h in ours} == {r["id"] for r in cli("list", "--status", "ok", "--json").json()}
    assert len(ours) == 5 and not any("receipt_id" in h for h in ours)
    assert sorted(h["url"] for h in both if h["status"] == "received") == [
        "https://partner.example/about", "https://partner.example/convoy", "https://partner.example/shelling"]
    assert [h["id"] for h in both] == sorted((h["id"] for h in both), reverse=True)


def test_show_of_a_received_page_never_presents_it_as_ours(mixed):
    cli, outcome = mixed
    [hit] = cli("search", "newsroom", "--json").json()
    shown = cli("show", hit["id"])
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].split() == ["received", "page", hit["id"]]
    assert "RECEIVED from others, not captured by this archive:" in shown.out
    assert "PartnerCrawler/2.1" in shown.out and "partner-crawl.warc.gz @" in shown.out
    assert "capture " not in shown.out.split("RECEIVED")[0]
    gone = cli("show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert gone.code == 1 and "no capture" in gone.err and "Traceback" not in gone.err


def _table(conn, sql: str) -> list[dict]:
    return [dict(r) for r in conn.execute(sql)]


def test_reindex_restores_receipts_and_their_pages_from_the_store_alone(mixed, tmp_path):
    cli, outcome = mixed
    target = tmp_path / "rebuilt.db"
    result = cli("reindex", "-o", str(target), "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["captures"], report["receipts"], report["received_pages"]) == (5, 1, 3)
    with index_conn(cli.archive) as conn:
        receipts = _table(conn, "SELECT * FROM receipts ORDER BY id")
        pages = _table(conn, 'SELECT * FROM received_pages ORDER BY id')
    rebuilt = sqlite3.connect(target)
    rebuilt.row_factory = sqlite3.Row
    assert _table(rebuilt, "SELECT * FROM receipts ORDER BY id") == receipts
    assert _table(rebuilt, "SELECT rowid, * FROM received_pages ORDER BY id") == pages
    [entry] = [json.loads(r[0]) for r in rebuilt.execute(
        "SELECT detail FROM ledger WHERE event = 'reindexed' AND capture_id IS NULL")]
    assert entry["receipt"] == outcome["receipt_id"] and entry["pages"] == 3 and entry["file"] == "as received"
    # Searchable in the rebuilt index as in the original: the full-text index is rebuilt too.
    assert rebuilt.execute("SELECT COUNT(*) FROM received_fts WHERE received_fts MATCH 'Ramouseh'").fetchone()[0] == 1


def test_reindex_restores_the_receipt_of_an_altered_file_without_its_pages_and_says_so(tmp_path):
    cli = local_storage(CLI(tmp_path / "archive"))
    warc = _partner_warc(tmp_path / "crawl.warc.gz", [("https://partner.example/a", "A", "alpha words")])
    [outcome] = cli("receive", str(warc), "--from", "Partner", "--json").json()
    kept = Path(outcome["location"])
    kept.chmod(0o644)
    kept.write_bytes(kept.read_bytes() + b"\n")
    result = cli("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    assert result.code == 1
    report = result.json()
    assert report["receipts"] == 1 and report["received_pages"] == 0
    [skipped] = report["skipped"]
    assert skipped["path"] == str(kept) and f"receipt {outcome['receipt_id']} restored without its pages" in \
        skipped["reason"] and "not to the receipt's" in skipped["reason"]


def test_reindex_restores_receipts_in_the_order_they_were_received_not_by_their_keys(tmp_path):
    """A received file's key is its SHA-256, which says nothing of when: reindex reads the receipts in the order of
    the receipt IDs inside them. The first received here is the one whose key sorts last."""
    import hashlib
    cli = CLI(tmp_path / "archive")
    warcs = [_partner_warc(tmp_path / f"{name}.warc.gz", [(f"https://partner.example/{name}", name, f"{name} words")])
             for name in ("north", "south")]
    warcs.sort(key=lambda path: hashlib.sha256(path.read_bytes()).hexdigest(), reverse=True)
    ids = []
    for warc in warcs:
        [outcome] = cli("receive", str(warc), "--from", "Partner", "--json").json()
        ids.append(outcome["receipt_id"])
    result = cli("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    assert result.code == 0, result.err
    rebuilt = sqlite3.connect(tmp_path / "rebuilt.db")
    try:
        entries = [json.loads(r[0])["receipt"] for r in rebuilt.execute(
            "SELECT detail FROM ledger WHERE event = 'reindexed' AND capture_id IS NULL ORDER BY seq")]
    finally:
        rebuilt.close()
    assert entries == ids
