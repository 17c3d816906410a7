"""The S3 engine: sealed files as objects in a bucket created with Object Lock (team mode).

How one sealed file is stored, and why each step:
- Create-only: ``If-None-Match: *`` on the PUT (and on CompleteMultipartUpload). Two runners sealing the same key
  cannot both win, and a retry after a lost answer cannot overwrite: the second write gets 412, and we then
  compare what is there with what we hold (same bytes: success, ``already_present``, and locked now if it was
  stored without its lock; other bytes: AlreadyStored).
- Checked bytes: ``ChecksumAlgorithm=SHA256`` + ``ChecksumSHA256`` = our sealed SHA-256 (base64), so S3 refuses
  the PUT (BadDigest) if the bytes it received hash otherwise. We then compare the checksum the server reports
  with ours, and confirm with a HEAD (ChecksumMode=ENABLED) of the version written: size, checksum and lock. A
  server that reports no checksum has checked none, so the object is read back and re-hashed instead; and
  ``storage.read_back`` reads every object back, for S3-compatible servers that echo a checksum without checking
  it (moto does, see README).
- Object Lock: ``ObjectLockMode`` (COMPLIANCE by default) and ``ObjectLockRetainUntilDate`` (now +
  ``storage.retention_days``) on the write itself, so no moment exists when the object is stored but unlocked.
  S3 requires a checksum header on such a write, which the line above provides.
- Big files: one PUT up to ``storage.multipart_threshold_bytes``, multipart above (S3 takes at most 5 GiB in one
  PUT). S3 has no whole-object SHA-256 for a multipart upload: its SHA-256 is COMPOSITE, the SHA-256 of the
  parts' SHA-256s ("<base64>-<parts>"); whole-object (FULL_OBJECT) checksums exist only for the CRC algorithms.
  So each part carries its own SHA-256, which S3 checks; the whole file's SHA-256 is computed in the same read
  and must equal the sealed one before the upload is completed; the composite S3 reports must equal the one we
  compute; and our whole-file SHA-256 goes into the object's metadata (x-amz-meta-sha256) for ``head``.
- Streaming: the file is read in 1 MiB pieces, a part at a time; nothing holds a whole file or a whole part.
- Outages: every request is retried on 5xx, SlowDown and connection errors with a backoff capped at 5 s, for at
  most ``storage.retry_seconds``, then ``StorageUnavailable`` (one line). botocore's own retries are switched off
  so that this bound is the only one. A multipart upload that fails is aborted (its parts would cost money).
- Credentials: only boto3's standard chain (environment, AWS_PROFILE and ~/.aws, container or instance roles).
  The archive's settings hold where (bucket, endpoint, region), never who.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version as package_version
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

# botocore takes its SSLContext from urllib3's pyOpenSSL module when pyOpenSSL is installed (pywb brings it), and
# importing that module loads pyOpenSSL and cryptography: ~60 ms of every command that reads a bucket, and show and
# search must not load cryptography at all (tests/test_imports.py). The class botocore takes from there is the
# standard library's own (``orig_util_SSLContext``), the one it falls back to when that import fails; so the
# import fails, for botocore's own import alone (a later import of the module, by anything else, works as ever).
_PYOPENSSL = "urllib3.contrib.pyopenssl"
_HIDDEN = _PYOPENSSL not in sys.modules
if _HIDDEN:
    sys.modules[_PYOPENSSL] = None  # type: ignore[assignment]  (None there: "import fails", by Python's rules)
try:
    import boto3
    import botocore.exceptions
    from botocore.config import Config
finally:
    if _HIDDEN:
        del sys.modules[_PYOPENSSL]

from archiver.store.blobs import (MAX_PARTS, READ_CHUNK, AlreadyStored, BlobStore, ChecksumMismatch, ListedObject,
                                  NotStored, StorageError, StorageSettings, StorageUnavailable, StoredObject,
                                  check_key)

T = TypeVar("T")

# Answers that say "not now" rather than "no": retried within storage.retry_seconds.
TRANSIENT_STATUS = {500, 502, 503, 504}
TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "ThrottlingException",
                   "ConditionalRequestConflict"}  # 409: a concurrent conditional write; S3 says to retry it
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
MAX_STREAM_RESUMES = 5


def _archiver_version() -> str:
    try:
        return package_version("archiver")
    except PackageNotFoundError:
        return "unknown"


def b64_of_hex(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode("ascii")


def hex_of_b64(digest_b64: str) -> str:
    return base64.b64decode(digest_b64).hex()


def composite_sha256(part_digests: list[bytes]) -> str:
    """S3's COMPOSITE SHA-256 of a multipart object: SHA-256 of the concatenated part digests, "-<parts>"."""
    return b64_of_hex(hashlib.sha256(b"".join(part_digests)).hexdigest()) + f"-{len(part_digests)}"


