"""The archive's signing key: Ed25519, created at first use, kept in the archive readable by its owner only.

Every capture's provenance record (which lists the SHA-256 of every other record of the capture) is signed
with it, and the signature is sealed in the same WARC as a ``metadata`` record ``urn:signature:<capture-id>``
(``signature_record``). Anyone holding the public key (``archiver key``, and every export) can check it with
standard tools:

    warcio extract --payload FILE.warc.gz OFFSET > provenance.json      # the urn:provenance: record
    openssl pkeyutl -verify -pubin -inkey archive-key.pub.pem -rawin -in provenance.json -sigfile signature.bin

Ed25519 because its signatures are deterministic and small, its keys are 32 bytes, and OpenSSL (1.1.1+),
Python's ``cryptography`` and every modern library verify it without parameters to get wrong.

WACZ exports (wacz.py) need a second key. The WACZ signing spec (anonymous form) says ECDSA, and the verifier
that matters -- wabac.js inside ReplayWeb.page -- accepts only ECDSA P-384 with SHA-256, a base64 SPKI public
key and a raw ``r||s`` signature: an Ed25519 signature is rejected there. So the archive also holds an ECDSA
P-384 key (``signing.wacz_key_file``, default ``keys/wacz-p384.pem``), created at first use like the Ed25519
one, used for nothing but signing WACZ packages. The Ed25519 key vouches for it: ``wacz_key_binding`` is a short
text naming both keys, signed with the Ed25519 key and shipped in every export, so a verifier who trusts the
archive key (the key every capture is signed with) can trust the WACZ key too:

    openssl pkeyutl -verify -pubin -inkey archive-key.pub.pem -rawin \\
        -in wacz-key-binding.txt -sigfile wacz-key-binding.sig

In team mode every runner host holds a copy of the archive's ``keys/``. The index the hosts share (one that
``Index.shared`` says is shared) records each key's fingerprint when it is first made or used (``archive_keys``,
schema 9): a host whose key file is missing, or holds another key, then refuses (``KeyNotHeld``, exit 2, naming the
host to copy ``keys/`` from) instead of making a key of its own -- the captures of one archive are signed by one key.
An index used by one host alone (SQLite) records nothing: there the key file is the archive's, as it always was.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from archiver.errors import UserError

DEFAULT_KEY_PATH = Path("keys") / "archive-ed25519.pem"
ALGORITHM = "Ed25519"
DEFAULT_WACZ_KEY_PATH = Path("keys") / "wacz-p384.pem"
WACZ_ALGORITHM = "ECDSA P-384 / SHA-256"
# P-384 coordinates are 48 bytes: a raw signature is r and s, each left-padded to that width.
_P384_BYTES = 48
# First line of the key binding text: says what the text is, so that a signature made for it can never be taken
# for the signature of anything else the archive key signs (provenance records are JSON).
BINDING_HEADER = "archiver WACZ signing key binding, version 1"


class SigningKeyError(UserError):
    """The configured key file cannot be read or is not an Ed25519 private key."""


class KeyNotHeld(SigningKeyError):
    """Team mode: this host's key file is missing, or holds another key than the one the shared index records for the
    archive. Never answered by making a key: the archive's keys/ is to be copied from the host that made them."""


class BadFingerprint(UserError):
    """A key fingerprint given at the command line (``--expect-key``) that is not ``sha256:`` and 64 hex digits."""


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


def parse_fingerprint(text: str, option: str = "--expect-key") -> str:
    """A fingerprint as ``archiver key`` prints it, in that form (lowercase). Read out over the phone or copied
    from a web page it may come in capitals or with spaces around it; anything else is refused, so that a typo
    never turns a hard check into a comparison that can only fail."""
    value = text.strip().lower()
    digits = value[len("sha256:"):] if value.startswith("sha256:") else ""
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise BadFingerprint(f"{option} {text!r}: expected a key fingerprint as `archiver key` prints it, "
                             f"sha256: and 64 hex digits")
    return value


def key_path(archive_dir: Path, settings: Any) -> Path:
    return _configured_path(archive_dir, settings["signing"]["key_file"], DEFAULT_KEY_PATH)


def _configured_path(archive_dir: Path, configured: Any, default: Path) -> Path:
    configured = str(configured).strip()
    if not configured:
        return archive_dir / default
    path = Path(configured).expanduser()
    return path if path.is_absolute() else archive_dir / path


