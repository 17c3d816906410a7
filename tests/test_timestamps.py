"""RFC 3161 timestamps: every sealed capture gets a token from the configured TSAs (here a real one, `openssl ts`
on 127.0.0.1), which openssl alone accepts; a TSA that is down never fails a capture and is retried; verify names
a swapped or altered token; the rows can be rebuilt from the token files alone."""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from archiver.custody import timestamps
from archiver.store.index import Index
from conftest import index_conn, put_stray, remove_warc, sealed_file, sealed_warc, stored_object, swap_sealed, tamper_warc
from tsa_server import LoopbackTSA, make_pki

PAGES = ("/2016/12/16/evacuation-suspended/", "/archive/1998/communique.html")


@pytest.fixture
def tsa(tmp_path):
    server = LoopbackTSA(tmp_path / "tsa")
    yield server
    server.close()


def _use(cli, *servers: LoopbackTSA, ca_bundle: Path | None = None) -> None:
    cli.env["ARCHIVER_TIMESTAMP_TSA_URLS"] = json.dumps([s.url for s in servers])
    # Quick retries, so that a test can wait for one.
    cli.env["ARCHIVER_TIMESTAMP_RETRY_SECONDS"] = "1"
    cli.env["ARCHIVER_TIMESTAMP_TIMEOUT_SECONDS"] = "5"
    if ca_bundle is not None:
        cli.env["ARCHIVER_TIMESTAMP_CA_BUNDLE"] = str(ca_bundle)


def _capture(cli, site, path=PAGES[0]) -> dict:
    result = cli("capture", "--no-browser", site.url + path, "--json")
    assert result.code == 0, result.err
    return cli("show", result.json()[0]["capture_id"], "--json").json()


def _stamps(cli, capture_id: str) -> list[dict]:
    return cli("show", capture_id, "--json").json()["timestamps"]


def _problems(cli) -> list[dict]:
    result = cli("verify", "--json")
    assert result.code == 1, result.out
    return result.json()["problems"]


def _openssl_verify(digest: str, token: Path, ca: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "ts", "-verify", "-digest", digest, "-in", str(token), "-CAfile", str(ca)],
                          capture_output=True, text=True)


