"""The index engines: the `[index] url` setting that chooses one, and what team mode (PostgreSQL) guarantees on top of
what every engine does: one ledger chain under concurrent writers, claims that never hand a job to two runners,
search hits equal to SQLite's, a runner role that cannot change evidence."""
from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("value, words", [
    ("mysql://db.example/archive", "index.url must be empty (the SQLite file <archive>/index.db) or a postgresql://"),
    ("index.db", "index.url must be empty"),
    ("postgresql://runner:secret@db.example/archive", "must not hold a password: libpq finds it"),
    ("postgresql://db.example/archive?password=secret", "must not hold a password"),
    ("postgresql://db.example:port/archive", "index.url is not a valid URL"),
])
def test_a_bad_index_url_names_itself(value, words):
    from archiver import config
    from archiver.errors import ConfigError
    with pytest.raises(ConfigError, match=re.escape(words)) as bad:
        config.load(environ={"ARCHIVER_INDEX_URL": value})
    assert "\n" not in str(bad.value)


@pytest.mark.parametrize("value", ["", "postgresql://db.example/archive", "postgres://runner@db.example:5433/a",
                                   "postgresql:///archive?service=team", "postgresql://%2Fvar%2Frun%2Fpostgresql/a"])
def test_good_index_urls(value):
    from archiver import config
    assert config.load(environ={"ARCHIVER_INDEX_URL": value})["index"]["url"] == value


def test_a_bad_index_url_is_one_line_and_exit_2(cli):
    cli.env.pop("ARCHIVER_INDEX_URL", None)   # team mode's own, which would override the file's
    cli.archive.mkdir(parents=True)
    (cli.archive / "archiver.toml").write_text('[index]\nurl = "postgresql://me:hunter2@db.example/archive"\n')
    result = cli("status")
    assert (result.code, result.out) == (2, "")
    assert result.err.count("\n") == 1 and "index.url must not hold a password" in result.err
    assert "hunter2" not in result.err


# ---- team mode: PostgreSQL (the session's server, tests/backends.py) ---------------------------------------------

def _pg(url: str):
    from archiver.store.engines.postgres import PostgresIndex
    return PostgresIndex(url)


def _enqueue(index, n: int, prefix: str = "story") -> list[int]:
    from archiver import urls
    from archiver.pipeline import queue
    parsed = [urls.parse(f"https://example.org/{prefix}/{i}") for i in range(n)]
    return [e.job["id"] for e in queue.enqueue(index, parsed, requested_by="t", tags=[], note=None, priority=0,
                                               max_attempts=3)]


def _claim_all(url: str, barrier, out) -> None:
    """A runner process: claim until nothing is left, reporting each job it got."""
    from archiver.pipeline import queue
    index = _pg(url)
    owner = queue.make_owner()
    barrier.wait()
    got = []
    while (job := queue.claim(index, owner, 60)) is not None:
        got.append(job["id"])
    index.close()
    out.put(got)


def test_three_runner_processes_never_share_a_job(team_db):
    import multiprocessing
    index = _pg(team_db.owner_url)
    ids = _enqueue(index, 300)
    index.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    runners = [ctx.Process(target=_claim_all, args=(team_db.runner_url, barrier, out)) for _ in range(3)]
    for p in runners:
        p.start()
    got = [out.get(timeout=120) for _ in runners]
    for p in runners:
        p.join(30)
        assert p.exitcode == 0
    claimed = [job for part in got for job in part]
    assert sorted(claimed) == sorted(ids)          # every job once: none twice, none left
    assert sum(1 for part in got if part) >= 2     # and the runners did share the work


def _append_entries(url: str, n: int, barrier) -> None:
    from archiver.custody import ledger
    index = _pg(url)
    barrier.wait()
    for i in range(n):
        with index.transaction() as conn:
            ledger.append(conn, "checked", url=f"https://example.org/{i}", detail={"i": i})
    index.close()


def test_two_writers_keep_one_ledger_chain(team_db):
    import multiprocessing
    from archiver.custody import ledger
    _pg(team_db.owner_url).close()   # the schema, made by its owner
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_append_entries, args=(team_db.runner_url, 150, barrier)) for _ in range(2)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    index = _pg(team_db.owner_url)
    assert ledger.check_chain(index.conn) == (300, None)
    assert [r[0] for r in index.conn.execute("SELECT seq FROM ledger ORDER BY seq")] == list(range(1, 301))
    index.close()


