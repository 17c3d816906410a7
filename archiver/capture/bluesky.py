"""Bluesky posts: the public AppView's ``app.bsky.feed.getPostThread`` answer as received, the handle -> DID
resolution that named the account, the post's blobs as uploaded (fetched from the author's own data server), its
video's HLS stream, the quoted post, the moderation labels, and the bsky.app page rendered for a screenshot.

Which copy of an image is the original: a post's record cites each image by the CID of its blob, which is the
SHA-256 of the bytes the author uploaded. Those bytes are kept by the author's Personal Data Server (PDS), named by
the DID document (plc.directory for did:plc), and served by ``com.atproto.sync.getBlob``; the capture checks that
they hash to the CID. cdn.bsky.app's ``feed_fullsize`` is the AppView's re-encoding of that blob (resized, JPEG
or WebP, metadata stripped): it is fetched only when the PDS does not give the blob, and recorded as a copy.

Where a handle becomes a DID: a key is ``bluesky:<did>/<rkey>`` so that the handle and DID spellings of a post are
one item. ``urls.parse`` is offline, so it keys a handle spelling by the handle; ``resolve_keys`` (called by
pipeline/submit.py when URLs are added) asks the AppView for the DID and queues the post under its DID key, with
the URL as given kept. A handle is a mutable pointer (it can move to another account later): resolving when the
URL is added pins the account the person meant then. The capture resolves the handle again, records that answer
in the WARC, and notes when the handle now points elsewhere. When the resolution at add fails (offline, the
AppView down), the post stays keyed by its handle, and its capture resolves it.

Unavailability is a finding: getPostThread's ``NotFound`` (or a ``notFoundPost``) is a deleted post when the
author's profile is still there, and the profile answer says why otherwise (``AccountTakedown`` -> removed,
``AccountDeactivated`` -> deactivated, profile not found -> account-deleted); a ``!takedown`` label -> removed, a
``!suspend`` label -> suspended; a ``blockedPost`` -> unavailable. An unreadable or empty answer is never taken
for a deletion: ``unknown-answer``, retried.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from typing import Any, Iterable

from archiver import urls
from archiver.capture import atproto, network, platforms
from archiver.capture.base import CaptureResult, header_value
from archiver.capture.fingerprint import bluesky_fingerprint
from archiver.capture.http import TEXT_LIMIT, Inflater, fetch_chain
from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc

# Failure classes that mean the post is gone, as Bluesky says it (all in store/items.py GONE_CLASSES).
UNAVAILABLE = ("deleted", "not-found", "removed", "suspended", "deactivated", "account-deleted", "unavailable")
_THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
_NOT_FOUND_VIEW = "app.bsky.feed.defs#notFoundPost"
_BLOCKED_VIEW = "app.bsky.feed.defs#blockedPost"
# Labels with which Bluesky's moderation hides an account or a post from everyone (atproto.com/specs/label).
_LABEL_CLASSES = {"!takedown": "removed", "!suspend": "suspended"}
# Bytes of a JSON answer read (a thread of replies can be long; this is plenty for one post and its context).
ANSWER_LIMIT = 8 * 1024 * 1024  # recorded whole up to this; read up to http.TEXT_LIMIT


# --- reading the answers ------------------------------------------------------------------------------------

def classify_resolution(status: int, body: bytes) -> tuple[str | None, str, str]:
    """(DID or None, availability, message) for a ``com.atproto.identity.resolveHandle`` answer."""
    answer = atproto.read_answer(status, body)
    did = (answer.data or {}).get("did") if status == 200 else None
    if isinstance(did, str) and atproto.is_did(did):
        return did, "available", f"the handle resolves to {did}"
    if status == 400 and answer.error == "InvalidRequest":
        return None, "not-found", (f"the handle does not resolve ({answer.message or 'InvalidRequest'}): the "
                                   "account was renamed or deleted")
    return None, "unknown-answer", _unreadable("resolveHandle", answer)


def _unreadable(method: str, answer: atproto.Answer) -> str:
    if answer.status != 200 and answer.status != 400:
        return f"{method} answered HTTP {answer.status}"
    if not answer.readable:
        return f"{method} gave no JSON object (not taken for a deletion)"
    if answer.error:
        return f"{method} answered {answer.error}: {answer.message or 'no message'}"
    return f"{method} gave an answer without what was asked for (not taken for a deletion)"


def classify_thread(status: int, body: bytes) -> tuple[str, dict[str, Any] | None, str]:
    """(availability, the thread view or None, message) for an ``app.bsky.feed.getPostThread`` answer.

    "not-found" here is what the AppView says of the post; ``classify_profile`` tells why it is gone."""
    answer = atproto.read_answer(status, body)
    if status == 400 and answer.error == "NotFound":
        return "not-found", None, f"getPostThread: {answer.message or 'NotFound'}"
    thread = (answer.data or {}).get("thread") if status == 200 else None
    if not isinstance(thread, dict):
        return "unknown-answer", None, _unreadable("getPostThread", answer)
    kind = thread.get("$type")
    if kind == _NOT_FOUND_VIEW or thread.get("notFound") is True:
        return "not-found", thread, "getPostThread: notFoundPost"
    if kind == _BLOCKED_VIEW or thread.get("blocked") is True:
        return "unavailable", thread, "getPostThread: blockedPost (a block between the author and the viewer hides it)"
    post = thread.get("post")
    if kind == _THREAD_VIEW and isinstance(post, dict) and isinstance(post.get("record"), dict):
        for label in atproto.labels_of(post, post.get("author")):
            cls = _LABEL_CLASSES.get(label["val"])
            if cls:
                return cls, thread, f"labelled {label['val']} by {label.get('src') or 'a labeler'}"
        return "available", thread, "available"
    return "unknown-answer", None, _unreadable("getPostThread", answer)


def classify_profile(status: int, body: bytes) -> tuple[str | None, str | None]:
    """Why a post the AppView does not find is gone, from ``app.bsky.actor.getProfile`` of its author:
    (availability, message), or (None, None) when the answer does not say."""
    answer = atproto.read_answer(status, body)
    if status == 200 and answer.data and answer.data.get("did"):
        for label in atproto.labels_of(answer.data):
            cls = _LABEL_CLASSES.get(label["val"])
            if cls:
                return cls, f"the author's account is labelled {label['val']}"
        return "deleted", "the post is gone and its author's account is still there: deleted (or never posted)"
    said = f"{answer.error}: {answer.message or ''}".strip(": ")
    if answer.error == "AccountTakedown":
        return "removed", f"the author's account was taken down ({said})"
    if answer.error == "AccountDeactivated":
        return "deactivated", f"the author's account is deactivated ({said})"
    if status == 400 and answer.error == "InvalidRequest" and "not found" in (answer.message or "").lower():
        return "account-deleted", f"the author's account no longer exists ({said})"
    return None, None


def _record_embeds(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's embed and, for a quote with media, its media part."""
    embed = record.get("embed")
    if not isinstance(embed, dict):
        return []
    media = embed.get("media")
    return [embed] + ([media] if isinstance(media, dict) else [])


