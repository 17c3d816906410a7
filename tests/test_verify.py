"""verify catches altered, missing and unindexed files, naming each."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import (index_conn, open_test_archive, open_test_index, put_stray, remove_warc, sealed_warc_bytes,
                      store_proxy, tamper_index, tamper_warc)


def _capture(cli, site, path="/2016/12/16/evacuation-suspended/"):
    result = cli("capture", "--no-browser", site.url + path, "--json")
    assert result.code == 0, result.err
    return cli("show", result.json()[0]["capture_id"], "--json").json()


def test_clean_archive_verifies(cli, site):
    _capture(cli, site)
    result = cli("verify")
    assert result.code == 0 and "all intact" in result.out
    data = cli("verify", "--json").json()
    assert data["ok"] is True and data["captures"] == 1 and data["records"] >= 4


def test_flipped_byte_is_found_and_named(cli, site):
    show = _capture(cli, site)
    # Flip a byte inside the second record (the response), leaving the gzip framing readable or not.
    tamper_warc(cli.archive, show, show["records"][1]["offset"] + 40)
    result = cli("verify")
    assert result.code == 1
    assert show["warc_path"] in result.out
    kinds = {p["problem"] for p in cli("verify", "--json").json()["problems"]}
    assert "altered" in kinds


def test_missing_and_unindexed_files(cli, site):
    first = _capture(cli, site)
    second = _capture(cli, site, "/archive/1998/communique.html")
    stray = put_stray(cli.archive, "2016/12/16/stray.warc.gz", sealed_warc_bytes(cli.archive, first))
    remove_warc(cli.archive, second)
    data = cli("verify", "--json").json()
    problems = {(p["problem"], p["path"]) for p in data["problems"]}
    assert ("missing", second["warc_path"]) in problems
    assert ("unindexed", stray) in problems
    assert cli("verify").code == 1
    # Verifying one named capture checks just that one.
    assert cli("verify", first["id"]).code == 0


def test_token_files_no_index_row_names_are_named(cli, site):
    show = _capture(cli, site)   # no TSA configured: the index names no token
    day = show["warc_path"].removeprefix("warcs/").rsplit("/", 1)[0]
    token = put_stray(cli.archive, f"{day}/{show['id']}.1.tsr", b"a token dropped in, or left by a lost index")
    sidecar = put_stray(cli.archive, f"{day}/{show['id']}.2.tsr.json", b'{"tsa_url": "http://tsa.example/"}\n')
    result = cli("verify", "--json")
    assert result.code == 1
    problems = {(p["problem"], p["path"]) for p in result.json()["problems"]}
    assert problems == {("timestamp-unindexed", token), ("timestamp-unindexed", sidecar)}
    result = cli("verify")
    assert "TIMESTAMP-UNINDEXED" in result.out and f"{show['id']}.1.tsr" in result.out


def _entries(archive, capture_id):
    with index_conn(archive) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM ledger WHERE capture_id = ? ORDER BY seq", (capture_id,))]


def _rehashed(entry, **changes):
    """An entry changed and its hash recomputed, as a forger would: only the next entry's prev_hash betrays it."""
    import json
    from archiver.custody import ledger
    changed = {**entry, "detail": ledger.canonical({**json.loads(entry["detail"]), **changes})}
    return changed["detail"], ledger.entry_hash(changed)


def test_one_capture_is_checked_where_it_stands_in_the_chain(cli, site):
    first = _capture(cli, site)
    second = _capture(cli, site, "/archive/1998/communique.html")
    assert cli("verify").code == 0   # a whole walk, recorded with the head it reached
    result = cli("verify", first["id"], "--json")
    assert result.code == 0, result.out
    checked = result.json()["ledger"]
    assert checked["scope"] == "captures" and checked["intact"] and checked["capture_entries"] == 3
    full = checked["last_full_walk"]
    assert full["to"] == 6 and full["entry"] == 7   # 3 entries per capture, then the first `verified`
    assert checked["walked"] == {"from": 7, "to": 7, "entries": 1}   # what came after that walk: walked now
    text = cli("verify", first["id"])
    assert text.code == 0 and "their 3 ledger entries" in text.out
    assert "entries 1-6 were not walked now; they were walked in full and found intact" in text.out

    # An entry of the other capture forged (re-hashed) before the last whole walk: a verify of this capture does
    # not walk there, and says so; the whole walk finds it.
    [_, sealed2] = _entries(cli.archive, second["id"])
    detail, forged = _rehashed(sealed2, warc_size=1)
    tamper_index(cli.archive, f"UPDATE ledger SET detail = '{detail}', hash = '{forged}' WHERE seq = {sealed2['seq']}")
    assert cli("verify", first["id"]).code == 0
    problems = cli("verify", "--json").json()["problems"]
    assert any(p["problem"] == "ledger-broken" and f"entry {sealed2['seq'] + 1} does not follow" in p["detail"]
               for p in problems)

    # This capture's own entry forged: its successor no longer follows from it.
    [captured1, _] = _entries(cli.archive, first["id"])
    detail, forged = _rehashed(captured1, status="failed")
    tamper_index(cli.archive, f"UPDATE ledger SET detail = '{detail}', hash = '{forged}' WHERE seq = {captured1['seq']}")
    result = cli("verify", first["id"], "--json")
    assert result.code == 1
    [problem] = [p for p in result.json()["problems"] if p["problem"] == "ledger-broken"]
    assert f"ledger entry {captured1['seq'] + 1} does not follow" in problem["detail"]


def test_a_removed_neighbour_of_a_capture_entry_is_named(cli, site):
    first = _capture(cli, site)
    _capture(cli, site, "/archive/1998/communique.html")
    sealed1 = _entries(cli.archive, first["id"])[-1]
    tamper_index(cli.archive, f"DELETE FROM ledger WHERE seq = {sealed1['seq'] + 1}")
    result = cli("verify", first["id"])
    assert result.code == 1 and f"ledger entry {sealed1['seq'] + 1} is missing" in result.out


