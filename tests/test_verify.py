"""verify catches altered, missing and unindexed files, naming each."""
from __future__ import annotations

import os
import shutil


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
    warc = cli.archive / show["warc_path"]
    os.chmod(warc, 0o644)
    data = bytearray(warc.read_bytes())
    # Flip a byte inside the second record (the response), leaving the gzip framing readable or not.
    data[show["records"][1]["offset"] + 40] ^= 0x01
    warc.write_bytes(bytes(data))
    result = cli("verify")
    assert result.code == 1
    assert show["warc_path"] in result.out
    kinds = {p["problem"] for p in cli("verify", "--json").json()["problems"]}
    assert "altered" in kinds


def test_missing_and_unindexed_files(cli, site):
    first = _capture(cli, site)
    second = _capture(cli, site, "/archive/1998/communique.html")
    stray = cli.archive / "warcs" / "2016" / "12" / "16" / "stray.warc.gz"
    stray.parent.mkdir(parents=True)
    shutil.copy(cli.archive / first["warc_path"], stray)
    (cli.archive / second["warc_path"]).unlink()
    data = cli("verify", "--json").json()
    problems = {(p["problem"], p["path"]) for p in data["problems"]}
    assert ("missing", second["warc_path"]) in problems
    assert ("unindexed", "warcs/2016/12/16/stray.warc.gz") in problems
    assert cli("verify").code == 1
    # Verifying one named capture checks just that one.
    assert cli("verify", first["id"]).code == 0


def test_token_files_no_index_row_names_are_named(cli, site):
    show = _capture(cli, site)   # no TSA configured: the index names no token
    warcs = (cli.archive / show["warc_path"]).parent
    token, sidecar = warcs / f"{show['id']}.1.tsr", warcs / f"{show['id']}.2.tsr.json"
    token.write_bytes(b"a token dropped in, or left by a lost index")
    sidecar.write_text('{"tsa_url": "http://tsa.example/"}\n')
    result = cli("verify", "--json")
    assert result.code == 1
    problems = {(p["problem"], p["path"]) for p in result.json()["problems"]}
    assert problems == {("timestamp-unindexed", token.relative_to(cli.archive).as_posix()),
                        ("timestamp-unindexed", sidecar.relative_to(cli.archive).as_posix())}
    result = cli("verify")
    assert "TIMESTAMP-UNINDEXED" in result.out and f"{show['id']}.1.tsr" in result.out