def blobs_of(record: Any) -> list[dict[str, Any]]:
    """Every image and video blob a post record cites: kind, cid, mime type, size, alt text."""
    if not isinstance(record, dict):
        return []
    out: list[dict[str, Any]] = []
    for embed in _record_embeds(record):
        kind = embed.get("$type")
        items = []
        if kind == "app.bsky.embed.images":
            items = [("image", i.get("image"), i.get("alt")) for i in embed.get("images") or [] if isinstance(i, dict)]
        elif kind == "app.bsky.embed.video":
            items = [("video", embed.get("video"), embed.get("alt"))]
        for what, blob, alt in items:
            cid = ((blob or {}).get("ref") or {}).get("$link") if isinstance(blob, dict) else None
            if isinstance(cid, str) and cid:
                out.append({"kind": what, "cid": cid, "mime_type": blob.get("mimeType"), "size": blob.get("size"),
                            "alt": alt})
    return out


def _view_embeds(embed: Any) -> list[dict[str, Any]]:
    if not isinstance(embed, dict):
        return []
    media = embed.get("media")
    return [embed] + ([media] if isinstance(media, dict) else [])


def view_media(embed: Any) -> dict[str, dict[str, str]]:
    """What the AppView's view of an embed offers for each blob CID: {cid: {"fullsize": ..., "playlist": ...}}.
    Image CIDs are read from the CDN URL's last path part (``.../<did>/<cid>@jpeg``)."""
    out: dict[str, dict[str, str]] = {}
    for view in _view_embeds(embed):
        if view.get("$type") == "app.bsky.embed.images#view":
            for image in view.get("images") or []:
                full = image.get("fullsize") if isinstance(image, dict) else None
                if isinstance(full, str) and full.startswith("https://"):
                    cid = full.rsplit("/", 1)[-1].split("@", 1)[0]
                    out.setdefault(cid, {})["fullsize"] = full
        elif view.get("$type") == "app.bsky.embed.video#view":
            cid, playlist = view.get("cid"), view.get("playlist")
            if isinstance(cid, str) and isinstance(playlist, str) and playlist.startswith("https://"):
                out.setdefault(cid, {})["playlist"] = playlist
    return out