def test_every_problem_is_reported_though_few_are_held(cli, site):
    """Problems are printed as they are found and counted, but only the first 100 are kept (for the ledger):
    150 stray WARCs are all named, in text and in the streamed --json."""
    import json
    show = _capture(cli, site)
    day = show["warc_path"].removeprefix("warcs/").rsplit("/", 1)[0]
    sealed = sealed_warc_bytes(cli.archive, show)
    strays = {put_stray(cli.archive, f"{day}/stray-{n:03d}.warc.gz", sealed) for n in range(150)}
    result = cli("verify", "--json")
    assert result.code == 1
    data = result.json()
    assert data["problem_count"] == 150 and len(data["problems"]) == 150 and data["ok"] is False
    assert {p["path"] for p in data["problems"]} == strays
    text = cli("verify")
    assert text.out.count("UNINDEXED") == 150 and "150 problem(s)" in text.out
    with index_conn(cli.archive) as conn:
        detail = json.loads(conn.execute("SELECT detail FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert detail["problem_count"] == 150 and len(detail["problems"]) == 100 and detail["chain"]["intact"]


@pytest.mark.slow
def test_verify_memory_does_not_grow_with_the_archive(tmp_path):
    """Peak RSS of `archiver verify` over archives of 300 and 3 000 captures built by scripts/make-index (the old
    verify, which loaded every capture row, grew ~9 KB a capture: +25 MB here, a ratio of ~1.35)."""
    import subprocess
    import sys

    from bench_verify import measure   # scripts/bench_verify.py: wait4's peak RSS of the process alone
    root = Path(__file__).resolve().parent.parent
    peaks = []
    for n in (300, 3000):
        archive = tmp_path / f"a{n}"
        built = subprocess.run([sys.executable, str(root / "scripts" / "make-index"), str(archive), "--captures",
                                str(n), "--workers", "1"], capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        run = measure([sys.executable, "-m", "archiver", "--archive", str(archive), "verify"], tmp_path)
        assert run["code"] == 0 and f"verified {n} capture(s)" in run["said"], run
        peaks.append(run["rss"])
    assert peaks[1] / peaks[0] < 1.12, peaks


def test_a_file_or_directory_that_cannot_be_read_is_a_problem_not_a_crash(cli, site, monkeypatch):
    """Permissions or a failing disk (simulated: the suite may run as root, whom chmod does not stop); in a bucket,
    credentials that may not read the object nor list the prefix (403 AccessDenied from the store)."""
    from archiver.custody import verify as verify_module
    show = _capture(cli, site)
    archive = open_test_archive(cli.archive)
    if show.get("warc_store"):
        store = archive.store(read_only=True)
        proxy = store_proxy()
        proxy.refuse(f"{store.prefix}/{show['warc_path'].removeprefix('warcs/')}", 403, "AccessDenied")
        proxy.refuse_listing(store.prefix)
        expected = {("unreadable", show["warc_path"]), ("unreadable", store.url)}
        denied = "403"
    else:
        day = (cli.archive / show["warc_path"]).parent

        def unreadable(path):
            raise PermissionError(13, "Permission denied", str(path))

        real_scandir = os.scandir
        monkeypatch.setattr(verify_module, "sha256_file", unreadable)
        monkeypatch.setattr(verify_module.os, "scandir",
                            lambda path: unreadable(path) if Path(path) == day else real_scandir(path))
        expected = {("unreadable", show["warc_path"]), ("unreadable", day.relative_to(cli.archive).as_posix())}
        denied = "Permission denied"
    index = open_test_index(archive.index_path)
    try:
        report = verify_module.verify(archive.path, index, settings=archive.settings)
    finally:
        index.close()
    assert {(p.kind, p.path) for p in report.problems} == expected
    assert all(denied in p.detail for p in report.problems), report.problems


@pytest.fixture
def large_media(served_media):
    # Above verify.PARALLEL_MIN (16 MiB): the file is hashed in a thread beside the records' pass.
    return served_media(20 << 20)


def _media_capture(cli, site):
    result = cli("capture", "--no-browser", site.url + "/test/media.mp4", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    [media] = [r for r in show["records"] if r["type"] == "response"]
    return show, media


def test_a_large_file_verifies_by_its_seal_and_names_a_changed_record(cli, site, large_media):
    show, media = _media_capture(cli, site)
    data = cli("verify", "--json").json()
    assert data["ok"] is True and data["records"] == len(show["records"])
    # One byte changed in the middle of the 20 MiB body (stored as it came: the byte is in the file as is).
    tamper_warc(cli.archive, show, media["offset"] + media["length"] // 2)
    problems = cli("verify", "--json").json()["problems"]
    kinds = [p["problem"] for p in problems]
    assert kinds[0] == "altered", problems
    # The file is read again with every payload re-hashed, so the changed record is named, not just the file.
    assert any(p["problem"] in ("record-altered", "unreadable") for p in problems[1:]), problems


@pytest.mark.sqlite_only
def test_a_large_file_intact_but_its_index_records_changed_is_found(cli, site, large_media):
    show, media = _media_capture(cli, site)
    # The file is as sealed, but the index now says another payload digest for its media record.
    tamper_index(cli.archive, f"UPDATE records_packed SET payload_digest = 'sha256:{'0' * 64}' "
                              f"WHERE capture_id = '{show['id']}' AND offset = {media['offset']}")
    problems = cli("verify", "--json").json()["problems"]
    assert [p["problem"] for p in problems] == ["record-altered"], problems
    assert str(media["offset"]) in problems[0]["detail"]