def test_a_sealed_capture_is_timestamped_and_openssl_alone_accepts_the_token(cli, site, tsa):
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    show = _capture(cli, site)
    [stamp] = show["timestamps"]
    warc = sealed_warc(cli.archive, show)
    assert stamp["state"] == "done" and stamp["tsa_url"] == tsa.url and stamp["tsa_name"] == "CN=Archiver Test TSA"
    assert stamp["token_path"] == str(Path(show["warc_path"]).parent / f"{show['id']}.1.tsr")
    token = sealed_file(cli.archive, show, stamp["token_path"])
    assert stored_object(cli.archive, show, stamp["token_path"]).read_only      # like the WARC: mode, or lock
    assert hashlib.sha256(token.read_bytes()).hexdigest() == stamp["token_sha256"]
    sidecar = json.loads(sealed_file(cli.archive, show, stamp["token_path"] + ".json").read_text())
    assert sidecar["tsa_url"] == tsa.url and sidecar["digest"] == show["warc_sha256"]

    # A third party's check, with openssl and the TSA's root only: over the recorded hash, and over the file.
    checked = _openssl_verify(show["warc_sha256"], token, tsa.ca_file)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    checked = subprocess.run(["openssl", "ts", "-verify", "-data", str(warc), "-in", str(token),
                              "-CAfile", str(tsa.ca_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    text = subprocess.run(["openssl", "ts", "-reply", "-in", str(token), "-text"], capture_output=True, text=True)
    assert "Status: Granted." in text.stdout and f"Serial number: {stamp['serial']}" in text.stdout

    with index_conn(cli.archive, named_rows=False) as conn:
        [entry] = conn.execute("SELECT detail FROM ledger WHERE event = 'timestamped'").fetchall()
    detail = json.loads(entry[0])
    assert detail["token_sha256"] == stamp["token_sha256"] and detail["digest"] == show["warc_sha256"]

    result = cli("verify")
    assert result.code == 0 and "1 timestamp token(s)" in result.out and "all intact" in result.out, result.out
    assert "timestamps (1):" in cli("show", show["id"]).out


def test_a_tsa_that_is_down_never_fails_the_capture_and_is_retried(cli, site, tsa, tmp_path):
    down = LoopbackTSA(tmp_path / "tsa2", name="Second Test TSA")
    try:
        (tmp_path / "roots.pem").write_bytes(tsa.ca_file.read_bytes() + down.ca_file.read_bytes())
        _use(cli, tsa, down, ca_bundle=tmp_path / "roots.pem")
        down.mode = "error"
        show = _capture(cli, site)
        assert show["status"] == "ok"
        first, second = show["timestamps"]
        assert first["state"] == "done" and first["token_path"].endswith(f"{show['id']}.1.tsr")
        assert second["state"] == "pending" and second["attempts"] == 1 and "HTTP 500" in second["last_error"]
        # Pending is no claim, so nothing to fail; it is counted.
        data = cli("verify", "--json").json()
        assert data["ok"] and data["timestamps"] == {"verified": 1, "pending": 1, "failed": 0}

        down.mode = "drop"   # now it hangs up without a word
        time.sleep(1.2)
        assert cli("run", "--once").code == 0
        [_, second] = _stamps(cli, show["id"])
        assert second["state"] == "pending" and second["attempts"] == 2 and second["last_error"]

        down.mode = "ok"
        time.sleep(2.2)      # the second failure doubled the delay
        assert cli("run", "--once").code == 0
        [_, second] = _stamps(cli, show["id"])
        assert second["state"] == "done" and second["tsa_name"] == "CN=Second Test TSA", second
        assert second["token_path"].endswith(f"{show['id']}.2.tsr")
        token = sealed_file(cli.archive, show, second["token_path"])
        assert _openssl_verify(show["warc_sha256"], token, down.ca_file).returncode == 0
        data = cli("verify", "--json").json()
        assert data["ok"] and data["timestamps"]["verified"] == 2, data
    finally:
        down.close()


def test_a_swapped_token_is_named(cli, site, tsa):
    _use(cli, tsa, ca_bundle=tsa.ca_file)
    first, second = _capture(cli, site), _capture(cli, site, PAGES[1])
    # A genuine token, of another capture.
    swap_sealed(cli.archive, first, first["timestamps"][0]["token_path"], second["timestamps"][0]["token_path"])
    problems = [p for p in _problems(cli) if p["capture_id"] == first["id"]]
    kinds = {p["problem"]: p for p in problems}
    assert set(kinds) == {"timestamp-altered", "timestamp-invalid"}, problems
    assert kinds["timestamp-invalid"]["path"] == first["timestamps"][0]["token_path"]
    assert second["id"] in kinds["timestamp-invalid"]["detail"]   # whose token it really is
    assert all(p["capture_id"] == first["id"] for p in _problems(cli))
    result = cli("verify")
    assert result.code == 1 and "TIMESTAMP-INVALID" in result.out and first["timestamps"][0]["token_path"] in result.out


def test_altered_token_bytes_and_a_wrong_root_are_named(cli, site, tsa, tmp_path):
    _use(cli, tsa)   # no CA bundle: tokens are checked for their signature and hash only
    show = _capture(cli, site)
    assert cli("verify").code == 0
    token = show["timestamps"][0]["token_path"]

    # Checked against another authority's root, the chain does not hold.
    make_pki(tmp_path / "other", name="Another TSA")
    [problem] = _problems_with(cli, ARCHIVER_TIMESTAMP_CA_BUNDLE=str(tmp_path / "other" / "ca.pem"))
    assert problem["problem"] == "timestamp-invalid" and "unable to get local issuer certificate" in problem["detail"]

    tamper_warc(cli.archive, show, -1, token)          # the last byte of the TSA's signature
    kinds = {(p["problem"], p["capture_id"], p["path"]) for p in _problems(cli)}
    assert ("timestamp-altered", show["id"], show["timestamps"][0]["token_path"]) in kinds
    assert ("timestamp-invalid", show["id"], show["timestamps"][0]["token_path"]) in kinds

    remove_warc(cli.archive, show, token)
    [problem] = _problems(cli)
    assert problem["problem"] == "timestamp-missing" and problem["capture_id"] == show["id"]


def _problems_with(cli, **env: str) -> list[dict]:
    result = cli("verify", "--json", env=env)
    assert result.code == 1, result.out
    return result.json()["problems"]


def test_bad_timestamp_settings_are_one_line_and_exit_2(cli, tmp_path):
    for name, value, words in [
        ("ARCHIVER_TIMESTAMP_TSA_URLS", "ftp://tsa.example/", "not an http:// or https:// URL"),
        ("ARCHIVER_TIMESTAMP_CA_BUNDLE", str(tmp_path / "nowhere.pem"), "timestamp.ca_bundle"),
        ("ARCHIVER_TIMESTAMP_RETRY_SECONDS", "0", "timestamp.retry_seconds"),
    ]:
        result = cli("list", env={name: value})
        assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_the_rows_are_rebuilt_from_the_token_files_alone(cli, site, tsa, tmp_path):
    _use(cli, tsa)
    show = _capture(cli, site)
    [original] = show["timestamps"]
    # Another capture's token dropped beside this WARC under this capture's name is not taken for its own.
    other = _capture(cli, site, PAGES[1])
    stray = f"{Path(show['warc_path']).parent}/{show['id']}.7.tsr"
    put_stray(cli.archive, stray.removeprefix("warcs/"),
              sealed_file(cli.archive, other, other["timestamps"][0]["token_path"]).read_bytes())

    result = cli("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    report = result.json()
    # The stray token is named and left out (so the rebuild says it is not clean); the real one is restored.
    assert result.code == 1 and report["timestamps"] == 2
    assert [s["path"] for s in report["skipped"]] == [stray]
    index = Index(tmp_path / "rebuilt.db")
    try:
        [row] = timestamps.of_capture(index.conn, show["id"])
    finally:
        index.close()
    for key in ("tsa_url", "state", "token_path", "token_sha256", "gen_time", "serial", "tsa_name"):
        assert row[key] == original[key], key


def test_a_token_stored_but_not_recorded_is_adopted_not_asked_again(cli, site, tsa):
    _use(cli, tsa)
    show = _capture(cli, site)
    [stamp] = show["timestamps"]
    asked = tsa.requests
    # As if the runner had been killed between storing the token and recording it.
    with index_conn(cli.archive, named_rows=False) as conn:
        conn.execute("UPDATE timestamps SET state = 'pending', token_path = NULL, token_sha256 = NULL, "
                     "next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    assert cli("run", "--once").code == 0
    [again] = _stamps(cli, show["id"])
    assert tsa.requests == asked and again["state"] == "done"
    assert (again["token_path"], again["token_sha256"]) == (stamp["token_path"], stamp["token_sha256"])


def test_the_private_network_guard_applies_to_tsas(cli, site, tmp_path):
    # The site is allowed by address; a TSA on another loopback address is not.
    elsewhere = LoopbackTSA(tmp_path / "tsa", host="127.0.0.2")
    try:
        _use(cli, elsewhere)
        cli.env.update(ARCHIVER_NETWORK_ALLOW_PRIVATE="false", ARCHIVER_NETWORK_ALLOW_ADDRESSES="127.0.0.1")
        show = _capture(cli, site)
        [stamp] = show["timestamps"]
        assert stamp["state"] == "pending" and "loopback" in stamp["last_error"] and elsewhere.requests == 0
    finally:
        elsewhere.close()


def test_a_refusal_is_read_as_one(tsa):
    # openssl's TSA refuses a query it cannot parse -- with HTTP 200 and a DER "rejected" status.
    reply = httpx.post(tsa.url, content=b"not a query", headers={"Content-Type": "application/timestamp-query"})
    assert reply.status_code == 200
    with pytest.raises(timestamps.TSARejected, match="rejected"):
        timestamps.parse_reply(reply.content)
    with pytest.raises(timestamps.TokenError):
        timestamps.parse_reply(b"\x30\x03\x02\x01")


def _granted_reply(tsa: LoopbackTSA, digest: str, nonce: int) -> bytes:
    reply = httpx.post(tsa.url, content=timestamps.build_request(digest, nonce),
                       headers={"Content-Type": "application/timestamp-query"})
    assert reply.status_code == 200
    return reply.content


def test_the_request_is_what_openssl_reads_and_the_reply_is_read_as_openssl_prints_it(tsa, tmp_path):
    digest, nonce = hashlib.sha256(b"a sealed WARC").hexdigest(), (1 << 62) + 255
    query = tmp_path / "q.tsq"
    query.write_bytes(timestamps.build_request(digest, nonce))
    text = subprocess.run(["openssl", "ts", "-query", "-in", str(query), "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert "Hash Algorithm: sha256" in text and f"Nonce: 0x{nonce:X}" in text and "Certificate required: yes" in text
    hex_dump = "".join(line[11:58] for line in text.splitlines() if line.startswith("    00"))
    assert hex_dump.replace(" ", "").replace("-", "") == digest

    reply = tmp_path / "r.tsr"
    reply.write_bytes(_granted_reply(tsa, digest, nonce))
    token = timestamps.parse_reply(reply.read_bytes())
    printed = subprocess.run(["openssl", "ts", "-reply", "-in", str(reply), "-text"], capture_output=True,
                             text=True, check=True).stdout
    assert f"Serial number: {token.serial}" in printed and f"Nonce: 0x{nonce:X}" in printed
    assert (token.digest, token.nonce, token.tsa_name) == (digest, nonce, "CN=Archiver Test TSA")
    assert token.hash_algorithm == timestamps.OID_SHA256 and token.policy == "1.2.3.4.1"
    assert token.gen_time.endswith("Z") and len(token.gen_time) == len("2026-01-01T00:00:00.000000Z")
    assert abs(token.gen_epoch - time.time()) < 120
    assert token.certificates and all(c[:1] == b"\x30" for c in token.certificates)


def test_unreadable_replies_are_token_errors(tsa):
    reply = _granted_reply(tsa, hashlib.sha256(b"x").hexdigest(), 7)
    assert timestamps.parse_reply(reply).nonce == 7
    for bad in (b"", b"garbage, not DER", b"\xff" * 64, reply[:-1], reply[: len(reply) // 2], reply + b"\x00",
                reply + reply):
        with pytest.raises(timestamps.TokenError):
            timestamps.parse_reply(bad)
    # A reply that is well-formed DER yet no timestamp: a granted status with no token.
    with pytest.raises(timestamps.TokenError, match="no token"):
        timestamps.parse_reply(bytes.fromhex("30053003020100"))


def _ledger_timestamped(cli) -> list[dict]:
    with index_conn(cli.archive, named_rows=False) as conn:
        return [json.loads(d) for (d,) in conn.execute("SELECT detail FROM ledger WHERE event = 'timestamped'")]


def test_captures_sealed_before_a_tsa_was_configured_are_timestamped_on_demand(cli, site, tsa, tmp_path):
    first, second = _capture(cli, site), _capture(cli, site, PAGES[1])   # no TSA configured yet
    assert first["timestamps"] == [] and second["timestamps"] == []

    result = cli("timestamp", "--missing")
    assert result.code == 2 and "timestamp.tsa_urls" in result.err and len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err

    _use(cli, tsa, ca_bundle=tsa.ca_file)
    result = cli("timestamp", first["id"], "01NOSUCHCAPTURE0000000000")
    assert result.code == 1 and "01NOSUCHCAPTURE0000000000" in result.err
    assert _stamps(cli, first["id"]) == [] and tsa.requests == 0   # nothing queued for the good ID either

    result = cli("timestamp", first["id"])
    assert result.code == 0, result.out + result.err
    [line] = [l for l in result.out.splitlines() if l.startswith(first["id"])]
    assert " done " in line and tsa.url in line and f"{first['id']}.1.tsr" in line
    assert "1 timestamp(s) queued, 1 granted now" in result.out
    [stamp] = _stamps(cli, first["id"])
    assert stamp["state"] == "done" and stamp["tsa_name"] == "CN=Archiver Test TSA"
    token = sealed_file(cli.archive, first, stamp["token_path"])
    assert _openssl_verify(first["warc_sha256"], token, tsa.ca_file).returncode == 0
    [entry] = _ledger_timestamped(cli)
    assert entry["token_sha256"] == stamp["token_sha256"] and entry["digest"] == first["warc_sha256"]

    # --missing finds the other capture only; asked again, nothing more is asked for.
    result = cli("timestamp", "--missing", "--json")
    assert result.code == 0, result.err
    [done] = result.json()
    assert done["capture_id"] == second["id"] and done["queued"] == 1 and done["granted"] == 1
    assert [t["state"] for t in done["timestamps"]] == ["done"]
    asked = tsa.requests
    result = cli("timestamp", "--missing", "--json")
    assert result.code == 0 and result.json() == [] and tsa.requests == asked
    assert cli("timestamp", first["id"], "--json").json()[0]["queued"] == 0 and tsa.requests == asked
    assert cli("verify").code == 0

    # A second TSA added later, and down: its rows are queued and stay pending, with the error; exit 1.
    down = LoopbackTSA(tmp_path / "tsa2", name="Second Test TSA")
    try:
        down.mode = "error"
        (tmp_path / "roots.pem").write_bytes(tsa.ca_file.read_bytes() + down.ca_file.read_bytes())
        _use(cli, tsa, down, ca_bundle=tmp_path / "roots.pem")
        result = cli("timestamp", "--missing")
        assert result.code == 1, result.out
        first_pending, second_pending = [l for l in result.out.splitlines() if " pending " in l]
        assert first_pending.startswith(first["id"]) and "HTTP 500" in first_pending, result.out
        # A TSA that is down costs one timeout, not one per capture: the next capture's row waits for a runner.
        assert "did not answer for an earlier capture" in second_pending and down.requests == 1, result.out
        assert "2 timestamp(s) queued, 0 granted now; 2 done, 2 pending, 0 failed" in result.out
        assert tsa.requests == asked   # the TSA that stamped them already is not asked again
    finally:
        down.close()


def test_rows_of_a_tsa_removed_from_the_list_wait_and_say_so(cli, site, tsa, tmp_path):
    gone = LoopbackTSA(tmp_path / "tsa2", name="Dropped TSA")
    try:
        gone.mode = "error"
        _use(cli, tsa, gone)
        show = _capture(cli, site)
        assert [t["state"] for t in show["timestamps"]] == ["done", "pending"]
        _use(cli, tsa)             # the operator drops the second TSA
        gone.mode = "ok"           # (and it would answer now, if asked)
        asked = gone.requests
        time.sleep(1.2)            # its row is due
        assert cli("run", "--once").code == 0
        assert gone.requests == asked
        [_, waiting] = _stamps(cli, show["id"])
        assert waiting["state"] == "pending" and waiting["tsa_configured"] is False

        status = cli("status")
        assert status.code == 0
        assert f"1 pending for {gone.url}, a TSA no longer in timestamp.tsa_urls" in status.out, status.out
        data = cli("status", "--json").json()["timestamps"]
        assert data["pending_unconfigured"] == {gone.url: 1} and data["done"] == 1
        assert "this TSA is no longer in timestamp.tsa_urls" in cli("show", show["id"]).out

        _use(cli, tsa, gone)       # listed again: retried as before
        assert cli("run", "--once").code == 0
        assert [t["state"] for t in _stamps(cli, show["id"])] == ["done", "done"]
        assert cli("status", "--json").json()["timestamps"]["pending_unconfigured"] == {}
    finally:
        gone.close()
