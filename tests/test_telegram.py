"""Telegram public posts: the widget's answer read and classified (units), and the whole path through the CLI and the
fixture world (t.me, telegram.org, cdn4.telesco.pe under their real names, via the proxy and CA)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver import urls
from archiver.capture import discover, platforms, telegram
from archiver.store.items import GONE_CLASSES
from archiver.errors import is_retryable

from conftest import capture_and_show as _capture, sealed_warc
from warcutil import read_records

ARTICLE = "https://www.levantledger.example/2026/telegram-embed.html"
WORLD = Path(__file__).resolve().parent.parent / "scripts" / "demo_site" / "world" / "telegram"
CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")


# ---- the widget's answer --------------------------------------------------------------------------------------

def _widget(inner: str, post: str = "EvacWatch/112", error: bool = False) -> str:
    attrs = ' class="tgme_widget_message text_not_supported_wrap js-widget_message err_message"' if error else (
        f' class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{post}"')
    return (f'<html><body class="widget_frame_base tgme_widget body_widget_post"><div class="tgme_widget_message_wrap '
            f'js-widget_message_wrap"><div{attrs}><div class="tgme_widget_message_bubble">{inner}</div></div></div>'
            "</body></html>")


REPLY_AND_TEXT = (
    '<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" '
    'href="https://t.me/EvacWatch"><span dir="auto">Evacuation &amp; Watch</span></a></div>'
    '<a class="tgme_widget_message_reply" href="https://t.me/EvacWatch/100"><div class="tgme_widget_message_author">'
    '<span class="tgme_widget_message_author_name">Someone else</span></div><div class="tgme_widget_message_text '
    'js-message_reply_text">the quoted words</div></a>'
    '<a class="tgme_widget_message_photo_wrap 5438" href="https://t.me/EvacWatch/112" '
    "style=\"width:800px;background-image:url('https://cdn4.telesco.pe/file/a.jpg')\"><div "
    'class="tgme_widget_message_photo"></div></a>'
    '<div class="tgme_widget_message_text js-message_text" dir="auto">First line<br/>second <b>line</b> '
    '<i class="emoji" style="background-image:url(\'//telegram.org/img/emoji/40/F09F9A8C.png\')"><b>🚌</b></i> '
    '<a href="https://example.org/x">link</a></div>'
    '<div class="tgme_widget_message_footer"><span class="tgme_widget_message_views">48.2K</span>'
    '<span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" href="https://t.me/EvacWatch/112">'
    '<time datetime="2026-11-18T07:42:10+00:00" class="time">07:42</time></a></span></div>')


def test_the_widget_is_read_by_its_classes_not_by_the_quote():
    availability, widget, _ = telegram.classify_widget(200, _widget(REPLY_AND_TEXT))
    assert availability == "available"
    assert (widget.post, widget.username, widget.post_id) == ("EvacWatch/112", "EvacWatch", "112")
    assert widget.channel_title == "Evacuation & Watch"
    assert widget.text == "First line\nsecond line 🚌 link"  # not the replied-to post's words
    assert widget.reply_to == "https://t.me/EvacWatch/100" and widget.links == ["https://example.org/x"]
    assert widget.posted_at == "2026-11-18T07:42:10+00:00" and widget.views == "48.2K"
    assert widget.photos == [("https://cdn4.telesco.pe/file/a.jpg", "112")]  # not the emoji's background
    assert telegram.views_count("48.2K") == 48200 and telegram.views_count("1.1M") == 1_100_000
    assert telegram.views_count("840") == 840 and telegram.views_count("many") is None
    row = telegram.describe(widget, "evacwatch/112")
    assert (row["author"], row["author_name"], row["media_count"], row["url"]) == (
        "EvacWatch", "Evacuation & Watch", 1, "https://t.me/EvacWatch/112")


ALBUM = (
    '<div class="tgme_widget_message_grouped_wrap js-message_grouped_wrap"><div class="tgme_widget_message_grouped">'
    '<div class="tgme_widget_message_grouped_layer">'
    '<a class="tgme_widget_message_photo_wrap grouped_media_wrap" href="https://t.me/EvacWatch/115?single" '
    "style=\"left:0px;background-image:url('https://cdn4.telesco.pe/file/one.jpg')\"></a>"
    '<a class="tgme_widget_message_video_player grouped_media_wrap" href="https://t.me/EvacWatch/117?single">'
    "<i class=\"tgme_widget_message_video_thumb\" style=\"background-image:url('https://cdn4.telesco.pe/file/t.jpg')\">"
    '</i><div class="tgme_widget_message_video_wrap"><video src="https://cdn4.telesco.pe/file/v.mp4?token=abc" '
    'class="tgme_widget_message_video js-message_video"></video></div><time class="message_video_duration">0:02</time>'
    "</a></div></div></div>")


def test_an_album_names_its_items_and_stands_for_each_of_them():
    _, widget, _ = telegram.classify_widget(200, _widget(ALBUM, post="EvacWatch/115"))
    assert widget.grouped and widget.album == ["115", "117"]
    assert widget.photos == [("https://cdn4.telesco.pe/file/one.jpg", "115")]
    assert widget.videos == [("https://cdn4.telesco.pe/file/v.mp4?token=abc", "117")]
    assert telegram._media_urls(widget) == [("photo", "https://cdn4.telesco.pe/file/one.jpg"),
                                            ("video", "https://cdn4.telesco.pe/file/v.mp4?token=abc"),
                                            ("poster", "https://cdn4.telesco.pe/file/t.jpg")]
    # The album's widget carries its first item's id: asked for another of its items, it is that item's answer.
    assert telegram.answer_id(widget, "117") == "117" and telegram.answer_id(widget, "116") == "115"


def test_the_fingerprint_is_what_the_post_says_not_its_counts_or_signed_urls():
    _, widget, _ = telegram.classify_widget(200, _widget(ALBUM + REPLY_AND_TEXT, post="EvacWatch/115"))
    again = _widget(ALBUM.replace("token=abc", "token=xyz").replace("one.jpg", "one-other-cdn-name.jpg")
                    + REPLY_AND_TEXT.replace("48.2K", "51K"), post="EvacWatch/115")
    _, seen_later, _ = telegram.classify_widget(200, again)
    fingerprint = telegram.describe(widget, "evacwatch/115")["fingerprint"]
    assert fingerprint == telegram.describe(seen_later, "evacwatch/115")["fingerprint"]
    edited = _widget(ALBUM + REPLY_AND_TEXT.replace("First line", "Corrected line"), post="EvacWatch/115")
    assert telegram.describe(telegram.classify_widget(200, edited)[1], "evacwatch/115")["fingerprint"] != fingerprint
    one_less = _widget(ALBUM.split('<a class="tgme_widget_message_video_player')[0] + "</div></div></div>"
                       + REPLY_AND_TEXT, post="EvacWatch/115")
    assert telegram.describe(telegram.classify_widget(200, one_less)[1], "evacwatch/115")["fingerprint"] != fingerprint


def test_an_answer_for_another_post_is_not_the_post():
    _, widget, _ = telegram.classify_widget(200, _widget(REPLY_AND_TEXT, post="OtherChannel/9"))
    got = telegram.answer_id(widget, "112")
    verdict = platforms.judge_own(platforms.BY_NAME["telegram"], "evacwatch/112",
                                  f"{widget.username.lower()}/{got}", "widget answer")
    assert not verdict.ok and "otherchannel/9" in verdict.message


@pytest.mark.parametrize("status,body,expected", [
    (200, _widget('<div class="tgme_widget_message_error">Post not found</div>', error=True), "not-found"),
    (200, _widget('<div class="tgme_widget_message_error">This post is unavailable in your country because it violated '
                  "local laws.</div>", error=True), "withheld"),
    (200, _widget('<div class="tgme_widget_message_error">This channel can’t be displayed because it violated '
                  "Telegram's Terms of Service.</div>", error=True), "removed"),
    (200, _widget('<div class="tgme_widget_message_error">Channel is private</div>', error=True), "private"),
    (200, _widget('<div class="tgme_widget_message_error">Something new Telegram says</div>', error=True),
     "unavailable"),
    # A post's own words that sound like a tombstone are the post's words: data-post makes it a post.
    (200, _widget('<div class="tgme_widget_message_text js-message_text">Post not found, they said</div>'),
     "available"),
    (200, "", "unknown-answer"),
    (200, "<html><title>Just a moment...</title><body>Checking your browser</body></html>", "unknown-answer"),
    (429, "Too Many Requests", "unknown-answer"),
    (502, "", "unknown-answer"),
    (404, "<html>Not Found</html>", "unknown-answer"),
    (200, "<div class='tgme_widget_message_error'><<<</div", "unknown-answer"),
])
def test_widget_answers_are_classified(status, body, expected):
    availability, _, message = telegram.classify_widget(status, body)
    assert availability == expected and message
    if expected == "unknown-answer":
        assert is_retryable(availability)  # never a deletion: tried again
    elif expected != "available":
        assert availability in GONE_CLASSES and availability in platforms.BY_NAME["telegram"].tombstones


def test_hostile_markup_never_raises():
    for body in ["<div class=tgme_widget_message data-post=a/1><div class=js-message_text>" * 500, "\x00<a href=>",
                 '<div class="tgme_widget_message" data-post="x/1"><video class="tgme_widget_message_video" src="">',
                 "<div class='tgme_widget_message_photo_wrap' style='background-image:url('>"]:
        telegram.classify_widget(200, body)


@pytest.mark.parametrize("url", [
    "https://t.me/EvacWatch/112", "https://t.me/evacwatch/112/", "https://t.me/s/EvacWatch/112",
    "https://t.me/EvacWatch/112?embed=1&mode=tme", "https://t.me/EvacWatch/112?single", "http://telegram.me/EvacWatch/112",
    "https://www.telegram.me/s/EVACWATCH/112?embed=1", "https://telegram.dog/EvacWatch/112?utm_source=x",
    "https://t.me/EvacWatch/0112",
])
def test_every_spelling_is_one_post(url):
    parsed = urls.parse(url)
    assert (parsed.key, parsed.kind, parsed.canonical_url) == ("telegram:evacwatch/112", "post",
                                                              "https://t.me/evacwatch/112")
    assert platforms.for_key(parsed.key).name == "telegram"


def test_discovery_finds_the_widget_script_and_its_iframes():
    article = (WORLD.parent.parent / "2026" / "telegram-embed.html").read_text()
    refs = discover.scan_html(article, ARTICLE, "html")
    found = {parsed.dedup_key: ref.found_in for parsed, ref in discover.evidence(refs)}
    assert found == {"telegram:evacwatch/113": "script[data-telegram-post]", "telegram:evacwatch/114": "iframe[src]"}


SPELLINGS = CORPUS / "url_spellings.json"


@pytest.mark.skipif(not SPELLINGS.is_file(), reason=f"no URL corpus at {SPELLINGS} (set ARCHIVER_CORPUS)")
def test_the_corpus_telegram_urls_key_to_their_posts():
    """yt-dlp's own Telegram test URLs (the corpus's url_spellings.json): each keys as the post it names."""
    entries = {u: e for u, e in json.loads(SPELLINGS.read_text()).items()
               if not u.startswith("_") and isinstance(e, dict) and str(e.get("extractor", "")).startswith("telegram")}
    assert len(entries) >= 4
    for url, entry in entries.items():
        parsed = urls.parse(url)
        path = urlsplit_path(url)
        assert parsed.key == f"telegram:{path[0].lower()}/{path[1]}" and parsed.kind == "post", url


def urlsplit_path(url: str) -> list[str]:
    from urllib.parse import urlsplit
    return [p for p in urlsplit(url).path.split("/") if p and p != "s"]


GROUND_TRUTH = CORPUS / "ground_truth.json"


@pytest.mark.skipif(not GROUND_TRUTH.is_file(), reason=f"no page corpus at {GROUND_TRUTH} (set ARCHIVER_CORPUS)")
def test_discovery_finds_the_corpus_pages_telegram_posts_and_no_others():
    """Real news pages (the corpus's pages/, with Telegram posts found independently by its own regexes): discovery
    keys exactly those posts — none of these pages' other links is taken for a Telegram post."""
    pages = json.loads(GROUND_TRUTH.read_text())["pages"]
    assert len(pages) >= 30
    for page in pages:
        html = (CORPUS / page["file"]).read_text(encoding="utf-8", errors="replace")
        refs = discover.scan_html(html, page.get("original_url") or "https://example.org/", "html")
        found = {p.key for p, _ in discover.evidence(refs) if (p.key or "").startswith("telegram:")}
        expected = {f"telegram:{post.split('/')[0].lower()}/{int(post.split('/')[1])}"
                    for post in page["ground_truth"]["telegram_posts"]}
        assert found == expected, page["file"]


# ---- through the CLI and the fixture world ------------------------------------------------------------------------

def test_the_world_answers_as_telegram_does(site):
    """t.me's shapes in the fixture world: refusals are words inside a 200, /s/ of no channel redirects to the name,
    the old names redirect to t.me, and every media file the posts name is served."""
    import ssl

    import httpx
    context = ssl.create_default_context(cafile=site.ca_file)
    with httpx.Client(proxy=site.proxy_url, verify=context, timeout=20) as client:
        gone = client.get("https://t.me/EvacWatch/118?embed=1&mode=tme")
        assert gone.status_code == 200 and "tgme_widget_message_error" in gone.text and "data-post" not in gone.text
        nowhere = client.get("https://t.me/s/convoywire/7")
        assert (nowhere.status_code, nowhere.headers["location"]) == (302, "https://t.me/convoywire")
        assert "<title>Telegram: Contact @convoywire</title>" in client.get("https://t.me/convoywire").text
        moved = client.get("https://telegram.me/s/EvacWatch/112?single")
        assert (moved.status_code, moved.headers["location"]) == (301, "https://t.me/s/EvacWatch/112?single")
        single = client.get("https://t.me/EvacWatch/116?embed=1&single")
        assert 'data-post="EvacWatch/116"' in single.text and "grouped_wrap" not in single.text
        world = json.loads((WORLD / "posts.json").read_text())
        files = {m[k] for p in world["posts"].values() for m in p["media"] for k in ("file", "thumb") if k in m}
        files |= {c["avatar"] for c in world["channels"].values()}
        for name in files:
            answer = client.get(f"https://cdn4.telesco.pe/file/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"] in ("image/jpeg", "video/mp4"), name


def _uris(show: dict) -> list[str]:
    return [r["uri"] or "" for r in show["records"]]


@pytest.mark.contract("telegram")
def test_a_text_post_from_any_spelling(world_cli, site):
    result, [outcome], [show] = _capture(world_cli, "https://telegram.me/s/EvacWatch/112?single")
    assert result.code == 0, outcome
    post = show["post"]
    assert (post["platform"], post["post_id"], post["availability"], post["author"], post["author_name"]) == (
        "telegram", "evacwatch/112", "available", "EvacWatch", "Evacuation Watch")
    assert "Ramouseh" in post["text"] and post["posted_at"] == "2026-11-18T07:42:10+00:00"
    assert post["url"] == "https://t.me/EvacWatch/112" and post["media_count"] == 0
    uris = _uris(show)
    widget = "https://t.me/evacwatch/112?embed=1&mode=tme"
    assert widget in uris and "https://t.me/s/evacwatch/112" in uris
    assert f"urn:screenshot:{widget}" in uris
    # The widget's answer is stored as received (by httpx first, then again as the browser rendered it).
    answers = [r for r in read_records(sealed_warc(world_cli.archive, show))
               if r.type == "response" and r.headers["WARC-Target-URI"] == widget]
    assert answers and all(b'data-post="EvacWatch/112"' in a.payload for a in answers)
    prov = show["provenance"]
    assert prov["telegram"]["views"] == "48.2K" and prov["platform"]["match"] is True
    # Searchable by its text; the same post under another spelling is the same item.
    assert world_cli("search", "Ramouseh", "--json").json()[0]["id"] == show["id"]
    assert world_cli("show", "https://t.me/EvacWatch/112?embed=1", "--json").json()["id"] == show["id"]
    # Whatever the spelling, the capture asks t.me itself (telegram.me only redirects there).
    assert "t.me" in {e.host for e in site.proxy_log} and "telegram.me" not in {e.host for e in site.proxy_log}


@pytest.mark.contract("telegram")
def test_photos_videos_and_an_album_are_kept(world_cli):
    result, outcomes, shows = _capture(world_cli, "https://t.me/EvacWatch/113", "https://t.me/EvacWatch/114",
                                       "https://t.me/EvacWatch/116?single")
    assert result.code == 0, outcomes
    photo, video, album = shows
    cdn = [r for r in photo["records"] if r["type"] == "response" and "cdn4.telesco.pe/file/" in (r["uri"] or "")
           and r["http_status"] == 200]
    assert any(r["uri"].endswith("tQ3nRz8KpWm2YdL4vHs7XcBe9Jf1Ga6U.jpg") and r["content_type"] == "image/jpeg"
               for r in cdn)
    assert photo["post"]["media_count"] == 1
    kept = {m["kind"] for m in video["provenance"]["telegram"]["media"] if m["status"] == 200}
    assert kept == {"video", "poster"}
    assert any(".mp4?token=" in u for u in _uris(video))
    # Asked for the album's second item: the album is captured as that post, with every item's media.
    assert album["post"]["post_id"] == "evacwatch/116" and album["post"]["media_count"] == 3
    assert album["provenance"]["telegram"]["album"] == ["115", "116", "117"]
    assert "western exit" in album["post"]["text"]


@pytest.mark.contract("telegram")
@pytest.mark.parametrize("url,cls", [
    ("https://t.me/EvacWatch/118", "not-found"),
    ("https://t.me/HalabDesk/2042", "withheld"),
    ("https://t.me/HalabDesk/2043", "removed"),
    ("https://t.me/ConvoyWire/7", "channel-not-found"),
])
def test_what_telegram_says_is_gone_is_a_classified_finding(world_cli, url, cls):
    result, [outcome], [show] = _capture(world_cli, url)
    assert result.code == 1
    assert (outcome["status"], outcome["failure_class"], outcome["job_state"]) == ("failed", cls, "failed"), outcome
    assert show["post"]["availability"] == cls  # the tombstone is sealed: evidence of when it was gone


@pytest.mark.contract("telegram")
def test_an_empty_answer_is_not_a_deletion_and_is_retried(world_cli):
    result, [outcome], [show] = _capture(world_cli, "https://t.me/EvacWatch/119")
    assert result.code == 1
    assert outcome["failure_class"] == "unknown-answer" and outcome["job_state"] == "queued"
    assert show["post"]["availability"] == "unknown-answer"


def test_a_post_that_is_deleted_is_seen_by_check_and_listed_gone(world_cli, site):
    url = "https://t.me/EvacWatch/112"
    try:
        assert world_cli("capture", url).code == 0
        [o] = world_cli("check", url, "--json").json()
        assert (o["result"], o["state_after"], o["job_id"]) == ("live", "live", None), o
        site.set_telegram_state("evacwatch/112", "deleted")
        [o] = world_cli("check", url, "--json").json()
        assert (o["result"], o["result_class"], o["state_after"]) == ("gone", "not-found", "gone"), o
        assert o["job_id"], "the tombstone is captured as evidence of the deletion"
        run = world_cli("run", "--once")
        assert "not-found" in run.err, run.err
        [item] = world_cli("list", "--gone", "--json").json()
        assert item["key"] == "telegram:evacwatch/112" and item["state_class"] == "not-found"
    finally:
        site.reset_tweet_states()


def test_follow_an_article_to_its_telegram_posts(world_cli):
    result = world_cli("capture", "--follow", ARTICLE, "--json")
    outcomes = result.json()
    assert outcomes[0]["url"] == ARTICLE and outcomes[0]["status"] == "ok", outcomes
    article = world_cli("show", outcomes[0]["capture_id"], "--json").json()
    children = {c["key"]: c for c in article["children"]}
    assert {"telegram:evacwatch/113", "telegram:evacwatch/114"} <= set(children), sorted(children)
    assert children["telegram:evacwatch/113"]["found_in"] == "script[data-telegram-post]"
    post = world_cli("show", children["telegram:evacwatch/113"]["capture_id"], "--json").json()
    assert post["status"] == "ok" and post["post"]["author"] == "EvacWatch"
    # The widget script ran in the article: its DOM holds the iframe the script made.
    dom = [r for r in read_records(sealed_warc(world_cli.archive, article))
           if r.type == "resource" and r.headers["WARC-Target-URI"].startswith("urn:dom:")]
    assert dom and b'id="telegram-post-EvacWatch-113"' in dom[0].payload


def test_the_platforms_command_lists_the_telegram_path(cli):
    rows = {r["name"]: r for r in cli("platforms", "--json").json()}
    assert rows["telegram"]["engine"] == "archiver" and rows["telegram"]["fixture_world"] is True
    assert "not-found" in rows["telegram"]["tombstones"]
