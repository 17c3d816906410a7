"""Shared fixtures: the loopback demo site, a fresh archive per test, and a way to run the real CLI.

Team mode: with ARCHIVER_TEST_INDEX=postgres (`make test-team`), every archive the tests make keeps its index in a
fresh database of the session's PostgreSQL server (``[index] url``, given to the CLI as ARCHIVER_INDEX_URL, and to
tests that open an index themselves through ``open_test_index``); tests marked ``sqlite_only`` (they read or change
the SQLite file itself) are skipped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends  # noqa: E402  (tests/backends.py: PostgreSQL and moto's S3 server on loopback)
import demo_server  # noqa: E402  (scripts/demo_server.py: the site ships with the project)


# Which index engine the archives of this run use: "sqlite" (the default) or "postgres" (team mode).
TEST_INDEX = os.environ.get("ARCHIVER_TEST_INDEX", "sqlite")
if TEST_INDEX not in ("sqlite", "postgres"):
    raise ValueError(f"ARCHIVER_TEST_INDEX must be sqlite or postgres, not {TEST_INDEX!r}")


class _TeamDatabases:
    """One database per archive directory, made on first use: the same archive is the same database."""

    def __init__(self, server: backends.PostgresServer):
        self.server = server
        self.urls: dict[Path, str] = {}

    def url_for(self, archive: Path) -> str:
        key = Path(archive).absolute()
        if key not in self.urls:
            name = self.server.new_database()
            self.urls[key] = f"postgresql://{backends.OWNER_ROLE}@127.0.0.1:{self.server.port}/{name}"
        return self.urls[key]


_team: _TeamDatabases | None = None


def team_index_url(archive: Path) -> str:
    """``[index] url`` for an archive made by a test: empty (its index.db) unless the run is in team mode."""
    return _team.url_for(archive) if _team is not None else ""


def team_env(archive: Path) -> dict[str, str]:
    """The environment that gives an archive's commands its team database (ARCHIVER_INDEX_URL, which no archiver.toml
    a test writes can override); empty outside team mode."""
    url = team_index_url(archive)
    return {"ARCHIVER_INDEX_URL": url} if url else {}


def open_test_index(path: Path, unreachable_gone: tuple[int, float] = (4, 24.0)):
    """The index a test opens itself: the SQLite file ``path``, or in team mode that path's database."""
    from archiver.store.engines import open_index
    return open_index(team_index_url(path.parent if path.name == "index.db" else path), path, unreachable_gone)


@contextmanager
def index_conn(archive: Path, named_rows: bool = True) -> Iterator[Any]:
    """A connection to an archive's index, whichever engine holds it, for a test's own queries (SQL both engines
    take: ``?`` placeholders, standard SQL). Rows: ``sqlite3.Row`` (``named_rows``) or plain tuples on SQLite; on
    PostgreSQL tuples that also read by name. Autocommit."""
    if _team is None:
        import sqlite3
        conn = sqlite3.connect(archive / "index.db", isolation_level=None)
        if named_rows:
            conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()
        return
    index = open_test_index(archive / "index.db")
    try:
        yield index.conn
    finally:
        index.close()


def tamper_index(archive: Path, *statements: str) -> None:
    """What someone holding the index can do anyway (the SQLite file, or the PostgreSQL database's owner role): switch
    off the triggers that keep evidence unchanged, then change rows."""
    if _team is not None:
        with index_conn(archive) as conn:
            for table in ("ledger", "captures", "records_packed"):
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in statements:
                conn.execute(statement)
        return
    import sqlite3
    with sqlite3.connect(archive / "index.db", isolation_level=None) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                    "(name LIKE '%sealed%' OR name LIKE 'ledger_append_only%')").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            conn.execute(statement)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_INDEX != "postgres":
        return
    skip = pytest.mark.skip(reason="reads or changes the SQLite index file itself (ARCHIVER_TEST_INDEX=postgres)")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _team_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """In team mode: the session's PostgreSQL server, and a password file for it, before any archive is made."""
    global _team
    if TEST_INDEX != "postgres":
        yield
        return
    reason = backends.postgres_missing()
    if reason:
        pytest.exit(f"ARCHIVER_TEST_INDEX=postgres, but {reason}", returncode=2)
    server = request.getfixturevalue("postgres")
    request.getfixturevalue("pg_passfile")
    _team = _TeamDatabases(server)
    try:
        yield
    finally:
        _team = None


