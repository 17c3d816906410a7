"""Bad input gets one clear line and exit 2, and nothing is queued; settings resolve in layers."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import TEST_INDEX, index_conn


def _jobs(archive) -> int:
    if TEST_INDEX == "sqlite" and not (archive / "index.db").exists():
        return 0
    with index_conn(archive) as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def test_bad_urls_exit_2_and_nothing_is_queued(cli):
    result = cli("add", "https://ok.example/a", "ftp://files.example/x", "example.com/page", "http://",
                 "https://exa mple.com/", "http://host:99999/")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert any("ftp://files.example/x" in line and "http" in line for line in lines)
    assert any("example.com/page" in line and "did you mean https://example.com/page" in line for line in lines)
    assert any("'http://'" in line and "no host" in line for line in lines)
    assert any("whitespace" in line for line in lines)
    assert any("host:99999" in line for line in lines)
    assert "Traceback" not in result.err
    assert _jobs(cli.archive) == 0


def test_no_urls_and_missing_file(cli):
    result = cli("add")
    assert result.code == 2 and "no URLs given" in result.err
    result = cli("add", "-f", "/nonexistent/list.txt")
    assert result.code == 2 and result.err.count("\n") == 1 and "no such file" in result.err


def test_add_from_stdin_with_comments_and_dedup(cli):
    text = "# from the live blog\nhttps://Example.com/story?utm_source=tw#top\n\nhttps://example.com/story\n"
    result = cli("add", "-f", "-", "--tag", "aleppo", "--note", "from tip line", "--by", "pv", "--json", input=text)
    assert result.code == 0, result.err
    jobs = result.json()
    assert [j["created"] for j in jobs] == [True, False]
    assert jobs[0]["job_id"] == jobs[1]["job_id"]
    assert jobs[0]["canonical_url"] == "https://example.com/story"
    # Queued once; adding again later is still one pending job.
    again = cli("add", "https://EXAMPLE.com:443/story?fbclid=abc", "--json").json()
    assert again[0]["created"] is False and again[0]["job_id"] == jobs[0]["job_id"]
    assert _jobs(cli.archive) == 1
    with index_conn(cli.archive) as conn:
        row = conn.execute("SELECT url, requested_by, tags, note, state FROM jobs").fetchone()
    assert tuple(row) == ("https://Example.com/story?utm_source=tw#top", "pv", '["aleppo"]', "from tip line", "queued")


def test_dry_run_json_queues_nothing(cli):
    result = cli("add", "--dry-run", "--json", "HTTPS://News.Example.ORG/2016/12/16/live/?utm_medium=x&id=7#c3")
    assert result.code == 0
    [item] = result.json()
    assert item == {"url": "HTTPS://News.Example.ORG/2016/12/16/live/?utm_medium=x&id=7#c3",
                    "canonical_url": "https://news.example.org/2016/12/16/live/?id=7", "kind": "page",
                    "key": None}
    assert _jobs(cli.archive) == 0


def test_unknown_setting_in_environment_is_named(cli):
    result = cli("status", env={"ARCHIVER_QUEUE_LEASE_SECONDZ": "5"})
    assert result.code == 2
    assert "ARCHIVER_QUEUE_LEASE_SECONDZ" in result.err and result.err.count("\n") == 1


def test_wrong_type_in_archive_settings_is_named(cli):
    cli.archive.mkdir(parents=True)
    (cli.archive / "archiver.toml").write_text("[queue]\nlease_seconds = \"soon\"\n")
    result = cli("status")
    assert result.code == 2 and "queue.lease_seconds" in result.err and "archiver.toml" in result.err
    (cli.archive / "archiver.toml").write_text("[queue]\nlease_secs = 5\n")
    result = cli("status")
    assert result.code == 2 and "queue.lease_secs" in result.err


def test_unknown_capture_id_exits_1(cli):
    cli("status")
    result = cli("show", "01NOSUCHCAPTURE0000000000")
    assert result.code == 1 and "no capture" in result.err and result.err.count("\n") == 1


def test_usage_error_is_one_line_exit_2(cli):
    result = cli("run", "--workers", "zero")
    assert result.code == 2 and result.err.count("\n") == 1 and "--workers" in result.err
    result = cli("list", "--since", "last tuesday")
    assert result.code == 2 and "--since" in result.err


def test_settings_layers(tmp_path):
    from archiver import config
    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "archiver.toml").write_text("[queue]\nlease_seconds = 10\nmax_attempts = 7\n")
    extra = tmp_path / "extra.toml"
    extra.write_text("[queue]\nlease_seconds = 20\n[capture]\ntimeout_seconds = 5\n")
    s = config.load(archive, extra, environ={"ARCHIVER_QUEUE_LEASE_SECONDS": "30",
                                             "ARCHIVER_NETWORK_ALLOW_PRIVATE": "true", "ARCHIVER_HOME": "/x"})
    assert s["queue"]["lease_seconds"] == 30          # environment wins
    assert s["queue"]["max_attempts"] == 7            # archive file over default
    assert s["capture"]["timeout_seconds"] == 5.0     # --config file over default, int accepted for float
    assert s["network"]["allow_private"] is True
    assert s["queue"]["poll_seconds"] == 2.0          # untouched default


def test_a_bad_allowed_address_range_is_named_before_anything_runs(cli):
    result = cli("add", "https://example.org/", env={"ARCHIVER_NETWORK_ALLOW_ADDRESSES": "10.0.0.0/8,intranet"})
    assert result.code == 2 and result.err.count("\n") == 1
    assert "network.allow_addresses" in result.err and "'intranet'" in result.err
    assert "ARCHIVER_NETWORK_ALLOW_ADDRESSES" in result.err
    assert _jobs(cli.archive) == 0


def _ledger(archive) -> list[tuple[int, str, int]]:
    with index_conn(archive) as conn:
        return [tuple(r) for r in conn.execute("SELECT seq, event, job_id FROM ledger ORDER BY seq")]


def test_a_long_list_is_queued_whole_once_per_item_or_not_at_all(cli, tmp_path):
    """`add -f` streams its file in chunks inside one transaction: duplicates collapse across chunks and against
    jobs already pending, every new job gets its `queued` entry in one unbroken chain, and one bad line anywhere
    (here the last of 2 400) means nothing of the list is queued."""
    assert cli("add", "https://news.example/0", "https://x.com/jack/status/20").code == 0
    lines = [f"https://news.example/{n % 1500}?utm_source=list" for n in range(2000)]   # 500 repeats
    lines += [f"https://twitter.com/jack/status/{20 + n % 3}" for n in range(400)]    # 3 tweets, one pending
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(lines + ["notaurl"]) + "\n")
    result = cli("add", "-f", str(listing))
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.splitlines() == ["archiver: error: 'notaurl': not an absolute URL; did you mean https://notaurl?",
                                       "archiver: error: 1 URL is not valid; nothing was queued"]
    assert _jobs(cli.archive) == 2 and len(_ledger(cli.archive)) == 2

    listing.write_text("\n".join(lines) + "\n")
    result = cli("add", "-f", str(listing), "--json")
    assert result.code == 0, result.err
    out = result.json()
    assert len(out) == 2400 and sum(o["created"] for o in out) == 1499 + 2
    assert out[0] == {**out[0], "job_id": 1, "created": False, "state": "queued"}   # pending before the list
    assert out[1500]["job_id"] == out[0]["job_id"] and out[2000]["created"] is False   # status/20 was pending
    assert _jobs(cli.archive) == 2 + 1501
    entries = _ledger(cli.archive)
    assert [e[0] for e in entries] == list(range(1, 1504)) and {e[1] for e in entries} == {"queued"}
    assert sorted(e[2] for e in entries) == list(range(1, 1504))
    verified = cli("verify", "--json").json()
    assert verified["ok"] and verified["ledger"]["intact"] and verified["ledger_entries"] == 1503
    again = cli("add", "-f", str(listing))
    assert again.code == 0 and again.out.count("already queued") == 2400 and _jobs(cli.archive) == 1503


@pytest.mark.sqlite_only
def test_an_unusable_index_is_one_line_and_logged(cli):
    """A corrupt index.db (or one that is a directory) is a failure, not a user error: one line, exit 1, and the
    traceback in the archive's log file, not on the terminal."""
    import json
    cli.archive.mkdir(parents=True)
    (cli.archive / "index.db").write_bytes(b"this is not an SQLite database, it was overwritten\n" * 100)
    for command in (["status"], ["verify"], ["add", "https://example.com/"]):
        result = cli(*command)
        assert result.code == 1, (command, result.err)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert "index database cannot be used" in result.err and "reindex" in result.err
    [log] = (cli.archive / "logs").glob("archiver-*.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["command-failed"] * 3
    assert "Traceback" in events[0]["traceback"] and events[2]["command"][-2:] == ["add", "https://example.com/"]
    (cli.archive / "index.db").unlink()
    (cli.archive / "index.db").mkdir()
    result = cli("status")
    assert result.code == 1 and result.err.count("\n") == 1 and "cannot be opened" in result.err


@pytest.mark.parametrize("raised, code, said", [
    (MemoryError(), 1, "out of memory"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (sqlite3.OperationalError("database or disk is full"), 1, "the disk holding the index is full"),
    (OSError(28, "No space left on device", "/archive/tmp/x.warc.gz"), 1,
     "no space left on the device: /archive/tmp/x.warc.gz"),
    (ValueError("a bug"), 1, "internal error (ValueError: a bug)"),
])
def test_failures_end_in_one_line_with_their_exit_status(tmp_path, monkeypatch, capsys, raised, code, said):
    from archiver import cli as cli_module
    from archiver.custody import verify

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(verify, "verify", fail)
    monkeypatch.delenv("ARCHIVER_TRACEBACK", raising=False)
    assert cli_module.main(["--archive", str(tmp_path / "archive"), "verify"]) == code
    err = capsys.readouterr().err.lstrip("\n")   # click ends the terminal's "^C" line first
    assert err.count("\n") == 1 and said in err and "Traceback" not in err, err
    logged = list((tmp_path / "archive" / "logs").glob("*.jsonl"))
    assert bool(logged) == (code != 130)   # ^C is the person's own doing: nothing to log
