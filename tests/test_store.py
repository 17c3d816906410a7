"""The storage interface (archiver/store/) against real stores: a directory, and moto's S3 server with Object Lock
on 127.0.0.1 behind a recording proxy (tests/backends.py). moto checks less than S3 does (it stores the SHA-256
we send without checking it, and drops Object Lock on multipart uploads), so these tests also assert, at the
wire, the headers we send: what S3 itself enforces."""
from __future__ import annotations

import base64
import hashlib
import http.client
import os
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archiver.store import blobs
from archiver.store.blobs import (AlreadyStored, BadKey, ChecksumMismatch, NotStored, ReadOnlyStore, StorageError,
                                  StorageUnavailable)
from archiver.store.local import LocalStore

MiB = 1 << 20


def sealed(path: Path, data: bytes) -> str:
    """A sealed file as the WARC writer leaves it: written, read-only; its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o444)
    return hashlib.sha256(data).hexdigest()


def b64(sha_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha_hex)).decode()


# ---- choosing the engine, and the settings ---------------------------------------------------------------------

def test_from_url_chooses_the_engine_once(tmp_path):
    archive = tmp_path / "archive"
    assert blobs.from_url("", None, archive_dir=archive).root == archive / "warcs"
    assert blobs.from_url("elsewhere", None, archive_dir=archive).root == archive / "elsewhere"
    assert blobs.from_url(f"file://{tmp_path}/d", None).root == tmp_path / "d"
    store = blobs.from_url("s3://evidence-bucket/team/a", {"endpoint_url": "http://127.0.0.1:9", "region": "eu-west-1"})
    assert (type(store).__name__, store.bucket, store.prefix, store.url) == (
        "S3Store", "evidence-bucket", "team/a", "s3://evidence-bucket/team/a")
    assert store.location("2026/01/01/x.warc.gz") == "s3://evidence-bucket/team/a/2026/01/01/x.warc.gz"


@pytest.mark.parametrize("setting, value, words", [
    ("URL", "ftp://host/x", "storage.url must be empty"),
    ("URL", "s3://Bad_Bucket/x", "not an S3 bucket name"),
    ("URL", "s3://good-bucket/a/../b", "'..' segments"),
    ("ENDPOINT_URL", "http://AKIA:secret@127.0.0.1:9000", "must not hold credentials"),
    ("RETENTION_MODE", "compliance", "storage.retention_mode must be"),
    ("RETENTION_DAYS", "0", "storage.retention_days must be a positive"),
    ("PART_SIZE_BYTES", "1024", "storage.part_size_bytes must be between"),
    ("MULTIPART_THRESHOLD_BYTES", str(6 << 40), "storage.multipart_threshold_bytes must be"),
])
def test_a_bad_storage_setting_names_itself(setting, value, words):
    from archiver import config
    from archiver.errors import ConfigError
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")) as bad:
        config.load(environ={f"ARCHIVER_STORAGE_{setting}": value})
    assert "\n" not in str(bad.value)


def test_a_bad_storage_setting_is_one_line_and_exit_2(cli):
    result = cli("status", env={"ARCHIVER_STORAGE_URL": "ftp://host/x"})
    assert (result.code, result.out) == (2, "")
    assert result.err == "archiver: error: setting storage.url must be empty (<archive>/warcs), a directory, " \
                         "file:///path or s3://bucket/prefix, got 'ftp://host/x'\n"


def test_settings_never_import_boto3():
    # Commands on a local archive must not pay for the S3 engine: config checks [storage] without it.
    code = "import sys, archiver.config as c; c.load(environ={}); print('boto3' in sys.modules, 'psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("key", ["", "/abs/x.warc.gz", "a/../b", "a//b", "./a", "a\\b", "a\nb"])
def test_keys_cannot_escape_the_store(tmp_path, key):
    store = LocalStore(tmp_path / "warcs")
    source = tmp_path / "f"
    sha = sealed(source, b"x")
    with pytest.raises(BadKey):
        store.put_file(key, source, sha)
    assert not (tmp_path / "warcs").exists() or not any((tmp_path / "warcs").rglob("*"))


# ---- the local engine --------------------------------------------------------------------------------------------

def test_local_put_is_create_only_links_and_keeps_the_source(tmp_path):
    store = LocalStore(tmp_path / "warcs")
    source = tmp_path / "tmp" / "a.warc.gz.part"
    sha = sealed(source, b"evidence" * 100)
    stored = store.put_file("2026/12/06/A.warc.gz", source, sha)
    final = tmp_path / "warcs" / "2026" / "12" / "06" / "A.warc.gz"
    assert (stored.size, stored.location, stored.read_only, stored.already_present) == (800, str(final), True, False)
    assert source.exists() and os.path.samefile(source, final)  # linked, not copied; the caller removes the source
    assert final.stat().st_mode & 0o777 == 0o444

    again = store.put_file("2026/12/06/A.warc.gz", source, sha)  # a retry, or a runner settling the same seal
    assert again.already_present
    other = tmp_path / "tmp" / "b"
    other_sha = sealed(other, b"other bytes")
    with pytest.raises(AlreadyStored, match="already holds other bytes") as refused:
        store.put_file("2026/12/06/A.warc.gz", other, other_sha)
    assert refused.value.existing.size == 800
    assert store.verify("2026/12/06/A.warc.gz", sha) == 800


def test_local_put_across_filesystems_copies_checks_and_leaves_no_part(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to copy across")
    store = LocalStore(tmp_path / "warcs")
    source = Path(os.path.join(shm, f"archiver-test-{os.getpid()}-{time.monotonic_ns()}"))
    try:
        sha = sealed(source, os.urandom(3 * MiB + 5))
        stored = store.put_file("x/y.warc.gz", source, sha)
        assert not stored.already_present and stored.read_only
        assert store.sha256_of("x/y.warc.gz") == (sha, 3 * MiB + 5)
        assert [p.name for p in (tmp_path / "warcs" / "x").iterdir()] == ["y.warc.gz"]
        with pytest.raises(ChecksumMismatch, match="hashes to"):
            store.put_file("x/z.warc.gz", source, "0" * 64)  # the file is not what it was sealed as
        assert not (tmp_path / "warcs" / "x" / "z.warc.gz").exists()
        assert [p.name for p in (tmp_path / "warcs" / "x").iterdir()] == ["y.warc.gz"]
    finally:
        os.chmod(source, 0o644)
        source.unlink()


def test_local_read_only_store_and_listing(tmp_path):
    writer = LocalStore(tmp_path / "warcs")
    for key in ["2026/01/02/b.warc.gz", "2026/01/02/a.warc.gz", "2026/01/10/c.warc.gz", "2026/01/1-x.warc.gz",
                "2025/12/31/z.warc.gz"]:
        source = tmp_path / "src" / key.replace("/", "_")
        writer.put_file(key, source, sealed(source, key.encode()))
    (tmp_path / "warcs" / "2026" / "01" / "02" / "d.warc.gz.1234abcd.part").write_bytes(b"half")
    listed = [o.key for o in writer.list()]
    # The order S3 lists in (by whole key), .part files never listed.
    assert listed == sorted(listed) == ["2025/12/31/z.warc.gz", "2026/01/02/a.warc.gz", "2026/01/02/b.warc.gz",
                                        "2026/01/1-x.warc.gz", "2026/01/10/c.warc.gz"]
    assert [o.key for o in writer.list("2026/01/0")] == ["2026/01/02/a.warc.gz", "2026/01/02/b.warc.gz"]

    reader = blobs.from_url("", None, archive_dir=tmp_path, read_only=True)
    assert reader.exists("2026/01/02/a.warc.gz") and not reader.exists("2026/01/02/q.warc.gz")
    with reader.open("2026/01/02/a.warc.gz") as stream:
        assert stream.read() == b"2026/01/02/a.warc.gz"
    source = tmp_path / "src" / "new"
    with pytest.raises(ReadOnlyStore):
        reader.put_file("2026/02/01/n.warc.gz", source, sealed(source, b"n"))
    with pytest.raises(NotStored):
        reader.head("2026/02/01/n.warc.gz")


# ---- the S3 engine against moto's server ------------------------------------------------------------------------

def s3_store(s3, *, endpoint: str | None = None, **settings):
    values = {"endpoint_url": endpoint or s3.proxy.url, "region": s3.region, "retry_seconds": 10.0,
              "timeout_seconds": 10.0, **settings}
    return blobs.from_url(f"s3://{s3.bucket}/{s3.new_prefix()}", values)


def header_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_s3_put_is_create_only_checked_and_locked(s3, tmp_path):
    store = s3_store(s3)
    source = tmp_path / "a.warc.gz"
    sha = sealed(source, os.urandom(100_000))
    before = datetime.now(timezone.utc)
    stored = store.put_file("2026/12/06/A.warc.gz", source, sha)

    assert (stored.size, stored.sha256, stored.sha256_source, stored.checksum_type) == (
        100_000, sha, "server", "FULL_OBJECT")
    assert stored.lock_mode == "COMPLIANCE" and stored.read_only
    assert before + timedelta(days=3650) - timedelta(seconds=5) <= stored.locked_until
    assert stored.location == f"{store.url}/2026/12/06/A.warc.gz" and stored.version_id
    assert source.exists()  # removed by the caller once indexed, never by the store

    # At the wire: what S3 enforces, asked for on the write itself.
    [put] = s3.proxy.find("PUT", "A.warc.gz")
    assert put.headers["if-none-match"] == "*"
    assert put.headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
    assert put.headers["x-amz-checksum-sha256"] == b64(sha)
    assert put.headers["x-amz-meta-sha256"] == sha
    assert put.headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    until = header_date(put.headers["x-amz-object-lock-retain-until-date"])
    assert abs(until - (before + timedelta(days=3650))) < timedelta(seconds=30)
    assert put.headers["content-type"] == "application/warc"
    assert "Credential=testing/" in put.headers["authorization"]  # from the environment: boto3's standard chain
    [head] = s3.proxy.find("HEAD", "A.warc.gz")
    assert head.headers["x-amz-checksum-mode"] == "ENABLED" and f"versionId={stored.version_id}" in head.path

    # The same bytes again (a retry whose answer was lost, a runner settling the seal): S3 says 412, and we find
    # our own bytes there.
    again = store.put_file("2026/12/06/A.warc.gz", source, sha)
    assert again.already_present and again.version_id == stored.version_id
    assert [r.status for r in s3.proxy.find("PUT", "A.warc.gz")] == [200, 412]

    other = tmp_path / "b.warc.gz"
    with pytest.raises(AlreadyStored, match="refusing to replace it") as refused:
        store.put_file("2026/12/06/A.warc.gz", other, sealed(other, b"forged"))
    assert refused.value.existing.sha256 == sha
    assert store.verify("2026/12/06/A.warc.gz", sha) == 100_000
    assert [o.key for o in store.list()] == ["2026/12/06/A.warc.gz"]


def test_s3_locked_version_cannot_be_deleted_nor_replaced(s3, tmp_path):
    store = s3_store(s3)
    source = tmp_path / "a.warc.gz"
    sha = sealed(source, b"the evidence")
    stored = store.put_file("k/A.warc.gz", source, sha)
    full = f"{store.prefix}/k/A.warc.gz"
    raw = s3.client()
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as denied:
        raw.delete_object(Bucket=s3.bucket, Key=full, VersionId=stored.version_id)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    answer = raw.delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": full, "VersionId": stored.version_id}]})
    assert [e["Code"] for e in answer.get("Errors", [])] == ["AccessDenied"] and not answer.get("Deleted")
    # An overwrite without If-None-Match makes a new version in a versioned bucket (S3 does the same); the locked
    # version stays, byte for byte, and is what the index names.
    raw.put_object(Bucket=s3.bucket, Key=full, Body=b"overwritten")
    assert store.verify("k/A.warc.gz", sha, stored.version_id) == len(b"the evidence")
    assert store.head("k/A.warc.gz", stored.version_id).lock_mode == "COMPLIANCE"


def test_s3_settling_an_unlocked_object_of_the_same_bytes_locks_it(s3, tmp_path):
    # A runner that got its bytes in but not its lock (killed in between, on a server that dropped the lock on
    # the write): the next runner's put finds the same bytes and locks that version.
    store = s3_store(s3)
    source = tmp_path / "a"
    sha = sealed(source, b"bytes in, lock not yet")
    first = s3.client().put_object(Bucket=s3.bucket, Key=f"{store.prefix}/a.warc.gz", Body=source.read_bytes(),
                                   ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(sha))
    settled = store.put_file("a.warc.gz", source, sha)
    assert settled.already_present and settled.version_id == first["VersionId"]
    assert settled.lock_mode == "COMPLIANCE" and settled.read_only
    assert [r.status for r in s3.proxy.find("PUT", "a.warc.gz")] == [200, 412, 200]  # put, ours, the retention


@pytest.mark.xfail(strict=True, reason="moto 5.2.6 stores the x-amz-checksum-sha256 it is sent without checking "
                   "it; S3 answers 400 BadDigest. XPASS means moto now checks: drop this marker")
def test_moto_refuses_a_wrong_checksum(s3):
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError, match="BadDigest"):
        s3.client().put_object(Bucket=s3.bucket, Key=f"{s3.new_prefix()}/x", Body=b"bytes", ChecksumAlgorithm="SHA256",
                               ChecksumSHA256=b64(hashlib.sha256(b"other").hexdigest()))


@pytest.mark.xfail(strict=True, reason="moto 5.2.6 lets a COMPLIANCE retention be shortened (and its mode changed); "
                   "S3 refuses it. XPASS means moto now refuses: drop this marker")
def test_moto_refuses_to_shorten_compliance_retention(s3, tmp_path):
    store = s3_store(s3)
    source = tmp_path / "a"
    stored = store.put_file("a.warc.gz", source, sealed(source, b"a"))
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError):
        s3.client().put_object_retention(Bucket=s3.bucket, Key=f"{store.prefix}/a.warc.gz", VersionId=stored.version_id,
                                         Retention={"Mode": "GOVERNANCE",
                                                    "RetainUntilDate": datetime.now(timezone.utc) + timedelta(hours=1)})


def test_s3_we_compare_the_checksum_the_server_reports(s3, tmp_path):
    store = s3_store(s3)
    source = tmp_path / "a"
    sha = sealed(source, b"sealed bytes")
    s3.proxy.override_response_headers = {"x-amz-checksum-sha256": b64(hashlib.sha256(b"something else").hexdigest())}
    with pytest.raises(ChecksumMismatch, match="the server reports SHA-256"):
        store.put_file("a.warc.gz", source, sha)


def test_s3_read_back_catches_what_the_server_did_not_check(s3, tmp_path):
    # A byte flipped on the way, or a file that no longer hashes to its seal: S3 refuses both (BadDigest); moto
    # takes them, and only reading the object back finds out. read_back does.
    checked = s3_store(s3, read_back=True)
    source = tmp_path / "a"
    sha = sealed(source, os.urandom(200_000))
    s3.proxy.corrupt_next_put_body = True
    with pytest.raises(ChecksumMismatch, match="stored bytes hash to"):
        checked.put_file("flipped.warc.gz", source, sha)
    assert s3.proxy.find("PUT")[0].headers["x-amz-checksum-sha256"] == b64(sha)  # we sent the right one
    with pytest.raises(ChecksumMismatch):
        checked.put_file("unsealed.warc.gz", source, hashlib.sha256(b"not this file").hexdigest())
    assert checked.put_file("fine.warc.gz", source, sha).sha256 == sha


def test_s3_multipart_upload_and_streaming_rehash_in_bounded_memory(s3, tmp_path):
    store = s3_store(s3, multipart_threshold_bytes=16 * MiB, part_size_bytes=16 * MiB)
    source = tmp_path / "big.warc.gz"
    size = 70 * MiB
    digest = hashlib.sha256()
    with open(source, "wb") as fh:
        block = os.urandom(MiB)
        for i in range(70):
            chunk = bytes([i]) + block[1:]
            fh.write(chunk)
            digest.update(chunk)
    os.chmod(source, 0o444)
    sha = digest.hexdigest()

    tracemalloc.start()
    try:
        stored = store.put_file("2026/12/06/BIG.warc.gz", source, sha)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert store.sha256_of("2026/12/06/BIG.warc.gz") == (sha, size)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A part is 16 MiB and the object 70 MiB: neither is ever held whole.
    assert upload_peak < 8 * MiB and read_peak < 8 * MiB, (upload_peak, read_peak)

    assert (stored.size, stored.checksum_type, stored.sha256, stored.sha256_source) == (size, "COMPOSITE", sha,
                                                                                        "metadata")
    assert stored.lock_mode == "COMPLIANCE" and stored.read_only
    [create] = s3.proxy.find("POST", "?uploads")
    assert create.headers["x-amz-checksum-algorithm"] == "SHA256" and create.headers["x-amz-checksum-type"] == "COMPOSITE"
    assert create.headers["x-amz-object-lock-mode"] == "COMPLIANCE" and create.headers["x-amz-meta-sha256"] == sha
    parts = s3.proxy.find("PUT", "partNumber=")
    assert len(parts) == 5 and all(p.headers["x-amz-sdk-checksum-algorithm"] == "SHA256" for p in parts)
    with open(source, "rb") as fh:
        for part in sorted(parts, key=lambda p: int(p.path.split("partNumber=")[1].split("&")[0])):
            assert part.headers["x-amz-checksum-sha256"] == base64.b64encode(
                hashlib.sha256(fh.read(16 * MiB)).digest()).decode()
    [complete] = [r for r in s3.proxy.find("POST", "uploadId=") if "?uploads" not in r.path]
    assert complete.headers["if-none-match"] == "*"
    # moto answers CompleteMultipartUpload without a checksum and drops the lock asked for at creation: the object
    # was read back and re-hashed, and the retention set on the version (S3 does both itself).
    assert len(s3.proxy.find("PUT", "?retention")) == 1
    assert store.put_file("2026/12/06/BIG.warc.gz", source, sha).already_present


def test_s3_list_pages_through_more_than_1000_keys(s3):
    store = s3_store(s3)
    keys = [f"2026/{i % 3:02d}/{i:05d}.warc.gz" for i in range(1005)] + ["other/x.warc.gz"]
    # Made with plain HTTP PUTs straight to moto (which checks no signature): boto3 would spend most of this
    # test signing 1006 requests that are not what it tests.
    def put_all(share: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", s3.moto.port, timeout=30)
        for key in share:
            connection.request("PUT", f"/{s3.bucket}/{store.prefix}/{key}", body=key.encode())
            assert connection.getresponse().read() is not None
        connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put_all, [keys[i::4] for i in range(4)]))
    s3.proxy.reset()
    listed = list(store.list())
    assert [o.key for o in listed] == sorted(keys)
    assert all(o.size == len(o.key) for o in listed)
    lists = s3.proxy.find("GET", "list-type=2")
    assert len(lists) == 2 and "continuation-token=" in lists[1].path
    assert len(list(store.list("2026/01/"))) == 335


def s3_put_during_an_outage(s3, tmp_path, outage: float, retry_seconds: float):
    """A store, a sealed file and its SHA-256, S3 answering 503 SlowDown from now for ``outage`` seconds."""
    store = s3_store(s3, retry_seconds=retry_seconds)
    source = tmp_path / "a"
    sha = sealed(source, b"x" * 5000)
    s3.proxy.fail_for(outage)
    return store, source, sha, time.monotonic()


def test_s3_answering_503_for_a_while_is_retried(s3, tmp_path):
    store, source, sha, started = s3_put_during_an_outage(s3, tmp_path, outage=2.0, retry_seconds=20.0)
    stored = store.put_file("a.warc.gz", source, sha)
    assert 2.0 <= time.monotonic() - started < 10
    assert stored.sha256 == sha and s3.proxy.fault.count >= 2
    assert [r.status for r in s3.proxy.find("PUT", "a.warc.gz")][-1] == 200


def test_s3_unavailable_past_the_bound_is_one_clear_error(s3, tmp_path):
    store, source, sha, started = s3_put_during_an_outage(s3, tmp_path, outage=30.0, retry_seconds=1.5)
    with pytest.raises(StorageUnavailable) as failed:
        store.put_file("a.warc.gz", source, sha)
    assert 1.4 <= time.monotonic() - started < 4
    message = str(failed.value)
    assert "\n" not in message and "storage unavailable: PUT a.warc.gz" in message
    assert "storage.retry_seconds = 1.5" in message and "last: 503 SlowDown" in message
    s3.proxy.reset()
    assert not store.exists("a.warc.gz")  # nothing was decided: the next try starts clean
    assert store.put_file("a.warc.gz", source, sha).sha256 == sha


def test_s3_nobody_listening_is_storage_unavailable(s3, tmp_path):
    from backends import free_port
    store = s3_store(s3, endpoint=f"http://127.0.0.1:{free_port()}", retry_seconds=0.5)
    with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
        store.head("a.warc.gz")


def test_s3_without_credentials_says_where_they_go(s3, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = s3_store(s3)
    source = tmp_path / "a"
    with pytest.raises(StorageError, match="no S3 credentials found .* never in the archive's settings"):
        store.put_file("a.warc.gz", source, sealed(source, b"a"))
    assert not s3.proxy.requests  # nothing was sent unsigned


def test_s3_read_only_and_missing_objects(s3, tmp_path):
    store = s3_store(s3)
    reader = blobs.from_url(store.url, {"endpoint_url": s3.proxy.url, "region": s3.region}, read_only=True)
    source = tmp_path / "a"
    with pytest.raises(ReadOnlyStore):
        reader.put_file("a.warc.gz", source, sealed(source, b"a"))
    with pytest.raises(NotStored):
        reader.head("a.warc.gz")
    with pytest.raises(NotStored):
        reader.open("a.warc.gz")
    assert not reader.exists("a.warc.gz")
    assert list(reader.list()) == []


def test_what_moto_enforces_of_object_lock(s3):
    """The README's table of what moto does, for the rows no engine test above shows."""
    from botocore.exceptions import ClientError
    raw = s3.client()
    assert raw.get_bucket_versioning(Bucket=s3.bucket)["Status"] == "Enabled"  # Object Lock brings versioning
    until = datetime.now(timezone.utc) + timedelta(days=1)
    key = f"{s3.new_prefix()}/locked"
    # As S3: a write with a retention must carry Content-MD5 or a checksum algorithm (the engine sends SHA256;
    # boto3 adds a CRC32 by default, so this client is told to send none).
    with pytest.raises(ClientError, match="MissingUploadObjectWithObjectLockHeaders"):
        s3.client(request_checksum_calculation="when_required").put_object(Bucket=s3.bucket, Key=key, Body=b"x", ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=until)
    put = raw.put_object(Bucket=s3.bucket, Key=key, Body=b"x", ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == b64(hashlib.sha256(b"x").hexdigest())  # computed by boto3, echoed by moto
    attributes = raw.get_object_attributes(Bucket=s3.bucket, Key=key, ObjectAttributes=["Checksum", "ObjectSize"])
    assert (attributes["ObjectSize"], attributes["Checksum"]["ChecksumSHA256"]) == (1, put["ChecksumSHA256"])
    head = raw.head_object(Bucket=s3.bucket, Key=key, VersionId=put["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and abs(head["ObjectLockRetainUntilDate"] - until) < timedelta(seconds=2)
    # GetObjectRetention answers 500 in moto 5.2.6: the engine reads the lock from HeadObject instead.
    with pytest.raises(ClientError) as broken:
        raw.get_object_retention(Bucket=s3.bucket, Key=key, VersionId=put["VersionId"])
    assert broken.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