def load_or_create(archive_dir: Path, settings: Any, index: Any = None) -> ArchiveKey:
    """The archive's key, created (mode 0600, in a 0700 directory) if there is none yet. Two processes creating
    it at once end up with the same key: the file appears whole, by a link that only one of them can make.
    ``index``: the archive's index; when it is shared by several hosts (team mode) the key must be the one it
    records, and is recorded there if none is yet (KeyNotHeld otherwise: see the module's docstring)."""
    path = key_path(archive_dir, settings)
    hold = _held(index, "archive", ALGORITHM, path)
    created = _create(path, Ed25519PrivateKey.generate()) if not path.exists() else False
    key = _load(path)
    hold(key.fingerprint, created)
    return key


def record_existing(archive_dir: Path, settings: Any, index: Any) -> list[str]:
    """Record in ``index`` (a shared one: migrate's and reindex's new team index) the fingerprints of the keys this
    archive directory holds, creating none; KeyNotHeld if it records others already. The names recorded."""
    recorded = []
    if key_path(archive_dir, settings).exists():
        load_or_create(archive_dir, settings, index)
        recorded.append("archive")
    if wacz_key_path(archive_dir, settings).exists():
        load_or_create_wacz_key(archive_dir, settings, index)
        recorded.append("wacz")
    return recorded


def recorded_keys(index: Any) -> dict[str, dict[str, Any]]:
    """The keys the index records, by name (``archive``, ``wacz``): empty for an index that records none."""
    return {row["name"]: dict(row) for row in index.conn.execute("SELECT * FROM archive_keys ORDER BY name")}


def _held(index: Any, name: str, algorithm: str, path: Path) -> Any:
    """For a shared ``index``: KeyNotHeld now if the key file ``path`` is missing while the index records a key; and a
    function that, given the key file's fingerprint (and whether this call made the file), records it if the index
    has none yet or refuses it if the index records another. Does nothing for an index of one host."""
    if index is None or not getattr(index, "shared", False):
        return lambda fingerprint, created: None
    what = "signing key" if name == "archive" else "WACZ key"
    row = recorded_keys(index).get(name)
    if row is not None and not path.exists():
        raise KeyNotHeld(f"no {what} at {path}, and this archive's is {row['fingerprint']} (recorded by "
                         f"{row['host']}): copy the archive's keys/ from {row['host']} to {path.parent}; a new key "
                         f"is never made for an archive that has one")

    def hold(fingerprint: str, created: bool) -> None:
        nonlocal row
        if row is None:
            row = _record(index, name, algorithm, fingerprint)
        if row["fingerprint"] != fingerprint:
            if created:   # made a moment ago by this call, while another host recorded its own: not the archive's
                path.unlink(missing_ok=True)
            raise KeyNotHeld(f"{path} holds the {what} {fingerprint}, but this archive's is {row['fingerprint']} "
                             f"(recorded by {row['host']}): copy the archive's keys/ from {row['host']} to "
                             f"{path.parent} in its place")
    return hold


def _record(index: Any, name: str, algorithm: str, fingerprint: str) -> dict[str, Any]:
    """The key recorded as the archive's ``name`` key unless one is already (first writer wins); the row recorded."""
    from datetime import datetime, timezone
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def work(conn: Any) -> dict[str, Any]:
        conn.execute("INSERT INTO archive_keys (name, algorithm, fingerprint, recorded_at, host) VALUES "
                     "(?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                     (name, algorithm, fingerprint, at, socket.gethostname()))
        return dict(conn.execute("SELECT * FROM archive_keys WHERE name = ?", (name,)).fetchone())
    return index.write(work, serial=False)


def _create(path: Path, private: PrivateKeyTypes) -> bool:
    """Write the key file whole, unless another process made it first. Whether this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
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
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _read_private(path: Path, setting: str, what: str) -> PrivateKeyTypes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key ({exc}); set {setting} to the "
                              f"archive's {what} key") from None


def _load(path: Path) -> ArchiveKey:
    private = _read_private(path, "signing.key_file", "Ed25519")
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


# ---- the WACZ key ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WaczKey:
    """The archive's ECDSA P-384 key, which signs WACZ exports only (see the module docstring for why)."""
    private: ec.EllipticCurvePrivateKey
    path: Path

    @property
    def spki_der(self) -> bytes:
        """The public key as SubjectPublicKeyInfo DER: what WebCrypto's ``importKey("spki")`` reads."""
        return self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.spki_der).decode("ascii")

    @property
    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return spki_fingerprint(self.spki_der)

    def sign(self, message: bytes) -> bytes:
        """ECDSA/SHA-256 over ``message``, as raw ``r||s`` (96 bytes): WebCrypto's form, which wabac.js verifies
        (it rejects the DER form that OpenSSL and ``cryptography`` produce)."""
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P384_BYTES, "big") + s.to_bytes(_P384_BYTES, "big")


