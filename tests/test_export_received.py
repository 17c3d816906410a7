"""Files received from others leave the archive as received: `archiver report` of a received page or a receipt is
headed so that nobody takes it for a capture of ours; `archiver export` of receipts (or received pages, or a tag)
carries each file byte for byte with its receipt and its `received` ledger entries, replayable beside our
captures; `verify --wacz` checks each against its receipt, and `import` takes the captures and names the received
files it leaves. The partner's WARC is written here with warcio, as a partner's crawler writes one; the corpus
files (a signed py-wacz package, Scoop packages) are read from ../shared/corpus/warc/ when it is there. A loopback TSA
(scripts/tsa_server.py) timestamps the capture and the receipts, so that their tokens travel too."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI
from test_receive import WARCS, needs_corpus
from test_receive_index import _partner_warc
from test_replay_wacz import RWP, _open, _replayed, _shows, _signature_verdict, chromium  # noqa: F401 (fixture)
from test_wacz import BIN, _flip_in_zip, _members, _relisted, _rezip, _wacz_validate
from tsa_server import LoopbackTSA

HEADING = "Received from others — not captured by this archive"
# A title as a hostile page sets it: written with entities, so that the title read from the file holds the tags.
HOSTILE_TITLE = "Internal memo &lt;script&gt;alert(1)&lt;/script&gt;"
PAGES = [("https://partner.example/convoy", "Convoy report", "the convoy crossed Ramouseh at dawn"),
         ("https://partner.example/shelling", "Shelling in Bustan al-Qasr", "witnesses describe the shelling")]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory, site) -> dict[str, Any]:
    """An archive with one capture of its own, a partner's WARC received (tagged `partner`), and an uncompressed WARC
    with one payload byte flipped before it was handed over, each timestamped by a loopback TSA (up while they are
    made); exported: the capture, the partner's receipt by its ID, the altered file by one of its pages' IDs."""
    root = tmp_path_factory.mktemp("received-export")
    cli = CLI(root / "archive")
    tsa = LoopbackTSA(root / "tsa")
    cli.env.update({"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url]),
                    "ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)})
    try:
        captured = cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/", "--json")
        assert captured.code == 0, captured.err
        capture_id = captured.json()[0]["capture_id"]
        partner = _partner_warc(root / "partner-crawl.warc.gz", PAGES)
        [good] = cli("receive", str(partner), "--from", "Partner newsroom", "--by", "Hadi", "--tag", "partner",
                     "--json").json()
        clean = _partner_warc(root / "clean.warc", [("https://leak.example/memo", HOSTILE_TITLE,
                                                     "the memo names the checkpoint commander")], gzip=False
                              ).read_bytes()
        flipped = bytearray(clean)
        at = flipped.index(b"checkpoint")
        flipped[at] ^= 0x20
        altered = root / "memo-from-source.warc"
        altered.write_bytes(bytes(flipped))
        [bad] = cli("receive", str(altered), "--from", "Anonymous source", "--tag", "leak", "--json").json()
    finally:
        tsa.close()
    del cli.env["ARCHIVER_TIMESTAMP_TSA_URLS"]   # exporting asks no TSA
    assert [t["state"] for o in (good, bad) for t in o["timestamps"]] == ["done", "done"], (good, bad)
    assert bad["checks"]["problems"], bad["checks"]
    record = bytes(flipped).rfind(b"WARC/1.", 0, at)     # the record the byte is in
    pages = {r["url"]: r["id"] for r in cli("list", "--status", "received", "--json").json()}
    wacz = root / "case.wacz"
    exported = cli("export", capture_id, good["receipt_id"], pages["https://leak.example/memo"], "-o", str(wacz),
                   "--json")
    assert exported.code == 0, exported.err
    return {"cli": cli, "root": root, "capture": capture_id, "good": good, "bad": bad, "pages": pages,
            "partner": partner, "altered": altered, "record": record, "wacz": wacz, "export": exported.json(),
            "tsa_ca": tsa.ca_file}


def test_report_of_a_received_page_is_headed_received_and_names_the_altered_record(held, tmp_path):
    cli, bad = held["cli"], held["bad"]
    page = held["pages"]["https://leak.example/memo"]
    made = cli("report", page, "-o", str(tmp_path / "page.html"), "--pdf", str(tmp_path / "page.pdf"))
    assert made.code == 0, made.err
    assert "NOT a capture of this archive" in made.err and bad["receipt_id"] in made.err
    html = (tmp_path / "page.html").read_text()
    assert f"<h1>{HEADING}</h1>" in html and "This archive did not capture this." in html
    assert "Capture report" not in html
    # The receipt: from, by, when, original name, size, SHA-256.
    for fact in (bad["receipt_id"], "Anonymous source", "memo-from-source.warc", bad["sha256"], f"{bad['size']:,} bytes"):
        assert fact in html, fact
    # The page as the file says, with its text; the record that does not hold, by WARC and offset.
    assert "https://leak.example/memo" in html and "the memo names" in html
    assert "Records altered or unreadable, by WARC and offset" in html
    assert f"<td>{held['record']}</td>" in html and "payload-digest" in html
    # The ledger entry of its receiving, and how to check it.
    assert "<td class=\"nw\">received</td>" in html and "sha256sum " in html and f"expect {bad['sha256']}" in html
    # Self-contained: no script, nothing loaded, the capture report's policy.
    assert "Internal memo &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html.lower()
    assert "default-src &#x27;none&#x27;" in html and 'http-equiv="Content-Security-Policy"' in html
    assert (tmp_path / "page.pdf").read_bytes().startswith(b"%PDF")
    # A receipt's own ID: the same heading, and its pages listed.
    whole = cli("report", held["good"]["receipt_id"], "-o", str(tmp_path / "receipt.html"))
    assert whole.code == 0, whole.err
    text = (tmp_path / "receipt.html").read_text()
    assert f"<h1>{HEADING}</h1>" in text and "Pages in the file (2)" in text and "Convoy report" in text
    assert "Partner newsroom" in text and "Hadi" in text and "none: every digest checked holds" in text
    # And a capture of ours is never headed so.
    ours = cli("report", held["capture"], "-o", str(tmp_path / "ours.html"))
    assert ours.code == 0 and HEADING not in (tmp_path / "ours.html").read_text()
    assert "capture " + held["capture"] in ours.err


def test_export_carries_received_files_as_received_with_their_receipts(held, tmp_path):
    members, good, bad = _members(held["wacz"]), held["good"], held["bad"]
    assert held["export"]["captures"] == [held["capture"]]
    assert held["export"]["receipts"] == sorted([good["receipt_id"], bad["receipt_id"]])
    # Byte for byte: the received bytes in the package hash to the receipts' SHA-256.
    kept = {good["receipt_id"]: f"archive/received-{good['receipt_id']}.warc.gz",
            bad["receipt_id"]: f"archive/received-{bad['receipt_id']}.warc"}
    assert members[kept[good["receipt_id"]]] == held["partner"].read_bytes()
    assert members[kept[bad["receipt_id"]]] == held["altered"].read_bytes()
    listed = {r["path"]: r for r in json.loads(members["datapackage.json"])["resources"]}
    for outcome in (good, bad):
        rid = outcome["receipt_id"]
        assert _sha256(members[kept[rid]]) == outcome["sha256"]
        receipt = json.loads(members[f"received/{rid}.receipt.json"])["receipt"]
        assert (receipt["id"], receipt["sha256"], receipt["size"]) == (rid, outcome["sha256"], outcome["size"])
        for path in (kept[rid], f"received/{rid}.receipt.json"):
            assert listed[path]["hash"] == "sha256:" + _sha256(members[path])
    assert json.loads(members[f"received/{bad['receipt_id']}.receipt.json"])["receipt"]["checks"]["problems"]
    # The receiving in the ledger excerpt; the pages marked; the manifest naming them apart from captures.
    excerpt = [json.loads(line) for line in members["provenance/ledger.jsonl"].decode().splitlines()]
    assert {(e["detail"]["receipt"], e["detail"]["sha256"]) for e in excerpt if e["event"] == "received"} == {
        (good["receipt_id"], good["sha256"]), (bad["receipt_id"], bad["sha256"])}
    pages = [json.loads(line) for line in members["pages/pages.jsonl"].decode().splitlines()[1:]]
    received_pages = [p for p in pages if p.get("received")]
    assert len(received_pages) == 3 and all(p["title"].startswith("[received] ") for p in received_pages)
    assert [p["id"] for p in pages if not p.get("received")] == [held["capture"]]
    manifest = json.loads(members["provenance/export.json"])
    assert [c["id"] for c in manifest["captures"]] == [held["capture"]]
    assert {r["receipt"] for r in manifest["received"]} == set(kept)
    cdxj = members["indexes/index.cdxj"].decode()
    assert f'"filename": "received-{good["receipt_id"]}.warc.gz"' in cdxj and "partner,example)/convoy" not in cdxj
    assert "example,partner)/convoy" in cdxj
    # verify --wacz: intact, the received files counted apart; wacz validate: valid.
    result = CLI(tmp_path / "nowhere")("verify", "--wacz", str(held["wacz"]), "--json")
    assert result.code == 0, result.out
    report = result.json()
    assert report["ok"] and report["received"] == 2 and report["captures"] == report["signed_captures"] == 1
    validated = _wacz_validate(held["wacz"])
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # VERIFY.txt says how, and every `$` line runs as written.
    folder = tmp_path / "case"
    with zipfile.ZipFile(held["wacz"]) as zf:
        zf.extractall(folder)
    text = (folder / "provenance" / "VERIFY.txt").read_text()
    assert "6. Files received from others (not captured by this archive)" in text
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for command in [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]:
        done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout)
    joined = "\n".join(outputs)
    for outcome in (good, bad):   # the receipt's SHA-256 as it prints it, and the file's as sha256sum does
        assert joined.count(outcome["sha256"]) >= 2 and "Anonymous source" in joined


def test_export_carries_the_receipts_timestamp_tokens_and_verify_checks_them(held, tmp_path):
    """A receipt's RFC 3161 tokens travel beside it (received/<receipt>.receipt.json.<n>.tsr, with the .tsr.json
    note), listed and counted like a capture's; `verify --wacz` checks each against the receipt file in the
    package, and the VERIFY.txt line with the TSA's root runs as written."""
    members, cli = _members(held["wacz"]), held["cli"]
    listed = {r["path"]: r for r in json.loads(members["datapackage.json"])["resources"]}
    manifest = {r["receipt"]: r for r in json.loads(members["provenance/export.json"])["received"]}
    excerpt = [json.loads(line) for line in members["provenance/ledger.jsonl"].decode().splitlines()]
    for outcome in (held["good"], held["bad"]):
        rid, [stamp] = outcome["receipt_id"], outcome["timestamps"]
        receipt_file, token = f"received/{rid}.receipt.json", f"received/{rid}.receipt.json.1.tsr"
        assert _sha256(members[token]) == stamp["token_sha256"]
        note = json.loads(members[token + ".json"])
        assert note["receipt_id"] == rid and note["digest"] == _sha256(members[receipt_file])
        for path in (token, token + ".json"):
            assert listed[path]["hash"] == "sha256:" + _sha256(members[path])
        [packaged] = manifest[rid]["timestamps"]
        assert (packaged["token"], packaged["note"], packaged["token_sha256"]) == (token, token + ".json",
                                                                                  stamp["token_sha256"])
        # Its `timestamped` entry is in the ledger excerpt, beside the `received` one.
        assert any(e["event"] == "timestamped" and e["detail"].get("receipt") == rid and
                   e["detail"]["token_sha256"] == stamp["token_sha256"] for e in excerpt)
    # Counted: the capture's token and the two receipts'.
    assert held["export"]["timestamps"] == 3
    page = held["pages"]["https://partner.example/convoy"]
    one = cli("export", page, "-o", str(tmp_path / "page.wacz"))
    assert one.code == 0 and "1 received file(s) with their receipts, 1 timestamp token(s)" in one.out, one.out
    report = CLI(tmp_path / "nowhere")("verify", "--wacz", str(held["wacz"]), "--json")
    assert report.code == 0, report.out
    assert report.json()["ok"] and report.json()["timestamps"] == 3
    # VERIFY.txt, in an empty folder: every `$` line (the tokens checked with the certificates they carry), then
    # the line with the TSA's root, as written, once the root is there under the name it gives.
    folder = tmp_path / "case"
    folder.mkdir()
    with zipfile.ZipFile(held["wacz"]) as zf:
        zf.extractall(folder)
    text = (folder / "provenance" / "VERIFY.txt").read_text()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for command in [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]:
        done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout + done.stderr)
    assert "\n".join(outputs).count("Verification: OK") == 3
    (folder / "TSA-ROOT.pem").write_bytes(held["tsa_ca"].read_bytes())
    for outcome in (held["good"], held["bad"]):
        rid = outcome["receipt_id"]
        line = (f"openssl ts -verify -digest \"$(sha256sum received/{rid}.receipt.json | cut -d' ' -f1)\" "
                f"-in received/{rid}.receipt.json.1.tsr -CAfile TSA-ROOT.pem")
        assert line in text
        done = subprocess.run(["bash", "-c", line], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    # Import still leaves the received files, and so their receipts' tokens.
    imported = CLI(tmp_path / "other")("import", str(held["wacz"]), "--json")
    assert imported.code == 0, imported.err
    assert {i["outcome"] for i in imported.json()[0]["items"]} == {"imported", "skipped"}


def test_a_token_swapped_into_a_receipts_place_is_named(held, tmp_path):
    """The capture's token put in place of a receipt's, datapackage.json re-hashed to hide it: `verify --wacz`
    names the token, and the file it vouches for instead."""
    members, rid = _members(held["wacz"]), held["good"]["receipt_id"]
    token, capture_token = f"received/{rid}.receipt.json.1.tsr", f"provenance/{held['capture']}.1.tsr"
    assert members[token] != members[capture_token]
    swapped = _rezip(held["wacz"], tmp_path / "swapped.wacz",
                     _relisted(members, {token: members[capture_token]}))
    result = CLI(tmp_path / "nowhere")("verify", "--wacz", str(swapped), "--json")
    assert result.code == 1
    named = [p for p in result.json()["problems"] if p["problem"] == "timestamp" and p["path"] == token]
    details = " | ".join(p["detail"] for p in named)
    assert f"the archive recorded {held['good']['timestamps'][0]['token_sha256']}" in details, details
    assert f"(archive/{held['capture']}.warc.gz), not for received/{rid}.receipt.json" in details, details
    assert result.json()["timestamps"] == 2     # the capture's and the other receipt's still hold


def test_export_by_tag_takes_the_receipts_with_that_tag(held, tmp_path):
    out = tmp_path / "partner.wacz"
    result = held["cli"]("export", "--tag", "partner", "-o", str(out), "--json")
    assert result.code == 0, result.err
    assert result.json()["captures"] == [] and result.json()["receipts"] == [held["good"]["receipt_id"]]
    assert "1 received file(s) with their receipts" in held["cli"]("export", "--tag", "partner", "-o",
                                                                    str(tmp_path / "again.wacz")).out
    assert CLI(tmp_path / "nowhere")("verify", "--wacz", str(out)).code == 0
    nothing = held["cli"]("export", "--tag", "no-such-tag", "-o", str(tmp_path / "none.wacz"))
    assert nothing.code == 2 and "nor any file received from others" in nothing.err


def test_a_received_member_changed_inside_the_export_is_caught(held, tmp_path):
    good = held["good"]
    rid, path = good["receipt_id"], f"archive/received-{good['receipt_id']}.warc.gz"
    verify = CLI(tmp_path / "nowhere")
    # One byte changed in place: datapackage.json, the zip's CRC and the receipt all disagree.
    flipped = _flip_in_zip(held["wacz"], tmp_path / "flipped.wacz", path)
    result = verify("verify", "--wacz", str(flipped), "--json")
    assert result.code == 1
    found = {(p["problem"], p["path"]) for p in result.json()["problems"]}
    assert ("received-altered", path) in found and ("altered", path) in found, found
    assert _wacz_validate(flipped).returncode != 0
    # A forger who re-hashes datapackage.json (but holds no key to re-sign it): the receipt still names the change.
    members = _members(held["wacz"])
    forged = bytearray(members[path])
    forged[len(forged) // 2] ^= 1
    relisted = _rezip(held["wacz"], tmp_path / "relisted.wacz", _relisted(members, {path: bytes(forged)}))
    problems = verify("verify", "--wacz", str(relisted), "--json").json()["problems"]
    [altered] = [p for p in problems if p["problem"] == "received-altered"]
    assert altered["path"] == path and good["sha256"] in altered["detail"] and "not the bytes" in altered["detail"]
    assert any(p["problem"] == "package-signature" for p in problems)
    # ... and who also rewrites the receipt to the forged bytes' hash: the ledger entry of its receiving disagrees.
    receipt_path = f"received/{rid}.receipt.json"
    receipt = json.loads(members[receipt_path])
    receipt["receipt"]["sha256"] = _sha256(bytes(forged))
    manifest = json.loads(members["provenance/export.json"])
    for r in manifest["received"]:
        if r["receipt"] == rid:
            r["sha256"] = receipt["receipt"]["sha256"]
    rewritten = _rezip(held["wacz"], tmp_path / "rewritten.wacz", _relisted(members, {
        path: bytes(forged), receipt_path: json.dumps(receipt).encode(),
        "provenance/export.json": json.dumps(manifest).encode()}))
    problems = verify("verify", "--wacz", str(rewritten), "--json").json()["problems"]
    assert any(p["problem"] == "ledger" and f"no 'received' entry for receipt {rid}" in p["detail"]
               for p in problems), problems
    assert not any(p["problem"] == "received-altered" for p in problems)   # the forgery is consistent up to there


def test_an_altered_received_file_is_never_exported(held, tmp_path):
    kept = Path(held["good"]["location"])
    if not kept.is_absolute() or not kept.exists():
        pytest.skip("the received file is in a bucket with Object Lock (team mode): it cannot be changed")
    cli = CLI(tmp_path / "archive")
    [outcome] = cli("receive", str(held["partner"]), "--from", "Partner newsroom", "--json").json()
    kept = Path(outcome["location"])
    os.chmod(kept, 0o644)
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 1
    kept.write_bytes(bytes(data))
    result = cli("export", outcome["receipt_id"], "-o", str(tmp_path / "case.wacz"))
    assert result.code == 1 and not (tmp_path / "case.wacz").exists()
    assert f"received file {outcome['receipt_id']}" in result.err and "not exported" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_import_takes_the_captures_and_names_the_received_files_it_leaves(held, tmp_path):
    other = CLI(tmp_path / "other")
    result = other("import", str(held["wacz"]), "--json")
    assert result.code == 0, result.out + result.err
    items = result.json()[0]["items"]
    assert [i["capture_id"] for i in items if i["outcome"] == "imported"] == [held["capture"]]
    skipped = [i for i in items if i["outcome"] == "skipped"]
    assert {i["source"] for i in skipped} == {f"archive/received-{held['good']['receipt_id']}.warc.gz",
                                             f"archive/received-{held['bad']['receipt_id']}.warc"}
    assert all("archiver receive case.wacz" in i["detail"] for i in skipped)
    assert other("list", "--status", "received", "--json").json() == []
    human = CLI(tmp_path / "third")("import", str(held["wacz"]))
    lines = [line for line in human.out.splitlines() if line.startswith("skipped")]
    assert len(lines) == 2 and all("Partner newsroom" in line or "Anonymous source" in line for line in lines)


def test_received_pages_replay_in_replaywebpage_beside_our_capture(held, chromium):  # noqa: F811 (fixture)
    if not (RWP / "ui.js").is_file():
        pytest.fail(f"ReplayWeb.page is not in {RWP}; run `make setup`")
    context, served, page = _open(chromium, held["wacz"], PAGES[0][0])
    try:
        _shows(_replayed(page).locator("p"), PAGES[0][2])
        verdict = _signature_verdict(page)
        assert verdict["signature"]["matched"] is True, verdict
    finally:
        context.close()
        served.close()
    # The uncompressed WARC too, as received: the byte flipped before it was handed over shows as it came.
    context, served, page = _open(chromium, held["wacz"], "https://leak.example/memo")
    try:
        _shows(_replayed(page).locator("p"), "the memo names the Checkpoint commander")
    finally:
        context.close()
        served.close()


@needs_corpus
def test_received_waczs_travel_whole_and_replayable(tmp_path):
    """A signed py-wacz package and two Scoop packages: each kept whole in received/ (its own signature and
    datapackage checkable in it), its WARCs copied out byte for byte for replay."""
    cli = CLI(tmp_path / "archive")
    sources = [WARCS / name for name in ("py-wacz__valid_signed_example_1.wacz", "scoop__example.wacz",
                                         "scoop__example.com.wacz")]
    outcomes = cli("receive", *map(str, sources), "--from", "Partners", "--tag", "packages", "--json").json()
    out = tmp_path / "packages.wacz"
    result = cli("export", "--tag", "packages", "-o", str(out), "--json")
    assert result.code == 0, result.err
    members = _members(out)
    manifest = json.loads(members["provenance/export.json"])
    for source, outcome in zip(sources, outcomes):
        rid = outcome["receipt_id"]
        assert members[f"received/{rid}.wacz"] == source.read_bytes()
        [entry] = [r for r in manifest["received"] if r["receipt"] == rid]
        with zipfile.ZipFile(source) as original:
            inner = {i.filename for i in original.infolist() if i.filename.startswith("archive/")}
            assert {w["member"] for w in entry["warcs"]} == inner, source.name
            for w in entry["warcs"]:
                assert members[w["path"]] == original.read(w["member"])
    report = CLI(tmp_path / "nowhere")("verify", "--wacz", str(out), "--json")
    assert report.code == 0, report.out
    assert report.json()["received"] == 3
    validated = _wacz_validate(out)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # A copy that is not the member of the package it came from is named.
    signed = outcomes[0]["receipt_id"]
    [copy] = [w["path"] for r in manifest["received"] if r["receipt"] == signed for w in r["warcs"]]
    forged = bytearray(members[copy])
    forged[len(forged) // 2] ^= 1
    relisted = _rezip(out, tmp_path / "forged.wacz", _relisted(members, {copy: bytes(forged)}))
    problems = CLI(tmp_path / "nowhere")("verify", "--wacz", str(relisted), "--json").json()["problems"]
    assert any(p["problem"] == "received-altered" and p["path"] == copy and "is not archive/" in p["detail"]
               for p in problems), problems
    # The report of a page of the signed package names its signer.
    hit = next(h for h in cli("search", "illustrative", "--json").json() if h.get("receipt_id") == signed)
    made = cli("report", hit["id"], "-o", str(tmp_path / "signed.html"))
    assert made.code == 0, made.err
    html = (tmp_path / "signed.html").read_text()
    assert HEADING in html and "btrix-sign-test.webrecorder.net" in html and "valid" in html
