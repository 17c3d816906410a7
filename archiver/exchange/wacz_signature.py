"""The signature of a WACZ made by another tool, checked as the WACZ Signing and Verification spec (0.1.0) allows
it, in both forms: anonymous (a public key and an ECDSA signature over datapackage.json's hash) and domain-signed
(the signing certificate's chain, its domain, and an RFC 3161 token over the signature, whose time must be within
ten minutes of ``created``). "valid" means the signature holds with the certificates the package carries; whether
their roots are trusted is reported beside it (``trust``), not judged. Split from exchange/foreign.py, which reads
the rest of a foreign file and calls ``check_signature``."""
from __future__ import annotations

import base64
import binascii
import hashlib
import shutil
import subprocess
import tempfile
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from archiver.custody import keys
from archiver.custody import timestamps as tsa
from archiver.exchange.foreign import WaczCheck, _reason   # foreign.py imports this module when it needs it
from archiver.exchange.wacz import DATAPACKAGE, DIGEST

__all__ = ["check_signature"]

STAMP_SLACK = timedelta(minutes=10)  # WACZ auth spec: `created` within 10 minutes of the signed timestamp
OPENSSL_TIMEOUT = 30.0
SYSTEM_ROOTS = Path("/etc/ssl/certs/ca-certificates.crt")
_SHA256_OID = "2.16.840.1.101.3.4.2.1"


# ---- WACZ signature (WACZ Signing and Verification 0.1.0) -------------------------------------------------

def check_signature(doc: dict[str, Any] | None, dp_bytes: bytes | None, check: WaczCheck) -> None:
    if doc is None:
        check.signature, check.signature_detail = "absent", f"no {DIGEST}: the package is not signed"
        return
    actual = "sha256:" + hashlib.sha256(dp_bytes).hexdigest() if dp_bytes is not None else None
    if doc.get("path") not in (None, DATAPACKAGE):
        check.datapackage.append(f"{DIGEST} names {doc.get('path')!r:.80}, not {DATAPACKAGE}")
    if actual is not None and doc.get("hash") != actual:
        check.datapackage.append(f"{DATAPACKAGE} hashes to {actual}; {DIGEST} states {doc.get('hash')}")
    signed = doc.get("signedData")
    if not isinstance(signed, dict):
        check.signature, check.signature_detail = "absent", f"{DIGEST} carries no signedData: not signed"
        return
    created = str(signed.get("created") or "")
    check.signed_at = created or None
    software = f" by {signed.get('software')}" if signed.get("software") else ""
    if "publicKey" in signed:
        check.signature_kind = "anonymous"
        why = _anonymous(signed, check)
        who = f"an anonymous key {check.signer}" if check.signer else "an anonymous key"
        if why is None:
            check.signature = "valid"
            check.signature_detail = (f"signed{software} with {who} on {created}; who holds that key is known "
                                      "only from outside the package")
    elif "domainCert" in signed or "domain" in signed:
        check.signature_kind = "domain"
        why = _domain(signed, check)
        if why is None:
            check.signature = "valid"
            check.signature_detail = (f"signed{software} for the domain {check.signer} (its TLS certificate), "
                                      f"created {created}, timestamped {check.signed_at}")
    else:
        check.signature = "unsupported"
        check.signature_detail = f"signedData is neither form the spec defines (fields: {sorted(signed)})"
        return
    if why is not None:
        check.signature, check.signature_detail = why
        return
    if signed.get("hash") != doc.get("hash") or (actual is not None and signed.get("hash") != actual):
        check.signature = "invalid"
        check.signature_detail = (f"the signature holds for {signed.get('hash')}, but {DATAPACKAGE} hashes to "
                                  f"{actual}: it signs another package")


