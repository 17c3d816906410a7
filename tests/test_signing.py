"""The archive key: created once, private, printed by `archiver key`; every capture's provenance signed with it,
checkable by OpenSSL alone."""
from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from archiver.custody import keys
from conftest import sealed_warc


def _payloads(warc: Path) -> dict[str, bytes]:
    out = {}
    with open(warc, "rb") as fh:
        for record in ArchiveIterator(fh):
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            if uri.startswith(("urn:provenance:", "urn:signature:")):
                out[uri.split(":", 2)[1]] = record.content_stream().read()
    return out


def test_capture_is_signed_and_openssl_verifies_it(cli, site, tmp_path):
    missing = cli("key")   # no archive there yet: never a new key for a mistyped --archive
    assert missing.code == 2 and "no archive at" in missing.err and not cli.archive.exists()
    assert cli("status").code == 0
    key = cli("key", "--json").json()
    key_file = Path(key["private_key_file"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert cli("key", "--json").json()["fingerprint"] == key["fingerprint"]   # created once, then reused

    result = cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/", "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    payloads = _payloads(sealed_warc(cli.archive, show))
    signature = json.loads(payloads["signature"])
    assert signature["algorithm"] == "Ed25519" and signature["key_fingerprint"] == key["fingerprint"]
    assert signature["public_key"] == key["public_key"]

    # A third party with the public key and OpenSSL, nothing of ours.
    pub = tmp_path / "archive-key.pub.pem"
    pub.write_text(cli("key", "--pem").out)
    (tmp_path / "provenance.json").write_bytes(payloads["provenance"])
    (tmp_path / "signature.bin").write_bytes(base64.b64decode(signature["signature"]))
    openssl = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
               "-in", str(tmp_path / "provenance.json"), "-sigfile", str(tmp_path / "signature.bin")]
    ok = subprocess.run(openssl, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    # One changed byte of the provenance and the same command refuses it.
    (tmp_path / "provenance.json").write_bytes(payloads["provenance"].replace(b'"ok"', b'"OK"', 1))
    assert subprocess.run(openssl, capture_output=True, text=True).returncode != 0

    verified = cli("verify", "--json").json()
    assert verified["ok"] and verified["signed"] == 1 and verified["unsigned"] == 0


def test_check_signature_names_what_is_wrong(tmp_path):
    key = keys.load_or_create(tmp_path, {"signing": {"key_file": ""}})
    provenance = b'{"capture": "x", "status": "ok"}'
    record = keys.signature_record(key, "x", provenance, "<urn:uuid:1>")
    assert keys.check_signature(record, provenance) is None
    assert "does not match its signature" in keys.check_signature(record, provenance + b" ")
    other = keys.load_or_create(tmp_path / "other", {"signing": {"key_file": ""}})
    swapped = {**record, "public_key": other.public_b64, "key_fingerprint": other.fingerprint}
    assert "does not match its signature" in keys.check_signature(swapped, provenance)
    assert "fingerprint" in keys.check_signature({**record, "key_fingerprint": other.fingerprint}, provenance)


def test_a_key_file_that_is_not_an_ed25519_key_is_one_clear_error(cli, tmp_path):
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello\n")
    assert cli("status").code == 0
    result = cli("key", env={"ARCHIVER_SIGNING_KEY_FILE": str(bad)})
    assert result.code == 2 and result.err.count("\n") == 1 and "signing.key_file" in result.err
