"""`archiver import` of a WACZ export: the captures come with their RFC 3161 timestamp tokens, which the
receiving archive then shows, verifies and reindexes as its own; a token that does not vouch for its WARC, or
is not the file the package lists, is named and not kept; `--expect-key` makes the origin a hard check, for
`import` and for `verify --wacz`."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import (CLI, capture_timestamped, index_conn, local_storage, sealed_file, sealed_warc, stored_files,
                      stored_object)

OTHER_KEY = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, site) -> dict[str, Any]:
    """Two captures, each timestamped by a loopback TSA, exported as one WACZ."""
    root = tmp_path_factory.mktemp("import")
    cli, [done], _ = capture_timestamped(root, [
        "--no-browser", site.url + "/docs/icrc-statement.pdf", site.url + "/archive/1998/communique.html", "--json"])
    assert done.code == 0, done.err
    ids = sorted(o["capture_id"] for o in done.json())
    shows = {i: cli("show", i, "--json").json() for i in ids}
    assert all(s["timestamps"] and s["timestamps"][0]["state"] == "done" for s in shows.values())
    output = root / "case.wacz"
    exported = cli("export", *ids, "-o", str(output))
    assert exported.code == 0, exported.err
    return {"cli": cli, "wacz": output, "ids": ids, "shows": shows, "key": cli("key", "--json").json()["fingerprint"]}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rezip(source: Path, target: Path, changes: dict[str, bytes], relist: bool) -> Path:
    """A copy of the package with members replaced; with ``relist``, datapackage.json lists their new hashes
    (which breaks the package signature: only the archive's key could sign the new list)."""
    members = _members(source)
    if relist:
        package = json.loads(members["datapackage.json"])
        for resource in package["resources"]:
            if resource["path"] in changes:
                data = changes[resource["path"]]
                resource.update(hash="sha256:" + hashlib.sha256(data).hexdigest(), bytes=len(data))
        changes = {**changes, "datapackage.json": json.dumps(package, indent=2).encode()}
    with zipfile.ZipFile(source) as zf, zipfile.ZipFile(target, "w") as out:
        for info in zf.infolist():
            out.writestr(info, changes.get(info.filename, zf.read(info)), compress_type=info.compress_type)
    return target


def _token_files(archive: Path) -> list[str]:
    """The names of the timestamp tokens and their notes the archive holds, wherever it keeps them."""
    return [key.rsplit("/", 1)[-1] for key in stored_files(archive, ".tsr", ".tsr.json")]


def test_import_brings_the_timestamp_tokens(case, tmp_path):
    other = CLI(tmp_path / "other")
    result = other("import", str(case["wacz"]), "--json")
    assert result.code == 0, result.out + result.err
    [report] = result.json()
    assert report["ok"] and report["package_signature"] == "holds" and report["archive_key"] == case["key"]
    assert {i["capture_id"]: (i["outcome"], i["tokens"], i["refused_tokens"]) for i in report["items"]} == \
        {i: ("imported", 1, []) for i in case["ids"]}
    members = _members(case["wacz"])
    for i in case["ids"]:
        show = other("show", i, "--json").json()
        [stamp] = show["timestamps"]
        original = case["shows"][i]["timestamps"][0]
        assert stamp["state"] == "done" and stamp["tsa_url"] == original["tsa_url"]
        assert stamp["gen_time"] == original["gen_time"] and stamp["token_sha256"] == original["token_sha256"]
        # Beside the imported WARC, under the archive's own name, byte for byte, read-only; its note too.
        assert stamp["token_path"] == str(Path(show["warc_path"]).parent / f"{i}.1.tsr")
        for rel in (stamp["token_path"], stamp["token_path"] + ".json"):
            assert sealed_file(other.archive, show, rel).read_bytes() == members[f"provenance/{Path(rel).name}"]
            assert stored_object(other.archive, show, rel).read_only      # a file's mode, or an object's lock
    assert not [p for p in (other.archive / "tmp").iterdir()]            # no staging left behind
    with index_conn(other.archive, named_rows=False) as conn:
        stamped = conn.execute("SELECT capture_id FROM ledger WHERE event = 'timestamped' ORDER BY seq").fetchall()
    assert sorted(c for (c,) in stamped) == case["ids"]
    # The receiving archive checks them as its own, and a rebuilt index keeps them.
    verified = other("verify", "--json")
    assert verified.code == 0 and verified.json()["timestamps"]["verified"] == 2, verified.out
    rebuilt = other("reindex", "-o", str(tmp_path / "rebuilt.db"), "--json")
    assert rebuilt.code == 0 and rebuilt.json()["timestamps"] == 2, rebuilt.out + rebuilt.err
    with sqlite3.connect(tmp_path / "rebuilt.db") as conn:
        rows = conn.execute("SELECT capture_id, state FROM timestamps ORDER BY capture_id").fetchall()
    assert rows == [(i, "done") for i in case["ids"]]
    # Importing it again changes nothing: the captures are held, with their own timestamps.
    again = other("import", str(case["wacz"]), "--json")
    assert again.code == 0 and {i["outcome"] for i in again.json()[0]["items"]} == {"held"}
    assert len(_token_files(other.archive)) == 4
    # A person reading it is reminded to check who made the package.
    human = CLI(tmp_path / "third")("import", str(case["wacz"]))
    assert human.code == 0 and "1 timestamp token(s)" in human.out and case["key"] in human.out
    assert "--expect-key" in human.out


def test_a_token_that_does_not_vouch_for_its_warc_is_named_and_not_kept(case, tmp_path):
    first, second = case["ids"]
    members = _members(case["wacz"])
    a, b = f"provenance/{first}.1.tsr", f"provenance/{second}.1.tsr"
    # Each capture's token swapped for the other's, and listed with the hash it now has: only the token check
    # (what the token vouches for) can tell. The package signature no longer holds.
    swapped = _rezip(case["wacz"], tmp_path / "swapped.wacz", {a: members[b], b: members[a]}, relist=True)
    other = CLI(tmp_path / "other")
    result = other("import", str(swapped), "--json")
    assert result.code == 1, result.out + result.err
    [report] = result.json()
    assert not report["ok"] and report["package_signature"] != "holds"
    items = {i["capture_id"]: i for i in report["items"]}
    for cid, path in ((first, a), (second, b)):
        # The capture verified on its own, so it is imported; its token is named and nothing of it kept.
        assert items[cid]["outcome"] == "imported" and items[cid]["tokens"] == 0
        [refused] = items[cid]["refused_tokens"]
        assert refused["path"] == path and "vouches for" in refused["reason"], refused
        assert other("show", cid, "--json").json()["timestamps"] == []
    assert _token_files(other.archive) == [] and not list((other.archive / "tmp").iterdir())
    assert other("verify").code == 0
    human = other("import", str(swapped))
    assert human.code == 0   # held now: nothing refused the second time

    # A token changed and not re-listed: it is not the file the package lists.
    token = bytearray(members[a])
    token[-1] ^= 1
    altered = _rezip(case["wacz"], tmp_path / "altered.wacz", {a: bytes(token)}, relist=False)
    third = CLI(tmp_path / "third")
    result = third("import", str(altered))
    assert result.code == 1 and f"{a}" in result.out and "the package lists" in result.out, result.out
    assert "not kept" in result.out
    tokens = _token_files(third.archive)
    assert tokens == [f"{second}.1.tsr", f"{second}.1.tsr.json"]
    assert third("verify").code == 0


def test_expect_key_makes_the_origin_a_hard_check(case, tmp_path):
    wacz, key = str(case["wacz"]), case["key"]
    nowhere = CLI(tmp_path / "nowhere")
    right = nowhere("verify", "--wacz", wacz, "--expect-key", key.upper().replace("SHA256:", "sha256:"))
    assert right.code == 0 and "the one expected" in right.out, right.out + right.err
    plain = nowhere("verify", "--wacz", wacz)
    assert plain.code == 0 and "publishes elsewhere" in plain.out
    wrong = nowhere("verify", "--wacz", wacz, "--expect-key", OTHER_KEY, "--json")
    assert wrong.code == 1
    [problem] = wrong.json()["problems"]
    assert problem["problem"] == "unexpected-key" and key in problem["detail"] and OTHER_KEY in problem["detail"]
    assert "UNEXPECTED-KEY" in nowhere("verify", "--wacz", wacz, "--expect-key", OTHER_KEY).out
    assert "--expect-key" in _members(case["wacz"])["provenance/VERIFY.txt"].decode()

    # Import: the whole package is refused when another key signed it, or when its signature no longer holds.
    other = CLI(tmp_path / "other")
    refused = other("import", wacz, "--expect-key", OTHER_KEY, "--json")
    assert refused.code == 1 and refused.json()[0]["items"] == [] and "expected" in refused.json()[0]["refused"]
    relisted = _rezip(case["wacz"], tmp_path / "relisted.wacz", {"pages/pages.jsonl": b"{}\n"}, relist=True)
    unsigned = other("import", str(relisted), "--expect-key", key)
    assert unsigned.code == 1 and "nothing imported" in unsigned.out, unsigned.out
    assert other("list", "--json").json() == [] and _token_files(other.archive) == []
    # Without --expect-key the same package imports: each capture holds on its own (and the output says the
    # package signature does not).
    loose = CLI(tmp_path / "loose")("import", str(relisted))
    assert loose.code == 0 and "does not hold" in loose.out, loose.out
    accepted = other("import", wacz, "--expect-key", key, "--json")
    assert accepted.code == 0 and [i["outcome"] for i in accepted.json()[0]["items"]] == ["imported", "imported"]
    # A bare WARC has no package signature: its capture's own signature must be by the key expected.
    warc = str(sealed_warc(case["cli"].archive, case["shows"][case["ids"][0]]))
    bare = CLI(tmp_path / "bare")
    refused = bare("import", warc, "--expect-key", OTHER_KEY, "--json")
    [item] = refused.json()[0]["items"]
    assert refused.code == 1 and item["outcome"] == "refused" and key in item["detail"], item
    assert bare("import", warc, "--expect-key", key).code == 0

    # A malformed fingerprint is bad input: one line, exit 2, nothing made.
    for args in (["verify", "--wacz", wacz, "--expect-key", "sha256:abc"],
                 ["import", wacz, "--expect-key", "not-a-key"],
                 ["import", wacz, "--expect-key", key[:-1] + "g"],
                 ["verify", "--expect-key", key]):
        bad = CLI(tmp_path / "untouched")(*args)
        assert bad.code == 2 and bad.err.count("\n") == 1 and "--expect-key" in bad.err, (args, bad.err)
        assert "Traceback" not in bad.err
    assert not (tmp_path / "untouched" / "index.db").exists()


def test_tokens_of_an_import_that_stopped_are_settled(case, tmp_path):
    """A kill after the index commit leaves the tokens in their staging folder: the next import (or runner) moves
    them into place. One before the commit leaves an unindexed folder: removed once its process is gone. (Staging
    folders are how tokens reach a local warcs/; an archive sealing into a store puts them there before its index
    commit, tested in test_team_import.py.)"""
    other = local_storage(CLI(tmp_path / "other"))
    assert other("import", str(case["wacz"])).code == 0
    first = case["ids"][0]
    show = other("show", first, "--json").json()
    token_rel = show["timestamps"][0]["token_path"]
    staging = other.archive / "tmp" / f"{first}.import999999999.tsr.importing"
    for rel in (token_rel, token_rel + ".json"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        os.rename(other.archive / rel, staging / rel)
    missing = other("verify", "--json")
    assert missing.code == 1 and [p["problem"] for p in missing.json()["problems"]] == ["timestamp-missing"]
    dead = other.archive / "tmp" / "01NOTINDEXED0000000000000.import999999999.tsr.importing"
    (dead / "warcs").mkdir(parents=True)
    (dead / "warcs" / "stray.tsr").write_bytes(b"x")
    assert other("import", str(case["wacz"])).code == 0          # held; settles on the way in
    assert not staging.exists() and not dead.exists()
    assert (other.archive / token_rel).is_file() and other("verify").code == 0
    # A runner starting finishes the move too; an unindexed folder it leaves (no lease says its importer died).
    for rel in (token_rel, token_rel + ".json"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        os.rename(other.archive / rel, staging / rel)
    (dead / "warcs").mkdir(parents=True)
    ran = other("run", "--once")
    assert ran.code == 0, ran.err
    assert not staging.exists() and dead.exists() and other("verify").code == 0
