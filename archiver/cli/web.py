"""Commands of the workbench: serve, and the access tokens it accepts (token add|list|remove)."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import click

from archiver.errors import UserError
from archiver.cli.app import cli
from archiver.cli.common import _emit_json, _table, Context, pass_ctx

if TYPE_CHECKING:
    import uvicorn


def _bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """The listening socket, bound here so that a bad host or a port in use is one clear line (exit 2)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host!r}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno in (98, 48) else (exc.strerror or str(exc))
        raise UserError(f"cannot listen on {host}:{port}: {why} (choose another with {option})") from None
    return sock


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs a token (`archiver token add`).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free one; the line printed at start says which).")
@click.option("--replay-port", default=None, type=click.IntRange(0, 65535),
              help="Port of the replay origin (default: --port + 1; 0 with --port 0).")
@click.option("--origin", default=None, metavar="URL",
              help="Beyond loopback: the https origin the workbench is reached at (behind a TLS proxy).")
@click.option("--replay-origin", default=None, metavar="URL",
              help="Beyond loopback: the https origin of the replay, a subdomain of --origin's host.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, replay_port: int | None, origin: str | None,
          replay_origin: str | None) -> None:
    """The workbench: search, captures with their screenshot, media, replay, verify, downloads, items, the dashboard,
    submitting, and a JSON API, in a browser. Read-only unless a token allows submitting. Stops cleanly on ^C or
    SIGTERM."""
    from archiver.web import auth
    from archiver.web.replay import check_origins, loopback_origins
    archive = ctx.archive
    if not archive.exists():
        raise UserError(f"no archive at {archive.path}; give --archive DIR (or ARCHIVER_HOME)")
    if bool(origin) != bool(replay_origin):
        raise UserError("give both --origin and --replay-origin (or neither)")
    if origin and replay_origin:
        check_origins(replay_origin, origin)   # ConfigError: one line
    sock = _bind(host, port)   # a bad host or a taken port is said first: it is wrong whatever else is
    loopback = auth.is_loopback_host(host)
    if not loopback and not auth.load_tokens(archive.path):
        sock.close()
        raise UserError(f"refusing to serve on {host} without a token: anyone who reaches it could read the "
                        f"archive; make one with `archiver --archive {archive.path} token add NAME --role viewer`")
    bound_port = sock.getsockname()[1]
    replay_sock = None
    if origin or loopback:
        try:
            replay_sock = _bind(host, bound_port + 1 if replay_port is None and port else (replay_port or 0),
                                "--replay-port: the replay's port")
        except UserError:
            sock.close()
            raise
    import uvicorn
    from archiver.web.app import Replay, create_app
    from archiver.web.replay import Grants, replay_app
    if origin and replay_origin:
        workbench_origin, replay_at = origin.rstrip("/"), replay_origin.rstrip("/")
    elif loopback:
        # The replay must be a subdomain of the workbench's host (web/replay.py): so the workbench is opened as
        # archive.localhost, a name Chromium (and Firefox) resolve to loopback themselves.
        workbench_origin, replay_at = loopback_origins(bound_port, replay_sock.getsockname()[1])
    else:
        bound_host = sock.getsockname()[0]
        workbench_origin, replay_at = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}", None
    replay = Replay(replay_at, Grants(), workbench_origin) if replay_at else None
    app = create_app(archive, loopback, replay=replay, secure=workbench_origin.startswith("https:"))
    servers = [(_server(uvicorn, app), sock)]
    if replay is not None and replay_sock is not None:
        replayer = replay_app(archive, archive.index(), replay_origin=replay.origin,
                              workbench_origin=workbench_origin, grants=replay.grants)
        servers.append((_server(uvicorn, replayer), replay_sock))
    click.echo(f"archiver workbench on {workbench_origin}/ (archive {archive.path}; "
               f"{'local browser needs no token' if loopback else 'tokens required'}; "
               f"{'replay on ' + replay.origin if replay else 'replay off: give --origin and --replay-origin'}; "
               f"^C to stop)")
    _run_until_signalled(servers)
    click.echo("archiver: workbench stopped", err=True)


def _server(uvicorn: Any, app: Any) -> "uvicorn.Server":
    # proxy_headers off: the peer address is what the ledger records and what decides "local"; a header must not
    # be able to claim it.
    return uvicorn.Server(uvicorn.Config(app, proxy_headers=False, log_level="warning", access_log=False,
                                         server_header=False, timeout_graceful_shutdown=5, lifespan="off"))


def _run_until_signalled(servers: list[tuple["uvicorn.Server", socket.socket]]) -> None:
    """Serve each in a thread; SIGINT or SIGTERM here asks them to finish what they serve and stop (uvicorn's own
    handlers would re-raise the signal after stopping, and the command would end as killed rather than done)."""
    import signal
    import threading
    threads = [threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="workbench")
               for server, sock in servers]

    def stop(signum: int, frame: object) -> None:
        for server, _ in servers:
            server.should_exit = True
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if not all(thread.is_alive() for thread in threads):
                stop(0, None)   # one server ended on its own: stop the other too
            for thread in threads:
                thread.join(0.25)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for _, sock in servers:
            sock.close()


@cli.group()
def token() -> None:
    """Access tokens for the workbench (`archiver serve`): roles viewer (read, verify, download) and submitter."""


@token.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "submitter"]), default="viewer", show_default=True)
@pass_ctx
def token_add(ctx: Context, name: str, role: str) -> None:
    """Make a token; it is printed once (only its SHA-256 is kept, in <archive>/web-tokens.json, mode 0600)."""
    from archiver.web import auth
    if not ctx.archive.exists():
        raise UserError(f"no archive at {ctx.archive.path}; give --archive DIR (or ARCHIVER_HOME)")
    value = auth.add_token(ctx.archive.path, name, role)
    click.echo(value)
    click.echo(f"archiver: token {name!r} ({role}) made; it is shown only now. Use it as Authorization: Bearer, "
               f"or log in at /login", err=True)


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def token_list(ctx: Context, as_json: bool) -> None:
    """The tokens: name, role, when made (never the tokens themselves)."""
    from archiver.web import auth
    rows = [{k: t[k] for k in ("name", "role", "created")} for t in auth.load_tokens(ctx.archive.path)]
    if as_json:
        _emit_json(rows)
    elif rows:
        _table(rows, [("name", "NAME", 40), ("role", "ROLE", 9), ("created", "CREATED", 20)])
    else:
        click.echo("no tokens (make one with `archiver token add NAME --role viewer`)", err=True)


@token.command(name="remove")
@click.argument("name")
@pass_ctx
def token_remove(ctx: Context, name: str) -> None:
    """Remove a token: a running workbench refuses it (and the sessions it opened) from its next request."""
    from archiver.web import auth
    auth.remove_token(ctx.archive.path, name)
    click.echo(f"removed token {name!r}", err=True)
