"""Bluesky posts: URL spellings and their key, the real AppView answers of the corpus through our parsers, and the
path end to end through the CLI and the fixture world (public.api.bsky.app, plc.directory, the authors' data
servers, cdn.bsky.app, video.bsky.app, bsky.app) by their real host names."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver import urls
from archiver.capture import atproto, bluesky
from archiver.capture.fingerprint import bluesky_fingerprint
from archiver.errors import BadURL
from conftest import capture_and_show as _capture, sealed_warc
from warcutil import read_records

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or REPO.parent / "shared" / "corpus")
REAL_ANSWERS = sorted((CORPUS / "json" / "bluesky").glob("*.json")) if (CORPUS / "json" / "bluesky").is_dir() else []
SPELLINGS = CORPUS / "url_spellings.json"
needs_corpus = pytest.mark.skipif(not REAL_ANSWERS, reason=f"no Bluesky answers in {CORPUS / 'json' / 'bluesky'} "
                                                           "(set ARCHIVER_CORPUS to the corpus folder)")

DID = "did:plc:evacwatchlevantledger7qq"
HANDLE = "evacwatch.bsky.social"
POST = "3lbq2evac7k2a"        # two images, quotes QUOTED
VIDEO_POST = "3lbq2vide5s2b"
QUOTED = "3lbpzmedics2c"
KEY = f"bluesky:{DID}/{POST}"
ARTICLE = "https://www.levantledger.example/2026/bluesky-embed.html"


# --- keys --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    f"https://bsky.app/profile/{DID}/post/{POST}",
    f"https://bsky.app/profile/{DID}/post/{POST}/?ref_src=embed",
    f"https://bsky.app/profile/{DID.replace(':', '%3A')}/post/{POST}",
    f"at://{DID}/app.bsky.feed.post/{POST}",
    f"AT://{DID}/app.bsky.feed.post/{POST}",
    f"https://embed.bsky.app/embed/{DID}/app.bsky.feed.post/{POST}?id=123",
    f"https://main.bsky.dev/profile/{DID}/post/{POST}",
    f"https://www.bsky.app/profile/{DID}/post/{POST}",
])
def test_did_spellings_are_one_key(url):
    parsed = urls.parse(url)
    assert (parsed.key, parsed.kind, parsed.canonical_url) == (KEY, "post", f"https://bsky.app/profile/{DID}/post/{POST}")
    assert parsed.url == url  # as given, kept


def test_a_handle_spelling_keys_by_handle_offline_case_folded():
    parsed = urls.parse(f"https://bsky.app/profile/EvacWatch.Bsky.Social/post/{POST}")
    assert parsed.key == f"bluesky:{HANDLE}/{POST}"
    assert urls.parse(f"at://{HANDLE}/app.bsky.feed.post/{POST}").key == parsed.key


@pytest.mark.parametrize("url,words", [
    (f"at://{DID}/app.bsky.feed.like/{POST}", "only when it names a Bluesky post"),
    (f"at://{DID}", "only when it names a Bluesky post"),
    ("ftp://example.org/file", "only http://, https:// and at://"),
])
def test_other_schemes_and_records_are_refused_in_one_line(url, words):
    with pytest.raises(BadURL) as err:
        urls.parse(url)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_profiles_and_odd_record_keys_are_not_posts():
    assert urls.parse(f"https://bsky.app/profile/{DID}").key is None
    assert urls.parse(f"https://bsky.app/profile/{HANDLE}/post/..").key is None
    assert urls.parse("https://bsky.app/profile/nodot/post/3lbq2evac7k2a").key is None  # a handle is a domain


# Posts whose video is the quoted post's: yt-dlp's id is the quoted post (what it downloads), our key the post named.
QUOTES_A_VIDEO = {"https://bsky.app/profile/dannybhoix.bsky.social/post/3l6oe5mtr2c2j": "3l6oe5mtr2c2j"}


@pytest.mark.skipif(not SPELLINGS.is_file(), reason=f"no URL corpus: {SPELLINGS} does not exist")
def test_the_url_spellings_of_yt_dlps_bluesky_tests_key_their_post():
    entries = {u: e for u, e in json.loads(SPELLINGS.read_text(encoding="utf-8")).items()
               if u != "_about" and e.get("extractor") == "Bluesky"}
    assert len(entries) >= 10
    checked = 0
    for url, entry in entries.items():
        parsed = urls.parse(url)
        assert parsed.kind == "post" and parsed.key.startswith("bluesky:"), url
        rkey = parsed.item_id.rpartition("/")[2]
        assert url.rstrip("/").endswith(rkey)
        # yt-dlp's id is the post's record key, except where the post embeds a YouTube or Vimeo video (then it
        # is that video's id: what the URL leads to, not what it names).
        if len(entry["id"]) == 13 and entry["id"][0] in "234567":
            assert rkey == QUOTES_A_VIDEO.get(url, entry["id"]), url
            checked += 1
    assert checked >= 7


def test_check_target_takes_an_at_uri_without_a_host():
    assert urls.check_target(f"at://{DID}/app.bsky.feed.post/{POST}", allow_private=False) == []


# --- the AppView's answers ---------------------------------------------------------------------------------

@needs_corpus
@pytest.mark.parametrize("path", REAL_ANSWERS, ids=lambda p: p.name)
def test_real_getpostthread_answers_read(path):
    body = path.read_bytes()
    availability, thread, message = bluesky.classify_thread(200, body)
    assert availability == "available", message
    post = thread["post"]
    actor, rkey = atproto.split_post_uri(post["uri"])
    info = bluesky.describe_post(post, actor, rkey)
    assert info["author"] == post["author"]["handle"] and info["posted_at"] == post["record"]["createdAt"]
    blobs = bluesky.blobs_of(post["record"])
    assert info["media_count"] == len(blobs)
    offered = bluesky.view_media(post.get("embed"))
    for blob in blobs:
        assert atproto.cid_sha256(blob["cid"]) is not None and len(atproto.cid_sha256(blob["cid"])) == 64
        if blob["kind"] == "image":
            assert offered[blob["cid"]]["fullsize"].startswith("https://cdn.bsky.app/img/feed_fullsize/")
    if info["quoted"]:
        assert info["quoted_post"]["uri"] == info["quoted"] and info["quoted_post"]["author"]
    assert bluesky_fingerprint(post).startswith("fp1:bluesky:")
    # Counts are not content: another like does not change the fingerprint.
    assert bluesky_fingerprint({**post, "likeCount": 10 ** 6}) == bluesky_fingerprint(post)
    # An answer for a post of the same shape with another text is another fingerprint.
    other = json.loads(body)["thread"]["post"]
    other["record"]["text"] = "edited"
    assert bluesky_fingerprint(other) != bluesky_fingerprint(post)


@pytest.mark.parametrize("status,body,want", [
    (400, b'{"error":"NotFound","message":"Post not found: at://x"}', "not-found"),
    (200, b'{"thread":{"$type":"app.bsky.feed.defs#notFoundPost","uri":"at://x","notFound":true}}', "not-found"),
    (200, b'{"thread":{"$type":"app.bsky.feed.defs#blockedPost","uri":"at://x","blocked":true,"author":{}}}',
     "unavailable"),
    (200, b"", "unknown-answer"),
    (200, b"<html>rate limited</html>", "unknown-answer"),
    (200, b"[]", "unknown-answer"),
    (200, b'{"thread":{"$type":"app.bsky.feed.defs#threadViewPost"}}', "unknown-answer"),
    (502, b'{"error":"UpstreamFailure"}', "unknown-answer"),
    (429, b'{"error":"RateLimitExceeded"}', "unknown-answer"),
    (400, b'{"error":"InvalidRequest","message":"Error: uri must be a valid at-uri"}', "unknown-answer"),
])
def test_thread_answers_are_classified_and_never_a_network_failure_taken_for_a_deletion(status, body, want):
    assert bluesky.classify_thread(status, body)[0] == want


@pytest.mark.parametrize("status,body,want", [
    (200, b'{"did":"did:plc:x","handle":"a.b","labels":[]}', "deleted"),
    (200, b'{"did":"did:plc:x","labels":[{"val":"!takedown","src":"did:plc:m"}]}', "removed"),
    (200, b'{"did":"did:plc:x","labels":[{"val":"!takedown","neg":true}]}', "deleted"),
    (400, b'{"error":"AccountTakedown","message":"Account has been suspended"}', "removed"),
    (400, b'{"error":"AccountDeactivated","message":"Account is deactivated"}', "deactivated"),
    (400, b'{"error":"InvalidRequest","message":"Profile not found"}', "account-deleted"),
    (500, b"", None),
])
def test_why_a_post_is_gone_comes_from_its_authors_profile(status, body, want):
    assert bluesky.classify_profile(status, body)[0] == want


def test_handle_resolution_answers():
    assert bluesky.classify_resolution(200, b'{"did":"did:plc:abc"}')[:2] == ("did:plc:abc", "available")
    assert bluesky.classify_resolution(400, b'{"error":"InvalidRequest","message":"Unable to resolve handle"}')[:2] \
        == (None, "not-found")
    assert bluesky.classify_resolution(200, b'{"did":"https://evil"}')[:2] == (None, "unknown-answer")
    assert bluesky.classify_resolution(503, b"")[:2] == (None, "unknown-answer")


def test_did_documents_and_cids():
    doc = {"id": DID, "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                                   "serviceEndpoint": "https://morel.us-east.host.bsky.network"}]}
    assert atproto.pds_endpoint(doc, DID) == "https://morel.us-east.host.bsky.network"
    assert atproto.pds_endpoint(doc, "did:plc:other") is None            # another DID's document
    assert atproto.pds_endpoint({**doc, "service": [{**doc["service"][0], "serviceEndpoint": "http://x"}]}, DID) is None
    assert atproto.pds_endpoint("not a document", DID) is None
    assert atproto.did_document_url("did:web:example.com", "https://plc.directory") == \
        "https://example.com/.well-known/did.json"
    # A blob's CID is the SHA-256 of its bytes: the world's files are named by theirs.
    import hashlib
    for blob in (REPO / "scripts" / "demo_site" / "world" / "bluesky" / "blobs").iterdir():
        assert atproto.cid_sha256(blob.stem) == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert atproto.cid_sha256("bafyinvalid") is None and atproto.cid_sha256(None) is None


# --- end to end through the fixture world ------------------------------------------------------------------

@pytest.mark.contract("bluesky")
def test_a_post_by_its_handle_is_captured_whole_and_keyed_by_its_did(world_cli, site):
    url = f"https://bsky.app/profile/{HANDLE}/post/{POST}"
    result, [outcome], [show] = _capture(world_cli, url)
    assert result.code == 0 and outcome["status"] == "ok", outcome
    assert show["item"]["key"] == KEY and show["item"]["url"] == url
    post = show["post"]
    assert (post["platform"], post["availability"], post["author"], post["media_count"]) == (
        "bluesky", "available", HANDLE, 2)
    assert post["quoted"] == f"at://did:plc:aleppomedicsnetworkz2345/app.bsky.feed.post/{QUOTED}"
    details = show["provenance"]["post"]
    assert details["resolution"]["did"] == DID and details["labels"] == []
    assert [m["source"] for m in details["media"]] == ["pds", "pds"]
    assert all(m["cid_verified"] is True for m in details["media"])
    assert details["quoted_post"]["availability"] == "available"
    uris = [r["uri"] or "" for r in show["records"]]
    assert any(u.startswith("https://public.api.bsky.app/xrpc/com.atproto.identity.resolveHandle?handle=") for u in uris)
    assert any(u.startswith("https://plc.directory/did:plc:evacwatchlevantledger7qq") for u in uris)
    assert sum("/xrpc/com.atproto.sync.getBlob?" in u for u in uris if u) >= 2
    assert any(u.startswith(f"urn:screenshot:https://bsky.app/profile/{DID}/post/{POST}") for u in uris)
    # The AppView's answer is stored as it came.
    recs = read_records(sealed_warc(world_cli.archive, show))
    [answer] = [r for r in recs if r.type == "response" and "getPostThread" in r.headers["WARC-Target-URI"]
                and "3lbq2evac7k2a" in r.headers["WARC-Target-URI"]]
    assert b'"$type":"app.bsky.feed.defs#threadViewPost"' in answer.payload
    # Every spelling finds it; its words are searchable.
    assert world_cli("search", "Ramouseh", "--json").json()[0]["id"] == show["id"]
    for spelling in (f"at://{DID}/app.bsky.feed.post/{POST}", f"https://bsky.app/profile/{DID}/post/{POST}"):
        assert world_cli("show", spelling, "--json").json()["id"] == show["id"]
    # Adding another spelling again finds the item already held under its DID key.
    again = world_cli("add", f"at://{DID}/app.bsky.feed.post/{POST}", "--json").json()
    assert again[0]["key"] == KEY


@pytest.mark.contract("bluesky")
def test_a_video_post_keeps_the_upload_and_the_hls_stream(world_cli):
    result, [outcome], [show] = _capture(world_cli, "--no-browser", f"at://{HANDLE}/app.bsky.feed.post/{VIDEO_POST}")
    assert result.code == 0 and outcome["status"] == "ok", outcome
    media = show["provenance"]["post"]["media"]
    assert media[0]["kind"] == "video" and media[0]["cid_verified"] is True and media[0]["mime_type"] == "video/mp4"
    assert media[1]["kind"] == "hls" and media[1]["url"].startswith("https://video.bsky.app/watch/")
    uris = [r["uri"] or "" for r in show["records"]]
    assert any(u.startswith("urn:yt-dlp:info:https://video.bsky.app/") for u in uris)
    assert any(r["type"] == "resource" and (r["uri"] or "").startswith("urn:video:") for r in show["records"])


@pytest.mark.contract("bluesky")
@pytest.mark.parametrize("state,cls", [
    ("deleted", "deleted"),
    ("not-found-view", "deleted"),
    ("taken-down", "removed"),
    ("labelled-takedown", "removed"),
    ("deactivated", "deactivated"),
    ("account-deleted", "account-deleted"),
    ("blocked", "unavailable"),
])
def test_gone_posts_are_classified_findings(world_cli, site, state, cls):
    site.set_bluesky_state(POST, state)
    result, [outcome], [show] = _capture(world_cli, "--no-browser", f"https://bsky.app/profile/{DID}/post/{POST}")
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"], outcome["job_state"]) == ("failed", cls, "failed"), outcome
    assert show["post"]["availability"] == cls   # the answer is sealed: evidence of when it was gone


@pytest.mark.contract("bluesky")
def test_a_handle_that_no_longer_resolves_is_kept_by_handle_and_found_not_found(world_cli, site):
    site.set_bluesky_state(POST, "account-deleted")
    url = f"https://bsky.app/profile/{HANDLE}/post/{POST}"
    result, [outcome], [show] = _capture(world_cli, "--no-browser", url)
    assert (outcome["status"], outcome["failure_class"]) == ("failed", "not-found"), outcome
    assert show["item"]["key"] == f"bluesky:{HANDLE}/{POST}"   # nothing to resolve it to, then or now
    assert show["provenance"]["post"]["resolution"]["did"] is None
    assert any("resolveHandle" in (r["uri"] or "") and r["http_status"] == 400 for r in show["records"])


@pytest.mark.contract("bluesky")
def test_an_empty_answer_is_not_a_deletion_and_is_retried(world_cli, site):
    site.set_bluesky_state(POST, "empty")
    result, [outcome], _ = _capture(world_cli, "--no-browser", f"at://{DID}/app.bsky.feed.post/{POST}")
    assert (outcome["failure_class"], outcome["job_state"]) == ("unknown-answer", "queued"), outcome


@pytest.mark.contract("bluesky")
def test_an_answer_for_another_post_is_partial_never_ok(world_cli, site):
    site.set_bluesky_state(POST, f"as:{VIDEO_POST}")
    result, [outcome], [show] = _capture(world_cli, "--no-browser", f"at://{DID}/app.bsky.feed.post/{POST}")
    assert (outcome["status"], outcome["failure_class"]) == ("partial", "extractor-mismatch"), outcome
    assert show["provenance"]["post"]["media"] == [] and VIDEO_POST in outcome["message"]


def test_a_post_that_is_deleted_is_seen_by_check_and_listed_as_gone(world_cli, site):
    handle_url, url = f"https://bsky.app/profile/{HANDLE}/post/{POST}", f"https://bsky.app/profile/{DID}/post/{POST}"
    assert world_cli("capture", "--no-browser", handle_url).code == 0
    [o] = world_cli("check", url, "--json").json()
    assert (o["key"], o["result"], o["state_after"]) == (KEY, "live", "live"), o
    site.set_bluesky_state(POST, "deleted")
    [o] = world_cli("check", url, "--json").json()
    assert (o["result"], o["result_class"], o["state_after"]) == ("gone", "deleted", "gone"), o
    assert o["job_id"], "the NotFound answer is captured as evidence of the deletion"
    [item] = world_cli("list", "--gone", "--json").json()
    assert item["key"] == KEY and item["state_class"] == "deleted"
    # The handle spelling it was added by is the same item (keyed by handle offline, it is found by the URL).
    [o] = world_cli("check", handle_url, "--json").json()
    assert (o["key"], o["state_before"], o["result_class"]) == (KEY, "gone", "deleted"), o


def test_a_watch_of_a_handle_url_re_captures_under_the_did_key(world_cli):
    url = f"https://bsky.app/profile/{HANDLE}/post/{POST}"
    watched = world_cli("watch", url, "--every", "1h", "--json")
    assert watched.code == 0, watched.err
    [watch] = watched.json()
    assert watch["key"] == KEY and watch["url"] == url


def test_follow_an_article_to_its_bluesky_posts(world_cli, site):
    outcomes = world_cli("capture", "--follow", "--no-browser", ARTICLE, "--json").json()
    assert outcomes[0]["status"] == "ok", outcomes[0]
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    children = {c["key"]: c for c in article["children"]}
    embedded, linked = KEY, f"bluesky:{DID}/{VIDEO_POST}"
    assert embedded in children and linked in children, sorted(children)
    assert children[embedded]["found_in"] == "blockquote.bluesky-embed[data-bluesky-uri]"
    # The linked post was spelt by handle: its resolution is recorded in the article's own WARC.
    assert any((r["uri"] or "").startswith("https://public.api.bsky.app/xrpc/com.atproto.identity.resolveHandle")
               for r in article["records"])
    posts = [o for o in outcomes[1:] if o["capture_id"]]
    assert {o["status"] for o in posts} == {"ok"}, posts
