"""Platform keys: every spelling of one tweet, broadcast, video or post gets the same key, and look-alikes none."""
from __future__ import annotations

import pytest

from archiver import urls
from conftest import index_conn

TWEET = "809711419431133184"
TWEET_KEY = f"twitter:{TWEET}"

TWEETS = [
    f"https://twitter.com/evac_watch/status/{TWEET}",
    f"https://twitter.com/evac_watch/status/{TWEET}/",
    f"http://twitter.com/evac_watch/status/{TWEET}",
    f"https://www.twitter.com/evac_watch/status/{TWEET}",
    f"https://mobile.twitter.com/evac_watch/status/{TWEET}",
    f"https://x.com/evac_watch/status/{TWEET}",
    f"https://www.x.com/evac_watch/status/{TWEET}",
    f"https://mobile.x.com/evac_watch/status/{TWEET}",
    f"https://TWITTER.COM/Evac_Watch/status/{TWEET}",
    f"https://twitter.com./evac_watch/status/{TWEET}",
    f"https://twitter.com:443/evac_watch/status/{TWEET}",
    f"https://twitter.com/evac_watch/statuses/{TWEET}",
    f"https://twitter.com/statuses/{TWEET}",
    f"https://twitter.com/i/web/status/{TWEET}",
    f"https://x.com/i/web/status/{TWEET}",
    f"https://twitter.com/i/status/{TWEET}",
    f"https://twitter.com/#!/evac_watch/status/{TWEET}",
    f"https://twitter.com/#!/evac_watch/statuses/{TWEET}",
    f"https://mobile.twitter.com/#!/evac_watch/status/{TWEET}?s=20",
    f"https://twitter.com/evac_watch/status/{TWEET}/photo/1",
    f"https://x.com/evac_watch/status/{TWEET}/photo/4/",
    f"https://twitter.com/evac_watch/status/{TWEET}/video/1",
    f"https://twitter.com/evac_watch/status/{TWEET}/analytics",
    f"https://twitter.com/evac_watch/status/{TWEET}?s=20",
    f"https://twitter.com/evac_watch/status/{TWEET}?s=20&t=Abc-dEf_123",
    f"https://x.com/evac_watch/status/{TWEET}?s=46&t=xyz",
    f"https://twitter.com/evac_watch/status/{TWEET}?ref_src=twsrc%5Etfw",
    f"https://twitter.com/evac_watch/status/{TWEET}?ref_src=twsrc%5Etfw&ref_url=https%3A%2F%2Fnews.example.org%2F",
    f"https://twitter.com/evac_watch/status/{TWEET}?lang=en#replies",
    f"https://twitter.com/evac_watch/status/0{TWEET}",
    f"https://fxtwitter.com/evac_watch/status/{TWEET}",
    f"https://fixupx.com/evac_watch/status/{TWEET}",
    f"https://vxtwitter.com/evac_watch/status/{TWEET}",
    f"https://fixvx.com/evac_watch/status/{TWEET}",
    f"https://twittpr.com/evac_watch/status/{TWEET}",
    f"https://d.fxtwitter.com/evac_watch/status/{TWEET}",
    f"https://nitter.net/evac_watch/status/{TWEET}#m",
    f"https://nitter.poast.org/evac_watch/status/{TWEET}",
    f"https://xcancel.com/evac_watch/status/{TWEET}",
    f"https://platform.twitter.com/embed/Tweet.html?id={TWEET}",
    f"https://platform.twitter.com/embed/Tweet.html?dnt=false&frame=false&id={TWEET}&lang=en&theme=light",
    f"https://platform.twitter.com/embed/index.html?dnt=true&embedId=twitter-widget-0&id={TWEET}",
    f"https://syndication.twitter.com/tweet?id={TWEET}",
    f"https://syndication.twitter.com/srv/tweet-result?id={TWEET}&lang=en",
    f"https://cdn.syndication.twimg.com/tweet-result?id={TWEET}&lang=en&token=4abc",
    f"https://ｔｗｉｔｔｅｒ.com/evac_watch/status/{TWEET}",  # full-width letters are the same host under IDNA
    f"http://twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion/evac_watch/status/{TWEET}",
    f"https://mobile.twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion/i/web/status/{TWEET}",
]


@pytest.mark.parametrize("url", TWEETS)
def test_every_spelling_of_a_tweet_has_one_key(url):
    parsed = urls.parse(url)
    assert (parsed.kind, parsed.key) == ("tweet", TWEET_KEY)
    assert (parsed.platform, parsed.item_id) == ("twitter", TWEET)
    assert parsed.dedup_key == TWEET_KEY
    assert parsed.url == url.strip()


