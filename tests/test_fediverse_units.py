"""The fediverse path's rules: which URLs are Mastodon statuses (and which only look like them), how the instance's
answers are classified, and what a status answer is read as -- the latter over every real mastodon.social answer in
the acceptance corpus (read at test time from ``$ARCHIVER_CORPUS`` or ``<repo>/../shared/corpus``, never copied in)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver import urls
from archiver.capture import discover, fediverse, platforms
from archiver.store.items import GONE_CLASSES

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or REPO.parent / "shared" / "corpus")
MASTODON = CORPUS / "json" / "mastodon"
needs_corpus = pytest.mark.skipif(not MASTODON.is_dir(), reason=f"no Mastodon answers: {MASTODON} does not exist "
                                  "(set ARCHIVER_CORPUS to the folder that holds json/mastodon/)")
WORLD = REPO / "scripts" / "demo_site" / "world" / "mastodon"


def _corpus() -> list[Path]:
    return sorted(MASTODON.glob("*.json")) if MASTODON.is_dir() else []


# --- URLs ----------------------------------------------------------------------------------------------------

S1 = "117670651069203633"


@pytest.mark.parametrize("url", [
    f"https://mastodon.social/@levantwatch/{S1}",
    f"https://mastodon.social/@levantwatch/{S1}/",
    f"https://mastodon.social/@levantwatch/{S1}/embed",
    f"https://MASTODON.social/@levantwatch/{S1}?utm_source=share",
    f"https://mastodon.social/web/statuses/{S1}",
    f"https://mastodon.social/web/@levantwatch/{S1}",
    f"https://mastodon.social/users/levantwatch/statuses/{S1}",
    f"https://mastodon.social/users/levantwatch/statuses/{S1}/activity",
    f"https://mastodon.social/@levantwatch@mastodon.social/{S1}",
    f"https://mastodon.social/@levantwatch/0{S1}",
])
def test_status_spellings_collapse_to_one_key(url):
    parsed = urls.parse(url)
    assert (parsed.kind, parsed.key, parsed.platform) == ("post", f"fedi:mastodon.social/{S1}", "fedi")
    assert urls.parse(parsed.canonical_url).key == parsed.key  # the canonical URL is the same item again


def test_the_instance_is_part_of_the_key():
    here, there = (urls.parse(f"https://{h}/@rami/{S1}").key for h in ("mastodon.social", "infosec.exchange"))
    assert (here, there) == (f"fedi:mastodon.social/{S1}", f"fedi:infosec.exchange/{S1}")
    # A remote status as mastodon.social shows it has mastodon.social's own id: the key is the instance asked.
    remote = urls.parse("https://mastodon.social/@rami@infosec.exchange/117671462170399034")
    assert remote.key == "fedi:mastodon.social/117671462170399034"
    assert remote.canonical_url == "https://mastodon.social/@rami@infosec.exchange/117671462170399034"


@pytest.mark.parametrize("url", [
    "https://medium.com/@someone/why-we-archive-3f2a9c1b7d0e",       # Medium: slug and hex id
    "https://medium.com/@someone/123456789012",                      # a 12-digit id, not a snowflake
    "https://www.youtube.com/@channel/videos",
    "https://www.tiktok.com/@user/video/7300000000000000000",         # TikTok's own rule, not the fediverse's
    f"https://x.com/@someone/{S1}",                                  # a host with platform rules of its own
    "https://example.com/@someone/12345678901234567",                # 17 digits, but a time in 1970
    "https://example.com/@someone/999999999999999999",               # 18 digits, a time after 2100
    f"https://127.0.0.1/@someone/{S1}",                              # an address is no instance name
    f"https://localhost/@someone/{S1}",
    f"https://mastodon.social:8443/@someone/{S1}",                   # another service on that name
    f"https://mastodon.social/@someone/{S1}/reblogs",
    "https://mastodon.social/@someone/42",                           # old ids only in the longer shapes
    "https://mastodon.social/@someone",
])
def test_paths_that_only_look_like_statuses_are_pages(url):
    parsed = urls.parse(url)
    assert parsed.key is None or not parsed.key.startswith("fedi:"), parsed


def test_old_sequential_ids_are_recognised_in_the_longer_shapes():
    assert urls.parse("https://mastodon.social/users/Gargron/statuses/1").key == "fedi:mastodon.social/1"
    assert urls.parse("https://mastodon.social/web/statuses/42").key == "fedi:mastodon.social/42"
    # Its canonical URL keeps the shape that recognises it.
    assert urls.parse(urls.parse("https://mastodon.social/users/Gargron/statuses/1").canonical_url).key == (
        "fedi:mastodon.social/1")


def test_the_path_row_and_the_post_module():
    path = platforms.for_key("fedi:mastodon.social/1")
    assert path is not None and path.name == "fediverse" and path.engine == "archiver" and path.fixture_world
    assert set(path.tombstones) <= GONE_CLASSES
    assert set(fediverse.UNAVAILABLE) <= GONE_CLASSES
    from archiver.capture import posts
    assert posts.MODULES["fedi"] == "fediverse"


# --- answers -------------------------------------------------------------------------------------------------

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"


@pytest.mark.parametrize("status,body,content_type,expected", [
    (404, b'{"error":"Record not found"}', JSON, "not-found"),
    (410, b'{"error":"Gone"}', JSON, "deleted"),
    (410, b"", None, "deleted"),
    (401, b'{"error":"This method requires an authenticated user"}', JSON, "login-required"),
    (403, b'{"error":"This action is not allowed"}', JSON, "login-required"),
    # Never a deletion: not Mastodon's answer, or not an answer at all.
    (404, b"<html><body>Not Found</body></html>", HTML, "not-fediverse"),
    (410, b"<html><body>Gone</body></html>", HTML, "not-fediverse"),
    (200, b"<!DOCTYPE html><title>Medium</title>", HTML, "not-fediverse"),
    (200, b"", JSON, "not-fediverse"),
    (200, b"{}", JSON, "unknown-answer"),
    (200, b'{"ancestors":[],"descendants":[]}', JSON, "unknown-answer"),
    (200, b"[1,2,3]", JSON, "unknown-answer"),
    (200, b'{"id":1,"content":"x"}', JSON, "unknown-answer"),
    (503, b"<html>We're sorry, but something went wrong</html>", HTML, "unknown-answer"),
    (502, b"", None, "unknown-answer"),
    (429, b'{"error":"Too many requests"}', JSON, "unknown-answer"),
    (500, b'{"error":"Remote data could not be fetched"}', JSON, "unknown-answer"),
    (200, b"\xff\xfe garbage", JSON, "not-fediverse"),
    (200, b"[" * 100000, JSON, "not-fediverse"),
])
def test_answers_are_classified(status, body, content_type, expected):
    availability, data, message = fediverse.classify_answer(status, body, content_type)
    assert availability == expected, message
    assert data is None and message
    assert (availability in GONE_CLASSES) == (expected in ("not-found", "deleted"))


def test_a_suspended_account_is_told_apart_as_the_api_says():
    assert fediverse.classify_account(200, b'{"id":"1","username":"a","acct":"a","suspended":true}', JSON) == "suspended"
    assert fediverse.classify_account(200, b'{"id":"1","username":"a","acct":"a"}', JSON) is None
    assert fediverse.classify_account(404, b'{"error":"Record not found"}', JSON) is None
    assert fediverse.classify_account(200, b"<html>suspended: true</html>", HTML) is None


def test_the_world_answers_in_the_shapes_the_real_instance_does():
    """Our invented statuses have every top-level field the real mastodon.social answers have (where the corpus is
    here), and each is read as available."""
    ours = sorted((WORLD / "mastodon.social" / "statuses").glob("*[0-9].json"))
    assert len(ours) >= 4
    real_fields: set[str] = set()
    for path in _corpus():
        data = json.loads(path.read_bytes())
        if fediverse.is_status(data):
            real_fields |= set(data) - {"pinned", "application", "text"}  # only for the author, an app, a source
    for path in ours:
        availability, data, _ = fediverse.classify_answer(200, path.read_bytes(), JSON)
        assert availability == "available" and data is not None
        assert real_fields <= set(data), (path.name, sorted(real_fields - set(data)))


# --- the real answers ----------------------------------------------------------------------------------------

@needs_corpus
def test_the_corpus_is_there():
    # A corpus that comes out empty or short (another layout) fails instead of passing on nothing.
    assert len(_corpus()) >= 11


@needs_corpus
@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name.removeprefix("mastodon.social__statuses_"))
def test_every_real_answer_is_read(path):
    body = path.read_bytes()
    availability, data, message = fediverse.classify_answer(200, body, JSON)
    raw = json.loads(body)
    if path.name.endswith("_context.json"):
        # A context answer is no status: never taken for one, and never for a deletion.
        assert availability == "unknown-answer" and data is None
        statuses = raw["ancestors"] + raw["descendants"]
        assert statuses and all(fediverse.is_status(s) for s in statuses)
        for status in statuses:
            assert fediverse.describe_status(status, "mastodon.social")["author"] == "halcy@mastodon.social"
        return
    assert availability == "available", message
    info = fediverse.describe_status(data, "mastodon.social")
    assert info["status_id"] == raw["id"] and info["platform"] == "fedi"
    # The author as a full handle: bare acct is the instance's own user.
    acct = raw["account"]["acct"]
    assert info["author"] == (acct if "@" in acct else f"{acct}@mastodon.social")
    assert info["posted_at"] == raw["created_at"] and info["edited_at"] == raw["edited_at"]
    assert info["lang"] == raw["language"] and info["media_count"] == len(raw["media_attachments"])
    assert info["reply_to"] == (f"mastodon.social/{raw['in_reply_to_id']}" if raw["in_reply_to_id"] else None)
    assert info["url"] == raw["url"]
    # Text without markup, with the content warning; poll options are searchable words too.
    assert "<" not in info["text"] and "&amp;" not in info["text"]
    if raw["spoiler_text"]:
        assert info["text"].startswith(f"CW: {raw['spoiler_text']}")
    if raw["poll"]:
        assert info["poll"] == raw["poll"]
        assert all(f"[poll] {o['title']}" in info["text"] for o in raw["poll"]["options"])
    if raw["card"]:
        assert info["card"] == raw["card"]  # kept whole in the details
    if raw["quote"]:
        assert info["quoted"] == f"mastodon.social/{raw['quote']['quoted_status']['id']}"
    # Media at original size: url (the instance's copy), never the preview.
    media = [u for _, u in fediverse.media_urls(raw)]
    assert media == [m["url"] or m["remote_url"] for m in raw["media_attachments"]]
    assert not set(media) & {m["preview_url"] for m in raw["media_attachments"]}
    fingerprint = fediverse.status_fingerprint(raw)
    assert fingerprint.startswith("fp1:fedi:")
    # Counts are not content: more favourites is no change.
    recounted = {**raw, "favourites_count": raw["favourites_count"] + 5, "replies_count": 99}
    assert fediverse.status_fingerprint(recounted) == fingerprint
    if raw["content"]:
        edited = {**raw, "content": raw["content"] + "<p>edited</p>"}
        assert fediverse.status_fingerprint(edited) != fingerprint


@needs_corpus
def test_the_remote_links_in_content_are_kept_whole():
    raw = json.loads((MASTODON / "mastodon.social__statuses_110447098625216345.json").read_bytes())
    # Mastodon hides a long link's middle in span.invisible; the text keeps the whole address.
    assert "https://soundcloud.com/wakarangirl/popstars-dj-wakaran-girl-khard-bass-flex-1" in (
        fediverse.describe_status(raw, "mastodon.social")["text"])


def test_edit_history_versions():
    versions = fediverse.describe_history(json.loads(
        (WORLD / "mastodon.social" / "statuses" / f"{S1}.history.json").read_bytes()))
    assert versions is not None and len(versions) == 2
    assert "12 trucks" in versions[0]["text"] and "14 trucks" in versions[1]["text"]
    assert fediverse.describe_history({"error": "Record not found"}) is None
    assert fediverse.describe_history([1, 2]) is None


# --- discovery -----------------------------------------------------------------------------------------------

def test_embeds_and_links_in_articles_are_found():
    page = """
    <iframe src="https://mastodon.social/@levantwatch/117670651069203633/embed" class="mastodon-embed"
      style="max-width: 100%; border: 0" width="400" allowfullscreen="allowfullscreen"></iframe>
    <script src="https://mastodon.social/embed.js" async="async"></script>
    <blockquote class="mastodon-embed" data-embed-url="https://infosec.exchange/@rami/117671453130752000/embed">
      <a href="https://infosec.exchange/@rami/117671453130752000">Post by @rami@infosec.exchange</a></blockquote>
    <a href="https://medium.com/@someone/why-we-archive-3f2a9c1b7d0e">not a status</a>
    """
    found = discover.evidence(discover.scan_html(page, "https://news.example/a", "html"))
    got = {parsed.key: ref.found_in for parsed, ref in found}
    assert got == {"fedi:mastodon.social/117670651069203633": "iframe.mastodon-embed",
                   "fedi:infosec.exchange/117671453130752000": "blockquote.mastodon-embed"}


def test_a_hostile_answer_is_data_never_a_crash():
    """Every field beside the few is_status checks may hold anything: the posts row gets text, numbers or None."""
    odd: list = [None, 5, "x", [1, "y"], {"a": 1}, True]
    for value in odd:
        data = {"id": "1", "content": "<p>hi <b>there</b>", "created_at": "2026-01-01T00:00:00Z",
                "account": {"acct": value, "username": value, "display_name": value},
                **{k: value for k in ("language", "edited_at", "url", "uri", "spoiler_text", "visibility", "sensitive",
                                      "media_attachments", "tags", "mentions", "poll", "card", "quote", "reblog",
                                      "in_reply_to_id", "replies_count")}}
        body = json.dumps(data).encode()
        availability, parsed, _ = fediverse.classify_answer(200, body, JSON)
        assert availability == "available"
        info = fediverse.describe_status(parsed, "mastodon.social")
        for field in ("author", "author_name", "text", "posted_at", "edited_at", "lang", "reply_to", "quoted", "url"):
            assert info[field] is None or isinstance(info[field], str), (value, field)
        assert isinstance(info["media_count"], int) and "hi there" in info["text"]
        assert fediverse.status_fingerprint(parsed).startswith("fp1:fedi:")
        assert fediverse.describe_history([{"content": value, "poll": value, "media_attachments": value}])
