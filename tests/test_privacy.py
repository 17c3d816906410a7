"""Private by default (design.md principle 6): a capture makes no call the user did not ask for.

Every request the browser makes goes through the fixture world's proxy here, so the proxy's log is the
complete list of hosts contacted."""
from __future__ import annotations

THIRD_PARTY = ("google.com", "googleapis.com", "gstatic.com", "gvt1.com", "gvt2.com", "doubleclick.net",
               "google-analytics.com", "chrome.com", "chromium.org")


def test_a_browser_capture_contacts_only_the_target(world_cli, site):
    site.reset_proxy_log()
    result = world_cli("capture", "https://www.levantledger.example/2016/12/16/evacuation-suspended/", "--json")
    assert result.code == 0, result.err
    hosts = {entry.host for entry in site.proxy_log}
    assert "www.levantledger.example" in hosts
    assert not [h for h in hosts if h.endswith(THIRD_PARTY)], sorted(hosts)
    assert hosts <= {"www.levantledger.example"}, sorted(hosts)