@pytest.mark.parametrize("url, canonical", [
    (f"https://twitter.com/evac_watch/status/{TWEET}?s=20", f"https://x.com/evac_watch/status/{TWEET}"),
    (f"https://twitter.com/#!/evac_watch/status/{TWEET}", f"https://x.com/evac_watch/status/{TWEET}"),
    (f"https://nitter.net/evac_watch/status/{TWEET}/photo/1", f"https://x.com/evac_watch/status/{TWEET}"),
    (f"https://twitter.com/i/web/status/{TWEET}", f"https://x.com/i/web/status/{TWEET}"),
    (f"https://twitter.com/i/status/{TWEET}", f"https://x.com/i/web/status/{TWEET}"),
    (f"https://twitter.com/statuses/{TWEET}", f"https://x.com/i/web/status/{TWEET}"),
    (f"https://platform.twitter.com/embed/Tweet.html?id={TWEET}", f"https://x.com/i/web/status/{TWEET}"),
    (f"http://twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion/evac_watch/status/{TWEET}",
     f"https://x.com/evac_watch/status/{TWEET}"),
])
def test_tweet_canonical_url_is_on_x(url, canonical):
    assert urls.parse(url).canonical_url == canonical


# A real early Periscope link's token (from youtube-dl's tests): "<user id>|<broadcast id>" and a signature.
PSCP_TOKEN = "aJUQnjY3MjA3ODF8NTYxMDIyMDl2zCg2pECBgwTqRpQuQD352EMPTKQjT4uqlM3cgWFA-g=="

