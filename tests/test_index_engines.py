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
    cli.archive.mkdir(parents=True, exist_ok=True)
    (cli.archive / "archiver.toml").write_text('[index]\nurl = "postgresql://me:hunter2@db.example/archive"\n')
    result = cli("status")
    assert (result.code, result.out) == (2, "")
    assert result.err.count("\n") == 1 and "index.url must not hold a password" in result.err
    assert "hunter2" not in result.err