def quoted_view(post: dict[str, Any]) -> dict[str, Any] | None:
    """The quoted post's ``viewRecord`` (or ``viewNotFound``/``viewBlocked``/``viewDetached``) in the post's embed."""
    embed = post.get("embed")
    if not isinstance(embed, dict):
        return None
    holder = embed.get("record")
    record = holder.get("record") if isinstance(holder, dict) and "record" in holder else holder
    if isinstance(record, dict) and isinstance(record.get("uri"), str):
        return record
    return None


def describe_post(post: dict[str, Any], did: str, rkey: str) -> dict[str, Any]:
    """The indexed facts of a post view (the posts row) and Bluesky's own beside them."""
    record = post.get("record") or {}
    author = post.get("author") or {}
    handle = author.get("handle") if isinstance(author.get("handle"), str) else None
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    langs = record.get("langs") if isinstance(record.get("langs"), list) else []
    quoted = quoted_view(post)
    quoted_value = (quoted or {}).get("value") if isinstance((quoted or {}).get("value"), dict) else {}
    return {
        "author": handle, "author_did": author.get("did"), "author_name": author.get("displayName") or None,
        "text": record.get("text") if isinstance(record.get("text"), str) else None,
        "posted_at": record.get("createdAt"), "indexed_at": post.get("indexedAt"),
        "edited_at": None,  # Bluesky posts cannot be edited: a changed post is a new record
        "lang": langs[0] if langs and isinstance(langs[0], str) else None, "langs": langs,
        "media_count": len(blobs_of(record)),
        "reply_to": ((reply.get("parent") or {}).get("uri")) if isinstance(reply.get("parent"), dict) else None,
        "reply_root": ((reply.get("root") or {}).get("uri")) if isinstance(reply.get("root"), dict) else None,
        "quoted": (quoted or {}).get("uri"),
        "quoted_post": {"uri": quoted.get("uri"), "cid": quoted.get("cid"),
                        "author": (quoted.get("author") or {}).get("handle"),
                        "author_did": (quoted.get("author") or {}).get("did"),
                        "text": quoted_value.get("text"), "posted_at": quoted_value.get("createdAt"),
                        "state": (quoted.get("$type") or "").rsplit("#", 1)[-1] or None} if quoted else None,
        "uri": post.get("uri"), "cid": post.get("cid"),
        "url": f"{urls.BLUESKY_APP}/profile/{handle or did}/post/{rkey}",
        "counts": {k: post.get(k) for k in ("replyCount", "repostCount", "likeCount", "quoteCount") if k in post},
        "labels": atproto.labels_of(post, author),
        "links": _links(record),
    }


