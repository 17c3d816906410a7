"""The team backends, real and on loopback: PostgreSQL from Debian's package and moto's S3 server, each started by
the tests (session-scoped fixtures in conftest.py; every xdist worker starts its own, on its own free port), and
a small HTTP proxy in front of S3 that records the requests it passes on and can answer 503 for a while.

PostgreSQL refuses to run as root. When the tests run as root, initdb and postgres run as the unprivileged
`postgres` user that Debian's package creates (`make setup` installs it), through util-linux's `setpriv`
(--reuid/--regid/--clear-groups): nothing is installed by hand. Each server lives in its own directory under
/tmp (a pytest tmp_path is under /tmp/pytest-of-root, mode 0700, which that user cannot enter), owned by that
user, holding the data directory, the unix socket and the log.

Nothing outlives the test run: servers are stopped when the session ends; every server process is started with
``setpriv --pdeathsig`` so the kernel ends it when the process that started it dies (a test run killed with
SIGKILL included); and a directory whose owning test process is gone is swept at the next start (its postmaster
stopped, if still there, and the directory removed), so a stale server never blocks the next run.
"""
from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PG_ROOT_PREFIX = "archiver-pg-"
# The roles of a team archive: the owner creates the schema; runners claim jobs and append evidence rows, so they
# get SELECT/INSERT (and what the index engine grants them later) but never UPDATE/DELETE on evidence tables.
OWNER_ROLE = "archiver_owner"
RUNNER_ROLE = "archiver_runner"
DATABASE = "archiver"


