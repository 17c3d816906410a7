"""Shared fixtures: the loopback demo site, a fresh archive per test, and a way to run the real CLI.

Team mode, two switches that go together or alone (`make test-team` sets both):
- ARCHIVER_TEST_INDEX=postgres: every archive the tests make keeps its index in a fresh database of the session's
  PostgreSQL server (``[index] url``, given to the CLI as ARCHIVER_INDEX_URL, and to tests that open an index
  themselves through ``open_test_index``); tests marked ``sqlite_only`` (they read or change the SQLite file
  itself) are skipped.
- ARCHIVER_TEST_STORAGE=s3: every archive seals into a prefix of its own of the session's S3 bucket (moto's server
  with Object Lock, behind the recording proxy: ``[storage] url``, endpoint and region, given to the CLI as
  ARCHIVER_STORAGE_*; credentials in this process's environment for the session, never a developer's ~/.aws).
  Tests read a sealed WARC wherever it is through ``sealed_warc``/``sealed_warc_bytes``, list what an archive
  stored with ``stored_warcs``, and alter a stored WARC with ``tamper_warc``; tests marked ``local_storage_only``
  (their subject is the local directory itself) are skipped.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

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


# Where the archives of this run keep their sealed files: "local" (<archive>/warcs, the default) or "s3" (a prefix of
# the session's bucket per archive).
TEST_STORAGE = os.environ.get("ARCHIVER_TEST_STORAGE", "local")
if TEST_STORAGE not in ("local", "s3"):
    raise ValueError(f"ARCHIVER_TEST_STORAGE must be local or s3, not {TEST_STORAGE!r}")

# Credentials where boto3's standard chain finds them first (the environment), and nothing of a developer's own
# (~/.aws, a profile, an instance role): moto takes any.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": os.devnull,
                  "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
# Variables that would point boto3 at another account, region or endpoint than the one a test names.
S3_FOREIGN = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_S3")


class _TeamStores:
    """One prefix of the session's bucket per archive directory, made on first use, as _TeamDatabases gives each
    archive a database: the same archive is the same prefix."""

    def __init__(self, world: backends.S3World):
        self.world = world
        self.urls: dict[Path, str] = {}

    def env_for(self, archive: Path) -> dict[str, str]:
        key = Path(archive).absolute()
        if key not in self.urls:
            self.urls[key] = f"s3://{self.world.bucket}/{self.world.new_prefix()}"
        return {"ARCHIVER_STORAGE_URL": self.urls[key], "ARCHIVER_STORAGE_ENDPOINT_URL": self.world.proxy.url,
                "ARCHIVER_STORAGE_REGION": self.world.region}


_team: _TeamDatabases | None = None
_stores: _TeamStores | None = None
_fetched: Path | None = None   # where sealed_warc puts the copies of objects it reads from the bucket


def team_index_url(archive: Path) -> str:
    """``[index] url`` for an archive made by a test: empty (its index.db) unless the run is in team mode."""
    return _team.url_for(archive) if _team is not None else ""


def team_storage_env(archive: Path) -> dict[str, str]:
    """``[storage]`` for an archive made by a test, as ARCHIVER_STORAGE_* variables: empty (<archive>/warcs) unless
    the run seals into S3 (ARCHIVER_TEST_STORAGE=s3)."""
    return _stores.env_for(archive) if _stores is not None else {}


def team_env(archive: Path) -> dict[str, str]:
    """The environment that gives an archive's commands its team database (ARCHIVER_INDEX_URL) and its prefix of the
    bucket (ARCHIVER_STORAGE_*), which no archiver.toml a test writes can override; empty outside team mode."""
    url = team_index_url(archive)
    return {**({"ARCHIVER_INDEX_URL": url} if url else {}), **team_storage_env(archive)}


def open_test_archive(archive: Path, **env: str):
    """The archive as its commands see it (``Archive``, settings resolved with the test run's team environment and
    ``env``), for a test that reads its index or store in this process."""
    from archiver import config
    from archiver.store.archive import Archive
    path = Path(archive).absolute()
    return Archive(path, config.load(path, environ=base_env(**team_env(path), **env)))


def sealed_file(archive: Path, capture: Mapping[str, Any], rel: str | None = None) -> Path:
    """A file sealed with a capture -- its WARC, or ``rel`` (a path in the archive's layout, ``warcs/...``: a timestamp
    token beside it) -- as a file to read. ``capture``: its ``show --json``, or its index row. The file in
    <archive>/warcs itself, or a copy of the object in the capture's store (a bucket), fetched once through
    archiver's own store interface (the WARC at the version sealed), read-only like the original."""
    rel = rel or capture["warc_path"]
    if not capture.get("warc_store"):
        return Path(archive) / rel
    import hashlib
    from archiver.store.archive import warc_key
    assert _fetched is not None, "a capture in a store of its own, but no session directory to fetch it into"
    version = capture.get("warc_version") if rel == capture["warc_path"] else None
    place = hashlib.sha256(f"{capture['warc_store']}\0{rel}\0{version}".encode()).hexdigest()[:16]
    copy = _fetched / place / Path(rel).name
    if not copy.exists():
        store = open_test_archive(archive).store_of(capture)
        copy.parent.mkdir(exist_ok=True)
        part = copy.with_name(copy.name + ".part")
        with store.open(warc_key(rel), version) as stream, open(part, "wb") as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
        part.chmod(0o444)
        part.rename(copy)
    return copy


