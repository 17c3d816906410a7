"""list, status and search: what an investigator reads, by hand and by script."""
from __future__ import annotations


def test_list_filters_and_status_keys(cli, site):
    assert cli("capture", "--no-browser", "--tag", "aleppo", site.url + "/2016/12/16/evacuation-suspended/").code == 0
    assert cli("capture", "--tag", "other", site.url + "/docs/icrc-statement.pdf").code == 0
    assert cli("capture", "--no-browser", site.url + "/test/status/503",
               env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"}).code == 1
    everything = cli("list", "--json").json()
    assert len(everything) == 3
    assert [c["id"] for c in everything] == sorted((c["id"] for c in everything), reverse=True)  # newest first
    tagged = cli("list", "--tag", "aleppo", "--json").json()
    assert [c["url"] for c in tagged] == [site.url + "/2016/12/16/evacuation-suspended/"]
    assert [c["kind"] for c in cli("list", "--kind", "file", "--json").json()] == ["file"]
    failed = cli("list", "--status", "failed", "--json").json()
    assert [(c["http_status"], c["failure_class"]) for c in failed] == [(503, "http-5xx")]
    assert len(cli("list", "--since", "1h", "--json").json()) == 3
    assert cli("list", "--since", "2099-01-01", "--json").json() == []
    human = cli("list")
    assert human.code == 0 and "evacuation-suspended" in human.out and "ID" in human.out.splitlines()[0]
    status = cli("status", "--json").json()
    assert {k: status[k] for k in ("queued", "running", "done", "failed")} == {
        "queued": 0, "running": 0, "done": 2, "failed": 1}
    assert status["recent_failures"][0]["failure_class"] == "http-5xx"


def test_search_quirky_queries_do_not_crash(cli, site):
    assert cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/").code == 0
    for query in ('"unbalanced', "AND", "blasts OR convoy", "évacuation*"):
        result = cli("search", query, "--json")
        assert result.code == 0, (query, result.err)
    assert cli("search", "blasts OR nothinglikethis", "--json").json()


def test_two_worker_processes(cli, site):
    urls = [f"{site.url}/test/pages/{n}" for n in range(100, 108)]
    assert cli("add", "--no-browser", *urls).code == 0
    result = cli("run", "--once", "--workers", "2")
    assert result.code == 0, result.err
    listed = cli("list", "--json").json()
    assert sorted(c["url"] for c in listed) == sorted(urls)
    assert cli("verify").code == 0
