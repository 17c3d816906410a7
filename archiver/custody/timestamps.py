"""RFC 3161 trusted timestamps of sealed captures: a time-stamping authority (TSA) signs that a file with this
SHA-256 existed at that time -- a date for the evidence that does not rest on the archive's own clock.

Flow. The transaction that indexes a capture queues one ``pending`` row per configured TSA
(``timestamp.tsa_urls``; ``queue_capture``). Once the WARC is sealed the worker asks each TSA
(``stamp_capture``), bounded by ``timestamp.timeout_seconds``; a runner with nothing to capture retries the rows
that are due (``stamp_due``), with backoff. A TSA that is down never fails or holds up a capture: its row stays
``pending`` with attempts, next_attempt_at and last_error, until a token is granted, or until
``timestamp.max_attempts`` make it ``failed``. Captures sealed before a TSA was listed get their rows from
``backfill`` (``archiver timestamp``); rows of a TSA since removed from the list are not asked, and wait.

A request is a DER TimeStampReq for the WARC's SHA-256 with a random nonce and certReq set (so that the TSA's
certificate travels inside the token), POSTed as application/timestamp-query through the network settings and
the private-network guard, like every other fetch. A reply is kept only if it is granted, vouches for that
SHA-256 and that nonce, carries the TSA's certificate, and ``openssl ts -verify`` accepts its signature (and its
chain to ``timestamp.ca_bundle`` when one is set).

Files. The whole reply (the TimeStampResp DER that ``openssl ts -reply`` writes and ``openssl ts -verify -in``
reads) is stored beside the WARC as ``<capture-id>.<n>.tsr`` (n = 1, 2, ...: the TSA's place among the capture's
timestamps), with ``<capture-id>.<n>.tsr.json`` naming the TSA URL it came from, the one fact the token does not
hold. Both are written atomically and made read-only before the index row says ``done``, and a ``timestamped``
ledger entry records the token's SHA-256. ``restore_from_files`` rebuilds the rows from these files and the WARC
alone (reindex). Anyone can check a token without archiver:

    openssl ts -verify -digest <the WARC's sha256> -in <capture-id>.1.tsr -CAfile <the TSA's root>.pem
    openssl ts -reply -in <capture-id>.1.tsr -text        # the time, serial number and TSA

Receipts. A file received from others (exchange/receive.py) is dated through its receipt: the digest sent is the
SHA-256 of ``<key>.receipt.json``, which names the received file's SHA-256, who handed it over, who took it in and
when, so one token dates all of that. Its rows are the same rows (``receipt_id`` set instead of ``capture_id``:
schema 13), queued in the transaction that records the receipt (``queue_receipt``), asked by ``archiver receive``
at once (``stamp_receipt``), retried by ``stamp_due`` and ``archiver timestamp`` like a capture's. The tokens go
beside the receipt, in the same store (``<archive>/received/`` or the bucket), create-only:
``<key>.receipt.json.<n>.tsr`` and its ``.tsr.json``. ``verify`` checks them against the receipt file as it is
now (``check_token``), ``restore_receipt_tokens`` rebuilds their rows (reindex), and ``of_receipt`` lists them.

    openssl ts -verify -data <sha256>.wacz.receipt.json -in <sha256>.wacz.receipt.json.1.tsr -CAfile <the TSA's root>.pem

Why the openssl CLI plus asn1crypto: openssl is what a third party checks with, so the archive checks the same
way, and it verifies RSA and ECDSA TSAs alike (rfc3161ng handles RSA only). asn1crypto (pure Python, no
dependencies, the ASN.1 layer of several signing and certificate tools) writes the request and reads the few
fields the index holds from the reply (status, imprint, serial, time, nonce, certificates), BER or DER, so no
hand-written DER parser has to be trusted with bytes from the network. rfc3161-client would add a compiled
wheel, yet cannot make a request from a digest already computed, nor check a signature without a root.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit


from archiver.custody import ledger
from archiver import logs
from archiver.errors import ArchiverError, CaptureFailed, ConfigError, NotFound

if TYPE_CHECKING:   # httpx is imported where a request is made: config.py imports this module at start-up
    import httpx
# asyncio and asn1crypto too are imported where they are used, for the same reason (`archiver status` and
# `show` read the timestamps table and need neither).

log = logging.getLogger("archiver.custody.timestamps")

QUERY_TYPE = "application/timestamp-query"
# A TimeStampResp is a few kilobytes (a token and a certificate or two); anything far larger is not one.
MAX_REPLY_BYTES = 1 << 20
# Seconds a claimed row stays out of other runners' reach beyond the request timeout: a runner killed while
# asking leaves its rows due again after this.
CLAIM_SLACK_SECONDS = 60.0
# Seconds openssl may take to check one token (it is milliseconds; this bounds a wedged process).
OPENSSL_TIMEOUT = 30.0
TOKEN_SUFFIX = ".tsr"
# TSAs this process found unreachable, until when (time.monotonic()): their rows are not claimed meanwhile, so a
# TSA that is down costs a runner one timeout per retry delay, not one per capture sealed. Per process, on
# purpose: another runner, or the next `archiver run`, finds out for itself.
_down_until: dict[str, float] = {}
SIDECAR_SUFFIX = ".tsr.json"

OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
PKI_STATUS = {0: "granted", 1: "granted with modifications", 2: "rejected", 3: "waiting",
              4: "revocation warning", 5: "revoked"}
# PKIFailureInfo bits (asn1crypto's names, in bit order) in words; a bit not named here is given by number.
FAILURE_INFO = {"bad_alg": "unrecognised algorithm", "bad_request": "bad request",
                "bad_data_format": "bad data format", "time_not_available": "time not available",
                "unaccepted_policy": "policy not accepted", "unaccepted_extensions": "extension not accepted",
                "add_info_not_available": "additional information not available",
                "system_failure": "system failure"}


# ---- errors ------------------------------------------------------------------------------------------------

class TimestampError(Exception):
    """A timestamp could not be obtained or checked. Never fails a capture: the row stays pending."""


class TSAUnreachable(TimestampError):
    """No answer from the TSA (connection, timeout, HTTP error, the private-network guard)."""


class TSARejected(TimestampError):
    """The TSA answered, and refused (a PKIStatus other than granted)."""


class TokenError(TimestampError):
    """A reply or token that cannot be read, or that is not what was asked for."""


class OpensslMissing(TimestampError):
    """The openssl command, which checks every token, is not installed."""


class ReceiptFileError(TimestampError, ArchiverError):
    """A receipt file that cannot be read from its store, or that does not name its receipt: nothing is asked for
    it (a token would date the wrong bytes). Exit 1 at the command line, as a problem found."""

    exit_code = 1


# ---- settings ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimestampSettings:
    tsa_urls: tuple[str, ...]
    ca_bundle: Path | None
    timeout_seconds: float
    retry_seconds: float
    retry_max_seconds: float
    max_attempts: int

    @classmethod
    def from_settings(cls, settings: Any) -> TimestampSettings:
        section = settings["timestamp"]
        check_settings(section)
        bundle = str(section["ca_bundle"]).strip()
        return cls(tuple(u.strip() for u in section["tsa_urls"]), Path(bundle).expanduser() if bundle else None,
                   float(section["timeout_seconds"]), float(section["retry_seconds"]),
                   float(section["retry_max_seconds"]), int(section["max_attempts"]))

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
        return min(self.retry_seconds * 2 ** max(0, attempts - 1), self.retry_max_seconds)


def check_settings(section: Mapping[str, Any]) -> None:
    """Values of the right type that still cannot work (config.py calls this at start-up). Raises ConfigError."""
    seen: set[str] = set()
    for raw in section["tsa_urls"]:
        url = str(raw).strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"timestamp.tsa_urls: {raw!r} is not an http:// or https:// URL of a TSA")
        if url in seen:
            raise ConfigError(f"timestamp.tsa_urls: {url} is listed twice")
        seen.add(url)
    bundle = str(section["ca_bundle"]).strip()
    if bundle:
        path = Path(bundle).expanduser()
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"timestamp.ca_bundle {bundle!r}: {exc.strerror or exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(f"timestamp.ca_bundle {bundle!r} holds no PEM certificate")
    if section["timeout_seconds"] <= 0:
        raise ConfigError("timestamp.timeout_seconds must be more than 0")
    # At least a second: a runner with `--once` retries whatever is due, so a zero delay would retry a TSA
    # that is down for ever.
    if section["retry_seconds"] < 1:
        raise ConfigError("timestamp.retry_seconds must be at least 1")
    if section["retry_max_seconds"] < section["retry_seconds"]:
        raise ConfigError("timestamp.retry_max_seconds must be at least timestamp.retry_seconds")
    if section["max_attempts"] < 1:
        raise ConfigError("timestamp.max_attempts must be at least 1")


# ---- DER: the request, and reading the reply (asn1crypto) ---------------------------------------------------

@functools.cache
def _time_stamp_resp() -> type:
    """RFC 3161's TimeStampResp. asn1crypto 1.5 declares timeStampToken mandatory, yet a refusal carries none
    (RFC 3161 section 2.4.2: OPTIONAL): without this, every refusal would read as an unreadable reply."""
    from asn1crypto import cms, tsp

    class _TimeStampResp(tsp.TimeStampResp):
        _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]
    return _TimeStampResp


def build_request(digest_hex: str, nonce: int) -> bytes:
    """TimeStampReq {version 1, messageImprint {sha256, digest}, nonce, certReq TRUE} in DER."""
    from asn1crypto import tsp
    digest = bytes.fromhex(digest_hex)
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "nonce": nonce,
        "cert_req": True,
    }).dump()


@dataclass(frozen=True)
class Token:
    """What the index holds of a granted reply (and what checks need)."""
    status: int
    hash_algorithm: str            # dotted OID; sha256 for our requests
    digest: str                    # hex: the message imprint, the SHA-256 vouched for
    serial: str                    # 0x..., as openssl prints it
    gen_time: str                  # fixed-width ISO 8601 UTC, like every time in the index
    gen_epoch: int                 # the same, in seconds (openssl's -attime)
    policy: str
    nonce: int | None
    certificates: tuple[bytes, ...]  # DER, as embedded in the token
    tsa_name: str | None           # subject of the TSA's signing certificate


def parse_reply(data: bytes) -> Token:
    """Read a TimeStampResp. Raises TSARejected for a refusal and TokenError for anything unreadable."""
    try:
        return _parse_reply(data)
    except TimestampError:
        raise
    # asn1crypto reads lazily, so its errors come from wherever a field is first touched -- all of them inside
    # _parse_reply -- and mostly as ValueError (with a readable message: "Insufficient data", "Extra data").
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, RecursionError, OverflowError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise TokenError(f"the reply is not a readable RFC 3161 reply ({why})") from None


def _parse_reply(data: bytes) -> Token:
    from asn1crypto import core, tsp
    # strict: bytes after the end of the reply make it unreadable, not ignored.
    reply = _time_stamp_resp().load(data, strict=True)
    status_info = reply["status"]
    status = int(status_info["status"])
    if status not in (0, 1):
        words = [PKI_STATUS.get(status, f"status {status}")]
        words += [text[:200] for text in status_info["status_string"].native or []]   # free text from the TSA
        bits = status_info["fail_info"].native or set()
        words += [word for name, word in FAILURE_INFO.items() if name in bits]
        words += [f"failure bit {b}" for b in sorted(b for b in bits if isinstance(b, int))]
        raise TSARejected(f"the TSA refused: {'; '.join(words)}")
    content_info = reply["time_stamp_token"]
    if isinstance(content_info, core.Void):
        raise TokenError("the TSA granted, and sent no token")
    if content_info["content_type"].dotted != OID_SIGNED_DATA:
        raise TokenError("the token is not CMS signed data")
    signed = content_info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != OID_TST_INFO:
        raise TokenError("the signed content is not a TSTInfo")
    if isinstance(encap["content"], core.Void):
        raise TokenError("the token holds no TSTInfo")
    info = encap["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        raise TokenError("the signed content is not a TSTInfo")
    # The certificates' own bytes, as the TSA embedded them (other kinds of CertificateChoices are not ours).
    embedded = signed["certificates"]
    certificates = () if isinstance(embedded, core.Void) else tuple(
        choice.chosen.dump() for choice in embedded if choice.name == "certificate")
    imprint = info["message_imprint"]
    gen_field = info["gen_time"]
    if not gen_field.contents.endswith(b"Z"):   # RFC 3161 section 2.4.2: genTime MUST be in UTC ("Z")
        raise TokenError(f"the token's time {gen_field.contents.decode('ascii', 'replace')!r} is not in UTC")
    gen = gen_field.native
    if not isinstance(gen, datetime):   # asn1crypto's extended_datetime: year 0, no token of ours
        raise TokenError(f"the token's time {gen_field.contents.decode('ascii', 'replace')!r} cannot be read")
    serial = info["serial_number"].native
    serial_hex = f"{serial:X}"
    return Token(status=status, hash_algorithm=imprint["hash_algorithm"]["algorithm"].dotted,
                 digest=imprint["hashed_message"].native.hex(),
                 serial="0x" + serial_hex.rjust(len(serial_hex) + len(serial_hex) % 2, "0"),   # as openssl prints it
                 gen_time=gen.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), gen_epoch=int(gen.timestamp()),
                 policy=info["policy"].dotted, nonce=info["nonce"].native, certificates=certificates,
                 tsa_name=_signer_name(certificates))


def _signer_name(certificates: Sequence[bytes]) -> str | None:
    """The subject of the certificate allowed to sign timestamps (the TSA's own, not its CA's)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    parsed = []
    for der in certificates:
        try:
            parsed.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    for cert in parsed:
        try:
            if ExtendedKeyUsageOID.TIME_STAMPING in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value:
                return cert.subject.rfc4514_string()
        except (x509.ExtensionNotFound, ValueError):
            continue
    return parsed[0].subject.rfc4514_string() if parsed else None


