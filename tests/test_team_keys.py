"""Keys in team mode (issue 12, Part 2): the shared index records the archive's key fingerprints when they are first
made or used, and a host whose keys/ is missing or holds another key refuses to sign -- one line, exit 2, naming
the host to copy keys/ from -- instead of making a key of its own. An embedded archive records nothing."""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import CLI
from test_migrate_to_team import refused
from test_team_reindex import PAGE, team_cli


def recorded(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT name, fingerprint FROM archive_keys").fetchall())


def host(tmp_path: Path, name: str, s3, url: str, storage_url: str) -> CLI:
    """Another capture host: an archive directory of its own on the same database and bucket."""
    cli = team_cli(CLI(tmp_path / name), s3, url)
    cli.env["ARCHIVER_STORAGE_URL"] = storage_url
    return cli


def test_a_second_host_without_the_archive_key_refuses_to_sign_until_keys_are_copied(cli, site, s3, team_db,
                                                                                      tmp_path):
    first = team_cli(cli, s3, team_db.owner_url)
    made = first("capture", "--no-browser", site.url + PAGE, "--json")
    assert made.code == 0, made.err
    key = first("key", "--json").json()
    assert recorded(team_db.owner_url) == {"archive": key["fingerprint"], "wacz": key["wacz_key"]["fingerprint"]}
    storage_url = first.env["ARCHIVER_STORAGE_URL"]
    here = socket.gethostname()

    # A second host with an empty archive directory: no key is made, nothing is queued or captured.
    second = host(tmp_path, "second", s3, team_db.runner_url, storage_url)
    for args in (("capture", "--no-browser", site.url + "/test/pages/3"), ("run", "--once"), ("key",)):
        refused(second(*args), "no signing key at", str(second.archive / "keys"), f"copy the archive's keys/ from {here}",
                key["fingerprint"])
    assert not (second.archive / "keys").exists() or not list((second.archive / "keys").iterdir())
    with psycopg.connect(team_db.owner_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1

    # A host with a key of its own: refused, naming both fingerprints.
    third = host(tmp_path, "third", s3, team_db.runner_url, storage_url)
    own = Ed25519PrivateKey.generate()
    (third.archive / "keys").mkdir(parents=True)
    (third.archive / "keys" / "archive-ed25519.pem").write_bytes(own.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    result = third("capture", "--no-browser", site.url + "/test/pages/3")
    refused(result, "holds the signing key sha256:", f"but this archive's is {key['fingerprint']}",
            f"copy the archive's keys/ from {here}")
    assert recorded(team_db.owner_url)["archive"] == key["fingerprint"]

    # keys/ copied from the first host: the second host captures, signed with the archive's key.
    shutil.copytree(first.archive / "keys", second.archive / "keys", dirs_exist_ok=True)
    done = second("capture", "--no-browser", site.url + "/test/pages/3", "--json")
    assert done.code == 0, done.err
    shown = second("show", done.json()[0]["capture_id"], "--json").json()
    verified = second("verify", "--json").json()
    assert verified["ok"] and verified["signed"] == 2, verified["problems"]
    assert shown["id"] == done.json()[0]["capture_id"]


def test_an_embedded_archive_records_no_key_and_makes_one_as_before(cli, site):
    cli.env.pop("ARCHIVER_INDEX_URL", None)
    assert cli("capture", "--no-browser", site.url + PAGE).code == 0
    first = cli("key", "--json").json()["fingerprint"]
    import sqlite3
    if (cli.archive / "index.db").exists():
        with sqlite3.connect(cli.archive / "index.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM archive_keys").fetchone()[0] == 0
    # Its key file removed, a new key is made at the next use, as it always was on one host.
    shutil.rmtree(cli.archive / "keys")
    assert cli("capture", "--no-browser", site.url + "/test/pages/3").code == 0
    assert cli("key", "--json").json()["fingerprint"] != first