def _links(record: dict[str, Any]) -> list[str]:
    """Links the post makes: its facets' link features and an external embed's URI."""
    out: list[str] = []
    for facet in record.get("facets") or []:
        for feature in (facet or {}).get("features") or [] if isinstance(facet, dict) else []:
            uri = feature.get("uri") if isinstance(feature, dict) else None
            if isinstance(uri, str) and uri.startswith(("http://", "https://")):
                out.append(uri)
    for embed in _record_embeds(record):
        uri = (embed.get("external") or {}).get("uri") if isinstance(embed.get("external"), dict) else None
        if isinstance(uri, str) and uri.startswith(("http://", "https://")):
            out.append(uri)
    return list(dict.fromkeys(out))


# --- fetching ----------------------------------------------------------------------------------------------

def _conf(settings: Settings) -> dict[str, Any]:
    return settings["bluesky"]


def split_item(item_id: str) -> tuple[str, str]:
    """(actor, rkey) of a key's id part ``<did or handle>/<rkey>``."""
    actor, _, rkey = item_id.rpartition("/")
    if not actor or not rkey:
        raise CaptureFailed("unsupported-platform", f"{item_id!r} is not a Bluesky post id", retryable=False)
    return actor, rkey


def _actor_in(url: str) -> str | None:
    """The actor a URL as given spells (a handle or a DID), when it is a Bluesky post URL."""
    try:
        parsed = urls.parse(url)
    except urls.BadURL:
        return None
    return split_item(parsed.item_id)[0] if parsed.platform == "bluesky" and parsed.item_id else None


async def _fetch_json(client: Any, url: str, warc: CaptureWarc, settings: Settings,
                      deadline: float) -> dict[str, Any]:
    hops, _ = await fetch_chain(client, url, warc, settings, limit=ANSWER_LIMIT, deadline=deadline, follow=False)
    hop = hops[-1]
    hop["body"] = _decoded(hop)
    return hop


