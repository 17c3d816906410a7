"""WACZ export: `archiver export` writes a WACZ 1.1.1 that `wacz validate` accepts, signed as ReplayWeb.page
verifies (checked here with `cryptography` alone), carrying the ledger excerpt, the RFC 3161 tokens, the keys
and a VERIFY.txt whose commands a third party can run as written; `archiver verify --wacz` passes it offline and
names each kind of tampering."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from archiver.custody import keys
from conftest import CLI, TEST_INDEX, capture_timestamped, index_conn, sealed_warc_bytes, tamper_warc
from tsa_server import LoopbackTSA

BIN = Path(sys.executable).parent
PAGES = ("/2016/12/16/evacuation-suspended/", "/archive/1998/communique.html")
TAMPERED = "archive/{id}.warc.gz"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, site) -> dict[str, Any]:
    """An archive with two captures tagged `aleppo` (one behind a redirect, one a PDF) and one untagged, each
    timestamped by a loopback TSA; exported by tag."""
    root = tmp_path_factory.mktemp("wacz")
    cli, (tagged, other), tsa_ca = capture_timestamped(
        root, ["--no-browser", "--tag", "aleppo", site.url + "/go/evacuation-suspended?utm_source=x",
               site.url + "/docs/icrc-statement.pdf", "--json"],
        ["--no-browser", site.url + PAGES[1], "--json"])
    assert tagged.code == 0 and other.code == 0, tagged.err + other.err
    ids = sorted(o["capture_id"] for o in tagged.json())
    shows = {i: cli("show", i, "--json").json() for i in ids}
    assert all(s["timestamps"] and s["timestamps"][0]["state"] == "done" for s in shows.values())
    output = root / "case.wacz"
    result = cli("export", "--tag", "aleppo", "-o", str(output), "--json")
    assert result.code == 0, result.err
    return {"cli": cli, "wacz": output, "ids": ids, "other": other.json()[0]["capture_id"], "shows": shows,
            "result": result.json(), "tsa_ca": tsa_ca, "root": root}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rezip(source: Path, target: Path, changes: dict[str, bytes]) -> Path:
    """A copy of the package with some members replaced, the zip itself well-formed (fresh CRCs): what a forger
    who knows the format would make."""
    with zipfile.ZipFile(source) as zf, zipfile.ZipFile(target, "w") as out:
        for info in zf.infolist():
            out.writestr(info, changes.get(info.filename, zf.read(info)), compress_type=info.compress_type)
    return target


def _wacz_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "wacz"), "validate", "-f", str(path)], capture_output=True, text=True,
                          timeout=300)


def _verify(cli: CLI, path: Path) -> tuple[int, dict[str, Any]]:
    result = cli("verify", "--wacz", str(path), "--json")
    return result.code, result.json()


def test_export_is_a_wacz_that_wacz_validate_accepts(case):
    members = _members(case["wacz"])
    ids = case["ids"]
    assert case["result"]["captures"] == ids and case["other"] not in case["result"]["captures"]
    assert sorted(n for n in members if n.startswith("archive/")) == [f"archive/{i}.warc.gz" for i in ids]
    with zipfile.ZipFile(case["wacz"]) as zf:
        assert all(zf.getinfo(f"archive/{i}.warc.gz").compress_type == zipfile.ZIP_STORED for i in ids)
    # The WARCs as sealed, byte for byte.
    for i in ids:
        show = case["shows"][i]
        assert members[f"archive/{i}.warc.gz"] == sealed_warc_bytes(case["cli"].archive, show)
    # No file at the root but the two datapackage files (py-wacz matches paths on their last two parts).
    assert {n for n in members if "/" not in n} == {"datapackage.json", "datapackage-digest.json"}

    checked = _wacz_validate(case["wacz"])
    assert checked.returncode == 0 and "Validation succeeded" in checked.stdout, checked.stdout + checked.stderr

    package = json.loads(members["datapackage.json"])
    assert package["wacz_version"] == "1.1.1" and package["created"] == package["modified"]
    listed = {r["path"]: r for r in package["resources"]}
    assert set(listed) == set(members) - {"datapackage.json", "datapackage-digest.json"}
    for path, resource in listed.items():    # what `sha256sum` of each extracted file prints
        assert resource["hash"] == "sha256:" + hashlib.sha256(members[path]).hexdigest()
        assert resource["bytes"] == len(members[path]) and resource["name"] == path.lower()
    digest = json.loads(members["datapackage-digest.json"])
    assert digest["hash"] == "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    for i in ids:
        assert listed[f"provenance/{i}.1.tsr"]["hash"] == "sha256:" + case["shows"][i]["timestamps"][0]["token_sha256"]


def test_cdxj_and_pages_point_at_the_records(case):
    members = _members(case["wacz"])
    lines = members["indexes/index.cdxj"].decode().splitlines()
    assert lines == sorted(lines) and lines
    for line in lines:
        key, timestamp, body = line.split(" ", 2)
        entry = json.loads(body)
        assert len(timestamp) == 14 and timestamp.isdigit()
        raw = members[f"archive/{entry['filename']}"][int(entry["offset"]):int(entry["offset"]) + int(entry["length"])]
        assert entry["recordDigest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
        record = gzip.decompress(raw)     # each record is one gzip member: replay reads it alone
        assert f"WARC-Target-URI: {entry['url']}\r\n".encode() in record
        assert record.split(b"\r\n", 2)[1].split(b": ")[1].decode() in ("response", "resource", "revisit")
    pages = [json.loads(line) for line in members["pages/pages.jsonl"].decode().splitlines()]
    assert pages[0] == {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
    by_id = {p["id"]: p for p in pages[1:]}
    assert sorted(by_id) == case["ids"]
    urls = {json.loads(line.split(" ", 2)[2])["url"] for line in lines}
    assert all(p["url"] in urls for p in by_id.values())
    redirected = next(s for s in case["shows"].values() if s["final_url"] != s["url"])
    assert by_id[redirected["id"]]["url"] == redirected["final_url"]   # the page the redirect led to


def test_package_signature_and_key_binding_check_with_cryptography_alone(case):
    members = _members(case["wacz"])
    package, digest = json.loads(members["datapackage.json"]), json.loads(members["datapackage-digest.json"])
    signed = digest["signedData"]
    # Only the fields the wacz-auth spec allows, created as in the datapackage (py-wacz and wabac.js compare it).
    assert set(signed) <= {"hash", "created", "software", "version", "signature", "publicKey"}
    assert signed["hash"] == digest["hash"] and signed["created"] == package["created"]
    # What wabac.js does: P-384 SPKI, raw r||s, ECDSA/SHA-256 over the UTF-8 of the hash string.
    public = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    raw = base64.b64decode(signed["signature"])
    assert len(raw) == 96
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    public.verify(der, signed["hash"].encode("utf-8"), ec.ECDSA(hashes.SHA256()))

    # The WACZ key is the archive's, vouched for by its Ed25519 key (the one every capture is signed with).
    key = case["cli"]("key", "--json").json()
    spki = base64.b64decode(signed["publicKey"])
    assert key["wacz_key"]["fingerprint"] == "sha256:" + hashlib.sha256(spki).hexdigest()
    archive_pem = members["provenance/archive-key.pub.pem"]
    assert archive_pem.decode() == key["public_key_pem"]
    archive_public = serialization.load_pem_public_key(archive_pem)
    assert isinstance(archive_public, Ed25519PublicKey)
    binding = members["provenance/wacz-key-binding.txt"]
    archive_public.verify(members["provenance/wacz-key-binding.sig"], binding)
    assert f"wacz-key: ECDSA-P384 {key['wacz_key']['fingerprint']}\n".encode() in binding
    assert f"archive-key: Ed25519 {key['fingerprint']}\n".encode() in binding


def test_verify_txt_commands_run_as_written(case, tmp_path):
    """A third party with unzip, sha256sum, openssl, python3 and warcio: every `$` line of VERIFY.txt succeeds."""
    folder = tmp_path / "case"
    with zipfile.ZipFile(case["wacz"]) as zf:
        zf.extractall(folder)
    text = (folder / "provenance" / "VERIFY.txt").read_text()
    commands = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}   # warcio, as pip installs it
    outputs = []
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout + done.stderr)
    joined = "\n".join(outputs)
    assert "CHANGED" not in joined and "FAILED" not in joined
    assert joined.count("Signature Verified Successfully") == 1 + len(case["ids"])  # the binding + each capture
    assert "Verified OK" in joined and "wacz key: OK" in joined and "archive key: OK" in joined
    assert joined.count("Verification: OK") == len(case["ids"])                    # each timestamp token
    # With the TSA's real root (the line VERIFY.txt shows with a placeholder), too.
    for i in case["ids"]:
        sha = case["shows"][i]["warc_sha256"]
        assert f"openssl ts -verify -digest {sha} -in provenance/{i}.1.tsr -CAfile TSA-ROOT.pem" in text
        done = subprocess.run(["openssl", "ts", "-verify", "-digest", sha, "-in", f"provenance/{i}.1.tsr",
                               "-CAfile", str(case["tsa_ca"])], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    # One changed byte in an extracted WARC and the first check says so.
    warc = folder / TAMPERED.format(id=case["ids"][0])
    data = bytearray(warc.read_bytes())
    data[len(data) // 2] ^= 1
    warc.write_bytes(bytes(data))
    [resources] = [c for c in commands if "sha256sum -c" in c]
    done = subprocess.run(["bash", "-c", resources], cwd=folder, capture_output=True, text=True, env=env)
    assert done.returncode != 0 and f"{TAMPERED.format(id=case['ids'][0])}: FAILED" in done.stdout


def test_verify_wacz_passes_the_export_offline(case, tmp_path):
    # Only the file: another directory, no archive, nothing created.
    elsewhere = CLI(tmp_path / "nowhere")
    code, report = _verify(elsewhere, case["wacz"])
    assert code == 0 and report["ok"], report["problems"]
    key = case["cli"]("key", "--json").json()
    assert report["captures"] == report["signed_captures"] == len(case["ids"]) and report["unsigned_captures"] == 0
    assert report["timestamps"] == len(case["ids"]) and report["ledger_entries"] >= 3 * len(case["ids"])
    assert report["archive_key"] == key["fingerprint"] and report["wacz_key"] == key["wacz_key"]["fingerprint"]
    assert not (tmp_path / "nowhere").exists()
    line = elsewhere("verify", "--wacz", str(case["wacz"])).out
    assert "all intact" in line and key["fingerprint"] in line


def test_the_export_is_in_the_ledger_and_imports_elsewhere(case, tmp_path):
    with index_conn(case["cli"].archive, named_rows=False) as conn:
        [(seq, detail)] = conn.execute("SELECT seq, detail FROM ledger WHERE event = 'exported'").fetchall()
    detail = json.loads(detail)
    assert detail["sha256"] == hashlib.sha256(case["wacz"].read_bytes()).hexdigest() == case["result"]["sha256"]
    assert detail["captures"] == case["ids"] and seq == case["result"]["ledger_seq"]
    assert detail["datapackage_hash"] == json.loads(_members(case["wacz"])["datapackage-digest.json"])["hash"]
    assert case["cli"]("verify").code == 0
    # The ledger excerpt holds the sealing of each capture, with the hash the package lists.
    excerpt = [json.loads(line) for line in _members(case["wacz"])["provenance/ledger.jsonl"].decode().splitlines()]
    for i in case["ids"]:
        [sealed] = [e for e in excerpt if e["event"] == "sealed" and e["capture_id"] == i]
        assert sealed["detail"]["warc_sha256"] == case["shows"][i]["warc_sha256"]
    # The receiving end: another archive imports the package, and its captures verify there.
    other = CLI(tmp_path / "other")
    imported = other("import", str(case["wacz"]), "--json")
    assert imported.code == 0, imported.out + imported.err
    assert sorted(i["capture_id"] for i in imported.json()[0]["items"]) == case["ids"]
    assert other("verify").code == 0


def _flip_in_zip(source: Path, target: Path, member: str) -> Path:
    """One byte of a stored member changed in place, the zip's own CRC left as it was."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 1
    target.write_bytes(bytes(data))
    return target


