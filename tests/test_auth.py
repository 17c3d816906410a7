"""Logged-in capture that never leaks credentials (issue 14): [auth."site"] settings, used by Chromium, httpx and
yt-dlp, sent to that site and its subdomains only, and never in the evidence.

Through the fixture world: members.levantledger.example answers its dispatches to a signed-in member only (a
Domain=levantledger.example session cookie, handed back in a Set-Cookie), embeds a picture from www. (the site's
own subdomain), one from pbs.twimg.com and a tweet (third parties), and /go/ redirects to x.com. The world logs
the Cookie and Authorization every host received (``DemoServer.credential_log``): the proof of where they went.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import json
import re
import zipfile
from pathlib import Path

import pytest

from archiver.capture import auth
from archiver.store import warc as warc_module
from conftest import sealed_warc

WORLD = json.loads((Path(__file__).resolve().parent.parent / "scripts" / "demo_site" / "world" / "members.json")
                   .read_text("utf-8"))
SESSION = next(iter(WORLD["sessions"]))
MEMBER = WORLD["sessions"][SESSION]
CSRF = "c5e1a0b2d4f6081a2b3c4d5e6f708192"
# A cookie of another site in the same file (exports of a whole browser hold many): never used at all.
OTHER_SITE_SECRET = "OTHERSITESECRET1234567890abcdef"
VIMEO_SECRET = "VIMEOSESSIONSECRET0123456789abcdef"
SECRETS = (SESSION, CSRF, OTHER_SITE_SECRET, VIMEO_SECRET)
DISPATCH = "https://members.levantledger.example/dispatch/convoy-checkpoint/"
GO = "https://members.levantledger.example/go/convoy-checkpoint"
SITE = "levantledger.example"

COOKIES_TXT = f"""# Netscape HTTP Cookie File
# Exported from a logged-in browser.
#HttpOnly_.levantledger.example\tTRUE\t/\tTRUE\t2000000000\t{WORLD['session_cookie']}\t{SESSION}
.levantledger.example\tTRUE\t/\tTRUE\t2000000000\t{WORLD['csrf_cookie']}\t{CSRF}
.x.com\tTRUE\t/\tTRUE\t2000000000\tauth_token\t{OTHER_SITE_SECRET}
.vimeo.com\tTRUE\t/\tTRUE\t2000000000\tvimeo\t{VIMEO_SECRET}
.levantledger.example\tTRUE\t/\tTRUE\t1000000000\tll_expired\texpired-long-ago
"""


def _settings(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "auth.toml"
    path.write_text(body, "utf-8")
    return path


def _logged_in(tmp_path: Path, *sites: tuple[str, str]) -> Path:
    (tmp_path / "cookies.txt").write_text(COOKIES_TXT, "utf-8")
    return _settings(tmp_path, "".join(f'[auth."{site}"]\ncookies = "cookies.txt"\nlabel = "{label}"\n\n'
                                       for site, label in sites))


def _no_secret_in(data: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret[:12]}... found in {where}"


def _warc_text(path: Path) -> bytes:
    """Every byte of a WARC, its gzip members inflated."""
    return gzip.decompress(path.read_bytes())


def _capture(cli, settings: Path, *args: str) -> tuple[dict, dict]:
    result = cli("--config", str(settings), "capture", *args, "--json")
    assert result.code in (0, 1), result.err
    outcome = result.json()[0]
    shown = cli("--config", str(settings), "show", outcome["capture_id"], "--json")
    assert shown.code == 0, shown.err
    return outcome, shown.json()


def _credentials_elsewhere(site) -> list:
    """Requests to hosts outside levantledger.example that carried any of the secrets."""
    return [e for e in site.credential_log if not (e.host == SITE or e.host.endswith("." + SITE))
            and any(s in (e.cookie or "") + (e.authorization or "") for s in SECRETS)]


# ---- through the world ---------------------------------------------------------------------------------------

def test_logged_in_browser_capture_sees_members_content_and_no_secret_reaches_other_hosts_or_the_evidence(
        world_cli, site, tmp_path):
    settings = _logged_in(tmp_path, (SITE, MEMBER))
    outcome, show = _capture(world_cli, settings, DISPATCH)
    assert outcome["status"] == "ok", outcome
    assert show["final_url"] == DISPATCH and "Members' dispatch" in show["title"]
    found = world_cli("--config", str(settings), "search", "Ramouseh checkpoint", "--json")
    assert found.code == 0 and any(r["id"] == outcome["capture_id"] for r in found.json()), found.out

    # Where the credentials went: the site and its subdomain, with the site's cookies only; no other host.
    log = site.credential_log
    members = [e for e in log if e.host == "members.levantledger.example" and e.path == "/dispatch/convoy-checkpoint/"]
    assert members and SESSION in members[0].cookie and CSRF in members[0].cookie
    assert OTHER_SITE_SECRET not in members[0].cookie and "expired-long-ago" not in members[0].cookie
    assert any(e.host == "www.levantledger.example" and SESSION in (e.cookie or "") for e in log)
    third_parties = {e.host for e in log} - {"members.levantledger.example", "www.levantledger.example"}
    assert {"pbs.twimg.com", "platform.twitter.com", "cdn.syndication.twimg.com"} <= third_parties
    assert _credentials_elsewhere(site) == []

    # Provenance: who, and the credential file's hash; never the secret.
    login = show["provenance"]["auth"]
    assert login["statement"] == f"authenticated as {MEMBER}" and login["site"] == SITE
    assert login["credential_sha256"] == hashlib.sha256((tmp_path / "cookies.txt").read_bytes()).hexdigest()
    assert login["cookie_names"] == ["ll_csrf", "ll_session"] and login["redacted_requests"] >= 2
    assert show["logged_in"].startswith(f"authenticated as {MEMBER} on {SITE}")

    # Every byte of the WARC: no secret; the request records say what was redacted, the session handed back in
    # Set-Cookie lost its value, the harmless cookie kept it.
    path = sealed_warc(world_cli.archive, show)
    data = _warc_text(path)
    _no_secret_in(data, "the WARC")
    assert b"WARC-Redacted-Headers: Cookie\r\n" in data and b"Cookie: [redacted]\r\n" in data
    assert b"Set-Cookie: ll_session=[redacted]; Domain=levantledger.example" in data
    assert b"WARC-Redacted-Headers: Set-Cookie\r\n" in data and b"Set-Cookie: ll_seen=convoy-checkpoint;" in data

    # show, the report and the export say it was made logged in; the export holds no secret either.
    shown = world_cli("--config", str(settings), "show", outcome["capture_id"])
    assert re.search(rf"logged in +authenticated as {re.escape(MEMBER)} on {SITE} \(cookies cookies.txt, SHA-256 "
                     rf"{login['credential_sha256']}\)", shown.out), shown.out
    report = tmp_path / "report.html"
    assert world_cli("report", outcome["capture_id"], "-o", str(report)).code == 0
    assert f"authenticated as {MEMBER} on {SITE}" in report.read_text("utf-8")
    _no_secret_in(report.read_bytes(), "the report")
    wacz = tmp_path / "export.wacz"
    exported = world_cli("export", outcome["capture_id"], "-o", str(wacz))
    assert exported.code == 0, exported.err
    assert f"was made logged in: authenticated as {MEMBER}" in exported.err
    with zipfile.ZipFile(wacz) as zf:
        for name in zf.namelist():
            member = zf.read(name)
            _no_secret_in(member, f"{name} of the export")
            if name.endswith(".warc.gz"):
                _no_secret_in(gzip.decompress(member), f"{name} of the export, inflated")
        manifest = json.loads(zf.read("provenance/export.json"))
    assert manifest["captures"][0]["logged_in"].startswith(f"authenticated as {MEMBER} on {SITE}")


def test_without_credentials_the_dispatch_is_the_login_page_and_nothing_says_logged_in(world_cli, site, tmp_path):
    outcome, show = _capture(world_cli, _settings(tmp_path, ""), DISPATCH)
    assert show["final_url"].startswith("https://members.levantledger.example/login?next=")
    assert "MEMBERS ONLY" not in (show.get("text") or "") and "auth" not in show["provenance"]
    assert "logged in     no" in world_cli("show", outcome["capture_id"]).out
    assert all(not e.cookie for e in site.credential_log if e.host == "members.levantledger.example")


@pytest.mark.parametrize("browser", [False, True], ids=["httpx", "chromium"])
def test_a_redirect_to_another_host_goes_without_the_credentials(world_cli, site, tmp_path, browser):
    settings = _logged_in(tmp_path, (SITE, MEMBER))
    outcome, show = _capture(world_cli, settings, GO, *([] if browser else ["--no-browser"]))
    assert outcome["status"] == "ok" and show["final_url"].startswith("https://x.com/evac_watch_demo/status/")
    hops = [e for e in site.credential_log if e.path in ("/go/convoy-checkpoint",
                                                         "/evac_watch_demo/status/809711419431133184")]
    assert [e.host for e in hops][:2] == ["members.levantledger.example", "x.com"]
    assert SESSION in hops[0].cookie and not hops[1].cookie
    assert _credentials_elsewhere(site) == []
    data = _warc_text(sealed_warc(world_cli.archive, show))
    _no_secret_in(data, "the WARC")
    # The request record of the first hop says Cookie was redacted; the hop to x.com sent none.
    requests = [r for r in data.split(b"WARC/1.1\r\n") if b"WARC-Type: request" in r]
    first = next(r for r in requests if b"WARC-Target-URI: " + GO.encode() in r)
    to_x = next(r for r in requests if b"WARC-Target-URI: https://x.com/" in r)
    assert b"WARC-Redacted-Headers: Cookie" in first and b"WARC-Redacted-Headers" not in to_x


def test_yt_dlp_gets_the_sites_cookies_only_and_its_cdn_gets_none(world_cli, site, tmp_path):
    """A Vimeo video captured logged in: yt-dlp (player config, viewer) and Chromium send the vimeo.com session to
    vimeo.com and player.vimeo.com; the image and video CDNs (vimeocdn.com) never receive it, nor the WARC."""
    settings = _logged_in(tmp_path, ("vimeo.com", "newsdesk-vimeo"))
    outcome, show = _capture(world_cli, settings, "https://vimeo.com/196064873")
    assert outcome["status"] == "ok", outcome
    log = site.credential_log
    assert any(e.host == "player.vimeo.com" and VIMEO_SECRET in (e.cookie or "") for e in log)  # yt-dlp's request
    cdn = [e for e in log if e.host.endswith("vimeocdn.com")]
    assert cdn and not any(e.cookie for e in cdn)
    assert not any(s in (e.cookie or "") for e in log for s in (SESSION, CSRF, OTHER_SITE_SECRET))
    assert show["provenance"]["auth"]["statement"] == "authenticated as newsdesk-vimeo"
    _no_secret_in(_warc_text(sealed_warc(world_cli.archive, show)), "the WARC")


def _chromium_profile(directory: Path) -> None:
    """A Chromium profile logged in to the world's members site (and to x.com), made the way the settings say:
    Chromium with --password-store=basic, so that its cookie database is readable without a desktop keyring."""
    import asyncio

    from playwright.async_api import async_playwright

    from archiver.capture.browser import resolve_executable

    async def make() -> None:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                str(directory), executable_path=resolve_executable("auto"), headless=True,
                args=["--password-store=basic", "--use-mock-keychain"])
            await context.add_cookies([
                {"name": WORLD["session_cookie"], "value": SESSION, "domain": "." + SITE, "path": "/", "secure": True,
                 "httpOnly": True, "sameSite": "Lax", "expires": 2000000000},
                {"name": "auth_token", "value": OTHER_SITE_SECRET, "domain": ".x.com", "path": "/", "secure": True,
                 "httpOnly": True, "sameSite": "None", "expires": 2000000000}])
            await context.close()

    asyncio.run(make())


def test_a_chromium_profile_logs_in_chromium_and_httpx_and_its_other_sites_cookies_stay_home(world_cli, site,
                                                                                           tmp_path):
    profile = tmp_path / "profile"
    _chromium_profile(profile)
    settings = _settings(tmp_path, f'[auth."{SITE}"]\nprofile = "profile"\nlabel = "{MEMBER}"\n')
    before = {p.relative_to(profile): p.stat().st_mtime_ns for p in profile.rglob("*") if p.is_file()}
    outcome, show = _capture(world_cli, settings, DISPATCH)
    assert outcome["status"] == "ok" and "Members' dispatch" in show["title"]
    assert show["provenance"]["auth"]["credentials"] == "profile"
    assert show["provenance"]["auth"]["credential_file"] == "Cookies"
    _, hop_show = _capture(world_cli, settings, GO, "--no-browser")   # httpx, from the profile's cookie database
    assert hop_show["final_url"].startswith("https://x.com/")
    log = site.credential_log
    assert sum(1 for e in log if e.host == "members.levantledger.example" and SESSION in (e.cookie or "")) >= 2
    assert not any(OTHER_SITE_SECRET in (e.cookie or "") for e in log)   # x.com's cookie of the profile: never sent
    assert _credentials_elsewhere(site) == []
    for shown in (show, hop_show):
        _no_secret_in(_warc_text(sealed_warc(world_cli.archive, shown)), "the WARC")
    # The profile itself was only read: each capture opened a copy of it.
    after = {p.relative_to(profile): p.stat().st_mtime_ns for p in profile.rglob("*") if p.is_file()}
    assert after == before


# ---- bad settings: one line, exit 2 --------------------------------------------------------------------------

@pytest.mark.parametrize("body, files, message", [
    ('[auth."x.com"]\ncookies = "missing.txt"\nlabel = "a"\n', {}, "cookies file not found"),
    ('[auth."x.com"]\ncookies = "c.txt"\nlabel = "a"\n', {"c.txt": b"\xff\xfe not text"}, "cannot read cookies file"),
    ('[auth."x.com"]\ncookies = "c.txt"\nlabel = "a"\n', {"c.txt": b"# Netscape HTTP Cookie File\nthis is not\ta cookie\n"},
     "is not a Netscape cookies.txt"),
    ('[auth."x.com"]\ncookies = "c.txt"\nlabel = "a"\n', {"c.txt": COOKIES_TXT.replace(".x.com", ".y.com").encode()},
     "holds no cookie for x.com"),
    ('[auth."x.com"]\ncookies = "c.txt"\nprofile = "p"\nlabel = "a"\n', {"c.txt": COOKIES_TXT.encode()},
     "has both cookies and profile"),
    ('[auth."x.com"]\ncookies = "c.txt"\n', {"c.txt": COOKIES_TXT.encode()}, "needs a label"),
    ('[auth."x.com"]\nlabel = "a"\n', {}, "needs cookies"),
    ('[auth."x.com"]\nprofile = "nowhere"\nlabel = "a"\n', {}, "profile directory not found"),
    ('[auth."x.com"]\nprofile = "empty"\nlabel = "a"\n', {"empty/.keep": b""}, "is not a Chromium profile"),
    ('[auth."https://x.com/"]\ncookies = "c.txt"\nlabel = "a"\n', {"c.txt": COOKIES_TXT.encode()},
     "must be a host name"),
    ('[auth."x.com"]\ncookie = "c.txt"\nlabel = "a"\n', {}, "unknown key cookie"),
    ('[auth."x.com"]\ncookies = 3\nlabel = "a"\n', {}, "must be a string"),
    ('[auth]\n"x.com" = "c.txt"\n', {}, "must be a table"),
])
def test_bad_credential_settings_are_one_line_and_exit_2(cli, tmp_path, body, files, message):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    result = cli("--config", str(_settings(tmp_path, body)), "list")
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.err
    _no_secret_in(result.err.encode(), "the error")


def test_credentials_are_not_settings_of_the_environment(cli):
    result = cli("list", env={"ARCHIVER_AUTH_COOKIES": "/tmp/c.txt"})
    assert result.code == 2 and "not in the environment" in result.err and len(result.err.strip().splitlines()) == 1


# ---- units ---------------------------------------------------------------------------------------------------

def _site(tmp_path: Path, site: str = SITE) -> auth.SiteAuth:
    (tmp_path / "cookies.txt").write_text(COOKIES_TXT + "members.levantledger.example\tFALSE\t/account\tTRUE\t0\t"
                                                        "host_only\th1\n", "utf-8")
    return auth.load_site(site, {"cookies": str(tmp_path / "cookies.txt"), "label": MEMBER})


def test_cookies_go_where_a_browser_would_send_them_within_the_site_only(tmp_path):
    site = _site(tmp_path)
    assert {c.name for c in site.cookies} == {"ll_session", "ll_csrf", "host_only"}  # not x.com's, not the expired
    assert auth.cookie_header(site, "https://members.levantledger.example/x") == f"ll_session={SESSION}; ll_csrf={CSRF}"
    assert auth.cookie_header(site, "https://members.levantledger.example/account/me").endswith("; host_only=h1")
    assert "host_only" not in auth.cookie_header(site, "https://www.levantledger.example/account/me")
    assert auth.cookie_header(site, "http://members.levantledger.example/x") is None          # Secure cookies
    for elsewhere in ("https://x.com/", "https://levantledger.example.evil.com/", "https://notlevantledger.example/"):
        assert auth.cookie_header(site, elsewhere) is None, elsewhere
    assert auth.for_url({SITE: {"cookies": str(tmp_path / "cookies.txt"), "label": "a"}},
                        "https://evil-levantledger.example/") is None


def test_the_cookie_file_for_yt_dlp_and_the_browser_cookies_hold_the_site_only(tmp_path):
    site = _site(tmp_path)
    written = auth.write_cookie_file(site, tmp_path)
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    text = written.read_text("utf-8")
    assert SESSION in text and OTHER_SITE_SECRET not in text and VIMEO_SECRET not in text
    assert {c.name for c in auth.read_cookies_txt(written, "test")} == {"ll_session", "ll_csrf", "host_only"}
    browser = auth.playwright_cookies(site)
    assert {c.get("domain") or c.get("url") for c in browser} == {".levantledger.example",
                                                                  "https://members.levantledger.example/account"}


def test_request_and_set_cookie_redaction(tmp_path):
    headers, redacted = warc_module.redact_request_headers(
        [("Host", "a"), ("cookie", "a=1"), ("Authorization", "Bearer x"), ("Accept", "*/*")])
    assert headers == [("Host", "a"), ("cookie", "[redacted]"), ("Authorization", "[redacted]"), ("Accept", "*/*")]
    assert redacted == ["cookie", "Authorization"]
    headers, redacted = warc_module.redact_set_cookies(
        [("Set-Cookie", f"ll_session={SESSION}; Path=/; Secure"), ("Set-Cookie", "ll_seen=1"), ("X", "ll_session=2")],
        frozenset({"ll_session"}))
    assert headers == [("Set-Cookie", "ll_session=[redacted]; Path=/; Secure"), ("Set-Cookie", "ll_seen=1"),
                       ("X", "ll_session=2")] and redacted == ["Set-Cookie"]


def test_a_tools_own_report_is_scrubbed_of_the_credentials(tmp_path):
    site = _site(tmp_path)
    info = {"formats": [{"url": "https://v/x.mp4", "cookies": f"ll_session={SESSION}; Domain=.levantledger.example",
                         "http_headers": {"Cookie": f"ll_csrf={CSRF}", "User-Agent": "yt-dlp"}}],
            "description": f"echoed {SESSION} back", "n": 3}
    clean = auth.scrub(info, site)
    _no_secret_in(json.dumps(clean).encode(), "the scrubbed info")
    assert clean["formats"][0]["http_headers"]["User-Agent"] == "yt-dlp" and clean["n"] == 3
    assert auth.scrub(info, None) is info
    assert auth.without_secrets(site, f"a=1; ll_session={SESSION}; b=2") == "a=1; b=2"
    assert auth.merge_cookie_header("ll_session=new; z=1", f"ll_session={SESSION}; ll_csrf={CSRF}") == \
        f"ll_session=new; z=1; ll_csrf={CSRF}"


# ---- real answers: the redaction on every Cookie and Set-Cookie of the corpus's WARCs ---------------------------

CORPUS = Path(os.environ.get("ARCHIVER_CORPUS") or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")


def _corpus_headers() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(file, record type, HTTP headers) of every request and response record of the corpus's WARCs."""
    from warcio.archiveiterator import ArchiveIterator
    out = []
    for path in sorted((CORPUS / "warc").glob("*.warc*")):
        try:
            with open(path, "rb") as fh:
                for record in ArchiveIterator(fh):
                    if record.rec_type in ("request", "response") and record.http_headers is not None:
                        out.append((path.name, record.rec_type, list(record.http_headers.headers)))
        except Exception:
            continue   # a WARC warcio cannot read to the end: what it read is kept above
    return out