def read_token(path: Path) -> Token:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    return parse_reply(data)


# ---- openssl: the check a third party makes ----------------------------------------------------------------

def openssl_verify(token_file: Path, digest_hex: str, token: Token, ca_bundle: Path | None) -> str | None:
    """None when ``openssl ts -verify`` accepts the token for this SHA-256, else openssl's reason.

    With ``ca_bundle`` the TSA's certificate must chain to one of its roots. Without one, only the signature is
    checked: the token's own certificates are trusted as given (``-partial_chain``). Certificates are checked as
    of the token's time (``-attime``), so a TSA certificate that has expired since does not void the tokens it
    signed while valid -- the point of a timestamp is to be checked years later. Revocation is not checked."""
    if shutil.which("openssl") is None:
        raise OpensslMissing("the openssl command is not installed (Debian package openssl); tokens cannot be "
                             "checked")
    with tempfile.TemporaryDirectory(prefix="archiver-ts-") as tmp:
        command = ["openssl", "ts", "-verify", "-digest", digest_hex, "-in", str(token_file),
                   "-attime", str(token.gen_epoch)]
        if ca_bundle is not None:
            command += ["-CAfile", str(ca_bundle)]
        else:
            if not token.certificates:
                return "the token holds no certificate to check its signature with"
            embedded = Path(tmp) / "embedded.pem"
            embedded.write_text("".join(_pem(der) for der in token.certificates))
            command += ["-CAfile", str(embedded), "-partial_chain"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT,
                                  env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            return f"openssl ts -verify did not finish within {OPENSSL_TIMEOUT:g} s"
    if proc.returncode == 0 and "Verification: OK" in proc.stdout:
        return None
    return _openssl_reason(proc.stderr)


def _pem(der: bytes) -> str:
    import base64
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def _openssl_reason(stderr: str) -> str:
    """openssl's error lines (pid:error:code:library:function:reason:file:line:data) as one readable phrase."""
    reasons = []
    for line in stderr.splitlines():
        fields = line.split(":", 8)
        if len(fields) >= 6 and fields[1] == "error":
            reason = fields[5] + (f" ({fields[8]})" if len(fields) > 8 and fields[8] else "")
            if reason not in reasons:
                reasons.append(reason)
    return "openssl ts -verify failed: " + ("; ".join(reasons) if reasons else stderr.strip()[-300:] or "no reason given")


# ---- files beside the WARC ---------------------------------------------------------------------------------

def sidecar_of(token: str) -> str:
    """The note beside a token (``<capture-id>.<n>.tsr`` -> ``<capture-id>.<n>.tsr.json``): a path or a name."""
    return token[:-len(TOKEN_SUFFIX)] + SIDECAR_SUFFIX


def token_of(path: str) -> str:
    """The token a token file or its note belongs to (the inverse of ``sidecar_of``; a token names itself)."""
    return path[:-len(SIDECAR_SUFFIX)] + TOKEN_SUFFIX if path.endswith(SIDECAR_SUFFIX) else path


def token_rel_path(warc_rel: str, capture_id: str, n: int) -> str:
    """``warcs/YYYY/MM/DD/<capture-id>.<n>.tsr``, in the sealed WARC's directory."""
    return (Path(warc_rel).parent / f"{capture_id}.{n}{TOKEN_SUFFIX}").as_posix()


def receipt_token_path(receipt_key: str, n: int) -> str:
    """``received/<xx>/<sha256>.<fmt>.receipt.json.<n>.tsr``: beside the receipt, in its store (its key there,
    which is also its path under the archive when the store is the archive directory; a file received before keys
    were its SHA-256 keeps ``received/YYYY/MM/DD/<receipt id>.<fmt>``)."""
    from archiver.exchange.receive import RECEIPT_SUFFIX
    return f"{receipt_key}{RECEIPT_SUFFIX}.{n}{TOKEN_SUFFIX}"


def receipt_store(archive_dir: Path, settings: Any, receipt: Mapping[str, Any], read_only: bool = False) -> Any:
    """The store a receipt, its received file and its tokens are in: its own (``store``: team mode), or the
    archive directory (keys ``received/...``), as exchange/receive.py put them."""
    if receipt["store"]:
        from archiver.store import blobs
        return blobs.from_url(receipt["store"], settings, archive_dir=archive_dir, read_only=read_only)
    from archiver.store.local import LocalStore
    return LocalStore(archive_dir, read_only=read_only)


def receipt_file(store: Any, receipt: Mapping[str, Any]) -> bytes:
    """The bytes of a receipt's ``<key>.receipt.json`` in ``store``, checked to be this receipt's (it names its ID
    and the received file's SHA-256 and size). ReceiptFileError otherwise. What exports, verify and timestamps read
    of a receipt file, so that they agree on which file is a receipt's."""
    from archiver.exchange.receive import MAX_RECEIPT_BYTES, RECEIPT_SUFFIX
    from archiver.store.blobs import NotStored, StorageError
    key = receipt["path"] + RECEIPT_SUFFIX
    try:
        with store.open(key) as stream:
            data = stream.read(MAX_RECEIPT_BYTES + 1)
    except NotStored:
        raise ReceiptFileError(f"the receipt file {store.location(key)} is not there") from None
    except (StorageError, OSError) as exc:
        raise ReceiptFileError(f"cannot read the receipt file {store.location(key)}: {exc}") from None
    try:
        if len(data) > MAX_RECEIPT_BYTES:
            raise ValueError(f"larger than {MAX_RECEIPT_BYTES} bytes")
        named = json.loads(data.decode("utf-8"))["receipt"]
        names = (named["id"], named["sha256"], named["size"])
    except (ValueError, KeyError, TypeError):
        raise ReceiptFileError(f"the receipt file {store.location(key)} is not a receipt") from None
    if names != (receipt["id"], receipt["sha256"], receipt["size"]):
        raise ReceiptFileError(f"the receipt file {store.location(key)} names receipt {names[0]} of SHA-256 "
                               f"{names[1]} ({names[2]} bytes), not {receipt['id']} of {receipt['sha256']} "
                               f"({receipt['size']} bytes)")
    return data


def write_readonly(path: Path, data: bytes) -> None:
    """Write a file whole or not at all, never over an existing one, fsynced, then read-only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.link(tmp, path)   # FileExistsError when the name is taken: then that file stays as it is
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sidecar(row: Mapping[str, Any], token_rel: str, token_sha256: str, token: Token) -> bytes:
    subject = {"receipt_id": row["receipt_id"]} if row.get("receipt_id") else {"capture_id": row["capture_id"]}
    return (json.dumps({
        **subject, "tsa_url": row["tsa_url"], "digest_algorithm": "sha256",
        "digest": row["digest"], "token": Path(token_rel).name, "token_sha256": token_sha256,
        "gen_time": token.gen_time, "serial": token.serial, "tsa_name": token.tsa_name,
        "requested_at": row["created_at"], "stored_at": _now(),
    }, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# ---- the index ---------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _after(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def queue_capture(conn: sqlite3.Connection, capture_id: str, digest: str, tsa_urls: Iterable[str]) -> int:
    """One pending row per TSA for a capture just sealed, due now. Call in the transaction that indexes it, so
    that a capture is never indexed without its timestamps queued. Returns how many were queued."""
    return _queue(conn, "capture_id", capture_id, digest, tsa_urls)


def queue_receipt(conn: sqlite3.Connection, receipt_id: str, digest: str, tsa_urls: Iterable[str]) -> int:
    """One pending row per TSA for a receipt just recorded (``digest``: the SHA-256 of its ``.receipt.json``), due
    now. Call in the transaction that records the receipt, as ``queue_capture``. Returns how many were queued."""
    return _queue(conn, "receipt_id", receipt_id, digest, tsa_urls)


def _queue(conn: sqlite3.Connection, column: str, subject_id: str, digest: str, tsa_urls: Iterable[str]) -> int:
    now = _now()
    queued = 0
    for url in tsa_urls:
        queued += conn.execute(
            f"INSERT INTO timestamps ({column}, tsa_url, digest, state, attempts, next_attempt_at, "
            "created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT DO NOTHING",
            (subject_id, url, digest, now, now, now)).rowcount
    return queued


def of_capture(conn: sqlite3.Connection, capture_id: str) -> list[dict[str, Any]]:
    """A capture's timestamps, in the order they were queued (for show and verify)."""
    return [dict(r) for r in conn.execute("SELECT * FROM timestamps WHERE capture_id = ? ORDER BY id",
                                          (capture_id,))]


def of_receipt(conn: sqlite3.Connection, receipt_id: str) -> list[dict[str, Any]]:
    """A receipt's timestamps, in the order they were queued: rows as ``of_capture``'s (``receipt_id`` set,
    ``capture_id`` None; ``SHOWN_FIELDS`` are what show prints), for show and verify."""
    return [dict(r) for r in conn.execute("SELECT * FROM timestamps WHERE receipt_id = ? ORDER BY id",
                                          (receipt_id,))]


def summary(conn: sqlite3.Connection, tsa_urls: Sequence[str]) -> dict[str, Any]:
    """Timestamps by state, and the pending ones whose TSA is no longer in ``timestamp.tsa_urls``: runners
    claim rows of configured TSAs only, so these wait (not retried, not given up) until it is listed again."""
    counts = {name.split(":", 1)[1]: n for name, n in conn.execute(   # kept by triggers (engines/sqlite.py, schema 6)
        "SELECT name, n FROM tallies WHERE name LIKE 'timestamps:%'")}
    orphaned = {url: n for url, n in conn.execute(
        "SELECT tsa_url, COUNT(*) FROM timestamps WHERE state = 'pending' GROUP BY tsa_url ORDER BY tsa_url")
        if url not in tsa_urls}
    return {"done": counts.get("done", 0), "pending": counts.get("pending", 0), "failed": counts.get("failed", 0),
            "pending_unconfigured": orphaned}


def token_paths(conn: sqlite3.Connection) -> set[str]:
    """Every token file the index names (for verify's search for files it does not)."""
    return {r[0] for r in conn.execute("SELECT token_path FROM timestamps WHERE token_path IS NOT NULL")}


def _claim(index: Any, cfg: TimestampSettings, limit: int, capture_id: str | None = None,
           receipt_id: str | None = None) -> list[dict[str, Any]]:
    """Take due pending rows (of one capture, of one receipt, or any), moving their next attempt past the request's
    time limit under the write lock, so that no other runner asks the same TSA for the same token meanwhile. Each
    comes with where its file is (a capture's WARC, a receipt's key and store) and ``n``, its place among its
    subject's timestamps (the token's name)."""
    urls = [u for u in cfg.tsa_urls if _down_until.get(u, 0.0) <= time.monotonic()]
    if not urls:
        return []
    now = _now()
    # Configured TSAs only: a row of a TSA since removed from the list is not asked of a TSA the operator dropped;
    # it waits, and status and show say so.
    where = f"t.state = 'pending' AND t.next_attempt_at <= ? AND t.tsa_url IN ({', '.join('?' * len(urls))})"
    params: list[Any] = [now, *urls]
    if capture_id is not None:
        where += " AND t.capture_id = ?"
        params.append(capture_id)
    if receipt_id is not None:
        where += " AND t.receipt_id = ?"
        params.append(receipt_id)
    claimed = []
    with index.transaction() as conn:
        # A row is of a capture or of a receipt (one of the two IDs is NULL, and NULL = NULL is never true).
        rows = conn.execute(
            f"SELECT t.*, c.warc_path, c.warc_store, c.url, c.job_id, r.path AS receipt_path, "
            f"r.store AS receipt_store, (SELECT COUNT(*) FROM timestamps o WHERE (o.capture_id = t.capture_id "
            f"OR o.receipt_id = t.receipt_id) AND o.id <= t.id) AS n "
            f"FROM timestamps t LEFT JOIN captures c ON c.id = t.capture_id "
            f"LEFT JOIN receipts r ON r.id = t.receipt_id WHERE {where} "
            f"ORDER BY t.next_attempt_at, t.id LIMIT ?", [*params, limit]).fetchall()
        hold = _after(cfg.timeout_seconds + CLAIM_SLACK_SECONDS)
        for row in rows:
            if conn.execute("UPDATE timestamps SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? "
                            "WHERE id = ? AND state = 'pending' AND next_attempt_at = ?",
                            (hold, now, row["id"], row["next_attempt_at"])).rowcount:
                claimed.append({**dict(row), "attempts": row["attempts"] + 1})
    return claimed


@dataclass
class Attempt:
    """How one request for a token ended (of a capture, or of a receipt: ``capture_id`` None)."""
    capture_id: str | None
    tsa_url: str
    state: str                 # done | pending | failed
    token_path: str | None = None
    gen_time: str | None = None
    error: str | None = None
    receipt_id: str | None = None


async def stamp_capture(index: Any, archive_dir: Path, settings: Any, capture_id: str) -> list[Attempt]:
    """Ask every configured TSA for a token of one capture, just sealed (all at once, each bounded by
    ``timestamp.timeout_seconds``). What fails stays pending for ``stamp_due``."""
    cfg = TimestampSettings.from_settings(settings)
    rows = _claim(index, cfg, len(cfg.tsa_urls), capture_id=capture_id)
    return await _stamp_rows(index, archive_dir, settings, cfg, rows)


async def stamp_receipt(index: Any, archive_dir: Path, settings: Any, receipt_id: str) -> list[Attempt]:
    """Ask every configured TSA for a token of one receipt, just recorded, as ``stamp_capture`` does for a capture.
    What fails stays pending for ``stamp_due`` (a runner) and ``archiver timestamp``."""
    cfg = TimestampSettings.from_settings(settings)
    rows = _claim(index, cfg, len(cfg.tsa_urls), receipt_id=receipt_id)
    return await _stamp_rows(index, archive_dir, settings, cfg, rows)


async def stamp_due(index: Any, archive_dir: Path, settings: Any, limit: int = 1) -> list[Attempt]:
    """Retry up to ``limit`` pending timestamps that are due (a runner calls this when no capture is due).
    Rows of TSAs no longer configured are left as they are."""
    cfg = TimestampSettings.from_settings(settings)
    rows = _claim(index, cfg, limit)
    return await _stamp_rows(index, archive_dir, settings, cfg, rows)


# What show and the timestamp command print of a row (the rest is bookkeeping).
SHOWN_FIELDS = ("tsa_url", "state", "gen_time", "serial", "tsa_name", "token_path", "token_sha256", "attempts",
                "next_attempt_at", "last_error")


@dataclass
class Backfilled:
    """One capture's (or receipt's: ``capture_id`` None) timestamps after ``backfill``: its rows of the configured
    TSAs, as the index now has them."""
    capture_id: str | None
    queued: int                                   # rows queued by this backfill (TSAs it had no row for)
    rows: list[dict[str, Any]] = field(default_factory=list)
    granted: int = 0                              # tokens granted by this backfill's requests
    receipt_id: str | None = None

    @property
    def complete(self) -> bool:
        return all(r["state"] == "done" for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"capture_id": self.capture_id, "receipt_id": self.receipt_id, "queued": self.queued,
                "granted": self.granted, "complete": self.complete, "timestamps": self.rows}


def missing_captures(conn: sqlite3.Connection, tsa_urls: Sequence[str]) -> list[str]:
    """Sealed captures that have no row for one or more of ``tsa_urls`` (sealed before a TSA was configured),
    oldest first."""
    return _missing(conn, "captures", "capture_id", tsa_urls)


def is_receipt(conn: sqlite3.Connection, ident: str) -> bool:
    """Whether ``ident`` is a receipt's ID (receipts are named by their whole ID only)."""
    return conn.execute("SELECT 1 FROM receipts WHERE id = ?", (ident,)).fetchone() is not None


def missing_receipts(conn: sqlite3.Connection, tsa_urls: Sequence[str]) -> list[str]:
    """Receipts that have no row for one or more of ``tsa_urls`` (recorded before a TSA was configured), oldest
    first."""
    return _missing(conn, "receipts", "receipt_id", tsa_urls)


def _missing(conn: sqlite3.Connection, table: str, column: str, tsa_urls: Sequence[str]) -> list[str]:
    if not tsa_urls:
        return []
    marks = ", ".join("?" * len(tsa_urls))
    return [r[0] for r in conn.execute(
        f"SELECT s.id FROM {table} s WHERE (SELECT COUNT(*) FROM timestamps t WHERE t.{column} = s.id "
        f"AND t.tsa_url IN ({marks})) < ? ORDER BY s.id", (*tsa_urls, len(tsa_urls)))]


async def backfill(index: Any, archive_dir: Path, settings: Any, capture_ids: Sequence[str],
                   receipt_ids: Sequence[str] = ()) -> list[Backfilled]:
    """Timestamp captures sealed (and receipts recorded) before a TSA was configured, and retry their pending
    rows: queue a pending row for each configured TSA one has none for, then ask for every due row of these
    captures and receipts now, one after another (its TSAs at once, as after sealing). A token of an old capture is
    still worth having: it proves the WARC existed by then. Rows already pending and not yet due keep their
    backoff (a runner may be asking). A receipt's digest is its receipt file's SHA-256, read from its store and
    checked to name the receipt (ReceiptFileError, before anything is queued)."""
    cfg = TimestampSettings.from_settings(settings)
    receipt_digests = {}
    for receipt_id in receipt_ids:   # the store is read outside the write transaction
        receipt = index.conn.execute("SELECT * FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
        if receipt is None:
            raise NotFound(f"no receipt with ID {receipt_id!r}")
        digest = hashlib.sha256(receipt_file(receipt_store(archive_dir, settings, receipt), receipt)).hexdigest()
        earlier = {r["digest"] for r in of_receipt(index.conn, receipt_id)}
        if earlier - {digest}:
            # A token for these bytes would date a receipt that is not the one recorded: verify names it.
            raise ReceiptFileError(f"the receipt file of {receipt_id} has SHA-256 {digest}, not the "
                                   f"{', '.join(sorted(earlier))} it was first timestamped with (see `archiver verify`)")
        receipt_digests[receipt_id] = digest
    with index.transaction() as conn:
        results = []
        for capture_id in capture_ids:
            row = conn.execute("SELECT warc_sha256 FROM captures WHERE id = ?", (capture_id,)).fetchone()
            if row is None:   # before anything is queued: nothing changes for a wrong ID
                raise NotFound(f"no capture with ID {capture_id!r} (see `archiver list`)")
            results.append(Backfilled(capture_id, queue_capture(conn, capture_id, row[0], cfg.tsa_urls)))
        for receipt_id, digest in receipt_digests.items():
            results.append(Backfilled(None, queue_receipt(conn, receipt_id, digest, cfg.tsa_urls),
                                      receipt_id=receipt_id))
    for result in results:
        if result.receipt_id is not None:
            attempts = await stamp_receipt(index, archive_dir, settings, result.receipt_id)
            rows = of_receipt(index.conn, result.receipt_id)
        else:
            attempts = await stamp_capture(index, archive_dir, settings, result.capture_id)
            rows = of_capture(index.conn, result.capture_id)
        result.granted = sum(a.state == "done" for a in attempts)
        asked = {a.tsa_url for a in attempts}
        for row in rows:
            if row["tsa_url"] not in cfg.tsa_urls:
                continue
            shown = {k: row[k] for k in SHOWN_FIELDS}
            if row["state"] == "pending" and row["tsa_url"] not in asked:
                shown["last_error"] = (f"not asked now: {row['tsa_url']} did not answer for an earlier capture"
                                       if _down_until.get(row["tsa_url"], 0.0) > time.monotonic() else
                                       f"not asked now: next try at {row['next_attempt_at']}") \
                    + (f" (last error: {row['last_error']})" if row["last_error"] else "")
            result.rows.append(shown)
    return results


async def _stamp_rows(index: Any, archive_dir: Path, settings: Any, cfg: TimestampSettings,
                      rows: list[dict[str, Any]]) -> list[Attempt]:
    import asyncio
    if not rows:
        return []
    from archiver.capture.network import httpx_client  # the capture package is heavy; only needed when asking
    async with httpx_client(settings) as client:
        return list(await asyncio.gather(*(_stamp_one(index, archive_dir, cfg, client, row, settings)
                                           for row in rows)))


@dataclass(frozen=True)
class _Subject:
    """What a claimed row dates -- a capture's sealed WARC or a receipt file -- and where its token goes."""
    label: str                     # "capture <id>" | "receipt <id>": for logs
    token_rel: str                 # the token's path as indexed
    ledger_keys: dict[str, Any]    # what its ``timestamped`` entry is filed under
    log_keys: dict[str, Any]
    store_url: str | None          # the store it is put into, beside the file it dates (None: see in_store)
    in_store: bool                 # False: written in place under the archive (a capture's WARC in warcs/)
    key: str                       # its key in that store

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> _Subject:
        if row.get("receipt_id"):
            # A receipt's tokens always go through its store (the archive directory's, or the bucket): put
            # create-only beside the receipt, as the receipt itself was.
            rel = receipt_token_path(row["receipt_path"], row["n"])
            return cls(f"receipt {row['receipt_id']}", rel, {}, {"receipt_id": row["receipt_id"]},
                       row["receipt_store"], True, rel)
        from archiver.store.archive import warc_key
        rel = token_rel_path(row["warc_path"], row["capture_id"], row["n"])
        return cls(f"capture {row['capture_id']}", rel,
                   {"capture_id": row["capture_id"], "job_id": row["job_id"], "url": row["url"]},
                   {"capture_id": row["capture_id"]}, row["warc_store"], bool(row["warc_store"]), warc_key(rel))


async def _stamp_one(index: Any, archive_dir: Path, cfg: TimestampSettings, client: httpx.AsyncClient,
                     row: dict[str, Any], settings: Any = None) -> Attempt:
    import asyncio
    from archiver.store.blobs import StorageError
    subject = _Subject.of(row)
    token_rel = subject.token_rel
    beside = _BesideObject(archive_dir, settings, subject) if subject.in_store else None
    try:
        if beside is not None:
            await asyncio.to_thread(beside.fetch)
        token, token_sha256 = await _obtain(archive_dir, cfg, client, row, token_rel,
                                            beside.local if beside is not None else None)
        if beside is not None:
            await asyncio.to_thread(beside.put, token_sha256)
    except StorageError as exc:
        return _record_failure(index, cfg, row, f"token {token_rel}: {exc}", unreachable=False)
    except (TimestampError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError):
            message = f"token file {token_rel}: {exc.strerror or exc}"
        return _record_failure(index, cfg, row, message, unreachable=isinstance(exc, TSAUnreachable))
    detail = {"tsa_url": row["tsa_url"], "digest": row["digest"], "token_path": token_rel,
              "token_sha256": token_sha256, "gen_time": token.gen_time, "serial": token.serial,
              "tsa_name": token.tsa_name, "attempts": row["attempts"]}
    if row.get("receipt_id"):
        detail["receipt"] = row["receipt_id"]   # as the `received` entry names it
    try:
        with index.transaction() as conn:
            done = conn.execute(
                "UPDATE timestamps SET state = 'done', token_path = ?, token_sha256 = ?, gen_time = ?, serial = ?, "
                "tsa_name = ?, last_error = NULL, next_attempt_at = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'pending'",
                (token_rel, token_sha256, token.gen_time, token.serial, token.tsa_name, _now(), row["id"])).rowcount
            if done:
                ledger.append(conn, "timestamped", **subject.ledger_keys, detail=detail)
    except sqlite3.OperationalError as exc:
        # The token is stored; the row, claimed with a hold, comes due again, and that attempt adopts the file.
        logs.event(log, logging.ERROR, "timestamp-unrecorded", f"{subject.label}: token {token_rel} "
                   f"stored but the index could not record it ({exc}); recorded at the next attempt",
                   **subject.log_keys, tsa_url=row["tsa_url"])
        return Attempt(row["capture_id"], row["tsa_url"], "pending", token_rel, token.gen_time, str(exc),
                       row.get("receipt_id"))
    if beside is not None:
        beside.release()
    logs.event(log, logging.INFO, "timestamped", f"{subject.label} timestamped by {row['tsa_url']} at "
               f"{token.gen_time}", **subject.log_keys, tsa_url=row["tsa_url"], token=token_rel)
    return Attempt(row["capture_id"], row["tsa_url"], "done", token_rel, token.gen_time,
                   receipt_id=row.get("receipt_id"))


class _BesideObject:
    """The token of a capture whose WARC is an object in a store goes beside it in that store (key: the token's
    path without "warcs/", as the WARC's), and a receipt's beside the receipt in its store. It is made in
    tmp/tokens/ as a local token is made in warcs/ (written whole, checked, read-only), put create-only (the store
    checks its SHA-256), then the index row says ``done``, then the local copies go. A runner stopped on the way
    leaves the local copy, or the object, which the next attempt adopts (``fetch``): never a second token under
    one name."""

    def __init__(self, archive_dir: Path, settings: Any, subject: _Subject) -> None:
        from archiver.store import blobs
        from archiver.store.local import LocalStore
        self.store = blobs.from_url(subject.store_url, settings, archive_dir=archive_dir) if subject.store_url \
            else LocalStore(archive_dir)   # a receipt kept under the archive directory
        self.key, self.sidecar_key = subject.key, sidecar_of(subject.key)
        self.local = archive_dir / "tmp" / "tokens" / Path(subject.token_rel).name
        self.local_sidecar = self.local.with_name(sidecar_of(self.local.name))

    def fetch(self) -> None:
        """A token already in the store (put by an attempt that stopped before the index said so) comes back
        here, to be adopted as a local one would."""
        from archiver.store.blobs import NotStored
        self.local.parent.mkdir(parents=True, exist_ok=True)
        for key, path in ((self.key, self.local), (self.sidecar_key, self.local_sidecar)):
            if path.exists():
                continue
            try:
                with self.store.open(key) as stream:
                    data = stream.read(MAX_REPLY_BYTES + 1)
            except NotStored:
                continue
            write_readonly(path, data)

    def put(self, token_sha256: str) -> None:
        self.store.put_file(self.key, self.local, token_sha256)
        if self.local_sidecar.exists():
            self.store.put_file(self.sidecar_key, self.local_sidecar,
                                hashlib.sha256(self.local_sidecar.read_bytes()).hexdigest())

    def release(self) -> None:
        self.local.unlink(missing_ok=True)
        self.local_sidecar.unlink(missing_ok=True)


async def _obtain(archive_dir: Path, cfg: TimestampSettings, client: httpx.AsyncClient, row: dict[str, Any],
                  token_rel: str, path: Path | None = None) -> tuple[Token, str]:
    """A checked token stored at ``token_rel`` (with its sidecar), or at ``path`` when given: (token, SHA-256 of
    the token file)."""
    import asyncio
    path = path or archive_dir / token_rel
    if path.exists():
        # An earlier attempt stored it and stopped before the index said so (a kill, a full disk): the file is
        # evidence already, never overwritten; kept if it is this TSA's token for this capture.
        return await asyncio.to_thread(_adopt, path, cfg, row, token_rel)
    nonce = secrets.randbits(63)
    query = build_request(row["digest"], nonce)
    try:
        # httpx's timeout bounds each read; this bounds the whole exchange (a TSA trickling its answer).
        reply = await asyncio.wait_for(_post(client, row["tsa_url"], query, cfg.timeout_seconds),
                                       cfg.timeout_seconds)
    except asyncio.TimeoutError:
        raise TSAUnreachable(f"no answer from the TSA within {cfg.timeout_seconds:g} s") from None
    token = parse_reply(reply)
    _check_answer(token, row["digest"], nonce)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.check")
    try:
        # openssl reads a file: check the reply before it takes the token's name.
        staged.write_bytes(reply)
        why = await asyncio.to_thread(openssl_verify, staged, row["digest"], token, cfg.ca_bundle)
    finally:
        staged.unlink(missing_ok=True)
    if why is not None:
        raise TokenError(f"the TSA's token does not verify: {why}")
    token_sha256 = hashlib.sha256(reply).hexdigest()
    await asyncio.to_thread(write_readonly, path, reply)
    await asyncio.to_thread(write_readonly, path.with_name(sidecar_of(path.name)),
                            _sidecar(row, token_rel, token_sha256, token))
    return token, token_sha256


def _adopt(path: Path, cfg: TimestampSettings, row: dict[str, Any], token_rel: str) -> tuple[Token, str]:
    sidecar = path.with_name(sidecar_of(path.name))
    data = path.read_bytes()
    token = parse_reply(data)
    if sidecar.exists():
        try:
            tsa_url = json.loads(sidecar.read_text("utf-8")).get("tsa_url")
        except ValueError:
            tsa_url = None
        if tsa_url != row["tsa_url"]:
            raise TokenError(f"{token_rel} already exists and is not from {row['tsa_url']}; it is left as it is")
    if token.digest != row["digest"]:
        raise TokenError(f"{token_rel} already exists and does not vouch for this "
                         f"{'receipt' if row.get('receipt_id') else 'capture'}; it is left as it is")
    why = openssl_verify(path, row["digest"], token, cfg.ca_bundle)
    if why is not None:
        raise TokenError(f"{token_rel} already exists and does not verify ({why}); it is left as it is")
    token_sha256 = hashlib.sha256(data).hexdigest()
    if not sidecar.exists():
        write_readonly(sidecar, _sidecar(row, token_rel, token_sha256, token))
    return token, token_sha256


async def _post(client: httpx.AsyncClient, url: str, query: bytes, timeout: float) -> bytes:
    import httpx
    try:
        async with client.stream("POST", url, content=query, headers={"Content-Type": QUERY_TYPE},
                                 timeout=timeout) as response:
            if response.status_code != 200:
                raise TSAUnreachable(f"the TSA answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    raise TokenError(f"the TSA's answer is over {MAX_REPLY_BYTES} bytes: not a timestamp reply")
            return bytes(body)
    except httpx.TimeoutException:
        raise TSAUnreachable(f"no answer from the TSA within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise TSAUnreachable(f"cannot reach the TSA: {exc or type(exc).__name__}") from None
    except CaptureFailed as exc:   # the private-network guard (and nothing else raises it here)
        raise TSAUnreachable(exc.message) from None


def _check_answer(token: Token, digest: str, nonce: int) -> None:
    if token.hash_algorithm != OID_SHA256:
        raise TokenError(f"the TSA answered with hash algorithm {token.hash_algorithm}, not the SHA-256 asked for")
    if token.digest != digest:
        raise TokenError(f"the TSA's token vouches for {token.digest}, not the SHA-256 asked for ({digest})")
    if token.nonce != nonce:
        # A replayed or misrouted answer: not the one to this request.
        raise TokenError("the TSA's token does not carry the nonce of the request")
    if not token.certificates:
        raise TokenError("the TSA sent no certificate although asked to: its token could not be checked from the "
                         "archive alone")


def _record_failure(index: Any, cfg: TimestampSettings, row: dict[str, Any], message: str,
                    unreachable: bool) -> Attempt:
    gave_up = row["attempts"] >= cfg.max_attempts
    next_at = None if gave_up else _after(cfg.backoff(row["attempts"]))
    state = "failed" if gave_up else "pending"
    if unreachable:
        _down_until[row["tsa_url"]] = time.monotonic() + cfg.backoff(row["attempts"])
    try:
        with index.transaction() as conn:
            conn.execute("UPDATE timestamps SET state = ?, next_attempt_at = ?, last_error = ?, updated_at = ? "
                         "WHERE id = ? AND state = 'pending'", (state, next_at, message[:1000], _now(), row["id"]))
            if unreachable and next_at is not None:
                # A TSA that is down is down for every capture and receipt: its other due rows wait as long,
                # rather than each costing a runner a timeout now. Their attempts are not counted.
                conn.execute("UPDATE timestamps SET next_attempt_at = ? WHERE tsa_url = ? AND state = 'pending' "
                             "AND next_attempt_at < ?", (next_at, row["tsa_url"], next_at))
    except sqlite3.OperationalError as exc:
        # The row was claimed with a hold: it comes due again by itself.
        message += f" (and the index could not record it: {exc})"
    subject = _Subject.of(row)
    logs.event(log, logging.WARNING, "timestamp-failed", f"{subject.label}: no timestamp from "
               f"{row['tsa_url']} (attempt {row['attempts']}): {message}"
               + ("; giving up" if gave_up else f"; retrying at {next_at}"),
               **subject.log_keys, tsa_url=row["tsa_url"], attempt=row["attempts"], state=state)
    return Attempt(row["capture_id"], row["tsa_url"], state, error=message, receipt_id=row.get("receipt_id"))


# ---- checking (verify) -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenProblem:
    kind: str        # timestamp-missing | timestamp-altered | timestamp-invalid | index-altered
    path: str
    detail: str


def check_token(archive_dir: Path, row: Mapping[str, Any], warc_sha256: str, ca_bundle: Path | None,
                conn: sqlite3.Connection | None = None, store: Any = None) -> list[TokenProblem]:
    """The checks of one ``done`` timestamp: the file is there and is the one indexed, it vouches for the
    capture's SHA-256 (``warc_sha256``; for a receipt's row, the SHA-256 of its receipt file as it is now), and
    openssl accepts its signature (and chain, with ``ca_bundle``). With ``conn``, a token that vouches for another
    file is named by the capture or receipt that file is. ``store``: the token is an object there, beside the
    capture's WARC or the receipt (it is read into a temporary file for openssl)."""
    rel = row["token_path"] or "(no token path)"
    if store is not None and row["token_path"]:
        from archiver.store.blobs import StorageError
        try:
            data = object_bytes(store, rel)
        except StorageError as exc:   # refused or away: a problem of this token, named; the check goes on
            return [TokenProblem("unreadable", rel, f"cannot read the token from {store.url}: {exc}")]
        if data is None:
            return [TokenProblem("timestamp-missing", rel, f"the token from {row['tsa_url']} is not in "
                                 f"{store.url}")]
        with tempfile.TemporaryDirectory(prefix="archiver-token-") as tmp:
            copy = Path(tmp) / Path(rel).name
            copy.write_bytes(data)
            return _check_token_file(copy, rel, data, row, warc_sha256, ca_bundle, conn)
    path = archive_dir / rel
    if not row["token_path"] or not path.is_file():
        return [TokenProblem("timestamp-missing", rel, f"the token from {row['tsa_url']} is not there")]
    return _check_token_file(path, rel, path.read_bytes(), row, warc_sha256, ca_bundle, conn)   # a few kilobytes


def object_bytes(store: Any, rel: str) -> bytes | None:
    """A token or sidecar object beside a WARC in a store (a few kilobytes); None when there is none."""
    from archiver.store.archive import warc_key
    from archiver.store.blobs import NotStored
    try:
        with store.open(warc_key(rel)) as stream:
            return stream.read(MAX_REPLY_BYTES + 1)
    except NotStored:
        return None


def _check_token_file(path: Path, rel: str, data: bytes, row: Mapping[str, Any], warc_sha256: str,
                      ca_bundle: Path | None, conn: sqlite3.Connection | None) -> list[TokenProblem]:
    problems = []
    if hashlib.sha256(data).hexdigest() != row["token_sha256"]:
        problems.append(TokenProblem("timestamp-altered", rel, f"the token file's SHA-256 is "
                                     f"{hashlib.sha256(data).hexdigest()}, the index recorded {row['token_sha256']}"))
    try:
        token = parse_reply(data)
    except TimestampError as exc:
        return problems + [TokenProblem("timestamp-invalid", rel, f"not a readable granted token: {exc}")]
    own = "this receipt file's" if row.get("receipt_id") else "this capture's"
    if token.digest != warc_sha256:
        whose = _whose(conn, token.digest, row) if conn is not None else None
        return problems + [TokenProblem("timestamp-invalid", rel, f"the token vouches for SHA-256 {token.digest} "
                                        f"({whose or 'no file of this archive'}), not {own} {warc_sha256}")]
    if row["digest"] != warc_sha256:
        problems.append(TokenProblem("index-altered", rel, f"the timestamp row's digest {row['digest']} is not "
                                     f"{own} SHA-256"))
    try:
        why = openssl_verify(path, warc_sha256, token, ca_bundle)
    except OpensslMissing as exc:
        return problems + [TokenProblem("timestamp-invalid", rel, f"cannot be checked: {exc}")]
    if why is not None:
        problems.append(TokenProblem("timestamp-invalid", rel, why + ("" if ca_bundle else
                                     " (signature only: timestamp.ca_bundle is not set)")))
    if token.gen_time != row["gen_time"] or token.serial != row["serial"]:
        problems.append(TokenProblem("index-altered", rel, f"the index says {row['gen_time']} serial {row['serial']}, "
                                     f"the token {token.gen_time} serial {token.serial}"))
    return problems


def _whose(conn: sqlite3.Connection, digest: str, row: Mapping[str, Any]) -> str | None:
    """The file of this archive with this SHA-256, in words: a capture's WARC, or a receipt file (known by the
    digest its timestamps were asked for; ``row``'s own receipt file as it was, when that file has changed)."""
    hit = conn.execute("SELECT id FROM captures WHERE warc_sha256 = ? LIMIT 1", (digest,)).fetchone()
    if hit:
        return f"the WARC of capture {hit[0]}"
    hit = conn.execute("SELECT receipt_id FROM timestamps WHERE digest = ? AND receipt_id IS NOT NULL LIMIT 1",
                       (digest,)).fetchone()
    if hit and hit[0] == row.get("receipt_id"):
        return "this receipt file as it was when timestamped: it has changed since"
    return f"the receipt file of receipt {hit[0]}" if hit else None


# ---- rebuilding from the files (reindex) -------------------------------------------------------------------

@dataclass
class Restored:
    """What ``restore_from_files`` found beside one WARC."""
    rows: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (token path, why)


def count_done(conn: sqlite3.Connection, capture_id: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM timestamps WHERE capture_id = ? AND state = 'done'",
                        (capture_id,)).fetchone()[0]


def restore_from_files(conn: sqlite3.Connection, archive_dir: Path, capture: Mapping[str, Any],
                       store: Any = None) -> Restored:
    """Rebuild a capture's ``done`` timestamps from the token files beside its WARC, each with a
    ``timestamped`` ledger entry (``"restored": true``). Call in the transaction that indexes the capture, after
    inserting it (``capture``: its row: id, warc_path, warc_sha256, job_id, url). ``store``: the WARC is an object
    there, and its tokens are the objects beside it.

    A token is restored only if it vouches for this WARC's SHA-256 (a token swapped in from another capture is
    skipped and named); the signature is not checked here -- ``archiver verify`` does that, and names it. The TSA
    URL comes from the sidecar; without one it is recorded as ``unknown:<token file name>``. Pending timestamps
    left no file and are not recreated."""
    warc_rel = capture["warc_path"]
    directory = Path(warc_rel).parent
    prefix = f"{capture['id']}."
    if store is not None:
        from archiver.store.archive import warc_key
        keys_beside = (item.key for item in store.list(warc_key((directory / prefix).as_posix())))
        found = [(directory / Path(k).name).as_posix() for k in keys_beside if k.endswith(TOKEN_SUFFIX)]

        def read(rel: str) -> bytes:
            data = object_bytes(store, rel)
            if data is None:
                raise FileNotFoundError(rel)
            return data
    else:
        found = [p.relative_to(archive_dir).as_posix()
                 for p in (archive_dir / directory).glob(f"{capture['id']}.*{TOKEN_SUFFIX}")]

        def read(rel: str) -> bytes:
            return (archive_dir / rel).read_bytes()

    return _restore(conn, found, read, prefix, capture["warc_sha256"], "capture_id", capture["id"],
                    {"capture_id": capture["id"], "job_id": capture.get("job_id"), "url": capture.get("url")}, {},
                    "this capture's WARC")


def restore_receipt_tokens(conn: sqlite3.Connection, store: Any, receipt: Mapping[str, Any]) -> Restored:
    """Rebuild a receipt's ``done`` timestamps from the tokens beside its receipt file in ``store`` (the store the
    receipt is in: ``receipt_store``, i.e. ``LocalStore(<archive>)`` or the bucket), each with a ``timestamped``
    ledger entry (``"restored": true``, ``"receipt": <id>``), as ``restore_from_files`` does for a capture. Call in
    the transaction that restores the receipt's row, after inserting it (``receipt``: its row: id, sha256, path).

    The digest the tokens must vouch for is the SHA-256 of the receipt file as it is in the store now, which must
    name this receipt (else nothing is restored, and the reason is in ``skipped``); a token vouching for anything
    else is skipped and named."""
    from archiver.exchange.receive import RECEIPT_SUFFIX
    result = Restored()
    receipt_key = receipt["path"] + RECEIPT_SUFFIX
    prefix = Path(receipt_key).name + "."
    found = [item.key for item in store.list(receipt_key + ".") if item.key.endswith(TOKEN_SUFFIX)]
    if not found:
        return result
    try:
        digest = hashlib.sha256(receipt_file(store, receipt)).hexdigest()
    except ReceiptFileError as exc:
        result.skipped += [(rel, f"its receipt file cannot be checked: {exc}") for rel in found]
        return result

    def read(rel: str) -> bytes:
        data = object_bytes(store, rel)
        if data is None:
            raise FileNotFoundError(rel)
        return data

    return _restore(conn, found, read, prefix, digest, "receipt_id", receipt["id"], {},
                    {"receipt": receipt["id"]}, "this receipt file", result)


def _restore(conn: sqlite3.Connection, found: list[str], read: Any, prefix: str, digest: str, column: str,
             subject_id: str, ledger_keys: dict[str, Any], detail_extra: dict[str, Any], what: str,
             result: Restored | None = None) -> Restored:
    """The rows and ledger entries of the token files ``found`` (paths as indexed, each named ``<prefix><n>.tsr``,
    read with ``read``) that vouch for ``digest``, in the order of their n."""
    result = result if result is not None else Restored()

    def order(rel: str) -> tuple[int, str]:
        name = Path(rel).name
        middle = name[len(prefix):-len(TOKEN_SUFFIX)]
        return (int(middle), name) if middle.isdigit() else (1 << 30, name)

    for rel in sorted(found, key=order):
        name = Path(rel).name
        try:
            data = read(rel)
            token = parse_reply(data)
        except (TimestampError, OSError) as exc:
            result.skipped.append((rel, f"not a readable token: {exc}"))
            continue
        if token.digest != digest:
            result.skipped.append((rel, f"vouches for SHA-256 {token.digest}, not {what}"))
            continue
        meta: dict[str, Any] = {}
        try:
            loaded = json.loads(read(sidecar_of(rel)).decode("utf-8"))
            meta = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            pass
        tsa_url = meta.get("tsa_url") or f"unknown:{name}"
        token_sha256 = hashlib.sha256(data).hexdigest()
        created = meta.get("requested_at") or token.gen_time
        stored = meta.get("stored_at") or token.gen_time
        inserted = conn.execute(
            f"INSERT INTO timestamps ({column}, tsa_url, digest, state, token_path, token_sha256, gen_time, "
            "serial, tsa_name, attempts, created_at, updated_at) VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?, 1, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (subject_id, tsa_url, token.digest, rel, token_sha256, token.gen_time, token.serial, token.tsa_name,
             created, stored)).rowcount
        if not inserted:
            result.skipped.append((rel, f"a second token from {tsa_url} for {what}"))
            continue
        ledger.append(conn, "timestamped", **ledger_keys,
                      detail={"tsa_url": tsa_url, "digest": token.digest, "token_path": rel,
                              "token_sha256": token_sha256, "gen_time": token.gen_time, "serial": token.serial,
                              "tsa_name": token.tsa_name, **detail_extra, "restored": True})
        result.rows += 1
    return result