PLATFORM_ITEMS = [
    # Periscope broadcasts
    ("https://www.periscope.tv/w/1OdKrBXvMbLKX", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://periscope.tv/w/1OdKrBXvMbLKX", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://www.pscp.tv/w/1OdKrBXvMbLKX", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://pscp.tv/w/1OdKrBXvMbLKX/", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://www.pscp.tv/w/1OdKrBXvMbLKX?channel=aleppo&t=10s", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://www.periscope.tv/evac_watch/1OdKrBXvMbLKX", "video", "periscope:1OdKrBXvMbLKX"),
    ("https://www.pscp.tv/evac_watch/1OdKrBXvMbLKX", "video", "periscope:1OdKrBXvMbLKX"),
    # Early /w/<token> links key as the broadcast inside the token (see test_periscope_tokens)
    ("https://www.periscope.tv/w/aRBp6DI4NzU0NzN8MXlvS1Bod3hQWWRKYvBmYm-gcKcz", "video", "periscope:1yoKPhwxPYdJb"),
    (f"https://www.periscope.tv/w/{PSCP_TOKEN}", "video", "periscope:56102209"),
    (f"https://www.periscope.tv/w/{PSCP_TOKEN.rstrip('=')}", "video", "periscope:56102209"),
    (f"https://www.periscope.tv/BecBoop/{PSCP_TOKEN}", "video", "periscope:56102209"),
    ("https://www.pscp.tv/w/56102209", "video", "periscope:56102209"),
    # a long token that does not decode to "<user id>|<broadcast id>" is still all there is to key by
    ("https://www.periscope.tv/w/QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", "video",
     "periscope:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"),
    # X/Twitter broadcasts
    ("https://x.com/i/broadcasts/1YpJkwXXXXXXX", "video", "broadcast:1YpJkwXXXXXXX"),
    ("https://twitter.com/i/broadcasts/1YpJkwXXXXXXX", "video", "broadcast:1YpJkwXXXXXXX"),
    ("https://www.twitter.com/i/broadcasts/1YpJkwXXXXXXX/", "video", "broadcast:1YpJkwXXXXXXX"),
    ("https://x.com/i/broadcasts/1YpJkwXXXXXXX?s=20", "video", "broadcast:1YpJkwXXXXXXX"),
    ("https://twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion/i/broadcasts/1YpJkwXXXXXXX", "video",
     "broadcast:1YpJkwXXXXXXX"),
    # X events: the broadcast (or the tweets) an event shows is known only once X is asked
    ("https://x.com/i/events/1910629646300762112", "video", "x-event:1910629646300762112"),
    ("https://twitter.com/i/events/1910629646300762112/", "video", "x-event:1910629646300762112"),
    ("https://mobile.x.com/i/events/1910629646300762112?s=20", "video", "x-event:1910629646300762112"),
    # YouTube
    ("https://youtu.be/dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?t=42", "video", "youtube:dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?si=AbCdEfGh", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://youtube.com/watch?v=dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?feature=youtu.be&v=dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=3", "video",
     "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1m2s&si=abc", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=30", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ?start=10&autoplay=1", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://youtube.com/shorts/dQw4w9WgXcQ?feature=share", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/live/dQw4w9WgXcQ?si=xyz", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/v/dQw4w9WgXcQ", "video", "youtube:dQw4w9WgXcQ"),
    ("https://www.youtube.com/v/dQw4w9WgXcQ&hl=en_US&fs=1", "video", "youtube:dQw4w9WgXcQ"),
    # Telegram posts
    ("https://t.me/evacwatch/1234", "post", "telegram:evacwatch/1234"),
    ("https://t.me/EvacWatch/1234", "post", "telegram:evacwatch/1234"),
    ("https://t.me/s/evacwatch/1234", "post", "telegram:evacwatch/1234"),
    ("https://t.me/evacwatch/1234?single", "post", "telegram:evacwatch/1234"),
    ("https://t.me/evacwatch/1234?embed=1", "post", "telegram:evacwatch/1234"),
    ("https://telegram.me/evacwatch/1234", "post", "telegram:evacwatch/1234"),
    ("https://www.telegram.me/s/EVACWATCH/1234/", "post", "telegram:evacwatch/1234"),
    # Instagram posts and reels
    ("https://www.instagram.com/p/CxYz123AbC_/", "video", "instagram:CxYz123AbC_"),
    ("https://instagram.com/p/CxYz123AbC_", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/p/CxYz123AbC_/?igshid=MzRlODBiNWFlZA==", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/p/CxYz123AbC_/?utm_source=ig_web_copy_link", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/reel/CxYz123AbC_/", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/reels/CxYz123AbC_/", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/tv/CxYz123AbC_/", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/p/CxYz123AbC_/embed/", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/p/CxYz123AbC_/embed/captioned/", "video", "instagram:CxYz123AbC_"),
    ("https://www.instagram.com/evac.watch/p/CxYz123AbC_/", "video", "instagram:CxYz123AbC_"),
    # Vimeo, TikTok, Facebook
    ("https://vimeo.com/76979871", "video", "vimeo:76979871"),
    ("https://www.vimeo.com/76979871/", "video", "vimeo:76979871"),
    ("https://vimeo.com/76979871/a1b2c3d4e5", "video", "vimeo:76979871"),
    ("https://vimeo.com/channels/staffpicks/76979871", "video", "vimeo:76979871"),
    ("https://player.vimeo.com/video/76979871", "video", "vimeo:76979871"),
    ("https://player.vimeo.com/video/76979871?h=a1b2c3&autoplay=1", "video", "vimeo:76979871"),
    ("https://vimeo.com/showcase/3253534/video/76979871", "video", "vimeo:76979871"),
    ("https://vimeo.com/album/3253534/video/76979871", "video", "vimeo:76979871"),
    ("https://www.tiktok.com/@evac.watch/video/7106594312292453675", "video", "tiktok:7106594312292453675"),
    ("https://tiktok.com/@evac.watch/video/7106594312292453675?lang=en&is_from_webapp=1", "video",
     "tiktok:7106594312292453675"),
    ("https://m.tiktok.com/@evac.watch/video/7106594312292453675/", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktok.com/embed/v2/7106594312292453675", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktok.com/@6820838815978423302/video/7106594312292453675", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktok.com/@MS4wLjABAAAAepiJKgwWhulvCpSuUVsp7sgVVsFJbbNaLeQ6OQ0oAJERGDUIXhb2yxxHZedsItgT/video/"
     "7106594312292453675", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktok.com/@/video/7106594312292453675/", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktok.com/share/video/7106594312292453675/", "video", "tiktok:7106594312292453675"),
    ("https://www.tiktokv.com/share/video/7106594312292453675/", "video", "tiktok:7106594312292453675"),
    ("https://www.facebook.com/EvacWatch/videos/10153231379946729/", "video", "facebook:10153231379946729"),
    ("https://www.facebook.com/EvacWatch/videos/vb.123456/10153231379946729/", "video",
     "facebook:10153231379946729"),
    ("https://m.facebook.com/EvacWatch/videos/10153231379946729", "video", "facebook:10153231379946729"),
    ("https://www.facebook.com/watch/?v=10153231379946729", "video", "facebook:10153231379946729"),
    ("https://www.facebook.com/watch?v=10153231379946729&ref=sharing", "video", "facebook:10153231379946729"),
    ("https://www.facebook.com/video.php?v=10153231379946729", "video", "facebook:10153231379946729"),
    ("https://fb.watch/aBc1De2FgH/", "video", "facebook:aBc1De2FgH"),
    # t.co short links stay pages until their redirect is followed
    ("https://t.co/AbC123xYz9", "page", "tco:AbC123xYz9"),
    ("http://t.co/AbC123xYz9?amp=1", "page", "tco:AbC123xYz9"),
]


@pytest.mark.parametrize("url, kind, key", PLATFORM_ITEMS)
def test_platform_items(url, kind, key):
    parsed = urls.parse(url)
    assert (parsed.kind, parsed.key) == (kind, key)
    assert parsed.dedup_key == key
    assert f"{parsed.platform}:{parsed.item_id}" == key
    # The canonical URL is itself a spelling of the same item.
    assert urls.parse(parsed.canonical_url).key == key
    assert urls.classify(parsed.canonical_url) == kind


@pytest.mark.parametrize("url, canonical", [
    (f"https://www.periscope.tv/w/{PSCP_TOKEN}", "https://www.pscp.tv/w/56102209"),
    ("https://www.periscope.tv/w/aRBp6DI4NzU0NzN8MXlvS1Bod3hQWWRKYvBmYm-gcKcz", "https://www.pscp.tv/w/1yoKPhwxPYdJb"),
    ("https://twitter.com/i/events/1910629646300762112/?s=20", "https://x.com/i/events/1910629646300762112"),
    ("https://vimeo.com/showcase/3253534/video/76979871", "https://vimeo.com/76979871"),
    # An unlisted video's hash is no part of its key, but the canonical URL keeps it: Vimeo needs it to show it.
    ("https://vimeo.com/76979871/a1b2c3d4e5", "https://vimeo.com/76979871/a1b2c3d4e5"),
    ("https://player.vimeo.com/video/76979871?h=a1b2c3d4e5&autoplay=1", "https://vimeo.com/76979871/a1b2c3d4e5"),
    ("https://player.vimeo.com/video/76979871?h=a1b2c3", "https://vimeo.com/76979871"),  # not a hash Vimeo makes
    ("https://www.tiktokv.com/share/video/7106594312292453675/", "https://www.tiktok.com/embed/v2/7106594312292453675"),
])
def test_canonical_urls_of_new_spellings(url, canonical):
    assert urls.parse(url).canonical_url == canonical


def test_an_x_event_is_an_item_of_its_own():
    parsed = urls.parse("https://x.com/i/events/1910629646300762112")
    assert (parsed.platform, parsed.item_id, parsed.kind) == ("x-event", "1910629646300762112", "video")


@pytest.mark.parametrize("token, broadcast", [
    (PSCP_TOKEN, "56102209"),                      # numeric id of 2015, then a signature starting "v"
    (PSCP_TOKEN.rstrip("="), "56102209"),          # links lose their padding when pasted
    ("aRBp6DI4NzU0NzN8MXlvS1Bod3hQWWRKYvBmYm-gcKcz", "1yoKPhwxPYdJb"),
    # ids are ids, not tokens: 13 characters (which cannot be base64), however they look
    ("1OdKrBXvMbLKX", None),
    ("1ZkKzPbMVggJv", None),
    ("MTIzfDFPZEtyQlh2", None),                     # base64 of "123|1OdKrBXv", but 16 characters: no token
    # long base64 that does not hold "<digits>|<id>"
    ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", None),     # "ABCDEFGHIJKLMNOPQRSTUVWX"
    ("MTIzNDU2Nzg5MHwhISEhISEhISEhISEhIQ==", None),  # "1234567890|" and no id after it
    ("MTIzNDU2Nzg5MHwwMDAwMDAwMCEhISEhIQ==", None),  # a zero id is no id
    ("aJUQnjY3MjA3ODF8NTYxMDIyMDl2zCg2pECBgwTqRpQuQD352EMPTKQjT4uqlM3cgWFA-", None),  # cut: not base64
])
def test_periscope_tokens(token, broadcast):
    assert urls.periscope_token_broadcast(token) == broadcast


PLAIN = [
    # profiles, channels, listings: pages without a key
    ("https://twitter.com/evac_watch", "page"),
    ("https://x.com/evac_watch/", "page"),
    ("https://twitter.com/#!/evac_watch", "page"),
    ("https://twitter.com/evac_watch/status/", "page"),
    ("https://twitter.com/evac_watch/likes", "page"),
    ("https://twitter.com/i/broadcasts/", "page"),
    ("https://x.com/i/events/", "page"),
    ("https://x.com/i/events/abc", "page"),
    ("https://x.com/i/events/0", "page"),
    ("https://www.periscope.tv/evac_watch/notifications", "page"),  # 13 lowercase letters: a page, not an id
    ("https://www.periscope.tv/evac_watch/56102209", "page"),       # numeric ids are only spelt /w/<id>
    ("https://www.periscope.tv/evac_watch", "page"),
    ("https://www.periscope.tv/evac_watch/broadcasts", "page"),
    ("https://www.youtube.com/@EvacWatch", "page"),
    ("https://www.youtube.com/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw", "page"),
    ("https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "page"),
    ("https://www.youtube.com/embed/videoseries?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "page"),
    ("https://t.me/evacwatch", "page"),
    ("https://t.me/s/evacwatch", "page"),
    ("https://t.me/joinchat/AAAAAEkk2WdoDrB4-Q8-gg", "page"),
    ("https://www.instagram.com/evac.watch/", "page"),
    ("https://vimeo.com/channels/staffpicks", "page"),
    ("https://vimeo.com/showcase/3253534", "page"),       # a showcase is a list of videos, not one
    ("https://vimeo.com/showcase/3253534/embed", "page"),
    ("https://vimeo.com/album/3253534", "page"),
    ("https://www.tiktok.com/@evac.watch", "page"),
    ("https://www.tiktok.com/@evac.watch/collection/aleppo-7371330159376370462", "page"),
    ("https://www.facebook.com/EvacWatch", "page"),
    ("https://www.facebook.com/watch/", "page"),
    # look-alike hosts are not the platform
    (f"https://evil-twitter.com/evac_watch/status/{TWEET}", "page"),
    (f"https://twitter.com.evil.net/evac_watch/status/{TWEET}", "page"),
    (f"https://nottwitter.com/evac_watch/status/{TWEET}", "page"),
    (f"https://x.com.example.org/evac_watch/status/{TWEET}", "page"),
    (f"https://twitter.com@evil.net/evac_watch/status/{TWEET}", "page"),
    (f"https://twіtter.com/evac_watch/status/{TWEET}", "page"),  # Cyrillic і: a different host under IDNA
    (f"https://twitter.co/evac_watch/status/{TWEET}", "page"),
    (f"https://twitter.com:8443/evac_watch/status/{TWEET}", "page"),
    ("https://notyoutu.be/dQw4w9WgXcQ", "page"),
    ("https://youtube.com.evil.net/watch?v=dQw4w9WgXcQ", "page"),
    ("https://fakeperiscope.tv/w/1OdKrBXvMbLKX", "page"),
    (f"https://twitter3e4tixl4xyajtrzo62zg5vztmjuricljdp2c5kshju4avyoid.onion.evil.net/evac_watch/status/{TWEET}",
     "page"),
    (f"https://twitter3e4tixl4xyajtrzo62zg5vztmjuricljd.onion/evac_watch/status/{TWEET}", "page"),
    ("https://t.me.evil.net/evacwatch/1234", "page"),
    ("https://eviltelegram.me/evacwatch/1234", "page"),
    # ids of the wrong shape
    ("https://twitter.com/evac_watch/status/80971141943113318a", "page"),
    ("https://twitter.com/evac_watch/status/abc", "page"),
    ("https://twitter.com/evac_watch/status/123456789012345678901", "page"),  # 21 digits
    ("https://twitter.com/evac_watch/status/0", "page"),
    ("https://x.com/i/broadcasts/1YpJkwXXXXXX", "page"),     # broadcast ids are 13 characters
    ("https://x.com/i/broadcasts/1YpJkwXXXXXXXX", "page"),
    ("https://x.com/i/broadcasts/1YpJkw-XXXXXX", "page"),
    ("https://www.periscope.tv/w/1OdKrBXvMbLK", "page"),
    ("https://www.periscope.tv/w/1OdKrBXvMbLKX1", "page"),
    ("https://platform.twitter.com/embed/Tweet.html?id=abc", "page"),
    ("https://platform.twitter.com/embed/Tweet.html", "page"),
    ("https://youtu.be/dQw4w9WgXc", "page"),      # 10 characters
    ("https://youtu.be/dQw4w9WgXcQQ", "page"),    # 12 characters
    ("https://www.youtube.com/watch?v=dQw4w9WgXc", "page"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQQ", "page"),
    ("https://www.youtube.com/watch?v=dQw4w9W%25cQ", "page"),
    ("https://www.youtube.com/watch", "page"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQQ", "page"),
    ("https://t.me/evacwatch/abc", "page"),
    ("https://vimeo.com/abc", "page"),
    ("https://www.facebook.com/watch/?v=abc", "page"),
    ("https://www.tiktok.com/@evac.watch/video/abc", "page"),
    # files stay files
    ("https://pbs.twimg.com/media/CzwRkJ7XgAA7pM6.jpg", "file"),
    ("https://news.example.org/2016/12/16/statement.pdf", "file"),
    ("https://news.example.org/2016/12/16/live/", "page"),
]


@pytest.mark.parametrize("url, kind", PLAIN)
def test_plain_pages_and_files_have_no_key(url, kind):
    parsed = urls.parse(url)
    assert (parsed.kind, parsed.key, parsed.platform, parsed.item_id) == (kind, None, None, None)
    assert parsed.dedup_key == parsed.canonical_url


def test_dedup_key_is_canonical_url_for_plain_pages():
    parsed = urls.parse("HTTPS://News.Example.ORG/2016/12/16/live/?utm_medium=x&id=7#c3")
    assert parsed.key is None
    assert parsed.dedup_key == parsed.canonical_url == "https://news.example.org/2016/12/16/live/?id=7"
    assert parsed.as_dict() == {"url": "HTTPS://News.Example.ORG/2016/12/16/live/?utm_medium=x&id=7#c3",
                                "canonical_url": "https://news.example.org/2016/12/16/live/?id=7",
                                "kind": "page", "key": None}


def test_as_dict_names_the_platform_key():
    parsed = urls.parse(f"https://twitter.com/evac_watch/status/{TWEET}?s=20")
    assert parsed.as_dict() == {"url": f"https://twitter.com/evac_watch/status/{TWEET}?s=20",
                                "canonical_url": f"https://x.com/evac_watch/status/{TWEET}",
                                "kind": "tweet", "key": TWEET_KEY}


def test_unicode_hosts_are_compared_in_idna_form():
    assert urls.parse("https://bücher.example/a").canonical_url == "https://xn--bcher-kva.example/a"
    # Still the same host, so still one dedup key, however it was typed.
    assert urls.parse("https://xn--bcher-kva.example/a").dedup_key == urls.parse("https://BÜCHER.example/a").dedup_key


def test_hashbang_fragment_is_kept_when_it_is_the_path():
    # Old "#!" links carry the path in the fragment; two different profiles must not become one URL.
    a = urls.parse("https://twitter.com/#!/evac_watch")
    b = urls.parse("https://twitter.com/#!/other_user")
    assert a.canonical_url == "https://twitter.com/#!/evac_watch"
    assert a.dedup_key != b.dedup_key
    # Ordinary fragments are still dropped.
    assert urls.parse("https://news.example.org/live/#c3").canonical_url == "https://news.example.org/live/"


def test_dry_run_json_prints_the_key(cli):
    result = cli("add", "--dry-run", "--json", f"https://mobile.twitter.com/evac_watch/status/{TWEET}/photo/1")
    assert result.code == 0, result.err
    [item] = result.json()
    assert item == {"url": f"https://mobile.twitter.com/evac_watch/status/{TWEET}/photo/1",
                    "canonical_url": f"https://x.com/evac_watch/status/{TWEET}", "kind": "tweet",
                    "key": TWEET_KEY}


def test_two_spellings_of_one_tweet_are_queued_once(cli):
    first = cli("add", "--json", f"https://twitter.com/evac_watch/status/{TWEET}?s=20")
    assert first.code == 0, first.err
    second = cli("add", "--json", f"https://x.com/i/web/status/{TWEET}")
    assert second.code == 0, second.err
    [a], [b] = first.json(), second.json()
    assert (a["created"], b["created"]) == (True, False)
    assert a["job_id"] == b["job_id"]
    with index_conn(cli.archive, named_rows=False) as conn:
        rows = conn.execute("SELECT url, key, kind FROM jobs").fetchall()
    # One job, keyed by the tweet, keeping the URL as it was first given.
    assert rows == [(f"https://twitter.com/evac_watch/status/{TWEET}?s=20", TWEET_KEY, "tweet")]