def sealed_warc(archive: Path, capture: Mapping[str, Any]) -> Path:
    """A capture's sealed WARC as a file to read, wherever it is stored (``sealed_file``)."""
    return sealed_file(archive, capture)


def stored_object(archive: Path, capture: Mapping[str, Any], rel: str | None = None):
    """What the store holding a capture's WARC (or ``rel`` beside it) says of it (``blobs.StoredObject``: size,
    SHA-256 where known, whether it is read-only -- a file's mode, an object's lock)."""
    from archiver.store.archive import warc_key
    rel = rel or capture["warc_path"]
    version = capture.get("warc_version") if rel == capture["warc_path"] else None
    return open_test_archive(archive).store_of(capture).head(warc_key(rel), version)


def tamper_warc(archive: Path, capture: Mapping[str, Any], offset: int, rel: str | None = None) -> None:
    """Change the byte at ``offset`` (from the end when negative) of a capture's sealed WARC, or of ``rel`` beside it
    (a timestamp token), where it is kept, as someone able to would: the file in <archive>/warcs (made writable
    first), or the object in the bucket, which Object Lock keeps every client from changing -- so the bucket's
    answers are altered instead, every GET that covers the byte, ranged or whole, from now on (tests/backends.py:
    the proxy between the stores and moto)."""
    rel = rel or capture["warc_path"]
    if not capture.get("warc_store"):
        path = Path(archive) / rel
        os.chmod(path, 0o644)
        with open(path, "r+b") as fh:
            fh.seek(offset, os.SEEK_SET if offset >= 0 else os.SEEK_END)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0xFF]))
        return
    if offset < 0:
        offset += stored_object(archive, capture, rel).size
    store_proxy().alter(_bucket_key(capture, rel), offset)


def remove_warc(archive: Path, capture: Mapping[str, Any], rel: str | None = None) -> None:
    """Make a capture's sealed WARC (or ``rel`` beside it) gone: the file deleted, or the object answered for as
    missing (404) from now on (no client can delete a locked object; a listing still names it)."""
    rel = rel or capture["warc_path"]
    if not capture.get("warc_store"):
        (Path(archive) / rel).unlink()
        return
    store_proxy().refuse(_bucket_key(capture, rel))


def swap_sealed(archive: Path, capture: Mapping[str, Any], rel: str, other_rel: str) -> None:
    """Put the bytes of the file ``other_rel`` in place of ``rel`` (files sealed with a capture, in the same store):
    written over the file, or the bucket's answers for ``rel`` taken from ``other_rel`` from now on."""
    if not capture.get("warc_store"):
        path = Path(archive) / rel
        path.chmod(0o644)
        path.write_bytes((Path(archive) / other_rel).read_bytes())
        return
    store_proxy().substitute(_bucket_key(capture, rel), _bucket_key(capture, other_rel))


def put_stray(archive: Path, key: str, data: bytes) -> str:
    """``data`` stored under ``key`` in an archive's store behind archiver's back -- a file dropped into
    <archive>/warcs, an object put into the archive's prefix of the bucket -- and where ``verify`` names it
    (``warcs/<key>``, or the object's s3:// location)."""
    if _stores is None:
        path = Path(archive) / "warcs" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"warcs/{key}"
    store = open_test_archive(archive).store(read_only=True)
    world = _session_bucket()
    world.client(via_proxy=False).put_object(Bucket=world.bucket, Key=f"{store.prefix}/{key}", Body=data)
    return store.location(key)


def _session_bucket() -> backends.S3World:
    assert _stores is not None, "a capture stored in a bucket, but the run has no session bucket"
    return _stores.world


def store_proxy() -> backends.S3Proxy:
    """The proxy between the archives' stores and the session's bucket (ARCHIVER_TEST_STORAGE=s3), through which a
    test alters, hides or refuses what the bucket answers."""
    return _session_bucket().proxy


def _bucket_key(capture: Mapping[str, Any], rel: str) -> str:
    """The bucket's key of a file sealed with a capture on S3 (``rel``: its path in the archive's layout):
    "<the store's prefix>/<its key in the store>"."""
    from archiver.store.archive import warc_key
    prefix = capture["warc_store"].removeprefix("s3://").partition("/")[2]
    return f"{prefix}/{warc_key(rel)}" if prefix else warc_key(rel)