@pytest.fixture(scope="session")
def site() -> Iterator[demo_server.DemoServer]:
    server = demo_server.start()
    try:
        yield server
    finally:
        server.stop()


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    # Tests capture a site on 127.0.0.1, which the default settings refuse.
    env["ARCHIVER_NETWORK_ALLOW_PRIVATE"] = "true"
    # Keep failing tests fast: a short capture budget and quick retries.
    env["ARCHIVER_CAPTURE_TIMEOUT_SECONDS"] = "30"
    env["ARCHIVER_CAPTURE_NETWORK_IDLE_SECONDS"] = "3"
    env["ARCHIVER_CAPTURE_SCROLL_SECONDS"] = "3"
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class CLI:
    """Runs `python -m archiver --archive DIR ...` as a user would, in a subprocess."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.env = base_env()
        self.env.update(team_env(archive))

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 180) -> Result:
        proc = subprocess.run([sys.executable, "-m", "archiver", "--archive", str(self.archive), *args],
                              capture_output=True, text=True, input=input, env={**self.env, **(env or {})},
                              timeout=timeout, cwd=self.archive.parent)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "archiver", "--archive", str(self.archive), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env, **(env or {})}, cwd=self.archive.parent)


def capture_and_show(cli: CLI, *args: str) -> tuple[Result, list[dict[str, Any]], list[dict[str, Any] | None]]:
    """`archiver capture ... --json`, then `show --json` of each capture made: (result, outcomes, shows)."""
    result = cli("capture", *args, "--json")
    assert result.code in (0, 1), result.err
    outcomes = result.json()
    shows = [cli("show", o["capture_id"], "--json").json() if o["capture_id"] else None for o in outcomes]
    return result, outcomes, shows


def capture_timestamped(root: Path, *captures: list[str]) -> tuple[CLI, list[Result], Path]:
    """An archive at ``root/archive`` whose captures (each ``archiver capture`` with these arguments) are
    timestamped by a loopback TSA, up while they run: the CLI, each capture's result, the TSA's root certificate."""
    from tsa_server import LoopbackTSA
    tsa = LoopbackTSA(root / "tsa")
    cli = CLI(root / "archive")
    cli.env.update({"ARCHIVER_TIMESTAMP_TSA_URLS": json.dumps([tsa.url]),
                    "ARCHIVER_TIMESTAMP_CA_BUNDLE": str(tsa.ca_file)})
    try:
        results = [cli("capture", *args) for args in captures]
    finally:
        tsa.close()
    return cli, results, tsa.ca_file


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def cli(archive_dir: Path) -> CLI:
    return CLI(archive_dir)


@pytest.fixture(scope="session")
def article_capture(tmp_path_factory: pytest.TempPathFactory, site: demo_server.DemoServer) -> dict[str, Any]:
    """One browser capture of the demo live blog, shared by the many tests that inspect its WARC."""
    archive = tmp_path_factory.mktemp("article") / "archive"
    run = CLI(archive)
    result = run("capture", site.article_url, "--tag", "aleppo", "--by", "tester", "--json")
    assert result.code == 0, result.err
    outcome = result.json()[0]
    shown = run("show", outcome["capture_id"], "--json")
    assert shown.code == 0, shown.err
    data = shown.json()
    return {"archive": archive, "cli": run, "show": data, "warc": archive / data["warc_path"]}


@pytest.fixture
def world_cli(cli: CLI, site: demo_server.DemoServer) -> CLI:
    """The CLI reaching the fixture world (twitter.com, periscope.tv, t.co...) through its proxy and CA."""
    cli.env.update({"ARCHIVER_NETWORK_PROXY": site.proxy_url, "ARCHIVER_NETWORK_CA_BUNDLE": str(site.ca_file)})
    # The session's one server is shared by every test a worker runs: start from its stored world, and let a
    # test's look at the proxy log see only its own requests, not those of whichever tests ran before it.
    site.reset_tweet_states()
    site.reset_proxy_log()
    return cli


@pytest.fixture
def served_media(site, tmp_path):
    """``served_media(n_bytes)``: n random bytes (they do not compress) served by the site as /test/media.mp4
    (video/mp4) until the test ends; returns the file."""
    def serve(size: int) -> Path:
        body = tmp_path / f"media-{size}.mp4"
        body.write_bytes(os.urandom(size))
        site.set_media(body)
        return body
    try:
        yield serve
    finally:
        site.set_media(None)


# ---- team backends (tests/backends.py): real servers on 127.0.0.1, one set per xdist worker, started on first use

@pytest.fixture(scope="session")
def postgres() -> Iterator[backends.PostgresServer]:
    """A PostgreSQL server of this worker's own (Debian's package, run as the unprivileged `postgres` user when the
    tests run as root), with database ``archiver``, an owner role and a runner role; ``restart()`` restarts it."""
    reason = backends.postgres_missing()
    if reason:
        pytest.skip(reason)
    server = backends.PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def s3_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[backends.S3World]:
    """moto's S3 server, a recording/fault proxy in front of it, and a bucket with Object Lock enabled."""
    reason = backends.moto_missing()
    if reason:
        pytest.skip(reason)
    world = backends.start_s3_world(tmp_path_factory.mktemp("s3"))
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def s3(s3_world: backends.S3World, monkeypatch: pytest.MonkeyPatch) -> backends.S3World:
    """The S3 world for one test: the proxy's record and faults cleared, and credentials where boto3's standard
    chain finds them (the environment), never a developer's own ~/.aws."""
    s3_world.proxy.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_world


@pytest.fixture(scope="session")
def pg_passfile(postgres: backends.PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A libpq password file for the server's roles, named by PGPASSFILE for this process and the CLIs it starts:
    team-mode URLs carry no password (config.check_index_url), as a team's settings would not."""
    path = tmp_path_factory.mktemp("libpq") / "pgpass"
    path.write_text("".join(f"127.0.0.1:{postgres.port}:*:{role}:{password}\n"
                            for role, password in postgres.passwords.items()))
    path.chmod(0o600)
    os.environ["PGPASSFILE"] = str(path)
    return path


@dataclass
class TeamDatabase:
    """A fresh database on the session's server: URLs (no password) for its owner and for a runner."""
    name: str
    owner_url: str
    runner_url: str


@pytest.fixture
def team_db(postgres: backends.PostgresServer, pg_passfile: Path) -> TeamDatabase:
    name = postgres.new_database()
    base = f"127.0.0.1:{postgres.port}/{name}"
    return TeamDatabase(name, f"postgresql://{backends.OWNER_ROLE}@{base}", f"postgresql://{backends.RUNNER_ROLE}@{base}")
