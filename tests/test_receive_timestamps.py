"""RFC 3161 timestamps of receipts: a file received from others (`archiver receive`) is dated through its receipt --
the token vouches for the SHA-256 of `<key>.receipt.json`, which names the received file's SHA-256, who handed it
over, who took it in and when. The TSA is a real one (`openssl ts` on 127.0.0.1, scripts/tsa_server.py); openssl
alone accepts its tokens; a TSA that is down never fails a receipt and is asked again; verify names a token that does
not vouch for its receipt; the rows come back from the token files alone (restore_receipt_tokens)."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.custody import timestamps
from archiver.store.index import Index
from conftest import CLI, index_conn, open_test_archive, store_proxy
from tsa_server import LoopbackTSA


@pytest.fixture
def tsa(tmp_path):
    server = LoopbackTSA(tmp_path / "tsa")
    yield server
    server.close()


def _use(cli: CLI, tsa: LoopbackTSA | None, ca_bundle: Path | None = None) -> None:
    cli.env["ARCHIVER_TIMESTAMP_TSA_URLS"] = json.dumps([tsa.url] if tsa else [])
    cli.env["ARCHIVER_TIMESTAMP_RETRY_SECONDS"] = "1"   # quick retries, so that a test can wait for one
    cli.env["ARCHIVER_TIMESTAMP_TIMEOUT_SECONDS"] = "5"
    if ca_bundle is not None:
        cli.env["ARCHIVER_TIMESTAMP_CA_BUNDLE"] = str(ca_bundle)


def _warc(path: Path, words: str) -> Path:
    """A small WARC as another tool would hand it over: one HTML response, with its digests."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    body = f"<html><head><title>{words}</title></head><body><p>{words}</p></body></html>".encode()
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record("https://partner.example/" + words.replace(" ", "-"), "response",
                                                  payload=io.BytesIO(body), http_headers=headers))
    path.write_bytes(out.getvalue())
    return path


def _receive(cli: CLI, source: Path, *args: str) -> dict:
    result = cli("receive", str(source), "--from", "Partner newsroom", "--by", "Hadi", *args, "--json")
    assert result.code == 0, result.err
    [outcome] = result.json()
    return outcome


def _receipt(cli: CLI, receipt_id: str) -> dict:
    with index_conn(cli.archive) as conn:
        return dict(conn.execute("SELECT * FROM receipts WHERE id = ?", (receipt_id,)).fetchone())


def _store(cli: CLI, receipt: dict, read_only: bool = True):
    archive = open_test_archive(cli.archive)
    return timestamps.receipt_store(archive.path, archive.settings, receipt, read_only=read_only)


def _stored(cli: CLI, receipt: dict, key: str, into: Path) -> Path:
    """The object ``key`` beside a receipt, in its store (the archive directory, or the bucket), as a file."""
    with _store(cli, receipt).open(key) as stream:
        into.write_bytes(stream.read())
    return into


def _openssl_verify(digest: str, token: Path, ca: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "ts", "-verify", "-digest", digest, "-in", str(token), "-CAfile", str(ca)],
                          capture_output=True, text=True)


def _timestamped_entries(cli: CLI) -> list[dict]:
    with index_conn(cli.archive, named_rows=False) as conn:
        return [json.loads(d) for (d,) in conn.execute("SELECT detail FROM ledger WHERE event = 'timestamped'")]