def _resign(members: dict[str, bytes], package: bytes, key: ec.EllipticCurvePrivateKey | None) -> dict[str, bytes]:
    digest = json.loads(members["datapackage-digest.json"])
    dp_hash = "sha256:" + hashlib.sha256(package).hexdigest()
    digest["hash"] = digest["signedData"]["hash"] = dp_hash
    if key is not None:
        signer = keys.WaczKey(key, Path("-"))
        digest["signedData"].update(signature=base64.b64encode(signer.sign(dp_hash.encode())).decode(),
                                    publicKey=signer.public_b64)
    return {"datapackage.json": package, "datapackage-digest.json": json.dumps(digest).encode()}


def test_tampering_is_named_by_verify_and_where_it_can_by_wacz_validate(case, tmp_path):
    cli, source, first = case["cli"], case["wacz"], case["ids"][0]
    members = _members(source)
    warc = TAMPERED.format(id=first)
    forged_warc = bytearray(members[warc])
    forged_warc[len(forged_warc) // 2] ^= 1
    package = json.loads(members["datapackage.json"])
    renamed = json.dumps({**package, "title": "something else"}, indent=2).encode()
    relisted = json.loads(members["datapackage.json"])
    next(r for r in relisted["resources"] if r["path"] == warc)["hash"] = \
        "sha256:" + hashlib.sha256(bytes(forged_warc)).hexdigest()
    relisted_bytes = json.dumps(relisted, indent=2).encode()
    cases = {
        # (file, problem kind, path named, wacz validate must fail too)
        "byte flipped in a WARC": (_flip_in_zip(source, tmp_path / "flip.wacz", warc), "altered", warc, True),
        "WARC changed, zip CRC fixed": (_rezip(source, tmp_path / "crc.wacz", {warc: bytes(forged_warc)}),
                                        "altered", warc, True),
        "datapackage.json edited": (_rezip(source, tmp_path / "dp.wacz", {"datapackage.json": renamed}),
                                    "altered", "datapackage.json", True),
        "datapackage re-hashed, not re-signed": (
            _rezip(source, tmp_path / "rehash.wacz", _resign(members, renamed, None)),
            "package-signature", "datapackage-digest.json", False),
        "signature swapped for another key's": (
            _rezip(source, tmp_path / "swap.wacz", _resign(members, members["datapackage.json"],
                                                           ec.generate_private_key(ec.SECP384R1()))),
            "key-binding", "provenance/wacz-key-binding.txt", False),
        "WARC forged, listed and re-signed by another key": (
            _rezip(source, tmp_path / "forged.wacz", {warc: bytes(forged_warc), **_resign(
                members, relisted_bytes, ec.generate_private_key(ec.SECP384R1()))}),
            "key-binding", "provenance/wacz-key-binding.txt", False),
    }
    for name, (path, kind, named, validator_fails) in cases.items():
        code, report = _verify(cli, path)
        assert code == 1 and not report["ok"], name
        assert any(p["problem"] == kind and p["path"] == named for p in report["problems"]), (name, report["problems"])
        human = cli("verify", "--wacz", str(path))
        assert human.code == 1 and named in human.out and "problem(s)" in human.out, name
        if validator_fails:
            assert _wacz_validate(path).returncode != 0, name
    # The forged WARC is also caught inside: its records no longer read as signed.
    _, report = _verify(cli, tmp_path / "forged.wacz")
    assert any(p["path"] == warc and p["problem"] in ("record-altered", "capture-signature")
               for p in report["problems"]), report["problems"]


def test_bad_inputs_are_one_line(case, tmp_path):
    cli = case["cli"]
    existing = tmp_path / "exists.wacz"
    existing.write_bytes(b"keep me")
    for args, code, words in [
        (["export", "-o", str(tmp_path / "a.wacz")], 2, "say what to export"),
        (["export", "--tag", "no-such-tag", "-o", str(tmp_path / "b.wacz")], 2, "no captures match"),
        (["export", "--since", "2099-01-01", "-o", str(tmp_path / "b.wacz")], 2, "no captures match"),
        (["export", case["ids"][0], "-o", str(existing)], 2, "already exists"),
        (["export", case["ids"][0], "-o", str(tmp_path / "case.zip")], 2, "must end in .wacz"),
        (["export", case["ids"][0], "-o", str(tmp_path / "missing-dir" / "c.wacz")], 2, "not a writable directory"),
        (["export", case["ids"][0]], 2, "-o"),
        (["export", "01NOSUCHCAPTURE0000000000", "-o", str(tmp_path / "d.wacz")], 1, "no capture"),
        (["verify", "--wacz", str(tmp_path / "nothing.wacz")], 2, "no such file"),
        (["verify", case["ids"][0], "--wacz", str(case["wacz"])], 2, "not both"),
    ]:
        result = cli(*args)
        assert result.code == code and result.err.count("\n") == 1 and words in result.err, (args, result.err)
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.wacz"]      # nothing half-written left
    not_zip = tmp_path / "exists.wacz"
    code, report = _verify(cli, not_zip)
    assert code == 1 and report["problems"][0]["problem"] == "unreadable"


def test_an_altered_warc_is_never_exported(cli, site, tmp_path):
    result = cli("capture", "--no-browser", site.url + PAGES[0], "--json")
    assert result.code == 0, result.err
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    tamper_warc(cli.archive, show, show["warc_size"] // 2)
    out = tmp_path / "case.wacz"
    refused = cli("export", show["id"], "-o", str(out))
    assert refused.code == 1 and show["id"] in refused.err and "not exported" in refused.err, refused.err
    assert not out.exists() and not list(tmp_path.glob(".case.wacz*"))
    with index_conn(cli.archive, named_rows=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger WHERE event = 'exported'").fetchone()[0] == 0


def test_the_wacz_key_is_made_once_beside_the_archive_key(cli, tmp_path):
    assert cli("status").code == 0   # an (empty) archive to hold the keys
    first = cli("key", "--json").json()
    wacz_key = first["wacz_key"]
    path = Path(wacz_key["private_key_file"])
    assert path.parent == Path(first["private_key_file"]).parent and path.name == "wacz-p384.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cli("key", "--json").json()["wacz_key"]["fingerprint"] == wacz_key["fingerprint"]
    assert "wacz key" in cli("key").out and wacz_key["fingerprint"] in cli("key").out
    # The archive's Ed25519 key is no WACZ key: one line, naming the setting.
    result = cli("key", env={"ARCHIVER_SIGNING_WACZ_KEY_FILE": first["private_key_file"]})
    assert result.code == 2 and result.err.count("\n") == 1 and "signing.wacz_key_file" in result.err, result.err
    # A configured key file is created where it says, at first use.
    elsewhere = tmp_path / "elsewhere" / "wacz.pem"
    made = cli("key", "--json", env={"ARCHIVER_SIGNING_WACZ_KEY_FILE": str(elsewhere)})
    if TEST_INDEX == "postgres":
        # In team mode the archive's WACZ key is the one its index records: another is refused, never made (keys.py).
        assert made.code == 2 and "copy the archive's keys/" in made.err and not elsewhere.exists(), made.err
        return
    assert made.json()["wacz_key"]["private_key_file"] == str(elsewhere) and elsewhere.is_file()


def test_check_wacz_signature_accepts_only_what_replaywebpage_accepts(tmp_path):
    wacz_key = keys.load_or_create_wacz_key(tmp_path, {"signing": {"key_file": ""}})
    message = b"sha256:" + b"0" * 64
    signature = wacz_key.sign(message)
    assert len(signature) == 96 and keys.check_wacz_signature(wacz_key.spki_der, signature, message) is None
    assert "does not match" in keys.check_wacz_signature(wacz_key.spki_der, signature, message + b"1")
    der = wacz_key.private.sign(message, ec.ECDSA(hashes.SHA256()))      # DER form: wabac.js refuses it
    assert "96" in keys.check_wacz_signature(wacz_key.spki_der, der, message)
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert "P-384" in keys.check_wacz_signature(p256, signature, message)
    archive_key = keys.load_or_create(tmp_path, {"signing": {"key_file": ""}})
    text, sig = keys.wacz_key_binding(archive_key, wacz_key)
    assert keys.check_wacz_key_binding(text, sig, archive_key.public_raw, wacz_key.spki_der) is None
    other = keys.load_or_create_wacz_key(tmp_path / "other", {"signing": {"key_file": ""}})
    assert "other keys" in keys.check_wacz_key_binding(text, sig, archive_key.public_raw, other.spki_der)
    assert "not signed" in keys.check_wacz_key_binding(text + b" ", sig, archive_key.public_raw, wacz_key.spki_der)


def _relisted(members: dict[str, bytes], changes: dict[str, bytes]) -> dict[str, bytes]:
    """The changed members with datapackage.json re-hashed to match them and its digest recomputed, but not
    re-signed (no forger holds the archive's key): what is left to catch the change is the content itself."""
    package = json.loads(members["datapackage.json"])
    for resource in package["resources"]:
        if resource["path"] in changes:
            resource["hash"] = "sha256:" + hashlib.sha256(changes[resource["path"]]).hexdigest()
            resource["bytes"] = len(changes[resource["path"]])
    return {**changes, **_resign(members, json.dumps(package, indent=2).encode(), None)}


def test_each_tamper_case_of_an_export_is_named_and_fails_wacz_validate(case, tmp_path):
    """The issue's tamper cases as they look inside a package: an altered WARC (above), an altered index row, a
    deleted ledger entry, a swapped timestamp token. Each is named by `verify --wacz` and refused by `wacz
    validate`; and with the hashes in datapackage.json recomputed to hide it, `verify --wacz` still names both
    the broken package signature and what the change did."""
    cli, source = case["cli"], case["wacz"]
    first, second = case["ids"]
    members = _members(source)
    cdxj = members["indexes/index.cdxj"].decode().splitlines(keepends=True)
    key, stamp, body = cdxj[0].split(" ", 2)
    entry = json.loads(body)
    entry["offset"] = str(int(entry["offset"]) + 1)
    ledger_lines = members["provenance/ledger.jsonl"].decode().splitlines(keepends=True)
    timestamped = next(n for n, line in enumerate(ledger_lines) if json.loads(line)["event"] == "timestamped")
    dropped_seq = json.loads(ledger_lines[timestamped])["seq"]
    tokens = (f"provenance/{first}.1.tsr", f"provenance/{second}.1.tsr")
    changes = {
        # name: (changed members, (problem kind, path, words) named besides the changed hash)
        "an index row altered": (
            {"indexes/index.cdxj": "".join([f"{key} {stamp} {json.dumps(entry)}\n", *cdxj[1:]]).encode()},
            ("index", "indexes/index.cdxj", "line 1 points at no record")),
        "a ledger entry deleted": (
            {"provenance/ledger.jsonl": "".join(ledger_lines[:timestamped] + ledger_lines[timestamped + 1:]).encode()},
            ("ledger", "provenance/ledger.jsonl", f"entry {dropped_seq}, which provenance/export.json lists, is "
                                                  "missing")),
        "timestamp tokens swapped": (
            {tokens[0]: members[tokens[1]], tokens[1]: members[tokens[0]]},
            ("timestamp", tokens[0], f"not for archive/{first}.warc.gz")),
    }
    for name, (changed, (kind, path, words)) in changes.items():
        plain = _rezip(source, tmp_path / "plain.wacz", changed)
        code, report = _verify(cli, plain)
        problems = {(p["problem"], p["path"]) for p in report["problems"]}
        assert code == 1 and ("altered", next(iter(changed))) in problems, (name, report["problems"])
        assert any(p["problem"] == kind and p["path"] == path and words in p["detail"] for p in report["problems"]), \
            (name, report["problems"])
        checked = _wacz_validate(plain)
        assert checked.returncode != 0, (name, checked.stdout)

        hidden = _rezip(source, tmp_path / "hidden.wacz", _relisted(members, changed))
        code, report = _verify(cli, hidden)
        problems = {(p["problem"], p["path"]) for p in report["problems"]}
        assert code == 1 and ("package-signature", "datapackage-digest.json") in problems, (name, report["problems"])
        assert not any(p["problem"] == "altered" for p in report["problems"]), (name, report["problems"])
        assert any(p["problem"] == kind and p["path"] == path and words in p["detail"] for p in report["problems"]), \
            (name, report["problems"])
        for made in (plain, hidden):
            made.unlink()


def test_an_export_says_which_captures_carry_no_timestamp_until_one_is_added(cli, site, tmp_path):
    """A capture sealed before any TSA was configured exports with a warning that its time rests on the archive
    alone; `archiver timestamp` adds a token afterwards, and the next export carries it, checked offline."""
    result = cli("capture", "--no-browser", site.url + PAGES[1], "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    first = cli("export", capture_id, "-o", str(tmp_path / "before.wacz"), "--json")
    assert first.code == 0 and first.json()["timestamps"] == 0, first.err
    assert "1 of 1 capture(s) carry no RFC 3161 timestamp" in first.err and f"archiver timestamp {capture_id}" \
        in first.err, first.err
    tsa = LoopbackTSA(tmp_path / "tsa")
    try:
        stamped = cli("timestamp", capture_id, env={"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url])})
    finally:
        tsa.close()
    assert stamped.code == 0, stamped.out + stamped.err
    second = cli("export", capture_id, "-o", str(tmp_path / "after.wacz"), "--json")
    assert second.code == 0 and second.json()["timestamps"] == 1 and "no RFC 3161" not in second.err, second.err
    code, report = _verify(cli, tmp_path / "after.wacz")
    assert code == 0 and report["timestamps"] == 1, report["problems"]