def sealed_warc_bytes(archive: Path, capture: Mapping[str, Any]) -> bytes:
    """The bytes of a capture's sealed WARC, wherever it is stored (see ``sealed_warc``)."""
    return sealed_warc(archive, capture).read_bytes()


def stored_files(archive: Path, *suffixes: str) -> list[str]:
    """The keys (``2026/11/25/<id>.warc.gz``) of the files an archive holds whose names end with one of ``suffixes``,
    sorted: those under <archive>/warcs, and, in a run that seals into S3, the objects under the archive's prefix of
    the bucket (both: a file left in <archive>/warcs is held too, and is what a test looking for "nothing sealed"
    must see)."""
    root = Path(archive) / "warcs"
    keys = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    if _stores is not None:
        keys += [o.key for o in open_test_archive(archive).store(read_only=True).list()]
    return sorted(k for k in keys if k.endswith(suffixes))


def stored_warcs(archive: Path) -> list[str]:
    """The keys of the sealed WARCs an archive holds (``stored_files``)."""
    return stored_files(archive, ".warc.gz")


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
    for item in items:
        if TEST_INDEX == "postgres" and item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(
                reason="reads or changes the SQLite index file itself (ARCHIVER_TEST_INDEX=postgres)"))
        marker = item.get_closest_marker("local_storage_only")
        if TEST_STORAGE == "s3" and marker:
            why = marker.args[0] if marker.args else "its subject is the local directory of sealed files"
            item.add_marker(pytest.mark.skip(reason=f"{why} (ARCHIVER_TEST_STORAGE=s3)"))


@pytest.fixture(scope="session", autouse=True)
def _team_mode(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In team mode: the session's PostgreSQL server and a password file for it, and the session's S3 bucket and
    credentials for it, before any archive is made."""
    global _team, _stores, _fetched
    if TEST_INDEX == "postgres":
        reason = backends.postgres_missing()
        if reason:
            pytest.exit(f"ARCHIVER_TEST_INDEX=postgres, but {reason}", returncode=2)
        server = request.getfixturevalue("postgres")
        request.getfixturevalue("pg_passfile")
        _team = _TeamDatabases(server)
    saved = {name: os.environ.get(name) for name in (*S3_CREDENTIALS, *S3_FOREIGN)}
    if TEST_STORAGE == "s3":
        reason = backends.moto_missing()
        if reason:
            pytest.exit(f"ARCHIVER_TEST_STORAGE=s3, but {reason}", returncode=2)
        # For the whole session: the CLI's environment is this process's (base_env), as is the store's in-process.
        for name in S3_FOREIGN:
            os.environ.pop(name, None)
        os.environ.update(S3_CREDENTIALS)
        _stores = _TeamStores(request.getfixturevalue("s3_world"))
        _fetched = tmp_path_factory.mktemp("sealed-copies")
    try:
        yield
    finally:
        _team = _stores = _fetched = None
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def _store_proxy_cleared() -> Iterator[None]:
    """What a test made the session's bucket answer (altered, refused objects) ends with it, as does its record of
    requests."""
    yield
    if _stores is not None:
        _stores.world.proxy.reset()


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


def made_archive(archive: Path, captures: int, *extra: str) -> "CLI":
    """An archive of ``captures`` captures made by scripts/make-index (archiver's own write path, real WARCs), in the
    run's mode (team_env), and the CLI on it."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make-index"), str(archive), "--captures",
                           str(captures), "--workers", "1", *extra], capture_output=True, text=True,
                          env=base_env(**team_env(archive)), timeout=300)
    assert done.returncode == 0, done.stderr
    return CLI(archive)


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


def local_storage(cli: CLI) -> CLI:
    """``cli`` on an archive that keeps its sealed files in <archive>/warcs, whatever the test run gives new archives
    (for a test whose subject is the local directory, in a run that seals into S3)."""
    for name in [n for n in cli.env if n.startswith("ARCHIVER_STORAGE_")]:
        del cli.env[name]
    return cli


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
    return {"archive": archive, "cli": run, "show": data, "warc": sealed_warc(archive, data)}


@pytest.fixture
def world_cli(cli: CLI, site: demo_server.DemoServer) -> CLI:
    """The CLI reaching the fixture world (twitter.com, periscope.tv, t.co...) through its proxy and CA."""
    cli.env.update({"ARCHIVER_NETWORK_PROXY": site.proxy_url, "ARCHIVER_NETWORK_CA_BUNDLE": str(site.ca_file)})
    # The session's one server is shared by every test a worker runs: start from its stored world, and let a
    # test's look at the proxy log see only its own requests, not those of whichever tests ran before it.
    site.reset_tweet_states()
    site.reset_status_states()
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
    for name in S3_FOREIGN:
        monkeypatch.delenv(name, raising=False)
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
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