def spki_fingerprint(spki_der: bytes) -> str:
    """``sha256:<hex>`` of a public key's SubjectPublicKeyInfo DER (what ``sha256sum`` of the DER file prints)."""
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()


def wacz_key_path(archive_dir: Path, settings: Any) -> Path:
    # .get: settings given as plain dicts (tests, older callers) may predate this setting.
    return _configured_path(archive_dir, settings["signing"].get("wacz_key_file", ""), DEFAULT_WACZ_KEY_PATH)


def load_or_create_wacz_key(archive_dir: Path, settings: Any, index: Any = None) -> WaczKey:
    """The archive's WACZ key, created beside the archive key at first use, the same way (0600, atomic); held to
    the one a shared ``index`` records, as ``load_or_create``."""
    path = wacz_key_path(archive_dir, settings)
    hold = _held(index, "wacz", WACZ_ALGORITHM, path)
    created = _create(path, ec.generate_private_key(ec.SECP384R1())) if not path.exists() else False
    private = _read_private(path, "signing.wacz_key_file", "ECDSA P-384")
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP384R1):
        held = private.curve.name if isinstance(private, ec.EllipticCurvePrivateKey) else \
            type(private).__name__.replace("PrivateKey", "")
        raise SigningKeyError(f"{path} holds a {held} key; WACZ signatures need ECDSA P-384 (set "
                              f"signing.wacz_key_file to a P-384 key, or remove it to make one)")
    key = WaczKey(private, path)
    hold(key.fingerprint, created)
    return key


def check_wacz_signature(spki_der: bytes, signature: bytes, message: bytes) -> str | None:
    """None when ``signature`` (raw ``r||s``) is a valid ECDSA P-384/SHA-256 signature of ``message`` by the key
    ``spki_der``; else why not -- checked the way wabac.js checks it (that curve, that form, nothing else)."""
    try:
        public = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError):
        return "the public key cannot be read (not SubjectPublicKeyInfo DER)"
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP384R1):
        return "the public key is not an ECDSA P-384 key (ReplayWeb.page accepts no other)"
    if len(signature) != 2 * _P384_BYTES:
        return f"the signature is {len(signature)} bytes, not the 96 of a raw P-384 r||s"
    r = int.from_bytes(signature[:_P384_BYTES], "big")
    s = int.from_bytes(signature[_P384_BYTES:], "big")
    try:
        public.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not match"
    return None


def wacz_key_binding(archive_key: ArchiveKey, wacz_key: WaczKey) -> tuple[bytes, bytes]:
    """(text, Ed25519 signature of it): the archive key vouching for the WACZ key. Ed25519 is deterministic, so
    every export carries the same two files for the same pair of keys."""
    text = binding_text(archive_key.fingerprint, wacz_key.fingerprint)
    return text, archive_key.sign(text)


def binding_text(archive_fingerprint: str, wacz_fingerprint: str) -> bytes:
    return (f"{BINDING_HEADER}\n"
            f"archive-key: {ALGORITHM} {archive_fingerprint}\n"
            f"wacz-key: ECDSA-P384 {wacz_fingerprint}\n").encode("ascii")


def check_wacz_key_binding(text: bytes, signature: bytes, archive_public_raw: bytes,
                           wacz_spki_der: bytes) -> str | None:
    """None when ``text`` is the binding of exactly these two keys and the archive key signed it; else why not."""
    try:
        Ed25519PublicKey.from_public_bytes(archive_public_raw).verify(signature, text)
    except ValueError:
        return "the archive key cannot be read"
    except InvalidSignature:
        return "the key binding is not signed by the archive key"
    if text != binding_text(fingerprint(archive_public_raw), spki_fingerprint(wacz_spki_der)):
        return "the key binding names other keys than the archive key and the key that signed the package"
    return None