def free_port() -> int:
    """A port nothing listens on now. Another process may take it before we bind it; callers retry on that."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BackendError(f"{what} exited with status {proc.returncode} before listening on {port}"
                               + (f":\n{_tail(log)}" if log else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BackendError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s"
                       + (f":\n{_tail(log)}" if log else ""))


def _tail(path: Path | None, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path else ""
    except OSError:
        return ""


class BackendError(RuntimeError):
    """A backend server could not be started or stopped."""


# ---- PostgreSQL ----------------------------------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """Debian's server binaries (/usr/lib/postgresql/<major>/bin, newest major first), else initdb on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0, reverse=True)
    for postgres in found:
        if (postgres.parent / "initdb").exists():
            return postgres.parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def postgres_missing() -> str | None:
    """Why the PostgreSQL fixture cannot run here (a skip reason), or None."""
    if postgres_bindir() is None:
        return "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): run `make setup`"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) not found; it starts the servers as an unprivileged user and ends them with us"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user (Debian's postgresql package creates it)"
    return None


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), which tells a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _stop_postmaster(data_dir: Path, sig: int = signal.SIGQUIT, timeout: float = 10.0) -> None:
    """Stop the postmaster whose postmaster.pid is in data_dir, if it is still that postmaster."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"postgres" not in cmdline or str(data_dir).encode() not in cmdline:
        return  # the pid was reused by something else: not ours to signal
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def sweep_stale_postgres(tmp: Path = Path(tempfile.gettempdir())) -> list[Path]:
    """Stop and remove the servers of test runs that are gone (killed, crashed): returns the directories removed."""
    removed = []
    for root in tmp.glob(PG_ROOT_PREFIX + "*"):
        try:
            owner = json.loads((root / "owner.json").read_text())
        except (OSError, ValueError):
            # No owner file: a run killed between mkdtemp and writing it, so seconds old at most, or not ours.
            if time.time() - root.stat().st_mtime < 60:
                continue
            owner = {"pid": -1, "start": None}
        if owner["pid"] > 0 and _proc_start_time(owner["pid"]) == owner["start"]:
            continue  # its test process is alive: another xdist worker's, or another run's
        _stop_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


class PostgresServer:
    """A PostgreSQL server of its own: initdb into a fresh directory, a database with an owner role and a runner
    role, listening on 127.0.0.1:<port> and on a unix socket in that directory.

    ``start()``, ``stop(mode)`` and ``restart()`` act on the same data directory and port, so a test can restart
    the server under a running client. ``dsn(role)`` gives a libpq URL for a role; ``new_database()`` a fresh
    database with the same grants, for tests that need one of their own.
    """

    def __init__(self) -> None:
        reason = postgres_missing()
        if reason:
            raise BackendError(reason)
        self.bindir = postgres_bindir()
        sweep_stale_postgres()
        self.root = Path(tempfile.mkdtemp(prefix=PG_ROOT_PREFIX))
        (self.root / "owner.json").write_text(json.dumps({"pid": os.getpid(), "start": _proc_start_time(os.getpid())}))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.passwords = {OWNER_ROLE: secrets.token_hex(12), RUNNER_ROLE: secrets.token_hex(12)}
        self.superuser = "postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # postgres refuses to run as root. setpriv (util-linux, always on Debian) switches to the package's
            # system user with no supplementary groups; the directory becomes that user's, as initdb requires.
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups"]
        else:
            self.superuser = pwd.getpwuid(os.geteuid()).pw_name
        os.chmod(self.root, 0o700)
        self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser, "-E", "UTF8",
                   "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"])
        for attempt in range(5):
            self.port = free_port()
            try:
                self.start()
                break
            except BackendError:
                if attempt == 4 or "could not bind" not in _tail(self.log, 40).lower():
                    raise
        self._create_roles()

    def _setpriv(self, *extra: str) -> list[str]:
        return ["setpriv", *self._as_user, *extra, "--"]

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(self._setpriv() + command, capture_output=True, text=True, env=self._env(),
                                cwd=self.root)
        if result.returncode:
            raise BackendError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")

    def _env(self) -> dict[str, str]:
        # No PG* variables from the caller's environment: they would point tools at some other server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LANG="C", LC_ALL="C", HOME=str(self.root))
        return env

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise BackendError("PostgreSQL is already running")
        log = open(self.log, "ab")
        # fsync and full_page_writes off: the tests kill processes and restart the server, never crash the
        # operating system, which is all those two protect against; commits are several times faster without.
        # synchronous_commit stays on: without it a commit is acknowledged before its WAL leaves the server's
        # memory, and an immediate shutdown (or a killed server) loses it, which the fault tests must never see.
        command = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
                   "-c", "fsync=off", "-c", "full_page_writes=off",
                   "-c", "shared_buffers=16MB", "-c", "max_connections=60", "-c", "logging_collector=off"]
        # --pdeathsig QUIT: if this test process dies, however, the kernel tells the postmaster to shut down at once.
        self.proc = subprocess.Popen(self._setpriv("--pdeathsig", "QUIT") + command, stdout=log,
                                     stderr=subprocess.STDOUT, env=self._env(), cwd=self.root,
                                     start_new_session=True)
        log.close()
        _wait_port(self.port, self.proc, timeout, "postgres", self.log)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.superuser, dbname="postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                # "the database system is starting up" answers before it accepts connections
                if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                    raise BackendError(f"postgres not ready: {exc}\n{_tail(self.log)}") from None
                time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: "fast" (SIGINT: sessions are ended, a checkpoint is written) or "immediate" (SIGQUIT:
        no checkpoint; the next start recovers from WAL, as after a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal({"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode])
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        # The backends exit once they notice the postmaster is gone; a start before then finds the shared memory
        # block in use. postmaster.pid is removed last, so wait for it.
        deadline = time.monotonic() + timeout
        while (self.data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same data directory and port (the fault test's "PostgreSQL restarted")."""
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def dsn(self, role: str = OWNER_ROLE, dbname: str = DATABASE) -> str:
        """A libpq URL for a role over TCP with its password (the way a runner on another host connects)."""
        return f"postgresql://{role}:{self.passwords[role]}@127.0.0.1:{self.port}/{dbname}"

    def superuser_connect(self, dbname: str = "postgres"):
        import psycopg
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.superuser, dbname=dbname,
                               autocommit=True)

    def _create_roles(self) -> None:
        with self.superuser_connect() as conn:
            for role, password in self.passwords.items():
                conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.new_database(DATABASE)

    def new_database(self, name: str | None = None) -> str:
        """A new database owned by the owner role, which the runner role may connect to and use: its name."""
        name = name or f"test_{secrets.token_hex(4)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with self.superuser_connect() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {OWNER_ROLE} TEMPLATE template0")
            conn.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
            conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {RUNNER_ROLE}")
        with self.superuser_connect(name) as conn:
            # PostgreSQL 15 no longer lets PUBLIC create in schema public; say so anyway for older servers, and
            # let the runner use the schema (USAGE only: it creates nothing).
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {RUNNER_ROLE}")
        return name

    def close(self) -> None:
        self.stop("fast", timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- S3: moto's server, and a proxy in front of it -------------------------------------------------------------

def moto_missing() -> str | None:
    try:
        import flask  # noqa: F401  (moto's server mode needs flask and flask-cors: the test extra)
        import flask_cors  # noqa: F401
        import moto  # noqa: F401
    except ImportError as exc:
        return f"moto's S3 server is not installed ({exc}): run `make setup`"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) not found; it ends the S3 server with the test run"
    return None


