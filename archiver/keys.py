"""The archive's signing key: Ed25519, created at first use, kept in the archive readable by its owner only.

Every capture's provenance record (which lists the SHA-256 of every other record of the capture) is signed
with it, and the signature is sealed in the same WARC as a ``metadata`` record ``urn:signature:<capture-id>``
(``signature_record``). Anyone holding the public key (``archiver key``, and every export) can check it with
standard tools:

    warcio extract --payload FILE.warc.gz OFFSET > provenance.json      # the urn:provenance: record
    openssl pkeyutl -verify -pubin -inkey archive-key.pub.pem -rawin -in provenance.json -sigfile signature.bin

Ed25519 because its signatures are deterministic and small, its keys are 32 bytes, and OpenSSL (1.1.1+),
Python's ``cryptography`` and every modern library verify it without parameters to get wrong.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import UserError

DEFAULT_KEY_PATH = Path("keys") / "archive-ed25519.pem"
ALGORITHM = "Ed25519"


class SigningKeyError(UserError):
    """The configured key file cannot be read or is not an Ed25519 private key."""


@dataclass(frozen=True)
class ArchiveKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def public_pem(self) -> str:
        return self.public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def fingerprint(public_raw: bytes) -> str:
    """``sha256:<hex>`` of the 32 raw public-key bytes: short enough to read out over the phone in parts."""
    return "sha256:" + hashlib.sha256(public_raw).hexdigest()


def key_path(archive_dir: Path, settings: Any) -> Path:
    configured = str(settings["signing"]["key_file"]).strip()
    if not configured:
        return archive_dir / DEFAULT_KEY_PATH
    path = Path(configured).expanduser()
    return path if path.is_absolute() else archive_dir / path


def load_or_create(archive_dir: Path, settings: Any) -> ArchiveKey:
    """The archive's key, created (mode 0600, in a 0700 directory) if there is none yet. Two processes creating
    it at once end up with the same key: the file appears whole, by a link that only one of them can make."""
    path = key_path(archive_dir, settings)
    if not path.exists():
        _create(path)
    return _load(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)          # fails if another process made the key first: then theirs is the key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> ArchiveKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key ({exc}); set signing.key_file to the "
                        f"archive's Ed25519 key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(private).__name__.replace('PrivateKey', '')} key; the archive "
                        f"signs with Ed25519 (set signing.key_file to an Ed25519 key, or remove it to make one)")
    return ArchiveKey(private, path)


def signature_record(key: ArchiveKey, capture_id: str, provenance: bytes, provenance_record_id: str) -> dict[str, Any]:
    """The body of the ``urn:signature:<capture-id>`` record: what was signed, by which key, and the signature."""
    return {
        "algorithm": ALGORITHM,
        "signed_record": f"urn:provenance:{capture_id}",
        "signed_record_id": provenance_record_id,
        "signed_payload_sha256": hashlib.sha256(provenance).hexdigest(),
        "public_key": key.public_b64,
        "key_fingerprint": key.fingerprint,
        "signature": base64.b64encode(key.sign(provenance)).decode("ascii"),
    }


def check_signature(record: dict[str, Any], provenance: bytes) -> str | None:
    """None when ``record`` (a parsed signature record) is a valid signature of ``provenance``; else why not."""
    if record.get("algorithm") != ALGORITHM:
        return f"unknown signature algorithm {record.get('algorithm')!r}"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(record["public_key"], validate=True))
        public.verify(base64.b64decode(record["signature"], validate=True), provenance)
    except (KeyError, ValueError, TypeError):
        return "the signature record cannot be read"
    except InvalidSignature:
        return "the provenance record does not match its signature"
    if record.get("key_fingerprint") != fingerprint(base64.b64decode(record["public_key"])):
        return "the key fingerprint does not match the key"
    return None