def test_every_real_cookie_and_set_cookie_of_the_corpus_is_redacted_and_its_attributes_kept():
    if not (CORPUS / "warc").is_dir():
        pytest.skip(f"no corpus at {CORPUS} (set ARCHIVER_CORPUS, or keep ../shared/corpus beside the repo)")
    seen = {"request": 0, "response": 0}
    for name, rec_type, headers in _corpus_headers():
        if rec_type == "request":
            values = [v for n, v in headers if n.lower() in ("cookie", "authorization")]
            if not values:
                continue
            seen["request"] += 1
            redacted, names = warc_module.redact_request_headers(headers)
            assert len(names) == len(values) and all(v not in dict(redacted).values() for v in values if v), name
            continue
        set_cookies = [v for n, v in headers if n.lower() == "set-cookie"]
        if not set_cookies:
            continue
        seen["response"] += 1
        cookie_names = frozenset(v.split("=", 1)[0].strip() for v in set_cookies if "=" in v.split(";", 1)[0])
        redacted, names = warc_module.redact_set_cookies(headers, cookie_names)
        after = [v for n, v in redacted if n.lower() == "set-cookie"]
        for before, now in zip(set_cookies, after):
            cookie, _, attributes = before.partition(";")
            if "=" in cookie:
                assert now.split(";", 1)[0] == f"{cookie.split('=', 1)[0].strip()}=[redacted]", (name, before)
                assert now.partition(";")[2] == attributes, (name, before)   # Domain, Path, Expires... kept as sent
        assert [n for n, _ in redacted] == [n for n, _ in headers], name   # order and every other header kept
    assert seen["request"] and seen["response"], seen
