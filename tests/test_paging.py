"""list and search show one page by default, say when there is more, and let a script walk every page (or take
everything, streamed) without losing or repeating a row."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CLI, index_conn, made_archive

CAPTURES = 130


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    """An archive of 130 captures made by scripts/make-index (archiver's own write path, real WARCs)."""
    return made_archive(tmp_path_factory.mktemp("paging") / "archive", CAPTURES, "--batch", "50")


def _ids(archive: Path) -> list[str]:
    with index_conn(archive) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM captures ORDER BY id DESC")]


def test_list_shows_one_page_and_says_how_to_see_more(big):
    ids = _ids(big.archive)
    shown = big("list")
    assert shown.code == 0
    lines = shown.out.splitlines()
    assert lines[0].startswith("ID") and len(lines) == 1 + 50
    assert [line.split()[0] for line in lines[1:]] == ids[:50]
    assert f"50 captures shown, newest first; there are more: add --before {ids[49]}" in shown.err
    assert "--all" in shown.err

    page = big("list", "--json")
    assert [c["id"] for c in page.json()] == ids[:50]
    assert page.out.count("\n") == 52 and page.out.startswith("[\n{") and page.out.endswith("}\n]\n")
    assert "--before" in page.err                       # the hint goes to stderr; stdout stays JSON

    everything = big("list", "--all", "--json")
    assert [c["id"] for c in everything.json()] == ids and everything.err == ""
    assert set(everything.json()[0]) == {"id", "url", "final_url", "kind", "method", "status", "failure_class",
                                         "http_status", "title", "started_at", "finished_at", "warc_path",
                                         "warc_sha256", "warc_size", "record_count", "tags", "requested_by"}
    last = big("list", "--limit", "200")
    assert len(last.out.splitlines()) == 1 + CAPTURES and last.err == ""


def test_a_script_walks_every_page_once(big):
    ids = _ids(big.archive)
    seen, before = [], None
    while True:
        page = big("list", "--limit", "40", "--json", *(["--before", before] if before else []))
        rows = page.json()
        seen += [c["id"] for c in rows]
        if len(rows) < 40:
            assert "there are more" not in page.err
            break
        before = rows[-1]["id"]
    assert seen == ids                                  # every capture, once, newest first
    # The same for filtered lists: the filters hold on every page.
    failed = [c["id"] for c in big("list", "--status", "failed", "--all", "--json").json()]
    first = big("list", "--status", "failed", "--limit", "2", "--json").json()
    assert [c["id"] for c in first] == failed[:2]
    rest = big("list", "--status", "failed", "--all", "--before", first[-1]["id"], "--json").json()
    assert [c["id"] for c in rest] == failed[2:]


def test_search_pages_like_list(big):
    common = big("search", "the", "--all", "--json").json()
    assert len(common) == CAPTURES and [h["id"] for h in common] == _ids(big.archive)
    assert all(h["snippet"] and "[" in h["snippet"] for h in common)
    page = big("search", "the")
    assert page.out.count("\n    [") + page.out.count("\n    …") >= 1
    assert f"50 hits shown, newest first; there are more: add --before {common[49]['id']}" in page.err
    walked, before = [], None
    while True:
        hits = big("search", "the", "--limit", "60", "--json", *(["--before", before] if before else [])).json()
        walked += hits
        if len(hits) < 60:
            break
        before = hits[-1]["id"]
    assert walked == common


@pytest.mark.parametrize("args, message", [
    (["list", "--limit", "0"], "--limit"),
    (["list", "--limit", "many"], "--limit"),
    (["list", "--all", "--limit", "5"], "not both"),
    (["list", "--before", "not-an-id"], "not a capture ID"),
    (["search", "the", "--before", "01M9'; DROP TABLE"], "not a capture ID"),
    (["list", "--gone", "--before", "01M94T6K9ZXSQDA66AWG24EJYP"], "--before"),
])
def test_bad_page_options_exit_2_with_one_line(big, args, message):
    result = big(*args)
    assert result.code == 2 and result.out == "" and message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


def test_status_counts_stay_exact(big):
    status = big("status", "--json").json()
    with index_conn(big.archive) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        captures = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    assert status["captures"] == captures == CAPTURES
    assert {s: status[s] for s in ("queued", "running", "done", "failed")} == \
        {s: states.get(s, 0) for s in ("queued", "running", "done", "failed")}
    assert json.loads(json.dumps(status["timestamps"]))["done"] == 0


@pytest.mark.sqlite_only   # copies the archive directory, index.db with it
def test_a_missing_or_altered_warc_is_named_not_shown(big, tmp_path):
    """What show and search read back from a WARC is used only when it is there and hashes as indexed."""
    import shutil
    copy = CLI(tmp_path / "archive")
    shutil.copytree(big.archive, copy.archive)
    hits = copy("search", "the", "--limit", "2", "--json").json()
    shows = [copy("show", h["id"], "--json").json() for h in hits]
    gone, altered = (copy.archive / show["warc_path"] for show in shows)
    gone.chmod(0o644)
    gone.unlink()
    altered.chmod(0o644)
    [provenance] = [r for r in shows[1]["records"] if (r["uri"] or "").startswith("urn:provenance:")]
    data = bytearray(altered.read_bytes())
    data[provenance["offset"] + provenance["length"] // 2] ^= 0xFF   # one byte inside its gzip member
    altered.write_bytes(bytes(data))

    shown = copy("show", hits[0]["id"], "--json")
    assert shown.code == 0 and "Traceback" not in shown.err
    assert shown.json()["provenance"] == {} and "is not there" in shown.json()["provenance_error"]
    assert "cannot be read back" in shown.err and f"archiver verify {hits[0]['id']}" in shown.err
    human = copy("show", hits[1]["id"])
    assert human.code == 0 and "Traceback" not in human.err and "cannot be read back" in human.err
    found = copy("search", "the", "--limit", "2")
    assert found.code == 0 and "text not readable" in found.out and "Traceback" not in found.err
    snippets = copy("search", "the", "--limit", "2", "--json").json()
    assert "is not there" in snippets[0]["snippet_error"] and "snippet_error" not in snippets[1]
    assert snippets[0]["snippet"] is None or "[" in snippets[0]["snippet"]   # the title's, if the word is in it