class S3Store(BlobStore):
    def __init__(self, bucket: str, prefix: str, settings: StorageSettings, *, read_only: bool = False,
                 client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.settings = settings
        self.read_only = read_only
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client or self._client(settings)

    @staticmethod
    def _client(settings: StorageSettings) -> Any:
        config = Config(
            connect_timeout=settings.timeout_seconds,
            read_timeout=settings.timeout_seconds,
            # Our bounded retry (``_call``) is the only one: botocore's would multiply it.
            retries={"total_max_attempts": 1},
            # An endpoint of our own (moto, MinIO, a gateway on an address) rarely has a DNS name per bucket.
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
            # We send our own SHA-256 on every write and re-hash every read ourselves; botocore computing CRCs
            # on top would read each file once more for nothing.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra=f"archiver/{_archiver_version()}",
        )
        # A plain Session: credentials from boto3's standard chain only, never from the archive's settings.
        return boto3.session.Session().client("s3", endpoint_url=settings.endpoint_url or None,
                                              region_name=settings.region or None, config=config)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def fetch_command(self, key: str, version_id: str | None, out: str) -> str:
        """The AWS CLI's get-object of this version. It names the endpoint and region when the settings do: without
        them the CLI asks AWS's default endpoint, which holds no such bucket for MinIO, a gateway or another region."""
        where = (f" --endpoint-url {shlex.quote(self.settings.endpoint_url)}" if self.settings.endpoint_url else "") \
            + (f" --region {shlex.quote(self.settings.region)}" if self.settings.region else "")
        return (f"aws{where} s3api get-object --bucket {shlex.quote(self.bucket)} --key {shlex.quote(self._full(key))}"
                + (f" --version-id {shlex.quote(version_id)}" if version_id else "") + f" {shlex.quote(out)}")

    def _full(self, key: str) -> str:
        return self._root + check_key(key)

    # -- the bounded retry every request goes through

    def _call(self, what: str, request: Callable[[], T]) -> T:
        started = time.monotonic()
        deadline = started + self.settings.retry_seconds
        delay = BACKOFF_FIRST
        attempts = 0
        while True:
            attempts += 1
            try:
                return request()
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                if not _transient(exc):
                    raise
                last = _describe(exc)
            pause = min(delay / 2 + random.uniform(0, delay / 2), deadline - time.monotonic())
            if pause <= 0:
                raise StorageUnavailable(
                    f"{self.url}: storage unavailable: {what} got no usable answer in {attempts} attempt(s) over "
                    f"{time.monotonic() - started:.1f} s (storage.retry_seconds = {self.settings.retry_seconds:g}); "
                    f"last: {last}")
            time.sleep(pause)
            delay = min(delay * 2, BACKOFF_MAX)

    def _fail(self, exc: Exception, what: str, key: str | None = None) -> StorageError:
        """A refused request as one named line."""
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageError(f"{self.url}: no S3 credentials found for {what}: set them where boto3 looks "
                                f"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, an "
                                f"instance role), never in the archive's settings")
        code, status = _code(exc), _status(exc)
        if code in ("NoSuchKey", "404", "NotFound") or status == 404 and code != "NoSuchBucket":
            return NotStored(f"no stored object {key} in {self.url}")
        return StorageError(f"{self.url}: {what} refused: {_describe(exc)}")

    # -- writing

    def _put(self, key: str, path: Path, sha256: str, size: int, content_type: str) -> StoredObject:
        full = self._full(key)
        if size > self.settings.multipart_threshold_bytes:
            stored = self._put_multipart(key, full, path, sha256, size, content_type)
        else:
            stored = self._put_single(key, full, path, sha256, size, content_type)
        return stored

    def _lock_params(self) -> dict[str, Any]:
        if not self.settings.retention_mode:
            return {}
        until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=self.settings.retention_days)
        return {"ObjectLockMode": self.settings.retention_mode, "ObjectLockRetainUntilDate": until}

    def _put_single(self, key: str, full: str, path: Path, sha256: str, size: int,
                    content_type: str) -> StoredObject:
        checksum = b64_of_hex(sha256)
        lock = self._lock_params()

        def put() -> dict:
            # Opened per attempt: a retry sends the file from its first byte again.
            with open(path, "rb") as body:
                return self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=body, ContentLength=size, ContentType=content_type,
                    IfNoneMatch="*", ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                    Metadata={"sha256": sha256}, **lock)

        try:
            answer = self._call(f"PUT {key}", put)
        except botocore.exceptions.ClientError as exc:
            if _status(exc) == 412 or _code(exc) == "PreconditionFailed":
                return self._settle_existing(key, path, sha256, size)
            if _code(exc) in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                raise ChecksumMismatch(f"{self.location(key)}: the server refused the upload of {path}: the bytes it "
                                       f"received do not hash to the sealed SHA-256 {sha256} ({_code(exc)})",
                                       key, sha256, "?") from None
            raise self._fail(exc, f"PUT {key}", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(exc, f"PUT {key}", key) from None
        reported = answer.get("ChecksumSHA256")
        if reported is not None and reported != checksum:
            raise ChecksumMismatch(f"{self.location(key)}: the server reports SHA-256 {reported} (base64) for the "
                                   f"object written, we sent {checksum}", key, sha256, _hex_or(reported))
        stored = self._confirm(key, answer.get("VersionId"), size, checksum, lock)
        if reported is None or self.settings.read_back:
            # A server that answers without a checksum did not check ours: read the object back instead.
            self.verify(key, sha256, stored.version_id)
        return stored

    def _put_multipart(self, key: str, full: str, path: Path, sha256: str, size: int,
                       content_type: str) -> StoredObject:
        # Larger parts for files that 10 000 parts of the configured size cannot hold.
        part_size = max(self.settings.part_size_bytes, -(-size // MAX_PARTS))
        lock = self._lock_params()
        try:
            created = self._call(f"start multipart upload of {key}", lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType=content_type, ChecksumAlgorithm="SHA256",
                ChecksumType="COMPOSITE", Metadata={"sha256": sha256}, **lock))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, f"start multipart upload of {key}", key) from None
        upload_id = created["UploadId"]
        completed = False
        try:
            parts: list[dict[str, Any]] = []
            digests: list[bytes] = []
            whole = hashlib.sha256()
            with open(path, "rb") as fh:
                fd = fh.fileno()
                for number, offset in enumerate(range(0, size, part_size), 1):
                    length = min(part_size, size - offset)
                    digest = _hash_range(fd, offset, length, whole)
                    part_checksum = base64.b64encode(digest).decode("ascii")

                    def upload(number: int = number, offset: int = offset, length: int = length,
                               part_checksum: str = part_checksum) -> dict:
                        return self.client.upload_part(
                            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                            Body=_FileRange(fd, offset, length), ContentLength=length,
                            ChecksumAlgorithm="SHA256", ChecksumSHA256=part_checksum)

                    answer = self._call(f"upload part {number} of {key}", upload)
                    if answer.get("ChecksumSHA256") not in (None, part_checksum):
                        raise ChecksumMismatch(f"{self.location(key)}: part {number}: the server reports SHA-256 "
                                               f"{answer['ChecksumSHA256']}, we sent {part_checksum}", key,
                                               digest.hex(), _hex_or(answer["ChecksumSHA256"]))
                    parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": part_checksum})
                    digests.append(digest)
            if whole.hexdigest() != sha256:
                raise ChecksumMismatch(f"{path} hashes to {whole.hexdigest()}, sealed as {sha256}: the local file "
                                       f"changed since it was sealed; not storing it as {key}", key, sha256,
                                       whole.hexdigest())
            expected = composite_sha256(digests)
            try:
                done = self._call(f"complete multipart upload of {key}", lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts},
                    IfNoneMatch="*"))
            except botocore.exceptions.ClientError as exc:
                if _status(exc) == 412 or _code(exc) == "PreconditionFailed":
                    return self._settle_existing(key, path, sha256, size, expected)
                raise
            completed = True
            reported = done.get("ChecksumSHA256")
            if reported is not None and not _same_checksum(reported, expected):
                raise ChecksumMismatch(f"{self.location(key)}: the server reports composite SHA-256 {reported}, we "
                                       f"computed {expected}", key, expected, reported)
            stored = self._confirm(key, done.get("VersionId"), size, expected, lock)
            if reported is None or self.settings.read_back:
                self.verify(key, sha256, stored.version_id)
            return stored
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, f"multipart upload of {key}", key) from None
        finally:
            if not completed:
                self._abort(full, upload_id)

    def _abort(self, full: str, upload_id: str) -> None:
        # Best effort, briefly: an upload left behind costs storage, not evidence (a lifecycle rule that aborts
        # incomplete multipart uploads catches what this misses; README).
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            pass

    def _confirm(self, key: str, version_id: str | None, size: int, checksum: str,
                 lock: dict[str, Any]) -> StoredObject:
        """HEAD the version just written: the size, the checksum and the lock must be what we asked for."""
        stored = self.head(key, version_id)
        if stored.size != size:
            raise ChecksumMismatch(f"{self.location(key)}: stored {stored.size} bytes, sent {size}", key, str(size),
                                   str(stored.size))
        if stored.checksum is not None and not _same_checksum(stored.checksum, checksum):
            raise ChecksumMismatch(f"{self.location(key)}: the server reports checksum {stored.checksum}, we sent "
                                   f"{checksum}", key, checksum, stored.checksum)
        if lock and stored.lock_mode is None:
            stored = self._set_retention(stored, lock)
        if lock:
            wanted = lock["ObjectLockRetainUntilDate"]
            if not _lock_holds(stored, lock):
                raise StorageError(f"{self.location(key)}: stored without the Object Lock asked for ({lock['ObjectLockMode']} "
                                   f"until {wanted.isoformat()}; the server reports {stored.lock_mode} until "
                                   f"{stored.locked_until}): is Object Lock enabled on bucket {self.bucket}?")
        return stored

    def _set_retention(self, stored: StoredObject, lock: dict[str, Any]) -> StoredObject:
        """Lock a version written without the lock asked for. S3 applies it with the write; a server that dropped
        it (moto 5.2.6 does for multipart uploads), or a runner killed before this step, leaves it to be set on
        that version now. Returns the version's HEAD afterwards."""
        try:
            self._call(f"set retention of {stored.key}", lambda: self.client.put_object_retention(
                Bucket=self.bucket, Key=self._full(stored.key), VersionId=stored.version_id,
                Retention={"Mode": lock["ObjectLockMode"], "RetainUntilDate": lock["ObjectLockRetainUntilDate"]}))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, f"set retention of {stored.key}", stored.key) from None
        return self.head(stored.key, stored.version_id)

    def _settle_existing(self, key: str, path: Path, sha256: str, size: int,
                         composite: str | None = None) -> StoredObject:
        """The key is taken. The same bytes (a retry whose first answer was lost; another runner finishing the same
        seal) are success; anything else, or anything we cannot compare, is AlreadyStored."""
        existing = self.head(key)
        same = False
        if existing.size == size and existing.checksum:
            if existing.checksum_type != "COMPOSITE":
                same = existing.checksum == b64_of_hex(sha256)
            else:
                composite = composite or _composite_of_file(path, size, self.settings.part_size_bytes)
                same = _same_checksum(existing.checksum, composite)
        if same:
            # Written earlier (its retention counted from then): locked already, or locked now.
            lock = self._lock_params()
            if lock and existing.lock_mode is None:
                existing = self._set_retention(existing, lock)
            return StoredObject(**{**existing.__dict__, "already_present": True})
        raise AlreadyStored(f"{self.location(key)} already holds an object ({existing.size} bytes, checksum "
                            f"{existing.checksum}) that is not {path} (SHA-256 {sha256}); refusing to replace it",
                            key, existing)

    def write_once(self) -> bool | None:
        """Whether the bucket has Object Lock enabled (it can only be enabled, never switched off). None when this
        role may not ask (s3:GetBucketObjectLockConfiguration); StorageError when there is no such bucket."""
        try:
            answer = self._call("GET object lock configuration", lambda: self.client.get_object_lock_configuration(
                Bucket=self.bucket))
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == "ObjectLockConfigurationNotFoundError":
                return False
            if _code(exc) in ("AccessDenied", "NotImplemented") or _status(exc) in (403, 501):
                return None
            raise self._fail(exc, "GET object lock configuration") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(exc, "GET object lock configuration") from None
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # -- reading

    def head(self, key: str, version_id: str | None = None) -> StoredObject:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key), "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        try:
            answer = self._call(f"HEAD {key}", lambda: self.client.head_object(**params))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(exc, f"HEAD {key}", key) from None
        checksum = answer.get("ChecksumSHA256")
        # A multipart object's SHA-256 is COMPOSITE (of its parts' digests), not the file's: S3 marks it with
        # ChecksumType and a "-<parts>" suffix, moto with ChecksumType only.
        kind = None
        if checksum:
            kind = "COMPOSITE" if answer.get("ChecksumType") == "COMPOSITE" or "-" in checksum else "FULL_OBJECT"
        sha256, source = None, None
        if kind == "FULL_OBJECT":
            sha256, source = hex_of_b64(checksum), "server"
        elif answer.get("Metadata", {}).get("sha256"):
            sha256, source = answer["Metadata"]["sha256"], "metadata"
        until = answer.get("ObjectLockRetainUntilDate")
        until = until.astimezone(timezone.utc) if until else None
        locked = bool(answer.get("ObjectLockMode") and until and until > datetime.now(timezone.utc)) or \
            answer.get("ObjectLockLegalHoldStatus") == "ON"
        return StoredObject(key=key, size=answer["ContentLength"], location=self.location(key), sha256=sha256,
                            sha256_source=source, checksum=checksum, checksum_type=kind,
                            version_id=answer.get("VersionId"),
                            lock_mode=answer.get("ObjectLockMode"), locked_until=until, read_only=locked)

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        return io.BufferedReader(_ObjectReader(self, key, version_id), buffer_size=READ_CHUNK)

    def open_range(self, key: str, offset: int, version_id: str | None = None) -> BinaryIO:
        return io.BufferedReader(_ObjectReader(self, key, version_id, offset), buffer_size=READ_CHUNK)

    def read_range(self, key: str, offset: int, length: int, version_id: str | None = None) -> bytes:
        if length <= 0:
            return b""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key),
                                  "Range": f"bytes={offset}-{offset + length - 1}"}
        if version_id:
            params["VersionId"] = version_id
        try:
            # The body is read inside the retried call: a connection that breaks mid-range is asked again.
            return self._call(f"GET {key} bytes {offset}+{length}",
                              lambda: self.client.get_object(**params)["Body"].read())
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if _status(exc) == 416:   # a range past the end: the object is shorter than the index says
                return b""
            raise self._fail(exc, f"GET {key}", key) from None

    def list(self, prefix: str = "") -> Iterator[ListedObject]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._root + prefix}
        while True:
            try:
                page = self._call(f"LIST {prefix or '/'}", lambda: self.client.list_objects_v2(**params))
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                raise self._fail(exc, f"LIST {prefix or '/'}") from None
            for item in page.get("Contents", []):
                yield ListedObject(item["Key"][len(self._root):], item["Size"])
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]