# Titles and texts that tokenizing gets wrong in the usual ways: diacritics, curly apostrophes, dashes, URLs, digits,
# Arabic, Greek, underscores, hyphens; and queries in every form `search` documents, and some it must survive.
CORPUS = [
    ("Aleppo evacuation suspended", "Blasts heard at the departure point; the convoy waited — then turned back."),
    ("Évacuation d’Alep", "Les bus sont repartis vides. Naïve hope, café talk, the ICRC’s statement."),
    ("حلب", "قافلة الإجلاء توقفت في حلب الشرقية"),
    ("Periscope broadcast", "Live from east Aleppo: https://www.periscope.tv/w/1vAGRXDbvbkxl and @Mr_Alhamdoush"),
    ("Ελλάδα", "Η Αθήνα, Ärger über x² and €5 prices"),
    ("ICRC statement", "The ICRC's teams were ready; evacuation of the wounded depends on a ceasefire."),
    ("Convoy", "convoy convoys conveyed; the_underscore word and a foo-bar hyphen, 2016-12-16 at 10:30"),
    ("Nothing here", "Lorem ipsum dolor sit amet"),
]
QUERIES = ["aleppo", "Aleppo evacuation", '"evacuation suspended"', '"suspended evacuation"', "convoy OR ipsum",
           "aleppo NOT broadcast", "evac*", '"depart*"', "conv*", "ICRC", "icrc’s", "cafe", "CAFÉ", "naive", "حلب",
           "αθήνα", "αθηνα", "arger", "x²", "5", "periscope.tv", "www", "Mr_Alhamdoush", "foo-bar", "2016",
           "aleppo AND (convoy OR broadcast)", "aleppo OR convoy ceasefire", "a NOT b NOT c", '"unbalanced',
           "AND", "blasts OR convoy", "évacuation*", "the", "(evacuation OR convoy) AND the", "alep + talk",
           '"the convoy"', '"convoy" + "waited"', "lorem ipsum", "dolor*", "OR", "NOT aleppo", "aleppo OR",
           "underscore", "the_underscore", "10:30", "don't", '""', 'aleppo ""']


def _capture_row(n: int, title: str, text: str) -> dict:
    from archiver.store.archive import new_capture_id
    url = f"https://example.org/doc/{n}"
    return {"id": new_capture_id(), "job_id": None, "url": url, "canonical_url": url, "key": url, "kind": "page",
            "method": "http", "status": "ok", "started_at": f"2026-12-06T00:00:{n:02d}.000000Z",
            "finished_at": f"2026-12-06T00:00:{n:02d}.500000Z", "warc_path": f"warcs/{n}.warc.gz",
            "warc_sha256": "0" * 64, "warc_size": 1, "record_count": 0, "title": title, "text": text,
            "provenance": {}}


def test_search_finds_the_same_captures_on_both_engines(team_db, tmp_path):
    from archiver.errors import UserError
    from archiver.store.index import Index
    lite, pg = Index(tmp_path / "index.db"), _pg(team_db.owner_url)
    for index in (lite, pg):
        with index.transaction():
            for n, (title, text) in enumerate(CORPUS):
                index.insert_capture(_capture_row(n, title, text), [], [])
    titles = {index: {r["id"]: r["title"] for r in index.conn.execute("SELECT id, title FROM captures")}
              for index in (lite, pg)}

    def hits(index, query: str):
        try:
            ran, rows = index.search(query, limit=None)
        except UserError as exc:
            return "error", str(exc)
        return ran, [titles[index][r["id"]] for r in rows]

    differ = {q: (hits(lite, q), hits(pg, q)) for q in QUERIES if hits(lite, q) != hits(pg, q)}
    assert differ == {}
    assert sum(1 for q in QUERIES if hits(pg, q)[1]) >= 30   # not equal by finding nothing
    assert hits(pg, "aleppo")[1] == ["Periscope broadcast", "Aleppo evacuation suspended"]   # newest first
    found = [titles[pg][r["id"]] for r in pg.search("the", limit=2)[1]]
    assert len(found) == 2
    lite.close()
    pg.close()