def _anonymous(signed: dict[str, Any], check: WaczCheck) -> tuple[str, str] | None:
    try:
        spki = base64.b64decode(str(signed.get("publicKey")), validate=True)
        signature = base64.b64decode(str(signed.get("signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        return "invalid", "publicKey or signature is not base64"
    try:
        public = serialization.load_der_public_key(spki)
    except (ValueError, TypeError):
        return "invalid", "the publicKey cannot be read (not SubjectPublicKeyInfo DER)"
    check.signer = keys.spki_fingerprint(spki)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "unsupported", f"the publicKey is a {type(public).__name__}, not ECDSA as the spec says"
    if not _ecdsa_holds(public, signature, str(signed.get("hash")).encode("utf-8")):
        return "invalid", f"the signature does not match the hash under the package's own key {check.signer}"
    return None


def _ecdsa_holds(public: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """ECDSA/SHA-256, the signature raw ``r||s`` (WebCrypto: ArchiveWeb.page) or DER (OpenSSL: authsign)."""
    size = (public.curve.key_size + 7) // 8
    forms = []
    if len(signature) == 2 * size:
        forms.append(encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                          int.from_bytes(signature[size:], "big")))
    forms.append(signature)
    for form in forms:
        try:
            public.verify(form, message, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def _domain(signed: dict[str, Any], check: WaczCheck) -> tuple[str, str] | None:
    domain = str(signed.get("domain") or "")
    check.signer = domain or None
    try:
        certs = x509.load_pem_x509_certificates(str(signed.get("domainCert") or "").encode("ascii"))
    except ValueError:
        return "invalid", "domainCert is not a readable PEM certificate chain"
    leaf = certs[0]
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "unsupported", f"the domain certificate's key is a {type(public).__name__}, not ECDSA"
    try:
        signature = base64.b64decode(str(signed.get("signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        return "invalid", "the signature is not base64"
    if not _ecdsa_holds(public, signature, str(signed.get("hash")).encode("utf-8")):
        return "invalid", f"the signature does not match the hash under the key of the certificate for {domain}"
    names = _cert_names(leaf)
    if domain not in names:
        return "invalid", f"the certificate is for {', '.join(names) or 'no name'}, not for {domain!r}"
    why = _chain(certs, "domainCert")
    if why:
        return "invalid", why
    created = _when(signed.get("created"))
    if created is None:
        return "invalid", f"created {signed.get('created')!r} is not a date"
    if not leaf.not_valid_before_utc <= created <= leaf.not_valid_after_utc:
        return "invalid", (f"the certificate for {domain} was valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
                           f"{leaf.not_valid_after_utc:%Y-%m-%d}, not on {signed.get('created')}")
    why = _time_signature(signed, created, check)
    if why:
        return why
    check.trust = [_trust(certs, f"the certificate chain for {domain}"),
                   _trust(_pem_certs(signed.get("timestampCert")), "the timestamp authority's chain")]
    return None


def _cert_names(cert: x509.Certificate) -> list[str]:
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [n for n in san.value.get_values_for_type(x509.DNSName) if n not in names]
    except x509.ExtensionNotFound:
        pass
    return names


def _chain(certs: list[x509.Certificate], what: str) -> str | None:
    for child, parent in zip(certs, certs[1:]):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            return f"{what}: {child.subject.rfc4514_string()} is not signed by the next certificate " \
                   f"({parent.subject.rfc4514_string()}): {_reason(exc)}"
    return None


def _pem_certs(text: Any) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(str(text or "").encode("ascii"))
    except ValueError:
        return []


def _when(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _time_signature(signed: dict[str, Any], created: datetime, check: WaczCheck) -> tuple[str, str] | None:
    """The RFC 3161 token in timeSignature: over SHA-256 of the signature (as its base64 text), signed by the
    first certificate of timestampCert, within 10 minutes of `created`."""
    try:
        data = base64.b64decode(str(signed.get("timeSignature") or ""), validate=True)
        token = tsa.parse_reply(data)
    except (binascii.Error, ValueError):
        return "invalid", "timeSignature is not base64"
    except tsa.TimestampError as exc:
        return "invalid", f"timeSignature: {exc}"
    expected = hashlib.sha256(str(signed.get("signature") or "").encode("ascii", "replace")).hexdigest()
    if token.hash_algorithm != _SHA256_OID or token.digest != expected:
        return "invalid", "timeSignature vouches for another value than the signature"
    chain = _pem_certs(signed.get("timestampCert"))
    if not chain:
        return "invalid", "timestampCert is not a readable PEM certificate chain"
    why = _chain(chain, "timestampCert")
    if why:
        return "invalid", why
    why = _openssl_ts_verify(data, expected, token, signed.get("timestampCert"))
    if why is not None:
        return ("unsupported", why) if why.startswith("openssl is not installed") else \
            ("invalid", f"timeSignature does not hold under timestampCert: {why}")
    stamped = datetime.fromtimestamp(token.gen_epoch, timezone.utc)
    if abs(stamped - created) > STAMP_SLACK:
        return "invalid", f"timestamped {token.gen_time}, more than 10 minutes from created {signed.get('created')}"
    check.signed_at = stamped.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _openssl_ts_verify(token_der: bytes, digest_hex: str, token: tsa.Token, chain_pem: Any) -> str | None:
    """``openssl ts -verify`` of the token with the package's timestampCert (authsign's tokens carry no
    certificate: the signer's comes from the chain, ``-untrusted``). As of the token's time."""
    if shutil.which("openssl") is None:
        return "openssl is not installed (Debian package openssl): the timestamp cannot be checked"
    with tempfile.TemporaryDirectory(prefix="archiver-foreign-") as tmp:
        token_file, chain_file = Path(tmp) / "time.tsr", Path(tmp) / "chain.pem"
        token_file.write_bytes(token_der)
        chain_file.write_text(str(chain_pem))
        command = ["openssl", "ts", "-verify", "-digest", digest_hex, "-in", str(token_file), "-CAfile",
                   str(chain_file), "-untrusted", str(chain_file), "-partial_chain", "-attime", str(token.gen_epoch)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT,
                                  env={"LC_ALL": "C", "PATH": "/usr/bin:/bin:/usr/local/bin"})
        except subprocess.TimeoutExpired:
            return f"openssl ts -verify did not finish within {OPENSSL_TIMEOUT:g} s"
    if proc.returncode == 0 and "Verification: OK" in proc.stdout:
        return None
    return tsa._openssl_reason(proc.stderr)


def _trust(certs: list[x509.Certificate], what: str) -> str:
    """Whether a chain ends at (or is issued by) a root in this system's trust store: said, not judged -- a
    root that signed then may be retired now (Let's Encrypt's DST Root CA X3), and a TSA's root is often in
    no browser's store at all."""
    if not certs:
        return f"{what}: none given"
    roots = _system_roots()
    top = certs[-1]
    anchors = [r for r in roots if r.subject == top.subject and r.public_key() == top.public_key()] or \
              [r for r in roots if r.subject == top.issuer]
    if anchors:
        return f"{what} ends at {anchors[0].subject.rfc4514_string()}, a root this system trusts"
    return f"{what} ends at {top.subject.rfc4514_string()}, which this system's trust store does not hold"


_ROOTS: list[x509.Certificate] | None = None


def _system_roots() -> list[x509.Certificate]:
    global _ROOTS
    if _ROOTS is None:
        try:
            with warnings.catch_warnings():   # a few old roots have serial numbers RFC 5280 disallows
                warnings.simplefilter("ignore")
                _ROOTS = x509.load_pem_x509_certificates(SYSTEM_ROOTS.read_bytes())
        except (OSError, ValueError):
            _ROOTS = []
    return _ROOTS
