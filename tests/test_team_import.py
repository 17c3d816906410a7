"""`archiver import` into an archive that seals to S3 (issue 12, Part 2): each imported WARC and its RFC 3161 tokens go
into the bucket as a capture's seal puts them (create-only, ChecksumSHA256, Object Lock), the capture is indexed
with where it lives, and nothing is left in a local warcs/ or tmp/."""
from __future__ import annotations

import hashlib

import psycopg

from conftest import CLI, capture_timestamped
from test_s3_sealing import PAGE, objects
from test_team_reindex import team_cli


def test_an_imported_capture_and_its_token_go_into_the_bucket_as_a_seal_puts_them(site, s3, team_db, tmp_path):
    # The package: a timestamped capture of an archive elsewhere, exported as a signed WACZ.
    source, [captured], ca_file = capture_timestamped(tmp_path / "elsewhere", ["--no-browser", site.url + PAGE])
    assert captured.code == 0, captured.err
    [listed] = source("list", "--json").json()
    wacz = tmp_path / "case.wacz"
    assert source("export", listed["id"], "-o", str(wacz)).code == 0

    team = team_cli(CLI(tmp_path / "team"), s3, team_db.owner_url)
    team.env["ARCHIVER_TIMESTAMP_CA_BUNDLE"] = str(ca_file)
    bucket_url = team.env["ARCHIVER_STORAGE_URL"]
    prefix = bucket_url.split("/", 3)[3]
    s3.proxy.reset()
    imported = team("import", str(wacz), "--json")
    assert imported.code == 0, imported.out + imported.err
    [item] = imported.json()[0]["items"]
    assert (item["outcome"], item["capture_id"], item["tokens"]) == ("imported", listed["id"], 1)
    assert item["detail"].startswith(bucket_url + "/")

    with psycopg.connect(team_db.owner_url) as conn:
        row = conn.execute("SELECT warc_path, warc_sha256, warc_store, warc_version FROM captures").fetchone()
        [stamp] = conn.execute("SELECT state, token_path, token_sha256 FROM timestamps").fetchall()
        events = [r[0] for r in conn.execute("SELECT event FROM ledger ORDER BY seq")]
    warc_path, sha256, store, version = row
    assert store == bucket_url and version
    key = warc_path.removeprefix("warcs/")
    stored = objects(s3, prefix)
    assert sorted(stored) == sorted([key, key.replace(".warc.gz", ".1.tsr"), key.replace(".warc.gz", ".1.tsr.json")])
    assert hashlib.sha256(stored[key]).hexdigest() == sha256 == listed["warc_sha256"]
    assert stamp[0] == "done" and hashlib.sha256(stored[stamp[1].removeprefix("warcs/")]).hexdigest() == stamp[2]
    assert events == ["imported", "timestamped"]
    # Put as a seal puts: create-only, its SHA-256 for S3 to check, locked on the write itself.
    for name in stored:
        [put] = [r for r in s3.proxy.find("PUT", name) if r.path.split("?")[0].endswith(name)
                 and "retention" not in r.path]
        assert put.headers["if-none-match"] == "*" and put.headers["x-amz-object-lock-mode"] == "COMPLIANCE"
        assert "x-amz-checksum-sha256" in put.headers
    # Nothing kept on this host.
    assert [p for p in team.archive.rglob("*") if p.is_file() and (".warc" in p.name or ".tsr" in p.name)] == []
    assert not list((team.archive / "tmp").iterdir())

    verified = team("verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["captures"] == 1 and verified.json()["timestamps"]["verified"] == 1
    again = team("import", str(wacz), "--json")
    assert again.code == 0 and again.json()[0]["items"][0]["outcome"] == "held"
    assert objects(s3, prefix).keys() == stored.keys()