def test_the_runner_role_cannot_change_evidence_and_triggers_refuse_everyone(team_db):
    import psycopg
    from archiver.errors import IntegrityConflict, UserError
    with pytest.raises(UserError, match="has no archiver schema, and this role may not create one"):
        _pg(team_db.runner_url)
    owner = _pg(team_db.owner_url)
    with owner.transaction():
        owner.insert_capture(_capture_row(1, "t", "x"), [{"seq": 0, "record_id": "<urn:uuid:12345678-1234-1234-1234-123456789abc>",
                                                           "type": "warcinfo", "uri": None, "offset": 0, "length": 10,
                                                           "payload_digest": "sha256:" + "ab" * 32}], [])
    _enqueue(owner, 2)
    runner = _pg(team_db.runner_url)   # a runner does its work: queue, claim, index, append
    from archiver.pipeline import queue
    assert _enqueue(runner, 1, prefix="by-runner") == [3]
    assert queue.claim(runner, "r", 60)["id"] in (1, 2, 3)
    with runner.transaction():
        runner.insert_capture(_capture_row(2, "t2", "y"), [], [])
    record = runner.capture_records(runner.list_captures()[1]["id"])[0]
    assert (record["record_id"], record["payload_digest"]) == (
        "<urn:uuid:12345678-1234-1234-1234-123456789abc>", "sha256:" + "ab" * 32)
    for statement in ("UPDATE ledger SET detail = '{}'", "DELETE FROM ledger", "UPDATE captures SET title = 'x'",
                      "DELETE FROM captures", "UPDATE records_packed SET length = 1", "DELETE FROM records_packed",
                      "TRUNCATE ledger", "DELETE FROM jobs", "UPDATE tallies SET n = 0"):
        with psycopg.connect(team_db.runner_url, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # The owner may do more, but not change evidence while the triggers stand.
    for statement in ("UPDATE ledger SET detail = '{}'", "DELETE FROM ledger", "UPDATE captures SET title = 'x'",
                      "DELETE FROM captures", "UPDATE records SET payload_digest = 'x'", "DELETE FROM records"):
        with pytest.raises(IntegrityConflict, match="cannot be"):
            owner.conn.execute(statement)
    assert owner.tallies()["captures"] == 2 and owner.tallies()["jobs:running"] == 1
    with pytest.raises(UserError, match="refused this role: permission denied for table ledger"):
        runner.conn.execute("DELETE FROM ledger")
    owner.close()
    runner.close()


def test_an_idle_runner_is_woken_by_a_job_queued(team_db):
    import threading
    import time
    index = _pg(team_db.owner_url)
    wait = index.job_waiter()
    assert wait(0.2) is False
    other = _pg(team_db.owner_url)
    timer = threading.Timer(0.3, lambda: _enqueue(other, 1))
    timer.start()
    started = time.monotonic()
    assert wait(10) is True and time.monotonic() - started < 5
    timer.join()
    other.close()
    index.close()


def test_a_server_restart_is_survived_without_writing_twice(team_db, postgres):
    from archiver.pipeline import queue
    index = _pg(team_db.owner_url)
    ids = _enqueue(index, 3)
    first = queue.claim(index, "r", 60)
    postgres.restart()
    # The connection was lost: reads and whole transactions that had not committed run again on a new one.
    assert queue.get_job(index, first["id"])["state"] == "running"
    second = queue.claim(index, "r", 60)
    assert second["id"] != first["id"] and second["attempts"] == 1
    postgres.restart(mode="immediate")
    assert queue.renew(index, second["id"], "r", 60) is True
    with index.transaction() as conn:   # a transaction begun after the loss starts on a new connection
        conn.execute("SELECT 1")
    rows = [tuple(r) for r in index.conn.execute("SELECT id, attempts, state FROM jobs ORDER BY id")]
    assert rows == [(ids[0], 1, "running"), (ids[1], 1, "running"), (ids[2], 0, "queued")]
    index.close()


def test_a_runner_carries_on_across_a_server_restart(team_db, postgres, site, tmp_path):
    """`run` as the runner role, the server restarted under it: every job captured once, nothing lost, verify clean
    (a capture whose commit was cut off is settled by the next runner to start)."""
    import time
    from conftest import CLI
    cli = CLI(tmp_path / "archive")
    cli.env.update({"ARCHIVER_INDEX_URL": team_db.owner_url, "ARCHIVER_QUEUE_BACKOFF_SECONDS": "0"})
    urls = [f"{site.url}/test/slow?seconds=0.3&n={n}" for n in range(8)]
    assert cli("add", "--no-browser", *urls).code == 0
    runner = cli.popen("run", "--once", env={"ARCHIVER_INDEX_URL": team_db.runner_url})
    deadline = time.monotonic() + 60
    while cli("status", "--json").json()["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    postgres.restart(mode="immediate")   # mid-run: six jobs to go, one of them in hand
    out, err = runner.communicate(timeout=180)
    assert runner.returncode == 0, err
    assert cli("run", "--once").code == 0
    status = cli("status", "--json").json()
    assert (status["done"], status["queued"], status["running"], status["captures"]) == (8, 0, 0, 8), status
    index = _pg(team_db.owner_url)
    per_job = [tuple(r) for r in index.conn.execute("SELECT job_id, COUNT(*) FROM captures GROUP BY job_id")]
    index.close()
    assert len(per_job) == 8 and all(n == 1 for _, n in per_job)
    verified = cli("verify")
    assert verified.code == 0, verified.out