class _ObjectReader(io.RawIOBase):
    """A stored object as a stream. A connection that breaks mid-object is resumed where it stopped (a Range
    request pinned to the same version, or the same ETag), a few times, each within the store's retry bound."""

    def __init__(self, store: S3Store, key: str, version_id: str | None, offset: int = 0) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self.version_id = version_id
        self.etag: str | None = None
        self.position = offset   # a reader from ``offset`` asks for that range from its first GET
        self.size: int | None = None
        self.resumes = 0
        self.body: Any = None
        self._get()

    def _get(self) -> None:
        params: dict[str, Any] = {"Bucket": self.store.bucket, "Key": self.store._full(self.key)}
        if self.version_id:
            params["VersionId"] = self.version_id
        elif self.etag:
            params["IfMatch"] = self.etag
        if self.position:
            params["Range"] = f"bytes={self.position}-"
        try:
            answer = self.store._call(f"GET {self.key}", lambda: self.store.client.get_object(**params))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self.store._fail(exc, f"GET {self.key}", self.key) from None
        self.version_id = self.version_id or answer.get("VersionId")
        self.etag = answer.get("ETag")
        if self.size is None:   # the object's size: a ranged answer's length is counted from where it starts
            self.size = self.position + answer["ContentLength"]
        self.body = answer["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                data = self.body.read(len(buffer))
            except (botocore.exceptions.BotoCoreError, OSError) as exc:
                if self.resumes >= MAX_STREAM_RESUMES:
                    raise StorageUnavailable(f"{self.store.location(self.key)}: reading broke off {self.resumes + 1} "
                                             f"times, last at byte {self.position}: {exc}") from None
                self.resumes += 1
                self.body.close()
                self._get()
                continue
            if not data and self.size is not None and self.position < self.size:
                if self.resumes >= MAX_STREAM_RESUMES:
                    raise StorageUnavailable(f"{self.store.location(self.key)}: the object ended at byte "
                                             f"{self.position} of {self.size}")
                self.resumes += 1
                self._get()
                continue
            buffer[:len(data)] = data
            self.position += len(data)
            return len(data)

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
        super().close()


class _FileRange(io.RawIOBase):
    """Bytes [offset, offset + length) of an open file, seekable (botocore rewinds a body to sign and to resend),
    read with pread so that several ranges of one descriptor never share a file position."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self.fd, self.offset, self.length, self.position = fd, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, min(self.length, base + position))
        return self.position

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.length - self.position)
        if want <= 0:
            return 0
        data = os.pread(self.fd, want, self.offset + self.position)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def __len__(self) -> int:
        return self.length


def _hash_range(fd: int, offset: int, length: int, whole: Any) -> bytes:
    """SHA-256 of one part, feeding the whole file's hash in the same read."""
    digest = hashlib.sha256()
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(READ_CHUNK, end - offset), offset)
        if not data:
            raise StorageError(f"the file ended at byte {offset} while {end} were expected: it changed while stored")
        digest.update(data)
        whole.update(data)
        offset += len(data)
    return digest.digest()