def test_a_receipt_is_timestamped_and_openssl_alone_accepts_the_token(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    outcome = _receive(cli, _warc(tmp_path / "partner.warc", "evacuation suspended"))
    receipt = _receipt(cli, outcome["receipt_id"])
    [stamp] = outcome["timestamps"]
    assert stamp["state"] == "done" and stamp["tsa_url"] == tsa.url and stamp["tsa_name"] == "CN=Archiver Test TSA"
    receipt_key = receipt["path"] + ".receipt.json"
    assert stamp["token_path"] == receipt_key + ".1.tsr"

    # Beside the receipt, in its store, read-only like it; the sidecar names the TSA and the receipt.
    store = _store(cli, receipt)
    assert store.head(stamp["token_path"]).read_only
    token = _stored(cli, receipt, stamp["token_path"], tmp_path / "token.tsr")
    assert hashlib.sha256(token.read_bytes()).hexdigest() == stamp["token_sha256"]
    sidecar = json.loads(_stored(cli, receipt, stamp["token_path"] + ".json", tmp_path / "token.json").read_text())
    assert sidecar["tsa_url"] == tsa.url and sidecar["receipt_id"] == receipt["id"]

    # A third party's check, with openssl and the TSA's root only: over the receipt file's SHA-256, and over the
    # file itself -- which names the received file's SHA-256, who handed it over and who took it in.
    receipt_file = _stored(cli, receipt, receipt_key, tmp_path / "receipt.json")
    named = json.loads(receipt_file.read_text())["receipt"]
    assert (named["sha256"], named["received_from"], named["received_by"]) == (
        outcome["sha256"], "Partner newsroom", "Hadi")
    receipt_sha = hashlib.sha256(receipt_file.read_bytes()).hexdigest()
    checked = _openssl_verify(receipt_sha, token, tsa.ca_file)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    checked = subprocess.run(["openssl", "ts", "-verify", "-data", str(receipt_file), "-in", str(token),
                              "-CAfile", str(tsa.ca_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    # The token is of the receipt, not of the received file.
    assert _openssl_verify(outcome["sha256"], token, tsa.ca_file).returncode != 0

    [entry] = _timestamped_entries(cli)
    assert entry["receipt"] == receipt["id"] and entry["digest"] == receipt_sha
    assert entry["token_sha256"] == stamp["token_sha256"] and entry["token_path"] == stamp["token_path"]
    with index_conn(cli.archive) as conn:
        [row] = timestamps.of_receipt(conn, receipt["id"])
    assert row["capture_id"] is None and row["digest"] == receipt_sha and row["serial"] == stamp["serial"]

    # What a person reads.
    human = cli("receive", str(_warc(tmp_path / "second.warc", "convoy waiting")), "--from", "Partner newsroom")
    assert human.code == 0 and f"timestamped by {tsa.url} at " in human.out, human.out
    result = cli("verify")
    assert result.code == 0 and "2 timestamp token(s)" in result.out and "all intact" in result.out, result.out


def test_a_tsa_that_is_down_never_fails_the_receive_and_is_asked_again(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    tsa.mode = "error"
    result = cli("receive", str(_warc(tmp_path / "a.warc", "first file")), "--from", "Reporter A")
    assert result.code == 0, result.err
    assert f"timestamp pending from {tsa.url}" in result.out and "HTTP 500" in result.out, result.out
    first = _receive(cli, _warc(tmp_path / "b.warc", "second file"))
    [stamp] = first["timestamps"]
    assert stamp["state"] == "pending" and stamp["attempts"] == 1 and "HTTP 500" in stamp["last_error"]
    with index_conn(cli.archive) as conn:
        pending = [r["receipt_id"] for r in conn.execute("SELECT receipt_id FROM timestamps WHERE state = 'pending'")]
    assert len(pending) == 2 and first["receipt_id"] in pending
    # Pending is no claim, so nothing to fail; it is counted, and the status says so.
    data = cli("verify", "--json").json()
    assert data["ok"] and data["timestamps"] == {"verified": 0, "pending": 2, "failed": 0}
    assert cli("status", "--json").json()["timestamps"]["pending"] == 2

    tsa.mode = "ok"
    time.sleep(1.2)   # the rows are due again
    result = cli("timestamp", first["receipt_id"])
    assert result.code == 0, result.out + result.err
    assert "1 receipt(s): 0 timestamp(s) queued, 1 granted now; 1 done" in result.out, result.out
    with index_conn(cli.archive) as conn:
        [row] = timestamps.of_receipt(conn, first["receipt_id"])
    assert row["state"] == "done" and row["attempts"] == 2
    receipt = _receipt(cli, first["receipt_id"])
    token = _stored(cli, receipt, row["token_path"], tmp_path / "token.tsr")
    receipt_sha = hashlib.sha256(_stored(cli, receipt, receipt["path"] + ".receipt.json",
                                         tmp_path / "receipt.json").read_bytes()).hexdigest()
    assert _openssl_verify(receipt_sha, token, tsa.ca_file).returncode == 0

    # The other one: a runner with nothing to capture retries it (timestamps.stamp_due).
    assert cli("run", "--once").code == 0
    data = cli("verify", "--json").json()
    assert data["ok"] and data["timestamps"] == {"verified": 2, "pending": 0, "failed": 0}, data
    assert len(_timestamped_entries(cli)) == 2


def test_receipts_recorded_before_a_tsa_was_configured_are_timestamped_on_demand(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    outcome = _receive(cli, _warc(tmp_path / "a.warc", "before any TSA"))
    assert outcome["timestamps"] == []
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    result = cli("timestamp", "--missing", "--json")
    assert result.code == 0, result.err
    [done] = result.json()
    assert (done["receipt_id"], done["capture_id"], done["queued"], done["granted"]) == (
        outcome["receipt_id"], None, 1, 1)
    asked = tsa.requests
    assert cli("timestamp", "--missing", "--json").json() == [] and tsa.requests == asked
    # Received again: recognised, and its timestamps said as they stand (nothing asked).
    again = _receive(cli, tmp_path / "a.warc")
    assert again["outcome"] == "already" and [t["state"] for t in again["timestamps"]] == ["done"]
    assert tsa.requests == asked
    assert cli("verify").code == 0


def _swap(cli: CLI, receipt: dict, key: str, other_key: str) -> None:
    """The bytes of ``other_key`` put in place of ``key`` beside a receipt: written over the file, or the bucket's
    answers for ``key`` taken from ``other_key`` from now on (Object Lock keeps the object itself)."""
    if not receipt["store"]:
        path = cli.archive / key
        path.chmod(0o644)
        path.write_bytes((cli.archive / other_key).read_bytes())
        return
    prefix = receipt["store"].removeprefix("s3://").partition("/")[2]
    store_proxy().substitute(f"{prefix}/{key}" if prefix else key, f"{prefix}/{other_key}" if prefix else other_key)


def test_verify_names_a_receipt_token_that_does_not_vouch_for_its_receipt(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    first = _receive(cli, _warc(tmp_path / "a.warc", "first file"))
    second = _receive(cli, _warc(tmp_path / "b.warc", "second file"))
    assert cli("verify").code == 0
    receipt = _receipt(cli, first["receipt_id"])
    token, other = first["timestamps"][0]["token_path"], second["timestamps"][0]["token_path"]
    _swap(cli, receipt, token, other)   # a genuine token, of the other receipt
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    problems = result.json()["problems"]
    kinds = {p["problem"]: p for p in problems}
    assert set(kinds) == {"timestamp-altered", "timestamp-invalid"}, problems
    assert kinds["timestamp-invalid"]["path"].endswith(token) and kinds["timestamp-invalid"]["capture_id"] is None
    assert f"the receipt file of receipt {second['receipt_id']}" in kinds["timestamp-invalid"]["detail"]
    human = cli("verify")
    assert human.code == 1 and "TIMESTAMP-INVALID" in human.out and token in human.out


def test_a_receipts_rows_are_rebuilt_from_its_token_files_alone(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa)
    first = _receive(cli, _warc(tmp_path / "a.warc", "first file"))
    second = _receive(cli, _warc(tmp_path / "b.warc", "second file"))
    [original] = first["timestamps"]
    receipt = _receipt(cli, first["receipt_id"])
    store = _store(cli, receipt, read_only=False)
    # The other receipt's token dropped beside this receipt under its name is not taken for its own.
    other = _stored(cli, _receipt(cli, second["receipt_id"]), second["timestamps"][0]["token_path"],
                    tmp_path / "other.tsr")
    stray = receipt["path"] + ".receipt.json.7.tsr"
    store.put_file(stray, other, hashlib.sha256(other.read_bytes()).hexdigest())

    index = Index(tmp_path / "rebuilt.db")
    try:
        with index.transaction() as conn:
            conn.execute(f"INSERT INTO receipts ({', '.join(receipt)}) VALUES ({', '.join('?' * len(receipt))})",
                         tuple(receipt.values()))
            restored = timestamps.restore_receipt_tokens(conn, store, receipt)
        assert restored.rows == 1 and [path for path, _ in restored.skipped] == [stray], restored
        [row] = timestamps.of_receipt(index.conn, receipt["id"])
        [entry] = [json.loads(d) for (d,) in index.conn.execute(
            "SELECT detail FROM ledger WHERE event = 'timestamped'").fetchall()]
    finally:
        index.close()
    for key in ("tsa_url", "state", "token_path", "token_sha256", "gen_time", "serial", "tsa_name"):
        assert row[key] == original[key], key
    assert entry["restored"] is True and entry["receipt"] == receipt["id"]


def test_a_receipt_file_changed_after_it_was_timestamped_is_named_and_not_stamped_again(tmp_path, tsa):
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    outcome = _receive(cli, _warc(tmp_path / "a.warc", "first file"))
    receipt = _receipt(cli, outcome["receipt_id"])
    key = receipt["path"] + ".receipt.json"
    text = _stored(cli, receipt, key, tmp_path / "receipt.json").read_text()
    changed = tmp_path / "changed.json"
    changed.write_text(text.replace('"Partner newsroom"', '"Someone else"'))   # still names the receipt
    if receipt["store"]:
        # Object Lock keeps the object: the bucket answers with other bytes for it from now on. (Those bytes are
        # put outside received/, where an object no row names would be one more problem.)
        elsewhere = "test-swapped/" + key.rsplit("/", 1)[-1]
        _store(cli, receipt, read_only=False).put_file(elsewhere, changed,
                                                       hashlib.sha256(changed.read_bytes()).hexdigest())
        _swap(cli, receipt, key, elsewhere)
    else:
        path = cli.archive / key
        path.chmod(0o644)
        path.write_bytes(changed.read_bytes())
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    [problem] = result.json()["problems"]
    assert problem["problem"] == "timestamp-invalid" and "has changed since" in problem["detail"], problem
    # Asked to timestamp it again, nothing is asked: a token would date the changed file.
    asked = tsa.requests
    result = cli("timestamp", outcome["receipt_id"])
    assert result.code == 1 and "first timestamped with" in result.err and tsa.requests == asked, result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_receipt_restored_from_its_file_by_the_same_bytes_again_is_timestamped_as_that_file(tmp_path, tsa):
    """A receive killed after its receipt's put, before its row (and so before its timestamps were queued): the
    same bytes received again write the row from the receipt file in the store, and its timestamps are queued in
    that transaction and asked at once, of the receipt file as it is in the store (not of one made again)."""
    cli = CLI(tmp_path / "archive")
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    warc = _warc(tmp_path / "partner.warc", "convoy at the checkpoint")
    killed = cli("receive", str(warc), "--from", "Reporter A", env={"ARCHIVER_FAULT_KILL_AT": "receive-stored"})
    assert killed.code == -9, killed.err
    with index_conn(cli.archive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM timestamps").fetchone()[0] == 0
    again = _receive(cli, warc)
    assert again["outcome"] == "already"
    [stamp] = again["timestamps"]
    assert stamp["state"] == "done" and stamp["tsa_url"] == tsa.url, stamp
    receipt = _receipt(cli, again["receipt_id"])
    assert receipt["received_from"] == "Reporter A"   # the receipt of the receive that was killed
    receipt_file = _stored(cli, receipt, receipt["path"] + ".receipt.json", tmp_path / "receipt.json")
    receipt_sha = hashlib.sha256(receipt_file.read_bytes()).hexdigest()
    with index_conn(cli.archive) as conn:
        [row] = timestamps.of_receipt(conn, receipt["id"])
    assert row["digest"] == receipt_sha
    token = _stored(cli, receipt, stamp["token_path"], tmp_path / "token.tsr")
    checked = _openssl_verify(receipt_sha, token, tsa.ca_file)
    assert checked.returncode == 0, checked.stderr
    result = cli("verify", "--json")
    assert result.code == 0, result.out
    assert result.json()["timestamps"]["verified"] == 1


def test_verify_names_a_token_beside_a_receipt_that_no_row_names_and_not_as_a_received_file(tmp_path):
    """received/ holds received files, their receipts and their receipts' tokens: a token is never taken for a
    received file without its row; one that no timestamps row names is timestamp-unindexed, as in warcs/."""
    cli = CLI(tmp_path / "archive")
    outcome = _receive(cli, _warc(tmp_path / "partner.warc", "shelling near the old city"))
    receipt = _receipt(cli, outcome["receipt_id"])
    stray = tmp_path / "stray.tsr"
    stray.write_bytes(b"not a token anybody asked for")
    key = receipt["path"] + ".receipt.json.3.tsr"
    _store(cli, receipt, read_only=False).put_file(key, stray, hashlib.sha256(stray.read_bytes()).hexdigest())
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    [problem] = result.json()["problems"]
    assert problem["problem"] == "timestamp-unindexed" and problem["path"].endswith(key), problem