class MotoServer:
    """moto's S3 server in a process of its own (python -m moto.server) on 127.0.0.1:<free port>. A process rather
    than moto's ThreadedMotoServer: moto keeps every object in memory, and the tests measure the memory of our
    client. Its state is its own, so each xdist worker has one."""

    def __init__(self, log_dir: Path) -> None:
        reason = moto_missing()
        if reason:
            raise BackendError(reason)
        self.log = log_dir / "moto.log"
        for attempt in range(5):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, "-m", "moto.server",
                     "-H", "127.0.0.1", "-p", str(self.port)],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"})
            try:
                _wait_port(self.port, self.proc, 30, "moto_server", self.log)
                break
            except BackendError:
                self.close()
                if attempt == 4:
                    raise
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Recorded:
    """One request the proxy received: method, path with query, headers (names lower-cased) and the status sent."""
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-request (a runner SIGKILLed by a fault test) is what clients do, not an error of
    the proxy's to print a traceback for; anything else still is."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


@dataclass
class _Fault:
    until: float = 0.0
    status: int = 503
    code: str = "SlowDown"
    count: int = 0  # requests answered with the fault


class S3Proxy:
    """A loopback HTTP proxy in front of moto's S3 server: the endpoint the tests give the S3 engine.

    ``requests`` records every request as it arrived (so a test asserts the headers we send, where moto does not
    enforce what they ask for); ``fail_for(seconds)`` answers every request with 503 SlowDown, as S3 does under
    load, until that time has passed; ``override_response_headers`` rewrites headers of the answers that carry
    them (a server that reports another checksum); ``corrupt_next_put_body`` flips one byte of the next PUT body
    in transit; ``flip_byte_in_gets`` one byte of every whole-object GET of a key. What Object Lock keeps every
    client from doing to a stored object, done to the bucket's answers instead: ``alter(key, offset)`` flips one
    byte in every GET that covers it, whole or ranged; ``substitute(key, other)`` serves another object's bytes;
    ``refuse(key)`` answers for it as gone (or with another refusal), ``refuse_listing(prefix)`` refuses to list.
    Bodies are streamed both ways in 64 KiB pieces, never held whole.
    """

    CHUNK = 1 << 16

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Recorded] = []
        self.fault = _Fault()
        self.override_response_headers: dict[str, str] = {}
        self.corrupt_next_put_body = False
        # (path substring, byte index): every whole-object GET of a matching path answers with that byte flipped, as
        # a bucket whose stored bytes were altered would (Object Lock stops a client from doing it; not a disk).
        self.flip_byte_in_gets: tuple[str, int] | None = None
        # By object key (the bucket's whole key, "<prefix>/<key>"), for GET and HEAD: a byte offset to flip in every
        # answer that covers it, a ranged one included (a record read where the index says it is); another key to
        # answer from; a refusal (status, code). And listings of a prefix refused (status, code).
        self.altered: list[tuple[str, int]] = []
        self.substituted: dict[str, str] = {}
        self.refused: dict[str, tuple[int, str]] = {}
        self.refused_listings: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                owner._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 (http.server's naming)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="s3-proxy", daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- what tests call

    def fail_for(self, seconds: float, status: int = 503, code: str = "SlowDown") -> None:
        with self._lock:
            self.fault = _Fault(until=time.monotonic() + seconds, status=status, code=code)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.fault = _Fault()
            self.override_response_headers = {}
            self.corrupt_next_put_body = False
            self.flip_byte_in_gets = None
            self.altered = []
            self.substituted = {}
            self.refused = {}
            self.refused_listings = {}

    def alter(self, key: str, offset: int) -> None:
        """From now on, every GET of the object ``key`` that covers byte ``offset`` answers with it flipped."""
        with self._lock:
            self.altered.append((key, offset))

    def substitute(self, key: str, other: str) -> None:
        """From now on, GET and HEAD of the object ``key`` answer with the object ``other`` (its bytes swapped in)."""
        with self._lock:
            self.substituted[key] = other

    def refuse(self, key: str, status: int = 404, code: str = "NoSuchKey") -> None:
        """From now on, GET and HEAD of the object ``key`` answer ``status`` ``code``: by default as for an object
        that is gone (listings still name it)."""
        with self._lock:
            self.refused[key] = (status, code)

    def refuse_listing(self, prefix: str, status: int = 403, code: str = "AccessDenied") -> None:
        """From now on, listings of keys under ``prefix`` answer ``status`` ``code``."""
        with self._lock:
            self.refused_listings[prefix] = (status, code)

    def find(self, method: str, contains: str = "") -> list[Recorded]:
        return [r for r in list(self.requests) if r.method == method and contains in r.path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the proxy itself

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        record = Recorded(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self.requests.append(record)
            failing = time.monotonic() < self.fault.until
            if failing:
                self.fault.count += 1
            corrupt = handler.command == "PUT" and self.corrupt_next_put_body
            if corrupt:
                self.corrupt_next_put_body = False
            key, listed = _object_key(handler.path) if handler.command in ("GET", "HEAD") else (None, None)
            refused = self.refused.get(key) if key else next(
                (r for prefix, r in self.refused_listings.items() if listed is not None and listed.startswith(prefix)),
                None)
            path = _other_object(handler.path, self.substituted[key]) if key in self.substituted else handler.path
        if failing or refused:
            self._drain(handler)
            status, code, message = ((self.fault.status, self.fault.code, "Please reduce your request rate.")
                                     if failing else (*refused, "Refused by the test's proxy."))
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message></Error>").encode()
            record.status = status
            handler.send_response(status)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        try:
            upstream.putrequest(handler.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in handler.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            self._copy_request_body(handler, upstream, corrupt)
            response = upstream.getresponse()
            record.status = response.status
            handler.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            for name, value in response.getheaders():
                if name.lower() in ("transfer-encoding", "connection", "date", "server"):
                    continue
                handler.send_header(name, self.override_response_headers.get(name.lower(), value))
            if length is None:
                # A close-delimited or chunked answer: passed on close-delimited.
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            flips = self._flips(handler, record, response)
            sent = 0
            if handler.command != "HEAD":
                while chunk := response.read(self.CHUNK):
                    for flip_at in flips:
                        if sent <= flip_at < sent + len(chunk):
                            i = flip_at - sent
                            chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                    sent += len(chunk)
                    handler.wfile.write(chunk)
        finally:
            upstream.close()

    def _flips(self, handler: BaseHTTPRequestHandler, record: Recorded, response: http.client.HTTPResponse
               ) -> list[int]:
        """Offsets in this answer's body of the bytes to flip (flip_byte_in_gets, alter)."""
        if handler.command != "GET" or response.status not in (200, 206):
            return []
        flips = []
        flip = self.flip_byte_in_gets
        if flip and flip[0] in handler.path and "range" not in record.headers and response.status == 200:
            flips.append(flip[1])
        start = 0
        if response.status == 206:   # "Content-Range: bytes START-END/TOTAL": the body starts at START
            match = re.match(r"bytes (\d+)-", response.getheader("Content-Range") or "")
            if not match:
                return flips
            start = int(match.group(1))
        key, _ = _object_key(handler.path)
        with self._lock:
            altered = list(self.altered)
        flips += [offset - start for altered_key, offset in altered if altered_key == key and offset >= start]
        return flips

    def _drain(self, handler: BaseHTTPRequestHandler) -> None:
        remaining = int(handler.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = handler.rfile.read(min(self.CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)

    def _copy_request_body(self, handler: BaseHTTPRequestHandler, upstream: http.client.HTTPConnection,
                           corrupt: bool) -> None:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise BackendError("S3Proxy does not pass chunked request bodies on (boto3 sends Content-Length)")
        remaining = int(handler.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = handler.rfile.read(min(self.CHUNK, remaining))
            if not chunk:
                break
            if corrupt:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                corrupt = False
            upstream.send(chunk)
            remaining -= len(chunk)


def _object_key(path: str) -> tuple[str | None, str | None]:
    """(the object key a path-style request names, or None; the prefix it lists, or None): "/bucket/a/b?x" names
    "a/b"; "/bucket?list-type=2&prefix=a%2F" lists "a/"."""
    parts = urllib.parse.urlsplit(path)
    bucket_and_key = urllib.parse.unquote(parts.path).lstrip("/").split("/", 1)
    if len(bucket_and_key) == 2 and bucket_and_key[1]:
        return bucket_and_key[1], None
    query = urllib.parse.parse_qs(parts.query)
    return None, (query.get("prefix", [""])[0] if "list-type" in query or "prefix" in query else None)


def _other_object(path: str, other: str) -> str:
    """A path-style request for the object ``other`` of the same bucket instead (its latest version: a version ID
    belongs to the object it was asked of)."""
    parts = urllib.parse.urlsplit(path)
    bucket = parts.path.lstrip("/").split("/", 1)[0]
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "versionId"]
    return f"/{bucket}/{urllib.parse.quote(other)}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


@dataclass
class S3World:
    """moto's server, the proxy in front of it, and a bucket with Object Lock enabled."""
    moto: MotoServer
    proxy: S3Proxy
    bucket: str
    region: str = "us-east-1"
    prefixes: list[str] = field(default_factory=list)

    def client(self, via_proxy: bool = True, **config: Any):
        """A plain boto3 client (moto accepts any credentials), for what tests do outside the engine under test;
        ``config``: more botocore Config options."""
        import boto3
        from botocore.config import Config
        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
            "s3", endpoint_url=self.proxy.url if via_proxy else self.moto.url, region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, **config))

    def new_prefix(self) -> str:
        prefix = f"t-{secrets.token_hex(6)}"
        self.prefixes.append(prefix)
        return prefix

    def close(self) -> None:
        self.proxy.close()
        self.moto.close()


def start_s3_world(log_dir: Path) -> S3World:
    moto = MotoServer(log_dir)
    proxy = S3Proxy(moto.port)
    world = S3World(moto, proxy, bucket=f"evidence-{secrets.token_hex(4)}")
    try:
        world.client(via_proxy=False).create_bucket(Bucket=world.bucket, ObjectLockEnabledForBucket=True)
    except Exception:
        world.close()
        raise
    return world
