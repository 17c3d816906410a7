"""The AT Protocol pieces the Bluesky path reads: XRPC answers and their errors, AT URIs, DID documents (where an
account's data server is) and blob CIDs (which name a blob by the SHA-256 of its bytes, so a fetched blob can be
checked against the post that cites it).

Pure functions over what servers sent: everything here is data from a hostile server, so a malformed answer gives
None or an "unknown" verdict, never an exception.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

POST_COLLECTION = "app.bsky.feed.post"
_DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,2000}")
# Multicodec and multihash numbers a blob CID is made of (github.com/multiformats/multicodec).
_CID_V1, _RAW, _DAG_CBOR, _SHA2_256 = 0x01, 0x55, 0x71, 0x12


def is_did(actor: str) -> bool:
    return _DID.fullmatch(actor) is not None


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def split_post_uri(uri: Any) -> tuple[str, str] | None:
    """(actor, rkey) of ``at://<actor>/app.bsky.feed.post/<rkey>``, or None for anything else."""
    if not isinstance(uri, str):
        return None
    m = re.fullmatch(r"at://([^/]+)/app\.bsky\.feed\.post/([^/?#]+)", uri)
    return (m.group(1), m.group(2)) if m else None


def xrpc_url(service: str, method: str, **params: str | int) -> str:
    return f"{service.rstrip('/')}/xrpc/{method}?{urlencode(params)}"


@dataclass(frozen=True)
class Answer:
    """One XRPC answer read: its status, its JSON object (None when the body is not one) and, for an error
    answer, the lexicon's error name and message (``{"error": "NotFound", "message": "..."}``)."""
    status: int
    data: dict[str, Any] | None
    error: str | None
    message: str | None

    @property
    def readable(self) -> bool:
        return self.data is not None


def read_answer(status: int, body: bytes) -> Answer:
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return Answer(status, None, None, None)
    error = data.get("error") if status >= 400 else None
    message = data.get("message") if status >= 400 else None
    return Answer(status, data, error if isinstance(error, str) else None,
                  message if isinstance(message, str) else None)


def pds_endpoint(did_document: Any, did: str) -> str | None:
    """The https URL of the account's Personal Data Server (the ``#atproto_pds`` service of its DID document),
    or None when the document is not this DID's or names no usable server."""
    if not isinstance(did_document, dict) or did_document.get("id") != did:
        return None
    for service in did_document.get("service") or []:
        if not isinstance(service, dict):
            continue
        if str(service.get("id", "")).endswith("#atproto_pds") and service.get("type") == "AtprotoPersonalDataServer":
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and urlsplit(endpoint).scheme == "https" and urlsplit(endpoint).hostname:
                return endpoint.rstrip("/")
    return None


def did_document_url(did: str, plc_directory: str) -> str | None:
    """Where a DID's document is published: the PLC directory for did:plc, the host itself for did:web."""
    if did.startswith("did:plc:"):
        return f"{plc_directory.rstrip('/')}/{did}"
    if did.startswith("did:web:"):
        host = did[len("did:web:"):]
        return f"https://{host}/.well-known/did.json" if re.fullmatch(r"[a-z0-9.-]+", host) else None
    return None


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while at < len(data) and shift < 64:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ValueError("truncated varint")


def cid_sha256(cid: Any) -> str | None:
    """The hex SHA-256 a CIDv1 (base32, ``bafkrei...``) names, or None for a CID of another shape. A blob's CID
    is the hash of its bytes exactly: the bytes that hash to it are the original upload."""
    if not isinstance(cid, str) or not cid.startswith("b") or len(cid) > 200:
        return None
    text = cid[1:].upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
        version, at = _varint(raw, 0)
        codec, at = _varint(raw, at)
        hash_code, at = _varint(raw, at)
        length, at = _varint(raw, at)
    except (ValueError, base64.binascii.Error):
        return None
    if version != _CID_V1 or codec not in (_RAW, _DAG_CBOR) or hash_code != _SHA2_256 or length != 32:
        return None
    digest = raw[at:at + length]
    return digest.hex() if len(digest) == 32 and at + length == len(raw) else None


def labels_of(*views: Any) -> list[dict[str, Any]]:
    """The moderation labels on these views (a post, its author), as the AppView gave them, negations left out."""
    out: list[dict[str, Any]] = []
    for view in views:
        for label in (view or {}).get("labels") or [] if isinstance(view, dict) else []:
            if isinstance(label, dict) and isinstance(label.get("val"), str) and not label.get("neg"):
                out.append({k: label.get(k) for k in ("src", "uri", "val", "cts") if k in label})
    return out