def _decoded(hop: dict[str, Any]) -> bytes:
    """The answer as a reader sees it, inflated when the server compressed it (the record keeps the bytes as
    sent), up to http.TEXT_LIMIT bytes; an answer that does not inflate reads as empty (unknown-answer)."""
    if hop.get("text_sample") is not None:
        return hop["text_sample"]
    raw = hop.get("sample") or b""
    encoding = (header_value(hop["headers"], "content-encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    try:
        return b"".join(Inflater(encoding).feed(raw, TEXT_LIMIT))
    except Exception:  # corrupt or truncated: no answer to read
        return b""


async def _resolve(client: Any, handle: str, warc: CaptureWarc, settings: Settings,
                   deadline: float) -> tuple[str | None, str, str, dict[str, Any]]:
    url = atproto.xrpc_url(_conf(settings)["appview_url"], "com.atproto.identity.resolveHandle", handle=handle)
    hop = await _fetch_json(client, url, warc, settings, deadline)
    did, availability, message = classify_resolution(hop["status"], hop["body"])
    return did, availability, message, hop


def thread_url(did: str, rkey: str, settings: Settings) -> str:
    conf = _conf(settings)
    return atproto.xrpc_url(conf["appview_url"], "app.bsky.feed.getPostThread", uri=atproto.post_uri(did, rkey),
                            depth=conf["reply_depth"], parentHeight=conf["parent_height"])


def profile_url(did: str, settings: Settings) -> str:
    return atproto.xrpc_url(_conf(settings)["appview_url"], "app.bsky.actor.getProfile", actor=did)


async def _pds(client: Any, did: str, warc: CaptureWarc, settings: Settings, deadline: float,
               problems: list[str]) -> str | None:
    """The author's data server, from its DID document (recorded)."""
    doc_url = atproto.did_document_url(did, _conf(settings)["plc_url"])
    if doc_url is None:
        problems.append(f"{did}: no known way to read this DID's document")
        return None
    try:
        hop = await _fetch_json(client, doc_url, warc, settings, deadline)
    except CaptureFailed as exc:
        problems.append(f"DID document {doc_url}: {exc.message}")
        return None
    answer = atproto.read_answer(hop["status"], hop["body"])
    pds = atproto.pds_endpoint(answer.data, did) if hop["status"] == 200 else None
    if pds is None:
        problems.append(f"DID document {doc_url}: no data server for {did} in it (HTTP {hop['status']})")
    return pds


def _payload_sha256(warc: CaptureWarc, record_id: str) -> str | None:
    for record in reversed(warc.records):
        if record["record_id"] == record_id:
            digest = record.get("payload_digest") or ""
            return digest.split(":", 1)[1] if digest.startswith("sha256:") else None
    return None


async def _fetch_blob(client: Any, did: str, blob: dict[str, Any], pds: str | None, fallback: str | None,
                      warc: CaptureWarc, settings: Settings, deadline: float, problems: list[str]) -> dict[str, Any]:
    """One blob at full size: the original from the PDS (checked against its CID), else the CDN's copy."""
    out = {**blob, "source": None, "url": None, "status": None, "cid_verified": None}
    tried: list[str] = []
    if pds:
        tried.append(atproto.xrpc_url(pds, "com.atproto.sync.getBlob", did=did, cid=blob["cid"]))
    if fallback and blob["kind"] == "image":
        tried.append(fallback)
    for n, url in enumerate(tried):
        try:
            hops, problem = await fetch_chain(client, url, warc, settings, limit=settings["video"]["max_bytes"],
                                              deadline=deadline)
        except CaptureFailed as exc:
            problems.append(f"{url}: {exc.message}")
            continue
        last = hops[-1]
        out.update(url=url, status=last["status"], source="pds" if pds and n == 0 else "cdn-copy")
        if problem or last["truncated"] or last["status"] >= 400:
            problems.append(f"{url}: " + (problem or last["truncated_message"] or f"HTTP {last['status']}"))
            continue
        if out["source"] == "pds":
            encoded = header_value(last["headers"], "content-encoding")
            want = atproto.cid_sha256(blob["cid"])
            got = _payload_sha256(warc, last["record_id"])
            out["cid_verified"] = None if encoded or want is None else want == got
            if out["cid_verified"] is False:
                problems.append(f"{url}: the bytes do not hash to the blob's CID {blob['cid']}")
        else:
            problems.append(f"image {blob['cid']}: only the CDN's re-encoded copy could be fetched, not the original")
        return out
    return out


async def _record_video(playlist: str, warc: CaptureWarc, settings: Settings, problems: list[str]) -> dict[str, Any]:
    from archiver.capture.video import record_video  # yt-dlp: loaded only for a post with a video
    try:
        video = await record_video(playlist, warc, settings)
    except CaptureFailed as exc:
        problems.append(f"{playlist}: {exc.message}")
        return {"kind": "hls", "url": playlist, "error": exc.message}
    problems.extend(f"{playlist}: {refused}" for refused in video.get("refused") or [])
    return {"kind": "hls", "url": playlist, "files": video.get("files"), "info_record_id": video.get("info_record_id")}


# --- the capture -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Look:
    """What the AppView said of one post: the resolution, the thread answer, and why it is gone if it is."""
    did: str | None
    availability: str
    message: str
    thread: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    resolution: dict[str, Any] | None = None
    resolution_hop: dict[str, Any] | None = None   # the resolveHandle answer, the main record when nothing else came


async def _look(client: Any, actor: str, rkey: str, warc: CaptureWarc, settings: Settings,
                deadline: float) -> _Look:
    resolution = None
    did = actor
    if not atproto.is_did(actor):
        did, availability, message, hop = await _resolve(client, actor, warc, settings, deadline)
        resolution = {"handle": actor, "did": did, "url": hop["url"], "status": hop["status"], "message": message}
        if did is None:
            return _Look(None, availability, message, resolution=resolution, resolution_hop=hop)
    answer = await _fetch_json(client, thread_url(did, rkey, settings), warc, settings, deadline)
    availability, thread, message = classify_thread(answer["status"], answer["body"])
    if availability == "not-found":
        # The AppView says the same NotFound for a deleted post and a post of a removed account: ask why.
        try:
            profile = await _fetch_json(client, profile_url(did, settings), warc, settings, deadline)
            why, said = classify_profile(profile["status"], profile["body"])
            if why:
                availability, message = why, f"{message}; {said}"
        except CaptureFailed as exc:
            message = f"{message}; the author's profile could not be read ({exc.message})"
    return _Look(did, availability, message, thread, answer, resolution)


async def capture(item_id: str, url: str, warc: CaptureWarc, settings: Settings, browser: Any) -> CaptureResult:
    """Capture the Bluesky post ``item_id`` (``<did or handle>/<rkey>``) into ``warc``."""
    conf = _conf(settings)
    actor, rkey = split_item(item_id)
    deadline = time.monotonic() + settings["capture"]["timeout_seconds"]
    problems: list[str] = []
    media: list[dict[str, Any]] = []
    info: dict[str, Any] = {"platform": "bluesky", "id": item_id}
    verdict = None
    async with network.httpx_client(settings) as client:
        look = await _look(client, actor, rkey, warc, settings, deadline)
        given = _actor_in(url)
        if given and not atproto.is_did(given) and atproto.is_did(actor):
            # Keyed by the DID its handle had when it was added: what does the handle name now? (recorded)
            try:
                now_did, _, msg, hop = await _resolve(client, given, warc, settings, deadline)
                look.resolution = {"handle": given, "did": now_did, "url": hop["url"], "status": hop["status"],
                                   "message": msg, "matches_key": now_did == actor}
                if now_did != actor:
                    problems.append(f"the handle {given} now resolves to {now_did or 'nothing'}, not to {actor} "
                                    "(the post was captured by the DID it was added under)")
            except CaptureFailed as exc:
                problems.append(f"resolving {given}: {exc.message}")
        did = look.did
        info.update(did=did, rkey=rkey, availability=look.availability, message=look.message,
                    resolution=look.resolution)
        post = (look.thread or {}).get("post") if look.availability == "available" else None
        if post is not None and did is not None:
            verdict = platforms.judge_own(platforms.BY_NAME["bluesky"], atproto.post_uri(did, rkey),
                                          post.get("uri") if isinstance(post.get("uri"), str) else None,
                                          "getPostThread answer")
        if verdict is not None and not verdict.ok:
            # Another post's answer: kept as received, neither described nor its blobs fetched as this post's.
            info.update(availability="unknown-answer", message=verdict.message, answer_uri=verdict.item_id)
            post = None
        if post is not None and did is not None:
            info.update(describe_post(post, did, rkey))
            info["fingerprint"] = bluesky_fingerprint(post)
            info["fullsize_source"] = "pds" if conf["fetch_original_blobs"] else "cdn"
            offered = view_media(post.get("embed"))
            pds = await _pds(client, did, warc, settings, deadline, problems) if conf["fetch_original_blobs"] \
                else None
            for blob in blobs_of(post.get("record")):
                views = offered.get(blob["cid"], {})
                media.append(await _fetch_blob(client, did, blob, pds, views.get("fullsize"), warc, settings,
                                               deadline, problems))
                if blob["kind"] == "video" and views.get("playlist"):
                    media.append(await _record_video(views["playlist"], warc, settings, problems))
            quoted = info.get("quoted_post")
            q_parts = atproto.split_post_uri((quoted or {}).get("uri"))
            if quoted and q_parts and conf["fetch_quoted"] and atproto.is_did(q_parts[0]):
                try:
                    q_look = await _look(client, q_parts[0], q_parts[1], warc, settings, deadline)
                except CaptureFailed as exc:
                    problems.append(f"quoted post {quoted['uri']}: {exc.message}")
                    q_look = _Look(q_parts[0], "unknown-answer", exc.message)
                quoted["availability"] = q_look.availability
                q_post = (q_look.thread or {}).get("post") if q_look.availability == "available" else None
                q_blobs = blobs_of(q_post.get("record")) if q_post is not None else []
                if q_post is not None and q_blobs:
                    q_pds = pds if q_parts[0] == did else await _pds(client, q_parts[0], warc, settings, deadline,
                                                                     problems)
                    q_offered = view_media(q_post.get("embed"))
                    for blob in q_blobs:
                        media.append({**await _fetch_blob(client, q_parts[0], blob, q_pds,
                                                          q_offered.get(blob["cid"], {}).get("fullsize"), warc,
                                                          settings, deadline, problems), "of": "quoted"})
    info["media"] = media
    page = None
    page_url = f"{conf['app_url'].rstrip('/')}/profile/{did or actor}/post/{rkey}"
    if browser is not None:
        try:
            page = await browser.capture(page_url, warc)
        except CaptureFailed as exc:
            problems.append(f"post page {page_url}: {exc.message}")
    return _result(item_id, info, look, verdict, problems, page, page_url)


def _result(item_id: str, info: dict[str, Any], look: _Look, verdict: Any, problems: list[str], page: Any,
            page_url: str) -> CaptureResult:
    availability = info["availability"]
    answer = look.answer or look.resolution_hop or {}
    status, failure_class, failure_message = platforms.answer_outcome(verdict, availability, UNAVAILABLE,
                                                                      info["message"], problems, page, "post page")
    quoted_text = (info.get("quoted_post") or {}).get("text") or ""
    text = "\n".join(p for p in (info.get("text") or "", quoted_text) if p) if availability == "available" \
        else info["message"]
    author = info.get("author") or look.did or item_id.rpartition("/")[0]
    title = (f"@{author}: {(info.get('text') or '')[:100]}" if status in ("ok", "partial") and
             availability == "available" else f"Bluesky post {item_id} ({availability})")
    info["fingerprint"] = info.get("fingerprint") if availability == "available" else None
    details = {
        "post": info,
        "platform": verdict.as_dict() if verdict is not None else None,
        "problems": problems,
        "page": {"url": page.final_url, "status": page.status, "record_id": page.main_record_id} if page else None,
        "page_network": page.details.get("network") if page else None,
        "main": {"url": answer.get("url"), "status": answer.get("status"), "ip": answer.get("ip"),
                 "protocol": answer.get("protocol"), "tls": answer.get("tls")},
    }
    outlinks = [{"url": u, "text": "facets"} for u in info.get("links") or []]
    return CaptureResult(status=status, final_url=info.get("url") or page_url,
                         main_record_id=answer.get("record_id"), http_status=answer.get("status"),
                         content_type=header_value(answer.get("headers") or [], "content-type"),
                         failure_class=failure_class, failure_message=failure_message, title=title, text=text,
                         outlinks=outlinks, details=details)


# --- liveness ----------------------------------------------------------------------------------------------

async def check(item_id: str, settings: Settings) -> Any:
    """Whether the post is still there (getPostThread; the profile when it is not), without a WARC."""
    from archiver.capture.liveness import CheckResult, _get as get_limited  # one bounded GET, as checks do
    actor, rkey = split_item(item_id)
    async with network.httpx_client(settings) as client:
        did = actor
        if not atproto.is_did(actor):
            url = atproto.xrpc_url(_conf(settings)["appview_url"], "com.atproto.identity.resolveHandle",
                                   handle=actor)
            response, body = await get_limited(client, url, settings)
            did, availability, message = classify_resolution(response.status_code, body)
            if did is None:
                return CheckResult("bluesky", "failed", availability if availability in UNAVAILABLE
                                   else "unknown-answer", response.status_code, url, [], None, message)
        url = thread_url(did, rkey, settings)
        response, body = await get_limited(client, url, settings)
        availability, thread, message = classify_thread(response.status_code, body)
        if availability == "not-found":
            p_response, p_body = await get_limited(client, profile_url(did, settings), settings)
            why, said = classify_profile(p_response.status_code, p_body)
            if why:
                availability, message = why, f"{message}; {said}"
    post = (thread or {}).get("post") if availability == "available" else None
    if post is not None and post.get("uri") == atproto.post_uri(did, rkey):
        return CheckResult("bluesky", "ok", None, response.status_code, url, [], bluesky_fingerprint(post), message)
    if post is not None:
        return CheckResult("bluesky", "failed", platforms.MISMATCH, response.status_code, url, [], None,
                           f"the getPostThread answer is for {post.get('uri')}, not the requested post")
    cls = availability if availability in UNAVAILABLE else "unknown-answer"
    return CheckResult("bluesky", "failed", cls, response.status_code, url, [], None, message)


# --- resolving handles when URLs are added ------------------------------------------------------------------

async def _resolve_all(handles: list[str], settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    from archiver.capture.liveness import _get as get_limited
    async with network.httpx_client(settings) as client:
        for handle in handles:
            url = atproto.xrpc_url(_conf(settings)["appview_url"], "com.atproto.identity.resolveHandle",
                                   handle=handle)
            try:
                response, body = await asyncio.wait_for(get_limited(client, url, settings),
                                                        settings["network"]["timeout_seconds"])
            except (CaptureFailed, asyncio.TimeoutError):
                continue  # keyed by its handle; the capture resolves it (and records that)
            did, _, _ = classify_resolution(response.status_code, body)
            if did:
                found[handle] = did
    return found


def resolve_keys(parsed: Iterable[urls.ParsedURL], settings: Settings) -> list[urls.ParsedURL]:
    """The URLs with each Bluesky handle spelling keyed by its DID (the URL as given kept), as the AppView
    resolves the handle now. A handle that does not resolve keeps its handle key (see the module's docstring)."""
    parsed = list(parsed)
    handles = sorted({p.item_id.rpartition("/")[0] for p in parsed
                      if p.platform == "bluesky" and p.item_id and not atproto.is_did(p.item_id.rpartition("/")[0])})
    if not handles or not _conf(settings)["resolve_on_add"]:
        return parsed
    # Its own thread and event loop: callers may be inside one already (the workbench) or in none (the CLI).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        dids = pool.submit(asyncio.run, _resolve_all(handles, settings)).result()
    out = []
    for p in parsed:
        actor, _, rkey = (p.item_id or "").rpartition("/")
        did = dids.get(actor) if p.platform == "bluesky" else None
        if did is None:
            out.append(p)
            continue
        item_id, canonical = urls.bluesky_post_id(did, rkey) or (p.item_id, p.canonical_url)
        out.append(dataclasses.replace(p, canonical_url=canonical, key=f"bluesky:{item_id}", item_id=item_id))
    return out



async def resolve_recorded(found: list[tuple[urls.ParsedURL, Any]], warc: CaptureWarc,
                           settings: Settings) -> list[tuple[urls.ParsedURL, Any]]:
    """Bluesky handle spellings found in a capture (links in an article), each keyed by the DID its handle
    resolves to, the resolution recorded into that capture's ``warc``; one that does not resolve keeps its key."""
    deadline = time.monotonic() + settings["capture"]["timeout_seconds"]
    out: list[tuple[urls.ParsedURL, Any]] = []
    dids: dict[str, str | None] = {}
    async with network.httpx_client(settings) as client:
        for parsed, ref in found:
            actor, _, rkey = (parsed.item_id or "").rpartition("/")
            if actor not in dids:
                try:
                    dids[actor] = (await _resolve(client, actor, warc, settings, deadline))[0]
                except CaptureFailed:
                    dids[actor] = None
            built = urls.bluesky_post_id(dids[actor], rkey) if dids[actor] else None
            if built is None:
                out.append((parsed, ref))
                continue
            item_id, canonical = built
            out.append((dataclasses.replace(parsed, canonical_url=canonical, key=f"bluesky:{item_id}",
                                            item_id=item_id), ref))
    return out