def _composite_of_file(path: Path, size: int, part_size: int) -> str:
    part_size = max(part_size, -(-size // MAX_PARTS))
    digests = []
    with open(path, "rb") as fh:
        for offset in range(0, size, part_size):
            digests.append(_hash_range(fh.fileno(), offset, min(part_size, size - offset), hashlib.sha256()))
    return composite_sha256(digests)


def _lock_holds(stored: StoredObject, lock: dict[str, Any]) -> bool:
    return stored.lock_mode == lock["ObjectLockMode"] and stored.locked_until is not None and \
        stored.locked_until >= lock["ObjectLockRetainUntilDate"] - timedelta(seconds=1)


def _same_checksum(reported: str, ours: str) -> bool:
    """Whether a checksum the server reports is ours. A composite one may come with or without its "-<parts>"
    suffix (HEAD and GetObjectAttributes differ; moto leaves it off): the digests must match, and the part counts
    where both are given."""
    got, _, got_parts = reported.partition("-")
    want, _, want_parts = ours.partition("-")
    return got == want and (not got_parts or not want_parts or got_parts == want_parts)


def _hex_or(value: str) -> str:
    try:
        return hex_of_b64(value)
    except ValueError:
        return value


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) if hasattr(exc, "response") else ""


def _status(exc: Exception) -> int:
    if not hasattr(exc, "response"):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        return _status(exc) in TRANSIENT_STATUS or _code(exc) in TRANSIENT_CODES
    # Connection refused or reset, timeouts, a connection closed mid-answer.
    return isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError))


def _describe(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message") or ""
        if _code(exc) == str(_status(exc)):
            # An answer without a body (HEAD's): botocore gives the status as its code, the reason as its message.
            return f"{_status(exc)} {message}".rstrip()
        return f"{_status(exc) or '?'} {_code(exc)}" + (f" ({message})" if message else "")
    return f"{type(exc).__name__}: {exc}"
